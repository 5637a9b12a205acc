/*
 * conv.c - 2-D convolution over a batch through im2col and GEMM, a chunk of
 * examples at a time.
 *
 * The im2col matrix of a whole batch is large (for a 16-channel 3x3 layer on
 * 28x28 images at batch 128, 58 MB), and writing it out and reading it back
 * made the small-channel layers memory-bound: the GEMM sat idle behind the
 * copies. So the batch is cut into chunks of a few examples whose im2col
 * matrix (a row per (channel, kernel row, kernel column), a column per
 * (example, output pixel)) stays in the core's cache, and the OpenMP threads
 * take chunks in a static order:
 *
 *   forward   col = im2col(x chunk); tmp = W x col; y chunk = tmp in NCHW + bias
 *   backward  dt = dy chunk as cout x pixels;
 *             dW_t += dt x col^T, db_t += row sums of dt (per-thread partials)
 *             dcol = W^T x dt; dx chunk = col2im(dcol)
 *
 * Each GEMM still covers several examples (at least ~2048 columns). The
 * per-thread weight-gradient partials are added in thread order at the end,
 * so the result depends on the thread count only, never on timing.
 */
#include "layers.h"

#include "conv_direct.h"
#include "gemm.h"

#include <omp.h>
#include <string.h>

#define CHUNK_COLUMNS 2048

/* Examples per chunk for a batch of n on the given number of threads. */
static int chunk_examples(const core_conv *c, int n, int threads)
{
    const int P = c->out.h * c->out.w;
    int want = (CHUNK_COLUMNS + P - 1) / P, fair = (n + threads - 1) / threads;
    int e = want < fair ? want : fair;
    return e < 1 ? 1 : e;
}

void core_conv_scratch_need(const core_conv *c, int n, int threads, size_t need[3])
{
    if (core_conv_direct_ok(c)) {
        core_conv_direct_need(c, need);
        return;
    }
    const size_t cols = (size_t)chunk_examples(c, n, threads) * c->out.h * c->out.w;
    const size_t ckk = (size_t)c->cin * c->k * c->k, sizes[3] = {
        ckk * cols, (size_t)c->cout * cols, (size_t)c->cout * (ckk + 1)};
    for (int i = 0; i < 3; i++)
        need[i] = need[i] > sizes[i] ? need[i] : sizes[i];
}

int core_conv_scratch_alloc(core_conv_scratch *s, const size_t need[3], int threads)
{
    *s = (core_conv_scratch){threads, need[0], need[1], need[2],
                             core_alloc(sizeof(float) * need[0] * threads),
                             core_alloc(sizeof(float) * need[1] * threads),
                             core_alloc(sizeof(float) * need[2] * threads)};
    if (s->col && s->tmp && s->dw)
        return 0;
    core_conv_scratch_free(s);
    return -1;
}

void core_conv_scratch_free(core_conv_scratch *s)
{
    core_free(s->col);
    core_free(s->tmp);
    core_free(s->dw);
    memset(s, 0, sizeof *s);
}

/* The output columns [*lo, *hi) whose input column ox*stride + off falls
 * inside the image; outside them the padding reads zeros. */
static void valid_range(int ow, int iw, int stride, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + stride - 1) / stride : 0;
    int b = (iw - off + stride - 1) / stride;
    *lo = a < ow ? a : ow;
    *hi = b < ow ? (b > *lo ? b : *lo) : ow;
}

/* n floats: rows here are 7 to 28 floats, too short for a memcpy or
 * memset call to pay (they were 15 % of a madry PGD profile); the Makefile
 * keeps GCC from turning these loops back into such calls. */
static inline void copy_row(float *restrict d, const float *restrict s, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        d[i] = s[i];
}

static inline void zero_row(float *d, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++)
        d[i] = 0.0f;
}

/* Rows of col are (ci, ki, kj); example e covers columns e*P..e*P+P. The
 * valid span of each output row is copied in one pass, padding zero-filled. */
