/* test_gguf.c - the GGUF reader against hostile files, and the writer.
 *
 * Modeled on llama.cpp's tests/test-gguf.cpp: valid files are built (with
 * gguf_writer or a byte-level builder for shapes the writer refuses to make),
 * then corrupted in enumerated ways. Each case checks the verdict (accept or
 * reject) and, on reject, that the message names the file and the problem.
 * Every rejected image is opened twice: from an exact-size heap copy (so
 * ASan sees any read past the end) and from a file (the mmap path).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "quant.h"
#include "test.h"
#include "tinymodel.h"
#include "util.h"

/* ------------------------------------------------------------ tmp folder */

static char g_tmp[256];

static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_tmp, name);
    return buf;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    int rc = fclose(f);
    return (w == n && rc == 0) ? 0 : -1;
}

static void *read_raw(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(sz > 0 ? (size_t)sz : 1);
    if (p && sz > 0 && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    *n = (size_t)sz;
    return p;
}

/* ------------------------------------------------------- byte builder */

typedef struct hb {
    uint8_t *p;
    size_t n, cap;
} hb;

static void hb_put(hb *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        MOME_ASSERT(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void hb_u8(hb *b, uint8_t v) { hb_put(b, &v, 1); }
static void hb_u32(hb *b, uint32_t v) { hb_put(b, &v, 4); }
static void hb_u64(hb *b, uint64_t v) { hb_put(b, &v, 8); }
static void hb_strn(hb *b, const char *s, size_t n) { hb_u64(b, n); hb_put(b, s, n); }
static void hb_str(hb *b, const char *s) { hb_strn(b, s, strlen(s)); }
static void hb_free(hb *b) { free(b->p); memset(b, 0, sizeof *b); }
static void hb_hdr(hb *b, uint32_t ver, uint64_t nt, uint64_t nkv) {
    hb_put(b, "GGUF", 4);
    hb_u32(b, ver);
    hb_u64(b, nt);
    hb_u64(b, nkv);
}
static void hb_kv_u32(hb *b, const char *key, uint32_t v) {
    hb_str(b, key);
    hb_u32(b, GGUF_TYPE_UINT32);
    hb_u32(b, v);
}
static void hb_tinfo(hb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    hb_str(b, name);
    hb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims && d < 5; d++) hb_u64(b, ne[d]); /* callers pass >= 5 dims */
    hb_u32(b, type);
    hb_u64(b, off);
}
/* zero padding to align, then n bytes of a non-zero pattern */
static void hb_data(hb *b, size_t align, size_t n) {
    while (b->n % align) hb_u8(b, 0);
    for (size_t i = 0; i < n; i++) hb_u8(b, (uint8_t)(i * 7 + 1));
}
static void hb_set_u64(hb *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }
static void hb_set_u32(hb *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }

/* test.h's REQUIRE evaluates its condition twice: calls go through REQ0. */
#define REQ0(expr)                                                           \
    do {                                                                     \
        int rq_ = (expr);                                                    \
        REQUIRE(rq_ == 0, "%s -> %d: %s", #expr, rq_, mome_errmsg());        \
    } while (0)

/* ------------------------------------------------------- verdict helpers */

static int g_case;

/* Opens an exact-size heap copy of buf; keeps the copy alive in *keep. */
static int open_copy(const void *buf, size_t n, const char *name, gguf_file **f, void **keep) {
    void *c = malloc(n ? n : 1);
    MOME_ASSERT(c);
    if (n) memcpy(c, buf, n);
    int r = gguf_open_buffer(c, n, name, f);
    if (r != MOME_OK) { free(c); c = NULL; }
    *keep = c;
    return r;
}

static void check_msg(const char *who, const char *m, const char *name, const char *needle, int line) {
    CHECK(m && *m, "line %d (%s): empty error message", line, who);
    CHECK(strstr(m, name) != NULL, "line %d (%s): message does not name the file '%s': %s", line, who, name, m);
    if (needle)
        CHECK(strcasestr(m, needle) != NULL, "line %d (%s): message lacks '%s': %s", line, who, needle, m);
}

/* Rejected from memory and from a file, with a message naming file and problem. */
static void expect_reject_(const void *buf, size_t n, const char *needle, int line) {
    char name[160];
    snprintf(name, sizeof name, "%s-%d.gguf", test_cur_name, ++g_case);
    gguf_file *f = (gguf_file *)&f;
    void *keep;
    int r = open_copy(buf, n, name, &f, &keep);
    CHECK(r < 0 && f == NULL, "line %d: buffer accepted (r=%d)", line, r);
    if (r == MOME_OK) { gguf_close(f); free(keep); }
    else check_msg("buffer", mome_errmsg(), name, needle, line);

    const char *path = tmp_path(name);
    REQ0(write_raw(path, buf, n));
    f = (gguf_file *)&f;
    r = gguf_open(path, &f);
    CHECK(r < 0 && f == NULL, "line %d: file accepted (r=%d)", line, r);
    if (r == MOME_OK) gguf_close(f);
    else check_msg("file", mome_errmsg(), path, needle, line);
    remove(path);
}
#define EXPECT_REJECT(b, needle) expect_reject_((b)->p, (b)->n, needle, __LINE__)

/* Accepted from memory (the returned handle keeps *keep alive: free it after
 * gguf_close) and from a file. */
static gguf_file *expect_accept_(const void *buf, size_t n, void **keep, int line) {
    char name[160];
    snprintf(name, sizeof name, "%s-%d.gguf", test_cur_name, ++g_case);
    const char *path = tmp_path(name);
    gguf_file *f = NULL;
    if (write_raw(path, buf, n) == 0) {
        int r = gguf_open(path, &f);
        CHECK(r == MOME_OK && f, "line %d: file rejected: %s", line, mome_errmsg());
        gguf_close(f);
        remove(path);
    }
    int r = open_copy(buf, n, name, &f, keep);
    CHECK(r == MOME_OK && f, "line %d: buffer rejected: %s", line, mome_errmsg());
    return r == MOME_OK ? f : NULL;
}
#define EXPECT_ACCEPT(b, keep) expect_accept_((b)->p, (b)->n, keep, __LINE__)
#define ACCEPT_AND_CLOSE(b)                                    \
    do {                                                       \
        void *k_ = NULL;                                       \
        gguf_file *f_ = EXPECT_ACCEPT(b, &k_);                 \
        gguf_close(f_);                                        \
        free(k_);                                              \
    } while (0)

/* Touches everything a successful open hands out (ASan checks the bounds). */
static unsigned touch_all(const gguf_file *f) {
    unsigned acc = 0;
    char buf[256];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        for (uint64_t j = 0; j < kv->key.len; j++) acc += (unsigned char)kv->key.ptr[j];
        gguf_format_value(kv, buf, sizeof buf);
        acc += (unsigned)strlen(buf);
        if (kv->type == GGUF_TYPE_STRING || (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING)) {
            for (uint64_t s = 0; s < kv->n; s++)
                if (kv->strs[s].len) acc += (unsigned char)kv->strs[s].ptr[0] + (unsigned char)kv->strs[s].ptr[kv->strs[s].len - 1];
        } else if (kv->type == GGUF_TYPE_ARRAY) {
            if (kv->n) acc += (gguf_arr_get_num(kv, 0) != 0) + (gguf_arr_get_num(kv, kv->n - 1) != 0);
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const uint8_t *d = t->data;
        if (t->nbytes) acc += d[0] + d[t->nbytes - 1];
        MOME_ASSERT((const uint8_t *)t->data >= f->map && (const uint8_t *)t->data + t->nbytes <= f->map + f->size);
    }
    return acc;
}

/* --------------------------------------------------- a small valid file */

/* A file with one kv of every type and three tensors. The last tensor ends
 * exactly at the end of the file (no trailing padding needed). */
static int build_small(gguf_writer **out) {
    gguf_writer *w;
    if (gguf_writer_init(&w)) return -1;
    gguf_writer_set_fsync(w, 0);
    int rc = 0;
    rc |= gguf_writer_add_str(w, "general.architecture", "llama");
    rc |= gguf_writer_add_u8(w, "k.u8", 200);
    rc |= gguf_writer_add_i8(w, "k.i8", -100);
    rc |= gguf_writer_add_u16(w, "k.u16", 60000);
    rc |= gguf_writer_add_i16(w, "k.i16", -30000);
    rc |= gguf_writer_add_u32(w, "k.u32", 4000000000u);
    rc |= gguf_writer_add_i32(w, "k.i32", -2000000000);
    rc |= gguf_writer_add_f32(w, "k.f32", 1.5f);
    rc |= gguf_writer_add_bool(w, "k.bool", 1);
    rc |= gguf_writer_add_u64(w, "k.u64", UINT64_MAX - 1);
    rc |= gguf_writer_add_i64(w, "k.i64", INT64_MIN + 1);
    rc |= gguf_writer_add_f64(w, "k.f64", -2.25);
    const int32_t ai[3] = {1, -2, 3};
    rc |= gguf_writer_add_arr(w, "k.arr_i32", GGUF_TYPE_INT32, ai, 3);
    const uint8_t ab[4] = {0, 1, 1, 0};
    rc |= gguf_writer_add_arr(w, "k.arr_bool", GGUF_TYPE_BOOL, ab, 4);
    const char *as[3] = {"a", "", "xyz"};
    rc |= gguf_writer_add_arr_str(w, "k.arr_str", as, NULL, 3);
    float t0[8], t2[16];
    for (int i = 0; i < 8; i++) t0[i] = (float)i + 0.5f;
    for (int i = 0; i < 16; i++) t2[i] = -(float)i;
    int64_t ne0[1] = {8}, ne1[2] = {32, 1}, ne2[2] = {4, 4};
    uint8_t q8[34];
    for (int i = 0; i < 34; i++) q8[i] = (uint8_t)(i * 3 + 1);
    rc |= gguf_writer_add_tensor(w, "t.f32", 1, ne0, MOME_DTYPE_F32, t0, sizeof t0, GGUF_WRITER_COPY);
    rc |= gguf_writer_add_tensor(w, "t.q8", 2, ne1, MOME_DTYPE_Q8_0, q8, sizeof q8, GGUF_WRITER_COPY);
    rc |= gguf_writer_add_tensor(w, "t.last", 2, ne2, MOME_DTYPE_F32, t2, sizeof t2, GGUF_WRITER_COPY);
    if (rc) { gguf_writer_free(w); return -1; }
    *out = w;
    return 0;
}

static int small_buffer(hb *b) {
    gguf_writer *w;
    void *p;
    size_t n;
    memset(b, 0, sizeof *b);
    if (build_small(&w)) return -1;
    int r = gguf_writer_write_buffer(w, &p, &n);
    gguf_writer_free(w);
    if (r) return -1;
    b->p = p;
    b->n = b->cap = n;
    return 0;
}

/* --------------------------------------------------------------- tests */

static void test_magic(void) {
    hb b;
    REQ0(small_buffer(&b));
    const char *bad[] = {"GGUE", "FUGG", "\0\0\0\0", "ggml"};
    for (size_t i = 0; i < 4; i++) {
        memcpy(b.p, bad[i], 4);
        EXPECT_REJECT(&b, "magic");
    }
    hb_free(&b);
}

static void test_version(void) {
    hb b;
    REQ0(small_buffer(&b));
    const uint32_t bad[] = {0, 1, 4, 0x03000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hb_set_u32(&b, 4, bad[i]);
        EXPECT_REJECT(&b, "version");
    }
    hb_set_u32(&b, 4, 2); /* v2 has the same layout */
    void *k;
    gguf_file *f = EXPECT_ACCEPT(&b, &k);
    if (f) CHECK(f->version == 2, "version %u", f->version);
    gguf_close(f);
    free(k);
    hb_free(&b);
}

static void test_truncation_every_offset(void) {
    hb b;
    REQ0(small_buffer(&b));
    void *k;
    gguf_file *f = EXPECT_ACCEPT(&b, &k);
    REQUIRE(f, "full file rejected");
    size_t end = f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        size_t e = f->data_offset + f->tensors[i].offset + f->tensors[i].nbytes;
        if (e > end) end = e;
    }
    CHECK(end == b.n, "last tensor should end at the end of the file (%zu vs %zu)", end, b.n);
    gguf_close(f);
    free(k);
    char name[64];
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        snprintf(name, sizeof name, "trunc-%zu.gguf", n);
        int r = open_copy(b.p, n, name, &f, &k);
        if (r == MOME_OK) {
            if (bad++ < 5) CHECK(0, "prefix of %zu/%zu bytes accepted", n, b.n);
            gguf_close(f);
            free(k);
            continue;
        }
        const char *m = mome_errmsg();
        if (!strstr(m, name) && bad++ < 5) CHECK(0, "prefix %zu: message lacks the name: %s", n, m);
        if (n >= 24 && !strcasestr(m, "truncated") && !strcasestr(m, "exceeds") &&
            !strcasestr(m, "cannot fit") && !strcasestr(m, "past the end") && bad++ < 5)
            CHECK(0, "prefix %zu: message does not say truncated: %s", n, m);
    }
    /* a few through the mmap path too */
    const size_t cuts[] = {0, 3, 4, 23, 24, 25, 100, b.n / 2, b.n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) expect_reject_(b.p, cuts[i], NULL, __LINE__);
    hb_free(&b);
}

static void test_counts_absurd(void) {
    hb b;
    REQ0(small_buffer(&b));
    uint64_t nt, nkv;
    memcpy(&nt, b.p + 8, 8);
    memcpy(&nkv, b.p + 16, 8);
    const uint64_t vals[] = {1ull << 63, 1ull << 40, UINT64_MAX, 1ull << 32};
    for (size_t i = 0; i < 4; i++) {
        hb_set_u64(&b, 8, vals[i]);
        EXPECT_REJECT(&b, "tensor count");
        hb_set_u64(&b, 8, nt);
        hb_set_u64(&b, 16, vals[i]);
        EXPECT_REJECT(&b, "metadata count");
        hb_set_u64(&b, 16, nkv);
    }
    hb_set_u64(&b, 8, nt + 1);
    EXPECT_REJECT(&b, NULL);
    hb_set_u64(&b, 8, nt);
    hb_set_u64(&b, 16, nkv + 1);
    EXPECT_REJECT(&b, NULL);
    hb_set_u64(&b, 16, nkv);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
}

static void test_string_lengths(void) {
    const uint64_t huge[] = {UINT64_MAX, 1ull << 63, 1ull << 40};
    for (int i = 0; i < 4; i++) {
        /* key length */
        hb b = {0};
        hb_hdr(&b, 3, 0, 1);
        uint64_t len = i < 3 ? huge[i] : 9; /* i == 3: one past the end */
        hb_u64(&b, len);
        hb_put(&b, "abcd", 4);
        hb_u32(&b, GGUF_TYPE_UINT8);
        EXPECT_REJECT(&b, i < 3 ? "string length" : "metadata key");
        hb_free(&b);
        /* value length */
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "s");
        hb_u32(&b, GGUF_TYPE_STRING);
        hb_u64(&b, i < 3 ? huge[i] : 5);
        hb_put(&b, "abcd", 4);
        EXPECT_REJECT(&b, "string length");
        hb_free(&b);
        /* string array element */
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "sa");
        hb_u32(&b, GGUF_TYPE_ARRAY);
        hb_u32(&b, GGUF_TYPE_STRING);
        hb_u64(&b, 2);
        hb_str(&b, "ok");
        hb_u64(&b, i < 3 ? huge[i] : 5);
        hb_put(&b, "abcd", 4);
        EXPECT_REJECT(&b, "string length");
        hb_free(&b);
        /* tensor name */
        hb_hdr(&b, 3, 1, 0);
        hb_u64(&b, i < 3 ? huge[i] : 100);
        hb_put(&b, "name", 4);
        hb_u32(&b, 1);
        hb_u64(&b, 4);
        hb_u32(&b, 0);
        hb_u64(&b, 0);
        hb_data(&b, 32, 16);
        EXPECT_REJECT(&b, "tensor name");
        hb_free(&b);
    }
}

