/* test_quant.c - type traits, half conversions, (de)quantization against
 * gguf-py golden data, SIMD kernels against the scalar reference, matmul
 * tiling, and quantized-dot accuracy. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "quant_impl.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd_unif(void) { return (rnd_u32() >> 8) * (1.0f / 16777216.0f); } /* [0,1) */
static float rnd_normal(void) {
    float u = rnd_unif() + 1e-7f, v = rnd_unif();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static float sane_scale(void) {
    float m = expf(logf(1e-3f) + rnd_unif() * (logf(2.0f) - logf(1e-3f)));
    return rnd_unif() < 0.2f ? -m : m;
}

/* fp16 scale fields (byte offsets) per type; Q8_K has an f32 d at 0 */
static int scale_offsets(enum mome_dtype t, int off[2]) {
    switch (t) {
    case MOME_DTYPE_Q4_0: case MOME_DTYPE_Q5_0: case MOME_DTYPE_Q8_0: off[0] = 0; return 1;
    case MOME_DTYPE_Q4_1: case MOME_DTYPE_Q5_1: case MOME_DTYPE_Q8_1:
    case MOME_DTYPE_Q4_K: case MOME_DTYPE_Q5_K: off[0] = 0; off[1] = 2; return 2;
    case MOME_DTYPE_Q6_K: off[0] = 208; return 1;
    default: return 0;
    }
}

/* n elements of random data of type t into buf (quant_row_size bytes) */
static void random_row(enum mome_dtype t, int64_t n, void *buf) {
    const quant_traits *tr = quant_get_traits(t);
    size_t sz = quant_row_size(t, n);
    if (t == MOME_DTYPE_F32 || t == MOME_DTYPE_F16 || t == MOME_DTYPE_BF16) {
        float *f = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) f[i] = rnd_normal();
        quant_quantize_row(t, f, buf, n);
        free(f);
        return;
    }
    uint8_t *b = buf;
    for (size_t i = 0; i < sz; i++) b[i] = (uint8_t)rnd_u32();
    int off[2];
    int k = scale_offsets(t, off);
    for (int64_t ib = 0; ib < n / tr->blck; ib++) {
        uint8_t *blk = b + ib * tr->type_size;
        for (int j = 0; j < k; j++) {
            uint16_t h = quant_f32_to_f16(sane_scale());
            memcpy(blk + off[j], &h, 2);
        }
        if (t == MOME_DTYPE_Q8_K) {
            float d = sane_scale() * 1e-2f;
            memcpy(blk, &d, 4);
        }
    }
}

static void *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* the default table is a SIMD one (avx2, or avx512vnni built on it) */
static int have_avx2(void) {
    quant_init(0);
    return strcmp(quant_kernel_name(), "scalar") != 0;
}

/* --------------------------------------------------------------- tests */

