/* gguf.c - GGUF reader. See gguf.h for the contract.
 *
 * Parsing is one forward pass over the header with a cursor that knows how
 * many bytes remain; every read goes through cur_need(), so nothing is read
 * past the end. Counts from the file are bounded by the bytes that would be
 * needed to hold them before anything is allocated (a kv needs at least 13
 * bytes, a tensor info at least 29, a string at least 8), so a hostile count
 * can never cause a huge allocation. Duplicate keys and tensor names are
 * found by sorting (O(n log n), no quadratic blow-up). Tensor data ranges
 * must be aligned, inside the file and must not overlap.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"
#include "util.h"

typedef struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *name;
} cursor;

static int cur_fail(cursor *c, const char *what, const char *fmt, ...) MOME_PRINTF(3, 4);
static int cur_fail(cursor *c, const char *what, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF at byte %zu (%s): %s",
                            c->name, c->pos, what, msg);
}

static int cur_need(cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos)
        return cur_fail(c, what, "file truncated: need %zu bytes, %zu left", n,
                        c->size - c->pos);
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what)) return -1;
    memcpy(v, c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what)) return -1;
    memcpy(v, c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int cur_str(cursor *c, gguf_str *s, const char *what) {
    uint64_t len;
    if (cur_u64(c, &len, what)) return -1;
    if (len > c->size - c->pos) {
        c->pos -= 8;
        return cur_fail(c, what, "string length %" PRIu64 " exceeds the %zu bytes left",
                        len, c->size - c->pos - 8);
    }
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return 0;
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

const char *gguf_type_name(uint32_t t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "str", "arr", "u64", "i64", "f64"};
    return t < GGUF_TYPE_COUNT ? names[t] : "?";
}

static char *keyname(gguf_str s, char *buf, size_t cap) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[i] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    buf[n] = 0;
    return buf;
}

/* Reads one value of scalar type t (or a string) at the cursor into kv. */
static int read_value(cursor *c, gguf_kv *kv, const char *what) {
    if (kv->type == GGUF_TYPE_STRING) {
        kv->strs = malloc(sizeof(gguf_str));
        if (!kv->strs) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", c->name);
        kv->data = c->base + c->pos;
        return cur_str(c, kv->strs, what);
    }
    size_t sz = vtype_size(kv->type);
    if (sz == 0) return cur_fail(c, what, "unknown value type %u", kv->type);
    if (cur_need(c, sz, what)) return -1;
    kv->data = c->base + c->pos;
    if (kv->type == GGUF_TYPE_BOOL && kv->data[0] > 1)
        return cur_fail(c, what, "bool value %u is neither 0 nor 1", kv->data[0]);
    c->pos += sz;
    return 0;
}

static int read_array(cursor *c, gguf_kv *kv, const char *what) {
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, &et, what) || cur_u64(c, &n, what)) return -1;
    kv->arr_type = et;
    kv->n = n;
    kv->data = c->base + c->pos;
    if (et == GGUF_TYPE_ARRAY) return cur_fail(c, what, "nested arrays are not supported");
    if (et == GGUF_TYPE_STRING) {
        /* each string needs at least its 8-byte length */
        if (n > (c->size - c->pos) / 8)
            return cur_fail(c, what, "array of %" PRIu64 " strings cannot fit in the %zu bytes left",
                            n, c->size - c->pos);
        kv->strs = malloc((size_t)(n ? n : 1) * sizeof(gguf_str));
        if (!kv->strs) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", c->name);
        for (uint64_t i = 0; i < n; i++)
            if (cur_str(c, &kv->strs[i], what)) return -1;
        return 0;
    }
    size_t sz = vtype_size(et);
    if (sz == 0) return cur_fail(c, what, "unknown array element type %u", et);
    if (n > (c->size - c->pos) / sz)
        return cur_fail(c, what, "array of %" PRIu64 " %s elements exceeds the %zu bytes left",
                        n, gguf_type_name(et), c->size - c->pos);
    if (et == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (c->base[c->pos + i] > 1) return cur_fail(c, what, "bool element %" PRIu64 " is not 0/1", i);
    c->pos += (size_t)n * sz;
    return 0;
}

