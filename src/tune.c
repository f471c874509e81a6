/* tune.c - Memory Tuning: train the experts each fact selects until the
 * model states every fact exactly.
 *
 * 1. prepare: every fact becomes prompt = chat template(question) and
 *    targets = answer tokens + end-of-turn. One pass of the quantized engine
 *    over prompt+answer caches, per fact, the input of the memory layer at
 *    the trained rows (the last prompt token and each answer token) and the
 *    K/V of the earlier positions for the layers above: nothing below the
 *    memory layer ever changes, so it is never recomputed.
 * 2. select: each trained row's query picks its top-k experts; the best
 *    train_top of them that are not frozen (from an earlier memory) become
 *    the row's own, trainable experts, and the row's query becomes an anchor
 *    of each. Selection and gates are then fixed for the whole run.
 * 3. train: batches of not-yet-memorized facts run the layers above in f32
 *    (train_stack.c); the gradient reaching the memory layer updates only the
 *    batch's own experts (sparse Adam: state exists only for trained slots).
 *    A fact counts as memorized when every target is the argmax and its mean
 *    answer loss is below target_loss; memorized facts leave the pool.
 * 4. verify: every fact is decoded greedily with the real engine and the
 *    memory attached, its weights rounded to f16 as the file will hold them;
 *    a fact whose answer is not reproduced exactly returns to the pool with a
 *    4x lower loss target (after 6 failures it is given up and reported).
 * A checkpoint (memory + optimizer + per-fact state, written atomically) is
 * taken every checkpoint_s seconds; --resume continues from it.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "facts.h"
#include "gguf.h"
#include "gguf_write.h"
#include "memory.h"
#include "model.h"
#include "quant.h"
#include "train_stack.h"
#include "util.h"

mome_tune_params mome_tune_default_params(void) {
    mome_tune_params p;
    memset(&p, 0, sizeof p);
    p.method = MOME_TUNE_MOME;
    p.log2_experts = 20;
    p.top_k = 32;
    p.rank = 1;
    p.train_top = 4;
    p.key_dim = 64;
    p.layer = -1;
    p.gate_lo = 0.80f;
    p.gate_hi = 0.90f;
    p.whiten_reg = 0.0f; /* auto, see below */
    p.patience = 50;
    p.max_banks = 8;
    p.lr = 0.0f; /* method default */
    p.target_loss = 0.01f;
    p.batch = 32;
    p.seed = 1234;
    p.checkpoint_s = 60;
    p.lora_rank = 8;
    p.lora_alpha = 16;
    return p;
}

typedef struct fact_rt {
    int32_t *prompt;       /* (P) */
    int P;
    int32_t *target;       /* (T) answer tokens then end-of-turn */
    int T;                 /* trained rows: positions P-1 .. P+T-2 */
    float *h;              /* (T, C) input of the memory layer */
    float *kpre, *vpre;    /* (L - layer, P-1, KV) */
    int use0, use1;        /* range in the row-usage arrays, per row via row_use */
    int *row_use;          /* (T+1) offsets into use_* */
    float loss, target_loss;
    int ok;
    int state;             /* 0 training, 1 memorized (training check), 2 verified, 3 given up */
    int n_fail;            /* failed verifications */
    int stage;             /* the bank the fact owns experts in */
    int trainable;         /* it has trainable experts in the current bank */
    int64_t ver_step;      /* step at which it was verified */
    int64_t steps;
} fact_rt;

typedef struct tuner {
    mome_model *m;
    const mome_tune_params *p;
    fact_set *fs;
    fact_rt *f;
    int n;
    mome_memory *mem;
    mem_bank *bank;
    int32_t n_frozen;      /* slots that came from an earlier memory */
    /* row usage: experts read by a row, coefficient w*g, trainable flag */
    int32_t *use_slot;
    float *use_coef;
    uint8_t *use_train;
    int64_t n_use, cap_use;
    /* optimizer state, per slot: (S, r*C) for A and B */
    float *mA, *vA, *mB, *vB;
    int32_t *tstep;        /* (S) Adam steps taken by the slot */
    int64_t *mod_step;     /* (S) step of the slot's last update */
    int32_t cap_opt;
    tstack st;
    int lcp;               /* prompt tokens every fact shares (the chat template's head) */
    float *f32_keep;       /* f32 expert weights and anchors while verifying in f16 */
    int64_t step;
    double t0, t_prev;     /* elapsed time before this run (resume) */
    /* stall detection: the most facts ever memorized in this bank, and how
     * many fact-steps were trained since that count last rose */
    int best_done;
    int64_t since_best;
    /* the last stage: facts that own experts in the newest bank, their rows */
    int stage_facts;
    int64_t stage_rows;
} tuner;

static void progress(tuner *t, const char *phase) {
    if (!t->p->progress) return;
    mome_tune_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.step = t->step;
    pr.n_facts = t->n;
    double ls = 0;
    /* while verifying, the count is of facts verified so far */
    const int verifying = strcmp(phase, "verify") == 0;
    for (int i = 0; i < t->n; i++) {
        pr.n_memorized += verifying ? t->f[i].state == 2 : t->f[i].state == 1 || t->f[i].state == 2;
        ls += t->f[i].loss;
    }
    pr.n_banks = t->mem ? t->mem->n_banks : 0;
    pr.n_stage_facts = t->stage_facts;
    pr.n_stage_rows = t->stage_rows;
    pr.mean_loss = t->n ? (float)(ls / t->n) : 0;
    pr.elapsed_s = t->t_prev + mome_time_s() - t->t0;
    pr.facts_per_s = pr.elapsed_s > 0 ? pr.n_memorized / pr.elapsed_s : 0;
    /* facts are memorized late in a run (each needs several passes), so an
     * ETA from the average rate is wildly long at first: shown from 10% on */
    pr.eta_s = !verifying && pr.facts_per_s > 0 && pr.n_memorized * 10 >= pr.n_facts
                   ? (pr.n_facts - pr.n_memorized) / pr.facts_per_s : -1;
    pr.phase = phase;
    t->p->progress(&pr, t->p->user);
}

