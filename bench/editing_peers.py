"""editing_peers.py - issue 8's peer table: WISE and GRACE, run from
EasyEdit's source, against mome on the same SmolLM2 weights and zsRE facts.

Driven by bench/bench_editing.sh; each step is a subcommand:

  convert  GGUF -> a transformers model folder (transformers' GGUF loader
           dequantizes Q4_1 to f32), so the peers edit the weights mome runs.
  facts    the first N zsRE records with a non-empty `alt` (the selection
           bench_generalization.sh makes), as the fact file for `mome tune`.
  peer     one EasyEdit method (WISE or GRACE) edits all N facts into one
           model, one after another (EasyEdit's editor.edit(...,
           sequential_edit=True): the realistic setting, where the last
           fact's edit sits on top of the 99 before it), then scores.
  mome     scores a tuned mome memory: `mome eval --json` figures plus the
           teacher-forced token accuracy from build/.../editing_tfacc.
  table    the markdown table of the result files.

Every method is scored with the same measures:
  recall             greedy answer (at most 24 new tokens, stopping at an
                     end-of-generation token) to `src` equals `alt` after
                     mome's normalisation (facts_normalize_answer: trim
                     whitespace, runs of whitespace -> one space, drop one
                     final '.').
  paraphrase_recall  the same on `rephrase` (never trained).
  locality           share of `loc` questions ("nq question: " removed) whose
                     greedy answer after all edits is byte-identical to the
                     unedited model's.
  tf_*               EasyEdit's teacher-forced token accuracy, the papers'
                     Rel./Gen./Loc.: for the peers EasyEdit's own
                     compute_edit_quality (rewrite_acc on src -> alt,
                     rephrase_acc on rephrase -> alt, locality = share of the
                     `loc` + `loc_ans` answer tokens whose argmax is the same
                     after the edits as before); for mome the same
                     definitions computed by editing_tfacc.c under the engine.
Every question, for every method, is asked as mome asks it: SmolLM2's
ChatML turn as mome_chat_format renders it, "<|im_start|>user\\n{q}<|im_end|>
\\n<|im_start|>assistant\\n" (no default system prompt: the GGUF template's
"You are a helpful AI assistant named SmolLM" is not injected by mome, nor
here), tokenized without BOS (the GGUF says add_bos_token false).
"""
import argparse
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import resource
import sys
import time
import types

EOG_NAMES = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
             "<end_of_turn>", "<|endoftext|>", "</s>"]
WS = " \t\n\r\v\f"


def chat(q):
    """The prompt mome decodes for a user question (mome_chat_format, ChatML)."""
    return "<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n"


def normalize(s):
    """facts_normalize_answer (src/facts.c), byte for byte on str."""
    s = s.strip(WS)
    out = []
    for ch in s:
        if ch in WS:
            if out and out[-1] != " ":
                out.append(" ")
        else:
            out.append(ch)
    if out and out[-1] == ".":
        out.pop()
    while out and out[-1] == " ":
        out.pop()
    return "".join(out)


def starts(answer, alt):
    """The answer begins with the target (normalised both): recall for a
    method that states the answer but does not stop after it."""
    return normalize(answer).startswith(normalize(alt))


def loc_question(rec):
    """zsRE's `loc` without its "nq question:" prefix (as src/facts.c parses it)."""
    t = rec["loc"]
    p = "nq question:"
    if t.startswith(p):
        t = t[len(p):].lstrip(WS)
    return t


def load_facts(path, n):
    recs = [x for x in json.load(open(path)) if x.get("alt")]
    if len(recs) < n:
        sys.exit("%s: %d records with an answer, %d asked" % (path, len(recs), n))
    return recs[:n]


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------ convert

def cmd_convert(a):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(a.gguf))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    tok.save_pretrained(a.out)
    cfg = model.config
    print("convert: %s -> %s (%s, %d layers, hidden %d, f32)" %
          (a.gguf, a.out, cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size))


# -------------------------------------------------------------------- facts

def cmd_facts(a):
    recs = load_facts(a.zsre, a.n)
    json.dump(recs, open(a.out, "w"))
    # the questions mome will be asked, tokenized here, to compare with `mome tokenize`
    print("facts: %d zsRE records -> %s" % (len(recs), a.out))


# -------------------------------------------------------------------- peers

