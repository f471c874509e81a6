/* quant_avx2.c - AVX2/FMA/F16C kernels (compiled with -mavx2 -mfma -mf16c;
 * only called after quant_init checked the CPU).
 *
 * Accelerated: vec_dot for F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K; 1-row x
 * 4-token "dot4" tiles for F32, Q4_0, Q4_1, Q8_0 (weight blocks are loaded
 * and unpacked once per 4 tokens); 4-row x 1-token "rows4" tiles with weight
 * prefetch for Q4_1, Q8_0 (one-token decoding); activation quantization to Q8_0/Q8_1
 * (same arithmetic as ggml's AVX2 quantize_row_q8_0/q8_1: id = 127/amax,
 * round-half-even) and Q8_K (bit-identical to the reference quantizer, which
 * is what ggml uses on x86). Integer sums are exact; only the order of the
 * float accumulation differs from the scalar code.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "quant_impl.h"

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

static inline int hsum_i32_8(__m256i a) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float hmax8(__m256 x) {
    __m128 m = _mm_max_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 16 bytes of nibbles -> 32 bytes 0..15: low nibbles then high nibbles */
static inline __m256i nibbles32(const uint8_t *p) {
    const __m128i t = _mm_loadu_si128((const __m128i *)p);
    const __m256i b = _mm256_insertf128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* unsigned bytes x signed bytes -> 8 int32 sums of 4 products */
static inline __m256i dot_us8(__m256i ux, __m256i sy) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ux, sy), _mm256_set1_epi16(1));
}

static inline __m256i dot_ss8(__m256i x, __m256i y) {
    return dot_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* ---------------------------------------------------------------- F32/F16 */

static float vd_f32(int64_t n, const void *vw, const void *va) {
    const float *w = vw, *a = va;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(a + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(a + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += w[i] * a[i];
    return s;
}

static void d4_f32(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const float *w = vw;
    const float *a0 = va, *a1 = (const float *)((const char *)va + as),
                *a2 = (const float *)((const char *)va + 2 * as),
                *a3 = (const float *)((const char *)va + 3 * as);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    __m256 u0 = s0, u1 = s0, u2 = s0, u3 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
        s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a0 + i), s0);
        s1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a1 + i), s1);
        s2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a2 + i), s2);
        s3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a3 + i), s3);
        u0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a0 + i + 8), u0);
        u1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a1 + i + 8), u1);
        u2 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a2 + i + 8), u2);
        u3 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a3 + i + 8), u3);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 w0 = _mm256_loadu_ps(w + i);
        s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a0 + i), s0);
        s1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a1 + i), s1);
        s2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a2 + i), s2);
        s3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a3 + i), s3);
    }
    out[0] = hsum8(_mm256_add_ps(s0, u0));
    out[1] = hsum8(_mm256_add_ps(s1, u1));
    out[2] = hsum8(_mm256_add_ps(s2, u2));
    out[3] = hsum8(_mm256_add_ps(s3, u3));
    for (; i < n; i++) {
        out[0] += w[i] * a0[i];
        out[1] += w[i] * a1[i];
        out[2] += w[i] * a2[i];
        out[3] += w[i] * a3[i];
    }
}

static float vd_f16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = vw;
    const float *a = va;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
#define W16(k) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + (k))))
        s0 = _mm256_fmadd_ps(W16(0), _mm256_loadu_ps(a + i), s0);
        s1 = _mm256_fmadd_ps(W16(8), _mm256_loadu_ps(a + i + 8), s1);
        s2 = _mm256_fmadd_ps(W16(16), _mm256_loadu_ps(a + i + 16), s2);
        s3 = _mm256_fmadd_ps(W16(24), _mm256_loadu_ps(a + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(W16(0), _mm256_loadu_ps(a + i), s0);
#undef W16
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += f16(w[i]) * a[i];
    return s;
}

/* ------------------------------------------------------------ Q4_0 x Q8_0 */

static float vd_q4_0(int64_t n, const void *vw, const void *va) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    const __m256i off = _mm256_set1_epi8(8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t ib = 0;
    for (; ib + 2 <= nb; ib += 2) {
        const __m256i q0 = _mm256_sub_epi8(nibbles32(x[ib].qs), off);
        const __m256i q1 = _mm256_sub_epi8(nibbles32(x[ib + 1].qs), off);
        const __m256 p0 = _mm256_cvtepi32_ps(dot_ss8(q0, _mm256_loadu_si256((const __m256i *)y[ib].qs)));
        const __m256 p1 = _mm256_cvtepi32_ps(dot_ss8(q1, _mm256_loadu_si256((const __m256i *)y[ib + 1].qs)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib + 1].d) * f16(y[ib + 1].d)), p1, acc1);
    }
    for (; ib < nb; ib++) {
        const __m256i q0 = _mm256_sub_epi8(nibbles32(x[ib].qs), off);
        const __m256 p0 = _mm256_cvtepi32_ps(dot_ss8(q0, _mm256_loadu_si256((const __m256i *)y[ib].qs)));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc0);
    }
    return hsum8(_mm256_add_ps(acc0, acc1));
}

