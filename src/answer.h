/* answer.h - the one greedy answer: eval's measures and the tuner's
 * verification decode a conversation the same way, so "memorized" means the
 * same thing in both.
 *
 * A conversation is rendered with the model's chat template
 * (mome_chat_format(m, msgs, n, 1): an assistant turn opened at the end),
 * tokenized (BOS as the model asks, special tokens parsed), and decoded
 * greedily (ans_argmax: the first largest logit) until an end-of-generation
 * token or max_new tokens. An ans_cache keeps the token ids of the prompt
 * whose K/V the context holds: the next prompt decodes only what follows the
 * part both share (the chat template's head, a shared system prompt), as
 * llama.cpp's server does; splitting a prompt this way gives identical bits.
 * One cache belongs to one context; a context used for anything else in
 * between (or with a memory attached or detached) must start from an empty
 * cache (ans_cache_reset).
 */
#ifndef MOME_ANSWER_H
#define MOME_ANSWER_H

#include <stdint.h>

#include "mome.h"

typedef struct ans_cache {
    int32_t *ids;   /* the prompt whose K/V is in the context */
    int n, cap;
} ans_cache;

/* Greedy answer to a conversation (msgs rendered with
 * mome_chat_format(m, msgs, n_msgs, 1)): decodes at most max_new tokens until
 * an end-of-generation token. Writes the text (malloc'd, NUL-terminated) to
 * *text and, if ids != NULL, the generated token ids (malloc'd, without the
 * EOG token; NULL when none) to *ids and their count to *n_ids. pc may be
 * NULL (no prefix reuse). Returns MOME_OK or an error status (mome_errmsg():
 * a prompt too long for the context, out of memory, a decode error); on
 * error the outputs are NULL / 0. */
int ans_greedy(mome_model *m, mome_ctx *c, ans_cache *pc, const mome_chat_msg *msgs, int n_msgs, int max_new,
               char **text, int32_t **ids, int *n_ids);

/* Index of the largest logit (the first one on ties). */
int32_t ans_argmax(const float *logits, int V);

/* Forget the cached prompt (the context's K/V is no longer it). */
void ans_cache_reset(ans_cache *pc);
void ans_cache_free(ans_cache *pc);

#endif
