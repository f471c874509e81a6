#!/bin/sh
# test_experiment.sh - the experiment harness on tiny cases (issue 11): `mome experiment threshold`
# on 3 facts and 2 snapshots, `mome experiment random-labels` on 2 questions measured every epoch
# with short limits, editing, capacity and frozen-vs-unfrozen on a few facts;
# checks the files each writes, their row counts and columns, the consistency of the per-fact
# fields, and that bad names and options are refused with exit status 2.
set -u
. tests/cli_common.sh
if [ ! -f "$MODEL" ]; then echo "skip all: $MODEL absent (make model)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
if [ ! -f "$SHARED/data/facts/languages.jsonl" ]; then
    echo "skip all: $SHARED/data absent (the experiments read the shared data)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive

$MOME experiment nosuch >/dev/null 2>"$tmp/e1"; rc=$?
if [ $rc -eq 2 ] && grep -q "unknown experiment 'nosuch'" "$tmp/e1"; then ok "unknown experiment: exit 2, named"; else bad "unknown experiment: exit $rc"; fi
$MOME experiment threshold --steps 3,2 -o "$tmp/x" >/dev/null 2>"$tmp/e2"; rc=$?
if [ $rc -eq 2 ] && grep -q "increasing" "$tmp/e2"; then ok "threshold: decreasing --steps refused"; else bad "--steps 3,2: exit $rc"; fi

T="$tmp/th"
if $MOME experiment threshold -o "$T" --n-facts 3 --steps 2,5 -t 2 2>"$tmp/log"; then ok "threshold runs"; else bad "threshold: $(tail -3 "$tmp/log")"; fi
for f in results.csv bins_max.csv bins_mean.csv plot.gp summary.md facts.jsonl; do
    [ -s "$T/$f" ] && ok "threshold wrote $f" || bad "threshold: no $f"
done
if command -v gnuplot >/dev/null 2>&1; then
    if grep -q "<svg" "$T/threshold.svg" 2>/dev/null && grep -q "(threshold.svg)" "$T/summary.md"; then ok "threshold.svg drawn and embedded"
    else bad "threshold.svg missing or not embedded"; fi