static void d4_q4_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_0 *)((const char *)va + t * as);
    const int64_t nb = n / QK8_0;
    const __m256i off = _mm256_set1_epi8(8);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = _mm256_sub_epi8(nibbles32(x[ib].qs), off);
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][ib].qs), q);
            const __m256 p = _mm256_cvtepi32_ps(dot_us8(aq, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* ------------------------------------------------------------ Q4_1 x Q8_1 */

/* Same arithmetic as ggml's AVX2 ggml_vec_dot_q4_1_q8_1 (as GCC compiles it
 * with -ffp-contract=fast): one 8-lane accumulator, acc = fma(dx*dy, p, acc)
 * block by block, summs = fma(m_x, s_y, summs), result hsum(acc) + summs.
 * d4_q4_1 below does exactly the same per token, so batched and one-token
 * products are bit-identical. */
static float vd_q4_1(int64_t n, const void *vw, const void *va) {
    const block_q4_1 *x = vw;
    const block_q8_1 *y = va;
    const int64_t nb = n / QK8_1;
    __m256 acc = _mm256_setzero_ps();
    __m128 summs = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        summs = _mm_fmadd_ss(_mm_set_ss(f16(x[ib].m)), _mm_set_ss(f16(y[ib].s)), summs);
        const __m256 p0 = _mm256_cvtepi32_ps(dot_us8(nibbles32(x[ib].qs), _mm256_loadu_si256((const __m256i *)y[ib].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc);
    }
    return hsum8(acc) + _mm_cvtss_f32(summs);
}

static void d4_q4_1(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_1 *x = vw;
    const block_q8_1 *y0 = va, *y1 = (const block_q8_1 *)((const char *)va + as),
                     *y2 = (const block_q8_1 *)((const char *)va + 2 * as),
                     *y3 = (const block_q8_1 *)((const char *)va + 3 * as);
    const int64_t nb = n / QK8_1;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    /* sum over blocks of m_x * s_y for 4 tokens, kept in one vector */
    __m128 ms = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = nibbles32(x[ib].qs);
        const __m128 dx = _mm_set1_ps(f16(x[ib].d));
        const __m128 mx = _mm_set1_ps(f16(x[ib].m));
        /* (d, s) of the 4 tokens: fp16 pairs -> 4 floats each */
        uint32_t ds0, ds1, ds2, ds3;
        memcpy(&ds0, &y0[ib].d, 4);
        memcpy(&ds1, &y1[ib].d, 4);
        memcpy(&ds2, &y2[ib].d, 4);
        memcpy(&ds3, &y3[ib].d, 4);
        const __m128 dsv = _mm_cvtph_ps(_mm_set_epi32(ds3, ds2, ds1, ds0)) /* d0 s0 d1 s1 */;
        const __m128 dsw = _mm_cvtph_ps(_mm_srli_si128(_mm_set_epi32(ds3, ds2, ds1, ds0), 8));
        const __m128 dy = _mm_shuffle_ps(dsv, dsw, _MM_SHUFFLE(2, 0, 2, 0));
        const __m128 sy = _mm_shuffle_ps(dsv, dsw, _MM_SHUFFLE(3, 1, 3, 1));
        ms = _mm_fmadd_ps(mx, sy, ms);
        const __m128 dd = _mm_mul_ps(dx, dy);
        const __m256 p0 = _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y0[ib].qs)));
        const __m256 p1 = _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y1[ib].qs)));
        const __m256 p2 = _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y2[ib].qs)));
        const __m256 p3 = _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y3[ib].qs)));
        const __m256 dd8 = _mm256_set_m128(dd, dd);
        a0 = _mm256_fmadd_ps(_mm256_permute_ps(dd8, 0x00), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_permute_ps(dd8, 0x55), p1, a1);
        a2 = _mm256_fmadd_ps(_mm256_permute_ps(dd8, 0xAA), p2, a2);
        a3 = _mm256_fmadd_ps(_mm256_permute_ps(dd8, 0xFF), p3, a3);
    }
    float m[4];
    _mm_storeu_ps(m, ms);
    out[0] = hsum8(a0) + m[0];
    out[1] = hsum8(a1) + m[1];
    out[2] = hsum8(a2) + m[2];
    out[3] = hsum8(a3) + m[3];
}

/* 4 rows x 1 token; row k is bit-identical to vd_q4_1 on it (same
 * per-row accumulators and order). The activation block is loaded once for
 * the four rows, the four dependency chains overlap, and the weights are
 * prefetched. */
static void r4_q4_1(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q4_1 *x0 = vw, *x1 = (const block_q4_1 *)((const char *)vw + ws),
                     *x2 = (const block_q4_1 *)((const char *)vw + 2 * ws),
                     *x3 = (const block_q4_1 *)((const char *)vw + 3 * ws);
    const block_q8_1 *y = va;
    const int64_t nb = n / QK8_1;
    const char *pf = (const char *)vw + PF_AHEAD;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m128 ms = _mm_setzero_ps(); /* lane k: row k's fma chain of m*s */
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q4_1), 4 * (int)sizeof(block_q4_1));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
        const __m128 dy = _mm_set1_ps(f16(y[ib].d)), sy = _mm_set1_ps(f16(y[ib].s));
        uint32_t w0, w1, w2, w3;
        memcpy(&w0, &x0[ib].d, 4);
        memcpy(&w1, &x1[ib].d, 4);
        memcpy(&w2, &x2[ib].d, 4);
        memcpy(&w3, &x3[ib].d, 4);
        const __m256 dm = _mm256_cvtph_ps(_mm_setr_epi32((int)w0, (int)w1, (int)w2, (int)w3)); /* d0 m0 d1 m1 .. */
        const __m256 dmp = _mm256_permutevar8x32_ps(dm, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        ms = _mm_fmadd_ps(_mm256_extractf128_ps(dmp, 1), sy, ms);
        const __m128 dd = _mm_mul_ps(_mm256_castps256_ps128(dmp), dy);
        const __m256 p0 = _mm256_cvtepi32_ps(dot_us8(nibbles32(x0[ib].qs), qy));
        const __m256 p1 = _mm256_cvtepi32_ps(dot_us8(nibbles32(x1[ib].qs), qy));
        const __m256 p2 = _mm256_cvtepi32_ps(dot_us8(nibbles32(x2[ib].qs), qy));
        const __m256 p3 = _mm256_cvtepi32_ps(dot_us8(nibbles32(x3[ib].qs), qy));
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

/* 32 bits -> 32 bytes, 0xFF where the bit is set (ggml's bytes_from_bits_32) */
static inline __m256i bits32(const uint8_t *p) {
    uint32_t x32;
    memcpy(&x32, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x32), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* the 32 signed quants of a Q5_0 block: nibble | 0xF0 where the fifth bit is
 * clear (= nibble + 16 * bit - 16) */
static inline __m256i q5_0_quants(const block_q5_0 *b) {
    return _mm256_or_si256(nibbles32(b->qs), _mm256_andnot_si256(bits32(b->qh), _mm256_set1_epi8((char)0xF0)));
}

/* ggml_vec_dot_q5_0_q8_0 (AVX2) and tinyBLAS_Q0_AVX: one accumulator,
 * acc = fma(dx*dy, p, acc), then hsum; quant.c's vd_q5_0 is the same in
 * scalar code. */
static float vd_q5_0(int64_t n, const void *vw, const void *va) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256 p = _mm256_cvtepi32_ps(dot_ss8(q5_0_quants(&x[ib]), _mm256_loadu_si256((const __m256i *)y[ib].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p, acc);
    }
    return hsum8(acc);
}

/* 4 tokens; out[t] is bit-identical to vd_q5_0 on token t */
static void d4_q5_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_0 *)((const char *)va + t * as);
    const int64_t nb = n / QK8_0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = q5_0_quants(&x[ib]);
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][ib].qs), q);
            const __m256 p = _mm256_cvtepi32_ps(dot_us8(aq, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* 4 rows x 1 token; row k is bit-identical to vd_q5_0 on it */
static void r4_q5_0(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q5_0 *x[4];
    for (int k = 0; k < 4; k++) x[k] = (const block_q5_0 *)((const char *)vw + k * ws);
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    const char *pf = (const char *)vw + PF_AHEAD;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q5_0), 4 * (int)sizeof(block_q5_0));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
        const float dy = f16(y[ib].d);
        for (int k = 0; k < 4; k++) {
            const __m256 p = _mm256_cvtepi32_ps(dot_ss8(q5_0_quants(&x[k][ib]), qy));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[k][ib].d) * dy), p, acc[k]);
        }
    }
    for (int k = 0; k < 4; k++) out[k] = hsum8(acc[k]);
}