static void im2col(const core_conv *c, const float *x, float *col, int n)
{
    const int k = c->k, oh = c->out.h, ow = c->out.w, ih = c->in.h, iw = c->in.w, s = c->stride;
    const size_t P = (size_t)oh * ow, ncols = (size_t)n * P;
    for (int r = 0; r < c->cin * k * k; r++) {
        const int ci = r / (k * k), ki = (r / k) % k, kj = r % k, off = kj - c->pad;
        int lo, hi;
        valid_range(ow, iw, s, off, &lo, &hi);
        for (int e = 0; e < n; e++) {
            const float *xc = x + ((size_t)e * c->cin + ci) * ih * iw;
            float *dst = col + (size_t)r * ncols + (size_t)e * P;
            for (int oy = 0; oy < oh; oy++) {
                const int iy = oy * s - c->pad + ki;
                float *d = dst + (size_t)oy * ow;
                if (iy < 0 || iy >= ih) {
                    zero_row(d, ow);
                    continue;
                }
                const float *src = xc + (size_t)iy * iw + off;
                zero_row(d, lo);
                if (s == 1) /* the common case: a straight copy */
                    copy_row(d + lo, src + lo, hi - lo);
                else
                    for (int ox = lo; ox < hi; ox++)
                        d[ox] = src[ox * s];
                zero_row(d + hi, ow - hi);
            }
        }
    }
}

/* The adjoint of im2col: dx = every dcol entry added onto the pixel it read. */
static void col2im(const core_conv *c, const float *dcol, float *dx, int n)
{
    const int k = c->k, oh = c->out.h, ow = c->out.w, ih = c->in.h, iw = c->in.w, s = c->stride;
    const size_t P = (size_t)oh * ow, ncols = (size_t)n * P;
    memset(dx, 0, sizeof(float) * n * c->cin * ih * iw);
    for (int r = 0; r < c->cin * k * k; r++) {
        const int ci = r / (k * k), ki = (r / k) % k, kj = r % k, off = kj - c->pad;
        int lo, hi;
        valid_range(ow, iw, s, off, &lo, &hi);
        for (int e = 0; e < n; e++) {
            float *xc = dx + ((size_t)e * c->cin + ci) * ih * iw;
            const float *src = dcol + (size_t)r * ncols + (size_t)e * P;
            for (int oy = 0; oy < oh; oy++) {
                const int iy = oy * s - c->pad + ki;
                if (iy < 0 || iy >= ih)
                    continue;
                float *restrict xrow = xc + (size_t)iy * iw + off;
                const float *restrict srow = src + (size_t)oy * ow;
                if (s == 1) { /* contiguous; -O2 vectorises only when told */
#pragma omp simd
                    for (int ox = lo; ox < hi; ox++)
                        xrow[ox] += srow[ox];
                } else
                    for (int ox = lo; ox < hi; ox++)
                        xrow[ox * s] += srow[ox];
            }
        }
    }
}

/* Between the GEMM layout (rows x n*P) and NCHW (n x rows x P). */
static void gemm_to_nchw(const float *m, float *out, int rows, int n, size_t P, const float *bias)
{
    for (int e = 0; e < n; e++)
        for (int r = 0; r < rows; r++) {
            const float *src = m + ((size_t)r * n + e) * P;
            float *dst = out + ((size_t)e * rows + r) * P;
#pragma omp simd
            for (size_t p = 0; p < P; p++)
                dst[p] = src[p] + bias[r];
        }
}

static void nchw_to_gemm(const float *in, float *m, int rows, int n, size_t P)
{
    for (int e = 0; e < n; e++)
        for (int r = 0; r < rows; r++)
            memcpy(m + ((size_t)r * n + e) * P, in + ((size_t)e * rows + r) * P, sizeof(float) * P);
}

/* How the batch is cut: chunk examples each, on at most the threads the
 * scratch was sized for. */
typedef struct {
    int per, count, threads;
} chunking;

