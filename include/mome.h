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

/* ------------------------------------------------------------ tokenizer */

/* Tokenize UTF-8 text. add_special: prepend BOS when the model asks for it.
 * parse_special: recognise special/control token texts such as <|im_end|>.
 * Writes at most cap ids; returns the number of tokens (may exceed cap: call
 * again with a larger buffer) or a negative status. */
int mome_tokenize(const mome_model *m, const char *text, size_t len,
                  int32_t *ids, int cap, int add_special, int parse_special);
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
/* Logits of the i-th token of the last decode (i = -1: last). (V,) */
const float *mome_get_logits(const mome_ctx *c, int i);
int32_t mome_ctx_n_past(const mome_ctx *c);

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

#ifdef __cplusplus
}
#endif
#endif
