/*
 * layers.c - ReLU, pooling, input normalisation and fully connected layers
 * (see layers.h).
 *
 * Pooling windows have no padding and drop a partial last window, as
 * PyTorch's MaxPool2d / AvgPool2d do by default. GAP is an average pool whose
 * window is the whole plane.
 */
#include "layers.h"

#include "gemm.h"

#include <float.h>
#include <string.h>

void core_relu_forward(const float *x, float *y, size_t len)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void core_relu_backward(const float *y, const float *dy, float *dx, size_t len)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void core_relu_backward_guided(const float *y, const float *dy, float *dx, size_t len)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        dx[i] = y[i] > 0.0f && dy[i] > 0.0f ? dy[i] : 0.0f;
}

typedef struct {
    int kh, kw, sh, sw;
} pool_window;

static pool_window window_of(const core_layer *l)
{
    if (l->kind == CORE_LAYER_GAP)
        return (pool_window){l->in.h, l->in.w, l->in.h, l->in.w};
    return (pool_window){l->pool, l->pool, l->stride, l->stride};
}

/* One output row of a 2x2, stride-2 max pool: the common window, written
 * without branches (the general loop's data-dependent branches mispredicted
 * half the time, ~5 % of a madry profile). Same choice as the general loop:
 * the first of the four in row-major order unless a later one is strictly
 * greater. */
static void maxpool2_row(const float *r0, int iw, int ow, int base, float *y, int *argmax)
{
    const float *r1 = r0 + iw;
#pragma omp simd
    for (int ox = 0; ox < ow; ox++) {
        float v = r0[2 * ox];
        int i = base + 2 * ox;
        const float b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
        i = b > v ? base + 2 * ox + 1 : i;
        v = b > v ? b : v;
        i = c > v ? base + iw + 2 * ox : i;
        v = c > v ? c : v;
        i = d > v ? base + iw + 2 * ox + 1 : i;
        v = d > v ? d : v;
        y[ox] = v;
        argmax[ox] = i;
    }
}

void core_maxpool_forward(const core_layer *l, const float *x, float *y, int *argmax, int n)
{
    const pool_window pw = window_of(l);
    const int planes = n * l->in.c, ih = l->in.h, iw = l->in.w, oh = l->out.h, ow = l->out.w;
    if (pw.kh == 2 && pw.kw == 2 && pw.sh == 2 && pw.sw == 2) {
#pragma omp parallel for schedule(static)
        for (int pl = 0; pl < planes; pl++)
            for (int oy = 0; oy < oh; oy++)
                maxpool2_row(x + (size_t)pl * ih * iw + (size_t)2 * oy * iw, iw, ow, 2 * oy * iw,
                             y + ((size_t)pl * oh + oy) * ow, argmax + ((size_t)pl * oh + oy) * ow);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * ih * iw;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int best = (oy * pw.sh) * iw + ox * pw.sw;
                for (int dy = 0; dy < pw.kh; dy++)
                    for (int dx = 0; dx < pw.kw; dx++) {
                        const int i = (oy * pw.sh + dy) * iw + ox * pw.sw + dx;
                        if (xp[i] > xp[best])
                            best = i;
                    }
                const size_t o = (size_t)pl * oh * ow + (size_t)oy * ow + ox;
                y[o] = xp[best];
                argmax[o] = best;
            }
        }
    }
}

void core_maxpool_backward(const core_layer *l, const float *dy, const int *argmax, float *dx, int n)
{
    const int planes = n * l->in.c;
    const size_t isz = (size_t)l->in.h * l->in.w, osz = (size_t)l->out.h * l->out.w;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *dxp = dx + (size_t)pl * isz;
        memset(dxp, 0, sizeof(float) * isz);
        for (size_t o = 0; o < osz; o++)
            dxp[argmax[(size_t)pl * osz + o]] += dy[(size_t)pl * osz + o];
    }
}

void core_avgpool_forward(const core_layer *l, const float *x, float *y, int n)
{
    const pool_window pw = window_of(l);
    const int planes = n * l->in.c, ih = l->in.h, iw = l->in.w, oh = l->out.h, ow = l->out.w;
    const float scale = 1.0f / (float)(pw.kh * pw.kw);
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float *xp = x + (size_t)pl * ih * iw;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float sum = 0.0f;
                for (int dy = 0; dy < pw.kh; dy++)
                    for (int dx = 0; dx < pw.kw; dx++)
                        sum += xp[(oy * pw.sh + dy) * iw + ox * pw.sw + dx];
                y[(size_t)pl * oh * ow + (size_t)oy * ow + ox] = sum * scale;
            }
    }
}

void core_avgpool_backward(const core_layer *l, const float *dy, float *dx, int n)
{
    const pool_window pw = window_of(l);
    const int planes = n * l->in.c, ih = l->in.h, iw = l->in.w, oh = l->out.h, ow = l->out.w;
    const float scale = 1.0f / (float)(pw.kh * pw.kw);
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        float *dxp = dx + (size_t)pl * ih * iw;
        memset(dxp, 0, sizeof(float) * ih * iw);
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const float g = dy[(size_t)pl * oh * ow + (size_t)oy * ow + ox] * scale;
                for (int dy_ = 0; dy_ < pw.kh; dy_++)
                    for (int dx_ = 0; dx_ < pw.kw; dx_++)
                        dxp[(oy * pw.sh + dy_) * iw + ox * pw.sw + dx_] += g;
            }
    }
}

void core_norm_forward(const core_layer *l, const float *x, float *y, int n)
{
    const int planes = n * l->in.c, c = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float m = l->mean[pl % c], s = l->std[pl % c];
        for (size_t i = (size_t)pl * hw; i < (size_t)(pl + 1) * hw; i++)
            y[i] = (x[i] - m) / s;
    }
}

void core_norm_backward(const core_layer *l, const float *dy, float *dx, int n)
{
    const int planes = n * l->in.c, c = l->in.c;
    const size_t hw = (size_t)l->in.h * l->in.w;
#pragma omp parallel for schedule(static)
    for (int pl = 0; pl < planes; pl++) {
        const float s = l->std[pl % c];
        for (size_t i = (size_t)pl * hw; i < (size_t)(pl + 1) * hw; i++)
            dx[i] = dy[i] / s;
    }
}

/* y (n x out) = x (n x in) W^T + b, W out x in as in torch.nn.Linear. */
void core_fc_forward(const core_layer *l, const float *params, const float *x, float *y, int n)
{
    const int in = (int)core_shape_size(l->in), out = l->out.c;
    const float *b = params + l->b_off;
    for (int e = 0; e < n; e++)
        memcpy(y + (size_t)e * out, b, sizeof(float) * out);
    core_gemm(0, 1, n, out, in, 1.0f, x, in, params + l->w_off, in, 1.0f, y, out);
}

void core_fc_backward(const core_layer *l, const float *params, float *grads,
                      const float *x, const float *dy, float *dx, int n, int param_grads)
{
    const int in = (int)core_shape_size(l->in), out = l->out.c;
    if (param_grads) {
        float *db = grads + l->b_off;
        for (int e = 0; e < n; e++)
            for (int o = 0; o < out; o++)
                db[o] += dy[(size_t)e * out + o];
        core_gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, grads + l->w_off, in);
    }
    if (dx)
        core_gemm(0, 0, n, in, out, 1.0f, dy, out, params + l->w_off, in, 0.0f, dx, in);
}
