/* mome.h - the one public header of libmome.
 *
 * mome loads GGUF llama-family models, runs them on the CPU, and (later)
 * attaches a mixture of memory experts trained to recall facts exactly.
 *
 * Conventions: every public symbol starts with mome_; objects are opaque
 * handles created by a _load or _init function and released by _free; functions return
 * a mome_status (MOME_OK == 0, negative on error) and the message of the last
 * error on this thread is available from mome_errmsg().
 */
#ifndef MOME_H
#define MOME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mome_status {
    MOME_OK = 0,
    MOME_ERR = -1,         /* generic failure, see mome_errmsg() */
    MOME_ERR_IO = -2,      /* file could not be opened/read/written */
    MOME_ERR_FORMAT = -3,  /* malformed or hostile input */
    MOME_ERR_NOMEM = -4,   /* allocation failed */
    MOME_ERR_UNSUPPORTED = -5, /* valid input we do not support */
    MOME_ERR_ARG = -6,     /* bad argument from the caller */
} mome_status;

/* Message of the last error raised on the calling thread ("" if none). */
const char *mome_errmsg(void);

/* ---------------------------------------------------------------- model */

typedef struct mome_model mome_model;   /* weights + tokenizer, read-only */
typedef struct mome_ctx mome_ctx;       /* KV cache + scratch for one sequence */

typedef struct mome_model_params {
    int n_threads;         /* 0 = all online cores */
    int vocab_only;        /* 1: read the tokenizer and chat template only (tokenize and
                              render chats; no hyperparameters or weights, no decoding) */
} mome_model_params;

mome_model_params mome_model_default_params(void);

/* Load a GGUF model (memory-mapped). On error *out is NULL. */
int mome_model_load(const char *path, const mome_model_params *p, mome_model **out);
void mome_model_free(mome_model *m);

int32_t mome_model_n_vocab(const mome_model *m);
int32_t mome_model_n_ctx_train(const mome_model *m);
int32_t mome_model_n_embd(const mome_model *m);
int32_t mome_model_n_layer(const mome_model *m);
int32_t mome_token_bos(const mome_model *m);
int32_t mome_token_eos(const mome_model *m);
/* End-of-generation test: EOS, EOT, <|im_end|>, ... */
int mome_token_is_eog(const mome_model *m, int32_t tok);

/* SHA-256 of the model file as 64 hex digits (computed once, then cached);
 * NULL on a read error. */
const char *mome_model_sha256(mome_model *m);
/* End-of-turn token of the model's chat template (<|im_end|> for ChatML),
 * falling back to EOS. */
int32_t mome_token_eot(const mome_model *m);

/* ---------------------------------------------------------------- memory */

/* A mixture of memory experts tuned for one base model (see memory.h). */
typedef struct mome_memory mome_memory;

/* Load a memory file. If m is given, a memory made for another base model
 * (different SHA-256 or shape) is refused with an error. */
int mome_memory_load(const char *path, mome_model *m, mome_memory **out);
void mome_memory_free(mome_memory *mem);
/* Number of facts it holds. */
int64_t mome_memory_n_trained(const mome_memory *mem);
/* Overrides the selection threshold and the pooled key's weight (for
 * measuring the trade-off between rewordings and locality); NAN or a value
 * outside [-1, 1] (threshold) / [0, 1] (weight) keeps the current one. */
void mome_memory_set_routing(mome_memory *mem, float threshold, float w_pool);
/* The wording check's threshold in [-1, 1] (NAN: unchanged); it applies only
 * to facts tuned with their question tokens (mome tune --cover). */
void mome_memory_set_cover(mome_memory *mem, float cover);
/* The memory's wording-check threshold (NAN: none). */
float mome_memory_cover_threshold(const mome_memory *mem);
/* The relation check's threshold in [-1, 1] (NAN: unchanged); it applies
 * only to memories tuned with it (mome tune --verify). */
