/* forward.c - the llama forward pass on the CPU: context, KV cache, decode.
 *
 * One OpenMP parallel region per batch chunk. Inside it every thread walks
 * the same sequence of stages and takes its share of each: rows of a matrix
 * product (quant_matmul on [r0, r1)), tokens for norms and activation
 * quantization, (token, head) pairs for attention; `omp barrier` separates
 * the stages. This keeps fork/join cost to one per decode call, which
 * matters for 1-token generation where a layer is only ~10 us of work.
 *
 * Per block: x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x));
 *            x += Wdown·(silu(Wgate·n(x)) * Wup·n(x)), n = RMSNorm.
 * The residual add is fused into the next norm. Q/K/V biases are added
 * where the architecture has them (model.c's tables). RoPE is llama's
 * "normal" mode (adjacent pairs) or NEOX (halves) as the architecture says,
 * with cos/sin tables computed like ggml (theta
 * multiplied by base^(-2/n_rot) step by step, in float). The KV cache is f32,
 * laid out (L, n_ctx, Hkv*D), so one position of one layer is contiguous.
 * Activations are quantized once per matrix input to the weight's
 * vec_dot type (as llama.cpp does), then integer dot products run.
 *
 * A pass is a list of rows (fwd_row: a context and a position). A prompt
 * chunk is consecutive positions of one context; mome_decode_batch is one
 * position of each of several contexts (continuous batching in a server),
 * so the weights are read once for all of them. Such a row is computed as
 * one-token decoding computes it (one-token attention order,
 * quant_matmul_solo), so its bits do not depend on its batch.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "memory.h"
#include "model.h"
#include "quant_impl.h"
#include "util.h"

/* One row of a forward pass: a token of one sequence. A single-context
 * decode has rows (c, pos0 + t); a batched decode has one row per context at
 * its n_past. Buffers for activations and logits are the pass's workspace
 * context's; the K/V cache, rope tables, attention scratch, recorded tokens
 * and memory routing state are the row's own context's. */
typedef struct fwd_row {
    mome_ctx *c;      /* the sequence */
    int32_t pos;      /* its position; the token is c->tokens[pos] */
    int32_t i;        /* index among this sequence's rows in the pass (capture row) */
    int solo;         /* the only row of its sequence: attention as for one token */
} fwd_row;

mome_ctx_params mome_ctx_default_params(void) {
    mome_ctx_params p = {0};
    return p;
}

static void free_bufs(mome_ctx *c) {
    free(c->k_cache); free(c->v_cache); free(c->x); free(c->xn); free(c->q); free(c->k);
    free(c->v); free(c->att); free(c->gate); free(c->up); free(c->scores); free(c->aq);
    free(c->rope_cos); free(c->rope_sin); free(c->logits); free(c->wrow);
    free(c->mpos); free(c->mrows); free(c->vrows); free(c->mscratch); free(c->tokens); free(c->rows);
}

void mome_ctx_free(mome_ctx *c) {
    if (!c) return;
    if (c->qctx) free(c->qctx->capture);
    mome_ctx_free(c->qctx);
    free_bufs(c);
    free(c);
}

static void rope_tables(mome_ctx *c) {
    const llama_hparams *hp = &c->m->hp;
    const int half = hp->n_rot / 2;
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    const float freq_scale = 1.0f / hp->rope_scale;
    /* ggml_rope_cache_init: theta starts at the position, is multiplied by
     * theta_scale step by step, and scaled by freq_scale when used */
    for (int32_t p = 0; p < c->n_ctx; p++) {
        float theta = (float)p;
        for (int i = 0; i < half; i++) {
            c->rope_cos[(size_t)p * half + i] = cosf(freq_scale * theta);
            c->rope_sin[(size_t)p * half + i] = sinf(freq_scale * theta);
            theta *= theta_scale;
        }
    }
}

