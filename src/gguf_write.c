/* gguf_write.c - GGUF v3 writer. See gguf_write.h for the contract.
 *
 * Each key/value is kept fully serialized (key string, type, value) so the
 * header is a concatenation; keys and tensor names are found through small
 * open-addressing hash tables, so building files with many entries stays
 * linear. Tensor offsets are assigned at write time (the alignment may change
 * until then). Output goes through a sink that stages small pieces (padding,
 * small tensors) in a 1 MiB buffer and hands large tensors straight to
 * write(2) from the caller's memory.
 */
#include "gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"
#include "util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c assumes a little-endian host"
#endif

#define W_MAX_NAME 63
#define W_MAX_ALIGN (1u << 20)

typedef struct wkv {
    char *key;          /* NUL-terminated copy (may contain NULs from add_kv) */
    size_t key_len;
    uint32_t type;
    uint8_t *blob;      /* serialized: u64 len, key, u32 type, value */
    size_t blob_len;
} wkv;

typedef struct wtensor {
    char *name;
    size_t name_len;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    const void *data;   /* NULL: zeros */
    void *owned;        /* copy owned by the writer (COPY mode) */
    size_t nbytes;
} wtensor;

/* open-addressing table of (index + 1), 0 = empty */
typedef struct htab {
    uint32_t *slot;
    size_t cap;         /* power of two or 0 */
} htab;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    htab hkv, ht;
    uint32_t alignment;
    int do_fsync;
};

/* ------------------------------------------------------------------ utils */

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static int ht_grow(htab *h, size_t need, const char *(*name_at)(const gguf_writer *, size_t, size_t *),
                   const gguf_writer *w);

static const char *kv_name_at(const gguf_writer *w, size_t i, size_t *len) {
    *len = w->kv[i].key_len;
    return w->kv[i].key;
}
static const char *t_name_at(const gguf_writer *w, size_t i, size_t *len) {
    *len = w->t[i].name_len;
    return w->t[i].name;
}

/* Index of name or -1. */
static int64_t ht_find(const htab *h, const char *s, size_t n,
                       const char *(*name_at)(const gguf_writer *, size_t, size_t *),
                       const gguf_writer *w) {
    if (h->cap == 0) return -1;
    size_t m = h->cap - 1;
    for (size_t i = (size_t)hash_bytes(s, n) & m;; i = (i + 1) & m) {
        uint32_t v = h->slot[i];
        if (v == 0) return -1;
        size_t len;
        const char *x = name_at(w, v - 1, &len);
        if (len == n && memcmp(x, s, n) == 0) return (int64_t)(v - 1);
    }
}

static void ht_put(htab *h, const char *s, size_t n, size_t idx) {
    size_t m = h->cap - 1;
    size_t i = (size_t)hash_bytes(s, n) & m;
    while (h->slot[i]) i = (i + 1) & m;
    h->slot[i] = (uint32_t)(idx + 1);
}

/* Make room for `need` entries (load <= 1/2), rehashing all current ones. */
static int ht_grow(htab *h, size_t need, const char *(*name_at)(const gguf_writer *, size_t, size_t *),
                   const gguf_writer *w) {
    if (need >= UINT32_MAX / 4) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: too many entries");
    if (h->cap && need * 2 <= h->cap) return 0;
    size_t cap = h->cap ? h->cap : 16;
    while (need * 2 > cap) cap *= 2;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s) return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory");
    free(h->slot);
    h->slot = s;
    h->cap = cap;
    size_t cnt = name_at == kv_name_at ? w->n_kv : w->n_t;
    for (size_t i = 0; i < cnt; i++) {
        size_t len;
        const char *x = name_at(w, i, &len);
        ht_put(h, x, len, i);
    }
    return 0;
}

static void ht_rebuild(htab *h, const char *(*name_at)(const gguf_writer *, size_t, size_t *),
                       const gguf_writer *w, size_t cnt) {
    if (!h->cap) return;
    memset(h->slot, 0, h->cap * sizeof *h->slot);
    for (size_t i = 0; i < cnt; i++) {
        size_t len;
        const char *x = name_at(w, i, &len);
        ht_put(h, x, len, i);
    }
}

