#!/usr/bin/env python3
"""Write tests/golden/* from the independent llama.cpp reference.

Run inside the reference venv built by tests/reference/setup.sh:

    tests/reference/setup.sh
    .venv-ref/bin/python tests/reference/make_goldens.py

Uses llama.cpp only (llama-cpp-python 0.3.36 low-level ctypes bindings over the
libllama.so built in .ref/llama.cpp/build/bin). No transformers / torch.
See tests/golden/README.md for the exact file formats.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIBDIR = ROOT / ".ref" / "llama.cpp" / "build" / "bin"
os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(LIBDIR))

import numpy as np  # noqa: E402
import llama_cpp  # noqa: E402
import llama_cpp.llama_cpp as L  # noqa: E402
from llama_cpp._logger import set_verbose  # noqa: E402

set_verbose(False)

GOLDEN = ROOT / "tests" / "golden"
SHARED = ROOT.parent / "shared" / "data" / "models"
SMOL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
STORIES = SHARED / "stories260K.gguf"
SPM_INP = SHARED / "ggml-vocab-llama-spm.gguf.inp"
SPM_GGUF = SHARED / "ggml-vocab-llama-spm.gguf"
SPM_OUT = SHARED / "ggml-vocab-llama-spm.gguf.out"
GPL3 = pathlib.Path("/usr/share/common-licenses/GPL-3")

SEP = "\n__ggml_vocab_test__\n"
GGML_TYPE_F32 = 0
N_THREADS = 1

# --------------------------------------------------------------------------- extra tokenizer strings
EXTRA_STRINGS = [
    # emoji: plain, skin tone, ZWJ family, flags, keycap
    "😀😃😄 smile",
    "👍🏽 ok",
    "👨‍👩‍👧‍👦 family",
    "🏳️‍🌈 and 🇫🇷🇯🇵🇺🇸",
    "1️⃣ #️⃣",
    # CJK, Arabic, Hebrew, Devanagari, Thai
    "日本語のテキストです。",
    "中文测试，你好世界！",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีครับ",
    # combining accents (NFD) and precomposed (NFC)
    "e\u0301 cafe\u0301 vs café",
    "A\u030a\u0323 n\u0303 Z\u0335\u0321",
    # digits
    "1",
    "12",
    "12345",
    "1234567890123",
    "3.14159",
    "1,000,000",
    "-42 +7 0x1F 1e-9",
    # whitespace runs
    " a",
    "a  b",
    "a   b",
    "a    b",
    "a     b",
    "a      b",
    "a       b",
    "a        b",
    "        ",
    "\t\tx\t",
    "\n",
    "\n\n\n",
    " \n \n",
    "\r\n",
    "Hello  world\n\n  foo",
    # contractions, case
    "I'm don't they'll WE'RE",
    "it's its' 'quoted' \"double\"",
    "ALL CAPS SENTENCE HERE",
    # punctuation runs
    "...???!!!---___***",
    "!!! ??? ... ;;; ::: ,,,",
    "(a [b {c} d] e)",
    # code
    "for (int i = 0; i < n; ++i) {",
    "def f(x):\n    return x**2  # square",
    "if (a && b || !c) { x->y = *p; }",
    "<div class=\"x\">&amp;</div>",
    # URLs, paths, emails
    "https://example.com/path?q=1&r=two#frag",
    "user.name+tag@example.org",
    "C:\\Users\\test\\file.txt /usr/local/bin",
    # odd but valid UTF-8
    "\u00a0non\u00a0breaking\u2003em\u2009thin",
    "zero\u200bwidth\u200cjoiner\u200d",
    "\ufeffBOM at start",
    "\U0001f9ff\U0001fae0 newer emoji",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "ß ẞ ﬁ ﬂ Å Ω ℃",
    "Ünïcödé ñ ç ø æ œ",
    "Ελληνικά и русский",
    "\x01\x02 control \x7f",
]

SPECIAL_STRINGS = [
    "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>assistant\n4<|im_end|><|endoftext|>",
    "text before<|im_start|>user\n  spaced  <|im_end|>after",
    "<|im_end|><|im_end|>\n\n<|im_start|>",
    "<|im_start|>user\nUnicode: café 😀 日本<|im_end|>\n<|im_start|>assistant\n",
]

STORIES_PROMPTS = [
    "Once upon a time",
    "The little dog was happy because",
    "Lily and Tom went to the park. They saw",
]

CHAT_QUESTIONS = [
    "What is the capital of France?",
    "What is 2+2?",
    "Name three primary colors.",
    "Who wrote Romeo and Juliet?",
]


# --------------------------------------------------------------------------- thin llama.cpp wrapper
class Model:
    def __init__(self, path: pathlib.Path, vocab_only: bool = False):
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.vocab_only = vocab_only
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise RuntimeError(f"failed to load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.bos = L.llama_vocab_bos(self.vocab)
        self.eos = L.llama_vocab_eos(self.vocab)
        self.path = path

    def meta(self, key: str):
        buf = ctypes.create_string_buffer(1 << 16)
        n = L.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return None if n < 0 else buf.value.decode("utf-8")

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        b = text.encode("utf-8")
        n_max = len(b) + 8
        arr = (L.llama_token * n_max)()
        n = L.llama_tokenize(self.vocab, b, len(b), arr, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            arr = (L.llama_token * n_max)()
            n = L.llama_tokenize(self.vocab, b, len(b), arr, n_max, add_special, parse_special)
            assert n >= 0
        return [int(arr[i]) for i in range(n)]

    def piece(self, tok: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = L.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, special)
        assert n >= 0, (tok, n)
        return buf.raw[:n]

    def pieces_text(self, toks: list[int], special: bool = False) -> str:
        """Raw concatenation of token pieces (lstrip=0), decoded as UTF-8 (errors=replace)."""
        return b"".join(self.piece(t, special) for t in toks).decode("utf-8", errors="replace")

    def chat_template(self) -> str | None:
        t = L.llama_model_chat_template(self.model, None)
        return None if t is None else t.decode("utf-8")

    def apply_chat_template(self, tmpl: str, messages: list[tuple[str, str]], add_ass: bool) -> str:
        keep = [(r.encode(), c.encode()) for r, c in messages]
        arr = (L.llama_chat_message * len(keep))()
        for i, (r, c) in enumerate(keep):
            arr[i].role = r
            arr[i].content = c
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            n = L.llama_chat_apply_template(tmpl.encode(), arr, len(keep), add_ass, buf, size)
            if n < 0:
                raise RuntimeError("llama_chat_apply_template failed (template not supported)")
            if n <= size:
                return buf.raw[:n].decode("utf-8")
            size = n + 1

    def context(self, n_ctx: int, n_batch: int) -> "Context":
        return Context(self, n_ctx, n_batch)


class Context:
    def __init__(self, m: Model, n_ctx: int, n_batch: int):
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_seq_max = 1
        cp.n_threads = N_THREADS
        cp.n_threads_batch = N_THREADS
        cp.type_k = GGML_TYPE_F32
        cp.type_v = GGML_TYPE_F32
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.offload_kqv = False
        cp.no_perf = True
        self.m = m
        self.n_batch = n_batch
        self.ctx = L.llama_init_from_model(m.model, cp)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.batch = L.llama_batch_init(n_batch, 0, 1)

    def reset(self):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, toks: list[int], pos0: int, all_logits: bool) -> list[np.ndarray]:
        """Decode toks at positions pos0.., return logits (float32 copies) for requested rows."""
        assert len(toks) <= self.n_batch
        b = self.batch
        b.n_tokens = len(toks)
        for i, t in enumerate(toks):
            b.token[i] = t
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if (all_logits or i == len(toks) - 1) else 0
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode rc={rc}")
        nv = self.m.n_vocab
        rows = range(len(toks)) if all_logits else [len(toks) - 1]
        out = []
        for i in rows:
            p = L.llama_get_logits_ith(self.ctx, i)
            out.append(np.ctypeslib.as_array(p, shape=(nv,)).astype(np.float32, copy=True))
        return out

    def greedy(self, prompt: list[int], n_gen: int, stop: int | None = None):
        self.reset()
        logits = self.decode(prompt, 0, all_logits=False)[-1]
        pos = len(prompt)
        gen: list[int] = []
        stopped = False
        for _ in range(n_gen):
            t = int(np.argmax(logits))  # first max on ties
            gen.append(t)
            if stop is not None and t == stop:
                stopped = True
                break
            if len(gen) == n_gen:
                break
            logits = self.decode([t], pos, all_logits=False)[-1]
            pos += 1
        return gen, stopped


# --------------------------------------------------------------------------- helpers
def read_inp(path: pathlib.Path) -> list[str]:
    data = path.read_bytes().decode("utf-8")  # no newline translation (strings contain \r)
    parts = data.split(SEP)
    assert parts[-1] == "", "inp file must end with the separator"
    return parts[:-1]


def write_inp_out(m: Model, strings: list[str], stem: pathlib.Path):
    with open(f"{stem}.inp", "w", encoding="utf-8", newline="") as f:
        for s in strings:
            f.write(s + SEP)
    with open(f"{stem}.out", "w", encoding="utf-8", newline="") as f:
        for s in strings:
            ids = m.tokenize(s, add_special=False, parse_special=False)
            f.write("".join(f" {t}" for t in ids) + "\n")


def jdump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def fl(x) -> float:
    """float32 -> Python float (exact); json writes it with repr() = full precision."""
    return float(x)


def log(*a):
    print("[make_goldens]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- generators
def check_harness_against_llamacpp_spm():
    """Our tokenizer path must reproduce llama.cpp's own committed llama-spm vectors."""
    m = Model(SPM_GGUF, vocab_only=True)
    strings = read_inp(SPM_INP)
    want = SPM_OUT.read_text(encoding="utf-8").split("\n")
    for i, s in enumerate(strings):
        got = "".join(f" {t}" for t in m.tokenize(s, False, False))
        assert got == want[i], f"llama-spm mismatch on {s!r}: {got} vs {want[i]}"
    log(f"harness check: {len(strings)} llama-spm vectors reproduce ggml-vocab-llama-spm.gguf.out")
    L.llama_model_free(m.model)


