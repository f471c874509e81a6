/* quant.c - type traits, scalar reference (de)quantizers and dot products,
 * kernel selection and the matmul driver. See quant.h.
 *
 * The scalar code follows ggml's reference implementations (ggml-quants.c
 * *_ref quantizers, dequantize_row_*, and the generic ggml_vec_dot_*): the
 * integer parts are identical and the float formulas are the same, so results
 * track llama.cpp's. This file is compiled without -mfma, so no FMA
 * contraction changes the float results of dequantization.
 */
#include "quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "quant_impl.h"

/* ------------------------------------------------------------------ traits */

static const quant_traits g_traits[MOME_DTYPE_COUNT] = {
    [MOME_DTYPE_F32] = {.name = "f32", .blck = 1, .type_size = 4, .supported = 1,
                        .vec_dot_type = MOME_DTYPE_F32},
    [MOME_DTYPE_F16] = {.name = "f16", .blck = 1, .type_size = 2, .supported = 1,
                        .vec_dot_type = MOME_DTYPE_F32},
    [MOME_DTYPE_BF16] = {.name = "bf16", .blck = 1, .type_size = 2, .supported = 1,
                         .vec_dot_type = MOME_DTYPE_F32},
    [MOME_DTYPE_Q4_0] = {.name = "q4_0", .blck = QK4_0, .type_size = sizeof(block_q4_0),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_0},
    [MOME_DTYPE_Q4_1] = {.name = "q4_1", .blck = QK4_1, .type_size = sizeof(block_q4_1),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_1},
    [MOME_DTYPE_Q5_0] = {.name = "q5_0", .blck = QK5_0, .type_size = sizeof(block_q5_0),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_0},
    [MOME_DTYPE_Q5_1] = {.name = "q5_1", .blck = QK5_1, .type_size = sizeof(block_q5_1),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_1},
    [MOME_DTYPE_Q8_0] = {.name = "q8_0", .blck = QK8_0, .type_size = sizeof(block_q8_0),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_0},
    [MOME_DTYPE_Q8_1] = {.name = "q8_1", .blck = QK8_1, .type_size = sizeof(block_q8_1),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_1},
    [MOME_DTYPE_Q2_K] = {.name = "q2_K", .blck = QK_K, .type_size = sizeof(block_q2_K),
                         .supported = 0, .vec_dot_type = MOME_DTYPE_Q8_K},
    [MOME_DTYPE_Q3_K] = {.name = "q3_K", .blck = QK_K, .type_size = sizeof(block_q3_K),
                         .supported = 0, .vec_dot_type = MOME_DTYPE_Q8_K},
    [MOME_DTYPE_Q4_K] = {.name = "q4_K", .blck = QK_K, .type_size = sizeof(block_q4_K),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_K},
    [MOME_DTYPE_Q5_K] = {.name = "q5_K", .blck = QK_K, .type_size = sizeof(block_q5_K),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_K},
    [MOME_DTYPE_Q6_K] = {.name = "q6_K", .blck = QK_K, .type_size = sizeof(block_q6_K),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_K},
    [MOME_DTYPE_Q8_K] = {.name = "q8_K", .blck = QK_K, .type_size = sizeof(block_q8_K),
                         .supported = 1, .vec_dot_type = MOME_DTYPE_Q8_K},
};

const quant_traits *quant_get_traits(uint32_t type) {
    if (type >= MOME_DTYPE_COUNT || g_traits[type].name == NULL) return NULL;
    return &g_traits[type];
}

size_t quant_row_size(enum mome_dtype t, int64_t n) {
    const quant_traits *tr = quant_get_traits((uint32_t)t);
    if (!tr || n < 0 || n % tr->blck != 0) return 0;
    uint64_t nb = (uint64_t)(n / tr->blck);
    if (nb > SIZE_MAX / tr->type_size) return 0;
    return (size_t)nb * tr->type_size;
}

/* ------------------------------------------------------------- half floats */

float quant_f16_to_f32(uint16_t h) { return qi_f16_to_f32(h); }
uint16_t quant_f32_to_f16(float f) { return qi_f32_to_f16(f); }
float quant_bf16_to_f32(uint16_t h) { return qi_bf16_to_f32(h); }
uint16_t quant_f32_to_bf16(float f) { return qi_f32_to_bf16(f); }

/* --------------------------------------------------------- dequantization */

static void deq_q4_0(const block_q4_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK4_0 + j] = x0 * d;
            y[i * QK4_0 + j + QK4_0 / 2] = x1 * d;
        }
    }
}

static void deq_q4_1(const block_q4_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d), m = QI_FP16(x[i].m);
        for (int j = 0; j < QK4_1 / 2; j++) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            y[i * QK4_1 + j] = x0 * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = x1 * d + m;
        }
    }
}

static void deq_q5_0(const block_q5_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < QK5_0 / 2; j++) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int32_t x0 = ((x[i].qs[j] & 0x0F) | xh_0) - 16;
            const int32_t x1 = ((x[i].qs[j] >> 4) | xh_1) - 16;
            y[i * QK5_0 + j] = x0 * d;
            y[i * QK5_0 + j + QK5_0 / 2] = x1 * d;
        }
    }
}

static void deq_q5_1(const block_q5_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d), m = QI_FP16(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int j = 0; j < QK5_1 / 2; j++) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int x0 = (x[i].qs[j] & 0x0F) | xh_0;
            const int x1 = (x[i].qs[j] >> 4) | xh_1;
            y[i * QK5_1 + j] = x0 * d + m;
            y[i * QK5_1 + j + QK5_1 / 2] = x1 * d + m;
        }
    }
}

static void deq_q8_0(const block_q8_0 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = x[i].qs[j] * d;
    }
}

static void deq_q8_1(const block_q8_1 *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d);
        for (int j = 0; j < QK8_1; j++) y[i * QK8_1 + j] = x[i].qs[j] * d;
    }
}

