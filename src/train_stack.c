/* train_stack.c - see train_stack.h. Plain f32 with OpenBLAS sgemm for every
 * matrix product (the batch is a few hundred rows, so these are real GEMMs);
 * attention, norms and the loss are simple loops. Saved activations live in
 * one workspace sized at init; a step allocates nothing.
 *
 * Matrix conventions: activations are row-major (R, n); a weight W is
 * (n_out, n_in) row-major, so Y = X W^T and dX = dY W.
 */
#include "train_stack.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "util.h"

/* Y (R, n_out) (+)= X (R, n_in) W^T */
static void gemm_xwt(int R, int n_out, int n_in, const float *X, const float *W, float *Y, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, n_out, n_in, 1.0f, X, n_in, W, n_in, beta, Y, n_out);
}
/* dX (R, n_in) (+)= dY (R, n_out) W */
static void gemm_dyw(int R, int n_out, int n_in, const float *dY, const float *W, float *dX, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, n_in, n_out, 1.0f, dY, n_out, W, n_in, beta, dX, n_in);
}

static float *deq(const qmat *q) {
    float *w = mome_aligned_alloc((size_t)q->n_out * q->n_in * sizeof(float));
    if (!w) return NULL;
    for (int64_t r = 0; r < q->n_out; r++)
        quant_dequantize_row(q->type, (const char *)q->data + (size_t)r * q->row_bytes, w + (size_t)r * q->n_in, q->n_in);
    return w;
}

static float *dupv(const float *v, int n) {
    float *p = mome_malloc((size_t)n * sizeof(float));
    if (p) memcpy(p, v, (size_t)n * sizeof(float));
    return p;
}

/* floats of saved activations per layer for R rows */
static size_t layer_ws(const tstack *s, int R) {
    const size_t C = s->C, F = s->F, HD = (size_t)s->H * s->D, KV = (size_t)s->Hkv * s->D;
    size_t n = 0;
    n += R * C;              /* Xin */
    n += R;                  /* r1 */
    n += R * C;              /* xn1 */
    n += R * HD + 2 * R * KV;/* Q K V */
    n += (size_t)s->H * R * s->max_pos; /* P */
    n += R * HD;             /* att */
    n += R * C;              /* X1 */
    n += R;                  /* r2 */
    n += R * C;              /* xn2 */
    n += 3 * R * F;          /* G U Hh */
    if (s->lora) n += (size_t)TS_NPROJ * R * s->lora_rank; /* x A^T per projection */
    return n;
}

static size_t total_ws(const tstack *s, int R) {
    const size_t C = s->C, F = s->F, HD = (size_t)s->H * s->D;
    size_t mx = F > HD ? F : HD;
    if (C > mx) mx = C;
    size_t n = (size_t)(s->L - s->l0) * layer_ws(s, R);
    n += R * C + R + R * C;        /* XL, rf, xf */
    n += (size_t)R * s->V;         /* logits / dlogits */
    n += 2 * R * C;                /* dX, dxn */
    n += 4 * R * mx;               /* scratch gradients */
    n += (size_t)R * s->max_pos;   /* attention row scratch */
    if (s->lora) n += 2 * (size_t)R * s->lora_rank;
    /* take() rounds every slice up to 16 floats */
    return n + 64 + 15 * ((size_t)(s->L - s->l0) * (14 + TS_NPROJ) + 12);
}