class Greedy:
    """Greedy answers as mome gives them: chat prompt, no BOS, argmax, stop at
    an end-of-generation token or max_new tokens, the pieces concatenated
    (special tokens render as nothing, no clean-up of spaces)."""

    def __init__(self, tok, max_new=24):
        self.tok = tok
        self.max_new = max_new
        vocab = tok.get_vocab()
        self.eog = sorted({vocab[t] for t in EOG_NAMES if t in vocab} |
                          ({tok.eos_token_id} if tok.eos_token_id is not None else set()))

    def ids(self, q):
        return self.tok(chat(q), add_special_tokens=False, return_tensors="pt")["input_ids"]

    def answers(self, gen, qs, batch=1):
        """Answers to qs, `batch` questions per generate call (left-padded:
        a batch's last prompt tokens share one position, which GRACE's
        replace_last needs; WISE's adapter takes one sequence at a time)."""
        if batch <= 1:
            return [self.answer(gen, q) for q in qs]
        import torch
        out_texts = []
        for i in range(0, len(qs), batch):
            chunk = [chat(q) for q in qs[i:i + batch]]
            x = self.tok(chunk, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
            with torch.no_grad():
                out = gen(input_ids=x["input_ids"], attention_mask=x["attention_mask"], max_new_tokens=self.max_new,
                          do_sample=False, num_beams=1, eos_token_id=self.eog, pad_token_id=self.eog[0])
            for row in out[:, x["input_ids"].shape[1]:].tolist():
                cut = [j for j, t in enumerate(row) if t in self.eog]
                row = row[:cut[0]] if cut else row
                out_texts.append(self.tok.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False))
        return out_texts

    def answer(self, gen, q):
        """gen(input_ids, **kw) -> ids: the model's (or the editor wrapper's) generate."""
        import torch
        x = self.ids(q)
        with torch.no_grad():
            out = gen(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=self.max_new,
                      do_sample=False, num_beams=1, eos_token_id=self.eog, pad_token_id=self.eog[0])
        new = out[0, x.shape[1]:].tolist()
        cut = [i for i, t in enumerate(new) if t in self.eog]
        new = new[:cut[0]] if cut else new
        return self.tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


class _AbsentMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _absent_class(cls.__qualname__ + "." + name)


def _absent_class(qualname):
    def fail(*a, **k):
        raise RuntimeError("%s: not installed here (stubbed by editing_peers.py)" % qualname)
    c = _AbsentMeta(qualname.rsplit(".", 1)[-1], (), {"__init__": fail, "__call__": fail})
    c.__qualname__ = qualname
    return c


class _Absent(types.ModuleType):
    """Stands in for a third-party module that EasyEdit's package imports but
    the WISE/GRACE text path never uses: any attribute (at any depth) is a
    class that cannot be instantiated or called."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _absent_class(self.__name__ + "." + name)


class _AbsentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: a module in STUBBED that is not installed
    imports as an _Absent. Installed modules are found first, as usual."""

    def __init__(self, names):
        self.names = set(names)
        self.used = set()

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            self.used.add(name)
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = _Absent(spec.name)
        m.__path__ = []
        return m

    def exec_module(self, module):
        pass


# Imported by easyeditor's editor module (through its imports of every
# method, dataset and evaluator) but not on the WISE/GRACE text path.
STUBBED = ["zhipuai", "omegaconf", "timm", "pandas", "iopath", "torchvision", "fairscale", "PIL", "cv2", "av", "qwen_vl_utils", "sentence_transformers", "einops", "datasets", "matplotlib", "hydra", "peft", "nltk", "openai", "rouge"]


def import_easyedit(src):
    """EasyEdit's BaseEditor and metric, imported from its source tree (never
    installed). Returns (editor module, evaluate module, the stubbed module
    names that were imported)."""
    finder = _AbsentFinder(STUBBED)
    sys.meta_path.append(finder)
    sys.path.insert(0, os.path.abspath(src))
    editor = importlib.import_module("easyeditor.editors.editor")
    evaluate = importlib.import_module("easyeditor.evaluate.evaluate")
    utils = importlib.import_module("easyeditor.editors.utils")
    return editor, evaluate, utils, sorted(finder.used)


def mean(xs):
    xs = [float(x) for x in xs]
    return sum(xs) / len(xs) if xs else None


def flat_acc(v):
    """An EasyEdit accuracy field: a number or a list of per-prompt numbers."""
    return mean(v) if isinstance(v, (list, tuple)) else float(v)


