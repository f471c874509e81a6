/* probe.h - how well a model (with or without a memory) knows one answer:
 * the teacher-forced loss of each answer token under the engine.
 *
 * The conversation is rendered and tokenized as answer.c does for a greedy
 * answer (chat template with an assistant turn opened, BOS as the model asks,
 * special tokens parsed); the answer is tokenized as the tuner trains it
 * (mome_tokenize(answer, no BOS, no specials)) followed by the end-of-turn
 * token. Prompt and answer are decoded in one pass with every position's
 * logits, so a memory attached to the context routes exactly as it does while
 * its answer is generated token by token (the decision row at the end of the
 * assistant header, then one answer row per token that matches the fact).
 *
 * Token i's loss is -log softmax(logits at the position before it)[token i],
 * in nats, computed in double. Greedy decoding states the answer exactly when
 * every token is its position's argmax; a loss below ln 2 (p > 1/2) is
 * sufficient for that, not necessary. The experiments (tools/experiment.c)
 * set these losses against the greedy answer the engine really produces.
 */
#ifndef MOME_PROBE_H
#define MOME_PROBE_H

#include <stdint.h>

#include "mome.h"

typedef struct probe_result {
    int32_t n_tokens;          /* answer tokens + the end-of-turn token */
    double mean_loss, max_loss;/* nats, over the n_tokens */
    int32_t first_wrong;       /* first token that is not its position's argmax (the
                                  first wrong token of the greedy answer); -1: none */
    int32_t first_wrong_rank;  /* the correct token's rank there (2: the runner-up);
                                  0 when first_wrong is -1 */
} probe_result;

/* Teacher-forced answer losses of `answer` to the conversation msgs on c
 * (whatever memory is attached to it). token_loss (may be NULL) receives up
 * to cap per-token losses. Reuses the prompt prefix c already holds. Returns
 * MOME_OK or an error status (an empty answer, a conversation too long for
 * the context or its batch, a decode error). */
int probe_answer(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, const char *answer,
                 float *token_loss, int cap, probe_result *out);

#endif
