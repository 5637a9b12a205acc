/*
 * gemm.c - the engine's own single-precision GEMM.
 *
 * Why not OpenBLAS: on these machines OpenBLAS is held to its Haswell
 * kernels (OPENBLAS_CORETYPE), its thread pool spins against OpenMP's, and
 * called from OpenMP threads it mapped fresh buffers on every call (page
 * faults were a tenth of the profile). This file is the classic Goto/BLIS
 * structure in plain C with intrinsics:
 *
 *   for each KC-deep slice of the inner dimension:
 *     pack a KC x NC block of B into NR-wide column panels
 *     for each MC-tall block of A: pack it into MR-tall row panels
 *       for each (row panel, column panel): the MR x NR micro-kernel
 *
 * The micro-kernel keeps an MR x NR tile of C in registers: 12 x 32 with
 * AVX-512 (24 zmm accumulators), 6 x 16 with AVX2 (12 ymm), chosen at run
 * time. Packing pads edges with zeros so the kernel never branches; edge
 * tiles go through a small buffer.
 *
 * Threads: the larger of M and N is split between OpenMP threads, each
 * running the blocked loop on its share with its own packing buffers. When
 * both are small and the inner dimension is long (weight gradients), the
 * inner dimension is split instead and the partial products are summed in
 * thread order, so results depend on the thread count only, never on timing.
 */
#include "gemm.h"

#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KC 256
#define MC_PANELS 16
#define NC 2048
#define MR_MAX 12
#define NR_MAX 32

typedef struct {
    int ta, tb;
    const float *a, *b;
    int lda, ldb;
    float alpha;
} operands;

typedef void (*kernel_fn)(int kc, const float *ap, const float *bp, float *c, int ldc, float beta);

/* ---- micro-kernels ------------------------------------------------------ */

__attribute__((target("avx512f"))) static void kernel_avx512(int kc, const float *ap,
                                                             const float *bp, float *c, int ldc,
                                                             float beta)
{
    __m512 acc[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += 12;
        bp += 32;
    }
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta != 0.0f) {
            __m512 bt = _mm512_set1_ps(beta);
            acc[i][0] = _mm512_fmadd_ps(bt, _mm512_loadu_ps(ci), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(bt, _mm512_loadu_ps(ci + 16), acc[i][1]);
        }
        _mm512_storeu_ps(ci, acc[i][0]);
        _mm512_storeu_ps(ci + 16, acc[i][1]);
    }
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float *ap,
                                                            const float *bp, float *c, int ldc,
                                                            float beta)
{
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 a = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += 6;
        bp += 16;
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta != 0.0f) {
            __m256 bt = _mm256_set1_ps(beta);
            acc[i][0] = _mm256_fmadd_ps(bt, _mm256_loadu_ps(ci), acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(bt, _mm256_loadu_ps(ci + 8), acc[i][1]);
        }
        _mm256_storeu_ps(ci, acc[i][0]);
        _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
}

typedef struct {
    int mr, nr;
    kernel_fn fn;
} kernel;

static kernel pick_kernel(void)
{
    if (__builtin_cpu_supports("avx512f"))
        return (kernel){12, 32, kernel_avx512};
    return (kernel){6, 16, kernel_avx2};
}

/* ---- packing ------------------------------------------------------------ */

static inline float a_at(const operands *o, int i, int p)
{
    return o->ta ? o->a[(size_t)p * o->lda + i] : o->a[(size_t)i * o->lda + p];
}

/* Rows [i0, i0+mc) x inner [p0, p0+kc) of alpha*A into mr-tall panels.
 * Loops run along whichever index is contiguous in memory, so the reads
 * stream and the scattered writes stay inside one panel (in L1). */
static void pack_a(const operands *o, int i0, int mc, int p0, int kc, int mr, float *dst)
{
    for (int ir = 0; ir < mc; ir += mr, dst += (size_t)mr * kc) {
        int rows = mc - ir < mr ? mc - ir : mr;
        if (rows < mr)
            memset(dst, 0, sizeof(float) * mr * kc);
        for (int i = 0; i < rows; i++) {
            if (o->ta) {
                const float *src = o->a + (size_t)p0 * o->lda + i0 + ir + i;
                for (int p = 0; p < kc; p++)
                    dst[(size_t)p * mr + i] = o->alpha * src[(size_t)p * o->lda];
            } else {
                const float *src = o->a + (size_t)(i0 + ir + i) * o->lda + p0;
                for (int p = 0; p < kc; p++)
                    dst[(size_t)p * mr + i] = o->alpha * src[p];
            }
        }
    }
}