def cmd_peer(a):
    import numpy as np
    import torch
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(a.threads)
    t_start, c_start = time.time(), cpu_s()
    for k in ("model", "easyedit", "hparams", "facts", "negatives", "out"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    # EasyEdit's editor logs to ./logs/run.log: keep that out of the repo
    work = os.path.join(os.path.dirname(a.out), a.method + "-work")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    ee_editor, ee_eval, ee_utils, stubbed = import_easyedit(a.easyedit)
    hp_cls = {"WISE": "easyeditor.models.wise.wise_hparams.WISEHyperParams",
              "GRACE": "easyeditor.models.grace.grace_hparams.GraceHyperParams"}[a.method]
    mod, cls = hp_cls.rsplit(".", 1)
    hparams = getattr(importlib.import_module(mod), cls).from_hparams(a.hparams)
    hparams.model_name = os.path.abspath(a.model)
    recs = load_facts(a.facts, a.n)
    res = {"method": a.method, "n": len(recs), "budget_s": a.budget_s, "hparams": a.hparams, "easyedit": open(os.path.join(a.easyedit, ".rev")).read().strip()
           if os.path.exists(os.path.join(a.easyedit, ".rev")) else None, "stubbed_modules": stubbed,
           "threads": a.threads, "batch": a.batch}
    try:
        res.update(run_peer(a, hparams, recs, ee_editor, ee_eval, ee_utils, np, torch, AutoModelForCausalLM, AutoTokenizer))
    except Exception:
        import traceback
        res["error"] = traceback.format_exc()
        print(res["error"], file=sys.stderr)
    res["total_wall_s"], res["total_cpu_s"] = time.time() - t_start, cpu_s() - c_start
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps({k: v for k, v in res.items() if k not in ("answers", "error")}))
    if res.get("error"):
        sys.exit(1)


