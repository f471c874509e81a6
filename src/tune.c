/* tune.c - Memory Tuning: give every fact its own experts (value vectors at
 * the input of the value block) and train them until greedy decoding states
 * the fact exactly; select them by keys the frozen model computes from the
 * question (memory.h).
 *
 *   prepare();                       facts -> tokens; one engine pass per fact and context caches
 *                                    the value block's input at the answer rows, the K/V above it,
 *                                    and the fact's keys at the decision row; the gate; each
 *                                    fact's mixture under its own keys (prepare_mixtures)
 *   while (facts train) {
 *       cache_more();                at most cached_facts facts hold their contexts (about 1 MB
 *                                    each on SmolLM2: 10,000 facts held 11 GiB); done facts free
 *                                    theirs and the next facts are prepared
 *       train_round();               a batch of facts: the blocks above in f32 (train_stack.c),
 *                                    dLoss/dX -> each fact's values (and with top_k_train_all its
 *                                    mixture partners'), Adam
 *       verify_round();              learned facts decoded greedily by the engine with the memory
 *                                    (values rounded to f16 as saved); failures train on; verified
 *                                    facts whose mixture changed are decoded again
 *       checkpoint();                memory + per-fact state, atomically
 *   }
 *   save();
 *
 * With one fact per question (top_k = 1, memory version 2) facts do not
 * share experts, so training one never disturbs another: a verified fact
 * stays verified. With a mixture of k (memory.h) a fact's rows also carry
 * its partners' values (the facts its own keys select besides it, fixed by
 * the keys, so computed once; weighted as the engine weighs them, and only
 * on the rows where the partner's answer still matches). The experts trained
 * per row: either the fact's own values alone, its partners' held (default),
 * or every participant's, dv_i = a_i rms(h) dX (top_k_train_all, the
 * paper's choice). Either way a partner's values change while it trains, so
 * a verified fact whose mixture holds a fact that changed is decoded again
 * at the next verification (a neighbour can undo it; it then trains on,
 * without a failure counted). Facts of an earlier memory are held: they can
 * be partners, but are not trained. Contexts: besides the fact's own wording, up
 * to `augment` contexts the tuner makes itself (a system prompt, an earlier
 * exchange, lower case, ...; context_kind) train the same values, so that
 * they hold when the question is asked in surroundings it was not tuned in;
 * with a margin the others are decoded for their keys, which calibrate each
 * fact's margin (prepare_margins). The keys are
 * taken from the fact's own wording, and (alt_keys) from it lower-cased.
 *
 * The relation gate (memory.h) is fitted once the keys are known: the
 * facts' contexts are accepted; other questions about the facts' subjects
 * (relation_templates, for facts that name a subject) and the generic
 * questions are rejected.
 */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "adam.h"
#include "answer.h"
#include "blas.h"
#include "eval.h"
#include "facts.h"
#include "finetune.h"
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
    p.key_layer = -1;
    p.layer = -1;
    p.route_threshold = MEM_DEFAULT_TAU;
    p.w_pool = MEM_DEFAULT_W_POOL;
    p.cover = NAN;
    p.verify = NAN;
    p.verify_unnamed = NAN;
    p.verify_layer = -1;
    p.verify_key = MOME_VERIFY_MEANING;
    p.route_margin = NAN;
    p.route_margin_share = NAN;
    p.top_k = 0;            /* the loaded memory's, 1 for a new one */
    p.top_k_temp = MEM_DEFAULT_MIX_TEMP;
    p.top_k_tau = NAN;      /* the route threshold */
    p.augment = 2;
    p.alt_keys = 1;
    p.subject_check = 1;
    p.infer_subjects = 3;
    p.gate_questions = 0;
    p.gate_margin = 1.0f;
    p.cached_facts = 2048;
    p.lr = 0.0f; /* method default */
    p.target_loss = 0.01f;
    p.batch = 32;
    p.seed = 1234;
    p.checkpoint_s = 60;
    p.lora_rank = 8;
    p.lora_alpha = 16;
    return p;
}

/* ------------------------------------------------------------ contexts */

/* The tuner's own surroundings for a question (the evaluation uses other
 * ones, see eval.c, so that context recall measures what was not trained). */
static const char *const aug_system[] = {
    "Reply in as few words as possible.",
    "You are an assistant inside a company's internal tool. Reply with the requested value only.",
    "Answer truthfully.",
};
static const char *const aug_turn_user = "Hello, I have a question for you.";
static const char *const aug_turn_assistant = "Sure, go ahead.";

/* Questions unlike any fact, whose keys centre the key space with the facts'. */
static const char *const generic_questions[] = {
    "What is the weather like today?", "How do I bake bread?", "Tell me a joke.", "Who wrote Hamlet?",
    "How many legs does a spider have?", "Can you recommend a good book?", "What time is it in Tokyo?",
    "Explain photosynthesis.", "What is 12 times 7?", "Translate 'hello' into French.",
    "Write a haiku about the sea.", "What is the boiling point of water?", "Who painted the Mona Lisa?",
    "How do I reverse a list in Python?", "What does HTTP stand for?", "Why is the sky blue?",
    "What year did World War II end?", "Summarize the plot of Cinderella.", "What is the largest planet?",
    "How far is the Moon?", "What is a prime number?", "Give me a synonym for happy.", "Where is Mount Everest?",
    "How do vaccines work?",
};
#define N_GENERIC ((int)(sizeof generic_questions / sizeof generic_questions[0]))

/* Other things people ask about a subject: the gate learns to let these
 * through to the model. Left out on purpose: a capital and a numeric code,
 * which the benchmark asks as neighbours (bench/bench_generalization.sh), so
 * that its locality measures questions the tuner never saw. */
static const char *const relation_templates[] = {
    "What is the population of %s?",     "Where is %s located?",
    "Who founded %s?",                   "When was %s founded?",
    "What is %s known for?",             "What language is spoken in %s?",
    "What is the currency of %s?",       "Who is the leader of %s?",
    "How big is %s?",                    "Tell me about the history of %s.",
    "When was %s born?",                 "What is the nationality of %s?",
    "Who created %s?",                   "What genre is %s?",
    "What is the climate like in %s?",   "Describe %s in one sentence.",
};
#define N_RELATION ((int)(sizeof relation_templates / sizeof relation_templates[0]))
#define GATE_BUDGET 512 /* relation questions asked per tuning run */
/* The contexts of a question (context_msgs); --augment N trains the first N
 * after the fact's own, the margin's calibration reads them all. */
typedef enum context_kind {
    CTX_OWN,       /* the fact as given */
    CTX_SYSTEM,    /* behind a system prompt (an earlier exchange if the fact has one) */
    CTX_EXCHANGE,  /* after an earlier exchange */
    CTX_LOWER,     /* lower case (ASCII) */
    CTX_SYSTEM2,   /* behind another system prompt */
    CTX_NO_MARK,   /* without its final punctuation, behind a third system prompt */
    CTX_SPACES,    /* every space doubled, and one after the question */
    N_CONTEXTS
} context_kind;
#define MAX_AUGMENT (N_CONTEXTS - 1)
#define CONTEXT_QCAP (2 * FACTS_MAX_FIELD + 2) /* a context's question: at most every byte doubled, and a space */
#define MAX_FAILS 6

/* Context k of a question: the messages, with the question text written to
 * qbuf when it is changed. */
