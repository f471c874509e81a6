#!/usr/bin/env python3
"""relation_centre.py - how much of the relation check's per-fact work the
rewordings need (issue 8: tuning 1,000 facts with the check in 10 minutes).
The check reads, per fact, each stored wording of its question and the
questions of its subject's centre, every one in a pass of its own; this
varies both on the states relation_meaning.py (the meaning key) and
relation_whiten.py (the relation key) cached, in the same f32 forward pass:

  k        the fact's subject centre from its first k CENTRE questions
           (src/tune.c CENTRE_TEMPLATES; the spread pooled with 16 subjects'
           8 questions each, as the tuner's centre_subjects)
  stored   which wordings are stored: 0 as given, 1 lower case, 2 without
           the final mark, 3 doubled spaces

and prints, per row, the rewordings passing at 95 / 97 / 98 / 99% of the
same-subject questions turned away, the AUC, and the wordings (all 4, the
eval's variants) passing the 99% threshold.

  build/peers/venv/bin/python bench/relation_meaning.py 300 zsre1k.json
  build/peers/venv/bin/python bench/relation_whiten.py 300 zsre1k.json
  build/peers/venv/bin/python bench/relation_centre.py 300
"""
import os, sys
if len(sys.argv) != 2: sys.exit(__doc__)
import torch  # after the usage: it lives in the peers' venv
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relation_common import check_scores, frontier_row, turned_away
N = int(sys.argv[1])
keys = []
if os.path.exists("/tmp/relation_meaning_%d.pt" % N):
    D = torch.load("/tmp/relation_meaning_%d.pt" % N)
    R = D["states"].float()[:, :, D["names"].index("meaning")]  # F x 15 x L x C, L = 16, 18, .., 30
    keys += [("meaning @24", R[:, :, 4]), ("meaning @26", R[:, :, 5])]
if os.path.exists("/tmp/relation_whiten_%d.pt" % N):
    R = torch.load("/tmp/relation_whiten_%d.pt" % N).float()  # F x 15 x 2 x L x C, L = 12, 14, 16, 18
    keys += [("relation @14", R[:, :, 1, 1])]
if not keys: sys.exit("no cached states: run relation_meaning.py / relation_whiten.py with N=%d first" % N)
print("| key, centre questions k, wordings stored | 95% | 97% | 98% | 99% | AUC | variants at 99% |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, X in keys:
    for k in (8, 4, 2, 1):
        for stored in ((0, 1, 2, 3), (0, 1, 3), (0, 1), (0,)):
            pos, neg, var = check_scores(X, k=k, stored=stored, spread=16, variants=True)
            row = frontier_row("%s, k=%d, %s" % (name, k, ",".join(map(str, stored))), pos, neg)
            print(row + " %.3f |" % (var > turned_away(neg, 0.99)).float().mean())