static void test_array_counts(void) {
    for (uint32_t et = 0; et < GGUF_TYPE_COUNT; et++) {
        if (et == GGUF_TYPE_ARRAY) continue;
        const uint64_t counts[] = {UINT64_MAX, 1ull << 62, 1ull << 40, (1ull << 61) + 1, 0 /* fits + 1 */};
        for (size_t i = 0; i < 5; i++) {
            hb b = {0};
            hb_hdr(&b, 3, 0, 1);
            hb_str(&b, "arr");
            hb_u32(&b, GGUF_TYPE_ARRAY);
            hb_u32(&b, et);
            size_t at = b.n;
            hb_u64(&b, counts[i]);
            /* 16 bytes of payload: valid elements (zeros; strings of length 0) */
            for (int j = 0; j < 16; j++) hb_u8(&b, 0);
            if (counts[i] == 0) {
                size_t esz = et == GGUF_TYPE_STRING ? 8 : (et == GGUF_TYPE_UINT8 || et == GGUF_TYPE_INT8 || et == GGUF_TYPE_BOOL) ? 1
                           : (et == GGUF_TYPE_UINT16 || et == GGUF_TYPE_INT16) ? 2
                           : (et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64 || et == GGUF_TYPE_FLOAT64) ? 8 : 4;
                hb_set_u64(&b, at, 16 / esz); /* exactly fits: valid */
                ACCEPT_AND_CLOSE(&b);
                hb_set_u64(&b, at, 16 / esz + 1);
            }
            EXPECT_REJECT(&b, et == GGUF_TYPE_STRING && counts[i] == 0 ? NULL : "array");
            hb_free(&b);
        }
        /* empty array of each type is fine */
        hb b = {0};
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "arr");
        hb_u32(&b, GGUF_TYPE_ARRAY);
        hb_u32(&b, et);
        hb_u64(&b, 0);
        ACCEPT_AND_CLOSE(&b);
        hb_free(&b);
    }
}

static void test_nested_and_unknown_types(void) {
    hb b = {0};
    hb_hdr(&b, 3, 0, 1);
    hb_str(&b, "nested");
    hb_u32(&b, GGUF_TYPE_ARRAY);
    hb_u32(&b, GGUF_TYPE_ARRAY);
    hb_u64(&b, 1);
    hb_u32(&b, GGUF_TYPE_UINT8);
    hb_u64(&b, 1);
    hb_u8(&b, 7);
    EXPECT_REJECT(&b, "nested");
    hb_free(&b);
    const uint32_t bad[] = {GGUF_TYPE_COUNT, 100, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "k");
        hb_u32(&b, bad[i]);
        hb_u64(&b, 0);
        EXPECT_REJECT(&b, "unknown value type");
        hb_free(&b);
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "k");
        hb_u32(&b, GGUF_TYPE_ARRAY);
        hb_u32(&b, bad[i]);
        hb_u64(&b, 1);
        hb_u64(&b, 0);
        EXPECT_REJECT(&b, "unknown array element type");
        hb_free(&b);
    }
}