void mome_memory_set_verify(mome_memory *mem, float verify);
/* The memory's relation-check threshold (NAN: none). */
float mome_memory_verify_threshold(const mome_memory *mem);
/* The relation check's threshold for facts whose question names no subject
 * (no subject check guards them: the check is all that tells an unrelated
 * question in their style from a rewording), in [-1, 1] (NAN: unchanged);
 * such a fact needs max(this, the memory's threshold), and a memory
 * threshold of -1 still checks nothing. Default MOME_DEFAULT_VERIFY_UNNAMED. */
#define MOME_DEFAULT_VERIFY_UNNAMED 0.94f
void mome_memory_set_verify_unnamed(mome_memory *mem, float verify);
float mome_memory_verify_unnamed(const mome_memory *mem);
/* The margin the best fact must lead its rival (the best other fact with
 * another answer the question could be asking about) by to be selected
 * (memory.h; 0: no margin), in [0, 2]; else unchanged. It caps each fact's
 * own margin, which the tuner calibrates on the contexts it makes for the
 * fact (trained or, with a margin, decoded for their keys only). */
void mome_memory_set_margin(mome_memory *mem, float margin);
float mome_memory_margin(const mome_memory *mem);
/* The share of its contexts' lead over their rivals a fact needs
 * (below the margin; default MOME_DEFAULT_MARGIN_SHARE), in [0, 2]; else
 * unchanged. Higher: quieter on unrelated questions, fewer contexts and
 * variants. */
#define MOME_DEFAULT_MARGIN_SHARE 0.5f
void mome_memory_set_margin_share(mome_memory *mem, float share);
/* Overrides the mixture a question selects (memory.h): top_k facts (1..64;
 * else unchanged), the softmax temperature of their weights (> 0; else
 * unchanged) and the score the facts but the best need to join (in [-1, 1];
 * else unchanged). A memory runs best with the settings it was tuned with
 * (the file's); other ones are for measuring. */
void mome_memory_set_mix(mome_memory *mem, int top_k, float temp, float tau);
/* Facts mixed per question (1: one, memory version 2). */
int mome_memory_top_k(const mome_memory *mem);

/* ---------------------------------------------------------------- tuning */

/* MoME: memory experts on the frozen model; LoRA: adapters on every projection; FULL: every weight
 * fine-tuned in f32 (the tuned model is written as an f32 GGUF file) */
enum mome_tune_method { MOME_TUNE_MOME = 0, MOME_TUNE_LORA = 1, MOME_TUNE_FULL = 2 };

typedef struct mome_tune_progress {
    int64_t step;          /* optimizer steps so far */
    int32_t n_facts;
    int32_t n_memorized;
    float mean_loss;       /* mean answer loss of all facts (last seen) */
    double elapsed_s;
    double facts_per_s;    /* memorized per second */
    double eta_s;          /* < 0: unknown */
    const char *phase;     /* "prepare", "train", "verify", "done"; LoRA and full also "pass" */
    /* "pass" reports only (LoRA, full: after each pass over the facts still
     * training every fact is measured again in the f32 stack; with ppl_every
     * a report for pass 0 comes before the first step): */
    int32_t pass;          /* passes so far */
    int32_t n_exact;       /* facts whose every answer token and the end of turn is the
                              teacher-forced argmax (what greedy decoding states) */
    double perplexity;     /* of ppl_text on the passes ppl_every asks for, else -1 */
} mome_tune_progress;

/* The state the relation check compares (memory.h; docs/ARCHITECTURE.md has
 * the measurements): the decision row's, centred on one mean (the check
 * before 2026-12-04); the decision row's, after taking away the fact's
 * subject centre and whitening; the mean over the question's tokens that are
 * not the subject's, the same way; the last state of the question read
 * inside `This sentence : "Q" means in one word:"` (PromptEOL), the same
 * way (the default); or no check at all (a new memory without one). */
typedef enum mome_verify_key {
    MOME_VERIFY_CENTRED,
    MOME_VERIFY_WHITENED,
    MOME_VERIFY_RELATION,
    MOME_VERIFY_MEANING,
    MOME_VERIFY_NONE
} mome_verify_key;

/* A new memory's relation check and key-score threshold (docs/BENCHMARKS.md,
 * "The relation check by default": 998 zsRE facts, rewordings 0.79, other
 * questions about the tuned subjects left alone 0.991, unrelated ones 1.000,
 * against 0.95 / 0.34 / 0.996 without the check; a score threshold of 0.6
 * with it cost one-template catalogues a third of their rewordings and
 * contexts for no locality measured). */
