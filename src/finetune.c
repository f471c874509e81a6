/* finetune.c - the baselines users would pick instead of a memory: ordinary
 * LoRA, and full fine-tuning of every weight.
 *
 * LoRA: rank-r adapters (A random, B = 0, scale alpha/r) on the seven
 * projections of every layer (q, k, v, o, gate, up, down) over the frozen
 * base. Full: every weight of the model in f32 - the projections, the Q/K/V
 * biases where the architecture has them, every RMSNorm weight, the final
 * norm and the token embedding, which is also the head when the model ties
 * them (SmolLM2 does: one tensor, trained once with both gradients). Nothing
 * is left frozen, so "unfrozen" means what it says; the embedding moves only
 * at the rows of the trained tokens (plus Adam's momentum) and through the
 * head.
 *
 * Both train the same facts, chat template, loss (answer tokens + end of
 * turn) and stop rule as memory tuning, on the same f32 stack
 * (train_stack.c, l0 = 0): because they change every layer nothing can be
 * cached, so each step runs the whole prompt+answer of every fact in the
 * batch through all layers, then Adam updates the trainable tensors
 * (tstack_params: the adapters, or all weights).
 *
 * A fact is memorized when the teacher-forced argmax at every answer position
 * is the answer (what greedy decoding produces) and its loss is below the
 * target, measured in the f32 stack; after every pass over the facts still
 * training, all facts are re-checked (dense updates disturb learned ones).
 * Perplexity of a held-out text, before and after (and with ppl_every after
 * every ppl_every-th pass, for curves), in windows of 512 tokens, is also
 * computed in the stack; each pass ends with a "pass" progress report of the
 * re-check: exact facts (every answer token the argmax) and the mean loss. LoRA writes its adapters (GGUF) and, with
 * model_out, the base with the adapters merged; full writes the tuned model.
 * Both model files are f32 GGUF the engine runs (mome run / eval -m FILE),
 * so recall, perplexity and other questions are measured by the same engine
 * code as a memory.
 *
 * Memory of full fine-tuning on SmolLM2-135M (134.5M parameters, tied
 * embedding 28.3M of them): weights, gradients and Adam's two moments in f32,
 * 4 x 4 B x 134.5M = 2.15 GB, plus the activations of a batch (8 facts of
 * ~40 tokens: ~0.2 GB, mostly logits); writing the model adds nothing (the
 * writer references the stack's arrays).
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>
#include <stdio.h>

#include "adam.h"
#include "finetune.h"
#include "gguf_write.h"
#include "util.h"

typedef struct lfact {
    int32_t *ids;      /* (n) prompt + answer tokens */
    int32_t *target;   /* (n) next-token targets, -1 on the prompt */
    int n;
    float loss;
    int memorized; /* the teacher-forced argmax is the answer and the loss is below the target */
} lfact;

/* Perplexity of the text in the f32 stack (with or without adapters). */
static double stack_ppl(const mome_model *m, tstack *st, const char *path, int64_t max_bytes, float *X) {
    char *buf;
    size_t n;
    if (mome_read_text(path, max_bytes, &buf, &n)) return -1;
    int32_t *ids = malloc((n + 8) * sizeof(int32_t));
    int nt = ids ? mome_tokenize(m, buf, n, ids, (int)n + 8, 1, 0) : -1;
    free(buf);
    if (nt < 2) { free(ids); return -1; }
    const int W = st->max_pos < 512 ? st->max_pos : 512;
    int32_t *tg = malloc((size_t)W * sizeof(int32_t));
    double nll = 0;
    int64_t cnt = 0;
    for (int s = 0; s + 1 < nt; s += W) {
        int len = nt - s < W ? nt - s : W;
        if (len < 2) break;
        for (int i = 0; i < len; i++) tg[i] = i + 1 < len ? ids[s + i + 1] : -1;
        tstack_embed(st, m, ids + s, len, X);
        ts_seq q = {0, NULL, NULL, len, 0, tg};
        float loss;
        int ok;
        if (tstack_step(st, &q, 1, X, NULL, &loss, &ok, 0)) { nll = NAN; break; }
        nll += (double)loss * (len - 1);
        cnt += len - 1;
    }
    free(tg);
    free(ids);
    return cnt ? exp(nll / cnt) : -1;
}

