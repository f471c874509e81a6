/* quant_vnni.c - AVX-512 VNNI kernels (compiled with -mavx2 -mfma -mf16c
 * -mavx512f -mavx512vl -mavx512bw -mavx512vnni; only called after quant_init
 * checked the CPU). They start from the AVX2 table and replace the integer dot
 * products of Q4_0, Q4_1, Q5_0 and Q8_0:
 *
 *   - vpdpbusd (u8 x s8, four products summed into int32) instead of
 *     vpmaddubsw + vpmaddwd. The int32 lane sums are the same integers (the
 *     AVX2 int16 pair sums cannot saturate for these types: nibbles 0..15 or
 *     |q| <= 128 times activations in [-127, 127]), and this is what
 *     llama.cpp's mul_sum_us8_pairs_float compiles to on such a CPU.
 *   - rows4: 4 weight rows x 1 token (the whole of one-token decoding). Each
 *     row keeps its own accumulators and updates them block by block exactly
 *     as vec_dot does, so the result of every row is bit-identical to
 *     vec_dot's; the activation block is loaded once for the four rows and
 *     the four dependency chains overlap.
 *
 * The float accumulation order per row (ggml's: one 8-lane accumulator,
 * acc = fma(dx*dy, p, acc), then hsum; for Q4_1 a scalar fma chain of m*s)
 * is unchanged, so every kernel here gives the same bits as quant_avx2.c.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "quant_impl.h"

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

/* exactly quant_avx2.c's hsum8 */
static inline float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* 16 bytes of nibbles -> 32 bytes 0..15: low nibbles then high nibbles.
 * One broadcast load and a per-lane shift (no cross-lane shuffle). */
static inline __m256i nib32(const uint8_t *p) {
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi64(b, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(0x0F));
}

static inline __m256i ld32(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* u8 x s8 -> 8 int32 sums of 4 products */
static inline __m256 dp_us(__m256i ux, __m256i sy) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ux, sy));
}

/* s8 x s8 -> 8 int32 sums of 4 products (llama.cpp: sign trick, then dpbusd) */
static inline __m256 dp_ss(__m256i x, __m256i y) {
    return dp_us(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* Software prefetch of the weights PF_AHEAD bytes ahead of the rows being
 * read. One-token decoding streams ~100 MB of weights per token with little
 * arithmetic per byte, and the hardware prefetchers alone leave it waiting on
 * memory: measured on SmolLM2-135M Q4_1 (Xeon, 1 thread), tg128 went from
 * 66 to 137 t/s with this (2 KiB ahead: 109, 4-8 KiB: 136-137, 16 KiB: 134;
 * into L2 instead of L1: 3-4% slower). The rows of a 4-row group are
 * contiguous, so prefetching the bytes of one block of 4 rows per block
 * step covers the matrix once, a few groups ahead. Prefetches never fault,
 * so running past the end of the matrix is harmless. (PF_AHEAD, PF_LINES:
 * quant_impl.h, shared with quant_avx2.c.) */
#define ROW(base, k, ws, T) ((const T *)((const char *)(base) + (size_t)(k) * (ws)))

/* ------------------------------------------------------------ Q4_0 x Q8_0 */

/* quant_avx2.c's vd_q4_0 order: two accumulators (even / odd blocks) */
static float vd_q4_0(int64_t n, const void *vw, const void *va) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    const __m256i off = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t ib = 0;
    for (; ib + 2 <= nb; ib += 2) {
        const __m256 p0 = dp_ss(_mm256_sub_epi8(nib32(x[ib].qs), off), ld32(y[ib].qs));
        const __m256 p1 = dp_ss(_mm256_sub_epi8(nib32(x[ib + 1].qs), off), ld32(y[ib + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib + 1].d) * f16(y[ib + 1].d)), p1, acc1);
    }
    for (; ib < nb; ib++) {
        const __m256 p0 = dp_ss(_mm256_sub_epi8(nib32(x[ib].qs), off), ld32(y[ib].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static void d4_q4_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = ROW(va, t, as, block_q8_0);
    const int64_t nb = n / QK8_0;
    const __m256i off = _mm256_set1_epi8(8);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = _mm256_sub_epi8(nib32(x[ib].qs), off);
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256 p = dp_us(aq, _mm256_sign_epi8(ld32(y[t][ib].qs), q));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* ------------------------------------------------------------ Q4_1 x Q8_1 */

/* ggml_vec_dot_q4_1_q8_1 (AVX2 + AVX512VNNI/VL build): acc = fma(dx*dy, p,
 * acc), summs = fma(m, s, summs), hsum(acc) + summs. */
static float vd_q4_1(int64_t n, const void *vw, const void *va) {
    const block_q4_1 *x = vw;
    const block_q8_1 *y = va;
    const int64_t nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    __m128 summs = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        summs = _mm_fmadd_ss(_mm_set_ss(f16(x[ib].m)), _mm_set_ss(f16(y[ib].s)), summs);
        const __m256 p0 = dp_us(nib32(x[ib].qs), ld32(y[ib].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc);
    }
    return hsum8(acc) + _mm_cvtss_f32(summs);
}

/* 4 rows x 1 token; row k is what vd_q4_1 gives for it. */
static void r4_q4_1(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q4_1 *x0 = vw, *x1 = ROW(vw, 1, ws, block_q4_1), *x2 = ROW(vw, 2, ws, block_q4_1),
                     *x3 = ROW(vw, 3, ws, block_q4_1);
    const block_q8_1 *y = va;
    const int64_t nb = n / QK8_1;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m128 ms = _mm_setzero_ps(); /* lane k: row k's fma chain of m*s */
    const char *pf = (const char *)vw + PF_AHEAD;
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q4_1), 4 * (int)sizeof(block_q4_1));
        const __m256i qy = ld32(y[ib].qs);
        uint32_t ys;
        memcpy(&ys, &y[ib].d, 4);
        const __m128 dsy = _mm_cvtph_ps(_mm_cvtsi32_si128((int)ys)); /* dy sy . . */
        const __m128 dy = _mm_broadcastss_ps(dsy);
        const __m128 sy = _mm_permute_ps(dsy, 0x55);
        uint32_t w0, w1, w2, w3;
        memcpy(&w0, &x0[ib].d, 4);
        memcpy(&w1, &x1[ib].d, 4);
        memcpy(&w2, &x2[ib].d, 4);
        memcpy(&w3, &x3[ib].d, 4);
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi32((int)w0, (int)w1, (int)w2, (int)w3)); /* d0 m0 d1 m1 .. */
        const __m256 dmp = _mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        const __m128 dx = _mm256_castps256_ps128(dmp), mx = _mm256_extractf128_ps(dmp, 1);
        ms = _mm_fmadd_ps(mx, sy, ms);
        const __m128 dd = _mm_mul_ps(dx, dy);
        const __m256 p0 = dp_us(nib32(x0[ib].qs), qy);
        const __m256 p1 = dp_us(nib32(x1[ib].qs), qy);
        const __m256 p2 = dp_us(nib32(x2[ib].qs), qy);
        const __m256 p3 = dp_us(nib32(x3[ib].qs), qy);
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0x55)), p1, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xAA)), p2, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xFF)), p3, a3);
    }
    float m[4];
    _mm_storeu_ps(m, ms);
    out[0] = hsum8(a0) + m[0];
    out[1] = hsum8(a1) + m[1];
    out[2] = hsum8(a2) + m[2];
    out[3] = hsum8(a3) + m[3];
}