int mome_ctx_init(mome_model *m, const mome_ctx_params *p, mome_ctx **out) {
    *out = NULL;
    const llama_hparams *hp = &m->hp;
    if (!m->arch)
        return mome_seterr_code(MOME_ERR_ARG, "%s: the model was loaded without its weights (vocab_only)", m->path);
    mome_ctx *c = calloc(1, sizeof *c);
    if (!c) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx = (p && p->n_ctx > 0) ? p->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    c->n_batch = (p && p->n_batch > 0) ? p->n_batch : 512;
    if (c->n_batch > c->n_ctx) c->n_batch = c->n_ctx;
    c->n_threads = (p && p->n_threads > 0) ? p->n_threads : m->n_threads;
    if (c->n_ctx > (1 << 22)) {
        int32_t nc = c->n_ctx;
        free(c);
        return mome_seterr_code(MOME_ERR_ARG, "context of %d tokens is too large", (int)nc);
    }
    const size_t C = (size_t)hp->n_embd, F = (size_t)hp->n_ff, HD = (size_t)hp->n_head * hp->head_dim;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim, T = (size_t)c->n_batch, L = (size_t)hp->n_layer;
    size_t maxin = C > F ? C : F;
    if (HD > maxin) maxin = HD;
    c->aq_row = maxin * sizeof(float) + 64;
    /* calloc: untouched cache pages cost no RSS until a position is used */
    c->k_cache = calloc(L * (size_t)c->n_ctx * KV, sizeof(float));
    c->v_cache = calloc(L * (size_t)c->n_ctx * KV, sizeof(float));
    c->x = mome_aligned_alloc(T * C * sizeof(float));
    c->xn = mome_aligned_alloc(T * (C > HD ? C : HD) * sizeof(float));
    c->q = mome_aligned_alloc(T * HD * sizeof(float));
    c->k = mome_aligned_alloc(T * KV * sizeof(float));
    c->v = mome_aligned_alloc(T * KV * sizeof(float));
    c->att = mome_aligned_alloc(T * HD * sizeof(float));
    c->gate = mome_aligned_alloc(T * F * sizeof(float));
    c->up = mome_aligned_alloc(T * F * sizeof(float));
    c->scores = mome_aligned_alloc((size_t)c->n_threads * (size_t)c->n_ctx * sizeof(float));
    c->aq = mome_aligned_alloc(T * c->aq_row);
    c->f32_matmul = p ? p->f32_matmul : 0;
    c->capture_layer = -1;
    c->stop_layer = -1;
    c->wrow_len = maxin;
    c->wrow = mome_aligned_alloc((size_t)c->n_threads * maxin * sizeof(float));
    c->rope_cos = mome_aligned_alloc((size_t)c->n_ctx * (size_t)(hp->n_rot / 2) * sizeof(float));
    c->rope_sin = mome_aligned_alloc((size_t)c->n_ctx * (size_t)(hp->n_rot / 2) * sizeof(float));
    c->n_logits_cap = 1;
    c->logits = mome_aligned_alloc((size_t)hp->n_vocab * sizeof(float));
    c->tokens = mome_malloc((size_t)c->n_ctx * sizeof(int32_t));
    c->rows = mome_malloc(T * sizeof(fwd_row));
    c->dec_pos = c->dec_fact = -1;
    c->dec_cand = MEM_CAND_NONE;
    if (!c->k_cache || !c->v_cache || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->gate ||
        !c->up || !c->scores || !c->aq || !c->rope_cos || !c->rope_sin || !c->logits || !c->wrow || !c->tokens ||
        !c->rows) {
        int32_t nc = c->n_ctx;
        mome_ctx_free(c);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory allocating a context of %d tokens", (int)nc);
    }
    rope_tables(c);
    *out = c;
    return MOME_OK;
}

int32_t mome_ctx_n_past(const mome_ctx *c) { return c->n_past; }

int ctx_shared_prefix_any(const mome_ctx *c, const int32_t *ids, int n) {
    /* at least two tokens are left to decode: one token alone takes the
     * one-token attention order, which a prompt decoded from scratch does
     * not, so its bits would depend on what the context held before */
    int k = 0;
    while (k < c->n_past && k < n - 2 && c->tokens[k] == ids[k]) k++;
    return k;
}

int mome_ctx_shared_prefix(const mome_ctx *c, const int32_t *ids, int n) {
    /* where a row's bits depend on the rows beside it in a matrix call
     * (Qwen2.5's Q6_K, measured: half of 8 answers changed between eval
     * --parallel 1 and 16), a reused head would make an answer depend on the
     * question asked before it: decode from scratch */
    return c->m->chunk_invariant ? ctx_shared_prefix_any(c, ids, n) : 0;
}

int mome_ctx_set_memory(mome_ctx *c, mome_memory *mem) {
    if (mem) {
        const llama_hparams *hp = &c->m->hp;
        if (mem->n_embd != hp->n_embd || mem->n_layer != hp->n_layer || mem->n_vocab != hp->n_vocab)
            return mome_seterr_code(MOME_ERR_ARG, "memory does not fit this model (n_embd %d/%d, n_layer %d/%d)",
                                    mem->n_embd, hp->n_embd, mem->n_layer, hp->n_layer);
        if ((mem->mk.n_head == 0 || !mem->blank || !mem->content) && mem_bind_model(mem, c->m)) return MOME_ERR;
        if (!c->mpos) {
            c->mpos = mome_malloc((size_t)c->n_ctx * sizeof(mem_pos));
            c->mrows = mome_malloc((size_t)c->n_ctx * hp->n_embd * sizeof(float));
            c->mscratch = mome_malloc((3 * (size_t)hp->n_embd + MEM_SELECT_SCRATCH(hp->n_embd)) * sizeof(float));
            if (!c->mpos || !c->mrows || !c->mscratch) {
                free(c->mpos); free(c->mrows); free(c->mscratch);
                c->mpos = NULL; c->mrows = NULL; c->mscratch = NULL;
                return MOME_ERR_NOMEM;
            }
        }
        if (mem != c->mem_last) c->mem_valid = 0;
        c->mem_last = mem;
    }
    c->mem = mem;
    return MOME_OK;
}

int mome_ctx_memory_candidate(const mome_ctx *c, int32_t *best, float *gate, float *cover, int *subject) {
    if (best) *best = c->dec_cand.best;
    if (gate) *gate = c->dec_cand.gate;
    if (cover) *cover = c->dec_cand.cover;
    if (subject) *subject = c->dec_cand.subject;
    return c->dec_pos >= 0;
}

int mome_ctx_memory_decision(const mome_ctx *c, int32_t *pos, int32_t *fact, float *score) {
    if (pos) *pos = c->dec_pos;
    if (fact) *fact = c->dec_fact;
    if (score) *score = c->dec_cand.score;
    return c->dec_pos >= 0;
}