def run_peer(a, hparams, recs, ee_editor, ee_eval, ee_utils, np, torch, AutoModelForCausalLM, AutoTokenizer):
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(a.model)
    # EasyEdit's llama path sets pad = eos; SmolLM2's eos is <|im_end|>, which
    # every chat prompt contains, and EasyEdit masks labels and counts prompt
    # tokens by the pad id: GRACE would then key the token before the last
    # prompt token in training but the last one in generation. <|endoftext|>
    # (what EasyEdit's Qwen path pads with) never occurs in the prompts.
    tok.pad_token = "<|endoftext|>"
    # transformers' GGUF reader rebuilds SmolLM2's BPE tokenizer as a
    # LlamaTokenizerFast that adds BOS (the GGUF says add_bos_token false) and
    # names <|im_start|> as EOS (the GGUF: id 2, <|im_end|>). Put both back:
    # the chat prompts and answers then tokenize exactly as `mome tokenize
    # --no-bos` does (checked on 100 facts' src, rephrase, loc and alt).
    tok.add_bos_token = False
    tok.eos_token = "<|im_end|>"
    tok.padding_side = "left"  # what BaseEditor sets for fast tokenizers
    g = Greedy(tok)
    model.eval()
    prompts = [chat(r["src"]) for r in recs]
    rephrase = [chat(r["rephrase"]) for r in recs]
    locq = [loc_question(r) for r in recs]
    targets = [r["alt"] for r in recs]
    # WISE's irrelevant inputs (its deactivation loss): EasyEdit's zsRE example
    # uses `loc + ' ' + loc_ans` of other records; here NQ-open dev questions
    # with their first answer (NQ like zsRE's loc, and none of them a loc asked
    # in the evaluation), asked as mome asks.
    nq = [json.loads(l) for l in open(a.negatives)][:len(recs)]
    loc_prompts = [chat(x["question"]) + " " + x["answer"][0] for x in nq]

    def answers(m, qs):
        return g.answers(m.generate, qs, a.batch)

    # BaseEditor takes a (model, tokenizer) pair as model_name; its metric
    # code then wants the name as a string again.
    hparams.device = "cpu"
    path = hparams.model_name
    hparams.model_name = (model, tok)
    editor = ee_editor.BaseEditor(hparams)
    hparams.model_name = editor.model_name = path
    requests = ee_utils._prepare_requests(
        prompts, targets, ["<|endoftext|>"] * len(recs), None, rephrase,
        {"neighborhood": {"prompt": [chat(q) for q in locq], "ground_truth": [r["loc_ans"] for r in recs]}},
        None, loc_prompts=loc_prompts)

    def quality(m, r):
        return ee_eval.compute_edit_quality(m, path, hparams, tok, r, hparams.device, eval_metric="token em")

    # The edits: what editor.edit(..., sequential_edit=True) does (its
    # edit_func: the method's apply function on one request at a time, on the
    # same model, keep_original_weight=False), without the scoring it does
    # right after each edit (which doubles the time here and measures each
    # fact before the later edits exist). Stops when the time budget is spent.
    t0, c0 = time.time(), cpu_s()
    done, per_edit = 0, []
    for r in requests:
        if a.budget_s and time.time() - t0 > a.budget_s:
            break
        w = time.time()
        edited, _ = editor.apply_algo(editor.model, tok, [r], hparams, copy=False, return_orig_weights=True,
                                      keep_original_weight=False, train_ds=None)
        per_edit.append(time.time() - w)
        done += 1
        print("edit %d/%d: %.1f s" % (done, len(requests), per_edit[-1]), file=sys.stderr, flush=True)
    edit_wall, edit_cpu = time.time() - t0, cpu_s() - c0
    recs, requests, locq = recs[:done], requests[:done], locq[:done]

    # The unedited model (loaded again: the edits changed the first one in
    # place): its greedy answers to the loc questions and EasyEdit's "pre"
    # locality tokens, which its locality compares with the edited model's.
    t0 = time.time()
    unedited = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    known = dict(zip(locq, answers(unedited, locq)))  # in the same batches as after the edits
    base_wall = time.time() - t0
    t0 = time.time()
    # EasyEdit's own function for the locality part of compute_edit_quality
    # (the only "pre" figure its locality uses)
    pre = [{"locality": ee_eval.compute_locality_quality(
        unedited, path, hparams, tok, "neighborhood", r["locality"]["neighborhood"]["prompt"],
        r["locality"]["neighborhood"]["ground_truth"], hparams.device)} for r in requests]
    pre_wall = time.time() - t0
    del unedited

    # EasyEdit's metric on the final model, after all edits (the papers'
    # sequential setting)
    t0 = time.time()
    final = []
    for r, p0 in zip(requests, pre):
        post = quality(edited, r)
        pre_o = p0["locality"]["neighborhood_output"]
        post_o = post["locality"]["neighborhood_output"]
        final.append({"rewrite_acc": flat_acc(post["rewrite_acc"]), "rephrase_acc": flat_acc(post["rephrase_acc"]),
                      "locality": mean(float(np.mean(np.equal(x, y))) for x, y in zip(pre_o, post_o))})
    ee_final_wall = time.time() - t0

    t0 = time.time()
    post = {"src": answers(edited, [r["src"] for r in recs]),
            "rephrase": answers(edited, [r["rephrase"] for r in recs]),
            "loc": answers(edited, locq)}
    post_wall = time.time() - t0
    rec_ok = [normalize(x) == normalize(r["alt"]) for x, r in zip(post["src"], recs)]
    par_ok = [normalize(x) == normalize(r["alt"]) for x, r in zip(post["rephrase"], recs)]
    loc_ok = [x == known[q] for x, q in zip(post["loc"], locq)]
    return {
        "n": done, "n_asked": a.n,
        "recall": mean(rec_ok), "paraphrase_recall": mean(par_ok), "locality": mean(loc_ok),
        "starts_recall": mean(starts(x, r["alt"]) for x, r in zip(post["src"], recs)),
        "starts_paraphrase": mean(starts(x, r["alt"]) for x, r in zip(post["rephrase"], recs)),
        "tf_rewrite_acc": mean(f["rewrite_acc"] for f in final),
        "tf_rephrase_acc": mean(f["rephrase_acc"] for f in final),
        "tf_locality": mean(f["locality"] for f in final),
        "edit_wall_s": edit_wall, "edit_cpu_s": edit_cpu, "per_edit_s": per_edit,
        "eval_wall_s": base_wall + pre_wall + ee_final_wall + post_wall,
        "timings": {"greedy_base_s": base_wall, "easyedit_pre_s": pre_wall, "easyedit_final_s": ee_final_wall,
                    "greedy_post_s": post_wall},
        "settings": {k: v for k, v in vars(hparams).items() if k != "model_name"},
        "answers": [{"src": r["src"], "alt": r["alt"], "answer": post["src"][i], "rephrase": r["rephrase"],
                     "rephrase_answer": post["rephrase"][i], "loc": locq[i], "loc_base": known[locq[i]],
                     "loc_answer": post["loc"][i], "ok": [rec_ok[i], par_ok[i], loc_ok[i]]}
                    for i, r in enumerate(recs)],
    }


# --------------------------------------------------------------------- mome