static void test_traits(void) {
    struct { enum mome_dtype t; int64_t blck; size_t ts; int sup; enum mome_dtype vt; } exp[] = {
        {MOME_DTYPE_F32, 1, 4, 1, MOME_DTYPE_F32},      {MOME_DTYPE_F16, 1, 2, 1, MOME_DTYPE_F32},
        {MOME_DTYPE_BF16, 1, 2, 1, MOME_DTYPE_F32},     {MOME_DTYPE_Q4_0, 32, 18, 1, MOME_DTYPE_Q8_0},
        {MOME_DTYPE_Q4_1, 32, 20, 1, MOME_DTYPE_Q8_1},  {MOME_DTYPE_Q5_0, 32, 22, 1, MOME_DTYPE_Q8_0},
        {MOME_DTYPE_Q5_1, 32, 24, 1, MOME_DTYPE_Q8_1},  {MOME_DTYPE_Q8_0, 32, 34, 1, MOME_DTYPE_Q8_0},
        {MOME_DTYPE_Q8_1, 32, 36, 1, MOME_DTYPE_Q8_1},  {MOME_DTYPE_Q2_K, 256, 84, 0, MOME_DTYPE_Q8_K},
        {MOME_DTYPE_Q3_K, 256, 110, 0, MOME_DTYPE_Q8_K}, {MOME_DTYPE_Q4_K, 256, 144, 1, MOME_DTYPE_Q8_K},
        {MOME_DTYPE_Q5_K, 256, 176, 1, MOME_DTYPE_Q8_K}, {MOME_DTYPE_Q6_K, 256, 210, 1, MOME_DTYPE_Q8_K},
        {MOME_DTYPE_Q8_K, 256, 292, 1, MOME_DTYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof exp / sizeof exp[0]; i++) {
        const quant_traits *tr = quant_get_traits(exp[i].t);
        REQUIRE(tr != NULL, "type %d", exp[i].t);
        CHECK(tr->blck == exp[i].blck && tr->type_size == exp[i].ts && tr->supported == exp[i].sup &&
                  tr->vec_dot_type == exp[i].vt,
              "%s", tr->name);
        CHECK(quant_row_size(exp[i].t, exp[i].blck * 3) == exp[i].ts * 3, "%s row size", tr->name);
        if (exp[i].blck > 1) {
            CHECK(quant_row_size(exp[i].t, exp[i].blck * 3 + 1) == 0, "%s non-multiple", tr->name);
            CHECK(quant_row_size(exp[i].t, exp[i].blck / 2) == 0, "%s half block", tr->name);
        }
        CHECK(quant_row_size(exp[i].t, 0) == 0 || exp[i].blck >= 1, "%s n=0", tr->name);
    }
    uint32_t bad[] = {4, 5, 16, 17, 29, 31, 39, 40, 41, 1000, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(quant_get_traits(bad[i]) == NULL, "id %u", bad[i]);
        CHECK(quant_row_size((enum mome_dtype)bad[i], 32) == 0, "row size id %u", bad[i]);
    }
    CHECK(quant_row_size(MOME_DTYPE_Q4_0, -32) == 0, "negative n");
    CHECK(quant_act_row_size(MOME_DTYPE_Q4_1, 64) == 72, "act row q4_1");
    CHECK(quant_act_row_size(MOME_DTYPE_Q6_K, 512) == 584, "act row q6_K");
    CHECK(quant_act_row_size(MOME_DTYPE_F16, 10) == 40, "act row f16");
}

static void test_half(void) {
    int bad = 0;
    /* every finite half round-trips; NaN stays NaN */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) {
            if (!isnan(f)) bad++;
            continue;
        }
        if (quant_f32_to_f16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 round-trip failures", bad);
    /* midpoints round to even, neighbours of midpoints round to nearest */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = quant_f16_to_f32((uint16_t)h), b = quant_f16_to_f32((uint16_t)(h + 1));
        float mid = (a + b) * 0.5f;
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (quant_f32_to_f16(mid) != even) bad++;
        if (quant_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) bad++;
        if (quant_f32_to_f16(nextafterf(mid, -INFINITY)) != h) bad++;
        if (quant_f32_to_f16(-mid) != (even | 0x8000)) bad++;
    }
    CHECK(bad == 0, "%d f16 rounding failures", bad);
    CHECK(quant_f32_to_f16(65520.0f) == 0x7c00, "65520 -> inf");
    CHECK(quant_f32_to_f16(65519.99f) == 0x7bff, "65519.99 -> max");
    CHECK(quant_f32_to_f16(1e-8f) == 0, "tiny -> 0");
    CHECK(quant_f32_to_f16(INFINITY) == 0x7c00 && quant_f32_to_f16(-INFINITY) == 0xfc00, "inf");
    CHECK((quant_f32_to_f16(NAN) & 0x7fff) > 0x7c00, "nan");
    /* bf16 */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (quant_f32_to_bf16(f) != h) bad++;
    }
    CHECK(bad == 0, "%d bf16 round-trip failures", bad);
    CHECK(quant_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even (down)");
    CHECK(quant_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 tie to even (up)");
}

static const enum mome_dtype golden_types[] = {
    MOME_DTYPE_F32, MOME_DTYPE_F16, MOME_DTYPE_BF16, MOME_DTYPE_Q4_0, MOME_DTYPE_Q4_1,
    MOME_DTYPE_Q5_0, MOME_DTYPE_Q5_1, MOME_DTYPE_Q8_0, MOME_DTYPE_Q8_1, MOME_DTYPE_Q4_K,
    MOME_DTYPE_Q5_K, MOME_DTYPE_Q6_K, MOME_DTYPE_Q8_K,
};

/* Golden files from tests/reference/make_quant_golden.py (gguf-py). Both our
 * dequantization and the reference quantizers must match bit for bit. */
static void test_golden(void) {
    int n_files = 0;
    for (size_t gi = 0; gi < sizeof golden_types / sizeof golden_types[0]; gi++) {
        const enum mome_dtype t = golden_types[gi];
        const quant_traits *tr = quant_get_traits(t);
        char path[256], lname[16];
        size_t k = 0;
        for (; tr->name[k] && k < sizeof lname - 1; k++)
            lname[k] = (char)((tr->name[k] >= 'A' && tr->name[k] <= 'Z') ? tr->name[k] + 32 : tr->name[k]);
        lname[k] = 0;
        snprintf(path, sizeof path, "tests/golden/quant_%s.bin", lname);
        size_t len;
        uint8_t *buf = read_file(path, &len);
        CHECK(buf != NULL, "missing %s (run tests/reference/make_quant_golden.py)", path);
        if (!buf) continue;
        n_files++;
        uint32_t hdr[4];
        REQUIRE(len >= 20 && memcmp(buf, "MQG1", 4) == 0, "%s: bad magic", path);
        memcpy(hdr, buf + 4, 16);
        CHECK(hdr[0] == (uint32_t)t && hdr[1] == tr->blck && hdr[2] == tr->type_size, "%s header", path);
        const size_t nb = hdr[3], n = nb * tr->blck;
        const uint8_t *raw = buf + 20;
        const uint8_t *deq = raw + nb * tr->type_size;
        const uint8_t *qsec = deq + n * 4;
        if ((size_t)(qsec + 4 - buf) > len) {
            CHECK(0, "%s truncated", path);
            free(buf);
            continue;
        }
        float *got = malloc(n * sizeof(float));
        quant_dequantize_row(t, raw, got, (int64_t)n);
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want;
            memcpy(&want, deq + 4 * i, 4);
            if (bits(want) != bits(got[i])) {
                if (bad < 3)
                    fprintf(stderr, "  %s deq[%zu]: got %.9g want %.9g\n", tr->name, i, got[i], want);
                bad++;
            }
        }
        CHECK(bad == 0, "%s: %d dequantized values differ", tr->name, bad);
        free(got);

        uint32_t nq;
        memcpy(&nq, qsec, 4);
        if (nq) {
            const float *qin_b = (const float *)(qsec + 4);
            const size_t qbytes = quant_row_size(t, nq);
            const uint8_t *qout = qsec + 4 + (size_t)nq * 4;
            if ((size_t)(qout + qbytes - buf) != len) {
                CHECK(0, "%s: bad quantization section", path);
            } else {
                float *qin = malloc((size_t)nq * 4);
                memcpy(qin, qin_b, (size_t)nq * 4);
                uint8_t *mine = malloc(qbytes);
                quant_quantize_row(t, qin, mine, nq);
                size_t diff = 0, first = 0;
                for (size_t i = 0; i < qbytes; i++)
                    if (mine[i] != qout[i] && diff++ == 0) first = i;
                CHECK(diff == 0, "%s: quantize differs in %zu bytes (first at %zu: %u vs %u)", tr->name,
                      diff, first, mine[first], qout[first]);
                /* the activation quantizer (scalar path) is the reference one */
                if (t == MOME_DTYPE_Q8_0 || t == MOME_DTYPE_Q8_1 || t == MOME_DTYPE_Q8_K) {
                    quant_init(1);
                    memset(mine, 0, qbytes);
                    quant_quantize_act(t, qin, mine, nq);
                    CHECK(memcmp(mine, qout, qbytes) == 0, "%s: scalar activation quantizer", tr->name);
                    quant_init(0);
                }
                free(mine);
                free(qin);
            }
        }
        free(buf);
    }
    CHECK(n_files == (int)(sizeof golden_types / sizeof golden_types[0]), "golden files found: %d", n_files);
}

