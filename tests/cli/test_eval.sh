#!/bin/sh
# test_eval.sh - mome eval as a user meets it: --help names every measure,
# one-line errors, the --json fields (each in [0,1], locality -1 without a
# memory), the --outputs file (valid JSON lines, one per question asked), and
# locality with a tuned memory: unrelated neighbour questions answered byte
# for byte as without it; the subject check leaves other subjects' questions
# to the model and the lower-case keys find lower-case questions. Needs the
# default model (SmolLM2); the model parts are skipped when it is absent.
set -u
. tests/cli_common.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if $MOME eval --help >"$tmp/h" 2>&1 && grep -q "usage: mome eval" "$tmp/h"; then
    miss=""
    for w in recall context_recall variant_recall paraphrase_recall locality "--system TEXT" "--neighbors FILE" \
             "--outputs FILE" "--no-context" "--no-variants" "default 24" "You are a helpful assistant." \
             "Hi! Can you help me with a few questions?"; do
        grep -q -e "$w" "$tmp/h" || miss="$miss '$w'"
    done
    if [ -z "$miss" ]; then ok "eval --help documents the measures and options"; else bad "eval --help lacks$miss"; fi
else bad "eval --help"; fi

check_err() { # name, expected substring, command...
    name=$1; want=$2; shift 2
    "$@" >"$tmp/o" 2>"$tmp/e"; rc=$?
    lines=$(wc -l <"$tmp/e")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -e "$want" "$tmp/e"; then ok "$name"
    else bad "$name (rc=$rc, stderr: $(head -c 300 "$tmp/e"))"; fi
}
check_err "error empty --system" "non-empty system prompt" $MOME eval --system "" --facts x.jsonl
check_err "error --max-new 0" "expects an integer" $MOME eval --max-new 0 --facts x.jsonl

if [ ! -f "$MODEL" ]; then
    sk "SmolLM2 tests ($MODEL absent)"
    finish
fi
if command -v python3 >/dev/null 2>&1; then PY=python3; else PY=""; fi

printf '[\n  {"src": "q", "alt": "a"},\n  {"src": "r",\n   "alt": 7}\n]\n' >"$tmp/bad.json"
check_err "error in a JSON array names the element's line and field" "bad.json:3: field 'alt'" \
    $MOME eval -m "$MODEL" --facts "$tmp/bad.json"
check_err "error unwritable --outputs" "cannot write the outputs file" \
    $MOME eval -m "$MODEL" --facts tests/data/facts/basic.jsonl --outputs "$tmp/no/dir/o.jsonl"

# the base model: every fact measure in [0,1], locality not measured (-1)
field() { sed -n "s/.*\"$1\": \\(-\\{0,1\\}[0-9.]*\\).*/\\1/p" "$2"; }
in01() { [ -n "$1" ] && awk "BEGIN { exit !($1 >= 0 && $1 <= 1) }"; }
$MOME eval -m "$MODEL" --facts tests/data/facts/basic.jsonl --max-facts 2 --max-new 8 -t 2 --json \
    --system "Answer briefly." --outputs "$tmp/o.jsonl" >"$tmp/j" 2>"$tmp/e"
rc=$?
allok=1; vals=""
for f in recall contains_recall hallucination_rate context_recall variant_recall paraphrase_recall; do
    v=$(field $f "$tmp/j"); vals="$vals $f=$v"
    in01 "$v" || allok=0
done
if [ $rc -eq 0 ] && [ $allok = 1 ] && [ "$(field locality "$tmp/j")" = "-1.000000" ]; then
    ok "eval --json: measures in [0,1], locality -1 without a memory"
else bad "eval --json (rc=$rc):$vals locality=$(field locality "$tmp/j") $(tail -1 "$tmp/e")"; fi
# 2 facts: recall 2, paraphrases 2 (Hamlet's), variants 3 + 3, contexts 2 x (3 built-in + 1 --system + exchange)
nc=$(field n_context "$tmp/j"); nv=$(field n_variants "$tmp/j"); np=$(field n_paraphrases "$tmp/j")
want=$((2 + np + nv + nc))
lines=$(wc -l <"$tmp/o.jsonl")
if [ "$nc" = 10 ] && [ "$nv" = 6 ] && [ "$np" = 2 ] && [ "$lines" -eq "$want" ]; then
    ok "--outputs: $lines lines (2 recall + $np paraphrases + $nv variants + $nc contexts)"