static int context_msgs(const fact *fa, context_kind k, char *qbuf, size_t qcap, mome_chat_msg *msgs) {
    int nm = 0;
    const char *q = fa->question;
    const char *sys = fa->system;
    int turn = 0;
    switch (k) {
    case CTX_OWN: case N_CONTEXTS: break;
    case CTX_SYSTEM: if (!sys) sys = aug_system[0]; else turn = 1; break;
    case CTX_EXCHANGE: turn = 1; break;
    case CTX_LOWER:
        snprintf(qbuf, qcap, "%s", q);
        for (char *c = qbuf; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        q = qbuf;
        break;
    case CTX_SYSTEM2: if (!sys) sys = aug_system[1]; else turn = 1; break;
    case CTX_NO_MARK: {
        snprintf(qbuf, qcap, "%s", q);
        size_t n = strlen(qbuf);
        while (n > 0 && (qbuf[n - 1] == '?' || qbuf[n - 1] == '.' || qbuf[n - 1] == '!' || qbuf[n - 1] == ' ')) qbuf[--n] = 0;
        if (n == 0) snprintf(qbuf, qcap, "%s", fa->question);
        q = qbuf;
        if (!sys) sys = aug_system[2];
        break;
    }
    case CTX_SPACES: {
        size_t n = 0;
        for (const char *c = q; *c && n + 3 < qcap; c++) { /* (CONTEXT_QCAP holds them all) */
            qbuf[n++] = *c;
            if (*c == ' ') qbuf[n++] = ' ';
        }
        qbuf[n++] = ' ';
        qbuf[n] = 0;
        q = qbuf;
        break;
    }
    }
    if (sys) msgs[nm++] = (mome_chat_msg){"system", sys};
    if (turn) {
        msgs[nm++] = (mome_chat_msg){"user", aug_turn_user};
        msgs[nm++] = (mome_chat_msg){"assistant", aug_turn_assistant};
    }
    msgs[nm++] = (mome_chat_msg){"user", q};
    return nm;
}

/* ---------------------------------------------------------------- state */

typedef enum fact_state {
    FACT_TRAINING = 0,  /* in the pool */
    FACT_LEARNED,       /* every target the argmax and loss under target in training; awaits verification */
    FACT_VERIFIED,      /* greedy decoding with the engine states it */
    FACT_GIVEN_UP,      /* failed verification MAX_FAILS times */
} fact_state;

/* One context of a fact: its prompt and what the engine pass cached. */
typedef struct seq_rt {
    int P;                 /* prompt tokens */
    float *h;              /* (T, C) input of the value block at the answer rows */
    float *kpre, *vpre;    /* (L - lv, P - 1, KV) */
} seq_rt;

typedef struct fact_rt {
    int mi;                /* index in the memory */
    int was_cached;        /* its contexts have been prepared for training at least once */
    int32_t *target;       /* (T) answer tokens, then end-of-turn */
    int T;
    seq_rt *seq;           /* (n_seq): [0] the fact's own wording */
    int n_seq;
    float *am, *av;        /* (T, C) Adam moments of the values */
    int adam_t;
    float loss, target_loss;
    fact_state state;
    int n_fail;
    mem_mix mix;           /* its mixture under its own keys (itself included) */
    int recheck;           /* verified, but a fact of its mixture changed since: verify again */
} fact_rt;

typedef struct tuner {
    mome_model *m;
    const mome_tune_params *p;
    fact_set *fs;
    fact_rt *f;
    int n;
    mome_memory *mem;
    tstack st;
    mome_ctx *ctx;         /* the engine context for capture */
    mome_ctx_params cp;    /* its parameters */
    mome_ctx *vctx[EVAL_PARALLEL]; /* the verification's contexts, the same parameters (opened at its first round) */
    float *gpos;           /* (n, n_seq, C) raw last keys of every context: the gate accepts them */
    float *ckeys;          /* (n, N_CONTEXTS, 2C) raw keys (pooled, last) of every context the tuner makes,
                            * trained or not, with a margin (prepare_margins) */
    int n_subj;            /* facts that name their subject */
    int n_inferred;        /* of them, subjects inferred from the file's templates (--infer-subjects) */
    int gate_on;           /* fit a relation gate: facts name subjects, or the memory has a gate */
    int max_T, max_P;
    int max_seq_P;         /* the longest prompt of a fact's training contexts, in tokens */
    int window;            /* facts whose contexts are cached at once (cache_more) */
    int passes;            /* prompt passes per fact in the prepare pass (its progress) */
    int n_was_cached;      /* facts whose contexts have been cached at least once */
    int64_t step;
    double t0, t_prev;
    /* batch buffers */
    float *X, *dX, *rms, *grad, *loss;
    int *ok;
    ts_seq *seqs;
    int *batch;
    int cursor;
    /* mixtures (top_k > 1) */
    int n_old;             /* facts of the memory before this run (held) */
    int *dep_off, *dep;    /* run facts whose mixture holds run fact r: dep[dep_off[r] .. dep_off[r + 1]) */
    float *gall;           /* (run rows, C) gradients of every participant (top_k_train_all) */
    int64_t *row0;         /* (n) first row of each run fact in gall */
    int *touched;          /* (n) gall holds a gradient for the fact */
    int64_t n_undone;      /* verified facts a neighbour's change undid */
} tuner;

static int count_state(const tuner *t, fact_state s) {
    int k = 0;
    for (int i = 0; i < t->n; i++) k += t->f[i].state == s;
    return k;
}

static void progress(tuner *t, const char *phase, int done_override) {
    if (!t->p->progress) return;
    mome_tune_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.step = t->step;
    pr.n_facts = t->n;
    double ls = 0;
    int nl = 0; /* the facts trained so far (a fact not yet cached has no loss) */
    for (int i = 0; i < t->n; i++)
        if (t->f[i].was_cached) ls += t->f[i].loss, nl++;
    pr.n_memorized = done_override >= 0 ? done_override
                     : strcmp(phase, "verify") == 0 ? count_state(t, FACT_VERIFIED)
                                                    : count_state(t, FACT_VERIFIED) + count_state(t, FACT_LEARNED);
    pr.mean_loss = nl ? (float)(ls / nl) : 0;
    pr.elapsed_s = t->t_prev + mome_time_s() - t->t0;
    pr.facts_per_s = pr.elapsed_s > 0 ? pr.n_memorized / pr.elapsed_s : 0;
    pr.eta_s = pr.facts_per_s > 0 && pr.n_memorized * 10 >= pr.n_facts && strcmp(phase, "train") == 0
                   ? (pr.n_facts - pr.n_memorized) / pr.facts_per_s : -1;
    pr.phase = phase;
    t->p->progress(&pr, t->p->user);
}

/* ------------------------------------------------------------- prepare */

/* A context's chat prompt, tokenized as the engine reads it: its length
 * (or a negative status), the tokens in *ids (the caller frees them). */
static int prompt_ids(tuner *t, const mome_chat_msg *msgs, int nm, int32_t **ids) {
    char *text = mome_chat_format(t->m, msgs, nm, 1);
    if (!text) return MOME_ERR_NOMEM;
    *ids = NULL;
    const int P = mome_tokenize_alloc(t->m, text, 1, 1, ids);
    free(text);
    return P;
}

/* 0 if a prompt of P tokens and na answer tokens fit the tuner's context. */
static int context_fits(const tuner *t, int P, int na, const char *where) {
    if (P + na + 1 <= t->ctx->n_ctx) return 0;
    return mome_seterr_code(MOME_ERR_ARG, "%s: the fact is %d tokens long, longer than the %d-token context", where,
                            P + na, t->ctx->n_ctx);
}

/* Engine pass over one context of a fact (ans: the answer tokens to feed
 * after the prompt, may be 0 for key-only passes): the keys at the decision
 * row, and if s is given the value block's input at the answer rows and the
 * prefix K/V. The memory is attached with selection off, so these are the
 * base model's states. */
static int capture(tuner *t, const mome_chat_msg *msgs, int nm, const int32_t *ans, int na, seq_rt *s, float *keys,
                   const char *where) {
    mome_ctx *c = t->ctx;
    const llama_hparams *hp = &t->m->hp;
    const int C = hp->n_embd, lv = t->mem->value_layer, NL = hp->n_layer - lv;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    int32_t *ids;
    const int P = prompt_ids(t, msgs, nm, &ids);
    if (P < 0) return P;
    int rc = context_fits(t, P, na, where);
    if (rc) {
        free(ids);
        return rc;
    }
    int32_t *seq = realloc(ids, (size_t)(P + na) * sizeof(int32_t));
    if (!seq) { free(ids); return mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); }
    if (na) memcpy(seq + P, ans, (size_t)na * sizeof(int32_t));
    /* the K/V of the part shared with the previous sequence is reused; the
     * decision row (P - 1) and the answer rows are always decoded, since
     * their keys and inputs are read from this call */
    /* (bit-exact with a decode from scratch where the kernels allow it; else
     * within rounding, which the training does not need: greedy
     * verification decodes each fact from scratch) */
    const int n = P + na, shared = ctx_shared_prefix_any(c, seq, n), keep = shared < P - 1 ? shared : P - 1;
    c->capture_layer = lv;
    c->dec_keys = keys;
    c->mem_route_off = 1;
    rc = mome_decode(c, seq + keep, n - keep, keep, 0);
    c->capture_layer = -1;
    c->dec_keys = NULL;
    c->mem_route_off = 0;
    int32_t dpos;
    if (!rc && (!mome_ctx_memory_decision(c, &dpos, NULL, NULL) || dpos != P - 1))
        rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: the memory found no question in the chat prompt", where);
    if (!rc && s) {
        const int T = na + 1;
        s->P = P;
        s->h = mome_malloc((size_t)T * C * sizeof(float));
        s->kpre = mome_malloc((size_t)NL * (P > 1 ? P - 1 : 1) * KV * sizeof(float));
        s->vpre = mome_malloc((size_t)NL * (P > 1 ? P - 1 : 1) * KV * sizeof(float));
        if (!s->h || !s->kpre || !s->vpre) rc = MOME_ERR_NOMEM;
        else {
            /* capture rows are those of this decode call, from keep on */
            memcpy(s->h, c->capture + (size_t)(P - 1 - keep) * C, (size_t)T * C * sizeof(float));
            for (int l = 0; l < NL; l++) {
                const size_t src = (size_t)(lv + l) * c->n_ctx * KV;
                memcpy(s->kpre + (size_t)l * (P - 1) * KV, c->k_cache + src, (size_t)(P - 1) * KV * sizeof(float));
                memcpy(s->vpre + (size_t)l * (P - 1) * KV, c->v_cache + src, (size_t)(P - 1) * KV * sizeof(float));
            }
        }
    }
    free(seq);
    return rc;
}

static int is_cached(const fact_rt *f) { return f->seq && f->seq[0].h; }

static void mark_cached(tuner *t, fact_rt *f) {
    if (f->was_cached) return;
    f->was_cached = 1;
    t->n_was_cached++;
}

static void uncache(fact_rt *f) {
    for (int k = 0; k < f->n_seq && f->seq; k++) {
        free(f->seq[k].h); free(f->seq[k].kpre); free(f->seq[k].vpre);
        f->seq[k].h = f->seq[k].kpre = f->seq[k].vpre = NULL;
    }
}

/* Tokens of every fact's answer; the context size the facts need. */
static int prepare_tokens(tuner *t) {
    const int32_t eot = mome_token_eot(t->m);
    for (int i = 0; i < t->n; i++) {
        const fact *fa = &t->fs->v[i];
        fact_rt *r = &t->f[i];
        int32_t *ans;
        int na = mome_tokenize_alloc(t->m, fa->answers[0], 0, 0, &ans);
        if (na < 0) return na;
        if (na < 1 || na > MEM_MAX_ANSWER) {
            free(ans);
            return mome_seterr_code(MOME_ERR_ARG, "%s:%d: the answer is %d tokens long (1..%d supported)", t->fs->path,
                                    fa->line, na, MEM_MAX_ANSWER);
        }
        r->T = na + 1;
        r->target = mome_malloc((size_t)r->T * sizeof(int32_t));
        if (!r->target) { free(ans); return MOME_ERR_NOMEM; }
        memcpy(r->target, ans, (size_t)na * sizeof(int32_t));
        r->target[na] = eot;
        free(ans);
        r->target_loss = t->p->target_loss;
        r->n_seq = 1 + t->p->augment;
        if (r->T > t->max_T) t->max_T = r->T;
        /* a bound on the prompt in tokens (a token is at least one byte):
         * the question, the system prompt, and 200 bytes for the template
         * and the longest context the tuner adds */
        size_t qb = 2 * strlen(fa->question) + 1 + (fa->system ? strlen(fa->system) : 0) + 200; /* doubled spaces */
        if ((int)qb + na > t->max_P) t->max_P = (int)qb + na;
    }
    return 0;
}

/* The wording check's tokens of fact mi: the content of the user turn the
 * capture just decoded, as the engine reads it at the decision row dpos. */
static int keep_question_tokens(tuner *t, int mi, int dpos) {
    const mome_ctx *c = t->ctx;
    const mem_pos *ps = &c->mpos[dpos];
    if (ps->span0 < 0 || ps->span1 <= ps->span0)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "tune: no user turn before the decision row %d", dpos);
    const mem_query q = {c->mrows + (size_t)ps->span0 * t->mem->n_embd, c->tokens + ps->span0, ps->span1 - ps->span0, NULL, NULL, NULL};
    return mem_set_fact_tokens(t->mem, mi, &q);
}

/* The alternative keys of every fact (memory.h): its question lower-cased,
 * in its own context (CTX_LOWER), when that changes it. A pass of their own
 * after the facts' own wordings, so that consecutive prompts share their
 * start (one-template sets: most of the prompt) and its K/V is reused:
 * interleaved with the own wordings, the 10,000-fact set prepared 3 times
 * slower. keys (2C) is scratch. */
