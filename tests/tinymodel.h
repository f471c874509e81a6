/* tinymodel.h - writes tiny RANDOM llama models as GGUF files, for tests.
 *
 * The layout mirrors what llama.cpp's converters write (compare
 * ../shared/data/models/stories260K.gguf): general.* and llama.* metadata, a
 * SentencePiece ("llama") vocabulary of <unk>, <s>, </s>, the 256 byte tokens
 * <0x00>..<0xFF> (token type 6) and synthetic word pieces with descending
 * scores, then token_embd, output_norm, output (unless tied) and per layer
 * attn_q, attn_k, attn_v, attn_output, attn_norm, ffn_gate, ffn_down, ffn_up,
 * ffn_norm. Shapes are GGUF order (ne[0] = input dimension): attn_q
 * [n_embd, n_embd], attn_k/attn_v [n_embd, n_head_kv*head_dim], attn_output
 * [n_embd, n_embd], ffn_gate/ffn_up [n_embd, n_ff], ffn_down [n_ff, n_embd],
 * token_embd/output [n_embd, n_vocab]; norms are F32 [n_embd].
 *
 * Values come from a fixed-seed generator, so equal parameters give
 * byte-identical files. Matrices are uniform with unit output variance
 * (+-sqrt(3/n_in)) times `scale`; embeddings +-1; norm weights 1 +- 0.1.
 * Matrix and embedding tensors are stored as `wtype` via quant_quantize_row
 * (F32, F16, BF16, Q8_0, Q4_0, Q4_1, ...), so n_embd (and n_ff) must be
 * multiples of its block size.
 *
 * Usage:
 *     tinymodel_params p = tinymodel_default_params();
 *     p.wtype = MOME_DTYPE_Q8_0;
 *     if (tinymodel_write("/tmp/x.gguf", &p) != MOME_OK) ... mome_errmsg() ...
 * or tinymodel_build() to get the writer and add more keys/tensors first.
 */
#ifndef MOME_TINYMODEL_H
#define MOME_TINYMODEL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_write.h"
#include "mome.h"
#include "quant.h"
#include "util.h"

typedef struct tinymodel_params {
    int n_vocab;          /* >= 259 (3 specials + 256 bytes + word pieces) */
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int n_ff;
    int n_ctx;            /* llama.context_length */
    float rope_freq_base;
    float rms_eps;
    enum mome_dtype wtype; /* matrices and token_embd */
    int tied;             /* 1: no output.weight (head shares token_embd) */
    uint64_t seed;
    float scale;          /* multiplies the matrix init range */
    const char *name;     /* general.name */
    const char *arch;     /* general.architecture and the metadata prefix ("llama"; "qwen2") */
    int qkv_bias;         /* 1: blk.N.attn_{q,k,v}.bias, F32, uniform +-0.5 (qwen2 needs them) */
} tinymodel_params;

static inline tinymodel_params tinymodel_default_params(void) {
    tinymodel_params p;
    memset(&p, 0, sizeof p);
    p.n_vocab = 320;
    p.n_embd = 64;
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.n_ff = 160;
    p.n_ctx = 256;
    p.rope_freq_base = 10000.0f;
    p.rms_eps = 1e-5f;
    p.wtype = MOME_DTYPE_F32;
    p.tied = 0;
    p.seed = 1234;
    p.scale = 1.0f;
    p.name = "tinymodel";
    p.arch = "llama";
    p.qkv_bias = 0;
    return p;
}

