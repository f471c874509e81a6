/* tokenizer.c - SPM and GPT-2 byte-level BPE tokenizers (see tokenizer.h).
 *
 * Port of llama.cpp's llama-vocab.cpp / unicode.cpp (llama-cpp-python 0.3.36
 * vendor tree). Notes on where we differ, all on inputs llama.cpp rejects or
 * crashes on:
 *   - llama.cpp aborts when an SPM byte has neither a <0xXX> nor a raw-byte
 *     token; we emit the unknown token (or nothing if there is none).
 *   - Tokens marked BYTE whose text is not <0xXX> render as their text.
 *   - BPE token text with characters outside the byte map renders them as
 *     UTF-8 (llama.cpp writes "[UNK_BYTE_0x..]").
 *   - Special tokens of equal length are tried in id order (llama.cpp uses an
 *     unstable sort). LSTRIP/RSTRIP attributes (set by llama.cpp only for a
 *     few model names: phi-3, jina, modern-bert) are not applied.
 *   - Regexes are PCRE2 (UTF|UCP) instead of llama.cpp's std::regex on
 *     "collapsed" text / its custom splitters; they agree except where
 *     PCRE2's Unicode tables differ from llama.cpp's (e.g. U+180E is \s in
 *     PCRE2, not in llama.cpp).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"
#include "util.h"

#define TOK_FLAG_EOG 0x80  /* stored in the attr byte, never exposed as attr */

typedef struct tok_entry {
    const char *text;  /* not NUL-terminated */
    uint32_t len;
    float score;
    uint8_t attr;      /* enum tokenizer_attr | TOK_FLAG_EOG */
} tok_entry;

/* open-addressing map: token text -> id */
typedef struct str_map {
    int32_t *slots;    /* -1 empty */
    uint32_t mask;
} str_map;

/* open-addressing map: u64 key -> (a, b); key stored +1, 0 = empty */
typedef struct u64_map {
    uint64_t *keys;
    int32_t *va, *vb;
    uint32_t mask;
    uint32_t n;
} u64_map;

#define MAX_REGEX 6

struct tokenizer {
    int type;
    char pre[64];
    int32_t n_vocab;
    tok_entry *tok;
    char *owned;            /* texts we had to make ("[EMPTY_i]") */
    str_map map;
    u64_map merges;         /* (left id, right id) -> (rank, result id) */
    int32_t bos, eos, eot, eom, unk, sep, pad;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    int32_t byte_tok[256];  /* BPE: token of the mapped char of byte b; SPM: <0xXX> fallback */
    int32_t char_tok[256];  /* token whose text is the single byte b */
    /* special tokens, longest first */
    int32_t *special;
    int n_special;
    u64_map trie;           /* (node << 8 | byte) -> (child node, token id or -1) */
    int32_t *trie_tok;      /* index into special[] of the token ending at node, -1 */
    int n_trie;
    /* BPE pre-tokenizer */
    int n_regex;
    pcre2_code *re[MAX_REGEX];
};

/* ----------------------------------------------------------- hashing */

