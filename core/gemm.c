/*
 * gemm.c - core_gemm on OpenBLAS's single-threaded cblas_sgemm, split
 * across OpenMP threads by the engine itself.
 *
 * OpenBLAS's own thread pool and OpenMP's would otherwise spin against each
 * other on two cores (sched_yield showed up as the top profile entry). Each
 * thread multiplies a block of rows or columns of C (whichever dimension is
 * larger), so the result does not depend on timing, only on the thread count.
 */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>

static void sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void core_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc)
{
    int threads = omp_get_max_threads();
    if (threads == 1 || (double)m * n * k < 1e6) {
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int split_n = n >= m;
    int len = split_n ? n : m;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int chunk = ((len + nt - 1) / nt + 15) & ~15;
        int lo = t * chunk, hi = lo + chunk < len ? lo + chunk : len;
        if (lo < hi) {
            if (split_n) {
                const float *bb = trans_b ? b + (size_t)lo * ldb : b + lo;
                sgemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, bb, ldb, beta, c + lo, ldc);
            } else {
                const float *aa = trans_a ? a + lo : a + (size_t)lo * lda;
                sgemm(trans_a, trans_b, hi - lo, n, k, alpha, aa, lda, b, ldb, beta,
                      c + (size_t)lo * ldc, ldc);
            }
        }
    }
}

void core_set_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
}

int core_threads(void)
{
    return omp_get_max_threads();
}
