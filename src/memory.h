/* memory.h - the mixture of memory experts (MoME) attached to a frozen model.
 *
 * A memory bank sits at the input of one transformer block `layer`. For every
 * token the residual stream h (C) is RMS-normalised to x̂ and turned into a
 * query q = Wq ((x̂ - mu) * inv_sd), whose two halves q1, q2 (dk each) are
 * L2-normalised. Product keys select experts: sub-key tables K1, K2
 * (n_sub x dk, unit rows) score the halves, the top-k of each half are kept
 * and the best k of the k*k sums s = K1[a]·q1 + K2[b]·q2 name experts
 * id = a * n_sub + b (N = n_sub^2 experts, cost O(sqrt(N)·dk + k^2)).
 * Selected experts are mixed by w = softmax(beta * s) over the k.
 *
 * Expert i is a rank-r adapter: e_i = B_i (A_i x̂), A_i (r x C), B_i (C x r).
 * B starts at zero (so a new expert adds exactly nothing, and an untrained
 * expert needs no storage: only trained experts have a slot), A starts at a
 * random matrix derived from (seed, id), so dB is non-zero from the first
 * step (LoRA-style). Locality: each slot keeps the queries it was trained on
 * ("anchors"); its output is scaled by a gate g = ramp(max cos(q, anchor))
 * that is 1 near an anchor and exactly 0 far from all of them, so text unlike
 * any trained fact reaches no expert at all.
 *
 *   h += rms(h) * sum_{i in top-k, i trained} w_i * g_i * B_i (A_i x̂)
 *
 * The factor rms(h) makes an expert's output relative to the scale of the
 * residual stream it joins, so one learning rate suits every layer.
 *
 * Shapes: C = n_embd, Q = 2*dk query dims, S = trained slots, NA = anchors.
 */
#ifndef MOME_MEMORY_H
#define MOME_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "mome.h"

#define MEM_MAX_K 128
#define MEM_MAX_RANK 64

typedef struct mem_config {
    uint32_t n_sub;       /* sqrt(N): sub-keys per half */
    int32_t k;            /* experts selected per token */
    int32_t rank;         /* r */
    int32_t train_top;    /* experts trained per fact position (top scores first) */
    int32_t dk;           /* query dims per half */
    int32_t layer;        /* block whose input the bank adds to */
    float beta;           /* mixing sharpness: w = softmax(beta * s) */
    float gate_lo;        /* cos(q, anchor) <= lo: gate 0 */
    float gate_hi;        /* cos(q, anchor) >= hi: gate 1 */
    uint64_t seed;
} mem_config;

typedef struct mem_bank {
    mem_config cfg;
    int32_t C;
    float *mu;            /* (C) query centering */
    float *inv_sd;        /* (C) query scaling */
    float *wq;            /* (Q, C) query projection */
    float *keys;          /* (2, n_sub, dk) unit sub-keys */
    /* trained experts: slot s holds expert slot_id[s] */
    int32_t n_slots, cap_slots;
    uint32_t *slot_id;    /* (S) */
    float *A;             /* (S, r, C) */
    float *B;             /* (S, C, r) */
    int32_t *slot_anchor; /* (S) first anchor of the slot's list, -1 if none */
    /* hash: expert id -> slot */
    uint32_t hcap;        /* power of two */
    int32_t *hslot;       /* (hcap) slot or -1 */
    /* anchors: unit queries a slot was trained at, linked per slot */
    int32_t n_anchors, cap_anchors;
    float *anchors;       /* (NA, Q) */
    int32_t *anchor_next; /* (NA) next anchor of the same slot or -1 */
    int32_t *anchor_slot; /* (NA) owning slot */
} mem_bank;

/* The selection of one token: k experts, their scores and mixing weights. */
typedef struct mem_sel {
    int32_t k;
    uint32_t id[MEM_MAX_K];
    float score[MEM_MAX_K];
    float w[MEM_MAX_K];
} mem_sel;