static void test_bool_values(void) {
    const uint8_t vals[] = {0, 1, 2, 255};
    for (int i = 0; i < 4; i++) {
        hb b = {0};
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "b");
        hb_u32(&b, GGUF_TYPE_BOOL);
        hb_u8(&b, vals[i]);
        if (vals[i] <= 1) {
            void *k;
            gguf_file *f = EXPECT_ACCEPT(&b, &k);
            int v = -1;
            if (f) CHECK(gguf_get_bool(f, "b", &v) == 1 && v == vals[i], "bool %d", v);
            gguf_close(f);
            free(k);
        } else {
            EXPECT_REJECT(&b, "bool");
        }
        hb_free(&b);
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "ba");
        hb_u32(&b, GGUF_TYPE_ARRAY);
        hb_u32(&b, GGUF_TYPE_BOOL);
        hb_u64(&b, 3);
        hb_u8(&b, 1);
        hb_u8(&b, 0);
        hb_u8(&b, vals[i]);
        if (vals[i] <= 1) ACCEPT_AND_CLOSE(&b);
        else EXPECT_REJECT(&b, "bool");
        hb_free(&b);
    }
}

static void test_duplicates(void) {
    hb b = {0};
    hb_hdr(&b, 3, 0, 3);
    hb_kv_u32(&b, "a.key", 1);
    hb_kv_u32(&b, "b.key", 2);
    hb_kv_u32(&b, "a.key", 3);
    EXPECT_REJECT(&b, "duplicate metadata key 'a.key'");
    hb_free(&b);
    /* same bytes, different length: not duplicates */
    hb_hdr(&b, 3, 0, 2);
    hb_kv_u32(&b, "a.key", 1);
    hb_kv_u32(&b, "a.ke", 1);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    uint64_t ne[1] = {8};
    hb_hdr(&b, 3, 2, 0);
    hb_tinfo(&b, "w", 1, ne, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "w", 1, ne, MOME_DTYPE_F32, 32);
    hb_data(&b, 32, 64);
    EXPECT_REJECT(&b, "duplicate tensor name 'w'");
    hb_free(&b);
}

/* One tensor (name "t") with the given shape/type/offset and `data` bytes. */
static void one_tensor(hb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    memset(b, 0, sizeof *b);
    hb_hdr(b, 3, 1, 0);
    hb_tinfo(b, "t", n_dims, ne, type, off);
    hb_data(b, 32, data);
}

static void test_tensor_shapes(void) {
    hb b;
    uint64_t ne[8] = {4, 1, 1, 1, 1, 1, 1, 1};
    one_tensor(&b, 0, ne, MOME_DTYPE_F32, 0, 16);
    EXPECT_REJECT(&b, "dimensions");
    hb_free(&b);
    one_tensor(&b, 5, ne, MOME_DTYPE_F32, 0, 16);
    EXPECT_REJECT(&b, "dimensions");
    hb_free(&b);
    one_tensor(&b, UINT32_MAX, ne, MOME_DTYPE_F32, 0, 16);
    EXPECT_REJECT(&b, "dimensions");
    hb_free(&b);
    for (uint32_t nd = 1; nd <= 4; nd++) {
        one_tensor(&b, nd, ne, MOME_DTYPE_F32, 0, 16);
        ACCEPT_AND_CLOSE(&b);
        hb_free(&b);
    }
    /* element count / byte size overflow */
    const uint64_t ovf[][4] = {
        {1ull << 32, 1ull << 32, 1, 1},
        {(uint64_t)INT64_MAX, 2, 1, 1},
        {1ull << 62, 1, 1, 1},                 /* fits int64, bytes overflow */
        {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20},
        {1ull << 63, 1, 1, 1},                 /* negative as int64 */
        {UINT64_MAX, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++) {
        one_tensor(&b, 4, ovf[i], MOME_DTYPE_F32, 0, 16);
        size_t before = b.n;
        (void)before;
        void *k;
        gguf_file *f = NULL;
        int r = open_copy(b.p, b.n, "ovf.gguf", &f, &k);
        CHECK(r < 0, "overflow case %zu accepted", i);
        if (r == 0) { gguf_close(f); free(k); }
        else {
            const char *m = mome_errmsg();
            CHECK(strstr(m, "ovf.gguf") && (strcasestr(m, "overflow") || strcasestr(m, "too large") ||
                                            strcasestr(m, "past the end")),
                  "case %zu: %s", i, m);
        }
        EXPECT_REJECT(&b, NULL);
        hb_free(&b);
    }
    /* zero-sized dims are fine */
    uint64_t z[2] = {0, 5};
    one_tensor(&b, 2, z, MOME_DTYPE_F32, 0, 0);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    uint64_t z2[4] = {32, 0, 1ull << 40, 1ull << 40};
    one_tensor(&b, 4, z2, MOME_DTYPE_Q8_0, 0, 0);
    hb_free(&b); /* may be accepted (0 bytes) or rejected (overflow): just no crash */
    one_tensor(&b, 4, z2, MOME_DTYPE_Q8_0, 0, 0);
    { void *k; gguf_file *f; if (open_copy(b.p, b.n, "z.gguf", &f, &k) == 0) { gguf_close(f); free(k); } }
    hb_free(&b);
}

static void test_tensor_types(void) {
    hb b;
    uint64_t ne[2] = {33, 1};
    one_tensor(&b, 2, ne, MOME_DTYPE_Q8_0, 0, 64);
    EXPECT_REJECT(&b, "block size");
    hb_free(&b);
    ne[0] = 16;
    one_tensor(&b, 2, ne, MOME_DTYPE_Q4_1, 0, 64);
    EXPECT_REJECT(&b, "block size");
    hb_free(&b);
    ne[0] = 128;
    one_tensor(&b, 2, ne, MOME_DTYPE_Q4_K, 0, 1024);
    EXPECT_REJECT(&b, "block size");
    hb_free(&b);
    const uint32_t bad[] = {4, 5, MOME_DTYPE_COUNT, 1000, 0x80000000u, UINT32_MAX};
    ne[0] = 256;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        one_tensor(&b, 2, ne, bad[i], 0, 1024);
        EXPECT_REJECT(&b, "unknown tensor type");
        hb_free(&b);
    }
    /* every id: accepted iff the type is known, sized from its traits */
    for (uint32_t t = 0; t < 64; t++) {
        const quant_traits *tr = quant_get_traits(t);
        size_t nb = tr ? (size_t)(256 / tr->blck) * tr->type_size : 64;
        if (tr) CHECK(tr->blck > 0 && 256 % tr->blck == 0 && tr->type_size > 0, "traits of %u", t);
        one_tensor(&b, 2, ne, t, 0, nb);
        void *k;
        gguf_file *f = NULL;
        int r = open_copy(b.p, b.n, "types.gguf", &f, &k);
        CHECK((r == MOME_OK) == (tr != NULL), "type %u: r=%d %s", t, r, r ? mome_errmsg() : "");
        if (f) {
            CHECK(f->tensors[0].nbytes == nb, "type %u: nbytes %zu", t, f->tensors[0].nbytes);
            gguf_close(f);
            free(k);
        }
        hb_free(&b);
    }
}

static void test_tensor_offsets(void) {
    hb b;
    uint64_t ne[1] = {8};
    const uint64_t mis[] = {1, 4, 16, 31, 33};
    for (size_t i = 0; i < 5; i++) {
        one_tensor(&b, 1, ne, MOME_DTYPE_F32, mis[i], 128);
        EXPECT_REJECT(&b, "alignment");
        hb_free(&b);
    }
    /* past the end: offset beyond, size beyond, offset huge */
    one_tensor(&b, 1, ne, MOME_DTYPE_F32, 64, 64);
    EXPECT_REJECT(&b, "past the end");
    hb_free(&b);
    one_tensor(&b, 1, ne, MOME_DTYPE_F32, 0, 31);
    EXPECT_REJECT(&b, "past the end");
    hb_free(&b);
    one_tensor(&b, 1, ne, MOME_DTYPE_F32, UINT64_MAX - 31, 64);
    EXPECT_REJECT(&b, "past the end");
    hb_free(&b);
    one_tensor(&b, 1, ne, MOME_DTYPE_F32, 1ull << 63, 64);
    EXPECT_REJECT(&b, "past the end");
    hb_free(&b);
    /* data section cut right after the header */
    memset(&b, 0, sizeof b);
    hb_hdr(&b, 3, 1, 0);
    hb_tinfo(&b, "t", 1, ne, MOME_DTYPE_F32, 0);
    EXPECT_REJECT(&b, "truncated");
    hb_free(&b);
    one_tensor(&b, 1, ne, MOME_DTYPE_F32, 32, 64); /* exactly fits */
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    /* overlaps */
    uint64_t ne16[1] = {16};
    const uint64_t pairs[][2] = {{0, 0}, {0, 32}, {32, 0}, {64, 32}};
    for (size_t i = 0; i < 4; i++) {
        memset(&b, 0, sizeof b);
        hb_hdr(&b, 3, 2, 0);
        hb_tinfo(&b, "a", 1, ne16, MOME_DTYPE_F32, pairs[i][0]);
        hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, pairs[i][1]);
        hb_data(&b, 32, 256);
        EXPECT_REJECT(&b, "overlap");
        hb_free(&b);
    }
    /* touching is fine; unordered offsets are fine */
    memset(&b, 0, sizeof b);
    hb_hdr(&b, 3, 2, 0);
    hb_tinfo(&b, "a", 1, ne16, MOME_DTYPE_F32, 64);
    hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 128);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
}

/* A zero-byte tensor occupies no bytes: ggml's writer gives it the same
 * offset as the next tensor, so it must not count as an overlap; and it must
 * not hide a real overlap between its neighbours either. */
