#!/usr/bin/env python3
"""Write tests/golden/qwen* from the independent llama.cpp reference (issue 10).

Run inside the reference venv built by tests/reference/setup.sh, after
tools/fetch_qwen.sh (make qwen) has fetched the models:

    tests/reference/setup.sh
    make qwen
    .venv-ref/bin/python tests/reference/make_goldens_qwen.py

Same llama.cpp harness as make_goldens.py (llama-cpp-python 0.3.36 ctypes
bindings over the libllama.so built in .ref/; f32 KV cache, flash attention
off, one thread). Files (see tests/golden/README.md):

  tok_qwen2.inp / .out       llama.cpp's qwen2 vocabulary test strings (the sdist's
                             ggml-vocab-qwen2.gguf.inp) + make_goldens.EXTRA_STRINGS,
                             tokenized by the Qwen2.5-Coder 0.5B file's tokenizer
                             (the 1.5B file's gives the same ids; checked)
  qwen05_topk.jsonl, qwen15_topk.jsonl
                             held-out text (../shared/data/text/tinystories_val_head.txt,
                             from byte 200000) as token ids, then the top 40 log-probs of
                             the next-token distribution at each of 320 positions
  qwen05_chat.jsonl, qwen15_chat.jsonl
                             conversations rendered by llama_chat_apply_template with the
                             file's template, their ids (parse_special), the template's own
                             Jinja rendering (jinja2, as transformers renders it: with the
                             default system message), and the first 32 greedy tokens of the
                             answer (fewer if <|im_end|> comes first)
"""
from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_goldens as MG  # noqa: E402  (sets LLAMA_CPP_LIB_PATH, loads llama_cpp)
from make_goldens import L, Model, jdump, fl, log, read_inp, write_inp_out  # noqa: E402

import numpy as np  # noqa: E402

ROOT = MG.ROOT
GOLDEN = MG.GOLDEN
MODELS = ROOT / "models"
Q05 = MODELS / "Qwen2.5-Coder-0.5B-Instruct.gguf"
Q15 = MODELS / "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf"
SDIST_MODELS = ROOT / ".ref" / "llama.cpp" / "models"
QWEN2_VOCAB = SDIST_MODELS / "ggml-vocab-qwen2.gguf"
HELDOUT = ROOT.parent / "shared" / "data" / "text" / "tinystories_val_head.txt"
HELDOUT_OFFSET = 200000   # bytes; the memory benchmarks use the first 64 KiB
N_POS = 320
TOP_K = 40
N_GEN = 32

CONVERSATIONS = [
    [("user", "What is the capital of France?")],
    [("user", "Write a Python function that checks whether a number is prime.")],
    [("system", "You are a terse assistant. Answer in one sentence."),
     ("user", "What does the `git rebase` command do?")],
    [("user", "What is 2+2?"), ("assistant", "4"), ("user", "And times 3?")],
    [("user", "Explain recursion in C with a short example.")],
    [("user", "Unicode: café 😀 日本語 — translate 'hello' to French.")],
]


def jinja_render(template: str, messages, add_generation_prompt: bool) -> str:
    """The template's own rendering (default system message included), as transformers does it."""
    import jinja2
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, **k: json.dumps(x, ensure_ascii=False)
    t = env.from_string(template)
    return t.render(messages=[{"role": r, "content": c} for r, c in messages],
                    add_generation_prompt=add_generation_prompt, tools=None)