/* ------------------------------------------------------------ Q8_0 x Q8_0 */

/* ggml_vec_dot_q8_0_q8_0 (AVX2) and llamafile's tinyBLAS_Q0_AVX (batches):
 * one accumulator, acc = fma(dx*dy, p, acc), then hsum. */
static float vd_q8_0(int64_t n, const void *vw, const void *va) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256 p0 = _mm256_cvtepi32_ps(dot_ss8(_mm256_loadu_si256((const __m256i *)x[ib].qs),
                                                     _mm256_loadu_si256((const __m256i *)y[ib].qs)));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[ib].d) * f16(y[ib].d)), p0, acc);
    }
    return hsum8(acc);
}

/* 4 rows x 1 token; row k is bit-identical to vd_q8_0 on it. */
static void r4_q8_0(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q8_0 *x[4];
    for (int k = 0; k < 4; k++) x[k] = (const block_q8_0 *)((const char *)vw + k * ws);
    const block_q8_0 *y = va;
    const int64_t nb = n / QK8_0;
    const char *pf = (const char *)vw + PF_AHEAD;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        PF_LINES(pf + ib * 4 * sizeof(block_q8_0), 4 * (int)sizeof(block_q8_0));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)y[ib].qs);
        const float dy = f16(y[ib].d);
        for (int k = 0; k < 4; k++) {
            const __m256 p = _mm256_cvtepi32_ps(dot_ss8(_mm256_loadu_si256((const __m256i *)x[k][ib].qs), qy));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[k][ib].d) * dy), p, acc[k]);
        }
    }
    for (int k = 0; k < 4; k++) out[k] = hsum8(acc[k]);
}

static void d4_q8_0(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_0 *)((const char *)va + t * as);
    const int64_t nb = n / QK8_0;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t ib = 0; ib < nb; ib++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)x[ib].qs);
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dx = f16(x[ib].d);
        for (int t = 0; t < 4; t++) {
            const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[t][ib].qs), q);
            const __m256 p = _mm256_cvtepi32_ps(dot_us8(aq, sy));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[t][ib].d)), p, acc[t]);
        }
    }
    for (int t = 0; t < 4; t++) out[t] = hsum8(acc[t]);
}

/* ------------------------------------------------------------ Q4_K x Q8_K */

/* Q4_K in llama.cpp's x86 order (its repacked q4_K_8x8 kernels; see
 * quant.c): the integer sums of 64-element halves, isum = sc0 dot0 + sc1 dot1
 * and imin = m0 (bsum) + m1 (bsum), exact, then float steps per super-block
 * (one token) or per half (4 tokens). */
static inline void q4K_half(const block_q4_K *x, const block_q8_K *y, int j, const uint8_t sc[8], __m256i *acc) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i q4bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
    const __m256i q8l = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j));
    const __m256i q8h = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * j + 32));
    const __m256i pl = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]), _mm256_maddubs_epi16(_mm256_and_si256(q4bits, m4), q8l));
    const __m256i ph = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j + 1]),
                                         _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4), q8h));
    *acc = _mm256_add_epi32(pl, ph);
}

/* the 8 scales and 8 mins of a super-block (ggml's utmp unpacking, the same
 * values as qi_scale_min_k4) */
