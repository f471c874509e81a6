#!/usr/bin/env python3
"""make_quant_golden.py - independent reference data for tests/test_quant.c.

Uses the `gguf` Python package (gguf-py 0.19.0, the llama.cpp project's own
numpy implementation of the GGML block formats) to dequantize pseudo-random
blocks and to quantize pseudo-random f32 rows; the C test compares its own
results against these files bit for bit.

    python3 -m venv .venv-ref && .venv-ref/bin/pip install gguf==0.19.0 numpy
    .venv-ref/bin/python tests/reference/make_quant_golden.py   # from the repo root

Output: tests/golden/quant_<type>.bin, one per type, all little-endian:

    char     magic[4] = "MQG1"
    uint32   type            ggml type id
    uint32   blck            elements per block
    uint32   type_size       bytes per block
    uint32   nb              number of dequantization blocks
    uint8    raw[nb*type_size]         random blocks (fp16 scales finite, sane)
    float32  deq[nb*blck]              their dequantization by gguf-py
    uint32   nq              number of f32 inputs for the quantizer test (0: none)
    float32  qin[nq]
    uint8    qout[nq/blck*type_size]   quantization of qin by gguf-py

Where gguf-py has no implementation the script uses a direct numpy
transcription of ggml's reference code, marked below:
  - Q8_1, Q8_K dequantization (y = d * q),
  - Q8_1 quantization (Q8_0 via gguf-py, plus s = fp16(d * sum(q))),
  - Q8_K quantization (quantize_row_q8_K_ref: iscale = -127/max, round half
    to even, bsums).
Q4_K / Q6_K quantizers in mome are simpler than ggml's, so only their
dequantization is golden-tested. F32/F16/BF16 are included (F16: numpy's
IEEE conversion; BF16: gguf-py's, i.e. ggml's round-to-nearest-even).
"""
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

QK_K = 256
NB = 8  # blocks per file (dequantization part)

# type -> (fp16 field offsets inside a block, f32 field offsets)
SCALES = {
    T.Q4_0: ([0], []),
    T.Q4_1: ([0, 2], []),
    T.Q5_0: ([0], []),
    T.Q5_1: ([0, 2], []),
    T.Q8_0: ([0], []),
    T.Q8_1: ([0, 2], []),
    T.Q4_K: ([0, 2], []),
    T.Q5_K: ([0, 2], []),
    T.Q6_K: ([208], []),
    T.Q8_K: ([], [0]),
}
QUANTIZE = {T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1, T.Q8_K}


def sizes(t):
    if t == T.Q8_1:
        return 32, 36
    if t == T.Q8_K:
        return QK_K, 292
    return gguf.GGML_QUANT_SIZES[t]


def sane_scales(rng, n):
    mag = np.exp(rng.uniform(np.log(1e-3), np.log(2.0), n))
    sgn = np.where(rng.random(n) < 0.2, -1.0, 1.0)
    return (mag * sgn).astype(np.float32)