int tstack_init(tstack *s, const mome_model *m, int l0, int max_pos, int max_rows) {
    memset(s, 0, sizeof *s);
    const llama_hparams *hp = &m->hp;
    s->l0 = l0; s->L = hp->n_layer; s->C = hp->n_embd; s->F = hp->n_ff; s->H = hp->n_head; s->Hkv = hp->n_head_kv;
    s->D = hp->head_dim; s->V = hp->n_vocab; s->n_rot = hp->n_rot; s->eps = hp->rms_eps;
    s->rope_neox = hp->rope_neox;
    s->max_pos = max_pos; s->max_rows = max_rows;
    s->layers = mome_calloc((size_t)(s->L - l0), sizeof(ts_layer));
    if (!s->layers) return MOME_ERR_NOMEM;
    for (int l = l0; l < s->L; l++) {
        const llama_layer *src = &m->layers[l];
        ts_layer *d = &s->layers[l - l0];
        d->attn_norm = dupv(src->attn_norm, s->C); d->ffn_norm = dupv(src->ffn_norm, s->C);
        d->wq = deq(&src->wq); d->wk = deq(&src->wk); d->wv = deq(&src->wv); d->wo = deq(&src->wo);
        d->wg = deq(&src->w_gate); d->wu = deq(&src->w_up); d->wd = deq(&src->w_down);
        /* copies, so that full fine-tuning can train them */
        const int HD = s->H * s->D, KV = s->Hkv * s->D;
        d->bq = src->bq ? dupv(src->bq, HD) : NULL;
        d->bk = src->bk ? dupv(src->bk, KV) : NULL;
        d->bv = src->bv ? dupv(src->bv, KV) : NULL;
        if (!d->attn_norm || !d->ffn_norm || !d->wq || !d->wk || !d->wv || !d->wo || !d->wg || !d->wu || !d->wd ||
            (src->bq && !d->bq) || (src->bk && !d->bk) || (src->bv && !d->bv)) {
            tstack_free(s);
            return mome_seterr_code(MOME_ERR_NOMEM, "out of memory dequantizing layer %d for training", l);
        }
    }
    s->out_norm = dupv(m->output_norm, s->C);
    s->wout = deq(&m->output);
    s->tied = m->output.data == m->tok_embd.data;
    const int half = s->n_rot / 2;
    s->rope_cos = mome_malloc((size_t)max_pos * half * sizeof(float));
    s->rope_sin = mome_malloc((size_t)max_pos * half * sizeof(float));
    if (!s->out_norm || !s->wout || !s->rope_cos || !s->rope_sin) {
        tstack_free(s);
        return MOME_ERR_NOMEM;
    }
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)s->n_rot), fs = 1.0f / hp->rope_scale;
    for (int p = 0; p < max_pos; p++) {
        float th = (float)p * fs;
        for (int i = 0; i < half; i++) {
            s->rope_cos[(size_t)p * half + i] = cosf(th);
            s->rope_sin[(size_t)p * half + i] = sinf(th);
            th *= theta_scale;
        }
    }
    s->ws_len = total_ws(s, max_rows);
    s->ws = mome_aligned_alloc(s->ws_len * sizeof(float));
    if (!s->ws) {
        tstack_free(s);
        return MOME_ERR_NOMEM;
    }
    return MOME_OK;
}

static void free_layer(ts_layer *d) {
    free(d->attn_norm); free(d->ffn_norm); free(d->wq); free(d->wk); free(d->wv); free(d->wo);
    free(d->wg); free(d->wu); free(d->wd); free(d->bq); free(d->bk); free(d->bv);
}

void tstack_free(tstack *s) {
    for (int l = 0; l < s->L - s->l0; l++) {
        if (s->layers) free_layer(&s->layers[l]);
        if (s->grad) free_layer(&s->grad[l]);
    }
    free(s->grad);
    if (s->embd != s->wout) free(s->embd);
    if (s->g_embd != s->g_wout) free(s->g_embd);
    free(s->g_out_norm); free(s->g_wout);
    if (s->lora)
        for (int i = 0; i < (s->L - s->l0) * TS_NPROJ; i++) {
            free(s->lora[i].A); free(s->lora[i].B); free(s->lora[i].gA); free(s->lora[i].gB);
        }
    free(s->lora); free(s->layers); free(s->out_norm); free(s->wout); free(s->rope_cos); free(s->rope_sin); free(s->ws);
    memset(s, 0, sizeof *s);
}

int tstack_add_lora(tstack *s, int rank, float alpha, uint64_t seed) {
    const int NL = s->L - s->l0;
    s->lora = mome_calloc((size_t)NL * TS_NPROJ, sizeof(ts_lora));
    if (!s->lora) return MOME_ERR_NOMEM;
    s->lora_rank = rank;
    s->lora_scale = alpha / (float)rank;
    const int HD = s->H * s->D, KV = s->Hkv * s->D;
    const int nin[TS_NPROJ] = {s->C, s->C, s->C, HD, s->C, s->C, s->F};
    const int nout[TS_NPROJ] = {HD, KV, KV, s->C, s->F, s->F, s->C};
    uint64_t st = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < NL * TS_NPROJ; i++) {
        ts_lora *lo = &s->lora[i];
        lo->n_in = nin[i % TS_NPROJ];
        lo->n_out = nout[i % TS_NPROJ];
        lo->A = mome_malloc((size_t)rank * lo->n_in * sizeof(float));
        lo->B = mome_calloc((size_t)lo->n_out * rank, sizeof(float));
        lo->gA = mome_calloc((size_t)rank * lo->n_in, sizeof(float));
        lo->gB = mome_calloc((size_t)lo->n_out * rank, sizeof(float));
        if (!lo->A || !lo->B || !lo->gA || !lo->gB) return MOME_ERR_NOMEM;
        const float sc = 1.0f / sqrtf((float)lo->n_in);
        for (size_t j = 0; j < (size_t)rank * lo->n_in; j++) {
            /* uniform in [-sqrt(3), sqrt(3)] * sc: unit variance * sc */
            st ^= st << 13; st ^= st >> 7; st ^= st << 17;
            lo->A[j] = sc * 1.7320508f * (2.0f * (float)((st >> 11) * (1.0 / 9007199254740992.0)) - 1.0f);
        }
    }
    s->ws_len = total_ws(s, s->max_rows);
    free(s->ws);
    s->ws = mome_aligned_alloc(s->ws_len * sizeof(float));
    return s->ws ? MOME_OK : MOME_ERR_NOMEM;
}