static inline void q4K_scales(const block_q4_K *x, uint8_t sc[8], uint8_t mn[8]) {
    const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    uint32_t u[4];
    memcpy(u, x->scales, 12);
    u[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    const uint32_t aux = u[1] & kmask1;
    u[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    u[2] = aux;
    u[0] &= kmask1;
    memcpy(sc, u, 8);
    memcpy(mn, u + 2, 8);
}

/* the sums of the 16-element bsums in pairs: the 32-element groups' sums */
static inline void q8K_pairs(const block_q8_K *y, int32_t ys[8]) {
    for (int j = 0; j < 8; j++) ys[j] = y->bsums[2 * j] + y->bsums[2 * j + 1];
}

static inline int32_t q4K_min(const uint8_t mn[8], const block_q8_K *y, int j) {
    return mn[2 * j] * (y->bsums[4 * j] + y->bsums[4 * j + 1]) + mn[2 * j + 1] * (y->bsums[4 * j + 2] + y->bsums[4 * j + 3]);
}

static float vd_q4_K(int64_t n, const void *vw, const void *va) {
    const block_q4_K *x = vw;
    const block_q8_K *y = va;
    const int64_t nb = n / QK_K;
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        q4K_scales(&x[i], sc, mn);
        __m256i sumi = _mm256_setzero_si256();
        int32_t imin = 0;
        for (int j = 0; j < QK_K / 64; j++) {
            __m256i h;
            q4K_half(&x[i], &y[i], j, sc, &h);
            sumi = _mm256_add_epi32(sumi, h);
            imin += q4K_min(mn, &y[i], j);
        }
        acc = fmaf((float)hsum_i32_8(sumi), f16(x[i].d) * y[i].d, acc);
        accm = fmaf((float)imin, f16(x[i].dmin) * y[i].d, accm);
    }
    return acc - accm;
}

/* the sums of the 8 int32 lanes of a, b, c, d -> (sum a, sum b, sum c, sum d) */
static inline __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    const __m256i abcd = _mm256_hadd_epi32(ab, cd); /* lo: a0+a1+a2+a3, b.., c.., d..; hi: the upper lanes */
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

/* 4 tokens, llama.cpp's gemm order (an fma per 64-element half); the four
 * tokens' chains run in the lanes of one SSE register, each lane exactly the
 * scalar fmaf chain */
static void d4_q4_K(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_K *x = vw;
    const block_q8_K *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_K *)((const char *)va + t * as);
    const int64_t nb = n / QK_K;
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        q4K_scales(&x[i], sc, mn);
        const __m128 dy = _mm_setr_ps(y[0][i].d, y[1][i].d, y[2][i].d, y[3][i].d);
        const __m128 d = _mm_mul_ps(_mm_set1_ps(f16(x[i].d)), dy), dmin = _mm_mul_ps(_mm_set1_ps(f16(x[i].dmin)), dy);
        for (int j = 0; j < QK_K / 64; j++) {
            __m256i h[4];
            for (int t = 0; t < 4; t++) q4K_half(&x[i], &y[t][i], j, sc, &h[t]);
            const __m128i isum = hsum4_i32(h[0], h[1], h[2], h[3]);
            const __m128i imin = _mm_setr_epi32(q4K_min(mn, y[0] + i, j), q4K_min(mn, y[1] + i, j), q4K_min(mn, y[2] + i, j),
                                                q4K_min(mn, y[3] + i, j));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), d, acc);
            accm = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), dmin, accm);
        }
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

/* 4 rows x 4 tokens in the gemm order: out[4t + k] is bit-identical to
 * d4_q4_K's out[t] for row k (the weights' nibbles split once for the four
 * tokens; for each token the four rows' fma chains run in the lanes of one
 * register) */
static void t44_q4_K(int64_t n, const void *vw, size_t ws, const void *va, size_t as, float out[16]) {
    const block_q4_K *x[4];
    const block_q8_K *y[4];
    for (int k = 0; k < 4; k++) x[k] = (const block_q4_K *)((const char *)vw + k * ws);
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_K *)((const char *)va + t * as);
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m128 acc[4], accm[4];
    for (int t = 0; t < 4; t++) acc[t] = accm[t] = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[4][8], mn[4][8];
        int16_t sc16[4][8];
        for (int k = 0; k < 4; k++) {
            q4K_scales(&x[k][i], sc[k], mn[k]);
            for (int j = 0; j < 8; j++) sc16[k][j] = sc[k][j];
        }
        /* per half j: the four rows' two mins, (m[2j], m[2j+1]) as int16 pairs */
        __m128i mins[4];
        for (int j = 0; j < 4; j++)
            mins[j] = _mm_setr_epi16(mn[0][2 * j], mn[0][2 * j + 1], mn[1][2 * j], mn[1][2 * j + 1], mn[2][2 * j],
                                     mn[2][2 * j + 1], mn[3][2 * j], mn[3][2 * j + 1]);
        const __m128i dxi = _mm_setr_epi16((short)x[0][i].d, (short)x[1][i].d, (short)x[2][i].d, (short)x[3][i].d, 0, 0, 0, 0);
        const __m128i dmi = _mm_setr_epi16((short)x[0][i].dmin, (short)x[1][i].dmin, (short)x[2][i].dmin,
                                           (short)x[3][i].dmin, 0, 0, 0, 0);
        const __m128 dx = _mm_cvtph_ps(dxi), dmx = _mm_cvtph_ps(dmi);
        /* the tokens' 32-group sums as int16 (|sum| <= 32 * 127) */
        int32_t ysw[4][4]; /* [t][j]: the int16 pair (sum 2j, sum 2j+1) */
        for (int t = 0; t < 4; t++)
            _mm_storeu_si128((__m128i *)ysw[t], _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[t][i].bsums),
                                                               _mm_loadu_si128((const __m128i *)(y[t][i].bsums + 8))));
        for (int j = 0; j < QK_K / 64; j++) {
            __m256i ql[4], qh[4];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i b = _mm256_loadu_si256((const __m256i *)(x[k][i].qs + 32 * j));
                ql[k] = _mm256_and_si256(b, m4);
                qh[k] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
            }
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                const __m256i q8l = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j));
                const __m256i q8h = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 64 * j + 32));
                __m256i h[4];
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    h[k] = _mm256_add_epi32(_mm256_madd_epi16(_mm256_set1_epi16(sc16[k][2 * j]), _mm256_maddubs_epi16(ql[k], q8l)),
                                            _mm256_madd_epi16(_mm256_set1_epi16(sc16[k][2 * j + 1]), _mm256_maddubs_epi16(qh[k], q8h)));
                /* imin of the four rows: m[2j] ys[2j] + m[2j+1] ys[2j+1], one madd */
                const __m128i imin = _mm_madd_epi16(mins[j], _mm_set1_epi32(ysw[t][j]));
                const __m128 dy = _mm_set1_ps(y[t][i].d);
                acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum4_i32(h[0], h[1], h[2], h[3])), _mm_mul_ps(dx, dy), acc[t]);
                accm[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), _mm_mul_ps(dmx, dy), accm[t]);
            }
        }
    }
    for (int t = 0; t < 4; t++) _mm_storeu_ps(out + 4 * t, _mm_sub_ps(acc[t], accm[t]));
}

