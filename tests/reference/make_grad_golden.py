#!/usr/bin/env python3
"""make_grad_golden.py - the independent reference for mome's training gradients.

Reads tests/golden/grad_case.gguf (written by tests/reference/make_grad_case.c:
a tiny random llama model plus the "case.*" inputs) with the `gguf` package,
defines the llama blocks in jax.numpy from their published definitions
(RMSNorm, rotary embeddings on adjacent pairs, grouped-query causal attention,
SwiGLU feed-forward, final norm, output head, cross-entropy), and uses
jax.grad (float64) for the gradients of

    loss = sum over sequences of mean_{rows with target >= 0} CE(logits, target)

with respect to the input X of layer l0, the memory expert's A and B
(X = h + coef * B (A xhat)), and the LoRA adapters' A and B
(y = W x + (alpha / rank) * B (A x)). Writes tests/golden/grad_case.json.

Before that it checks the model definition: the full forward of the tiny model
(token embeddings, every layer from position 0) must reproduce the logits
mome's inference engine wrote into the case file (case.engine.*).

Run from the repository root:
    .venv-ref/bin/python tests/reference/make_grad_golden.py
"""
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np
import jax
import jax.numpy as jnp
from gguf import GGUFReader

jax.config.update("jax_enable_x64", True)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASE = os.path.join(ROOT, "tests", "golden", "grad_case.gguf")
OUT = os.path.join(ROOT, "tests", "golden", "grad_case.json")
PROJ_NAMES = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


# ----------------------------------------------------------------- reading

def field(r, key):
    f = r.fields[key]
    v = f.contents()
    return v


def tensor(r, name):
    for t in r.tensors:
        if t.name == name:
            # GGUF ne[0] is the contiguous (input) dimension: numpy shape is ne reversed
            a = np.array(t.data, dtype=np.float64)
            return a.reshape(tuple(int(x) for x in reversed(t.shape.tolist())))
    raise KeyError(name)


def has_tensor(r, name):
    return any(t.name == name for t in r.tensors)


# ------------------------------------------------------------------- model

