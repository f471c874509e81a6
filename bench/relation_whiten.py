#!/usr/bin/env python3
"""relation_whiten.py - the relation check's state and comparison, side by side
(issue 8): which tells a rewording of a stored question from another question
about the same subject, in an independent f32 forward pass (transformers).

For the first N zsRE facts of FACTS.json (records with `alt`) it computes, for
each fact's question asked alone as a one-message chat (as given, lower case,
without its final mark, doubled spaces: the 4 wordings the check stores), its
`rephrase`, the 2 same-subject questions per fact of bench_generalization.sh,
and 8 other questions about the subject (the tuner's centre templates,
relation_templates[0, 2, .., 14] in src/tune.c), at blocks 12-18:

  last:      the state at the last prompt token (the check's decision row)
  relation:  the mean state over the question's tokens that do not spell the
             subject (mome tune --verify-key relation, the default)

and scores a question by the best cosine to its fact's 4 stored wordings,
either centred on one mean (plain; --verify-key centred) or after taking away
the fact's subject centre (the mean of its 8 template questions) and
whitening with W = (S + RIDGE mean(eig S) I)^(-1/2) (env RIDGE, default 0.1 as tuned), S the templates' spread
around their centres pooled over the facts (--verify-key last / relation).
Prints the rewordings that pass the threshold turning away 95 / 97 / 98 / 99%
of the same-subject questions, and the AUC. States cached in
/tmp/relation_whiten_N.pt.

  build/peers/venv/bin/python bench/relation_whiten.py 300 zsre1k.json
"""
import json, os, sys
if len(sys.argv) != 3: sys.exit(__doc__)
import torch  # after the usage: it lives in the peers' venv
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
M = os.environ.get("HF_MODEL", "build/peers/SmolLM2-135M-Instruct")
N = int(sys.argv[1]); OUT = "/tmp/relation_whiten_%d.pt" % N
facts = [x for x in json.load(open(sys.argv[2])) if x.get("alt")][:N]
LAY = [12, 14, 16, 18]
RIDGE = float(os.environ.get("RIDGE", "0.1"))
from relation_common import wordings, check_scores, frontier_row, SAME, CENTRE  # beside this script
if not os.path.exists(OUT):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(M)
    model = AutoModelForCausalLM.from_pretrained(M, dtype=torch.float32).eval()
    HEAD = tok("<|im_start|>user\n", add_special_tokens=False).input_ids
    TAIL = tok("<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    def states(qs, subj):
        encs = [tok(q, add_special_tokens=False, return_offsets_mapping=True) for q in qs]
        ids = [HEAD + e.input_ids + TAIL for e in encs]
        T = max(map(len, ids))  # right padding: causal attention keeps each row's own states
        with torch.no_grad():
            hs = model(torch.tensor([i + [0] * (T - len(i)) for i in ids]), output_hidden_states=True).hidden_states
        out = []
        for b, (q, e) in enumerate(zip(qs, encs)):
            s0 = q.lower().find(subj.lower())
            sm = torch.tensor([s0 >= 0 and a < s0 + len(subj) and c > s0 for a, c in e.offset_mapping])
            n0, nq = len(HEAD), len(e.input_ids)
            last = torch.stack([hs[l][b, len(ids[b]) - 1] for l in LAY])
            rel = torch.stack([hs[l][b, n0:n0 + nq][~sm].mean(0) if (~sm).any() else hs[l][b, n0:n0 + nq].mean(0) for l in LAY])
            out.append(torch.stack([last, rel]))
        return torch.stack(out)
    rec = []
    for i, r in enumerate(facts):
        S = r["subject"]
        qs = wordings(r["src"], unique=False) + [r["rephrase"]] + [t % S for t in SAME[i % 3::3][:2]] + [t % S for t in CENTRE]
        rec.append(states(qs, S).half())
        if i % 50 == 0: print("states %d/%d" % (i, len(facts)), file=sys.stderr, flush=True)
    torch.save(torch.stack(rec), OUT)
R = torch.load(OUT).float()  # F x 15 x 2 x L x C: 4 stored, rephrase, 2 same subject, 8 centre templates
F = R.shape[0]
print("| state, comparison (%d facts, %d same-subject questions) | 95%% | 97%% | 98%% | 99%% | AUC |" % (F, 2 * F))
print("|---|---:|---:|---:|---:|---:|")
for kind, kn in ((0, "last token"), (1, "relation (non-subject mean)")):
    for L in LAY:
        for wh, wn in ((0, "centred"), (1, "subject centre + whitened")):
            X = R[:, :, kind, LAY.index(L)]
            print(frontier_row("%s @%d, %s" % (kn, L, wn), *check_scores(X, wh, RIDGE)))