static void deq_q4_K(const block_q4_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = QI_FP16(x[i].d), min = QI_FP16(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QK_K; j += 64) {
            qi_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            qi_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static void deq_q5_K(const block_q5_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = QI_FP16(x[i].d), min = QI_FP16(x[i].dmin);
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K; j += 64) {
            qi_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            qi_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void deq_q6_K(const block_q6_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = QI_FP16(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < QK_K; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

static void deq_q8_K(const block_q8_K *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
}

void quant_dequantize_row(enum mome_dtype t, const void *src, float *dst, int64_t n) {
    const quant_traits *tr = quant_get_traits((uint32_t)t);
    if (!tr || !tr->supported || n <= 0 || n % tr->blck) return;
    const int64_t nb = n / tr->blck;
    switch (t) {
    case MOME_DTYPE_F32: memmove(dst, src, (size_t)n * 4); break;
    case MOME_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = qi_f16_to_f32(s[i]);
        break;
    }
    case MOME_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = qi_bf16_to_f32(s[i]);
        break;
    }
    case MOME_DTYPE_Q4_0: deq_q4_0(src, dst, nb); break;
    case MOME_DTYPE_Q4_1: deq_q4_1(src, dst, nb); break;
    case MOME_DTYPE_Q5_0: deq_q5_0(src, dst, nb); break;
    case MOME_DTYPE_Q5_1: deq_q5_1(src, dst, nb); break;
    case MOME_DTYPE_Q8_0: deq_q8_0(src, dst, nb); break;
    case MOME_DTYPE_Q8_1: deq_q8_1(src, dst, nb); break;
    case MOME_DTYPE_Q4_K: deq_q4_K(src, dst, nb); break;
    case MOME_DTYPE_Q5_K: deq_q5_K(src, dst, nb); break;
    case MOME_DTYPE_Q6_K: deq_q6_K(src, dst, nb); break;
    case MOME_DTYPE_Q8_K: deq_q8_K(src, dst, nb); break;
    default: break;
    }
}

/* ------------------------------------------------- reference quantizers */

static void qz_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; j++) {
            const float v = x[i * QK4_0 + j];
            if (amax < fabsf(v)) { amax = fabsf(v); max = v; }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[i * QK4_0 + 0 + j] * id;
            const float x1 = x[i * QK4_0 + QK4_0 / 2 + j] * id;
            int8_t a = (int8_t)(x0 + 8.5f), b = (int8_t)(x1 + 8.5f);
            const uint8_t xi0 = (uint8_t)(a < 15 ? a : 15);
            const uint8_t xi1 = (uint8_t)(b < 15 ? b : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void qz_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK4_1; j++) {
            const float v = x[i * QK4_1 + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        y[i].m = qi_f32_to_f16(min);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const float x0 = (x[i * QK4_1 + 0 + j] - min) * id;
            const float x1 = (x[i * QK4_1 + QK4_1 / 2 + j] - min) * id;
            int8_t a = (int8_t)(x0 + 0.5f), b = (int8_t)(x1 + 0.5f);
            const uint8_t xi0 = (uint8_t)(a < 15 ? a : 15);
            const uint8_t xi1 = (uint8_t)(b < 15 ? b : 15);
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static void qz_q5_0(const float *x, block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK5_0; j++) {
            const float v = x[i * QK5_0 + j];
            if (amax < fabsf(v)) { amax = fabsf(v); max = v; }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const float x0 = x[i * QK5_0 + 0 + j] * id;
            const float x1 = x[i * QK5_0 + QK5_0 / 2 + j] * id;
            int8_t a = (int8_t)(x0 + 16.5f), b = (int8_t)(x1 + 16.5f);
            const uint8_t xi0 = (uint8_t)(a < 31 ? a : 31);
            const uint8_t xi1 = (uint8_t)(b < 31 ? b : 31);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_0 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void qz_q5_1(const float *x, block_q5_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float min = INFINITY, max = -INFINITY;
        for (int j = 0; j < QK5_1; j++) {
            const float v = x[i * QK5_1 + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        y[i].m = qi_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const float x0 = (x[i * QK5_1 + 0 + j] - min) * id;
            const float x1 = (x[i * QK5_1 + QK5_1 / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f);
            const uint8_t xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + QK5_1 / 2);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

static void qz_q8_0(const float *x, void *vy, int64_t n) {
    block_q8_0 *y = vy;
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) {
            const float v = fabsf(x[i * QK8_0 + j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = (int8_t)roundf(x[i * QK8_0 + j] * id);
    }
}

static void qz_q8_1(const float *x, void *vy, int64_t n) {
    block_q8_1 *y = vy;
    const int64_t nb = n / QK8_1;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) {
            const float v = fabsf(x[i * QK8_1 + j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = qi_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1 / 2; ++j) {
            const float v0 = x[i * QK8_1 + j] * id;
            const float v1 = x[i * QK8_1 + QK8_1 / 2 + j] * id;
            y[i].qs[j] = (int8_t)roundf(v0);
            y[i].qs[QK8_1 / 2 + j] = (int8_t)roundf(v1);
            sum += y[i].qs[j];
            sum += y[i].qs[QK8_1 / 2 + j];
        }
        y[i].s = qi_f32_to_f16(sum * d);
    }
}

static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static void qz_q8_K(const float *x, void *vy, int64_t n) {
    block_q8_K *y = vy;
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            y[i].d = 0;
            memset(y[i].qs, 0, QK_K);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            x += QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += QK_K;
    }
}

/* Simple (not ggml's iterative) Q4_K quantizer: per 32-element sub-block a
 * scale and a non-negative offset, stored as 6-bit multiples of d / dmin. */
static void qz_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float sc[8], mn[8], maxsc = 0, maxmn = 0;
        for (int j = 0; j < 8; j++) {
            float lo = 0, hi = 0;  /* include 0 so the offset is >= 0 */
            for (int l = 0; l < 32; l++) {
                float v = x[32 * j + l];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            sc[j] = (hi - lo) / 15;
            mn[j] = -lo;
            if (sc[j] > maxsc) maxsc = sc[j];
            if (mn[j] > maxmn) maxmn = mn[j];
        }
        const float d = maxsc / 63, dmin = maxmn / 63;
        y[i].d = qi_f32_to_f16(d);
        y[i].dmin = qi_f32_to_f16(dmin);
        const float dq = qi_f16_to_f32(y[i].d), dmq = qi_f16_to_f32(y[i].dmin);
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; j++) {
            int a = dq > 0 ? (int)lrintf(sc[j] / dq) : 0;
            int b = dmq > 0 ? (int)lrintf(mn[j] / dmq) : 0;
            ls[j] = (uint8_t)(a < 0 ? 0 : a > 63 ? 63 : a);
            lm[j] = (uint8_t)(b < 0 ? 0 : b > 63 ? 63 : b);
        }
        memset(y[i].scales, 0, K_SCALE_SIZE);
        for (int j = 0; j < 8; ++j) {
            if (j < 4) {
                y[i].scales[j] = ls[j];
                y[i].scales[j + 4] = lm[j];
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
                y[i].scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
                y[i].scales[j - 0] |= (uint8_t)((lm[j] >> 4) << 6);
            }
        }
        uint8_t L[QK_K];
        for (int j = 0; j < 8; j++) {
            const float ds = dq * ls[j], ms = dmq * lm[j];
            for (int l = 0; l < 32; l++) {
                int q = ds > 0 ? (int)lrintf((x[32 * j + l] + ms) / ds) : 0;
                L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
            }
        }
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64) {
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
    }
}

/* Simple Q6_K quantizer: per 16-element group an int8 scale of d. */
static void qz_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float s[16], maxs = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0;
            for (int l = 0; l < 16; l++) {
                float v = fabsf(x[16 * j + l]);
                if (v > amax) amax = v;
            }
            s[j] = amax / 31;
            if (s[j] > maxs) maxs = s[j];
        }
        const float d = maxs / 127;
        y[i].d = qi_f32_to_f16(d);
        const float dq = qi_f16_to_f32(y[i].d);
        uint8_t L[QK_K];
        for (int j = 0; j < 16; j++) {
            int sc = dq > 0 ? (int)lrintf(s[j] / dq) : 0;
            sc = sc > 127 ? 127 : sc;
            y[i].scales[j] = (int8_t)sc;
            const float ds = dq * sc;
            for (int l = 0; l < 16; l++) {
                int q = ds > 0 ? (int)lrintf(x[16 * j + l] / ds) : 0;
                q = q < -32 ? -32 : q > 31 ? 31 : q;
                L[16 * j + l] = (uint8_t)(q + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

void quant_quantize_row(enum mome_dtype t, const float *src, void *dst, int64_t n) {
    const quant_traits *tr = quant_get_traits((uint32_t)t);
    if (!tr || n <= 0 || n % tr->blck) return;
    const int64_t nb = n / tr->blck;
    switch (t) {
    case MOME_DTYPE_F32: memmove(dst, src, (size_t)n * 4); break;
    case MOME_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = qi_f32_to_f16(src[i]);
        break;
    }
    case MOME_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = qi_f32_to_bf16(src[i]);
        break;
    }
    case MOME_DTYPE_Q4_0: qz_q4_0(src, dst, nb); break;
    case MOME_DTYPE_Q4_1: qz_q4_1(src, dst, nb); break;
    case MOME_DTYPE_Q5_0: qz_q5_0(src, dst, nb); break;
    case MOME_DTYPE_Q5_1: qz_q5_1(src, dst, nb); break;
    case MOME_DTYPE_Q8_0: qz_q8_0(src, dst, n); break;
    case MOME_DTYPE_Q8_1: qz_q8_1(src, dst, n); break;
    case MOME_DTYPE_Q8_K: qz_q8_K(src, dst, n); break;
    case MOME_DTYPE_Q4_K: qz_q4_K(src, dst, nb); break;
    case MOME_DTYPE_Q6_K: qz_q6_K(src, dst, nb); break;
    default: break;
    }
}

/* ------------------------------------------------ scalar dot products */

/* The 8 lanes of an AVX accumulator summed as hsum8 (quant_avx2.c) and
 * ggml's hsum_float_8 do: ((a0+a4) + (a2+a6)) + ((a1+a5) + (a3+a7)). */
static float hsum8_ref(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

static float vd_f32(int64_t n, const void *vw, const void *va) {
    const float *w = vw, *a = va;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)w[i] * a[i];
    return (float)s;
}

static float vd_f16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = vw;
    const float *a = va;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)qi_f16_to_f32(w[i]) * a[i];
    return (float)s;
}

static float vd_bf16(int64_t n, const void *vw, const void *va) {
    const uint16_t *w = vw;
    const float *a = va;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)qi_bf16_to_f32(w[i]) * a[i];
    return (float)s;
}

static float vd_q4_0(int64_t n, const void *vw, const void *va) {
    const block_q4_0 *x = vw;
    const block_q8_0 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK8_0; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK8_0 / 2; j++) {
            const int v0 = (x[ib].qs[j] & 0x0F) - 8;
            const int v1 = (x[ib].qs[j] >> 4) - 8;
            sumi0 += v0 * y[ib].qs[j];
            sumi1 += v1 * y[ib].qs[j + QK8_0 / 2];
        }
        int sumi = sumi0 + sumi1;
        sumf += sumi * QI_FP16(x[ib].d) * QI_FP16(y[ib].d);
    }
    return sumf;
}

static float vd_q4_1(int64_t n, const void *vw, const void *va) {
    const block_q4_1 *x = vw;
    const block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK8_1; ib++) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            const int v0 = x[ib].qs[j] & 0x0F;
            const int v1 = x[ib].qs[j] >> 4;
            sumi0 += v0 * y[ib].qs[j];
            sumi1 += v1 * y[ib].qs[j + QK8_1 / 2];
        }
        int sumi = sumi0 + sumi1;
        sumf += (QI_FP16(x[ib].d) * QI_FP16(y[ib].d)) * sumi + QI_FP16(x[ib].m) * QI_FP16(y[ib].s);
    }
    return sumf;
}

