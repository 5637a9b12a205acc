/*
 * conv_direct.c - direct 3x3, stride 1, pad 1 convolution for small channel
 * counts (the residual blocks of resnet-tiny: 16 channels at 28x28, 32 at
 * 14x14), with AVX-512.
 *
 * Why not im2col + GEMM (conv.c) here: with 16 or 32 channels the im2col
 * matrix is 9x larger than the image and the GEMM's inner dimension is only
 * 144 or 288, so the profile was dominated by copying (im2col, col2im, the
 * NCHW reorders, packing) rather than by multiplying. A direct convolution
 * reads each image once from a small zero-padded copy that stays in L1/L2:
 *
 *   forward  y[co] = b[co] + sum_ci,ki,kj w[co][ci][ki][kj] * xpad[ci][r+ki][c+kj]
 *   dx       the same convolution of the padded dy with the weights transposed
 *            (cin <-> cout) and flipped (tap t -> 8 - t)
 *   dW       dw[co][ci][t] += sum_r,c dy[co][r][c] * xpad[ci][r+ki][c+kj]
 *
 * Vectors run along image rows: a row of 28 is a full 16-lane vector and one
 * of 12 lanes, a row of 14 one vector of 14. The image's vectors are numbered
 * row by row; a tile is 8 output channels x 3 vectors, 24 zmm accumulators,
 * and each (ci, tap) step loads 3 shifted input vectors and does 24 FMAs with
 * broadcast weights. The last tile of an image (or channel block) is moved
 * back to end at the image's end and recomputes a little: tiles only store,
 * so recomputing is harmless and the kernel never branches. Loads may read
 * past a row (the lanes are not stored); the padded buffer has slack so they
 * stay inside it.
 *
 * The weight gradient keeps 3 output channels x 9 taps of 16-lane partial
 * sums in registers over one image (27 zmm; 2 channels were ~15% slower,
 * bound by the 9 shifted input loads per vector), adds them into per-thread
 * accumulators (tmp), and sums the 16 lanes once per call. dy lanes past a
 * row's end are loaded as zeros, so the over-read input lanes contribute
 * nothing.
 *
 * Threads: the weight gradient takes examples in a static order into
 * per-thread partials that conv.c adds in thread order, so results depend
 * on the thread count only. Forward and dx-only passes write each example's
 * output independently of which thread computes it, so they take examples
 * dynamically (better when another process takes a core now and then). Without AVX-512 conv.c keeps im2col + GEMM, whose own
 * kernels have an AVX2 path.
 */
#include "conv_direct.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE inline __attribute__((always_inline))
#define LANES 16
#define TAPS 9
#define SLACK 64 /* floats after the padded image: over-reads land here */
#define MAX_WIDTH 64

/* One pass over a padded image: the input has cin planes, the output cout. */
typedef struct {
    int cin, cout, h, w;
    int wp;          /* padded row: w + 2 */
    size_t plane;    /* padded plane: (h + 2) * wp */
    int segs, nvec;  /* vectors per row, per image */
    __mmask16 tail;  /* lanes of a row's last vector */
} geom;

static geom geom_of(int cin, int cout, core_shape img)
{
    geom g = {cin, cout, img.h, img.w, img.w + 2, (size_t)(img.h + 2) * (img.w + 2), 0, 0, 0};
    g.segs = (img.w + LANES - 1) / LANES;
    g.nvec = g.segs * img.h;
    int last = img.w - (g.segs - 1) * LANES;
    g.tail = (__mmask16)((1u << last) - 1);
    return g;
}

int core_conv_direct_ok(const core_conv *c)
{
    return c->k == 3 && c->stride == 1 && c->pad == 1 && c->in.w <= MAX_WIDTH &&
           c->in.h == c->out.h && c->in.w == c->out.w && __builtin_cpu_supports("avx512f");
}

void core_conv_direct_need(const core_conv *c, size_t need[3])
{
    const int cmax = c->cin > c->cout ? c->cin : c->cout;
    const geom g = geom_of(c->cin, c->cout, c->in);
    const size_t w = (size_t)c->cin * c->cout * TAPS, sizes[3] = {
        cmax * g.plane + SLACK, w + w * LANES, w + c->cout};
    for (int i = 0; i < 3; i++)
        need[i] = need[i] > sizes[i] ? need[i] : sizes[i];
}