/* weight types, and which have SIMD kernels */
static const enum mome_dtype wtypes[] = {
    MOME_DTYPE_F32, MOME_DTYPE_F16, MOME_DTYPE_BF16, MOME_DTYPE_Q4_0, MOME_DTYPE_Q4_1,
    MOME_DTYPE_Q5_0, MOME_DTYPE_Q5_1, MOME_DTYPE_Q8_0, MOME_DTYPE_Q4_K, MOME_DTYPE_Q5_K,
    MOME_DTYPE_Q6_K,
};
#define N_WTYPES (sizeof wtypes / sizeof wtypes[0])

/* sum |w_i * a_i| with both dequantized: the scale of the dot's terms */
static double abs_terms(enum mome_dtype t, int64_t n, const void *w, const void *a) {
    const quant_traits *tr = quant_get_traits(t);
    float *wd = malloc((size_t)n * 4), *ad = malloc((size_t)n * 4);
    quant_dequantize_row(t, w, wd, n);
    quant_dequantize_row(tr->vec_dot_type, a, ad, n);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)wd[i] * ad[i]);
    free(wd);
    free(ad);
    return s;
}

/* Activation quantization: SIMD Q8_0/Q8_1 follow ggml's AVX2 code (127/amax,
 * round-half-even), so quants may differ by one from the reference on ties;
 * d is identical. SIMD Q8_K is bit-identical. */
static void test_act_simd(void) {
    if (!have_avx2()) SKIP("no AVX2");
    const enum mome_dtype wt[] = {MOME_DTYPE_Q8_0, MOME_DTYPE_Q4_1, MOME_DTYPE_Q4_K};
    const int64_t n = 1024;
    float *x = malloc(n * 4);
    uint8_t *s = malloc(quant_act_row_size(MOME_DTYPE_Q4_K, n) + quant_act_row_size(MOME_DTYPE_Q4_1, n));
    uint8_t *v = malloc(quant_act_row_size(MOME_DTYPE_Q4_K, n) + quant_act_row_size(MOME_DTYPE_Q4_1, n));
    for (int rep = 0; rep < 20; rep++) {
        float sc = expf((rnd_unif() - 0.5f) * 10);
        for (int64_t i = 0; i < n; i++) x[i] = rnd_normal() * sc;
        if (rep == 1) memset(x, 0, 64 * 4);                /* zero blocks */
        if (rep == 2) for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.5f; /* ties */
        for (size_t k = 0; k < 3; k++) {
            const size_t sz = quant_act_row_size(wt[k], n);
            quant_init(1);
            quant_quantize_act(wt[k], x, s, n);
            quant_init(0);
            quant_quantize_act(wt[k], x, v, n);
            if (wt[k] == MOME_DTYPE_Q4_K) {
                CHECK(memcmp(s, v, sz) == 0, "q8_K SIMD quantizer not bit-exact (rep %d)", rep);
                continue;
            }
            const size_t bs = wt[k] == MOME_DTYPE_Q8_0 ? 34 : 36, qo = bs - 32;
            int bad = 0;
            for (size_t b = 0; b < sz / bs; b++) {
                const uint8_t *p = s + b * bs, *q = v + b * bs;
                if (memcmp(p, q, 2) != 0) bad++;
                int sum = 0;
                for (int j = 0; j < 32; j++) {
                    int d = (int8_t)p[qo + j] - (int8_t)q[qo + j];
                    if (d < -1 || d > 1) bad++;
                    sum += (int8_t)q[qo + j];
                }
                if (bs == 36) {
                    uint16_t dh, sh;
                    memcpy(&dh, q, 2);
                    memcpy(&sh, q + 2, 2);
                    /* s = fp16(d_f32 * sum) with the unrounded d: within fp16 precision */
                    const double sd = (double)quant_f16_to_f32(dh) * sum, sv = quant_f16_to_f32(sh);
                    if (fabs(sv - sd) > 2e-3 * fabs(sd) + 1e-7)
                        bad++;
                }
            }
            CHECK(bad == 0, "%s activation SIMD vs scalar: %d mismatches (rep %d)",
                  quant_get_traits(wt[k])->name, bad, rep);
        }
    }
    free(x);
    free(s);
    free(v);
}

/* vec_dot SIMD vs scalar on identical inputs. */
static void test_vec_dot_simd(void) {
    if (!have_avx2()) SKIP("no AVX2");
    const int64_t lens[] = {256, 512, 768, 1536, 2816, 4096};
    const int64_t lens_small[] = {1, 7, 8, 15, 31, 32, 33, 64, 100, 172, 576};
    for (size_t ti = 0; ti < N_WTYPES; ti++) {
        const enum mome_dtype t = wtypes[ti];
        const quant_traits *tr = quant_get_traits(t);
        int nlen = 6 + (tr->blck == 1 ? 11 : tr->blck == 32 ? 4 : 0);
        for (int li = 0; li < nlen; li++) {
            int64_t n = li < 6 ? lens[li] : lens_small[li - 6 + (tr->blck == 32 ? 5 : 0)];
            if (n % tr->blck) continue;
            for (int rep = 0; rep < 8; rep++) {
                void *w = malloc(quant_row_size(t, n));
                void *a = malloc(quant_act_row_size(t, n));
                float *x = malloc(n * 4);
                random_row(t, n, w);
                for (int64_t i = 0; i < n; i++) x[i] = rnd_normal();
                quant_init(1);
                quant_quantize_act(t, x, a, n);
                const float ref = quant_vec_dot(t, n, w, a);
                quant_init(0);
                const float got = quant_vec_dot(t, n, w, a);
                const double tol = 1e-5 * abs_terms(t, n, w, a) + 1e-6;
                CHECK(fabs((double)got - ref) <= tol, "%s n=%lld: simd %.9g scalar %.9g (tol %.3g)", tr->name,
                      (long long)n, got, ref, tol);
                free(w);
                free(a);
                free(x);
            }
        }
    }
}