/* 1 row x 4 tokens; token t is what vd_q4_1 gives for it (quant_avx2.c's d4_q4_1) */
static void d4_q4_1(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_1 *x = vw;
    const block_q8_1 *y0 = va, *y1 = ROW(va, 1, as, block_q8_1), *y2 = ROW(va, 2, as, block_q8_1),
                     *y3 = ROW(va, 3, as, block_q8_1);
    const int64_t nb = n / QK8_1;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m128 ms = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = nib32(x[ib].qs);
        uint32_t xdm;
        memcpy(&xdm, &x[ib].d, 4);
        const __m128 dmx = _mm_cvtph_ps(_mm_cvtsi32_si128((int)xdm));
        const __m128 dx = _mm_broadcastss_ps(dmx), mx = _mm_permute_ps(dmx, 0x55);
        uint32_t ds0, ds1, ds2, ds3;
        memcpy(&ds0, &y0[ib].d, 4);
        memcpy(&ds1, &y1[ib].d, 4);
        memcpy(&ds2, &y2[ib].d, 4);
        memcpy(&ds3, &y3[ib].d, 4);
        const __m256 ds = _mm256_cvtph_ps(_mm_setr_epi32((int)ds0, (int)ds1, (int)ds2, (int)ds3));
        const __m256 dsp = _mm256_permutevar8x32_ps(ds, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        const __m128 dy = _mm256_castps256_ps128(dsp), sy = _mm256_extractf128_ps(dsp, 1);
        ms = _mm_fmadd_ps(mx, sy, ms);
        const __m128 dd = _mm_mul_ps(dx, dy);
        const __m256 p0 = dp_us(q, ld32(y0[ib].qs));
        const __m256 p1 = dp_us(q, ld32(y1[ib].qs));
        const __m256 p2 = dp_us(q, ld32(y2[ib].qs));
        const __m256 p3 = dp_us(q, ld32(y3[ib].qs));
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0x55)), p1, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xAA)), p2, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xFF)), p3, a3);
    }
    float m[4];
    _mm_storeu_ps(m, ms);
    out[0] = hsum8(a0) + m[0];
    out[1] = hsum8(a1) + m[1];
    out[2] = hsum8(a2) + m[2];
    out[3] = hsum8(a3) + m[3];
}

/* ------------------------------------------------------------ Q5_0 x Q8_0 */

/* The quants of a Q5_0 block plus 16, unsigned (nibble | fifth bit << 4, in
 * 0..31): dpbusd(u, y) - 16 (sum of each group of 4 y) are the int32 lane sums
 * quant_avx2.c's sign trick gives, so every kernel here has its bits. */
static inline __m256i q5_0_u(const block_q5_0 *b) {
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    return _mm256_or_si256(nib32(b->qs), _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(0x10)));
}

/* -16 (sum of each group of 4 quants of y), per lane */
static inline __m256i q5_0_corr(__m256i qy) {
    return _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(16), qy));
}

static float vd_q5_0(int64_t n, const void *vw, const void *va) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i qy = ld32(y[ib].qs);
        const __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(q5_0_corr(qy), q5_0_u(&x[ib]), qy));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p, acc);
    }
    return hsum8(acc);
}

/* 4 rows x 1 token; row k is bit-identical to vd_q5_0 on it */
static void r4_q5_0(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q5_0 *x0 = vw, *x1 = ROW(vw, 1, ws, block_q5_0), *x2 = ROW(vw, 2, ws, block_q5_0),
                     *x3 = ROW(vw, 3, ws, block_q5_0);
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const char *pf = (const char *)vw + PF_AHEAD;
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q5_0), 4 * (int)sizeof(block_q5_0));
        const __m256i qy = ld32(y[ib].qs);
        const __m256i corr = q5_0_corr(qy);
        const __m128 dy = _mm_set1_ps(f16(y[ib].d));
        const __m128i dxi = _mm_setr_epi16((short)x0[ib].d, (short)x1[ib].d, (short)x2[ib].d, (short)x3[ib].d, 0, 0, 0, 0);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(dxi), dy);
        const __m256 p0 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, q5_0_u(&x0[ib]), qy));
        const __m256 p1 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, q5_0_u(&x1[ib]), qy));
        const __m256 p2 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, q5_0_u(&x2[ib]), qy));
        const __m256 p3 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, q5_0_u(&x3[ib]), qy));
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0x55)), p1, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xAA)), p2, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xFF)), p3, a3);
    }
    out[0] = hsum8(a0);
    out[1] = hsum8(a1);
    out[2] = hsum8(a2);
    out[3] = hsum8(a3);
}