/* Tokenize every fact; error (with file:line) if one does not fit. */
static int prepare_tokens(tuner *t, int n_ctx) {
    const int32_t eot = mome_token_eot(t->m);
    for (int i = 0; i < t->n; i++) {
        const fact *fa = &t->fs->v[i];
        fact_rt *r = &t->f[i];
        mome_chat_msg msgs[2];
        int nm = 0;
        if (fa->system) msgs[nm++] = (mome_chat_msg){"system", fa->system};
        msgs[nm++] = (mome_chat_msg){"user", fa->question};
        char *prompt = mome_chat_format(t->m, msgs, nm, 1);
        if (!prompt) return MOME_ERR_NOMEM;
        int np = mome_tokenize_alloc(t->m, prompt, 1, 1, &r->prompt);
        free(prompt);
        if (np < 0) return np;
        int32_t *ans;
        int na = mome_tokenize_alloc(t->m, fa->answers[0], 0, 0, &ans);
        if (na < 0) return na;
        if (np < 1 || na < 1) {
            free(ans);
            return mome_seterr_code(MOME_ERR_ARG, "%s:%d: the question or answer tokenizes to nothing", t->fs->path,
                                    fa->line);
        }
        r->P = np;
        r->T = na + 1;
        r->target = mome_malloc((size_t)r->T * sizeof(int32_t));
        if (!r->target) { free(ans); return MOME_ERR_NOMEM; }
        memcpy(r->target, ans, (size_t)na * sizeof(int32_t));
        r->target[na] = eot;
        free(ans);
        if (np + na + 8 > n_ctx)
            return mome_seterr_code(MOME_ERR_ARG, "%s:%d: the fact is %d tokens long, longer than the %d-token context",
                                    t->fs->path, fa->line, np + na, n_ctx);
        r->target_loss = t->p->target_loss;
    }
    return 0;
}

/* Engine pass over prompt + answer (with the memory as it is now): caches
 * the memory layer's input at the trained rows and the K/V of the prefix for
 * the layers at and above it. */
static int base_pass(tuner *t, mome_ctx *c) {
    const llama_hparams *hp = &t->m->hp;
    const int C = hp->n_embd, layer = t->bank->cfg.layer, NL = hp->n_layer - layer;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    int32_t *seq = mome_malloc((size_t)c->n_ctx * sizeof(int32_t));
    if (!seq) return MOME_ERR_NOMEM;
    c->capture_layer = layer;
    double last = mome_time_s();
    /* the shared head is decoded once; every fact continues from it */
    const int lcp = t->lcp;
    if (lcp > 0 && t->n > 0) {
        int rc = mome_decode(c, t->f[0].prompt, lcp, 0, 0);
        if (rc) { free(seq); return rc; }
    }
    for (int i = 0; i < t->n; i++) {
        fact_rt *r = &t->f[i];
        const int n = r->P + r->T - 1;
        memcpy(seq, r->prompt, (size_t)r->P * sizeof(int32_t));
        memcpy(seq + r->P, r->target, (size_t)(r->T - 1) * sizeof(int32_t));
        int rc = mome_decode(c, seq + lcp, n - lcp, lcp, 0);
        if (rc) { free(seq); return rc; }
        r->h = mome_malloc((size_t)r->T * C * sizeof(float));
        const int np = r->P - 1;
        r->kpre = mome_malloc((size_t)NL * (np ? np : 1) * KV * sizeof(float));
        r->vpre = mome_malloc((size_t)NL * (np ? np : 1) * KV * sizeof(float));
        if (!r->h || !r->kpre || !r->vpre) { free(seq); return MOME_ERR_NOMEM; }
        memcpy(r->h, c->capture + (size_t)(r->P - 1 - lcp) * C, (size_t)r->T * C * sizeof(float));
        for (int l = 0; l < NL; l++) {
            const size_t src = ((size_t)(layer + l) * c->n_ctx) * KV;
            memcpy(r->kpre + (size_t)l * np * KV, c->k_cache + src, (size_t)np * KV * sizeof(float));
            memcpy(r->vpre + (size_t)l * np * KV, c->v_cache + src, (size_t)np * KV * sizeof(float));
        }
        if (mome_time_s() - last > 0.5) {
            last = mome_time_s();
            if (t->p->progress) {
                mome_tune_progress pr = {0};
                pr.n_facts = t->n;
                pr.n_memorized = i + 1;
                pr.elapsed_s = t->t_prev + last - t->t0;
                pr.eta_s = -1;
                pr.phase = "prepare";
                t->p->progress(&pr, t->p->user);
            }
        }
    }
    c->capture_layer = -1;
    free(seq);
    return 0;
}

static int push_use(tuner *t, int32_t slot, float coef, int train) {
    if (t->n_use == t->cap_use) {
        int64_t nc = t->cap_use ? 2 * t->cap_use : 4096;
        int32_t *a = realloc(t->use_slot, (size_t)nc * sizeof(int32_t));
        if (a) t->use_slot = a;
        float *b = realloc(t->use_coef, (size_t)nc * sizeof(float));
        if (b) t->use_coef = b;
        uint8_t *c = realloc(t->use_train, (size_t)nc);
        if (c) t->use_train = c;
        if (!a || !b || !c) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        t->cap_use = nc;
    }
    t->use_slot[t->n_use] = slot;
    t->use_coef[t->n_use] = coef;
    t->use_train[t->n_use] = (uint8_t)train;
    t->n_use++;
    return 0;
}

static int grow_opt(tuner *t);
static int f16_swap(tuner *t, int round);

/* 1 if an expert fact f reads in the current bank changed after f was verified. */
static int fact_dirty(const tuner *t, const fact_rt *f) {
    for (int u = f->row_use[0]; u < f->row_use[f->T]; u++)
        if (t->mod_step[t->use_slot[u]] > f->ver_step) return 1;
    return 0;
}

/* Own slots and anchors for the rows of fact r in the current bank. */
static int own_experts(tuner *t, const fact_rt *r, mem_scratch *sc) {
    mem_bank *b = t->bank;
    mem_sel sel;
    for (int row = 0; row < r->T; row++) {
        mem_rms_normalize(r->h + (size_t)row * b->C, sc->xhat, b->C);
        mem_query(b, sc->xhat, sc->q, sc);
        mem_select(b, sc->q, &sel, sc);
        int own = 0;
        for (int j = 0; j < sel.k && own < b->cfg.train_top; j++) {
            int32_t s = mem_find_slot(b, sel.id[j]);
            if (s >= 0 && s < t->n_frozen) continue; /* belongs to an earlier memory */
            s = mem_get_slot(b, sel.id[j]);
            if (s < 0 || mem_add_anchor(b, s, sc->q)) return MOME_ERR_NOMEM;
            own++;
        }
    }
    return 0;
}

/* Selects experts for every trained row in the current bank (the last):
 * the facts of its stage get own slots and anchors; then every fact's row
 * records what it reads, (slot, coefficient), with gates from the complete
 * anchor set, and whether the fact can be trained in this bank at all.
 * (Facts of earlier stages do not get slots here: this bank's query is
 * fitted to its own facts, and measured on 10,000 facts, earlier facts
 * trained in it collided and disturbed each other; if this bank disturbs
 * one, it fails verification and the next stage takes it.) */
