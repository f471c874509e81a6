#!/bin/sh
# bench_memory.sh - the memory-tuning targets of docs/BENCHMARKS.md, in one run:
#  1. the first N (1000) facts of languages.jsonl: time to 100% exact recall, recall after,
#     perplexity of the first 64 KiB of tinystories_val_head.txt before/after, accuracy on
#     capitals.jsonl before/after, peak RSS of tune, memory-file size;
#  2. MoME vs LoRA on the first 100 facts: time to 100% recall and perplexity change;
#  3. decode speed with and without a memory (N = 2^20 and 2^22).
#  4. 10,000 facts (languages.jsonl + the first NQ-open.dev.jsonl questions, first answer
#     trained): time to >= 99.9% recall; resumable (re-run the script to continue).
# Usage: bench/bench_memory.sh [N_FACTS]   (needs ../shared or MOME_SHARED)
#   MODEL=PATH runs it on another model (e.g. models/Qwen2.5-Coder-0.5B-Instruct.gguf from
#   `make qwen`), with its results in bench/out/memory-<file name>;
#   SECTIONS="1 2 3" picks sections (default "1 2 3"; 4 takes about an hour here);
#   ROUNDS=5 sets the interleaved rounds of section 3; TUNE_ARGS adds options to the
#   memory tunes of sections 1 and 4 (e.g. TUNE_ARGS="--augment 0").
set -eu
N=${1:-1000}
SECTIONS=${SECTIONS:-1 2 3}
ROUNDS=${ROUNDS:-5}
TUNE_ARGS=${TUNE_ARGS:-}
has() { case " $SECTIONS " in *" $1 "*) return 0 ;; esac; return 1; }
MOME=build/mome
DEFAULT_MODEL=${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL=${MODEL:-$DEFAULT_MODEL}
SHARED=${MOME_SHARED:-../shared}
OUT=bench/out/memory
[ "$MODEL" = "$DEFAULT_MODEL" ] || OUT=bench/out/memory-$(basename "$MODEL" .gguf)
[ -f "$MODEL" ] || { echo "bench_memory: $MODEL absent (make model / make qwen)"; exit 1; }
mkdir -p "$OUT"
head -n "$N" "$SHARED/data/facts/languages.jsonl" >"$OUT/facts.jsonl"
head -n 100 "$SHARED/data/facts/languages.jsonl" >"$OUT/facts100.jsonl"
head -c 65536 "$SHARED/data/text/tinystories_val_head.txt" >"$OUT/heldout.txt"
CAP="$SHARED/data/facts/capitals.jsonl"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F); model $MODEL; load average $(cut -d' ' -f1 /proc/loadavg)"
if has 1; then
echo "## 1. $N facts"
/usr/bin/time -v $MOME tune -m "$MODEL" --facts "$OUT/facts.jsonl" -o "$OUT/mem.mome" $TUNE_ARGS 2>"$OUT/tune.log" || { tail "$OUT/tune.log"; exit 1; }
grep -E "^tune: [0-9]+/" "$OUT/tune.log"
grep -E "Maximum resident|Elapsed" "$OUT/tune.log"
ls -l "$OUT/mem.mome" | awk '{print "memory file: " $5 " bytes"}'
$MOME eval -m "$MODEL" --facts "$OUT/facts.jsonl" --max-facts 100 --json 2>/dev/null | sed 's/^/base (first 100 facts): /'
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --facts "$OUT/facts.jsonl" --json 2>/dev/null | sed 's/^/with memory: /'
$MOME eval -m "$MODEL" --text "$OUT/heldout.txt" --facts "$CAP" --json 2>/dev/null | sed 's/^/base, held-out + capitals: /'
$MOME eval -m "$MODEL" --memory "$OUT/mem.mome" --text "$OUT/heldout.txt" --facts "$CAP" --json 2>/dev/null | sed 's/^/memory, held-out + capitals: /'
fi
if has 2; then
echo "## 2. MoME vs LoRA, 100 facts"
$MOME tune -m "$MODEL" --facts "$OUT/facts100.jsonl" -o "$OUT/mem100.mome" 2>&1 | grep -E "^tune: [0-9]+/"
$MOME eval -m "$MODEL" --memory "$OUT/mem100.mome" --text "$OUT/heldout.txt" --json 2>/dev/null | sed 's/^/MoME held-out: /'
$MOME tune -m "$MODEL" --method lora --facts "$OUT/facts100.jsonl" -o "$OUT/lora100.gguf" --ppl-text "$OUT/heldout.txt" \
    --max-minutes "${LORA_MINUTES:-60}" 2>&1 | grep -E "^tune: "