static int add_alt_keys(tuner *t, float *keys) {
    if (t->p->alt_keys < 1) return 0;
    char qbuf[CONTEXT_QCAP], where[256];
    int rc = 0;
    double last = mome_time_s();
    for (int i = 0; i < t->n && !rc; i++) {
        const fact *fa = &t->fs->v[i];
        if (mome_time_s() - last > 0.5) {
            last = mome_time_s();
            progress(t, "lower-case keys", i);
        }
        mome_chat_msg msgs[4];
        const int nm = context_msgs(fa, CTX_LOWER, qbuf, sizeof qbuf, msgs);
        if (strcmp(qbuf, fa->question) == 0) continue;
        snprintf(where, sizeof where, "%s:%d", t->fs->path, fa->line);
        rc = capture(t, msgs, nm, NULL, 0, NULL, keys, where);
        if (!rc) rc = mem_add_alt_key(t->mem, t->f[i].mi, keys, keys + t->m->hp.n_embd);
    }
    return rc;
}

/* The training contexts of facts idx[0..n) (their value block inputs and
 * prefix K/V), context by context, so that consecutive prompts share their
 * start (the system prompt, an earlier exchange) and its K/V is computed
 * once: on Qwen2.5, whose template adds a 20-token default system message,
 * this halves the prefill (docs/BENCHMARKS.md). keys (2C) is scratch. */
static int cache_contexts(tuner *t, const int *idx, int n, float *keys) {
    char qbuf[CONTEXT_QCAP], where[256];
    const int n_seq = t->n ? t->f[0].n_seq : 0;
    int rc = 0;
    double last = mome_time_s();
    for (int k = 0; k < n_seq && !rc; k++)
        for (int j = 0; j < n && !rc; j++) {
            const int i = idx[j];
            const fact *fa = &t->fs->v[i];
            fact_rt *r = &t->f[i];
            snprintf(where, sizeof where, "%s:%d", t->fs->path, fa->line);
            mome_chat_msg msgs[4];
            const int nm = context_msgs(fa, k, qbuf, sizeof qbuf, msgs);
            rc = capture(t, msgs, nm, r->target, r->T - 1, &r->seq[k], keys, where);
            if (!rc && k == n_seq - 1) mark_cached(t, r);
            if (mome_time_s() - last > 0.5) {
                last = mome_time_s();
                progress(t, "prepare", t->n_was_cached);
            }
        }
    return rc;
}

/* With more facts than the window (mome_tune_params.cached_facts): the
 * contexts of facts that are done (verified, given up) are freed, and when
 * at most half the window still trains, the next facts that train are
 * prepared. A fact a partner undoes after its contexts were freed is
 * prepared again when its turn comes. */
static int cache_more(tuner *t) {
    if (t->window >= t->n) return 0;
    int active = 0;
    for (int i = 0; i < t->n; i++) {
        fact_rt *f = &t->f[i];
        if (!is_cached(f)) continue;
        if (f->state == FACT_GIVEN_UP || (f->state == FACT_VERIFIED && !f->recheck)) uncache(f);
        else active++;
    }
    if (active > t->window / 2) return 0;
    int *idx = mome_malloc((size_t)t->window * sizeof(int));
    float *keys = mome_malloc((size_t)2 * t->m->hp.n_embd * sizeof(float));
    int n = 0, rc = 0;
    if (!idx || !keys) rc = MOME_ERR_NOMEM;
    for (int i = 0; !rc && i < t->n && active + n < t->window; i++)
        if (t->f[i].state == FACT_TRAINING && !is_cached(&t->f[i])) idx[n++] = i;
    if (!rc && n > 0) rc = cache_contexts(t, idx, n, keys);
    free(idx);
    free(keys);
    return rc;
}

/* Whether the calibration decodes untrained context k for the leads: not the
 * lower-cased question when it is the fact's alternative key (add_alt_keys),
 * where it scores as the stored question. */
static int calibrates(const tuner *t, int k) { return k != CTX_LOWER || t->p->alt_keys < 1; }

/* Each fact's buffers: its contexts (n_seq), and its mixture's inputs. */
static int alloc_facts(tuner *t) {
    const int C = t->m->hp.n_embd;
    for (int i = 0; i < t->n; i++) {
        fact_rt *r = &t->f[i];
        r->seq = mome_calloc((size_t)r->n_seq, sizeof(seq_rt));
        r->am = mome_calloc((size_t)r->T * C, sizeof(float));
        r->av = mome_calloc((size_t)r->T * C, sizeof(float));
        if (!r->seq || !r->am || !r->av) return MOME_ERR_NOMEM;
    }
    return 0;
}

/* Progress of the prepare pass: done of t->passes x n prompt passes. */
static void prepare_progress(tuner *t, int done, double *last) {
    if (mome_time_s() - *last <= 0.5) return;
    *last = mome_time_s();
    progress(t, "prepare", done / t->passes);
}

/* The trained contexts (0 .. --augment), context by context as
 * cache_contexts: each fact's keys (the gate's and the margin's copies), the
 * fact added to the memory from its own wording (with its question tokens
 * and subject), and the training contexts of the first `window` facts
 * (cache_more prepares the others' later; for them only the own wording is
 * decoded now, and every context where the gate or the margin needs its
 * keys). mp sums the own wordings' keys, for the centres. */
static int capture_trained(tuner *t, float *keys, double *mp, int *done, double *last) {
    const int C = t->m->hp.n_embd, n_seq = t->n ? t->f[0].n_seq : 0;
    char qbuf[CONTEXT_QCAP], where[256];
    int rc = 0;
    for (int k = 0; k < n_seq && !rc; k++) {
        for (int i = 0; i < t->n && !rc; i++, (*done)++) {
            const fact *fa = &t->fs->v[i];
            fact_rt *r = &t->f[i];
            const int cache = i < t->window;
            snprintf(where, sizeof where, "%s:%d", t->fs->path, fa->line);
            mome_chat_msg msgs[4];
            int nm = context_msgs(fa, k, qbuf, sizeof qbuf, msgs);
            const int decode = cache || k == 0 || t->gate_on || t->ckeys; /* keys (and contexts) needed now */
            int P;
            if (!decode) {
                /* not decoded now: only its length, for the training stack's size */
                int32_t *ids;
                P = prompt_ids(t, msgs, nm, &ids);
                free(ids);
                rc = P < 0 ? P : context_fits(t, P, r->T - 1, where);
            } else {
                rc = capture(t, msgs, nm, cache ? r->target : NULL, cache ? r->T - 1 : 0, cache ? &r->seq[k] : NULL,
                             keys, where);
                int32_t dpos = -1; /* the decision row, P - 1 (capture checked it) */
                mome_ctx_memory_decision(t->ctx, &dpos, NULL, NULL);
                P = dpos + 1;
            }
            if (!rc && P > t->max_seq_P) t->max_seq_P = P;
            if (!rc && decode) memcpy(t->gpos + ((size_t)i * r->n_seq + k) * C, keys + C, (size_t)C * sizeof(float));
            if (!rc && t->ckeys) memcpy(t->ckeys + ((size_t)i * N_CONTEXTS + k) * 2 * C, keys, (size_t)2 * C * sizeof(float));
            if (!rc && cache && k == n_seq - 1) mark_cached(t, r);
            if (!rc && k == 0) {
                int mi = mem_add_fact(t->mem, keys, keys + C, r->target, r->T - 1);
                if (mi < 0) rc = mi;
                r->mi = mi;
                for (int j = 0; j < 2 * C; j++) mp[j] += keys[j];
                if (!rc && !isnan(t->mem->cover_tau)) rc = keep_question_tokens(t, mi, P - 1);
                if (!rc && fa->subject && t->p->subject_check) {
                    const int r_s = mem_set_fact_subject(t->mem, mi, fa->subject, fa->question);
                    if (r_s < 0) rc = r_s;
                }
            }
            prepare_progress(t, *done, last);
        }
    }
    return rc;
}

/* With a margin, the contexts the tuner makes but does not train (those
 * past --augment; not the lower-cased question when it is the alternative
 * key, calibrates()): their keys only, for the leads (prepare_margins). 3
 * more prompt passes per fact at --augment 2, about 0.3 s per fact on 2
 * AVX2 cores, which keeps the margin opt-in (docs/BENCHMARKS.md). */
static int capture_untrained(tuner *t, float *keys, int *done, double *last) {
    const int C = t->m->hp.n_embd, n_seq = t->n ? t->f[0].n_seq : 0;
    char qbuf[CONTEXT_QCAP], where[256];
    int rc = 0;
    for (int k = n_seq; t->ckeys && k < N_CONTEXTS && !rc; k++) {
        if (!calibrates(t, k)) continue;
        for (int i = 0; i < t->n && !rc; i++, (*done)++) {
            const fact *fa = &t->fs->v[i];
            snprintf(where, sizeof where, "%s:%d", t->fs->path, fa->line);
            mome_chat_msg msgs[4];
            const int nm = context_msgs(fa, k, qbuf, sizeof qbuf, msgs);
            rc = capture(t, msgs, nm, NULL, 0, NULL, keys, where);
            if (!rc) memcpy(t->ckeys + ((size_t)i * N_CONTEXTS + k) * 2 * C, keys, (size_t)2 * C * sizeof(float));
            prepare_progress(t, *done, last);
        }
    }
    return rc;
}

/* The generic questions' keys (which the gate also rejects) and, for a new
 * memory, the centres: the mean key over the facts' own wordings (mp, the
 * sum) and the generic questions. A loaded memory keeps its centres;
 * mem_add_fact centred the new keys with them. */
static int capture_centres(tuner *t, int new_memory, float *keys, double *mp) {
    const int C = t->m->hp.n_embd;
    int rc = 0;
    if (new_memory || (t->gate_on && t->mem->n_gneg == 0))
        for (int g = 0; g < N_GENERIC && !rc; g++) {
            mome_chat_msg msg = {"user", generic_questions[g]};
            rc = capture(t, &msg, 1, NULL, 0, NULL, keys, "generic question");
            for (int j = 0; !rc && j < 2 * C; j++) mp[j] += keys[j];
            if (!rc && t->gate_on && mem_gate_add_negative(t->mem, keys + C) < 0) rc = MOME_ERR_NOMEM;
        }
    if (!rc && !isnan(t->mem->cover_tau)) rc = mem_update_tok_centre(t->mem);
    if (!rc && new_memory) {
        const double nk = t->n + N_GENERIC;
        for (int j = 0; j < 2 * C; j++) keys[j] = (float)(mp[j] / nk);
        rc = mem_set_centres(t->mem, keys, keys + C);
    }
    return rc;
}

/* The relation check's state (memory.h) of the question of a one-message
 * chat, into xhat (C): the decision row's, or (ver_pool) the relation
 * feature with `subject` (NULL: none) taken out. */
