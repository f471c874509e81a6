/* model.c - load a llama-family GGUF model: hyperparameters, weights,
 * tokenizer, chat template.
 *
 * Every tensor the forward pass touches is looked up by its llama.cpp name
 * and its shape and type are checked against the hyperparameters before any
 * pointer is kept, so a file whose metadata and tensors disagree is rejected
 * with a message naming the tensor. Weights stay in the mapping.
 */
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

mome_model_params mome_model_default_params(void) {
    mome_model_params p = {0};
    return p;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    return (int)n;
}

/* Reads a required/optional integer hyperparameter "<arch>.<key>". */
static int hp_int(const gguf_file *f, const char *arch, const char *key, int32_t *out, int required,
                  int32_t lo, int32_t hi) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    uint32_t v;
    int r = gguf_get_u32(f, name, &v);
    if (r < 0) return -1;
    if (r == 0) {
        if (required) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing metadata '%s'", f->path, name);
        return 0;
    }
    if ((int64_t)v < lo || (int64_t)v > hi)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' = %u is out of range [%d, %d]", f->path,
                                name, v, lo, hi);
    *out = (int32_t)v;
    return 0;
}

static int hp_float(const gguf_file *f, const char *arch, const char *key, float *out) {
    char name[128];
    snprintf(name, sizeof name, "%s.%s", arch, key);
    int r = gguf_get_f32(f, name, out);
    if (r < 0) return -1;
    if (r == 1 && !isfinite(*out))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' is not finite", f->path, name);
    return 0;
}

/* Binds tensor `name` as a matrix (n_out, n_in). */
static int bind_mat(mome_model *m, const char *name, int64_t n_in, int64_t n_out, qmat *out, int required) {
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 1;
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
    }
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out)
        return mome_seterr_code(MOME_ERR_FORMAT,
                                "%s: tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld]", m->path,
                                name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                                (long long)n_in, (long long)n_out);
    const quant_traits *tr = quant_get_traits(t->type);
    if (!tr || !tr->supported)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which mome does not support yet",
                                m->path, name, tr ? tr->name : "?");
    out->data = t->data;
    out->type = (enum mome_dtype)t->type;
    out->n_in = n_in;
    out->n_out = n_out;
    out->row_bytes = quant_row_size(out->type, n_in);
    return 0;
}

/* Binds a vector tensor of n elements, converted to a new f32 array. */
static int bind_vec(mome_model *m, const char *name, int64_t n, float **out, int required) {
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) {
        if (!required) return 1;
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
    }
    if (t->n_dims != 1 || t->ne[0] != n)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: tensor '%s' has %lld elements, expected %lld", m->path, name,
                                (long long)t->ne[0], (long long)n);
    const quant_traits *tr = quant_get_traits(t->type);
    if (!tr || !tr->supported)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %s", m->path, name,
                                tr ? tr->name : "?");
    *out = mome_malloc((size_t)n * sizeof(float));
    if (!*out) return MOME_ERR_NOMEM;
    quant_dequantize_row((enum mome_dtype)t->type, t->data, *out, n);
    return 0;
}

static char *dup_str(gguf_str s) {
    char *p = malloc((size_t)s.len + 1);
    if (!p) return NULL;
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = 0;
    return p;
}

/* ------------------------------------------------------------ architectures
 *
 * An architecture is data: the metadata keys of its hyperparameters (under
 * "<arch>.") and the tensors of a block, each with its shape in terms of the
 * hyperparameters and whether it is required, plus the few switches of the
 * forward pass (RoPE mode). The forward pass has no per-architecture code: a
 * bias pointer is NULL or not, the rope mode is a flag. Adding an
 * architecture whose graph is a llama block with such variations is a new
 * table below; see docs/ARCHITECTURE.md. */

/* A tensor dimension in terms of the hyperparameters. */
enum dim { DIM_C, DIM_F, DIM_Q /* H*D */, DIM_KV /* Hkv*D */ };

enum tensor_kind {
    T_MAT, /* a matrix (n_out, n_in) viewed in place, any supported type */
    T_VEC  /* a vector of n_in elements converted to f32 (norms, biases) */
};

