/* blas.c - which OpenBLAS kernels run the training GEMMs.
 *
 * OpenBLAS (a DYNAMIC_ARCH build, as Debian ships) picks its kernels from
 * the CPU's family and model when it is loaded. Version 0.3.21 (Debian 12)
 * does not know recent Xeons (e.g. family 6 model 207, Emerald Rapids) and
 * falls back to its "Prescott" SSE3 kernels, several times slower than the
 * AVX-512 or AVX2 kernels the CPU runs. The fix is OpenBLAS's documented
 * OPENBLAS_CORETYPE variable, which it reads only at load time; this file
 * decides the value (from the SIMD level quant.c detected, which checks
 * that the OS enables the registers) and the CLI re-executes itself with it.
 */
#include "blas.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "util.h"

/* LAPACK (OpenBLAS ships it); the trailing lengths are the Fortran ABI's
 * hidden string lengths. */
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
            const int *lwork, int *info, size_t ljobz, size_t luplo);

const char *blas_core_name(void) {
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}

const char *blas_better_core(void) {
    if (getenv("OPENBLAS_CORETYPE")) return NULL; /* the user's choice stands */
    if (strcmp(blas_core_name(), "Prescott") != 0) return NULL; /* it recognised the CPU */
    const char *k = quant_kernel_name();
    if (!strcmp(k, "avx512vnni")) return "SkylakeX";
    if (!strcmp(k, "avx2")) return "Haswell";
    return NULL;
}

int blas_inv_sqrt_sym(double *cov, int n, double ridge, float *w) {
    double *ev = mome_malloc((size_t)n * sizeof(double)), q;
    int info = 0, lwork = -1;
    /* row-major upper = column-major lower: dsyev reads "L" */
    if (ev) dsyev_("V", "L", &n, cov, &n, ev, &q, &lwork, &info, 1, 1);
    lwork = ev && info == 0 ? (int)q : 0;
    double *work = lwork > 0 ? mome_malloc((size_t)lwork * sizeof(double)) : NULL;
    if (!work) {
        free(ev);
        return info ? mome_seterr_code(MOME_ERR, "dsyev: workspace query failed (%d)", info) : MOME_ERR_NOMEM;
    }
    dsyev_("V", "L", &n, cov, &n, ev, work, &lwork, &info, 1, 1);
    free(work);
    if (info != 0) {
        free(ev);
        return mome_seterr_code(MOME_ERR, "dsyev: the eigensolver failed (%d)", info);
    }
    double mean = 0;
    for (int i = 0; i < n; i++) mean += ev[i] > 0 ? ev[i] : 0;
    const double lam = ridge * mean / n > 0 ? ridge * mean / n : 1e-12;
    for (int i = 0; i < n; i++) ev[i] = 1.0 / sqrt((ev[i] > 0 ? ev[i] : 0) + lam);
    /* column-major: eigenvector k is cov[k*n .. k*n+n-1]; w = V diag(ev) V^T */
    for (int i = 0; i < n; i++)
        for (int j = i; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += cov[(size_t)k * n + i] * ev[k] * cov[(size_t)k * n + j];
            w[(size_t)i * n + j] = w[(size_t)j * n + i] = (float)s;
        }
    free(ev);
    return 0;
}