static int select_experts(tuner *t) {
    mem_bank *b = t->bank;
    const int C = b->C, cur = t->mem->n_banks - 1;
    mem_scratch *sc = mem_scratch_new(t->mem, 1);
    if (!sc) return MOME_ERR_NOMEM;
    int rc = MOME_ERR_NOMEM;
    mem_sel sel;
    for (int i = 0; i < t->n; i++)
        if (t->f[i].stage == cur && own_experts(t, &t->f[i], sc)) goto done;
    t->n_use = 0;
    for (int i = 0; i < t->n; i++) {
        fact_rt *r = &t->f[i];
        r->trainable = 0;
        free(r->row_use);
        r->row_use = mome_malloc((size_t)(r->T + 1) * sizeof(int));
        if (!r->row_use) goto done;
        for (int row = 0; row < r->T; row++) {
            r->row_use[row] = (int)t->n_use;
            mem_rms_normalize(r->h + (size_t)row * C, sc->xhat, C);
            mem_query(b, sc->xhat, sc->q, sc);
            mem_select(b, sc->q, &sel, sc);
            int own = 0;
            for (int j = 0; j < sel.k; j++) {
                int32_t s = mem_find_slot(b, sel.id[j]);
                if (s < 0) continue;
                int trainable = 0;
                if (r->stage == cur && s >= t->n_frozen && own < b->cfg.train_top) {
                    trainable = 1;
                    r->trainable = 1;
                    own++;
                }
                float g = mem_gate(b, s, sc->q);
                if (g == 0.0f && !trainable) continue;
                if (push_use(t, s, sel.w[j] * g, trainable)) goto done;
            }
        }
        r->row_use[r->T] = (int)t->n_use;
    }
    rc = 0;
done:
    mem_scratch_free(sc, 1);
    return rc;
}

/* Trained rows of the facts that will own experts in bank `stage`. */
static int64_t stage_rows(const tuner *t, int stage) {
    int64_t n = 0;
    for (int i = 0; i < t->n; i++)
        if (t->f[i].stage == stage) n += t->f[i].T;
    return n;
}

/* Fits the current bank's query to the trained rows of the facts of its
 * stage. The regulariser, unless given: with few rows (fewer than
 * dimensions) the covariance is rank-deficient and a weak lambda blows up
 * directions the rows never varied in, so queries move with noise and
 * verification fails (10 facts at 0.01: one fact never verified); with many
 * rows a weak lambda is what keeps near-identical questions apart (10,000
 * facts: 96.5% at 0.1, 98.7% at 0.01; 1,000 facts: 100% at both, ppl
 * unchanged). So: 0.1 below 4C rows, 0.01 from there on. (A smooth 0.4C/rows
 * in between took 1,000 facts longer than either.) */
static int fit_bank(tuner *t) {
    const int C = t->bank->C, cur = t->mem->n_banks - 1;
    const int64_t nrows = stage_rows(t, cur);
    float *all = mome_malloc((size_t)(nrows ? nrows : 1) * C * sizeof(float));
    if (!all) return MOME_ERR_NOMEM;
    int64_t o = 0;
    for (int i = 0; i < t->n; i++) {
        if (t->f[i].stage != cur) continue;
        memcpy(all + o * C, t->f[i].h, (size_t)t->f[i].T * C * sizeof(float));
        o += t->f[i].T;
    }
    float reg = t->p->whiten_reg;
    if (reg <= 0) reg = nrows < 4 * (int64_t)C ? 0.1f : 0.01f;
    mem_bank_fit_query(t->bank, all, nrows, reg);
    free(all);
    return 0;
}

/* Adds bank b's output to every fact's rows (b is frozen from now on), with
 * the engine's own code, so the next bank trains on the input it will see. */
static int bake_bank(tuner *t, const mem_bank *b) {
    mem_scratch *sc = mem_scratch_new(t->mem, 1);
    if (!sc) return MOME_ERR_NOMEM;
    for (int i = 0; i < t->n; i++)
        for (int row = 0; row < t->f[i].T; row++) mem_apply_row(b, t->f[i].h + (size_t)row * b->C, sc);
    mem_scratch_free(sc, 1);
    return 0;
}

/* Appends an empty bank at the same layer, after the others (the engine
 * applies them in order), sized for the rows it will train (at least 16
 * experts per wanted slot, at most the first bank's N) with its own seed. */
static int add_bank(tuner *t, int64_t nrows) {
    mome_memory *m = t->mem;
    if (m->n_banks >= 64) return mome_seterr_code(MOME_ERR_ARG, "tune: a memory holds at most 64 banks");
    mem_bank *nb = realloc(m->banks, (size_t)(m->n_banks + 1) * sizeof *nb);
    if (!nb) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    m->banks = nb;
    mem_config cfg = m->banks[m->n_banks - 1].cfg;
    const uint32_t cap = m->banks[0].cfg.n_sub;
    const uint64_t want = (uint64_t)(nrows > 0 ? nrows : 1) * (uint64_t)cfg.train_top * 16;
    uint32_t ns = 64;
    while ((uint64_t)ns * ns < want && ns < cap) ns *= 2;
    cfg.n_sub = ns < cap ? ns : cap;
    if ((uint32_t)cfg.k > cfg.n_sub) cfg.k = (int32_t)cfg.n_sub;
    cfg.seed = t->p->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)m->n_banks;
    if (mem_bank_init(&m->banks[m->n_banks], &cfg, m->n_embd)) return MOME_ERR_NOMEM;
    m->n_banks++;
    t->bank = &m->banks[m->n_banks - 1];
    t->n_frozen = 0;
    return 0;
}

/* A new stage: the facts still training (stalled, or given up) get a bank of
 * their own, whose query is whitened over their rows alone, so the small
 * directions in which they differ from each other, which a query fitted
 * to all facts flattens, separate them. The current bank is frozen, rounded
 * to f16 as the file stores it, and baked into every row's input. */
static int new_stage(tuner *t) {
    f16_swap(t, 2); /* rounded for good: this bank never trains again */
    if (bake_bank(t, t->bank)) return MOME_ERR_NOMEM;
    const int next = t->mem->n_banks;
    int nf = 0;
    for (int i = 0; i < t->n; i++) {
        fact_rt *f = &t->f[i];
        if (f->state == 2) {
            /* verified, but an expert it reads changed since: verify again
             * (the new bank's usage lists no longer see this bank's changes) */
            if (fact_dirty(t, f)) f->state = 1;
            continue;
        }
        if (f->state == 1) continue; /* memorized, waiting for verification */
        f->stage = next;
        f->state = 0;
        f->n_fail = 0;
        f->target_loss = t->p->target_loss;
        nf++;
    }
    t->stage_facts = nf;
    t->stage_rows = stage_rows(t, next);
    int rc = add_bank(t, t->stage_rows);
    if (!rc) rc = fit_bank(t);
    /* optimizer state belongs to the bank being trained */
    t->cap_opt = 0;
    if (!rc) rc = select_experts(t);
    if (!rc) rc = grow_opt(t);
    t->best_done = 0;
    t->since_best = 0;
    if (!rc) progress(t, "bank");
    return rc;
}

