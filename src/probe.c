/* probe.c - teacher-forced answer losses under the engine (see probe.h). */
#include "probe.h"

#include <math.h>
#include <string.h>

#include "model.h"
#include "util.h"

int probe_answer(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, const char *answer,
                 float *token_loss, int cap, probe_result *out) {
    memset(out, 0, sizeof *out);
    out->first_wrong = -1;
    if (!answer || !*answer) return mome_seterr_code(MOME_ERR_ARG, "probe: empty answer");
    char *prompt = mome_chat_format(m, msgs, n_msgs, 1);
    if (!prompt) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (chat template)");
    int32_t *p_ids = NULL, *a_ids = NULL, *ids = NULL;
    int rc = MOME_OK;
    const int P = mome_tokenize_alloc(m, prompt, 1, 1, &p_ids);
    free(prompt);
    if (P < 0) { rc = P; goto done; }
    const int A = mome_tokenize_alloc(m, answer, 0, 0, &a_ids);
    if (A < 0) { rc = A; goto done; }
    if (P < 1 || A < 1) { rc = mome_seterr_code(MOME_ERR_ARG, "probe: empty prompt or answer"); goto done; }
    const int n = P + A + 1, T = A + 1;
    ids = mome_malloc((size_t)n * sizeof(int32_t));
    if (!ids) { rc = MOME_ERR_NOMEM; goto done; }
    memcpy(ids, p_ids, (size_t)P * sizeof(int32_t));
    memcpy(ids + P, a_ids, (size_t)A * sizeof(int32_t));
    ids[n - 1] = mome_token_eot(m);
    /* decode from the shared prefix, but at least from the last prompt token:
     * its logits predict the first answer token */
    int keep = mome_ctx_shared_prefix(c, ids, n);
    if (keep > P - 1) keep = P - 1;
    if (n > c->n_ctx || n - keep > c->n_batch) {
        rc = mome_seterr_code(MOME_ERR_ARG, "probe: %d tokens do not fit the context (%d) or its batch (%d)", n,
                              c->n_ctx, c->n_batch);
        goto done;
    }
    if ((rc = mome_decode(c, ids + keep, n - keep, keep, 1)) != MOME_OK) goto done;
    const int V = m->hp.n_vocab;
    double sum = 0;
    for (int i = 0; i < T; i++) {
        const int32_t tgt = ids[P + i];
        const float *lg = mome_get_logits(c, P + i - 1 - keep);
        float mx = lg[0];
        for (int v = 1; v < V; v++)
            if (lg[v] > mx) mx = lg[v];
        double z = 0;
        int rank = 1; /* 1 + the tokens ahead of the target (a tie goes to the lower id, as ans_argmax) */
        for (int v = 0; v < V; v++) {
            z += exp((double)lg[v] - mx);
            if (lg[v] > lg[tgt] || (lg[v] == lg[tgt] && v < tgt)) rank++;
        }
        const double loss = log(z) - ((double)lg[tgt] - mx);
        sum += loss;
        if (loss > out->max_loss) out->max_loss = loss;
        if (token_loss && i < cap) token_loss[i] = (float)loss;
        if (rank > 1 && out->first_wrong < 0) {
            out->first_wrong = i;
            out->first_wrong_rank = rank;
        }
    }
    out->n_tokens = T;
    out->mean_loss = sum / T;
done:
    free(p_ids);
    free(a_ids);
    free(ids);
    return rc;
}