/* The memory at the input of its value block for one row x of c at pos
 * (rows of a context go in token order): the routing state of the
 * position, the selection at a decision row, and the selected expert's
 * value. */
static void memory_row(mome_ctx *c, int32_t pos, float *x) {
    const mome_memory *mem = c->mem;
    const int C = mem->n_embd;
    float *pool = c->mscratch, *last = pool + C, *ver = last + C, *q = ver + C;
    mem_pos *ps = &c->mpos[pos];
    if (mem_pos_next(mem, c->mpos, c->tokens, pos, ps)) {
        /* keys: the mean x̂ of the user's content at the key block, and
         * x̂ of this row */
        for (int i = 0; i < C; i++) pool[i] = 0.0f;
        int np = 0;
        for (int32_t p = ps->span0; p < ps->span1; p++) {
            if (mem->blank[c->tokens[p]] && ps->span1 - ps->span0 > 1) continue; /* extra spaces */
            mem_rms_normalize(c->mrows + (size_t)p * C, last, C);
            for (int i = 0; i < C; i++) pool[i] += last[i];
            np++;
        }
        const float inv = np ? 1.0f / (float)np : 0.0f;
        for (int i = 0; i < C; i++) pool[i] *= inv;
        mem_rms_normalize(x, last, C);
        /* question_states prepared it (not with selection off: the tuner's key passes need no check) */
        const int verify = mem->ver_layer >= 0 && !c->mem_route_off;
        if (verify) mem_rms_normalize(c->vrows + (size_t)pos * C, ver, C);
        mem_mix mix;
        const mem_query qt = {c->mrows + (size_t)ps->span0 * C, c->tokens + ps->span0, ps->span1 - ps->span0, NULL,
                              verify ? ver : NULL, verify && mem->ver_pool ? c->vrows + (size_t)ps->span0 * C : NULL};
        const int n = mem_mix_select(mem, pool, last, &qt, -1, q, &mix, &c->dec_cand);
        c->dec_pos = pos;
        if (c->dec_keys) {
            memcpy(c->dec_keys, pool, (size_t)C * sizeof(float));
            memcpy(c->dec_keys + C, last, (size_t)C * sizeof(float));
        }
        if (n > 0 && !c->mem_route_off) {
            ps->mix = mix;
            ps->row = 0;
            c->dec_fact = mix.fact[0];
        } else
            c->dec_fact = -1;
    }
    if (ps->mix.n > 0) mem_apply_mix(mem, &ps->mix, ps->row, x);
}

int mome_ctx_memory_mixture(const mome_ctx *c, int32_t *facts, float *weights, int cap) {
    if (c->dec_pos < 0 || c->dec_fact < 0 || !c->mpos) return 0;
    const mem_mix *mx = &c->mpos[c->dec_pos].mix;
    float a[MEM_MAX_K];
    mem_mix_weights(mx->e, mx->n, a);
    for (int i = 0; i < mx->n && i < cap; i++) {
        if (facts) facts[i] = mx->fact[i];
        if (weights) weights[i] = a[i];
    }
    return mx->n;
}

const float *mome_get_logits(const mome_ctx *c, int i) {
    if (c->n_logits == 0) return NULL;
    if (i < 0) i = c->n_logits - 1;
    if (i >= c->n_logits) return NULL;
    return c->logits + (size_t)i * c->m->hp.n_vocab;
}

/* Splits [0, n) into nth parts; part ith is [*a, *b). Rows go in multiples
 * of 16 so SIMD kernels that tile rows see whole tiles and packed matrices
 * whole row groups (QUANT_PACK_ROWS). */
static void split(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    int64_t per = (n + nth - 1) / nth;
    per = (per + 15) & ~(int64_t)15; /* 16: the packed layouts' row groups */
    *a = per * ith;
    *b = *a + per;
    if (*a > n) *a = n;
    if (*b > n) *b = n;
}

/* ggml_compute_forward_rms_norm_f32 (+ the weight multiply): squares are
 * rounded to float, summed in double, mean = sum/n rounded to float; then
 * y = (x * scale) * w. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float mean = (float)(ss / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* Activation row t of the next matrix input: quantized to the vec-dot type
 * of wt, or copied as f32 in f32 mode. */
static void qact(const mome_ctx *c, enum mome_dtype wt, const float *x, int64_t t, int64_t n) {
    char *dst = (char *)c->aq + (size_t)t * c->aq_row;
    if (c->f32_matmul) memcpy(dst, x, (size_t)n * sizeof(float));
    else quant_quantize_act(wt, x, dst, n);
}