/* splitmix64 */
static inline uint64_t tinymodel_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in [-1, 1) */
static inline float tinymodel_unif(uint64_t *s) {
    return (float)((double)(tinymodel_rng(s) >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* Word pieces: a few real ones, then generated "q..." pieces that cannot
 * collide with them. Writes a NUL-terminated piece into buf (>= 32 bytes). */
static inline void tinymodel_piece(int k, char *buf) {
    static const char *const fixed[] = {
        "\xe2\x96\x81t", "he", "\xe2\x96\x81" "a", "\xe2\x96\x81s", "\xe2\x96\x81w", "nd",
        "\xe2\x96\x81the", "ed", "\xe2\x96\x81to", "\xe2\x96\x81" "b", "\xe2\x96\x81" "and",
        "\xe2\x96\x81h", "in", "\xe2\x96\x81" "f", "er", "\xe2\x96\x81" "c", "ou", "it",
        "\xe2\x96\x81" "d", "an", "\xe2\x96\x81m", "\xe2\x96\x81l", "\xe2\x96\x81p", "re",
        "\xe2\x96\x81was", "on", "\xe2\x96\x81he", "\xe2\x96\x81" "day", "\xe2\x96\x81" "she",
        "ing", "\xe2\x96\x81Lily", "\xe2\x96\x81" "big", "\xe2\x96\x81" "cat", "\xe2\x96\x81" "dog",
        "\xe2\x96\x81play", "\xe2\x96\x81happy", "\xe2\x96\x81Once", "\xe2\x96\x81upon",
        "\xe2\x96\x81time", "\xe2\x96\x81there", "\xe2\x96\x81" "of", "\xe2\x96\x81in", "\xe2\x96\x81it",
        "\xe2\x96\x81" "friend", "\xe2\x96\x81said", ".", ",", "!", "?", "\xe2\x96\x81",
    };
    const int nfixed = (int)(sizeof fixed / sizeof fixed[0]);
    if (k < nfixed) {
        snprintf(buf, 32, "%s", fixed[k]);
        return;
    }
    k -= nfixed;
    int pos = 0;
    if (k & 1) pos += snprintf(buf, 32, "\xe2\x96\x81");
    k >>= 1;
    buf[pos++] = 'q';
    for (int i = 0; i < 3 || k > 0; i++) {   /* at least 3 letters: "qaaa" */
        buf[pos++] = (char)('a' + k % 26);
        k /= 26;
    }
    buf[pos] = 0;
}

/* Adds one matrix [n_in, n_out] of type t with values unif * range. */
static inline int tinymodel_add_mat(gguf_writer *w, const char *name, int n_in, int n_out,
                                    enum mome_dtype t, float range, uint64_t *rng) {
    int64_t ne[2] = {n_in, n_out};
    size_t row = quant_row_size(t, n_in);
    if (row == 0)
        return mome_seterr_code(MOME_ERR_ARG, "tinymodel: %s: row of %d is not a multiple of the block size of type %u",
                                name, n_in, (unsigned)t);
    float *src = (float *)malloc((size_t)n_in * sizeof(float));
    unsigned char *dst = (unsigned char *)malloc(row * (size_t)n_out);
    if (!src || !dst) {
        free(src);
        free(dst);
        return mome_seterr_code(MOME_ERR_NOMEM, "tinymodel: out of memory");
    }
    for (int r = 0; r < n_out; r++) {
        for (int i = 0; i < n_in; i++) src[i] = tinymodel_unif(rng) * range;
        if (t == MOME_DTYPE_F32) memcpy(dst + (size_t)r * row, src, row);
        else quant_quantize_row(t, src, dst + (size_t)r * row, n_in);
    }
    int rc = gguf_writer_add_tensor(w, name, 2, ne, t, dst, row * (size_t)n_out, GGUF_WRITER_COPY);
    free(src);
    free(dst);
    return rc;
}

static inline int tinymodel_add_norm(gguf_writer *w, const char *name, int n, uint64_t *rng) {
    int64_t ne[1] = {n};
    float *v = (float *)malloc((size_t)n * sizeof(float));
    if (!v) return mome_seterr_code(MOME_ERR_NOMEM, "tinymodel: out of memory");
    for (int i = 0; i < n; i++) v[i] = 1.0f + 0.1f * tinymodel_unif(rng);
    int rc = gguf_writer_add_tensor(w, name, 1, ne, MOME_DTYPE_F32, v, (size_t)n * sizeof(float), GGUF_WRITER_COPY);
    free(v);
    return rc;
}

/* Builds the whole model into a new writer (*out; free with gguf_writer_free). */
static inline int tinymodel_build(const tinymodel_params *p, gguf_writer **out) {
    *out = NULL;
    if (p->n_vocab < 259 || p->n_embd <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 ||
        p->n_ff <= 0 || p->n_embd % p->n_head != 0 || p->n_head % p->n_head_kv != 0)
        return mome_seterr_code(MOME_ERR_ARG, "tinymodel: bad parameters (n_vocab %d >= 259? n_embd %d divisible by "
                                "n_head %d, n_head divisible by n_head_kv %d?)",
                                p->n_vocab, p->n_embd, p->n_head, p->n_head_kv);
    const int V = p->n_vocab, C = p->n_embd, hd = C / p->n_head, ckv = p->n_head_kv * hd;
    gguf_writer *w;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    gguf_writer_set_fsync(w, 0);
    uint64_t rng = p->seed ^ 0x7E57C0DEull;

    /* vocabulary */
    char **toks = (char **)calloc((size_t)V, sizeof(char *));
    float *scores = (float *)calloc((size_t)V, sizeof(float));
    int32_t *types = (int32_t *)calloc((size_t)V, sizeof(int32_t));
    if (!toks || !scores || !types) {
        rc = mome_seterr_code(MOME_ERR_NOMEM, "tinymodel: out of memory");
        goto vocab_done;
    }
    for (int i = 0; i < V; i++) {
        toks[i] = (char *)malloc(32);
        if (!toks[i]) {
            rc = mome_seterr_code(MOME_ERR_NOMEM, "tinymodel: out of memory");
            goto vocab_done;
        }
        if (i == 0) { snprintf(toks[i], 32, "<unk>"); types[i] = 2; }
        else if (i == 1) { snprintf(toks[i], 32, "<s>"); types[i] = 3; }
        else if (i == 2) { snprintf(toks[i], 32, "</s>"); types[i] = 3; }
        else if (i < 259) { snprintf(toks[i], 32, "<0x%02X>", i - 3); types[i] = 6; }
        else { tinymodel_piece(i - 259, toks[i]); types[i] = 1; scores[i] = -(float)(i - 259); }
    }

#define TM_TRY(x) do { if ((rc = (x)) != MOME_OK) goto vocab_done; } while (0)
    const char *arch = p->arch ? p->arch : "llama";
    char key[96];
#define TM_KEY(s) (snprintf(key, sizeof key, "%s." s, arch), key)
    TM_TRY(gguf_writer_add_str(w, "general.architecture", arch));
    TM_TRY(gguf_writer_add_str(w, "general.name", p->name ? p->name : "tinymodel"));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("context_length"), (uint32_t)p->n_ctx));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("embedding_length"), (uint32_t)C));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("feed_forward_length"), (uint32_t)p->n_ff));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("attention.head_count"), (uint32_t)p->n_head));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("attention.head_count_kv"), (uint32_t)p->n_head_kv));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("block_count"), (uint32_t)p->n_layer));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("rope.dimension_count"), (uint32_t)hd));
    TM_TRY(gguf_writer_add_f32(w, TM_KEY("rope.freq_base"), p->rope_freq_base));
    TM_TRY(gguf_writer_add_f32(w, TM_KEY("attention.layer_norm_rms_epsilon"), p->rms_eps));
    TM_TRY(gguf_writer_add_u32(w, TM_KEY("vocab_size"), (uint32_t)V));
