/* train_stack.h - f32 forward and backward through the top of a frozen
 * llama model, for a batch of short sequences, with OpenBLAS GEMMs.
 *
 * Memory tuning only changes the residual stream at layer l0, so everything
 * below it is computed once (by the inference engine) and cached: the input
 * of layer l0 at the trained positions and the K/V of the earlier positions
 * ("prefix") for layers l0..L-1. This module runs layers l0..L-1, the final
 * norm and the output head for the trained rows only, computes the
 * cross-entropy on their targets, and backpropagates to dL/dX at the input
 * of layer l0 (activation gradients only: the backbone is frozen).
 * With optional LoRA adapters on every projection (the baseline method,
 * l0 = 0, no prefix) it also accumulates the adapters' weight gradients.
 * Full fine-tuning (tstack_add_full, l0 = 0) accumulates a gradient for
 * every weight instead: the seven projections, the Q/K/V biases where the
 * architecture has them, both norms of every layer, the final norm, the
 * head and the token embedding (one tensor when the model ties them; the
 * embedding's gradient is dX scattered to the rows of the batch's tokens,
 * tstack_embed_bwd).
 *
 * Rows of all sequences are stacked (R = sum of T_s); matrix products run
 * over all rows at once, attention per sequence and head.
 */
#ifndef MOME_TRAIN_STACK_H
#define MOME_TRAIN_STACK_H

#include <stdint.h>

#include "model.h"

typedef struct ts_layer {
    float *attn_norm, *ffn_norm;       /* (C) */
    float *wq, *wk, *wv, *wo;          /* (H*D, C) (Hkv*D, C) (Hkv*D, C) (C, H*D) */
    float *wg, *wu, *wd;               /* (F, C) (F, C) (C, F) */
    float *bq, *bk, *bv;               /* Q/K/V biases (copies of the model's), or NULL */
} ts_layer;

/* LoRA adapters of one projection: y += scale * B (A x), A (r, n_in), B (n_out, r) */
typedef struct ts_lora {
    float *A, *B;          /* parameters */
    float *gA, *gB;        /* gradients, accumulated */
    int n_in, n_out;
} ts_lora;

enum { TS_Q, TS_K, TS_V, TS_O, TS_G, TS_U, TS_D, TS_NPROJ };

typedef struct ts_seq {
    int n_prefix;          /* cached positions before the rows */
    const float *kpre;     /* (L - l0, n_prefix, Hkv*D) roped keys, or NULL */
    const float *vpre;     /* (L - l0, n_prefix, Hkv*D) */
    int T;                 /* rows of this sequence (positions n_prefix..) */
    int row0;              /* first row in the stacked batch */
    const int32_t *target; /* (T) next-token targets, -1 = no loss */
} ts_seq;

typedef struct tstack {
    int l0, L, C, F, H, Hkv, D, V, n_rot;
    int rope_neox;         /* the architecture's rope mode (model.h) */
    float eps;
    ts_layer *layers;      /* (L - l0) */
    float *out_norm;       /* (C) */
    float *wout;           /* (V, C) */
    int tied;              /* the model's head is its token embedding */
    /* full fine-tuning (NULL when not used): a gradient per weight, same shapes */
    ts_layer *grad;        /* (L - l0) */
    float *g_out_norm, *g_wout;
    float *embd, *g_embd;  /* (V, C) the token embedding and its gradient (== wout, g_wout when tied) */
    float *rope_cos, *rope_sin; /* (max_pos, n_rot/2) */
    int max_pos;
    /* LoRA (NULL when not used): (L - l0, TS_NPROJ) */
    ts_lora *lora;
    int lora_rank;
    float lora_scale;
    /* workspace for up to max_rows rows */
    int max_rows;
    float *ws;
    size_t ws_len;
} tstack;

/* Dequantizes layers [l0, L) and the head of m into f32 (only what
 * training reads). max_pos bounds positions, max_rows the batch rows. */
int tstack_init(tstack *s, const mome_model *m, int l0, int max_pos, int max_rows);
void tstack_free(tstack *s);
/* Adds LoRA adapters (A random N(0, 1/n_in), B = 0). */
int tstack_add_lora(tstack *s, int rank, float alpha, uint64_t seed);
/* Full fine-tuning: gradients for every weight (see above); needs l0 = 0
 * and no adapters. About 4x the weights' memory with Adam's moments. */
int tstack_add_full(tstack *s, const mome_model *m);

/* One trainable tensor and its gradient (accumulated by tstack_step). */
typedef struct ts_param {
    float *w, *g;
    size_t n;
} ts_param;
/* The trainable tensors: every adapter's A and B, or (full) every weight,
 * the tied embedding once. Writes at most cap of them to out (may be NULL
 * with cap 0) and returns how many there are. */
int tstack_params(const tstack *s, ts_param *out, int cap);

/* X (n, C) = the token embeddings of ids: the stack's own (full
 * fine-tuning, trained) or dequantized from the model. */
void tstack_embed(const tstack *s, const mome_model *m, const int32_t *ids, int n, float *X);
/* Full fine-tuning: adds dX (n, C) = dLoss/dX of the embedded rows to the
 * embedding's gradient (nothing otherwise). */
void tstack_embed_bwd(tstack *s, const int32_t *ids, int n, const float *dX);

/* Forward + backward for the batch. X: (R, C) inputs of layer l0. Writes
 * dX (R, C) = dLoss/dX (may be NULL), loss[s] = mean CE over the seq's
 * targets, ok[s] = 1 if every target is the argmax. If grad is 0 only the
 * forward runs. Objective = sum over sequences of their mean loss. */
int tstack_step(tstack *s, const ts_seq *seqs, int n_seqs, const float *X, float *dX, float *loss, int *ok,
                int grad);

#endif