static size_t vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static size_t pad_to(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* growable byte buffer for serializing one kv */
typedef struct bbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} bbuf;

static void bb_put(bbuf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (n > SIZE_MAX - b->len) { b->oom = 1; return; }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void bb_u32(bbuf *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bbuf *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bbuf *b, const char *s, size_t n) {
    bb_u64(b, (uint64_t)n);
    bb_put(b, s, n);
}

/* --------------------------------------------------------------- lifetime */

int gguf_writer_init(gguf_writer **out) {
    *out = NULL;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory");
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    w->do_fsync = 1;
    *out = w;
    return MOME_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->kv);
    free(w->t);
    free(w->hkv.slot);
    free(w->ht.slot);
    free(w);
}

void gguf_writer_set_fsync(gguf_writer *w, int on) { w->do_fsync = on != 0; }
uint32_t gguf_writer_alignment(const gguf_writer *w) { return w->alignment; }
uint64_t gguf_writer_n_kv(const gguf_writer *w) { return w->n_kv; }
uint64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_t; }

/* -------------------------------------------------------------- key/values */

static int is_alignment_key(const char *key, size_t n) {
    return n == 17 && memcmp(key, "general.alignment", 17) == 0;
}

static int check_alignment(uint32_t a) {
    if (a == 0 || (a & (a - 1)) != 0 || a > W_MAX_ALIGN)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: alignment %u is not a power of two <= 1 MiB", a);
    return 0;
}

/* Takes ownership of b->p (freed on failure). value bytes follow the type in
 * b; key and type are prepended here. */
static int put_kv(gguf_writer *w, const char *key, size_t key_len, uint32_t type, bbuf *val) {
    int rc;
    if (val->oom) {
        free(val->p);
        return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory (value of '%.*s')",
                                (int)(key_len > 200 ? 200 : key_len), key);
    }
    if (key_len == 0) {
        free(val->p);
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: empty key name");
    }
    if (is_alignment_key(key, key_len)) {
        uint32_t a;
        if (type != GGUF_TYPE_UINT32) {
            free(val->p);
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: general.alignment must be u32, not %s",
                                    gguf_type_name(type));
        }
        memcpy(&a, val->p, 4);
        if ((rc = check_alignment(a)) != 0) { free(val->p); return rc; }
    }
    bbuf b = {0};
    bb_str(&b, key, key_len);
    bb_u32(&b, type);
    bb_put(&b, val->p, val->len);
    free(val->p);
    char *k = malloc(key_len + 1);
    if (b.oom || !k) {
        free(b.p);
        free(k);
        return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory");
    }
    memcpy(k, key, key_len);
    k[key_len] = 0;

    int64_t at = ht_find(&w->hkv, key, key_len, kv_name_at, w);
    if (at >= 0) { /* replace in place */
        wkv *e = &w->kv[at];
        free(e->blob);
        free(k);
        e->blob = b.p;
        e->blob_len = b.len;
        e->type = type;
    } else {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
            wkv *n = realloc(w->kv, cap * sizeof *n);
            if (!n) { free(b.p); free(k); return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory"); }
            w->kv = n;
            w->cap_kv = cap;
        }
        if ((rc = ht_grow(&w->hkv, w->n_kv + 1, kv_name_at, w)) != 0) { free(b.p); free(k); return rc; }
        w->kv[w->n_kv] = (wkv){k, key_len, type, b.p, b.len};
        ht_put(&w->hkv, k, key_len, w->n_kv);
        w->n_kv++;
    }
    if (is_alignment_key(key, key_len)) memcpy(&w->alignment, b.p + 8 + key_len + 4, 4);
    return MOME_OK;
}

