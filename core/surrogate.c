/*
 * surrogate.c - the Gaussian and LIME local surrogates and the weighted
 * ridge fit behind them (surrogate.h).
 *
 * Each example is explained on its own: its perturbed copies go through
 * the model in batches of the reserved size, their targets are collected
 * in sample order, and one ridge system is solved. Random numbers are a
 * function of (seed, stream + example, sample, feature) only.
 */
#define _GNU_SOURCE
#include "surrogate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rng.h"

static const char *const fill_names[] = {"grey", "blur"};
static const char *const target_names[] = {"probability", "logit"};

core_surrogate_cfg core_surrogate_defaults(void)
{
    return (core_surrogate_cfg){.gaussian_samples = 500, .sigma = 0.02f, .lime_samples = 300,
                                .patch = 0, .kernel_width = 0.25f, .lambda = 1e-3f,
                                .fill = CORE_FILL_GREY, .target = CORE_TARGET_PROBABILITY};
}

int core_surrogate_cfg_check(const core_surrogate_cfg *c, char *err)
{
    if (c->gaussian_samples < 2 || c->lime_samples < 2)
        return core_errf(err, "invalid surrogate samples: %d and %d (at least 2)",
                         c->gaussian_samples, c->lime_samples);
    if (!(c->sigma > 0.0f) || !(c->kernel_width > 0.0f) || !(c->lambda >= 0.0f) || c->patch < 0)
        return core_errf(err, "invalid surrogate settings: sigma %g, kernel width %g, lambda %g, "
                              "patch %d", (double)c->sigma, (double)c->kernel_width,
                         (double)c->lambda, c->patch);
    return 0;
}

/* Index of s in a two-name list, or a message naming both. */
static int parse_two(const char *s, const char *const names[2], const char *what, int *out,
                     char *err)
{
    int i = core_name_index(s, names, 2);
    if (i < 0)
        return core_errf(err, "unknown %s '%s' (%s or %s)", what, s, names[0], names[1]);
    *out = i;
    return 0;
}

int core_lime_fill_parse(const char *s, int *out, char *err)
{
    return parse_two(s, fill_names, "fill", out, err);
}

const char *core_lime_fill_name(int v)
{
    return fill_names[v == CORE_FILL_BLUR];
}

int core_surrogate_target_parse(const char *s, int *out, char *err)
{
    return parse_two(s, target_names, "target", out, err);
}

const char *core_surrogate_target_name(int v)
{
    return target_names[v == CORE_TARGET_LOGIT];
}

int core_surrogate_draws(int samples)
{
    return samples + (samples / 5 > 8 ? samples / 5 : 8);
}

int core_lime_patch(const core_surrogate_cfg *c, core_shape s)
{
    int p = c->patch ? c->patch : (s.h <= 28 && s.w <= 28 ? 4 : 8);
    int big = s.h > s.w ? s.h : s.w;
    return p < big ? p : big;
}

/* Patches across and down. */
static void grid_of(const core_surrogate_cfg *c, core_shape s, int *gh, int *gw)
{
    int p = core_lime_patch(c, s);
    *gh = (s.h + p - 1) / p;
    *gw = (s.w + p - 1) / p;
}

int core_surrogate_features(const core_surrogate_cfg *c, core_surrogate_kind k, core_shape s)
{
    int gh, gw;
    if (k == CORE_SURROGATE_GAUSSIAN)
        return (int)core_shape_size(s);
    grid_of(c, s, &gh, &gw);
    return gh * gw;
}

/* ------------------------------------------------------------ ridge */

/* sum a[k] b[k], k < n, in four independent sums: one chain of dependent
 * additions would wait on the adder's latency at every term. */
static double dot(const double *a, const double *b, int n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++)
        s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

/* In-place Cholesky factorisation a = L L' (lower triangle of a, n x n);
 * -1 when a is not positive definite. */