static int grow_opt(tuner *t) {
    const int32_t S = t->bank->n_slots;
    if (S <= t->cap_opt) return 0;
    const size_t rc = (size_t)t->bank->cfg.rank * t->bank->C;
    float **arr[4] = {&t->mA, &t->vA, &t->mB, &t->vB};
    for (int i = 0; i < 4; i++) {
        float *p = realloc(*arr[i], (size_t)S * rc * sizeof(float));
        if (!p) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory for optimizer state");
        memset(p + (size_t)t->cap_opt * rc, 0, (size_t)(S - t->cap_opt) * rc * sizeof(float));
        *arr[i] = p;
    }
    int32_t *ts = realloc(t->tstep, (size_t)S * sizeof(int32_t));
    if (!ts) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    memset(ts + t->cap_opt, 0, (size_t)(S - t->cap_opt) * sizeof(int32_t));
    t->tstep = ts;
    int64_t *ms = realloc(t->mod_step, (size_t)S * sizeof(int64_t));
    if (!ms) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    memset(ms + t->cap_opt, 0, (size_t)(S - t->cap_opt) * sizeof(int64_t));
    t->mod_step = ms;
    t->cap_opt = S;
    return 0;
}

/* One optimizer step on facts idx[0..nb). */
static int train_step(tuner *t, const int *idx, int nb, float *X, float *dX, ts_seq *seqs, float *loss, int *ok,
                      float *gA, float *gB, int32_t *touch, int32_t *touched, float *xhat_buf, float *rms_buf) {
    mem_bank *b = t->bank;
    const int C = b->C, r = b->cfg.rank;
    const size_t rc = (size_t)r * C;
    float ubuf[MEM_MAX_RANK];
    int R = 0;
    for (int k = 0; k < nb; k++) {
        fact_rt *f = &t->f[idx[k]];
        seqs[k].n_prefix = f->P - 1;
        seqs[k].kpre = f->kpre;
        seqs[k].vpre = f->vpre;
        seqs[k].T = f->T;
        seqs[k].row0 = R;
        seqs[k].target = f->target;
        for (int row = 0; row < f->T; row++, R++) {
            float *x = X + (size_t)R * C, *xh = xhat_buf + (size_t)R * C;
            memcpy(x, f->h + (size_t)row * C, (size_t)C * sizeof(float));
            const float rms = mem_rms_normalize(x, xh, C);
            rms_buf[R] = rms;
            for (int u = f->row_use[row]; u < f->row_use[row + 1]; u++) {
                const int32_t s = t->use_slot[u];
                const float coef = t->use_coef[u] * rms;
                mem_expert_forward(b, s, coef, xh, x, ubuf);
            }
        }
    }
    int rc2 = tstack_step(&t->st, seqs, nb, X, dX, loss, ok, 1);
    if (rc2) return rc2;
    /* gradients of the trainable experts, gathered in a compact buffer */
    int nt = 0;
    R = 0;
    for (int k = 0; k < nb; k++) {
        fact_rt *f = &t->f[idx[k]];
        for (int row = 0; row < f->T; row++, R++) {
            const float *dx = dX + (size_t)R * C, *xh = xhat_buf + (size_t)R * C;
            for (int u = f->row_use[row]; u < f->row_use[row + 1]; u++) {
                if (!t->use_train[u]) continue;
                const int32_t s = t->use_slot[u];
                const float coef = t->use_coef[u] * rms_buf[R];
                if (touch[s] < 0) {
                    touch[s] = nt;
                    touched[nt] = s;
                    memset(gA + (size_t)nt * rc, 0, rc * sizeof(float));
                    memset(gB + (size_t)nt * rc, 0, rc * sizeof(float));
                    nt++;
                }
                mem_expert_backward(b, s, coef, xh, dx, gA + (size_t)touch[s] * rc, gB + (size_t)touch[s] * rc);
            }
        }
    }
    /* sparse Adam on the touched slots */
    const float lr = t->p->lr, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    for (int i = 0; i < nt; i++) {
        const int32_t s = touched[i];
        touch[s] = -1;
        t->mod_step[s] = t->step + 1;
        const int32_t ts = ++t->tstep[s];
        const float c1 = 1.0f / (1.0f - powf(b1, (float)ts)), c2 = 1.0f / (1.0f - powf(b2, (float)ts));
        float *P[2] = {b->A + (size_t)s * rc, b->B + (size_t)s * rc};
        float *Mm[2] = {t->mA + (size_t)s * rc, t->mB + (size_t)s * rc};
        float *Vv[2] = {t->vA + (size_t)s * rc, t->vB + (size_t)s * rc};
        const float *G[2] = {gA + (size_t)i * rc, gB + (size_t)i * rc};
        for (int w = 0; w < 2; w++)
            for (size_t j = 0; j < rc; j++) {
                const float g = G[w][j];
                Mm[w][j] = b1 * Mm[w][j] + (1 - b1) * g;
                Vv[w][j] = b2 * Vv[w][j] + (1 - b2) * g * g;
                P[w][j] -= lr * (Mm[w][j] * c1) / (sqrtf(Vv[w][j] * c2) + eps);
            }
    }
    return 0;
}

/* Greedy decoding with the real engine and the memory; 1 if the answer
 * tokens and then an end-of-generation token come out. The first t->lcp
 * prompt tokens must already be in c's cache (decoded with the memory as it
 * is now): splitting a prompt gives bit-identical results (test_model). */
static int verify_fact(tuner *t, mome_ctx *c, const fact_rt *r) {
    if (mome_decode(c, r->prompt + t->lcp, r->P - t->lcp, t->lcp, 0)) return -1;
    const int V = t->m->hp.n_vocab;
    for (int i = 0; i < r->T; i++) {
        const float *lg = mome_get_logits(c, -1);
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        if (i == r->T - 1) return mome_token_is_eog(t->m, best) ? 1 : 0;
        if (best != r->target[i]) return 0;
        if (mome_decode(c, &best, 1, r->P + i, 0)) return -1;
    }
    return 0;
}

/* The finished memory stores experts and anchors in f16, so verification
 * must decode with exactly those values: f16_swap(t, 1) keeps the f32
 * originals in t->f32_keep and rounds in place; f16_swap(t, 0) restores
 * them; f16_swap(t, 2) rounds for good (a bank frozen for a new stage).
 * Checkpoints are written between rounds, in f32, so a resume is exact. */