fi
if has 3; then
echo "## 3. decode speed with a memory (tg128, 2 threads; rounds interleave the configurations)"
[ -f "$OUT/mem100.mome" ] || $MOME tune -m "$MODEL" --facts "$OUT/facts100.jsonl" -o "$OUT/mem100.mome" 2>/dev/null
: >"$OUT/tg.txt"
# 100: the 100-fact memory; 1k: section 1's 1,000-fact memory, if present. `mome bench` decodes
# plain tokens (no user turn), so this is the memory's cost on text far from every fact.
CONFIGS="none 100"
[ -f "$OUT/mem.mome" ] && CONFIGS="$CONFIGS 1k"
# 10k: section 4's 10,000-fact memory (several banks), if present
[ -f "$OUT/mem10k.mome" ] && CONFIGS="$CONFIGS 10k"
r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    for mem in $CONFIGS; do
        case $mem in none) arg="" ;; 1k) arg="--memory $OUT/mem.mome" ;; 10k) arg="--memory $OUT/mem10k.mome" ;;
            *) arg="--memory $OUT/mem$mem.mome" ;; esac
        v=$($MOME bench -m "$MODEL" -p 0 -n 128 -r 3 $arg | sed -n 's/^tg128 *\([0-9.]*\).*/\1/p')
        echo "round $r memory=$mem tg128 $v tok/s"
        echo "$mem $v" >>"$OUT/tg.txt"
    done
done
med() { grep "^$1 " "$OUT/tg.txt" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
b=$(med none)
for mem in $CONFIGS; do
    [ $mem = none ] && continue
    v=$(med $mem)
    echo "median of $ROUNDS rounds: none $b, memory $mem: $v tok/s: ratio $(echo "$v $b" | awk '{printf "%.4f (%+.2f%%)", $1/$2, 100*($1/$2-1)}')"
done
fi
if has 4; then
echo "## 4. 10,000 facts"
NQ=$((10000 - $(wc -l <"$SHARED/data/facts/languages.jsonl")))
{ cat "$SHARED/data/facts/languages.jsonl"; head -n "$NQ" "$SHARED/data/facts/NQ-open.dev.jsonl"; } >"$OUT/facts10k.jsonl"
if [ -f "$OUT/mem10k.mome.ckpt" ]; then resume=--resume; else resume=; fi
/usr/bin/time -v $MOME tune -m "$MODEL" --facts "$OUT/facts10k.jsonl" -o "$OUT/mem10k.mome" --on-conflict first $TUNE_ARGS $resume \
    2>"$OUT/tune10k.log" || { tail "$OUT/tune10k.log"; exit 1; }
grep -E "^tune: [0-9]+/" "$OUT/tune10k.log"
grep -E "Maximum resident|Elapsed" "$OUT/tune10k.log"
ls -l "$OUT/mem10k.mome" | awk '{print "memory file: " $5 " bytes"}'
$MOME eval -m "$MODEL" --memory "$OUT/mem10k.mome" --facts "$OUT/facts10k.jsonl" --text "$OUT/heldout.txt" --json 2>/dev/null | sed 's/^/with memory: /'
fi