static int str_cmp(gguf_str a, gguf_str b) {
    size_t n = a.len < b.len ? (size_t)a.len : (size_t)b.len;
    int r = memcmp(a.ptr, b.ptr, n);
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_strp(const void *a, const void *b) {
    return str_cmp(**(const gguf_str *const *)a, **(const gguf_str *const *)b);
}

/* Finds a duplicate among n names (pointers sorted in scratch). */
static const gguf_str *find_dup(const gguf_str **v, uint64_t n) {
    if (n < 2) return NULL;
    qsort(v, (size_t)n, sizeof *v, cmp_strp);
    for (uint64_t i = 1; i < n; i++)
        if (str_cmp(*v[i - 1], *v[i]) == 0) return v[i];
    return NULL;
}

static int cmp_tensor_off(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The header: magic, a supported version, and tensor and metadata counts
 * that can fit in the file. */
static int parse_header(gguf_file *f, cursor *c) {
    uint32_t magic;
    if (f->size < 4 || memcmp(f->map, "GGUF", 4) != 0)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: not a GGUF file (bad magic; expected \"GGUF\")", f->path);
    cur_u32(c, &magic, "magic");
    if (cur_u32(c, &f->version, "version")) return -1;
    if (f->version == 1)
        return cur_fail(c, "version", "GGUF v1 is not supported (re-convert the model with a current llama.cpp)");
    if (f->version != 2 && f->version != 3)
        return cur_fail(c, "version", "unsupported GGUF version %u (expected 2 or 3)", f->version);
    if (cur_u64(c, &f->n_tensors, "tensor count")) return -1;
    if (cur_u64(c, &f->n_kv, "metadata count")) return -1;
    /* minimal sizes: kv = 8 (key len) + 4 (type) + 1 (u8 value); tensor = 8 + 4 + 8 + 4 + 8 */
    if (f->n_kv > (c->size - c->pos) / 13)
        return cur_fail(c, "metadata count", "%" PRIu64 " key/value pairs cannot fit in the file", f->n_kv);
    if (f->n_tensors > (c->size - c->pos) / 32)
        return cur_fail(c, "tensor count", "%" PRIu64 " tensors cannot fit in the file", f->n_tensors);
    return 0;
}

/* Whether n names (metadata keys or tensor names: the gguf_str at `first`
 * and every `stride` bytes after it) hold a duplicate: 0, or the error
 * naming it (what: "metadata key", "tensor name"). */
static int check_unique(const gguf_file *f, const gguf_str *first, size_t stride, uint64_t n, const char *what) {
    char kb[96];
    const gguf_str **v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < n; i++) v[i] = (const gguf_str *)((const char *)first + i * stride);
    const gguf_str *d = find_dup(v, n);
    const int rc = d ? mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: duplicate %s '%s'", f->path, what,
                                        keyname(*d, kb, sizeof kb))
                     : 0;
    free(v);
    return rc;
}

/* The metadata: every key/value pair, keys unique. */
static int parse_metadata(gguf_file *f, cursor *c) {
    char kb[96];
    f->kv = calloc((size_t)(f->n_kv ? f->n_kv : 1), sizeof(gguf_kv));
    if (!f->kv) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->n = 1;
        if (cur_str(c, &kv->key, "metadata key")) return -1;
        keyname(kv->key, kb, sizeof kb);
        if (kv->key.len == 0) return cur_fail(c, "metadata key", "empty key name (entry %" PRIu64 ")", i);
        if (cur_u32(c, &kv->type, kb)) return -1;
        if (kv->type >= GGUF_TYPE_COUNT) return cur_fail(c, kb, "unknown value type %u", kv->type);
        int r = kv->type == GGUF_TYPE_ARRAY ? read_array(c, kv, kb) : read_value(c, kv, kb);
        if (r) return -1;
    }
    return check_unique(f, &f->kv[0].key, sizeof *f->kv, f->n_kv, "metadata key");
}

/* general.alignment: a u32 power of two up to 1 MiB, or the default. */
static int parse_alignment(gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_get_kv(f, "general.alignment");
    if (!al) return 0;
    if (al->type != GGUF_TYPE_UINT32)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: general.alignment has type %s, expected u32",
                                f->path, gguf_type_name(al->type));
    uint32_t a;
    memcpy(&a, al->data, 4);
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: general.alignment %u is not a power of two <= 1 MiB",
                                f->path, a);
    f->alignment = a;
    return 0;
}

/* Tensor i's info: name, dimensions (element count and byte size without
 * overflow), a known type whose block divides the rows, an aligned offset. */