int tstack_add_full(tstack *s, const mome_model *m) {
    if (s->l0 != 0 || s->lora || s->grad)
        return mome_seterr_code(MOME_ERR_ARG, "train: full fine-tuning needs the whole model (l0 = 0) and no adapters");
    const int NL = s->L, C = s->C, HD = s->H * s->D, KV = s->Hkv * s->D, F = s->F;
    s->grad = mome_calloc((size_t)NL, sizeof(ts_layer));
    if (!s->grad) return MOME_ERR_NOMEM;
#define ZF(n) mome_calloc((size_t)(n), sizeof(float))
    for (int l = 0; l < NL; l++) {
        const ts_layer *w = &s->layers[l];
        ts_layer *g = &s->grad[l];
        g->attn_norm = ZF(C); g->ffn_norm = ZF(C);
        g->wq = ZF((size_t)HD * C); g->wk = ZF((size_t)KV * C); g->wv = ZF((size_t)KV * C); g->wo = ZF((size_t)C * HD);
        g->wg = ZF((size_t)F * C); g->wu = ZF((size_t)F * C); g->wd = ZF((size_t)C * F);
        g->bq = w->bq ? ZF(HD) : NULL; g->bk = w->bk ? ZF(KV) : NULL; g->bv = w->bv ? ZF(KV) : NULL;
        if (!g->attn_norm || !g->ffn_norm || !g->wq || !g->wk || !g->wv || !g->wo || !g->wg || !g->wu || !g->wd ||
            (w->bq && !g->bq) || (w->bk && !g->bk) || (w->bv && !g->bv))
            return mome_seterr_code(MOME_ERR_NOMEM, "out of memory for the gradients of layer %d", l);
    }
    s->g_out_norm = ZF(C);
    s->g_wout = ZF((size_t)s->V * C);
    if (s->tied) {
        s->embd = s->wout;
        s->g_embd = s->g_wout;
    } else {
        s->embd = deq(&m->tok_embd);
        s->g_embd = ZF((size_t)s->V * C);
    }
#undef ZF
    if (!s->g_out_norm || !s->g_wout || !s->embd || !s->g_embd)
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory for the embedding and head gradients");
    return MOME_OK;
}

int tstack_params(const tstack *s, ts_param *out, int cap) {
    int n = 0;
#define PUT(W, G, N) do { if (n < cap) out[n] = (ts_param){(W), (G), (size_t)(N)}; n++; } while (0)
    if (s->lora)
        for (int i = 0; i < (s->L - s->l0) * TS_NPROJ; i++) {
            const ts_lora *lo = &s->lora[i];
            PUT(lo->A, lo->gA, (size_t)s->lora_rank * lo->n_in);
            PUT(lo->B, lo->gB, (size_t)lo->n_out * s->lora_rank);
        }
    if (s->grad) {
        const size_t C = s->C, HD = (size_t)s->H * s->D, KV = (size_t)s->Hkv * s->D, F = s->F;
        for (int l = 0; l < s->L - s->l0; l++) {
            const ts_layer *w = &s->layers[l], *g = &s->grad[l];
            PUT(w->attn_norm, g->attn_norm, C);
            PUT(w->wq, g->wq, HD * C); PUT(w->wk, g->wk, KV * C); PUT(w->wv, g->wv, KV * C);
            if (w->bq) PUT(w->bq, g->bq, HD);
            if (w->bk) PUT(w->bk, g->bk, KV);
            if (w->bv) PUT(w->bv, g->bv, KV);
            PUT(w->wo, g->wo, C * HD);
            PUT(w->ffn_norm, g->ffn_norm, C);
            PUT(w->wg, g->wg, F * C); PUT(w->wu, g->wu, F * C); PUT(w->wd, g->wd, C * F);
        }
        PUT(s->out_norm, s->g_out_norm, C);
        PUT(s->wout, s->g_wout, (size_t)s->V * C);
        if (!s->tied) PUT(s->embd, s->g_embd, (size_t)s->V * C);
    }
#undef PUT
    return n;
}

/* y = rmsnorm(x) * w for R rows; r[i] = 1/rms */
static void rms_fwd(int R, int C, const float *x, const float *w, float eps, float *y, float *r) {
    for (int i = 0; i < R; i++) {
        const float *xi = x + (size_t)i * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xi[c] * xi[c];
        float ri = (float)(1.0 / sqrt(ss / C + eps));
        r[i] = ri;
        for (int c = 0; c < C; c++) y[(size_t)i * C + c] = xi[c] * ri * w[c];
    }
}

/* dx (+)= d rmsnorm; dy is the gradient of y = x*r*w; gw (+)= dL/dw (NULL:
 * the weight is frozen) */
