#!/usr/bin/env python3
"""route_tradeoff.py - what each firing rule of the memory would give, from one eval run.

The memory answers a question when its best fact's key score reaches the
threshold (tau), the relation gate is >= 0, with the wording check the
cover reaches its threshold, and the question names the fact's subject (facts
that keep one). `mome eval --outputs` records that decision for every
question (the "route" field: best fact, score, gate, cover, subject). Run eval
once with the thresholds lowered so that the memory answers every question
whose gate and subject check pass (the rules replayed keep both):

    build/mome eval -m M --memory MEM.mome --facts F --neighbors N \\
        --route-threshold -1 --cover -1 --outputs forced.jsonl

(with --verify -1 too for a memory tuned with the relation check, whose
value each line then records), and this script replays other rules on those answers: a question the rule
rejects is answered as without the memory (a trained question then counts as
missed, a neighbour as left alone), one it accepts as in the forced run. So one
eval gives the whole trade-off between rewordings found and neighbours left
alone, for rules on the score alone, the cover alone, both thresholds,
score + a * cover and, where the lines hold it, the relation check (verify
alone, with a score or cover threshold, and verify + a * score).

Output: one row per rule of the score-only and cover-only sweeps, then the
Pareto frontier over every rule tried (paraphrase recall against the lowest
locality of the two neighbour kinds). The frontier ranks rules by those two
only: read each row's context and variant columns for what else it costs. Kinds: recall, paraphrase, variant_*,
context_*, neighbors of the facts (zsRE loc, ...) and the neighbour file's.
"""
import json
import sys


def kind_of(o):
    k = o["kind"]
    if k == "neighbor":
        return "nb_file" if o["fact"] is None else "nb_facts"
    if k == "variant":
        return "var_" + o["variant"]
    if k == "context":
        return "ctx_" + o["context"]
    return k


def load(path):
    groups = {}
    for line in open(path, encoding="utf-8"):
        o = json.loads(line)
        groups.setdefault(kind_of(o), []).append(o)
    return groups


def outcome(o, fire):
    if o["kind"] == "neighbor":
        return 1 if not fire else int(o["answer"] == o["base"])
    return int(fire and o["exact"])


def fires(o, rule):
    r = o.get("route")
    if not r or r["best"] is None or r["fact"] is None:
        return False
    inf = float("inf")
    v = r.get("verify")
    return rule(r["score"], r["cover"] if r["cover"] is not None else inf, v if v is not None else inf)


def measure(groups, rule):
    return {k: sum(outcome(o, fires(o, rule)) for o in v) / len(v) for k, v in groups.items()}


def frange(a, b, step):
    return [a + i * step for i in range(int(round((b - a) / step)) + 1)]


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    groups = load(sys.argv[1])
    kinds = sorted(groups)
    if "paraphrase" not in groups:
        sys.exit("%s: no paraphrase questions: the frontier needs rewordings" % sys.argv[1])
    nbk = [k for k in ("nb_facts", "nb_file") if k in groups]
    verify = any((o.get("route") or {}).get("verify") is not None for v in groups.values() for o in v)

    def row(name, m):
        print("%-26s" % name + "".join("%10.3f" % m[k] for k in kinds))

    print("%-26s" % "rule" + "".join("%10s" % k[:9] for k in kinds))
    print("%-26s" % "(counts)" + "".join("%10d" % len(groups[k]) for k in kinds))
    rules = []
    for t in frange(0.3, 0.8, 0.05):
        rules.append(("score >= %.2f" % t, lambda s, c, v, t=t: s >= t))
    for K in frange(0.0, 0.3, 0.025):
        rules.append(("cover >= %.3f" % K, lambda s, c, v, K=K: c >= K))
    if verify:
        for V in frange(0.2, 0.8, 0.05):
            rules.append(("verify >= %.2f" % V, lambda s, c, v, V=V: v >= V))
    for name, rule in rules:
        row(name, measure(groups, rule))
    for t in frange(0.3, 0.9, 0.025):
        for K in frange(-0.1, 0.3, 0.0125):
            rules.append(("score >= %.3f, cover >= %.4f" % (t, K), lambda s, c, v, t=t, K=K: s >= t and c >= K))
    for a in (0.5, 1, 2, 3, 4):
        for t in frange(0.3, 1.6, 0.0125):
            rules.append(("score + %g cover >= %.4f" % (a, t), lambda s, c, v, a=a, t=t: s + a * c >= t))
    if verify:
        for V in frange(0.2, 0.8, 0.0125):
            for t in frange(-0.2, 0.8, 0.05):
                rules.append(("verify >= %.4f, score >= %.2f" % (V, t), lambda s, c, v, V=V, t=t: v >= V and s >= t))
            for K in frange(-0.1, 0.3, 0.025):
                rules.append(("verify >= %.4f, cover >= %.3f" % (V, K), lambda s, c, v, V=V, K=K: v >= V and c >= K))
        for a in (0.5, 1, 2):
            for t in frange(0.3, 1.8, 0.0125):
                rules.append(("verify + %g score >= %.4f" % (a, t), lambda s, c, v, a=a, t=t: v + a * s >= t))
    res = []
    for name, rule in rules:
        m = measure(groups, rule)
        res.append((min(m[k] for k in nbk) if nbk else 1.0, m["paraphrase"], name, m))
    print("\nPareto frontier: paraphrase recall against the lower locality (%s)" % ", ".join(nbk))
    print("%-40s" % "rule" + "".join("%10s" % k[:9] for k in kinds))
    res.sort(key=lambda x: (-x[0], -x[1]))
    best = -1.0
    for loc, para, name, m in res:
        if para > best:
            best = para
            print("%-40s" % name + "".join("%10.3f" % m[k] for k in kinds))


if __name__ == "__main__":
    main()