/* Q5_0 in the order llama.cpp runs it on x86 (ggml_vec_dot_q5_0_q8_0's AVX2
 * path, and llamafile's tinyBLAS_Q0_AVX for batches, which accumulates the
 * same way): per block the 8 lane sums of 4 products, acc[l] = fma(dx*dy,
 * lane, acc[l]), then the lanes summed as hsum8_ref does. quant_avx2.c gives
 * the same bits. */
static float vd_q5_0(int64_t n, const void *vw, const void *va) {
    const block_q5_0 *x = vw;
    const block_q8_0 *y = va;
    float acc[8] = {0};
    for (int64_t ib = 0; ib < n / QK8_0; ib++) {
        uint32_t qh;
        memcpy(&qh, x[ib].qh, 4);
        int8_t q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(((x[ib].qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16);
            q[j + 16] = (int8_t)(((x[ib].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
        }
        const float d = QI_FP16(x[ib].d) * QI_FP16(y[ib].d);
        for (int l = 0; l < 8; l++) {
            int sl = 0;
            for (int k = 0; k < 4; k++) sl += q[4 * l + k] * y[ib].qs[4 * l + k];
            acc[l] = fmaf(d, (float)sl, acc[l]);
        }
    }
    return hsum8_ref(acc);
}

static float vd_q5_1(int64_t n, const void *vw, const void *va) {
    const block_q5_1 *x = vw;
    const block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK8_1; ib++) {
        uint32_t qh;
        memcpy(&qh, x[ib].qh, 4);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < QK8_1 / 2; j++) {
            const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
            const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
            const int32_t x0 = (x[ib].qs[j] & 0xF) | xh_0;
            const int32_t x1 = (x[ib].qs[j] >> 4) | xh_1;
            sumi0 += x0 * y[ib].qs[j];
            sumi1 += x1 * y[ib].qs[j + QK8_1 / 2];
        }
        int sumi = sumi0 + sumi1;
        sumf += (QI_FP16(x[ib].d) * QI_FP16(y[ib].d)) * sumi + QI_FP16(x[ib].m) * QI_FP16(y[ib].s);
    }
    return sumf;
}

/* Q8_0 in the order llama.cpp runs it on x86 (ggml_vec_dot_q8_0_q8_0's AVX2
 * path and tinyBLAS_Q0_AVX), as vd_q5_0: 8 lane sums of 4 products per
 * block, acc[l] = fma(dx*dy, lane, acc[l]), hsum8_ref. */
static float vd_q8_0(int64_t n, const void *vw, const void *va) {
    const block_q8_0 *x = vw;
    const block_q8_0 *y = va;
    float acc[8] = {0};
    for (int64_t ib = 0; ib < n / QK8_0; ib++) {
        const float d = QI_FP16(x[ib].d) * QI_FP16(y[ib].d);
        for (int l = 0; l < 8; l++) {
            int sl = 0;
            for (int k = 0; k < 4; k++) sl += x[ib].qs[4 * l + k] * y[ib].qs[4 * l + k];
            acc[l] = fmaf(d, (float)sl, acc[l]);
        }
    }
    return hsum8_ref(acc);
}

/* Q8_1 weights x Q8_1 activations (ggml has no such pairing; for completeness) */
static float vd_q8_1(int64_t n, const void *vw, const void *va) {
    const block_q8_1 *x = vw;
    const block_q8_1 *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK8_1; ib++) {
        int sumi = 0;
        for (int j = 0; j < QK8_1; j++) sumi += x[ib].qs[j] * y[ib].qs[j];
        sumf += sumi * (QI_FP16(x[ib].d) * QI_FP16(y[ib].d));
    }
    return sumf;
}

static float vd_q8_K(int64_t n, const void *vw, const void *va) {
    const block_q8_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0;
    for (int64_t ib = 0; ib < n / QK_K; ib++) {
        int sumi = 0;
        for (int j = 0; j < QK_K; j++) sumi += x[ib].qs[j] * y[ib].qs[j];
        sumf += sumi * (x[ib].d * y[ib].d);
    }
    return sumf;
}

/* K-quants: per block d*dy * sum_j scale_j*dot_j - dmin*dy * sum_j min_j*bsum_j
 * (ggml's kernels compute the same integers; the float order differs).
 *
 * Q4_K in the order llama.cpp runs it on x86: it repacks Q4_K matrices into
 * 8-row interleaved blocks (ggml-cpu repack.cpp, q4_K_8x8_q8_K) and
 *   - one token (ggml_gemv_q4_K_8x8_q8_K, the tokens past a multiple of 4):
 *     per super-block the integer sums isum = sum_j sc_j dot_j and
 *     imin = sum_j m_j bsum_j, acc = fma((float)isum, d*dy, acc),
 *     accm = fma((float)imin, dmin*dy, accm); result acc - accm;
 *   - groups of 4 tokens (ggml_gemm_q4_K_8x8_q8_K): the same per 64-element
 *     half (two sub-blocks), four fma steps per super-block (q4K_dot4_ref).
 * quant_avx2.c gives the same bits for both. */
static void q4K_sums(const block_q4_K *x, const block_q8_K *y, int j, int32_t *isum, int32_t *imin) {
    uint8_t sc0, m0, sc1, m1;
    qi_scale_min_k4(2 * j, x->scales, &sc0, &m0);
    qi_scale_min_k4(2 * j + 1, x->scales, &sc1, &m1);
    const uint8_t *q4 = x->qs + 32 * j;
    const int8_t *q8 = y->qs + 64 * j;
    int s0 = 0, s1 = 0;
    for (int l = 0; l < 32; l++) {
        s0 += (q4[l] & 0xF) * q8[l];
        s1 += (q4[l] >> 4) * q8[l + 32];
    }
    *isum = sc0 * s0 + sc1 * s1;
    *imin = m0 * (y->bsums[4 * j + 0] + y->bsums[4 * j + 1]) + m1 * (y->bsums[4 * j + 2] + y->bsums[4 * j + 3]);
}

static float vd_q4_K(int64_t n, const void *vw, const void *va) {
    const block_q4_K *x = vw;
    const block_q8_K *y = va;
    float acc = 0, accm = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < QK_K / 64; j++) {
            int32_t a, b;
            q4K_sums(&x[i], &y[i], j, &a, &b);
            isum += a;
            imin += b;
        }
        acc = fmaf((float)isum, QI_FP16(x[i].d) * y[i].d, acc);
        accm = fmaf((float)imin, QI_FP16(x[i].dmin) * y[i].d, accm);
    }
    return acc - accm;
}