static void rms_bwd(int R, int C, const float *x, const float *w, const float *r, const float *dy, float *dx,
                    float *gw) {
    for (int i = 0; i < R; i++) {
        const float *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
        float *dxi = dx + (size_t)i * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)dyi[c] * w[c] * xi[c];
        const float ri = r[i], k = (float)(dot * ri * ri * ri / C);
        for (int c = 0; c < C; c++) dxi[c] += ri * w[c] * dyi[c] - k * xi[c];
        if (gw)
            for (int c = 0; c < C; c++) gw[c] += dyi[c] * xi[c] * ri;
    }
}

/* gb (n) += the column sums of dY (R, n): a bias's gradient (NULL: none) */
static void bias_bwd(int R, int n, const float *dY, float *gb) {
    if (!gb) return;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < n; i++) gb[i] += dY[(size_t)r * n + i];
}

/* RoPE (sign 1) or its transpose (sign -1, the backward pass) on the pairs
 * (2i, 2i+1), or (i, i + n_rot/2) in NEOX mode. */
static void rope(float *x, int nh, int D, int n_rot, int neox, const float *cs, const float *sn, float sign) {
    const int half = n_rot / 2, stride = neox ? 1 : 2, off = neox ? half : 1;
    for (int h = 0; h < nh; h++) {
        float *v = x + (size_t)h * D;
        for (int i = 0; i < half; i++) {
            float *a = v + (size_t)i * stride, *b = a + off;
            const float x0 = *a, x1 = *b, s = sign * sn[i];
            *a = x0 * cs[i] - x1 * s;
            *b = x0 * s + x1 * cs[i];
        }
    }
}

/* Y (R, n) += b per row (NULL: no bias) */
static void add_bias_rows(int R, int n, float *Y, const float *b) {
    if (!b) return;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < n; i++) Y[(size_t)r * n + i] += b[i];
}

typedef struct lsave {
    float *Xin, *r1, *xn1, *Q, *K, *V, *P, *att, *X1, *r2, *xn2, *G, *U, *Hh;
    float *la[TS_NPROJ];   /* LoRA x A^T, (R, r) */
} lsave;

static float *take(float **p, size_t n) {
    float *q = *p;
    *p += (n + 15) & ~(size_t)15;
    return q;
}

/* Projection Y = X W^T (+ LoRA), saving x A^T in la. */
static void proj_fwd(const tstack *s, int R, int n_out, int n_in, const float *X, const float *W, float *Y,
                     const ts_lora *lo, float *la) {
    gemm_xwt(R, n_out, n_in, X, W, Y, 0.0f);
    if (lo) {
        const int r = s->lora_rank;
        gemm_xwt(R, r, n_in, X, lo->A, la, 0.0f);              /* (R, r) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, n_out, r, s->lora_scale, la, r, lo->B, r, 1.0f, Y,
                    n_out);                                    /* Y += s * la B^T */
    }
}

/* dX (+)= dY W (+ LoRA), gW (n_out, n_in) += dY^T X (full fine-tuning; NULL:
 * W is frozen) and LoRA gradients; tmp (R, r) scratch. */
static void proj_bwd(const tstack *s, int R, int n_out, int n_in, const float *X, const float *W, const float *dY,
                     float *dX, float beta, float *gW, ts_lora *lo, const float *la, float *tmp) {
    gemm_dyw(R, n_out, n_in, dY, W, dX, beta);
    if (gW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, n_in, R, 1.0f, dY, n_out, X, n_in, 1.0f, gW, n_in);
    if (lo) {
        const int r = s->lora_rank;
        const float sc = s->lora_scale;
        /* gB (n_out, r) += s * dY^T la */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n_out, r, R, sc, dY, n_out, la, r, 1.0f, lo->gB, r);
        /* tmp (R, r) = s * dY B */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, r, n_out, sc, dY, n_out, lo->B, r, 0.0f, tmp, r);
        /* gA (r, n_in) += tmp^T X */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, n_in, R, 1.0f, tmp, r, X, n_in, 1.0f, lo->gA, n_in);
        /* dX += tmp A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, n_in, r, 1.0f, tmp, r, lo->A, n_in, 1.0f, dX, n_in);
    }
}

/* Causal attention of layer l (its saved Q, K, V; the sequences' prefix
 * K/V) into v->att, keeping the probabilities in v->P: for (seq, head, row)
 * at P + (h*R + row)*max_pos. One job per sequence and head. */
