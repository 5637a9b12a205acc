/*
 * conv_direct.c - direct convolution for small channel counts with AVX-512:
 * 3x3, pad 1, stride 1 or 2 (resnet-tiny: 16 channels at 28x28, 32 at 14x14,
 * and the stride-2 step between them) and 5x5, pad 2, stride 1 (madry: 1 to
 * 32 channels at 28x28, 32 to 64 at 14x14). Below, the 3x3 case is
 * described; a 5x5 kernel has 25 taps where it has 9, padding 2 where it
 * has 1.
 *
 * Why not im2col + GEMM (conv.c) here: with 16 or 32 channels the im2col
 * matrix is 9x larger than the image and the GEMM's inner dimension is only
 * 144 or 288, so the profile was dominated by copying (im2col, col2im, the
 * NCHW reorders, packing) rather than by multiplying. A direct convolution
 * reads each image once from a small zero-padded copy that stays in L1/L2:
 *
 *   forward  y[co] = b[co] + sum_ci,ki,kj w[co][ci][ki][kj] * xpad[ci][r+ki][c+kj]
 *   dx       the same convolution of the padded dy with the weights transposed
 *            (cin <-> cout) and flipped (tap t -> 8 - t); with fewer than 8
 *            input channels, by tap planes instead (dx_taps_geom)
 *   dW       dw[co][ci][t] += sum_r,c dy[co][r][c] * xpad[ci][r+ki][c+kj]
 *
 * Vectors run along image rows: a row of 28 is a full 16-lane vector and one
 * of 12 lanes, a row of 14 one vector of 14. The image's vectors are numbered
 * row by row; a tile is 8 output channels x 3 vectors, 24 zmm accumulators,
 * and each (ci, tap) step loads 3 shifted input vectors and does 24 FMAs with
 * broadcast weights (98% of one core's FMA peak on a hot tile, measured
 * against a register-only FMA loop; the forward can apply a ReLU to the
 * accumulators before storing them). A last
 * block of channels (or, one channel at a time, of vectors) is moved back to
 * end at the image's end and recomputes a little: tiles only store, so
 * recomputing is harmless and the kernel never branches. Loads may read past
 * a row (the lanes are not stored); the padded buffer has slack so they stay
 * inside it.
 *
 * Stride 2 splits the padded input into its four (row parity, column parity)
 * phases, so every tap of an output row is again a contiguous read (from
 * one phase). Its dx is computed phase by phase: input phase (a, b) is
 * reached only by the taps ki = a, kj = b (mod 2), a stride-1 convolution
 * of the padded dy with 4, 2, 2 or 1 taps; the phases are then interleaved
 * back into the image.
 *
 * The weight gradient keeps output channels x taps of 16-lane partial
 * sums in registers over one image, or a few small ones (dw_images), at a
 * time, adds them into per-thread accumulators (tmp), and sums the 16 lanes
 * once per call. 3x3 stride 1 goes by input rows (dw_roll_body: 2 channels,
 * the dy rows kept in registers, 3 input and 2 dy loads per 18 FMAs); the
 * other kinds keep 3 channels x 9 taps (27 zmm; 25 taps go in three groups
 * of at most 9, one pass over the images each), with the row's segment
 * count a constant for rows of 1 or 2 vectors (the per-row loop was ~10% of
 * the time). dy lanes past a row's end are loaded as zeros, so the
 * over-read input lanes contribute nothing.
 *
 * Threads: every pass splits the batch statically, thread t taking the
 * t-th contiguous share as the elementwise layers around it do (OpenMP's
 * static schedule), so a layer's input is mostly in the cache of the core
 * that wrote it: with a dynamic schedule half of each input came from the
 * other core (pad_copy went from 13% to 7% of a resnet-tiny PGD profile).
 * The weight gradient's per-thread partials are added by conv.c in thread
 * order, so results depend on the thread count only.
 * Without AVX-512 conv.c keeps im2col + GEMM, whose own kernels have an
 * AVX2 path.
 */
#include "conv_direct.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE inline __attribute__((always_inline))
#define LANES 16
#define SLACK 64 /* floats after a padded buffer: over-reads land here */
#define MAX_WIDTH 64
/* The weight gradient's kernel calls run over at most DW_IMAGES examples
 * (their padded inputs side by side), enough for DW_VECTORS vectors: on a
 * 14x14 image one pass is only 14 vectors, too few to pay for loading and
 * storing 18 or 27 accumulators (4 images per call: ~20% faster; 8: 5% more,
 * with coarser static shares of the batch). A 28x28 image (56 vectors)
 * goes alone: 4 of them no longer kept the dy planes in L1 (~5% slower). */
#define DW_IMAGES 4
#define DW_VECTORS 48

/* How a pass's taps lie in its input buffer: a k x k kernel at stride 1
 * (TAPS_K3, TAPS_K5), 3x3 at stride 2 (TAPS_K3_S2), or a short list (the
 * stride-2 dx phases). The kernels are compiled once per kind, so that for
 * the square kinds the tap count is a constant and the offsets are
 * constants times wp (and the phase size) that fold into addressing; a
 * table read in the inner loop cost a third of the weight gradient's speed. */
enum { TAPS_K3, TAPS_K3_S2, TAPS_K5, TAPS_LIST };

/* Kernel width and tap count of a kind; TAPS_LIST has at most LIST_TAPS. */
#define KW(KIND) ((KIND) == TAPS_K5 ? 5 : 3)
#define KTAPS(KIND) ((KIND) == TAPS_LIST ? LIST_TAPS : KW(KIND) * KW(KIND))
#define LIST_TAPS 4