/* ---- layout helpers ------------------------------------------------------ */

/* Where vector v of the image starts: in the padded input (at the top-left
 * tap), in the output, and which lanes are real. */
static INLINE void vec_at(const geom *g, int v, size_t *in, size_t *out, __mmask16 *m)
{
    const int row = v / g->segs, seg = v % g->segs;
    *in = (size_t)row * g->wp + seg * LANES;
    *out = (size_t)row * g->w + seg * LANES;
    *m = seg == g->segs - 1 ? g->tail : (__mmask16)0xFFFF;
}

/* Zero the whole padded buffer (borders and slack); images copied in later
 * only write interiors, so the borders stay zero for the rest of the call. */
static void pad_clear(const geom *g, float *buf, int planes)
{
    memset(buf, 0, sizeof(float) * (planes * g->plane + SLACK));
}

static void pad_copy(const geom *g, const float *src, float *buf, int planes)
{
    for (int p = 0; p < planes; p++)
        for (int r = 0; r < g->h; r++)
            memcpy(buf + p * g->plane + (size_t)(r + 1) * g->wp + 1,
                   src + ((size_t)p * g->h + r) * g->w, sizeof(float) * g->w);
}

/* Forward weights as [ci][tap][co]: the kernel broadcasts consecutive co. */
static void pack_forward(const float *w, int cin, int cout, float *dst)
{
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < TAPS; t++)
                dst[((size_t)ci * TAPS + t) * cout + co] = w[((size_t)co * cin + ci) * TAPS + t];
}

/* dx weights: a convolution from cout planes to cin planes, flipped. */
static void pack_transposed(const float *w, int cin, int cout, float *dst)
{
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < TAPS; t++)
                dst[((size_t)co * TAPS + (TAPS - 1 - t)) * cin + ci] =
                    w[((size_t)co * cin + ci) * TAPS + t];
}

/* ---- convolution kernel (forward and dx) -------------------------------- */

/* Output channels co0..co0+CO x image vectors v0..v0+NV. wk is [ci][tap][cout];
 * bias may be NULL. CO and NV are constants at every call (the wrappers
 * below), so the accumulators live in registers. */
static INLINE AVX512 void tile_body(const geom *g, const float *xp, const float *wk,
                                    const float *bias, float *y, int co0, int v0, const int CO,
                                    const int NV)
{
    __m512 acc[8][8];
    size_t in[8], out[8];
    __mmask16 m[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++)
        vec_at(g, v0 + v, &in[v], &out[v], &m[v]);
#pragma GCC unroll 8
    for (int c = 0; c < CO; c++) {
        __m512 b = bias ? _mm512_set1_ps(bias[co0 + c]) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            acc[c][v] = b;
    }
    const int wp = g->wp, cout = g->cout;
    for (int ci = 0; ci < g->cin; ci++) {
        const float *x = xp + ci * g->plane, *w = wk + (size_t)ci * TAPS * cout + co0;
#pragma GCC unroll 9
        for (int t = 0; t < TAPS; t++) {
            const int shift = (t / 3) * wp + t % 3;
            __m512 xv[8];
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                xv[v] = _mm512_loadu_ps(x + in[v] + shift);
#pragma GCC unroll 8
            for (int c = 0; c < CO; c++) {
                __m512 wv = _mm512_set1_ps(w[t * cout + c]);
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++)
                    acc[c][v] = _mm512_fmadd_ps(wv, xv[v], acc[c][v]);
            }
        }
    }
    const size_t hw = (size_t)g->h * g->w;
#pragma GCC unroll 8
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(y + (co0 + c) * hw + out[v], m[v], acc[c][v]);
}

typedef void (*tile_fn)(const geom *, const float *, const float *, const float *, float *, int,
                        int);

#define TILE(CO, NV)                                                                          \
    static AVX512 void tile_##CO##x##NV(const geom *g, const float *xp, const float *wk,      \
                                        const float *bias, float *y, int co0, int v0)         \
    {                                                                                         \
        tile_body(g, xp, wk, bias, y, co0, v0, CO, NV);                                       \
    }
TILE(8, 3)
TILE(8, 2)
TILE(8, 1)
TILE(1, 8)
TILE(1, 1)

