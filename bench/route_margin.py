#!/usr/bin/env python3
"""route_margin.py - replay a key-score threshold and a margin over the runner-up
on one `mome eval --outputs` run (issue 8: locality with many facts in memory).

A question the rule rejects is answered as without the memory: a neighbour is
then left alone, any other kind is missed. The route field's "second" (the next
best fact's key score) gives the margin score - second.

  python3 bench/route_margin.py OUTPUTS.jsonl ZSRE.json

ZSRE.json: the zsRE records evaluated; their `loc` questions ("nq question: "
removed) are counted as unrelated neighbours, every other neighbour as a
same-subject question (bench_generalization.sh's).
"""
import collections
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
loc = set(x["loc"].replace("nq question: ", "") for x in json.load(open(sys.argv[2], encoding="utf-8")))
KINDS = ["recall", "paraphrase", "loc", "same-subject"]


def kind(r):
    if r["kind"] != "neighbor":
        return r["kind"]
    return "loc" if r["question"] in loc else "same-subject"


def replay(rule):
    kept, n = collections.Counter(), collections.Counter()
    for r in rows:
        k = kind(r)
        if k not in KINDS:
            continue
        ro = r.get("route") or {}
        spoke = ro.get("fact") is not None
        second = ro.get("second")
        if not spoke or rule(ro["score"], second if second is not None else -9.0):
            good = r["exact"]
        else:
            good = r["kind"] == "neighbor"
        n[k] += 1
        kept[k] += good
    return [kept[k] / n[k] if n[k] else float("nan") for k in KINDS]


print("| rule | " + " | ".join(KINDS) + " |")
print("|---|" + "---:|" * len(KINDS))
for t in [0.55, 0.65, 0.75, 0.8, 0.85, 0.9]:
    print("| score >= %.2f | " % t + " | ".join("%.3f" % x for x in replay(lambda s1, s2: s1 >= t)) + " |")
for t in [0.55, 0.7, 0.75]:
    for m in [0.05, 0.08, 0.1, 0.15, 0.2]:
        print("| score >= %.2f, margin >= %.2f | " % (t, m) +
              " | ".join("%.3f" % x for x in replay(lambda s1, s2: s1 >= t and s1 - s2 >= m)) + " |")