def random_blocks(rng, t, nb):
    blck, ts = sizes(t)
    if t == T.F32:
        v = (rng.standard_normal(nb * blck) * 10).astype(np.float32)
        v[:4] = [0.0, -0.0, 1e-40, -3.0e38]
        return v.view(np.uint8).reshape(nb, ts)
    if t in (T.F16, T.BF16):
        bits = rng.integers(0, 1 << 16, nb * blck, dtype=np.uint32).astype(np.uint16)
        exp = (bits >> 10) & 0x1F if t == T.F16 else (bits >> 7) & 0xFF
        allones = 0x1F if t == T.F16 else 0xFF
        bits[exp == allones] &= np.uint16(0xBFFF)  # no inf/NaN
        bits[:3] = [0x0000, 0x8000, 0x0001]  # zeros and the smallest subnormal
        return bits.view(np.uint8).reshape(nb, ts)
    raw = rng.integers(0, 256, (nb, ts), dtype=np.uint8)
    h, f = SCALES[t]
    for off in h:
        raw[:, off:off + 2] = sane_scales(rng, nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    for off in f:
        raw[:, off:off + 4] = (sane_scales(rng, nb) * 1e-2).view(np.uint8).reshape(nb, 4)
    return raw


def dequant(t, raw):
    if t == T.Q8_1:  # ggml dequantize_row_q8_1 semantics: y = d*q (s unused)
        d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
        q = raw[:, 4:].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    if t == T.Q8_K:  # transcription of dequantize_row_q8_K: y = d*q
        d = raw[:, 0:4].copy().view(np.float32)
        q = raw[:, 4:4 + QK_K].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    if t == T.BF16:
        return dequantize(raw.reshape(-1).copy(), t).reshape(-1)
    return dequantize(raw.reshape(-1).copy(), t).astype(np.float32).reshape(-1)


def quant_input(rng, t):
    blck, _ = sizes(t)
    if blck == 1:
        v = (rng.standard_normal(256) * np.exp(rng.uniform(-12, 12, 256))).astype(np.float32)
        v[:6] = [0.0, -0.0, 65504.0, 65520.0, 6e-8, 2.9802322e-08]
        return v
    nb = 8
    x = np.empty((nb, blck), np.float32)
    for i in range(nb):
        x[i] = rng.standard_normal(blck) * np.float32(np.exp(rng.uniform(-4, 2)))
        if i == 1:
            x[i] = 0.0                      # all-zero block
        if i == 2:
            x[i] += 3.0                     # offset block (Q4_1/Q5_1 min > 0)
        if i == 3:
            x[i][5] = -np.abs(x[i]).max() * 2  # negative extreme
    return x.reshape(-1)


def quant_ref(t, x):
    if t == T.Q8_1:
        q80 = quantize(x.reshape(1, -1), T.Q8_0).reshape(-1, 34)
        d = q80[:, 0:2].copy().view(np.float16).astype(np.float32).reshape(-1)
        qs = q80[:, 2:].copy().view(np.int8).astype(np.int32)
        s = (qs.sum(axis=1).astype(np.float32) * d).astype(np.float16)
        out = np.concatenate([q80[:, 0:2], s.view(np.uint8).reshape(-1, 2), q80[:, 2:]], axis=1)
        return out.reshape(-1)
    if t == T.Q8_K:  # transcription of quantize_row_q8_K_ref
        out = []
        for b in x.reshape(-1, QK_K):
            ax = np.abs(b)
            amax = ax.max()
            if amax == 0:
                out.append(np.zeros(292, np.uint8))
                continue
            mx = b[int(np.argmax(ax))]  # first index of the largest |x|
            iscale = np.float32(-127.0) / mx
            q = np.minimum(np.rint(iscale * b), 127).astype(np.int8)
            bs = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
            d = np.float32(1.0) / iscale
            out.append(np.concatenate([np.array([d], np.float32).view(np.uint8),
                                       q.view(np.uint8), bs.view(np.uint8)]))
        return np.concatenate(out)
    return quantize(x.reshape(1, -1), t).reshape(-1).view(np.uint8)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outdir = os.path.join(root, "golden")
    os.makedirs(outdir, exist_ok=True)
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
             T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]
    for t in types:
        rng = np.random.default_rng(1234 + int(t))
        blck, ts = sizes(t)
        nb = NB if blck > 1 else 64
        raw = random_blocks(rng, t, nb)
        deq = dequant(t, raw).astype(np.float32)
        assert deq.size == nb * blck and np.all(np.isfinite(deq)), t
        parts = [b"MQG1", struct.pack("<4I", int(t), blck, ts, nb), raw.tobytes(), deq.tobytes()]
        if t in QUANTIZE:
            x = quant_input(rng, t)
            q = quant_ref(t, x)
            assert q.size == x.size // blck * ts, (t, q.size)
            parts += [struct.pack("<I", x.size), x.tobytes(), q.tobytes()]
        else:
            parts.append(struct.pack("<I", 0))
        path = os.path.join(outdir, "quant_%s.bin" % t.name.lower())
        with open(path, "wb") as f:
            f.write(b"".join(parts))
        print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
