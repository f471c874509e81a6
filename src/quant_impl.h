/* quant_impl.h - private to quant.c and quant_avx2.c: ggml block layouts,
 * scalar half-precision helpers and the kernel table.
 *
 * Block structs are byte-for-byte those of ggml (ggml-common.h); the
 * static_asserts pin their sizes. fp16 fields are stored as raw uint16_t.
 */
#ifndef MOME_QUANT_IMPL_H
#define MOME_QUANT_IMPL_H

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "quant.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;
/* s = d * sum(qs) */
typedef struct { uint16_t d, s; int8_t qs[QK8_1]; } block_q8_1;
/* y = d * (scales & 15) * q - dmin * (scales >> 4) */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");
static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");
static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");
static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");
static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* Packed (row-interleaved) super-blocks of 16 rows (quant_pack): the 16
 * rows' fields side by side, quants in 4-byte units so that one 512-bit
 * register holds the same 4 bytes of every row (lane r = row r). Row r's
 * byte b of a plain field f is at f[...][r][b]. Same size as 16 blocks. */
/* Q4_K: qs[j][c] = bytes qs[32j + 4c .. 32j + 4c + 3] of the 16 rows (low
 * nibbles: elements 64j + 4c.., high: 64j + 32 + 4c..) */
typedef struct { uint16_t d[16], dmin[16]; uint8_t scales[12][16]; uint8_t qs[4][8][16][4]; } block_q4_Kx16;
/* Q6_K: ql[c][h][g] = bytes ql[64c + 32h + 4g ..], qh[c][g] = bytes qh[32c + 4g ..] */
typedef struct { uint16_t d[16]; int8_t scales[16][16]; uint8_t ql[2][2][8][16][4]; uint8_t qh[2][8][16][4]; } block_q6_Kx16;
/* Q5_0: qs[c] = bytes qs[4c .. 4c + 3] of the 16 rows (low nibbles: elements
 * 4c.., high: 16 + 4c..); qh[l] bit 4r + k = row r's fifth bit of element
 * 4l + k (a byte mask for the 4-byte group l of all 16 rows) */
typedef struct { uint16_t d[16]; uint64_t qh[8]; uint8_t qs[4][16][4]; } block_q5_0x16;
/* Q8_0: qs[l] = bytes qs[4l .. 4l + 3] of the 16 rows, each stored as
 * q ^ 0x80 = q + 128 (unsigned, vpdpbusd's first operand) */
typedef struct { uint16_t d[16]; uint8_t qs[8][16][4]; } block_q8_0x16;
static_assert(sizeof(block_q4_Kx16) == 16 * sizeof(block_q4_K), "block_q4_Kx16 size");
static_assert(sizeof(block_q5_0x16) == 16 * sizeof(block_q5_0), "block_q5_0x16 size");
static_assert(sizeof(block_q8_0x16) == 16 * sizeof(block_q8_0), "block_q8_0x16 size");
static_assert(sizeof(block_q6_Kx16) == 16 * sizeof(block_q6_K), "block_q6_Kx16 size");

/* ---- scalar half conversions (exact; round-to-nearest-even) ---- */

static inline uint32_t qi_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qi_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float qi_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        if (m == 0) return qi_bits_f32(sign);
        /* subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31) return qi_bits_f32(sign | 0x7f800000u | (m << 13));
    return qi_bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

static inline uint16_t qi_f32_to_f16(float f) {
    uint32_t x = qi_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7e00;            /* NaN -> quiet NaN */
    if (x >= 0x477ff000u) return sign | 0x7c00;           /* >= 65520 -> inf */
    if (x >= 0x38800000u) {                               /* normal half */
        uint32_t r = x - 0x38000000u;
        r += 0xfffu + ((r >> 13) & 1);
        return (uint16_t)(sign | (r >> 13));
    }
    if (x <= 0x33000000u) return sign;                    /* <= 2^-25 -> 0 */
    uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;                             /* 14..24 */
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static inline float qi_bf16_to_f32(uint16_t h) { return qi_bits_f32((uint32_t)h << 16); }