static int put_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    if (!key) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL key");
    bbuf b = {0};
    bb_put(&b, v, vtype_size(type));
    return put_kv(w, key, strlen(key), type, &b);
}

int gguf_writer_add_u8(gguf_writer *w, const char *key, uint8_t v) { return put_scalar(w, key, GGUF_TYPE_UINT8, &v); }
int gguf_writer_add_i8(gguf_writer *w, const char *key, int8_t v) { return put_scalar(w, key, GGUF_TYPE_INT8, &v); }
int gguf_writer_add_u16(gguf_writer *w, const char *key, uint16_t v) { return put_scalar(w, key, GGUF_TYPE_UINT16, &v); }
int gguf_writer_add_i16(gguf_writer *w, const char *key, int16_t v) { return put_scalar(w, key, GGUF_TYPE_INT16, &v); }
int gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) { return put_scalar(w, key, GGUF_TYPE_UINT32, &v); }
int gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, GGUF_TYPE_INT32, &v); }
int gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, GGUF_TYPE_UINT64, &v); }
int gguf_writer_add_i64(gguf_writer *w, const char *key, int64_t v) { return put_scalar(w, key, GGUF_TYPE_INT64, &v); }
int gguf_writer_add_f32(gguf_writer *w, const char *key, float v) { return put_scalar(w, key, GGUF_TYPE_FLOAT32, &v); }
int gguf_writer_add_f64(gguf_writer *w, const char *key, double v) { return put_scalar(w, key, GGUF_TYPE_FLOAT64, &v); }
int gguf_writer_add_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return put_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

int gguf_writer_set_alignment(gguf_writer *w, uint32_t alignment) {
    return gguf_writer_add_u32(w, "general.alignment", alignment);
}

int gguf_writer_add_strn(gguf_writer *w, const char *key, const char *s, size_t len) {
    if (!key) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL key");
    if (!s && len) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: '%s': NULL string", key);
    bbuf b = {0};
    bb_str(&b, s, len);
    return put_kv(w, key, strlen(key), GGUF_TYPE_STRING, &b);
}

int gguf_writer_add_str(gguf_writer *w, const char *key, const char *s) {
    if (!s) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: '%s': NULL string", key ? key : "(null)");
    return gguf_writer_add_strn(w, key, s, strlen(s));
}

static int arr_num(gguf_writer *w, const char *key, size_t key_len, uint32_t et, const void *data, size_t n) {
    size_t sz = vtype_size(et), nb;
    if (sz == 0)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: '%.*s': array element type %u is not numeric",
                                (int)(key_len > 200 ? 200 : key_len), key, et);
    if (mome_mul_size(n, sz, &nb) || nb > SIZE_MAX - 64)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: array too large");
    if (!data && n) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL array data");
    if (et == GGUF_TYPE_BOOL)
        for (size_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return mome_seterr_code(MOME_ERR_ARG, "gguf writer: bool array element %zu is %u (must be 0 or 1)",
                                        i, ((const uint8_t *)data)[i]);
    bbuf b = {0};
    bb_u32(&b, et);
    bb_u64(&b, (uint64_t)n);
    bb_put(&b, data, nb);
    return put_kv(w, key, key_len, GGUF_TYPE_ARRAY, &b);
}

int gguf_writer_add_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, size_t n) {
    if (!key) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL key");
    return arr_num(w, key, strlen(key), elem_type, data, n);
}

static int arr_strv(gguf_writer *w, const char *key, size_t key_len, const gguf_str *v, size_t n) {
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, (uint64_t)n);
    for (size_t i = 0; i < n; i++) {
        if (v[i].len > SIZE_MAX / 2) { b.oom = 1; break; }
        bb_str(&b, v[i].ptr, (size_t)v[i].len);
    }
    return put_kv(w, key, key_len, GGUF_TYPE_ARRAY, &b);
}

int gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                            const size_t *lens, size_t n) {
    if (!key) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL key");
    if (!strs && n) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: '%s': NULL string array", key);
    bbuf b = {0};
    bb_u32(&b, GGUF_TYPE_STRING);
    bb_u64(&b, (uint64_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : (strs[i] ? strlen(strs[i]) : 0);
        if (!strs[i] && len) {
            free(b.p);
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: '%s': string %zu is NULL", key, i);
        }
        bb_str(&b, strs[i], len);
    }
    return put_kv(w, key, strlen(key), GGUF_TYPE_ARRAY, &b);
}

int gguf_writer_add_kv(gguf_writer *w, const gguf_kv *kv) {
    if (!kv || (!kv->key.ptr && kv->key.len)) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL kv");
    const char *key = kv->key.ptr;
    size_t kl = (size_t)kv->key.len;
    bbuf b = {0};
    switch (kv->type) {
    case GGUF_TYPE_STRING:
        bb_str(&b, kv->strs[0].ptr, (size_t)kv->strs[0].len);
        return put_kv(w, key, kl, GGUF_TYPE_STRING, &b);
    case GGUF_TYPE_ARRAY:
        if (kv->n > SIZE_MAX / 16) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: array too large");
        if (kv->arr_type == GGUF_TYPE_STRING) return arr_strv(w, key, kl, kv->strs, (size_t)kv->n);
        return arr_num(w, key, kl, kv->arr_type, kv->data, (size_t)kv->n);
    default:
        if (vtype_size(kv->type) == 0)
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: unknown value type %u", kv->type);
        bb_put(&b, kv->data, vtype_size(kv->type));
        return put_kv(w, key, kl, kv->type, &b);
    }
}

int gguf_writer_remove_key(gguf_writer *w, const char *key) {
    if (!key) return 0;
    size_t n = strlen(key);
    int64_t at = ht_find(&w->hkv, key, n, kv_name_at, w);
    if (at < 0) return 0;
    free(w->kv[at].key);
    free(w->kv[at].blob);
    memmove(&w->kv[at], &w->kv[at + 1], (w->n_kv - (size_t)at - 1) * sizeof *w->kv);
    w->n_kv--;
    ht_rebuild(&w->hkv, kv_name_at, w, w->n_kv);
    if (is_alignment_key(key, n)) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return 1;
}

/* ----------------------------------------------------------------- tensors */

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne,
                           uint32_t type, const void *data, size_t nbytes,
                           enum gguf_writer_data_mode mode) {
    int rc;
    if (!name) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: NULL tensor name");
    size_t nl = strlen(name);
    if (nl == 0 || nl > W_MAX_NAME)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor name '%.80s' is %zu bytes (1..%d allowed)",
                                name, nl, W_MAX_NAME);
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS || !ne)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': %u dimensions (1..%d allowed)",
                                name, n_dims, GGUF_MAX_DIMS);
    const quant_traits *tr = quant_get_traits(type);
    if (!tr || tr->blck <= 0 || tr->type_size == 0)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': unknown type %u", name, type);
    size_t rows = 1, size;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': dimension %u is negative", name, d);
        if (d > 0 && mome_mul_size(rows, (size_t)ne[d], &rows))
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
    }
    if (ne[0] % tr->blck != 0)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': row length %" PRId64
                                " is not a multiple of the %s block size %" PRId64,
                                name, ne[0], tr->name, tr->blck);
    if (mome_mul_size((size_t)(ne[0] / tr->blck), tr->type_size, &size) || mome_mul_size(size, rows, &size) ||
        size > SIZE_MAX / 2)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': size overflows", name);
    {   /* the reader also bounds the element count by INT64_MAX */
        int64_t nel = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            if (ne[d] != 0 && nel > INT64_MAX / ne[d])
                return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': element count overflows", name);
            nel *= ne[d];
        }
    }
    if (size != nbytes)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor '%s': %zu bytes given, shape and type %s need %zu",
                                name, nbytes, tr->name, size);
    if (ht_find(&w->ht, name, nl, t_name_at, w) >= 0)
        return mome_seterr_code(MOME_ERR_ARG, "gguf writer: duplicate tensor name '%s'", name);

    wtensor t = {0};
    t.name = strdup(name);
    if (!t.name) return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory");
    t.name_len = nl;
    t.n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    t.type = type;
    t.nbytes = nbytes;
    t.data = data;
    if (data && mode == GGUF_WRITER_COPY) {
        t.owned = malloc(nbytes ? nbytes : 1);
        if (!t.owned) {
            free(t.name);
            return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory copying tensor '%s' (%zu bytes)",
                                    name, nbytes);
        }
        memcpy(t.owned, data, nbytes);
        t.data = t.owned;
    }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        wtensor *n = realloc(w->t, cap * sizeof *n);
        if (!n) {
            free(t.name);
            free(t.owned);
            return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory");
        }
        w->t = n;
        w->cap_t = cap;
    }
    if ((rc = ht_grow(&w->ht, w->n_t + 1, t_name_at, w)) != 0) {
        free(t.name);
        free(t.owned);
        return rc;
    }
    w->t[w->n_t] = t;
    ht_put(&w->ht, t.name, nl, w->n_t);
    w->n_t++;
    return MOME_OK;
}