static void attn_fwd(const tstack *s, lsave *v, const ts_seq *seqs, int n_seqs, int R, int l) {
    const int H = s->H, Hkv = s->Hkv, D = s->D, HD = H * D, KV = Hkv * D, G = H / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(dynamic, 1)
    for (int job = 0; job < n_seqs * H; job++) {
        const ts_seq *q = &seqs[job / H];
        const int h = job % H, kh = h / G, np = q->n_prefix;
        const float *kp = q->kpre ? q->kpre + (size_t)l * np * KV : NULL;
        const float *vp = q->vpre ? q->vpre + (size_t)l * np * KV : NULL;
        for (int t = 0; t < q->T; t++) {
            const int row = q->row0 + t, n = np + t + 1;
            const float *qi = v->Q + (size_t)row * HD + (size_t)h * D;
            float *P = v->P + ((size_t)h * R + row) * s->max_pos;
            float m = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kj = j < np ? kp + (size_t)j * KV + (size_t)kh * D
                                         : v->K + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                float d = 0;
                for (int e = 0; e < D; e++) d += qi[e] * kj[e];
                P[j] = d * scale;
                if (P[j] > m) m = P[j];
            }
            float sum = 0;
            for (int j = 0; j < n; j++) { P[j] = expf(P[j] - m); sum += P[j]; }
            const float inv = 1.0f / sum;
            float *o = v->att + (size_t)row * HD + (size_t)h * D;
            for (int e = 0; e < D; e++) o[e] = 0;
            for (int j = 0; j < n; j++) {
                P[j] *= inv;
                const float *vj = j < np ? vp + (size_t)j * KV + (size_t)kh * D
                                         : v->V + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                for (int e = 0; e < D; e++) o[e] += P[j] * vj[e];
            }
        }
    }
}

/* The backward of attn_fwd: datt (R x HD) in, dQ, dK, dV out (cleared
 * here), un-rotated. Parallel over sequences: K/V gradients of a sequence
 * stay inside it. */
static void attn_bwd(const tstack *s, const lsave *v, const ts_seq *seqs, int n_seqs, int R, int l, const float *datt,
                     float *dQ, float *dK, float *dV) {
    const int H = s->H, Hkv = s->Hkv, D = s->D, HD = H * D, KV = Hkv * D, G = H / Hkv;
    const float scale = 1.0f / sqrtf((float)D);
    const int half = s->n_rot / 2;
    memset(dQ, 0, (size_t)R * HD * sizeof(float));
    memset(dK, 0, (size_t)R * KV * sizeof(float));
    memset(dV, 0, (size_t)R * KV * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1)
    for (int si = 0; si < n_seqs; si++) {
        const ts_seq *q = &seqs[si];
        const int np = q->n_prefix;
        const float *kp = q->kpre ? q->kpre + (size_t)l * np * KV : NULL;
        const float *vp = q->vpre ? q->vpre + (size_t)l * np * KV : NULL;
        float dP[q->n_prefix + q->T];
        for (int h = 0; h < H; h++) {
            const int kh = h / G;
            for (int t = 0; t < q->T; t++) {
                const int row = q->row0 + t, n = np + t + 1;
                const float *P = v->P + ((size_t)h * R + row) * s->max_pos;
                const float *da = datt + (size_t)row * HD + (size_t)h * D;
                double sdot = 0;
                for (int j = 0; j < n; j++) {
                    const float *vj = j < np ? vp + (size_t)j * KV + (size_t)kh * D
                                             : v->V + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                    float d = 0;
                    for (int e = 0; e < D; e++) d += da[e] * vj[e];
                    dP[j] = d;
                    sdot += (double)P[j] * d;
                    if (j >= np) {
                        float *dvj = dV + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                        for (int e = 0; e < D; e++) dvj[e] += P[j] * da[e];
                    }
                }
                const float *qi = v->Q + (size_t)row * HD + (size_t)h * D;
                float *dq = dQ + (size_t)row * HD + (size_t)h * D;
                for (int j = 0; j < n; j++) {
                    const float ds = P[j] * (dP[j] - (float)sdot) * scale;
                    if (ds == 0.0f) continue;
                    const float *kj = j < np ? kp + (size_t)j * KV + (size_t)kh * D
                                             : v->K + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                    for (int e = 0; e < D; e++) dq[e] += ds * kj[e];
                    if (j >= np) {
                        float *dk = dK + (size_t)(q->row0 + j - np) * KV + (size_t)kh * D;
                        for (int e = 0; e < D; e++) dk[e] += ds * qi[e];
                    }
                }
            }
        }
        for (int t = 0; t < q->T; t++) {
            const int pos = np + t, row = q->row0 + t;
            rope(dQ + (size_t)row * HD, H, D, s->n_rot, s->rope_neox, s->rope_cos + (size_t)pos * half,
                 s->rope_sin + (size_t)pos * half, -1.0f);
            rope(dK + (size_t)row * KV, Hkv, D, s->n_rot, s->rope_neox, s->rope_cos + (size_t)pos * half,
                 s->rope_sin + (size_t)pos * half, -1.0f);
        }
    }
}