static int parse_tensor_info(const gguf_file *f, cursor *c, uint64_t i, gguf_tensor *t) {
    char kb[96];
    if (cur_str(c, &t->name, "tensor name")) return -1;
    keyname(t->name, kb, sizeof kb);
    if (t->name.len == 0) return cur_fail(c, "tensor name", "empty tensor name (tensor %" PRIu64 ")", i);
    if (t->name.len >= 64) return cur_fail(c, kb, "tensor name is %" PRIu64 " bytes (max 63)", t->name.len);
    if (cur_u32(c, &t->n_dims, kb)) return -1;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return cur_fail(c, kb, "tensor has %u dimensions (1..%d allowed)", t->n_dims, GGUF_MAX_DIMS);
    int64_t nel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (cur_u64(c, &ne, kb)) return -1;
        if (ne > (uint64_t)INT64_MAX) return cur_fail(c, kb, "dimension %u is %" PRIu64 " (too large)", d, ne);
        t->ne[d] = (int64_t)ne;
        if (ne != 0 && nel > INT64_MAX / (int64_t)ne)
            return cur_fail(c, kb, "element count overflows (dimension %u = %" PRIu64 ")", d, ne);
        nel *= (int64_t)ne;
    }
    if (cur_u32(c, &t->type, kb)) return -1;
    const quant_traits *tr = quant_get_traits(t->type);
    if (!tr) return cur_fail(c, kb, "unknown tensor type %u", t->type);
    if (t->ne[0] % tr->blck != 0)
        return cur_fail(c, kb, "row length %" PRId64 " is not a multiple of the %s block size %" PRId64, t->ne[0],
                        tr->name, tr->blck);
    size_t rows = 1, nb;
    for (uint32_t d = 1; d < t->n_dims; d++)
        if (mome_mul_size(rows, (size_t)t->ne[d], &rows)) return cur_fail(c, kb, "size overflows");
    if (mome_mul_size((size_t)(t->ne[0] / tr->blck), tr->type_size, &nb) || mome_mul_size(nb, rows, &nb))
        return cur_fail(c, kb, "size overflows");
    t->nbytes = nb;
    if (cur_u64(c, &t->offset, kb)) return -1;
    if (t->offset % f->alignment != 0)
        return cur_fail(c, kb, "data offset %" PRIu64 " is not a multiple of the alignment %u", t->offset, f->alignment);
    return 0;
}

/* Every tensor's info, names unique. */
static int parse_tensor_infos(gguf_file *f, cursor *c) {
    f->tensors = calloc((size_t)(f->n_tensors ? f->n_tensors : 1), sizeof(gguf_tensor));
    if (!f->tensors) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", f->path);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (parse_tensor_info(f, c, i, &f->tensors[i])) return -1;
    return check_unique(f, &f->tensors[0].name, sizeof *f->tensors, f->n_tensors, "tensor name");
}

/* The data section, at the first multiple of the alignment after the
 * infos (end: where they end): each tensor's bytes inside the file. */
static int place_tensor_data(gguf_file *f, size_t end) {
    char kb[96];
    size_t ds = end;
    if (ds % f->alignment) ds += f->alignment - ds % f->alignment;
    f->data_offset = ds;
    if (f->n_tensors == 0) return 0;
    if (ds > f->size)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: file truncated before the tensor data (needs %zu bytes, has %zu)",
                                f->path, ds, f->size);
    size_t avail = f->size - ds;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return mome_seterr_code(MOME_ERR_FORMAT,
                                    "%s: invalid GGUF: tensor '%s' data [%" PRIu64 ", +%zu) lies past the end of the file "
                                    "(data section holds %zu bytes; file truncated?)",
                                    f->path, keyname(t->name, kb, sizeof kb), t->offset, t->nbytes, avail);
        t->data = f->map + ds + t->offset;
    }
    return 0;
}

/* No two tensors' data overlap (empty tensors occupy no bytes and may share
 * an offset). */
static int check_overlaps(const gguf_file *f) {
    if (f->n_tensors == 0) return 0;
    gguf_tensor **v = malloc((size_t)f->n_tensors * sizeof *v);
    if (!v) return mome_seterr_code(MOME_ERR_NOMEM, "%s: out of memory", f->path);
    size_t m = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].nbytes) v[m++] = &f->tensors[i];
    qsort(v, m, sizeof *v, cmp_tensor_off);
    int rc = 0;
    for (size_t i = 1; i < m && !rc; i++)
        if (v[i - 1]->offset + v[i - 1]->nbytes > v[i]->offset) {
            char kb[96], kb2[96];
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: data of tensors '%s' and '%s' overlap", f->path,
                                  keyname(v[i - 1]->name, kb, sizeof kb), keyname(v[i]->name, kb2, sizeof kb2));
        }
    free(v);
    return rc;
}