/* 4 tokens (activation rows a, a+as, ...), llama.cpp's gemm order */
static void d4_q4_K(int64_t n, const void *vw, const void *va, size_t as, float out[4]) {
    const block_q4_K *x = vw;
    for (int t = 0; t < 4; t++) {
        const block_q8_K *y = (const block_q8_K *)((const char *)va + (size_t)t * as);
        float acc = 0, accm = 0;
        for (int64_t i = 0; i < n / QK_K; i++) {
            const float d = QI_FP16(x[i].d) * y[i].d, dmin = QI_FP16(x[i].dmin) * y[i].d;
            for (int j = 0; j < QK_K / 64; j++) {
                int32_t isum, imin;
                q4K_sums(&x[i], &y[i], j, &isum, &imin);
                acc = fmaf((float)isum, d, acc);
                accm = fmaf((float)imin, dmin, accm);
            }
        }
        out[t] = acc - accm;
    }
}

static float vd_q5_K(int64_t n, const void *vw, const void *va) {
    const block_q5_K *x = vw;
    const block_q8_K *y = va;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        int32_t sumi = 0, summ = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K / 64; j++) {
            uint8_t sc0, m0, sc1, m1;
            qi_scale_min_k4(2 * j, x[i].scales, &sc0, &m0);
            qi_scale_min_k4(2 * j + 1, x[i].scales, &sc1, &m1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) * q8[l];
                s1 += ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) * q8[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ += m0 * (y[i].bsums[4 * j + 0] + y[i].bsums[4 * j + 1]) +
                    m1 * (y[i].bsums[4 * j + 2] + y[i].bsums[4 * j + 3]);
            ql += 32;
            q8 += 64;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
        const float d = QI_FP16(x[i].d) * y[i].d;
        const float dmin = QI_FP16(x[i].dmin) * y[i].d;
        sumf += d * sumi - dmin * summ;
    }
    return sumf;
}

/* Q6_K in the order of ggml_vec_dot_q6_K_q8_K's AVX2 path (llama.cpp does
 * not repack Q6_K on x86, and uses this for batches too): lane l of 8 sums
 * scale * q * y (q in 0..63) over bytes 4l..4l+3 of every 32-byte group
 * (lanes 0-3 take the group's first scale, 4-7 its second) less
 * 32 (bsum[2l] sc[2l] + bsum[2l+1] sc[2l+1]); per super-block
 * acc[l] = fma(d*dy, lane, acc[l]); then hsum8_ref. quant_avx2.c gives the
 * same bits. */