/* Each sequence's mean cross-entropy over its targets (loss) and whether
 * every target is the argmax (ok); with grad, logits become dlogits (rows
 * without a target zero). One job per sequence, its rows in order, so the
 * bits do not depend on the threads; two double exp per logit made this
 * about a seventh of a memory-tuning step on one core. */
static void loss_dlogits(const ts_seq *seqs, int n_seqs, int V, float *logits, float *loss, int *ok, int grad) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int si = 0; si < n_seqs; si++) {
        const ts_seq *q = &seqs[si];
        int nt = 0, good = 1;
        double L = 0;
        for (int t = 0; t < q->T; t++) nt += q->target[t] >= 0;
        for (int t = 0; t < q->T; t++) {
            float *lg = logits + (size_t)(q->row0 + t) * V;
            const int32_t y = q->target[t];
            if (y < 0) {
                if (grad) memset(lg, 0, (size_t)V * sizeof(float));
                continue;
            }
            float m = lg[0];
            int am = 0;
            for (int j = 1; j < V; j++)
                if (lg[j] > m) { m = lg[j]; am = j; }
            double z = 0;
            for (int j = 0; j < V; j++) z += exp((double)(lg[j] - m));
            const double lse = m + log(z);
            L += lse - lg[y];
            good &= am == y;
            if (grad) {
                const float inv = 1.0f / (float)nt;
                for (int j = 0; j < V; j++) lg[j] = (float)exp((double)lg[j] - lse) * inv;
                lg[y] -= inv;
            }
        }
        if (loss) loss[si] = nt ? (float)(L / nt) : 0.0f;
        if (ok) ok[si] = good;
    }
}

/* A step's scratch beyond the layers' saved activations: the last block's
 * output, the final norm, the logits and the backward pass's gradients. */
typedef struct step_ws {
    float *XL, *rf, *xf, *logits, *gX, *gxn, *t1, *t2, *t3, *t4, *lt;
} step_ws;

/* Every sequence contiguous from row 0, within the positions and rows the
 * stack was sized for; *R: the rows in all. */
static int check_seqs(const tstack *s, const ts_seq *seqs, int n_seqs, int *R) {
    *R = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (seqs[i].row0 != *R || seqs[i].T <= 0 || seqs[i].n_prefix + seqs[i].T > s->max_pos)
            return mome_seterr_code(MOME_ERR_ARG, "train: sequence %d is malformed (rows %d+%d, prefix %d, max %d)", i,
                                    seqs[i].row0, seqs[i].T, seqs[i].n_prefix, s->max_pos);
        *R += seqs[i].T;
    }
    if (*R > s->max_rows) return mome_seterr_code(MOME_ERR_ARG, "train: %d rows exceed the workspace (%d)", *R, s->max_rows);
    return MOME_OK;
}

/* The workspace carved for R rows: each layer's saved activations, then the scratch. */
static void carve(const tstack *s, int R, lsave *sv, step_ws *w) {
    const int C = s->C, F = s->F, HD = s->H * s->D, KV = s->Hkv * s->D, NL = s->L - s->l0;
    int mx = F > HD ? F : HD;
    if (C > mx) mx = C;
    float *p = s->ws;
    for (int l = 0; l < NL; l++) {
        lsave *v = &sv[l];
        v->Xin = take(&p, (size_t)R * C); v->r1 = take(&p, R); v->xn1 = take(&p, (size_t)R * C);
        v->Q = take(&p, (size_t)R * HD); v->K = take(&p, (size_t)R * KV); v->V = take(&p, (size_t)R * KV);
        v->P = take(&p, (size_t)s->H * R * s->max_pos); v->att = take(&p, (size_t)R * HD);
        v->X1 = take(&p, (size_t)R * C); v->r2 = take(&p, R); v->xn2 = take(&p, (size_t)R * C);
        v->G = take(&p, (size_t)R * F); v->U = take(&p, (size_t)R * F); v->Hh = take(&p, (size_t)R * F);
        for (int j = 0; j < TS_NPROJ; j++) v->la[j] = s->lora ? take(&p, (size_t)R * s->lora_rank) : NULL;
    }
    w->XL = take(&p, (size_t)R * C); w->rf = take(&p, R); w->xf = take(&p, (size_t)R * C);
    w->logits = take(&p, (size_t)R * s->V);
    w->gX = take(&p, (size_t)R * C); w->gxn = take(&p, (size_t)R * C);
    w->t1 = take(&p, (size_t)R * mx); w->t2 = take(&p, (size_t)R * mx); w->t3 = take(&p, (size_t)R * mx);
    w->t4 = take(&p, (size_t)R * mx);
    w->lt = s->lora ? take(&p, (size_t)R * s->lora_rank) : NULL;
    MOME_ASSERT((size_t)(p - s->ws) <= s->ws_len);
}

/* Block l forward: v->Xin in, next out, every activation the backward
 * pass needs saved in v; tmp is (R x C) scratch. */