/* quant_matmul: tiles x odd row ranges x nt = 1..9, 12 and 19 (several
 * 8-token groups and a tail), against looping
 * quant_vec_dot (scalar path: exactly; SIMD path: within tolerance); rows
 * outside [r0, r1) untouched. */
static void test_matmul(void) {
    const int64_t R = 13, ldy = 17;
    enum { NT = 19 };
    static const int nts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 19};
    const struct { int64_t r0, r1; } ranges[] = {{0, 13}, {3, 11}, {5, 6}, {12, 13}, {4, 4}};
    static const char *const tables[] = {"scalar", "avx2", "avx512vnni"};
    for (int path = 0; path < 3; path++) {
        if (quant_init_kernels(tables[path]) != 0) continue; /* not on this CPU */
        for (size_t ti = 0; ti < N_WTYPES; ti++) {
            const enum mome_dtype t = wtypes[ti];
            const quant_traits *tr = quant_get_traits(t);
            const int64_t n = tr->blck == 1 ? 172 : tr->blck == 32 ? 576 : 512;
            const size_t ws = quant_row_size(t, n) + 8; /* padded stride (rows stay 4-byte aligned) */
            const size_t as = quant_act_row_size(t, n) + 12;
            uint8_t *W = calloc(R, ws), *A = calloc(NT, as);
            float *X = malloc(n * 4);
            for (int64_t r = 0; r < R; r++) random_row(t, n, W + r * ws);
            for (int tk = 0; tk < NT; tk++) {
                for (int64_t i = 0; i < n; i++) X[i] = rnd_normal();
                quant_quantize_act(t, X, A + tk * as, n);
            }
            float *Y = malloc(NT * ldy * sizeof(float));
            for (size_t ni = 0; ni < sizeof nts / sizeof nts[0]; ni++) {
                const int nt = nts[ni];
                for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
                    for (int i = 0; i < NT * ldy; i++) Y[i] = -12345.0f;
                    quant_matmul(t, n, W, ws, A, as, nt, Y, ldy, ranges[ri].r0, ranges[ri].r1);
                    int bad = 0;
                    for (int tk = 0; tk < NT; tk++)
                        for (int64_t r = 0; r < ldy; r++) {
                            const float y = Y[tk * ldy + r];
                            if (tk >= nt || r < ranges[ri].r0 || r >= ranges[ri].r1) {
                                if (y != -12345.0f) bad++;
                                continue;
                            }
                            const void *wr = W + r * ws, *ar = A + tk * as;
                            const float ref = quant_vec_dot(t, n, wr, ar);
                            /* Q4_1, Q5_0 and Q8_0 tiles accumulate each token exactly as vec_dot
                             * does (as llama.cpp's kernels do), so batched == one-token decoding;
                             * Q4_K's 4-token tiles take llama.cpp's gemm order (test_x86_order) */
                            const int exact = (path == 0 && t != MOME_DTYPE_Q4_K && !(t == MOME_DTYPE_Q6_K && nt >= 8)) ||
                                              t == MOME_DTYPE_Q4_1 || t == MOME_DTYPE_Q8_0 || t == MOME_DTYPE_Q5_0;
                            const double tol = exact ? 0 : 1e-5 * abs_terms(t, n, wr, ar) + 1e-6;
                            if (!(fabs((double)y - ref) <= tol)) {
                                if (bad < 2)
                                    fprintf(stderr, "  %s nt=%d r=%lld t=%d: %.9g vs %.9g\n", tr->name, nt,
                                            (long long)r, tk, y, ref);
                                bad++;
                            }
                        }
                    CHECK(bad == 0, "%s %s nt=%d rows [%lld,%lld): %d bad", quant_kernel_name(), tr->name, nt,
                          (long long)ranges[ri].r0, (long long)ranges[ri].r1, bad);
                }
            }
            free(W);
            free(A);
            free(X);
            free(Y);
        }
    }
    quant_init(0);
}

/* Quantization quality: weight NMSE of our quantizers, and the quantized dot
 * (activations quantized too) against the exact dot of the dequantized weights
 * with the f32 activations, both paths. */
static void test_accuracy(void) {
    const struct { enum mome_dtype t; double nmse; } q[] = {
        {MOME_DTYPE_F16, 1e-6},   {MOME_DTYPE_BF16, 3e-5},  {MOME_DTYPE_Q8_0, 1e-4},
        {MOME_DTYPE_Q5_0, 4e-3},  {MOME_DTYPE_Q5_1, 3e-3},  {MOME_DTYPE_Q4_0, 1.5e-2},
        {MOME_DTYPE_Q4_1, 1e-2},  {MOME_DTYPE_Q4_K, 1.5e-2}, {MOME_DTYPE_Q6_K, 1e-3},
        {MOME_DTYPE_F32, 0},
    };
    const int64_t n = 4096;
    float *x = malloc(n * 4), *a = malloc(n * 4), *wd = malloc(n * 4);
    void *w = malloc(n * 4), *aq = malloc(quant_act_row_size(MOME_DTYPE_Q4_K, n) + n * 4);
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        const char *name = quant_get_traits(q[k].t)->name;
        double se = 0, sx = 0, worst = 0;
        for (int rep = 0; rep < 10; rep++) {
            for (int64_t i = 0; i < n; i++) x[i] = rnd_normal() * (1.0f + (float)(i % 7));
            for (int64_t i = 0; i < n; i++) a[i] = rnd_normal();
            quant_quantize_row(q[k].t, x, w, n);
            quant_dequantize_row(q[k].t, w, wd, n);
            double exact = 0, nw = 0, na = 0;
            for (int64_t i = 0; i < n; i++) {
                se += ((double)x[i] - wd[i]) * ((double)x[i] - wd[i]);
                sx += (double)x[i] * x[i];
                exact += (double)wd[i] * a[i];
                nw += (double)wd[i] * wd[i];
                na += (double)a[i] * a[i];
            }
            for (int path = 0; path < 2; path++) {
                quant_init(path == 0);
                quant_quantize_act(q[k].t, a, aq, n);
                const double got = quant_vec_dot(q[k].t, n, w, aq);
                const double err = fabs(got - exact) / sqrt(nw * na);
                if (err > worst) worst = err;
            }
        }
        quant_init(0);
        const double nmse = se / sx;
        CHECK(nmse <= q[k].nmse, "%s weight nmse %.3g > %.3g", name, nmse, q[k].nmse);
        /* Q8 activations: per-element error ~ amax/254, normalized dot error
         * ~ 1e-4 at n=4096; F32 activations: rounding only */
        const double bound = quant_get_traits(q[k].t)->blck == 1 ? 1e-6 : 1e-3;
        CHECK(worst <= bound, "%s dot error %.3g > %.3g", name, worst, bound);
        if (getenv("MOME_TEST_VERBOSE"))
            fprintf(stderr, "  %-5s nmse %.3g  dot err %.3g\n", name, nmse, worst);
    }
    free(x);
    free(a);
    free(wd);
    free(w);
    free(aq);
}

