/*
 * corrupt.c - the corruptions of corrupt.h, one function per kind working
 * on one example (C x H x W), run over the batch in parallel.
 *
 * Randomness: example e's numbers come from stream + e, counter = the
 * element index (or a small fixed counter for per-example choices), so the
 * output never depends on the thread count.
 */
#include "corrupt.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "rng.h"

static const char *const names[CORE_NCORRUPTIONS] = {
    "gaussian_noise", "shot_noise", "impulse_noise", "brightness", "contrast",
    "gaussian_blur", "pixelate", "translate", "rotate",
};

/* Severity 1..5 constants (robustness-methods.md, "Distribution shift"). */
static const double levels[CORE_NCORRUPTIONS][CORE_SEVERITIES] = {
    {0.04, 0.06, 0.08, 0.09, 0.10},   /* noise sigma */
    {500, 250, 100, 75, 50},          /* photons per unit intensity */
    {0.01, 0.02, 0.03, 0.05, 0.07},   /* fraction of pixels hit */
    {0.05, 0.10, 0.15, 0.20, 0.30},   /* added intensity */
    {0.75, 0.5, 0.4, 0.3, 0.15},      /* contrast factor */
    {0.4, 0.6, 0.7, 0.8, 1.0},        /* blur sigma, pixels */
    {0.95, 0.9, 0.85, 0.75, 0.65},    /* resolution factor */
    {1, 2, 3, 4, 5},                  /* shift, pixels per axis */
    {0.2, 0.4, 0.6, 0.8, 1.0},        /* rotation, radians */
};

const char *core_corruption_name(core_corruption c)
{
    return c >= 0 && c < CORE_NCORRUPTIONS ? names[c] : "unknown";
}

int core_corruption_parse(const char *s, core_corruption *out, char *err)
{
    int i = core_name_index(s, names, CORE_NCORRUPTIONS);
    if (i >= 0) {
        *out = (core_corruption)i;
        return 0;
    }
    return core_errf(err, "unknown corruption '%s' (gaussian_noise, shot_noise, impulse_noise, "
                          "brightness, contrast, gaussian_blur, pixelate, translate, rotate)", s);
}

double core_corruption_level(core_corruption c, int severity)
{
    if (c < 0 || c >= CORE_NCORRUPTIONS || severity < 1 || severity > CORE_SEVERITIES)
        return 0.0;
    return levels[c][severity - 1];
}

static float clip01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* One example's job: x and y hold C x H x W floats; tmp has room for
 * 2 * H * W floats; e is the example's index for its random numbers. */
typedef struct {
    core_shape s;
    double level;
    uint64_t seed, stream;
    float *tmp;
} job;

/* ------------------------------------------------------------- noise */

static void gaussian_noise(const job *j, const float *x, float *y, int e)
{
    const size_t dim = core_shape_size(j->s);
    for (size_t p = 0; p < dim; p++)
        y[p] = clip01(x[p] + (float)j->level * core_rng_normal(j->seed, j->stream + e, p));
}

/* A Poisson draw of mean lambda for draw (seed, stream, counter): the
 * rounded normal approximation from 30 up (its error is far below a pixel
 * level there), Knuth's product of uniforms below, the uniforms from a
 * private SplitMix sequence seeded by the draw's random word. */
static double poisson(double lambda, uint64_t seed, uint64_t stream, uint64_t counter)
{
    if (lambda >= 30.0) {
        double z = core_rng_normal(seed, stream, counter);
        double k = floor(lambda + sqrt(lambda) * z + 0.5);
        return k < 0.0 ? 0.0 : k;
    }
    uint64_t word = core_rng_u64(seed, stream, counter);
    double limit = exp(-lambda), prod = 1.0;
    int k = -1;
    do {
        word += 0x9e3779b97f4a7c15ULL;
        prod *= ((core_mix64(word) >> 11) + 0.5) * 0x1p-53;
        k++;
    } while (prod > limit);
    return k;
}

static void shot_noise(const job *j, const float *x, float *y, int e)
{
    const size_t dim = core_shape_size(j->s);
    for (size_t p = 0; p < dim; p++) {
        double k = poisson(x[p] * j->level, j->seed, j->stream + e, p);
        y[p] = clip01((float)(k / j->level));
    }
}

