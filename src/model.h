/* model.h - internal layout of a loaded llama-family model and its context.
 *
 * A model is a GGUF mapping plus pointers into it: weights are used in
 * place, in whatever type the file stores (no conversion, no copy), except
 * the small norm vectors, which are converted to f32 once. Shapes use the
 * project's letters: C = n_embd, F = n_ff, H = n_head, Hkv = n_head_kv,
 * D = head_dim, V = n_vocab, L = n_layer, T = tokens in a batch.
 */
#ifndef MOME_MODEL_H
#define MOME_MODEL_H

#include "gguf.h"
#include "memory.h"
#include "mome.h"
#include "quant.h"
#include "tokenizer.h"

typedef struct llama_hparams {
    int32_t n_vocab;     /* V */
    int32_t n_ctx_train;
    int32_t n_embd;      /* C */
    int32_t n_layer;     /* L */
    int32_t n_head;      /* H */
    int32_t n_head_kv;   /* Hkv */
    int32_t head_dim;    /* D = C / H */
    int32_t n_ff;        /* F */
    int32_t n_rot;       /* rotary dims per head (<= D) */
    float rope_base;
    float rope_scale;    /* linear position scaling factor (1 = none) */
    float rms_eps;
    int rope_neox;       /* 0: rotate adjacent pairs (2i, 2i+1) (llama.cpp's NORM);
                            1: rotate halves (i, i + n_rot/2) (NEOX: qwen2, ...) */
} llama_hparams;

/* A matrix W of shape (n_out, n_in): n_out rows of n_in elements, row r at
 * data + r * row_bytes, in type `type`. y = W x. */
typedef struct qmat {
    const void *data;
    void *packed;        /* NULL, or the same rows repacked for the kernels
                            (quant_pack; owned); data stays valid (mapped) */
    enum mome_dtype type;
    int64_t n_in;
    int64_t n_out;
    size_t row_bytes;
} qmat;

typedef struct llama_layer {
    float *attn_norm;    /* (C) */
    qmat wq;             /* (H*D, C) */
    qmat wk;             /* (Hkv*D, C) */
    qmat wv;             /* (Hkv*D, C) */
    float *bq;           /* (H*D) bias added to Wq x, or NULL */
    float *bk;           /* (Hkv*D) or NULL */
    float *bv;           /* (Hkv*D) or NULL */
    qmat wo;             /* (C, H*D) */
    float *ffn_norm;     /* (C) */
    qmat w_gate;         /* (F, C) */
    qmat w_up;           /* (F, C) */
    qmat w_down;         /* (C, F) */
} llama_layer;

struct arch_def;

/* The memory tuner's defaults for the model's architecture: the learning
 * rate and the value block (4/5 of the depth unless measured otherwise). */
#define MEM_DEFAULT_LR 0.05f
float model_mem_lr(const mome_model *m);
/* mome_ctx_shared_prefix without its exactness condition: for callers that
 * only need states close to a decode from scratch (the tuner's captures). */
int ctx_shared_prefix_any(const mome_ctx *c, const int32_t *ids, int n);
/* The relation check's state of a question from its content tokens
 * (forward.c; memory.h): x̂ (C) at the memory's ver_layer, asked alone. */
int ctx_question_state(mome_ctx *c, const int32_t *content, int n, float *xhat);
/* The same pass's raw x at the input of ver_layer of the content tokens
 * (the last MEM_QUESTION_TOKENS of n) into rows (min(n, MEM_QUESTION_TOKENS), C). */
int ctx_question_rows(mome_ctx *c, const int32_t *content, int n, float *rows);
int model_mem_value_layer(const mome_model *m);

struct mome_model {
    char *path;
    const struct arch_def *arch; /* the architecture's description (model.c) */
    gguf_file *gguf;
    tokenizer *tok;
    llama_hparams hp;
    qmat tok_embd;       /* (V, C) */
    float *output_norm;  /* (C) */
    qmat output;         /* (V, C); the embedding when tied */
    llama_layer *layers; /* (L) */
    int n_threads;
    int chunk_invariant;  /* every matrix kernel gives a row the same bits whatever rows share
                           * its call (quant_chunk_invariant): a reused prompt head is exact */
    char *chat_template; /* NUL-terminated copy, or NULL */
    char *name;          /* general.name or file name */
    char sha256[65];     /* "" until computed */
};

struct mome_ctx {
    mome_model *m;
    int32_t n_ctx;       /* cache capacity, tokens */
    int32_t n_batch;     /* max T per decode call */
    int32_t n_past;      /* tokens in the cache */
    int n_threads;
    float *k_cache;      /* (L, n_ctx, Hkv*D) */
    float *v_cache;      /* (L, n_ctx, Hkv*D) */
    /* activations for one batch of T <= n_batch tokens */
    float *x;            /* (T, C) residual stream */
    float *xn;           /* (T, C) normed input of a block */
    float *q;            /* (T, H*D) */
    float *k;            /* (T, Hkv*D) */
    float *v;            /* (T, Hkv*D) */
    float *att;          /* (T, H*D) attention output */
    float *gate;         /* (T, F) */
    float *up;           /* (T, F) */
    float *scores;       /* (n_threads, n_ctx) attention scratch */
    void *aq;            /* quantized activations, (T, act row bytes) */
    size_t aq_row;       /* bytes per quantized activation row */
    float *rope_cos;     /* (n_ctx, n_rot/2) */
    float *rope_sin;     /* (n_ctx, n_rot/2) */
    int f32_matmul;      /* dequantize weights, f32 activations (reference mode) */
    float *wrow;         /* (n_threads, wrow_len) dequantized weight row scratch */
    size_t wrow_len;
    float *logits;       /* (n_logits_cap, V) */
    int32_t n_logits_cap;
    int32_t n_logits;    /* rows valid from the last decode */
    int logits_all;      /* whether the rows are for every token */
    mome_memory *mem;    /* attached memory or NULL */
    const mome_memory *mem_last; /* the memory whose routing states are in mpos */
    struct mem_pos *mpos; /* (n_ctx) routing state per position (memory.h) */
    float *mrows;        /* (n_ctx, C) input of the memory's key block per position */
    float *vrows;        /* (n_ctx, C) the relation check's state (raw x) at each decision row (memories with one) */
    struct mome_ctx *qctx; /* where those states are computed (ctx_question_state) */
    int32_t q_open_n;    /* (a qctx) the wrapper's opening tokens whose K/V it holds, or 0 */
    int q_open_layer;    /* (a qctx) through which block (exclusive) they were computed */
    int stop_layer;      /* end the pass at this block's input (after its capture), or -1 */
    float *mscratch;     /* (3C + MEM_SELECT_SCRATCH) routing scratch */
    int32_t mem_valid;   /* positions whose routing states are valid */
    int mem_route_off;   /* compute the keys but select nothing (tuning's base pass) */
    int32_t dec_pos;     /* the last decision row (-1: none in the last decode) */
    int32_t dec_fact;    /* the fact selected there (-1: none) */
    mem_cand dec_cand;   /* the best fact by key score there, selected or not, and its checks */
    float *dec_keys;     /* (2C) if set: the pool and last keys of the last decision row */
    int32_t *tokens;     /* (n_ctx) the tokens in the cache */
    struct fwd_row *rows; /* (n_batch) the rows of a forward pass using this context's buffers */
    int capture_layer;   /* copy the input of this block to capture, or -1 */
    float *capture;      /* (n_batch, C) */
};

#endif