static void test_zero_size_tensor_offsets(void) {
    hb b = {0};
    uint64_t ne16[1] = {16}, ne0[1] = {0};
    hb_hdr(&b, 3, 2, 0);
    hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "c", 1, ne0, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 64);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    hb_hdr(&b, 3, 2, 0);
    hb_tinfo(&b, "c", 1, ne0, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 64);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    hb_hdr(&b, 3, 3, 0);
    hb_tinfo(&b, "a", 1, ne16, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "z", 1, ne0, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, 32);
    hb_data(&b, 32, 128);
    EXPECT_REJECT(&b, "overlap");
    hb_free(&b);
    hb_hdr(&b, 3, 3, 0);
    hb_tinfo(&b, "z", 1, ne0, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "a", 1, ne16, MOME_DTYPE_F32, 0);
    hb_tinfo(&b, "b", 1, ne16, MOME_DTYPE_F32, 32);
    hb_data(&b, 32, 128);
    EXPECT_REJECT(&b, "overlap");
    hb_free(&b);
    /* the writer lays out an empty tensor followed by a non-empty one this way */
    gguf_writer *w;
    REQ0(gguf_writer_init(&w));
    int64_t ne_e[1] = {0}, ne_w[1] = {16};
    float d[16] = {1};
    REQ0(gguf_writer_add_tensor(w, "empty", 1, ne_e, MOME_DTYPE_F32, NULL, 0, GGUF_WRITER_COPY));
    REQ0(gguf_writer_add_tensor(w, "w", 1, ne_w, MOME_DTYPE_F32, d, sizeof d, GGUF_WRITER_COPY));
    void *p, *k;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    gguf_writer_free(w);
    gguf_file *f = expect_accept_(p, n, &k, __LINE__);
    gguf_close(f);
    free(k);
    free(p);
}

static void test_alignment_kv(void) {
    hb b = {0};
    /* wrong types */
    const uint32_t types[] = {GGUF_TYPE_UINT8, GGUF_TYPE_UINT16, GGUF_TYPE_INT32, GGUF_TYPE_UINT64, GGUF_TYPE_FLOAT32};
    for (size_t i = 0; i < 5; i++) {
        hb_hdr(&b, 3, 0, 1);
        hb_str(&b, "general.alignment");
        hb_u32(&b, types[i]);
        hb_u64(&b, 32);
        EXPECT_REJECT(&b, "general.alignment");
        hb_free(&b);
    }
    hb_hdr(&b, 3, 0, 1);
    hb_str(&b, "general.alignment");
    hb_u32(&b, GGUF_TYPE_STRING);
    hb_str(&b, "32");
    EXPECT_REJECT(&b, "general.alignment");
    hb_free(&b);
    const uint32_t bad[] = {0, 3, 48, 100, 1u << 21, UINT32_MAX, 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hb_hdr(&b, 3, 0, 1);
        hb_kv_u32(&b, "general.alignment", bad[i]);
        EXPECT_REJECT(&b, "power of two");
        hb_free(&b);
    }
    /* valid alignments place the data section and offsets accordingly */
    const uint32_t good[] = {1, 8, 64, 4096};
    uint64_t ne[1] = {3};
    for (size_t i = 0; i < 4; i++) {
        hb_hdr(&b, 3, 2, 1);
        hb_kv_u32(&b, "general.alignment", good[i]);
        hb_tinfo(&b, "a", 1, ne, MOME_DTYPE_F32, 0);
        hb_tinfo(&b, "b", 1, ne, MOME_DTYPE_F32, good[i] >= 12 ? good[i] : 12 + (12 % good[i] ? good[i] - 12 % good[i] : 0));
        hb_data(&b, good[i], (good[i] >= 12 ? good[i] : 16) + 12);
        void *k;
        gguf_file *f = EXPECT_ACCEPT(&b, &k);
        if (f) {
            CHECK(f->alignment == good[i], "alignment %u", f->alignment);
            CHECK(f->data_offset % good[i] == 0, "data offset %zu", f->data_offset);
        }
        gguf_close(f);
        free(k);
        hb_free(&b);
        /* a misaligned offset under this alignment */
        if (good[i] > 1) {
            hb_hdr(&b, 3, 1, 1);
            hb_kv_u32(&b, "general.alignment", good[i]);
            hb_tinfo(&b, "a", 1, ne, MOME_DTYPE_F32, good[i] / 2);
            hb_data(&b, good[i], good[i] * 2);
            EXPECT_REJECT(&b, "alignment");
            hb_free(&b);
        }
    }
}

static void test_names(void) {
    hb b = {0};
    hb_hdr(&b, 3, 0, 1);
    hb_kv_u32(&b, "", 1);
    EXPECT_REJECT(&b, "empty key");
    hb_free(&b);
    uint64_t ne[1] = {8};
    hb_hdr(&b, 3, 1, 0);
    hb_tinfo(&b, "", 1, ne, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 32);
    EXPECT_REJECT(&b, "empty tensor name");
    hb_free(&b);
    char n64[65], n63[64];
    memset(n64, 'x', 64);
    n64[64] = 0;
    memset(n63, 'y', 63);
    n63[63] = 0;
    hb_hdr(&b, 3, 1, 0);
    hb_tinfo(&b, n64, 1, ne, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 32);
    EXPECT_REJECT(&b, "max 63");
    hb_free(&b);
    hb_hdr(&b, 3, 1, 0);
    hb_tinfo(&b, n63, 1, ne, MOME_DTYPE_F32, 0);
    hb_data(&b, 32, 32);
    ACCEPT_AND_CLOSE(&b);
    hb_free(&b);
    /* binary junk in a key is reported printably */
    hb_hdr(&b, 3, 0, 2);
    hb_kv_u32(&b, "k\n\x01\xff", 1);
    hb_kv_u32(&b, "k\n\x01\xff", 1);
    EXPECT_REJECT(&b, "duplicate");
    hb_free(&b);
}

static void test_zero_tensors(void) {
    hb b = {0};
    hb_hdr(&b, 3, 0, 0);
    void *k;
    gguf_file *f = EXPECT_ACCEPT(&b, &k);
    if (f) CHECK(f->n_kv == 0 && f->n_tensors == 0, "counts");
    gguf_close(f);
    free(k);
    hb_free(&b);
    /* kvs only, not padded to the alignment: fine (no data section) */
    hb_hdr(&b, 3, 0, 1);
    hb_kv_u32(&b, "x", 5);
    f = EXPECT_ACCEPT(&b, &k);
    uint32_t v = 0;
    if (f) CHECK(gguf_get_u32(f, "x", &v) == 1 && v == 5, "x=%u", v);
    gguf_close(f);
    free(k);
    hb_free(&b);
    /* writer: no tensors */
    gguf_writer *w;
    REQ0(gguf_writer_init(&w));
    gguf_writer_add_str(w, "general.architecture", "none");
    void *p;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    CHECK(n == gguf_writer_size(w) && n % 32 == 0, "size %zu", n);
    gguf_writer_free(w);
    f = expect_accept_(p, n, &k, __LINE__);
    if (f) CHECK(f->n_tensors == 0 && f->n_kv == 1, "counts");
    gguf_close(f);
    free(k);
    free(p);
}

static void test_open_paths(void) {
    gguf_file *f = (gguf_file *)&f;
    int r = gguf_open(g_tmp, &f);
    CHECK(r == MOME_ERR_IO && f == NULL, "directory: r=%d", r);
    check_msg("dir", mome_errmsg(), g_tmp, "regular file", __LINE__);
    const char *missing = tmp_path("does-not-exist.gguf");
    f = (gguf_file *)&f;
    r = gguf_open(missing, &f);
    CHECK(r == MOME_ERR_IO && f == NULL, "missing: r=%d", r);
    check_msg("missing", mome_errmsg(), missing, "No such file", __LINE__);
    char empty[512];
    snprintf(empty, sizeof empty, "%s", tmp_path("empty.gguf"));
    REQ0(write_raw(empty, "", 0));
    f = (gguf_file *)&f;
    r = gguf_open(empty, &f);
    CHECK(r == MOME_ERR_FORMAT && f == NULL, "empty: r=%d", r);
    check_msg("empty", mome_errmsg(), empty, "0 bytes", __LINE__);
    remove(empty);
    f = (gguf_file *)&f;
    r = gguf_open_buffer(NULL, 0, "nullbuf", &f);
    CHECK(r < 0 && f == NULL, "NULL buffer accepted");
    check_msg("nullbuf", mome_errmsg(), "nullbuf", NULL, __LINE__);
    /* /dev/null: a character device */
    f = (gguf_file *)&f;
    r = gguf_open("/dev/null", &f);
    CHECK(r < 0 && f == NULL, "/dev/null accepted");
}

/* ------------------------------------------------------------ roundtrip */

