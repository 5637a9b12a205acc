/*
 * conv.c - 2-D convolution over a whole batch through im2col and one GEMM.
 *
 * Forward: the batch is unrolled into one matrix col with a row per
 * (input channel, kernel row, kernel column) and a column per (example,
 * output pixel); then tmp = W x col is a single GEMM of cout x (n*P), and
 * the copy of tmp into NCHW order adds the bias on the way. col is kept for
 * the weight gradient.
 *
 * Backward: dy is reordered into tmp's layout, then
 *   dW += tmp x col^T,  db += row sums of tmp,  dcol = W^T x tmp
 * and col2im folds dcol back onto the input pixels.
 */
#include "layers.h"

#include "gemm.h"

#include <string.h>

size_t core_conv_col_size(const core_conv *c, int n)
{
    return (size_t)c->cin * c->k * c->k * (size_t)n * c->out.h * c->out.w;
}

size_t core_conv_tmp_size(const core_conv *c, int n)
{
    return (size_t)c->cout * (size_t)n * c->out.h * c->out.w;
}

/* The output columns [*lo, *hi) whose input column ox*stride - pad + kj
 * falls inside the image; outside them the padding reads zeros. */
static void valid_range(int ow, int iw, int stride, int off, int *lo, int *hi)
{
    int a = off < 0 ? (-off + stride - 1) / stride : 0;
    int b = (iw - off + stride - 1) / stride;
    *lo = a < ow ? a : ow;
    *hi = b < ow ? (b > *lo ? b : *lo) : ow;
}

/* Rows of col are (ci, ki, kj); row r, example e covers columns e*P..e*P+P.
 * The inner loop copies the valid span of each output row in one pass (a
 * contiguous copy when the stride is 1) and zero-fills the padding. */
static void im2col(const core_conv *c, const float *x, float *col, int n)
{
    const int k = c->k, oh = c->out.h, ow = c->out.w, ih = c->in.h, iw = c->in.w, s = c->stride;
    const int rows = c->cin * k * k;
    const size_t P = (size_t)oh * ow, ncols = (size_t)n * P;
#pragma omp parallel for collapse(2) schedule(static)
    for (int r = 0; r < rows; r++) {
        for (int e = 0; e < n; e++) {
            const int ci = r / (k * k), ki = (r / k) % k, kj = r % k, off = kj - c->pad;
            const float *xc = x + ((size_t)e * c->cin + ci) * ih * iw;
            float *dst = col + (size_t)r * ncols + (size_t)e * P;
            int lo, hi;
            valid_range(ow, iw, s, off, &lo, &hi);
            for (int oy = 0; oy < oh; oy++) {
                const int iy = oy * s - c->pad + ki;
                float *d = dst + (size_t)oy * ow;
                if (iy < 0 || iy >= ih) {
                    memset(d, 0, sizeof(float) * ow);
                    continue;
                }
                const float *src = xc + (size_t)iy * iw + off;
                for (int ox = 0; ox < lo; ox++)
                    d[ox] = 0.0f;
                for (int ox = lo; ox < hi; ox++)
                    d[ox] = src[ox * s];
                for (int ox = hi; ox < ow; ox++)
                    d[ox] = 0.0f;
            }
        }
    }
}

/* The adjoint of im2col: dx[e][ci] += every dcol entry that read it. Each
 * (example, channel) plane is owned by one thread, so there are no races. */
static void col2im(const core_conv *c, const float *dcol, float *dx, int n)
{
    const int k = c->k, oh = c->out.h, ow = c->out.w, ih = c->in.h, iw = c->in.w, s = c->stride;
    const size_t P = (size_t)oh * ow, ncols = (size_t)n * P;
#pragma omp parallel for collapse(2) schedule(static)
    for (int e = 0; e < n; e++) {
        for (int ci = 0; ci < c->cin; ci++) {
            float *xc = dx + ((size_t)e * c->cin + ci) * ih * iw;
            memset(xc, 0, sizeof(float) * ih * iw);
            for (int ki = 0; ki < k; ki++) {
                for (int kj = 0; kj < k; kj++) {
                    const size_t r = ((size_t)ci * k + ki) * k + kj;
                    const float *src = dcol + r * ncols + (size_t)e * P;
                    const int off = kj - c->pad;
                    int lo, hi;
                    valid_range(ow, iw, s, off, &lo, &hi);
                    for (int oy = 0; oy < oh; oy++) {
                        const int iy = oy * s - c->pad + ki;
                        if (iy < 0 || iy >= ih)
                            continue;
                        float *xrow = xc + (size_t)iy * iw + off;
                        const float *srow = src + (size_t)oy * ow;
                        for (int ox = lo; ox < hi; ox++)
                            xrow[ox * s] += srow[ox];
                    }
                }
            }
        }
    }
}

void core_conv_forward(core_conv *c, const float *params, const float *x,
                       float *y, int n, core_conv_scratch *s)
{
    const int K = c->cout, CKK = c->cin * c->k * c->k;
    const size_t P = (size_t)c->out.h * c->out.w, NP = (size_t)n * P;
    const float *w = params + c->w_off, *b = params + c->b_off;
    im2col(c, x, c->col, n);
    core_gemm(0, 0, K, (int)NP, CKK, 1.0f, w, CKK, c->col, (int)NP, 0.0f, s->tmp, (int)NP);
#pragma omp parallel for collapse(2) schedule(static)
    for (int e = 0; e < n; e++) {
        for (int o = 0; o < K; o++) {
            const float *src = s->tmp + (size_t)o * NP + (size_t)e * P;
            float *dst = y + ((size_t)e * K + o) * P;
            for (size_t p = 0; p < P; p++)
                dst[p] = src[p] + b[o];
        }
    }
}

void core_conv_backward(core_conv *c, const float *params, float *grads,
                        const float *dy, float *dx, int n, int param_grads,
                        core_conv_scratch *s)
{
    const int K = c->cout, CKK = c->cin * c->k * c->k;
    const size_t P = (size_t)c->out.h * c->out.w, NP = (size_t)n * P;
    float *dt = s->tmp;
#pragma omp parallel for collapse(2) schedule(static)
    for (int e = 0; e < n; e++)
        for (int o = 0; o < K; o++)
            memcpy(dt + (size_t)o * NP + (size_t)e * P, dy + ((size_t)e * K + o) * P,
                   sizeof(float) * P);
    if (param_grads) {
        float *db = grads + c->b_off;
#pragma omp parallel for schedule(static)
        for (int o = 0; o < K; o++) {
            float sum = 0.0f;
            for (size_t j = 0; j < NP; j++)
                sum += dt[(size_t)o * NP + j];
            db[o] += sum;
        }
        core_gemm(0, 1, K, CKK, (int)NP, 1.0f, dt, (int)NP, c->col, (int)NP, 1.0f,
                  grads + c->w_off, CKK);
    }
    if (dx) {
        core_gemm(1, 0, CKK, (int)NP, K, 1.0f, params + c->w_off, CKK, dt, (int)NP,
                  0.0f, s->dcol, (int)NP);
        col2im(c, s->dcol, dx, n);
    }
}
