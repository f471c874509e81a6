/* util.h - shared internals: error reporting, checked size arithmetic, timing.
 *
 * The library never exits on bad input. A failing function records one
 * human-readable message in a thread-local buffer with mome_seterr() and
 * returns a negative mome_status; the CLI prints mome_errmsg() and exits.
 * Sizes that come from files go through mome_mul_size/mome_add_size, which
 * report overflow instead of wrapping.
 */
#ifndef MOME_UTIL_H
#define MOME_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "mome.h"

#if defined(__GNUC__)
#define MOME_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MOME_PRINTF(a, b)
#endif

/* Record an error message (thread-local) and return MOME_ERR. The message
 * should name the file/field and say what is wrong. */
int mome_seterr(const char *fmt, ...) MOME_PRINTF(1, 2);
/* Same, but with an explicit status code. */
int mome_seterr_code(int code, const char *fmt, ...) MOME_PRINTF(2, 3);

/* Always-on invariant check for OUR bugs (never for user data). */
#define MOME_ASSERT(x)                                                        \
    do {                                                                      \
        if (!(x)) {                                                           \
            fprintf(stderr, "mome: internal error %s:%d: %s\n", __FILE__,     \
                    __LINE__, #x);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Checked arithmetic: return 0 on success, -1 on overflow. */
static inline int mome_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}
static inline int mome_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return -1;
    *out = a + b;
    return 0;
}

/* Allocation helpers that set the error message on failure. */
void *mome_malloc(size_t n);
void *mome_calloc(size_t n, size_t sz);
/* 64-byte aligned allocation (free with free()). */
void *mome_aligned_alloc(size_t n);

/* Reads a text file, or only its first max_bytes (> 0), into a new
 * NUL-terminated buffer; a UTF-8 sequence cut by the limit is dropped.
 * Returns MOME_OK with *out and *len, or an error naming the file. */
int mome_read_text(const char *path, int64_t max_bytes, char **out, size_t *len);

/* Monotonic time in seconds. */
double mome_time_s(void);

/* SHA-256 of a file; hex must hold 65 bytes. Returns MOME_OK or error. */
int mome_sha256_file(const char *path, char hex[65]);
void mome_sha256(const void *data, size_t n, uint8_t out[32]);

/* A growable NUL-terminated string (chat rendering, the server's bodies,
 * greedy answers). After a failed allocation oom is set and further adds
 * are ignored; the caller frees p. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;
void sb_add(sbuf *b, const char *s, size_t k);
void sb_str(sbuf *b, const char *s);

#endif