static int save_lora(const tstack *st, const mome_model *m, const mome_tune_params *p, const char *path) {
    gguf_writer *w;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    static const char *pn[TS_NPROJ] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    char name[96];
    const char *sha = mome_model_sha256((mome_model *)m);
#define CK(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    CK(gguf_writer_add_str(w, "general.architecture", "mome-lora"));
    CK(gguf_writer_add_str(w, "mome.base.sha256", sha ? sha : ""));
    CK(gguf_writer_add_i32(w, "lora.rank", st->lora_rank));
    CK(gguf_writer_add_f32(w, "lora.alpha", p->lora_alpha));
    for (int l = 0; l < st->L - st->l0; l++)
        for (int j = 0; j < TS_NPROJ; j++) {
            const ts_lora *lo = &st->lora[l * TS_NPROJ + j];
            int64_t na[2] = {lo->n_in, st->lora_rank}, nb[2] = {st->lora_rank, lo->n_out};
            snprintf(name, sizeof name, "blk.%d.%s.lora_a", l + st->l0, pn[j]);
            CK(gguf_writer_add_tensor(w, name, 2, na, MOME_DTYPE_F32, lo->A, (size_t)lo->n_in * st->lora_rank * 4,
                                      GGUF_WRITER_REF));
            snprintf(name, sizeof name, "blk.%d.%s.lora_b", l + st->l0, pn[j]);
            CK(gguf_writer_add_tensor(w, name, 2, nb, MOME_DTYPE_F32, lo->B, (size_t)lo->n_out * st->lora_rank * 4,
                                      GGUF_WRITER_REF));
        }
    rc = gguf_writer_write_file(w, path);
done:
#undef CK
    gguf_writer_free(w);
    return rc;
}

/* The stack's f32 array for a tensor of the model file, or NULL; *proj is
 * the LoRA projection index (TS_Q..) of a block matrix, else -1. */
static float *held_tensor(const tstack *s, const char *name, int *layer, int *proj) {
    int l;
    char kind[32], suffix[8];
    *layer = *proj = -1;
    if (!strcmp(name, "output_norm.weight")) return s->out_norm;
    if (!strcmp(name, "output.weight")) return s->wout;
    if (!strcmp(name, "token_embd.weight")) return s->embd ? s->embd : s->tied ? s->wout : NULL;
    if (sscanf(name, "blk.%d.%31[a-z_].%7s", &l, kind, suffix) != 3 || l < s->l0 || l >= s->L) return NULL;
    ts_layer *w = &s->layers[l - s->l0];
    *layer = l;
    if (!strcmp(suffix, "bias"))
        return !strcmp(kind, "attn_q") ? w->bq : !strcmp(kind, "attn_k") ? w->bk : !strcmp(kind, "attn_v") ? w->bv : NULL;
    if (strcmp(suffix, "weight")) return NULL;
    if (!strcmp(kind, "attn_norm")) return w->attn_norm;
    if (!strcmp(kind, "ffn_norm")) return w->ffn_norm;
    static const char *const pn[TS_NPROJ] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    float *const pw[TS_NPROJ] = {w->wq, w->wk, w->wv, w->wo, w->wg, w->wu, w->wd};
    for (int j = 0; j < TS_NPROJ; j++)
        if (!strcmp(kind, pn[j])) {
            *proj = j;
            return pw[j];
        }
    return NULL;
}