/* One pass: cin planes of a padded input buffer to cout output planes of
 * h x w. Output vector v (row r, segment s) reads, for tap t, the 16 floats
 * at r * wp + s * 16 + tap_offset(t) of each input plane. */
typedef struct {
    int cin, cout, h, w;
    int wp;            /* row stride of the input buffer */
    size_t cstride;    /* floats per input plane in the buffer */
    int kind;          /* TAPS_* */
    int phase;         /* TAPS_K3_S2: floats per phase */
    int ntaps;
    int tap[LIST_TAPS]; /* TAPS_LIST: offset of each tap from a vector's start */
    int segs, nvec;    /* vectors per row, per image */
    __mmask16 tail;    /* lanes of a row's last vector */
    int images;        /* dW: examples per kernel call, */
    size_t xstep, dystep; /* floats from one's padded input, dy to the next */
    int relu;          /* forward: a ReLU on the output as it is stored */
} geom;

static geom geom_base(int cin, int cout, int h, int w, int wp, size_t cstride)
{
    geom g = {.cin = cin, .cout = cout, .h = h, .w = w, .wp = wp, .cstride = cstride};
    g.segs = (w + LANES - 1) / LANES;
    g.nvec = g.segs * h;
    int last = w - (g.segs - 1) * LANES;
    g.tail = (__mmask16)((1u << last) - 1);
    return g;
}

/* Stride 1, k x k: the input zero-padded by k / 2 pixels on every side. */
static geom geom_s1(int cin, int cout, int h, int w, int k)
{
    const int p = k / 2;
    geom g = geom_base(cin, cout, h, w, w + 2 * p, (size_t)(h + 2 * p) * (w + 2 * p));
    g.kind = k == 5 ? TAPS_K5 : TAPS_K3;
    g.ntaps = k * k;
    return g;
}

/* Stride 2: the padded input (ih + 2 rows) split into its four (row parity,
 * column parity) phases of ph x pw, so that every tap of a stride-2 output
 * row is a contiguous stride-1 read from one phase. */
typedef struct {
    int ph, pw;
} phases;

static phases phases_of(core_shape in)
{
    return (phases){(in.h + 3) / 2, (in.w + 3) / 2};
}

static geom geom_s2(int cin, int cout, core_shape in, core_shape out)
{
    const phases f = phases_of(in);
    const int phase = f.ph * f.pw;
    geom g = geom_base(cin, cout, out.h, out.w, f.pw, 4 * (size_t)phase);
    g.kind = TAPS_K3_S2;
    g.phase = phase;
    g.ntaps = 9;
    return g;
}

/* dx of a stride-2 layer, one phase (a, b) of the padded input at a time:
 * the phase pixel (R, C) is padded pixel (2R + a, 2C + b), reached by the
 * taps ki = a (mod 2), kj = b (mod 2) from output pixel (R - ki/2, C - kj/2),
 * a stride-1 convolution of dy (padded by one) with those taps. */
static geom geom_dx_s2(const core_conv *c, int a, int b)
{
    const phases f = phases_of(c->in);
    const int wp = c->out.w + 2;
    geom g = geom_base(c->cout, c->cin, f.ph, f.pw, wp, (size_t)(c->out.h + 2) * wp);
    g.kind = TAPS_LIST;
    for (int ki = a; ki < 3; ki += 2)
        for (int kj = b; kj < 3; kj += 2)
            g.tap[g.ntaps++] = (1 - (ki >> 1)) * wp + (1 - (kj >> 1));
    return g;
}

/* 3x3 at stride 1 or 2, 5x5 at stride 1, both "same" padded. */
int core_conv_direct_ok(const core_conv *c)
{
    const int shape = (c->k == 3 && (c->stride == 1 || c->stride == 2)) ||
                      (c->k == 5 && c->stride == 1);
    return shape && c->pad == c->k / 2 && c->in.w <= MAX_WIDTH &&
           __builtin_cpu_supports("avx512f");
}

/* Stride-1 5x5 dx of a layer with fewer than 8 input channels goes by
 * taps (see dx_taps_geom); at 3x3 that was no faster than one output
 * channel per tile (resnet-tiny's first layer: ~10% slower). */
static int dx_by_taps(const core_conv *c)
{
    return c->stride == 1 && c->k == 5 && c->cin < 8;
}

/* The per-thread col slice: DW_IMAGES padded inputs of xpad floats each,
 * the padded dy, and dx's own buffer (stride 2: the four dx phases; by
 * taps: the tap planes). Each region keeps its zero borders. */
typedef struct {
    size_t xpad, dypad, dxbuf;
} col_layout;

static col_layout col_layout_of(const core_conv *c)
{
    const int p2 = 2 * c->pad;
    const size_t dyplane = (size_t)(c->out.h + p2) * (c->out.w + p2);
    const size_t dyp = c->cout * dyplane + SLACK;
    if (c->stride == 1) {
        const size_t taps = dx_by_taps(c) ? c->cin * c->k * c->k * dyplane + SLACK : 0;
        return (col_layout){(size_t)c->cin * (c->in.h + p2) * (c->in.w + p2) + SLACK, dyp, taps};
    }
    const phases f = phases_of(c->in);
    const size_t ph = (size_t)c->cin * 4 * f.ph * f.pw;
    return (col_layout){ph + SLACK, dyp, ph};
}

void core_conv_direct_need(const core_conv *c, size_t need[3])
{
    const col_layout l = col_layout_of(c);
    const size_t w = (size_t)c->cin * c->cout * c->k * c->k, sizes[3] = {
        DW_IMAGES * l.xpad + l.dypad + l.dxbuf, w + w * LANES, w + c->cout};
    for (int i = 0; i < 3; i++)
        need[i] = need[i] > sizes[i] ? need[i] : sizes[i];
}

