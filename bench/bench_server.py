#!/usr/bin/env python3
"""bench_server.py - HTTP serving throughput: mome serve vs llama.cpp's
llama-server on the same model, machine and settings.

For each concurrency C (default 1, 4, 16) each server is started with C
slots (mome: --parallel C --ctx CTX; llama-server: -np C -c C*CTX, since its
context is shared by the slots), C clients each send R streamed
/v1/completions requests (greedy, max_tokens N, a different story prompt
each), and the script reports requests/s, aggregate generated tokens/s
(usage counts from the servers) and the median time to first token.

  bench/bench_server.py --mome build/mome --llama PATH/llama-server
      [-m MODEL] [-c 1,4,16] [-r 2] [-n 64] [-t 2] [--ctx 512] [--llama-args '--poll 0'] [-o OUT.md]

llama-server's threads poll for work by default (--poll 50); on a small shared
machine that collapses when another process holds a core, so the numbers are
only meaningful on an idle machine, or with --llama-args '--poll 0' (mome
serve always waits passively).
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time

PROMPTS = [
    "Once upon a time, in a small village by the sea, there lived",
    "The old lighthouse keeper climbed the stairs and saw",
    "In the year 2150, the first colony on Mars",
    "The little robot woke up in the junkyard and",
    "Deep in the forest, a fox found a strange box that",
    "The train stopped in the middle of nowhere, and",
    "When the dragon finally spoke, it said",
    "My grandmother always told me a story about",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_ready(port, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")


def one_request(port, prompt, n, model):
    """Streams one completion; returns (ttft_s, total_s, completion_tokens)."""
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError("HTTP %d: %s" % (r.status, r.read()[:200]))
    ttft, chunks, usage, buf = None, 0, None, b""
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        j = json.loads(data)
        if j.get("usage"):
            usage = j["usage"]
        for ch in j.get("choices") or []:
            if ch.get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.time() - t0
    c.close()
    total = time.time() - t0
    ntok = usage["completion_tokens"] if usage else chunks
    return ttft if ttft is not None else total, total, ntok


def run_load(port, clients, reps, n, model):
    res, errs = [], []
    lock = threading.Lock()

    def client(k):
        for i in range(reps):
            try:
                out = one_request(port, PROMPTS[(k + i * clients) % len(PROMPTS)], n, model)
                with lock:
                    res.append(out)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errs.append(repr(e))

    # one warm-up request (page-in, first allocation)
    one_request(port, PROMPTS[0], 4, model)
    t0 = time.time()
    th = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.time() - t0
    toks = sum(r[2] for r in res)
    return {"req_s": len(res) / wall, "tok_s": toks / wall, "ttft": statistics.median(r[0] for r in res) if res else -1,
            "n": len(res), "errors": len(errs), "tokens": toks, "wall": wall}


def start(kind, args, clients):
    port = free_port()
    env = dict(os.environ)
    if kind == "mome":
        # mome serve chooses its own OpenMP waits (passive after a short spin)
        cmd = [args.mome, "serve", "-m", args.model, "--port", str(port), "--parallel", str(clients), "--ctx",
               str(args.ctx), "-t", str(args.threads), "--queue", "64"]
        model = os.path.basename(args.model)
    else:
        cmd = [args.llama, "-m", args.model, "--port", str(port), "-np", str(clients), "-c",
               str(args.ctx * clients), "-t", str(args.threads), "-tb", str(args.threads), "--no-webui"]
        cmd += args.llama_args.split()
        model = os.path.basename(args.model)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(port, p)
    except RuntimeError:
        p.kill()
        p.wait()
        raise
    return p, port, model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mome", default="build/mome")
    ap.add_argument("--llama", default="")
    ap.add_argument("-m", "--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("-c", "--clients", default="1,4,16")
    ap.add_argument("-r", "--reps", type=int, default=2, help="requests per client")
    ap.add_argument("-n", "--max-tokens", type=int, default=64)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512, help="context per slot")
    ap.add_argument("--llama-args", default="", help="more llama-server arguments, e.g. '--poll 0'")
    ap.add_argument("-o", "--out", default="")
    args = ap.parse_args()
    kinds = ["mome"] + (["llama-server"] if args.llama else [])
    rows = []
    for c in [int(x) for x in args.clients.split(",")]:
        res = {}
        for kind in kinds:
            p, port, model = start(kind, args, c)
            try:
                res[kind] = run_load(port, c, args.reps, args.max_tokens, model)
            finally:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            r = res[kind]
            print("%-12s clients %2d: %6.2f req/s  %7.1f tok/s  TTFT %6.3f s  (%d requests, %d tokens, %d errors)"
                  % (kind, c, r["req_s"], r["tok_s"], r["ttft"], r["n"], r["tokens"], r["errors"]), flush=True)
        rows.append((c, res))
    lines = ["| clients | mome req/s | mome tok/s | mome TTFT s | llama-server req/s | llama-server tok/s |"
             " llama-server TTFT s | tok/s ratio mome/llama |", "|---|---|---|---|---|---|---|---|"]
    for c, res in rows:
        m = res["mome"]
        l = res.get("llama-server")
        lines.append("| %d | %.2f | %.1f | %.3f | %s | %s | %s | %s |" % (
            c, m["req_s"], m["tok_s"], m["ttft"], "%.2f" % l["req_s"] if l else "-", "%.1f" % l["tok_s"] if l else "-",
            "%.3f" % l["ttft"] if l else "-", "%.2f" % (m["tok_s"] / l["tok_s"]) if l else "-"))
    base = rows[0][1]["mome"]["tok_s"]
    lines.append("")
    lines.append("mome aggregate tok/s relative to %d client(s): " % rows[0][0] +
                 ", ".join("%d clients %.2fx" % (c, r["mome"]["tok_s"] / base) for c, r in rows))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