/* Unsupported/invalid inputs are ignored rather than read out of bounds. */

/* The f32 math of the forward pass (qm_*, llama.cpp's order of operations):
 * the AVX2 kernels must give the scalar reference's bits exactly; ggml's exp
 * stays within a few ulp of libm's. */
static void run_qm(float *g, float *sm, double *sum, float *dot, float *kqv16, float *kqv64, float *rope, const float *x,
                   const float *u, const float *v, int64_t n, int64_t D) {
    float acc[64 * 64];
    memcpy(g, x, n * sizeof(float));
    qm_swiglu(n, g, u);
    memcpy(sm, x, n * sizeof(float));
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = sm[i] > mx ? sm[i] : mx;
    *sum = qm_softmax_exp(n, sm, mx);
    *dot = qm_dot_f32(n, x, u);
    qm_kqv(n, sm, v, (size_t)D + 3, D, 16, kqv16, acc);
    qm_kqv(n, sm, v, (size_t)D + 3, D, 64, kqv64, acc);
    memcpy(rope, x, n * sizeof(float));
    qm_rope(n / 2, rope, u, u + n / 2);
}

static void test_ggml_math(void) {
    const int64_t lens[] = {1, 7, 16, 17, 63, 64, 65, 130, 576, 1536};
    const int64_t D = 64;
    int ulp_bad = 0;
    for (float x = -110.0f; x < 90.0f; x += 0.0137f) {
        const float a = qm_expf(x), b = expf(x);
        const double rel = b > 1e-37f ? fabs((double)a - b) / b : fabs((double)a - b);
        if (rel > 4e-7 && !(b < 1e-37f && fabs((double)a - b) < 1e-44)) ulp_bad++;
    }
    CHECK(ulp_bad == 0, "qm_expf differs from expf by more than ~3 ulp at %d points", ulp_bad);
    CHECK(qm_expf(-INFINITY) == 0.0f && qm_expf(200.0f) == INFINITY && qm_expf(0.0f) == 1.0f, "qm_expf edges");
    if (!have_avx2()) SKIP("no AVX2");
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *x = malloc(n * 4), *u = malloc(n * 4), *v = malloc((size_t)n * (D + 3) * 4);
        float *r[2][5];
        double sum[2];
        float dot[2];
        for (int k = 0; k < 2; k++) {
            r[k][0] = malloc(n * 4); r[k][1] = malloc(n * 4); r[k][2] = malloc(D * 4); r[k][3] = malloc(D * 4);
            r[k][4] = malloc(n * 4);
        }
        for (int64_t i = 0; i < n; i++) {
            x[i] = 4 * rnd_normal();
            u[i] = rnd_normal();
        }
        if (n > 5) x[5] = -100.0f; /* exp underflows to subnormal / zero */
        for (int64_t i = 0; i < n * (D + 3); i++) v[i] = rnd_normal();
        for (int k = 0; k < 2; k++) {
            quant_init(k == 0);
            run_qm(r[k][0], r[k][1], &sum[k], &dot[k], r[k][2], r[k][3], r[k][4], x, u, v, n, D);
        }
        quant_init(0);
        CHECK(memcmp(r[0][0], r[1][0], n * 4) == 0, "swiglu n=%lld: avx2 != scalar", (long long)n);
        CHECK(memcmp(r[0][1], r[1][1], n * 4) == 0 && sum[0] == sum[1], "softmax n=%lld: avx2 != scalar", (long long)n);
        CHECK(bits(dot[0]) == bits(dot[1]), "dot_f32 n=%lld: %.9g vs %.9g", (long long)n, dot[0], dot[1]);
        CHECK(memcmp(r[0][2], r[1][2], D * 4) == 0, "kqv/16 n=%lld: avx2 != scalar", (long long)n);
        CHECK(memcmp(r[0][3], r[1][3], D * 4) == 0, "kqv/64 n=%lld: avx2 != scalar", (long long)n);
        CHECK(memcmp(r[0][4], r[1][4], (n & ~1) * 4) == 0, "rope n=%lld: avx2 != scalar", (long long)n);
        /* sanity against plain math */
        double s = 0, ref = 0;
        for (int64_t i = 0; i < n; i++) s += r[0][1][i];
        CHECK(fabs(s - sum[0]) <= 1e-5 * sum[0], "softmax sum");
        for (int64_t i = 0; i < n; i++) ref += (double)x[i] * u[i];
        CHECK(fabs(ref - dot[0]) <= 1e-4 * (1 + fabs(ref)), "dot_f32 %.6g vs %.6g", dot[0], ref);
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 5; j++) free(r[k][j]);
        free(x);
        free(u);
        free(v);
    }
}

