/* memory.c - the MoME bank: product-key selection, sparse experts with
 * anchor gates, application to the residual stream, and the memory file.
 * See memory.h for the model; the design choices and the measurements
 * behind them are in docs/ARCHITECTURE.md.
 *
 * Determinism: the projection, sub-keys and every expert's initial A are
 * derived from cfg.seed with a counter-based generator (splitmix64 of
 * seed ^ stream ^ index), so they never need to be stored to be reproduced
 * and an expert's start does not depend on the order experts are touched.
 */
#include "memory.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "util.h"

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Standard normal from (seed, stream, index), Box-Muller on two uniforms. */
static float gauss(uint64_t seed, uint64_t stream, uint64_t i) {
    uint64_t a = mix64(seed ^ mix64(stream * 0x100000001b3ULL ^ (2 * i)));
    uint64_t b = mix64(seed ^ mix64(stream * 0x100000001b3ULL ^ (2 * i + 1)));
    double u1 = ((a >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (b >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

enum { STREAM_WQ = 1, STREAM_KEYS = 2, STREAM_A = 3 };

/* The memory runs for every token, so its query and key scoring use the
 * dispatched SIMD dot (FMA, 64 lanes), whose bits do not depend on the CPU:
 * a memory tuned on one machine selects the same experts on another. */
static float dot(const float *a, const float *b, int n) { return quant_dot_f32(n, a, b); }

mem_config mem_default_config(void) {
    mem_config c;
    memset(&c, 0, sizeof c);
    c.n_sub = 1024; /* N = 2^20 */
    c.k = 32;
    c.rank = 1;
    c.train_top = 4;
    c.dk = 64;
    c.layer = -1; /* chosen from the model: 4/5 of the depth */
    c.beta = 8.0f;
    c.gate_lo = 0.80f;
    c.gate_hi = 0.90f;
    c.seed = 1234;
    return c;
}

int mem_config_check(const mem_config *c, int32_t n_embd, int32_t n_layer) {
    if (c->n_sub < 2 || c->n_sub > 65536)
        return mome_seterr_code(MOME_ERR_ARG, "memory: %u sub-keys per half is out of range (N = n_sub^2, n_sub in [2, 65536])",
                                c->n_sub);
    if (c->k < 1 || c->k > MEM_MAX_K || (uint64_t)c->k > (uint64_t)c->n_sub)
        return mome_seterr_code(MOME_ERR_ARG, "memory: top-k %d must be in [1, min(%d, sqrt(N))]", c->k, MEM_MAX_K);
    if (c->rank < 1 || c->rank > MEM_MAX_RANK)
        return mome_seterr_code(MOME_ERR_ARG, "memory: rank %d must be in [1, %d]", c->rank, MEM_MAX_RANK);
    if (c->train_top < 1 || c->train_top > c->k)
        return mome_seterr_code(MOME_ERR_ARG, "memory: experts trained per position (%d) must be in [1, k=%d]",
                                c->train_top, c->k);
    if (c->dk < 4 || c->dk > 1024)
        return mome_seterr_code(MOME_ERR_ARG, "memory: key dimension %d must be in [4, 1024]", c->dk);
    if (c->layer < 0 || c->layer >= n_layer)
        return mome_seterr_code(MOME_ERR_ARG, "memory: layer %d is outside the model's 0..%d", c->layer, n_layer - 1);
    if (!(c->beta > 0) || !(c->gate_lo < c->gate_hi) || c->gate_hi > 1.0f || c->gate_lo < -1.0f)
        return mome_seterr_code(MOME_ERR_ARG, "memory: need beta > 0 and -1 <= gate_lo < gate_hi <= 1");
    (void)n_embd;
    return MOME_OK;
}

static void normalize(float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < n; i++) v[i] *= inv;
}

int mem_bank_init(mem_bank *b, const mem_config *cfg, int32_t C) {
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->C = C;
    const int Q = 2 * cfg->dk;
    b->mu = mome_calloc((size_t)C, sizeof(float));
    b->inv_sd = mome_malloc((size_t)C * sizeof(float));
    b->wq = mome_malloc((size_t)Q * C * sizeof(float));
    b->keys = mome_malloc((size_t)2 * cfg->n_sub * cfg->dk * sizeof(float));
    b->hcap = 1024;
    b->hslot = mome_malloc(b->hcap * sizeof(int32_t));
    if (!b->mu || !b->inv_sd || !b->wq || !b->keys || !b->hslot) {
        mem_bank_free(b);
        return MOME_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < b->hcap; i++) b->hslot[i] = -1;
    for (int i = 0; i < C; i++) b->inv_sd[i] = 1.0f;
    const float sc = 1.0f / sqrtf((float)C);
    for (size_t i = 0; i < (size_t)Q * C; i++) b->wq[i] = sc * gauss(cfg->seed, STREAM_WQ, i);
    for (size_t r = 0; r < (size_t)2 * cfg->n_sub; r++) {
        float *k = b->keys + r * cfg->dk;
        for (int j = 0; j < cfg->dk; j++) k[j] = gauss(cfg->seed, STREAM_KEYS, r * cfg->dk + j);
        normalize(k, cfg->dk);
    }
    return MOME_OK;
}

void mem_bank_free(mem_bank *b) {
    free(b->mu); free(b->inv_sd); free(b->wq); free(b->keys); free(b->slot_id); free(b->A); free(b->B);
    free(b->slot_anchor); free(b->hslot); free(b->anchors); free(b->anchor_next); free(b->anchor_slot);
    memset(b, 0, sizeof *b);
}

float mem_rms_normalize(const float *h, float *xhat, int32_t C) {
    double ss = 0;
    for (int i = 0; i < C; i++) ss += (double)h[i] * h[i];
    const double rms = sqrt(ss / C + 1e-6);
    const float r = (float)(1.0 / rms);
    for (int i = 0; i < C; i++) xhat[i] = h[i] * r;
    return (float)rms;
}

/* Fits the query to the rows that will be trained: centering mu and a
 * whitening W = (Sigma + lambda I)^(-1/2) folded into the random projection,
 * so that the small differences between facts that share a template
 * position (the last prompt token of every question looks alike) become as
 * large as the differences between positions, and facts select different
 * experts. Sigma^(-1/2) by Newton-Schulz iterations (GEMMs only).
 * lambda = reg (tune default 0.01) * mean eigenvalue keeps directions the samples never varied
 * in from being blown up. */
void mem_bank_fit_query(mem_bank *b, const float *h, int64_t n, float reg) {
    const int C = b->C, Q = 2 * b->cfg.dk;
    if (n < 2) return;
    float *X = malloc((size_t)n * C * sizeof(float));
    double *mu = calloc((size_t)C, sizeof(double));
    float *S = malloc((size_t)C * C * sizeof(float)), *Y = malloc((size_t)C * C * sizeof(float));
    float *Z = malloc((size_t)C * C * sizeof(float)), *T = malloc((size_t)C * C * sizeof(float));
    float *U = malloc((size_t)C * C * sizeof(float)), *W = malloc((size_t)Q * C * sizeof(float));
    if (!X || !mu || !S || !Y || !Z || !T || !U || !W) goto done;
    for (int64_t r = 0; r < n; r++) {
        mem_rms_normalize(h + (size_t)r * C, X + (size_t)r * C, C);
        for (int i = 0; i < C; i++) mu[i] += X[(size_t)r * C + i];
    }
    for (int i = 0; i < C; i++) {
        mu[i] /= (double)n;
        b->mu[i] = (float)mu[i];
        b->inv_sd[i] = 1.0f;
    }
    for (int64_t r = 0; r < n; r++)
        for (int i = 0; i < C; i++) X[(size_t)r * C + i] -= b->mu[i];
    /* S = X^T X / n + lambda I */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, C, (int)n, 1.0f / (float)n, X, C, X, C, 0.0f, S, C);
    double tr = 0;
    for (int i = 0; i < C; i++) tr += S[(size_t)i * C + i];
    const float lambda = (float)(reg * tr / C);
    for (int i = 0; i < C; i++) S[(size_t)i * C + i] += lambda;
    /* Newton-Schulz: Y -> A^(1/2), Z -> A^(-1/2) for A = S / ||S||_F */
    double fn = 0;
    for (size_t i = 0; i < (size_t)C * C; i++) fn += (double)S[i] * S[i];
    fn = sqrt(fn);
    for (size_t i = 0; i < (size_t)C * C; i++) {
        Y[i] = (float)(S[i] / fn);
        Z[i] = 0.0f;
    }
    for (int i = 0; i < C; i++) Z[(size_t)i * C + i] = 1.0f;
    for (int it = 0; it < 40; it++) {
        /* T = (3I - Z Y) / 2 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, C, C, -0.5f, Z, C, Y, C, 0.0f, T, C);
        for (int i = 0; i < C; i++) T[(size_t)i * C + i] += 1.5f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, C, C, 1.0f, Y, C, T, C, 0.0f, U, C);
        memcpy(Y, U, (size_t)C * C * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C, C, C, 1.0f, T, C, Z, C, 0.0f, U, C);
        memcpy(Z, U, (size_t)C * C * sizeof(float));
    }
    /* S^(-1/2) = Z / sqrt(fn); fold into the projection, keeping its scale */
    const float zs = (float)(1.0 / sqrt(fn));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Q, C, C, zs, b->wq, C, Z, C, 0.0f, W, C);
    memcpy(b->wq, W, (size_t)Q * C * sizeof(float));
done:
    free(X); free(mu); free(S); free(Y); free(Z); free(T); free(U); free(W);
}

/* xc = (x̂ - mu) * inv_sd: the input of the query projection. */
static void query_input(const mem_bank *b, const float *xhat, float *xc) {
    for (int i = 0; i < b->C; i++) xc[i] = (xhat[i] - b->mu[i]) * b->inv_sd[i];
}

/* Half h of the query (dk values at qh), L2-normalised. */
static void query_half(const mem_bank *b, const float *xc, int h, float *qh) {
    const int C = b->C, dk = b->cfg.dk;
    for (int j = 0; j < dk; j++) qh[j] = dot(b->wq + (size_t)(h * dk + j) * C, xc, C);
    normalize(qh, dk);
}

void mem_query(const mem_bank *b, const float *xhat, float *q, mem_scratch *sc) {
    query_input(b, xhat, sc->xc);
    query_half(b, sc->xc, 0, q);
    query_half(b, sc->xc, 1, q + b->cfg.dk);
}

/* Indices of the k largest of v[0..n), sorted descending (ties: lower index). */
static void topk(const float *v, uint32_t n, int k, uint32_t *idx, float *val) {
    int m = 0;
    for (uint32_t i = 0; i < n; i++) {
        float x = v[i];
        if (m == k && !(x > val[m - 1])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && val[j - 1] < x) {
            val[j] = val[j - 1];
            idx[j] = idx[j - 1];
            j--;
        }
        val[j] = x;
        idx[j] = i;
    }
}

/* The k best sub-keys of half h for query half qh (s: n_sub scores). */
static void select_half(const mem_bank *b, const float *qh, int h, float *s, uint32_t *idx, float *val) {
    const int dk = b->cfg.dk;
    const uint32_t ns = b->cfg.n_sub;
    const float *K = b->keys + (size_t)h * ns * dk;
    for (uint32_t a = 0; a < ns; a++) s[a] = dot(K + (size_t)a * dk, qh, dk);
    topk(s, ns, b->cfg.k, idx, val);
}

/* The best k of the k*k sums of two sorted halves, and their mixing weights. */
static void select_merge(const mem_bank *b, const uint32_t *i1, const float *v1, const uint32_t *i2, const float *v2,
                         mem_sel *sel) {
    const int k = b->cfg.k;
    const uint32_t ns = b->cfg.n_sub;
    /* both lists are sorted, so row a can stop as soon as v1[a] + v2[0]
     * cannot enter the current top-k */
    int m = 0;
    for (int a = 0; a < k; a++) {
        if (m == k && !(v1[a] + v2[0] > sel->score[m - 1])) break;
        for (int c = 0; c < k; c++) {
            float x = v1[a] + v2[c];
            if (m == k && !(x > sel->score[m - 1])) break;
            int j = m < k ? m++ : k - 1;
            uint32_t id = i1[a] * ns + i2[c];
            while (j > 0 && sel->score[j - 1] < x) {
                sel->score[j] = sel->score[j - 1];
                sel->id[j] = sel->id[j - 1];
                j--;
            }
            sel->score[j] = x;
            sel->id[j] = id;
        }
    }
    sel->k = m;
    float mx = sel->score[0], sum = 0;
    for (int i = 0; i < m; i++) {
        sel->w[i] = expf(b->cfg.beta * (sel->score[i] - mx));
        sum += sel->w[i];
    }
    for (int i = 0; i < m; i++) sel->w[i] /= sum;
}

void mem_select(const mem_bank *b, const float *q, mem_sel *sel, mem_scratch *sc) {
    uint32_t i1[MEM_MAX_K], i2[MEM_MAX_K];
    float v1[MEM_MAX_K], v2[MEM_MAX_K];
    select_half(b, q, 0, sc->s1, i1, v1);
    select_half(b, q + b->cfg.dk, 1, sc->s2, i2, v2);
    select_merge(b, i1, v1, i2, v2, sel);
}

static uint32_t hash_id(uint32_t id) { return (uint32_t)mix64(id); }

int32_t mem_find_slot(const mem_bank *b, uint32_t id) {
    uint32_t mask = b->hcap - 1, h = hash_id(id) & mask;
    for (;;) {
        int32_t s = b->hslot[h];
        if (s < 0) return -1;
        if (b->slot_id[s] == id) return s;
        h = (h + 1) & mask;
    }
}

static int rehash(mem_bank *b, uint32_t ncap) {
    int32_t *nh = malloc((size_t)ncap * sizeof(int32_t));
    if (!nh) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory growing the expert table");
    for (uint32_t i = 0; i < ncap; i++) nh[i] = -1;
    for (int32_t s = 0; s < b->n_slots; s++) {
        uint32_t h = hash_id(b->slot_id[s]) & (ncap - 1);
        while (nh[h] >= 0) h = (h + 1) & (ncap - 1);
        nh[h] = s;
    }
    free(b->hslot);
    b->hslot = nh;
    b->hcap = ncap;
    return 0;
}

/* Ensures room for one more slot. */
static int grow_slots(mem_bank *b) {
    if (b->n_slots < b->cap_slots) return 0;
    const size_t r = (size_t)b->cfg.rank, C = (size_t)b->C;
    int32_t nc = b->cap_slots ? b->cap_slots * 2 : 256;
    uint32_t *ni = realloc(b->slot_id, (size_t)nc * sizeof(uint32_t));
    if (ni) b->slot_id = ni;
    float *na = realloc(b->A, (size_t)nc * r * C * sizeof(float));
    if (na) b->A = na;
    float *nb = realloc(b->B, (size_t)nc * r * C * sizeof(float));
    if (nb) b->B = nb;
    int32_t *nsa = realloc(b->slot_anchor, (size_t)nc * sizeof(int32_t));
    if (nsa) b->slot_anchor = nsa;
    if (!ni || !na || !nb || !nsa) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory: %d trained experts", nc);
    b->cap_slots = nc;
    return 0;
}

/* Adds expert id with the given A, B (NULL: A random from the seed, B = 0). */
static int32_t add_slot(mem_bank *b, uint32_t id, const float *A, const float *B) {
    if (grow_slots(b)) return -1;
    if ((uint32_t)(b->n_slots + 1) * 2 > b->hcap && rehash(b, b->hcap * 2)) return -1;
    const size_t r = (size_t)b->cfg.rank, C = (size_t)b->C;
    int32_t s = b->n_slots++;
    b->slot_id[s] = id;
    b->slot_anchor[s] = -1;
    float *a = b->A + (size_t)s * r * C, *bb = b->B + (size_t)s * r * C;
    if (A) memcpy(a, A, r * C * sizeof(float));
    else {
        const float sc = 1.0f / sqrtf((float)C);
        for (size_t i = 0; i < r * C; i++) a[i] = sc * gauss(b->cfg.seed, STREAM_A, (uint64_t)id * r * C + i);
    }
    if (B) memcpy(bb, B, r * C * sizeof(float));
    else memset(bb, 0, r * C * sizeof(float));
    uint32_t h = hash_id(id) & (b->hcap - 1);
    while (b->hslot[h] >= 0) h = (h + 1) & (b->hcap - 1);
    b->hslot[h] = s;
    return s;
}

int32_t mem_get_slot(mem_bank *b, uint32_t id) {
    int32_t s = mem_find_slot(b, id);
    if (s >= 0) return s;
    return add_slot(b, id, NULL, NULL);
}

static int push_anchor(mem_bank *b, int32_t slot, const float *q) {
    const int Q = 2 * b->cfg.dk;
    if (b->n_anchors == b->cap_anchors) {
        int32_t nc = b->cap_anchors ? b->cap_anchors * 2 : 256;
        float *na = realloc(b->anchors, (size_t)nc * Q * sizeof(float));
        if (na) b->anchors = na;
        int32_t *nn = realloc(b->anchor_next, (size_t)nc * sizeof(int32_t));
        if (nn) b->anchor_next = nn;
        int32_t *ns = realloc(b->anchor_slot, (size_t)nc * sizeof(int32_t));
        if (ns) b->anchor_slot = ns;
        if (!na || !nn || !ns) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory: %d anchors", nc);
        b->cap_anchors = nc;
    }
    int32_t a = b->n_anchors++;
    memcpy(b->anchors + (size_t)a * Q, q, (size_t)Q * sizeof(float));
    b->anchor_slot[a] = slot;
    b->anchor_next[a] = b->slot_anchor[slot];
    b->slot_anchor[slot] = a;
    return 0;
}

/* cos of two queries made of two unit halves: mean of the halves' cosines */
static float qcos(const float *a, const float *q, int Q) { return 0.5f * dot(a, q, Q); }

int mem_add_anchor(mem_bank *b, int32_t slot, const float *q) {
    const int Q = 2 * b->cfg.dk;
    for (int32_t a = b->slot_anchor[slot]; a >= 0; a = b->anchor_next[a])
        if (qcos(b->anchors + (size_t)a * Q, q, Q) > 0.999f) return 0;
    return push_anchor(b, slot, q);
}

float mem_gate(const mem_bank *b, int32_t slot, const float *q) {
    const int Q = 2 * b->cfg.dk;
    float best = -2.0f;
    for (int32_t a = b->slot_anchor[slot]; a >= 0; a = b->anchor_next[a]) {
        float c = qcos(b->anchors + (size_t)a * Q, q, Q);
        if (c > best) best = c;
    }
    float g = (best - b->cfg.gate_lo) / (b->cfg.gate_hi - b->cfg.gate_lo);
    return g <= 0.0f ? 0.0f : g >= 1.0f ? 1.0f : g;
}

void mem_expert_forward(const mem_bank *b, int32_t slot, float coef, const float *xhat, float *x, float *u) {
    const int C = b->C, r = b->cfg.rank;
    const float *A = b->A + (size_t)slot * r * C, *B = b->B + (size_t)slot * r * C;
    for (int j = 0; j < r; j++) {
        const float *aj = A + (size_t)j * C;
        float acc = 0;
        for (int c = 0; c < C; c++) acc += aj[c] * xhat[c];
        u[j] = acc * coef;
    }
    for (int c = 0; c < C; c++) {
        const float *bc = B + (size_t)c * r;
        float acc = 0;
        for (int j = 0; j < r; j++) acc += bc[j] * u[j];
        x[c] += acc;
    }
}

void mem_expert_backward(const mem_bank *b, int32_t slot, float coef, const float *xhat, const float *dx, float *gA,
                         float *gB) {
    const int C = b->C, r = b->cfg.rank;
    const float *A = b->A + (size_t)slot * r * C, *B = b->B + (size_t)slot * r * C;
    for (int j = 0; j < r; j++) {
        float u = 0, v = 0;
        for (int c = 0; c < C; c++) {
            u += A[(size_t)j * C + c] * xhat[c];
            v += B[(size_t)c * r + j] * dx[c];
        }
        u *= coef;
        v *= coef;
        for (int c = 0; c < C; c++) {
            gB[(size_t)c * r + j] += dx[c] * u;
            gA[(size_t)j * C + c] += v * xhat[c];
        }
    }
}

void mem_row_half(const mem_bank *b, const float *h, int half, mem_scratch *sc) {
    const int dk = b->cfg.dk;
    sc->rms = mem_rms_normalize(h, sc->xhat, b->C);
    query_input(b, sc->xhat, sc->xc);
    query_half(b, sc->xc, half, sc->q + half * dk);
    select_half(b, sc->q + half * dk, half, half ? sc->s2 : sc->s1, sc->hidx, sc->hval);
}

/* h += the selected trained experts, gated by the full query in sc->q. */
static void add_experts(const mem_bank *b, float *h, const mem_sel *sel, mem_scratch *sc) {
    for (int i = 0; i < sel->k; i++) {
        int32_t s = mem_find_slot(b, sel->id[i]);
        if (s < 0) continue;
        float g = mem_gate(b, s, sc->q);
        if (g == 0.0f) continue;
        mem_expert_forward(b, s, sel->w[i] * g * sc->rms, sc->xhat, h, sc->u);
    }
}

void mem_row_finish(const mem_bank *b, float *h, mem_scratch *sc0, const mem_scratch *sc1) {
    mem_sel sel;
    if (sc0 != sc1) memcpy(sc0->q + b->cfg.dk, sc1->q + b->cfg.dk, (size_t)b->cfg.dk * sizeof(float));
    select_merge(b, sc0->hidx, sc0->hval, sc1->hidx, sc1->hval, &sel);
    add_experts(b, h, &sel, sc0);
}

void mem_apply_row(const mem_bank *b, float *h, mem_scratch *sc) {
    if (b->n_slots == 0) return; /* empty memory: exactly the base model */
    /* half 1 as a thread of the split path would do it, half 0 beside it */
    mem_row_half(b, h, 1, sc);
    query_half(b, sc->xc, 0, sc->q);
    uint32_t i1[MEM_MAX_K];
    float v1[MEM_MAX_K];
    select_half(b, sc->q, 0, sc->s1, i1, v1);
    mem_sel sel;
    select_merge(b, i1, v1, sc->hidx, sc->hval, &sel);
    add_experts(b, h, &sel, sc);
}

void mem_scratch_free(mem_scratch *s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) {
        free(s[i].xhat); free(s[i].xc); free(s[i].q); free(s[i].s1); free(s[i].s2); free(s[i].u);
    }
    free(s);
}

mem_scratch *mem_scratch_new(const mome_memory *m, int n) {
    mem_scratch *sc = calloc((size_t)(n > 0 ? n : 1), sizeof(mem_scratch));
    if (!sc) { mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); return NULL; }
    uint32_t ns = 0;
    int Q = 0, r = 0;
    for (int i = 0; i < m->n_banks; i++) {
        if (m->banks[i].cfg.n_sub > ns) ns = m->banks[i].cfg.n_sub;
        if (2 * m->banks[i].cfg.dk > Q) Q = 2 * m->banks[i].cfg.dk;
        if (m->banks[i].cfg.rank > r) r = m->banks[i].cfg.rank;
    }
    for (int i = 0; i < n; i++) {
        mem_scratch *s = &sc[i];
        s->xhat = malloc((size_t)m->n_embd * sizeof(float));
        s->xc = malloc((size_t)m->n_embd * sizeof(float));
        s->q = malloc((size_t)(Q ? Q : 1) * sizeof(float));
        s->s1 = malloc((size_t)(ns ? ns : 1) * sizeof(float));
        s->s2 = malloc((size_t)(ns ? ns : 1) * sizeof(float));
        s->u = malloc((size_t)(r ? r : 1) * sizeof(float));
        if (!s->xhat || !s->xc || !s->q || !s->s1 || !s->s2 || !s->u) {
            mem_scratch_free(sc, n);
            mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
            return NULL;
        }
    }
    return sc;
}