else bad "--outputs: $lines lines, n_context '$nc' n_variants '$nv' n_paraphrases '$np'"; fi
if [ -n "$PY" ]; then
    if $PY - "$tmp/o.jsonl" <<'EOF'
import json, sys
kinds = {"recall", "paraphrase", "variant", "context", "neighbor"}
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    assert o["kind"] in kinds and isinstance(o["exact"], bool) and isinstance(o["answer"], str)
    assert o["base"] is None and isinstance(o["fact"], int) and "system" in o and "question" in o
EOF
    then ok "--outputs: valid JSON lines with the documented keys"; else bad "--outputs: invalid JSON lines"; fi
else sk "--outputs JSON check (python3 absent)"; fi

# swap_rate: an answer that is another fact's answer. The base model's own answer to a question is
# made the expected answer of a second fact, so the first fact's answer is a swap, found by index.
if [ -n "$PY" ]; then
    printf '{"question": "What is the capital of France?", "answer": "zzz-none"}\n' >"$tmp/s1.jsonl"
    $MOME eval -m "$MODEL" --facts "$tmp/s1.jsonl" --no-context --no-variants --max-new 8 -t 2 \
        --outputs "$tmp/s1.out" --json >/dev/null 2>&1
    $PY - "$tmp/s1.out" "$tmp/s2.jsonl" <<'EOF'
import json, sys
ans = json.loads(open(sys.argv[1]).readline())["answer"]
with open(sys.argv[2], "w") as f:
    f.write(json.dumps({"question": "What is the capital of France?", "answer": "zzz-none"}) + "\n")
    f.write(json.dumps({"question": "Name a city.", "answer": ans}) + "\n")
EOF
    $MOME eval -m "$MODEL" --facts "$tmp/s2.jsonl" --no-context --no-variants --max-new 8 -t 2 \
        --outputs "$tmp/s2.out" --json >"$tmp/j" 2>"$tmp/e"
    sw=$(field n_swapped "$tmp/j"); sr=$(field swap_rate "$tmp/j")
    if [ "$sw" -ge 1 ] 2>/dev/null && in01 "$sr" && $PY -c "
import json, sys
o = json.loads(open(sys.argv[1]).readline())
assert o['kind'] == 'recall' and o['fact'] == 0 and o['other_fact'] == 1 and not o['exact'], o
" "$tmp/s2.out"; then ok "swap_rate: an answer that is another fact's answer counts ($sw swapped, rate $sr, other_fact 1)"
    else bad "swap_rate: n_swapped '$sw' swap_rate '$sr' $(head -c 300 "$tmp/s2.out")"; fi
else sk "swap_rate test (python3 absent)"; fi

# a memory: the trained facts recalled, unrelated neighbour questions unchanged
# (projects_a's one template would give each fact its project as subject; the
# tests of subject-less facts below tune it with --infer-subjects 0, and those
# of the key score's own decisions without the relation check, --verify-key none)
A=tests/data/facts/projects_a.jsonl
if $MOME tune -m "$MODEL" --facts $A -o "$tmp/a.mome" -t 2 --infer-subjects 0 --verify-key none 2>"$tmp/log"; then
    $MOME eval -m "$MODEL" --memory "$tmp/a.mome" --facts $A --max-facts 2 --no-context --no-variants -t 2 \
        --neighbors tests/data/facts/basic.jsonl --outputs "$tmp/m.jsonl" --json >"$tmp/j" 2>"$tmp/e"
    rc=$?
    r=$(field recall "$tmp/j"); l=$(field locality "$tmp/j"); nn=$(field n_neighbors "$tmp/j")
    if [ $rc -eq 0 ] && [ "$r" = "1.000000" ] && [ "$l" = "1.000000" ] && [ "$nn" = 4 ]; then
        ok "memory: recall $r, locality $l over $nn unrelated questions"
    else bad "memory (rc=$rc): recall '$r' locality '$l' n_neighbors '$nn' $(tail -1 "$tmp/e")"; fi
    [ "$(field context_recall "$tmp/j")" = "-1.000000" ] && [ "$(field variant_recall "$tmp/j")" = "-1.000000" ] &&
        ok "--no-context --no-variants: -1" || bad "--no-context --no-variants: $(cat "$tmp/j")"
    check_err "error missing --neighbors file" "nope.jsonl: cannot open" \
        $MOME eval -m "$MODEL" --memory "$tmp/a.mome" --facts $A --neighbors "$tmp/nope.jsonl"
    if [ -n "$PY" ]; then
        if $PY - "$tmp/m.jsonl" <<'EOF'