static inline uint16_t qi_f32_to_bf16(float f) {
    uint32_t u = qi_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#define QI_FP16(h) qi_f16_to_f32(h)

/* K-quant 6-bit scale/min unpacking (ggml get_scale_min_k4). */
static inline void qi_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* ---- kernel table ---- */

/* dot of one weight row (n elements) with one activation row */
typedef float (*qk_vec_dot_fn)(int64_t n, const void *w, const void *a);
/* f32 row -> activation format */
typedef void (*qk_quant_fn)(const float *x, void *y, int64_t n);
/* one weight row against 4 activation rows a, a+as, a+2as, a+3as -> out[4] */
typedef void (*qk_dot4_fn)(int64_t n, const void *w, const void *a, size_t as, float out[4]);
#define QK_TILED_MIN_T 8 /* llama.cpp's ggml_tiled_min_batch */
/* rows [r0, r1) of W against nt <= 8 activation rows a, a+as, ... that are
 * one token each of different sequences: Y[t*ldy + r] must equal vec_dot(row
 * r, token t) bit for bit (batched decoding, quant_matmul_solo) */
typedef void (*qk_tok8_fn)(int64_t n, const void *w, size_t ws, const void *a, size_t as, int nt, float *Y,
                           int64_t ldy, int64_t r0, int64_t r1);
#define QK_TOK8_MAX_BLOCKS 256 /* longest row a tok8 kernel takes, in blocks (its packing is on the stack) */
/* 4 weight rows w, w+ws, w+2ws, w+3ws against one activation row -> out[4];
 * out[k] must equal vec_dot(row k) bit for bit */
typedef void (*qk_rows4_fn)(int64_t n, const void *w, size_t ws, const void *a, float out[4]);
/* 4 weight rows x 4 activation rows -> out[4t + k] (row k, token t), bit for
 * bit what dot4 gives row k for token t */
typedef void (*qk_tile44_fn)(int64_t n, const void *w, size_t ws, const void *a, size_t as, float out[16]);

typedef struct quant_kernels {
    const char *name;
    qk_vec_dot_fn vec_dot[MOME_DTYPE_COUNT];    /* by weight type */
    qk_quant_fn quant_act[MOME_DTYPE_COUNT];    /* by activation type (Q8_0/Q8_1/Q8_K) */
    qk_dot4_fn dot4[MOME_DTYPE_COUNT];          /* by weight type; NULL = use vec_dot */
    qk_rows4_fn rows4[MOME_DTYPE_COUNT];        /* by weight type, one token; NULL = use vec_dot */
    qk_tile44_fn tile44[MOME_DTYPE_COUNT];      /* by weight type, batches; NULL = use dot4 */
    /* by weight type: every token of a product of >= QK_TILED_MIN_T tokens, in
     * the order of llama.cpp's tiled K-quant matmul (ggml-cpu/tiled, Q6_K);
     * NULL = none */
    qk_vec_dot_fn vd_tiled[MOME_DTYPE_COUNT];
    qk_dot4_fn dot4_tiled[MOME_DTYPE_COUNT];   /* by weight type: 4 tokens of such a product (NULL: vd_tiled each) */
    qk_tok8_fn tok8[MOME_DTYPE_COUNT];          /* by weight type; NULL = none */
    /* by weight type: quant_matmul_packed's whole work on packed rows [r0, r1)
     * (multiples of 16); NULL = not packed by this table */
    void (*packed[MOME_DTYPE_COUNT])(int64_t n, const void *P, const void *A, size_t as, int nt, float *Y,
                                     int64_t ldy, int64_t r0, int64_t r1, int solo);
    uint8_t dot4_exact[MOME_DTYPE_COUNT];       /* 1: dot4's out[t] equals vec_dot on token t bit for
                                                   bit (else the tile sums in another order) */
    /* f32 math of the forward pass, in ggml's order (see qm_* below) */
    void (*swiglu)(int64_t n, float *g, const float *u);
    float (*dot_f32)(int64_t n, const float *x, const float *y);
    double (*softmax_exp)(int64_t n, float *x, float max);
    void (*kqv)(int64_t np, const float *w, const float *v, size_t v_stride, int64_t D, int period, float *out,
                float *acc);
    void (*rope)(int64_t npairs, float *x, const float *cs, const float *sn);
    void (*rope_neox)(int64_t npairs, float *x, const float *cs, const float *sn);
} quant_kernels;

/* ---- f32 math that reproduces llama.cpp's CPU arithmetic bit for bit ----
 *
 * llama.cpp (GGML_NATIVE on an AVX-512 x86, -ffp-contract=fast) computes:
 *   qm_swiglu:      g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + e(0 - x)),
 *                   e = ggml_v_expf (AVX-512 variant: polynomial + scalef),
 *                   16-wide; the n % 16 tail uses libm expf.
 *   qm_dot_f32:     ggml_vec_dot_f32: 4 accumulators of 16 lanes (FMA),
 *                   step 64, reduced (a0+a2)+(a1+a3) then _mm512_reduce_add_ps;
 *                   the n % 64 tail is fma'ed into the float result.
 *   qm_softmax_exp: x[i] = e(x[i] - max) for i < n; returns the double sum
 *                   of the 16-element chunk sums (each summed like
 *                   _mm512_reduce_add_ps), as ggml_vec_soft_max_f32 does.
 *   qm_kqv:         out[d] = sum_p w[p] * v[p*v_stride + d], p < np, with
 *                   per-lane FMA chains: period 16 = llamafile tinyBLAS f32
 *                   (batches: lane p % 16, then reduce_add), period 64 =
 *                   ggml_vec_dot_f32 (one token: lane p % 64, folded as
 *                   above). acc: scratch of period * D floats.
 *   qm_rope:        pairs (x0, x1) -> (fma(x0, c, -(x1*s)), fma(x0, s, x1*c)),
 *                   as GCC vectorizes ggml's rotate_pairs.
 *   qm_rope_neox:   the same with the pairs (x[i], x[i + npairs]) (NEOX mode,
 *                   rotate_pairs with n_offset = n_dims/2).
 * The scalar code is the reference; the AVX2 code gives identical bits. */
void qm_swiglu(int64_t n, float *g, const float *u);
float qm_dot_f32(int64_t n, const float *x, const float *y);
double qm_softmax_exp(int64_t n, float *x, float max);
void qm_kqv(int64_t np, const float *w, const float *v, size_t v_stride, int64_t D, int period, float *out,
            float *acc);
void qm_rope(int64_t npairs, float *x, const float *cs, const float *sn);
void qm_rope_neox(int64_t npairs, float *x, const float *cs, const float *sn);
/* one value of ggml_v_expf (AVX-512 variant), scalar */
float qm_expf(float x);

/* quant_avx2.c: overwrite the entries it accelerates. Only call when the CPU
 * has AVX2, FMA and F16C. */
void quant_avx2_fill(quant_kernels *k);
/* quant_vnni.c: the AVX2 table, then the entries AVX-512 VNNI accelerates.
 * Only call when the CPU also has AVX512F/VL/BW and AVX512_VNNI (and the OS
 * saves the AVX-512 state). */
void quant_vnni_fill(quant_kernels *k);

/* Software prefetch for the 4-row one-token kernels of quant_avx2.c and
 * quant_vnni.c: one-token decoding streams all the weights with little
 * arithmetic per byte (distance measured in quant_vnni.c). Prefetches never
 * fault, so running past the end of a matrix is harmless. Only files built
 * with SIMD flags expand it (_mm_prefetch comes from <immintrin.h>). */
#define PF_AHEAD 8192
#define PF_LINES(p, bytes)                                                                    \
    do {                                                                                      \
        for (int o_ = 0; o_ < (bytes); o_ += 64) _mm_prefetch((const char *)(p) + o_, _MM_HINT_T0); \
    } while (0)

#endif