/* 1 row x 4 tokens; token t is bit-identical to vd_q5_0 on it */
static void d4_q5_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = ROW(va, t, as, block_q8_0);
    const int64_t nb = n / QK8_0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i u = q5_0_u(&x[ib]);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256i qy = ld32(y[t][ib].qs);
            const __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(q5_0_corr(qy), u, qy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* 4 rows x 4 tokens, for prompts: out[4t + k] is bit-identical to vd_q5_0
 * on row k and token t (the weights unpacked once for the four tokens, each
 * token's correction once for the four rows) */
static void t44_q5_0(int64_t n, const void *vw, size_t ws, const void *va, size_t as, float out[16]) {
    const block_q5_0 *x[4];
    const block_q8_0 *y[4];
    for (int k = 0; k < 4; k++) x[k] = ROW(vw, k, ws, block_q5_0);
    for (int t = 0; t < 4; t++) y[t] = ROW(va, t, as, block_q8_0);
    const int64_t nb = n / QK8_0;
    __m256 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i u[4];
        __m256 dx[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            u[k] = q5_0_u(&x[k][ib]);
            dx[k] = _mm256_set1_ps(f16(x[k][ib].d));
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m256i qy = ld32(y[t][ib].qs);
            const __m256i corr = q5_0_corr(qy);
            const __m256 dy = _mm256_set1_ps(f16(y[t][ib].d));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, u[k], qy));
                acc[4 * t + k] = _mm256_fmadd_ps(_mm256_mul_ps(dx[k], dy), p, acc[4 * t + k]);
            }
        }
    }
    for (int i = 0; i < 16; i++) out[i] = hsum8(acc[i]);
}

/* ------------------------------------------------------------ Q8_0 x Q8_0 */

static float vd_q8_0(int64_t n, const void *vw, const void *va) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256 p0 = dp_ss(ld32(x[ib].qs), ld32(y[ib].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc);
    }
    return hsum8(acc);
}

/* 4 rows x 1 token. Signed x signed as (x + 128) x y - 128 * (sum of y over
 * each group of 4): the same int32 lane sums, with the y term computed once
 * per block for the four rows. */
static void r4_q8_0(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q8_0 *x0 = vw, *x1 = ROW(vw, 1, ws, block_q8_0), *x2 = ROW(vw, 2, ws, block_q8_0),
                     *x3 = ROW(vw, 3, ws, block_q8_0);
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    const __m256i b128 = _mm256_set1_epi8((char)0x80);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const char *pf = (const char *)vw + PF_AHEAD;
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q8_0), 4 * (int)sizeof(block_q8_0));
        const __m256i qy = ld32(y[ib].qs);
        const __m256i corr = _mm256_sub_epi32(_mm256_setzero_si256(),
                                              _mm256_dpbusd_epi32(_mm256_setzero_si256(), b128, qy));
        const __m128 dy = _mm_set1_ps(f16(y[ib].d));
        const __m128i dxi = _mm_setr_epi16((short)x0[ib].d, (short)x1[ib].d, (short)x2[ib].d, (short)x3[ib].d, 0, 0, 0, 0);
        const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(dxi), dy);
        const __m256 p0 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, _mm256_xor_si256(ld32(x0[ib].qs), b128), qy));
        const __m256 p1 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, _mm256_xor_si256(ld32(x1[ib].qs), b128), qy));
        const __m256 p2 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, _mm256_xor_si256(ld32(x2[ib].qs), b128), qy));
        const __m256 p3 = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(corr, _mm256_xor_si256(ld32(x3[ib].qs), b128), qy));
        a0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0x55)), p1, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xAA)), p2, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_permute_ps(dd, 0xFF)), p3, a3);
    }
    out[0] = hsum8(a0);
    out[1] = hsum8(a1);
    out[2] = hsum8(a2);
    out[3] = hsum8(a3);
}

static void d4_q8_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = ROW(va, t, as, block_q8_0);
    const int64_t nb = n / QK8_0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = ld32(x[ib].qs);
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256 p = dp_us(aq, _mm256_sign_epi8(ld32(y[t][ib].qs), q));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* ------------------------------------------------- 8 tokens (batched decoding)
 *
 * Rows [r0, r1) of W against 8 activation rows that are one token each of
 * different sequences (mome_decode_batch): out[t] must be what vec_dot gives
 * token t alone. vec_dot keeps, per token, one 8-lane accumulator updated
 * block by block; here two tokens share a 16-lane register (lanes 0-7 token
 * 2p, 8-15 token 2p+1), so one dpbusd, one conversion, one multiply and one
 * fma serve two tokens with the same per-lane arithmetic in the same order,
 * and the per-token scalar chain of Q4_1 (m*s) runs in the 8 lanes of one
 * register. The activations are first packed per block: the two tokens'
 * quants side by side, their scales as f32 (converted once, not per row).
 * Fewer than 8 tokens (4..7 pays) repeat the last one and drop its copies. */

typedef struct tok8_block {
    int8_t qs[4][64];   /* token pair p: tokens 2p, 2p+1 */
    float dy[4][16];    /* the pair's activation scales, each repeated in its 8 lanes */
    float sy[8];        /* Q8_1 sums s = d * sum(qs) per token (Q4_1) */
    int32_t c128[4][16];/* Q8_0: 128 * (sum of each group of 4 quants), per lane */
} tok8_block;

static void tok8_pack(int64_t nb, const void *va, size_t as, int nt, int q81, tok8_block *pk) {
    for (int t = 0; t < 8; t++) {
        const char *row = (const char *)va + (size_t)(t < nt ? t : nt - 1) * as;
        for (int64_t ib = 0; ib < nb; ib++) {
            tok8_block *p = &pk[ib];
            const int8_t *qs;
            float d;
            if (q81) {
                const block_q8_1 *y = (const block_q8_1 *)row + ib;
                qs = y->qs;
                d = f16(y->d);
                p->sy[t] = f16(y->s);
            } else {
                const block_q8_0 *y = (const block_q8_0 *)row + ib;
                qs = y->qs;
                d = f16(y->d);
                for (int l = 0; l < 8; l++)
                    p->c128[t / 2][(t % 2) * 8 + l] = 128 * (qs[4 * l] + qs[4 * l + 1] + qs[4 * l + 2] + qs[4 * l + 3]);
            }
            memcpy(p->qs[t / 2] + (t % 2) * 32, qs, 32);
            for (int l = 0; l < 8; l++) p->dy[t / 2][(t % 2) * 8 + l] = d;
        }
    }
}

