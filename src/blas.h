/* blas.h - which OpenBLAS kernels will run the training GEMMs. */
#ifndef MOME_BLAS_H
#define MOME_BLAS_H

/* The OpenBLAS core name in use ("SkylakeX", "Haswell", "Prescott", ...). */
const char *blas_core_name(void);

/* A better OPENBLAS_CORETYPE for this CPU when OpenBLAS fell back to its
 * generic SSE3 kernels, or NULL when it is fine (or the user chose one).
 * OpenBLAS fixes its choice when it is loaded, so only a new process can
 * use the answer: the CLI sets the variable and re-executes itself. */
const char *blas_better_core(void);

/* w = (cov + lambda I)^(-1/2), lambda = ridge x the mean eigenvalue of
 * cov (n x n, symmetric, row-major, upper triangle read; overwritten): the
 * whitening of the relation check (memory.h). LAPACK's dsyev from OpenBLAS.
 * Returns 0, or MOME_ERR with the message set. */
int blas_inv_sqrt_sym(double *cov, int n, double ridge, float *w);

#endif