void mome_memory_free(mome_memory *m) {
    if (!m) return;
    for (int i = 0; i < m->n_banks; i++) mem_bank_free(&m->banks[i]);
    free(m->banks);
    free(m->base_name);
    free(m);
}

/* ------------------------------------------------------------------ file */

#define MEM_ARCH "mome-memory"
#define MEM_VERSION 1

int mem_save(const mome_memory *m, const char *path, int f16) {
    gguf_writer *w;
    uint16_t *h16[3 * 64] = {0};
    int nh = 0;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    char key[128];
#define CK(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    CK(gguf_writer_add_str(w, "general.architecture", MEM_ARCH));
    CK(gguf_writer_add_u32(w, "mome.version", MEM_VERSION));
    CK(gguf_writer_add_str(w, "mome.base.sha256", m->base_sha256));
    CK(gguf_writer_add_str(w, "mome.base.name", m->base_name ? m->base_name : ""));
    CK(gguf_writer_add_i32(w, "mome.base.n_embd", m->n_embd));
    CK(gguf_writer_add_i32(w, "mome.base.n_layer", m->n_layer));
    CK(gguf_writer_add_i32(w, "mome.base.n_vocab", m->n_vocab));
    CK(gguf_writer_add_u32(w, "mome.n_banks", (uint32_t)m->n_banks));
    for (int bi = 0; bi < m->n_banks; bi++) {
        const mem_bank *b = &m->banks[bi];
        const mem_config *c = &b->cfg;
#define KEY(s) (snprintf(key, sizeof key, "mome.bank.%d." s, bi), key)
        CK(gguf_writer_add_u64(w, KEY("n_experts"), (uint64_t)c->n_sub * c->n_sub));
        CK(gguf_writer_add_u32(w, KEY("n_sub"), c->n_sub));
        CK(gguf_writer_add_i32(w, KEY("top_k"), c->k));
        CK(gguf_writer_add_i32(w, KEY("rank"), c->rank));
        CK(gguf_writer_add_i32(w, KEY("train_top"), c->train_top));
        CK(gguf_writer_add_i32(w, KEY("key_dim"), c->dk));
        CK(gguf_writer_add_i32(w, KEY("layer"), c->layer));
        CK(gguf_writer_add_f32(w, KEY("beta"), c->beta));
        CK(gguf_writer_add_f32(w, KEY("gate_lo"), c->gate_lo));
        CK(gguf_writer_add_f32(w, KEY("gate_hi"), c->gate_hi));
        CK(gguf_writer_add_u64(w, KEY("seed"), c->seed));
        CK(gguf_writer_add_u32(w, KEY("n_trained"), (uint32_t)b->n_slots));
        CK(gguf_writer_add_u32(w, KEY("n_anchors"), (uint32_t)b->n_anchors));
        CK(gguf_writer_add_arr(w, KEY("expert_ids"), GGUF_TYPE_UINT32, b->slot_id, (uint64_t)b->n_slots));
        CK(gguf_writer_add_arr(w, KEY("anchor_slot"), GGUF_TYPE_INT32, b->anchor_slot, (uint64_t)b->n_anchors));
#undef KEY
        const int64_t C = b->C, Q = 2 * c->dk, r = c->rank;
        char tn[64];
#define TENSOR(nm, nd, ne0, ne1, ne2, ptr, cnt)                                                         \
        do {                                                                                           \
            int64_t ne[3] = {ne0, ne1, ne2};                                                           \
            snprintf(tn, sizeof tn, "mem.%d." nm, bi);                                                 \
            CK(gguf_writer_add_tensor(w, tn, nd, ne, MOME_DTYPE_F32, ptr, (size_t)(cnt) * sizeof(float), \
                                      GGUF_WRITER_REF));                                               \
        } while (0)
        TENSOR("mu", 1, C, 1, 1, b->mu, C);
        TENSOR("inv_sd", 1, C, 1, 1, b->inv_sd, C);
        TENSOR("wq", 2, C, Q, 1, b->wq, C * Q);
        TENSOR("keys", 3, c->dk, c->n_sub, 2, b->keys, (int64_t)c->dk * c->n_sub * 2);
        /* the trained weights: f32, or f16 to halve the file (the default for
         * finished memories; checkpoints stay f32 so a resume is exact) */
#define TENSOR_W(nm, nd, ne0, ne1, ne2, ptr, cnt)                                                      \
        do {                                                                                           \
            if (!f16) { TENSOR(nm, nd, ne0, ne1, ne2, ptr, cnt); break; }                              \
            int64_t ne[3] = {ne0, ne1, ne2};                                                           \
            size_t cn = (size_t)(cnt);                                                                 \
            uint16_t *hp = malloc(cn * sizeof(uint16_t));                                              \
            if (!hp) { rc = mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); goto done; }            \
            h16[nh++] = hp;                                                                            \
            for (size_t q = 0; q < cn; q++) hp[q] = quant_f32_to_f16((ptr)[q]);                        \
            snprintf(tn, sizeof tn, "mem.%d." nm, bi);                                                 \
            CK(gguf_writer_add_tensor(w, tn, nd, ne, MOME_DTYPE_F16, hp, cn * sizeof(uint16_t), GGUF_WRITER_REF)); \
        } while (0)
        if (b->n_slots) {
            TENSOR_W("A", 3, C, r, b->n_slots, b->A, C * r * b->n_slots);
            TENSOR_W("B", 3, r, C, b->n_slots, b->B, C * r * b->n_slots);
        }
        if (b->n_anchors) TENSOR_W("anchors", 2, Q, b->n_anchors, 1, b->anchors, Q * b->n_anchors);
#undef TENSOR_W
#undef TENSOR
    }
    rc = gguf_writer_write_file(w, path);