def gen_tokenizer(smol: Model, stories: Model):
    base = read_inp(SPM_INP)
    strings = base + EXTRA_STRINGS
    for s in strings:
        for tok in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<repo_name>"):
            assert tok not in s, s
    write_inp_out(smol, strings, GOLDEN / "tok_smollm2")
    write_inp_out(stories, strings, GOLDEN / "tok_stories260K")
    log(f"tokenizer: {len(strings)} strings ({len(base)} from llama-spm.inp + {len(EXTRA_STRINGS)} extra)")

    with open(GOLDEN / "tok_smollm2_special.jsonl", "w", encoding="utf-8") as f:
        for s in SPECIAL_STRINGS:
            ids = smol.tokenize(s, add_special=False, parse_special=True)
            f.write(jdump({"text": s, "ids": ids}) + "\n")


def gen_stories(stories: Model):
    ctx = stories.context(512, 512)
    with open(GOLDEN / "stories260K_logits.jsonl", "w", encoding="utf-8") as f:
        for p in STORIES_PROMPTS:
            ids = stories.tokenize(p, add_special=True, parse_special=False)
            ctx.reset()
            rows = ctx.decode(ids, 0, all_logits=True)
            f.write(jdump({"prompt": p, "ids": ids,
                           "logits": [[fl(x) for x in r] for r in rows]}) + "\n")
    with open(GOLDEN / "stories260K_greedy.jsonl", "w", encoding="utf-8") as f:
        for p in STORIES_PROMPTS + [""]:
            ids = stories.tokenize(p, add_special=True, parse_special=False)
            gen, _ = ctx.greedy(ids, 64)
            text = stories.pieces_text(gen)
            f.write(jdump({"prompt": p, "ids": ids, "gen": gen, "text": text}) + "\n")
            log(f"stories greedy {p!r} -> {text[:90]!r}")