static uint64_t hash_bytes(const void *p, size_t n) {
    /* FNV-1a 64 with a final mix */
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint32_t table_size(uint64_t n) {
    uint32_t c = 16;
    while (c < 2 * n) c <<= 1;
    return c;
}

static int32_t map_find(const tokenizer *t, const char *s, size_t n) {
    if (!t->map.slots) return -1;
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->map.mask;
    for (;;) {
        int32_t id = t->map.slots[i];
        if (id < 0) return -1;
        if (t->tok[id].len == n && memcmp(t->tok[id].text, s, n) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

static int u64_init(u64_map *m, uint64_t n) {
    uint32_t c = table_size(n);
    m->keys = calloc(c, sizeof *m->keys);
    m->va = malloc(c * sizeof *m->va);
    m->vb = malloc(c * sizeof *m->vb);
    m->mask = c - 1;
    m->n = 0;
    if (!m->keys || !m->va || !m->vb) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    return 0;
}

static void u64_free(u64_map *m) {
    free(m->keys);
    free(m->va);
    free(m->vb);
    memset(m, 0, sizeof *m);
}

static int u64_grow(u64_map *m);

/* insert if absent; returns slot index; *found = 1 if it existed */
static int64_t u64_put(u64_map *m, uint64_t key, int32_t a, int32_t b, int *found) {
    if ((uint64_t)(m->n + 1) * 2 > (uint64_t)m->mask + 1) {
        if (u64_grow(m)) return -1;
    }
    uint64_t k = key + 1;
    uint32_t i = (uint32_t)hash_u64(key) & m->mask;
    while (m->keys[i]) {
        if (m->keys[i] == k) {
            *found = 1;
            return i;
        }
        i = (i + 1) & m->mask;
    }
    m->keys[i] = k;
    m->va[i] = a;
    m->vb[i] = b;
    m->n++;
    *found = 0;
    return i;
}

static int u64_grow(u64_map *m) {
    u64_map nm;
    if (u64_init(&nm, ((uint64_t)m->mask + 1))) return -1;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (m->keys[i]) {
            int found;
            u64_put(&nm, m->keys[i] - 1, m->va[i], m->vb[i], &found);
        }
    }
    u64_free(m);
    *m = nm;
    return 0;
}

static int u64_get(const u64_map *m, uint64_t key, int32_t *a, int32_t *b) {
    if (!m->keys) return 0;
    uint64_t k = key + 1;
    uint32_t i = (uint32_t)hash_u64(key) & m->mask;
    while (m->keys[i]) {
        if (m->keys[i] == k) {
            *a = m->va[i];
            if (b) *b = m->vb[i];
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    return 0;
}

/* ----------------------------------------------------------- unicode helpers */

static size_t utf8_len_lead(unsigned char c) {
    static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

/* llama.cpp's unicode_cpt_from_utf8 (lax: accepts overlongs and surrogates);
 * returns 0xFFFD and consumes one byte on error. */
static uint32_t cpt_from_utf8(const unsigned char *s, size_t n, size_t *off) {
    size_t o = *off;
    unsigned c = s[o];
    if (!(c & 0x80)) {
        *off = o + 1;
        return c;
    }
    if (!(c & 0x40)) goto bad;
    if (!(c & 0x20)) {
        if (o + 1 >= n || (s[o + 1] & 0xc0) != 0x80) goto bad;
        *off = o + 2;
        return ((c & 0x1f) << 6) | (s[o + 1] & 0x3f);
    }
    if (!(c & 0x10)) {
        if (o + 2 >= n || (s[o + 1] & 0xc0) != 0x80 || (s[o + 2] & 0xc0) != 0x80) goto bad;
        *off = o + 3;
        return ((c & 0x0f) << 12) | ((s[o + 1] & 0x3f) << 6) | (s[o + 2] & 0x3f);
    }
    if (!(c & 0x08)) {
        if (o + 3 >= n || (s[o + 1] & 0xc0) != 0x80 || (s[o + 2] & 0xc0) != 0x80 ||
            (s[o + 3] & 0xc0) != 0x80)
            goto bad;
        *off = o + 4;
        uint32_t r = ((c & 0x07) << 18) | ((s[o + 1] & 0x3f) << 12) | ((s[o + 2] & 0x3f) << 6) |
                     (s[o + 3] & 0x3f);
        return r > 0x10FFFF ? 0xFFFD : r;
    }
bad:
    *off = o + 1;
    return 0xFFFD;
}

static int cpt_to_utf8(uint32_t c, char *out) {
    if (c <= 0x7f) {
        out[0] = (char)c;
        return 1;
    }
    if (c <= 0x7ff) {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c <= 0xffff) {
        out[0] = (char)(0xe0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* GPT-2 bytes_to_unicode */
static uint16_t g_byte2cpt[256];
static int16_t g_cpt2byte[324]; /* code points < 324 only */

static void init_byte_map_once(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        g_byte2cpt[b] = (uint16_t)(keep ? b : 256 + n++);
    }
    for (int c = 0; c < 324; c++) g_cpt2byte[c] = -1;
    for (int b = 0; b < 256; b++) g_cpt2byte[g_byte2cpt[b]] = (int16_t)b;
}

static pthread_once_t g_byte_map_once = PTHREAD_ONCE_INIT;
static void init_byte_map(void) { pthread_once(&g_byte_map_once, init_byte_map_once); }

/* ----------------------------------------------------------- dynamic buffers */

typedef struct ibuf {
    int32_t *v;
    size_t n, cap;
} ibuf;

static int ibuf_push(ibuf *b, int32_t x) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        int32_t *nv = realloc(b->v, nc * sizeof *nv);
        if (!nv) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n++] = x;
    return 0;
}

typedef struct outbuf {
    int32_t *ids;
    int cap;
    int64_t n;
} outbuf;

static void out_push(outbuf *o, int32_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* ----------------------------------------------------------- loading */

static int eq(const tok_entry *e, const char *s) {
    size_t n = strlen(s);
    return e->len == n && memcmp(e->text, s, n) == 0;
}

static int read_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t *id) {
    /* default: keep *id if in range, else -1 */
    if (*id >= n_vocab) *id = -1;
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv || kv->type == GGUF_TYPE_ARRAY || kv->type == GGUF_TYPE_STRING || kv->type == GGUF_TYPE_BOOL ||
        kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64)
        return 0; /* absent or unusable: keep the default */
    double v = gguf_arr_get_num(kv, 0);
    if (v >= 0 && v < (double)n_vocab) *id = (int32_t)v;
    return 0;
}

static int read_bool(const gguf_file *f, const char *key, int *v) {
    int b;
    int r = gguf_get_bool(f, key, &b);
    if (r < 0) return r;
    if (r == 1) *v = b;
    return 0;
}

typedef struct pre_def {
    const char *names; /* '|'-separated */
    int ignore_merges, add_bos;
    const char *re[MAX_REGEX];
} pre_def;

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"

static const pre_def k_pre[] = {
    {"default", 0, -1,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|dbrx|smaug-bpe", 1, 1,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      NULL}},
    {"deepseek-coder", 0, -1,
     {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
      "\\p{N}", NULL}},
    {"smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b", 0, -1, {"\\p{N}", RE_GPT2, NULL}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|jina-v1-en|"
     "jina-v2-code|roberta-bpe|mpt|olmo|jais|exaone4|trillion|granite-docling",
     0, -1, {RE_GPT2, NULL}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|megrez|hunyuan|solar-open", 0, -1,
     {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
      NULL}},
};

static int name_in(const char *names, const char *s, size_t n) {
    const char *p = names;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, s, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tok[x].len != t->tok[y].len) return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int build_special(tokenizer *t) {
    int n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) n++;
    t->n_special = n;
    if (!n) return 0;
    t->special = malloc((size_t)n * sizeof *t->special);
    if (!t->special) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    n = 0;
    size_t total = 1;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->tok[i].attr & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) {
            t->special[n++] = i;
            total += t->tok[i].len;
        }
    qsort_r(t->special, (size_t)n, sizeof *t->special, cmp_special, t);
    /* trie over the special texts */
    if (total > (size_t)INT32_MAX / 2)
        return mome_seterr_code(MOME_ERR_FORMAT, "tokenizer: special tokens too long");
    t->trie_tok = malloc(total * sizeof *t->trie_tok);
    if (!t->trie_tok || u64_init(&t->trie, total))
        return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    t->trie_tok[0] = -1;
    t->n_trie = 1;
    for (int k = n - 1; k >= 0; k--) { /* reverse so that for equal text the lowest index wins */
        int32_t id = t->special[k];
        uint32_t node = 0;
        if (t->tok[id].len == 0) continue;
        for (uint32_t j = 0; j < t->tok[id].len; j++) {
            uint64_t key = ((uint64_t)node << 8) | (unsigned char)t->tok[id].text[j];
            int found;
            int64_t slot = u64_put(&t->trie, key, t->n_trie, 0, &found);
            if (slot < 0) return MOME_ERR_NOMEM;
            if (!found) t->trie_tok[t->n_trie++] = -1;
            node = (uint32_t)t->trie.va[slot];
        }
        t->trie_tok[node] = k;
    }
    return 0;
}

static int compile_regexes(tokenizer *t, const pre_def *pd) {
    for (int i = 0; i < MAX_REGEX && pd->re[i]; i++) {
        int err;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pd->re[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                                       &eoff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            return mome_seterr("tokenizer: cannot compile pre-tokenizer regex %d of '%s': %s", i, t->pre,
                               (const char *)msg);
        }
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* interpreter if JIT is unavailable */
        t->re[t->n_regex++] = re;
    }
    return 0;
}

/* The tokenizer's kind (SentencePiece or BPE) and, for BPE, its
 * pre-tokenizer (*pdp); the defaults each kind starts from. */
static int load_kind(const gguf_file *f, tokenizer *t, const char *path, const pre_def **pdp) {
    int rc;
    gguf_str model = {0}, pre = {0};
    rc = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (rc < 0) return rc;
    if (rc == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing tokenizer.ggml.model", path);
    if (gguf_str_eq(model, "llama")) {
        t->type = TOKENIZER_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1, t->add_space_prefix = 1;
    } else if (gguf_str_eq(model, "gpt2")) {
        t->type = TOKENIZER_BPE;
        t->bos = 11, t->eos = 11, t->unk = -1;
    } else {
        return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: unsupported tokenizer.ggml.model '%.*s' (want llama or gpt2)",
                                path, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    t->eot = t->eom = t->sep = t->pad = -1;

    const pre_def *pd = NULL;
    if (t->type == TOKENIZER_BPE) {
        rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre);
        if (rc < 0) return rc;
        if (rc == 0 || pre.len == 0) {
            pd = &k_pre[0]; /* llama.cpp: missing -> default (with a warning) */
            snprintf(t->pre, sizeof t->pre, "default");
        } else {
            for (size_t i = 0; i < sizeof k_pre / sizeof k_pre[0] && !pd; i++)
                if (name_in(k_pre[i].names, pre.ptr, pre.len)) pd = &k_pre[i];
            if (!pd) {
                return mome_seterr_code(MOME_ERR_UNSUPPORTED, "%s: unsupported pre-tokenizer tokenizer.ggml.pre = '%.*s'",
                                        path, (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
            }
            snprintf(t->pre, sizeof t->pre, "%.*s", (int)pre.len, pre.ptr);
        }
        t->ignore_merges = pd->ignore_merges;
        if (pd->add_bos >= 0) t->add_bos = pd->add_bos;
    }

    if ((rc = read_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix))) return rc;
    *pdp = pd;
    return 0;
}

/* The vocabulary: each token's text, score and type. */
static int load_vocab(const gguf_file *f, tokenizer *t, const char *path) {
    int rc;
    const gguf_kv *ktok = NULL, *kscore = NULL, *ktype = NULL;
    rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &ktok);
    if (rc < 0) return rc;
    if (rc == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing tokenizer.ggml.tokens", path);
    if (ktok->n == 0 || ktok->n > (1u << 30)) {
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries (want 1..2^30)", path,
                                (unsigned long long)ktok->n);
    }
    t->n_vocab = (int32_t)ktok->n;
    const gguf_kv *kv = gguf_get_kv(f, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY || (kv->arr_type != GGUF_TYPE_FLOAT32 && kv->arr_type != GGUF_TYPE_INT32)) {
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: tokenizer.ggml.scores must be an array of f32 or i32", path);
        }
        if (kv->n != ktok->n) {
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries but there are %d tokens",
                                    path, (unsigned long long)kv->n, t->n_vocab);
        }
        kscore = kv;
    }
    kv = gguf_get_kv(f, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_INT32) {
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: tokenizer.ggml.token_type must be an array of i32", path);
        }
        if (kv->n != ktok->n) {
            return mome_seterr_code(MOME_ERR_FORMAT,
                                    "%s: tokenizer.ggml.token_type has %llu entries but there are %d tokens", path,
                                    (unsigned long long)kv->n, t->n_vocab);
        }
        ktype = kv;
    }

    t->tok = calloc((size_t)t->n_vocab, sizeof *t->tok);
    if (!t->tok) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    size_t n_empty = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (ktok->strs[i].len == 0) n_empty++;
        if (ktok->strs[i].len > (1u << 20)) {
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: token %d is %llu bytes long", path, i,
                                    (unsigned long long)ktok->strs[i].len);
        }
    }
    if (n_empty) {
        t->owned = malloc(n_empty * 24);
        if (!t->owned) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t owned_off = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        tok_entry *e = &t->tok[i];
        if (ktok->strs[i].len == 0) { /* llama.cpp: "[EMPTY_i]" */
            int l = snprintf(t->owned + owned_off, 24, "[EMPTY_%d]", i);
            e->text = t->owned + owned_off;
            e->len = (uint32_t)l;
            owned_off += 24;
        } else {
            e->text = ktok->strs[i].ptr;
            e->len = (uint32_t)ktok->strs[i].len;
        }
        if (kscore) {
            if (kscore->arr_type == GGUF_TYPE_FLOAT32) {
                float s;
                memcpy(&s, kscore->data + 4 * (size_t)i, 4);
                e->score = s;
            } else {
                int32_t s;
                memcpy(&s, kscore->data + 4 * (size_t)i, 4);
                e->score = (float)s;
            }
        }
        e->attr = TOK_ATTR_NORMAL;
        if (ktype) {
            int32_t ty;
            memcpy(&ty, ktype->data + 4 * (size_t)i, 4);
            switch (ty) {
            case 0: e->attr = TOK_ATTR_UNDEFINED; break;
            case 1: e->attr = TOK_ATTR_NORMAL; break;
            case 2: e->attr = TOK_ATTR_UNKNOWN; break;
            case 3: e->attr = TOK_ATTR_CONTROL; break;
            case 4: e->attr = TOK_ATTR_USER_DEFINED; break;
            case 5: e->attr = TOK_ATTR_UNUSED; break;
            case 6: e->attr = TOK_ATTR_BYTE; break;
            default: e->attr = TOK_ATTR_UNDEFINED; break;
            }
        }
    }
    return 0;
}