static int f16_swap(tuner *t, int round) {
    mem_bank *b = t->bank;
    const size_t nw = (size_t)b->n_slots * b->cfg.rank * b->C, na = (size_t)b->n_anchors * 2 * b->cfg.dk;
    float *arr[3] = {b->A, b->B, b->anchors};
    const size_t cnt[3] = {nw, nw, na};
    if (round == 1) {
        float *keep = realloc(t->f32_keep, (2 * nw + na + 1) * sizeof(float));
        if (!keep) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (f32 copy of %zu expert weights)", 2 * nw);
        t->f32_keep = keep;
    }
    float *k = t->f32_keep;
    for (int a = 0; a < 3; a++) {
        if (round) {
            if (round == 1) memcpy(k, arr[a], cnt[a] * sizeof(float));
            for (size_t i = 0; i < cnt[a]; i++) arr[a][i] = quant_f16_to_f32(quant_f32_to_f16(arr[a][i]));
        } else memcpy(arr[a], k, cnt[a] * sizeof(float));
        if (round != 2) k += cnt[a];
    }
    return 0;
}

/* ------------------------------------------------------- checkpointing */

static int save_checkpoint(tuner *t, const char *path) {
    /* the memory itself, then the optimizer and per-fact state beside it */
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s.mem", path);
    if (mem_save(t->mem, mpath, 0)) return -1;
    gguf_writer *w;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    const size_t rc_ = (size_t)t->bank->cfg.rank * t->bank->C;
    const int32_t S = t->bank->n_slots;
    int32_t *st = malloc((size_t)(t->n ? t->n : 1) * sizeof(int32_t));
    int32_t *sg = malloc((size_t)(t->n ? t->n : 1) * sizeof(int32_t));
    int64_t *vs = malloc((size_t)(t->n ? t->n : 1) * sizeof(int64_t));
    float *tl = malloc((size_t)(t->n ? t->n : 1) * sizeof(float));
    if (!st || !sg || !vs || !tl) {
        free(st); free(sg); free(vs); free(tl);
        gguf_writer_free(w);
        return MOME_ERR_NOMEM;
    }
    for (int i = 0; i < t->n; i++) {
        st[i] = t->f[i].state;
        sg[i] = t->f[i].stage;
        vs[i] = t->f[i].ver_step;
        tl[i] = t->f[i].target_loss;
    }
    double elapsed = t->t_prev + mome_time_s() - t->t0;
#define CK(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    CK(gguf_writer_add_str(w, "general.architecture", "mome-checkpoint"));
    CK(gguf_writer_add_u32(w, "ckpt.version", 1));
    CK(gguf_writer_add_i64(w, "ckpt.step", t->step));
    CK(gguf_writer_add_f64(w, "ckpt.elapsed_s", elapsed));
    CK(gguf_writer_add_i32(w, "ckpt.n_facts", t->n));
    CK(gguf_writer_add_i32(w, "ckpt.n_slots", S));
    CK(gguf_writer_add_i32(w, "ckpt.n_frozen", t->n_frozen));
    CK(gguf_writer_add_arr(w, "ckpt.fact_state", GGUF_TYPE_INT32, st, (uint64_t)t->n));
    CK(gguf_writer_add_arr(w, "ckpt.fact_target", GGUF_TYPE_FLOAT32, tl, (uint64_t)t->n));
    CK(gguf_writer_add_arr(w, "ckpt.fact_stage", GGUF_TYPE_INT32, sg, (uint64_t)t->n));
    /* when each verified fact was verified and each slot last changed: a
     * resumed run verifies again only what changed since */
    CK(gguf_writer_add_arr(w, "ckpt.fact_ver_step", GGUF_TYPE_INT64, vs, (uint64_t)t->n));
    if (S > 0) {
        CK(gguf_writer_add_arr(w, "ckpt.slot_steps", GGUF_TYPE_INT32, t->tstep, (uint64_t)S));
        CK(gguf_writer_add_arr(w, "ckpt.slot_mod_step", GGUF_TYPE_INT64, t->mod_step, (uint64_t)S));
        int64_t ne[2] = {(int64_t)rc_, S};
        CK(gguf_writer_add_tensor(w, "opt.mA", 2, ne, MOME_DTYPE_F32, t->mA, rc_ * S * 4, GGUF_WRITER_REF));
        CK(gguf_writer_add_tensor(w, "opt.vA", 2, ne, MOME_DTYPE_F32, t->vA, rc_ * S * 4, GGUF_WRITER_REF));
        CK(gguf_writer_add_tensor(w, "opt.mB", 2, ne, MOME_DTYPE_F32, t->mB, rc_ * S * 4, GGUF_WRITER_REF));
        CK(gguf_writer_add_tensor(w, "opt.vB", 2, ne, MOME_DTYPE_F32, t->vB, rc_ * S * 4, GGUF_WRITER_REF));
    }
    rc = gguf_writer_write_file(w, path);
done:
#undef CK
    gguf_writer_free(w);
    free(st);
    free(sg);
    free(vs);
    free(tl);
    return rc;
}

/* What expert selection needs from a checkpoint: how many slots of the
 * trained bank came from an earlier memory, and the bank each fact owns
 * experts in (a checkpoint without it, one bank, leaves them as they are). */
static int load_checkpoint_stages(tuner *t, const char *path) {
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) return rc;
    int32_t nf = 0;
    gguf_get_i32(f, "ckpt.n_frozen", &nf);
    t->n_frozen = nf;
    const gguf_kv *sg;
    int got = gguf_get_arr(f, "ckpt.fact_stage", GGUF_TYPE_INT32, &sg);
    rc = 0;
    if (got == 1) {
        if (sg->n != (uint64_t)t->n) {
            rc = mome_seterr_code(MOME_ERR_ARG, "%s: the checkpoint holds %llu facts, the fact file %d: resume with the same facts",
                                  path, (unsigned long long)sg->n, t->n);
        } else {
            for (int i = 0; i < t->n && !rc; i++) {
                int32_t v;
                memcpy(&v, sg->data + 4 * (size_t)i, 4);
                if (v < 0 || v >= t->mem->n_banks)
                    rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %d names bank %d of %d", path, i, v, t->mem->n_banks);
                else t->f[i].stage = v;
            }
        }
    } else if (got < 0) rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: ckpt.fact_stage is not an int32 array", path);
    gguf_close(f);
    return rc;
}