/* 4 rows x 1 token, llama.cpp's gemv order; row k is bit-identical to
 * vd_q4_K on it (its own fma chains, in lane k). The integer sums as ggml's
 * AVX2 Q4_K kernel forms them: scales broadcast per 32-group, the mins
 * against the activation's 32-group sums with one madd. */
static void r4_q4_K(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q4_K *x[4];
    for (int k = 0; k < 4; k++) x[k] = (const block_q4_K *)((const char *)vw + k * ws);
    const block_q8_K *y = va;
    const int64_t nb = n / QK_K;
    const char *pf = (const char *)vw + PF_AHEAD;
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        PF_LINES(pf + i * 4 * sizeof(block_q4_K), 4 * (int)sizeof(block_q4_K));
        const __m128i ys = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[i].bsums),
                                          _mm_loadu_si128((const __m128i *)(y[i].bsums + 8)));
        __m256i q8[8];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) q8[g] = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
        __m256i s[4];
        __m128i pm[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            uint8_t sc[8], mn[8];
            q4K_scales(&x[k][i], sc, mn);
            pm[k] = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn)), ys);
            __m256i acc_i = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int j = 0; j < QK_K / 64; j++) {
                const __m256i q4bits = _mm256_loadu_si256((const __m256i *)(x[k][i].qs + 32 * j));
                const __m256i pl = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * j]),
                                                     _mm256_maddubs_epi16(_mm256_and_si256(q4bits, m4), q8[2 * j]));
                const __m256i ph = _mm256_madd_epi16(
                    _mm256_set1_epi16(sc[2 * j + 1]),
                    _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4), q8[2 * j + 1]));
                acc_i = _mm256_add_epi32(acc_i, _mm256_add_epi32(pl, ph));
            }
            s[k] = acc_i;
        }
        const __m128i imin = _mm_hadd_epi32(_mm_hadd_epi32(pm[0], pm[1]), _mm_hadd_epi32(pm[2], pm[3]));
        const __m128 dy = _mm_set1_ps(y[i].d);
        const __m128i dxi = _mm_setr_epi16((short)x[0][i].d, (short)x[1][i].d, (short)x[2][i].d, (short)x[3][i].d, 0, 0, 0, 0);
        const __m128i dmi = _mm_setr_epi16((short)x[0][i].dmin, (short)x[1][i].dmin, (short)x[2][i].dmin,
                                           (short)x[3][i].dmin, 0, 0, 0, 0);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum4_i32(s[0], s[1], s[2], s[3])), _mm_mul_ps(_mm_cvtph_ps(dxi), dy), acc);
        accm = _mm_fmadd_ps(_mm_cvtepi32_ps(imin), _mm_mul_ps(_mm_cvtph_ps(dmi), dy), accm);
    }
    _mm_storeu_ps(out, _mm_sub_ps(acc, accm));
}

/* The 8 int32 lanes of one Q6_K super-block as ggml_vec_dot_q6_K_q8_K's AVX2
 * path has them (quant.c: vd_q6_K) */
static inline __m256i q6K_lanes(const block_q6_K *x, const block_q8_K *y) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i m2 = _mm256_set1_epi8(3);
    const uint8_t *ql = x->ql, *qh = x->qh;
    const int8_t *sc = x->scales, *q8 = y->qs;
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < QK_K / 128; c++) {
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)ql);
        const __m256i b2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i bh = _mm256_loadu_si256((const __m256i *)qh);
        ql += 64;
        qh += 32;
        __m256i q[4];
        q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
        q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
        for (int k = 0; k < 4; k++) {
            const __m256i y8 = _mm256_loadu_si256((const __m256i *)(q8 + 32 * k));
            const __m256i p = _mm256_maddubs_epi16(q[k], y8);
            const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scv, p));
        }
        q8 += 128;
        sc += 8;
    }
    /* the -32 offset, as ggml: lane l loses 32 (bsum[2l] sc[2l] + bsum[2l+1] sc[2l+1]) */
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    const __m256i bs16 = _mm256_loadu_si256((const __m256i *)y->bsums);
    return _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bs16, sc16), 5));
}

static float vd_q6_K(int64_t n, const void *vw, const void *va) {
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[i].d) * y[i].d), _mm256_cvtepi32_ps(q6K_lanes(&x[i], &y[i])), acc);
    return hsum8(acc);
}

/* 4 rows x 1 token; row k is bit-identical to vd_q6_K on it (the same
 * lane sums: the activation's 32-byte groups loaded once for the four rows,
 * each group's two scales spread over its lanes with one shuffle) */