import json, sys
n = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
nb = [o for o in n if o["kind"] == "neighbor"]
assert len(nb) == 4 and all(o["fact"] is None and isinstance(o["base"], str) for o in nb)
assert all(o["exact"] == (o["answer"] == o["base"]) for o in nb)
assert len(n) == 2 + 1 + 4  # 2 recall, Falcon's paraphrase, 4 neighbours
# every question asked with the memory carries its decision; a recalled fact was its own
for o in n:
    r = o["route"]
    assert set(r) == {"best", "score", "second", "rival", "margin", "gate", "cover", "verify", "subject", "fact"}
    assert r["cover"] is None and r["subject"] is None and r["verify"] is None
    assert r["second"] is not None and r["second"] <= r["score"], o  # the runner-up of a 10-fact memory
    assert r["rival"] is not None and r["rival"] <= r["second"] and r["margin"] == 0, o  # answers all differ: the rival is the runner-up; no margin
    if o["kind"] == "recall":
        assert r["best"] == o["fact"] and r["fact"] == o["fact"] and r["score"] > 0.5, o
    if o["kind"] == "neighbor" and r["fact"] is None:
        assert o["exact"], o
EOF
        then ok "--outputs with a memory: neighbour lines carry the base answer, every line the memory's route"
        else bad "--outputs with a memory"; fi
    fi
    # batched answers (default --parallel 16) equal one question at a time, byte for byte, every measure
    $MOME eval -m "$MODEL" --memory "$tmp/a.mome" --facts $A --max-facts 6 -t 2 --neighbors tests/data/facts/basic.jsonl \
        --outputs "$tmp/p16.jsonl" --json 2>/dev/null | sed 's/, "seconds.*//' >"$tmp/p16"
    $MOME eval -m "$MODEL" --memory "$tmp/a.mome" --facts $A --max-facts 6 -t 2 --neighbors tests/data/facts/basic.jsonl \
        --outputs "$tmp/p1.jsonl" --json --parallel 1 2>/dev/null | sed 's/, "seconds.*//' >"$tmp/p1"
    if [ -s "$tmp/p1.jsonl" ] && [ "$(wc -l <"$tmp/p1.jsonl")" -gt 40 ] && cmp -s "$tmp/p1.jsonl" "$tmp/p16.jsonl" &&
        grep -q '"recall": 1.000000' "$tmp/p1" && cmp -s "$tmp/p1" "$tmp/p16"; then
        ok "--parallel 16 (batched) and --parallel 1 give identical answers and measures ($(wc -l <"$tmp/p1.jsonl") questions)"
    else bad "--parallel: batched and one-at-a-time differ: $(diff "$tmp/p1" "$tmp/p16" | head -3)"; fi
else bad "tune for the locality test: $(tail -2 "$tmp/log")"; fi

# the relation check: a memory tuned with --verify reads each question's state
# alone, so every context and variant keeps its fact (their states are the
# trained question's or one the tuner kept); every line records the check
# (these facts name no subject, so they need max(--verify, --verify-unnamed))
if $MOME tune -m "$MODEL" --facts $A -o "$tmp/v.mome" --verify 0.6 --verify-unnamed 0.95 --infer-subjects 0 -t 2 2>"$tmp/log"; then
    $MOME eval -m "$MODEL" --memory "$tmp/v.mome" --facts $A --max-facts 3 -t 2 --outputs "$tmp/v.jsonl" --json \
        >"$tmp/j" 2>"$tmp/e"
    rc=$?
    r=$(field recall "$tmp/j"); cr=$(field context_recall "$tmp/j"); vr=$(field variant_recall "$tmp/j")
    if [ $rc -eq 0 ] && [ "$r" = "1.000000" ] && [ "$cr" = "1.000000" ] && [ "$vr" = "1.000000" ]; then
        ok "--verify 0.6: recall $r, context_recall $cr, variant_recall $vr"
    else bad "--verify (rc=$rc): recall '$r' context '$cr' variants '$vr' $(tail -1 "$tmp/e")"; fi
    if [ -n "$PY" ]; then
        if $PY - "$tmp/v.jsonl" <<'EOF'