/* Text -> id, and the token of each byte. */
static int build_index(tokenizer *t) {
    /* text -> id (a later duplicate wins, as llama.cpp's token_to_id[word] = i) */
    {
        uint32_t cap = table_size((uint64_t)t->n_vocab);
        t->map.slots = malloc(cap * sizeof *t->map.slots);
        if (!t->map.slots) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        memset(t->map.slots, 0xff, cap * sizeof *t->map.slots);
        t->map.mask = cap - 1;
        for (int32_t i = 0; i < t->n_vocab; i++) {
            uint32_t h = (uint32_t)hash_bytes(t->tok[i].text, t->tok[i].len) & t->map.mask;
            for (;;) {
                int32_t id = t->map.slots[h];
                if (id < 0) {
                    t->map.slots[h] = i;
                    break;
                }
                if (t->tok[id].len == t->tok[i].len && memcmp(t->tok[id].text, t->tok[i].text, t->tok[i].len) == 0) {
                    t->map.slots[h] = i;
                    break;
                }
                h = (h + 1) & t->map.mask;
            }
        }
    }

    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->char_tok[b] = map_find(t, &c, 1);
        if (t->type == TOKENIZER_BPE) {
            char u[4];
            int l = cpt_to_utf8(g_byte2cpt[b], u);
            t->byte_tok[b] = map_find(t, u, (size_t)l);
        } else {
            char hx[8];
            snprintf(hx, sizeof hx, "<0x%02X>", b);
            int32_t id = map_find(t, hx, 6);
            t->byte_tok[b] = id >= 0 ? id : t->char_tok[b];
        }
    }
    return 0;
}