static void r4_q6_K(int64_t n, const void *vw, size_t ws, const void *va, float out[4]) {
    const block_q6_K *x[4];
    for (int k = 0; k < 4; k++) x[k] = (const block_q6_K *)((const char *)vw + k * ws);
    const block_q8_K *y = va;
    const int64_t nb = n / QK_K;
    const char *pf = (const char *)vw + PF_AHEAD;
    const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(3);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++) {
        PF_LINES(pf + i * 4 * sizeof(block_q6_K), 4 * (int)sizeof(block_q6_K));
        __m256i q8[8];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) q8[g] = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
        const __m256i bs16 = _mm256_loadu_si256((const __m256i *)y[i].bsums);
        __m256i lanes[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const block_q6_K *b = &x[k][i];
            const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
            __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int c = 0; c < 2; c++) {
                const __m256i b1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * c));
                const __m256i b2 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * c + 32));
                const __m256i bh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * c));
                const __m256i q0 = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(b2, m4),
                                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
                const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
                const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
                const __m256i qq[4] = {q0, q1, q2, q3};
#pragma GCC unroll 4
                for (int g = 0; g < 4; g++) {
                    /* 16-bit scales: sc[8c + 2g] for bytes 0-15, sc[8c + 2g + 1] for 16-31 */
                    const int i0 = 8 * c + 2 * g;
                    const __m128i shuf = _mm_setr_epi8((char)i0, (char)i0, (char)i0, (char)i0, (char)i0, (char)i0, (char)i0,
                                                       (char)i0, (char)(i0 + 1), (char)(i0 + 1), (char)(i0 + 1),
                                                       (char)(i0 + 1), (char)(i0 + 1), (char)(i0 + 1), (char)(i0 + 1),
                                                       (char)(i0 + 1));
                    const __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, shuf));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scv, _mm256_maddubs_epi16(qq[g], q8[4 * c + g])));
                }
            }
            const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
            lanes[k] = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bs16, sc16), 5));
        }
        const float dy = y[i].d;
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[0][i].d) * dy), _mm256_cvtepi32_ps(lanes[0]), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[1][i].d) * dy), _mm256_cvtepi32_ps(lanes[1]), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[2][i].d) * dy), _mm256_cvtepi32_ps(lanes[2]), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[3][i].d) * dy), _mm256_cvtepi32_ps(lanes[3]), a3);
    }
    out[0] = hsum8(a0);
    out[1] = hsum8(a1);
    out[2] = hsum8(a2);
    out[3] = hsum8(a3);
}

/* The unpacked quants (0..63) of one Q6_K super-block: 8 groups of 32 */
static inline void q6K_unpack(const block_q6_K *x, __m256i q[8]) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    const __m256i m2 = _mm256_set1_epi8(3);
    for (int c = 0; c < 2; c++) {
        const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * c));
        const __m256i b2 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * c + 32));
        const __m256i bh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * c));
        q[4 * c + 0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
        q[4 * c + 1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
        q[4 * c + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
        q[4 * c + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
    }
}

/* 1 row x 4 tokens in the tiled order; token t is bit-identical to
 * vd_tiled_q6_K on it (the weights unpacked once for the four) */
static void t4_q6_K(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q6_K *x = vw;
    const block_q8_K *y[4];
    for (int t = 0; t < 4; t++) y[t] = (const block_q8_K *)((const char *)va + t * as);
    const int64_t nb = n / QK_K;
    __m128 acc = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i q[8], scv[8];
        q6K_unpack(&x[i], q);
        for (int g = 0; g < 8; g++) {
            const int8_t *sc = x[i].scales + 8 * (g / 4) + 2 * (g % 4);
            scv[g] = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m256i s[4];
        for (int t = 0; t < 4; t++) {
            __m256i sumi = _mm256_setzero_si256();
            for (int g = 0; g < 8; g++) {
                const __m256i y8 = _mm256_loadu_si256((const __m256i *)(y[t][i].qs + 32 * g));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scv[g], _mm256_maddubs_epi16(q[g], y8)));
            }
            const __m256i bs16 = _mm256_loadu_si256((const __m256i *)y[t][i].bsums);
            s[t] = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bs16, sc16), 5));
        }
        const __m128 dy = _mm_setr_ps(y[0][i].d, y[1][i].d, y[2][i].d, y[3][i].d);
        const __m128 t = _mm_mul_ps(_mm_cvtepi32_ps(hsum4_i32(s[0], s[1], s[2], s[3])), _mm_set1_ps(f16(x[i].d)));
        acc = _mm_fmadd_ps(t, dy, acc);
    }
    _mm_storeu_ps(out, acc);
}

/* llama.cpp's tiled order for products of >= 8 tokens (quant.c:
 * vd_tiled_q6_K): the exact integer sum of the super-block, then
 * acc = fma((float)isum * d, dy, acc) */
static float vd_tiled_q6_K(int64_t n, const void *vw, const void *va) {
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    const int64_t nb = n / QK_K;
    float acc = 0;
    for (int64_t i = 0; i < nb; i++)
        acc = fmaf((float)hsum_i32_8(q6K_lanes(&x[i], &y[i])) * f16(x[i].d), y[i].d, acc);
    return acc;
}

/* ------------------------------------------------- activation quantizers */

/* 32 floats -> rounded int32 x4 vectors scaled by id; returns amax */
static inline float amax32(const float *x, __m256 v[4]) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    return hmax8(m);
}

