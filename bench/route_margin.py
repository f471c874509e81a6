#!/usr/bin/env python3
"""route_margin.py - replay a key-score threshold and a margin over the runner-up
on one `mome eval --outputs` run (issue 8: locality with many facts in memory).

A question the rule rejects is answered as without the memory: a neighbour is
then left alone, any other kind is missed. The route field's "second" (the next
best fact's key score) gives the margin score - second; its "rival" (the best
fact the question could also be asking about: another answer, a subject check
that does not fail; memory.h) the margin the engine applies with
`--route-margin M`: score - rival >= M, or score >= 0.98 (the stored question).
Run the eval without a margin (`--route-margin 0`), so that the answers of the
questions the rule would let through are there.

  python3 bench/route_margin.py OUTPUTS.jsonl [ZSRE.json] [--memory MEM.mome]

--memory: the memory evaluated, tuned with --route-margin; its facts' leads
(the smallest lead of the contexts the tuner made for them over their rivals) are replayed
as margins min(share x lead, cap) for several shares and caps.

ZSRE.json: the zsRE records evaluated; their `loc` questions ("nq question: "
removed) are counted as unrelated neighbours, every other neighbour as a
same-subject question (bench_generalization.sh's). Without it every neighbour
counts as "neighbor".
"""
import collections
import json
import math
import struct
import sys

SURE = 0.98  # memory.h MEM_MARGIN_SURE
args = sys.argv[1:]
mem_path = None
if "--memory" in args:
    i = args.index("--memory")
    mem_path = args[i + 1]
    del args[i:i + 2]
rows = [json.loads(l) for l in open(args[0], encoding="utf-8")]
loc = set()
if len(args) > 1:
    loc = set(x["loc"].replace("nq question: ", "") for x in json.load(open(args[1], encoding="utf-8")))


def gguf_f32_array(path, want):
    """The float32 array `want` among a GGUF file's key/values (None: absent)."""
    with open(path, "rb") as f:
        b = f.read(1 << 26)
    assert b[:4] == b"GGUF", path
    n_kv = struct.unpack_from("<Q", b, 16)[0]
    at = 24
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, at):
        if t == 8:
            return at + 8 + struct.unpack_from("<Q", b, at)[0]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, at)
            at += 12
            if et in size:
                return at + n * size[et]
            for _ in range(n):
                at = skip(et, at)
            return at
        return at + size[t]

    for _ in range(n_kv):
        kl = struct.unpack_from("<Q", b, at)[0]
        key = b[at + 8:at + 8 + kl].decode()
        at += 8 + kl
        t = struct.unpack_from("<I", b, at)[0]
        at += 4
        if key == want and t == 9:
            et, n = struct.unpack_from("<IQ", b, at)
            assert et == 6
            return list(struct.unpack_from("<%df" % n, b, at + 12))
        at = skip(t, at)
    return None


lead = gguf_f32_array(mem_path, "mome.fact_lead") if mem_path else None


def kind(r):
    if r["kind"] != "neighbor" or len(args) <= 1:
        return r["kind"]
    return "loc" if r["question"] in loc else "same-subject"


ORDER = ["recall", "context", "variant", "paraphrase", "neighbor", "loc", "same-subject"]
KINDS = [k for k in ORDER if any(kind(r) == k for r in rows)]


def replay(rule):
    kept, n = collections.Counter(), collections.Counter()
    for r in rows:
        k = kind(r)
        ro = r.get("route") or {}
        spoke = ro.get("fact") is not None
        second, rival = ro.get("second"), ro.get("rival")
        if not spoke or rule(ro["score"], second if second is not None else -9.0,
                             rival if rival is not None else -9.0, ro["best"]):
            good = r["exact"]
        else:
            good = r["kind"] == "neighbor"
        n[k] += 1
        kept[k] += good
    return [kept[k] / n[k] if n[k] else float("nan") for k in KINDS]


def line(name, rule):
    print("| %s | " % name + " | ".join("%.3f" % x for x in replay(rule)) + " |")


print("| rule | " + " | ".join(KINDS) + " |")
print("|---|" + "---:|" * len(KINDS))
for t in [0.55, 0.65, 0.75, 0.8, 0.85, 0.9]:
    line("score >= %.2f" % t, lambda s1, s2, r, f: s1 >= t)
for t in [0.55, 0.7, 0.75]:
    for m in [0.05, 0.08, 0.1, 0.15, 0.2]:
        line("score >= %.2f, margin >= %.2f" % (t, m), lambda s1, s2, r, f: s1 >= t and s1 - s2 >= m)
if any("rival" in (r.get("route") or {}) for r in rows):
    for t in [0.55, 0.7]:
        for m in [0.05, 0.08, 0.1, 0.12, 0.15, 0.2]:
            line("score >= %.2f, margin over the rival >= %.2f" % (t, m),
                 lambda s1, s2, r, f: s1 >= t and (s1 >= SURE or s1 - r >= m))
if lead:
    def need(f, share, cap):
        m = share * lead[f] if f < len(lead) and not math.isnan(lead[f]) else cap
        return min(m, cap)
    for share in [0.5, 0.7, 0.8, 0.9, 1.0]:
        for m in [0.1, 0.2, 0.3, 0.5]:
            line("score >= 0.55, margin min(%.1f x the fact's lead, %.2f)" % (share, m),
                 lambda s1, s2, r, f: s1 >= 0.55 and (s1 >= SURE or s1 - r >= need(f, share, m)))