static inline float hsum16_lo(__m512 a) { return hsum8(_mm512_castps512_ps256(a)); }
static inline float hsum16_hi(__m512 a) {
    return hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

static void t8_q4_1(int64_t n, const void *vw, size_t ws, const void *va, size_t as, int nt, float *Y, int64_t ldy,
                    int64_t r0, int64_t r1) {
    const int64_t nb = n / QK8_1;
    tok8_block pk[QK_TOK8_MAX_BLOCKS];
    tok8_pack(nb, va, as, nt, 1, pk);
    const __m512i z = _mm512_setzero_si512();
    for (int64_t r = r0; r < r1; r++) {
        const block_q4_1 *x = ROW(vw, r, ws, block_q4_1);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 ms = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++) {
            const tok8_block *p = &pk[ib];
            const __m512i q = _mm512_broadcast_i64x4(nib32(x[ib].qs));
            const __m512 dx = _mm512_set1_ps(f16(x[ib].d));
            ms = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].m)), _mm256_loadu_ps(p->sy), ms);
            a0 = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(p->dy[0])),
                                 _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(p->qs[0]))), a0);
            a1 = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(p->dy[1])),
                                 _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(p->qs[1]))), a1);
            a2 = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(p->dy[2])),
                                 _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(p->qs[2]))), a2);
            a3 = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(p->dy[3])),
                                 _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(p->qs[3]))), a3);
        }
        float m[8];
        _mm256_storeu_ps(m, ms);
        const float o[8] = {hsum16_lo(a0) + m[0], hsum16_hi(a0) + m[1], hsum16_lo(a1) + m[2], hsum16_hi(a1) + m[3],
                            hsum16_lo(a2) + m[4], hsum16_hi(a2) + m[5], hsum16_lo(a3) + m[6], hsum16_hi(a3) + m[7]};
        for (int t = 0; t < nt; t++) Y[t * ldy + r] = o[t];
    }
}

/* Q8_0: signed x signed as (x + 128) x y - 128 * (sum of y over each group
 * of 4), the same int32 lane sums as vec_dot's sign trick (r4_q8_0). */
static void t8_q8_0(int64_t n, const void *vw, size_t ws, const void *va, size_t as, int nt, float *Y, int64_t ldy,
                    int64_t r0, int64_t r1) {
    const int64_t nb = n / QK8_0;
    tok8_block pk[QK_TOK8_MAX_BLOCKS];
    tok8_pack(nb, va, as, nt, 0, pk);
    const __m512i z = _mm512_setzero_si512(), b128 = _mm512_set1_epi8((char)0x80);
    for (int64_t r = r0; r < r1; r++) {
        const block_q8_0 *x = ROW(vw, r, ws, block_q8_0);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t ib = 0; ib < nb; ib++) {
            const tok8_block *p = &pk[ib];
            const __m512i q = _mm512_xor_si512(_mm512_broadcast_i64x4(ld32(x[ib].qs)), b128);
            const __m512 dx = _mm512_set1_ps(f16(x[ib].d));
#define T8_Q80(a, k)                                                                                                \
    a = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_loadu_ps(p->dy[k])),                                               \
                        _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_dpbusd_epi32(z, q, _mm512_loadu_si512(p->qs[k])), \
                                                            _mm512_loadu_si512(p->c128[k]))),                       \
                        a)
            T8_Q80(a0, 0);
            T8_Q80(a1, 1);
            T8_Q80(a2, 2);
            T8_Q80(a3, 3);
#undef T8_Q80
        }
        const float o[8] = {hsum16_lo(a0), hsum16_hi(a0), hsum16_lo(a1), hsum16_hi(a1),
                            hsum16_lo(a2), hsum16_hi(a2), hsum16_lo(a3), hsum16_hi(a3)};
        for (int t = 0; t < nt; t++) Y[t * ldy + r] = o[t];
    }
}

/* ------------------------------------------ packed Q4_K and Q6_K (16 rows)
 *
 * quant_pack's layouts (quant_impl.h): 4 bytes of each of 16 rows in one
 * register, lane r = row r, so vpdpbusd against 4 activation bytes broadcast
 * to every lane gives 16 rows' partial dot products with no horizontal sums,
 * and a row's result lands in its own lane. The integer sums are exact, so
 * only the float steps have an order, and each is ggml's (quant.c), per lane:
 *   Q4_K one token: acc = fma((float)isum, d*dy, acc) per super-block (and
 *     the mins' chain), 4 tokens of a batch: the same per 64-element half;
 *   Q6_K fewer than 8 tokens: 8 float lanes per row (lane l = bytes 4l..4l+3
 *     of each 32-byte group = register g = l here), summed as hsum8 at the
 *     end; 8 or more tokens (tiled): acc = fma((float)isum * d, dy, acc). */

static inline __m512i bc4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* lane r: the int16 pair (a_r, b_r) of two 16-byte vectors, zero- or sign-extended */
static inline __m512i pairs16u(__m128i a, __m128i b) {
    return _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(a, b), _mm_unpacklo_epi8(a, b)));
}
static inline __m512i pairs16s(__m128i a, __m128i b) {
    return _mm512_cvtepi8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(a, b), _mm_unpacklo_epi8(a, b)));
}

/* sc[j], mn[j]: 6-bit scale and min j of the 16 rows (byte r = row r), as
 * qi_scale_min_k4 unpacks them */
static inline void q4Kx16_scales(const block_q4_Kx16 *b, __m128i sc[8], __m128i mn[8]) {
    __m128i q[12];
    for (int k = 0; k < 12; k++) q[k] = _mm_loadu_si128((const __m128i *)b->scales[k]);
    const __m128i m63 = _mm_set1_epi8(63), m0F = _mm_set1_epi8(0x0F), m30 = _mm_set1_epi8(0x30);
    for (int j = 0; j < 4; j++) {
        sc[j] = _mm_and_si128(q[j], m63);
        mn[j] = _mm_and_si128(q[j + 4], m63);
        sc[j + 4] = _mm_or_si128(_mm_and_si128(q[j + 8], m0F), _mm_and_si128(_mm_srli_epi16(q[j], 2), m30));
        mn[j + 4] = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(q[j + 8], 4), m0F),
                                 _mm_and_si128(_mm_srli_epi16(q[j + 4], 2), m30));
    }
}