static int cholesky(double *a, int n)
{
    for (int j = 0; j < n; j++) {
        const double *rj = a + (size_t)j * n;
        double d = rj[j] - dot(rj, rj, j);
        if (!(d > 0.0))
            return -1;
        d = sqrt(d);
        a[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double *ri = a + (size_t)i * n;
            ri[j] = (ri[j] - dot(ri, rj, j)) / d;
        }
    }
    return 0;
}

/* Solve L L' x = b in place (b becomes x). */
static void cholesky_solve(const double *l, int n, double *b)
{
    for (int i = 0; i < n; i++) {
        double v = b[i];
        for (int k = 0; k < i; k++)
            v -= l[(size_t)i * n + k] * b[k];
        b[i] = v / l[(size_t)i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = b[i];
        for (int k = i + 1; k < n; k++)
            v -= l[(size_t)k * n + i] * b[k];
        b[i] = v / l[(size_t)i * n + i];
    }
}

/* The symmetric Gram matrix of a (rows x cols, float) as doubles:
 * g = a'a (cols x cols) when by_cols, else aa' (rows x rows). */
static int gram(const float *a, int rows, int cols, int by_cols, double *g)
{
    const int n = by_cols ? cols : rows;
    float *f = core_alloc(sizeof(float) * (size_t)n * n);
    if (!f)
        return -1;
    if (by_cols)
        core_gemm(1, 0, cols, cols, rows, 1.0f, a, cols, a, cols, 0.0f, f, cols);
    else
        core_gemm(0, 1, rows, rows, cols, 1.0f, a, cols, a, cols, 0.0f, f, rows);
    for (size_t i = 0; i < (size_t)n * n; i++)
        g[i] = f[i];
    core_free(f);
    return 0;
}

/* beta from the row-scaled, centred a (s x d) and b (s): primal or dual. */
static int ridge_solve(const float *a, const double *b, int s, int d, double lambda,
                       double *beta)
{
    const int primal = d <= s, n = primal ? d : s;
    double *g = malloc(sizeof(double) * (size_t)n * n), *v = malloc(sizeof(double) * n);
    int rc = -1;
    if (!g || !v || gram(a, s, d, primal, g))
        goto out;
    for (int i = 0; i < n; i++)
        g[(size_t)i * n + i] += lambda;
    if (primal)
        for (int j = 0; j < d; j++) {
            double t = 0.0;
            for (int i = 0; i < s; i++)
                t += (double)a[(size_t)i * d + j] * b[i];
            v[j] = t;
        }
    else
        memcpy(v, b, sizeof(double) * s);
    if (cholesky(g, n)) {
        rc = -2;
        goto out;
    }
    cholesky_solve(g, n, v);
    if (primal)
        memcpy(beta, v, sizeof(double) * d);
    else
        for (int j = 0; j < d; j++) {
            double t = 0.0;
            for (int i = 0; i < s; i++)
                t += (double)a[(size_t)i * d + j] * v[i];
            beta[j] = t;
        }
    rc = 0;
out:
    free(g);
    free(v);
    return rc;
}

/* Weighted R^2 of the fit; a constant target fitted exactly counts 1. */
static double weighted_r2(const float *z, const double *y, const double *w, int s, int d,
                          const double *beta, double intercept, double ymean)
{
    double res = 0.0, tot = 0.0;
    for (int i = 0; i < s; i++) {
        double f = intercept;
        for (int j = 0; j < d; j++)
            f += beta[j] * z[(size_t)i * d + j];
        res += w[i] * (y[i] - f) * (y[i] - f);
        tot += w[i] * (y[i] - ymean) * (y[i] - ymean);
    }
    if (tot > 0.0)
        return 1.0 - res / tot;
    return res <= 1e-24 ? 1.0 : 0.0;
}

int core_ridge_fit(const float *z, const double *y, const double *w_in, int s, int d,
                   double lambda, double *beta, double *intercept, double *r2, char *err)
{
    double *w = malloc(sizeof(double) * s), *zm = calloc((size_t)d, sizeof(double));
    double *b = malloc(sizeof(double) * s), wsum = 0.0, ym = 0.0;
    float *a = core_alloc(sizeof(float) * (size_t)s * d);
    int rc = -1;
    if (!w || !zm || !b || !a) {
        core_errf(err, "out of memory for a ridge fit of %d x %d", s, d);
        goto out;
    }
    for (int i = 0; i < s; i++)
        wsum += w_in ? w_in[i] : 1.0;
    if (!(wsum > 0.0)) {
        core_errf(err, "ridge fit: the weights sum to %g", wsum);
        goto out;
    }
    for (int i = 0; i < s; i++) {
        w[i] = (w_in ? w_in[i] : 1.0) / wsum;
        ym += w[i] * y[i];
        for (int j = 0; j < d; j++)
            zm[j] += w[i] * z[(size_t)i * d + j];
    }
    for (int i = 0; i < s; i++) {
        double sw = sqrt(w[i]);
        b[i] = sw * (y[i] - ym);
        for (int j = 0; j < d; j++)
            a[(size_t)i * d + j] = (float)(sw * (z[(size_t)i * d + j] - zm[j]));
    }
    int solved = ridge_solve(a, b, s, d, lambda, beta);
    if (solved == -2) {
        core_errf(err, "ridge fit of %d x %d: the system is singular (raise lambda above %g)", s,
                  d, lambda);
        goto out;
    }
    if (solved) {
        core_errf(err, "out of memory for a ridge fit of %d x %d", s, d);
        goto out;
    }
    double c = ym;
    for (int j = 0; j < d; j++)
        c -= beta[j] * zm[j];
    *intercept = c;
    if (r2)
        *r2 = weighted_r2(z, y, w, s, d, beta, c, ym);
    rc = 0;
out:
    free(w);
    free(zm);
    free(b);
    core_free(a);
    return rc;
}

typedef struct {
    const float *c;
} by_abs;

static int cmp_abs_desc(const void *pa, const void *pb, void *ctx)
{
    const float *c = ((const by_abs *)ctx)->c;
    int a = *(const int *)pa, b = *(const int *)pb;
    float va = fabsf(c[a]), vb = fabsf(c[b]);
    if (va != vb)
        return va > vb ? -1 : 1;
    return (a > b) - (a < b);
}

void core_top_features(const float *coef, int d, int k, int *idx)
{
    int *all = malloc(sizeof(int) * (size_t)d);
    if (!all) { /* out of memory: the first k, still a valid answer shape */
        for (int i = 0; i < k; i++)
            idx[i] = i;
        return;
    }
    for (int i = 0; i < d; i++)
        all[i] = i;
    by_abs ctx = {coef};
    qsort_r(all, (size_t)d, sizeof(int), cmp_abs_desc, &ctx);
    memcpy(idx, all, sizeof(int) * (size_t)k);
    free(all);
}

/* ------------------------------------------------------------ sampling */

/* What one example's fit needs: its samples' features, targets and
 * weights, a batch of perturbed inputs and LIME's fill image. */
typedef struct {
    int s, h, d;      /* samples fitted, held out (after them), features */
    float *z, *xb, *fill;
    double *y, *w, *beta;
} fit_ws;

static void fit_ws_free(fit_ws *f)
{
    core_free(f->z);
    core_free(f->xb);
    core_free(f->fill);
    free(f->y);
    free(f->w);
    free(f->beta);
}

static int fit_ws_init(fit_ws *f, int s, int d, const core_model *m)
{
    const size_t dim = core_shape_size(m->in);
    memset(f, 0, sizeof *f);
    f->s = s;
    f->h = core_surrogate_draws(s) - s;
    f->d = d;
    f->z = core_alloc(sizeof(float) * (size_t)(s + f->h) * d);
    f->xb = core_alloc(sizeof(float) * dim * (size_t)m->capacity);
    f->fill = core_alloc(sizeof(float) * dim);
    f->y = malloc(sizeof(double) * (s + f->h));
    f->w = malloc(sizeof(double) * (s + f->h));
    f->beta = malloc(sizeof(double) * d);
    if (!f->z || !f->xb || !f->fill || !f->y || !f->w || !f->beta) {
        fit_ws_free(f);
        return -1;
    }
    return 0;
}

/* A 5 x 5 box blur of one example, edges clamped: LIME's "blurred" fill. */
static void box_blur(const float *x, core_shape s, float *out)
{
    for (int c = 0; c < s.c; c++)
        for (int i = 0; i < s.h; i++)
            for (int j = 0; j < s.w; j++) {
                float sum = 0.0f;
                for (int di = -2; di <= 2; di++)
                    for (int dj = -2; dj <= 2; dj++) {
                        int y = i + di < 0 ? 0 : i + di >= s.h ? s.h - 1 : i + di;
                        int xx = j + dj < 0 ? 0 : j + dj >= s.w ? s.w - 1 : j + dj;
                        sum += x[((size_t)c * s.h + y) * s.w + xx];
                    }
                out[((size_t)c * s.h + i) * s.w + j] = sum / 25.0f;
            }
}

/* Sample t's features (z row) and perturbed input (xs). */
static void draw_sample(const core_surrogate_cfg *c, core_surrogate_kind kind, core_shape sh,
                        const float *x, const float *fill, uint64_t stream, int t, int d,
                        float *z, float *xs)
{
    const size_t dim = core_shape_size(sh);
    if (kind == CORE_SURROGATE_GAUSSIAN) {
        for (size_t p = 0; p < dim; p++) {
            float e = core_rng_normal(c->seed, stream, (uint64_t)t * dim + p);
            z[p] = e;
            xs[p] = x[p] + c->sigma * e;
        }
        return;
    }
    int gh, gw, ps = core_lime_patch(c, sh);
    grid_of(c, sh, &gh, &gw); /* gh rows of gw patches: d = gh * gw */
    for (int j = 0; j < d; j++)
        z[j] = t == 0 ? 1.0f : (float)(core_rng_u64(c->seed, stream, (uint64_t)t * d + j) & 1);
    for (int ch = 0; ch < sh.c; ch++)
        for (int i = 0; i < sh.h; i++)
            for (int k = 0; k < sh.w; k++) {
                size_t p = ((size_t)ch * sh.h + i) * sh.w + k;
                xs[p] = z[(i / ps) * gw + k / ps] > 0.5f ? x[p] : fill[p];
            }
}

/* LIME's kernel on the cosine distance of a mask to the all-on mask. */
static double lime_weight(const core_surrogate_cfg *c, const float *z, int d)
{
    int on = 0;
    for (int j = 0; j < d; j++)
        on += z[j] > 0.5f;
    double dist = 1.0 - sqrt((double)on / d);
    return exp(-dist * dist / ((double)c->kernel_width * c->kernel_width));
}

/* The target of the samples in xb (k of them) for class cls. */
static void targets(const core_surrogate_cfg *c, core_model *m, const float *xb, int k, int cls,
                    double *y)
{
    const float *z = core_model_forward(m, xb, k);
    const int nc = m->nclass;
    for (int i = 0; i < k; i++) {
        const float *zi = z + (size_t)i * nc;
        if (c->target == CORE_TARGET_LOGIT) {
            y[i] = zi[cls];
            continue;
        }
        double mx = zi[0], sum = 0.0;
        for (int j = 1; j < nc; j++)
            mx = zi[j] > mx ? zi[j] : mx;
        for (int j = 0; j < nc; j++)
            sum += exp(zi[j] - mx);
        y[i] = exp(zi[cls] - mx) / sum;
    }
}

/* One example: sample, fit, write its attributions. */
static int explain_one(const core_surrogate_cfg *c, core_surrogate_kind kind, core_model *m,
                       fit_ws *f, const float *x, int cls, uint64_t stream, float *attr,
                       double *r2, float *coef, char *err)
{
    const core_shape sh = m->in;
    const size_t dim = core_shape_size(sh), plane = (size_t)sh.h * sh.w;
    double intercept;
    if (kind == CORE_SURROGATE_LIME) {
        if (c->fill == CORE_FILL_BLUR)
            box_blur(x, sh, f->fill);
        else
            for (size_t p = 0; p < dim; p++)
                f->fill[p] = 0.5f;
    }
    const int total = f->s + f->h;
    for (int t0 = 0; t0 < total; t0 += m->capacity) {
        int k = total - t0 < m->capacity ? total - t0 : m->capacity;
        for (int t = t0; t < t0 + k; t++) {
            float *z = f->z + (size_t)t * f->d;
            draw_sample(c, kind, sh, x, f->fill, stream, t, f->d, z, f->xb + dim * (t - t0));
            f->w[t] = kind == CORE_SURROGATE_LIME ? lime_weight(c, z, f->d) : 1.0;
        }
        targets(c, m, f->xb, k, cls, f->y + t0);
    }
    if (core_ridge_fit(f->z, f->y, f->w, f->s, f->d, c->lambda, f->beta, &intercept, NULL, err))
        return -1;
    if (r2) {   /* on the held-out draws */
        const float *zh = f->z + (size_t)f->s * f->d;
        const double *yh = f->y + f->s, *wh = f->w + f->s;
        double ym = 0.0, wsum = 0.0;
        for (int i = 0; i < f->h; i++) {
            ym += wh[i] * yh[i];
            wsum += wh[i];
        }
        *r2 = weighted_r2(zh, yh, wh, f->h, f->d, f->beta, intercept, ym / wsum);
    }
    for (int j = 0; coef && j < f->d; j++)
        coef[j] = (float)f->beta[j];
    if (kind == CORE_SURROGATE_GAUSSIAN) {
        for (size_t p = 0; p < dim; p++)
            attr[p] = (float)(f->beta[p] / c->sigma);
        return 0;
    }
    int gh, gw, ps = core_lime_patch(c, sh);
    grid_of(c, sh, &gh, &gw);
    for (int ch = 0; ch < sh.c; ch++)
        for (size_t p = 0; p < plane; p++) {
            int i = (int)(p / sh.w), k = (int)(p % sh.w);
            attr[ch * plane + p] = (float)(f->beta[(i / ps) * gw + k / ps] / sh.c);
        }
    return 0;
}

int core_surrogate_explain(const core_surrogate_cfg *c, core_surrogate_kind kind, core_model *m,
                           const float *x, const int *cls, int n, uint64_t stream, float *attr,
                           double *r2, float *coef, char *err)
{
    const size_t dim = core_shape_size(m->in);
    const int d = core_surrogate_features(c, kind, m->in);
    const int s = kind == CORE_SURROGATE_GAUSSIAN ? c->gaussian_samples : c->lime_samples;
    fit_ws f;
    if (core_surrogate_cfg_check(c, err))
        return -1;
    if (m->capacity < 1)
        return core_errf(err, "the model has no batch reserved");
    if (fit_ws_init(&f, s, d, m))
        return core_errf(err, "out of memory for a surrogate of %d samples x %d features", s, d);
    for (int i = 0; i < n; i++)
        if (explain_one(c, kind, m, &f, x + dim * i, cls[i], stream + (uint64_t)i,
                        attr + dim * i, r2 ? r2 + i : NULL, coef ? coef + (size_t)d * i : NULL,
                        err)) {
            fit_ws_free(&f);
            return -1;
        }
    fit_ws_free(&f);
    return 0;
}