def gen_tokenizer(q05: Model, q15: Model):
    base = read_inp(pathlib.Path(str(QWEN2_VOCAB) + ".inp"))
    strings = base + MG.EXTRA_STRINGS
    for s in strings:
        for tok in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
            assert tok not in s, s
    # harness check: llama.cpp reproduces its own committed qwen2 vectors
    voc = Model(QWEN2_VOCAB, vocab_only=True)
    want = pathlib.Path(str(QWEN2_VOCAB) + ".out").read_text(encoding="utf-8").split("\n")
    same_as_sdist = 0
    for i, s in enumerate(base):
        got = "".join(f" {t}" for t in voc.tokenize(s, False, False))
        assert got == want[i], f"qwen2 vocab mismatch on {s!r}"
        same_as_sdist += "".join(f" {t}" for t in q05.tokenize(s, False, False)) == want[i]
    log(f"harness check: {len(base)} qwen2 vectors reproduce ggml-vocab-qwen2.gguf.out; "
        f"the Qwen2.5-Coder file's tokenizer agrees on {same_as_sdist}/{len(base)}")
    L.llama_model_free(voc.model)
    for s in strings:
        assert q05.tokenize(s, False, False) == q15.tokenize(s, False, False), s
    write_inp_out(q05, strings, GOLDEN / "tok_qwen2")
    log(f"tokenizer: {len(strings)} strings ({len(base)} from qwen2.inp + {len(MG.EXTRA_STRINGS)} extra)")


def gen_topk(m: Model, stem: str):
    text = HELDOUT.read_bytes()[HELDOUT_OFFSET:HELDOUT_OFFSET + 6000].decode("utf-8", errors="ignore")
    ids = m.tokenize(text, add_special=m.add_bos, parse_special=False)
    assert len(ids) >= N_POS, len(ids)
    ids = ids[:N_POS]
    ctx = m.context(512, 512)
    ctx.reset()
    rows = ctx.decode(ids, 0, all_logits=True)
    nll = []
    with open(GOLDEN / f"{stem}_topk.jsonl", "w", encoding="utf-8") as f:
        f.write(jdump({"tokens": ids, "source": f"tinystories_val_head.txt[{HELDOUT_OFFSET}:]"}) + "\n")
        for i, r in enumerate(rows):
            x = r.astype(np.float64)
            mx = x.max()
            lp = x - (mx + np.log(np.sum(np.exp(x - mx))))
            order = np.lexsort((np.arange(len(lp)), -lp))[:TOP_K]
            f.write(jdump({"pos": i, "top": [[int(t), float(lp[t])] for t in order]}) + "\n")
            if i + 1 < len(ids):
                nll.append(-lp[ids[i + 1]])
    log(f"{stem}: {N_POS} positions, mean NLL {np.mean(nll):.4f} (ppl {np.exp(np.mean(nll)):.3f})")


def gen_chat(m: Model, stem: str):
    tmpl = m.chat_template()
    im_end = m.tokenize("<|im_end|>", False, True)
    assert len(im_end) == 1, im_end
    im_end = im_end[0]
    ctx = m.context(1024, 1024)
    with open(GOLDEN / f"{stem}_chat.jsonl", "w", encoding="utf-8") as f:
        for conv in CONVERSATIONS:
            prompt = m.apply_chat_template(tmpl, conv, add_ass=True)
            ids = m.tokenize(prompt, add_special=m.add_bos, parse_special=True)
            jinja = jinja_render(tmpl, conv, True)
            gen, stopped = ctx.greedy(ids, N_GEN, stop=im_end)
            text = m.pieces_text([t for t in gen if t != im_end])
            f.write(jdump({"messages": [[r, c] for r, c in conv], "prompt": prompt, "ids": ids,
                           "jinja_prompt": jinja, "gen": gen, "stopped": stopped, "text": text}) + "\n")
            log(f"{stem} chat {conv[-1][1][:40]!r} -> {text[:70]!r} (stopped={stopped})")


def main():
    for p in (Q05, Q15):
        if not p.exists():
            sys.exit(f"{p} is absent: run make qwen (tools/fetch_qwen.sh) first")
    L.llama_backend_init()
    q05 = Model(Q05)
    q15 = Model(Q15)
    log(f"Qwen 0.5B: n_vocab={q05.n_vocab} add_bos={q05.add_bos} bos={q05.bos} eos={q05.eos}")
    gen_tokenizer(q05, q15)
    for m, stem in ((q05, "qwen05"), (q15, "qwen15")):
        gen_topk(m, stem)
        gen_chat(m, stem)
    log("build info:", json.dumps(MG.build_info()))


if __name__ == "__main__":
    main()