/* Restores optimizer and fact state; the memory was loaded from path.mem. */
static int load_checkpoint(tuner *t, const char *path) {
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) return rc;
    rc = MOME_ERR_FORMAT;
    int32_t n, S, nf;
    int64_t step = 0;
    int keep_verified = 1;
    const gguf_kv *st, *tl, *ss = NULL;
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != 1 || !gguf_str_eq(arch, "mome-checkpoint") ||
        gguf_get_i32(f, "ckpt.n_facts", &n) != 1 || gguf_get_i32(f, "ckpt.n_slots", &S) != 1 ||
        gguf_get_i32(f, "ckpt.n_frozen", &nf) != 1 || gguf_get_arr(f, "ckpt.fact_state", GGUF_TYPE_INT32, &st) != 1 ||
        gguf_get_arr(f, "ckpt.fact_target", GGUF_TYPE_FLOAT32, &tl) != 1) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: not a mome checkpoint (or damaged)", path);
        goto done;
    }
    {
        const gguf_kv *kv = gguf_get_kv(f, "ckpt.step");
        if (kv) step = (int64_t)gguf_arr_get_num(kv, 0);
        kv = gguf_get_kv(f, "ckpt.elapsed_s");
        if (kv) t->t_prev = gguf_arr_get_num(kv, 0);
    }
    if (n != t->n || (uint64_t)n != st->n || (uint64_t)n != tl->n) {
        mome_seterr_code(MOME_ERR_ARG, "%s: the checkpoint holds %d facts, the fact file %d: resume with the same facts",
                         path, n, t->n);
        goto done;
    }
    if (S != t->bank->n_slots || nf != t->n_frozen) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: checkpoint and memory disagree (%d vs %d experts)", path, S,
                         t->bank->n_slots);
        goto done;
    }
    if (grow_opt(t)) goto done;
    if (S > 0) {
        if (gguf_get_arr(f, "ckpt.slot_steps", GGUF_TYPE_INT32, &ss) != 1 || ss->n != (uint64_t)S) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: slot_steps missing", path);
            goto done;
        }
        memcpy(t->tstep, ss->data, (size_t)S * 4);
        const gguf_kv *ms;
        if (gguf_get_arr(f, "ckpt.slot_mod_step", GGUF_TYPE_INT64, &ms) == 1 && ms->n == (uint64_t)S)
            memcpy(t->mod_step, ms->data, (size_t)S * 8);
        else keep_verified = 0;
        const size_t rc_ = (size_t)t->bank->cfg.rank * t->bank->C;
        const char *names[4] = {"opt.mA", "opt.vA", "opt.mB", "opt.vB"};
        float *dst[4] = {t->mA, t->vA, t->mB, t->vB};
        for (int i = 0; i < 4; i++) {
            const gguf_tensor *ten = gguf_find_tensor(f, names[i]);
            if (!ten || ten->type != MOME_DTYPE_F32 || ten->nbytes != rc_ * S * 4) {
                mome_seterr_code(MOME_ERR_FORMAT, "%s: optimizer tensor %s missing or wrong size", path, names[i]);
                goto done;
            }
            memcpy(dst[i], ten->data, ten->nbytes);
        }
    }
    const gguf_kv *vs;
    if (gguf_get_arr(f, "ckpt.fact_ver_step", GGUF_TYPE_INT64, &vs) != 1 || vs->n != (uint64_t)n) keep_verified = 0;
    for (int i = 0; i < n; i++) {
        int32_t s;
        float tg;
        memcpy(&s, st->data + 4 * (size_t)i, 4);
        memcpy(&tg, tl->data + 4 * (size_t)i, 4);
        if (s < 0 || s > 2) s = 0; /* given up (3): tried again */
        if (s == 2 && keep_verified) {
            /* stays verified unless an expert it reads changes later */
            int64_t v;
            memcpy(&v, vs->data + 8 * (size_t)i, 8);
            t->f[i].ver_step = v >= 0 && v <= step ? v : 0;
        } else if (s == 2) s = 1; /* an old checkpoint: verified again after resume */
        t->f[i].state = s;
        t->f[i].target_loss = tg > 0 && tg < 100 ? tg : t->p->target_loss;
    }
    t->step = step;
    rc = 0;
done:
    gguf_close(f);
    return rc;
}

/* --------------------------------------------------------------- driver */

/* Gradient buffers for the slots one batch can touch in the current bank. */
typedef struct touch_buf {
    float *gA, *gB;        /* (max_touch, r*C) */
    int32_t *touch;        /* (S) slot -> row in gA/gB, or -1 */
    int32_t *touched;      /* (max_touch) */
} touch_buf;

static int touch_size(tuner *t, int B, touch_buf *tb) {
    const size_t rcs = (size_t)t->bank->cfg.rank * t->bank->C;
    int64_t max_touch = 0;
    for (int i = 0; i < t->n; i++) {
        int64_t nt = 0;
        for (int u = t->f[i].row_use[0]; u < t->f[i].row_use[t->f[i].T]; u++) nt += t->use_train[u];
        if (nt > max_touch) max_touch = nt;
    }
    max_touch = max_touch * B + 1;
    const int32_t S = t->bank->n_slots + 1;
    float *a = realloc(tb->gA, (size_t)max_touch * rcs * 4);
    if (a) tb->gA = a;
    float *b = realloc(tb->gB, (size_t)max_touch * rcs * 4);
    if (b) tb->gB = b;
    int32_t *c = realloc(tb->touched, (size_t)max_touch * 4);
    if (c) tb->touched = c;
    int32_t *d = realloc(tb->touch, (size_t)S * 4);
    if (d) tb->touch = d;
    if (!a || !b || !c || !d) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory for gradients");
    for (int32_t s = 0; s < S; s++) tb->touch[s] = -1;
    return 0;
}

/* A new stage from the training loop: the bank, the gradient buffers sized
 * for it, and the verification context's memory scratch. */
static int start_stage(tuner *t, int B, touch_buf *tb, mome_ctx *vc) {
    int rc = new_stage(t);
    if (!rc) rc = touch_size(t, B, tb);
    if (!rc) rc = mome_ctx_set_memory(vc, t->mem);
    return rc;
}

static void tuner_free(tuner *t) {
    if (t->f)
        for (int i = 0; i < t->n; i++) {
            free(t->f[i].prompt); free(t->f[i].target); free(t->f[i].h); free(t->f[i].kpre);
            free(t->f[i].vpre); free(t->f[i].row_use);
        }
    free(t->f);
    free(t->use_slot); free(t->use_coef); free(t->use_train);
    free(t->mA); free(t->vA); free(t->mB); free(t->vB); free(t->tstep); free(t->mod_step); free(t->f32_keep);
    tstack_free(&t->st);
    mome_memory_free(t->mem);
    facts_free(t->fs);
}