int finetune_write_model(const tstack *s, const mome_model *m, const char *method, const char *path) {
    if (s->l0 != 0) return mome_seterr_code(MOME_ERR_ARG, "finetune: the stack does not hold the whole model");
    const gguf_file *g = m->gguf;
    gguf_writer *w;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    float **own = mome_calloc((size_t)g->n_tensors + 1, sizeof(float *));
    int n_own = 0;
    char name[80];
    const char *sha = mome_model_sha256((mome_model *)m);
#define CK(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    if (!own) { rc = MOME_ERR_NOMEM; goto done; }
    for (uint64_t i = 0; i < g->n_kv; i++) CK(gguf_writer_add_kv(w, &g->kv[i]));
    CK(gguf_writer_add_u32(w, "general.file_type", 0)); /* LLAMA_FTYPE_ALL_F32 */
    CK(gguf_writer_add_str(w, "mome.finetune.method", method));
    CK(gguf_writer_add_str(w, "mome.finetune.base.sha256", sha ? sha : ""));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 79 ? t->name.len : 79), t->name.ptr);
        int layer, proj;
        float *src = held_tensor(s, name, &layer, &proj);
        int64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) n *= t->ne[d];
        if (!src && (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight")) && t->n_dims == 2) {
            /* not held (LoRA or the bare stack of an untied model): dequantized */
            src = own[n_own++] = mome_aligned_alloc((size_t)n * sizeof(float));
            if (!src) { rc = MOME_ERR_NOMEM; goto done; }
            const size_t rb = quant_row_size((enum mome_dtype)t->type, t->ne[0]);
            for (int64_t r = 0; r < t->ne[1]; r++)
                quant_dequantize_row((enum mome_dtype)t->type, (const char *)t->data + (size_t)r * rb,
                                     src + (size_t)r * t->ne[0], t->ne[0]);
        } else if (src && proj >= 0 && s->lora) {
            /* W + scale B A, the adapters merged */
            const ts_lora *lo = &s->lora[(layer - s->l0) * TS_NPROJ + proj];
            float *mw = own[n_own++] = mome_aligned_alloc((size_t)n * sizeof(float));
            if (!mw) { rc = MOME_ERR_NOMEM; goto done; }
            memcpy(mw, src, (size_t)n * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, lo->n_out, lo->n_in, s->lora_rank, s->lora_scale,
                        lo->B, s->lora_rank, lo->A, lo->n_in, 1.0f, mw, lo->n_in);
            src = mw;
        }
        if (src) CK(gguf_writer_add_tensor(w, name, t->n_dims, t->ne, MOME_DTYPE_F32, src, (size_t)n * sizeof(float),
                                           GGUF_WRITER_REF));
        else CK(gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type, t->data, t->nbytes, GGUF_WRITER_REF));
    }
    rc = gguf_writer_write_file(w, path);
done:
#undef CK
    if (own)
        for (int i = 0; i < n_own; i++) free(own[i]);
    free(own);
    gguf_writer_free(w);
    return rc;
}

int finetune_write_f32_base(const mome_model *m, const char *path) {
    tstack st;
    int rc = tstack_init(&st, m, 0, 1, 1);
    if (!rc) rc = finetune_write_model(&st, m, "none", path);
    tstack_free(&st);
    return rc;
}

/* One fine-tuning run: the facts, the stack with its trainable tensors and
 * their Adam moments, and the batch buffers every phase below shares. */
typedef struct ft_run {
    mome_model *m;
    const mome_tune_params *p;
    mome_tune_report *rep;
    lfact *f;
    int n, B, full;
    tstack st;
    ts_param *prm;  /* (NP) the trainable tensors */
    float **mstate; /* (2 NP) Adam's m and v of each */
    int NP;
    float *X, *dX;   /* (max rows x C) the batch's inputs and their gradient (full only) */
    ts_seq *seqs;    /* (B) */
    float *loss;     /* (B) */
    int *ok;         /* (B) */
    int *idx;        /* (n) the facts still training */
    int64_t step;
    int64_t ppl_step; /* the step rep->ppl_after was last measured at (-1: none) */
    double t0;
} ft_run;

/* Facts as one batch of sequences, their embedded rows in X: idx[0..nb),
 * or first..first+nb when idx is NULL. */
static void ft_load_batch(ft_run *r, const int *idx, int first, int nb) {
    const int C = r->m->hp.n_embd;
    int R = 0;
    for (int k = 0; k < nb; k++) {
        const lfact *q = &r->f[idx ? idx[k] : first + k];
        r->seqs[k] = (ts_seq){0, NULL, NULL, q->n, R, q->target};
        tstack_embed(&r->st, r->m, q->ids, q->n, r->X + (size_t)R * C);
        R += q->n;
    }
}

/* Every fact measured again, B at a time, without a gradient: its loss and
 * (if set_state) whether it is memorized; *n_exact counts the facts whose
 * every target is the argmax. */
