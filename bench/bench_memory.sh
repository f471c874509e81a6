#!/bin/sh
# bench_memory.sh - the memory-tuning targets of docs/BENCHMARKS.md, in one run:
#  1. the first N (1000) facts of languages.jsonl: time to 100% exact recall, recall after,
#     perplexity of the first 64 KiB of tinystories_val_head.txt before/after, accuracy on
#     capitals.jsonl before/after, peak RSS of tune, memory-file size;
#  2. MoME vs LoRA on the first 100 facts: time to 100% recall and perplexity change;
#  3. decode speed with and without a memory (N = 2^20 and 2^22).
# Usage: bench/bench_memory.sh [N_FACTS]   (needs ../shared or MOME_SHARED)
set -eu
N=${1:-1000}
MOME=build/mome
MODEL=${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
SHARED=${MOME_SHARED:-../shared}
OUT=bench/out/memory
mkdir -p "$OUT"
head -n "$N" "$SHARED/data/facts/languages.jsonl" >"$OUT/facts.jsonl"
head -n 100 "$SHARED/data/facts/languages.jsonl" >"$OUT/facts100.jsonl"
head -c 65536 "$SHARED/data/text/tinystories_val_head.txt" >"$OUT/heldout.txt"
CAP="$SHARED/data/facts/capitals.jsonl"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
echo "## 1. $N facts"
/usr/bin/time -v $MOME tune -m "$MODEL" --facts "$OUT/facts.jsonl" -o "$OUT/mem.mome" 2>"$OUT/tune.log" || { tail "$OUT/tune.log"; exit 1; }
grep -E "^tune: [0-9]+/" "$OUT/tune.log"
grep -E "Maximum resident|Elapsed" "$OUT/tune.log"
ls -l "$OUT/mem.mome" | awk '{print "memory file: " $5 " bytes"}'
$MOME eval -m "$MODEL" --facts "$OUT/facts.jsonl" --max-facts 100 --json 2>/dev/null | sed 's/^/base (first 100 facts): /'
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --facts "$OUT/facts.jsonl" --json 2>/dev/null | sed 's/^/with memory: /'
$MOME eval -m "$MODEL" --text "$OUT/heldout.txt" --facts "$CAP" --json 2>/dev/null | sed 's/^/base, held-out + capitals: /'
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --text "$OUT/heldout.txt" --facts "$CAP" --json 2>/dev/null | sed 's/^/memory, held-out + capitals: /'
echo "## 2. MoME vs LoRA, 100 facts"
$MOME tune -m "$MODEL" --facts "$OUT/facts100.jsonl" -o "$OUT/mem100.mome" 2>&1 | grep -E "^tune: [0-9]+/"
$MOME eval -m "$MODEL" --memory "$OUT/mem100.mome" --text "$OUT/heldout.txt" --json 2>/dev/null | sed 's/^/MoME held-out: /'
$MOME tune -m "$MODEL" --method lora --facts "$OUT/facts100.jsonl" -o "$OUT/lora100.gguf" --ppl-text "$OUT/heldout.txt" \
    --max-minutes "${LORA_MINUTES:-60}" 2>&1 | grep -E "^tune: "
echo "## 3. decode speed with a memory"
for L in 20 22; do
    $MOME tune -m "$MODEL" --facts "$OUT/facts100.jsonl" -o "$OUT/mem_n$L.mome" --experts-log2 $L 2>/dev/null
done
for r in 1 2 3; do
    for mem in none 20 22; do
        if [ $mem = none ]; then arg=""; else arg="--memory $OUT/mem_n$mem.mome"; fi
        printf 'tg128 memory=%s: ' $mem
        $MOME bench -m "$MODEL" -p 0 -n 128 -r 3 $arg | sed -n 's/^tg128 *//p'
    done
done