static chunking chunks_of(const core_conv *c, int n, const core_conv_scratch *s)
{
    int threads = omp_get_max_threads() < s->threads ? omp_get_max_threads() : s->threads;
    int per = chunk_examples(c, n, s->threads);
    return (chunking){per, (n + per - 1) / per, threads};
}

void core_conv_forward(const core_conv *c, const float *params, const float *x, float *y, int n,
                       core_conv_scratch *s, int relu)
{
    const int K = c->cout, CKK = c->cin * c->k * c->k;
    const size_t P = (size_t)c->out.h * c->out.w, in = core_shape_size(c->in);
    const chunking ch = chunks_of(c, n, s);
    if (core_conv_direct_ok(c)) {
        core_conv_direct_forward(c, params, x, y, n, s, ch.threads, relu);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(ch.threads)
    for (int i = 0; i < ch.count; i++) {
        const int t = omp_get_thread_num(), e0 = i * ch.per;
        const int ne = n - e0 < ch.per ? n - e0 : ch.per, cols = (int)(ne * P);
        float *col = s->col + t * s->col_len, *tmp = s->tmp + t * s->tmp_len;
        im2col(c, x + e0 * in, col, ne);
        core_gemm(0, 0, K, cols, CKK, 1.0f, params + c->w_off, CKK, col, cols, 0.0f, tmp, cols);
        gemm_to_nchw(tmp, y + e0 * K * P, K, ne, P, params + c->b_off);
    }
    if (relu) /* this path is the fallback: a pass of the ReLU layer's own */
        core_relu_forward(y, y, (size_t)n * K * P);
}

/* Add the per-thread weight and bias gradients in thread order. */
static void reduce_partials(const core_conv *c, float *grads, const core_conv_scratch *s,
                            int threads)
{
    const int K = c->cout, CKK = c->cin * c->k * c->k;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < K * (CKK + 1); i++) {
        float sum = 0.0f;
        for (int t = 0; t < threads; t++)
            sum += s->dw[t * s->dw_len + i];
        if (i < K * CKK)
            grads[c->w_off + i] += sum;
        else
            grads[c->b_off + i - K * CKK] += sum;
    }
}

void core_conv_backward(const core_conv *c, const float *params, float *grads, const float *x,
                        const float *dy, float *dx, int n, int param_grads, core_conv_scratch *s)
{
    const int K = c->cout, CKK = c->cin * c->k * c->k;
    const size_t P = (size_t)c->out.h * c->out.w, in = core_shape_size(c->in);
    const chunking ch = chunks_of(c, n, s);
    if (param_grads)
        memset(s->dw, 0, sizeof(float) * s->dw_len * ch.threads);
    if (core_conv_direct_ok(c)) {
        core_conv_direct_backward(c, params, x, dy, dx, n, param_grads, s, ch.threads);
        if (param_grads)
            reduce_partials(c, grads, s, ch.threads);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(ch.threads)
    for (int i = 0; i < ch.count; i++) {
        const int t = omp_get_thread_num(), e0 = i * ch.per;
        const int ne = n - e0 < ch.per ? n - e0 : ch.per, cols = (int)(ne * P);
        float *col = s->col + t * s->col_len, *dt = s->tmp + t * s->tmp_len;
        float *dw = s->dw + t * s->dw_len, *db = dw + (size_t)K * CKK;
        nchw_to_gemm(dy + e0 * K * P, dt, K, ne, P);
        if (param_grads) {
            for (int o = 0; o < K; o++) {
                float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < cols; j++)
                    sum += dt[(size_t)o * cols + j];
                db[o] += sum;
            }
            im2col(c, x + e0 * in, col, ne);
            core_gemm(0, 1, K, CKK, cols, 1.0f, dt, cols, col, cols, 1.0f, dw, CKK);
        }
        if (dx) {
            core_gemm(1, 0, CKK, cols, K, 1.0f, params + c->w_off, CKK, dt, cols, 0.0f, col, cols);
            col2im(c, col, dx + e0 * in, ne);
        }
    }
    if (param_grads)
        reduce_partials(c, grads, s, ch.threads);
}