import json, sys
n = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
asked = [o for o in n if o["kind"] in ("recall", "context", "variant")]
assert len(asked) == 3 * 8, len(asked)
assert all(o["route"]["verify"] is not None and o["route"]["verify"] > 0.999 and o["route"]["fact"] == o["fact"] for o in asked), asked
EOF
        then ok "--verify: every trained question, context and variant verifies at > 0.999 and selects its fact"
        else bad "--verify outputs"; fi
    fi
    # the meaning key (default) reads block 12L/15 of the model's L, in its wrapper
    nl=$($MOME info "$MODEL" 2>/dev/null | awk '$1 ~ /\.block_count$/ {print $3; exit}')
    vl=$($MOME info "$tmp/v.mome" 2>/dev/null | awk '$1 == "mome.verify_layer" {print $3}')
    if [ -n "$nl" ] && [ "$vl" = "$((12 * nl / 15))" ] && $MOME info "$tmp/v.mome" 2>/dev/null | grep -q "mome.verify_open"
    then ok "--verify: the meaning key at block $vl of $nl"
    else bad "--verify: block '$vl' of '$nl', or no wrapper (mome.verify_open)"; fi
    $MOME eval -m "$MODEL" --memory "$tmp/v.mome" --facts $A --max-facts 3 --no-context --no-variants -t 2 --verify 1 \
        --json >"$tmp/j" 2>"$tmp/e"
    r=$(field recall "$tmp/j")
    # threshold 1: the stored states are f16, so not even the trained question reaches it
    case "$r" in 0.*) ok "eval --verify 1 overrides the memory's threshold (recall $r)";;
        *) bad "eval --verify 1: '$r' $(tail -1 "$tmp/e")";; esac
    # the unnamed facts' own threshold: written by tune, overridden by eval; -1 still checks nothing
    vu=$($MOME info "$tmp/v.mome" 2>/dev/null | awk '$1 == "mome.verify_tau_unnamed" {print $3}')
    r1=$($MOME eval -m "$MODEL" --memory "$tmp/v.mome" --facts $A --max-facts 3 --no-context --no-variants -t 2 \
        --verify-unnamed 1 --json 2>/dev/null | sed -n 's/.*"recall": \([0-9.]*\).*/\1/p')
    r2=$($MOME eval -m "$MODEL" --memory "$tmp/v.mome" --facts $A --max-facts 3 --no-context --no-variants -t 2 \
        --verify -1 --verify-unnamed 1 --json 2>/dev/null | sed -n 's/.*"recall": \([0-9.]*\).*/\1/p')
    vu2=$(awk -v v="$vu" 'BEGIN { if (v != "" && v - 0.95 < 1e-6 && 0.95 - v < 1e-6) print "0.95" }')
    case "$vu2:$r1:$r2" in 0.95:0.*:1.000000) ok "--verify-unnamed: saved ($vu), eval's 1 silences these facts (recall $r1), --verify -1 checks nothing ($r2)";;
        *) bad "--verify-unnamed: saved '$vu', recall at 1 '$r1', at --verify -1 '$r2'";; esac
else bad "tune --verify: $(tail -2 "$tmp/log")"; fi