#define MOME_DEFAULT_VERIFY 0.5f
#define MOME_DEFAULT_ROUTE_THRESHOLD 0.55f

typedef struct mome_tune_params {
    const char *facts_path;
    const char *out_path;
    const char *init_memory;   /* add to this memory (NULL: start empty) */
    int method;                /* enum mome_tune_method */
    int on_conflict;           /* 0: error, 1: keep first, 2: keep last */
    /* memory layout (new memories only) */
    int key_layer;             /* block whose input gives the pooled question key (-1: 1/5 of depth) */
    int layer;                 /* block whose input the values join (-1: 4/5 of depth, 7/8 on qwen2) */
    float route_threshold;     /* selection threshold on the key score (new memories; default
                                  MOME_DEFAULT_ROUTE_THRESHOLD) */
    float w_pool;              /* weight of the pooled key in the score (0.7) */
    float route_margin;        /* the best fact must lead its rival by its own margin to be
                                  selected: a share of the smallest lead of the contexts the tuner
                                  makes for it, trained or not, at most this (memory.h); 0: no
                                  margin (new memories, and no untrained context decoded), NAN: the
                                  loaded memory's */
    float route_margin_share;  /* that share (NAN: the loaded memory's, MOME_DEFAULT_MARGIN_SHARE for a new one) */
    int top_k;                 /* facts mixed per question, 1..64 (0: the loaded memory's, 1 for a
                                  new one); an existing memory keeps its own */
    float top_k_temp;          /* softmax temperature of the mixture weights (0.25; 0 the same) */
    float top_k_tau;           /* score the facts but the best need to join the mixture (NAN: the
                                  route threshold) */
    int top_k_train_all;       /* 1: a fact's loss trains every fact of its mixture (dv_i =
                                  a_i rms(h) dX); 0: only its own values, its partners held */
    float cover;               /* the wording check's threshold (memory.h): a question must have a
                                  counterpart of every word of the fact's; NAN: no check (new
                                  memories) or the loaded memory's */
    float verify;              /* the relation check's threshold (memory.h): the question's state at
                                  block verify_layer must be near one of the fact's tuned contexts';
                                  NAN: MOME_DEFAULT_VERIFY for a new memory (none with verify_key
                                  MOME_VERIFY_NONE), the loaded memory's own for facts added */
    float verify_unnamed;      /* the check's threshold for facts that name no subject (NAN: the
                                  loaded memory's, MOME_DEFAULT_VERIFY_UNNAMED for a new one) */
    int verify_layer;          /* its block (-1: 12/15 of the blocks with the meaning key, 24 of 30 on
                                  SmolLM2; 7/15 with the relation key; 3/5 with the others) */
    int verify_key;            /* the state a new memory's check compares (mome_verify_key;
                                  MOME_VERIFY_NONE: a new memory without the check) */
    int augment;               /* extra training contexts per fact, generated (system prompts,
                                  an earlier exchange, lower case); 0: the wording alone */
    int alt_keys;              /* keys of generated wordings per fact besides its own, which the
                                  fact also scores with (memory.h): 1 the question in lower case
                                  (default), 0 none */
    int infer_subjects;        /* K >= 2 (default 3): facts without a "subject" get one from the
                                  file's templates (K or more questions that read the same around
                                  one span; facts.h); 0: only the subjects the file names */
    int subject_check;         /* 1 (default): a fact that names its "subject" answers only
                                  questions that name it too (memory.h); 0: no check */
    int gate_questions;        /* other questions asked per fact that names its subject, which
                                  the relation gate learns to pass to the model (0: no gate; 4
                                  is measured in docs/BENCHMARKS.md) */
    float gate_margin;         /* the gate lets each fact's trained contexts through with at
                                  least this logit (1.0; lower: a stricter gate) */
    int cached_facts;          /* facts whose training contexts (the value block's input and the
                                  K/V above it, about 1 MB per fact on SmolLM2) are held at once;
                                  the others are prepared when earlier ones are verified, which
                                  bounds the tuner's memory (default 2048; 0: all at once) */
    /* optimisation */
    float lr;                  /* Adam learning rate; <= 0: the default (MoME 0.05, 0.15 on qwen2; LoRA 1e-3, full 1e-4) */
    float target_loss;         /* memorized below this mean answer loss (0.01 nats) */
    int batch;                 /* facts per step (32) */
    int64_t max_steps;         /* 0: no limit */
    double max_minutes;        /* 0: no limit */
    int n_threads;             /* 0: all cores */
    uint64_t seed;
    int resume;                /* continue from out_path.ckpt */
    double checkpoint_s;       /* seconds between checkpoints (60) */
    int lora_rank;             /* LoRA baseline rank (8) */
    float lora_alpha;          /* LoRA scale alpha (16) */
    int verbose;
    const char *model_out;     /* LoRA: also write the base with the adapters merged, as an f32
                                  GGUF model the engine runs (NULL: adapters only) */
    const char *ppl_text;      /* LoRA, full: held-out text for perplexity before/after (f32 stack) */
    int64_t ppl_text_bytes;    /* only the first bytes of it (0: all) */
    int32_t ppl_every;         /* LoRA, full, with ppl_text: also every this many passes over the
                                  facts, in the "pass" reports (0: before and after only) */
    void (*progress)(const mome_tune_progress *p, void *user);
    void *user;
} mome_tune_params;