/* Y[t*ldy + r] = W row r · activation row t, rows [r0, r1), tokens [0, T). */
static void matmul_rows(const mome_ctx *c, enum mome_dtype wt, const void *W, size_t row_bytes, int64_t n, int T,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1, int ith) {
    if (!c->f32_matmul) {
        /* the rows of a batched decode (c->rows, each its sequence's only
         * row) get one-token bits */
        if (c->rows[0].solo) quant_matmul_solo(wt, n, W, row_bytes, c->aq, c->aq_row, T, Y, ldy, r0, r1);
        else quant_matmul(wt, n, W, row_bytes, c->aq, c->aq_row, T, Y, ldy, r0, r1);
        return;
    }
    float *w = c->wrow + (size_t)ith * c->wrow_len;
    for (int64_t r = r0; r < r1; r++) {
        quant_dequantize_row(wt, (const char *)W + (size_t)r * row_bytes, w, n);
        for (int t = 0; t < T; t++) {
            const float *a = (const float *)((const char *)c->aq + (size_t)t * c->aq_row);
            float s = 0.0f;
            for (int64_t i = 0; i < n; i++) s += w[i] * a[i];
            Y[(int64_t)t * ldy + r] = s;
        }
    }
}

/* Y[t*ldy + r] = W row r · activation row t for rows [r0, r1) of a model
 * matrix: its packed copy when it has one (same bits) */
static void matmul_qmat(const mome_ctx *c, const qmat *W, int T, float *Y, int64_t ldy, int64_t r0, int64_t r1,
                        int ith) {
    if (W->packed && !c->f32_matmul)
        quant_matmul_packed(W->type, W->n_in, W->packed, c->aq, c->aq_row, T, Y, ldy, r0, r1, c->rows[0].solo);
    else
        matmul_rows(c, W->type, W->data, W->row_bytes, W->n_in, T, Y, ldy, r0, r1, ith);
}

/* Y(T, W.n_out) = W · A for this thread's rows; A already prepared by qact. */
static void mm(const qmat *W, const mome_ctx *c, int T, float *Y, int ith, int nth) {
    int64_t r0, r1;
    split(W->n_out, ith, nth, &r0, &r1);
    if (r0 >= r1) return;
    matmul_qmat(c, W, T, Y, W->n_out, r0, r1, ith);
}

/* Quantize rows [t0, t1) of X (row stride n) for weight type wt into aq. */
static void quant_rows(mome_ctx *c, enum mome_dtype wt, const float *X, int64_t n, int t0, int t1) {
    for (int t = t0; t < t1; t++)
        qact(c, wt, X + (size_t)t * n, t, n);
}

/* Causal GQA attention, in llama.cpp's order of operations (f32 cache, no
 * flash attention): kq = ggml_vec_dot_f32(k, q) (qm_dot_f32), scaled,
 * softmax with ggml's exp and a double sum, weights multiplied by
 * (float)(1/sum); kqv = V^T kq, which llama.cpp runs with llamafile's
 * tinyBLAS for batches (per-lane chains of period 16) and with
 * ggml_vec_dot_f32 for one token (period 64). */
#define ATT_MAX_D 256
static void attention(mome_ctx *w, const fwd_row *rows, int l, int T, int ith, int nth) {
    const llama_hparams *hp = &w->m->hp;
    const int H = hp->n_head, D = hp->head_dim, G = hp->n_head / hp->n_head_kv;
    const size_t KV = (size_t)hp->n_head_kv * D;
    const float scale = 1.0f / sqrtf((float)D);
    float acc[64 * ATT_MAX_D];
    for (int64_t job = ith; job < (int64_t)T * H; job += nth) {
        const int t = (int)(job / H), h = (int)(job % H), kvh = h / G;
        const mome_ctx *c = rows[t].c;
        /* a sequence's only row takes llama.cpp's one-token path */
        const int period = rows[t].solo ? 64 : 16;
        float *sc = c->scores + (size_t)ith * c->n_ctx;
        const float *kc = c->k_cache + (size_t)l * c->n_ctx * KV;
        const float *vc = c->v_cache + (size_t)l * c->n_ctx * KV;
        const int32_t np = rows[t].pos + 1; /* causal: positions 0..pos */
        const float *q = w->q + (size_t)t * H * D + (size_t)h * D;
        float mx = -INFINITY;
        for (int32_t p = 0; p < np; p++) {
            const float s = qm_dot_f32(D, kc + (size_t)p * KV + (size_t)kvh * D, q) * scale;
            sc[p] = s;
            if (s > mx) mx = s;
        }
        const double sum = qm_softmax_exp(np, sc, mx);
        const float inv = (float)(1.0 / sum);
        for (int32_t p = 0; p < np; p++) sc[p] *= inv;
        float *o = w->att + (size_t)t * H * D + (size_t)h * D;
        if (D <= ATT_MAX_D) {
            qm_kqv(np, sc, vc + (size_t)kvh * D, KV, D, period, o, acc);
        } else {
            for (int d = 0; d < D; d++) o[d] = 0.0f;
            for (int32_t p = 0; p < np; p++) {
                const float *v = vc + (size_t)p * KV + (size_t)kvh * D;
                for (int d = 0; d < D; d++) o[d] += sc[p] * v[d];
            }
        }
    }
}

/* RoPE on the first n_rot dims of each of nh heads, in the architecture's
 * mode (adjacent pairs, or NEOX halves). */
static void rope_row(float *x, int nh, int D, int n_rot, int neox, const float *cs, const float *sn) {
    for (int h = 0; h < nh; h++) {
        if (neox) qm_rope_neox(n_rot / 2, x + (size_t)h * D, cs, sn);
        else qm_rope(n_rot / 2, x + (size_t)h * D, cs, sn);
    }
}