typedef struct tensor_def {
    const char *name;      /* after "blk.N." */
    enum tensor_kind kind;
    enum dim in, out;      /* T_VEC: in is the length */
    size_t field;          /* offsetof(llama_layer, ...): qmat for T_MAT, float * for T_VEC */
    int required;          /* 0: may be absent (the field stays NULL / zero) */
} tensor_def;

#define MAT(nm, fld, i, o, req) {nm ".weight", T_MAT, i, o, offsetof(llama_layer, fld), req}
#define VEC(nm, fld, n, req) {nm, T_VEC, n, DIM_C, offsetof(llama_layer, fld), req}
/* the llama block; Q/K/V biases optional, as llama.cpp loads them */
static const tensor_def k_llama_block[] = {
    VEC("attn_norm.weight", attn_norm, DIM_C, 1),
    MAT("attn_q", wq, DIM_C, DIM_Q, 1),
    MAT("attn_k", wk, DIM_C, DIM_KV, 1),
    MAT("attn_v", wv, DIM_C, DIM_KV, 1),
    VEC("attn_q.bias", bq, DIM_Q, 0),
    VEC("attn_k.bias", bk, DIM_KV, 0),
    VEC("attn_v.bias", bv, DIM_KV, 0),
    MAT("attn_output", wo, DIM_Q, DIM_C, 1),
    VEC("ffn_norm.weight", ffn_norm, DIM_C, 1),
    MAT("ffn_gate", w_gate, DIM_C, DIM_F, 1),
    MAT("ffn_up", w_up, DIM_C, DIM_F, 1),
    MAT("ffn_down", w_down, DIM_F, DIM_C, 1),
};
/* qwen2: the llama block with Q/K/V biases, which every Qwen2 checkpoint has */
static const tensor_def k_qwen2_block[] = {
    VEC("attn_norm.weight", attn_norm, DIM_C, 1),
    MAT("attn_q", wq, DIM_C, DIM_Q, 1),
    MAT("attn_k", wk, DIM_C, DIM_KV, 1),
    MAT("attn_v", wv, DIM_C, DIM_KV, 1),
    VEC("attn_q.bias", bq, DIM_Q, 1),
    VEC("attn_k.bias", bk, DIM_KV, 1),
    VEC("attn_v.bias", bv, DIM_KV, 1),
    MAT("attn_output", wo, DIM_Q, DIM_C, 1),
    VEC("ffn_norm.weight", ffn_norm, DIM_C, 1),
    MAT("ffn_gate", w_gate, DIM_C, DIM_F, 1),
    MAT("ffn_up", w_up, DIM_C, DIM_F, 1),
    MAT("ffn_down", w_down, DIM_F, DIM_C, 1),
};
#undef MAT
#undef VEC

/* Hyperparameter keys, "<arch>." + key. */
typedef struct hparam_def {
    const char *key;
    size_t field;          /* offsetof(llama_hparams, ...) */
    int is_float;          /* 0: int32_t read from a u32, 1: float */
    int required;
    double dflt;           /* when absent and not required; NAN: the derived default below */
    int32_t lo, hi;        /* range of an integer */
} hparam_def;

#define HI(k, fld, req, d, lo, hi) {k, offsetof(llama_hparams, fld), 0, req, d, lo, hi}
#define HF(k, fld, req, d) {k, offsetof(llama_hparams, fld), 1, req, d, 0, 0}
static const hparam_def k_llama_hparams[] = {
    HI("context_length", n_ctx_train, 0, 2048, 1, 1 << 24),
    HI("embedding_length", n_embd, 1, 0, 1, 1 << 20),
    HI("block_count", n_layer, 1, 0, 1, 4096),
    HI("feed_forward_length", n_ff, 1, 0, 1, 1 << 20),
    HI("attention.head_count", n_head, 1, 0, 1, 4096),
    HI("attention.head_count_kv", n_head_kv, 0, NAN, 1, 4096),  /* default: head_count */
    HI("rope.dimension_count", n_rot, 0, NAN, 2, 1 << 20),      /* default: head dim */
    HF("rope.freq_base", rope_base, 0, 10000.0),
    HF("attention.layer_norm_rms_epsilon", rms_eps, 0, 1e-5),
};
/* qwen2: llama.cpp requires the epsilon (Qwen2 uses 1e-6, not llama's 1e-5) */
static const hparam_def k_qwen2_hparams[] = {
    HI("context_length", n_ctx_train, 0, 2048, 1, 1 << 24),
    HI("embedding_length", n_embd, 1, 0, 1, 1 << 20),
    HI("block_count", n_layer, 1, 0, 1, 4096),
    HI("feed_forward_length", n_ff, 1, 0, 1, 1 << 20),
    HI("attention.head_count", n_head, 1, 0, 1, 4096),
    HI("attention.head_count_kv", n_head_kv, 0, NAN, 1, 4096),
    HI("rope.dimension_count", n_rot, 0, NAN, 2, 1 << 20),
    HF("rope.freq_base", rope_base, 0, 10000.0),
    HF("attention.layer_norm_rms_epsilon", rms_eps, 1, 0),
};
#undef HI
#undef HF