#undef TM_KEY
    TM_TRY(gguf_writer_add_u32(w, "general.file_type", (uint32_t)(p->wtype == MOME_DTYPE_F32 ? 0
                                                                   : p->wtype == MOME_DTYPE_F16 ? 1
                                                                   : p->wtype == MOME_DTYPE_Q4_0 ? 2
                                                                   : p->wtype == MOME_DTYPE_Q4_1 ? 3
                                                                   : p->wtype == MOME_DTYPE_Q8_0 ? 7 : 0)));
    TM_TRY(gguf_writer_add_str(w, "tokenizer.ggml.model", "llama"));
    TM_TRY(gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (size_t)V));
    TM_TRY(gguf_writer_add_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, (size_t)V));
    TM_TRY(gguf_writer_add_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (size_t)V));
    TM_TRY(gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    TM_TRY(gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1));
    TM_TRY(gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", 2));
    TM_TRY(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1));
    TM_TRY(gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0));
    if (p->wtype != MOME_DTYPE_F32 && p->wtype != MOME_DTYPE_F16 && p->wtype != MOME_DTYPE_BF16)
        TM_TRY(gguf_writer_add_u32(w, "general.quantization_version", 2));

    /* tensors, in stories260K's order */
    {
        const float sc = p->scale;
        const float r_embd = sqrtf(3.0f / (float)C) * sc, r_ff = sqrtf(3.0f / (float)p->n_ff) * sc;
        char nm[64];
        TM_TRY(tinymodel_add_mat(w, "token_embd.weight", C, V, p->wtype, 1.0f, &rng));
        TM_TRY(tinymodel_add_norm(w, "output_norm.weight", C, &rng));
        if (!p->tied) TM_TRY(tinymodel_add_mat(w, "output.weight", C, V, p->wtype, r_embd, &rng));
        for (int l = 0; l < p->n_layer; l++) {
#define TM_NAME(s) (snprintf(nm, sizeof nm, "blk.%d." s ".weight", l), nm)
            TM_TRY(tinymodel_add_mat(w, TM_NAME("attn_q"), C, C, p->wtype, r_embd, &rng));
            TM_TRY(tinymodel_add_mat(w, TM_NAME("attn_k"), C, ckv, p->wtype, r_embd, &rng));
            TM_TRY(tinymodel_add_mat(w, TM_NAME("attn_v"), C, ckv, p->wtype, r_embd, &rng));
            if (p->qkv_bias) {
                static const char *const bn[3] = {"attn_q", "attn_k", "attn_v"};
                for (int b = 0; b < 3; b++) {
                    const int n = b == 0 ? C : ckv;
                    int64_t ne[1] = {n};
                    float *v = (float *)malloc((size_t)n * sizeof(float));
                    if (!v) TM_TRY(mome_seterr_code(MOME_ERR_NOMEM, "tinymodel: out of memory"));
                    for (int i = 0; i < n; i++) v[i] = 0.5f * tinymodel_unif(&rng);
                    snprintf(nm, sizeof nm, "blk.%d.%s.bias", l, bn[b]);
                    rc = gguf_writer_add_tensor(w, nm, 1, ne, MOME_DTYPE_F32, v, (size_t)n * sizeof(float),
                                                GGUF_WRITER_COPY);
                    free(v);
                    TM_TRY(rc);
                }
            }
            TM_TRY(tinymodel_add_mat(w, TM_NAME("attn_output"), C, C, p->wtype, r_embd, &rng));
            TM_TRY(tinymodel_add_norm(w, TM_NAME("attn_norm"), C, &rng));
            TM_TRY(tinymodel_add_mat(w, TM_NAME("ffn_gate"), C, p->n_ff, p->wtype, r_embd, &rng));
            TM_TRY(tinymodel_add_mat(w, TM_NAME("ffn_down"), p->n_ff, C, p->wtype, r_ff, &rng));
            TM_TRY(tinymodel_add_mat(w, TM_NAME("ffn_up"), C, p->n_ff, p->wtype, r_embd, &rng));
            TM_TRY(tinymodel_add_norm(w, TM_NAME("ffn_norm"), C, &rng));
#undef TM_NAME
        }
    }
#undef TM_TRY

vocab_done:
    if (toks)
        for (int i = 0; i < V; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    if (rc != MOME_OK) {
        gguf_writer_free(w);
        return rc;
    }
    *out = w;
    return MOME_OK;
}

/* Writes the model to path (atomically). MOME_OK or an error (mome_errmsg). */
static inline int tinymodel_write(const char *path, const tinymodel_params *p) {
    gguf_writer *w;
    int rc = tinymodel_build(p, &w);
    if (rc) return rc;
    rc = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    return rc;
}

#endif