/* Q5_0, Q8_0, Q4_K and Q6_K follow llama.cpp's x86 arithmetic (quant.c): the
 * scalar reference and the AVX2 / AVX-512 VNNI tables give the same bits for
 * one token (vec_dot, 4-row kernels) and for batches (4-token tiles in
 * Q4_K's gemm order, the tokens past a multiple of 4 in its one-token
 * order; Q6_K products of >= 8 tokens in the tiled kernel's order); those
 * orders are not vec_dot's, and all agree with a double-precision dot
 * product. */
static void test_x86_order(void) {
    static const enum mome_dtype ts[] = {MOME_DTYPE_Q5_0, MOME_DTYPE_Q8_0, MOME_DTYPE_Q4_K, MOME_DTYPE_Q6_K};
    static const char *const tables[] = {"scalar", "avx2", "avx512vnni"};
    const int64_t R = 9, NT = 9;
    int cases = 0, tile_differs = 0;
    for (size_t ti = 0; ti < sizeof ts / sizeof ts[0]; ti++) {
        const enum mome_dtype t = ts[ti];
        const quant_traits *tr = quant_get_traits(t);
        const int64_t lens[] = {256, 512, 1536, 4864};
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            const size_t ws = quant_row_size(t, n), as = quant_act_row_size(t, n);
            uint8_t *W = calloc(R, ws), *A = calloc(NT, as);
            float *X = malloc(n * 4), *Y[3];
            for (int k = 0; k < 3; k++) Y[k] = malloc(NT * R * 4);
            for (int64_t r = 0; r < R; r++) random_row(t, n, W + r * ws);
            quant_init(1);
            for (int tk = 0; tk < NT; tk++) {
                for (int64_t i = 0; i < n; i++) X[i] = (tk == 3 && i % 7 == 0 ? 20.0f : 1.0f) * rnd_normal();
                quant_quantize_act(t, X, A + tk * as, n);
            }
            for (int nt = 1; nt <= NT; nt++) {
                int ran[3] = {0};
                for (int k = 0; k < 3; k++) {
                    if (quant_init_kernels(tables[k]) != 0) continue;
                    ran[k] = 1;
                    for (int i = 0; i < NT * R; i++) Y[k][i] = -1.0f;
                    quant_matmul(t, n, W, ws, A, as, nt, Y[k], R, 0, R);
                }
                for (int k = 1; k < 3; k++)
                    if (ran[k]) {
                        cases++;
                        CHECK(memcmp(Y[0], Y[k], NT * R * 4) == 0, "%s n=%lld nt=%d: %s != scalar", tr->name,
                              (long long)n, nt, tables[k]);
                    }
                /* every result against double precision */
                quant_init(1);
                for (int tk = 0; tk < nt; tk++)
                    for (int64_t r = 0; r < R; r++) {
                        const float v = quant_vec_dot(t, n, W + r * ws, A + tk * as);
                        const double tol = 1e-5 * abs_terms(t, n, W + r * ws, A + tk * as) + 1e-6;
                        CHECK(fabs((double)Y[0][tk * R + r] - v) <= tol, "%s n=%lld: tile vs vec_dot", tr->name,
                              (long long)n);
                        /* Q4_K: tokens in whole 4-token tiles take the gemm order; Q6_K: every
                         * token of a product of >= 8 takes the tiled order; else vec_dot's */
                        const int other = (t == MOME_DTYPE_Q4_K && tk < nt / 4 * 4) ||
                                          (t == MOME_DTYPE_Q6_K && nt >= 8);
                        if (other && bits(Y[0][tk * R + r]) != bits(v)) tile_differs |= t == MOME_DTYPE_Q4_K ? 1 : 2;
                        CHECK(other || bits(Y[0][tk * R + r]) == bits(v), "%s nt=%d: token %d differs from vec_dot",
                              tr->name, nt, tk);
                    }
            }
            for (int64_t r = 0; r < R; r++) {
                float v[3];
                int ran[3] = {0};
                for (int k = 0; k < 3; k++)
                    if (quant_init_kernels(tables[k]) == 0) {
                        ran[k] = 1;
                        v[k] = quant_vec_dot(t, n, W + r * ws, A + r % NT * as);
                    }
                for (int k = 1; k < 3; k++)
                    if (ran[k]) CHECK(bits(v[0]) == bits(v[k]), "%s vec_dot: %s %.9g scalar %.9g", tr->name, tables[k], v[k], v[0]);
            }
            quant_init(0);
            free(W); free(A); free(X);
            for (int k = 0; k < 3; k++) free(Y[k]);
        }
    }
    printf("  %d table comparisons\n", cases);
    CHECK(tile_differs == 3, "Q4_K's gemm order or Q6_K's tiled order never showed (%d)", tile_differs);
}

/* NEOX rope (qwen2): element i pairs with i + n/2. Against a double
 * rotation, and the AVX2 kernel against the scalar reference bit for bit
 * (lengths with and without a tail past the 8-wide loop). */
static void test_rope_neox(void) {
    const int64_t halves[] = {1, 3, 8, 11, 32, 64, 67};
    for (size_t hi = 0; hi < sizeof halves / sizeof halves[0]; hi++) {
        const int64_t h = halves[hi], n = 2 * h;
        float *x = malloc(n * 4), *cs = malloc(h * 4), *sn = malloc(h * 4), *r[2] = {malloc(n * 4), malloc(n * 4)};
        for (int64_t i = 0; i < n; i++) x[i] = 3 * rnd_normal();
        for (int64_t i = 0; i < h; i++) {
            const double th = 0.37 * (double)(i + 1) * (double)(hi + 1);
            cs[i] = (float)cos(th);
            sn[i] = (float)sin(th);
        }
        const int nk = have_avx2() ? 2 : 1;
        for (int k = 0; k < nk; k++) {
            quant_init(k == 0);
            memcpy(r[k], x, n * 4);
            qm_rope_neox(h, r[k], cs, sn);
        }
        quant_init(0);
        for (int64_t i = 0; i < h; i++) {
            const double y0 = (double)x[i] * cs[i] - (double)x[i + h] * sn[i];
            const double y1 = (double)x[i] * sn[i] + (double)x[i + h] * cs[i];
            CHECK(fabs(r[0][i] - y0) <= 1e-5 * (1 + fabs(y0)) && fabs(r[0][i + h] - y1) <= 1e-5 * (1 + fabs(y1)),
                  "neox h=%lld i=%lld: (%g, %g) vs (%g, %g)", (long long)h, (long long)i, r[0][i], r[0][i + h], y0, y1);
        }
        if (nk == 2) CHECK(memcmp(r[0], r[1], n * 4) == 0, "rope_neox h=%lld: avx2 != scalar", (long long)h);
        /* not the adjacent-pair mode */
        if (h > 1) {
            memcpy(r[1], x, n * 4);
            qm_rope(h, r[1], cs, sn);
            CHECK(memcmp(r[0], r[1], n * 4) != 0, "neox equals the normal mode at h=%lld", (long long)h);
        }
        free(x); free(cs); free(sn); free(r[0]); free(r[1]);
    }
}