typedef struct mome_tune_report {
    int32_t n_facts;
    int32_t n_memorized;       /* verified by greedy decoding with the memory */
    int64_t steps;
    double seconds;
    int64_t n_trained_experts; /* value rows (one expert per answer row of a fact) */
    double mean_loss;
    double ppl_before, ppl_after;  /* LoRA with ppl_text: f32 perplexity (else -1) */
    double mean_mix;           /* MoME: facts in a fact's mixture under its own keys, on average (1
                                  with top_k 1) */
    int64_t n_undone;          /* MoME mixtures: verified facts a changed partner undid (trained on) */
    int32_t n_subjects;        /* MoME: facts that keep a subject (named in the file or inferred) */
    int32_t n_inferred;        /* of them, inferred from the file's templates (--infer-subjects) */
    int32_t n_missing_lines;   /* the fact-file lines of the first (up to 32) facts not memorized */
    int32_t missing_lines[32];
} mome_tune_report;

mome_tune_params mome_tune_default_params(void);
/* Memory-tune m on the facts and write the memory (or LoRA adapters) to
 * p->out_path. Checkpoints to out_path.ckpt while it runs. */
int mome_tune(mome_model *m, const mome_tune_params *p, mome_tune_report *rep);

/* ------------------------------------------------------------ evaluation */

typedef struct mome_eval_params {
    const char *facts_path;    /* NULL: no fact evaluation */
    const char *text_path;     /* NULL: no perplexity */
    int64_t text_max_bytes;    /* use only the first bytes of the text (0: all) */
    int32_t ppl_ctx;           /* perplexity window in tokens (512) */
    int32_t max_new_tokens;    /* answer length limit (24) */
    int64_t max_facts;         /* evaluate only the first facts (0: all) */
    int on_conflict;           /* as in tuning */
    int n_threads;
    /* context_recall: the built-in system prompts and earlier exchange (see
     * eval.c), plus these system prompts */
    const char *const *systems;
    int n_systems;
    int no_context;            /* 1: skip context_recall */
    int no_variants;           /* 1: skip variant_recall */
    const char *neighbors_path;/* more neighbour questions: the questions of this fact file
                                  (answers ignored); NULL: only the facts' own */
    const char *outputs_path;  /* write one JSON line per question asked (NULL: none) */
    int n_parallel;            /* questions answered together in one batched forward pass
                                  (16 by default, 0 the same; 1: one at a time; the
                                  figures are the same) */
    /* called after each fact with its outcome (may be NULL) */
    void (*on_fact)(int index, int n, const char *question, const char *output, int exact, int contains,
                    int abstained, void *user);
    /* called as batched answers end: done of total (may be NULL) */
    void (*on_progress)(int done, int total, void *user);
    void *user;
} mome_eval_params;