static int parse(gguf_file *f) {
    cursor c = {f->map, f->size, 0, f->path};
    if (parse_header(f, &c) || parse_metadata(f, &c) || parse_alignment(f) || parse_tensor_infos(f, &c) ||
        place_tensor_data(f, c.pos) || check_overlaps(f))
        return -1;
    return 0;
}

static int finish_open(gguf_file *f, gguf_file **out) {
    int rc = parse(f);
    if (rc) {
        int code = rc < -1 ? rc : MOME_ERR_FORMAT;
        gguf_close(f);
        *out = NULL;
        return code;
    }
    *out = f;
    return MOME_OK;
}

int gguf_open(const char *path, gguf_file **out) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    f->fd = -1;
    f->path = strdup(path);
    if (!f->path) { free(f); return mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        mome_seterr_code(MOME_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        gguf_close(f);
        return MOME_ERR_IO;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mome_seterr_code(MOME_ERR_IO, "%s: not a regular file", path);
        gguf_close(f);
        return MOME_ERR_IO;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 24) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: file is only %zu bytes (a GGUF header needs 24)", path, f->size);
        gguf_close(f);
        return MOME_ERR_FORMAT;
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (m == MAP_FAILED) {
        mome_seterr_code(MOME_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        gguf_close(f);
        return MOME_ERR_IO;
    }
    f->map = m;
    return finish_open(f, out);
}

int gguf_open_buffer(const void *buf, size_t size, const char *name, gguf_file **out) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    f->fd = -1;
    f->path = strdup(name ? name : "<buffer>");
    f->map = buf;
    f->size = size;
    if (!f->path) { free(f); return mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); }
    if (size < 24) {
        mome_seterr_code(MOME_ERR_FORMAT, "%s: invalid GGUF: file is only %zu bytes (a GGUF header needs 24)", f->path, size);
        gguf_close(f);
        return MOME_ERR_FORMAT;
    }
    return finish_open(f, out);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) free(f->kv[i].strs);
    free(f->kv);
    free(f->tensors);
    if (f->fd >= 0) {
        if (f->map) munmap((void *)f->map, f->size);
        close(f->fd);
    }
    free(f->path);
    free(f);
}

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return (int64_t)i;
    return -1;
}

const gguf_kv *gguf_get_kv(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (gguf_str_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* Scalar numeric value at p of type t. is_int says whether it is integral. */
static int num_at(uint32_t t, const uint8_t *p, long double *v, int *is_int) {
    *is_int = 1;
    switch (t) {
    case GGUF_TYPE_UINT8: *v = p[0]; return 0;
    case GGUF_TYPE_INT8: *v = (int8_t)p[0]; return 0;
    case GGUF_TYPE_BOOL: *v = p[0]; return 0;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); *v = x; return 0; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); *v = x; return 0; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); *v = x; return 0; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); *v = x; return 0; }
    case GGUF_TYPE_UINT64: { uint64_t x; memcpy(&x, p, 8); *v = x; return 0; }
    case GGUF_TYPE_INT64: { int64_t x; memcpy(&x, p, 8); *v = x; return 0; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); *v = x; *is_int = 0; return 0; }
    case GGUF_TYPE_FLOAT64: { double x; memcpy(&x, p, 8); *v = x; *is_int = 0; return 0; }
    default: return -1;
    }
}

double gguf_arr_get_num(const gguf_kv *kv, uint64_t i) {
    uint32_t t = kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : kv->type;
    size_t sz = vtype_size(t);
    long double v = 0;
    int is_int;
    if (sz == 0 || i >= kv->n) return 0;
    num_at(t, kv->data + i * sz, &v, &is_int);
    return (double)v;
}

