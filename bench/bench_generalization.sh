#!/bin/sh
# bench_generalization.sh - recall that survives how people ask (issue 8):
# tune a fact set, then `mome eval` reports recall, context_recall,
# variant_recall, paraphrase_recall and locality on its neighbours.
#   SETS="countries zsre counterfact"  which sets (default all)
#   N=100                             facts per set
#   EVAL_N=100                        facts evaluated (the rest only tuned)
# Sets: countries = the demo's ISO 3166 alpha-3 facts with 2 paraphrases each;
# neighbours (tools/make_demo_facts.py --neighbors): the alpha-3 question of
# every other country (other subjects, the same relation), the capital and the
# numeric code of the same countries (same subjects, other relations) and 12
# unrelated questions. zsre / counterfact:
# ../shared/data/facts/editing (rephrase = paraphrase, loc / locality_prompt =
# neighbours); for zsre also 2 other questions about each fact's subject
# (templates the tuner's relation gate never uses). TUNE_ARGS are passed to
# mome tune (e.g. "--gate-questions 4 --gate-margin 0.25").
# MODEL=PATH runs it on another model (e.g. models/Qwen2.5-Coder-0.5B-Instruct.gguf),
# writing into build/bench_gen-<file name>.
# Writes build/bench_gen/<set>.{mome,log,json,outputs.jsonl}.
set -eu
MOME=${MOME:-build/mome}
DEFAULT_MODEL=${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL=${MODEL:-$DEFAULT_MODEL}
SHARED=${MOME_SHARED:-../shared}
N=${N:-100}; EVAL_N=${EVAL_N:-$N}; T=${THREADS:-2}
OUT=build/bench_gen
[ "$MODEL" = "$DEFAULT_MODEL" ] || OUT=build/bench_gen-$(basename "$MODEL" .gguf)
mkdir -p $OUT
for set in ${SETS:-countries zsre counterfact}; do
    case $set in
    countries)
        python3 tools/make_demo_facts.py --kind alpha3 --limit "$N" --out $OUT/countries.jsonl \
            --neighbors $OUT/countries_neighbors.jsonl 2>/dev/null
        FACTS=$OUT/countries.jsonl; NB="--neighbors $OUT/countries_neighbors.jsonl" ;;
    zsre|counterfact)
        src=$SHARED/data/facts/editing/zsre_mend_train-1k.json
        [ $set = counterfact ] && src=$SHARED/data/facts/editing/counterfact-edit-1k.json
        if [ ! -f "$src" ]; then echo "skip $set: $src absent"; continue; fi
        python3 -c "import json,sys; d=[x for x in json.load(open(sys.argv[1])) if x.get('alt', x.get('target_new'))]; json.dump(d[:int(sys.argv[2])], open(sys.argv[3],'w'))" "$src" "$N" $OUT/$set.json
        FACTS=$OUT/$set.json; NB=""
        if [ $set = zsre ]; then
            python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
T = ["Who owns %s?", "What is the official website of %s?", "Where did %s die?",
     "What award did %s receive?", "Who is married to %s?", "What is %s made of?"]
with open(out + "/zsre_subject_neighbors.jsonl", "w") as f:
    for i, x in enumerate(json.load(open(out + "/zsre.json"))):
        for t in T[i % 3::3][:2]:
            f.write(json.dumps({"question": t % x["subject"], "answer": "-"}) + "\n")
PY
            NB="--neighbors $OUT/zsre_subject_neighbors.jsonl"
        fi ;;
    esac
    echo "== $set: $N facts"
    /usr/bin/time -v $MOME tune -m "$MODEL" --facts $FACTS -o $OUT/$set.mome -t $T ${TUNE_ARGS:-} 2>$OUT/$set.log || true
    grep -E "^tune: [0-9]+/|Maximum resident|Elapsed" $OUT/$set.log
    $MOME eval -m "$MODEL" --memory $OUT/$set.mome --facts $FACTS $NB --max-facts "$EVAL_N" --json -t $T \
        --outputs $OUT/$set.outputs.jsonl 2>/dev/null | tee $OUT/$set.json.txt
    ls -l $OUT/$set.mome | awk '{print "memory file: " $5 " bytes"}'
done