static void test_roundtrip_kv(void) {
    gguf_writer *w;
    REQ0(gguf_writer_init(&w));
    int rc = 0;
    rc |= gguf_writer_add_u8(w, "u8", 255);
    rc |= gguf_writer_add_i8(w, "i8", -128);
    rc |= gguf_writer_add_u16(w, "u16", 65535);
    rc |= gguf_writer_add_i16(w, "i16", -32768);
    rc |= gguf_writer_add_u32(w, "u32", UINT32_MAX);
    rc |= gguf_writer_add_i32(w, "i32", INT32_MIN);
    rc |= gguf_writer_add_u64(w, "u64", UINT64_MAX);
    rc |= gguf_writer_add_i64(w, "i64", INT64_MIN);
    rc |= gguf_writer_add_f32(w, "f32", -3.25e-7f);
    rc |= gguf_writer_add_f64(w, "f64", 1.0 / 3.0);
    rc |= gguf_writer_add_bool(w, "bool_t", 7);
    rc |= gguf_writer_add_bool(w, "bool_f", 0);
    rc |= gguf_writer_add_str(w, "str", "h\xc3\xa9llo \xe2\x96\x81world");
    rc |= gguf_writer_add_str(w, "str_empty", "");
    rc |= gguf_writer_add_strn(w, "str_nul", "a\0b", 3);
    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {0, 65535};
    const int16_t a_i16[] = {-32768, 32767};
    const uint32_t a_u32[] = {0, 1, UINT32_MAX};
    const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX};
    const float a_f32[] = {0.0f, -1.5f, 3.0e38f, 1e-45f};
    const uint8_t a_bool[] = {1, 0, 1};
    const uint64_t a_u64[] = {UINT64_MAX, 0};
    const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    const double a_f64[] = {-0.0, 1e308, 2.5};
    struct { const char *k; uint32_t t; const void *d; size_t n, sz; } arrs[] = {
        {"a_u8", GGUF_TYPE_UINT8, a_u8, 3, 1},     {"a_i8", GGUF_TYPE_INT8, a_i8, 3, 1},
        {"a_u16", GGUF_TYPE_UINT16, a_u16, 2, 2},  {"a_i16", GGUF_TYPE_INT16, a_i16, 2, 2},
        {"a_u32", GGUF_TYPE_UINT32, a_u32, 3, 4},  {"a_i32", GGUF_TYPE_INT32, a_i32, 3, 4},
        {"a_f32", GGUF_TYPE_FLOAT32, a_f32, 4, 4}, {"a_bool", GGUF_TYPE_BOOL, a_bool, 3, 1},
        {"a_u64", GGUF_TYPE_UINT64, a_u64, 2, 8},  {"a_i64", GGUF_TYPE_INT64, a_i64, 2, 8},
        {"a_f64", GGUF_TYPE_FLOAT64, a_f64, 3, 8}, {"a_empty", GGUF_TYPE_FLOAT32, NULL, 0, 4},
    };
    const size_t n_arrs = sizeof arrs / sizeof arrs[0];
    for (size_t i = 0; i < n_arrs; i++) rc |= gguf_writer_add_arr(w, arrs[i].k, arrs[i].t, arrs[i].d, arrs[i].n);
    const char *strs[] = {"<unk>", "", "\xe2\x96\x81the", "x\ny"};
    rc |= gguf_writer_add_arr_str(w, "a_str", strs, NULL, 4);
    const char *bin[] = {"a\0b", "\xff\xfe"};
    const size_t bin_len[] = {3, 2};
    rc |= gguf_writer_add_arr_str(w, "a_bin", bin, bin_len, 2);
    rc |= gguf_writer_add_arr_str(w, "a_str_empty", NULL, NULL, 0);
    REQ0(rc);
    CHECK(gguf_writer_n_kv(w) == 15 + n_arrs + 3, "n_kv %" PRIu64, gguf_writer_n_kv(w));
    void *p;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    gguf_writer_free(w);
    void *k;
    gguf_file *f = expect_accept_(p, n, &k, __LINE__);
    REQUIRE(f, "rejected");
    CHECK(f->version == 3 && f->n_kv == 15 + n_arrs + 3 && f->n_tensors == 0, "header");
    /* order is kept */
    CHECK(gguf_str_eq(f->kv[0].key, "u8") && gguf_str_eq(f->kv[f->n_kv - 1].key, "a_str_empty"), "order");
#define SCALAR(key, T, gt, expect)                                                        \
    do {                                                                                  \
        const gguf_kv *kv = gguf_get_kv(f, key);                                          \
        CHECK(kv && kv->type == gt, "%s type", key);                                      \
        if (kv && kv->type == gt) {                                                       \
            T v_;                                                                         \
            memcpy(&v_, kv->data, sizeof v_);                                             \
            CHECK(v_ == (expect), "%s value", key);                                       \
        }                                                                                 \
    } while (0)
    SCALAR("u8", uint8_t, GGUF_TYPE_UINT8, 255);
    SCALAR("i8", int8_t, GGUF_TYPE_INT8, -128);
    SCALAR("u16", uint16_t, GGUF_TYPE_UINT16, 65535);
    SCALAR("i16", int16_t, GGUF_TYPE_INT16, -32768);
    SCALAR("u32", uint32_t, GGUF_TYPE_UINT32, UINT32_MAX);
    SCALAR("i32", int32_t, GGUF_TYPE_INT32, INT32_MIN);
    SCALAR("u64", uint64_t, GGUF_TYPE_UINT64, UINT64_MAX);
    SCALAR("i64", int64_t, GGUF_TYPE_INT64, INT64_MIN);
    SCALAR("f32", float, GGUF_TYPE_FLOAT32, -3.25e-7f);
    SCALAR("f64", double, GGUF_TYPE_FLOAT64, 1.0 / 3.0);
    SCALAR("bool_t", uint8_t, GGUF_TYPE_BOOL, 1);
    SCALAR("bool_f", uint8_t, GGUF_TYPE_BOOL, 0);
#undef SCALAR
    gguf_str s;
    CHECK(gguf_get_str(f, "str", &s) == 1 && gguf_str_eq(s, "h\xc3\xa9llo \xe2\x96\x81world"), "str");
    CHECK(gguf_get_str(f, "str_empty", &s) == 1 && s.len == 0, "str_empty");
    CHECK(gguf_get_str(f, "str_nul", &s) == 1 && s.len == 3 && memcmp(s.ptr, "a\0b", 3) == 0, "str_nul");
    for (size_t i = 0; i < n_arrs; i++) {
        const gguf_kv *kv = NULL;
        int r = gguf_get_arr(f, arrs[i].k, arrs[i].t, &kv);
        CHECK(r == 1 && kv && kv->n == arrs[i].n, "%s: r=%d", arrs[i].k, r);
        if (r == 1 && kv->n == arrs[i].n && arrs[i].n)
            CHECK(memcmp(kv->data, arrs[i].d, arrs[i].n * arrs[i].sz) == 0, "%s data", arrs[i].k);
    }
    const gguf_kv *kv = NULL;
    CHECK(gguf_get_arr(f, "a_str", GGUF_TYPE_STRING, &kv) == 1 && kv->n == 4, "a_str");
    if (kv && kv->n == 4)
        for (int i = 0; i < 4; i++) CHECK(gguf_str_eq(kv->strs[i], strs[i]), "a_str[%d]", i);
    kv = NULL;
    CHECK(gguf_get_arr(f, "a_bin", GGUF_TYPE_STRING, &kv) == 1 && kv->n == 2, "a_bin");
    if (kv && kv->n == 2)
        for (int i = 0; i < 2; i++)
            CHECK(kv->strs[i].len == bin_len[i] && memcmp(kv->strs[i].ptr, bin[i], bin_len[i]) == 0, "a_bin[%d]", i);
    kv = NULL;
    CHECK(gguf_get_arr(f, "a_str_empty", GGUF_TYPE_STRING, &kv) == 1 && kv->n == 0, "a_str_empty");
    CHECK(gguf_arr_get_num(gguf_get_kv(f, "a_i32"), 0) == (double)INT32_MIN, "arr_get_num");
    CHECK(gguf_arr_get_num(gguf_get_kv(f, "a_i32"), 99) == 0, "arr_get_num out of range");

    /* typed getters: conversions and refusals, messages name the file and key */
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    int bv;
    CHECK(gguf_get_u32(f, "u8", &u32) == 1 && u32 == 255, "u8 as u32");
    CHECK(gguf_get_u32(f, "i8", &u32) < 0, "negative as u32");
    check_msg("get_u32", mome_errmsg(), f->path, "out of range", __LINE__);
    CHECK(gguf_get_i32(f, "u32", &i32) < 0, "u32 max as i32");
    CHECK(gguf_get_u64(f, "u64", &u64) == 1 && u64 == UINT64_MAX, "u64 max");
    CHECK(gguf_get_u64(f, "i64", &u64) < 0, "i64 min as u64");
    CHECK(gguf_get_u32(f, "str", &u32) < 0, "str as u32");
    check_msg("get_u32 str", mome_errmsg(), f->path, "str", __LINE__);
    CHECK(gguf_get_u32(f, "f32", &u32) < 0, "f32 as u32");
    CHECK(gguf_get_u32(f, "bool_t", &u32) < 0, "bool as u32");
    CHECK(gguf_get_u32(f, "a_u32", &u32) < 0, "array as u32");
    CHECK(gguf_get_f32(f, "f64", &f32) == 1 && fabsf(f32 - 1.0f / 3.0f) < 1e-7f, "f64 as f32");
    CHECK(gguf_get_f32(f, "u16", &f32) == 1 && f32 == 65535.0f, "u16 as f32");
    CHECK(gguf_get_f32(f, "str", &f32) < 0, "str as f32");
    CHECK(gguf_get_bool(f, "bool_t", &bv) == 1 && bv == 1, "bool");
    CHECK(gguf_get_bool(f, "u8", &bv) < 0, "u8 as bool");
    CHECK(gguf_get_str(f, "u8", &s) < 0, "u8 as str");
    CHECK(gguf_get_arr(f, "a_i32", GGUF_TYPE_UINT32, &kv) < 0, "i32 array as u32 array");
    CHECK(gguf_get_arr(f, "u8", GGUF_TYPE_UINT8, &kv) < 0, "scalar as array");
    u32 = 77;
    CHECK(gguf_get_u32(f, "absent", &u32) == 0 && u32 == 77, "absent");

    /* formatting into every small capacity stays in bounds and terminated */
    char buf[80];
    for (uint64_t i = 0; i < f->n_kv; i++)
        for (size_t cap = 1; cap <= sizeof buf; cap++) {
            memset(buf, 'Z', sizeof buf);
            gguf_format_value(&f->kv[i], buf, cap);
            CHECK(memchr(buf, 0, cap) != NULL, "kv %" PRIu64 " cap %zu: not terminated", i, cap);
            for (size_t j = cap; j < sizeof buf; j++)
                if (buf[j] != 'Z') { CHECK(0, "kv %" PRIu64 " cap %zu: wrote past cap", i, cap); break; }
        }
    gguf_format_value(gguf_get_kv(f, "a_i32"), buf, sizeof buf);
    CHECK(strstr(buf, "-2147483648") != NULL, "format: %s", buf);

    /* copy every kv through gguf_writer_add_kv: identical bytes */
    REQ0(gguf_writer_init(&w));
    for (uint64_t i = 0; i < f->n_kv; i++) CHECK(gguf_writer_add_kv(w, &f->kv[i]) == 0, "add_kv %" PRIu64 ": %s", i, mome_errmsg());
    void *p2;
    size_t n2;
    REQ0(gguf_writer_write_buffer(w, &p2, &n2));
    CHECK(n2 == n && memcmp(p, p2, n) == 0, "add_kv copy differs (%zu vs %zu bytes)", n2, n);
    free(p2);
    gguf_writer_free(w);
    gguf_close(f);
    free(k);
    free(p);
}

