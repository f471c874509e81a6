#!/bin/sh
# bench_tune_model.sh - memory tuning on any model, the issue-10 figures in one run:
#   the first N (1000) facts of languages.jsonl tuned with the model's defaults:
#   time to 100% exact recall, steps, peak RSS, file size; recall of all N; held-out
#   perplexity (first 64 KiB of tinystories_val_head.txt) and capitals.jsonl
#   contains-recall without and with the memory; context, variant and neighbour
#   figures on the first 100 facts (neighbours: the first 50 capitals questions).
# Usage: MODEL=models/Qwen2.5-Coder-0.5B-Instruct.gguf bench/bench_tune_model.sh [N]
#   TUNE_ARGS adds options to mome tune; THREADS (default 2). Needs ../shared or
#   MOME_SHARED. Writes bench/out/tune-<model file name>/ and prints one line per figure.
set -eu
N=${1:-1000}
MOME=${MOME:-build/mome}
MODEL=${MODEL:-${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf}
SHARED=${MOME_SHARED:-../shared}
T=${THREADS:-2}
TUNE_ARGS=${TUNE_ARGS:-}
[ -f "$MODEL" ] || { echo "bench_tune_model: $MODEL absent (make model / make qwen)"; exit 1; }
[ -d "$SHARED/data" ] || { echo "bench_tune_model: $SHARED/data absent (set MOME_SHARED)"; exit 1; }
OUT=bench/out/tune-$(basename "$MODEL" .gguf); mkdir -p "$OUT"
export OMP_WAIT_POLICY=passive
head -n "$N" "$SHARED/data/facts/languages.jsonl" >"$OUT/facts.jsonl"
head -n 100 "$OUT/facts.jsonl" >"$OUT/facts100.jsonl"
head -n 50 "$SHARED/data/facts/capitals.jsonl" >"$OUT/neighbors.jsonl"
head -c 65536 "$SHARED/data/text/tinystories_val_head.txt" >"$OUT/heldout.txt"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u '+%F %T UTC'); load average $(cut -d' ' -f1 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "model: $MODEL; $N facts; threads $T; tune args: ${TUNE_ARGS:-(defaults)}"
# shellcheck disable=SC2086
/usr/bin/time -v $MOME tune -m "$MODEL" --facts "$OUT/facts.jsonl" -o "$OUT/mem.mome" -t "$T" $TUNE_ARGS 2>"$OUT/tune.log" ||
    { tail -3 "$OUT/tune.log"; exit 1; }
grep -E "^tune: [0-9]+/" "$OUT/tune.log"
grep -E "Maximum resident|Elapsed" "$OUT/tune.log"
echo "memory file: $(stat -c %s "$OUT/mem.mome") bytes"
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --facts "$OUT/facts.jsonl" --no-context --no-variants --json -t "$T" 2>/dev/null |
    tr -d '\n' | sed 's/^/recall of all facts: /'; echo
$MOME eval -m "$MODEL" --text "$OUT/heldout.txt" --facts "$SHARED/data/facts/capitals.jsonl" --no-context --no-variants --json -t "$T" 2>/dev/null |
    tr -d '\n' | sed 's/^/base, held-out + capitals: /'; echo
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --text "$OUT/heldout.txt" --facts "$SHARED/data/facts/capitals.jsonl" --no-context --no-variants --json -t "$T" 2>/dev/null |
    tr -d '\n' | sed 's/^/memory, held-out + capitals: /'; echo
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --facts "$OUT/facts100.jsonl" --neighbors "$OUT/neighbors.jsonl" --json -t "$T" 2>/dev/null |
    tr -d '\n' | sed 's/^/first 100 facts, contexts, variants, neighbours: /'; echo