typedef struct arch_def {
    const char *name;              /* general.architecture */
    const hparam_def *hparams;
    int n_hparams;
    const tensor_def *block;       /* the tensors of one block */
    int n_block;
    int rope_neox;                 /* llama.cpp's rope type: 0 NORM, 1 NEOX */
    /* the memory tuner's defaults, measured per architecture (docs/BENCHMARKS.md, "Memory tuning
     * on Qwen2.5"): the learning rate (0: MEM_DEFAULT_LR) and the value block as a fraction of
     * the depth, num/den (0/0: 4/5) */
    float mem_lr;
    int mem_value_num, mem_value_den;
} arch_def;

#define N_OF(a) (int)(sizeof(a) / sizeof((a)[0]))
/* token_embd, output_norm and output (absent: tied to token_embd) are common */
static const arch_def k_archs[] = {
    {"llama", k_llama_hparams, N_OF(k_llama_hparams), k_llama_block, N_OF(k_llama_block), 0, 0.0f, 0, 0},
    {"mistral", k_llama_hparams, N_OF(k_llama_hparams), k_llama_block, N_OF(k_llama_block), 0, 0.0f, 0, 0},
    /* Qwen2.5-Coder-0.5B (24 blocks), 50 languages facts: value block 19 (4/5) memorized in 28
     * steps, 16 in 42, 21 (7/8) in 21 with every variant and neighbour right (19: 148/150
     * variants, 49/50 capitals kept); lr 0.05 -> 0.15 halved the steps */
    {"qwen2", k_qwen2_hparams, N_OF(k_qwen2_hparams), k_qwen2_block, N_OF(k_qwen2_block), 1, 0.15f, 7, 8},
};

float model_mem_lr(const mome_model *m) {
    return m->arch && m->arch->mem_lr > 0 ? m->arch->mem_lr : MEM_DEFAULT_LR;
}

int model_mem_value_layer(const mome_model *m) {
    const int L = m->hp.n_layer;
    if (m->arch && m->arch->mem_value_den > 0) return L * m->arch->mem_value_num / m->arch->mem_value_den;
    return (4 * L) / 5;
}

static const arch_def *find_arch(const char *name) {
    for (int i = 0; i < N_OF(k_archs); i++)
        if (strcmp(k_archs[i].name, name) == 0) return &k_archs[i];
    return NULL;
}

/* "llama, mistral, qwen2" */
static void arch_list(char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; i < N_OF(k_archs); i++) {
        size_t k = strlen(buf);
        snprintf(buf + k, n - k, "%s%s", i ? ", " : "", k_archs[i].name);
    }
}