static float vd_q6_K(int64_t n, const void *vw, const void *va) {
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    float acc[8] = {0};
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales, *q8 = y[i].qs;
        int32_t lane[8] = {0};
        /* the -32 offset: lane l loses 32 (bsum[2l] sc[2l] + bsum[2l+1] sc[2l+1]) */
        for (int l = 0; l < 8; l++)
            lane[l] = -32 * (y[i].bsums[2 * l] * sc[2 * l] + y[i].bsums[2 * l + 1] * sc[2 * l + 1]);
        for (int c = 0; c < QK_K / 128; c++) {
            for (int k = 0; k < 4; k++) {
                /* group k of this half: 32 quants of 6 bits, 0..63 */
                for (int b = 0; b < 32; b++) {
                    const uint8_t lo = k & 1 ? ql[32 + b] : ql[b];
                    const int q = (k < 2 ? lo & 0xF : lo >> 4) | (((qh[b] >> (2 * k)) & 3) << 4);
                    lane[b / 4] += sc[2 * k + (b >= 16)] * q * q8[32 * k + b];
                }
            }
            ql += 64;
            qh += 32;
            sc += 8;
            q8 += 128;
        }
        const float d = QI_FP16(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)lane[l], acc[l]);
    }
    return hsum8_ref(acc);
}

/* Q6_K as llama.cpp's tiled matmul computes products of >= 8 tokens
 * (ggml-cpu/tiled, its AVX-512 VNNI microkernel as GCC compiles it): per
 * super-block the exact integer sum isum = sum_j sc_j (dot_j - 32 bsum_j),
 * then acc = fma((float)isum * d, dy, acc). */
static float vd_tiled_q6_K(int64_t n, const void *vw, const void *va) {
    const block_q6_K *x = vw;
    const block_q8_K *y = va;
    float acc = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales, *q8 = y[i].qs;
        int32_t isum = 0;
        for (int c = 0; c < QK_K / 128; c++) {
            for (int l = 0; l < 32; l++) {
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const int is = l / 16;
                isum += sc[is] * q1 * q8[l] + sc[is + 2] * q2 * q8[l + 32] + sc[is + 4] * q3 * q8[l + 64] +
                        sc[is + 6] * q4 * q8[l + 96];
            }
            ql += 64;
            qh += 32;
            sc += 8;
            q8 += 128;
        }
        acc = fmaf((float)isum * QI_FP16(x[i].d), y[i].d, acc);
    }
    return acc;
}

/* ------------------------------------- f32 math in ggml's order (scalar) */

float qm_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    /* scalef(j, n): one correctly rounded multiply by 2^n, as ldexpf */
    return ldexpf(j, (int)n);
}

static void sc_swiglu(int64_t n, float *g, const float *u) {
    const int64_t n16 = n & ~(int64_t)15;
    int64_t i = 0;
    for (; i < n16; i++) g[i] = g[i] / (1.0f + qm_expf(0.0f - g[i])) * u[i];
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* _mm512_reduce_add_ps: (v[j] + v[j+8]) then (.. + ..[+4]), then ([0]+[2]) + ([1]+[3]) */
static float reduce16(const float v[16]) {
    float t3[8], t6[4];
    for (int j = 0; j < 8; j++) t3[j] = v[j + 8] + v[j];
    for (int j = 0; j < 4; j++) t6[j] = t3[j + 4] + t3[j];
    return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

static float sc_dot_f32(int64_t n, const float *x, const float *y) {
    const int64_t np = n & ~(int64_t)63;
    float a[64] = {0};
    for (int64_t i = 0; i < np; i += 64)
        for (int k = 0; k < 64; k++) a[k] = fmaf(x[i + k], y[i + k], a[k]);
    float v[16];
    for (int l = 0; l < 16; l++) v[l] = (a[l] + a[32 + l]) + (a[16 + l] + a[48 + l]);
    float s = reduce16(v);
    for (int64_t i = np; i < n; i++) s = fmaf(x[i], y[i], s);
    return s;
}

static double sc_softmax_exp(int64_t n, float *x, float max) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i += 16) {
        float v[16];
        for (int l = 0; l < 16; l++) v[l] = i + l < n ? (x[i + l] = qm_expf(x[i + l] - max)) : 0.0f;
        sum += (double)reduce16(v);
    }
    return sum;
}

static void sc_kqv(int64_t np, const float *w, const float *v, size_t v_stride, int64_t D, int period, float *out,
                   float *acc) {
    memset(acc, 0, sizeof(float) * (size_t)period * (size_t)D);
    for (int64_t p = 0; p < np; p++) {
        float *a = acc + (size_t)(p % period) * (size_t)D;
        const float *vp = v + (size_t)p * v_stride;
        for (int64_t d = 0; d < D; d++) a[d] = fmaf(w[p], vp[d], a[d]);
    }
    for (int64_t d = 0; d < D; d++) {
        float l16[16];
        for (int l = 0; l < 16; l++) {
            const float *c = acc + (size_t)l * (size_t)D + d;
            l16[l] = period == 16 ? c[0] : (c[0] + c[32 * D]) + (c[16 * D] + c[48 * D]);
        }
        out[d] = reduce16(l16);
    }
}

static void sc_rope(int64_t npairs, float *x, const float *cs, const float *sn) {
    for (int64_t i = 0; i < npairs; i++) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1], c = cs[i], s = sn[i];
        x[2 * i] = fmaf(x0, c, -(x1 * s));
        x[2 * i + 1] = fmaf(x0, s, x1 * c);
    }
}

/* NEOX mode: the pairs are (x[i], x[i + npairs]) (ggml's rotate_pairs with
 * n_offset = n_dims/2), same arithmetic as sc_rope */
static void sc_rope_neox(int64_t npairs, float *x, const float *cs, const float *sn) {
    for (int64_t i = 0; i < npairs; i++) {
        const float x0 = x[i], x1 = x[i + npairs], c = cs[i], s = sn[i];
        x[i] = fmaf(x0, c, -(x1 * s));
        x[i + npairs] = fmaf(x0, s, x1 * c);
    }
}

/* --------------------------------------------------------- kernel table */

/* Tables from the least to the most capable; the best one the CPU runs is
 * the default. MOME_KERNELS=scalar|avx2|avx512vnni in the environment caps
 * the default (for A/B measurements); tests pick with quant_init_kernels. */
