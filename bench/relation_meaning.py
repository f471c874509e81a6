#!/usr/bin/env python3
"""relation_meaning.py - the relation check's meaning key (mome tune
--verify-key meaning, issue 8) against the relation key, in an independent
f32 forward pass (transformers).

The meaning key reads a question inside the PromptEOL prompt (Jiang et al.
2023, "Scaling Sentence Embeddings with Large Language Models"):

  This sentence : "QUESTION" means in one word:"

and keeps the state at its last token, where the model sums up the sentence
to predict one word. The wrapper's tokens are joined to the question's own, as
the engine does (src/tune.c MEANING_OPEN / MEANING_CLOSE, forward.c
question_pass). Besides it, variants of the wrapper (env TEMPLATES: a
comma-separated list of names below) at blocks 16-30.

For the first N zsRE facts of FACTS.json it reads each fact's 4 stored
wordings (relation_common.wordings), its `rephrase`, 2 same-subject questions
per fact (bench_generalization.sh's) and 8 other questions about the subject
(src/tune.c's centre templates), then scores a question by the best cosine to
its fact's stored wordings after taking away the subject centre and whitening
with the templates' pooled spread (as relation_whiten.py and the engine), and
prints the rewordings passing at 95 / 97 / 98 / 99% of same-subject questions
turned away. States cached in /tmp/relation_meaning_N.pt.

  build/peers/venv/bin/python bench/relation_meaning.py 300 zsre1k.json
"""
import json, os, sys
if len(sys.argv) != 3: sys.exit(__doc__)
import torch  # after the usage: it lives in the peers' venv
torch.set_num_threads(int(os.environ.get("THREADS", "2")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relation_common import wordings, check_scores, frontier_row, SAME, CENTRE
M = os.environ.get("HF_MODEL", "build/peers/SmolLM2-135M-Instruct")
N = int(sys.argv[1]); OUT = "/tmp/relation_meaning_%d.pt" % N
facts = [x for x in json.load(open(sys.argv[2])) if x.get("alt")][:N]
WRAP = {"meaning": ('This sentence : "', '" means in one word:"'),
        "question": ('This question : "', '" means in one word:"'),
        "asks": ('This question : "', '" asks for one thing, in one word:"')}
NAMES = os.environ.get("TEMPLATES", "meaning,question,asks").split(",")
LAY = [16, 18, 20, 22, 24, 26, 28, 30]
RIDGE = 0.1
if not os.path.exists(OUT):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(M)
    model = AutoModelForCausalLM.from_pretrained(M, dtype=torch.float32).eval()
    enc = lambda s: tok(s, add_special_tokens=False).input_ids
    rec = []
    for i, r in enumerate(facts):
        S = r["subject"]
        qs = wordings(r["src"], unique=False) + [r["rephrase"]] + [t % S for t in SAME[i % 3::3][:2]] + [t % S for t in CENTRE]
        ids = [enc(WRAP[n][0]) + enc(q) + enc(WRAP[n][1]) for n in NAMES for q in qs]
        T = max(map(len, ids))  # right padding: causal attention keeps each row's own states
        with torch.no_grad():
            hs = model(torch.tensor([x + [0] * (T - len(x)) for x in ids]), output_hidden_states=True).hidden_states
        st = torch.stack([torch.stack([hs[l][b, len(ids[b]) - 1] for l in LAY]) for b in range(len(ids))])
        rec.append(st.reshape(len(NAMES), len(qs), len(LAY), -1).transpose(0, 1).half())
        if i % 50 == 0: print("states %d/%d" % (i, len(facts)), file=sys.stderr, flush=True)
    torch.save({"names": NAMES, "states": torch.stack(rec)}, OUT)
D = torch.load(OUT); NAMES, R = D["names"], D["states"].float()  # F x 15 x names x L x C
F = R.shape[0]
print("| wrapper @block (%d facts, %d same-subject questions) | 95%% | 97%% | 98%% | 99%% | AUC |" % (F, 2 * F))
print("|---|---:|---:|---:|---:|---:|")
for k, n in enumerate(NAMES):
    for li, L in enumerate(LAY):
        print(frontier_row("%s @%d" % (n, L), *check_scores(R[:, :, k, li], ridge=RIDGE)))