static int recheck(ft_run *r, int set_state, int *n_exact) {
    int rc = 0;
    *n_exact = 0;
    for (int s0 = 0; s0 < r->n && !rc; s0 += r->B) {
        const int cnt = r->n - s0 < r->B ? r->n - s0 : r->B;
        ft_load_batch(r, NULL, s0, cnt);
        if ((rc = tstack_step(&r->st, r->seqs, cnt, r->X, NULL, r->loss, r->ok, 0))) break;
        for (int k = 0; k < cnt; k++) {
            lfact *q = &r->f[s0 + k];
            q->loss = r->loss[k];
            if (set_state) q->memorized = r->ok[k] && r->loss[k] < r->p->target_loss;
            *n_exact += r->ok[k] != 0;
        }
    }
    return rc;
}

/* One progress report: the facts' counts and mean loss as they stand. */
static void report(const ft_run *r, int64_t step, double elapsed, const char *phase, int pass, int n_exact, double ppl) {
    const mome_tune_params *p = r->p;
    const lfact *f = r->f;
    const int n = r->n;
    if (!p->progress) return;
    mome_tune_progress pr = {0};
    pr.step = step;
    pr.n_facts = n;
    double ls = 0;
    for (int i = 0; i < n; i++) { pr.n_memorized += f[i].memorized; ls += f[i].loss; }
    pr.mean_loss = (float)(ls / (n ? n : 1));
    pr.elapsed_s = elapsed;
    pr.facts_per_s = elapsed > 0 ? pr.n_memorized / elapsed : 0;
    pr.eta_s = !strcmp(phase, "train") && pr.facts_per_s > 0 ? (n - pr.n_memorized) / pr.facts_per_s : -1;
    pr.phase = phase;
    pr.pass = pass;
    pr.n_exact = n_exact;
    pr.perplexity = ppl;
    p->progress(&pr, p->user);
}

/* Facts per step: --batch, at most 8 (the f32 stack's activations). */
static int batch_of(const mome_tune_params *p) { return p->batch > 0 ? (p->batch < 8 ? p->batch : 8) : 8; }

/* Each fact as one training sequence: its chat prompt and answer, the
 * targets the answer and the end of turn; *max_len: the longest. */
static int tokenize_facts(mome_model *m, const fact_set *fs, lfact *f, int *max_len) {
    const int n = fs->n;
    const int32_t eot = mome_token_eot(m);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        mome_chat_msg msgs[2];
        const int nm = fact_messages(&fs->v[i], msgs);
        char *prompt = mome_chat_format(m, msgs, nm, 1);
        int32_t *pi = NULL, *ai = NULL;
        int np = prompt ? mome_tokenize_alloc(m, prompt, 1, 1, &pi) : MOME_ERR_NOMEM;
        free(prompt);
        int na = np > 0 ? mome_tokenize_alloc(m, fs->v[i].answers[0], 0, 0, &ai) : np;
        if (np <= 0 || na <= 0) {
            rc = np <= 0 ? (np ? np : MOME_ERR) : (na ? na : MOME_ERR);
            if (rc == MOME_ERR) mome_seterr_code(MOME_ERR_ARG, "%s:%d: empty after tokenization", fs->path, fs->v[i].line);
            free(pi); free(ai);
            break;
        }
        f[i].n = np + na;
        f[i].ids = mome_malloc((size_t)f[i].n * sizeof(int32_t));
        f[i].target = mome_malloc((size_t)f[i].n * sizeof(int32_t));
        if (!f[i].ids || !f[i].target) { rc = MOME_ERR_NOMEM; free(pi); free(ai); break; }
        memcpy(f[i].ids, pi, (size_t)np * sizeof(int32_t));
        memcpy(f[i].ids + np, ai, (size_t)na * sizeof(int32_t));
        for (int j = 0; j < f[i].n; j++) f[i].target[j] = j >= np - 1 ? (j + 1 < f[i].n ? f[i].ids[j + 1] : eot) : -1;
        if (f[i].n > *max_len) *max_len = f[i].n;
        free(pi); free(ai);
    }
    return rc;
}

/* The facts tokenized, the stack sized for the longest of them (and the
 * perplexity windows), perplexity before, the trainable tensors added. */