enum { KT_SCALAR, KT_AVX2, KT_VNNI, KT_COUNT };
static quant_kernels g_tab[KT_COUNT];
static int g_best = KT_SCALAR;         /* most capable table the CPU runs */
static int g_default = KT_SCALAR;      /* g_best, or lower if MOME_KERNELS says so */
static quant_kernels *g_active; /* accessed with __atomic builtins */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void fill_scalar(quant_kernels *k) {
    memset(k, 0, sizeof *k);
    k->name = "scalar";
    k->vec_dot[MOME_DTYPE_F32] = vd_f32;
    k->vec_dot[MOME_DTYPE_F16] = vd_f16;
    k->vec_dot[MOME_DTYPE_BF16] = vd_bf16;
    k->vec_dot[MOME_DTYPE_Q4_0] = vd_q4_0;
    k->vec_dot[MOME_DTYPE_Q4_1] = vd_q4_1;
    k->vec_dot[MOME_DTYPE_Q5_0] = vd_q5_0;
    k->vec_dot[MOME_DTYPE_Q5_1] = vd_q5_1;
    k->vec_dot[MOME_DTYPE_Q8_0] = vd_q8_0;
    k->vec_dot[MOME_DTYPE_Q8_1] = vd_q8_1;
    k->vec_dot[MOME_DTYPE_Q4_K] = vd_q4_K;
    k->vec_dot[MOME_DTYPE_Q5_K] = vd_q5_K;
    k->vec_dot[MOME_DTYPE_Q6_K] = vd_q6_K;
    k->vec_dot[MOME_DTYPE_Q8_K] = vd_q8_K;
    k->dot4[MOME_DTYPE_Q4_K] = d4_q4_K; /* llama.cpp's 4-token order differs from its one-token order */
    k->vd_tiled[MOME_DTYPE_Q6_K] = vd_tiled_q6_K;
    k->quant_act[MOME_DTYPE_Q8_0] = qz_q8_0;
    k->quant_act[MOME_DTYPE_Q8_1] = qz_q8_1;
    k->quant_act[MOME_DTYPE_Q8_K] = qz_q8_K;
    k->swiglu = sc_swiglu;
    k->dot_f32 = sc_dot_f32;
    k->softmax_exp = sc_softmax_exp;
    k->kqv = sc_kqv;
    k->rope = sc_rope;
    k->rope_neox = sc_rope_neox;
}

static void init_tables(void) {
    fill_scalar(&g_tab[KT_SCALAR]);
    fill_scalar(&g_tab[KT_AVX2]);
    fill_scalar(&g_tab[KT_VNNI]);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    /* libgcc's checks include the OS's XCR0 state for AVX and AVX-512 */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        quant_avx2_fill(&g_tab[KT_AVX2]);
        g_best = KT_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")) {
            quant_vnni_fill(&g_tab[KT_VNNI]);
            g_best = KT_VNNI;
        }
    }
#endif
    g_default = g_best;
    const char *env = getenv("MOME_KERNELS");
    if (env && *env)
        for (int i = 0; i < g_best; i++)
            if (strcmp(env, g_tab[i].name) == 0) g_default = i;
    quant_kernels *exp = NULL;
    /* lazy default: best available, unless quant_init already chose */
    __atomic_compare_exchange_n(&g_active, &exp, &g_tab[g_default], 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void quant_init(int force_scalar) {
    pthread_once(&g_once, init_tables);
    __atomic_store_n(&g_active, &g_tab[force_scalar ? KT_SCALAR : g_default], __ATOMIC_RELEASE);
}

int quant_init_kernels(const char *name) {
    pthread_once(&g_once, init_tables);
    for (int i = 0; i <= g_best; i++)
        if (strcmp(name, g_tab[i].name) == 0) {
            __atomic_store_n(&g_active, &g_tab[i], __ATOMIC_RELEASE);
            return 0;
        }
    return -1;
}

static inline const quant_kernels *kernels(void) {
    quant_kernels *k = __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
    if (k) return k;
    pthread_once(&g_once, init_tables);
    return __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
}

const char *quant_kernel_name(void) { return kernels()->name; }

/* ------------------------------------------------------------ activations */

size_t quant_act_row_size(enum mome_dtype wt, int64_t n) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported) return 0;
    return quant_row_size(tr->vec_dot_type, n);
}

void quant_quantize_act(enum mome_dtype wt, const float *src, void *dst, int64_t n) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported || n <= 0) return;
    const enum mome_dtype at = tr->vec_dot_type;
    if (n % g_traits[at].blck) return;
    if (at == MOME_DTYPE_F32) {
        if (dst != src) memmove(dst, src, (size_t)n * 4);
        return;
    }
    kernels()->quant_act[at](src, dst, n);
}

float quant_vec_dot(enum mome_dtype wt, int64_t n, const void *w, const void *a) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported || n <= 0 || n % tr->blck) return 0.0f;
    return kernels()->vec_dot[wt](n, w, a);
}

void quant_matmul(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride,
                  const void *A, size_t a_stride, int nt, float *Y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported || n <= 0 || n % tr->blck || nt <= 0) return;
    const quant_kernels *k = kernels();
    const qk_vec_dot_fn vd = k->vec_dot[wt];
    const qk_dot4_fn d4 = k->dot4[wt];
    const char *w = (const char *)W;
    const char *a = (const char *)A;
    if (nt >= QK_TILED_MIN_T && k->vd_tiled[wt]) {
        /* llama.cpp computes products of this many tokens with its tiled kernel */
        const qk_dot4_fn t4 = k->dot4_tiled[wt];
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = w + (size_t)r * w_stride;
            int t = 0;
            if (t4)
                for (; t + 4 <= nt; t += 4) {
                    float out[4];
                    t4(n, wr, a + (size_t)t * a_stride, a_stride, out);
                    for (int j = 0; j < 4; j++) Y[(int64_t)(t + j) * ldy + r] = out[j];
                }
            for (; t < nt; t++) Y[(int64_t)t * ldy + r] = k->vd_tiled[wt](n, wr, a + (size_t)t * a_stride);
        }
        return;
    }
    if (nt >= 2 && k->tok8[wt] && k->dot4_exact[wt] && n / tr->blck <= QK_TOK8_MAX_BLOCKS) {
        /* Every token gets vec_dot's bits here whichever kernel computes it,
         * so a prompt takes the batched-decoding kernels: 8 tokens, two per
         * 512-bit register, cost 0.58 of two 4-token tiles (Q4_1, 576 x 1536,
         * one thread: 232 against 399 us for 16 tokens), and 2 or 3 tokens
         * left one by one through the 4-row kernel cost 0.58 of vec_dot's
         * loop (69 against 119 us for 2). */
        quant_matmul_solo(wt, n, W, w_stride, A, a_stride, nt, Y, ldy, r0, r1);
        return;
    }
    if (nt == 1 && k->rows4[wt]) {
        const qk_rows4_fn r4 = k->rows4[wt];
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) r4(n, w + (size_t)r * w_stride, w_stride, a, Y + r);
        for (; r < r1; r++) Y[r] = vd(n, w + (size_t)r * w_stride, a);
        return;
    }
    if (nt == 1 || !d4) {
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = w + (size_t)r * w_stride;
            for (int t = 0; t < nt; t++)
                Y[(int64_t)t * ldy + r] = vd(n, wr, a + (size_t)t * a_stride);
        }
        return;
    }
    int64_t r = r0;
    if (k->tile44[wt] && nt >= 4) {
        /* 4 rows x 4 tokens at a time, each result with dot4's bits; the
         * tokens left take vec_dot, as below */
        const int nt4 = nt & ~3;
        for (; r + 4 <= r1; r += 4) {
            const char *wr = w + (size_t)r * w_stride;
            for (int t = 0; t < nt4; t += 4) {
                float out[16];
                k->tile44[wt](n, wr, w_stride, a + (size_t)t * a_stride, a_stride, out);
                for (int j = 0; j < 4; j++)
                    for (int q = 0; q < 4; q++) Y[(int64_t)(t + j) * ldy + r + q] = out[4 * j + q];
            }
            for (int t = nt4; t < nt; t++)
                for (int q = 0; q < 4; q++)
                    Y[(int64_t)t * ldy + r + q] = vd(n, wr + (size_t)q * w_stride, a + (size_t)t * a_stride);
        }
    }
    for (; r < r1; r++) {
        const void *wr = w + (size_t)r * w_stride;
        int t = 0;
        for (; t + 4 <= nt; t += 4) {
            float out[4];
            d4(n, wr, a + (size_t)t * a_stride, a_stride, out);
            for (int j = 0; j < 4; j++) Y[(int64_t)(t + j) * ldy + r] = out[j];
        }
        for (; t < nt; t++) Y[(int64_t)t * ldy + r] = vd(n, wr, a + (size_t)t * a_stride);
    }
}