/* y[i] += b[i] (the Q/K/V biases some architectures have; NULL: none) */
static void add_bias(float *y, const float *b, int64_t n) {
    if (b)
        for (int64_t i = 0; i < n; i++) y[i] += b[i];
}

/* One pass over the T <= c->n_batch rows in c->rows (one token each, of c
 * or of other contexts of the same model; see fwd_row), with c's buffers.
 * The rows of one context are consecutive positions in order. Logit rows
 * go to c->logits + out_row * V (logits_mode 2: all T rows, 1: only the
 * last, 0: none). Every row's arithmetic is independent of the other rows
 * (quant_matmul gives each activation row the same bits whatever their
 * number), so a row's results do not depend on what shares its pass. */
static void forward_chunk(mome_ctx *c, int T, int logits_mode, int out_row) {
    const fwd_row *rows = c->rows;
    const int all_logits = logits_mode == 2;
    const mome_model *m = c->m;
    const llama_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, F = hp->n_ff, D = hp->head_dim;
    const int64_t HD = (int64_t)hp->n_head * D, KV = (int64_t)hp->n_head_kv * D;
    const int half = hp->n_rot / 2;
    const float eps = hp->rms_eps;

#pragma omp parallel num_threads(c->n_threads)
    {
        const int ith = omp_get_thread_num(), nth = omp_get_num_threads();
        int64_t ta, tb;
        /* tokens split evenly, not in fours */
        ta = (int64_t)T * ith / nth;
        tb = (int64_t)T * (ith + 1) / nth;

        for (int64_t t = ta; t < tb; t++) {
            const int32_t tok = rows[t].c->tokens[rows[t].pos];
            quant_dequantize_row(m->tok_embd.type, (const char *)m->tok_embd.data + (size_t)tok * m->tok_embd.row_bytes,
                                 c->x + t * C, C);
        }

        for (int l = 0; l < hp->n_layer; l++) {
            const llama_layer *L = &m->layers[l];
            for (int64_t t = ta; t < tb; t++) {
                if (l > 0) {
                    float *x = c->x + t * C, *d = c->xn + t * C;
                    for (int64_t i = 0; i < C; i++) x[i] += d[i];
                }
                mome_ctx *rc = rows[t].c;
                if (l == rc->capture_layer && rc->capture)
                    memcpy(rc->capture + (size_t)rows[t].i * C, c->x + t * C, (size_t)C * sizeof(float));
                if (rc->mem && l == rc->mem->key_layer)
                    memcpy(rc->mrows + (size_t)rows[t].pos * C, c->x + t * C, (size_t)C * sizeof(float));
                if (rc->mem && l == rc->mem->ver_layer && rc->vrows && isnan(rc->vrows[(size_t)rows[t].pos * C]))
                    memcpy(rc->vrows + (size_t)rows[t].pos * C, c->x + t * C, (size_t)C * sizeof(float)); /* read in place */
            }
            if (l == c->stop_layer) break; /* every thread: the question-alone pass ends here */
            int value_block = 0;
            for (int t = 0; t < T && !value_block; t++)
                value_block = rows[t].c->mem && l == rows[t].c->mem->value_layer;
            if (value_block) {
                /* routing runs in token order on one thread; it is a few
                 * vector operations per token and one search per question */
#pragma omp barrier
                if (ith == 0)
                    for (int t = 0; t < T; t++) {
                        mome_ctx *rc = rows[t].c;
                        if (rc->mem && l == rc->mem->value_layer) memory_row(rc, rows[t].pos, c->x + (size_t)t * C);
                    }
#pragma omp barrier
            }
            for (int64_t t = ta; t < tb; t++) rmsnorm(c->xn + t * C, c->x + t * C, L->attn_norm, C, eps);
            for (int64_t t = ta; t < tb; t++) qact(c, L->wq.type, c->xn + t * C, t, C);
#pragma omp barrier
            mm(&L->wq, c, T, c->q, ith, nth);
            if (quant_get_traits(L->wk.type)->vec_dot_type != quant_get_traits(L->wq.type)->vec_dot_type) {
                /* rare: mixed types within a block need their own activation format */
#pragma omp barrier
                if (ith == 0) quant_rows(c, L->wk.type, c->xn, C, 0, T);
#pragma omp barrier
            }
            mm(&L->wk, c, T, c->k, ith, nth);
            if (quant_get_traits(L->wv.type)->vec_dot_type != quant_get_traits(L->wk.type)->vec_dot_type) {
#pragma omp barrier
                if (ith == 0) quant_rows(c, L->wv.type, c->xn, C, 0, T);
#pragma omp barrier
            }
            mm(&L->wv, c, T, c->v, ith, nth);
#pragma omp barrier
            for (int64_t t = ta; t < tb; t++) {
                mome_ctx *rc = rows[t].c;
                const size_t p = (size_t)rows[t].pos;
                const float *cs = rc->rope_cos + p * half, *sn = rc->rope_sin + p * half;
                add_bias(c->q + t * HD, L->bq, HD);
                add_bias(c->k + t * KV, L->bk, KV);
                add_bias(c->v + t * KV, L->bv, KV);
                rope_row(c->q + t * HD, hp->n_head, (int)D, hp->n_rot, hp->rope_neox, cs, sn);
                rope_row(c->k + t * KV, hp->n_head_kv, (int)D, hp->n_rot, hp->rope_neox, cs, sn);
                const size_t off = ((size_t)l * rc->n_ctx + p) * (size_t)KV;
                memcpy(rc->k_cache + off, c->k + t * KV, (size_t)KV * sizeof(float));
                memcpy(rc->v_cache + off, c->v + t * KV, (size_t)KV * sizeof(float));
            }
#pragma omp barrier
            attention(c, rows, l, T, ith, nth);
#pragma omp barrier
            for (int64_t t = ta; t < tb; t++) qact(c, L->wo.type, c->att + t * HD, t, HD);
#pragma omp barrier
            mm(&L->wo, c, T, c->xn, ith, nth);
#pragma omp barrier
            for (int64_t t = ta; t < tb; t++) {
                float *x = c->x + t * C, *d = c->xn + t * C;
                for (int64_t i = 0; i < C; i++) x[i] += d[i];
                rmsnorm(c->xn + t * C, x, L->ffn_norm, C, eps);
                qact(c, L->w_gate.type, c->xn + t * C, t, C);
            }
#pragma omp barrier
            mm(&L->w_gate, c, T, c->gate, ith, nth);
            if (quant_get_traits(L->w_up.type)->vec_dot_type != quant_get_traits(L->w_gate.type)->vec_dot_type) {
#pragma omp barrier
                if (ith == 0) quant_rows(c, L->w_up.type, c->xn, C, 0, T);
#pragma omp barrier
            }
            mm(&L->w_up, c, T, c->up, ith, nth);
#pragma omp barrier
            for (int64_t t = ta; t < tb; t++) {
                float *g = c->gate + t * F, *u = c->up + t * F;
                qm_swiglu(F, g, u);
                qact(c, L->w_down.type, g, t, F);
            }
#pragma omp barrier
            mm(&L->w_down, c, T, c->xn, ith, nth);
#pragma omp barrier
        }
        /* final residual add, norm, output head */
        const int t_first = all_logits ? 0 : T - 1;
        for (int64_t t = ta; t < tb; t++) {
            float *x = c->x + t * C, *d = c->xn + t * C;
            for (int64_t i = 0; i < C; i++) x[i] += d[i];
            if (logits_mode && t >= t_first) {
                rmsnorm(d, x, m->output_norm, C, eps);
                qact(c, m->output.type, d, t - t_first, C);
            }
        }
#pragma omp barrier
        if (logits_mode) {
            int64_t r0, r1;
            const int64_t V = hp->n_vocab;
            split(V, ith, nth, &r0, &r1);
            if (r0 < r1)
                matmul_qmat(c, &m->output, T - t_first, c->logits + (size_t)out_row * V, V, r0, r1, ith);
        }
    }
}