static void test_roundtrip_tensors(void) {
    gguf_writer *w;
    REQ0(gguf_writer_init(&w));
    REQ0(gguf_writer_set_alignment(w, 64));
    CHECK(gguf_writer_alignment(w) == 64, "alignment");
    float a[3 * 5];
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f;
    uint16_t h[64];
    for (int i = 0; i < 64; i++) h[i] = quant_f32_to_f16((float)i);
    float q[64];
    for (int i = 0; i < 64; i++) q[i] = sinf((float)i);
    uint8_t q41[2 * 20], q80[2 * 34];
    quant_quantize_row(MOME_DTYPE_Q4_1, q, q41, 64);
    quant_quantize_row(MOME_DTYPE_Q8_0, q, q80, 64);
    int64_t ne_a[2] = {3, 5}, ne_h[4] = {4, 4, 2, 2}, ne_q[1] = {64}, ne_z[3] = {8, 2, 2}, ne_e[1] = {0};
    REQ0(gguf_writer_add_tensor(w, "a", 2, ne_a, MOME_DTYPE_F32, a, sizeof a, GGUF_WRITER_REF));
    REQ0(gguf_writer_add_tensor(w, "h", 4, ne_h, MOME_DTYPE_F16, h, sizeof h, GGUF_WRITER_COPY));
    REQ0(gguf_writer_add_tensor(w, "q41", 1, ne_q, MOME_DTYPE_Q4_1, q41, sizeof q41, GGUF_WRITER_COPY));
    REQ0(gguf_writer_add_tensor(w, "q80", 1, ne_q, MOME_DTYPE_Q8_0, q80, sizeof q80, GGUF_WRITER_REF));
    REQ0(gguf_writer_add_tensor(w, "zeros", 3, ne_z, MOME_DTYPE_F32, NULL, 8 * 2 * 2 * 4, GGUF_WRITER_COPY));
    REQ0(gguf_writer_add_tensor(w, "empty", 1, ne_e, MOME_DTYPE_F32, NULL, 0, GGUF_WRITER_COPY));
    /* a copied tensor no longer depends on the caller's buffer; a referenced one does */
    h[0] = 0xBEEF;
    a[0] = 42.0f;
    void *p;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    CHECK(n == gguf_writer_size(w), "size %zu vs %zu", n, gguf_writer_size(w));
    CHECK(n % 64 == 0, "trailing padding");
    void *k;
    gguf_file *f = expect_accept_(p, n, &k, __LINE__);
    REQUIRE(f, "rejected");
    CHECK(f->alignment == 64 && f->data_offset % 64 == 0, "alignment %u offset %zu", f->alignment, f->data_offset);
    CHECK(f->n_tensors == 6 && f->n_kv == 1, "counts");
    const gguf_tensor *t = gguf_find_tensor(f, "a");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 3 && t->ne[1] == 5 && t->ne[2] == 1 && t->type == MOME_DTYPE_F32 &&
              t->nbytes == sizeof a && memcmp(t->data, a, sizeof a) == 0,
          "a");
    t = gguf_find_tensor(f, "h");
    CHECK(t && t->n_dims == 4 && t->ne[3] == 2 && t->type == MOME_DTYPE_F16 && t->nbytes == sizeof h &&
              ((const uint16_t *)t->data)[0] == quant_f32_to_f16(0.0f) &&
              memcmp((const uint16_t *)t->data + 1, h + 1, sizeof h - 2) == 0,
          "h");
    t = gguf_find_tensor(f, "q41");
    CHECK(t && t->type == MOME_DTYPE_Q4_1 && t->nbytes == sizeof q41 && memcmp(t->data, q41, sizeof q41) == 0, "q41");
    t = gguf_find_tensor(f, "q80");
    CHECK(t && t->type == MOME_DTYPE_Q8_0 && t->nbytes == sizeof q80 && memcmp(t->data, q80, sizeof q80) == 0, "q80");
    t = gguf_find_tensor(f, "zeros");
    if (t) {
        int nz = 0;
        for (size_t i = 0; i < t->nbytes; i++) nz |= ((const uint8_t *)t->data)[i];
        CHECK(t->nbytes == 128 && nz == 0, "zeros: %zu bytes", t->nbytes);
    } else CHECK(0, "zeros missing");
    t = gguf_find_tensor(f, "empty");
    CHECK(t && t->nbytes == 0, "empty");
    for (uint64_t i = 0; i < f->n_tensors; i++)
        CHECK(((const uint8_t *)f->tensors[i].data - f->map) % 64 == 0, "tensor %" PRIu64 " misaligned", i);
    CHECK(gguf_find_tensor(f, "nope") == NULL, "absent tensor");
    gguf_close(f);
    free(k);
    free(p);
    gguf_writer_free(w);
}