done:
    gguf_writer_free(w);
    for (int i = 0; i < nh; i++) free(h16[i]);
    return rc;
#undef CK
}

static const gguf_tensor *need_tensor_t(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                                        int allow_f16) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' is missing", f->path, name);
        return NULL;
    }
    if (!(t->type == MOME_DTYPE_F32 || (allow_f16 && t->type == MOME_DTYPE_F16)) || t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' has the wrong type or shape (expected f32 [%lld, %lld, %lld])",
                         f->path, name, (long long)ne0, (long long)ne1, (long long)ne2);
        return NULL;
    }
    return t;
}

static const gguf_tensor *need_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, int64_t ne2) {
    return need_tensor_t(f, name, ne0, ne1, ne2, 0);
}

/* n floats from an f32 or f16 tensor into a new buffer */
static float *tensor_floats(const gguf_tensor *t, size_t n) {
    float *v = mome_malloc(n * sizeof(float));
    if (!v) return NULL;
    if (t->type == MOME_DTYPE_F32) memcpy(v, t->data, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const char *)t->data + 2 * i, 2);
            v[i] = quant_f16_to_f32(h);
        }
    return v;
}

static int get_req_u32(const gguf_file *f, const char *k, uint32_t *v) {
    int r = gguf_get_u32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}