/* ---- layout helpers ------------------------------------------------------ */

/* Where vector v of the image starts: in the input buffer (at tap offset 0),
 * in the output, and which lanes are real. */
static INLINE void vec_at(const geom *g, int v, size_t *in, size_t *out, __mmask16 *m)
{
    const int row = v / g->segs, seg = v % g->segs;
    *in = (size_t)row * g->wp + seg * LANES;
    *out = (size_t)row * g->w + seg * LANES;
    *m = seg == g->segs - 1 ? g->tail : (__mmask16)0xFFFF;
}

/* Images copied into a buffer padded by pad pixels only write its
 * interior, so zeroing it once per call keeps the borders (and the slack)
 * zero. Rows are 7 to 64 floats: a memcpy call per row cost more than its
 * copy (5 % of a PGD profile), so rows go through masked vector moves. */
static AVX512 void pad_copy(const float *src, int planes, int h, int w, int pad, float *buf)
{
    const int wp = w + 2 * pad;
    for (int p = 0; p < planes; p++)
        for (int r = 0; r < h; r++) {
            const float *s = src + ((size_t)p * h + r) * w;
            float *d = buf + ((size_t)p * (h + 2 * pad) + r + pad) * wp + pad;
            for (int j = 0; j < w; j += LANES) {
                const __mmask16 m = w - j >= LANES ? (__mmask16)0xFFFF
                                                   : (__mmask16)((1u << (w - j)) - 1);
                _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
            }
        }
}

/* Padded pixel (P, Q) = input (P - 1, Q - 1) goes to phase (P & 1, Q & 1)
 * at (P / 2, Q / 2). */
static void phase_copy(const float *src, int planes, core_shape in, float *buf)
{
    const phases f = phases_of(in);
    const size_t phase = (size_t)f.ph * f.pw;
    for (int p = 0; p < planes; p++)
        for (int iy = 0; iy < in.h; iy++) {
            const int P = iy + 1;
            const float *s = src + ((size_t)p * in.h + iy) * in.w;
            float *odd = buf + (4 * p + (P & 1) * 2 + 1) * phase + (size_t)(P >> 1) * f.pw;
            float *even = odd - phase + 1; /* column Q = ix + 1: even ix -> odd Q */
            for (int m = 0; m < in.w / 2; m++) {
                odd[m] = s[2 * m];
                even[m] = s[2 * m + 1];
            }
            if (in.w & 1)
                odd[in.w / 2] = s[in.w - 1];
        }
}

/* The inverse for dx: the four phases (each cin planes of ph x pw) back
 * into the image. */
static void phase_gather(const float *buf, int planes, core_shape in, float *dst)
{
    const phases f = phases_of(in);
    const size_t phase = (size_t)planes * f.ph * f.pw;
    for (int p = 0; p < planes; p++)
        for (int iy = 0; iy < in.h; iy++) {
            const int P = iy + 1;
            float *d = dst + ((size_t)p * in.h + iy) * in.w;
            const float *odd = buf + ((P & 1) * 2 + 1) * phase +
                               ((size_t)p * f.ph + (P >> 1)) * f.pw;
            const float *even = odd - phase + 1;
            for (int m = 0; m < in.w / 2; m++) {
                d[2 * m] = odd[m];
                d[2 * m + 1] = even[m];
            }
            if (in.w & 1)
                d[in.w - 1] = odd[in.w / 2];
        }
}

/* Forward weights (nt taps each) as [ci][tap][co]: the kernel broadcasts
 * consecutive co. */
static void pack_forward(const float *w, int cin, int cout, int nt, float *dst)
{
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < nt; t++)
                dst[((size_t)ci * nt + t) * cout + co] = w[((size_t)co * cin + ci) * nt + t];
}

/* Stride-1 dx weights: a convolution from cout planes to cin planes with
 * the nt taps flipped, as [co][tap][ci]. */
static void pack_transposed(const float *w, int cin, int cout, int nt, float *dst)
{
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int t = 0; t < nt; t++)
                dst[((size_t)co * nt + (nt - 1 - t)) * cin + ci] =
                    w[((size_t)co * cin + ci) * nt + t];
}

/* Stride-2 dx weights: for each phase (a, b) in turn, its taps (in
 * geom_dx_s2's order) as [co][tap][ci]. */
static void pack_phases(const float *w, int cin, int cout, float *dst)
{
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            const int nt = (a ? 1 : 2) * (b ? 1 : 2);
            int j = 0;
            for (int ki = a; ki < 3; ki += 2)
                for (int kj = b; kj < 3; kj += 2, j++)
                    for (int co = 0; co < cout; co++)
                        for (int ci = 0; ci < cin; ci++)
                            dst[((size_t)co * nt + j) * cin + ci] =
                                w[((size_t)co * cin + ci) * 9 + ki * 3 + kj];
            dst += (size_t)nt * cout * cin;
        }
}

/* ---- convolution kernel (forward and dx) -------------------------------- */

/* Offset of tap t; KIND is a constant at every call. */
static INLINE int tap_offset(const geom *g, int t, const int KIND)
{
    const int ki = t / KW(KIND), kj = t % KW(KIND);
    if (KIND == TAPS_K3 || KIND == TAPS_K5)
        return ki * g->wp + kj;
    if (KIND == TAPS_K3_S2) /* phase (ki & 1, kj & 1), shifted by (ki / 2, kj / 2) */
        return ((ki & 1) * 2 + (kj & 1)) * g->phase + (ki >> 1) * g->wp + (kj >> 1);
    return g->tap[t];
}