/* Inner [p0, p0+kc) x columns [j0, j0+nc) of B into nr-wide panels. */
static void pack_b(const operands *o, int p0, int kc, int j0, int nc, int nr, float *dst)
{
    for (int jr = 0; jr < nc; jr += nr, dst += (size_t)nr * kc) {
        int cols = nc - jr < nr ? nc - jr : nr;
        if (cols < nr)
            memset(dst, 0, sizeof(float) * nr * kc);
        if (o->tb) {
            for (int j = 0; j < cols; j++) {
                const float *src = o->b + (size_t)(j0 + jr + j) * o->ldb + p0;
                for (int p = 0; p < kc; p++)
                    dst[(size_t)p * nr + j] = src[p];
            }
        } else {
            /* Rows of nr (16 or 32) floats: a loop, not a memcpy call each
             * (the Makefile keeps GCC from turning it back into one). */
            for (int p = 0; p < kc; p++) {
                const float *restrict src = o->b + (size_t)(p0 + p) * o->ldb + j0 + jr;
                float *restrict d = dst + (size_t)p * nr;
#pragma omp simd
                for (int j = 0; j < cols; j++)
                    d[j] = src[j];
            }
        }
    }
}

/* ---- the blocked loop --------------------------------------------------- */

typedef struct {
    float *a, *b;
    size_t acap, bcap;
} pack_buffers;

static int reserve(float **buf, size_t *cap, size_t want)
{
    if (want <= *cap)
        return 0;
    free(*buf);
    *buf = aligned_alloc(64, (want * sizeof(float) + 63) & ~(size_t)63);
    *cap = *buf ? want : 0;
    return *buf ? 0 : -1;
}

/* One tile of C: straight into C when whole, via a buffer at the edges. */
static void tile(const kernel *k, int kc, const float *ap, const float *bp, float *c, int ldc,
                 int rows, int cols, float beta)
{
    if (rows == k->mr && cols == k->nr) {
        k->fn(kc, ap, bp, c, ldc, beta);
        return;
    }
    float buf[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    k->fn(kc, ap, bp, buf, k->nr, 0.0f);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            c[(size_t)i * ldc + j] = buf[i * k->nr + j] + (beta != 0.0f ? beta * c[(size_t)i * ldc + j] : 0.0f);
}

/* The plain triple loop over inner range [k0, k1): the fallback when
 * packing buffers cannot be had, and the tests' reference. */
static void gemm_naive(const operands *o, int m, int n, int k0, int k1, float beta, float *c,
                       int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = k0; p < k1; p++)
                s += (double)a_at(o, i, p) *
                     (o->tb ? o->b[(size_t)j * o->ldb + p] : o->b[(size_t)p * o->ldb + j]);
            float *cij = c + (size_t)i * ldc + j;
            *cij = o->alpha * (float)s + (beta != 0.0f ? beta * *cij : 0.0f);
        }
}

void core_gemm_reference(int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float *a, int lda, const float *b, int ldb, float beta, float *c,
                         int ldc)
{
    operands o = {trans_a, trans_b, a, b, lda, ldb, alpha};
    gemm_naive(&o, m, n, 0, k, beta, c, ldc);
}

/* C[m x n] = beta*C + op(A) op(B) over inner range [k0, k1), one thread. */
static void gemm_serial(const kernel *k, const operands *o, int m, int n, int k0, int k1,
                        float beta, float *c, int ldc, pack_buffers *pb)
{
    const int mc_max = MC_PANELS * k->mr;
    if (reserve(&pb->a, &pb->acap, (size_t)mc_max * KC) ||
        reserve(&pb->b, &pb->bcap, (size_t)(NC + k->nr) * KC)) {
        gemm_naive(o, m, n, k0, k1, beta, c, ldc); /* slow, but never wrong */
        return;
    }
    for (int jc = 0; jc < n; jc += NC) {
        int nc = n - jc < NC ? n - jc : NC;
        for (int pc = k0; pc < k1; pc += KC) {
            int kc = k1 - pc < KC ? k1 - pc : KC;
            float b_eff = pc == k0 ? beta : 1.0f;
            pack_b(o, pc, kc, jc, nc, k->nr, pb->b);
            for (int ic = 0; ic < m; ic += mc_max) {
                int mc = m - ic < mc_max ? m - ic : mc_max;
                pack_a(o, ic, mc, pc, kc, k->mr, pb->a);
                for (int jr = 0; jr < nc; jr += k->nr)
                    for (int ir = 0; ir < mc; ir += k->mr)
                        tile(k, kc, pb->a + (size_t)ir * kc, pb->b + (size_t)jr * kc,
                             c + (size_t)(ic + ir) * ldc + jc + jr, ldc,
                             mc - ir < k->mr ? mc - ir : k->mr, nc - jr < k->nr ? nc - jr : k->nr,
                             b_eff);
            }
        }
    }
}