/* ------------------------------------------------------------------ layout */

static size_t header_size(const gguf_writer *w) {
    size_t n = 4 + 4 + 8 + 8;
    for (size_t i = 0; i < w->n_kv; i++) n += w->kv[i].blob_len;
    for (size_t i = 0; i < w->n_t; i++) n += 8 + w->t[i].name_len + 4 + 8 * (size_t)w->t[i].n_dims + 4 + 8;
    return n;
}

/* Serialized header (without the padding), malloc'd; offsets computed here. */
static int build_header(const gguf_writer *w, uint8_t **out, size_t *out_len, size_t *data_size) {
    bbuf b = {0};
    size_t hs = header_size(w);
    b.p = malloc(hs);
    if (!b.p) return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory (header of %zu bytes)", hs);
    b.cap = hs;
    bb_put(&b, "GGUF", 4);
    bb_u32(&b, 3);
    bb_u64(&b, (uint64_t)w->n_t);
    bb_u64(&b, (uint64_t)w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) bb_put(&b, w->kv[i].blob, w->kv[i].blob_len);
    size_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        bb_str(&b, t->name, t->name_len);
        bb_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) bb_u64(&b, (uint64_t)t->ne[d]);
        bb_u32(&b, t->type);
        bb_u64(&b, (uint64_t)off);
        size_t p = pad_to(t->nbytes, w->alignment);
        if (p < t->nbytes || off > SIZE_MAX / 2 - p) {
            free(b.p);
            return mome_seterr_code(MOME_ERR_ARG, "gguf writer: tensor data too large");
        }
        off += p;
    }
    MOME_ASSERT(!b.oom && b.len == hs);
    *out = b.p;
    *out_len = b.len;
    *data_size = off;
    return 0;
}

size_t gguf_writer_size(const gguf_writer *w) {
    size_t n = pad_to(header_size(w), w->alignment);
    for (size_t i = 0; i < w->n_t; i++) n += pad_to(w->t[i].nbytes, w->alignment);
    return n;
}

/* ------------------------------------------------------------------- sinks */

typedef struct sink {
    int fd;              /* >= 0: file; else memory */
    const char *name;    /* for messages */
    uint8_t *mem;        /* memory sink: destination */
    size_t pos, cap;     /* memory sink position/capacity */
    uint8_t *buf;        /* file sink: staging buffer */
    size_t blen, bcap;
} sink;