/* BPE: the merges (ranked pairs) and the pre-tokenizer's regexes. */
static int load_merges(const gguf_file *f, tokenizer *t, const char *path, const pre_def *pd) {
    if (t->type != TOKENIZER_BPE) return 0;
    int rc;
    const gguf_kv *km = NULL;
    rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &km);
    if (rc < 0) return rc;
    if (rc == 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: missing tokenizer.ggml.merges (required for gpt2)", path);
    if (km->n > (1u << 30)) return mome_seterr_code(MOME_ERR_FORMAT, "%s: too many merges", path);
    if ((rc = u64_init(&t->merges, km->n))) return rc;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (uint64_t i = 0; i < km->n; i++) {
        gguf_str w = km->strs[i];
        const char *sp = w.len > 1 ? memchr(w.ptr + 1, ' ', w.len - 1) : NULL;
        if (!sp) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: merge %llu '%.*s' is not of the form 'A B'", path,
                                  (unsigned long long)i, (int)(w.len > 64 ? 64 : w.len), w.ptr);
            free(tmp);
            return rc;
        }
        size_t la = (size_t)(sp - w.ptr), lb = w.len - la - 1;
        int32_t a = map_find(t, w.ptr, la), b = map_find(t, sp + 1, lb);
        if (a < 0 || b < 0) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: merge %llu '%.*s': '%.*s' is not a token", path,
                                  (unsigned long long)i, (int)(w.len > 64 ? 64 : w.len), w.ptr,
                                  (int)(a < 0 ? (la > 64 ? 64 : la) : (lb > 64 ? 64 : lb)),
                                  a < 0 ? w.ptr : sp + 1);
            free(tmp);
            return rc;
        }
        if (la + lb > tmp_cap) {
            tmp_cap = (la + lb) * 2 + 64;
            char *nt = realloc(tmp, tmp_cap);
            if (!nt) {
                free(tmp);
                return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
            }
            tmp = nt;
        }
        memcpy(tmp, w.ptr, la);
        memcpy(tmp + la, sp + 1, lb);
        int32_t res = map_find(t, tmp, la + lb);
        int found;
        /* first occurrence wins (std::map::emplace) */
        if (u64_put(&t->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, (int32_t)i, res, &found) < 0) {
            free(tmp);
            return MOME_ERR_NOMEM;
        }
    }
    free(tmp);
    return compile_regexes(t, pd);
}

/* The special ids: defaults (if in range), then metadata (if in range),
 * then auto-detection by text as llama.cpp (lowest id wins where it picks
 * one); the end-of-generation flags. */