/* A square kind's tap offsets split into a row part and a column part (tap
 * (ki, kj) is at roff[ki] + cols[kj]), so each load is a row pointer plus a
 * small constant or one register. */
static INLINE void tap_split(const geom *g, int roff[5], int cols[5], const int KIND)
{
    for (int i = 0; i < KW(KIND); i++) {
        roff[i] = tap_offset(g, i * KW(KIND), KIND);
        cols[i] = tap_offset(g, i, KIND);
    }
}

/* Output channels co0..co0+CO x image vectors v0..v0+NV. wk is
 * [ci][tap][cout]; bias may be NULL. CO and NV are constants at every call (the wrappers
 * below), so the accumulators live in registers. */
static INLINE AVX512 void tile_body(const geom *g, const float *xp, const float *wk,
                                    const float *bias, float *y, int co0, int v0, const int CO,
                                    const int NV, const int KIND)
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
    const int cout = g->cout, nt = KIND == TAPS_LIST ? g->ntaps : KTAPS(KIND);
    /* Square kinds go kernel row by kernel row (not unrolled) with the
     * row's taps unrolled: fully unrolled, the 9 or 25 taps x NV input
     * addresses ran GCC out of general registers, and the spills reached
     * the accumulators. */
    const int K = KIND == TAPS_LIST ? 1 : KW(KIND), KT = KIND == TAPS_LIST ? nt : K;
    int roff[5] = {0}, cols[5] = {0};
    if (KIND != TAPS_LIST)
        tap_split(g, roff, cols, KIND);
    for (int ci = 0; ci < g->cin; ci++) {
        const float *x = xp + ci * g->cstride, *w = wk + (size_t)ci * nt * cout + co0;
#pragma GCC unroll 1
        for (int ki = 0; ki < K; ki++) {
            const float *xr = x + roff[ki], *wr = w + (size_t)ki * K * cout;
#pragma GCC unroll 5
            for (int kj = 0; kj < KT; kj++) {
                const int off = KIND == TAPS_LIST ? g->tap[kj] : cols[kj];
                __m512 xv[8];
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++)
                    xv[v] = _mm512_loadu_ps(xr + in[v] + off);
#pragma GCC unroll 8
                for (int c = 0; c < CO; c++) {
                    __m512 wv = _mm512_set1_ps(wr[kj * cout + c]);
#pragma GCC unroll 8
                    for (int v = 0; v < NV; v++)
                        acc[c][v] = _mm512_fmadd_ps(wv, xv[v], acc[c][v]);
                }
            }
        }
    }
    const size_t hw = (size_t)g->h * g->w;
    if (g->relu)
#pragma GCC unroll 8
        for (int c = 0; c < CO; c++)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                acc[c][v] = _mm512_max_ps(acc[c][v], _mm512_setzero_ps());
#pragma GCC unroll 8
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            _mm512_mask_storeu_ps(y + (co0 + c) * hw + out[v], m[v], acc[c][v]);
}

typedef void (*tile_fn)(const geom *, const float *, const float *, const float *, float *, int,
                        int);

/* The tiles of one tap kind: 8 channels x 3, 2, 1 vectors; 1 x 8, 1 x 1. */
typedef struct {
    tile_fn t8x3, t8x2, t8x1, t1x8, t1x1;
} tile_set;

#define TILE(CO, NV, KIND)                                                                    \
    static AVX512 void tile_##CO##x##NV##_##KIND(const geom *g, const float *xp,              \
                                                 const float *wk, const float *bias,          \
                                                 float *y, int co0, int v0)                   \
    {                                                                                         \
        tile_body(g, xp, wk, bias, y, co0, v0, CO, NV, KIND);                                 \
    }
#define TILE_SET(KIND)                                                                        \
    TILE(8, 3, KIND) TILE(8, 2, KIND) TILE(8, 1, KIND) TILE(1, 8, KIND) TILE(1, 1, KIND)