static int ft_prepare(ft_run *r, const fact_set *fs) {
    const int C = r->m->hp.n_embd;
    int max_len = 8, rc;
    if (!(r->f = mome_calloc((size_t)r->n, sizeof(lfact)))) return MOME_ERR_NOMEM;
    if ((rc = tokenize_facts(r->m, fs, r->f, &max_len))) return rc;
    const int ppl_pos = r->p->ppl_text ? 512 : 0;
    const int max_pos = max_len > ppl_pos ? max_len : ppl_pos;
    const int max_rows = r->B * max_len > ppl_pos ? r->B * max_len : ppl_pos;
    if ((rc = tstack_init(&r->st, r->m, 0, max_pos + 8, max_rows))) return rc;
    r->X = mome_malloc((size_t)max_rows * C * sizeof(float));
    r->dX = r->full ? mome_malloc((size_t)max_rows * C * sizeof(float)) : NULL;
    r->idx = mome_malloc((size_t)(r->n ? r->n : 1) * sizeof(int));
    r->seqs = mome_malloc((size_t)r->B * sizeof(ts_seq));
    r->loss = mome_malloc((size_t)r->B * sizeof(float));
    r->ok = mome_malloc((size_t)r->B * sizeof(int));
    if (!r->X || (r->full && !r->dX) || !r->idx || !r->seqs || !r->loss || !r->ok) return MOME_ERR_NOMEM;
    if (r->p->ppl_text) r->rep->ppl_before = stack_ppl(r->m, &r->st, r->p->ppl_text, r->p->ppl_text_bytes, r->X);
    rc = r->full ? tstack_add_full(&r->st, r->m) : tstack_add_lora(&r->st, r->p->lora_rank, r->p->lora_alpha, r->p->seed);
    if (rc) return rc;
    r->NP = tstack_params(&r->st, NULL, 0);
    r->prm = mome_malloc((size_t)r->NP * sizeof(ts_param));
    r->mstate = mome_calloc((size_t)r->NP * 2, sizeof(float *));
    if (!r->prm || !r->mstate) return MOME_ERR_NOMEM;
    tstack_params(&r->st, r->prm, r->NP);
    for (int i = 0; i < 2 * r->NP; i++)
        if (!(r->mstate[i] = mome_calloc(r->prm[i / 2].n, sizeof(float)))) return MOME_ERR_NOMEM;
    return 0;
}

/* One Adam step on the nb facts idx[0..nb): forward and backward through
 * the stack, the embedding's gradient at the facts' tokens (full), each
 * fact's loss and whether it is memorized now. */
static int ft_train_batch(ft_run *r, const int *idx, int nb) {
    const int C = r->m->hp.n_embd;
    int rc;
    ft_load_batch(r, idx, 0, nb);
    for (int i = 0; i < r->NP; i++) memset(r->prm[i].g, 0, r->prm[i].n * sizeof(float));
    if ((rc = tstack_step(&r->st, r->seqs, nb, r->X, r->dX, r->loss, r->ok, 1))) return rc;
    if (r->full) /* the embedding's gradient: dX at the rows of each token */
        for (int k = 0; k < nb; k++) {
            const lfact *q = &r->f[idx[k]];
            tstack_embed_bwd(&r->st, q->ids, q->n, r->dX + (size_t)r->seqs[k].row0 * C);
        }
    r->step++;
    const adam_cfg ac = adam_default(r->p->lr > 0 ? r->p->lr : r->full ? FINETUNE_FULL_LR : 1e-3f);
    for (int i = 0; i < r->NP; i++)
        adam_update(&ac, (int)r->step, r->prm[i].w, r->prm[i].g, r->mstate[2 * i], r->mstate[2 * i + 1], r->prm[i].n);
    for (int k = 0; k < nb; k++) {
        lfact *q = &r->f[idx[k]];
        q->loss = r->loss[k];
        if (r->ok[k] && r->loss[k] < r->p->target_loss) q->memorized = 1;
    }
    return 0;
}

/* The end of a pass over the facts still training: later steps move the
 * dense weights under the earlier facts, so every fact is re-checked;
 * perplexity every --ppl-every passes; one "pass" report. */
