#!/usr/bin/env python3
"""Side-by-side throughput benchmark: mome vs llama.cpp (llama-bench), one run, same model file.

    bench/bench_engine.sh [-m MODEL] [-r REPS] [-t 1,2] [-p 128] [-n 128]

For each thread count T it runs, each in its own dedicated child process:
    llama.cpp : .ref/llama.cpp/build/bin/llama-bench -m M -p P -n N -t T -r R -o json
    mome      : build/mome bench -m M -p P -n N -t T -r R --json
Both tools use their own defaults for everything else (no flags are tuned for either side).
Semantics (llama-bench's): pp = one batch of P prompt tokens into an empty KV cache;
tg = N tokens generated one at a time starting from an empty KV cache; each side
does its own warm-up. Reported t/s = MEDIAN over the R per-repetition samples
(llama-bench JSON `samples_ts`, mome JSON `pp_tps` / `tg_tps`).
Peak RSS = ru_maxrss of that child alone, from os.wait4() (per-child rusage;
equivalent to getrusage(RUSAGE_CHILDREN) around a single dedicated run).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
LLAMA_BENCH = ROOT / ".ref" / "llama.cpp" / "build" / "bin" / "llama-bench"
MOME = ROOT / "build" / "mome"
DEFAULT_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run_child(cmd: list[str], env=None) -> tuple[int, str, str, int, float]:
    """Run cmd as a dedicated child; return (rc, stdout, stderr, peak_rss_kib, wall_s)."""
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        fo.seek(0)
        fe.seek(0)
        return (p.returncode, fo.read().decode("utf-8", "replace"),
                fe.read().decode("utf-8", "replace"), int(ru.ru_maxrss), wall)


def lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def med(xs):
    return statistics.median(xs) if xs else None


def bench_llama(model, p, n, t, r):
    cmd = [str(LLAMA_BENCH), "-m", str(model), "-p", str(p), "-n", str(n),
           "-t", str(t), "-r", str(r), "-o", "json"]
    rc, out, err, rss, wall = run_child(cmd)
    res = {"cmd": cmd, "rss_kib": rss, "wall_s": wall, "pp": None, "tg": None, "error": None}
    if rc != 0:
        res["error"] = f"llama-bench rc={rc}: {err.strip()[-500:]}"
        return res
    data = json.loads(out)
    for row in data:
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            res["pp"] = med(row["samples_ts"])
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            res["tg"] = med(row["samples_ts"])
    res["build"] = f'{data[0].get("build_commit")} ({data[0].get("build_number")})' if data else None
    res["backend"] = data[0].get("backends") if data else None
    return res


def bench_mome(model, p, n, t, r):
    cmd = [str(MOME), "bench", "-m", str(model), "-p", str(p), "-n", str(n),
           "-t", str(t), "-r", str(r), "--json"]
    res = {"cmd": cmd, "rss_kib": None, "wall_s": None, "pp": None, "tg": None, "error": None}
    if not os.access(MOME, os.X_OK):
        res["error"] = f"{MOME} not found or not executable (build it with `make`); mome column left empty"
        return res
    rc, out, err, rss, wall = run_child(cmd)
    res.update(rss_kib=rss, wall_s=wall)
    if rc != 0:
        res["error"] = f"mome rc={rc}: {err.strip()[-500:]}"
        return res
    try:
        # last line that parses as a JSON object
        obj = None
        for line in reversed(out.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                obj = json.loads(line)
                break
        if obj is None:
            obj = json.loads(out)
        if obj.get("pp_tokens", p) != p or obj.get("tg_tokens", n) != n or obj.get("threads", t) != t:
            res["error"] = f"mome reported different settings: {obj}"
        res["pp"] = med(obj.get("pp_tps") or [])
        res["tg"] = med(obj.get("tg_tps") or [])
        res["kernels"] = obj.get("kernels")
        if len(obj.get("pp_tps") or []) != r or len(obj.get("tg_tps") or []) != r:
            res["error"] = (res["error"] or "") + f" (expected {r} samples each)"
    except (ValueError, AttributeError) as e:
        res["error"] = f"could not parse mome JSON ({e}): {out.strip()[-300:]}"
    return res


def fmt(x, nd=2):
    return "—" if x is None else f"{x:.{nd}f}"


def main():
    global MOME, LLAMA_BENCH
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default=str(DEFAULT_MODEL))
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-t", "--threads", default="1,2")
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--mome", default=str(MOME), help="mome binary (default build/mome)")
    ap.add_argument("--llama-bench", default=str(LLAMA_BENCH), help="llama-bench binary")
    ap.add_argument("-o", "--out", default=str(ROOT / "bench" / "out" / "engine.md"))
    a = ap.parse_args()

    MOME = pathlib.Path(a.mome).absolute()
    LLAMA_BENCH = pathlib.Path(a.llama_bench).absolute()
    model = pathlib.Path(a.model).resolve()
    if not model.is_file():
        sys.exit(f"model not found: {model}")
    if not os.access(LLAMA_BENCH, os.X_OK):
        sys.exit(f"{LLAMA_BENCH} missing: run tests/reference/setup.sh")
    threads = [int(x) for x in a.threads.split(",") if x]

    rows, rss, notes = [], [], []
    for t in threads:
        # alternate which engine goes first so neither systematically gets the "cold" slot
        order = [("llama.cpp", bench_llama), ("mome", bench_mome)]
        if t % 2 == 0:
            order.reverse()
        res = {}
        for name, fn in order:
            print(f"[bench] {name} t={t} ...", file=sys.stderr, flush=True)
            res[name] = fn(model, a.p, a.n, t, a.reps)
            if res[name]["error"]:
                notes.append(f"{name} t={t}: {res[name]['error']}")
        mo, ll = res["mome"], res["llama.cpp"]
        for test, key, nn in (("pp", "pp", a.p), ("tg", "tg", a.n)):
            ratio = (mo[key] / ll[key]) if (mo[key] and ll[key]) else None
            rows.append((f"{test}{nn}", t, mo[key], ll[key], ratio))
        rss.append((t, mo["rss_kib"], ll["rss_kib"]))
        if t == threads[0]:
            llama_cmd, mome_cmd = ll["cmd"], mo["cmd"]
            llama_build = ll.get("build")
            mome_kernels = mo.get("kernels")

    def rel(cmd):
        return " ".join(shlex.quote(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c) for c in cmd)

    lines = []
    lines.append(f"# mome vs llama.cpp — {model.name}")
    lines.append("")
    lines.append(f"- machine: {lscpu_model()}, nproc={os.cpu_count()}, {platform.system()} {platform.release()}")
    lines.append(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    lines.append(f"- llama.cpp: llama-cpp-python 0.3.36 vendored llama.cpp, build {llama_build}")
    lines.append(f"- mome kernels: {mome_kernels}")
    lines.append(f"- repetitions: {a.reps}; t/s = median of per-repetition samples; ratio = mome / llama.cpp")
    cmdline = " ".join(["bench/bench_engine.sh"] + [shlex.quote(x) for x in sys.argv[1:]])
    lines.append(f"- command: `{cmdline}`")
    lines.append(f"  - llama.cpp (per T): `{rel(llama_cmd)}`")
    lines.append(f"  - mome (per T): `{rel(mome_cmd)}`")
    lines.append("")
    lines.append("| test | threads | mome t/s | llama.cpp t/s | ratio |")
    lines.append("|---|---:|---:|---:|---:|")
    for test, t, m, l, r in rows:
        lines.append(f"| {test} | {t} | {fmt(m)} | {fmt(l)} | {fmt(r, 3)} |")
    lines.append("")
    lines.append("Peak RSS (ru_maxrss of each dedicated child process via os.wait4, whole bench run incl. load):")
    lines.append("")
    for t, m, l in rss:
        ms = "—" if m is None else f"{m / 1024:.1f} MiB"
        ls = "—" if l is None else f"{l / 1024:.1f} MiB"
        lines.append(f"- threads={t}: mome {ms}, llama.cpp {ls}")
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines.append("")
        for n in notes:
            lines.append(f"- {n}")
    text = "\n".join(lines) + "\n"
    print(text)
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"[bench] wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
