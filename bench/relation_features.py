#!/usr/bin/env python3
"""relation_features.py - which state of the question alone tells a rewording of a
stored question from another question about the same subject, and whether two of
them together do better than the relation check's one (issue 8).

The relation check (`mome tune --verify T`) keeps the state at the input of block
18 at the last prompt token of each fact's question asked alone, in four wordings
(as given, lower case, without its final mark, doubled spaces). This script
computes, for the first N zsRE facts (f32 transformers model that
bench/bench_editing.sh converts from the GGUF, one thread), at blocks 12-22:

  last:   the last prompt token's state (the check's feature at 18)
  rel:    the mean state over the question's tokens that are not the subject's
          (zsRE names its `subject`; the memory keeps it for the subject check)

each for the question as asked and with the subject replaced by "X" (masked),
and scores a question by the best centred cosine to its fact's four stored
wordings (a combination: the mean of its features' cosines). For each feature
it reports the rewordings (`rephrase`) that pass the threshold turning away 95 /
98 / 99% of the 2 same-subject questions per fact of bench_generalization.sh,
and the AUC. The states are cached in /tmp/relation_features_N.pt.

  build/peers/venv/bin/python bench/relation_features.py 300 zsre1k.json subj1k.jsonl
"""
import json, os, sys
if len(sys.argv) != 4: sys.exit(__doc__)
import torch  # after the usage: it lives in the peers' venv
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(1)
M = "/work/main/build/peers/SmolLM2-135M-Instruct"
N = int(sys.argv[1]); OUT = "/tmp/relation_features_%d.pt" % N
facts = json.load(open(sys.argv[2]))[:N]
others = [json.loads(l)["question"] for l in open(sys.argv[3])]
LAYERS = [12, 14, 16, 18, 20, 22]
from relation_common import wordings  # beside this script
if not os.path.exists(OUT):
    tok = AutoTokenizer.from_pretrained(M)
    model = AutoModelForCausalLM.from_pretrained(M, dtype=torch.float32).eval()
    HEAD = tok("<|im_start|>user\n", add_special_tokens=False).input_ids
    TAIL = tok("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    def st(q, subj):
        enc = tok(q, add_special_tokens=False, return_offsets_mapping=True)
        s0 = q.find(subj)
        sm = torch.tensor([s0 >= 0 and a < s0 + len(subj) and b > s0 for a, b in enc.offset_mapping])
        with torch.no_grad():
            hs = model(torch.tensor([HEAD + enc.input_ids + TAIL]), output_hidden_states=True).hidden_states
        n0, nq = len(HEAD), len(enc.input_ids)
        last = torch.stack([hs[l][0, -1] for l in LAYERS])
        rel = torch.stack([hs[l][0, n0:n0 + nq][~sm].mean(0) if (~sm).any() else hs[l][0, -1] for l in LAYERS])
        return last, rel
    rec = {"stored": [], "pos": [], "neg": [], "negi": []}
    for i, r in enumerate(facts):
        S = r["subject"]
        both = lambda q: (st(q, S), st(q.replace(S, "X"), "X"))
        rec["stored"].append([both(w) for w in wordings(r["src"])])
        rec["pos"].append(both(r["rephrase"]))
        for q in [q for q in others if S in q][:2]:
            rec["neg"].append(both(q)); rec["negi"].append(i)
        if i % 50 == 0: print("states", i, flush=True)
    torch.save(rec, OUT)
rec = torch.load(OUT)
# feature index: (variant 0 plain / 1 masked, kind 0 last / 1 rel, layer idx)
def feat(x, v, k, li): return x[v][k][li]
def mu_of(v, k, li): return torch.stack([feat(x, v, k, li) for st in rec["stored"] for x in st]).mean(0)
MU = {}
def cosf(a, b, v, k, li):
    key = (v, k, li)
    if key not in MU: MU[key] = mu_of(v, k, li)
    m = MU[key]
    return torch.nn.functional.cosine_similarity(feat(a, v, k, li) - m, feat(b, v, k, li) - m, dim=0).item()
def score(i, q, feats):
    return max(sum(cosf(q, s, *f) for f in feats) / len(feats) for s in rec["stored"][i])
def ev(name, feats):
    P = [score(i, q, feats) for i, q in enumerate(rec["pos"])]
    Nn = sorted(score(i, q, feats) for i, q in zip(rec["negi"], rec["neg"]))
    res = []
    for share in (0.95, 0.98, 0.99):
        thr = Nn[int(share * len(Nn)) - 1]; res.append("%.3f" % (sum(p > thr for p in P) / len(P)))
    auc = sum((p > n) + 0.5 * (p == n) for p in P for n in Nn) / len(P) / len(Nn)
    print("| %s | %s | %.3f |" % (name, " | ".join(res), auc), flush=True)
L = {l: i for i, l in enumerate(LAYERS)}
print("| feature(s) | 95% | 98% | 99% | AUC |")
for v in (0, 1):
    for k in (0, 1):
        for l in LAYERS: ev("%s %s @%d" % ("plain" if v == 0 else "masked", "last" if k == 0 else "rel", l), [(v, k, L[l])])
combos = {
 "last18 + rel14": [(0, 0, L[18]), (0, 1, L[14])],
 "last18 + masked last18": [(0, 0, L[18]), (1, 0, L[18])],
 "last18 + rel14 + masked last18": [(0, 0, L[18]), (0, 1, L[14]), (1, 0, L[18])],
 "last18 + rel12 + rel14 + rel16": [(0, 0, L[18]), (0, 1, L[12]), (0, 1, L[14]), (0, 1, L[16])],
 "last16,18,22 + rel12,14": [(0, 0, L[16]), (0, 0, L[18]), (0, 0, L[22]), (0, 1, L[12]), (0, 1, L[14])],
 "masked last18 + masked rel14": [(1, 0, L[18]), (1, 1, L[14])],
 "all plain": [(0, k, i) for k in (0, 1) for i in range(len(LAYERS))],
 "all": [(v, k, i) for v in (0, 1) for k in (0, 1) for i in range(len(LAYERS))],
}
for n, f in combos.items(): ev(n, f)