/* the activation's 32-group sums of half j as an int16 pair (2j, 2j+1) */
static inline int32_t q8K_ypair(const block_q8_K *y, int j) {
    const uint16_t a = (uint16_t)(y->bsums[4 * j] + y->bsums[4 * j + 1]);
    const uint16_t b = (uint16_t)(y->bsums[4 * j + 2] + y->bsums[4 * j + 3]);
    return (int32_t)((uint32_t)a | (uint32_t)b << 16);
}

/* 16 rows x 1 token in the gemv order (vd_q4_K per row) -> out[16] */
static void q4Kx16_tok(const block_q4_Kx16 *x, int64_t nb, const block_q8_K *y, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps(), accm = acc;
    for (int64_t i = 0; i < nb; i++) {
        const block_q4_Kx16 *b = x + i;
        PF_LINES((const char *)b + PF_AHEAD, (int)sizeof(block_q4_Kx16));
        __m128i sc[8], mn[8];
        q4Kx16_scales(b, sc, mn);
        __m512i isum = _mm512_setzero_si512(), imin = isum;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i dl = _mm512_setzero_si512(), dh = dl;
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                const __m512i w = _mm512_loadu_si512(b->qs[j][c]);
                dl = _mm512_dpbusd_epi32(dl, _mm512_and_si512(w, m4), bc4(y[i].qs + 64 * j + 4 * c));
                dh = _mm512_dpbusd_epi32(dh, _mm512_and_si512(_mm512_srli_epi16(w, 4), m4),
                                         bc4(y[i].qs + 64 * j + 32 + 4 * c));
            }
            isum = _mm512_add_epi32(isum, _mm512_add_epi32(_mm512_mullo_epi32(dl, _mm512_cvtepu8_epi32(sc[2 * j])),
                                                           _mm512_mullo_epi32(dh, _mm512_cvtepu8_epi32(sc[2 * j + 1]))));
            imin = _mm512_add_epi32(imin, _mm512_madd_epi16(pairs16u(mn[2 * j], mn[2 * j + 1]),
                                                            _mm512_set1_epi32(q8K_ypair(&y[i], j))));
        }
        const __m512 dy = _mm512_set1_ps(y[i].d);
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d)), dy);
        const __m512 dm = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->dmin)), dy);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), d, acc);
        accm = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), dm, accm);
    }
    _mm512_storeu_ps(out, _mm512_sub_ps(acc, accm));
}

/* 16 rows x 4 tokens in the gemm order (d4_q4_K per row): Y[t*ldy + k] */
static void q4Kx16_tok4(const block_q4_Kx16 *x, int64_t nb, const char *A, size_t as, float *Y, int64_t ldy) {
    const block_q8_K *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_K *)(A + (size_t)t * as);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[4], accm[4];
    for (int t = 0; t < 4; t++) acc[t] = accm[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const block_q4_Kx16 *b = x + i;
        __m128i sc[8], mn[8];
        q4Kx16_scales(b, sc, mn);
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
        const __m512 mv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->dmin));
        for (int j = 0; j < 4; j++) {
            __m512i dl[4], dh[4];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) dl[t] = dh[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                const __m512i w = _mm512_loadu_si512(b->qs[j][c]);
                const __m512i lo = _mm512_and_si512(w, m4), hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
#pragma GCC unroll 4
                for (int t = 0; t < 4; t++) {
                    dl[t] = _mm512_dpbusd_epi32(dl[t], lo, bc4(y[t][i].qs + 64 * j + 4 * c));
                    dh[t] = _mm512_dpbusd_epi32(dh[t], hi, bc4(y[t][i].qs + 64 * j + 32 + 4 * c));
                }
            }
            const __m512i scl = _mm512_cvtepu8_epi32(sc[2 * j]), sch = _mm512_cvtepu8_epi32(sc[2 * j + 1]);
            const __m512i mp = pairs16u(mn[2 * j], mn[2 * j + 1]);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m512i isum = _mm512_add_epi32(_mm512_mullo_epi32(dl[t], scl), _mm512_mullo_epi32(dh[t], sch));
                const __m512i imin = _mm512_madd_epi16(mp, _mm512_set1_epi32(q8K_ypair(&y[t][i], j)));
                const __m512 dy = _mm512_set1_ps(y[t][i].d);
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dv, dy), acc[t]);
                accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(mv, dy), accm[t]);
            }
        }
    }
    for (int t = 0; t < 4; t++) _mm512_storeu_ps(Y + (int64_t)t * ldy, _mm512_sub_ps(acc[t], accm[t]));
}

static void pk_q4_K(int64_t n, const void *P, const void *A, size_t as, int nt, float *Y, int64_t ldy, int64_t r0,
                    int64_t r1, int solo) {
    const int64_t nb = n / QK_K;
    const size_t gsz = (size_t)nb * sizeof(block_q4_Kx16);
    const int nt4 = solo ? 0 : nt & ~3; /* llama.cpp: gemm for whole groups of 4, gemv for the rest */
    for (int64_t r = r0; r < r1; r += 16) {
        const block_q4_Kx16 *x = (const block_q4_Kx16 *)((const char *)P + (size_t)(r / 16) * gsz);
        for (int t = 0; t < nt4; t += 4)
            q4Kx16_tok4(x, nb, (const char *)A + (size_t)t * as, as, Y + (int64_t)t * ldy + r, ldy);
        for (int t = nt4; t < nt; t++)
            q4Kx16_tok(x, nb, (const block_q8_K *)((const char *)A + (size_t)t * as), Y + (int64_t)t * ldy + r);
    }
}

/* Q6_K: the quants (0..63) of the 16 rows at elements 128c + 32m + 4g .. +3
 * (sub-block 8c + 2m + (g >= 4), 32-byte group 4c + m, lane g) */