static int get_req_i32(const gguf_file *f, const char *k, int32_t *v) {
    int r = gguf_get_i32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}
static int get_req_f32(const gguf_file *f, const char *k, float *v) {
    int r = gguf_get_f32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}

static int load_bank(const gguf_file *f, int bi, mem_bank *b, int32_t C, int32_t n_layer) {
    char key[128];
    mem_config c = mem_default_config();
    uint32_t n_trained, n_anch;
    uint64_t seed = 0;
#define KEY(s) (snprintf(key, sizeof key, "mome.bank.%d." s, bi), key)
    if (get_req_u32(f, KEY("n_sub"), &c.n_sub) || get_req_i32(f, KEY("top_k"), &c.k) ||
        get_req_i32(f, KEY("rank"), &c.rank) || get_req_i32(f, KEY("train_top"), &c.train_top) ||
        get_req_i32(f, KEY("key_dim"), &c.dk) || get_req_i32(f, KEY("layer"), &c.layer) ||
        get_req_f32(f, KEY("beta"), &c.beta) || get_req_f32(f, KEY("gate_lo"), &c.gate_lo) ||
        get_req_f32(f, KEY("gate_hi"), &c.gate_hi) || get_req_u32(f, KEY("n_trained"), &n_trained) ||
        get_req_u32(f, KEY("n_anchors"), &n_anch))
        return -1;
    if (gguf_get_u64(f, KEY("seed"), &seed) < 0) return -1;
    c.seed = seed;
    if (mem_config_check(&c, C, n_layer)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mome_errmsg());
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: %s", f->path, bi, msg);
    }
    const gguf_kv *ids, *aslot;
    if (gguf_get_arr(f, KEY("expert_ids"), GGUF_TYPE_UINT32, &ids) != 1 ||
        gguf_get_arr(f, KEY("anchor_slot"), GGUF_TYPE_INT32, &aslot) != 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: expert_ids / anchor_slot arrays missing or mistyped", f->path, bi);
#undef KEY
    if (ids->n != n_trained || aslot->n != n_anch)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: array lengths disagree with n_trained/n_anchors", f->path, bi);
    if (mem_bank_init(b, &c, C)) return -1;
    const int64_t Q = 2 * c.dk, r = c.rank;
    char tn[64];
    const gguf_tensor *t;
#define T(nm, a, bb, cc) (snprintf(tn, sizeof tn, "mem.%d." nm, bi), need_tensor(f, tn, a, bb, cc))
    if (!(t = T("mu", C, 1, 1))) return -1;
    memcpy(b->mu, t->data, (size_t)C * 4);
    if (!(t = T("inv_sd", C, 1, 1))) return -1;
    memcpy(b->inv_sd, t->data, (size_t)C * 4);
    if (!(t = T("wq", C, Q, 1))) return -1;
    memcpy(b->wq, t->data, (size_t)(C * Q) * 4);
    if (!(t = T("keys", c.dk, c.n_sub, 2))) return -1;
    memcpy(b->keys, t->data, (size_t)c.dk * c.n_sub * 2 * 4);
    float *A = NULL, *B = NULL, *anc = NULL;
    int rc = -1;
#define TW(nm, a, bb, cc) (snprintf(tn, sizeof tn, "mem.%d." nm, bi), need_tensor_t(f, tn, a, bb, cc, 1))
    if (n_trained) {
        if (!(t = TW("A", C, r, n_trained)) || !(A = tensor_floats(t, (size_t)C * r * n_trained))) goto out;
        if (!(t = TW("B", r, C, n_trained)) || !(B = tensor_floats(t, (size_t)C * r * n_trained))) goto out;
    }
    if (n_anch) {
        if (!(t = TW("anchors", Q, n_anch, 1)) || !(anc = tensor_floats(t, (size_t)Q * n_anch))) goto out;
    }
#undef TW
#undef T
    const uint64_t N = (uint64_t)c.n_sub * c.n_sub;
    for (uint32_t s = 0; s < n_trained; s++) {
        uint32_t id;
        memcpy(&id, ids->data + 4 * (size_t)s, 4);
        if (id >= N) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: expert id %u >= N = %llu", f->path, bi, id,
                             (unsigned long long)N);
            goto out;
        }
        if (mem_find_slot(b, id) >= 0) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: expert %u appears twice", f->path, bi, id);
            goto out;
        }
        if (add_slot(b, id, A + (size_t)s * r * C, B + (size_t)s * r * C) < 0) goto out;
    }
    for (uint32_t a = 0; a < n_anch; a++) {
        int32_t s;
        memcpy(&s, aslot->data + 4 * (size_t)a, 4);
        if (s < 0 || (uint32_t)s >= n_trained) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: anchor %u names slot %d of %u", f->path, bi, a, s, n_trained);
            goto out;
        }
        if (push_anchor(b, s, anc + (size_t)a * Q)) goto out;
    }
    /* every float must be finite: a NaN would poison every answer */
    for (size_t i = 0; i < (size_t)n_trained * r * C; i++)
        if (!isfinite(b->A[i]) || !isfinite(b->B[i])) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: bank %d: expert weights contain NaN/Inf", f->path, bi);
            goto out;
        }
    rc = 0;