TILE_SET(TAPS_K3)
TILE_SET(TAPS_K3_S2)
TILE_SET(TAPS_K5)
TILE_SET(TAPS_LIST)
#define SET_OF(KIND)                                                                          \
    {tile_8x3_##KIND, tile_8x2_##KIND, tile_8x1_##KIND, tile_1x8_##KIND, tile_1x1_##KIND}

static const tile_set tile_sets[] = {[TAPS_K3] = SET_OF(TAPS_K3),
                                     [TAPS_K3_S2] = SET_OF(TAPS_K3_S2),
                                     [TAPS_K5] = SET_OF(TAPS_K5),
                                     [TAPS_LIST] = SET_OF(TAPS_LIST)};

/* Every vector of the image for output channels co0..co0+8: 3 at a time,
 * then the 1 or 2 left over. */
static void tile_image_8(const geom *g, const tile_set *ts, const float *xp, const float *wk,
                         const float *bias, float *y, int co0)
{
    int v = 0;
    for (; v + 3 <= g->nvec; v += 3)
        ts->t8x3(g, xp, wk, bias, y, co0, v);
    if (g->nvec - v == 2)
        ts->t8x2(g, xp, wk, bias, y, co0, v);
    else if (g->nvec - v == 1)
        ts->t8x1(g, xp, wk, bias, y, co0, v);
}

/* One output channel: 8 vectors at a time, the last group moved back to
 * end at the image's end (see the header comment). */
static void tile_image_1(const geom *g, const tile_set *ts, const float *xp, const float *wk,
                         const float *bias, float *y, int co)
{
    if (g->nvec < 8) {
        for (int v = 0; v < g->nvec; v++)
            ts->t1x1(g, xp, wk, bias, y, co, v);
        return;
    }
    for (int v = 0; v < g->nvec; v += 8)
        ts->t1x8(g, xp, wk, bias, y, co, v + 8 <= g->nvec ? v : g->nvec - 8);
}

/* y (cout planes of h x w) = the convolution of the padded image xp. Blocks
 * of 8 output channels, the last one moved back to end at cout; fewer than
 * 8 channels (dx of a first layer) one at a time. */
static void conv_image(const geom *g, const float *xp, const float *wk, const float *bias,
                       float *y)
{
    const tile_set *ts = &tile_sets[g->kind];
    if (g->cout >= 8) {
        for (int co = 0; co < g->cout; co += 8)
            tile_image_8(g, ts, xp, wk, bias, y, co + 8 <= g->cout ? co : g->cout - 8);
        return;
    }
    for (int co = 0; co < g->cout; co++)
        tile_image_1(g, ts, xp, wk, bias, y, co);
}

/* ---- weight-gradient kernel --------------------------------------------- */

/* The weight gradient takes a kind's taps in groups of up to GROUP, so that
 * 3 channels x GROUP taps of partial sums fit in the 32 zmm registers: a
 * 5x5 kernel is 3 passes over the image (taps 0-8, 9-17, 18-24), each with
 * the 3x3 kernel's ratio of loads to FMAs. */
#define GROUP 9
#define GROUPS(KIND) ((KTAPS(KIND) + GROUP - 1) / GROUP)
#define GROUP_TAPS(KIND, G) (KTAPS(KIND) - (G) * GROUP < GROUP ? KTAPS(KIND) - (G) * GROUP : GROUP)

/* The thread's accumulator of weight (co, ci, tap t of nt) += a; acc is
 * [co][ci][tap][16]. */
static INLINE AVX512 void acc_add(const geom *g, float *acc, int co, int ci, int nt, int t,
                                  __m512 a)
{
    float *p = acc + (((size_t)co * g->cin + ci) * nt + t) * LANES;
    _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a));
}

/* acc[c][t] (16 lanes each, in memory) += sum over the image's vectors of
 * dy[co0+c] * xpad[ci] shifted by tap t, for the taps T0..T0+NT. CO, KIND,
 * T0 and NT are constants at every call. */
static INLINE AVX512 void dw_body(const geom *g, const float *xp, const float *dy, float *acc,
                                  int ci, int co0, const int CO, const int KIND, const int T0,
                                  const int NT, const int SEGS)
{
    const int segs = SEGS ? SEGS : g->segs;
    __m512 a[3][GROUP];
#pragma GCC unroll 3
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 9
        for (int t = 0; t < NT; t++)
            a[c][t] = _mm512_setzero_ps();
    const int K = KW(KIND);
    int roff[5], cols[5];
    tap_split(g, roff, cols, KIND);
    const size_t hw = (size_t)g->h * g->w;
    for (int e = 0; e < g->images; e++) {
        const float *x = xp + e * g->xstep + ci * g->cstride;
        const float *d0 = dy + e * g->dystep + co0 * hw;
        for (int row = 0; row < g->h; row++) {
            const float *xr = x + (size_t)row * g->wp, *dr = d0 + (size_t)row * g->w;
#pragma GCC unroll 2
            for (int seg = 0; seg < segs; seg++) {
                const __mmask16 m = seg == segs - 1 ? g->tail : (__mmask16)0xFFFF;
                const float *rows[5];
#pragma GCC unroll 5
                for (int i = 0; i < K; i++)
                    rows[i] = xr + seg * LANES + roff[i];
                __m512 d[3];
#pragma GCC unroll 3
                for (int c = 0; c < CO; c++)
                    d[c] = _mm512_maskz_loadu_ps(m, dr + c * hw + seg * LANES);
#pragma GCC unroll 9
                for (int t = 0; t < NT; t++) {
                    __m512 xv = _mm512_loadu_ps(rows[(T0 + t) / K] + cols[(T0 + t) % K]);
                    /* One load for CO FMAs: GCC would fold it into each. */
                    __asm__("" : "+v"(xv));
#pragma GCC unroll 3
                    for (int c = 0; c < CO; c++)
                        a[c][t] = _mm512_fmadd_ps(d[c], xv, a[c][t]);
                }
            }
        }
    }
#pragma GCC unroll 3
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 9
        for (int t = 0; t < NT; t++)
            acc_add(g, acc, co0 + c, ci, KTAPS(KIND), T0 + t, a[c][t]);
}

typedef void (*dw_fn)(const geom *, const float *, const float *, float *, int, int);

/* dw_CO_KIND_G_S: CO channels x tap group G of KIND on rows of S vectors
 * (0: any); DW_SET(KIND, G) the functions of a group, indexed by [S][CO - 1]. */
#define DW(CO, KIND, G, S)                                                                    \
    static AVX512 void dw_##CO##_##KIND##_##G##_##S(const geom *g, const float *xp,           \
                                                    const float *dy, float *acc, int ci,      \
                                                    int co0)                                  \
    {                                                                                         \
        dw_body(g, xp, dy, acc, ci, co0, CO, KIND, (G) * GROUP, GROUP_TAPS(KIND, G), S);      \
    }