static inline __m512i q6Kx16_q(const block_q6_Kx16 *b, int c, int m, int g) {
    const __m512i lo = _mm512_loadu_si512(b->ql[c][m & 1][g]);
    const __m512i qh = _mm512_loadu_si512(b->qh[c][g]);
    const __m512i l = m >= 2 ? _mm512_srli_epi16(lo, 4) : lo;
    const __m512i h = m == 0 ? _mm512_slli_epi16(qh, 4) : m == 1 ? _mm512_slli_epi16(qh, 2)
                    : m == 2 ? qh : _mm512_srli_epi16(qh, 2); /* qh bits 2m, 2m+1 -> bits 4, 5 */
    return _mm512_or_si512(_mm512_and_si512(l, _mm512_set1_epi8(0x0F)), _mm512_and_si512(h, _mm512_set1_epi8(0x30)));
}

/* per super-block: sp[j] lane r = the int16 pair (sc_j, sc_j) of row r;
 * cp[l] = (sc_2l, sc_2l+1) */
static inline void q6Kx16_scales(const block_q6_Kx16 *b, __m512i sp[16], __m512i cp[8]) {
    __m128i s8[16];
    for (int j = 0; j < 16; j++) {
        s8[j] = _mm_loadu_si128((const __m128i *)b->scales[j]);
        const __m512i x = _mm512_cvtepi8_epi32(s8[j]);
        sp[j] = _mm512_or_si512(_mm512_and_si512(x, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(x, 16));
    }
    for (int l = 0; l < 8; l++) cp[l] = pairs16s(s8[2 * l], s8[2 * l + 1]);
}

/* 16 rows x 1 token in vd_q6_K's order -> out[16] */
static void q6Kx16_tok(const block_q6_Kx16 *x, int64_t nb, const block_q8_K *y, float *out) {
    __m512 acc[8];
    for (int l = 0; l < 8; l++) acc[l] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const block_q6_Kx16 *b = x + i;
        PF_LINES((const char *)b + PF_AHEAD, (int)sizeof(block_q6_Kx16));
        __m512i sp[16], cp[8], L[8];
        q6Kx16_scales(b, sp, cp);
        for (int l = 0; l < 8; l++) {
            int32_t bp;
            memcpy(&bp, y[i].bsums + 2 * l, 4);
            L[l] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                    _mm512_slli_epi32(_mm512_madd_epi16(cp[l], _mm512_set1_epi32(bp)), 5));
        }
#pragma GCC unroll 2
        for (int c = 0; c < 2; c++)
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++)
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i q = q6Kx16_q(b, c, m, g);
                    L[g] = _mm512_dpwssd_epi32(L[g], _mm512_maddubs_epi16(q, bc4(y[i].qs + 128 * c + 32 * m + 4 * g)),
                                               sp[8 * c + 2 * m + (g >= 4)]);
                }
        const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d)), _mm512_set1_ps(y[i].d));
        for (int l = 0; l < 8; l++) acc[l] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(L[l]), acc[l]);
    }
    /* hsum8's order, lane-wise: ((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3)) */
    const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[4], acc[0]), _mm512_add_ps(acc[6], acc[2])),
                                   _mm512_add_ps(_mm512_add_ps(acc[5], acc[1]), _mm512_add_ps(acc[7], acc[3])));
    _mm512_storeu_ps(out, s);
}

/* 16 rows x T tokens (T <= 8) in the tiled order (vd_tiled_q6_K per row) */
static inline __attribute__((always_inline)) void q6Kx16_tiled(const block_q6_Kx16 *x, int64_t nb, const char *A,
                                                               size_t as, int T, float *Y, int64_t ldy) {
    const block_q8_K *y[8];
    for (int t = 0; t < T; t++) y[t] = (const block_q8_K *)(A + (size_t)t * as);
    __m512 acc[8];
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const block_q6_Kx16 *b = x + i;
        __m512i sp[16], cp[8], I[8];
        q6Kx16_scales(b, sp, cp);
        for (int t = 0; t < T; t++) {
            __m512i corr = _mm512_setzero_si512();
            for (int l = 0; l < 8; l++) {
                int32_t bp;
                memcpy(&bp, y[t][i].bsums + 2 * l, 4);
                corr = _mm512_add_epi32(corr, _mm512_madd_epi16(cp[l], _mm512_set1_epi32(bp)));
            }
            I[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(corr, 5));
        }
        for (int c = 0; c < 2; c++)
            for (int m = 0; m < 4; m++)
                for (int g = 0; g < 8; g++) {
                    const __m512i q = q6Kx16_q(b, c, m, g);
                    const __m512i s = sp[8 * c + 2 * m + (g >= 4)];
                    for (int t = 0; t < T; t++)
                        I[t] = _mm512_dpwssd_epi32(
                            I[t], _mm512_maddubs_epi16(q, bc4(y[t][i].qs + 128 * c + 32 * m + 4 * g)), s);
                }
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
        for (int t = 0; t < T; t++)
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(I[t]), dv), _mm512_set1_ps(y[t][i].d), acc[t]);
    }
    for (int t = 0; t < T; t++) _mm512_storeu_ps(Y + (int64_t)t * ldy, acc[t]);
}

static void q6Kx16_tiled8(const block_q6_Kx16 *x, int64_t nb, const char *A, size_t as, float *Y, int64_t ldy) {
    q6Kx16_tiled(x, nb, A, as, 8, Y, ldy);
}
static void q6Kx16_tiled1(const block_q6_Kx16 *x, int64_t nb, const char *A, size_t as, float *Y, int64_t ldy) {
    q6Kx16_tiled(x, nb, A, as, 1, Y, ldy);
}

static void pk_q6_K(int64_t n, const void *P, const void *A, size_t as, int nt, float *Y, int64_t ldy, int64_t r0,
                    int64_t r1, int solo) {
    const int64_t nb = n / QK_K;
    const size_t gsz = (size_t)nb * sizeof(block_q6_Kx16);
    const int tiled = !solo && nt >= QK_TILED_MIN_T;
    for (int64_t r = r0; r < r1; r += 16) {
        const block_q6_Kx16 *x = (const block_q6_Kx16 *)((const char *)P + (size_t)(r / 16) * gsz);
        int t = 0;
        if (tiled) {
            for (; t + 8 <= nt; t += 8) q6Kx16_tiled8(x, nb, (const char *)A + (size_t)t * as, as, Y + (int64_t)t * ldy + r, ldy);
            for (; t < nt; t++) q6Kx16_tiled1(x, nb, (const char *)A + (size_t)t * as, as, Y + (int64_t)t * ldy + r, ldy);
        }
        for (; t < nt; t++)
            q6Kx16_tok(x, nb, (const block_q8_K *)((const char *)A + (size_t)t * as), Y + (int64_t)t * ldy + r);
    }
}