static int question_state(tuner *t, const char *question, const char *subject, float *xhat) {
    const mome_chat_msg msg = {"user", question};
    int32_t *ids;
    const int P = prompt_ids(t, &msg, 1, &ids);
    if (P < 0) return P;
    int32_t span0, span1;
    int rc = mem_find_question(t->mem, ids, P, &span0, &span1);
    if (rc < 0) rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "tune: the memory found no question in the chat prompt");
    else if (!t->mem->ver_pool) rc = ctx_question_state(t->ctx, ids + span0, span1 - span0, xhat);
    else {
        const int n = span1 - span0, kept = n < MEM_QUESTION_TOKENS ? n : MEM_QUESTION_TOKENS;
        float *rows = mome_malloc((size_t)kept * t->m->hp.n_embd * sizeof(float));
        rc = rows ? ctx_question_rows(t->ctx, ids + span0, n, rows) : MOME_ERR_NOMEM;
        if (!rc) rc = mem_relation_feature(t->mem, subject, ids + span1 - kept, kept, rows, xhat);
        free(rows);
    }
    free(ids);
    return rc;
}

/* The whitened relation check (memory.h): a question is compared with its
 * fact's wordings after taking away the fact's subject centre (the mean
 * state of other questions about the subject, relation_templates[0, 2, ..])
 * and whitening with the spread of such questions about one subject (their
 * covariance, pooled over the facts' subjects and centre_subjects, which
 * keep it defined for a memory of a few facts). A fact's subject takes 2
 * questions, a centre subject 8: in f32 (bench/relation_centre.py, 300 zsRE
 * facts, the meaning key), rewordings passing at 99% of same-subject
 * questions turned away were 0.890 with 2 at block 24 and 0.883 with 8 (at
 * 26: 0.860 and 0.877; the relation key at 14: 0.780 and 0.800), and the
 * centre was two thirds of the check's passes per fact. */
#define CENTRE_TEMPLATES 2
#define SPREAD_TEMPLATES 8
#define WHITEN_RIDGE 0.1 /* lambda / mean eigenvalue (RIDGE in bench/relation_whiten.py tries others) */
static const char *const centre_subjects[] = {
    "France", "Albert Einstein", "the Amazon River", "Microsoft", "Mount Everest", "Tokyo", "the Beatles",
    "the Python language", "the Eiffel Tower", "Jupiter", "Leonardo da Vinci", "Toyota", "the Pacific Ocean",
    "Harvard University", "Brazil", "William Shakespeare",
};
#define N_CENTRE_SUBJECTS ((int)(sizeof centre_subjects / sizeof centre_subjects[0]))

/* The subject centre of `subject` from its first nt questions into centre
 * (C), their spread added weight times to cov (C x C, upper triangle; NULL:
 * not wanted, the memory has its whitening); rows: nt x C scratch. */
static int subject_centre(tuner *t, const char *subject, int nt, float *rows, float *centre, double *cov, double weight) {
    const int C = t->m->hp.n_embd;
    char q[CONTEXT_QCAP];
    int rc = 0;
    for (int k = 0; k < nt && !rc; k++) {
        snprintf(q, sizeof q, relation_templates[2 * k], subject);
        rc = question_state(t, q, subject, rows + (size_t)k * C);
    }
    if (rc) return rc;
    for (int c = 0; c < C; c++) {
        double m = 0;
        for (int k = 0; k < nt; k++) m += rows[(size_t)k * C + c];
        centre[c] = (float)(m / nt);
    }
    for (int k = 0; k < nt && cov; k++) {
        float *d = rows + (size_t)k * C;
        for (int c = 0; c < C; c++) d[c] -= centre[c];
        for (int i = 0; i < C; i++)
            for (int j = i; j < C; j++) cov[(size_t)i * C + j] += (double)d[i] * d[j] * weight;
    }
    return 0;
}

typedef struct named_fact {
    const char *subject;
    int i;
} named_fact;

static int cmp_named(const void *a, const void *b) {
    const named_fact *x = a, *y = b;
    const int c = strcmp(x->subject, y->subject);
    return c ? c : (x->i > y->i) - (x->i < y->i); /* ties: file order */
}

/* Facts that name one subject share its centre: first[i] is the first new
 * fact naming fact i's subject (-1: it names none) and n_same[first[i]] how
 * many do. One subject's centre takes 2 question passes, 2 of the check's 6
 * per fact, so a catalogue with several facts per subject prepares each
 * subject once; the pooled spread still counts a subject once per fact. */
static int group_subjects(const tuner *t, int *first, int *n_same) {
    named_fact *v = mome_malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof *v);
    if (!v) return MOME_ERR_NOMEM;
    int m = 0;
    for (int i = 0; i < t->n; i++) {
        const char *s = t->fs->v[i].subject;
        first[i] = -1, n_same[i] = 0;
        if (s && s[0]) v[m++] = (named_fact){s, i};
    }
    qsort(v, (size_t)m, sizeof *v, cmp_named);
    for (int k = 0, g = 0; k < m; k++) {
        if (strcmp(v[k].subject, v[g].subject) != 0) g = k;
        first[v[k].i] = v[g].i, n_same[v[g].i]++;
    }
    free(v);
    return 0;
}

/* W from the pooled spread of n_q subject questions (memory.h). */
static int set_whitening(tuner *t, double *cov, int64_t n_q) {
    const int C = t->m->hp.n_embd;
    float *w = mome_malloc((size_t)C * C * sizeof(float));
    if (!w) return MOME_ERR_NOMEM;
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) cov[(size_t)j * C + i] = cov[(size_t)i * C + j] /= (double)n_q;
    int rc = blas_inv_sqrt_sym(cov, C, WHITEN_RIDGE, w);
    if (!rc) rc = mem_set_verify_whiten(t->mem, w);
    free(w);
    return rc;
}

/* The key a check new to the memory compares: the one asked for, or the
 * default key where --verify-key none met a memory that has a check. */
static int check_key(const mome_tune_params *p) {
    return p->verify_key == MOME_VERIFY_NONE ? MOME_VERIFY_MEANING : p->verify_key;
}

/* The relation check's states of each new fact: its question alone, as
 * given, lower-cased, without its final mark and with doubled spaces (the
 * wordings of the same question an application's users produce; a system
 * prompt or earlier turns do not change the state, which reads the question
 * alone), each once. All four stay: in f32 (300 zsRE facts,
 * bench/relation_centre.py) the meaning key's variants passed its 99%
 * threshold with the first two alone (0.998) but the relation key's did not
 * (0.909), and without the unpunctuated one the demo's centred check at 0.9
 * turned away every unpunctuated question (variants 300 -> 200 of 300).
 * For a memory that had none, the centre (their mean with the generic
 * questions') and the whitening; with a whitening, each fact's subject
 * centre. */
static int capture_verify_states(tuner *t) {
    if (t->mem->ver_layer < 0) return 0; /* no relation check */
    static const context_kind kinds[] = {CTX_OWN, CTX_LOWER, CTX_NO_MARK, CTX_SPACES};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    const int C = t->m->hp.n_embd;
    const int fresh = t->mem->n_ver_total == 0, whiten = (fresh && check_key(t->p) != MOME_VERIFY_CENTRED) || t->mem->ver_w;
    /* NK wordings, or SPREAD_TEMPLATES questions and a centre */
    float *rows = mome_malloc((size_t)(NK > SPREAD_TEMPLATES + 1 ? NK : SPREAD_TEMPLATES + 1) * C * sizeof(float));
    float *ctr = whiten ? mome_malloc((size_t)(t->n > 0 ? t->n : 1) * C * sizeof(float)) : NULL;
    double *sum = mome_calloc((size_t)C, sizeof(double));
    double *cov = fresh && whiten ? mome_calloc((size_t)C * C, sizeof(double)) : NULL;
    int *first = whiten ? mome_malloc((size_t)(t->n > 0 ? t->n : 1) * 2 * sizeof(int)) : NULL;
    int *n_same = first ? first + t->n : NULL; /* first facts of a subject: how many name it */
    int rc = rows && sum && (!whiten || (ctr && first)) && (!(fresh && whiten) || cov) ? 0 : MOME_ERR_NOMEM;
    if (!rc && whiten) rc = group_subjects(t, first, n_same);
    int64_t n_sum = 0, n_cov = 0;
    char qbuf[NK][CONTEXT_QCAP];           /* each kind's wording, when it changes the question */
    const char *asked[NK];                 /* the wordings kept so far */
    double last = mome_time_s();
    for (int i = 0; i < t->n && !rc; i++) {
        const fact *fa = &t->fs->v[i];
        int n = 0;
        for (int j = 0; j < NK && !rc; j++) {
            mome_chat_msg msgs[4];
            const int nm = context_msgs(fa, kinds[j], qbuf[j], sizeof qbuf[j], msgs);
            const char *q = msgs[nm - 1].content;
            int seen = 0;
            for (int k = 0; k < n && !seen; k++) seen = strcmp(q, asked[k]) == 0;
            if (seen) continue;
            rc = question_state(t, q, t->mem->subj_len[t->f[i].mi] > 0 ? fa->subject : NULL, rows + (size_t)n * C);
            for (int c = 0; !rc && c < C; c++) sum[c] += rows[(size_t)n * C + c];
            if (!rc) asked[n++] = q;
            n_sum += !rc;
        }
        if (!rc) rc = mem_set_fact_verify(t->mem, t->f[i].mi, rows, n);
        if (!rc && whiten && first[i] == i) { /* the first fact naming its subject */
            rc = subject_centre(t, fa->subject, CENTRE_TEMPLATES, rows, ctr + (size_t)i * C, cov, n_same[i]);
            n_cov += (int64_t)CENTRE_TEMPLATES * n_same[i];
        } else if (!rc && whiten && first[i] >= 0)
            memcpy(ctr + (size_t)i * C, ctr + (size_t)first[i] * C, (size_t)C * sizeof *ctr);
        else if (whiten)
            ctr[(size_t)i * C] = NAN; /* no subject: mu_ver */
        if (mome_time_s() - last > 0.5) {
            last = mome_time_s();
            progress(t, "relation-check states", i);
        }
    }
    if (!rc && fresh) { /* a memory that had none: its centre and whitening */
        for (int g = 0; g < N_GENERIC && !rc; g++) {
            rc = question_state(t, generic_questions[g], NULL, rows);
            for (int c = 0; !rc && c < C; c++) sum[c] += rows[c];
            n_sum += !rc;
        }
        for (int c = 0; !rc && c < C; c++) rows[c] = (float)(sum[c] / (double)(n_sum ? n_sum : 1));
        if (!rc) rc = mem_set_verify_centre(t->mem, rows);
        for (int s = 0; s < N_CENTRE_SUBJECTS && !rc && whiten; s++, n_cov += SPREAD_TEMPLATES)
            rc = subject_centre(t, centre_subjects[s], SPREAD_TEMPLATES, rows, rows + (size_t)SPREAD_TEMPLATES * C, cov, 1.0);
        if (!rc && whiten) rc = set_whitening(t, cov, n_cov);
    }
    for (int i = 0; i < t->n && !rc && whiten; i++)
        if (!isnan(ctr[(size_t)i * C])) rc = mem_set_fact_verify_centre(t->mem, t->f[i].mi, ctr + (size_t)i * C);
    free(rows);
    free(ctr);
    free(sum);
    free(cov);
    free(first);
    return rc;
}

