/* bench_packed.c - one packed kernel against the plain one: the same random
 * matrix and activations through quant_matmul (or quant_matmul_solo) on the
 * plain rows and quant_matmul_packed on quant_pack's copy, one thread, best
 * thread-CPU time of REPS, and a check that both give the same bits.
 *
 *   build/bench_packed TYPE N ROWS TOKENS [REPS] [SOLO]
 *
 * TYPE: ggml type id (6 Q5_0, 8 Q8_0, 12 Q4_K, 14 Q6_K); N: row length;
 * ROWS: a multiple of 16. Thread CPU time is less disturbed than wall time
 * when other jobs share the cores (caches still are). Prints one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant.h"

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s TYPE N ROWS TOKENS [REPS] [SOLO]\n", argv[0]);
        return 2;
    }
    const enum mome_dtype t = (enum mome_dtype)atoi(argv[1]);
    const int64_t n = atoll(argv[2]), R = atoll(argv[3]);
    const int nt = atoi(argv[4]), reps = argc > 5 ? atoi(argv[5]) : 5, solo = argc > 6 ? atoi(argv[6]) : 0;
    quant_init(0);
    const quant_traits *tr = quant_get_traits((uint32_t)t);
    if (!tr || !quant_pack_wanted(t, n, R) || nt < 1 || reps < 1) {
        fprintf(stderr, "type %d n %lld rows %lld: not packed by the %s kernels\n", (int)t, (long long)n,
                (long long)R, quant_kernel_name());
        return 1;
    }
    const size_t ws = quant_row_size(t, n), as = quant_act_row_size(t, n), bs = tr->type_size;
    unsigned char *W = malloc((size_t)R * ws), *P = malloc((size_t)R * ws), *A = malloc((size_t)nt * as);
    float *X = malloc((size_t)n * 4), *Y0 = malloc((size_t)nt * R * 4), *Y1 = malloc((size_t)nt * R * 4);
    if (!W || !P || !A || !X || !Y0 || !Y1) return 1;
    srand(1);
    for (size_t i = 0; i < (size_t)R * ws; i++) W[i] = (unsigned char)rand();
    /* sane half scales (the first field of these blocks; K-quants: d and dmin) */
    for (size_t b = 0; b < (size_t)R * ws / bs; b++) {
        const uint16_t h = quant_f32_to_f16(1e-3f * (1 + rand() % 100));
        memcpy(W + b * bs + (t == MOME_DTYPE_Q6_K ? bs - 2 : 0), &h, 2);
        if (t == MOME_DTYPE_Q4_K) memcpy(W + b * bs + 2, &h, 2);
    }
    for (int k = 0; k < nt; k++) {
        for (int64_t i = 0; i < n; i++) X[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        quant_quantize_act(t, X, A + (size_t)k * as, n);
    }
    quant_pack(t, n, W, ws, R, P);
    double best[2] = {1e30, 1e30};
    for (int k = 0; k < reps; k++) {
        const double t0 = cpu_s();
        if (solo) quant_matmul_solo(t, n, W, ws, A, as, nt, Y0, R, 0, R);
        else quant_matmul(t, n, W, ws, A, as, nt, Y0, R, 0, R);
        const double t1 = cpu_s();
        quant_matmul_packed(t, n, P, A, as, nt, Y1, R, 0, R, solo);
        const double t2 = cpu_s();
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
    }
    const int same = memcmp(Y0, Y1, (size_t)nt * R * 4) == 0;
    printf("%s n %lld rows %lld tokens %d%s: plain %.3f ms, packed %.3f ms, %.2fx, %s\n", tr->name, (long long)n,
           (long long)R, nt, solo ? " solo" : "", best[0] * 1e3, best[1] * 1e3, best[0] / best[1],
           same ? "same bits" : "BITS DIFFER");
    free(W); free(P); free(A); free(X); free(Y0); free(Y1);
    return same ? 0 : 1;
}