static inline __m256i pack32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    i0 = _mm256_packs_epi32(i0, i1);
    i2 = _mm256_packs_epi32(i2, i3);
    i0 = _mm256_packs_epi16(i0, i2);
    return _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void qa_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    for (int64_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
        __m256 v[4];
        const float amax = amax32(x, v);
        const float d = amax / 127.f;
        y[i].d = qi_f32_to_f16(d);
        const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm256_storeu_si256((__m256i *)y[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

static void qa_q8_1(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = vy;
    for (int64_t i = 0; i < n / QK8_1; i++, x += QK8_1) {
        __m256 v[4];
        const float amax = amax32(x, v);
        const float d = amax / 127.f;
        y[i].d = qi_f32_to_f16(d);
        const __m256 mul = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const int sum = hsum_i32_8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        y[i].s = qi_f32_to_f16(d * sum);
        _mm256_storeu_si256((__m256i *)y[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

/* bit-identical to the scalar reference quantize_row_q8_K */
static void qa_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
        const float amax = hmax8(m);
        if (!(amax > 0)) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) == amax) { max = x[j]; break; }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_round_ps(
                    _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
            const __m256i packed = pack32(q[0], q[1], q[2], q[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), packed);
            /* bsums of the two 16-element groups */
            const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), packed);
            const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
            /* s32 lanes 0..3 -> group 2*(j/32), lanes 4..7 -> group +1 */
            __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
            lo = _mm_add_epi32(lo, _mm_unpackhi_epi64(lo, lo));
            lo = _mm_add_epi32(lo, _mm_shuffle_epi32(lo, 0xb1));
            hi = _mm_add_epi32(hi, _mm_unpackhi_epi64(hi, hi));
            hi = _mm_add_epi32(hi, _mm_shuffle_epi32(hi, 0xb1));
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(lo);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm_cvtsi128_si32(hi);
        }
        y[i].d = 1 / iscale;
    }
}

/* ------------------------------------------ f32 math in ggml's order */

/* ggml_v_expf, AVX-512 variant (polynomial, then scalef(j, n)); lanes whose
 * 2^n is not a normal float take the scalar path (ldexpf rounds once, as
 * scalef does). Bit-identical to qm_expf. */
static inline __m256 expf512(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    if (_mm256_movemask_ps(_mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_NLE_UQ)) == 0) {
        const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_mul_ps(j, _mm256_castsi256_ps(e));
    }
    float jv[8], nv[8];
    _mm256_storeu_ps(jv, j);
    _mm256_storeu_ps(nv, n);
    for (int l = 0; l < 8; l++)
        jv[l] = fabsf(nv[l]) > 192.0f ? (nv[l] <= 0.0f ? 0.0f : INFINITY) : ldexpf(jv[l], (int)nv[l]);
    return _mm256_loadu_ps(jv);
}

static void av_swiglu(int64_t n, float *g, const float *u) {
    const int64_t n16 = n & ~(int64_t)15;
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i < n16; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 e = expf512(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* _mm512_reduce_add_ps of the 16 lanes lo (0..7), hi (8..15) */
static inline float reduce16(__m256 lo, __m256 hi) { return hsum8(_mm256_add_ps(hi, lo)); }

static float av_dot_f32(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)63;
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < np; i += 64)
        for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), a[k]);
    /* 16-lane accumulators: acc_m = (a[2m], a[2m+1]) */
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    float s = reduce16(lo, hi);
    for (int64_t i = np; i < n; i++) s = fmaf(x[i], y[i], s);
    return s;
}

static double av_softmax_exp(int64_t n, float *x, float max) {
    double sum = 0.0;
    const __m256 mx = _mm256_set1_ps(max);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 lo = expf512(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        const __m256 hi = expf512(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mx));
        _mm256_storeu_ps(x + i, lo);
        _mm256_storeu_ps(x + i + 8, hi);
        sum += (double)reduce16(lo, hi);
    }
    if (i < n) {
        float v[16];
        for (int l = 0; l < 16; l++) v[l] = i + l < n ? x[i + l] : max;
        __m256 lo = expf512(_mm256_sub_ps(_mm256_loadu_ps(v), mx));
        __m256 hi = expf512(_mm256_sub_ps(_mm256_loadu_ps(v + 8), mx));
        _mm256_storeu_ps(v, lo);
        _mm256_storeu_ps(v + 8, hi);
        for (int l = 0; l < 16; l++) {
            if (i + l < n) x[i + l] = v[l];
            else v[l] = 0.0f; /* masked positions: exp(-inf) = 0 */
        }
        sum += (double)reduce16(_mm256_loadu_ps(v), _mm256_loadu_ps(v + 8));
    }
    return sum;
}

static void av_kqv(int64_t np, const float *w, const float *v, size_t v_stride, int64_t D, int period, float *out,
                   float *acc) {
    if (D % 8) {
        /* not a shape llama models have; same arithmetic, scalar */
        memset(acc, 0, sizeof(float) * (size_t)period * (size_t)D);
        for (int64_t p = 0; p < np; p++) {
            float *a = acc + (size_t)(p % period) * (size_t)D;
            for (int64_t d = 0; d < D; d++) a[d] = fmaf(w[p], v[(size_t)p * v_stride + d], a[d]);
        }
        for (int64_t d = 0; d < D; d++) {
            float l16[16], t3[8], t6[4];
            for (int l = 0; l < 16; l++) {
                const float *c = acc + (size_t)l * (size_t)D + d;
                l16[l] = period == 16 ? c[0] : (c[0] + c[32 * D]) + (c[16 * D] + c[48 * D]);
            }
            for (int j = 0; j < 8; j++) t3[j] = l16[j + 8] + l16[j];
            for (int j = 0; j < 4; j++) t6[j] = t3[j + 4] + t3[j];
            out[d] = (t6[0] + t6[2]) + (t6[1] + t6[3]);
        }
        return;
    }
    const int64_t used = np < period ? np : period;
    for (int64_t p = 0; p < used; p++) {
        const __m256 wp = _mm256_set1_ps(w[p]);
        float *a = acc + (size_t)p * (size_t)D;
        const float *vp = v + (size_t)p * v_stride;
        for (int64_t d = 0; d < D; d += 8) _mm256_storeu_ps(a + d, _mm256_mul_ps(wp, _mm256_loadu_ps(vp + d)));
    }
    for (int64_t p = used; p < period; p++) memset(acc + (size_t)p * (size_t)D, 0, sizeof(float) * (size_t)D);
    for (int64_t p = period; p < np; p++) {
        const __m256 wp = _mm256_set1_ps(w[p]);
        float *a = acc + (size_t)(p % period) * (size_t)D;
        const float *vp = v + (size_t)p * v_stride;
        for (int64_t d = 0; d < D; d += 8)
            _mm256_storeu_ps(a + d, _mm256_fmadd_ps(wp, _mm256_loadu_ps(vp + d), _mm256_loadu_ps(a + d)));
    }
    for (int64_t d = 0; d < D; d += 8) {
        __m256 l[16];
        for (int k = 0; k < 16; k++) {
            const float *c = acc + (size_t)k * (size_t)D + d;
            l[k] = period == 16 ? _mm256_loadu_ps(c)
                                : _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(c), _mm256_loadu_ps(c + 32 * D)),
                                                _mm256_add_ps(_mm256_loadu_ps(c + 16 * D), _mm256_loadu_ps(c + 48 * D)));
        }
        __m256 t3[8], t6[4];
        for (int j = 0; j < 8; j++) t3[j] = _mm256_add_ps(l[j + 8], l[j]);
        for (int j = 0; j < 4; j++) t6[j] = _mm256_add_ps(t3[j + 4], t3[j]);
        _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_add_ps(t6[0], t6[2]), _mm256_add_ps(t6[1], t6[3])));
    }
}