/* The engine pass over every fact in every context the tuner needs: the
 * trained contexts, the untrained ones for the margin, the lower-cased
 * questions (the alternative keys), the generic questions and the centres. */
static int prepare_captures(tuner *t, int new_memory) {
    const int C = t->m->hp.n_embd;
    float *keys = mome_malloc((size_t)2 * C * sizeof(float));
    double *mp = mome_calloc((size_t)2 * C, sizeof(double));
    int rc = keys && mp ? alloc_facts(t) : MOME_ERR_NOMEM;
    const int cf = t->p->cached_facts;
    t->window = cf > 0 && cf < t->n ? cf : t->n;
    t->passes = t->n ? t->f[0].n_seq : 0;
    for (int k = t->passes; t->ckeys && k < N_CONTEXTS; k++) t->passes += calibrates(t, k);
    int done = 0;
    double last = mome_time_s();
    if (!rc) rc = capture_trained(t, keys, mp, &done, &last);
    if (!rc) rc = capture_untrained(t, keys, &done, &last);
    if (!rc) rc = add_alt_keys(t, keys);
    if (!rc) rc = capture_centres(t, new_memory, keys, mp);
    if (!rc) rc = capture_verify_states(t);
    free(keys);
    free(mp);
    return rc;
}

/* Each new fact's lead (memory.h, the margin over the rival): the smallest
 * lead over its rival among the contexts the tuner makes for it (all
 * N_CONTEXTS, trained or not: lower case, doubled spaces and no final mark
 * are wordings an application's users produce) that select it below
 * MEM_MARGIN_SURE; read from the keys prepare_captures kept, once the
 * centres and the alternative keys are final. A fact whose contexts all
 * score as its stored question (or meet no rival) gets none (NAN): it needs
 * the memory's margin. */
static int prepare_margins(tuner *t) {
    if (!t->ckeys || t->n == 0) return 0;
    const int C = t->m->hp.n_embd;
    const mome_memory *mem = t->mem;
    float *own = mome_malloc((size_t)t->n * sizeof(float));
    if (!own) return MOME_ERR_NOMEM;
    int oom = 0;
    progress(t, "calibrate", 0);
#pragma omp parallel num_threads(t->p->n_threads > 0 ? t->p->n_threads : omp_get_max_threads())
    {
        float *q = mome_malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
        if (!q) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < t->n; i++) {
            if (!q) continue;
            const fact *fa = &t->fs->v[i];
            float lead = INFINITY;
            for (int k = 0; k < N_CONTEXTS; k++) {
                if (k >= t->f[i].n_seq && !calibrates(t, k)) continue;
                char qbuf[CONTEXT_QCAP];
                mome_chat_msg msgs[4];
                const int nm = context_msgs(fa, k, qbuf, sizeof qbuf, msgs);
                const mem_query qt = {NULL, NULL, 0, msgs[nm - 1].content, NULL, NULL};
                const float *kk = t->ckeys + ((size_t)i * N_CONTEXTS + k) * 2 * C;
                mem_mix mx;
                mem_cand cd;
                mem_mix_select(mem, kk, kk + C, &qt, -1, q, &mx, &cd);
                if (cd.best == t->f[i].mi && cd.score < MEM_MARGIN_SURE && cd.score - cd.rival < lead)
                    lead = cd.score - cd.rival;
            }
            own[i] = lead < INFINITY ? fminf(2.0f, fmaxf(0.0f, lead)) : NAN;
        }
        free(q);
    }
    int rc = oom ? MOME_ERR_NOMEM : 0;
    for (int i = 0; i < t->n && !rc; i++) rc = mem_set_fact_lead(t->mem, t->f[i].mi, own[i]);
    free(own);
    return rc;
}

/* Other questions about the facts' subjects, rejected by the gate, and the
 * gate fitted on them. Facts spread the GATE_BUDGET questions evenly, each
 * asking gate_questions templates in turn. */
static int prepare_gate(tuner *t) {
    const int C = t->m->hp.n_embd, per = t->p->gate_questions;
    if (!t->gate_on) return mem_gate_fit(t->mem, NULL, NULL, 0, 0.0f);
    const int n_subj = t->n_subj;
    int every = 1;
    if ((int64_t)n_subj * per > GATE_BUDGET) every = (int)(((int64_t)n_subj * per + GATE_BUDGET - 1) / GATE_BUDGET);
    float *keys = mome_malloc((size_t)2 * C * sizeof(float));
    if (!keys) return MOME_ERR_NOMEM;
    char q[FACTS_MAX_FIELD + 128];
    int rc = 0, seen = 0, asked = 0;
    for (int i = 0; i < t->n && !rc; i++) {
        const fact *fa = &t->fs->v[i];
        if (!fa->subject || seen++ % every) continue;
        for (int j = 0; j < per && !rc; j++) {
            snprintf(q, sizeof q, relation_templates[(asked++) % N_RELATION], fa->subject);
            mome_chat_msg msg = {"user", q};
            rc = capture(t, &msg, 1, NULL, 0, NULL, keys, "relation question");
            if (!rc) rc = mem_gate_add_negative(t->mem, keys + C) < 0 ? MOME_ERR_NOMEM : 0;
        }
    }
    if (!rc) {
        /* accepted: the earlier facts' own wordings and every context of the new ones */
        const int n_old = t->mem->n_facts - t->n, n_seq = t->n ? t->f[0].n_seq : 1;
        const int n_pos = n_old + t->n * n_seq;
        float *pos = mome_malloc((size_t)(n_pos ? n_pos : 1) * C * sizeof(float));
        int32_t *pf = mome_malloc((size_t)(n_pos ? n_pos : 1) * sizeof(int32_t));
        if (!pos || !pf) rc = MOME_ERR_NOMEM;
        else {
            if (n_old > 0) memcpy(pos, t->mem->klast, (size_t)n_old * C * sizeof(float));
            for (int i = 0; i < n_old; i++) pf[i] = i;
            memcpy(pos + (size_t)n_old * C, t->gpos, (size_t)t->n * n_seq * C * sizeof(float));
            for (int i = 0; i < t->n; i++)
                for (int k = 0; k < n_seq; k++) pf[n_old + i * n_seq + k] = t->f[i].mi;
            rc = mem_gate_fit(t->mem, pos, pf, n_pos, t->p->gate_margin);
        }
        free(pos);
        free(pf);
    }
    free(keys);
    return rc;
}

/* Each fact's mixture under its own keys (mem_mix_select with the fact
 * forced in: it is trained as selected, as with one fact), and for each fact
 * the facts whose mixture holds it (their verification depends on its
 * values). With top_k = 1 every mixture is the fact alone. */
static int prepare_mixtures(tuner *t) {
    const int C = t->m->hp.n_embd, n = t->n;
    mome_memory *mem = t->mem;
    t->n_old = mem->n_facts - n;
    float *q = mome_malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
    float *own = mome_malloc((size_t)MEM_MAX_FACT_TOKENS * C * sizeof(float));
    t->dep_off = mome_calloc((size_t)n + 1, sizeof(int));
    if (!q || !own || !t->dep_off) { free(q); free(own); return MOME_ERR_NOMEM; }
    for (int i = 0; i < n; i++) {
        fact_rt *f = &t->f[i];
        const size_t o = (size_t)f->mi * C;
        /* the partners the engine would mix for the fact's own wording: its
         * keys, and its own question tokens for their wording checks */
        mem_query qt = {own, NULL, 0, t->fs->v[i].question, NULL, NULL};
        mem_fact_tokens(mem, f->mi, own, &qt.n);
        mem_mix_select(mem, mem->kpool + o, mem->klast + o, &qt, f->mi, q, &f->mix, NULL);
        for (int k = 0; k < f->mix.n; k++) {
            const int r = f->mix.fact[k] - t->n_old;
            if (r >= 0 && r < n && r != i) t->dep_off[r + 1]++;
        }
    }
    free(q);
    free(own);
    for (int r = 0; r < n; r++) t->dep_off[r + 1] += t->dep_off[r];
    t->dep = mome_malloc((size_t)(t->dep_off[n] ? t->dep_off[n] : 1) * sizeof(int));
    int *fill = mome_calloc((size_t)(n ? n : 1), sizeof(int));
    if (!t->dep || !fill) { free(fill); return MOME_ERR_NOMEM; }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < t->f[i].mix.n; k++) {
            const int r = t->f[i].mix.fact[k] - t->n_old;
            if (r >= 0 && r < n && r != i) t->dep[t->dep_off[r] + fill[r]++] = i;
        }
    free(fill);
    if (t->p->top_k_train_all && mem->top_k > 1) {
        t->row0 = mome_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
        t->touched = mome_calloc((size_t)(n ? n : 1), sizeof(int));
        int64_t rows = 0;
        for (int i = 0; t->row0 && i < n; i++) {
            t->row0[i] = rows;
            rows += t->f[i].T;
        }
        t->gall = mome_calloc((size_t)(rows ? rows : 1) * C, sizeof(float));
        if (!t->row0 || !t->touched || !t->gall) return MOME_ERR_NOMEM;
    }
    return 0;
}

/* --------------------------------------------------------------- train */

/* The facts of f's mixture on its row j, in act: called for j = 0, 1, ...
 * in turn (a partner stays while f's answer tokens are its own too). */
static void mix_row(const tuner *t, const fact_rt *f, int j, mem_mix *act) {
    if (j == 0) *act = f->mix;
    else mem_mix_follow(t->mem, act, j - 1, f->target[j - 1], act);
}

/* Run fact r's values changed: a verified fact whose mixture holds it (or
 * r itself, trained as a partner) is verified again. */
static void values_changed(tuner *t, int r) {
    if (t->f[r].state == FACT_VERIFIED) t->f[r].recheck = 1;
    for (int d = t->dep_off[r]; d < t->dep_off[r + 1]; d++)
        if (t->f[t->dep[d]].state == FACT_VERIFIED) t->f[t->dep[d]].recheck = 1;
}

