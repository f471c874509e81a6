#!/bin/sh
# bench_editing.sh - issue 8's peer table: the same zsRE facts edited into the
# same SmolLM2-135M-Instruct weights by WISE and GRACE (EasyEdit's source, on
# the CPU) and by mome (`mome tune` + `mome eval --json`), scored with the same
# measures (bench/editing_peers.py says which): recall, paraphrase_recall,
# locality, EasyEdit's teacher-forced token accuracy, wall time.
#
#   bench/bench_editing.sh                 # 100 facts, all three methods
#   N=1000 METHODS="mome GRACE" bench/bench_editing.sh
#
# Knobs: N (facts, default 100), METHODS (default "mome WISE GRACE"),
# THREADS (torch threads for the peers and -t for mome, default 1: on a
# loaded 2-core machine two torch threads ran GRACE 3.5x slower than one),
# BUDGET_S (a peer stops editing after this many seconds and is scored on
# the facts edited so far; default 0: no limit),
# MOME (default build/peers/mome, made here with make B=build/peers), MOME_SHARED (default ../shared),
# MOME_TUNE_ARGS (options added to mome tune, e.g. "--verify-key none"; the
# result goes to mome-N.json either way, its settings column says which),
# EASYEDIT_GIT: a git directory of zjunlp/EasyEdit (for example the one the
# session tools' fetch brings) to take the source from; without it the source
# is cloned. EASYEDIT_REV: the commit (default below, the one measured).
#
# mome alone needs no Python packages (METHODS=mome). Creates, all under
# build/peers (ignored), idempotently, the peers' part only when a peer runs:
#   venv/                 torch, transformers, gguf and EasyEdit's few runtime
#                         deps, pinned (torch and transformers at EasyEdit's
#                         requirements.txt versions)
#   EasyEdit/             EasyEdit's source at EASYEDIT_REV (imported, never
#                         installed: the PyPI easyeditor predates WISE)
#   SmolLM2-135M-Instruct/ the GGUF dequantized to a transformers folder
#   zsre-N.json, mome-N.mome, {mome,WISE,GRACE}-N.json (one result each),
#   *.log, table-N.md
# The peers run at nice 10. Never part of make test / make demo.
set -eu
cd "$(dirname "$0")/.."
N=${N:-100}
METHODS=${METHODS:-mome WISE GRACE}
T=${THREADS:-1}
BUDGET_S=${BUDGET_S:-0}
SHARED=${MOME_SHARED:-../shared}
B=build/peers
MOME=${MOME:-$B/mome}
GGUF=${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
EASYEDIT_REV=${EASYEDIT_REV:-14cea8245f06715684592ab55184939b99d70784}
ZSRE=$SHARED/data/facts/editing/zsre_mend_train-1k.json
NQ=$SHARED/data/facts/NQ-open.dev.jsonl
log() { printf '[bench_editing] %s\n' "$*" >&2; }

if [ ! -f "$ZSRE" ] || [ ! -f "$NQ" ]; then
    log "skip: $SHARED is absent (needs $ZSRE and $NQ); set MOME_SHARED"
    exit 0
fi
mkdir -p $B
[ -f "$GGUF" ] || make model
case " $METHODS " in *" mome "*) make -s B=$B -j2 all $B/editing_tfacc ;; esac

FACTS=$B/zsre-$N.json
python3 bench/editing_peers.py facts --zsre "$ZSRE" --n "$N" --out $FACTS
case " $METHODS " in *" WISE "*|*" GRACE "*) PEERS=1 ;; *) PEERS=0 ;; esac

if [ $PEERS = 1 ]; then
# ---------------------------------------------------------------- venv
PY=$B/venv/bin/python
PINS="torch==2.9.1 transformers==4.57.1 gguf==0.19.0 numpy==2.2.6 PyYAML==6.0.2 tqdm==4.67.1
      scipy==1.15.3 sentencepiece==0.2.0 protobuf==5.29.5 accelerate==1.10.1 higher==0.2.1 scikit-learn==1.7.2"