#define DW_SEGS(KIND, G, S) DW(1, KIND, G, S) DW(2, KIND, G, S) DW(3, KIND, G, S)
#define DW_FNS(KIND, G) DW_SEGS(KIND, G, 0) DW_SEGS(KIND, G, 1) DW_SEGS(KIND, G, 2)
#define DW_ROW(KIND, G, S)                                                                    \
    {dw_1_##KIND##_##G##_##S, dw_2_##KIND##_##G##_##S, dw_3_##KIND##_##G##_##S}
#define DW_SET(KIND, G) {DW_ROW(KIND, G, 0), DW_ROW(KIND, G, 1), DW_ROW(KIND, G, 2)}
DW_FNS(TAPS_K3_S2, 0)
DW_FNS(TAPS_K5, 0) DW_FNS(TAPS_K5, 1) DW_FNS(TAPS_K5, 2)
static const dw_fn dw_sets[][GROUPS(TAPS_K5)][3][3] = {
    [TAPS_K3_S2] = {DW_SET(TAPS_K3_S2, 0)},
    [TAPS_K5] = {DW_SET(TAPS_K5, 0), DW_SET(TAPS_K5, 1), DW_SET(TAPS_K5, 2)}};

/* The 3x3 stride-1 weight gradient by input rows: padded input row R
 * meets dy row R - ki through the taps of kernel row ki, so the three
 * column-shifted loads of row R serve all nine taps, and the dy rows R,
 * stay in registers from one input row to the next. Per row and
 * segment that is 3 input loads and CO dy loads for 9 * CO FMAs, where
 * dw_body needs 9 + CO loads for 9 * CO (1.4x the speed of dw_body's 3
 * channels on one 28x28 image). CO = 2 keeps 18 accumulators + 6 dy rows
 * + 3 inputs in registers; 3 would need 39. */
#define ROLL_CO 2

/* One padded input row R against the dy rows held in d[0] (R), d[1]
 * d[2]: DY, K1, K2 say which of those exist (DY: row R is
 * loaded from dr first). */
static INLINE AVX512 void roll_row(const float *xr, const float *dr, size_t hw, __mmask16 m,
                                   __m512 d[3][ROLL_CO], __m512 a[ROLL_CO][9], const int CO,
                                   const int DY, const int K1, const int K2)
{
#pragma GCC unroll 2
    for (int c = 0; c < CO; c++) {
        d[2][c] = d[1][c];
        d[1][c] = d[0][c];
        if (DY)
            d[0][c] = _mm512_maskz_loadu_ps(m, dr + c * hw);
    }
    const __m512 x[3] = {_mm512_loadu_ps(xr), _mm512_loadu_ps(xr + 1), _mm512_loadu_ps(xr + 2)};
#pragma GCC unroll 3
    for (int kj = 0; kj < 3; kj++)
#pragma GCC unroll 2
        for (int c = 0; c < CO; c++) {
            if (DY)
                a[c][kj] = _mm512_fmadd_ps(d[0][c], x[kj], a[c][kj]);
            if (K1)
                a[c][3 + kj] = _mm512_fmadd_ps(d[1][c], x[kj], a[c][3 + kj]);
            if (K2)
                a[c][6 + kj] = _mm512_fmadd_ps(d[2][c], x[kj], a[c][6 + kj]);
        }
}

static INLINE AVX512 void dw_roll_body(const geom *g, const float *xp, const float *dy,
                                       float *acc, int ci, int co0, const int CO)
{
    __m512 a[ROLL_CO][9], d[3][ROLL_CO];
#pragma GCC unroll 2
    for (int c = 0; c < CO; c++) {
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++)
            a[c][t] = _mm512_setzero_ps();
        d[0][c] = d[1][c] = _mm512_setzero_ps();
    }
    const size_t hw = (size_t)g->h * g->w;
    const int h = g->h, wp = g->wp, w = g->w;
    for (int e = 0; e < g->images; e++)
        for (int seg = 0; seg < g->segs; seg++) {
            const __mmask16 m = seg == g->segs - 1 ? g->tail : (__mmask16)0xFFFF;
            const float *x = xp + e * g->xstep + ci * g->cstride + seg * LANES;
            const float *dr = dy + e * g->dystep + co0 * hw + seg * LANES;
            /* Rows 0 and 1 have no dy row R-2, rows h and h+1 no row R. */
            if (h == 1) {
                roll_row(x, dr, hw, m, d, a, CO, 1, 0, 0);
                roll_row(x + wp, NULL, hw, m, d, a, CO, 0, 1, 0);
                roll_row(x + 2 * wp, NULL, hw, m, d, a, CO, 0, 0, 1);
                continue;
            }
            roll_row(x, dr, hw, m, d, a, CO, 1, 0, 0);
            roll_row(x + wp, dr + w, hw, m, d, a, CO, 1, 1, 0);
            for (int R = 2; R < h; R++)
                roll_row(x + R * wp, dr + R * w, hw, m, d, a, CO, 1, 1, 1);
            roll_row(x + h * wp, NULL, hw, m, d, a, CO, 0, 1, 1);
            roll_row(x + (h + 1) * wp, NULL, hw, m, d, a, CO, 0, 0, 1);
        }
#pragma GCC unroll 2
    for (int c = 0; c < CO; c++)
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++)
            acc_add(g, acc, co0 + c, ci, 9, t, a[c][t]);
}

static AVX512 void dw_roll_1(const geom *g, const float *xp, const float *dy, float *acc,
                             int ci, int co0)
{
    dw_roll_body(g, xp, dy, acc, ci, co0, 1);
}

static AVX512 void dw_roll_2(const geom *g, const float *xp, const float *dy, float *acc,
                             int ci, int co0)
{
    dw_roll_body(g, xp, dy, acc, ci, co0, 2);
}

/* 3x3 stride 1: output channels ROLL_CO at a time by rows, then the one
 * left over. */
static void dw_image_roll(const geom *g, const float *xp, const float *dy, float *acc)
{
    for (int co = 0; co < g->cout; co += ROLL_CO)
        for (int ci = 0; ci < g->cin; ci++)
            (g->cout - co >= ROLL_CO ? dw_roll_2 : dw_roll_1)(g, xp, dy, acc, ci, co);
}