/* The cached tokens [pos0, pos0 + n) in chunks of n_batch. logits_mode as
 * forward_chunk's for the last chunk (2: every row, 1: the last row, 0: none). */
static void decode_range(mome_ctx *c, int32_t pos0, int n, int logits_mode) {
    c->n_past = pos0;
    for (int done = 0; done < n;) {
        const int T = n - done < c->n_batch ? n - done : c->n_batch, last = done + T == n;
        for (int t = 0; t < T; t++) {
            c->rows[t].c = c;
            c->rows[t].pos = pos0 + done + t;
            c->rows[t].i = t;
            c->rows[t].solo = T == 1;
        }
        if (logits_mode == 2) forward_chunk(c, T, 2, done);
        else forward_chunk(c, T, last ? logits_mode : 0, 0);
        done += T;
        c->n_past = pos0 + done;
    }
}

/* The relation check's state of a question (memory.h): x̂ at the input of
 * the memory's block ver_layer at the decision row of the question's content
 * tokens asked alone, as a fresh one-message chat (the template's user-open
 * marks, the content, the header; or inside the memory's own wrapper, with
 * --verify-key meaning), so that a system prompt or earlier turns
 * leave it unchanged: measured on 100 zsRE facts with the state read in
 * place, 37% of questions behind an unseen system prompt passed the check
 * at the threshold that turns away 98.5% of other questions about the same
 * subject. Runs blocks 0..ver_layer - 1 over at most MEM_QUESTION_TOKENS
 * content tokens (the last ones) in a context of its own, from scratch (a
 * wrapper's opening kept, below), so that the tuner and the engine get the
 * same bits for the same question. */