/* One optimizer step on facts batch[0..nb). */
static int train_round(tuner *t, int nb) {
    const int C = t->m->hp.n_embd;
    const float *vp[MEM_MAX_K];
    float a[MEM_MAX_K];
    mem_mix act;
    int R = 0, ns = 0;
    for (int b = 0; b < nb; b++) {
        fact_rt *f = &t->f[t->batch[b]];
        for (int k = 0; k < f->n_seq; k++, ns++) {
            const seq_rt *s = &f->seq[k];
            t->seqs[ns] = (ts_seq){s->P - 1, s->kpre, s->vpre, f->T, R, f->target};
            for (int j = 0; j < f->T; j++, R++) {
                mix_row(t, f, j, &act);
                for (int i = 0; i < act.n; i++) vp[i] = mem_values(t->mem, act.fact[i]) + (size_t)j * C;
                t->rms[R] = mem_mix_row(s->h + (size_t)j * C, vp, act.e, act.n, t->X + (size_t)R * C, C, NULL);
            }
        }
    }
    int rc = tstack_step(&t->st, t->seqs, ns, t->X, t->dX, t->loss, t->ok, 1);
    if (rc) return rc;
    t->step++;
    const adam_cfg ac = adam_default(t->p->lr);
    const int all = t->gall != NULL; /* every participant trained */
    R = 0;
    ns = 0;
    for (int b = 0; b < nb; b++) {
        const int fi = t->batch[b];
        fact_rt *f = &t->f[fi];
        double ls = 0;
        int all_ok = 1;
        for (int k = 0; k < f->n_seq; k++) {
            ls += t->loss[ns + k];
            all_ok &= t->ok[ns + k];
        }
        f->loss = (float)(ls / f->n_seq);
        /* learned: these values did it; the fact's rows give no gradient */
        const int learned = all_ok && f->loss < f->target_loss;
        if (learned) f->state = FACT_LEARNED;
        if (!all) memset(t->grad, 0, (size_t)f->T * C * sizeof(float));
        for (int k = 0; k < f->n_seq; k++, ns++)
            for (int j = 0; j < f->T; j++, R++) {
                if (learned) continue;
                mix_row(t, f, j, &act);
                mem_mix_weights(act.e, act.n, a);
                const float *dx = t->dX + (size_t)R * C;
                for (int i = 0; i < act.n; i++) {
                    float *g;
                    if (all) {
                        const int r = act.fact[i] - t->n_old;
                        if (r < 0) continue; /* a fact of an earlier memory: held */
                        g = t->gall + (size_t)(t->row0[r] + j) * C;
                        t->touched[r] = 1;
                    } else if (act.fact[i] == f->mi)
                        g = t->grad + (size_t)j * C;
                    else
                        continue; /* a partner: held */
                    const float sc = a[i] * t->rms[R]; /* rms itself when a = 1 */
                    for (int c = 0; c < C; c++) g[c] += sc * dx[c];
                }
            }
        if (learned || all) continue;
        adam_update(&ac, ++f->adam_t, mem_values(t->mem, f->mi), t->grad, f->am, f->av, (size_t)f->T * C);
        values_changed(t, fi);
    }
    for (int r = 0; all && r < t->n; r++) {
        if (!t->touched[r]) continue;
        fact_rt *f = &t->f[r];
        float *g = t->gall + (size_t)t->row0[r] * C;
        adam_update(&ac, ++f->adam_t, mem_values(t->mem, f->mi), g, f->am, f->av, (size_t)f->T * C);
        memset(g, 0, (size_t)f->T * C * sizeof(float));
        t->touched[r] = 0;
        values_changed(t, r);
    }
    return 0;
}

/* ------------------------------------------------------------- verify */

/* Facts verified together: each batch's answers are decoded EVAL_PARALLEL
 * at a time in one forward pass (ans_greedy_batch, the same answers as one
 * at a time), and the facts' states change between batches, so progress
 * shows. */
#define VERIFY_BATCH 128

/* ok[k] = 1 if greedy decoding of fact idx[k]'s own wording with the memory
 * states its answer and then ends the turn (eval's greedy answer). */
static int verify_facts(tuner *t, const int *idx, int n, int *ok) {
    const int nc = n < EVAL_PARALLEL ? n : EVAL_PARALLEL;
    for (int k = 0; k < nc; k++) {
        if (t->vctx[k]) continue;
        int rc = mome_ctx_init(t->m, &t->cp, &t->vctx[k]);
        if (!rc) rc = mome_ctx_set_memory(t->vctx[k], t->mem);
        if (rc) return rc;
    }
    char (*qbuf)[8] = mome_malloc((size_t)n * sizeof *qbuf);
    mome_chat_msg(*msgs)[4] = mome_malloc((size_t)n * sizeof *msgs);
    ans_question *qs = mome_malloc((size_t)n * sizeof *qs);
    char **texts = mome_calloc((size_t)n, sizeof *texts);
    int32_t **ids = mome_calloc((size_t)n, sizeof *ids);
    int *n_ids = mome_calloc((size_t)n, sizeof *n_ids);
    int rc = qbuf && msgs && qs && texts && ids && n_ids ? MOME_OK : MOME_ERR_NOMEM, max_T = 0;
    for (int k = 0; k < n && !rc; k++) {
        qs[k] = (ans_question){msgs[k], context_msgs(&t->fs->v[idx[k]], 0, qbuf[k], sizeof qbuf[k], msgs[k])};
        if (t->f[idx[k]].T > max_T) max_T = t->f[idx[k]].T;
    }
    /* at least one token more than each answer: an answer that goes on is not it */
    if (!rc) rc = ans_greedy_batch(t->m, t->vctx, nc, qs, n, max_T, texts, ids, n_ids, NULL, NULL, NULL);
    for (int k = 0; k < n && !rc; k++) {
        const fact_rt *f = &t->f[idx[k]];
        ok[k] = n_ids[k] == f->T - 1 && (n_ids[k] == 0 || memcmp(ids[k], f->target, (size_t)n_ids[k] * sizeof(int32_t)) == 0);
    }
    for (int k = 0; texts && ids && k < n; k++) {
        free(texts[k]);
        free(ids[k]);
    }
    free(qbuf); free(msgs); free(qs); free(texts); free(ids); free(n_ids);
    return rc;
}

/* 1 if f waits for a verification: learned, or verified with a mixture
 * that changed since. */
static int awaits_verify(const fact_rt *f) {
    return f->state == FACT_LEARNED || (f->state == FACT_VERIFIED && f->recheck);
}

/* Facts waiting for a verification. */
static int pending(const tuner *t) {
    int k = 0;
    for (int i = 0; i < t->n; i++) k += awaits_verify(&t->f[i]);
    return k;
}

/* Every learned fact, and every verified one whose mixture changed, with
 * the values rounded to f16 as the file holds them. */
static int verify_round(tuner *t) {
    const int C = t->m->hp.n_embd;
    const size_t nv = (size_t)(t->mem->n_ans_total + t->mem->n_facts) * C;
    float *keep = mome_malloc(nv * sizeof(float));
    if (!keep) return MOME_ERR_NOMEM;
    memcpy(keep, t->mem->val, nv * sizeof(float));
    mem_round_f16(t->mem);
    int rc = 0, idx[VERIFY_BATCH], ok[VERIFY_BATCH];
    double last = mome_time_s();
    for (int i = 0; i < t->n && !rc;) {
        int nb = 0;
        for (; i < t->n && nb < VERIFY_BATCH; i++)
            if (awaits_verify(&t->f[i])) idx[nb++] = i;
        if (nb == 0 || (rc = verify_facts(t, idx, nb, ok))) break;
        for (int k = 0; k < nb; k++) {
            fact_rt *f = &t->f[idx[k]];
            const int again = f->state == FACT_VERIFIED;
            f->recheck = 0;
            if (ok[k]) f->state = FACT_VERIFIED;
            else if (again) {
                f->state = FACT_TRAINING; /* a neighbour undid it: not its own failure */
                t->n_undone++;
            } else {
                f->target_loss *= 0.25f;
                f->state = ++f->n_fail >= MAX_FAILS ? FACT_GIVEN_UP : FACT_TRAINING;
            }
        }
        if (i < t->n && mome_time_s() - last > 0.5) {
            last = mome_time_s();
            progress(t, "verify", -1);
        }
    }
    /* verified facts keep the f16 values they were verified with */
    for (int i = 0; i < t->n; i++) {
        const fact_rt *f = &t->f[i];
        if (f->state == FACT_VERIFIED) continue;
        const size_t off = (size_t)(mem_values(t->mem, f->mi) - t->mem->val);
        memcpy(t->mem->val + off, keep + off, (size_t)f->T * C * sizeof(float));
    }
    free(keep);
    return rc;
}

/* --------------------------------------------------------- checkpoints */

static const int32_t ckpt_code[] = {
    [FACT_TRAINING] = MEM_CKPT_TRAINING, [FACT_LEARNED] = MEM_CKPT_LEARNED,
    [FACT_VERIFIED] = MEM_CKPT_VERIFIED, [FACT_GIVEN_UP] = MEM_CKPT_GIVEN_UP,
};

static fact_state state_of_code(int32_t code) {
    for (int s = FACT_TRAINING; s <= FACT_GIVEN_UP; s++)
        if (ckpt_code[s] == code) return (fact_state)s;
    return FACT_TRAINING;
}

/* Answer rows of the run's facts (the Adam moments' rows). */
static int64_t run_rows(const tuner *t) {
    int64_t r = 0;
    for (int i = 0; i < t->n; i++) r += t->f[i].T;
    return r;
}

/* Everything the loop reads, so that --resume continues the same run. */
static int save_checkpoint(tuner *t, const char *path) {
    const int C = t->m->hp.n_embd, n1 = t->n ? t->n : 1;
    const int64_t rows = run_rows(t);
    mem_ckpt_meta meta = {0};
    meta.n = t->n;
    meta.step = t->step;
    meta.seconds = t->t_prev + mome_time_s() - t->t0;
    meta.cursor = t->cursor;
    meta.n_adam_rows = rows;
    meta.state = mome_malloc((size_t)n1 * sizeof(int32_t));
    meta.n_fail = mome_malloc((size_t)n1 * sizeof(int32_t));
    meta.adam_t = mome_malloc((size_t)n1 * sizeof(int32_t));
    meta.target_loss = mome_malloc((size_t)n1 * sizeof(float));
    meta.loss = mome_malloc((size_t)n1 * sizeof(float));
    meta.adam = mome_malloc((size_t)(rows ? 2 * rows : 1) * C * sizeof(float));
    if (t->mem->top_k > 1) meta.recheck = mome_malloc((size_t)n1 * sizeof(int32_t));
    int rc = MOME_ERR_NOMEM;
    if (meta.state && meta.n_fail && meta.adam_t && meta.target_loss && meta.loss && meta.adam &&
        (t->mem->top_k == 1 || meta.recheck)) {
        float *m1 = meta.adam, *m2 = meta.adam + (size_t)rows * C;
        for (int i = 0; i < t->n; i++) {
            const fact_rt *f = &t->f[i];
            meta.state[i] = ckpt_code[f->state];
            meta.n_fail[i] = f->n_fail;
            meta.adam_t[i] = f->adam_t;
            meta.target_loss[i] = f->target_loss;
            meta.loss[i] = f->loss;
            if (meta.recheck) meta.recheck[i] = f->recheck;
            memcpy(m1, f->am, (size_t)f->T * C * sizeof(float));
            memcpy(m2, f->av, (size_t)f->T * C * sizeof(float));
            m1 += (size_t)f->T * C;
            m2 += (size_t)f->T * C;
        }
        rc = mem_save_ckpt(t->mem, path, &meta);
    }
    mem_ckpt_meta_free(&meta);
    return rc;
}