/* ------------------------------------------ packed Q5_0 and Q8_0 (16 rows)
 *
 * Their order (vec_dot's, tinyBLAS's, every path's: quant.c vd_q5_0 /
 * vd_q8_0) is 8 float lanes per row, lane l = the int32 sum of bytes 4l..4l+3
 * of a block, acc[l] = fma(dx*dy, lane, acc[l]), summed as hsum8 at the end.
 * Here register l of a token holds lane l of the 16 rows (lane r = row r): one
 * vpdpbusd per 4-byte group gives the 16 rows' lane sums, and the float work
 * is the same fma per row and lane in the same order, 16 rows per instruction
 * and no horizontal sums until the end. Weights are unsigned (Q5_0: nibble |
 * fifth bit << 4 = q + 16, the fifth bits as a byte mask; Q8_0: stored as
 * q + 128), so each group's sum is corrected by -16 or -128 times the sum of
 * the activation's 4 bytes, exactly as r4_q5_0 / r4_q8_0 do. */

/* per activation block of a token: the 8 groups' corrections (-16 or -128
 * times the sum of the group's 4 bytes) and dy, read back by broadcast loads */
typedef struct q0_act { int32_t corr[8]; float dy; } q0_act;
#define Q0X16_CHUNK 256 /* blocks per pass when the caller has no table (18 KiB of stack) */

static void q0_act_fill(int q5, const block_q8_0 *y, int64_t nb, q0_act *o) {
    for (int64_t i = 0; i < nb; i++) {
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), ld32(y[i].qs));
        _mm256_storeu_si256((__m256i *)o[i].corr, _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(s, q5 ? 4 : 7)));
        o[i].dy = f16(y[i].d);
    }
}

/* the 16 rows' unsigned Q5_0 quants (q + 16) of a packed block, group l in w[l] */
static inline __attribute__((always_inline)) void q5_0x16_u(const block_q5_0x16 *b, __m512i w[8]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), c16 = _mm512_set1_epi8(0x10);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        const __m512i q = _mm512_loadu_si512(b->qs[c]);
        w[c] = _mm512_and_si512(q, m4);
        w[c + 4] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
    }
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++) w[l] = _mm512_mask_add_epi8(w[l], (__mmask64)b->qh[l], w[l], c16);
}

/* 16 rows x T tokens (T <= 2: 8 accumulators a token), Q5_0 (q5) or Q8_0;
 * ex (Q5_0, use_ex): the group's quants already unsigned, 512 bytes a block
 * (q5_0x16_u stored once for all the tokens of a product);
 * tab[t]: token t's q0_act for the nb blocks, or NULL (made here, a chunk at
 * a time) */
static inline __attribute__((always_inline)) void q0x16(int q5, int use_ex, const void *xv, const uint8_t *ex,
                                                        int64_t nb, const char *A, size_t as,
                                                        const q0_act *const *tab, int T, float *Y, int64_t ldy,
                                                        int pf) {
    const size_t bsz = q5 ? sizeof(block_q5_0x16) : sizeof(block_q8_0x16);
    q0_act own[2][Q0X16_CHUNK];
    __m512 acc[2][8];
#pragma GCC unroll 2
    for (int t = 0; t < T; t++)
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++) acc[t][l] = _mm512_setzero_ps();
    for (int64_t i0 = 0; i0 < nb; i0 += tab ? nb : Q0X16_CHUNK) {
        const int64_t ni = tab ? nb : nb - i0 < Q0X16_CHUNK ? nb - i0 : Q0X16_CHUNK;
        const q0_act *ya[2];
        for (int t = 0; t < T; t++) {
            if (tab) {
                ya[t] = tab[t];
            } else {
                q0_act_fill(q5, (const block_q8_0 *)(A + (size_t)t * as) + i0, ni, own[t]);
                ya[t] = own[t];
            }
        }
        for (int64_t i = 0; i < ni; i++) {
            const char *bp = (const char *)xv + (size_t)(i0 + i) * bsz;
            if (pf) PF_LINES(bp + PF_AHEAD, (int)bsz);
            __m512i w[8];
            __m512 dv;
            if (q5) {
                const block_q5_0x16 *b = (const block_q5_0x16 *)bp;
                if (use_ex) {
#pragma GCC unroll 8
                    for (int l = 0; l < 8; l++) w[l] = _mm512_loadu_si512(ex + (size_t)(i0 + i) * 512 + 64 * l);
                } else {
                    q5_0x16_u(b, w);
                }
                dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
            } else {
                const block_q8_0x16 *b = (const block_q8_0x16 *)bp;
#pragma GCC unroll 8
                for (int l = 0; l < 8; l++) w[l] = _mm512_loadu_si512(b->qs[l]);
                dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b->d));
            }
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) {
                const q0_act *ay = &ya[t][i];
                const int8_t *qy = ((const block_q8_0 *)(A + (size_t)t * as))[i0 + i].qs;
                const __m512 d = _mm512_mul_ps(dv, _mm512_set1_ps(ay->dy));
#pragma GCC unroll 8
                for (int l = 0; l < 8; l++) {
                    const __m512i p = _mm512_dpbusd_epi32(_mm512_set1_epi32(ay->corr[l]), w[l], bc4(qy + 4 * l));
                    acc[t][l] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(p), acc[t][l]);
                }
            }
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < T; t++) {
        __m512 *a = acc[t]; /* hsum8's order, lane-wise */
        const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[4], a[0]), _mm512_add_ps(a[6], a[2])),
                                       _mm512_add_ps(_mm512_add_ps(a[5], a[1]), _mm512_add_ps(a[7], a[3])));
        _mm512_storeu_ps(Y + (int64_t)t * ldy, s);
    }
}

typedef void (*q0x16_fn)(const void *x, const uint8_t *ex, int64_t nb, const char *A, size_t as,
                         const q0_act *const *tab, float *Y, int64_t ldy);