static int write_all(sink *s, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t chunk = n > (8u << 20) ? (8u << 20) : n;
        ssize_t r = write(s->fd, b, chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            return mome_seterr_code(MOME_ERR_IO, "%s: write failed: %s", s->name, strerror(errno));
        }
        if (r == 0) return mome_seterr_code(MOME_ERR_IO, "%s: write failed: wrote 0 bytes", s->name);
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static int sink_flush(sink *s) {
    if (s->fd < 0 || s->blen == 0) return 0;
    int rc = write_all(s, s->buf, s->blen);
    s->blen = 0;
    return rc;
}

/* p == NULL: n zero bytes */
static int sink_put(sink *s, const void *p, size_t n) {
    if (s->fd < 0) {
        MOME_ASSERT(n <= s->cap - s->pos);
        if (p) memcpy(s->mem + s->pos, p, n);
        else memset(s->mem + s->pos, 0, n);
        s->pos += n;
        return 0;
    }
    if (p && n >= s->bcap / 2) { /* large: straight from the caller's memory */
        if (sink_flush(s)) return -1;
        return write_all(s, p, n);
    }
    while (n > 0) {
        if (s->blen == s->bcap && sink_flush(s)) return -1;
        size_t k = s->bcap - s->blen < n ? s->bcap - s->blen : n;
        if (p) {
            memcpy(s->buf + s->blen, p, k);
            p = (const uint8_t *)p + k;
        } else {
            memset(s->buf + s->blen, 0, k);
        }
        s->blen += k;
        n -= k;
    }
    return 0;
}

static int emit(const gguf_writer *w, sink *s) {
    uint8_t *hdr = NULL;
    size_t hl = 0, ds = 0;
    if (build_header(w, &hdr, &hl, &ds)) return -1;
    int rc = sink_put(s, hdr, hl);
    free(hdr);
    if (rc) return -1;
    size_t a = w->alignment;
    if (sink_put(s, NULL, pad_to(hl, a) - hl)) return -1;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (sink_put(s, t->data, t->nbytes)) return -1;
        if (sink_put(s, NULL, pad_to(t->nbytes, a) - t->nbytes)) return -1;
    }
    return sink_flush(s);
}

int gguf_writer_write_buffer(const gguf_writer *w, void **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    size_t total = gguf_writer_size(w);
    uint8_t *m = malloc(total ? total : 1);
    if (!m) return mome_seterr_code(MOME_ERR_NOMEM, "gguf writer: out of memory (%zu bytes)", total);
    sink s = {.fd = -1, .name = "<buffer>", .mem = m, .cap = total};
    if (emit(w, &s)) {
        free(m);
        return MOME_ERR;
    }
    MOME_ASSERT(s.pos == total);
    *buf = m;
    *size = total;
    return MOME_OK;
}

/* fsync the directory holding path (so the rename is durable). */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int rc = mome_seterr_code(MOME_ERR_IO, "%s: cannot open directory %s to sync it: %s", path, dir,
                                  strerror(errno));
        free(dir);
        return rc;
    }
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = mome_seterr_code(MOME_ERR_IO, "%s: fsync of directory %s failed: %s", path, dir, strerror(errno));
    close(fd);
    free(dir);
    return rc;
}

int gguf_writer_write_file(const gguf_writer *w, const char *path) {
    if (!path || !*path) return mome_seterr_code(MOME_ERR_ARG, "gguf writer: empty output path");
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 48);
    if (!tmp) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    int fd = -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        if (attempt == 0) snprintf(tmp, pl + 48, "%s.tmp.%ld", path, (long)getpid());
        else snprintf(tmp, pl + 48, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) {
        int rc = mome_seterr_code(MOME_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    sink s = {.fd = fd, .name = path, .bcap = 1u << 20};
    s.buf = malloc(s.bcap);
    int rc = MOME_OK;
    if (!s.buf) rc = mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", path);
    else if (emit(w, &s)) rc = MOME_ERR_IO;
    free(s.buf);
    if (rc == MOME_OK && w->do_fsync && fsync(fd) != 0)
        rc = mome_seterr_code(MOME_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == MOME_OK)
        rc = mome_seterr_code(MOME_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (rc == MOME_OK && rename(tmp, path) != 0)
        rc = mome_seterr_code(MOME_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (rc != MOME_OK) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    if (w->do_fsync) return sync_dir(path);
    return MOME_OK;
}