/* Every vector of the image for output channels co0..co0+8: 3 at a time,
 * then the 1 or 2 left over. */
static void tile_image_8(const geom *g, const float *xp, const float *wk, const float *bias,
                         float *y, int co0)
{
    int v = 0;
    for (; v + 3 <= g->nvec; v += 3)
        tile_8x3(g, xp, wk, bias, y, co0, v);
    if (g->nvec - v == 2)
        tile_8x2(g, xp, wk, bias, y, co0, v);
    else if (g->nvec - v == 1)
        tile_8x1(g, xp, wk, bias, y, co0, v);
}

/* One output channel: 8 vectors at a time, the last group moved back to
 * end at the image's end (see the header comment). */
static void tile_image_1(const geom *g, const float *xp, const float *wk, const float *bias,
                         float *y, int co)
{
    if (g->nvec < 8) {
        for (int v = 0; v < g->nvec; v++)
            tile_1x1(g, xp, wk, bias, y, co, v);
        return;
    }
    for (int v = 0; v < g->nvec; v += 8)
        tile_1x8(g, xp, wk, bias, y, co, v + 8 <= g->nvec ? v : g->nvec - 8);
}

/* y (cout planes of h x w) = the convolution of the padded image xp. Blocks
 * of 8 output channels, the last one moved back to end at cout; fewer than
 * 8 channels (dx of a first layer) one at a time. */
static void conv_image(const geom *g, const float *xp, const float *wk, const float *bias,
                       float *y)
{
    if (g->cout >= 8) {
        for (int co = 0; co < g->cout; co += 8)
            tile_image_8(g, xp, wk, bias, y, co + 8 <= g->cout ? co : g->cout - 8);
        return;
    }
    for (int co = 0; co < g->cout; co++)
        tile_image_1(g, xp, wk, bias, y, co);
}

/* ---- weight-gradient kernel --------------------------------------------- */

/* acc[c][t] (16 lanes each, in memory) += sum over the image's vectors of
 * dy[co0+c] * xpad[ci] shifted by tap t. CO is a constant at every call. */
static INLINE AVX512 void dw_body(const geom *g, const float *xp, const float *dy, float *acc,
                                  int ci, int co0, const int CO)
{
    __m512 a[3][TAPS];
#pragma GCC unroll 3
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 9
        for (int t = 0; t < TAPS; t++)
            a[c][t] = _mm512_setzero_ps();
    const float *x = xp + ci * g->plane;
    const size_t hw = (size_t)g->h * g->w;
    for (int row = 0; row < g->h; row++)
        for (int seg = 0; seg < g->segs; seg++) {
            const size_t in = (size_t)row * g->wp + seg * LANES, out = (size_t)row * g->w + seg * LANES;
            const __mmask16 m = seg == g->segs - 1 ? g->tail : (__mmask16)0xFFFF;
            __m512 d[3];
#pragma GCC unroll 3
            for (int c = 0; c < CO; c++)
                d[c] = _mm512_maskz_loadu_ps(m, dy + (co0 + c) * hw + out);
#pragma GCC unroll 9
            for (int t = 0; t < TAPS; t++) {
                __m512 xv = _mm512_loadu_ps(x + in + (t / 3) * g->wp + t % 3);
#pragma GCC unroll 3
                for (int c = 0; c < CO; c++)
                    a[c][t] = _mm512_fmadd_ps(d[c], xv, a[c][t]);
            }
        }
    /* acc is [co][ci][tap][16] */
#pragma GCC unroll 3
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 9
        for (int t = 0; t < TAPS; t++) {
            float *p = acc + (((size_t)(co0 + c) * g->cin + ci) * TAPS + t) * LANES;
            _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a[c][t]));
        }
}

static AVX512 void dw_3(const geom *g, const float *xp, const float *dy, float *acc, int ci,
                        int co0)
{
    dw_body(g, xp, dy, acc, ci, co0, 3);
}

static AVX512 void dw_2(const geom *g, const float *xp, const float *dy, float *acc, int ci,
                        int co0)
{
    dw_body(g, xp, dy, acc, ci, co0, 2);
}

static AVX512 void dw_1(const geom *g, const float *xp, const float *dy, float *acc, int ci,
                        int co0)
{
    dw_body(g, xp, dy, acc, ci, co0, 1);
}