/* The AVX-512 VNNI table against the AVX2 one, bit for bit: vec_dot, and
 * quant_matmul with one token (4-row tiles) and batches (4-token tiles), odd
 * row ranges, every weight type, several lengths, including the extreme
 * quants (nibbles 0/15, int8 -128/127) and activations of +-127. */
static void test_vnni_vs_avx2(void) {
    if (quant_init_kernels("avx2") != 0) SKIP("no AVX2");
    if (quant_init_kernels("avx512vnni") != 0) {
        quant_init(0);
        SKIP("CPU has no AVX-512 VNNI (avx512f/vl/bw/vnni): VNNI kernels not run");
    }
    const int64_t lens[] = {32, 64, 96, 256, 576, 1536, 4096};
    const int64_t R = 11, NT = 9;
    int bad = 0, cases = 0;
    for (size_t ti = 0; ti < N_WTYPES; ti++) {
        const enum mome_dtype t = wtypes[ti];
        const quant_traits *tr = quant_get_traits(t);
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            if (n % tr->blck) continue;
            for (int rep = 0; rep < 3; rep++) {
                const size_t ws = quant_row_size(t, n) + (rep == 1 ? 4 : 0);
                const size_t as = quant_act_row_size(t, n) + (rep == 2 ? 8 : 0);
                uint8_t *W = calloc(R, ws), *A = calloc(NT, as);
                float *X = malloc(n * 4), *Y0 = malloc(NT * R * 4), *Y1 = malloc(NT * R * 4);
                for (int64_t r = 0; r < R; r++) random_row(t, n, W + r * ws);
                if (rep == 1 && tr->blck == 32) /* extreme weight quants */
                    for (int64_t r = 0; r < R; r++)
                        for (int64_t ib = 0; ib < n / 32; ib++) {
                            uint8_t *blk = W + r * ws + ib * tr->type_size;
                            const size_t q0 = tr->type_size - (t == MOME_DTYPE_Q8_0 ? 32 : 16);
                            for (size_t j = q0; j < tr->type_size; j++)
                                blk[j] = t == MOME_DTYPE_Q8_0 ? ((j + r) % 2 ? 0x80 : 0x7f) : ((j + r) % 2 ? 0xff : 0x00);
                        }
                for (int tk = 0; tk < NT; tk++) {
                    for (int64_t i = 0; i < n; i++)
                        X[i] = rep == 2 && tk % 2 ? ((i % 3) ? 1.0f : -1.0f) : rnd_normal();
                    quant_init_kernels("avx2");
                    quant_quantize_act(t, X, A + tk * as, n);
                }
                for (int nt = 1; nt <= NT; nt++) {
                    const int64_t r0 = nt % 3, r1 = R - (nt % 2);
                    for (int k = 0; k < 2; k++) {
                        float *Y = k ? Y1 : Y0;
                        for (int i = 0; i < NT * R; i++) Y[i] = -1.0f;
                        quant_init_kernels(k ? "avx512vnni" : "avx2");
                        quant_matmul(t, n, W, ws, A, as, nt, Y, R, r0, r1);
                    }
                    cases++;
                    if (memcmp(Y0, Y1, NT * R * 4) != 0) {
                        if (bad < 3)
                            for (int i = 0; i < NT * R; i++)
                                if (bits(Y0[i]) != bits(Y1[i])) {
                                    fprintf(stderr, "  %s n=%lld nt=%d: [%d] avx2 %.9g vnni %.9g\n", tr->name,
                                            (long long)n, nt, i, Y0[i], Y1[i]);
                                    break;
                                }
                        bad++;
                    }
                }
                for (int64_t r = 0; r < R; r++) {
                    float v[2];
                    for (int k = 0; k < 2; k++) {
                        quant_init_kernels(k ? "avx512vnni" : "avx2");
                        v[k] = quant_vec_dot(t, n, W + r * ws, A);
                    }
                    cases++;
                    if (bits(v[0]) != bits(v[1])) {
                        if (bad < 3)
                            fprintf(stderr, "  %s n=%lld vec_dot row %lld: avx2 %.9g vnni %.9g\n", tr->name,
                                    (long long)n, (long long)r, v[0], v[1]);
                        bad++;
                    }
                }
                free(W);
                free(A);
                free(X);
                free(Y0);
                free(Y1);
            }
        }
    }
    quant_init(0);
    CHECK(bad == 0, "%d of %d VNNI results differ from AVX2", bad, cases);
}

