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
from relation_common import wordings
M = os.environ.get("HF_MODEL", "build/peers/SmolLM2-135M-Instruct")
N = int(sys.argv[1]); OUT = "/tmp/relation_meaning_%d.pt" % N
facts = [x for x in json.load(open(sys.argv[2])) if x.get("alt")][:N]
SAME = ["Who owns %s?", "What is the official website of %s?", "Where did %s die?",
        "What award did %s receive?", "Who is married to %s?", "What is %s made of?"]
CENTRE = ["What is the population of %s?", "Who founded %s?", "What is %s known for?", "What is the currency of %s?",
          "How big is %s?", "When was %s born?", "Who created %s?", "What is the climate like in %s?"]
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
def score(X):  # X: F x 15 x C; 0-3 stored, 4 rephrase, 5-6 same subject, 7-14 centre templates
    C = X.shape[-1]
    tm = X[:, 7:15]; ctr = tm.mean(1)
    Dv = (tm - ctr[:, None]).reshape(-1, C)
    ev, evec = torch.linalg.eigh(Dv.T @ Dv / Dv.shape[0])
    W = evec @ torch.diag((ev.clamp(min=0) + RIDGE * ev.clamp(min=0).mean()) ** -0.5) @ evec.T
    f = lambda v: torch.nn.functional.normalize((v - ctr[:, None]) @ W, dim=-1)
    S = f(X[:, 0:4])
    g = lambda q: (f(q)[:, :, None] * S[:, None]).sum(-1).max(-1).values
    return g(X[:, 4:5])[:, 0], g(X[:, 5:7])
print("| wrapper @block (%d facts, %d same-subject questions) | 95%% | 97%% | 98%% | 99%% | AUC |" % (F, 2 * F))
print("|---|---:|---:|---:|---:|---:|")
for k, n in enumerate(NAMES):
    for li, L in enumerate(LAY):
        pos, neg = score(R[:, :, k, li])
        s = neg.flatten().sort().values
        cells = ["%.3f" % (pos > s[min(len(s) - 1, int(q * len(s)))]).float().mean() for q in (0.95, 0.97, 0.98, 0.99)]
        print("| %s @%d | %s | %.3f |" % (n, L, " | ".join(cells), (pos[:, None, None] > neg[None]).float().mean()))