static void test_writer_refuses(void) {
    gguf_writer *w;
    REQ0(gguf_writer_init(&w));
    float d[64] = {0};
    int64_t ne[4] = {8, 1, 1, 1};
    CHECK(gguf_writer_add_u32(w, "", 1) == MOME_ERR_ARG, "empty key");
    CHECK(gguf_writer_add_u64(w, "general.alignment", 32) == MOME_ERR_ARG, "alignment u64");
    CHECK(gguf_writer_add_str(w, "general.alignment", "32") == MOME_ERR_ARG, "alignment str");
    CHECK(gguf_writer_set_alignment(w, 0) == MOME_ERR_ARG, "alignment 0");
    CHECK(gguf_writer_set_alignment(w, 48) == MOME_ERR_ARG, "alignment 48");
    CHECK(gguf_writer_set_alignment(w, 1u << 21) == MOME_ERR_ARG, "alignment 2M");
    CHECK(gguf_writer_alignment(w) == 32 && gguf_writer_n_kv(w) == 0, "state unchanged");
    const uint8_t badb[2] = {0, 2};
    CHECK(gguf_writer_add_arr(w, "b", GGUF_TYPE_BOOL, badb, 2) == MOME_ERR_ARG, "bool 2");
    CHECK(gguf_writer_add_arr(w, "s", GGUF_TYPE_STRING, d, 2) == MOME_ERR_ARG, "arr of str via add_arr");
    CHECK(gguf_writer_add_arr(w, "s", GGUF_TYPE_ARRAY, d, 2) == MOME_ERR_ARG, "nested");
    CHECK(gguf_writer_add_arr(w, "s", 99, d, 2) == MOME_ERR_ARG, "unknown elem");
    CHECK(gguf_writer_add_tensor(w, "t", 0, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "n_dims 0");
    CHECK(gguf_writer_add_tensor(w, "t", 5, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "n_dims 5");
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, 4, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "type 4");
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, 1000, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "type 1000");
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, MOME_DTYPE_F32, d, 31, GGUF_WRITER_COPY) == MOME_ERR_ARG, "nbytes");
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, MOME_DTYPE_Q8_0, d, 34, GGUF_WRITER_COPY) == MOME_ERR_ARG, "block");
    CHECK(strstr(mome_errmsg(), "block size") != NULL, "msg: %s", mome_errmsg());
    int64_t neg[1] = {-8};
    CHECK(gguf_writer_add_tensor(w, "t", 1, neg, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "negative");
    int64_t big[2] = {INT64_MAX, 2};
    CHECK(gguf_writer_add_tensor(w, "t", 2, big, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "overflow");
    char n64[65];
    memset(n64, 'x', 64);
    n64[64] = 0;
    CHECK(gguf_writer_add_tensor(w, n64, 1, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "name 64");
    CHECK(gguf_writer_add_tensor(w, "", 1, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "name empty");
    CHECK(gguf_writer_n_tensors(w) == 0, "state unchanged");
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == 0, "ok: %s", mome_errmsg());
    CHECK(gguf_writer_add_tensor(w, "t", 1, ne, MOME_DTYPE_F32, d, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "dup");
    CHECK(strstr(mome_errmsg(), "duplicate tensor name 't'") != NULL, "msg: %s", mome_errmsg());
    CHECK(gguf_writer_n_tensors(w) == 1, "one tensor");
    /* replace keeps position; remove; alignment key follows set/remove */
    CHECK(gguf_writer_add_u32(w, "x", 1) == 0 && gguf_writer_add_str(w, "y", "y") == 0, "add");
    CHECK(gguf_writer_add_str(w, "x", "replaced") == 0, "replace");
    CHECK(gguf_writer_set_alignment(w, 128) == 0 && gguf_writer_alignment(w) == 128, "align 128");
    CHECK(gguf_writer_n_kv(w) == 3, "n_kv %" PRIu64, gguf_writer_n_kv(w));
    CHECK(gguf_writer_remove_key(w, "y") == 1 && gguf_writer_remove_key(w, "y") == 0, "remove");
    void *p;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    void *k;
    gguf_file *f = expect_accept_(p, n, &k, __LINE__);
    if (f) {
        gguf_str s;
        CHECK(f->n_kv == 2 && gguf_str_eq(f->kv[0].key, "x") && gguf_get_str(f, "x", &s) == 1 && gguf_str_eq(s, "replaced"),
              "replace order");
        CHECK(f->alignment == 128 && f->data_offset == 128, "alignment %u data %zu", f->alignment, f->data_offset);
    }
    gguf_close(f);
    free(k);
    free(p);
    CHECK(gguf_writer_remove_key(w, "general.alignment") == 1 && gguf_writer_alignment(w) == 32, "alignment reset");
    /* many entries (hash tables grow) */
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "k.%d", i);
        if (gguf_writer_add_i32(w, key, i)) { CHECK(0, "add %d", i); break; }
        snprintf(key, sizeof key, "t.%d", i);
        if (gguf_writer_add_tensor(w, key, 1, ne, MOME_DTYPE_F32, NULL, 32, GGUF_WRITER_COPY)) { CHECK(0, "t %d", i); break; }
    }
    CHECK(gguf_writer_add_i32(w, "k.1234", -1) == 0 && gguf_writer_n_kv(w) == 3001, "replace among many");
    CHECK(gguf_writer_add_tensor(w, "t.2999", 1, ne, MOME_DTYPE_F32, NULL, 32, GGUF_WRITER_COPY) == MOME_ERR_ARG, "dup among many");
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    f = expect_accept_(p, n, &k, __LINE__);
    if (f) {
        int32_t v = 0;
        CHECK(f->n_tensors == 3001 && f->n_kv == 3001, "counts");
        CHECK(gguf_get_i32(f, "k.1234", &v) == 1 && v == -1, "k.1234 = %d", v);
        CHECK(gguf_get_i32(f, "k.2999", &v) == 1 && v == 2999, "k.2999 = %d", v);
    }
    gguf_close(f);
    free(k);
    free(p);
    gguf_writer_free(w);
}

static int count_tmp_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void test_write_file_atomic(void) {
    gguf_writer *w;
    REQ0(build_small(&w));
    gguf_writer_set_fsync(w, 1); /* the durable path: fsync file and directory */
    char path[512];
    snprintf(path, sizeof path, "%s", tmp_path("atomic.gguf"));
    REQ0(gguf_writer_write_file(w, path));
    void *p;
    size_t n, fn;
    REQ0(gguf_writer_write_buffer(w, &p, &n));
    void *fb = read_raw(path, &fn);
    CHECK(fb && fn == n && memcmp(fb, p, n) == 0, "file differs from buffer");
    free(fb);
    CHECK(count_tmp_leftovers(g_tmp) == 0, "temporary file left behind");

    /* overwrite while the old file is open: the old mapping keeps its bytes */
    gguf_file *old = NULL;
    REQ0(gguf_open(path, &old));
    const gguf_tensor *ot = gguf_find_tensor(old, "t.f32");
    float first = ot ? ((const float *)ot->data)[0] : 0;
    gguf_writer *w2;
    REQ0(gguf_writer_init(&w2));
    float big[4096];
    for (int i = 0; i < 4096; i++) big[i] = 9.0f;
    int64_t ne[2] = {64, 64};
    gguf_writer_add_tensor(w2, "t.f32", 2, ne, MOME_DTYPE_F32, big, sizeof big, GGUF_WRITER_REF);
    REQ0(gguf_writer_write_file(w2, path));
    CHECK(ot && ((const float *)ot->data)[0] == first && first == 0.5f, "old mapping changed");
    gguf_close(old);
    gguf_file *nf = NULL;
    CHECK(gguf_open(path, &nf) == 0 && nf->n_tensors == 1 && ((const float *)nf->tensors[0].data)[4095] == 9.0f,
          "new file");
    gguf_close(nf);

    /* failure: missing directory */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.gguf", g_tmp);
    int r = gguf_writer_write_file(w, bad);
    CHECK(r == MOME_ERR_IO, "missing dir: r=%d", r);
    check_msg("missing dir", mome_errmsg(), bad, "No such file", __LINE__);
    /* failure: target is a directory -> rename fails, nothing left behind */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tmp_path("adir"));
    REQ0(mkdir(dir, 0755));
    r = gguf_writer_write_file(w, dir);
    CHECK(r == MOME_ERR_IO, "dir target: r=%d", r);
    check_msg("dir target", mome_errmsg(), dir, "rename", __LINE__);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "directory clobbered");
    CHECK(count_tmp_leftovers(g_tmp) == 0, "temporary file left behind after failure");
    rmdir(dir);
    /* a stale temporary from a crashed run does not block the write */
    char stale[600];
    snprintf(stale, sizeof stale, "%s.tmp.%ld", path, (long)getpid());
    REQ0(write_raw(stale, "junk", 4));
    CHECK(gguf_writer_write_file(w, path) == 0, "%s", mome_errmsg());
    fb = read_raw(path, &fn);
    CHECK(fb && fn == n && memcmp(fb, p, n) == 0, "file differs after stale tmp");
    free(fb);
    remove(stale);
    CHECK(count_tmp_leftovers(g_tmp) == 0, "leftover");
    CHECK(gguf_writer_write_file(w, "") == MOME_ERR_ARG, "empty path");
    remove(path);
    free(p);
    gguf_writer_free(w);
    gguf_writer_free(w2);
}

/* ------------------------------------------------------------------ fuzz */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return test_xorshift(&g_rng); }

static void test_fuzz_mutations(void) {
    hb b;
    REQ0(small_buffer(&b));
    uint8_t *m = malloc(b.n);
    REQUIRE(m, "oom");
    int accepted = 0;
    const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0x20, 0x40};
    for (int it = 0; it < 3000; it++) {
        memcpy(m, b.p, b.n);
        size_t n = b.n;
        int kind = (int)(rnd() % 4);
        int flips = 1 + (int)(rnd() % 4);
        for (int j = 0; j < flips; j++) {
            size_t at = (size_t)(rnd() % n);
            if (kind == 0 || kind == 3) m[at] ^= (uint8_t)(1u << (rnd() % 8));
            else if (kind == 1) m[at] = interesting[rnd() % sizeof interesting];
            else { /* stomp an aligned 8-byte word: counts, lengths, offsets */
                at &= ~(size_t)7;
                uint64_t v = rnd();
                if (rnd() & 1) v >>= (rnd() % 64);
                if (at + 8 <= n) memcpy(m + at, &v, 8);
            }
        }
        if (kind == 3) n = (size_t)(rnd() % (n + 1));
        void *k;
        gguf_file *f = NULL;
        int r = open_copy(m, n, "fuzz.gguf", &f, &k);
        if (r == MOME_OK) {
            accepted++;
            (void)touch_all(f);
            gguf_close(f);
            free(k);
        } else {
            const char *msg = mome_errmsg();
            if (!strstr(msg, "fuzz.gguf")) { CHECK(0, "iteration %d: message lacks name: %s", it, msg); break; }
        }
    }
    fprintf(stderr, "  fuzz: %d of 3000 mutants accepted\n", accepted);
    free(m);
    hb_free(&b);
}

/* ------------------------------------------------------------ real files */

/* test_shared_path() with a literal trips gcc -O2 -Wformat-truncation in
 * test.h, so build the path here. NULL if absent. */
static const char *shared_file(const char *rel) {
    static char buf[8192];
    const char *d = test_shared_dir();
    if (!d) return NULL;
    snprintf(buf, sizeof buf, "%.4000s/%.4000s", d, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

static void test_real_stories260k(void) {
    const char *path = shared_file("data/models/stories260K.gguf");
    if (!path) SKIP("stories260K.gguf not found under the shared folder");
    gguf_file *f = NULL;
    REQ0(gguf_open(path, &f));
    CHECK(f->version == 3 && f->n_tensors == 48 && f->n_kv == 19, "v%u %" PRIu64 " tensors %" PRIu64 " kv", f->version,
          f->n_tensors, f->n_kv);
    CHECK(f->data_offset == 14176, "data offset %zu", f->data_offset);
    const gguf_kv *kv = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &kv) == 1 && kv->n == 512, "tokens");
    if (kv) CHECK(gguf_str_eq(kv->strs[3], "<0x00>"), "token 3");
    uint32_t v = 0;
    CHECK(gguf_get_u32(f, "llama.block_count", &v) == 1 && v == 5, "blocks %u", v);
    const gguf_tensor *t = gguf_find_tensor(f, "blk.4.ffn_down.weight");
    CHECK(t && t->ne[0] == 172 && t->ne[1] == 64 && t->type == MOME_DTYPE_F32, "ffn_down");
    (void)touch_all(f);
    gguf_close(f);
}

static void test_real_smollm2(void) {
    const char *path = test_default_model();
    if (!path) SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf not found");
    gguf_file *f = NULL;
    double t0 = mome_time_s();
    REQ0(gguf_open(path, &f));
    double dt = mome_time_s() - t0;
    CHECK(f->n_tensors == 272 && f->n_kv == 33, "%" PRIu64 " tensors %" PRIu64 " kv", f->n_tensors, f->n_kv);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == MOME_DTYPE_Q8_0 && t->ne[0] == 576 && t->ne[1] == 49152, "token_embd");
    t = gguf_find_tensor(f, "blk.0.ffn_down.weight");
    CHECK(t && t->type == MOME_DTYPE_Q4_1 && t->ne[0] == 1536 && t->ne[1] == 576, "ffn_down");
    const gguf_kv *kv = NULL;
    CHECK(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &kv) == 1 && kv->n == 48900, "merges");
    CHECK(dt < 2.0, "open took %.2f s", dt);
    gguf_close(f);
}

