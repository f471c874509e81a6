/* answer.c - greedy answers with prompt-prefix K/V reuse (see answer.h).
 *
 * One answer in progress is an ans_seq: start() renders, tokenizes and
 * decodes the prompt and picks the first token; take() appends the picked
 * token and says whether the answer goes on; the caller then decodes that
 * token (alone with mome_decode, or with other answers' tokens in one
 * mome_decode_batch, which gives the same bits) and picks the next one. So
 * ans_greedy and ans_greedy_batch run the same steps and give the same
 * answers. */
#include "answer.h"

#include <string.h>

#include "model.h"
#include "util.h"

int32_t ans_argmax(const float *lg, int V) {
    int32_t best = 0;
    for (int32_t v = 1; v < V; v++)
        if (lg[v] > lg[best]) best = v;
    return best;
}

typedef struct ans_seq {
    mome_ctx *c;
    int n_prompt;      /* prompt tokens */
    int ng;            /* tokens taken */
    int32_t next;      /* the token picked from the last logits */
    sbuf out;          /* text so far */
    int32_t *gen;      /* (max_new) token ids, when asked for */
    ans_route route;   /* the memory's decision on the prompt */
} ans_seq;

static void seq_free(ans_seq *s) {
    free(s->out.p);
    free(s->gen);
    memset(s, 0, sizeof *s);
}

/* Renders msgs, decodes the prompt on c (reusing the prefix it shares with
 * what c holds) and picks the first token. */
static int seq_start(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, int max_new, int want_ids,
                     ans_seq *s) {
    memset(s, 0, sizeof *s);
    s->c = c;
    char *prompt = mome_chat_format(m, msgs, n_msgs, 1);
    if (!prompt) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (chat template)");
    size_t len = strlen(prompt);
    if (len > (size_t)INT32_MAX / 2 - 8) {
        free(prompt);
        return mome_seterr_code(MOME_ERR_ARG, "question too long for the context");
    }
    int cap = (int)len + 8, rc = MOME_OK;
    int32_t *ids = mome_malloc((size_t)cap * sizeof(int32_t));
    sb_add(&s->out, "", 0); /* an empty answer is "" */
    if (want_ids && max_new > 0) s->gen = mome_malloc((size_t)max_new * sizeof(int32_t));
    if (!ids || s->out.oom || (want_ids && max_new > 0 && !s->gen)) {
        free(prompt);
        rc = MOME_ERR_NOMEM;
        goto done;
    }
    int n = mome_tokenize(m, prompt, len, ids, cap, 1, 1);
    free(prompt);
    if (n < 0) { rc = n; goto done; }
    if (n > cap || n + max_new > c->n_ctx) {
        rc = mome_seterr_code(MOME_ERR_ARG, "question too long for the context");
        goto done;
    }
    const int keep = mome_ctx_shared_prefix(c, ids, n);
    if ((rc = mome_decode(c, ids + keep, n - keep, keep, 0)) != MOME_OK) goto done;
    s->n_prompt = n;
    ans_route *r = &s->route;
    r->decided = mome_ctx_memory_candidate(c, &r->best, &r->gate, &r->cover, &r->subject);
    mome_ctx_memory_decision(c, NULL, &r->fact, &r->score);
    r->second = c->dec_cand.second;
    r->rival = c->dec_cand.rival;
    r->margin = c->dec_cand.margin;
    r->verify = c->dec_cand.verify;
    if (!r->decided) r->best = r->fact = -1;
    s->next = ans_argmax(mome_get_logits(c, -1), m->hp.n_vocab);
done:
    free(ids);
    if (rc) seq_free(s);
    return rc;
}

/* Takes the picked token: 1 when it is part of the answer and is to be
 * decoded next, 0 when the answer has ended (end of generation or max_new
 * tokens). */
static int seq_take(mome_model *m, ans_seq *s, int max_new, int *err) {
    *err = 0;
    if (s->ng >= max_new || mome_token_is_eog(m, s->next)) return 0;
    if (s->gen) s->gen[s->ng] = s->next;
    s->ng++;
    char piece[256];
    int k = mome_token_to_piece(m, s->next, piece, sizeof piece, 0);
    if (k > 0 && k <= (int)sizeof piece) sb_add(&s->out, piece, (size_t)k);
    if (s->out.oom) { *err = mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); return 0; }
    return 1;
}

/* Hands a finished answer's text (and ids) to question q's outputs. */
static void seq_finish(ans_seq *s, int q, char **texts, int32_t **ids, int *n_ids) {
    texts[q] = s->out.p;
    s->out.p = NULL;
    if (ids) {
        ids[q] = s->ng ? s->gen : NULL;
        n_ids[q] = s->ng;
        if (s->ng) s->gen = NULL;
    }
    seq_free(s);
}