/* The contribution of g->images examples to the weight-gradient
 * accumulators: 3x3 stride 1 by rows (dw_image_roll); the other kinds
 * output channels 3 at a time, then the 1 or 2 left over, for each input
 * channel the tap groups in turn (its planes and the dy planes stay in
 * L1/L2). */
static void dw_image(const geom *g, const float *xp, const float *dy, float *acc)
{
    if (g->kind == TAPS_K3) {
        dw_image_roll(g, xp, dy, acc);
        return;
    }
    const int groups = (g->ntaps + GROUP - 1) / GROUP, sv = g->segs <= 2 ? g->segs : 0;
    for (int co = 0; co < g->cout; co += 3) {
        const int nc = g->cout - co < 3 ? g->cout - co : 3;
        for (int ci = 0; ci < g->cin; ci++)
            for (int gr = 0; gr < groups; gr++)
                dw_sets[g->kind][gr][sv][nc - 1](g, xp, dy, acc, ci, co);
    }
}

/* dw[co][ci*k*k+t] += the 16 lanes of acc[co][ci][t], summed in a fixed order. */
static AVX512 void dw_finish(const float *acc, float *dw, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dw[i] += _mm512_reduce_add_ps(_mm512_loadu_ps(acc + i * LANES));
}

/* ---- passes -------------------------------------------------------------- */

/* Ask for the next example's input while this one is computed: read by the
 * padded copy, it came from L3 or memory, and the copy waited on it. */
static void prefetch(const float *p, size_t len)
{
    for (size_t i = 0; i < len; i += 64 / sizeof(float))
        _mm_prefetch((const char *)(p + i), _MM_HINT_T1);
}

/* The layer's input x, padded (stride 1) or split into phases (stride 2). */
static void input_copy(const core_conv *c, const float *x, float *buf)
{
    if (c->stride == 1)
        pad_copy(x, c->cin, c->in.h, c->in.w, c->pad, buf);
    else
        phase_copy(x, c->cin, c->in, buf);
}

static geom geom_forward(const core_conv *c)
{
    return c->stride == 1 ? geom_s1(c->cin, c->cout, c->out.h, c->out.w, c->k)
                          : geom_s2(c->cin, c->cout, c->in, c->out);
}

void core_conv_direct_forward(const core_conv *c, const float *params, const float *x, float *y,
                              int n, core_conv_scratch *s, int threads, int relu)
{
    geom g = geom_forward(c);
    g.relu = relu;
    const col_layout l = col_layout_of(c);
    const size_t in = core_shape_size(c->in), out = core_shape_size(c->out);
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        float *xp = s->col + t * s->col_len, *wk = s->tmp + t * s->tmp_len;
        pack_forward(params + c->w_off, c->cin, c->cout, c->k * c->k, wk);
        memset(xp, 0, sizeof(float) * l.xpad);
#pragma omp for schedule(static)
        for (int e = 0; e < n; e++) {
            input_copy(c, x + e * in, xp);
            if (e + 1 < n)
                prefetch(x + (e + 1) * in, in);
            conv_image(&g, xp, wk, params + c->b_off, y + e * out);
        }
    }
}

/* dx of a stride-1 layer with few input channels (a first layer: 1 or 3)
 * would get one output channel per tile, one shifted load per FMA, about
 * half the speed of im2col + GEMM. Instead, a 1x1 convolution makes one
 * plane per (input channel, tap) over the whole padded dy grid,
 *   u[ci][t][P][Q] = sum_co w[co][ci][t] * dypad[co][P][Q],
 * 8 of those planes per tile as usual, and dx is the sum of the k*k shifted
 * tap planes (tap_sum). Its weights are w as stored: [co][ci * k*k + t] is
 * [ci'][tap 0][cout'] of a 1x1 convolution from cout to cin*k*k planes. */
static geom dx_taps_geom(const core_conv *c)
{
    const int hp = c->out.h + 2 * c->pad, wp = c->out.w + 2 * c->pad;
    geom g = geom_base(c->cout, c->cin * c->k * c->k, hp, wp, wp, (size_t)hp * wp);
    g.kind = TAPS_LIST;
    g.ntaps = 1;
    g.tap[0] = 0;
    return g;
}

/* dx[ci][r][c] = sum over taps (ki, kj) of u[ci][t] at the padded pixel
 * (r + k-1 - ki, c + k-1 - kj), in a fixed order. Loads past a row's end
 * read other planes or the slack; those lanes are not stored. */
static AVX512 void tap_sum(const float *u, const core_conv *c, float *dx)
{
    const int k = c->k, h = c->in.h, w = c->in.w, wp = w + 2 * c->pad;
    const size_t plane = (size_t)(h + 2 * c->pad) * wp;
    for (int ci = 0; ci < c->cin; ci++)
        for (int r = 0; r < h; r++)
            for (int j = 0; j < w; j += LANES) {
                const __mmask16 m = w - j >= LANES ? (__mmask16)0xFFFF
                                                   : (__mmask16)((1u << (w - j)) - 1);
                const float *uc = u + (size_t)ci * k * k * plane + (size_t)(r + k - 1) * wp +
                                  j + k - 1;
                __m512 s = _mm512_setzero_ps();
                for (int t = 0; t < k * k; t++)
                    s = _mm512_add_ps(
                        s, _mm512_loadu_ps(uc + t * plane - (t / k) * wp - t % k));
                _mm512_mask_storeu_ps(dx + ((size_t)ci * h + r) * w + j, m, s);
            }
}

/* How dx is computed: one stride-1 pass, by taps, or one pass per input
 * phase. */