/* the instances: Q5_0 (from packed blocks or the unpacked group) and Q8_0,
 * 1 or 2 tokens; the one-token ones that stream the weights prefetch them */
#define Q0X16_FN(name, q5, use_ex, T, pf)                                                                  \
    static void name(const void *x, const uint8_t *ex, int64_t nb, const char *A, size_t as,              \
                     const q0_act *const *tab, float *Y, int64_t ldy) {                                   \
        q0x16(q5, use_ex, x, ex, nb, A, as, tab, T, Y, ldy, pf);                                          \
    }
Q0X16_FN(q5_0x16_tok, 1, 0, 1, 1)
Q0X16_FN(q5_0x16_tok2, 1, 0, 2, 0)
Q0X16_FN(q5_0x16_ex1, 1, 1, 1, 0)
Q0X16_FN(q5_0x16_ex2, 1, 1, 2, 0)
Q0X16_FN(q8_0x16_tok, 0, 0, 1, 1)
Q0X16_FN(q8_0x16_tok2, 0, 0, 2, 0)
#undef Q0X16_FN

#define Q0_EX_MIN_T 4 /* Q5_0 products of this many tokens unsigned-expand each group once */

/* Every token (solo or not) in vec_dot's order: pairs, then one. The
 * activations' q0_act table is made once per call (on the stack when small,
 * else on the heap, with Q5_0's expanded group; without memory each kernel
 * call makes its own and unpacks as it goes). */
static void pk_q0(int q5, int64_t n, const void *P, const void *A, size_t as, int nt, float *Y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const int64_t nb = n / QK8_0;
    const size_t gsz = (size_t)nb * (q5 ? sizeof(block_q5_0x16) : sizeof(block_q8_0x16));
    q0_act stack_tab[1024];
    const size_t ne = (size_t)nt * (size_t)nb, exb = q5 && nt >= Q0_EX_MIN_T ? (size_t)nb * 512 : 0;
    char *heap = ne > sizeof stack_tab / sizeof stack_tab[0] || exb ? malloc(exb + ne * sizeof(q0_act)) : NULL;
    uint8_t *ex = heap && exb ? (uint8_t *)heap : NULL; /* malloc's alignment suffices for q0_act after it */
    q0_act *tab = !heap ? (ne <= sizeof stack_tab / sizeof stack_tab[0] ? stack_tab : NULL) : (q0_act *)(heap + exb);
    if (tab)
        for (int t = 0; t < nt; t++) q0_act_fill(q5, (const block_q8_0 *)((const char *)A + (size_t)t * as), nb, tab + (size_t)t * nb);
    const q0x16_fn one = !q5 ? q8_0x16_tok : ex ? q5_0x16_ex1 : q5_0x16_tok;
    const q0x16_fn two = !q5 ? q8_0x16_tok2 : ex ? q5_0x16_ex2 : q5_0x16_tok2;
    for (int64_t r = r0; r < r1; r += 16) {
        const char *x = (const char *)P + (size_t)(r / 16) * gsz;
        if (ex)
            for (int64_t i = 0; i < nb; i++) {
                __m512i w[8];
                q5_0x16_u((const block_q5_0x16 *)x + i, w);
                for (int l = 0; l < 8; l++) _mm512_storeu_si512(ex + (size_t)i * 512 + 64 * l, w[l]);
            }
        int t = 0;
        for (; t + 2 <= nt; t += 2) {
            const q0_act *tt[2] = {tab ? tab + (size_t)t * nb : NULL, tab ? tab + (size_t)(t + 1) * nb : NULL};
            two(x, ex, nb, (const char *)A + (size_t)t * as, as, tab ? tt : NULL, Y + (int64_t)t * ldy + r, ldy);
        }
        for (; t < nt; t++) {
            const q0_act *tt[1] = {tab ? tab + (size_t)t * nb : NULL};
            one(x, ex, nb, (const char *)A + (size_t)t * as, as, tab ? tt : NULL, Y + (int64_t)t * ldy + r, ldy);
        }
    }
    free(heap);
}

static void pk_q5_0(int64_t n, const void *P, const void *A, size_t as, int nt, float *Y, int64_t ldy, int64_t r0,
                    int64_t r1, int solo) {
    pk_q0(1, n, P, A, as, nt, Y, ldy, r0, r1);
}
static void pk_q8_0(int64_t n, const void *P, const void *A, size_t as, int nt, float *Y, int64_t ldy, int64_t r0,
                    int64_t r1, int solo) {
    pk_q0(0, n, P, A, as, nt, Y, ldy, r0, r1);
}

void quant_vnni_fill(quant_kernels *k) {
    quant_avx2_fill(k);
    k->name = "avx512vnni";
    k->vec_dot[MOME_DTYPE_Q4_0] = vd_q4_0;
    k->vec_dot[MOME_DTYPE_Q4_1] = vd_q4_1;
    k->vec_dot[MOME_DTYPE_Q8_0] = vd_q8_0;
    k->dot4[MOME_DTYPE_Q4_0] = d4_q4_0;
    k->dot4[MOME_DTYPE_Q4_1] = d4_q4_1;
    k->dot4[MOME_DTYPE_Q8_0] = d4_q8_0;
    k->rows4[MOME_DTYPE_Q4_1] = r4_q4_1;
    k->rows4[MOME_DTYPE_Q8_0] = r4_q8_0;
    k->vec_dot[MOME_DTYPE_Q5_0] = vd_q5_0;
    k->dot4[MOME_DTYPE_Q5_0] = d4_q5_0;
    k->rows4[MOME_DTYPE_Q5_0] = r4_q5_0;
    k->tile44[MOME_DTYPE_Q5_0] = t44_q5_0;
    k->tok8[MOME_DTYPE_Q4_1] = t8_q4_1;
    k->tok8[MOME_DTYPE_Q8_0] = t8_q8_0;
    k->packed[MOME_DTYPE_Q4_K] = pk_q4_K;
    k->packed[MOME_DTYPE_Q6_K] = pk_q6_K;
    k->packed[MOME_DTYPE_Q5_0] = pk_q5_0;
    k->packed[MOME_DTYPE_Q8_0] = pk_q8_0;
}