/* Per-thread scratch for selection and application; owned by whoever runs
 * the memory (a context, the tuner), so one memory can serve many contexts. */
typedef struct mem_scratch {
    float *xhat;          /* (C) */
    float *xc;            /* (C) */
    float *q;             /* (Q) */
    float *s1, *s2;       /* (n_sub) */
    float *u;             /* (r) */
    float rms;            /* rms(h) of the row in xhat */
    /* one half's sub-key top-k (mem_row_half) */
    uint32_t hidx[MEM_MAX_K];
    float hval[MEM_MAX_K];
} mem_scratch;

struct mome_memory {
    char base_sha256[65];
    char *base_name;
    int32_t n_embd, n_layer, n_vocab;
    int32_t n_banks;
    mem_bank *banks;      /* (n_banks) */
};

mem_config mem_default_config(void);
/* Validates a configuration against the model width; sets an error. */
int mem_config_check(const mem_config *cfg, int32_t n_embd, int32_t n_layer);

int mem_bank_init(mem_bank *b, const mem_config *cfg, int32_t C);
void mem_bank_free(mem_bank *b);

/* Fit the query centering and scaling to samples of the residual stream
 * (n rows of C). The projection and sub-keys stay random. */
void mem_bank_fit_query(mem_bank *b, const float *h, int64_t n, float reg);

/* x̂ = h / rms(h), rms(h) = sqrt(mean(h^2) + eps); returns rms(h). */
float mem_rms_normalize(const float *h, float *xhat, int32_t C);
/* Query from x̂ (unit halves). */
void mem_query(const mem_bank *b, const float *xhat, float *q, mem_scratch *sc);
/* Top-k experts for query q. */
void mem_select(const mem_bank *b, const float *q, mem_sel *sel, mem_scratch *sc);

/* mem_apply_row split in two for a single token on two threads: thread
 * `half` (0 or 1) calls mem_row_half with its own scratch (x̂, query half
 * `half` and that half's sub-key top-k), then one thread calls
 * mem_row_finish(b, h, sc0, sc1), which merges and adds the experts. The
 * result is bit-identical to mem_apply_row (test_memory). */
void mem_row_half(const mem_bank *b, const float *h, int half, mem_scratch *sc);
void mem_row_finish(const mem_bank *b, float *h, mem_scratch *sc0, const mem_scratch *sc1);

/* Slot of expert id or -1. */
int32_t mem_find_slot(const mem_bank *b, uint32_t id);
/* Slot of expert id, created (A random from seed, B = 0) if absent; <0 on OOM. */
int32_t mem_get_slot(mem_bank *b, uint32_t id);
/* Add anchor q (Q) to a slot unless an almost identical one is there. */
int mem_add_anchor(mem_bank *b, int32_t slot, const float *q);
/* Gate of a slot for query q. */
float mem_gate(const mem_bank *b, int32_t slot, const float *q);

/* One expert on one row: x (C) += coef * B (A xhat). u (r) receives A xhat.
 * coef = w * g * rms(h). */
void mem_expert_forward(const mem_bank *b, int32_t slot, float coef, const float *xhat, float *x, float *u);
/* Its gradients given dx = dLoss/dx (C): gA (r, C) += coef (B^T dx) xhat^T,
 * gB (C, r) += coef dx (A xhat)^T. */
void mem_expert_backward(const mem_bank *b, int32_t slot, float coef, const float *xhat, const float *dx, float *gA,
                         float *gB);

/* Add the memory's output for one token to h (C), in place. */
void mem_apply_row(const mem_bank *b, float *h, mem_scratch *sc);

/* Scratch for n threads. */
/* n scratch sets sized for every bank of m; NULL (error set) on OOM. */
mem_scratch *mem_scratch_new(const mome_memory *m, int n);
void mem_scratch_free(mem_scratch *s, int n);

/* Save (GGUF, atomic). f16: store the trained weights and anchors as f16
 * (finished memories); f32 keeps them exact (checkpoints). */
int mem_save(const mome_memory *m, const char *path, int f16);

#endif