def gen_smol_topk(smol: Model, n_tok=600, k=64):
    text = GPL3.read_text(encoding="utf-8")[:8000]
    ids = smol.tokenize(text, add_special=smol.add_bos, parse_special=False)
    assert len(ids) >= n_tok, len(ids)
    ids = ids[:n_tok]
    ctx = smol.context(1024, 1024)
    ctx.reset()
    rows = ctx.decode(ids, 0, all_logits=True)
    with open(GOLDEN / "smollm2_topk.jsonl", "w", encoding="utf-8") as f:
        f.write(jdump({"tokens": ids}) + "\n")
        for i, r in enumerate(rows):
            x = r.astype(np.float64)
            mx = x.max()
            lp = x - (mx + np.log(np.sum(np.exp(x - mx))))
            order = np.lexsort((np.arange(len(lp)), -lp))[:k]  # desc logprob, ties by id
            f.write(jdump({"pos": i, "top": [[int(t), float(lp[t])] for t in order]}) + "\n")
    # sanity: mean NLL of the actual next token
    return ids, rows


def gen_smol_chat(smol: Model):
    tmpl = smol.chat_template()
    assert tmpl, "SmolLM2 GGUF has no tokenizer.chat_template"
    im_end = smol.tokenize("<|im_end|>", False, True)
    assert len(im_end) == 1, im_end
    im_end = im_end[0]
    ctx = smol.context(1024, 1024)
    with open(GOLDEN / "smollm2_chat.jsonl", "w", encoding="utf-8") as f:
        for q in CHAT_QUESTIONS:
            prompt = smol.apply_chat_template(tmpl, [("user", q)], add_ass=True)
            ids = smol.tokenize(prompt, add_special=smol.add_bos, parse_special=True)
            gen, stopped = ctx.greedy(ids, 48, stop=im_end)
            ans = [t for t in gen if t != im_end]
            text = smol.pieces_text(ans)
            f.write(jdump({"question": q, "prompt": prompt, "ids": ids, "gen": gen,
                           "stopped": stopped, "text": text}) + "\n")
            log(f"chat {q!r} -> {text!r} (stopped={stopped})")
    return tmpl


