/* answer.h - the one greedy answer: eval's measures and the tuner's
 * verification decode a conversation the same way, so "memorized" means the
 * same thing in both.
 *
 * A conversation is rendered with the model's chat template
 * (mome_chat_format(m, msgs, n, 1): an assistant turn opened at the end),
 * tokenized (BOS as the model asks, special tokens parsed), and decoded
 * greedily (ans_argmax: the first largest logit) until an end-of-generation
 * token or max_new tokens. The prompt decodes only what follows the part it
 * shares with the tokens the context already holds (mome_ctx_shared_prefix:
 * the chat template's head, a shared system prompt).
 */
#ifndef MOME_ANSWER_H
#define MOME_ANSWER_H

#include <stdint.h>

#include "mome.h"

/* How the memory decided on a question: read off the context right after
 * its prompt is decoded (mome_ctx_memory_candidate / _decision). decided =
 * 0 when the prompt held no decision row (no memory, or the prompt ended
 * elsewhere); best: the fact with the highest key score (-1: none), score
 * its key score, gate its relation gate and cover its wording-check cover
 * (INFINITY where the memory has no such check); fact: the fact whose
 * answer the memory gives (-1: it stayed silent). */
typedef struct ans_route {
    int decided;
    int32_t best, fact;
    float score, gate, cover;
    int subject;  /* the subject check: 1 passed, 0 failed, -1 none */
    float second; /* the key score of the next best fact (-inf: none) */
    float rival;  /* the key score of the best fact's rival (-inf: none; memory.h) */
    float margin; /* the lead over the rival the best fact needs (0: none) */
    float verify; /* the best fact's relation check (INFINITY: none; memory.h) */
} ans_route;

/* Greedy answer to a conversation (msgs rendered with
 * mome_chat_format(m, msgs, n_msgs, 1)): decodes at most max_new tokens until
 * an end-of-generation token. Writes the text (malloc'd, NUL-terminated) to
 * *text and, if ids != NULL, the generated token ids (malloc'd, without the
 * EOG token; NULL when none) to *ids and their count to *n_ids, and the
 * memory's decision to *route (may be NULL). Returns MOME_OK or an error status (mome_errmsg():
 * a prompt too long for the context, out of memory, a decode error); on
 * error the outputs are NULL / 0. */
int ans_greedy(mome_model *m, mome_ctx *c, const mome_chat_msg *msgs, int n_msgs, int max_new, char **text,
               int32_t **ids, int *n_ids, ans_route *route);

/* One question of a batch: a conversation as for ans_greedy. */
typedef struct ans_question {
    const mome_chat_msg *msgs;
    int n_msgs;
} ans_question;

/* Greedy answers to n_q questions, n_ctx at a time: each context takes the
 * next question when its answer ends, and the answers in progress are
 * decoded together (mome_decode_batch), so each answer is byte-identical to
 * ans_greedy's on that context. The contexts must be distinct and share the
 * model; a memory attached to them acts as in ans_greedy. texts[i] receives
 * question i's answer (malloc'd). ids and n_ids (both NULL, or both given)
 * receive its token ids as ans_greedy gives them (malloc'd, NULL when none).
 * on_done (may be NULL) is called as answers end. routes (may be NULL)
 * receives each question's ans_route. On error every text and id array is
 * NULL. */
int ans_greedy_batch(mome_model *m, mome_ctx *const *ctxs, int n_ctx, const ans_question *qs, int n_q, int max_new,
                     char **texts, int32_t **ids, int *n_ids, ans_route *routes,
                     void (*on_done)(int done, int total, void *user), void *user);

/* Index of the largest logit (the first one on ties). */
int32_t ans_argmax(const float *logits, int V);

#endif