/* The architecture name of the file into arch (truncated to 63 bytes). */
static int read_arch_name(const mome_model *m, char *arch, size_t n) {
    gguf_str arch_s;
    int r = gguf_get_str(m->gguf, "general.architecture", &arch_s);
    if (r < 0) return -1;
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing metadata 'general.architecture'", m->path);
    snprintf(arch, n, "%.*s", (int)(arch_s.len < 60 ? arch_s.len : 60), arch_s.ptr);
    for (char *p = arch; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?'; /* one printable line */
    return 0;
}

static int load_hparams(mome_model *m) {
    const gguf_file *f = m->gguf;
    llama_hparams *hp = &m->hp;
    const arch_def *a = m->arch;
    const char *arch = a->name;
    for (int i = 0; i < a->n_hparams; i++) {
        const hparam_def *d = &a->hparams[i];
        if (d->is_float) {
            float *dst = (float *)((char *)hp + d->field);
            float v = (float)d->dflt;
            if (d->required) {
                char name[128];
                snprintf(name, sizeof name, "%s.%s", arch, d->key);
                int r = gguf_get_f32(f, name, &v);
                if (r < 0) return -1;
                if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing metadata '%s'", f->path, name);
            }
            if (hp_float(f, arch, d->key, &v)) return -1;
            *dst = v;
        } else {
            int32_t *dst = (int32_t *)((char *)hp + d->field);
            *dst = isnan(d->dflt) ? -1 : (int32_t)d->dflt;
            if (hp_int(f, arch, d->key, dst, d->required, d->lo, d->hi)) return -1;
        }
    }
    if (hp->n_head_kv < 0) hp->n_head_kv = hp->n_head;
    if (hp->n_embd % hp->n_head != 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: embedding_length %d is not a multiple of head_count %d", m->path,
                                hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", m->path,
                                hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    int32_t kl = hp->head_dim;
    if (hp_int(f, arch, "attention.key_length", &kl, 0, 1, 1 << 20)) return -1;
    if (kl != hp->head_dim)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: attention.key_length %d != n_embd/n_head %d is not supported",
                                m->path, kl, hp->head_dim);
    if (hp->n_rot < 0) hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: rope.dimension_count %d exceeds the head dimension %d", m->path,
                                hp->n_rot, hp->head_dim);
    if (hp->n_rot % 2) return mome_seterr_code(MOME_ERR_FORMAT, "%s: rope.dimension_count %d is odd", m->path, hp->n_rot);
    hp->rope_neox = a->rope_neox;
    hp->rope_scale = 1.0f;
    {
        char key[128];
        gguf_str st;
        snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
        int rs = gguf_get_str(f, key, &st);
        if (rs < 0) return -1;
        float factor = 0;
        if (hp_float(f, arch, "rope.scaling.factor", &factor)) return -1;
        if (rs == 1 && !gguf_str_eq(st, "none") && !gguf_str_eq(st, "linear"))
            return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: rope scaling type '%.*s' is not supported", m->path,
                                    (int)(st.len < 32 ? st.len : 32), st.ptr);
        if ((rs == 0 || gguf_str_eq(st, "linear")) && factor > 0) hp->rope_scale = factor;
        float lin = 0;
        if (hp_float(f, arch, "rope.scale_linear", &lin)) return -1;
        if (lin > 0) hp->rope_scale = lin;
    }
    if (!(hp->rope_base > 0) || !(hp->rms_eps > 0) || !(hp->rope_scale > 0))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: rope.freq_base, rope scale and rms epsilon must be positive", m->path);
    return 0;
}

static int64_t dim_value(const llama_hparams *hp, enum dim d) {
    switch (d) {
    case DIM_C: return hp->n_embd;
    case DIM_F: return hp->n_ff;
    case DIM_Q: return (int64_t)hp->n_head * hp->head_dim;
    case DIM_KV: return (int64_t)hp->n_head_kv * hp->head_dim;
    }
    return 0;
}

/* Repacks the matrices the kernels stream faster row-interleaved
 * (quant_pack_wanted: Q4_K, Q6_K, Q5_0 and Q8_0 under AVX-512 VNNI) into
 * memory of their own, one at a time, and hands the original pages back to the kernel
 * (MADV_DONTNEED on the private file mapping: clean pages, dropped from the
 * resident set, read from the file again if touched), so the resident size
 * stays that of one copy. The original rows stay readable (token lookups,
 * the training stack's dequantization). A tied output head is packed too:
 * the product uses the packed copy, token lookups read the embedding rows
 * from the original mapping (the few pages they touch come back). */