void quant_matmul_solo(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride,
                       const void *A, size_t a_stride, int nt, float *Y, int64_t ldy,
                       int64_t r0, int64_t r1) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported || n <= 0 || n % tr->blck || nt <= 0) return;
    const quant_kernels *k = kernels();
    int t = 0;
    if (k->tok8[wt] && n / tr->blck <= QK_TOK8_MAX_BLOCKS)
        while (nt - t >= 4) { /* 4..7 tokens: padded to 8, still faster than 4-token tiles */
            const int g = nt - t < 8 ? nt - t : 8;
            k->tok8[wt](n, W, w_stride, (const char *)A + (size_t)t * a_stride, a_stride, g, Y + (int64_t)t * ldy, ldy,
                        r0, r1);
            t += g;
        }
    if (k->dot4[wt] && k->dot4_exact[wt] && !k->vd_tiled[wt] && nt - t >= 4) {
        /* whole 4-token tiles; the tokens left take the one-token kernels */
        const int k4 = (nt - t) & ~3;
        quant_matmul(wt, n, W, w_stride, (const char *)A + (size_t)t * a_stride, a_stride, k4, Y + (int64_t)t * ldy,
                     ldy, r0, r1);
        t += k4;
    }
    for (; t < nt; t++)
        quant_matmul(wt, n, W, w_stride, (const char *)A + (size_t)t * a_stride, a_stride, 1, Y + (int64_t)t * ldy,
                     ldy, r0, r1);
}

/* ---------------------------------------------- f32 math, dispatched */

void qm_swiglu(int64_t n, float *g, const float *u) { kernels()->swiglu(n, g, u); }
float qm_dot_f32(int64_t n, const float *x, const float *y) { return kernels()->dot_f32(n, x, y); }
float quant_dot_f32(int64_t n, const float *x, const float *y) { return kernels()->dot_f32(n, x, y); }
double qm_softmax_exp(int64_t n, float *x, float max) { return kernels()->softmax_exp(n, x, max); }
void qm_kqv(int64_t np, const float *w, const float *v, size_t v_stride, int64_t D, int period, float *out,
            float *acc) {
    kernels()->kqv(np, w, v, v_stride, D, period, out, acc);
}
void qm_rope(int64_t npairs, float *x, const float *cs, const float *sn) { kernels()->rope(npairs, x, cs, sn); }
void qm_rope_neox(int64_t npairs, float *x, const float *cs, const float *sn) {
    kernels()->rope_neox(npairs, x, cs, sn);
}

/* ------------------------------------------------- packed (row-interleaved) */

/* 16 plain super-blocks (row r at src + r*stride) <-> one packed block */
static void pack_q4_K16(const void *src, size_t stride, block_q4_Kx16 *p) {
    for (int r = 0; r < 16; r++) {
        const block_q4_K *b = (const block_q4_K *)((const char *)src + (size_t)r * stride);
        p->d[r] = b->d;
        p->dmin[r] = b->dmin;
        for (int k = 0; k < 12; k++) p->scales[k][r] = b->scales[k];
        for (int j = 0; j < 4; j++)
            for (int c = 0; c < 8; c++) memcpy(p->qs[j][c][r], b->qs + 32 * j + 4 * c, 4);
    }
}

static void unpack_q4_K16(const block_q4_Kx16 *p, int r, block_q4_K *b) {
    b->d = p->d[r];
    b->dmin = p->dmin[r];
    for (int k = 0; k < 12; k++) b->scales[k] = p->scales[k][r];
    for (int j = 0; j < 4; j++)
        for (int c = 0; c < 8; c++) memcpy(b->qs + 32 * j + 4 * c, p->qs[j][c][r], 4);
}

static void pack_q6_K16(const void *src, size_t stride, block_q6_Kx16 *p) {
    for (int r = 0; r < 16; r++) {
        const block_q6_K *b = (const block_q6_K *)((const char *)src + (size_t)r * stride);
        p->d[r] = b->d;
        for (int j = 0; j < 16; j++) p->scales[j][r] = b->scales[j];
        for (int c = 0; c < 2; c++)
            for (int g = 0; g < 8; g++) {
                for (int h = 0; h < 2; h++) memcpy(p->ql[c][h][g][r], b->ql + 64 * c + 32 * h + 4 * g, 4);
                memcpy(p->qh[c][g][r], b->qh + 32 * c + 4 * g, 4);
            }
    }
}

static void unpack_q6_K16(const block_q6_Kx16 *p, int r, block_q6_K *b) {
    b->d = p->d[r];
    for (int j = 0; j < 16; j++) b->scales[j] = p->scales[j][r];
    for (int c = 0; c < 2; c++)
        for (int g = 0; g < 8; g++) {
            for (int h = 0; h < 2; h++) memcpy(b->ql + 64 * c + 32 * h + 4 * g, p->ql[c][h][g][r], 4);
            memcpy(b->qh + 32 * c + 4 * g, p->qh[c][g][r], 4);
        }
}