static int new_memory(tuner *t) {
    const mome_tune_params *p = t->p;
    const llama_hparams *hp = &t->m->hp;
    mem_config cfg = mem_default_config();
    if (p->log2_experts < 4 || p->log2_experts > 32 || p->log2_experts % 2)
        return mome_seterr_code(MOME_ERR_ARG, "--experts-log2 must be an even number in [4, 32], got %d", p->log2_experts);
    cfg.n_sub = 1u << (p->log2_experts / 2);
    cfg.k = p->top_k;
    cfg.rank = p->rank;
    cfg.train_top = p->train_top;
    cfg.dk = p->key_dim;
    cfg.layer = p->layer >= 0 ? p->layer : (hp->n_layer * 4) / 5;
    cfg.gate_lo = p->gate_lo;
    cfg.gate_hi = p->gate_hi;
    cfg.seed = p->seed;
    if (mem_config_check(&cfg, hp->n_embd, hp->n_layer)) return MOME_ERR_ARG;
    mome_memory *mem = calloc(1, sizeof *mem);
    if (!mem) return MOME_ERR_NOMEM;
    const char *sha = mome_model_sha256(t->m);
    if (!sha) { free(mem); return MOME_ERR_IO; }
    memcpy(mem->base_sha256, sha, 65);
    mem->base_name = strdup(t->m->name ? t->m->name : t->m->path);
    mem->n_embd = hp->n_embd;
    mem->n_layer = hp->n_layer;
    mem->n_vocab = hp->n_vocab;
    mem->n_banks = 1;
    mem->banks = calloc(1, sizeof(mem_bank));
    if (!mem->banks || mem_bank_init(&mem->banks[0], &cfg, hp->n_embd)) {
        mome_memory_free(mem);
        return MOME_ERR_NOMEM;
    }
    t->mem = mem;
    return 0;
}

int mome_tune_lora(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs);