int ans_greedy(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, int max_new, char **text,
               int32_t **out_ids, int *n_out, ans_route *route) {
    if (text) *text = NULL;
    if (out_ids) *out_ids = NULL;
    if (n_out) *n_out = 0;
    if (!m || !c || !msgs || n_msgs < 1 || !text || (out_ids && !n_out))
        return mome_seterr_code(MOME_ERR_ARG, "ans_greedy: bad arguments");
    if (max_new < 0) max_new = 0;
    ans_seq s;
    int rc = seq_start(m, c, msgs, n_msgs, max_new, out_ids != NULL, &s);
    if (rc) return rc;
    int err = 0;
    while (seq_take(m, &s, max_new, &err)) {
        if ((rc = mome_decode(c, &s.next, 1, s.n_prompt + s.ng - 1, 0)) != MOME_OK) break;
        s.next = ans_argmax(mome_get_logits(c, -1), m->hp.n_vocab);
    }
    if (!rc) rc = err;
    if (rc) { seq_free(&s); return rc < 0 ? rc : MOME_ERR; }
    if (route) *route = s.route;
    seq_finish(&s, 0, text, out_ids, n_out);
    return MOME_OK;
}

int ans_greedy_batch(mome_model *m, mome_ctx *const *ctxs, int n_ctx, const ans_question *qs, int n_q, int max_new,
                     char **texts, int32_t **ids, int *n_ids, ans_route *routes,
                     void (*on_done)(int done, int total, void *user), void *user) {
    if (!m || !ctxs || n_ctx < 1 || (n_q > 0 && (!qs || !texts)) || n_q < 0 || !ids != !n_ids)
        return mome_seterr_code(MOME_ERR_ARG, "ans_greedy_batch: bad arguments");
    for (int i = 0; i < n_q; i++) {
        texts[i] = NULL;
        if (ids) ids[i] = NULL, n_ids[i] = 0;
    }
    if (max_new < 0) max_new = 0;
    ans_seq *slot = mome_calloc((size_t)n_ctx, sizeof *slot);
    int *job = mome_malloc((size_t)n_ctx * sizeof(int));
    mome_ctx **bc = mome_malloc((size_t)n_ctx * sizeof(mome_ctx *));
    int32_t *bt = mome_malloc((size_t)n_ctx * sizeof(int32_t));
    int *bs = mome_malloc((size_t)n_ctx * sizeof(int));
    if (!slot || !job || !bc || !bt || !bs) {
        free(slot); free(job); free(bc); free(bt); free(bs);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    }
    int rc = MOME_OK, next_q = 0, done = 0;
    for (int k = 0; k < n_ctx; k++) job[k] = -1;
    while (!rc && done < n_q) {
        /* free slots take the next questions; answers that end at once are done */
        for (int k = 0; k < n_ctx && !rc; k++) {
            while (job[k] < 0 && next_q < n_q && !rc) {
                const int q = next_q++;
                if ((rc = seq_start(m, ctxs[k], qs[q].msgs, qs[q].n_msgs, max_new, ids != NULL, &slot[k]))) break;
                if (routes) routes[q] = slot[k].route;
                int err = 0;
                if (seq_take(m, &slot[k], max_new, &err)) job[k] = q;
                else if (!(rc = err)) {
                    seq_finish(&slot[k], q, texts, ids, n_ids);
                    done++;
                    if (on_done) on_done(done, n_q, user);
                }
            }
        }
        if (rc) break;
        /* one step for every answer in progress, in one forward pass */
        int nb = 0;
        for (int k = 0; k < n_ctx; k++)
            if (job[k] >= 0) { bc[nb] = ctxs[k]; bt[nb] = slot[k].next; bs[nb] = k; nb++; }
        if (nb == 0) continue;
        if ((rc = mome_decode_batch(bc, bt, nb)) != MOME_OK) break;
        for (int b = 0; b < nb && !rc; b++) {
            ans_seq *s = &slot[bs[b]];
            s->next = ans_argmax(mome_get_logits(s->c, -1), m->hp.n_vocab);
            int err = 0;
            if (!seq_take(m, s, max_new, &err)) {
                if ((rc = err)) break;
                seq_finish(s, job[bs[b]], texts, ids, n_ids);
                job[bs[b]] = -1;
                done++;
                if (on_done) on_done(done, n_q, user);
            }
        }
    }
    for (int k = 0; k < n_ctx; k++) seq_free(&slot[k]);
    if (rc)
        for (int i = 0; i < n_q; i++) {
            free(texts[i]);
            texts[i] = NULL;
            if (ids) free(ids[i]), ids[i] = NULL, n_ids[i] = 0;
        }
    free(slot); free(job); free(bc); free(bt); free(bs);
    return rc < 0 ? rc : (rc ? MOME_ERR : MOME_OK);
}