static void impulse_noise(const job *j, const float *x, float *y, int e)
{
    const size_t dim = core_shape_size(j->s);
    for (size_t p = 0; p < dim; p++) {
        uint64_t r = core_rng_u64(j->seed, j->stream + e, p);
        double u = (r >> 11) * 0x1p-53;
        y[p] = u < j->level ? (float)(r & 1) : x[p];
    }
}

/* --------------------------------------------------- intensity changes */

static void brightness(const job *j, const float *x, float *y, int e)
{
    const size_t dim = core_shape_size(j->s);
    for (size_t p = 0; p < dim; p++)
        y[p] = clip01(x[p] + (float)j->level);
}

static void contrast(const job *j, const float *x, float *y, int e)
{
    const size_t plane = (size_t)j->s.h * j->s.w;
    for (int c = 0; c < j->s.c; c++) {
        const float *xc = x + c * plane;
        double mean = 0.0;
        for (size_t p = 0; p < plane; p++)
            mean += xc[p];
        mean /= (double)plane;
        for (size_t p = 0; p < plane; p++)
            y[c * plane + p] = clip01((float)((xc[p] - mean) * j->level + mean));
    }
}

/* ------------------------------------------------------------ blurring */

#define BLUR_RADIUS_MAX 8

/* Gaussian blur, separable: rows into tmp, then columns into y. */
static void gaussian_blur(const job *j, const float *x, float *y, int e)
{
    const int h = j->s.h, w = j->s.w;
    int r = (int)ceil(3.0 * j->level);
    r = r > BLUR_RADIUS_MAX ? BLUR_RADIUS_MAX : r;
    double k[2 * BLUR_RADIUS_MAX + 1], sum = 0.0;
    for (int d = -r; d <= r; d++)
        sum += k[d + r] = exp(-(double)d * d / (2.0 * j->level * j->level));
    for (int d = 0; d <= 2 * r; d++)
        k[d] /= sum;
    for (int c = 0; c < j->s.c; c++) {
        const float *xc = x + (size_t)c * h * w;
        float *yc = y + (size_t)c * h * w, *t = j->tmp;
        for (int i = 0; i < h; i++)
            for (int jj = 0; jj < w; jj++) {
                double v = 0.0;
                for (int d = -r; d <= r; d++) {
                    int q = jj + d < 0 ? 0 : jj + d >= w ? w - 1 : jj + d;
                    v += k[d + r] * xc[i * w + q];
                }
                t[i * w + jj] = (float)v;
            }
        for (int i = 0; i < h; i++)
            for (int jj = 0; jj < w; jj++) {
                double v = 0.0;
                for (int d = -r; d <= r; d++) {
                    int q = i + d < 0 ? 0 : i + d >= h ? h - 1 : i + d;
                    v += k[d + r] * t[q * w + jj];
                }
                yc[i * w + jj] = clip01((float)v);
            }
    }
}

/* Area average of n samples (stride apart) down to m cells: cell a covers
 * [a n/m, (a+1) n/m) and each sample counts by its overlap with it. */
static void box_down(const float *in, int n, int stride, float *out, int m, int ostride)
{
    const double span = (double)n / m;
    for (int a = 0; a < m; a++) {
        double lo = a * span, hi = lo + span, v = 0.0;
        for (int i = (int)lo; i < n && i < hi; i++) {
            double ov = fmin(hi, i + 1.0) - fmax(lo, (double)i);
            if (ov > 0.0)
                v += ov * in[i * stride];
        }
        out[a * ostride] = (float)(v / span);
    }
}

/* Pixelate: box-average to round(size c) per axis, then back up by nearest
 * (each pixel takes the low-resolution cell its centre falls in). */
static void pixelate(const job *j, const float *x, float *y, int e)
{
    const int h = j->s.h, w = j->s.w;
    int lh = (int)lround(h * j->level), lw = (int)lround(w * j->level);
    lh = lh < 1 ? 1 : lh;
    lw = lw < 1 ? 1 : lw;
    float *rows = j->tmp, *low = j->tmp + (size_t)h * lw;
    for (int c = 0; c < j->s.c; c++) {
        const float *xc = x + (size_t)c * h * w;
        float *yc = y + (size_t)c * h * w;
        for (int i = 0; i < h; i++)
            box_down(xc + (size_t)i * w, w, 1, rows + (size_t)i * lw, lw, 1);
        for (int b = 0; b < lw; b++)
            box_down(rows + b, h, lw, low + b, lh, lw);
        for (int i = 0; i < h; i++)
            for (int jj = 0; jj < w; jj++) {
                int a = (int)((i + 0.5) * lh / h), b = (int)((jj + 0.5) * lw / w);
                yc[i * w + jj] = clip01(low[a * lw + b]);
            }
    }
}

