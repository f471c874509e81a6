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
#include <string.h>
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
static int bind_vec(mome_model *m, const char *name, int64_t n, float **out) {
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) return mome_seterr_code(MOME_ERR_FORMAT, "%s: tensor '%s' is missing", m->path, name);
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

static int load_hparams(mome_model *m) {
    const gguf_file *f = m->gguf;
    llama_hparams *hp = &m->hp;
    gguf_str arch_s;
    int r = gguf_get_str(f, "general.architecture", &arch_s);
    if (r < 0) return -1;
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing metadata 'general.architecture'", m->path);
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(arch_s.len < 60 ? arch_s.len : 60), arch_s.ptr);
    /* These architectures share llama's graph (RMSNorm, RoPE, GQA, SwiGLU). */
    if (strcmp(arch, "llama") != 0 && strcmp(arch, "mistral") != 0)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED,
                                "%s: architecture '%s' is not supported (mome runs llama-family models: llama, mistral)",
                                m->path, arch);
    const int32_t BIG = 1 << 20;
    hp->n_ctx_train = 2048;
    if (hp_int(f, arch, "context_length", &hp->n_ctx_train, 0, 1, 1 << 24)) return -1;
    if (hp_int(f, arch, "embedding_length", &hp->n_embd, 1, 1, BIG)) return -1;
    if (hp_int(f, arch, "block_count", &hp->n_layer, 1, 1, 4096)) return -1;
    if (hp_int(f, arch, "feed_forward_length", &hp->n_ff, 1, 1, BIG)) return -1;
    if (hp_int(f, arch, "attention.head_count", &hp->n_head, 1, 1, 4096)) return -1;
    hp->n_head_kv = hp->n_head;
    if (hp_int(f, arch, "attention.head_count_kv", &hp->n_head_kv, 0, 1, 4096)) return -1;
    if (hp->n_embd % hp->n_head != 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: embedding_length %d is not a multiple of head_count %d", m->path,
                                hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", m->path,
                                hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    int32_t kl = hp->head_dim;
    if (hp_int(f, arch, "attention.key_length", &kl, 0, 1, BIG)) return -1;
    if (kl != hp->head_dim)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: attention.key_length %d != n_embd/n_head %d is not supported",
                                m->path, kl, hp->head_dim);
    hp->n_rot = hp->head_dim;
    if (hp_int(f, arch, "rope.dimension_count", &hp->n_rot, 0, 2, hp->head_dim)) return -1;
    if (hp->n_rot % 2) return mome_seterr_code(MOME_ERR_FORMAT, "%s: rope.dimension_count %d is odd", m->path, hp->n_rot);
    hp->rope_base = 10000.0f;
    if (hp_float(f, arch, "rope.freq_base", &hp->rope_base)) return -1;
    hp->rms_eps = 1e-5f;
    if (hp_float(f, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) return -1;
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

static int load_weights(mome_model *m) {
    const llama_hparams *hp = &m->hp;
    const int64_t C = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    const int64_t HD = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    if (bind_mat(m, "token_embd.weight", C, V, &m->tok_embd, 1)) return -1;
    if (bind_vec(m, "output_norm.weight", C, &m->output_norm)) return -1;
    int r = bind_mat(m, "output.weight", C, V, &m->output, 0);
    if (r < 0) return -1;
    if (r == 1) m->output = m->tok_embd; /* tied embeddings */
    m->layers = mome_calloc((size_t)hp->n_layer, sizeof(llama_layer));
    if (!m->layers) return MOME_ERR_NOMEM;
    for (int l = 0; l < hp->n_layer; l++) {
        llama_layer *L = &m->layers[l];
#define MAT(field, nm, nin, nout)                                          \
    snprintf(name, sizeof name, "blk.%d." nm ".weight", l);                \
    if (bind_mat(m, name, nin, nout, &L->field, 1)) return -1;
#define VEC(field, nm)                                                     \
    snprintf(name, sizeof name, "blk.%d." nm ".weight", l);                \
    if (bind_vec(m, name, C, &L->field)) return -1;
        VEC(attn_norm, "attn_norm");
        MAT(wq, "attn_q", C, HD);
        MAT(wk, "attn_k", C, KV);
        MAT(wv, "attn_v", C, KV);
        MAT(wo, "attn_output", HD, C);
        VEC(ffn_norm, "ffn_norm");
        MAT(w_gate, "ffn_gate", C, F);
        MAT(w_up, "ffn_up", C, F);
        MAT(w_down, "ffn_down", F, C);
#undef MAT
#undef VEC
    }
    return 0;
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
    if (load_hparams(m)) goto fail;
    if (tokenizer_load(m->gguf, &m->tok)) goto fail;
    m->hp.n_vocab = tokenizer_n_vocab(m->tok);
    {
        uint32_t vs;
        char key[64];
        snprintf(key, sizeof key, "llama.vocab_size");
        int r = gguf_get_u32(m->gguf, key, &vs);
        if (r < 0) goto fail;
        if (r == 1 && (int32_t)vs != m->hp.n_vocab) {
            mome_seterr_code(MOME_ERR_FORMAT, "%s: llama.vocab_size %u disagrees with the %d tokens of the vocabulary",
                             path, vs, m->hp.n_vocab);
            goto fail;
        }
    }
    if (load_weights(m)) goto fail;
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
        }
    free(m->layers);
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
