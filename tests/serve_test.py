#!/usr/bin/env python3
"""serve_test.py - `mome serve` end to end, as applications meet it.

Run by tests/cli/test_serve.sh (from the repository root). Tunes a memory
of three facts, starts the real server on a free loopback port and checks:

  - the official `openai` Python client, unchanged: models, completions,
    chat, streaming (deltas join to the non-streamed text, usage chunk),
    stop strings, seeds, real token counts, prefix K/V reuse, memories
    chosen by "model" (chat and completions text), greedy answers equal to
    `mome run --temp 0`, and its error classes (404, 400, 401);
  - raw sockets: malformed JSON, wrong types, missing fields, invalid
    UTF-8, unknown parameters, bodies over the limit (413, with and without
    Content-Length), a half-sent request (closed after --timeout), a garbage
    request line, unknown paths, a client that disconnects mid-stream (its
    slot is freed), a full queue (503), /health, /metrics;
  - a load test: 1,000 requests from 16 clients, zero errors, every greedy
    answer identical to the single-client one, RSS flat after warm-up;
  - the page at / in headless Chromium (over the DevTools pipe): it lists
    the memory, a question gets the memory's answer, a screenshot is saved
    to build/test-artifacts/serve_page.png (skipped without Chromium);
  - the API key (a second server with MOME_API_KEY), and SIGTERM draining a
    stream in flight before a clean exit.

Prints one line per check and "N passed, N failed, N skipped"; exits 1 on
any failure.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MOME = os.environ.get("MOME", "build/mome")
MODEL = os.path.join(os.environ.get("MOME_MODELS", "models"), "SmolLM2-135M-Instruct.Q4_1.gguf")
BASE_ID = os.path.basename(MODEL)
FACTS = "tests/data/facts/projects_a.jsonl"
ART = "build/test-artifacts"
N_LOAD = int(os.environ.get("MOME_SERVE_LOAD", "1000"))

counts = {"pass": 0, "fail": 0, "skip": 0}


def ok(name):
    counts["pass"] += 1
    print("ok   " + name, flush=True)


def bad(name, why=""):
    counts["fail"] += 1
    print("FAIL %s%s" % (name, (": " + str(why)[:400]) if why else ""), flush=True)


def skip(name, why):
    counts["skip"] += 1
    print("skip %s: %s" % (name, why), flush=True)


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        bad(name, why)
    return cond


def finish():
    print("%d passed, %d failed, %d skipped" % (counts["pass"], counts["fail"], counts["skip"]), flush=True)
    sys.exit(1 if counts["fail"] else 0)


class Server:
    """A `mome serve` process on a free loopback port."""

    def __init__(self, tmp, name, args, env=None):
        self.ready = os.path.join(tmp, name + ".port")
        self.log = open(os.path.join(tmp, name + ".log"), "w+")
        e = dict(os.environ)
        e.pop("MOME_API_KEY", None)
        e.update(env or {})
        self.proc = subprocess.Popen([MOME, "serve", "-m", MODEL, "--port", "0", "--ready-file", self.ready] + args,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=e)
        t0 = time.time()
        while not os.path.exists(self.ready) or not open(self.ready).read().strip():
            if self.proc.poll() is not None or time.time() - t0 > 60:
                self.log.seek(0)
                raise RuntimeError("server did not start: " + self.log.read()[-500:])
            time.sleep(0.05)
        self.port = int(open(self.ready).read())

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def text_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def request(port, method, path, body=None, headers=None, timeout=60):
    """One HTTP request; returns (status, parsed JSON or raw text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode("utf-8", "replace")


def raw(port, data, timeout=10, read_all=True):
    """Sends raw bytes; returns what came back until the server closed (or
    the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            k = s.recv(65536)
            if not k:
                break
            out += k
            if not read_all and b"\r\n\r\n" in out:
                break
    except socket.timeout:
        pass
    s.close()
    return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return -1


def error_body(resp):
    """The OpenAI-style error object of a raw response, or None."""
    try:
        j = json.loads(resp.split(b"\r\n\r\n", 1)[1])
        e = j["error"]
        return e if isinstance(e.get("message"), str) and e.get("type") else None
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        return None


def mome_run(args):
    r = subprocess.run([MOME, "run", "-m", MODEL, "-t", "2", "--temp", "0"] + args, capture_output=True, text=True)
    return r.stdout


# ------------------------------------------------------------ openai client

def test_openai(port, mem_id, questions, answers):
    import openai
    client = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="none", max_retries=0, timeout=120)
    ids = [m.id for m in client.models.list().data]
    check("models.list: the base model and the memory", ids == [BASE_ID, mem_id], ids)
    m = client.models.retrieve(mem_id)
    check("models.retrieve: the memory, with its base model as parent", m.id == mem_id and
          getattr(m, "parent", None) == BASE_ID, m)

    prompt = "Once upon a time, there was a little robot who"
    c = client.completions.create(model=BASE_ID, prompt=prompt, max_tokens=16, temperature=0)
    ref = mome_run(["-p", prompt, "-n", "16"])
    check("completions: greedy text equals mome run --temp 0", c.choices[0].text + "\n" == ref,
          (c.choices[0].text, ref))
    ntok = len(subprocess.run([MOME, "tokenize", "-m", MODEL, "-p", prompt], capture_output=True,
                              text=True).stdout.split())
    check("completions: usage counts are real", c.usage.prompt_tokens > 0 and c.usage.completion_tokens == 16
          and c.usage.total_tokens == c.usage.prompt_tokens + 16 and c.choices[0].finish_reason == "length",
          (c.usage, c.choices[0].finish_reason, ntok))

    q = "What is the capital of France?"
    ch = client.chat.completions.create(model=BASE_ID, messages=[{"role": "user", "content": q}], temperature=0,
                                        max_tokens=24)
    ref = mome_run(["--chat", "-p", q, "-n", "24"])
    text = ch.choices[0].message.content
    check("chat: greedy answer equals mome run --chat --temp 0", text + "\n" == ref, (text, ref))
    check("chat: message role, finish_reason, id and object", ch.choices[0].message.role == "assistant"
          and ch.choices[0].finish_reason in ("stop", "length") and ch.object == "chat.completion"
          and ch.id.startswith("chatcmpl-"), ch)

    # streaming chat: role first, deltas join to the same text, usage at the end
    chunks = list(client.chat.completions.create(model=BASE_ID, messages=[{"role": "user", "content": q}],
                                                 temperature=0, max_tokens=24, stream=True,
                                                 stream_options={"include_usage": True}))
    joined = "".join(k.choices[0].delta.content or "" for k in chunks if k.choices)
    finals = [k.choices[0].finish_reason for k in chunks if k.choices and k.choices[0].finish_reason]
    usage = [k.usage for k in chunks if k.usage]
    check("chat stream: deltas join to the non-streamed answer", joined == text, (joined, text))
    check("chat stream: role first, one finish_reason, usage chunk", chunks[0].choices[0].delta.role == "assistant"
          and finals == [ch.choices[0].finish_reason] and len(usage) == 1
          and usage[0].completion_tokens == ch.usage.completion_tokens, (finals, usage))

    s = "".join(k.choices[0].text for k in client.completions.create(model=BASE_ID, prompt=prompt, max_tokens=16,
                                                                     temperature=0, stream=True))
    check("completions stream: text equals the non-streamed text", s == c.choices[0].text, (s, c.choices[0].text))

    # stop strings: cut before the stop string, streamed or not
    full = c.choices[0].text
    words = full.split(" ")
    stop = " " + words[3] if len(words) > 4 else None
    if stop and stop in full:
        cs = client.completions.create(model=BASE_ID, prompt=prompt, max_tokens=16, temperature=0, stop=[stop, "zzzz"])
        want = full[:full.index(stop)]
        st = "".join(k.choices[0].text for k in client.completions.create(
            model=BASE_ID, prompt=prompt, max_tokens=16, temperature=0, stop=stop, stream=True))
        check("stop strings: text cut before the stop, finish_reason stop (streamed too)",
              cs.choices[0].text == want and cs.choices[0].finish_reason == "stop" and st == want,
              (cs.choices[0].text, st, want))
    else:
        bad("stop strings: no word to stop at", full)

    # sampling: a seed reproduces; top_p accepted
    a = [client.completions.create(model=BASE_ID, prompt=prompt, max_tokens=12, temperature=0.9, top_p=0.95,
                                   seed=1234).choices[0].text for _ in range(2)]
    b = client.completions.create(model=BASE_ID, prompt=prompt, max_tokens=12, temperature=0.9, seed=99).choices[0].text
    check("seed: the same seed gives the same sample", a[0] == a[1] and len(a[0]) > 0, (a, b))

    # prefix reuse: a chat that continues reuses its earlier turns' K/V
    msgs = [{"role": "system", "content": "You are a terse assistant. " * 8},
            {"role": "user", "content": "Name a colour."}]
    r1 = client.chat.completions.create(model=BASE_ID, messages=msgs, temperature=0, max_tokens=8)
    msgs += [{"role": "assistant", "content": r1.choices[0].message.content},
             {"role": "user", "content": "Name another one."}]
    r2 = client.chat.completions.create(model=BASE_ID, messages=msgs, temperature=0, max_tokens=8)
    cached = r2.usage.prompt_tokens_details.cached_tokens if r2.usage.prompt_tokens_details else 0
    check("prefix reuse: the continued chat reuses the first turn's K/V", cached >= r1.usage.prompt_tokens - 1,
          (cached, r1.usage.prompt_tokens, r2.usage.prompt_tokens))

    # an answer does not depend on what the slot served before: a long prompt
    # decoded fresh (in chunks of 128 tokens), again from the cache (all but
    # its last 2 tokens reused), and after other traffic
    long_p = ("The history of the little harbour town is long and full of storms, ships and sailors. " * 10 +
              "One evening the old captain said")
    outs = [client.completions.create(model=BASE_ID, prompt=long_p, max_tokens=12, temperature=0)]
    outs.append(client.completions.create(model=BASE_ID, prompt=long_p, max_tokens=12, temperature=0))
    client.completions.create(model=BASE_ID, prompt="A different story: " + long_p[:200], max_tokens=4, temperature=0)
    outs.append(client.completions.create(model=BASE_ID, prompt=long_p, max_tokens=12, temperature=0))
    cached = [o.usage.prompt_tokens_details.cached_tokens for o in outs]
    check("a long prompt gives the same greedy text fresh and from the slot's cache (cached %s)" % cached,
          len({o.choices[0].text for o in outs}) == 1 and max(cached) > 150 and outs[0].usage.prompt_tokens > 160,
          [o.choices[0].text for o in outs])

    # memories: the memory answers its facts, the base model does not; on
    # completions text as on chat
    for q, want in zip(questions, answers):
        m = client.chat.completions.create(model=mem_id, messages=[{"role": "user", "content": q}], temperature=0,
                                           max_tokens=16).choices[0].message.content
        base = client.chat.completions.create(model=BASE_ID, messages=[{"role": "user", "content": q}],
                                              temperature=0, max_tokens=16).choices[0].message.content
        check("memory '%s' answers '%s'; the base model does not" % (mem_id, want), m.strip() == want and
              base.strip() != want, (m, base))
    # requests with the memory and without it at once share batches: the same answers
    jobs = [(mid, q) for q in questions for mid in (mem_id, BASE_ID)] * 2
    want = {}
    for mid, q in jobs[:len(jobs) // 2]:
        want[(mid, q)] = client.chat.completions.create(model=mid, messages=[{"role": "user", "content": q}],
                                                        temperature=0, max_tokens=16).choices[0].message.content
    got = {}

    def ask(i):
        mid, q = jobs[i]
        got[i] = client.chat.completions.create(model=mid, messages=[{"role": "user", "content": q}], temperature=0,
                                                max_tokens=16).choices[0].message.content
    th = [threading.Thread(target=ask, args=(i,)) for i in range(len(jobs))]
    for t in th:
        t.start()
    for t in th:
        t.join()
    check("memory and base requests at once (sharing batches) give their sequential answers",
          all(got.get(i) == want[jobs[i]] for i in range(len(jobs))), [(jobs[i], got.get(i)) for i in range(4)])
    chatml = "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" % questions[0]
    t = client.completions.create(model=mem_id, prompt=chatml, temperature=0, max_tokens=16).choices[0].text
    check("memory acts on /v1/completions text as on chat", t.strip() == answers[0], t)

    # the client's error classes
    def raises(name, cls, fn):
        try:
            fn()
            bad(name, "no error")
        except cls as e:
            check(name, isinstance(getattr(e, "body", None), dict) and "message" in e.body, e)
        except Exception as e:  # noqa: BLE001 - any other class is the failure
            bad(name, repr(e))

    raises("models.retrieve of an unknown id: NotFoundError (404)", openai.NotFoundError,
           lambda: client.models.retrieve("nope"))
    raises("unknown model: NotFoundError (404)", openai.NotFoundError,
           lambda: client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}]))
    raises("n=2: BadRequestError (400)", openai.BadRequestError,
           lambda: client.completions.create(model=BASE_ID, prompt="hi", n=2))
    raises("logprobs: BadRequestError (400)", openai.BadRequestError,
           lambda: client.chat.completions.create(model=BASE_ID, messages=[{"role": "user", "content": "hi"}],
                                                  logprobs=True))
    raises("tools: BadRequestError (400)", openai.BadRequestError,
           lambda: client.chat.completions.create(model=BASE_ID, messages=[{"role": "user", "content": "hi"}],
                                                  tools=[{"type": "function", "function": {"name": "f"}}]))
    raises("max_tokens absurd: BadRequestError (400)", openai.BadRequestError,
           lambda: client.completions.create(model=BASE_ID, prompt="hi", max_tokens=10 ** 9))
    raises("prompt longer than the context: BadRequestError (400)", openai.BadRequestError,
           lambda: client.completions.create(model=BASE_ID, prompt="one two three " * 400, max_tokens=4))


# ------------------------------------------------------------ raw sockets

def post(path, body, extra=b""):
    if isinstance(body, str):
        body = body.encode()
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def test_raw(port):
    cases = [
        ("malformed JSON", "/v1/chat/completions", '{"messages": [', 400),
        ("not an object", "/v1/completions", "[1, 2]", 400),
        ("messages of the wrong type", "/v1/chat/completions", '{"messages": "hi"}', 400),
        ("prompt of the wrong type", "/v1/completions", '{"prompt": 5}', 400),
        ("max_tokens as a string", "/v1/completions", '{"prompt": "a", "max_tokens": "5"}', 400),
        ("max_tokens negative", "/v1/completions", '{"prompt": "a", "max_tokens": -3}', 400),
        ("temperature out of range", "/v1/completions", '{"prompt": "a", "temperature": -1}', 400),
        ("missing messages", "/v1/chat/completions", '{"model": "%s"}' % BASE_ID, 400),
        ("missing prompt", "/v1/completions", "{}", 400),
        ("empty messages", "/v1/chat/completions", '{"messages": []}', 400),
        ("unknown role", "/v1/chat/completions", '{"messages": [{"role": "tool", "content": "x"}]}', 400),
        ("content of the wrong type", "/v1/chat/completions", '{"messages": [{"role": "user", "content": 3}]}', 400),
        ("unknown parameter", "/v1/completions", '{"prompt": "a", "frobnicate": 1}', 400),
        ("stop of the wrong type", "/v1/completions", '{"prompt": "a", "stop": [1]}', 400),
        ("five stop strings", "/v1/completions", '{"prompt": "a", "stop": ["a","b","c","d","e"]}', 400),
        ("unknown model", "/v1/completions", '{"prompt": "a", "model": "gpt-4"}', 404),
        ("lone surrogate escape", "/v1/completions", '{"prompt": "\\ud800"}', 400),
        ("stream_options without stream", "/v1/completions",
         '{"prompt": "a", "stream_options": {"include_usage": true}}', 400),
        ("max_completion_tokens on a completion", "/v1/completions", '{"prompt": "a", "max_completion_tokens": 2}', 400),
    ]
    for name, path, body, want in cases:
        resp = raw(port, post(path, body))
        check("raw: %s -> %d with an error body" % (name, want), status_of(resp) == want and error_body(resp),
              resp[:300])
    nulls = ('{"prompt": "a", "max_tokens": 2, "model": null, "temperature": null, "top_p": null, "seed": null, '
             '"stream": null, "stream_options": null, "stop": null}')
    resp = raw(port, post("/v1/completions", nulls))
    check("raw: every optional field null = not given -> 200", status_of(resp) == 200, resp[:300])
    resp = raw(port, post("/v1/chat/completions", '{"messages": [{"role": "user", "content": "Hi"}], '
                                                  '"max_completion_tokens": null, "max_tokens": 2}'))
    check("raw: chat max_completion_tokens null -> 200", status_of(resp) == 200, resp[:300])
    resp = raw(port, post("/v1/completions", b'{"prompt": "caf\xc3\x28 \xff"}'))
    check("raw: invalid UTF-8 -> 400", status_of(resp) == 400 and error_body(resp), resp[:300])
    resp = raw(port, post("/v1/completions", b'{"prompt": "' + b"a" * 70000 + b'"}'))
    check("raw: body over --max-body with Content-Length -> 413", status_of(resp) == 413 and error_body(resp),
          resp[:200])
    body = b'{"prompt": "' + b"a" * 70000 + b'"}'
    chunked = b""
    for i in range(0, len(body), 8000):
        part = body[i:i + 8000]
        chunked += b"%x\r\n" % len(part) + part + b"\r\n"
    chunked += b"0\r\n\r\n"
    resp = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n" + chunked)
    check("raw: chunked body over the limit -> 413", status_of(resp) == 413, resp[:200])
    resp = raw(port, b"GARBAGE\r\n\r\n")
    check("raw: a request line without a version: connection closed, no answer", resp == b"", resp[:200])
    resp = raw(port, b"GET /health HTTP/1.1\r\nHost x\r\n\r\n")
    check("raw: a header line without a colon -> 400", status_of(resp) == 400, resp[:200])
    resp = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    check("raw: a bad Content-Length -> 400", status_of(resp) == 400, resp[:200])
    resp = raw(port, b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n")
    check("raw: an unknown HTTP version -> 505", status_of(resp) == 505, resp[:200])
    resp = raw(port, b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check("raw: unknown path -> 404 with an error body", status_of(resp) == 404 and error_body(resp), resp[:200])
    resp = raw(port, b"GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check("raw: GET on a POST endpoint -> 405", status_of(resp) == 405 and error_body(resp), resp[:200])
    # half-sent: the server closes the connection after --timeout (2 s)
    t0 = time.time()
    resp = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro", timeout=15)
    dt = time.time() - t0
    check("raw: a half-sent request is closed after the timeout", 1.5 < dt < 10, "%.1f s, %r" % (dt, resp[:100]))
    t0 = time.time()
    resp = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n", timeout=15)
    dt = time.time() - t0
    check("raw: headers never finished are closed after the timeout", 1.5 < dt < 10, "%.1f s" % dt)
    st, h = request(port, "GET", "/health")
    check("the server keeps serving after bad input (/health)", st == 200 and h.get("status") == "ok", (st, h))

    # a client that disconnects mid-stream frees its slot at once
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(post("/v1/completions", json.dumps({"prompt": "Tell me a long story.", "max_tokens": 400,
                                                  "temperature": 0, "stream": True})))
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    s.close()
    t0 = time.time()
    busy = 1
    while time.time() - t0 < 3:
        st, h = request(port, "GET", "/health")
        busy = h.get("slots_busy", -1)
        if busy == 0:
            break
        time.sleep(0.05)
    check("a client that disconnects mid-stream frees its slot (%.2f s)" % (time.time() - t0), busy == 0, h)


def test_queue_full(port, n_slots_queue):
    """More concurrent requests than slots + queue: the rest get 503."""
    socks = []
    n = n_slots_queue + 6
    body = json.dumps({"prompt": "Count to one hundred:", "max_tokens": 200, "temperature": 0, "stream": True})
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(post("/v1/completions", body))
        socks.append(s)
    codes = []
    for s in socks:
        head = b""
        while b"\r\n" not in head:
            k = s.recv(4096)
            if not k:
                break
            head += k
        codes.append(status_of(head))
    for s in socks:
        s.close()
    n503 = codes.count(503)
    check("a full queue: %d requests beyond slots + queue get 503, the others 200" % n503,
          n503 >= 6 and codes.count(200) + n503 == n, codes)
    t0 = time.time()
    while time.time() - t0 < 5:
        st, h = request(port, "GET", "/health")
        if h.get("slots_busy") == 0 and h.get("queued") == 0:
            break
        time.sleep(0.05)
    check("after the clients left, slots and queue are empty", h.get("slots_busy") == 0 and h.get("queued") == 0, h)


def test_metrics(port):
    st, text = request(port, "GET", "/metrics")
    need = ['mome_requests_total{code="200"}', 'mome_requests_total{code="400"}', "mome_generated_tokens_total",
            "mome_prompt_tokens_total", "mome_queue_depth", "mome_slots_busy", "mome_slots_total",
            'mome_request_duration_seconds_bucket{le="+Inf"}', "mome_time_to_first_token_seconds_count",
            "# TYPE mome_request_duration_seconds histogram"]
    missing = [n for n in need if n not in text]
    check("/metrics: Prometheus text with requests, tokens, queue, slots, histograms", st == 200 and not missing,
          missing)


# ------------------------------------------------------------ load test

def test_load(srv, prompts):
    port = srv.port
    body = lambda p: json.dumps({"model": BASE_ID, "prompt": p, "max_tokens": 3, "temperature": 0})
    ref = {}
    for p in prompts:  # single client, one at a time
        st, j = request(port, "POST", "/v1/completions", body(p))
        ref[p] = j["choices"][0]["text"] if st == 200 else None
    errors, mismatch, done = [], [], [0]
    lock = threading.Lock()
    rss = {}

    def client(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = done[0]
                if i >= N_LOAD:
                    break
                done[0] += 1
                if i == N_LOAD // 5:
                    rss["warm"] = srv.rss_kb()
            p = prompts[(i * 7 + k) % len(prompts)]
            try:
                c.request("POST", "/v1/completions", body=body(p), headers={"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                if r.status != 200:
                    errors.append((r.status, data[:200]))
                    continue
                t = json.loads(data)["choices"][0]["text"]
                if t != ref[p]:
                    mismatch.append((p, t, ref[p]))
            except Exception as e:  # noqa: BLE001 - every failure counts
                errors.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.close()

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    rss["end"] = srv.rss_kb()
    check("load: %d requests from 16 clients in %.1f s, zero errors" % (N_LOAD, dt), not errors, errors[:3])
    check("load: every greedy answer identical to the single-client one", not mismatch and None not in ref.values(),
          mismatch[:3])
    grow = rss["end"] - rss.get("warm", rss["end"])
    check("load: RSS flat after warm-up (%d kB -> %d kB)" % (rss.get("warm", -1), rss["end"]), grow < 8192, grow)


# ------------------------------------------------------------ browser

def find_chromium():
    for n in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(n)
        if p:
            return p
    return None


def test_page(port, mem_id, question, answer, attempt=0):
    br = find_chromium()
    if not br:
        skip("page in headless Chromium", "no chromium (apt-get install chromium)")
        return
    if attempt == 0:
        st, html = request(port, "GET", "/")
        check("GET / serves the page", st == 200 and "<textarea" in html and "/v1/chat/completions" in html, st)
    # DevTools protocol over a pipe: commands on fd 3, replies on fd 4, NUL-separated JSON
    r_cmd, w_cmd = os.pipe()
    r_out, w_out = os.pipe()
    udd = tempfile.mkdtemp()

    cmd = ('exec "$0" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --remote-debugging-pipe '
           '--window-size=900,700 --user-data-dir="$1" about:blank 3<&%d 4>&%d' % (r_cmd, w_out))
    err = open(os.path.join(udd, "stderr.txt"), "w+")
    # bash: dash's redirections take one-digit fds only
    p = subprocess.Popen(["bash", "-c", cmd, br, udd], pass_fds=(r_cmd, w_out), stdout=subprocess.DEVNULL,
                         stderr=err)
    os.close(r_cmd)
    os.close(w_out)
    buf = [b""]
    msg_id = [0]
    retry = False

    def call(method, params=None, session=None, timeout=30):
        msg_id[0] += 1
        m = {"id": msg_id[0], "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        try:
            os.write(w_cmd, json.dumps(m).encode() + b"\0")
        except OSError:
            raise RuntimeError("chromium exited")
        t0 = time.time()
        while time.time() - t0 < timeout:
            while b"\0" in buf[0]:
                one, buf[0] = buf[0].split(b"\0", 1)
                j = json.loads(one)
                if j.get("id") == msg_id[0]:
                    if "error" in j:
                        raise RuntimeError(j["error"])
                    return j["result"]
            import select
            if select.select([r_out], [], [], 1)[0]:
                k = os.read(r_out, 1 << 20)
                if not k:
                    raise RuntimeError("chromium exited")
                buf[0] += k
        raise RuntimeError("no reply to " + method)

    try:
        url = "http://127.0.0.1:%d/?model=%s&q=%s" % (port, mem_id, question.replace(" ", "%20").replace("?", "%3F"))
        tid = call("Target.createTarget", {"url": url})["targetId"]
        sid = call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        got, t0 = None, time.time()
        while time.time() - t0 < 60:
            v = call("Runtime.evaluate", {"returnByValue": True, "expression":
                     "(() => { const a = document.querySelector('.assistant, .error');"
                     " const o = [...document.querySelectorAll('#model option')].map(x => x.value);"
                     " return JSON.stringify({done: a ? (a.dataset.done || a.className) : '',"
                     " text: a ? a.textContent : '', models: o}); })()"}, sid)
            got = json.loads(v["result"]["value"])
            if got["done"] == "1" or "error" in got["done"]:
                break
            time.sleep(0.2)
        check("page: lists the base model and the memory", got and got["models"] == [BASE_ID, mem_id], got)
        check("page: a question gets the memory's answer", got and got["done"] == "1" and got["text"].strip() == answer,
              got)
        shot = call("Page.captureScreenshot", {"format": "png"}, sid)
        os.makedirs(ART, exist_ok=True)
        png = base64.b64decode(shot["data"])
        with open(os.path.join(ART, "serve_page.png"), "wb") as f:
            f.write(png)
        check("page: screenshot saved to %s/serve_page.png (%d bytes)" % (ART, len(png)),
              png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000)
    except RuntimeError as e:
        msg = str(e)
        err.seek(0)
        log = [x for x in err.read().splitlines() if "dbus" not in x][-3:]
        print("  chromium: %s (exit %s): %s" % (msg, p.poll(), log), flush=True)
        if "chromium exited" in msg and msg_id[0] <= 1 and attempt == 0:
            retry = True  # a start that fails under load: once more
        elif "chromium exited" in msg and msg_id[0] <= 1:
            skip("page in headless Chromium", "chromium does not start here")
        else:
            bad("page in headless Chromium", msg)
    finally:
        try:
            os.write(w_cmd, json.dumps({"id": 999999, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        os.close(w_cmd)
        os.close(r_out)
        err.close()
        shutil.rmtree(udd, ignore_errors=True)
    if retry:
        test_page(port, mem_id, question, answer, 1)


# ------------------------------------------------------------ auth, drain

def test_auth(tmp, mem):
    keyfile = os.path.join(tmp, "key")
    srv = Server(tmp, "auth", ["--memory", mem, "--parallel", "2", "--ctx", "256", "-t", "2"],
                 env={"MOME_API_KEY": "s3cret-key"})
    try:
        port = srv.port
        body = {"prompt": "Hello", "max_tokens": 2, "temperature": 0}
        st, j = request(port, "POST", "/v1/completions", body)
        check("auth: no key -> 401 with an error body", st == 401 and isinstance(j, dict) and "error" in j, (st, j))
        st, j = request(port, "POST", "/v1/completions", body, {"Authorization": "Bearer s3cret-kez"})
        check("auth: a wrong key of the same length -> 401", st == 401, st)
        st, j = request(port, "POST", "/v1/completions", body, {"Authorization": "Bearer s3cret-key-longer"})
        check("auth: a longer key -> 401", st == 401, st)
        st, j = request(port, "GET", "/v1/models", None, {"Authorization": "Bearer s3cret-key"})
        check("auth: the right key -> 200", st == 200 and len(j.get("data", [])) == 2, (st, j))
        st, _ = request(port, "GET", "/health")
        check("auth: /health needs no key", st == 200, st)
        import openai
        cl = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="wrong", max_retries=0)
        try:
            cl.models.list()
            bad("auth: openai client with a wrong key raises AuthenticationError")
        except openai.AuthenticationError:
            ok("auth: openai client with a wrong key raises AuthenticationError")
        cl = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="s3cret-key", max_retries=0)
        check("auth: openai client with the key works",
              len(cl.completions.create(model=BASE_ID, prompt="Hi", max_tokens=2).choices) == 1)
    finally:
        srv.stop()
    with open(keyfile, "w") as f:
        f.write("file-key\n")
    srv = Server(tmp, "authfile", ["--parallel", "1", "--ctx", "128", "-t", "2", "--api-key-file", keyfile])
    try:
        st1, _ = request(srv.port, "GET", "/v1/models", None, {"Authorization": "Bearer file-key"})
        st2, _ = request(srv.port, "GET", "/v1/models")
        check("auth: --api-key-file (trailing newline dropped)", st1 == 200 and st2 == 401, (st1, st2))
    finally:
        srv.stop()


def test_drain(tmp):
    srv = Server(tmp, "drain", ["--parallel", "2", "--ctx", "256", "-t", "2"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(post("/v1/completions", json.dumps({"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0,
                                                  "stream": True})))
    got = b""
    while b"data: " not in got:
        got += s.recv(4096)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    try:
        st, j = request(srv.port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2}, timeout=10)
        refused = st == 503
    except OSError:
        refused = True
    while True:
        k = s.recv(65536)
        if not k:
            break
        got += k
    s.close()
    rc = srv.proc.wait(30)
    check("SIGTERM: the stream in flight finishes ([DONE]), new requests get 503, exit status 0",
          b"data: [DONE]" in got and b'"finish_reason":"length"' in got and refused and rc == 0,
          (got[-200:], refused, rc, srv.text_log()[-300:]))


def main():
    if not os.path.exists(MODEL):
        skip("all", MODEL + " absent (make model)")
        finish()
    try:
        import openai  # noqa: F401
    except ImportError:
        bad("import openai", "the openai client is missing (tools/setup.sh deps installs it into build/pydeps)")
        finish()
    tmp = tempfile.mkdtemp()
    try:
        facts = os.path.join(tmp, "projects.jsonl")
        lines = open(FACTS).read().splitlines()[:3]
        with open(facts, "w") as f:
            f.write("\n".join(lines) + "\n")
        mem = os.path.join(tmp, "projects.mome")
        r = subprocess.run([os.environ.get("MOME_TUNE", MOME), "tune", "-m", MODEL, "--facts", facts, "-o", mem, "-t", "2"], capture_output=True,
                           text=True)
        if not check("tune a memory of 3 facts for the server", r.returncode == 0, r.stderr[-300:]):
            finish()
        qs = [json.loads(x)["question"] for x in lines]
        ans = [json.loads(x)["answer"] for x in lines]
        srv = Server(tmp, "main", ["--memory", mem, "--parallel", "4", "--ctx", "512", "--queue", "12",
                                   "--timeout", "2", "--max-body", "65536", "-t", "2"])
        try:
            r = subprocess.run([MOME, "serve", "-m", MODEL, "--port", str(srv.port), "--ctx", "64", "--parallel", "1",
                                "-t", "1"], capture_output=True, text=True, timeout=60)
            lines = r.stderr.strip().splitlines()
            check("a port in use: exit 1 and one error line naming it", r.returncode == 1 and len(lines) == 1 and
                  "cannot listen" in lines[0] and "in use" in lines[0], r.stderr[-300:])
            test_openai(srv.port, "projects", qs, ans)
            test_raw(srv.port)
            test_queue_full(srv.port, 4 + 12)
            prompts = ["Once upon a time", "The cat sat on", "In a small village,", "My favourite food is",
                       "The weather today", "One, two, three,", "Dear diary,", "The quick brown fox"]
            test_load(srv, prompts)
            test_page(srv.port, "projects", qs[0], ans[0])
            test_metrics(srv.port)
        finally:
            rc = srv.stop()
            check("main server exits 0 on SIGTERM", rc == 0, srv.text_log()[-300:])
        test_auth(tmp, mem)
        test_drain(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