/* ---- threading ---------------------------------------------------------- */

/* Packing buffers live as long as their thread: allocated on first use,
 * reused by every later call (a cache, like any BLAS's). */
static __thread pack_buffers thread_buffers;
static __thread float *partial;
static __thread size_t partial_cap;

static operands shift(const operands *o, int i0, int j0)
{
    operands s = *o;
    s.a = o->ta ? o->a + i0 : o->a + (size_t)i0 * o->lda;
    s.b = o->tb ? o->b + (size_t)j0 * o->ldb : o->b + j0;
    return s;
}

#ifdef ADV_GEMM_OPENBLAS
/* `make GEMM=openblas`: the same thread split over OpenBLAS's single-threaded
 * sgemm, kept to measure the two against each other. */
#include <cblas.h>
static void gemm_serial_blas(const operands *o, int m, int n, int k0, int k1, float beta,
                             float *c, int ldc)
{
    const float *a = o->ta ? o->a + (size_t)k0 * o->lda : o->a + k0;
    const float *b = o->tb ? o->b + k0 : o->b + (size_t)k0 * o->ldb;
    cblas_sgemm(CblasRowMajor, o->ta ? CblasTrans : CblasNoTrans,
                o->tb ? CblasTrans : CblasNoTrans, m, n, k1 - k0, o->alpha, a, o->lda, b,
                o->ldb, beta, c, ldc);
}
/* The dead branch keeps the own kernel compiled (and warning-free). */
#define GEMM_SERIAL(kern, o, m, n, k0, k1, beta, c, ldc, pb) \
    (0 ? gemm_serial(kern, o, m, n, k0, k1, beta, c, ldc, pb) \
       : gemm_serial_blas(o, m, n, k0, k1, beta, c, ldc))
#else
#define GEMM_SERIAL gemm_serial
#endif

/* The kernel, chosen once: the first call may come from inside a parallel
 * loop, where an unguarded lazy choice would be a data race. */
static kernel kern;
static pthread_once_t kern_once = PTHREAD_ONCE_INIT;

static void choose_kernel(void)
{
    kern = pick_kernel();
}

void core_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc)
{
    pthread_once(&kern_once, choose_kernel);
    operands o = {trans_a, trans_b, a, b, lda, ldb, alpha};
    int threads = omp_get_max_threads();
    double work = (double)m * n * k;
    if (threads == 1 || work < 2e5 || omp_in_parallel()) {
        GEMM_SERIAL(&kern, &o, m, n, 0, k, beta, c, ldc, &thread_buffers);
        return;
    }
    int split_k = m < 4 * kern.mr && n < 4 * kern.nr * threads && k >= 64 * threads;
    if (split_k && reserve(&partial, &partial_cap, (size_t)threads * m * n) == 0) {
        /* Weight gradients: C is small, the sum is long. Each thread sums
         * its slice into its own part; parts are added in thread order. */
        float *parts = partial;
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int chunk = (k + T - 1) / T, lo = t * chunk, hi = lo + chunk < k ? lo + chunk : k;
            float *mine = parts + (size_t)t * m * n;
            if (lo < hi)
                GEMM_SERIAL(&kern, &o, m, n, lo, hi, 0.0f, mine, n, &thread_buffers);
            else
                memset(mine, 0, sizeof(float) * m * n);
#pragma omp barrier
#pragma omp for schedule(static)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    float sum = beta != 0.0f ? beta * c[(size_t)i * ldc + j] : 0.0f;
                    for (int u = 0; u < T; u++)
                        sum += parts[((size_t)u * m + i) * n + j];
                    c[(size_t)i * ldc + j] = sum;
                }
        }
        return;
    }
    int split_n = n >= m, len = split_n ? n : m, unit = split_n ? kern.nr : kern.mr;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int units = (len + unit - 1) / unit, per = (units + T - 1) / T;
        int lo = t * per * unit, hi = lo + per * unit < len ? lo + per * unit : len;
        if (lo < hi) {
            operands s = split_n ? shift(&o, 0, lo) : shift(&o, lo, 0);
            float *cc = split_n ? c + lo : c + (size_t)lo * ldc;
            GEMM_SERIAL(&kern, &s, split_n ? m : hi - lo, split_n ? hi - lo : n, 0, k, beta, cc,
                        ldc, &thread_buffers);
        }
    }
}

void core_set_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
#ifdef ADV_GEMM_OPENBLAS
    openblas_set_num_threads(1); /* the split above does the threading */
#endif
}