static int load_special_ids(const gguf_file *f, tokenizer *t) {
    int rc;
    if ((rc = read_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->sep))) return rc;
    if ((rc = read_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad))) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos))) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos))) return rc;

    /* auto-detection by text, as llama.cpp (lowest id wins where it picks one) */
    {
        static const char *eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                          "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                          "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "<end_of_utterance>", NULL};
        static const char *fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
        static const char *fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
        static const char *fim_sep[] = {"<|file_sep|>", NULL};
        static const char *eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                          "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                                          "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                                          "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                          "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "[e~[", NULL};
        int32_t fpad = -1, frep = -1, fsep = -1;
        const char **lists[4] = {eot_names, fim_pad, fim_rep, fim_sep};
        int32_t *dst[4] = {&t->eot, &fpad, &frep, &fsep};
        for (int l = 0; l < 4; l++) {
            if (*dst[l] >= 0) continue;
            for (int32_t i = 0; i < t->n_vocab && *dst[l] < 0; i++)
                for (int k = 0; lists[l][k]; k++)
                    if (eq(&t->tok[i], lists[l][k])) {
                        *dst[l] = i;
                        t->tok[i].attr |= TOK_ATTR_CONTROL;
                        break;
                    }
        }
        if (t->eom < 0) {
            int32_t id = map_find(t, "<|eom_id|>", 10);
            if (id >= 0) {
                t->eom = id;
                t->tok[id].attr |= TOK_ATTR_CONTROL;
            }
        }
        int32_t fims[3] = {fpad, frep, fsep};
        for (int k = 0; k < 3; k++)
            if (fims[k] >= 0) t->tok[fims[k]].attr |= TOK_FLAG_EOG;
        for (int32_t i = 0; i < t->n_vocab; i++) {
            tok_entry *e = &t->tok[i];
            if (e->len < 3 || e->len > 40) continue;
            for (int k = 0; eog_names[k]; k++)
                if (eq(e, eog_names[k])) {
                    e->attr |= TOK_FLAG_EOG | TOK_ATTR_CONTROL;
                    break;
                }
            if (eq(e, "<|channel|>") || eq(e, "<|message|>") || eq(e, "<|start|>") || eq(e, "<|constrain|>"))
                e->attr = (uint8_t)((e->attr & TOK_FLAG_EOG) | TOK_ATTR_USER_DEFINED);
        }
        if (t->eos >= 0) t->tok[t->eos].attr |= TOK_FLAG_EOG;
        if (t->eot >= 0) t->tok[t->eot].attr |= TOK_FLAG_EOG;
        if (t->eom >= 0) t->tok[t->eom].attr |= TOK_FLAG_EOG;
    }
    return 0;
}

int tokenizer_load(const gguf_file *f, tokenizer **out) {
    *out = NULL;
    init_byte_map();
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    const char *path = f->path ? f->path : "(gguf)";
    const pre_def *pd = NULL;
    int rc = load_kind(f, t, path, &pd);
    if (!rc) rc = load_vocab(f, t, path);
    if (!rc) rc = build_index(t);
    if (!rc) rc = load_merges(f, t, path, pd);
    if (!rc) rc = load_special_ids(f, t);
    if (!rc) rc = build_special(t);
    if (rc) {
        tokenizer_free(t);
        return rc < 0 ? rc : MOME_ERR;
    }
    *out = t;
    return MOME_OK;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_regex; i++) pcre2_code_free(t->re[i]);
    free(t->tok);
    free(t->owned);
    free(t->map.slots);
    u64_free(&t->merges);
    u64_free(&t->trie);
    free(t->trie_tok);
    free(t->special);
    free(t);
}

int tokenizer_type(const tokenizer *t) { return t->type; }
const char *tokenizer_pre_name(const tokenizer *t) { return t->pre; }
int32_t tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const tokenizer *t) { return t->eot; }
int32_t tokenizer_unk(const tokenizer *t) { return t->unk; }
int32_t tokenizer_pad(const tokenizer *t) { return t->pad; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }
int tokenizer_add_eos(const tokenizer *t) { return t->add_eos; }

int tokenizer_is_eog(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tok[id].attr & TOK_FLAG_EOG) != 0;
}
int tokenizer_is_control(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->tok[id].attr & TOK_ATTR_CONTROL) != 0;
}
int tokenizer_attr(const tokenizer *t, int32_t id) {
    return (id >= 0 && id < t->n_vocab) ? (t->tok[id].attr & ~TOK_FLAG_EOG) : 0;
}
const char *tokenizer_text(const tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tok[id].len;
    return t->tok[id].text;
}
int32_t tokenizer_find(const tokenizer *t, const char *text) {
    return text ? map_find(t, text, strlen(text)) : -1;
}

/* ----------------------------------------------------------- SPM */

typedef struct sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes in the word buffer */
    int32_t id;        /* BPE only */
} sym;

typedef struct bigram {
    int32_t left, right;
    float score; /* SPM */
    int32_t rank; /* BPE */
    int32_t res;  /* BPE: merged token id or -1 */
    uint32_t size;
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
    int bpe;
} heap;