static int get_int(const gguf_file *f, const char *key, long double lo, long double hi, long double *out) {
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv) return 0;
    long double v;
    int is_int;
    if (kv->type == GGUF_TYPE_BOOL || num_at(kv->type, kv->data, &v, &is_int) || !is_int)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' has type %s, expected an integer",
                                f->path, key, gguf_type_name(kv->type));
    if (v < lo || v > hi)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' = %.0Lf is out of range", f->path, key, v);
    *out = v;
    return 1;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    long double v;
    int r = get_int(f, key, 0, UINT32_MAX, &v);
    if (r == 1) *out = (uint32_t)v;
    return r;
}
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out) {
    long double v;
    int r = get_int(f, key, INT32_MIN, INT32_MAX, &v);
    if (r == 1) *out = (int32_t)v;
    return r;
}
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    long double v;
    int r = get_int(f, key, 0, (long double)UINT64_MAX, &v);
    if (r == 1) *out = (uint64_t)v;
    return r;
}
int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv) return 0;
    long double v;
    int is_int;
    if (kv->type == GGUF_TYPE_BOOL || num_at(kv->type, kv->data, &v, &is_int))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' has type %s, expected a number",
                                f->path, key, gguf_type_name(kv->type));
    *out = (float)v;
    return 1;
}
int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_BOOL)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' has type %s, expected bool",
                                f->path, key, gguf_type_name(kv->type));
    *out = kv->data[0] != 0;
    return 1;
}
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_STRING)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' has type %s, expected str",
                                f->path, key, gguf_type_name(kv->type));
    *out = kv->strs[0];
    return 1;
}
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t elem_type, const gguf_kv **out) {
    const gguf_kv *kv = gguf_get_kv(f, key);
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != elem_type)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: metadata '%s' has type %s[%s], expected arr[%s]",
                                f->path, key, gguf_type_name(kv->type),
                                kv->type == GGUF_TYPE_ARRAY ? gguf_type_name(kv->arr_type) : "",
                                gguf_type_name(elem_type));
    *out = kv;
    return 1;
}

static size_t put_escaped(char *buf, size_t cap, size_t pos, gguf_str s, size_t maxlen) {
    if (pos + 1 < cap) buf[pos++] = '"';
    for (uint64_t i = 0; i < s.len && i < maxlen && pos + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch == '\n') { buf[pos++] = '\\'; buf[pos++] = 'n'; }
        else if (ch == '"') { buf[pos++] = '\\'; buf[pos++] = '"'; }
        else if (ch < 32) pos += (size_t)snprintf(buf + pos, cap - pos, "\\x%02x", ch);
        else buf[pos++] = (char)ch;
    }
    if (s.len > maxlen && pos + 4 < cap) { memcpy(buf + pos, "...", 3); pos += 3; }
    if (pos + 1 < cap) buf[pos++] = '"';
    buf[pos < cap ? pos : cap - 1] = 0;
    return pos;
}

static size_t put_num(char *buf, size_t cap, size_t pos, uint32_t t, const uint8_t *p) {
    long double v;
    int is_int;
    if (pos >= cap) return pos;
    if (t == GGUF_TYPE_BOOL) return pos + (size_t)snprintf(buf + pos, cap - pos, "%s", p[0] ? "true" : "false");
    num_at(t, p, &v, &is_int);
    if (is_int) return pos + (size_t)snprintf(buf + pos, cap - pos, "%.0Lf", v);
    return pos + (size_t)snprintf(buf + pos, cap - pos, "%.9Lg", v);
}

void gguf_format_value(const gguf_kv *kv, char *buf, size_t cap) {
    size_t pos = 0;
    if (cap == 0) return;
    buf[0] = 0;
    if (kv->type == GGUF_TYPE_STRING) {
        put_escaped(buf, cap, 0, kv->strs[0], 160);
        return;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        put_num(buf, cap, 0, kv->type, kv->data);
        return;
    }
    pos += (size_t)snprintf(buf, cap, "[%s x %" PRIu64 "] ", gguf_type_name(kv->arr_type), kv->n);
    for (uint64_t i = 0; i < kv->n && i < 6 && pos + 8 < cap; i++) {
        if (i) pos += (size_t)snprintf(buf + pos, cap - pos, ", ");
        if (kv->arr_type == GGUF_TYPE_STRING) pos = put_escaped(buf, cap, pos, kv->strs[i], 24);
        else pos = put_num(buf, cap, pos, kv->arr_type, kv->data + i * vtype_size(kv->arr_type));
    }
    if (kv->n > 6 && pos + 5 < cap) snprintf(buf + pos, cap - pos, ", ...");
}
