/* bench_batch.c - decode throughput of mome_decode_batch (n sequences, one
 * forward pass per step) against the same tokens decoded one sequence at a
 * time with mome_decode, for n = 1, 2, 4, 8, 16.
 *
 *   build/bench_batch [MODEL.gguf] [STEPS] [THREADS]
 *
 * Each sequence holds its own short prompt (different lengths); both ways
 * feed the same greedy tokens, and the logits are checked to be the same
 * bits (batch invariance), so the comparison is of equal work. Prints one
 * line per n: tokens/s sequential, tokens/s batched, and the ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mome.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t argmax(const float *x, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

#define NMAX 16

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const int steps = argc > 2 ? atoi(argv[2]) : 32;
    const int threads = argc > 3 ? atoi(argv[3]) : 0;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = threads;
    mome_model *m;
    if (mome_model_load(path, &mp, &m)) {
        fprintf(stderr, "bench_batch: %s\n", mome_errmsg());
        return 1;
    }
    const int V = mome_model_n_vocab(m);
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 64;
    mome_ctx *a[NMAX], *b[NMAX];
    for (int i = 0; i < NMAX; i++)
        if (mome_ctx_init(m, &cp, &a[i]) || mome_ctx_init(m, &cp, &b[i])) {
            fprintf(stderr, "bench_batch: %s\n", mome_errmsg());
            return 1;
        }
    float *ref = malloc((size_t)NMAX * steps * V * sizeof(float));
    int32_t *tok = malloc((size_t)NMAX * (steps + 1) * sizeof(int32_t));
    if (!ref || !tok) return 1;
    printf("model %s, %d steps per sequence, threads %d\n", path, steps, threads);
    printf("%4s %14s %14s %8s\n", "n", "sequential t/s", "batched t/s", "ratio");
    const int ns[] = {1, 2, 4, 8, 16};
    int bad = 0;
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int n = ns[ni];
        char prompt[128];
        for (int i = 0; i < n; i++) {
            snprintf(prompt, sizeof prompt, "Once upon a time, in town number %d, there %s", i,
                     i % 2 ? "lived a cat" : "was a small house by the river");
            int32_t *ids;
            int k = mome_tokenize_alloc(m, prompt, 1, 0, &ids);
            if (k <= 0 || mome_decode(a[i], ids, k, 0, 0) || mome_decode(b[i], ids, k, 0, 0)) return 1;
            free(ids);
            tok[(size_t)i * (steps + 1)] = argmax(mome_get_logits(a[i], -1), V);
        }
        /* sequential: each sequence alone, token by token */
        double t0 = now();
        for (int i = 0; i < n; i++)
            for (int s = 0; s < steps; s++) {
                int32_t t = tok[(size_t)i * (steps + 1) + s];
                if (mome_decode(a[i], &t, 1, mome_ctx_n_past(a[i]), 0)) return 1;
                const float *lg = mome_get_logits(a[i], -1);
                memcpy(ref + ((size_t)i * steps + s) * V, lg, (size_t)V * sizeof(float));
                tok[(size_t)i * (steps + 1) + s + 1] = argmax(lg, V);
            }
        const double t_seq = now() - t0;
        /* batched: all n sequences in each pass */
        t0 = now();
        for (int s = 0; s < steps; s++) {
            int32_t bt[NMAX];
            for (int i = 0; i < n; i++) bt[i] = tok[(size_t)i * (steps + 1) + s];
            if (mome_decode_batch(b, bt, n)) {
                fprintf(stderr, "bench_batch: %s\n", mome_errmsg());
                return 1;
            }
            for (int i = 0; i < n; i++)
                bad += memcmp(mome_get_logits(b[i], -1), ref + ((size_t)i * steps + s) * V, (size_t)V * sizeof(float)) != 0;
        }
        const double t_bat = now() - t0;
        const double tot = (double)n * steps;
        printf("%4d %14.1f %14.1f %7.2fx\n", n, tot / t_seq, tot / t_bat, t_seq / t_bat);
        fflush(stdout);
        for (int i = 0; i < n; i++) {
            mome_ctx_free(a[i]);
            mome_ctx_free(b[i]);
            if (mome_ctx_init(m, &cp, &a[i]) || mome_ctx_init(m, &cp, &b[i])) return 1;
        }
    }
    printf("rows whose batched logits differ from sequential: %d\n", bad);
    for (int i = 0; i < NMAX; i++) {
        mome_ctx_free(a[i]);
        mome_ctx_free(b[i]);
    }
    free(ref);
    free(tok);
    mome_model_free(m);
    return bad != 0;
}