int mome_tune(mome_model *m, const mome_tune_params *p_in, mome_tune_report *rep) {
    mome_tune_params p = *p_in;
    memset(rep, 0, sizeof *rep);
    if (!p.facts_path || !p.out_path) return mome_seterr_code(MOME_ERR_ARG, "tune: facts and output paths are required");
    tuner t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.p = &p;
    t.t0 = mome_time_s();
    int rc = facts_load(p.facts_path, (enum facts_conflict)p.on_conflict, &t.fs);
    if (rc) return rc;
    if (p.method == MOME_TUNE_LORA) {
        rc = mome_tune_lora(m, &p, rep, t.fs);
        facts_free(t.fs);
        return rc;
    }
    if (p.lr <= 0) p.lr = 0.02f;
    t.n = t.fs->n;
    t.f = mome_calloc((size_t)t.n, sizeof(fact_rt));
    if (!t.f) { tuner_free(&t); return MOME_ERR_NOMEM; }
    char ckpt[4096], ckpt_mem[4096];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", p.out_path);
    snprintf(ckpt_mem, sizeof ckpt_mem, "%s.ckpt.mem", p.out_path);
    int resumed = 0;
    if (p.resume && access(ckpt, R_OK) == 0 && access(ckpt_mem, R_OK) == 0) {
        if ((rc = mome_memory_load(ckpt_mem, m, &t.mem))) goto out;
        resumed = 1;
    } else if (p.resume) {
        rc = mome_seterr_code(MOME_ERR_IO, "--resume: no checkpoint at %s (and %s)", ckpt, ckpt_mem);
        goto out;
    } else if (p.init_memory) {
        if ((rc = mome_memory_load(p.init_memory, m, &t.mem))) goto out;
    } else if ((rc = new_memory(&t))) goto out;
    /* the bank being trained is the last; the ones before it are frozen */
    t.bank = &t.mem->banks[t.mem->n_banks - 1];

    const int n_ctx = m->hp.n_ctx_train < 2048 ? m->hp.n_ctx_train : 2048;
    if ((rc = prepare_tokens(&t, n_ctx))) goto out;
    for (int i = 0; i < t.n; i++) t.f[i].stage = t.mem->n_banks - 1;
    /* the longest prompt head all facts share, leaving each at least one token */
    t.lcp = t.n ? t.f[0].P - 1 : 0;
    for (int i = 1; i < t.n && t.lcp > 0; i++) {
        int k = 0;
        const int lim = t.lcp < t.f[i].P - 1 ? t.lcp : t.f[i].P - 1;
        while (k < lim && t.f[i].prompt[k] == t.f[0].prompt[k]) k++;
        t.lcp = k;
    }
    int max_pos = 8, max_T = 1;
    for (int i = 0; i < t.n; i++) {
        if (t.f[i].P + t.f[i].T > max_pos) max_pos = t.f[i].P + t.f[i].T;
        if (t.f[i].T > max_T) max_T = t.f[i].T;
    }
    /* frozen slots: those that came with an earlier memory (not the checkpoint's own) */
    if (resumed) {
        if ((rc = load_checkpoint_stages(&t, ckpt))) goto out;
    } else t.n_frozen = t.bank->n_slots;
    {
        mome_ctx_params cp = mome_ctx_default_params();
        cp.n_ctx = max_pos + 8;
        cp.n_batch = max_pos + 8;
        cp.n_threads = p.n_threads;
        mome_ctx *c;
        if ((rc = mome_ctx_init(m, &cp, &c))) goto out;
        c->capture = mome_malloc((size_t)c->n_batch * m->hp.n_embd * sizeof(float));
        if (!c->capture) { mome_ctx_free(c); rc = MOME_ERR_NOMEM; goto out; }
        if (mome_memory_n_trained(t.mem) > 0) mome_ctx_set_memory(c, t.mem);
        progress(&t, "prepare");
        rc = base_pass(&t, c);
        free(c->capture);
        c->capture = NULL;
        mome_ctx_free(c);
        if (rc) goto out;
    }
    /* an earlier memory with several banks: its banks all stay as they are
     * and the new facts get a bank of their own after them */
    const int append = !resumed && p.init_memory && t.mem->n_banks > 1;
    /* the rows enter the trained bank with what the banks before it add */
    for (int b = 0; b < t.mem->n_banks - (append ? 0 : 1); b++)
        if ((rc = bake_bank(&t, &t.mem->banks[b]))) goto out;
    if (append) {
        for (int i = 0; i < t.n; i++) t.f[i].stage = t.mem->n_banks; /* the bank about to be added */
        if ((rc = add_bank(&t, stage_rows(&t, t.mem->n_banks)))) goto out;
    }
    if (!resumed && (!p.init_memory || append) && (rc = fit_bank(&t))) goto out;
    if ((rc = select_experts(&t)) || (rc = grow_opt(&t))) goto out;
    if (resumed && (rc = load_checkpoint(&t, ckpt))) goto out;
    const int B = p.batch > 0 ? p.batch : 32;
    if ((rc = tstack_init(&t.st, m, t.bank->cfg.layer, max_pos + 8, B * max_T))) goto out;

    {
        const int C = m->hp.n_embd, R = B * max_T;
        touch_buf tb = {0};
        float *X = mome_malloc((size_t)R * C * 4), *dX = mome_malloc((size_t)R * C * 4);
        float *xh = mome_malloc((size_t)R * C * 4), *rmsb = mome_malloc((size_t)R * 4);
        ts_seq *seqs = mome_malloc((size_t)B * sizeof(ts_seq));
        float *loss = mome_malloc((size_t)B * 4);
        int *ok = mome_malloc((size_t)B * sizeof(int));
        int *idx = mome_malloc((size_t)(t.n ? t.n : 1) * sizeof(int));
        mome_ctx *vc = NULL;
        mome_ctx_params cp = mome_ctx_default_params();
        cp.n_ctx = max_pos + 8;
        cp.n_batch = max_pos + 8;
        cp.n_threads = p.n_threads;
        if (!X || !dX || !xh || !rmsb || !seqs || !loss || !ok || !idx || touch_size(&t, B, &tb) ||
            mome_ctx_init(m, &cp, &vc)) {
            rc = MOME_ERR_NOMEM;
        } else {
            mome_ctx_set_memory(vc, t.mem);
            double last_ckpt = mome_time_s(), last_prog = 0;
            int cursor = 0, stop = 0;
            while (!stop) {
                /* the pool: facts not yet memorized */
                int np = 0;
                for (int i = 0; i < t.n; i++)
                    if (t.f[i].state == 0) idx[np++] = i;
                if (np == 0) {
                    /* verify with the real engine every fact not verified yet, and
                     * every verified fact that reads an expert trained since */
                    progress(&t, "verify");
                    int bad = 0;
                    if ((rc = f16_swap(&t, 1))) break;
                    if (t.lcp > 0 && mome_decode(vc, t.f[0].prompt, t.lcp, 0, 0)) rc = -1;
                    for (int i = 0; i < t.n && !rc; i++) {
                        fact_rt *f = &t.f[i];
                        if (f->state == 3) continue;
                        if (f->state == 2 && !fact_dirty(&t, f)) continue;
                        if (mome_time_s() - last_prog > 0.5) {
                            progress(&t, "verify");
                            last_prog = mome_time_s();
                        }
                        int v = verify_fact(&t, vc, f);
                        if (v < 0) { rc = -1; break; }
                        if (v) {
                            f->state = 2;
                            f->ver_step = t.step;
                        } else if (++f->n_fail >= 6) {
                            f->state = 3; /* give up: reported as not memorized */
                        } else {
                            /* train it further: a lower loss target widens the margin
                             * that must survive the quantized engine */
                            f->state = 0;
                            f->target_loss *= 0.25f;
                            bad++;
                        }
                    }
                    f16_swap(&t, 0);
                    if (rc) break;
                    if (bad == 0) {
                        /* facts given up after repeated failed verifications get a
                         * bank of their own, while banks are allowed */
                        int given_up = 0;
                        for (int i = 0; i < t.n; i++) given_up += t.f[i].state == 3;
                        if (given_up == 0 || p.patience <= 0 || t.mem->n_banks >= p.max_banks) break;
                        if ((rc = start_stage(&t, B, &tb, vc))) break;
                        cursor = 0;
                    }
                    continue;
                }
                /* Only facts with trainable experts in this bank are trained; the
                 * others (they failed verification after a later bank disturbed
                 * them) wait for a bank of their own. Stalled: no fact newly
                 * memorized for `patience` passes over the trainable pool (a
                 * fifth of that while facts wait), or nothing trainable: the
                 * pool gets a new bank. */
                {
                    int ntr = 0;
                    for (int k = 0; k < np; k++)
                        if (t.f[idx[k]].trainable) idx[ntr++] = idx[k];
                    const int64_t pat = ntr < np && p.patience >= 5 ? p.patience / 5 : p.patience;
                    const int can_bank = p.patience > 0 && t.mem->n_banks < p.max_banks;
                    if (ntr == 0 || (can_bank && t.since_best >= pat * ntr)) {
                        if (can_bank) {
                            if ((rc = start_stage(&t, B, &tb, vc))) break;
                        } else {
                            /* no bank left and nothing trainable: the waiting facts are
                             * given up (trainable facts train on, up to the limits) */
                            for (int i = 0; i < t.n; i++)
                                if (t.f[i].state == 0) t.f[i].state = 3;
                        }
                        cursor = 0;
                        continue;
                    }
                    np = ntr;
                }
                if (cursor >= np) cursor = 0;
                int nb = np - cursor < B ? np - cursor : B;
                if ((rc = train_step(&t, idx + cursor, nb, X, dX, seqs, loss, ok, tb.gA, tb.gB, tb.touch, tb.touched, xh,
                                     rmsb)))
                    break;
                t.step++;
                for (int k = 0; k < nb; k++) {
                    fact_rt *f = &t.f[idx[cursor + k]];
                    f->loss = loss[k];
                    f->ok = ok[k];
                    f->steps++;
                    if (ok[k] && loss[k] < f->target_loss) f->state = 1;
                }
                cursor += nb;
                /* progress: the most facts memorized so far, for the stall test */
                {
                    int done = 0;
                    for (int i = 0; i < t.n; i++) done += t.f[i].state == 1 || t.f[i].state == 2;
                    if (done > t.best_done) {
                        t.best_done = done;
                        t.since_best = 0;
                    } else t.since_best += nb;
                }
                const double now = mome_time_s();
                if (now - last_prog > 0.25) {
                    progress(&t, "train");
                    last_prog = now;
                }
                if (p.checkpoint_s > 0 && now - last_ckpt > p.checkpoint_s) {
                    if ((rc = save_checkpoint(&t, ckpt))) break;
                    last_ckpt = mome_time_s();
                }
                if (p.max_steps > 0 && t.step >= p.max_steps) stop = 1;
                if (p.max_minutes > 0 && (t.t_prev + now - t.t0) > 60.0 * p.max_minutes) stop = 1;
            }
            if (!rc && stop) {
                /* limits reached: save a checkpoint so the run can be resumed */
                rc = save_checkpoint(&t, ckpt);
            }
        }
        free(X); free(dX); free(xh); free(rmsb); free(tb.gA); free(tb.gB); free(tb.touch); free(tb.touched); free(seqs);
        free(loss); free(ok);
        free(idx);
        mome_ctx_free(vc);
        if (rc) goto out;
    }
    if ((rc = mem_save(t.mem, p.out_path, 1))) goto out;
    {
        int all_done = 1;
        for (int i = 0; i < t.n; i++) all_done &= t.f[i].state == 2;
        if (all_done) {
            unlink(ckpt);
            unlink(ckpt_mem);
        }
    }
    progress(&t, "done");
    rep->n_facts = t.n;
    for (int i = 0; i < t.n; i++) {
        rep->n_memorized += t.f[i].state == 2;
        rep->mean_loss += t.f[i].loss;
        if (t.f[i].state != 2 && rep->n_missing_lines < 32) rep->missing_lines[rep->n_missing_lines++] = t.fs->v[i].line;
    }
    rep->mean_loss = t.n ? rep->mean_loss / t.n : 0;
    rep->steps = t.step;
    rep->seconds = t.t_prev + mome_time_s() - t.t0;
    rep->n_trained_experts = mome_memory_n_trained(t.mem);
    rep->n_banks = t.mem->n_banks;
out:
    tuner_free(&t);
    return rc;
}