/* a before b (a has higher priority) */
static int bg_better(const heap *h, const bigram *a, const bigram *b) {
    if (h->bpe) return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        bigram *nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        h->v = nv;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bg_better(h, &b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bigram *best = &last;
        if (l < h->n && bg_better(h, &h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && bg_better(h, &h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct scratch {
    sym *syms;
    size_t n_syms, cap_syms;
    heap hp;
    char *buf;
    size_t cap_buf;
    ibuf pieces, pieces2;
} scratch;

static int syms_reserve(scratch *s, size_t n) {
    if (n <= s->cap_syms) return 0;
    size_t nc = s->cap_syms ? s->cap_syms : 64;
    while (nc < n) nc *= 2;
    sym *nv = realloc(s->syms, nc * sizeof *nv);
    if (!nv) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    s->syms = nv;
    s->cap_syms = nc;
    return 0;
}

static int buf_reserve(scratch *s, size_t n) {
    if (n <= s->cap_buf) return 0;
    size_t nc = s->cap_buf ? s->cap_buf : 256;
    while (nc < n) nc *= 2;
    char *nv = realloc(s->buf, nc);
    if (!nv) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    s->buf = nv;
    s->cap_buf = nc;
    return 0;
}

static int spm_try_add(const tokenizer *t, scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    const sym *L = &s->syms[left], *R = &s->syms[right];
    int32_t id = map_find(t, s->buf + L->start, L->n + R->n);
    if (id < 0) return 0;
    bigram b = {left, right, t->tok[id].score, 0, -1, L->n + R->n};
    return heap_push(&s->hp, b);
}

static void spm_emit_bytes(const tokenizer *t, const char *p, size_t n, outbuf *o) {
    for (size_t j = 0; j < n; j++) {
        int32_t id = t->byte_tok[(unsigned char)p[j]];
        if (id < 0) id = t->unk;
        if (id >= 0) out_push(o, id);
    }
}

/* text: already escaped (spaces -> U+2581), in s->buf[0..n) */
static int spm_tokenize(const tokenizer *t, scratch *s, size_t n, outbuf *o) {
    if (n == 0) return 0;
    if (syms_reserve(s, n)) return MOME_ERR_NOMEM;
    size_t cnt = 0, off = 0;
    while (off < n) {
        size_t l = utf8_len_lead((unsigned char)s->buf[off]);
        if (l > n - off) l = n - off;
        sym *y = &s->syms[cnt];
        y->start = (uint32_t)off;
        y->n = (uint32_t)l;
        y->prev = (int32_t)cnt - 1;
        off += l;
        y->next = off == n ? -1 : (int32_t)cnt + 1;
        y->id = -1;
        cnt++;
    }
    s->n_syms = cnt;
    s->hp.n = 0;
    s->hp.bpe = 0;
    for (size_t i = 1; i < cnt; i++)
        if (spm_try_add(t, s, (int32_t)i - 1, (int32_t)i)) return MOME_ERR_NOMEM;
    while (s->hp.n) {
        bigram b = heap_pop(&s->hp);
        sym *L = &s->syms[b.left], *R = &s->syms[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s->syms[R->next].prev = b.left;
        if (spm_try_add(t, s, L->prev, b.left)) return MOME_ERR_NOMEM;
        if (spm_try_add(t, s, b.left, L->next)) return MOME_ERR_NOMEM;
    }
    for (int32_t i = 0; i != -1; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        int32_t id = map_find(t, s->buf + y->start, y->n);
        if (id >= 0)
            out_push(o, id);
        else
            spm_emit_bytes(t, s->buf + y->start, y->n, o);
    }
    return 0;
}

/* ----------------------------------------------------------- BPE */

static int bpe_try_add(const tokenizer *t, scratch *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return 0;
    const sym *L = &s->syms[left], *R = &s->syms[right];
    if (L->id < 0 || R->id < 0) return 0;
    int32_t rank, res;
    if (!u64_get(&t->merges, ((uint64_t)(uint32_t)L->id << 32) | (uint32_t)R->id, &rank, &res)) return 0;
    bigram b = {left, right, 0.0f, rank, res, L->n + R->n};
    return heap_push(&s->hp, b);
}

/* one pre-tokenized word: bytes w[0..n) (valid-ish UTF-8, not yet byte-mapped) */
static int bpe_word(const tokenizer *t, scratch *s, const unsigned char *w, size_t n, outbuf *o) {
    if (n == 0) return 0;
    if (t->ignore_merges) {
        /* whole word as a token? (needs the byte-mapped text) */
        if (buf_reserve(s, 2 * n)) return MOME_ERR_NOMEM;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) m += (size_t)cpt_to_utf8(g_byte2cpt[w[i]], s->buf + m);
        int32_t id = map_find(t, s->buf, m);
        if (id >= 0) {
            out_push(o, id);
            return 0;
        }
    }
    if (syms_reserve(s, n)) return MOME_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        sym *y = &s->syms[i];
        y->start = (uint32_t)i;
        y->n = 1;
        y->prev = (int32_t)i - 1;
        y->next = i + 1 == n ? -1 : (int32_t)i + 1;
        y->id = t->byte_tok[w[i]];
    }
    s->n_syms = n;
    s->hp.n = 0;
    s->hp.bpe = 1;
    for (size_t i = 1; i < n; i++)
        if (bpe_try_add(t, s, (int32_t)i - 1, (int32_t)i)) return MOME_ERR_NOMEM;
    while (s->hp.n) {
        bigram b = heap_pop(&s->hp);
        sym *L = &s->syms[b.left], *R = &s->syms[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size || L->next != b.right) continue;
        L->n += R->n;
        R->n = 0;
        L->id = b.res;
        L->next = R->next;
        if (R->next >= 0) s->syms[R->next].prev = b.left;
        if (bpe_try_add(t, s, L->prev, b.left)) return MOME_ERR_NOMEM;
        if (bpe_try_add(t, s, b.left, L->next)) return MOME_ERR_NOMEM;
    }
    for (int32_t i = 0; i != -1; i = s->syms[i].next) {
        const sym *y = &s->syms[i];
        if (y->n == 0) continue;
        if (y->id >= 0) {
            out_push(o, y->id);
            continue;
        }
        /* not a token: llama.cpp looks up each byte of the mapped text alone */
        for (uint32_t j = 0; j < y->n; j++) {
            char u[4];
            int l = cpt_to_utf8(g_byte2cpt[w[y->start + j]], u);
            for (int k = 0; k < l; k++) {
                int32_t id = t->char_tok[(unsigned char)u[k]];
                if (id >= 0) out_push(o, id);
            }
        }
    }
    return 0;
}

/* Split pieces (pairs of byte offsets into view) with one regex, as
 * unicode_regex_split_stl: matches and the gaps between them. */
static int regex_split(const pcre2_code *re, pcre2_match_data *md, const char *view, const ibuf *in, ibuf *out) {
    out->n = 0;
    for (size_t p = 0; p + 1 < in->n; p += 2) {
        int32_t a = in->v[p], b = in->v[p + 1];
        PCRE2_SPTR subj = (PCRE2_SPTR)(view + a);
        size_t len = (size_t)(b - a), off = 0, prev = 0;
        while (off < len) {
            int rc = pcre2_match(re, subj, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return mome_seterr("tokenizer: regex match failed: %s", (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match: skip one character */
                off = ms + 1;
                while (off < len && ((unsigned char)subj[off] & 0xc0) == 0x80) off++;
                continue;
            }
            if (ms > prev && (ibuf_push(out, a + (int32_t)prev) || ibuf_push(out, a + (int32_t)ms)))
                return MOME_ERR_NOMEM;
            if (ibuf_push(out, a + (int32_t)ms) || ibuf_push(out, a + (int32_t)me)) return MOME_ERR_NOMEM;
            prev = off = me;
        }
        if (prev < len && (ibuf_push(out, a + (int32_t)prev) || ibuf_push(out, b))) return MOME_ERR_NOMEM;
    }
    return 0;
}

static int bpe_fragment(const tokenizer *t, scratch *s, const char *text, size_t len, outbuf *o) {
    if (len == 0) return 0;
    /* decode as llama.cpp (invalid bytes -> U+FFFD), re-encode: enc is what the
     * pieces are made of, view the same with surrogates as U+FFFD for PCRE2 */
    size_t cap = 3 * len + 1; /* each input byte yields at most 3 output bytes */
    char *enc = malloc(cap), *view = NULL;
    if (!enc) return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    size_t m = 0, off = 0;
    int has_sur = 0;
    while (off < len) {
        uint32_t c = cpt_from_utf8((const unsigned char *)text, len, &off);
        if (c >= 0xD800 && c <= 0xDFFF) has_sur = 1;
        m += (size_t)cpt_to_utf8(c, enc + m);
    }
    int rc = 0;
    if (has_sur) {
        view = malloc(m + 1);
        if (!view) {
            free(enc);
            return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        }
        memcpy(view, enc, m);
        for (size_t i = 0; i + 2 < m; i++) {
            unsigned char c0 = (unsigned char)view[i], c1 = (unsigned char)view[i + 1];
            if (c0 == 0xED && c1 >= 0xA0) {
                view[i] = (char)0xEF, view[i + 1] = (char)0xBF, view[i + 2] = (char)0xBD;
                i += 2;
            } else if (c0 >= 0xC0) {
                i += utf8_len_lead(c0) - 1;
            }
        }
    }
    const char *v = view ? view : enc;
    if (m > (size_t)INT32_MAX) {
        rc = mome_seterr_code(MOME_ERR_ARG, "tokenizer: text too long");
        goto done;
    }
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md) {
        rc = mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    s->pieces.n = 0;
    if (ibuf_push(&s->pieces, 0) || ibuf_push(&s->pieces, (int32_t)m)) {
        rc = MOME_ERR_NOMEM;
        pcre2_match_data_free(md);
        goto done;
    }
    for (int r = 0; r < t->n_regex; r++) {
        if ((rc = regex_split(t->re[r], md, v, &s->pieces, &s->pieces2))) break;
        ibuf tmp = s->pieces;
        s->pieces = s->pieces2;
        s->pieces2 = tmp;
    }
    pcre2_match_data_free(md);
    if (rc) goto done;
    for (size_t p = 0; p + 1 < s->pieces.n; p += 2) {
        int32_t a = s->pieces.v[p], b = s->pieces.v[p + 1];
        if ((rc = bpe_word(t, s, (const unsigned char *)enc + a, (size_t)(b - a), o))) break;
    }
done:
    free(enc);
    free(view);
    return rc;
}

/* ----------------------------------------------------------- encode */

typedef struct frag {
    size_t a, b;   /* raw text [a, b) when id < 0 */
    int32_t id;    /* special token */
} frag;

static int cmp_occ(const void *x, const void *y) {
    const int64_t *a = x, *b = y;
    return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : (a[1] < b[1] ? -1 : a[1] > b[1]);
}

/* tokenizer_st_partition: for each special token, longest first, split every
 * raw fragment at its (non-overlapping, left to right) occurrences. Done here
 * by finding all occurrences with the trie and accepting them in that order. */
static int partition(const tokenizer *t, const char *text, size_t len, int parse_special, frag **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int64_t *occ = NULL; /* (priority, pos) pairs */
    size_t n_occ = 0, cap_occ = 0;
    if (t->n_special && len) {
        for (size_t i = 0; i < len; i++) {
            uint32_t node = 0;
            for (size_t j = i; j < len; j++) {
                int32_t child;
                if (!u64_get(&t->trie, ((uint64_t)node << 8) | (unsigned char)text[j], &child, NULL)) break;
                node = (uint32_t)child;
                int32_t k = t->trie_tok[node];
                if (k < 0) continue;
                int32_t id = t->special[k];
                if (!parse_special && (t->tok[id].attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
                if (n_occ == cap_occ) {
                    cap_occ = cap_occ ? cap_occ * 2 : 16;
                    int64_t *no = realloc(occ, cap_occ * 2 * sizeof *no);
                    if (!no) {
                        free(occ);
                        return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
                    }
                    occ = no;
                }
                occ[2 * n_occ] = k; /* priority: longest first */
                occ[2 * n_occ + 1] = (int64_t)i;
                n_occ++;
            }
        }
    }
    if (n_occ) qsort(occ, n_occ, 2 * sizeof *occ, cmp_occ);
    /* accepted matches: covered[] marks bytes taken by accepted specials */
    unsigned char *covered = NULL;
    int32_t *start_id = NULL;
    size_t n_acc = 0;
    if (n_occ) {
        covered = calloc(len, 1);
        start_id = malloc(len * sizeof *start_id);
        if (!covered || !start_id) {
            free(occ), free(covered), free(start_id);
            return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
        }
        for (size_t k = 0; k < n_occ; k++) {
            int32_t id = t->special[occ[2 * k]];
            size_t p = (size_t)occ[2 * k + 1], l = t->tok[id].len, j;
            for (j = 0; j < l && !covered[p + j]; j++) {}
            if (j < l) continue;
            memset(covered + p, 1, l);
            covered[p] = 2;
            start_id[p] = id;
            n_acc++;
        }
    }
    frag *fr = malloc((2 * n_acc + 1) * sizeof *fr);
    if (!fr) {
        free(occ), free(covered), free(start_id);
        return mome_seterr_code(MOME_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t nf = 0, i = 0, raw = 0;
    while (i < len) {
        if (covered && covered[i] == 2) {
            if (i > raw) fr[nf++] = (frag){raw, i, -1};
            int32_t id = start_id[i];
            fr[nf++] = (frag){i, i + t->tok[id].len, id};
            i += t->tok[id].len;
            raw = i;
        } else {
            i++;
        }
    }
    if (len > raw) fr[nf++] = (frag){raw, len, -1};
    free(occ), free(covered), free(start_id);
    *out = fr;
    *n_out = nf;
    return 0;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special, int parse_special,
                     int32_t *ids, int cap) {
    if (!t || (!text && len) || cap < 0 || (cap > 0 && !ids))
        return mome_seterr_code(MOME_ERR_ARG, "tokenizer_encode: bad arguments");
    if (len > (size_t)(INT32_MAX / 4))
        return mome_seterr_code(MOME_ERR_ARG, "tokenizer_encode: text of %zu bytes is too long", len);
    outbuf o = {ids, cap, 0};
    frag *fr = NULL;
    size_t nf = 0;
    int rc = partition(t, text, len, parse_special, &fr, &nf);
    if (rc) return rc;
    scratch s;
    memset(&s, 0, sizeof s);

    if (add_special && t->add_bos && t->bos >= 0) out_push(&o, t->bos);
    if (t->type == TOKENIZER_SPM) {
        int prev_special = 1;
        for (size_t k = 0; k < nf && !rc; k++) {
            if (fr[k].id >= 0) {
                out_push(&o, fr[k].id);
                prev_special = 1;
                continue;
            }
            size_t n = fr[k].b - fr[k].a, m = 0;
            if ((rc = buf_reserve(&s, 3 * (n + 1)))) break;
            if (t->add_space_prefix && prev_special) {
                memcpy(s.buf, "\xe2\x96\x81", 3);
                m = 3;
            }
            for (size_t j = fr[k].a; j < fr[k].b; j++) {
                if (text[j] == ' ') {
                    memcpy(s.buf + m, "\xe2\x96\x81", 3);
                    m += 3;
                } else {
                    s.buf[m++] = text[j];
                }
            }
            rc = spm_tokenize(t, &s, m, &o);
            prev_special = 0;
        }
    } else {
        for (size_t k = 0; k < nf && !rc; k++) {
            if (fr[k].id >= 0)
                out_push(&o, fr[k].id);
            else
                rc = bpe_fragment(t, &s, text + fr[k].a, fr[k].b - fr[k].a, &o);
        }
    }
    if (!rc && add_special && t->add_eos && t->eos >= 0) out_push(&o, t->eos);

    free(fr);
    free(s.syms);
    free(s.hp.v);
    free(s.buf);
    free(s.pieces.v);
    free(s.pieces2.v);
    if (rc) return rc;
    if (o.n > INT32_MAX) return mome_seterr_code(MOME_ERR_ARG, "tokenizer_encode: too many tokens");
    return (int)o.n;
}

/* ----------------------------------------------------------- decode */

static int put(char *buf, int cap, int n, const char *p, size_t l) {
    if ((size_t)n + l <= (size_t)cap) memcpy(buf + n, p, l);
    return n + (int)l;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tokenizer_token_to_piece(const tokenizer *t, int32_t id, char *buf, int cap, int render_special) {
    if (!t || id < 0 || id >= t->n_vocab)
        return mome_seterr_code(MOME_ERR_ARG, "token_to_piece: token id %d out of range", (int)id);
    if (cap < 0 || (cap > 0 && !buf)) return mome_seterr_code(MOME_ERR_ARG, "token_to_piece: bad buffer");
    const tok_entry *e = &t->tok[id];
    int attr = e->attr & ~TOK_FLAG_EOG;
    if (attr & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL)) {
        if (!render_special) return 0;
        return put(buf, cap, 0, e->text, e->len);
    }
    if (attr & TOK_ATTR_USER_DEFINED) return put(buf, cap, 0, e->text, e->len);
    if (attr & TOK_ATTR_BYTE) {
        if (e->len == 6 && memcmp(e->text, "<0x", 3) == 0 && e->text[5] == '>' && hexv(e->text[3]) >= 0 &&
            hexv(e->text[4]) >= 0) {
            char c = (char)(hexv(e->text[3]) * 16 + hexv(e->text[4]));
            return put(buf, cap, 0, &c, 1);
        }
        return put(buf, cap, 0, e->text, e->len);
    }
    if (!(attr & TOK_ATTR_NORMAL)) return 0; /* unused / undefined: suppressed like llama.cpp */
    int n = 0;
    if (t->type == TOKENIZER_SPM) {
        size_t i = 0, last = 0;
        while (i < e->len) {
            if (i + 3 <= e->len && memcmp(e->text + i, "\xe2\x96\x81", 3) == 0) {
                n = put(buf, cap, n, e->text + last, i - last);
                n = put(buf, cap, n, " ", 1);
                i += 3;
                last = i;
            } else {
                i++;
            }
        }
        return put(buf, cap, n, e->text + last, e->len - last);
    }
    size_t off = 0;
    while (off < e->len) {
        size_t o0 = off;
        uint32_t c = cpt_from_utf8((const unsigned char *)e->text, e->len, &off);
        if (c < 324 && g_cpt2byte[c] >= 0) {
            char b = (char)g_cpt2byte[c];
            n = put(buf, cap, n, &b, 1);
        } else {
            n = put(buf, cap, n, e->text + o0, off - o0);
        }
    }
    return n;
}