static int question_pass(mome_ctx *c, const int32_t *content, int n, float *raw, float *rows) {
    const mome_memory *mem = c->mem;
    if (!mem || mem->ver_layer < 0 || n < 1) return mome_seterr_code(MOME_ERR_ARG, "question state: no relation check or no question");
    const mem_marks *mk = &mem->mk;
    const int wrap = mem->n_ver_open > 0; /* the check's own text around the question, or the chat's marks */
    const int32_t *open = wrap ? mem->ver_open : mk->user_open, *close = wrap ? mem->ver_close : mk->head;
    const int n_open = wrap ? mem->n_ver_open : mk->n_user_open, n_close = wrap ? mem->n_ver_close : mk->n_head;
    const int C = c->m->hp.n_embd, cap = MEM_QUESTION_TOKENS + 2 * MEM_MAX_MARK;
    if (!c->qctx) {
        mome_ctx_params qp = {cap, cap, c->n_threads, c->f32_matmul};
        int rc = mome_ctx_init(c->m, &qp, &c->qctx);
        if (rc) return rc;
        if (!(c->qctx->capture = mome_malloc((size_t)cap * C * sizeof(float)))) return MOME_ERR_NOMEM;
    }
    mome_ctx *q = c->qctx;
    if (n > MEM_QUESTION_TOKENS) {
        content += n - MEM_QUESTION_TOKENS;
        n = MEM_QUESTION_TOKENS;
    }
    /* A wrapper's opening is the same tokens at the same positions for every
     * question: it is decoded as a chunk of its own, always (so its K/V and
     * the question's rows have the same bits whether or not they were kept),
     * once per context, wrapper and block. The chat's marks are not: their
     * state must equal the in-place read of a whole prompt. */
    const int kept = wrap && q->q_open_n == n_open && q->q_open_layer == mem->ver_layer &&
                     memcmp(q->tokens, open, (size_t)n_open * sizeof(int32_t)) == 0;
    q->capture_layer = q->stop_layer = mem->ver_layer;
    if (!kept) {
        memcpy(q->tokens, open, (size_t)n_open * sizeof(int32_t));
        if (wrap) decode_range(q, 0, n_open, 0);
        q->q_open_n = wrap ? n_open : 0; /* the chat's marks overwrite a kept wrapper */
        q->q_open_layer = mem->ver_layer;
    }
    const int from = wrap ? n_open : 0; /* the first token this pass decodes */
    int len = n_open;
    memcpy(q->tokens + len, content, (size_t)n * sizeof(int32_t));
    len += n;
    memcpy(q->tokens + len, close, (size_t)n_close * sizeof(int32_t));
    len += n_close;
    decode_range(q, from, len - from, 0);
    q->n_past = 0; /* its K/V above ver_layer were never written */
    memcpy(raw, q->capture + (size_t)(len - 1 - from) * C, (size_t)C * sizeof(float));
    if (rows) /* the content tokens' (the last MEM_QUESTION_TOKENS) */
        memcpy(rows, q->capture + (size_t)(n_open - from) * C, (size_t)n * C * sizeof(float));
    return MOME_OK;
}

int ctx_question_state(mome_ctx *c, const int32_t *content, int n, float *xhat) {
    const int rc = question_pass(c, content, n, xhat, NULL);
    if (!rc) mem_rms_normalize(xhat, xhat, c->m->hp.n_embd);
    return rc;
}

int ctx_question_rows(mome_ctx *c, const int32_t *content, int n, float *rows) {
    float *last = mome_malloc((size_t)c->m->hp.n_embd * sizeof(float));
    if (!last) return MOME_ERR_NOMEM;
    const int rc = question_pass(c, content, n, last, rows);
    free(last);
    return rc;
}

/* The relation check's states (raw x) of the decision rows among the cached
 * tokens [pos0, pos0 + n), before the pass that decides there (memory_row
 * reads them). A question that opens the context (nothing before its user
 * turn) is the question alone already (unless the memory reads it in a
 * wrapper of its own, --verify-key meaning): its state is read in place by that
 * pass (marked NAN here; the same tokens from the same start give the same
 * bits), which saves the second pass for the common case (eval of 100 zsRE
 * facts without contexts, one session: 72.5 s without the check, 86.6 s
 * with it, 99.9 s with a second pass for every question; docs/BENCHMARKS.md).
 * The routing states it steps through are written again, in order, by
 * memory_row. */
static int question_states(mome_ctx *c, int32_t pos0, int n) {
    const mome_memory *mem = c->mem;
    if (!mem || mem->ver_layer < 0 || c->mem_route_off) return MOME_OK;
    const int C = c->m->hp.n_embd;
    if (!c->vrows && !(c->vrows = mome_malloc((size_t)c->n_ctx * C * sizeof(float)))) return MOME_ERR_NOMEM;
    for (int32_t p = pos0; p < pos0 + n; p++) {
        mem_pos *ps = &c->mpos[p];
        if (!mem_pos_next(mem, c->mpos, c->tokens, p, ps)) continue;
        const int nu = mem->mk.n_user_open, nq = ps->span1 - ps->span0;
        int opens = ps->span0 == nu && nq <= MEM_QUESTION_TOKENS && (!mem->ver_pool || ps->span0 >= pos0) && mem->n_ver_open == 0;
        for (int i = 0; i < nu && opens; i++) opens = c->tokens[i] == mem->mk.user_open[i];
        if (opens) {
            c->vrows[(size_t)p * C] = NAN;
            for (int32_t t = ps->span0; mem->ver_pool && t < ps->span1; t++) c->vrows[(size_t)t * C] = NAN;
        } else {
            const int kept = nq < MEM_QUESTION_TOKENS ? nq : MEM_QUESTION_TOKENS; /* question_pass reads the last ones */
            float *rows = mem->ver_pool ? c->vrows + (size_t)(ps->span1 - kept) * C : NULL;
            const int rc = question_pass(c, c->tokens + ps->span0, nq, c->vrows + (size_t)p * C, rows);
            if (rc) return rc;
        }
    }
    return MOME_OK;
}

