#!/usr/bin/env python3
"""relation_keys.py - which of SmolLM2's states tells a rewording of a stored
question from another question about the same subject (issue 8's open pair:
rewordings >= 0.75 with same-subject locality >= 0.99).

mome selects a fact by its keys (the pooled question at the key block and the
last prompt token at the value block, 24 of 30) and, for facts that name a
subject, checks that the question names it; what is left is the relation:
"What will be the product of X?" must fire the fact "What is the product made
by X?", "Who owns X?" must not. This script measures, layer by layer, one
candidate verifier for that: the cosine between the question's last prompt
token state and the best of the fact's stored contexts (its own wording,
behind the tuner's system prompt, after the tuner's earlier exchange), both
centred on the mean of the stored contexts. For every layer it sets the
threshold that rejects 95% / 99% of the same-subject questions (asked plain
and behind a system prompt the tuner never used) and reports what passes:
rewordings, the trained question behind that unseen system prompt and in
lower case, and rewordings behind it.

  --judge: also asks the model itself ("Do questions A and B ask for the same
  information? Answer Yes or No.", the Yes - No log-odds) and reports its AUC.

Runs the f32 transformers model that bench/bench_editing.sh converts from the
GGUF (build/peers/SmolLM2-135M-Instruct, with its venv's torch), one thread:

  build/peers/venv/bin/python bench/relation_keys.py --zsre zsre1k.json \
      --subject-questions subj1k.jsonl --n 300 --layers 14,16,18,20,22,24

zsre1k.json and subj1k.jsonl as bench/bench_generalization.sh writes them
(the zsRE records with an `alt`; two other questions per subject, written
by the bench, never by the tuner). About 3 s per fact on one core.
"""
import argparse
import json

TUNE_SYSTEM = "You are a helpful assistant."  # a context the tuner makes (stored)
EVAL_SYSTEM = "You are an expert who answers briefly."  # one it never makes
EXCHANGE = ("Hello, I have a question for you.", "Sure, go ahead.")  # the tuner's earlier exchange


def chat(q, system=None, exchange=False):
    """The ChatML prompt mome renders (mome_chat_format: no BOS, no default system)."""
    p = ""
    if system:
        p += "<|im_start|>system\n" + system + "<|im_end|>\n"
    if exchange:
        p += "<|im_start|>user\n" + EXCHANGE[0] + "<|im_end|>\n<|im_start|>assistant\n" + EXCHANGE[1] + "<|im_end|>\n"
    return p + "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="build/peers/SmolLM2-135M-Instruct")
    ap.add_argument("--zsre", required=True)
    ap.add_argument("--subject-questions", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--layers", default="14,16,18,20,22,24",
                    help="hidden_states indices: the input of that block (0: the embeddings)")
    ap.add_argument("--judge", action="store_true")
    a = ap.parse_args()
    import torch  # after --help: they live in the peers' venv
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    layers = [int(x) for x in a.layers.split(",")]
    facts = json.load(open(a.zsre, encoding="utf-8"))[:a.n]
    others = [json.loads(line)["question"] for line in open(a.subject_questions, encoding="utf-8")]

    def ids(s):
        return tok(s, add_special_tokens=False).input_ids

    cache = {}

    def last(p):
        if p not in cache:
            with torch.no_grad():
                hs = model(torch.tensor([ids(p)]), output_hidden_states=True).hidden_states
            cache[p] = {l: hs[l][0, -1].clone() for l in layers}
        return cache[p]

    stored = [[chat(r["src"]), chat(r["src"], TUNE_SYSTEM), chat(r["src"], None, True)] for r in facts]
    mu = {l: sum(last(p)[l] for st in stored for p in st) / (3 * len(facts)) for l in layers}

    def best(i, p, l):
        q = last(p)[l] - mu[l]
        return max(torch.nn.functional.cosine_similarity(q, last(s)[l] - mu[l], dim=0).item() for s in stored[i])

    kinds = {k: [] for k in ["rewording", "system prompt", "lower case", "rewording + system", "same subject",
                             "same subject + system"]}
    for i, r in enumerate(facts):
        kinds["rewording"].append((i, chat(r["rephrase"])))
        kinds["system prompt"].append((i, chat(r["src"], EVAL_SYSTEM)))
        kinds["lower case"].append((i, chat(r["src"].lower())))
        kinds["rewording + system"].append((i, chat(r["rephrase"], EVAL_SYSTEM)))
        for q in [q for q in others if r["subject"] in q][:2]:
            kinds["same subject"].append((i, chat(q)))
            kinds["same subject + system"].append((i, chat(q, EVAL_SYSTEM)))

    print("| layer | same subject rejected | " + " | ".join(kinds) + " |")
    print("|---:|---:|" + "---:|" * len(kinds))
    for l in layers:
        sc = {k: [best(i, p, l) for i, p in v] for k, v in kinds.items()}
        neg = sorted(sc["same subject"] + sc["same subject + system"])
        for share in (0.95, 0.99):
            thr = neg[int(share * len(neg)) - 1]
            print("| %d | %.0f%% (cos > %.3f) | " % (l, 100 * share, thr) +
                  " | ".join("%.3f" % (sum(x > thr for x in v) / len(v)) for v in sc.values()) + " |")

    if a.judge:
        yes = [ids(w)[0] for w in ("Yes", " Yes", "yes")]
        no = [ids(w)[0] for w in ("No", " No", "no")]

        def odds(x, y):
            p = chat("Question A: %s\nQuestion B: %s\nDo questions A and B ask for the same information? "
                     "Answer Yes or No." % (x, y))
            with torch.no_grad():
                lg = model(torch.tensor([ids(p)])).logits[0, -1]
            return (torch.logsumexp(lg[yes], 0) - torch.logsumexp(lg[no], 0)).item()

        pos = [odds(r["src"], r["rephrase"]) for r in facts]
        neg = [odds(r["src"], q) for r in facts for q in [q for q in others if r["subject"] in q][:2]]
        auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / len(pos) / len(neg)
        print("judge (the model asked): AUC %.3f over %d rewordings and %d same-subject questions" %
              (auc, len(pos), len(neg)))


if __name__ == "__main__":
    main()
