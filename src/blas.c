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
#include <stdlib.h>
#include <string.h>

#include "quant.h"

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