/* ------------------------------------------------------------ tinymodel */

static void test_tinymodel(void) {
    const enum mome_dtype types[] = {MOME_DTYPE_F32, MOME_DTYPE_Q8_0, MOME_DTYPE_Q4_1, MOME_DTYPE_F16};
    for (int ti = 0; ti < 4; ti++) {
        tinymodel_params p = tinymodel_default_params();
        p.wtype = types[ti];
        p.tied = ti == 1;
        p.n_vocab = 300 + 7 * ti;
        char path[512];
        snprintf(path, sizeof path, "%s", tmp_path("tiny.gguf"));
        REQ0(tinymodel_write(path, &p));
        gguf_file *f = NULL;
        REQ0(gguf_open(path, &f));
        const int L = p.n_layer, C = p.n_embd, hd = C / p.n_head;
        CHECK(f->n_tensors == (uint64_t)(2 + !p.tied + 9 * L), "tensors %" PRIu64, f->n_tensors);
        uint32_t v;
        gguf_str s;
        CHECK(gguf_get_str(f, "general.architecture", &s) == 1 && gguf_str_eq(s, "llama"), "arch");
        CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s) == 1 && gguf_str_eq(s, "llama"), "tok model");
        CHECK(gguf_get_u32(f, "llama.block_count", &v) == 1 && v == (uint32_t)L, "blocks");
        CHECK(gguf_get_u32(f, "llama.attention.head_count_kv", &v) == 1 && v == (uint32_t)p.n_head_kv, "kv heads");
        CHECK(gguf_get_u32(f, "llama.rope.dimension_count", &v) == 1 && v == (uint32_t)hd, "rope dims");
        CHECK(gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &v) == 1 && v == 1, "bos");
        CHECK(gguf_get_u32(f, "tokenizer.ggml.eos_token_id", &v) == 1 && v == 2, "eos");
        const gguf_kv *tk = NULL, *tt = NULL, *sc = NULL;
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tk) == 1 && tk->n == (uint64_t)p.n_vocab, "tokens");
        CHECK(gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &tt) == 1 && tt->n == (uint64_t)p.n_vocab, "types");
        CHECK(gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &sc) == 1 && sc->n == (uint64_t)p.n_vocab, "scores");
        if (tk && tt && tk->n == (uint64_t)p.n_vocab && tt->n == tk->n) {
            CHECK(gguf_str_eq(tk->strs[0], "<unk>") && gguf_str_eq(tk->strs[1], "<s>") && gguf_str_eq(tk->strs[2], "</s>"), "specials");
            CHECK(gguf_str_eq(tk->strs[3], "<0x00>") && gguf_str_eq(tk->strs[258], "<0xFF>"), "bytes");
            CHECK(gguf_arr_get_num(tt, 3) == 6 && gguf_arr_get_num(tt, 258) == 6 && gguf_arr_get_num(tt, 1) == 3 &&
                      gguf_arr_get_num(tt, 259) == 1 && gguf_arr_get_num(tt, 0) == 2, "token types");
            /* word pieces are unique */
            int dup = 0;
            for (uint64_t i = 259; i < tk->n && !dup; i++)
                for (uint64_t j = 259; j < i; j++)
                    if (tk->strs[i].len == tk->strs[j].len && memcmp(tk->strs[i].ptr, tk->strs[j].ptr, tk->strs[i].len) == 0) { dup = 1; break; }
            CHECK(!dup, "duplicate word piece");
        }
        const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
        CHECK(t && t->type == (uint32_t)p.wtype && t->ne[0] == C && t->ne[1] == p.n_vocab, "token_embd");
        CHECK((gguf_find_tensor(f, "output.weight") != NULL) == !p.tied, "output head");
        t = gguf_find_tensor(f, "blk.1.attn_k.weight");
        CHECK(t && t->ne[0] == C && t->ne[1] == p.n_head_kv * hd, "attn_k");
        t = gguf_find_tensor(f, "blk.1.ffn_down.weight");
        CHECK(t && t->ne[0] == p.n_ff && t->ne[1] == C, "ffn_down");
        t = gguf_find_tensor(f, "blk.0.ffn_norm.weight");
        CHECK(t && t->type == MOME_DTYPE_F32 && t->n_dims == 1 && t->ne[0] == C, "ffn_norm");
        if (t) {
            float x = ((const float *)t->data)[0];
            CHECK(x > 0.89f && x < 1.11f, "norm weight %g", x);
        }
        t = gguf_find_tensor(f, "blk.0.attn_q.weight");
        if (t && t->type == MOME_DTYPE_F32) {
            const float *q = t->data;
            float mx = 0;
            for (int i = 0; i < C * C; i++) mx = fmaxf(mx, fabsf(q[i]));
            CHECK(mx > 0.1f && mx <= sqrtf(3.0f / (float)C) + 1e-6f, "attn_q range %g", mx);
        }
        /* deterministic */
        size_t n1, n2;
        void *b1 = read_raw(path, &n1);
        REQ0(tinymodel_write(path, &p));
        void *b2 = read_raw(path, &n2);
        CHECK(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0, "not deterministic");
        free(b1);
        free(b2);
        gguf_close(f);
        remove(path);
    }
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 100;
    CHECK(tinymodel_write(tmp_path("bad.gguf"), &p) == MOME_ERR_ARG, "n_vocab 100 accepted");
    p = tinymodel_default_params();
    p.wtype = MOME_DTYPE_Q8_0;
    p.n_embd = 48; /* not a multiple of 32 */
    p.n_head = 4;
    CHECK(tinymodel_write(tmp_path("bad.gguf"), &p) != MOME_OK, "n_embd 48 Q8_0 accepted");
    CHECK(count_tmp_leftovers(g_tmp) == 0, "leftover");
}

/* With stories260K's shape, tinymodel gives the same tensor table and keys. */
static void test_tinymodel_matches_stories260k(void) {
    const char *ref = shared_file("data/models/stories260K.gguf");
    if (!ref) SKIP("stories260K.gguf not found under the shared folder");
    gguf_file *r = NULL, *f = NULL;
    REQ0(gguf_open(ref, &r));
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 512;
    p.n_embd = 64;
    p.n_layer = 5;
    p.n_head = 8;
    p.n_head_kv = 4;
    p.n_ff = 172;
    p.n_ctx = 2048;
    gguf_writer *w;
    REQ0(tinymodel_build(&p, &w));
    void *buf;
    size_t n;
    REQ0(gguf_writer_write_buffer(w, &buf, &n));
    gguf_writer_free(w);
    REQ0(gguf_open_buffer(buf, n, "tiny", &f));
    CHECK(f->n_tensors == r->n_tensors, "%" PRIu64 " vs %" PRIu64 " tensors", f->n_tensors, r->n_tensors);
    for (uint64_t i = 0; i < r->n_tensors && i < f->n_tensors; i++) {
        const gguf_tensor *a = &r->tensors[i], *b = &f->tensors[i];
        CHECK(a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0 && a->n_dims == b->n_dims &&
                  memcmp(a->ne, b->ne, sizeof a->ne) == 0 && a->type == b->type && a->nbytes == b->nbytes &&
                  a->offset == b->offset,
              "tensor %" PRIu64 " (%.*s) differs", i, (int)a->name.len, a->name.ptr);
    }
    for (uint64_t i = 0; i < r->n_kv; i++) {
        const gguf_kv *a = &r->kv[i];
        if (gguf_str_eq(a->key, "tokenizer.ggml.seperator_token_id") || gguf_str_eq(a->key, "tokenizer.ggml.padding_token_id"))
            continue;
        int found = 0;
        for (uint64_t j = 0; j < f->n_kv; j++) {
            const gguf_kv *b = &f->kv[j];
            if (a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0) {
                found = 1;
                CHECK(a->type == b->type && a->arr_type == b->arr_type, "key %.*s: type differs", (int)a->key.len, a->key.ptr);
                if (a->type == GGUF_TYPE_UINT32 && !gguf_str_eq(a->key, "general.name"))
                    CHECK(memcmp(a->data, b->data, 4) == 0, "key %.*s: value differs", (int)a->key.len, a->key.ptr);
            }
        }
        CHECK(found, "key %.*s missing from tinymodel", (int)a->key.len, a->key.ptr);
    }
    gguf_close(f);
    gguf_close(r);
    free(buf);
}

/* argv[1]: run only the tests whose name contains it */
static const char *g_filter;
#define RUNF(fn) do { if (!g_filter || strstr(#fn, g_filter)) RUN(fn); } while (0)

int main(int argc, char **argv) {
    g_filter = argc > 1 ? argv[1] : NULL;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mome_test_gguf.XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUNF(test_magic);
    RUNF(test_version);
    RUNF(test_truncation_every_offset);
    RUNF(test_counts_absurd);
    RUNF(test_string_lengths);
    RUNF(test_array_counts);
    RUNF(test_nested_and_unknown_types);
    RUNF(test_bool_values);
    RUNF(test_duplicates);
    RUNF(test_tensor_shapes);
    RUNF(test_tensor_types);
    RUNF(test_tensor_offsets);
    RUNF(test_zero_size_tensor_offsets);
    RUNF(test_alignment_kv);
    RUNF(test_names);
    RUNF(test_zero_tensors);
    RUNF(test_open_paths);
    RUNF(test_roundtrip_kv);
    RUNF(test_roundtrip_tensors);
    RUNF(test_writer_refuses);
    RUNF(test_write_file_atomic);
    RUNF(test_fuzz_mutations);
    RUNF(test_real_stories260k);
    RUNF(test_real_smollm2);
    RUNF(test_tinymodel);
    RUNF(test_tinymodel_matches_stories260k);
    nftw(g_tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