# the relation key: the mean state over the question's words that are not
# its subject's, at block 7L/15, read in place when the question opens the
# context; every trained question, context and variant keeps its fact
if $MOME tune -m "$MODEL" --facts $A -o "$tmp/vm.mome" --verify 0.6 --verify-key relation -t 2 2>"$tmp/log"; then
    $MOME eval -m "$MODEL" --memory "$tmp/vm.mome" --facts $A --max-facts 3 -t 2 --outputs "$tmp/vm.jsonl" --json \
        >"$tmp/j" 2>"$tmp/e"
    rc=$?
    r=$(field recall "$tmp/j"); cr=$(field context_recall "$tmp/j"); vr=$(field variant_recall "$tmp/j")
    nl=$($MOME info "$MODEL" 2>/dev/null | awk '$1 ~ /\.block_count$/ {print $3; exit}')
    vl=$($MOME info "$tmp/vm.mome" 2>/dev/null | awk '$1 == "mome.verify_layer" {print $3}')
    if [ $rc -eq 0 ] && [ "$r" = "1.000000" ] && [ "$cr" = "1.000000" ] && [ "$vr" = "1.000000" ] &&
        [ -n "$nl" ] && [ "$vl" = "$((7 * nl / 15))" ] &&
        [ "$($MOME info "$tmp/vm.mome" 2>/dev/null | awk '$1 == "mome.verify_relation" {print $3}')" = 1 ] &&
        { [ -z "$PY" ] || $PY -c '
import json, sys
n = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
asked = [o for o in n if o["kind"] in ("recall", "context", "variant")]
assert len(asked) == 3 * 8 and all(o["route"]["verify"] > 0.999 and o["route"]["fact"] == o["fact"] for o in asked), asked' "$tmp/vm.jsonl"; }
    then ok "--verify-key relation: block $vl of $nl, recall $r, context_recall $cr, variant_recall $vr, each verifies at > 0.999"
    else bad "--verify-key relation (rc=$rc): block '$vl' of '$nl', recall '$r' context '$cr' variants '$vr' $(tail -1 "$tmp/e")"; fi
else bad "tune --verify-key relation: $(tail -2 "$tmp/log")"; fi

# the relation check with two facts per subject (interleaved, so the tuner's
# per-subject centre is shared across the file): every trained question,
# context and variant selects its own fact, never its sibling's
printf '%s\n' '{"question": "What is the ISO 3166-1 alpha-3 code of Peru?", "answer": "PER", "subject": "Peru"}' \
    '{"question": "What is the ISO 3166-1 alpha-3 code of Japan?", "answer": "JPN", "subject": "Japan"}' \
    '{"question": "What is the ISO 3166-1 numeric code of Peru?", "answer": "604", "subject": "Peru"}' \
    '{"question": "What is the ISO 3166-1 numeric code of Japan?", "answer": "392", "subject": "Japan"}' >"$tmp/two.jsonl"
if $MOME tune -m "$MODEL" --facts "$tmp/two.jsonl" -o "$tmp/two.mome" --verify 0.5 --route-threshold 0.2 -t 2 2>"$tmp/log" &&
    $MOME eval -m "$MODEL" --memory "$tmp/two.mome" --facts "$tmp/two.jsonl" -t 2 --outputs "$tmp/two.jsonl.out" --json \
        >"$tmp/j" 2>"$tmp/e"; then
    r=$(field recall "$tmp/j"); cr=$(field context_recall "$tmp/j"); vr=$(field variant_recall "$tmp/j"); sw=$(field swap_rate "$tmp/j")
    if [ "$r" = "1.000000" ] && [ "$cr" = "1.000000" ] && [ "$vr" = "1.000000" ] && [ "$sw" = "0.000000" ] &&
        { [ -z "$PY" ] || $PY -c '
import json, sys
n = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(n) == 4 * 8 and all(o["route"]["fact"] == o["fact"] and o["route"]["verify"] > 0.999 for o in n), n' "$tmp/two.jsonl.out"; }
    then ok "--verify, two facts per subject: every question, context and variant selects its own fact (no swaps)"
    else bad "--verify, two facts per subject: recall '$r' context '$cr' variants '$vr' swaps '$sw'"; fi
else bad "tune/eval --verify, two facts per subject: $(tail -2 "$tmp/log") $(tail -1 "$tmp/e" 2>/dev/null)"; fi

# the margin over the rival: a memory tuned with --route-margin 2 gives each
# fact its own margin, half its contexts' lead (below 2, not all
# alike); every question is answered exactly when its fact reaches the
# threshold and leads its rival by that margin (or is its stored question),
# the eval contexts and variants included; eval --route-margin caps it, 0 turns it off,
# --route-margin-share 1 doubles it, and at 0.98 every context and variant still answers
if $MOME tune -m "$MODEL" --facts $A -o "$tmp/am.mome" -t 2 --route-margin 2 --infer-subjects 0 --verify-key none 2>"$tmp/log"; then
    for mg in own 0.05 0 share1 share0.98; do
        o=""; [ $mg != own ] && o="--route-margin $mg"; case $mg in share*) o="--route-margin-share ${mg#share}" ;; esac
        $MOME eval -m "$MODEL" --memory "$tmp/am.mome" --facts $A --max-facts 4 -t 2 $o \
            --neighbors tests/data/facts/basic.jsonl --outputs "$tmp/am$mg.jsonl" --json >"$tmp/jm$mg" 2>"$tmp/e" ||
            bad "eval --route-margin $mg: $(tail -1 "$tmp/e")"
    done
    if [ -n "$PY" ] && out=$($PY - "$tmp" 2>&1 <<'EOF'
import json, sys
d = sys.argv[1]
rd = lambda p: [json.loads(l) for l in open(p, encoding="utf-8")]
own, cap, off, s1 = rd(d + "/amown.jsonl"), rd(d + "/am0.05.jsonl"), rd(d + "/am0.jsonl"), rd(d + "/amshare1.jsonl")
j = json.loads(open(d + "/jmown").read())
assert j["recall"] == 1 and j["context_recall"] == 1 and j["variant_recall"] == 1 and j["locality"] == 1, j
# each lead is the smallest over every context the tuner makes, trained or not
# (lower case, no final mark, doubled spaces): at 98% of it the eval's other
# contexts and variants still pass (measured from the trained contexts alone,
# a system prompt and a variant fail here)
j98 = json.loads(open(d + "/jmshare0.98").read())
assert j98["context_recall"] == 1 and j98["variant_recall"] == 1, j98
need = {}
for o in own:
    r = o["route"]
    if r["fact"] is not None or o["kind"] != "neighbor":
        need.setdefault(r["best"], r["margin"])
        assert need[r["best"]] == r["margin"], o  # one margin per fact
    rival = r["rival"] if r["rival"] is not None else -9
    assert (r["fact"] is not None) == (r["score"] >= 0.55 and (r["score"] >= 0.98 or r["score"] - rival >= r["margin"])), o
ms = [need[f] for f in sorted(need)]
assert all(0 < m < 2 for m in ms) and len(set(ms)) > 1, ms  # calibrated: below the cap, not all alike
assert all(abs(o["route"]["margin"] - min(need.get(o["route"]["best"], 2), 0.05)) < 1e-6 for o in cap if o["kind"] != "neighbor"), cap
assert all(o["route"]["margin"] == 0 for o in off), off
# share 1 (default 0.5): each fact needs twice its margin (below the cap of 2)
assert all(abs(o["route"]["margin"] - 2 * need[o["route"]["best"]]) < 1e-6 for o in s1 if o["route"]["best"] in need), s1
print(" ".join("%.3f" % m for m in ms))
EOF
    ); then ok "--route-margin: facts calibrated to margins $out (cap 2); every decision follows them; eval caps and lifts them"
    elif [ -n "$PY" ]; then bad "--route-margin: $out"; fi
else bad "tune --route-margin 2: $(tail -2 "$tmp/log")"; fi

# the subject check and the lower-case keys: facts that name their subject,
# asked about other countries in the same words (left to the model) and in
# lower case (answered); without the check the same memory answers the
# other countries with a tuned country's code (the key score alone decides the
# rest: no relation check)
C=tests/data/facts/countries_subject.jsonl; O=tests/data/facts/countries_other.jsonl
for chk in 1 0; do
    if ! $MOME tune -m "$MODEL" --facts $C -o "$tmp/c$chk.mome" -t 2 --route-threshold 0.2 --subject-check $chk \
        --verify-key none 2>"$tmp/log"; then
        bad "tune --subject-check $chk: $(tail -2 "$tmp/log")"; continue
    fi
    $MOME eval -m "$MODEL" --memory "$tmp/c$chk.mome" --facts $C --no-context -t 2 --neighbors $O \
        --outputs "$tmp/c$chk.jsonl" --json >"$tmp/j$chk" 2>"$tmp/e" || bad "eval --subject-check $chk: $(tail -1 "$tmp/e")"
done
if [ -n "$PY" ] && [ -s "$tmp/c1.jsonl" ] && [ -s "$tmp/c0.jsonl" ]; then
    if out=$($PY - "$tmp/c1.jsonl" "$tmp/c0.jsonl" "$tmp/j1" <<'EOF'
import json, sys
on = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
off = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
j = json.loads(open(sys.argv[3]).read())
nb_on = [o for o in on if o["kind"] == "neighbor"]
nb_off = [o for o in off if o["kind"] == "neighbor"]
assert len(nb_on) == 4 and all(o["route"]["subject"] is False and o["route"]["fact"] is None and o["exact"] for o in nb_on), nb_on
assert all(o["route"]["subject"] is True for o in on if o["kind"] == "recall")
assert j["recall"] == 1 and j["variant_recall"] == 1 and j["locality"] == 1, j
low = [o for o in on if o.get("variant") == "lower"]
assert len(low) == 4 and all(o["exact"] and o["route"]["score"] > 0.99 for o in low), low
assert all(o["route"]["subject"] is None for o in off)
fired = sum(o["route"]["fact"] is not None for o in nb_off)
assert fired > 0, "without the check no other country was answered by the memory"
print(fired)
EOF
); then ok "subject check: 4 other countries left to the model (without it $out of 4 got a tuned code); lower case found by its own key"
    else bad "subject check / lower-case keys: $out"; fi
else sk "subject check test (python3 or the tune absent)"; fi

# subjects inferred from the file's template (--infer-subjects 3, the
# default): the same facts without their "subject" fields keep the same
# subjects, and the other countries are left to the model as with the named
# ones; --infer-subjects 0 infers none
sed 's/, "subject": "[^"]*"//' $C >"$tmp/cns.jsonl"
if $MOME tune -m "$MODEL" --facts "$tmp/cns.jsonl" -o "$tmp/c0i.mome" -t 2 --route-threshold 0.2 --infer-subjects 0 2>"$tmp/log0" &&
    ! grep -q "keep a subject" "$tmp/log0"; then ok "--infer-subjects 0: no subject inferred"
else bad "--infer-subjects 0: $(grep "keep a subject" "$tmp/log0") $(tail -1 "$tmp/log0")"; fi
if $MOME tune -m "$MODEL" --facts "$tmp/cns.jsonl" -o "$tmp/ci.mome" -t 2 --route-threshold 0.2 2>"$tmp/log" &&
    grep -q "4 fact(s) keep a subject, 4 of them inferred" "$tmp/log" &&
    $MOME eval -m "$MODEL" --memory "$tmp/ci.mome" --facts "$tmp/cns.jsonl" --no-context --no-variants -t 2 --neighbors $O \
        --outputs "$tmp/ci.jsonl" --json >"$tmp/ji" 2>"$tmp/e"; then
    if [ -z "$PY" ]; then sk "--infer-subjects outputs (python3 absent)"
    elif $PY - "$tmp/ci.jsonl" "$tmp/ji" <<'EOF'
import json, sys
o = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
j = json.loads(open(sys.argv[2]).read())
nb = [x for x in o if x["kind"] == "neighbor"]
assert len(nb) == 4 and all(x["route"]["subject"] is False and x["route"]["fact"] is None for x in nb), nb
assert all(x["route"]["subject"] is True for x in o if x["kind"] == "recall") and j["recall"] == 1 and j["locality"] == 1, j
# the relation check is a new memory's default too: every question carries its reading
assert all(isinstance(x["route"]["verify"], float) for x in o if x["route"]["best"] is not None), o
EOF
    then ok "subjects inferred by default: the 4 from the template, the 4 other countries left to the model; the relation check on"
    else bad "--infer-subjects outputs"; fi
else bad "tune/eval --infer-subjects: $(grep "keep a subject" "$tmp/log") $(tail -1 "$tmp/log") $(tail -1 "$tmp/e" 2>/dev/null)"; fi
# --verify X asks for the check, --verify-key none for none: one error, no file
$MOME tune -m "$MODEL" --facts "$tmp/cns.jsonl" -o "$tmp/vn.mome" --verify 0.5 --verify-key none 2>"$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "verify 0.5 asks for the relation check and --verify-key none for none" "$tmp/e" && [ ! -f "$tmp/vn.mome" ] &&
    ok "tune --verify with --verify-key none: an error naming both" || bad "tune --verify --verify-key none (rc=$rc): $(tail -1 "$tmp/e")"

finish