enum { DX_DIRECT, DX_TAPS, DX_PHASES };
typedef struct {
    int how, passes;
    geom g[4];
    size_t woff[4]; /* each pass's packed weights */
} dx_plan;

static dx_plan dx_plan_of(const core_conv *c)
{
    dx_plan d = {0};
    if (c->stride == 1) {
        d.how = dx_by_taps(c) ? DX_TAPS : DX_DIRECT;
        d.passes = 1;
        d.g[0] = d.how == DX_TAPS ? dx_taps_geom(c)
                                  : geom_s1(c->cout, c->cin, c->in.h, c->in.w, c->k);
        return d;
    }
    d.how = DX_PHASES;
    size_t off = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            d.g[d.passes] = geom_dx_s2(c, a, b);
            d.woff[d.passes++] = off;
            off += (size_t)d.g[d.passes - 1].ntaps * c->cin * c->cout;
        }
    return d;
}

/* One example's input gradient from its dy: dy is padded, each pass
 * convolves it with its weights; by taps sums the tap planes, stride 2
 * interleaves the phases (both in buf). */
static void dx_example(const core_conv *c, const dx_plan *d, const float *dye, float *dyp,
                       float *buf, const float *wk, float *dxe)
{
    pad_copy(dye, c->cout, c->out.h, c->out.w, c->pad, dyp);
    if (d->how == DX_DIRECT) {
        conv_image(&d->g[0], dyp, wk, NULL, dxe);
        return;
    }
    if (d->how == DX_TAPS) {
        conv_image(&d->g[0], dyp, wk, NULL, buf);
        tap_sum(buf, c, dxe);
        return;
    }
    float *phase = buf;
    const size_t block = (size_t)c->cin * d->g[0].h * d->g[0].w;
    for (int p = 0; p < d->passes; p++)
        conv_image(&d->g[p], dyp, wk + d->woff[p], NULL, phase + p * block);
    phase_gather(phase, c->cin, c->in, dxe);
}

/* Examples per weight-gradient kernel call (see DW_IMAGES). */
static int dw_images(const geom *g)
{
    const int e = (DW_VECTORS + g->nvec - 1) / g->nvec;
    return e < DW_IMAGES ? e : DW_IMAGES;
}

/* The weight and bias gradient of ne consecutive examples (at most
 * DW_IMAGES), into the thread's accumulators; their padded inputs go to
 * the xp slots, xstep floats apart. */
static void dw_examples(const core_conv *c, const geom *gw, const float *x, const float *dy,
                        int ne, float *xp, float *acc, float *db)
{
    geom g = *gw;
    g.images = ne;
    const size_t hw = (size_t)g.h * g.w;
    for (int e = 0; e < ne; e++)
        input_copy(c, x + e * core_shape_size(c->in), xp + e * g.xstep);
    dw_image(&g, xp, dy, acc);
    for (int e = 0; e < ne; e++)
        for (int co = 0; co < g.cout; co++) {
            const float *d = dy + e * g.dystep + co * hw;
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t j = 0; j < hw; j++)
                sum += d[j];
            db[co] += sum;
        }
}

void core_conv_direct_backward(const core_conv *c, const float *params, const float *x,
                               const float *dy, float *dx, int n, int param_grads,
                               core_conv_scratch *s, int threads)
{
    const col_layout l = col_layout_of(c);
    const size_t in = core_shape_size(c->in), out = core_shape_size(c->out);
    geom gw = geom_forward(c);
    gw.xstep = l.xpad;
    gw.dystep = out;
    const dx_plan d = dx_plan_of(c);
    const size_t wlen = (size_t)c->cin * c->cout * c->k * c->k;
    const int per = dw_images(&gw), groups = (n + per - 1) / per;
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        float *xp = s->col + t * s->col_len, *dyp = xp + DW_IMAGES * l.xpad;
        float *buf = dyp + l.dypad;
        float *wk = s->tmp + t * s->tmp_len, *acc = wk + wlen;
        float *dw = s->dw + t * s->dw_len, *db = dw + wlen;
        const float *wdx = d.how == DX_TAPS ? params + c->w_off : wk;
        if (dx && d.how == DX_DIRECT)
            pack_transposed(params + c->w_off, c->cin, c->cout, c->k * c->k, wk);
        else if (dx && d.how == DX_PHASES)
            pack_phases(params + c->w_off, c->cin, c->cout, wk);
        memset(xp, 0, sizeof(float) * (DW_IMAGES * l.xpad + l.dypad));
        if (param_grads) {
            memset(acc, 0, sizeof(float) * wlen * LANES);
            /* The partials are per thread: the split (into groups of per
             * examples) must be a fixed one. */
#pragma omp for schedule(static)
            for (int gi = 0; gi < groups; gi++) {
                const int e0 = gi * per, ne = n - e0 < per ? n - e0 : per;
                if (gi + 1 < groups) {
                    const int nn = n - e0 - ne < per ? n - e0 - ne : per;
                    prefetch(x + (e0 + ne) * in, nn * in);
                    prefetch(dy + (e0 + ne) * out, nn * out);
                }
                dw_examples(c, &gw, x + e0 * in, dy + e0 * out, ne, xp, acc, db);
                for (int e = e0; dx && e < e0 + ne; e++)
                    dx_example(c, &d, dy + e * out, dyp, buf, wdx, dx + e * in);
            }
            dw_finish(acc, dw, wlen);
        } else if (dx) {
#pragma omp for schedule(static)
            for (int e = 0; e < n; e++) {
                if (e + 1 < n)
                    prefetch(dy + (e + 1) * out, out);
                dx_example(c, &d, dy + e * out, dyp, buf, wdx, dx + e * in);
            }
        }
    }
}