def crosscheck_cli():
    """Re-tokenize every golden string with the llama-tokenize CLI (a second llama.cpp code path)."""
    import tempfile
    exe = LIBDIR / "llama-tokenize"
    n = 0
    with tempfile.TemporaryDirectory() as td:
        fpath = pathlib.Path(td) / "s.txt"

        def cli(model, text, special):
            fpath.write_bytes(text.encode("utf-8"))
            cmd = [str(exe), "-m", str(model), "-f", str(fpath), "--ids", "--no-bos",
                   "--no-escape", "--log-disable"] + ([] if special else ["--no-parse-special"])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
            return json.loads(out.splitlines()[-1]) if out else []

        for model, stem in ((SMOL, "tok_smollm2"), (STORIES, "tok_stories260K")):
            strings = read_inp(GOLDEN / f"{stem}.inp")
            outs = (GOLDEN / f"{stem}.out").read_text(encoding="utf-8").split("\n")
            for s, o in zip(strings, outs):
                want = [int(x) for x in o.split()]
                got = cli(model, s, special=False)
                assert got == want, f"{stem}: CLI mismatch on {s!r}: {got} vs {want}"
                n += 1
        for line in (GOLDEN / "tok_smollm2_special.jsonl").read_text(encoding="utf-8").splitlines():
            o = json.loads(line)
            got = cli(SMOL, o["text"], special=True)
            assert got == o["ids"], f"special CLI mismatch on {o['text']!r}: {got}"
            n += 1
    log(f"cross-check: llama-tokenize CLI agrees on all {n} tokenizer vectors")


def build_info() -> dict:
    info = {"llama_cpp_python": llama_cpp.__version__}
    try:
        info["system_info"] = L.llama_print_system_info().decode().strip()
    except Exception:  # noqa: BLE001
        pass
    try:
        out = subprocess.run([str(LIBDIR / "llama-bench"), "--version"], capture_output=True, text=True)
        info["llama_bench_version"] = (out.stdout + out.stderr).strip()
    except Exception:  # noqa: BLE001
        pass
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-harness-check", action="store_true")
    ap.add_argument("--skip-cli-check", action="store_true")
    args = ap.parse_args()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    L.llama_backend_init()
    if not args.skip_harness_check:
        check_harness_against_llamacpp_spm()
    smol = Model(SMOL)
    stories = Model(STORIES)
    log(f"SmolLM2: n_vocab={smol.n_vocab} add_bos={smol.add_bos} bos={smol.bos} eos={smol.eos}")
    log(f"stories260K: n_vocab={stories.n_vocab} add_bos={stories.add_bos} bos={stories.bos} eos={stories.eos}")
    gen_tokenizer(smol, stories)
    gen_stories(stories)
    ids, rows = gen_smol_topk(smol)
    nll = []
    for i in range(len(ids) - 1):
        x = rows[i].astype(np.float64)
        mx = x.max()
        nll.append(-(x[ids[i + 1]] - mx - np.log(np.sum(np.exp(x - mx)))))
    log(f"smollm2 GPL-3 600 tok: mean NLL {np.mean(nll):.4f} ppl {np.exp(np.mean(nll)):.3f}")
    gen_smol_chat(smol)
    if not args.skip_cli_check:
        crosscheck_cli()
    log("build info:", json.dumps(build_info()))


if __name__ == "__main__":
    main()