/* ------------------------------------------------------------ geometry */

/* A per-example sign: +1 or -1 from bit `which` of the example's word. */
static int example_sign(const job *j, int e, int which)
{
    return (core_rng_u64(j->seed, j->stream + e, 0) >> which) & 1 ? 1 : -1;
}

static void translate(const job *j, const float *x, float *y, int e)
{
    const int h = j->s.h, w = j->s.w, k = (int)j->level;
    const int dy = k * example_sign(j, e, 0), dx = k * example_sign(j, e, 1);
    for (int c = 0; c < j->s.c; c++)
        for (int i = 0; i < h; i++)
            for (int jj = 0; jj < w; jj++) {
                int si = i - dy, sj = jj - dx;
                int in = si >= 0 && si < h && sj >= 0 && sj < w;
                y[((size_t)c * h + i) * w + jj] = in ? x[((size_t)c * h + si) * w + sj] : 0.0f;
            }
}

/* Pixel (i, j) of plane xc, zero outside the image. */
static float pixel_or_zero(const float *xc, int h, int w, int i, int j)
{
    return i >= 0 && i < h && j >= 0 && j < w ? xc[i * w + j] : 0.0f;
}

/* Rotate by +-level radians about the centre: each output pixel samples the
 * input at the inverse rotation of its position, bilinearly, zero outside. */
static void rotate(const job *j, const float *x, float *y, int e)
{
    const int h = j->s.h, w = j->s.w;
    const double a = j->level * example_sign(j, e, 0), ca = cos(a), sa = sin(a);
    const double cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
    for (int c = 0; c < j->s.c; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int i = 0; i < h; i++)
            for (int jj = 0; jj < w; jj++) {
                double sy = cy + ca * (i - cy) + sa * (jj - cx);
                double sx = cx - sa * (i - cy) + ca * (jj - cx);
                int i0 = (int)floor(sy), j0 = (int)floor(sx);
                double fy = sy - i0, fx = sx - j0;
                double v = (1 - fy) * ((1 - fx) * pixel_or_zero(xc, h, w, i0, j0) +
                                       fx * pixel_or_zero(xc, h, w, i0, j0 + 1)) +
                           fy * ((1 - fx) * pixel_or_zero(xc, h, w, i0 + 1, j0) +
                                 fx * pixel_or_zero(xc, h, w, i0 + 1, j0 + 1));
                y[((size_t)c * h + i) * w + jj] = clip01((float)v);
            }
    }
}

/* ---------------------------------------------------------------- batch */

typedef void (*corrupt_fn)(const job *j, const float *x, float *y, int e);

static const corrupt_fn fns[CORE_NCORRUPTIONS] = {
    gaussian_noise, shot_noise, impulse_noise, brightness, contrast,
    gaussian_blur, pixelate, translate, rotate,
};

int core_corrupt(core_corruption c, int severity, const float *x, float *y, int n,
                 core_shape s, uint64_t seed, uint64_t stream, char *err)
{
    if (c < 0 || c >= CORE_NCORRUPTIONS)
        return core_errf(err, "unknown corruption %d", (int)c);
    if (severity < 0 || severity > CORE_SEVERITIES)
        return core_errf(err, "invalid severity %d: not in 0..%d", severity, CORE_SEVERITIES);
    if (s.c < 1 || s.h < 1 || s.w < 1 || n < 0)
        return core_errf(err, "invalid image shape %dx%dx%d", s.c, s.h, s.w);
    const size_t dim = core_shape_size(s), plane = (size_t)s.h * s.w;
    if (severity == 0) {
        memcpy(y, x, sizeof(float) * dim * (size_t)n);
        return 0;
    }
    const int threads = omp_get_max_threads();
    float *tmp = core_alloc(sizeof(float) * 2 * plane * (size_t)threads);
    if (!tmp)
        return core_errf(err, "out of memory for a corruption of %d images", n);
    const corrupt_fn fn = fns[c];
    const double level = levels[c][severity - 1];
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int e = 0; e < n; e++) {
        job j = {s, level, seed, stream, tmp + 2 * plane * (size_t)omp_get_thread_num()};
        fn(&j, x + dim * (size_t)e, y + dim * (size_t)e, e);
    }
    core_free(tmp);
    return 0;
}