int mome_decode(mome_ctx *c, const int32_t *tokens, int n, int32_t pos0, int all_logits) {
    const llama_hparams *hp = &c->m->hp;
    if (n <= 0) return mome_seterr_code(MOME_ERR_ARG, "mome_decode: no tokens");
    if (pos0 < 0 || pos0 > c->n_past)
        return mome_seterr_code(MOME_ERR_ARG, "mome_decode: position %d is past the %d cached tokens", pos0, c->n_past);
    if ((int64_t)pos0 + n > c->n_ctx)
        return mome_seterr_code(MOME_ERR_ARG, "context full: %d + %d tokens exceed the context size %d (use a larger --ctx)",
                                pos0, n, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return mome_seterr_code(MOME_ERR_ARG, "token id %d at index %d is out of range [0, %d)", tokens[i], i,
                                    hp->n_vocab);
    int32_t rows = all_logits ? n : 1;
    if (rows > c->n_logits_cap) {
        float *nl = mome_aligned_alloc((size_t)rows * hp->n_vocab * sizeof(float));
        if (!nl) return MOME_ERR_NOMEM;
        free(c->logits);
        c->logits = nl;
        c->n_logits_cap = rows;
    }
    c->dec_pos = c->dec_fact = -1;
    c->dec_cand = MEM_CAND_NONE;
    /* the memory's routing states stop before pos0 (it was attached later):
     * decode the cached tokens again to build them (bit-identical K/V:
     * splitting a prompt does not change its bits) */
    int rc;
    if (c->mem && c->mem_valid < pos0) {
        if ((rc = question_states(c, c->mem_valid, pos0 - c->mem_valid))) return rc;
        decode_range(c, c->mem_valid, pos0 - c->mem_valid, 0);
    }
    memcpy(c->tokens + pos0, tokens, (size_t)n * sizeof(int32_t));
    if ((rc = question_states(c, pos0, n))) return rc;
    decode_range(c, pos0, n, all_logits ? 2 : 1);
    if (c->mem) c->mem_valid = pos0 + n;
    else if (c->mem_valid > pos0) c->mem_valid = pos0;
    c->n_logits = rows;
    c->logits_all = all_logits;
    return MOME_OK;
}

int mome_decode_batch(mome_ctx *const *ctxs, const int32_t *tokens, int n) {
    if (!ctxs || !tokens || n <= 0) return mome_seterr_code(MOME_ERR_ARG, "mome_decode_batch: no tokens");
    mome_ctx *w = ctxs[0];
    const llama_hparams *hp = &w->m->hp;
    if (n > w->n_batch)
        return mome_seterr_code(MOME_ERR_ARG, "mome_decode_batch: %d rows exceed the first context's n_batch %d", n,
                                w->n_batch);
    for (int i = 0; i < n; i++) {
        const mome_ctx *c = ctxs[i];
        if (!c || c->m != w->m || c->n_threads != w->n_threads || c->f32_matmul != w->f32_matmul)
            return mome_seterr_code(MOME_ERR_ARG,
                                    "mome_decode_batch: context %d is not of the same model, thread count and matmul mode",
                                    i);
        for (int j = 0; j < i; j++)
            if (ctxs[j] == c) return mome_seterr_code(MOME_ERR_ARG, "mome_decode_batch: context %d repeats context %d", i, j);
        if (c->n_past >= c->n_ctx)
            return mome_seterr_code(MOME_ERR_ARG, "context full: context %d holds %d tokens of %d", i, c->n_past, c->n_ctx);
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return mome_seterr_code(MOME_ERR_ARG, "token id %d at index %d is out of range [0, %d)", tokens[i], i,
                                    hp->n_vocab);
    }
    if (n > w->n_logits_cap) {
        float *nl = mome_aligned_alloc((size_t)n * hp->n_vocab * sizeof(float));
        if (!nl) return MOME_ERR_NOMEM;
        free(w->logits);
        w->logits = nl;
        w->n_logits_cap = n;
    }
    for (int i = 0; i < n; i++) {
        mome_ctx *c = ctxs[i];
        const int32_t pos = c->n_past;
        c->dec_pos = c->dec_fact = -1;
        c->dec_cand = MEM_CAND_NONE;
        /* as in mome_decode: routing states for a memory attached later */
        int rc;
        if (c->mem && c->mem_valid < pos) {
            if ((rc = question_states(c, c->mem_valid, pos - c->mem_valid))) return rc;
            decode_range(c, c->mem_valid, pos - c->mem_valid, 0);
        }
        c->tokens[pos] = tokens[i];
        if ((rc = question_states(c, pos, 1))) return rc;
    }
    for (int i = 0; i < n; i++) {
        w->rows[i].c = ctxs[i];
        w->rows[i].pos = ctxs[i]->n_past;
        w->rows[i].i = 0;
        w->rows[i].solo = 1;
    }
    forward_chunk(w, n, 2, 0);
    for (int i = 0; i < n; i++) {
        mome_ctx *c = ctxs[i];
        const int32_t pos = c->n_past;
        c->n_past = pos + 1;
        if (c->mem) c->mem_valid = pos + 1;
        else if (c->mem_valid > pos) c->mem_valid = pos;
        if (i > 0) memcpy(c->logits, w->logits + (size_t)i * hp->n_vocab, (size_t)hp->n_vocab * sizeof(float));
        c->n_logits = 1;
        c->logits_all = 0;
    }
    return MOME_OK;
}