static void layer_fwd(const tstack *s, int l, lsave *v, const ts_seq *seqs, int n_seqs, int R, float *next, float *tmp) {
    const int C = s->C, F = s->F, H = s->H, Hkv = s->Hkv, D = s->D;
    const int HD = H * D, KV = Hkv * D, half = s->n_rot / 2;
    const ts_layer *w = &s->layers[l];
    ts_lora *lo = s->lora ? &s->lora[l * TS_NPROJ] : NULL;
    rms_fwd(R, C, v->Xin, w->attn_norm, s->eps, v->xn1, v->r1);
    proj_fwd(s, R, HD, C, v->xn1, w->wq, v->Q, lo ? &lo[TS_Q] : NULL, v->la[TS_Q]);
    proj_fwd(s, R, KV, C, v->xn1, w->wk, v->K, lo ? &lo[TS_K] : NULL, v->la[TS_K]);
    proj_fwd(s, R, KV, C, v->xn1, w->wv, v->V, lo ? &lo[TS_V] : NULL, v->la[TS_V]);
    add_bias_rows(R, HD, v->Q, w->bq);
    add_bias_rows(R, KV, v->K, w->bk);
    add_bias_rows(R, KV, v->V, w->bv);
    for (int si = 0; si < n_seqs; si++) {
        const ts_seq *q = &seqs[si];
        for (int t = 0; t < q->T; t++) {
            const int pos = q->n_prefix + t, row = q->row0 + t;
            rope(v->Q + (size_t)row * HD, H, D, s->n_rot, s->rope_neox, s->rope_cos + (size_t)pos * half,
                 s->rope_sin + (size_t)pos * half, 1.0f);
            rope(v->K + (size_t)row * KV, Hkv, D, s->n_rot, s->rope_neox, s->rope_cos + (size_t)pos * half,
                 s->rope_sin + (size_t)pos * half, 1.0f);
        }
    }
    attn_fwd(s, v, seqs, n_seqs, R, l);
    proj_fwd(s, R, C, HD, v->att, w->wo, tmp, lo ? &lo[TS_O] : NULL, v->la[TS_O]);
    for (size_t i = 0; i < (size_t)R * C; i++) v->X1[i] = v->Xin[i] + tmp[i];
    rms_fwd(R, C, v->X1, w->ffn_norm, s->eps, v->xn2, v->r2);
    proj_fwd(s, R, F, C, v->xn2, w->wg, v->G, lo ? &lo[TS_G] : NULL, v->la[TS_G]);
    proj_fwd(s, R, F, C, v->xn2, w->wu, v->U, lo ? &lo[TS_U] : NULL, v->la[TS_U]);
    for (size_t i = 0; i < (size_t)R * F; i++) {
        const float g = v->G[i];
        v->Hh[i] = g / (1.0f + expf(-g)) * v->U[i];
    }
    proj_fwd(s, R, C, F, v->Hh, w->wd, tmp, lo ? &lo[TS_D] : NULL, v->la[TS_D]);
    for (size_t i = 0; i < (size_t)R * C; i++) next[i] = v->X1[i] + tmp[i];
}

/* Block l backward: ws->gX holds the gradient of the block's output and
 * becomes that of its input; the weights' (full) or adapters' gradients
 * accumulate. */