typedef struct mome_eval_result {
    int32_t n_facts;
    int32_t n_exact;           /* greedy answer == an expected answer (normalized) */
    int32_t n_contains;        /* an expected answer appears in the output */
    int32_t n_abstain;         /* "I don't know" and similar */
    int32_t n_hallucinated;    /* neither correct nor an abstention */
    int32_t n_paraphrases;
    int32_t n_paraphrase_exact;
    int32_t n_context;         /* questions asked in other contexts (facts x contexts) */
    int32_t n_context_exact;
    int32_t n_variants;        /* lower-case / extra-space / unpunctuated wordings asked */
    int32_t n_variant_exact;
    int32_t n_neighbors;       /* neighbour questions asked with and without the memory */
    int32_t n_neighbors_same;  /* ... whose answers were byte-identical */
    int32_t n_scored;          /* questions scored against a fact: recall, paraphrases, variants, contexts */
    int32_t n_swapped;         /* ... answered exactly with another fact's answer, not their own */
    double recall, contains_recall, hallucination_rate, paraphrase_recall; /* -1: not measured */
    double context_recall, variant_recall; /* -1: not measured */
    double swap_rate;          /* n_swapped / n_scored; -1: no facts */
    double locality;           /* n_neighbors_same / n_neighbors; -1: not measured (no memory
                                  or no neighbour questions) */
    double perplexity;         /* -1: not measured */
    int64_t ppl_tokens;
    double seconds;
} mome_eval_result;

mome_eval_params mome_eval_default_params(void);
/* Evaluates the model (with mem attached if not NULL). */
int mome_eval(mome_model *m, mome_memory *mem, const mome_eval_params *p, mome_eval_result *r);

/* ------------------------------------------------------------ tokenizer */

/* Tokenize UTF-8 text. add_special: prepend BOS when the model asks for it.
 * parse_special: recognise special/control token texts such as <|im_end|>.
 * Writes at most cap ids; returns the number of tokens (may exceed cap: call
 * again with a larger buffer) or a negative status. */
int mome_tokenize(const mome_model *m, const char *text, size_t len,
                  int32_t *ids, int cap, int add_special, int parse_special);
/* Tokenize into a new malloc'd array (*out); returns the count or a
 * negative status. */
int mome_tokenize_alloc(const mome_model *m, const char *text, int add_special, int parse_special, int32_t **out);
/* The bytes of one token as they appear in text (byte tokens decoded,
 * SentencePiece U+2581 -> space, GPT-2 byte mapping reversed). Control tokens
 * give their text only if render_special. Returns the length written (not NUL
 * terminated) or the needed length if cap is too small. */
int mome_token_to_piece(const mome_model *m, int32_t tok, char *buf, int cap, int render_special);

/* ------------------------------------------------------------- inference */

typedef struct mome_ctx_params {
    int32_t n_ctx;       /* KV cache length in tokens (0 = min(train ctx, 4096)) */
    int32_t n_batch;     /* max tokens per mome_decode call (0 = 512) */
    int n_threads;       /* 0 = model default */
    int f32_matmul;      /* 1: dequantize weights and keep activations in f32
                          * (slow reference mode); 0: quantize activations to
                          * the weight's dot type, as llama.cpp does */
} mome_ctx_params;

mome_ctx_params mome_ctx_default_params(void);
int mome_ctx_init(mome_model *m, const mome_ctx_params *p, mome_ctx **out);
void mome_ctx_free(mome_ctx *c);

/* Run tokens[0..n) at positions pos0.. (the cache must hold pos0 tokens of
 * history; later positions are discarded). If all_logits, logits for every
 * token are kept, else only for the last. */
int mome_decode(mome_ctx *c, const int32_t *tokens, int n, int32_t pos0, int all_logits);
/* One token for each of n distinct contexts of the same model (same thread
 * count and matmul mode; n <= ctxs[0]'s n_batch), all in one forward pass:
 * tokens[i] goes to ctxs[i] at position mome_ctx_n_past(ctxs[i]). The weights
 * are read once for all rows; each context keeps its own K/V cache, tokens
 * and memory (or none). Each context's logits (mome_get_logits(ctxs[i], -1))
 * are bit-identical to those of mome_decode(ctxs[i], &tokens[i], 1, n_past, 0),
 * whatever else shares the pass (continuous batching in a server). ctxs[0]'s
 * buffers are the pass's workspace. On error no context has changed. */