if [ ! -f $B/venv/.pins ] || [ "$(cat $B/venv/.pins)" != "$PINS" ]; then
    log "installing $B/venv (torch pulls its CUDA libraries: a few GB)"
    [ -x $PY ] || python3 -m venv $B/venv
    $PY -m pip install -q --disable-pip-version-check $PINS
    echo "$PINS" >$B/venv/.pins
fi

# ---------------------------------------------------------------- EasyEdit
EE=$B/EasyEdit
if [ ! -f $EE/.rev ] || [ "$(cat $EE/.rev)" != "$EASYEDIT_REV" ]; then
    rm -rf $EE.tmp && mkdir -p $EE.tmp
    if [ -n "${EASYEDIT_GIT:-}" ]; then
        git --git-dir="$EASYEDIT_GIT" archive "$EASYEDIT_REV" easyeditor hparams requirements.txt | tar -x -C $EE.tmp
    else
        git clone -q https://github.com/zjunlp/EasyEdit $EE.tmp/repo
        git -C $EE.tmp/repo archive "$EASYEDIT_REV" easyeditor hparams requirements.txt | tar -x -C $EE.tmp
        rm -rf $EE.tmp/repo
    fi
    echo "$EASYEDIT_REV" >$EE.tmp/.rev
    rm -rf $EE && mv $EE.tmp $EE
fi

# ---------------------------------------------------------------- the model as transformers reads it
HF=$B/SmolLM2-135M-Instruct
[ -f $HF/config.json ] || $PY bench/editing_peers.py convert --gguf "$GGUF" --out $HF
fi

RESULTS=""
for m in $METHODS; do
    R=$B/$m-$N.json
    RESULTS="$RESULTS $R"
    case $m in
    mome)
        log "mome: tune $N facts"
        t0=$(date +%s.%N)
        /usr/bin/time -v $MOME tune -m "$GGUF" --facts $FACTS -o $B/mome-$N.mome -t $T ${MOME_TUNE_ARGS:-} 2>$B/mome-$N.tune.log \
            || { tail -3 $B/mome-$N.tune.log; exit 1; }
        t1=$(date +%s.%N)
        cpu=$(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' $B/mome-$N.tune.log)
        $MOME eval -m "$GGUF" --memory $B/mome-$N.mome --facts $FACTS --no-context --no-variants --json -t $T \
            --outputs $B/mome-$N.outputs.jsonl >$B/mome-$N.eval.json 2>$B/mome-$N.eval.log
        t2=$(date +%s.%N)
        python3 bench/editing_peers.py tfacc-in --facts $FACTS --n $N --out $B/tfacc-$N.in.jsonl
        THREADS=$T $B/editing_tfacc "$GGUF" $B/mome-$N.mome <$B/tfacc-$N.in.jsonl >$B/mome-$N.tfacc.jsonl
        python3 bench/editing_peers.py mome --facts $FACTS --n $N --eval-json $B/mome-$N.eval.json \
            --tfacc $B/mome-$N.tfacc.jsonl --outputs $B/mome-$N.outputs.jsonl --out $R \
            --edit-wall-s "$(awk "BEGIN{print $t1 - $t0}")" --edit-cpu-s "$cpu" --eval-wall-s "$(awk "BEGIN{print $t2 - $t1}")" \
            --settings "mome tune ${MOME_TUNE_ARGS:-defaults}, -t $T" ;;
    WISE|GRACE)
        log "$m: edit $N facts one after another (log: $B/$m-$N.log)"
        OMP_NUM_THREADS=$T nice -n 10 $PY bench/editing_peers.py peer --method $m --model $HF --easyedit $EE \
            --hparams bench/editing_hparams/$m-smollm2.yaml --facts $FACTS --negatives "$NQ" --n $N \
            --threads $T --batch $([ $m = GRACE ] && echo 16 || echo 1) --budget-s $BUDGET_S --out $R >$B/$m-$N.log 2>&1 || { log "$m failed: see $B/$m-$N.log"; tail -5 $B/$m-$N.log; } ;;
    *) log "unknown method $m"; exit 2 ;;
    esac
done
python3 bench/editing_peers.py table $RESULTS | tee $B/table-$N.md