static void layer_bwd(tstack *s, int l, const lsave *v, const ts_seq *seqs, int n_seqs, int R, step_ws *ws) {
    const int C = s->C, F = s->F, HD = s->H * s->D, KV = s->Hkv * s->D;
    const ts_layer *w = &s->layers[l];
    ts_layer *gw = s->grad ? &s->grad[l] : NULL;
    ts_lora *lo = s->lora ? &s->lora[l * TS_NPROJ] : NULL;
    float *gX = ws->gX, *gxn = ws->gxn, *t1 = ws->t1, *t2 = ws->t2, *t3 = ws->t3, *lt = ws->lt;
    /* FFN: next = X1 + Wd·Hh ; gX holds d next, becomes d X1 */
    proj_bwd(s, R, C, F, v->Hh, w->wd, gX, t1, 0.0f, gw ? gw->wd : NULL, lo ? &lo[TS_D] : NULL, v->la[TS_D],
             lt); /* t1 = dHh */
    for (size_t i = 0; i < (size_t)R * F; i++) {
        const float g = v->G[i], sg = 1.0f / (1.0f + expf(-g)), dh = t1[i];
        t2[i] = dh * g * sg;                                  /* dU */
        t3[i] = dh * v->U[i] * sg * (1.0f + g * (1.0f - sg)); /* dG */
    }
    proj_bwd(s, R, F, C, v->xn2, w->wg, t3, gxn, 0.0f, gw ? gw->wg : NULL, lo ? &lo[TS_G] : NULL, v->la[TS_G], lt);
    proj_bwd(s, R, F, C, v->xn2, w->wu, t2, gxn, 1.0f, gw ? gw->wu : NULL, lo ? &lo[TS_U] : NULL, v->la[TS_U], lt);
    rms_bwd(R, C, v->X1, w->ffn_norm, v->r2, gxn, gX, gw ? gw->ffn_norm : NULL); /* gX = d X1 */
    /* attention: X1 = Xin + Wo·att */
    proj_bwd(s, R, C, HD, v->att, w->wo, gX, t1, 0.0f, gw ? gw->wo : NULL, lo ? &lo[TS_O] : NULL, v->la[TS_O],
             lt); /* t1 = datt */
    float *dV = ws->t4;
    attn_bwd(s, v, seqs, n_seqs, R, l, t1, t2, t3, dV);
    if (gw) { /* t2, t3, dV are the gradients of the biased, not yet rotated projections */
        bias_bwd(R, HD, t2, gw->bq);
        bias_bwd(R, KV, t3, gw->bk);
        bias_bwd(R, KV, dV, gw->bv);
    }
    proj_bwd(s, R, HD, C, v->xn1, w->wq, t2, gxn, 0.0f, gw ? gw->wq : NULL, lo ? &lo[TS_Q] : NULL, v->la[TS_Q], lt);
    proj_bwd(s, R, KV, C, v->xn1, w->wk, t3, gxn, 1.0f, gw ? gw->wk : NULL, lo ? &lo[TS_K] : NULL, v->la[TS_K], lt);
    proj_bwd(s, R, KV, C, v->xn1, w->wv, dV, gxn, 1.0f, gw ? gw->wv : NULL, lo ? &lo[TS_V] : NULL, v->la[TS_V], lt);
    rms_bwd(R, C, v->Xin, w->attn_norm, v->r1, gxn, gX, gw ? gw->attn_norm : NULL); /* gX = d Xin */
}

int tstack_step(tstack *s, const ts_seq *seqs, int n_seqs, const float *X, float *dX, float *loss, int *ok, int grad) {
    int R, rc;
    if ((rc = check_seqs(s, seqs, n_seqs, &R))) return rc;
    const int C = s->C, V = s->V, NL = s->L - s->l0;
    lsave sv[NL > 0 ? NL : 1];
    step_ws ws;
    carve(s, R, sv, &ws);

    /* forward: the blocks, the final norm, the head */
    if (NL == 0) memcpy(ws.XL, X, (size_t)R * C * sizeof(float));
    else memcpy(sv[0].Xin, X, (size_t)R * C * sizeof(float));
    for (int l = 0; l < NL; l++) layer_fwd(s, l, &sv[l], seqs, n_seqs, R, l + 1 < NL ? sv[l + 1].Xin : ws.XL, ws.t1);
    rms_fwd(R, C, ws.XL, s->out_norm, s->eps, ws.xf, ws.rf);
    gemm_xwt(R, V, C, ws.xf, s->wout, ws.logits, 0.0f);

    loss_dlogits(seqs, n_seqs, V, ws.logits, loss, ok, grad);
    if (!grad) return MOME_OK;

    /* backward: the head, the final norm, the blocks in reverse */
    gemm_dyw(R, V, C, ws.logits, s->wout, ws.gxn, 0.0f); /* d xf */
    if (s->g_wout) /* the head's gradient dlogits^T xf */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, R, 1.0f, ws.logits, V, ws.xf, C, 1.0f, s->g_wout, C);
    memset(ws.gX, 0, (size_t)R * C * sizeof(float));
    rms_bwd(R, C, ws.XL, s->out_norm, ws.rf, ws.gxn, ws.gX, s->g_out_norm); /* d XL */
    for (int l = NL - 1; l >= 0; l--) layer_bwd(s, l, &sv[l], seqs, n_seqs, R, &ws);
    if (dX) memcpy(dX, ws.gX, (size_t)R * C * sizeof(float));
    return MOME_OK;
}

void tstack_embed(const tstack *s, const mome_model *m, const int32_t *ids, int n, float *X) {
    for (int i = 0; i < n; i++) {
        if (s->embd) {
            memcpy(X + (size_t)i * s->C, s->embd + (size_t)ids[i] * s->C, (size_t)s->C * sizeof(float));
            continue;
        }
        const qmat *e = &m->tok_embd;
        quant_dequantize_row(e->type, (const char *)e->data + (size_t)ids[i] * e->row_bytes, X + (size_t)i * s->C,
                             s->C);
    }
}

void tstack_embed_bwd(tstack *s, const int32_t *ids, int n, const float *dX) {
    if (!s->g_embd) return;
    for (int i = 0; i < n; i++) {
        float *g = s->g_embd + (size_t)ids[i] * s->C;
        const float *d = dX + (size_t)i * s->C;
        for (int c = 0; c < s->C; c++) g[c] += d[c];
    }
}
