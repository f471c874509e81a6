/* test.h - the tiny test harness every tests/test_*.c uses.
 *
 * Each test file is one executable: it defines test functions, lists them in
 * main() with RUN(fn), and returns test_summary(). CHECK records a failure and
 * goes on; REQUIRE returns from the current test. Every executable prints one
 * line per test and closes with "N passed, N failed[, N skipped]", exiting
 * non-zero on any failure. A test that cannot run (missing shared data) calls
 * SKIP("why") and counts as skipped, never as passed.
 */
#ifndef MOME_TEST_H
#define MOME_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64: the fuzzers' deterministic stream (*s must not start at 0) */
static inline uint64_t test_xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int test_n_pass, test_n_fail, test_n_skip;
static int test_cur_failed, test_cur_skipped;
static const char *test_cur_name;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            test_cur_failed = 1;                                              \
            fprintf(stderr, "  FAIL %s (%s:%d): %s: ", test_cur_name,         \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

#define REQUIRE(cond, ...)                                                    \
    do {                                                                      \
        if (!(cond)) {                                                        \
            test_cur_failed = 1;                                              \
            fprintf(stderr, "  FAIL %s (%s:%d): %s: ", test_cur_name,         \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            return;                                                           \
        }                                                                     \
    } while (0)

#define SKIP(...)                                                             \
    do {                                                                      \
        test_cur_skipped = 1;                                                 \
        fprintf(stderr, "  SKIP %s: ", test_cur_name);                        \
        fprintf(stderr, __VA_ARGS__);                                         \
        fprintf(stderr, "\n");                                                \
        return;                                                               \
    } while (0)

#define RUN(fn)                                                               \
    do {                                                                      \
        test_cur_name = #fn;                                                  \
        test_cur_failed = 0;                                                  \
        test_cur_skipped = 0;                                                 \
        fn();                                                                 \
        if (test_cur_failed) {                                                \
            test_n_fail++;                                                    \
            printf("FAIL %s\n", #fn);                                         \
        } else if (test_cur_skipped) {                                        \
            test_n_skip++;                                                    \
            printf("skip %s\n", #fn);                                         \
        } else {                                                              \
            test_n_pass++;                                                    \
            printf("ok   %s\n", #fn);                                         \
        }                                                                     \
        fflush(stdout);                                                       \
    } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed, %d skipped\n", test_n_pass, test_n_fail,
           test_n_skip);
    return test_n_fail ? 1 : 0;
}

/* Where the shared data folder is: $MOME_SHARED, else ../shared relative to
 * the repository root (tests run from the root). Returns NULL if absent. */
static inline const char *test_shared_dir(void) {
    static char buf[4096];
    const char *e = getenv("MOME_SHARED");
    if (e && *e) return e;
    snprintf(buf, sizeof buf, "../shared");
    FILE *f = fopen("../shared/data/README.md", "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Path of a file under the shared folder, or NULL if it does not exist. */
static inline const char *test_shared_path(const char *rel) {
    static char buf[8192];
    const char *d = test_shared_dir();
    if (!d) return NULL;
    if (strlen(d) + strlen(rel) + 2 > sizeof buf) return NULL;
    memcpy(buf, d, strlen(d));
    buf[strlen(d)] = '/';
    strcpy(buf + strlen(d) + 1, rel);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Path of the default model (SmolLM2-135M-Instruct Q4_1): $MOME_MODELS or
 * ./models. NULL if absent. */
static inline const char *test_default_model(void) {
    static char buf[4096];
    const char *e = getenv("MOME_MODELS");
    snprintf(buf, sizeof buf, "%s/SmolLM2-135M-Instruct.Q4_1.gguf",
             (e && *e) ? e : "models");
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Path of a model file in $MOME_MODELS or ./models (e.g. the Qwen files
 * tools/fetch_qwen.sh fetches). NULL if absent. */
static inline const char *test_model_file(const char *name) {
    static char buf[4096];
    const char *e = getenv("MOME_MODELS");
    snprintf(buf, sizeof buf, "%s/%s", (e && *e) ? e : "models", name);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Path of a file of the llama.cpp source tree the reference build unpacks
 * (tests/reference/setup.sh: $MOME_REF, default .ref, then llama.cpp/REL),
 * e.g. "models/ggml-vocab-qwen2.gguf". NULL if absent. */
static inline const char *test_ref_path(const char *rel) {
    static char buf[4096];
    const char *e = getenv("MOME_REF");
    snprintf(buf, sizeof buf, "%s/llama.cpp/%s", (e && *e) ? e : ".ref", rel);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

#endif
