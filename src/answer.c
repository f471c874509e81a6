/* answer.c - greedy answers with prompt-prefix K/V reuse (see answer.h). */
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

int ans_greedy(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, int max_new, char **text,
               int32_t **out_ids, int *n_out) {
    if (text) *text = NULL;
    if (out_ids) *out_ids = NULL;
    if (n_out) *n_out = 0;
    if (!m || !c || !msgs || n_msgs < 1 || !text || (out_ids && !n_out))
        return mome_seterr_code(MOME_ERR_ARG, "ans_greedy: bad arguments");
    if (max_new < 0) max_new = 0;
    char *prompt = mome_chat_format(m, msgs, n_msgs, 1);
    if (!prompt) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (chat template)");
    size_t len = strlen(prompt);
    int32_t *ids = NULL, *gen = NULL;
    char *out = NULL;
    int rc = MOME_OK;
    if (len > (size_t)INT32_MAX / 2 - 8) {
        free(prompt);
        return mome_seterr_code(MOME_ERR_ARG, "question too long for the context");
    }
    int cap = (int)len + 8;
    size_t on = 0, ocap = 256;
    ids = mome_malloc((size_t)cap * sizeof(int32_t));
    out = mome_malloc(ocap);
    if (out_ids && max_new > 0) gen = mome_malloc((size_t)max_new * sizeof(int32_t));
    if (!ids || !out || (out_ids && max_new > 0 && !gen)) {
        free(prompt);
        rc = MOME_ERR_NOMEM;
        goto fail;
    }
    int n = mome_tokenize(m, prompt, len, ids, cap, 1, 1);
    free(prompt);
    if (n < 0) { rc = n; goto fail; }
    if (n > cap || n + max_new > c->n_ctx) {
        rc = mome_seterr_code(MOME_ERR_ARG, "question too long for the context");
        goto fail;
    }
    /* reuse the K/V of the part this prompt shares with what the context holds */
    const int keep = mome_ctx_shared_prefix(c, ids, n);
    if ((rc = mome_decode(c, ids + keep, n - keep, keep, 0)) != MOME_OK) goto fail;
    const int V = m->hp.n_vocab;
    int ng = 0;
    for (int i = 0; i < max_new; i++) {
        int32_t best = ans_argmax(mome_get_logits(c, -1), V);
        if (mome_token_is_eog(m, best)) break;
        if (gen) gen[ng] = best;
        ng++;
        char piece[256];
        int k = mome_token_to_piece(m, best, piece, sizeof piece, 0);
        if (k > 0 && k <= (int)sizeof piece) {
            if (on + (size_t)k + 1 > ocap) {
                ocap = 2 * (on + (size_t)k + 1);
                char *no = realloc(out, ocap);
                if (!no) { rc = mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); goto fail; }
                out = no;
            }
            memcpy(out + on, piece, (size_t)k);
            on += (size_t)k;
        }
        if ((rc = mome_decode(c, &best, 1, n + i, 0)) != MOME_OK) goto fail;
    }
    out[on] = 0;
    free(ids);
    *text = out;
    if (out_ids) {
        if (ng == 0) { free(gen); gen = NULL; }
        *out_ids = gen;
        *n_out = ng;
    } else {
        free(gen);
    }
    return MOME_OK;
fail:
    free(ids);
    free(out);
    free(gen);
    return rc < 0 ? rc : MOME_ERR;
}