static void pack_q5_016(const void *src, size_t stride, block_q5_0x16 *p) {
    memset(p->qh, 0, sizeof p->qh);
    for (int r = 0; r < 16; r++) {
        const block_q5_0 *b = (const block_q5_0 *)((const char *)src + (size_t)r * stride);
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        p->d[r] = b->d;
        for (int c = 0; c < 4; c++) memcpy(p->qs[c][r], b->qs + 4 * c, 4);
        for (int l = 0; l < 8; l++) p->qh[l] |= (uint64_t)((qh >> (4 * l)) & 15) << (4 * r);
    }
}

static void unpack_q5_016(const block_q5_0x16 *p, int r, block_q5_0 *b) {
    uint32_t qh = 0;
    for (int l = 0; l < 8; l++) qh |= (uint32_t)((p->qh[l] >> (4 * r)) & 15) << (4 * l);
    b->d = p->d[r];
    memcpy(b->qh, &qh, 4);
    for (int c = 0; c < 4; c++) memcpy(b->qs + 4 * c, p->qs[c][r], 4);
}

static void pack_q8_016(const void *src, size_t stride, block_q8_0x16 *p) {
    for (int r = 0; r < 16; r++) {
        const block_q8_0 *b = (const block_q8_0 *)((const char *)src + (size_t)r * stride);
        p->d[r] = b->d;
        for (int l = 0; l < 8; l++) {
            uint32_t v;
            memcpy(&v, b->qs + 4 * l, 4);
            v ^= 0x80808080u;
            memcpy(p->qs[l][r], &v, 4);
        }
    }
}

static void unpack_q8_016(const block_q8_0x16 *p, int r, block_q8_0 *b) {
    b->d = p->d[r];
    for (int l = 0; l < 8; l++) {
        uint32_t v;
        memcpy(&v, p->qs[l][r], 4);
        v ^= 0x80808080u;
        memcpy(b->qs + 4 * l, &v, 4);
    }
}

static int packable(enum mome_dtype wt, int64_t n) {
    return (wt == MOME_DTYPE_Q4_K || wt == MOME_DTYPE_Q6_K || wt == MOME_DTYPE_Q5_0 || wt == MOME_DTYPE_Q8_0) &&
           n > 0 && n % g_traits[wt].blck == 0;
}

int quant_chunk_invariant(enum mome_dtype wt) {
    const quant_traits *tr = quant_get_traits((uint32_t)wt);
    if (!tr || !tr->supported) return 0;
    const quant_kernels *k = kernels();
    return !k->vd_tiled[wt] && (!k->dot4[wt] || k->dot4_exact[wt]);
}

int quant_pack_wanted(enum mome_dtype wt, int64_t n, int64_t n_out) {
    if (!packable(wt, n) || n_out <= 0 || n_out % QUANT_PACK_ROWS) return 0;
    const char *env = getenv("MOME_PACK");
    if (env && strcmp(env, "0") == 0) return 0;
    return kernels()->packed[wt] != NULL;
}

/* The packed group g (rows 16g..16g+15) of P starts at P + g * 16 * row_size;
 * inside it, block i is the i-th 16-row block (16 plain blocks in size). */
void quant_pack(enum mome_dtype wt, int64_t n, const void *W, size_t w_stride, int64_t n_out, void *P) {
    if (!packable(wt, n) || n_out % QUANT_PACK_ROWS) return;
    const int64_t nb = n / g_traits[wt].blck;
    const size_t rs = quant_row_size(wt, n), bs = g_traits[wt].type_size;
    for (int64_t g = 0; g < n_out / 16; g++) {
        const char *src = (const char *)W + (size_t)g * 16 * w_stride;
        char *dst = (char *)P + (size_t)g * 16 * rs;
        for (int64_t i = 0; i < nb; i++) {
            void *pb = dst + (size_t)i * 16 * bs;
            switch (wt) {
            case MOME_DTYPE_Q4_K: pack_q4_K16(src + i * bs, w_stride, pb); break;
            case MOME_DTYPE_Q6_K: pack_q6_K16(src + i * bs, w_stride, pb); break;
            case MOME_DTYPE_Q5_0: pack_q5_016(src + i * bs, w_stride, pb); break;
            default: pack_q8_016(src + i * bs, w_stride, pb); break;
            }
        }
    }
}

/* row r of packed P, plain, into b (one row of quant_row_size bytes) */
static void packed_row(enum mome_dtype wt, int64_t n, const void *P, int64_t r, void *b) {
    const int64_t nb = n / g_traits[wt].blck;
    const size_t bs = g_traits[wt].type_size;
    const char *grp = (const char *)P + (size_t)(r / 16) * 16 * quant_row_size(wt, n);
    for (int64_t i = 0; i < nb; i++) {
        const void *pb = grp + (size_t)i * 16 * bs;
        void *ob = (char *)b + (size_t)i * bs;
        switch (wt) {
        case MOME_DTYPE_Q4_K: unpack_q4_K16(pb, (int)(r % 16), ob); break;
        case MOME_DTYPE_Q6_K: unpack_q6_K16(pb, (int)(r % 16), ob); break;
        case MOME_DTYPE_Q5_0: unpack_q5_016(pb, (int)(r % 16), ob); break;
        default: unpack_q8_016(pb, (int)(r % 16), ob); break;
        }
    }
}

void quant_packed_dequantize_row(enum mome_dtype wt, int64_t n, const void *P, int64_t r, float *dst) {
    if (!packable(wt, n)) return;
    void *b = malloc(quant_row_size(wt, n));
    if (!b) return;
    packed_row(wt, n, P, r, b);
    quant_dequantize_row(wt, b, dst, n);
    free(b);
}

void quant_matmul_packed(enum mome_dtype wt, int64_t n, const void *P, const void *A, size_t a_stride, int nt,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1, int solo) {
    if (!packable(wt, n) || nt <= 0 || r0 >= r1 || r0 % 16 || r1 % 16) return;
    const quant_kernels *k = kernels();
    if (k->packed[wt]) {
        k->packed[wt](n, P, A, a_stride, nt, Y, ldy, r0, r1, solo);
        return;
    }
    /* the reference: each group of 16 rows unpacked, then the plain path */
    const size_t rs = quant_row_size(wt, n);
    char *W = malloc(16 * rs);
    if (!W) return;
    for (int64_t g = r0; g < r1; g += 16) {
        for (int r = 0; r < 16; r++) packed_row(wt, n, P, g + r, W + (size_t)r * rs);
        if (solo) quant_matmul_solo(wt, n, W, rs, A, a_stride, nt, Y + g, ldy, 0, 16);
        else quant_matmul(wt, n, W, rs, A, a_stride, nt, Y + g, ldy, 0, 16);
    }
    free(W);
}