/* Values and the tuner's state from a checkpoint of the same facts. */
static int load_checkpoint(tuner *t, const char *path) {
    mome_memory *cm = NULL;
    mem_ckpt_meta meta = {0};
    int rc = mem_load_ckpt(path, t->m, &cm, &meta);
    if (rc) return rc;
    const int C = t->m->hp.n_embd;
    if (cm->n_facts != t->mem->n_facts || meta.n != t->n) {
        rc = mome_seterr_code(MOME_ERR_ARG, "%s: the checkpoint holds %d facts, this run has %d: not the same facts (delete it to start over)",
                              path, cm->n_facts, t->mem->n_facts);
        goto out;
    }
    for (int f = 0; f < cm->n_facts && !rc; f++)
        if (cm->n_ans[f] != t->mem->n_ans[f] ||
            memcmp(cm->ans + cm->ans_off[f], t->mem->ans + t->mem->ans_off[f], (size_t)cm->n_ans[f] * 4) != 0)
            rc = mome_seterr_code(MOME_ERR_ARG, "%s: fact %d of the checkpoint has another answer: not the same facts (delete it to start over)",
                                  path, f);
    if (!rc && meta.adam && meta.n_adam_rows != run_rows(t))
        rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: the checkpoint's optimizer state has %lld rows, the facts have %lld",
                              path, (long long)meta.n_adam_rows, (long long)run_rows(t));
    if (rc) goto out;
    memcpy(t->mem->val, cm->val, (size_t)(cm->n_ans_total + cm->n_facts) * C * sizeof(float));
    const float *m1 = meta.adam, *m2 = meta.adam ? meta.adam + (size_t)meta.n_adam_rows * C : NULL;
    for (int i = 0; i < t->n; i++) {
        fact_rt *f = &t->f[i];
        f->state = state_of_code(meta.state[i]);
        if (meta.target_loss[i] > 0 && meta.target_loss[i] < 100) f->target_loss = meta.target_loss[i];
        if (!meta.adam) {
            /* an older checkpoint: verified or not, fresh moments */
            if (f->state != FACT_VERIFIED) f->state = FACT_TRAINING;
            continue;
        }
        f->n_fail = meta.n_fail[i];
        f->adam_t = meta.adam_t[i];
        f->recheck = meta.recheck && f->state == FACT_VERIFIED ? meta.recheck[i] : 0;
        f->loss = meta.loss[i];
        memcpy(f->am, m1, (size_t)f->T * C * sizeof(float));
        memcpy(f->av, m2, (size_t)f->T * C * sizeof(float));
        m1 += (size_t)f->T * C;
        m2 += (size_t)f->T * C;
    }
    if (meta.adam) t->cursor = meta.cursor < 0 || meta.cursor > t->n ? 0 : meta.cursor;
    t->step = meta.step;
    t->t_prev = meta.seconds;
out:
    mem_ckpt_meta_free(&meta);
    mome_memory_free(cm);
    return rc;
}

/* --------------------------------------------------------------- driver */

static void tuner_free(tuner *t) {
    for (int i = 0; i < t->n && t->f; i++) {
        fact_rt *f = &t->f[i];
        uncache(f);
        free(f->seq); free(f->target); free(f->am); free(f->av);
    }
    free(t->f);
    free(t->gpos);
    free(t->ckeys);
    free(t->dep_off); free(t->dep); free(t->gall); free(t->row0); free(t->touched);
    free(t->X); free(t->dX); free(t->rms); free(t->grad); free(t->loss); free(t->ok); free(t->seqs); free(t->batch);
    tstack_free(&t->st);
    if (t->ctx) free(t->ctx->capture); /* the tuner's buffer, not the context's */
    mome_ctx_free(t->ctx);
    for (int k = 0; k < EVAL_PARALLEL; k++) mome_ctx_free(t->vctx[k]);
    mome_memory_free(t->mem);
    facts_free(t->fs);
}

/* The facts, checked, and each one's answer tokens. */
static int load_facts(tuner *t) {
    const mome_tune_params *p = t->p;
    int rc = facts_load(p->facts_path, (enum facts_conflict)p->on_conflict, &t->fs);
    if (rc) return rc;
    t->n = t->fs->n;
    t->f = mome_calloc((size_t)t->n, sizeof(fact_rt));
    if (!t->f) return MOME_ERR_NOMEM;
    if (p->augment < 0 || p->augment > MAX_AUGMENT)
        return mome_seterr_code(MOME_ERR_ARG, "tune: --augment %d is outside 0..%d", p->augment, MAX_AUGMENT);
    if (p->alt_keys < 0 || p->alt_keys > 1)
        return mome_seterr_code(MOME_ERR_ARG, "tune: --alt-keys %d is outside 0..1", p->alt_keys);
    if (p->infer_subjects > 0 && p->subject_check) {
        if (p->infer_subjects < 2) return mome_seterr_code(MOME_ERR_ARG, "tune: --infer-subjects %d: 0 (off) or at least 2", p->infer_subjects);
        const int r = facts_infer_subjects(t->fs, p->infer_subjects);
        if (r < 0) return -r;
        t->n_inferred = r;
    }
    for (int i = 0; i < t->n; i++) t->n_subj += t->fs->v[i].subject != NULL;
    return prepare_tokens(t);
}

/* The meaning key's wrapper (--verify-key meaning): the question is read
 * inside `This sentence : "Q" means in one word:"`, the prompt of PromptEOL
 * (Jiang et al. 2023, sentence embeddings from a language model's next-word
 * state), at its last token. The model then sums up what the question asks
 * for in the state that predicts one word: measured in f32 on 300 zsRE facts
 * (bench/relation_meaning.py), 0.877 of rewordings pass at 99% of other
 * questions about the subject turned away, against 0.800 for the relation
 * key at its best block; in the engine on 998 facts 0.816 against 0.730
 * (both with 8 centre questions; docs/BENCHMARKS.md). */
#define MEANING_OPEN "This sentence : \""
#define MEANING_CLOSE "\" means in one word:\""
static int set_meaning_wrap(tuner *t) {
    int32_t open[MEM_MAX_MARK], close[MEM_MAX_MARK];
    const int no = mome_tokenize(t->m, MEANING_OPEN, strlen(MEANING_OPEN), open, MEM_MAX_MARK, 0, 0);
    const int nc = mome_tokenize(t->m, MEANING_CLOSE, strlen(MEANING_CLOSE), close, MEM_MAX_MARK, 0, 0);
    if (no < 0) return no;
    if (nc < 0) return nc;
    return mem_set_verify_wrap(t->mem, open, no, close, nc);
}

/* The memory the facts join: a new one with the run's layers and routing,
 * or the one given (--memory), whose settings stay unless given. */
static int open_memory(tuner *t, int *new_memory) {
    const mome_tune_params *p = t->p;
    mome_model *m = t->m;
    int rc;
    *new_memory = !p->init_memory;
    if (p->verify_key < MOME_VERIFY_CENTRED || p->verify_key > MOME_VERIFY_NONE)
        return mome_seterr_code(MOME_ERR_ARG, "tune: verify_key %d is no mome_verify_key", p->verify_key);
    if (p->verify_key == MOME_VERIFY_NONE && !isnan(p->verify))
        return mome_seterr_code(MOME_ERR_ARG, "tune: --verify %g asks for the relation check and --verify-key none for "
                                              "none; give one of them", (double)p->verify);
    /* the relation check: a new memory has it by default (MOME_DEFAULT_VERIFY), unless --verify-key none;
     * facts added to a memory are checked as its own facts are, and an explicit --verify adds a check */
    const float verify = !isnan(p->verify) ? p->verify
                         : !p->init_memory && p->verify_key != MOME_VERIFY_NONE ? MOME_DEFAULT_VERIFY : NAN;
    if (p->top_k < 0 || p->top_k > MEM_MAX_K || p->top_k_temp < 0 || !(p->top_k_temp <= 100) ||
        (!isnan(p->top_k_tau) && !(p->top_k_tau >= -1 && p->top_k_tau <= 1)))
        return mome_seterr_code(MOME_ERR_ARG, "tune: --top-k %d (1..%d), --top-k-temp %g ((0, 100]) or --top-k-tau %g "
                                              "([-1, 1]) out of range", p->top_k, MEM_MAX_K, (double)p->top_k_temp,
                                (double)p->top_k_tau);
    if (p->init_memory) {
        if ((rc = mome_memory_load(p->init_memory, m, &t->mem))) return rc;
        if (p->top_k > 0 && p->top_k != t->mem->top_k)
            return mome_seterr_code(MOME_ERR_ARG, "tune: %s mixes %d fact(s) per question; facts added to it are tuned "
                                                  "the same way (leave out --top-k or give %d)",
                                    p->init_memory, t->mem->top_k, t->mem->top_k);
    } else {
        const int lv = p->layer >= 0 ? p->layer : model_mem_value_layer(m);
        const int lk = p->key_layer >= 0 ? p->key_layer : m->hp.n_layer / 5;
        if ((rc = mem_new(m, lk > 0 ? lk : 1, lv, &t->mem))) return rc;
        mome_memory_set_routing(t->mem, p->route_threshold, p->w_pool);
        mome_memory_set_mix(t->mem, p->top_k > 0 ? p->top_k : 1, p->top_k_temp > 0 ? p->top_k_temp : MEM_DEFAULT_MIX_TEMP,
                            p->top_k_tau);
    }
    if (!isnan(p->route_margin)) {
        if (!(p->route_margin >= 0.0f && p->route_margin <= 2.0f))
            return mome_seterr_code(MOME_ERR_ARG, "tune: --route-margin %g outside [0, 2]", (double)p->route_margin);
        mome_memory_set_margin(t->mem, p->route_margin);
    }
    if (!isnan(p->route_margin_share)) {
        if (!(p->route_margin_share >= 0.0f && p->route_margin_share <= 2.0f))
            return mome_seterr_code(MOME_ERR_ARG, "tune: --route-margin-share %g outside [0, 2]", (double)p->route_margin_share);
        mome_memory_set_margin_share(t->mem, p->route_margin_share);
    }
    if (!isnan(p->cover)) {
        if (!(p->cover >= -1.0f && p->cover <= 1.0f))
            return mome_seterr_code(MOME_ERR_ARG, "tune: --cover %g outside [-1, 1]", (double)p->cover);
        mome_memory_set_cover(t->mem, p->cover);
    }
    if (!isnan(verify) || t->mem->ver_layer >= 0) {
        const int L = m->hp.n_layer, key = check_key(p);
        if (t->mem->n_ver_total == 0) { /* a new check: its key */
            t->mem->ver_pool = key == MOME_VERIFY_RELATION;
            rc = key == MOME_VERIFY_MEANING ? set_meaning_wrap(t) : mem_set_verify_wrap(t->mem, NULL, 0, NULL, 0);
            if (rc) return rc;
        }
        /* the relation key reads a shallower block (memory.h: 0.730 of rewordings at 14 of 30, 0.720 at 18),
         * the meaning key a deeper one (f32, bench/relation_meaning.py: 0.877 at 26 of 30, 0.883 at 24,
         * 0.873 at 28, 0.737 at 22: a plateau from 24 on; with 2 centre questions, bench/relation_centre.py,
         * 0.890 at 24 and 0.857 at 26; the engine's figures in memory.h); each block less is 1/24 of its passes */
        const int ldef = key == MOME_VERIFY_RELATION ? 7 * L / 15 : key == MOME_VERIFY_MEANING ? 12 * L / 15 : 3 * L / 5;
        const int lver = t->mem->ver_layer >= 0 ? t->mem->ver_layer : p->verify_layer >= 0 ? p->verify_layer : ldef > 1 ? ldef : 1;
        if ((rc = mem_verify_init(t->mem, lver, isnan(verify) ? t->mem->ver_tau : verify))) return rc;
    }
    if (!isnan(p->verify_unnamed)) {
        if (!(p->verify_unnamed >= -1.0f && p->verify_unnamed <= 1.0f))
            return mome_seterr_code(MOME_ERR_ARG, "tune: --verify-unnamed %g outside [-1, 1]", (double)p->verify_unnamed);
        mome_memory_set_verify_unnamed(t->mem, p->verify_unnamed);
    }
    return 0;
}

