/* eval.h - eval.c's question generators, shared with the tests (and the
 * tuner's augmentation, should it want the same surroundings). */
#ifndef MOME_EVAL_H
#define MOME_EVAL_H

#define EVAL_N_VARIANTS 3
#define EVAL_PARALLEL 16 /* questions answered together by default, and by the tuner's verification
                            (batched decode: 3.5x at 16, BENCHMARKS) */

/* The built-in system prompts context_recall asks behind. */
extern const char *const eval_builtin_systems[];
extern const int eval_n_builtin_systems;
/* The earlier, unrelated exchange context_recall asks after. */
extern const char eval_exchange_user[];
extern const char eval_exchange_assistant[];

/* The surface variants of a question variant_recall asks: "lower" (ASCII
 * letters lower-cased), "spaces" (every space doubled, one space added at
 * the end), "no_punct" (one final '?', '.' or '!' removed). A variant equal
 * to the question, or empty, is left out. Writes the malloc'd variants to
 * out[] and their names to kinds[] (either may hold fewer than
 * EVAL_N_VARIANTS); returns their count, or MOME_ERR_NOMEM (nothing
 * allocated). */
int eval_variants(const char *question, char *out[EVAL_N_VARIANTS], const char *kinds[EVAL_N_VARIANTS]);

#endif