int mome_decode_batch(mome_ctx *const *ctxs, const int32_t *tokens, int n);
/* How many leading tokens of ids[0..n) the cache already holds, at most n - 2
 * (at least two tokens are decoded again: the last for its logits, and one
 * token alone would take the one-token attention order): decode ids from
 * there on to reuse the K/V of a shared prompt head, as llama.cpp's server
 * does. The bits then equal a decode from scratch. Where the model's matrix
 * kernels do not give a row the same bits whatever the rows beside it (Q6_K's
 * tiled order, the 4-token tiles of F32 and Q4_0), this is 0: answers never
 * depend on what the context held before. */
int mome_ctx_shared_prefix(const mome_ctx *c, const int32_t *ids, int n);
/* Logits of the i-th token of the last decode (i = -1: last). (V,) */
const float *mome_get_logits(const mome_ctx *c, int i);
int32_t mome_ctx_n_past(const mome_ctx *c);
/* Attach a memory (NULL detaches). The memory must outlive the context's use
 * of it; one memory may be shared by several contexts used one at a time. */
int mome_ctx_set_memory(mome_ctx *c, mome_memory *mem);
/* The memory's last decision in the last mome_decode: the position of the
 * decision row (the end of the assistant header after a user turn), the fact
 * selected (-1: none) and its score. Returns 0 if there was none. */
int mome_ctx_memory_decision(const mome_ctx *c, int32_t *pos, int32_t *fact, float *score);
/* Why that decision went as it did: the best fact by key score, selected or
 * not, the relation gate's value for it (+inf: no gate), its wording check
 * (cover; +inf: none) and its subject check (1: the question names the
 * fact's subject, 0: it does not, -1: no check). A fact is selected when its
 * score reaches the memory's threshold, the gate is >= 0, the cover reaches
 * the memory's cover threshold (mome_memory_cover_threshold) and the subject
 * check is not 0. Returns 0 when the last decode had no decision row. Each
 * out-pointer may be NULL. */
int mome_ctx_memory_candidate(const mome_ctx *c, int32_t *best, float *gate, float *cover, int *subject);
/* The facts the last decision (mome_ctx_memory_decision) selected, best
 * first, and their weights (summing to 1), at most cap of them; returns how
 * many it selected (0: none). */
int mome_ctx_memory_mixture(const mome_ctx *c, int32_t *facts, float *weights, int cap);

/* -------------------------------------------------------------- sampling */

typedef struct mome_sampler mome_sampler;
typedef struct mome_sampler_params {
    float temp;          /* <= 0: greedy */
    int32_t top_k;       /* <= 0: off */
    float top_p;         /* >= 1: off */
    float min_p;         /* <= 0: off */
    float repeat_penalty;/* 1: off */
    uint64_t seed;
} mome_sampler_params;

mome_sampler_params mome_sampler_default_params(void);
int mome_sampler_init(const mome_sampler_params *p, int32_t n_vocab, mome_sampler **out);
void mome_sampler_free(mome_sampler *s);
int32_t mome_sampler_sample(mome_sampler *s, const float *logits);

/* ------------------------------------------------------------ chat */

typedef struct mome_chat_msg {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} mome_chat_msg;

/* Render messages with the model's chat template (family detected from
 * tokenizer.chat_template). add_assistant: open an assistant turn at the end.
 * Returns a malloc'd NUL-terminated string or NULL on error. */
char *mome_chat_format(const mome_model *m, const mome_chat_msg *msgs, int n,
                       int add_assistant);
/* The default system message the model's template writes when a conversation
 * has none (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are a
 * helpful assistant."). mome_chat_format renders as llama.cpp's
 * llama_chat_apply_template does, which leaves it out; a caller that wants
 * the template's behaviour passes it as a first system message. Returns a
 * malloc'd string, or NULL if the template has none. */
char *mome_chat_default_system(const mome_model *m);

#ifdef __cplusplus
}
#endif
#endif