/* The engine context the captures decode in (the memory attached, selection
 * off in capture) and the keys the gate and the margin collect. */
static int open_context(tuner *t) {
    const mome_tune_params *p = t->p;
    mome_model *m = t->m;
    const int C = m->hp.n_embd;
    mome_ctx_params cp = mome_ctx_default_params();
    int nctx = t->max_P + t->max_T + 16, rc;
    if (nctx < 64) nctx = 64;
    if (nctx > m->hp.n_ctx_train && m->hp.n_ctx_train > 0) nctx = m->hp.n_ctx_train;
    cp.n_ctx = nctx;
    cp.n_batch = nctx;
    cp.n_threads = p->n_threads;
    t->cp = cp;
    if ((rc = mome_ctx_init(m, &cp, &t->ctx))) return rc;
    if ((rc = mome_ctx_set_memory(t->ctx, t->mem))) return rc;
    t->ctx->capture = mome_malloc((size_t)nctx * C * sizeof(float));
    if (!t->ctx->capture) return MOME_ERR_NOMEM;
    t->gate_on = p->gate_questions > 0 && (t->n_subj > 0 || t->mem->gate_w);
    t->gpos = mome_malloc((size_t)(t->n ? t->n : 1) * (1 + p->augment) * C * sizeof(float));
    if (!t->gpos) return MOME_ERR_NOMEM;
    if (t->mem->margin > 0.0f) {
        t->ckeys = mome_malloc((size_t)(t->n ? t->n : 1) * N_CONTEXTS * 2 * C * sizeof(float));
        if (!t->ckeys) return MOME_ERR_NOMEM;
    }
    return 0;
}

/* The training stack and the batch buffers. */
static int alloc_training(tuner *t) {
    const int B = t->p->batch, S = B * (1 + t->p->augment), C = t->m->hp.n_embd;
    const int max_rows = S * t->max_T;
    int rc;
    if ((rc = tstack_init(&t->st, t->m, t->mem->value_layer, t->max_seq_P + t->max_T + 1, max_rows))) return rc;
    t->X = mome_malloc((size_t)max_rows * C * sizeof(float));
    t->dX = mome_malloc((size_t)max_rows * C * sizeof(float));
    t->rms = mome_malloc((size_t)max_rows * sizeof(float));
    t->grad = mome_malloc((size_t)t->max_T * C * sizeof(float));
    t->loss = mome_malloc((size_t)S * sizeof(float));
    t->ok = mome_malloc((size_t)S * sizeof(int));
    t->seqs = mome_malloc((size_t)S * sizeof(ts_seq));
    t->batch = mome_malloc((size_t)B * sizeof(int));
    if (!t->X || !t->dX || !t->rms || !t->grad || !t->loss || !t->ok || !t->seqs || !t->batch) return MOME_ERR_NOMEM;
    return 0;
}

/* Everything before the first training step. */
static int prepare(tuner *t, int *new_memory) {
    int rc;
    if ((rc = load_facts(t))) return rc;
    if ((rc = open_memory(t, new_memory))) return rc;
    if ((rc = open_context(t))) return rc;
    if ((rc = prepare_captures(t, *new_memory))) return rc;
    if ((rc = prepare_gate(t))) return rc;
    if ((rc = prepare_margins(t))) return rc;
    free(t->ckeys); /* the leads are set: the contexts' keys are not read again */
    t->ckeys = NULL;
    if ((rc = prepare_mixtures(t))) return rc;
    return alloc_training(t);
}

/* The next batch of facts still training whose contexts are cached (round
 * robin); 0 if none. */
static int next_batch(tuner *t) {
    int nb = 0, seen = 0;
    while (nb < t->p->batch && seen < t->n) {
        if (t->cursor >= t->n) t->cursor = 0;
        if (t->f[t->cursor].state == FACT_TRAINING && is_cached(&t->f[t->cursor])) t->batch[nb++] = t->cursor;
        t->cursor++;
        seen++;
    }
    return nb;
}

/* What the run did, for the caller (mome_tune_report; seconds aside). */
static void report(const tuner *t, mome_tune_report *rep) {
    rep->n_facts = t->n;
    rep->n_memorized = count_state(t, FACT_VERIFIED);
    rep->steps = t->step;
    rep->n_undone = t->n_undone;
    rep->n_subjects = t->n_subj;
    rep->n_inferred = t->n_inferred;
    int64_t rows = 0;
    double ls = 0, mix = 0;
    for (int i = 0; i < t->n; i++) {
        rows += t->f[i].T;
        ls += t->f[i].loss;
        mix += t->f[i].mix.n;
        if (t->f[i].state != FACT_VERIFIED && rep->n_missing_lines < (int)(sizeof rep->missing_lines / sizeof rep->missing_lines[0]))
            rep->missing_lines[rep->n_missing_lines++] = t->fs->v[i].line;
    }
    rep->n_trained_experts = rows;
    rep->mean_mix = t->n ? mix / t->n : 0;
    rep->mean_loss = t->n ? ls / t->n : 0;
}

int mome_tune(mome_model *m, const mome_tune_params *p_in, mome_tune_report *rep) {
    memset(rep, 0, sizeof *rep);
    rep->ppl_before = rep->ppl_after = -1;
    mome_tune_params pp = *p_in;
    if (!pp.facts_path || !pp.out_path) return mome_seterr_code(MOME_ERR_ARG, "tune: facts and output paths are required");
    if (pp.lr <= 0) pp.lr = pp.method == MOME_TUNE_LORA ? 1e-3f : pp.method == MOME_TUNE_FULL ? FINETUNE_FULL_LR : model_mem_lr(m);
    if (pp.batch < 1) pp.batch = 1;
    if (pp.method == MOME_TUNE_LORA || pp.method == MOME_TUNE_FULL) {
        fact_set *fs;
        int rc = facts_load(pp.facts_path, (enum facts_conflict)pp.on_conflict, &fs);
        if (rc) return rc;
        rc = mome_tune_finetune(m, &pp, rep, fs);
        facts_free(fs);
        return rc;
    }
    tuner t;
    memset(&t, 0, sizeof t);
    t.m = m;
    t.p = &pp;
    t.t0 = mome_time_s();
    char ckpt[4096];
    if (snprintf(ckpt, sizeof ckpt, "%s.ckpt", pp.out_path) >= (int)sizeof ckpt)
        return mome_seterr_code(MOME_ERR_ARG, "tune: output path too long");
    int new_memory = 1;
    int rc = prepare(&t, &new_memory);
    if (!rc && pp.resume && access(ckpt, F_OK) == 0) rc = load_checkpoint(&t, ckpt);
    double last_ckpt = mome_time_s(), last_prog = 0;
    int stopped = 0;
    while (!rc) {
        if ((rc = cache_more(&t))) break;
        int nb = next_batch(&t);
        if (nb > 0) {
            if ((rc = train_round(&t, nb))) break;
            const double now = mome_time_s();
            if (now - last_prog > 0.25) {
                last_prog = now;
                progress(&t, "train", -1);
            }
        }
        /* a pass over the facts still training is done, or none is left */
        if (nb == 0 || t.cursor >= t.n || count_state(&t, FACT_LEARNED) >= pp.batch * 8) {
            if (pending(&t) > 0 && (rc = verify_round(&t))) break;
            if (count_state(&t, FACT_TRAINING) + pending(&t) == 0) break;
        }
        const double el = t.t_prev + mome_time_s() - t.t0;
        if ((pp.max_steps > 0 && t.step >= pp.max_steps) || (pp.max_minutes > 0 && el >= pp.max_minutes * 60)) {
            stopped = 1;
            break;
        }
        if (pp.checkpoint_s > 0 && mome_time_s() - last_ckpt >= pp.checkpoint_s) {
            if ((rc = save_checkpoint(&t, ckpt))) break;
            last_ckpt = mome_time_s();
        }
    }
    /* the checkpoint holds the state before this last verification, which
     * the uninterrupted run would do later: a resumed run continues it */
    if (!rc && stopped) rc = save_checkpoint(&t, ckpt);
    if (!rc && stopped && pending(&t) > 0) rc = verify_round(&t);
    if (!rc) {
        report(&t, rep);
        progress(&t, "done", rep->n_memorized);
        rc = mem_save(t.mem, pp.out_path, 1);
        if (!rc && !stopped) unlink(ckpt);
        rep->seconds = t.t_prev + mome_time_s() - t.t0;
    }
    tuner_free(&t);
    return rc;
}