def cmd_mome(a):
    recs = load_facts(a.facts, a.n)
    ev = json.load(open(a.eval_json))
    rows = [json.loads(l) for l in open(a.tfacc)]
    if len(rows) != 3 * len(recs) or any(r is None for r in rows):
        sys.exit("%s: %d rows for %d facts (or a failed row)" % (a.tfacc, len(rows), len(recs)))

    def acc(rs, key, ref):
        return sum(sum(x == y for x, y in zip(r[key], r[ref])) / len(r[ref]) for r in rs) / len(rs)

    n = len(recs)
    outs = [json.loads(l) for l in open(a.outputs)]
    ans = {k: [o["answer"] for o in outs if o["kind"] == k] for k in ("recall", "paraphrase")}
    res = {
        "method": "mome", "n": n,
        "starts_recall": mean(starts(x, r["alt"]) for x, r in zip(ans["recall"], recs)),
        "starts_paraphrase": mean(starts(x, r["alt"]) for x, r in zip(ans["paraphrase"], recs)),
        "recall": ev["recall"], "paraphrase_recall": ev["paraphrase_recall"], "locality": ev["locality"],
        "tf_rewrite_acc": acc(rows[:n], "mem", "target"),
        "tf_rephrase_acc": acc(rows[n:2 * n], "mem", "target"),
        "tf_locality": acc(rows[2 * n:], "mem", "base"),
        "edit_wall_s": a.edit_wall_s, "edit_cpu_s": a.edit_cpu_s,
        "eval_wall_s": a.eval_wall_s, "settings": a.settings,
    }
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps(res))


def cmd_tfacc_in(a):
    """The editing_tfacc input for mome: src -> alt, rephrase -> alt, loc -> loc_ans."""
    recs = load_facts(a.facts, a.n)
    with open(a.out, "w") as f:
        for r in recs:
            f.write(json.dumps({"question": r["src"], "target": r["alt"]}) + "\n")
        for r in recs:
            f.write(json.dumps({"question": r["rephrase"], "target": r["alt"]}) + "\n")
        for r in recs:
            f.write(json.dumps({"question": loc_question(r), "target": r["loc_ans"]}) + "\n")


# -------------------------------------------------------------------- table

def cmd_table(a):
    def f(x, d=3):
        return "-" if x is None else ("%.*f" % (d, x))
    print("| method | facts | recall | paraphrase_recall | locality | answer starts with alt (src / rephrase) | "
          "EasyEdit Rel. (src) | Gen. (rephrase) | Loc. (loc) | edit wall s (CPU s) | eval wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in a.results:
        if not os.path.exists(p):
            continue
        r = json.load(open(p))
        if r.get("error"):
            print("| %s | %d | did not run: %s ||||||||" % (r["method"], r["n"], r["error"].splitlines()[-1][:120]))
            continue
        print("| %s | %d | %s | %s | %s | %s / %s | %s | %s | %s | %s (%s) | %s |" % (
            r["method"], r["n"], f(r["recall"]), f(r["paraphrase_recall"]), f(r["locality"]),
            f(r["starts_recall"]), f(r["starts_paraphrase"]),
            f(r["tf_rewrite_acc"]), f(r["tf_rephrase_acc"]), f(r["tf_locality"]),
            f(r["edit_wall_s"], 0), f(r.get("edit_cpu_s"), 0), f(r["eval_wall_s"], 0)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("convert")
    p.add_argument("--gguf", required=True)
    p.add_argument("--out", required=True)
    p = sp.add_parser("facts")
    p.add_argument("--zsre", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p = sp.add_parser("peer")
    p.add_argument("--method", choices=["WISE", "GRACE"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--easyedit", required=True)
    p.add_argument("--hparams", required=True)
    p.add_argument("--facts", required=True)
    p.add_argument("--negatives", required=True, help="NQ-open jsonl: WISE's irrelevant inputs")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1, help="questions per greedy generate call")
    p.add_argument("--budget-s", type=float, default=0, help="stop editing after this many seconds (0: never)")
    p.add_argument("--out", required=True)
    p = sp.add_parser("tfacc-in")
    p.add_argument("--facts", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", required=True)
    p = sp.add_parser("mome")
    p.add_argument("--facts", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--eval-json", required=True)
    p.add_argument("--tfacc", required=True)
    p.add_argument("--outputs", required=True, help="mome eval --outputs file")
    p.add_argument("--edit-wall-s", type=float, required=True)
    p.add_argument("--edit-cpu-s", type=float)
    p.add_argument("--eval-wall-s", type=float, required=True)
    p.add_argument("--settings", default="")
    p.add_argument("--out", required=True)
    p = sp.add_parser("table")
    p.add_argument("results", nargs="+")
    a = ap.parse_args()
    {"convert": cmd_convert, "facts": cmd_facts, "peer": cmd_peer, "tfacc-in": cmd_tfacc_in,
     "mome": cmd_mome, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    main()