/* One example's contribution to the weight-gradient accumulators. */
static void dw_image(const geom *g, const float *xp, const float *dy, float *acc)
{
    int co = 0;
    for (; co + 3 <= g->cout; co += 3)
        for (int ci = 0; ci < g->cin; ci++)
            dw_3(g, xp, dy, acc, ci, co);
    for (int ci = 0; ci < g->cin && co < g->cout; ci++) {
        if (co + 2 == g->cout)
            dw_2(g, xp, dy, acc, ci, co);
        else
            dw_1(g, xp, dy, acc, ci, co);
    }
}

/* dw[co][ci*9+t] += the 16 lanes of acc[co][ci][t], summed in a fixed order. */
static AVX512 void dw_finish(const float *acc, float *dw, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dw[i] += _mm512_reduce_add_ps(_mm512_loadu_ps(acc + i * LANES));
}

/* ---- passes -------------------------------------------------------------- */

void core_conv_direct_forward(const core_conv *c, const float *params, const float *x, float *y,
                              int n, core_conv_scratch *s, int threads)
{
    const geom g = geom_of(c->cin, c->cout, c->in);
    const size_t in = core_shape_size(c->in), out = core_shape_size(c->out);
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        float *xp = s->col + t * s->col_len, *wk = s->tmp + t * s->tmp_len;
        pack_forward(params + c->w_off, c->cin, c->cout, wk);
        pad_clear(&g, xp, c->cin);
        /* Each example's output is the same whichever thread computes it. */
#pragma omp for schedule(dynamic, 2)
        for (int e = 0; e < n; e++) {
            pad_copy(&g, x + e * in, xp, c->cin);
            conv_image(&g, xp, wk, params + c->b_off, y + e * out);
        }
    }
}

/* One example's input gradient: its dy, padded, through the transposed
 * weights. */
static void dx_example(const geom *gx, const float *dye, float *pad, const float *wk, float *dxe)
{
    pad_copy(gx, dye, pad, gx->cin);
    conv_image(gx, pad, wk, NULL, dxe);
}

/* One example's weight and bias gradient, into the thread's accumulators. */
static void dw_example(const geom *gw, const float *xe, const float *dye, float *pad, float *acc,
                       float *db)
{
    const size_t hw = (size_t)gw->h * gw->w;
    pad_copy(gw, xe, pad, gw->cin);
    dw_image(gw, pad, dye, acc);
    for (int co = 0; co < gw->cout; co++) {
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t j = 0; j < hw; j++)
            sum += dye[co * hw + j];
        db[co] += sum;
    }
}

void core_conv_direct_backward(const core_conv *c, const float *params, const float *x,
                               const float *dy, float *dx, int n, int param_grads,
                               core_conv_scratch *s, int threads)
{
    const geom gw = geom_of(c->cin, c->cout, c->in);  /* x -> y, for dW */
    const geom gx = geom_of(c->cout, c->cin, c->in);  /* dy -> dx */
    const size_t in = core_shape_size(c->in), out = core_shape_size(c->out);
    const size_t wlen = (size_t)c->cin * c->cout * TAPS;
    const int cmax = c->cin > c->cout ? c->cin : c->cout;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        float *pad = s->col + t * s->col_len, *wk = s->tmp + t * s->tmp_len, *acc = wk + wlen;
        float *dw = s->dw + t * s->dw_len, *db = dw + wlen;
        if (dx)
            pack_transposed(params + c->w_off, c->cin, c->cout, wk);
        pad_clear(&gw, pad, cmax); /* the planes of gw and gx have the same shape */
        if (param_grads) {
            memset(acc, 0, sizeof(float) * wlen * LANES);
            /* The partials are per thread: the split must be a fixed one. */
#pragma omp for schedule(static)
            for (int e = 0; e < n; e++) {
                dw_example(&gw, x + e * in, dy + e * out, pad, acc, db);
                if (dx)
                    dx_example(&gx, dy + e * out, pad, wk, dx + e * in);
            }
            dw_finish(acc, dw, wlen);
        } else if (dx) {
            /* Each example's dx is the same whichever thread computes it. */
#pragma omp for schedule(dynamic, 2)
            for (int e = 0; e < n; e++)
                dx_example(&gx, dy + e * out, pad, wk, dx + e * in);
        }
    }
}