else sk "gnuplot absent: no plot to check"; fi
# 3 facts x (step 0 + up to 2 snapshots); every row has 13 fields; an exact answer is never a near miss;
# a fact whose every answer token's loss is below ln 2 is stated exactly (the sufficient bound)
rows=$(($(wc -l <"$T/results.csv") - 1))
if [ $rows -eq 6 ] || [ $rows -eq 9 ]; then ok "results.csv: $rows rows (3 facts per snapshot)"; else bad "results.csv: $rows rows"; fi
chk=$(python3 -c "
import csv,sys,math
r=list(csv.DictReader(open(sys.argv[1])))
bad=[x for x in r if len(x)!=13 or (x['greedy_exact']=='1' and x['near_miss']=='1')
     or (float(x['max_loss'])<math.log(2) and x['greedy_exact']!='1')
     or float(x['max_loss'])<float(x['mean_loss']) or (x['first_wrong']=='-1')!=(x['first_wrong_rank']=='0')]
print(len(bad), sorted(set(x['step'] for x in r))[0])" "$T/results.csv")
if [ "$chk" = "0 0" ]; then ok "results.csv fields consistent, step 0 = no memory"; else bad "results.csv: $chk"; fi
grep -q "^- command: \`mome experiment threshold" "$T/summary.md" && grep -q "wall time" "$T/summary.md" &&
    grep -q "^- machine: " "$T/summary.md" && ok "summary.md: command, wall time, machine" || bad "summary.md header"

# each experiment takes only the common options it uses, and its --help lists those
$MOME experiment threshold --text-bytes 100 -o "$tmp/x" >/dev/null 2>"$tmp/e_opt"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown option or missing value '--text-bytes'" "$tmp/e_opt" &&
    ok "threshold: --text-bytes refused (it reads no held-out text)" || bad "threshold --text-bytes: exit $rc"
$MOME experiment threshold --help >"$tmp/h1"; $MOME experiment random-labels --help >"$tmp/h2"
if grep -q -- "--seed" "$tmp/h1" && ! grep -q -- "--text" "$tmp/h1" && grep -q -- "--text-bytes" "$tmp/h2"; then
    ok "--help lists the common options each experiment takes"; else bad "--help: common options"; fi

R="$tmp/rl"
if $MOME experiment random-labels -o "$R" --n-facts 2 --mome-epochs 4,8,12,16,20,24 --ppl-every 1 --mome-minutes 5 --lora-minutes 0.05 \
    --text-bytes 1024 -t 2 2>"$tmp/log2"; then ok "random-labels runs"; else bad "random-labels: $(tail -3 "$tmp/log2")"; fi
n=$(grep -c '' "$R/finals.csv" 2>/dev/null || echo 0)
[ "$n" -eq 5 ] && ok "finals.csv: 4 runs" || bad "finals.csv: $n lines"
for f in curve_mome_true.csv curve_mome_random.csv curve_lora_true.csv curve_lora_random.csv ppl_mome_true.csv \
    ppl_lora_random.csv plot.gp summary.md; do
    [ -s "$R/$f" ] && ok "random-labels wrote $f" || bad "random-labels: no $f"
done
# per run, a row per measured epoch from 0 with recall and perplexity; MoME: every 4th epoch and its last, the
# memory leaves plain text bit-identical at every one and both sets end memorized and recalled; LoRA: every epoch
# (0, 1, 2, ...) with loss and recall, its perplexity moves once the adapters train; results.csv holds every row
chk=$(python3 -c "
import csv,sys
d=sys.argv[1]
err=[]
allr=list(csv.DictReader(open(d+'/results.csv')))
for m in ('mome','lora'):
    for l in ('true','random'):
        r=list(csv.DictReader(open(d+'/curve_%s_%s.csv'%(m,l))))
        e=[int(x['epoch']) for x in r]
        ok=len(e)>=2 and (e==list(range(len(e))) if m=='lora' else (e[:-1]==list(range(0,4*len(e)-4,4)) and 0<e[-1]-e[-2]<=4))
        if not ok: err.append('epochs %s %s %s'%(m,l,e)); continue
        if any(x['perplexity']=='' or not 0<=int(x['exact'])<=2 or x['n_facts']!='2' for x in r): err.append('fields %s %s'%(m,l))
        if len([x for x in allr if x['method']==m and x['labels']==l])!=len(r): err.append('results.csv %s %s'%(m,l))
        if m=='mome':
            if len(set(x['perplexity'] for x in r))!=1: err.append('mome perplexity changed')
            if r[-1]['memorized']!='2' or r[-1]['exact']!='2' or r[0]['mean_loss']!='': err.append('mome end '+l)
        else:
            if any(x['mean_loss']=='' for x in r): err.append('lora loss')
            if r[-1]['perplexity']==r[0]['perplexity']: err.append('lora perplexity unchanged')
print(' '.join(err) or 'ok')" "$R" 2>&1)
[ "$chk" = ok ] && ok "random-labels: a point per epoch, MoME perplexity bit-identical, LoRA's moves" || bad "random-labels: $chk"
[ "$(head -c 2 "$R/random.jsonl")" = '{"' ] && python3 -c "
import json,sys,re
a=[json.loads(l)['answer'] for l in open(sys.argv[1])]
sys.exit(0 if len(a)==2 and all(re.fullmatch('[A-Z0-9]{32}',x) for x in a) else 1)" "$R/random.jsonl" &&
    ok "random answers: 32 characters of [A-Z0-9]" || bad "random.jsonl"
grep -q "^- started: .*CPU time" "$R/summary.md" && ok "summary.md states the CPU time" || bad "random-labels summary head"
# editing (experiment 6): 2 batches of 2 zsRE facts added to one memory
Z="$SHARED/data/facts/editing/zsre_mend_train-1k.json"
if [ ! -f "$Z" ]; then sk "editing: $Z absent"
else
    E="$tmp/ed"
    $MOME experiment editing --batches 0 -o "$E" >/dev/null 2>"$tmp/e3"; rc=$?
    [ $rc -eq 2 ] && grep -q "must be positive" "$tmp/e3" && ok "editing: --batches 0 refused" || bad "editing --batches 0: exit $rc"
    if $MOME experiment editing -o "$E" --batches 2 --batch-size 2 --text-bytes 512 -t 2 2>"$tmp/log3"; then ok "editing runs"
    else bad "editing: $(tail -3 "$tmp/log3")"; fi
    for f in results.csv batches.csv by_batch.csv plot.gp summary.md; do
        [ -s "$E/$f" ] && ok "editing wrote $f" || bad "editing: no $f"
    done
    # 2 batch rows (2 and 4 facts), 2 + 4 per-fact rows; each batch's recall is the share of its rows exact; the
    # first batch's recall after batch 2 is by_batch's; perplexity only after the last batch; the file grows
    chk=$(python3 -c "
import csv,sys
d=sys.argv[1]
b=list(csv.DictReader(open(d+'/batches.csv'))); r=list(csv.DictReader(open(d+'/results.csv')))
o=[x for x in csv.reader(open(d+'/by_batch.csv')) if x and not x[0].startswith('#')][1:]
err=[]
if [x['n_facts'] for x in b]!=['2','4'] or len(r)!=6: err.append('rows')
for x in b:
    e=[int(y['exact']) for y in r if y['after_batch']==x['batch']]
    if len(e)!=int(x['n_facts']) or abs(sum(e)/len(e)-float(x['recall']))>1e-6: err.append('recall '+x['batch'])
    if not 0<=float(x['paraphrase_recall'])<=1 or not 0<=float(x['locality'])<=1: err.append('shares')
f2=[float(y[2]) for y in o if y[0]=='2' and y[1]=='1']
if len(o)!=3 or not f2 or abs(f2[0]-float(b[1]['recall_first_batch']))>1e-6: err.append('by_batch')
if b[0]['perplexity']!='' or not float(b[1]['perplexity'])>1: err.append('perplexity')
if not int(b[1]['file_bytes'])>int(b[0]['file_bytes'])>0: err.append('size')
print(' '.join(err) or 'ok')" "$E")
    [ "$chk" = ok ] && ok "editing: batches.csv consistent with results.csv and by_batch.csv" || bad "editing: $chk"
    # the memory leaves plain text bit-identical: perplexity after the last batch = without a memory
    p=$(python3 -c "import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[-1]['perplexity'])" "$E/batches.csv" 2>/dev/null)
    grep -q "Without a memory: held-out perplexity $(printf %.4f "${p:-0}")" "$E/summary.md" &&
        ok "editing: perplexity with the memory = without" || bad "editing: perplexity $p vs summary"
fi

# capacity (experiment 3): 3 and 6 random facts, one selection setting
C="$tmp/cap"
$MOME experiment capacity --sizes 6,3 -o "$C" >/dev/null 2>"$tmp/e4"; rc=$?
[ $rc -eq 2 ] && grep -q "increasing" "$tmp/e4" && ok "capacity: decreasing --sizes refused" || bad "capacity --sizes 6,3: exit $rc"
$MOME experiment capacity --w-pool 2 -o "$C" >/dev/null 2>"$tmp/e5"; rc=$?
[ $rc -eq 2 ] && ok "capacity: --w-pool 2 refused" || bad "capacity --w-pool 2: exit $rc"
if $MOME experiment capacity -o "$C" --sizes 3,6 --w-pool 0.7 --look-alikes 4 --n-real 3 --text-bytes 512 -t 2 2>"$tmp/log4"; then
    ok "capacity runs"; else bad "capacity: $(tail -3 "$tmp/log4")"; fi
for f in results.csv sizes.csv selection.csv tau.csv plot.gp summary.md look_alikes.jsonl; do
    [ -s "$C/$f" ] && ok "capacity wrote $f" || bad "capacity: no $f"
done
# per size (3 + 4 + 3) selection rows; a trained question that selects its own fact scores 1 (its own keys); the
# look-alikes are not trained questions; selection recall at the default w_pool = mome eval's recall
chk=$(python3 -c "
import csv,sys,json
d=sys.argv[1]
r=list(csv.DictReader(open(d+'/results.csv'))); s=list(csv.DictReader(open(d+'/sizes.csv')))
sel=list(csv.DictReader(open(d+'/selection.csv')))
err=[]
if [x['n_facts'] for x in s]!=['3','6'] or len(r)!=(3+7)+(6+7): err.append('rows')
if any(x['own']=='1' and float(x['score'])<0.999 for x in r): err.append('own score')
tq=set(json.loads(l)['question'] for l in open(d+'/work/facts_6.jsonl'))
lq=[json.loads(l)['question'] for l in open(d+'/look_alikes.jsonl')]
if len(lq)!=4 or tq&set(lq): err.append('look-alikes')
for x,y in zip(s,sel):
    if abs(float(x['recall'])-float(y['recall']))>1e-9: err.append('recall '+x['n_facts'])
    if x['memorized']!=x['n_facts']: err.append('memorized')
print(' '.join(err) or 'ok')" "$C")
[ "$chk" = ok ] && ok "capacity: selection rows consistent with mome eval" || bad "capacity: $chk"
grep -q "^- command: \`mome experiment capacity" "$C/summary.md" && grep -q "N and k map onto memory version 2" "$C/summary.md" &&
    ok "capacity: summary states the command and the N/k mapping" || bad "capacity summary"
rm -f "$C/capacity.svg"
if $MOME experiment capacity -o "$C" --sizes 3,6 --w-pool 0.7 --replot 2>"$tmp/log5" && grep -q "set xtics (3, 6)" "$C/plot.gp"; then
    if command -v gnuplot >/dev/null 2>&1; then grep -q "<svg" "$C/capacity.svg" && ok "capacity --replot redraws" || bad "capacity --replot: no svg"
    else ok "capacity --replot rewrites plot.gp"; fi
else bad "capacity --replot: $(tail -2 "$tmp/log5")"; fi

# frozen-vs-unfrozen (experiment 5): 1 fact, 2 capitals, MoME to the end, one step of LoRA and of full fine-tuning
F="$tmp/fz"
head -2 "$SHARED/data/facts/capitals.jsonl" >"$tmp/cap2.jsonl"
$MOME experiment frozen-vs-unfrozen --full-minutes 0 -o "$F" >/dev/null 2>"$tmp/e6"; rc=$?
[ $rc -eq 2 ] && grep -q "must be" "$tmp/e6" && ok "frozen-vs-unfrozen: --full-minutes 0 refused" || bad "frozen-vs-unfrozen --full-minutes 0: exit $rc"
if $MOME experiment frozen-vs-unfrozen -o "$F" --n-facts 1 --capitals "$tmp/cap2.jsonl" --text-bytes 512 --max-new 8 \
    --mome-minutes 1 --lora-minutes 0.01 --full-minutes 0.01 -t 2 2>"$tmp/log6"; then ok "frozen-vs-unfrozen runs"
else bad "frozen-vs-unfrozen: $(tail -3 "$tmp/log6")"; fi
for f in results.csv curve_mome.csv curve_lora.csv curve_full.csv plot.gp summary.md; do
    [ -s "$F/$f" ] && ok "frozen-vs-unfrozen wrote $f" || bad "frozen-vs-unfrozen: no $f"
done
# one row per method; MoME memorized its fact, the engine recalls it, plain text bit-identical; LoRA and full
# stopped by their caps after one step each, both measured from the same untrained f32 file; each curve ends
# with the tuner's final count; the capitals' answers are kept per model, the 540 MB f32 model files removed
chk=$(python3 -c "
import csv,sys
d=sys.argv[1]
r={x['method']:x for x in csv.DictReader(open(d+'/results.csv'))}
err=[]
if sorted(r)!=['full','lora','mome']: err.append('methods')
else:
    m,l,f=r['mome'],r['lora'],r['full']
    if m['memorized']!='1' or float(m['recall_after'])!=1 or m['ppl_before']!=m['ppl_after']: err.append('mome')
    if l['steps']!='1' or f['steps']!='1': err.append('steps')
    if l['ppl_before']!=f['ppl_before'] or l['capitals_contains_before']!=f['capitals_contains_before']: err.append('before')
    if l['ppl_after']==l['ppl_before'] or f['ppl_after']==f['ppl_before']: err.append('unchanged weights')
    for k in r:
        if not 0<=float(r[k]['capitals_short_before'])<=1 or not 0<=float(r[k]['capitals_short_after'])<=1: err.append('short '+k)
        if sum(1 for _ in open(d+'/work/capitals_'+k+'.jsonl'))!=2: err.append('answers '+k)
        c=list(csv.DictReader(open(d+'/curve_'+k+'.csv')))
        if not c or c[-1]['phase']!='done' or c[-1]['memorized']!=r[k]['memorized']: err.append('curve '+k)
print(' '.join(err) or 'ok')" "$F" 2>&1)
[ "$chk" = ok ] && ok "frozen-vs-unfrozen: results.csv and curves consistent" || bad "frozen-vs-unfrozen: $chk"
ls "$F"/work/*.gguf >/dev/null 2>&1 && bad "frozen-vs-unfrozen: f32 model files left in work/" || ok "frozen-vs-unfrozen: f32 model files removed"
grep -q "^- command: \`mome experiment frozen-vs-unfrozen" "$F/summary.md" && grep -q "Reading" "$F/summary.md" &&
    ok "frozen-vs-unfrozen: summary.md" || bad "frozen-vs-unfrozen: summary.md"
# topk (experiment 4): 3 zsRE facts, K 1 and 2, both training modes
Z="$SHARED/data/facts/editing/zsre_mend_train-1k.json"
K="$tmp/topk"
$MOME experiment topk --top-k 2,1 -o "$K" >/dev/null 2>"$tmp/e7"; rc=$?
[ $rc -eq 2 ] && grep -q "increasing" "$tmp/e7" && ok "topk: decreasing --top-k refused" || bad "topk --top-k 2,1: exit $rc"
if [ ! -f "$Z" ]; then sk "topk: $Z absent"
else
    if $MOME experiment topk -o "$K" --n-facts 3 --top-k 1,2 --max-minutes 2 -t 2 2>"$tmp/log7"; then ok "topk runs"
    else bad "topk: $(tail -3 "$tmp/log7")"; fi
    for f in runs.csv runs_own.csv runs_all.csv answers.csv plot.gp summary.md; do
        [ -s "$K/$f" ] && ok "topk wrote $f" || bad "topk: no $f"
    done
    # K = 1 once, K = 2 per mode; K = 1 mixes one fact; the per-mode files hold K = 1 too; every fact memorized
    # and recalled (the tuner verified it through its mixture, the engine answers with the file's K); answers.csv
    # holds each run's fact answers and agrees with its recall
    chk=$(python3 -c "
import csv,sys
d=sys.argv[1]
r=list(csv.DictReader(open(d+'/runs.csv')))
a=list(csv.DictReader(open(d+'/answers.csv')))
err=[]
if [(x['mode'],x['k']) for x in r]!=[('own','1'),('own','2'),('all','2')]: err.append('runs')
for m in ('own','all'):
    if [x['k'] for x in csv.DictReader(open(d+'/runs_'+m+'.csv'))]!=['1','2']: err.append('runs_'+m)
for x in r:
    if x['memorized']!=x['n_facts'] or float(x['recall'])!=1: err.append('recall '+x['mode']+x['k'])
    ex=[y for y in a if y['mode']==x['mode'] and y['k']==x['k']]
    if len(ex)!=3 or abs(sum(int(y['exact']) for y in ex)/3-float(x['recall']))>1e-6: err.append('answers '+x['mode']+x['k'])
if float(r[0]['mix_tuner'])!=1 or float(r[0]['mix_engine_trained'])!=1: err.append('k1 mix')
if float(r[1]['mix_tuner'])!=2: err.append('k2 mix')
if float(r[0]['own_weight_trained'])!=1 or not 0.5<float(r[1]['own_weight_trained'])<1: err.append('own weight')
print(' '.join(err) or 'ok')" "$K" 2>&1)
    [ "$chk" = ok ] && ok "topk: runs consistent (K = 1 one fact, K = 2 two, all recalled)" || bad "topk: $chk"
    grep -q "^- command: \`mome experiment topk" "$K/summary.md" && grep -q "Reading" "$K/summary.md" &&
        ok "topk: summary.md" || bad "topk: summary.md"
fi
finish