def rmsnorm(x, w, eps):
    # Zhang & Sennrich 2019: x / sqrt(mean(x^2) + eps) * g
    return x / jnp.sqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base, n_rot):
    """Rotary embedding (Su et al. 2021), GPT-J / ggml "normal" layout: the
    pairs (x[2i], x[2i+1]) of each head are rotated by pos * base^(-2i/n_rot).
    x: (n, heads, D); pos: (n,). Written with complex multiplication."""
    D = x.shape[-1]
    i = jnp.arange(n_rot // 2, dtype=jnp.float64)
    theta = pos[:, None].astype(jnp.float64) * base ** (-2.0 * i / n_rot)  # (n, n_rot/2)
    rot = jnp.exp(1j * theta)[:, None, :]                                   # (n, 1, n_rot/2)
    xr = x[..., :n_rot]
    z = (xr[..., 0::2] + 1j * xr[..., 1::2]) * rot
    out = jnp.stack([z.real, z.imag], axis=-1).reshape(xr.shape)
    return jnp.concatenate([out, x[..., n_rot:]], axis=-1) if n_rot < D else out


def silu(x):
    return x * jax.nn.sigmoid(x)


class Model:
    def __init__(self, r):
        self.C = int(field(r, "llama.embedding_length"))
        self.L = int(field(r, "llama.block_count"))
        self.H = int(field(r, "llama.attention.head_count"))
        self.Hkv = int(field(r, "llama.attention.head_count_kv"))
        self.F = int(field(r, "llama.feed_forward_length"))
        self.eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.base = float(field(r, "llama.rope.freq_base"))
        self.D = self.C // self.H
        self.n_rot = int(field(r, "llama.rope.dimension_count"))
        assert "llama.rope.scaling.factor" not in r.fields
        self.emb = tensor(r, "token_embd.weight")                 # (V, C)
        self.V = self.emb.shape[0]
        self.out_norm = tensor(r, "output_norm.weight")
        self.head = tensor(r, "output.weight") if has_tensor(r, "output.weight") else self.emb  # (V, C)
        self.layers = []
        for l in range(self.L):
            g = lambda n: tensor(r, f"blk.{l}.{n}.weight")
            self.layers.append({n: g(n) for n in PROJ_NAMES + ["attn_norm", "ffn_norm"]})

    def block(self, l, x, pos, kpre=None, vpre=None, lora=None):
        """One transformer block on the rows x (T, C) at positions pos (T,),
        attending to the cached prefix (kpre, vpre: (P, Hkv*D), keys already
        rotated) and causally to the rows. lora: {proj: (A, B, scale)}."""
        w = self.layers[l]
        H, Hkv, D = self.H, self.Hkv, self.D
        lora = lora or {}

        def lin(name, v):
            y = v @ w[name].T                     # weights are (n_out, n_in)
            if name in lora:
                A, B, s = lora[name]
                y = y + s * (v @ A.T) @ B.T
            return y

        T = x.shape[0]
        a = rmsnorm(x, w["attn_norm"], self.eps)
        q = rope(lin("attn_q", a).reshape(T, H, D), pos, self.base, self.n_rot)
        k = rope(lin("attn_k", a).reshape(T, Hkv, D), pos, self.base, self.n_rot)
        v = lin("attn_v", a).reshape(T, Hkv, D)
        P = 0
        if kpre is not None and kpre.shape[0] > 0:
            P = kpre.shape[0]
            k = jnp.concatenate([kpre.reshape(P, Hkv, D), k], axis=0)
            v = jnp.concatenate([vpre.reshape(P, Hkv, D), v], axis=0)
        # grouped-query attention: query head h reads kv head h // (H / Hkv)
        k = jnp.repeat(k, H // Hkv, axis=1)
        v = jnp.repeat(v, H // Hkv, axis=1)
        s = jnp.einsum("thd,jhd->htj", q, k) / jnp.sqrt(float(D))
        mask = jnp.arange(P + T)[None, :] <= (P + jnp.arange(T))[:, None]   # row t sees positions <= P + t
        s = jnp.where(mask[None], s, -jnp.inf)
        p = jax.nn.softmax(s, axis=-1)
        o = jnp.einsum("htj,jhd->thd", p, v).reshape(T, H * D)
        x = x + lin("attn_output", o)
        f = rmsnorm(x, w["ffn_norm"], self.eps)
        return x + lin("ffn_down", silu(lin("ffn_gate", f)) * lin("ffn_up", f))

    def logits(self, x):
        return rmsnorm(x, self.out_norm, self.eps) @ self.head.T


def cross_entropy(logits, target):
    """Mean over rows with target >= 0 of -log softmax(logits)[target]."""
    lp = jax.nn.log_softmax(logits, axis=-1)
    valid = target >= 0
    nll = -jnp.take_along_axis(lp, jnp.where(valid, target, 0)[:, None], axis=1)[:, 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


# -------------------------------------------------------------------- main

def main():
    r = GGUFReader(CASE)
    m = Model(r)

    # 1. the model definition against mome's engine (full forward from position 0)
    toks = np.array(field(r, "case.engine.tokens"), dtype=np.int64)
    ref = tensor(r, "case.engine.logits")                         # (n, V)
    x = jnp.asarray(m.emb[toks])
    pos = jnp.arange(len(toks))
    for l in range(m.L):
        x = m.block(l, x, pos)
    lg = np.asarray(m.logits(x))
    engine_diff = float(np.max(np.abs(lg - ref)))
    engine_scale = float(np.max(np.abs(ref)))
    print(f"engine logits: max |jax - mome| = {engine_diff:.3e} (max |logit| {engine_scale:.3f})")
    if not engine_diff <= 1e-4 * max(1.0, engine_scale):
        sys.exit("model definition does not reproduce mome's engine logits")

    # 2. the training case
    l0 = int(field(r, "case.l0"))
    npre = [int(v) for v in field(r, "case.n_prefix")]
    Ts = [int(v) for v in field(r, "case.T")]
    target = np.array(field(r, "case.target"), dtype=np.int64)
    R = sum(Ts)
    kpre = {s: tensor(r, f"case.kpre.{s}") for s in range(len(Ts)) if npre[s] > 0}   # (L-l0, P, KV)
    vpre = {s: tensor(r, f"case.vpre.{s}") for s in range(len(Ts)) if npre[s] > 0}
    h = tensor(r, "case.h")
    xhat = tensor(r, "case.xhat")
    coef = tensor(r, "case.mem.coef")
    memA = tensor(r, "case.mem.A")                                # (r, C)
    memB = tensor(r, "case.mem.B")                                # (C, r)
    lrank = int(field(r, "case.lora.rank"))
    lscale = float(field(r, "case.lora.alpha")) / lrank
    llayer = [int(v) for v in field(r, "case.lora.layer")]
    lproj = [str(v) for v in field(r, "case.lora.proj")]
    lA = [tensor(r, f"case.lora.{i}.A") for i in range(len(llayer))]
    lB = [tensor(r, f"case.lora.{i}.B") for i in range(len(llayer))]
    assert h.shape == (R, m.C) and memA.shape[1] == m.C and memB.shape[0] == m.C

    def objective(dX, mA, mB, la, lb):
        # memory expert on every row: X = h + coef * B (A xhat); dX probes dLoss/dX
        X = h + coef[:, None] * (xhat @ mA.T) @ mB.T + dX
        losses = []
        row = 0
        for s, T in enumerate(Ts):
            P = npre[s]
            xs = X[row:row + T]
            pos = jnp.arange(P, P + T)
            for l in range(l0, m.L):
                lo = {lproj[i]: (la[i], lb[i], lscale) for i in range(len(llayer)) if llayer[i] == l}
                kp = kpre[s][l - l0] if P else None
                vp = vpre[s][l - l0] if P else None
                xs = m.block(l, xs, pos, kp, vp, lo)
            losses.append(cross_entropy(m.logits(xs), jnp.asarray(target[row:row + T])))
            row += T
        return jnp.sum(jnp.stack(losses)), jnp.stack(losses)

    args = (jnp.zeros((R, m.C)), jnp.asarray(memA), jnp.asarray(memB), [jnp.asarray(a) for a in lA],
            [jnp.asarray(b) for b in lB])
    (loss, per_seq), grads = jax.value_and_grad(objective, argnums=(0, 1, 2, 3, 4), has_aux=True)(*args)
    gX, gmA, gmB, glA, glB = grads
    print(f"loss = {float(loss):.12f} (per sequence {[float(v) for v in per_seq]})")

    flat = lambda a: [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]
    out = {
        "generator": "tests/reference/make_grad_golden.py",
        "case": "tests/golden/grad_case.gguf",
        "jax_version": jax.__version__,
        "jaxlib_version": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
        "numpy_version": np.__version__,
        "dtype": "float64",
        "engine_logits_max_abs_diff": engine_diff,
        "l0": l0,
        "rows": R,
        "n_embd": m.C,
        "loss": float(loss),
        "loss_per_seq": flat(per_seq),
        "dX": {"shape": [R, m.C], "values": flat(gX)},
        "mem": {"rank": int(memA.shape[0]),
                "gA": {"shape": list(memA.shape), "values": flat(gmA)},
                "gB": {"shape": list(memB.shape), "values": flat(gmB)}},
        "lora": [{"layer": llayer[i], "proj": lproj[i],
                  "gA": {"shape": list(lA[i].shape), "values": flat(glA[i])},
                  "gB": {"shape": list(lB[i].shape), "values": flat(glB[i])}} for i in range(len(llayer))],
    }
    with open(OUT + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(OUT + ".tmp", OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