static void av_rope(int64_t npairs, float *x, const float *cs, const float *sn) {
    int64_t i = 0;
    for (; i + 4 <= npairs; i += 4) {
        const __m256 v = _mm256_loadu_ps(x + 2 * i);                        /* x0 x1 x0 x1 ... */
        const __m128 c4 = _mm_loadu_ps(cs + i), s4 = _mm_loadu_ps(sn + i);
        const __m256 csv = _mm256_set_m128(_mm_unpackhi_ps(c4, s4), _mm_unpacklo_ps(c4, s4)); /* c s */
        const __m256 scv = _mm256_permute_ps(csv, 0xB1);                    /* s c */
        /* even: fma(x0, c, -(x1*s)), odd: fma(x0, s, x1*c) */
        _mm256_storeu_ps(x + 2 * i, _mm256_fmaddsub_ps(_mm256_moveldup_ps(v), csv,
                                                       _mm256_mul_ps(_mm256_movehdup_ps(v), scv)));
    }
    for (; i < npairs; i++) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1], c = cs[i], s = sn[i];
        x[2 * i] = fmaf(x0, c, -(x1 * s));
        x[2 * i + 1] = fmaf(x0, s, x1 * c);
    }
}

static void av_rope_neox(int64_t npairs, float *x, const float *cs, const float *sn) {
    float *x1p = x + npairs;
    int64_t i = 0;
    for (; i + 8 <= npairs; i += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x1p + i);
        const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
        /* fma(x0, c, -(x1*s)) and fma(x0, s, x1*c), as sc_rope_neox */
        _mm256_storeu_ps(x + i, _mm256_fmsub_ps(x0, c, _mm256_mul_ps(x1, s)));
        _mm256_storeu_ps(x1p + i, _mm256_fmadd_ps(x0, s, _mm256_mul_ps(x1, c)));
    }
    for (; i < npairs; i++) {
        const float x0 = x[i], x1 = x1p[i], c = cs[i], s = sn[i];
        x[i] = fmaf(x0, c, -(x1 * s));
        x1p[i] = fmaf(x0, s, x1 * c);
    }
}

void quant_avx2_fill(quant_kernels *k) {
    k->name = "avx2";
    k->vec_dot[MOME_DTYPE_F32] = vd_f32;
    k->vec_dot[MOME_DTYPE_F16] = vd_f16;
    k->vec_dot[MOME_DTYPE_Q4_0] = vd_q4_0;
    k->vec_dot[MOME_DTYPE_Q4_1] = vd_q4_1;
    k->vec_dot[MOME_DTYPE_Q8_0] = vd_q8_0;
    k->vec_dot[MOME_DTYPE_Q5_0] = vd_q5_0;
    k->dot4[MOME_DTYPE_Q5_0] = d4_q5_0;
    k->rows4[MOME_DTYPE_Q5_0] = r4_q5_0;
    k->dot4_exact[MOME_DTYPE_Q5_0] = 1;
    k->vec_dot[MOME_DTYPE_Q4_K] = vd_q4_K;
    k->dot4[MOME_DTYPE_Q4_K] = d4_q4_K;
    k->vd_tiled[MOME_DTYPE_Q6_K] = vd_tiled_q6_K;
    k->dot4_tiled[MOME_DTYPE_Q6_K] = t4_q6_K;
    k->rows4[MOME_DTYPE_Q4_K] = r4_q4_K;
    k->tile44[MOME_DTYPE_Q4_K] = t44_q4_K;
    k->rows4[MOME_DTYPE_Q6_K] = r4_q6_K;
    k->vec_dot[MOME_DTYPE_Q6_K] = vd_q6_K;
    k->dot4[MOME_DTYPE_F32] = d4_f32;
    k->dot4[MOME_DTYPE_Q4_0] = d4_q4_0;
    k->dot4[MOME_DTYPE_Q4_1] = d4_q4_1;
    k->dot4[MOME_DTYPE_Q8_0] = d4_q8_0;
    k->rows4[MOME_DTYPE_Q4_1] = r4_q4_1;
    k->rows4[MOME_DTYPE_Q8_0] = r4_q8_0;
    /* the F32 and Q4_0 tiles keep llamafile's accumulator layout, not vec_dot's */
    k->dot4_exact[MOME_DTYPE_Q4_1] = 1;
    k->dot4_exact[MOME_DTYPE_Q8_0] = 1;
    k->quant_act[MOME_DTYPE_Q8_0] = qa_q8_0;
    k->quant_act[MOME_DTYPE_Q8_1] = qa_q8_1;
    k->quant_act[MOME_DTYPE_Q8_K] = qa_q8_K;
    k->swiglu = av_swiglu;
    k->dot_f32 = av_dot_f32;
    k->softmax_exp = av_softmax_exp;
    k->kqv = av_kqv;
    k->rope = av_rope;
    k->rope_neox = av_rope_neox;
}