static int pack_mat(mome_model *m, qmat *q) {
    if (q->packed || !quant_pack_wanted(q->type, q->n_in, q->n_out)) return 0;
    q->packed = mome_aligned_alloc((size_t)q->n_out * q->row_bytes);
    if (!q->packed) return MOME_ERR_NOMEM;
    /* in slices of about 4 MiB, each slice's original pages dropped before
     * the next is packed: the peak is one slice more than one copy */
    int64_t step = (int64_t)((4u << 20) / (16 * q->row_bytes)) * 16;
    if (step < 16) step = 16;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int64_t r = 0; r < q->n_out; r += step) {
        const int64_t k = q->n_out - r < step ? q->n_out - r : step;
        const char *src = (const char *)q->data + (size_t)r * q->row_bytes;
        quant_pack(q->type, q->n_in, src, q->row_bytes, k, (char *)q->packed + (size_t)r * q->row_bytes);
        if (m->gguf->fd >= 0) {
            const uintptr_t a = (uintptr_t)src, lo = (a + pg - 1) & ~(pg - 1);
            const uintptr_t hi = (a + (size_t)k * q->row_bytes) & ~(pg - 1);
            if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
        }
    }
    return 0;
}

static int pack_weights(mome_model *m) {
    /* and whether every matrix gives a prompt row the same bits however the
     * prompt is split (mome_ctx_shared_prefix) */
    m->chunk_invariant = quant_chunk_invariant(m->output.type);
    for (int l = 0; l < m->hp.n_layer; l++) {
        llama_layer *L = &m->layers[l];
        qmat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            if (!mats[i]->data) continue;
            if (!quant_chunk_invariant(mats[i]->type)) m->chunk_invariant = 0;
            if (pack_mat(m, mats[i])) return MOME_ERR_NOMEM;
        }
    }
    if (pack_mat(m, &m->output)) return MOME_ERR_NOMEM;
    return 0;
}

static int load_weights(mome_model *m) {
    const llama_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, V = hp->n_vocab;
    char name[128];
    if (bind_mat(m, "token_embd.weight", C, V, &m->tok_embd, 1)) return -1;
    if (bind_vec(m, "output_norm.weight", C, &m->output_norm, 1)) return -1;
    int r = bind_mat(m, "output.weight", C, V, &m->output, 0);
    if (r < 0) return -1;
    if (r == 1) m->output = m->tok_embd; /* tied embeddings */
    m->layers = mome_calloc((size_t)hp->n_layer, sizeof(llama_layer));
    if (!m->layers) return MOME_ERR_NOMEM;
    const arch_def *a = m->arch;
    for (int l = 0; l < hp->n_layer; l++) {
        char *L = (char *)&m->layers[l];
        for (int i = 0; i < a->n_block; i++) {
            const tensor_def *t = &a->block[i];
            snprintf(name, sizeof name, "blk.%d.%s", l, t->name);
            if (t->kind == T_MAT)
                r = bind_mat(m, name, dim_value(hp, t->in), dim_value(hp, t->out), (qmat *)(L + t->field), t->required);
            else
                r = bind_vec(m, name, dim_value(hp, t->in), (float **)(L + t->field), t->required);
            if (r < 0) return -1;
        }
    }
    return pack_weights(m);
}

int mome_model_load(const char *path, const mome_model_params *p, mome_model **out) {
    *out = NULL;
    quant_init(0);
    mome_model *m = calloc(1, sizeof *m);
    if (!m) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    m->path = strdup(path);
    m->n_threads = (p && p->n_threads > 0) ? p->n_threads : default_threads();
    int rc = gguf_open(path, &m->gguf);
    if (rc) goto fail;
    rc = MOME_ERR_FORMAT;
    const int vocab_only = p && p->vocab_only;
    if (!vocab_only) {
        char arch[64];
        if (read_arch_name(m, arch, sizeof arch)) goto fail;
        m->arch = find_arch(arch);
        if (!m->arch) {
            char known[128];
            arch_list(known, sizeof known);
            rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (mome runs: %s)", path,
                                  arch, known);
            goto fail;
        }
        if (m->gguf->n_tensors == 0) {
            rc = mome_seterr_code(MOME_ERR_UNSUPPORTED,
                                  "%s: the file has no weights (a vocabulary-only GGUF: `mome tokenize` reads it)",
                                  path);
            goto fail;
        }
        if (load_hparams(m)) goto fail;
    }
    if (tokenizer_load(m->gguf, &m->tok)) goto fail;
    m->hp.n_vocab = tokenizer_n_vocab(m->tok);
    if (!vocab_only) {
        uint32_t vs;
        char key[96];
        snprintf(key, sizeof key, "%s.vocab_size", m->arch->name);
        int r = gguf_get_u32(m->gguf, key, &vs);
        if (r < 0) goto fail;
        if (r == 1 && (int64_t)vs != m->hp.n_vocab) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: %s %u disagrees with the %d tokens of the vocabulary", path, key, vs,
                             m->hp.n_vocab);
            goto fail;
        }
        if (load_weights(m)) goto fail;
    }
    {
        gguf_str s;
        int r = gguf_get_str(m->gguf, "tokenizer.chat_template", &s);
        if (r < 0) goto fail;
        if (r == 1) m->chat_template = dup_str(s);
        r = gguf_get_str(m->gguf, "general.name", &s);
        if (r < 0) goto fail;
        if (r == 1) m->name = dup_str(s);
    }
    *out = m;
    return MOME_OK;