static void test_edges(void) {
    float y[64] = {0};
    uint8_t buf[256] = {0};
    quant_dequantize_row(MOME_DTYPE_Q2_K, buf, y, 256); /* unsupported: no-op */
    quant_dequantize_row((enum mome_dtype)5, buf, y, 32);
    quant_dequantize_row(MOME_DTYPE_Q4_0, buf, y, 33);
    CHECK(quant_vec_dot(MOME_DTYPE_Q4_0, 33, buf, buf) == 0.0f, "non-multiple n");
    CHECK(quant_vec_dot((enum mome_dtype)4, 32, buf, buf) == 0.0f, "unknown type");
    CHECK(quant_act_row_size(MOME_DTYPE_Q3_K, 256) == 0, "unsupported act size");
    quant_init(1);
    CHECK(strcmp(quant_kernel_name(), "scalar") == 0, "forced scalar");
    quant_init(0);
    const char *k = quant_kernel_name();
    CHECK(strcmp(k, "scalar") == 0 || strcmp(k, "avx2") == 0 || strcmp(k, "avx512vnni") == 0, "kernel name %s", k);
    CHECK(quant_init_kernels("no-such-table") == -1, "unknown table accepted");
    CHECK(strcmp(quant_kernel_name(), k) == 0, "failed selection changed the table");
    CHECK(quant_init_kernels("scalar") == 0 && strcmp(quant_kernel_name(), "scalar") == 0, "select scalar");
    quant_init(0);
    printf("     kernels: %s\n", k);
}

/* Packed (row-interleaved) Q4_K, Q6_K, Q5_0 and Q8_0: quant_matmul_packed
 * under every table (VNNI: its own kernels; the others: the reference, which
 * unpacks) against quant_matmul / quant_matmul_solo on the plain matrix under
 * the scalar table, bit for bit: nt = 1..19 (4-token groups and the gemv rest
 * of Q4_K, the tiled order of Q6_K from 8 tokens, token pairs and the odd one
 * of Q5_0/Q8_0), row ranges in 16s, rows of 1-6 super-blocks (Q5_0/Q8_0: 1,
 * 3, 28, 152 and 280 blocks: the 0.5B's 896 and 4864, and more than one
 * pass of the kernels' 256-block activation table), random quants (Q8_0: -128
 * included) and activations (some all +-127). */
static void test_packed(void) {
    static const enum mome_dtype pt[] = {MOME_DTYPE_Q4_K, MOME_DTYPE_Q6_K, MOME_DTYPE_Q5_0, MOME_DTYPE_Q8_0};
    static const char *tabs[] = {"scalar", "avx2", "avx512vnni"};
    const int64_t klens[] = {256, 512, 1536}, lens0[] = {32, 96, 896, 4864, 8960};
    const int64_t R = 48, NT = 19;
    const int64_t ranges[][2] = {{0, 48}, {16, 32}, {16, 48}};
    int bad = 0, cases = 0, vnni = 0;
    for (size_t ti = 0; ti < sizeof pt / sizeof pt[0]; ti++)
        for (size_t li = 0; li < 5; li++) {
            const enum mome_dtype t = pt[ti];
            const int kq = t == MOME_DTYPE_Q4_K || t == MOME_DTYPE_Q6_K;
            if (kq && li >= 3) continue;
            const int64_t n = kq ? klens[li] : lens0[li];
            const size_t ws = quant_row_size(t, n), as = quant_act_row_size(t, n);
            uint8_t *W = malloc(R * ws), *P = malloc(R * ws), *A = malloc(NT * as);
            float *X = malloc(n * 4), *Y0 = malloc(NT * R * 4), *Y1 = malloc(NT * R * 4), *d0 = malloc(n * 4),
                  *d1 = malloc(n * 4);
            for (int64_t r = 0; r < R; r++) random_row(t, n, W + r * ws);
            quant_init_kernels("scalar");
            for (int tk = 0; tk < NT; tk++) {
                for (int64_t i = 0; i < n; i++) X[i] = tk % 5 == 3 ? ((i % 3) ? 1.0f : -1.0f) : rnd_normal();
                quant_quantize_act(t, X, A + tk * as, n);
            }
            quant_pack(t, n, W, ws, R, P);
            for (int64_t r = 0; r < R; r++) {
                quant_dequantize_row(t, W + r * ws, d0, n);
                quant_packed_dequantize_row(t, n, P, r, d1);
                cases++;
                if (memcmp(d0, d1, n * 4) != 0) bad++;
            }
            for (int nt = 1; nt <= NT; nt++)
                for (int solo = 0; solo < 2; solo++)
                    for (size_t ri = 0; ri < 3; ri++) {
                        const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
                        for (int i = 0; i < NT * R; i++) Y0[i] = Y1[i] = -1.0f;
                        quant_init_kernels("scalar");
                        if (solo) quant_matmul_solo(t, n, W, ws, A, as, nt, Y0, R, r0, r1);
                        else quant_matmul(t, n, W, ws, A, as, nt, Y0, R, r0, r1);
                        for (size_t k = 0; k < 3; k++) {
                            if (quant_init_kernels(tabs[k]) != 0) continue;
                            vnni += k == 2;
                            for (int i = 0; i < NT * R; i++) Y1[i] = -1.0f;
                            quant_matmul_packed(t, n, P, A, as, nt, Y1, R, r0, r1, solo);
                            cases++;
                            if (memcmp(Y0, Y1, NT * R * 4) != 0) {
                                if (bad < 4)
                                    for (int i = 0; i < NT * R; i++)
                                        if (bits(Y0[i]) != bits(Y1[i])) {
                                            fprintf(stderr, "  %s %s n=%lld nt=%d solo=%d [%d]: plain %.9g packed %.9g\n",
                                                    tabs[k], quant_get_traits(t)->name, (long long)n, nt, solo, i,
                                                    Y0[i], Y1[i]);
                                            break;
                                        }
                                bad++;
                            }
                        }
                    }
            free(W); free(P); free(A); free(X); free(Y0); free(Y1); free(d0); free(d1);
        }
    quant_init(0);
    CHECK(bad == 0, "%d of %d packed results differ from the plain scalar ones", bad, cases);
    if (!vnni) SKIP("CPU has no AVX-512 VNNI: only the packed reference ran");
}

int main(void) {
    RUN(test_traits);
    RUN(test_half);
    RUN(test_golden);
    RUN(test_act_simd);
    RUN(test_vec_dot_simd);
    RUN(test_matmul);
    RUN(test_accuracy);
    RUN(test_ggml_math);
    RUN(test_rope_neox);
    RUN(test_x86_order);
    RUN(test_vnni_vs_avx2);
    RUN(test_edges);
    RUN(test_packed);
    return test_summary();
}
