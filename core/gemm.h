/*
 * gemm.h - the one matrix-multiply entry point of the engine.
 *
 * Convolutions (through im2col) and fully connected layers all end up here,
 * so that a faster kernel replaces every caller at once. Row-major, like the
 * rest of core/: C = alpha * op(A) * op(B) + beta * C with op(A) M x K and
 * op(B) K x N.
 */
#ifndef CORE_GEMM_H
#define CORE_GEMM_H

void core_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc);

/* The same product by the plain triple loop (double accumulation): the
 * reference the tests compare against. */
void core_gemm_reference(int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc);

/* Threads for both OpenMP loops and the BLAS (n <= 0: all cores). */
void core_set_threads(int n);

#endif