fail:
    mome_model_free(m);
    return rc ? rc : MOME_ERR_FORMAT;
}

void mome_model_free(mome_model *m) {
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->hp.n_layer; l++) {
            free(m->layers[l].attn_norm);
            free(m->layers[l].ffn_norm);
            free(m->layers[l].bq);
            free(m->layers[l].bk);
            free(m->layers[l].bv);
            llama_layer *L = &m->layers[l];
            qmat *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) free(mats[i]->packed);
        }
    free(m->layers);
    if (m->output.packed != m->tok_embd.packed) free(m->output.packed);
    free(m->output_norm);
    tokenizer_free(m->tok);
    gguf_close(m->gguf);
    free(m->chat_template);
    free(m->name);
    free(m->path);
    free(m);
}

int32_t mome_model_n_vocab(const mome_model *m) { return m->hp.n_vocab; }
int32_t mome_model_n_ctx_train(const mome_model *m) { return m->hp.n_ctx_train; }
int32_t mome_model_n_embd(const mome_model *m) { return m->hp.n_embd; }
int32_t mome_model_n_layer(const mome_model *m) { return m->hp.n_layer; }
int32_t mome_token_bos(const mome_model *m) { return tokenizer_bos(m->tok); }
int32_t mome_token_eos(const mome_model *m) { return tokenizer_eos(m->tok); }
int mome_token_is_eog(const mome_model *m, int32_t tok) { return tokenizer_is_eog(m->tok, tok); }

int mome_tokenize(const mome_model *m, const char *text, size_t len, int32_t *ids, int cap, int add_special,
                  int parse_special) {
    return tokenizer_encode(m->tok, text, len, add_special, parse_special, ids, cap);
}

int mome_token_to_piece(const mome_model *m, int32_t tok, char *buf, int cap, int render_special) {
    return tokenizer_token_to_piece(m->tok, tok, buf, cap, render_special);
}

const char *mome_model_sha256(mome_model *m) {
    if (!m->sha256[0] && mome_sha256_file(m->path, m->sha256) != MOME_OK) {
        m->sha256[0] = 0;
        return NULL;
    }
    return m->sha256;
}

int mome_tokenize_alloc(const mome_model *m, const char *text, int add_special, int parse_special, int32_t **out) {
    *out = NULL;
    const size_t len = strlen(text);
    if (len > (size_t)INT32_MAX - 16) return mome_seterr_code(MOME_ERR_ARG, "text too long to tokenize (%zu bytes)", len);
    int cap = (int)len + 8;
    int32_t *ids = mome_malloc((size_t)cap * sizeof(int32_t));
    if (!ids) return MOME_ERR_NOMEM;
    int n = mome_tokenize(m, text, len, ids, cap, add_special, parse_special);
    if (n > cap) {
        free(ids);
        cap = n;
        ids = mome_malloc((size_t)cap * sizeof(int32_t));
        if (!ids) return MOME_ERR_NOMEM;
        n = mome_tokenize(m, text, len, ids, cap, add_special, parse_special);
    }
    if (n < 0 || n > cap) {
        free(ids);
        return n < 0 ? n : mome_seterr_code(MOME_ERR, "tokenizer returned an inconsistent count");
    }
    *out = ids;
    return n;
}
