/*
 * gemm.c - core_gemm on OpenBLAS's cblas_sgemm.
 *
 * OpenBLAS runs its own thread pool; it is called only from outside OpenMP
 * parallel regions, so the two pools never compete for the cores.
 */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>

void core_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda,
                b, ldb, beta, c, ldc);
}

void core_set_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int core_threads(void)
{
    return omp_get_max_threads();
}