out:
    free(A);
    free(B);
    free(anc);
    return rc;
}

int mome_memory_load(const char *path, mome_model *model, mome_memory **out) {
    *out = NULL;
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) return rc;
    mome_memory *m = calloc(1, sizeof *m);
    if (!m) { gguf_close(f); return mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); }
    gguf_str s;
    uint32_t ver = 0, nb = 0;
    rc = MOME_ERR_FORMAT;
    if (gguf_get_str(f, "general.architecture", &s) != 1 || !gguf_str_eq(s, MEM_ARCH)) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: not a mome memory file (general.architecture is not '%s')", path, MEM_ARCH);
        goto fail;
    }
    if (get_req_u32(f, "mome.version", &ver)) goto fail;
    if (ver != MEM_VERSION) {
        mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: memory file version %u; this mome reads version %d", path, ver, MEM_VERSION);
        goto fail;
    }
    if (gguf_get_str(f, "mome.base.sha256", &s) != 1 || s.len != 64) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.base.sha256 missing or malformed", path);
        goto fail;
    }
    memcpy(m->base_sha256, s.ptr, 64);
    m->base_sha256[64] = 0;
    if (gguf_get_str(f, "mome.base.name", &s) == 1) {
        m->base_name = malloc((size_t)s.len + 1);
        if (m->base_name) { memcpy(m->base_name, s.ptr, (size_t)s.len); m->base_name[s.len] = 0; }
    }
    if (get_req_i32(f, "mome.base.n_embd", &m->n_embd) || get_req_i32(f, "mome.base.n_layer", &m->n_layer) ||
        get_req_i32(f, "mome.base.n_vocab", &m->n_vocab) || get_req_u32(f, "mome.n_banks", &nb))
        goto fail;
    if (model) {
        const char *sha = mome_model_sha256(model);
        if (!sha) goto fail;
        if (strcmp(sha, m->base_sha256) != 0 || m->n_embd != model->hp.n_embd || m->n_layer != model->hp.n_layer ||
            m->n_vocab != model->hp.n_vocab) {
            mome_seterr_code(MOME_ERR_ARG,
                             "%s: this memory was made for another base model (%s, sha256 %.16s...); the model given is %s "
                             "(sha256 %.16s...). Use the model the memory was tuned on.",
                             path, m->base_name ? m->base_name : "?", m->base_sha256, model->path, sha);
            goto fail;
        }
    }
    if (nb < 1 || nb > 64) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: %u memory banks (1..64 allowed)", path, nb);
        goto fail;
    }
    m->banks = calloc(nb, sizeof(mem_bank));
    if (!m->banks) goto fail;
    for (uint32_t i = 0; i < nb; i++) {
        m->n_banks = (int32_t)i + 1;
        if (load_bank(f, (int)i, &m->banks[i], m->n_embd, m->n_layer)) goto fail;
    }
    gguf_close(f);
    *out = m;
    return MOME_OK;
fail:
    gguf_close(f);
    mome_memory_free(m);
    return rc;
}

int64_t mome_memory_n_trained(const mome_memory *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_banks; i++) n += m->banks[i].n_slots;
    return n;
}