static int ft_end_pass(ft_run *r, int pass) {
    int n_exact, rc;
    if ((rc = recheck(r, 1, &n_exact)))
        return rc;
    double ppl = -1;
    if (r->p->ppl_text && r->p->ppl_every > 0 && pass % r->p->ppl_every == 0) {
        ppl = r->rep->ppl_after = stack_ppl(r->m, &r->st, r->p->ppl_text, r->p->ppl_text_bytes, r->X);
        r->ppl_step = r->step;
    }
    report(r, r->step, mome_time_s() - r->t0, "pass", pass, n_exact, ppl);
    return 0;
}

/* The training passes: batches of the facts not yet memorized, one Adam
 * step each, every fact re-checked after each pass, until all are
 * memorized or a limit is reached. Pass 0 is the untrained model, measured
 * as after every pass (states untouched), when perplexity curves are asked. */
static int ft_train(ft_run *r) {
    const mome_tune_params *p = r->p;
    int rc = 0, cursor = 0, pass = 0, n_exact;
    double last_prog = 0;
    if (p->ppl_text && p->ppl_every > 0) {
        if ((rc = recheck(r, 0, &n_exact)))
            return rc;
        report(r, 0, mome_time_s() - r->t0, "pass", 0, n_exact, r->rep->ppl_before);
    }
    for (;;) {
        int np = 0;
        for (int i = 0; i < r->n; i++)
            if (!r->f[i].memorized) r->idx[np++] = i;
        if (np == 0) break;
        if (cursor >= np) cursor = 0;
        const int nb = np - cursor < r->B ? np - cursor : r->B;
        if ((rc = ft_train_batch(r, r->idx + cursor, nb))) break;
        cursor += nb;
        if (cursor >= np && (rc = ft_end_pass(r, ++pass))) break;
        const double now = mome_time_s();
        if (now - last_prog > 0.25) {
            last_prog = now;
            report(r, r->step, now - r->t0, "train", pass, 0, -1);
        }
        if (p->max_steps > 0 && r->step >= p->max_steps) break;
        if (p->max_minutes > 0 && now - r->t0 > 60 * p->max_minutes) break;
    }
    r->rep->steps = r->step;
    return rc;
}

/* Perplexity after (unless the last pass measured these very weights), the
 * files written, the report's counts. */
static int ft_finish(ft_run *r) {
    const mome_tune_params *p = r->p;
    mome_tune_report *rep = r->rep;
    int rc;
    if (p->ppl_text && r->ppl_step != rep->steps)
        rep->ppl_after = stack_ppl(r->m, &r->st, p->ppl_text, p->ppl_text_bytes, r->X);
    if (r->full) rc = finetune_write_model(&r->st, r->m, "full", p->out_path);
    else {
        rc = save_lora(&r->st, r->m, p, p->out_path);
        if (!rc && p->model_out) rc = finetune_write_model(&r->st, r->m, "lora-merged", p->model_out);
    }
    if (rc) return rc;
    rep->n_facts = r->n;
    for (int i = 0; i < r->n; i++) {
        rep->n_memorized += r->f[i].memorized;
        rep->mean_loss += r->f[i].loss;
    }
    rep->mean_loss /= r->n ? r->n : 1;
    rep->seconds = mome_time_s() - r->t0;
    report(r, rep->steps, rep->seconds, "done", 0, 0, -1);
    return 0;
}

static void ft_free(ft_run *r) {
    if (r->mstate)
        for (int i = 0; i < r->NP * 2; i++) free(r->mstate[i]);
    free(r->mstate);
    free(r->prm);
    free(r->X);
    free(r->dX);
    free(r->idx);
    free(r->seqs);
    free(r->loss);
    free(r->ok);
    tstack_free(&r->st);
    if (r->f)
        for (int i = 0; i < r->n; i++) { free(r->f[i].ids); free(r->f[i].target); }
    free(r->f);
}

int mome_tune_finetune(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs) {
    ft_run r = {.m = m, .p = p, .rep = rep, .n = fs->n, .B = batch_of(p), .full = p->method == MOME_TUNE_FULL,
                .ppl_step = -1, .t0 = mome_time_s()};
    rep->ppl_before = rep->ppl_after = -1;
    int rc = ft_prepare(&r, fs);
    if (!rc) rc = ft_train(&r);
    if (!rc) rc = ft_finish(&r);
    ft_free(&r);
    return rc;
}
