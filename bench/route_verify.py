#!/usr/bin/env python3
"""route_verify.py - the relation check's thresholds replayed on one eval.

For a memory tuned with the check's states kept (`mome tune ... --verify -1`)
and evaluated with the check open (`mome eval ... --verify -1 --outputs
OUT.jsonl`, every other rule as the memory has it: threshold, own margins),
each line's `route` holds the fact the eval selected and that fact's `verify`
and `score`. A rule "score >= S and verify >= T" answers a question with the
memory when the eval selected a fact and both pass (the stored question itself,
score >= 0.98, passes any S), else as without it: a trained question then
counts as missed, a neighbour as left alone. A fact whose question names no
subject (`route.subject` null) needs verify >= max(T, U) instead, the
memory's --verify-unnamed (memory.h, mem_verify_tau); T = -1 checks nothing.
Prints one row per (S, T, U); U = -1 is the rule before --verify-unnamed.

    python3 bench/route_verify.py OUT.jsonl [--unnamed -1,0.9]
"""
import argparse
import json


def kind(o):
    if o["kind"] == "neighbor":
        return "loc" if o["fact"] is not None else "neighbours (file)"
    return o["kind"]


def outcome(o, S, T, U):
    r = o["route"]
    t = max(T, U) if r.get("subject") is None and T > -1 else T
    fire = r.get("fact") is not None and r["verify"] is not None and r["verify"] >= t and \
        (r["score"] >= S or r["score"] >= 0.98)
    if o["kind"] == "neighbor":
        return 1 if not fire else int(o["answer"] == o["base"])
    return int(fire and o["exact"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outputs")
    ap.add_argument("--unnamed", default="-1,0.9", help="thresholds of facts without a subject, comma-separated")
    a = ap.parse_args()
    us = [float(u) for u in a.unnamed.split(",")]
    groups = {}
    for line in open(a.outputs, encoding="utf-8"):
        o = json.loads(line)
        groups.setdefault(kind(o), []).append(o)
    ks = sorted(groups)
    print("| score >= | verify >= | unnamed >= | " + " | ".join("%s (%d)" % (k, len(groups[k])) for k in ks) + " |")
    print("|---:|---:|---:|" + "---:|" * len(ks))
    for S in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8):
        for T in (-1, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95):
            for U in us:
                print("| %g | %g | %g | " % (S, T, U) + " | ".join(
                    "%.3f" % (sum(outcome(o, S, T, U) for o in groups[k]) / len(groups[k])) for k in ks) + " |")


if __name__ == "__main__":
    main()
