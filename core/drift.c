/*
 * drift.c - label-free drift tests on a model's outputs (drift.h): KS,
 * chi-square, MMD with a permutation test, CBPE and ATC, and the profiles
 * behind the "looks like" hint.
 */
#include "drift.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static const char *const test_names[CORE_DRIFT_NTESTS] = {
#define CORE_DRIFT_NAME(e, name) name,
    CORE_DRIFT_TESTS(CORE_DRIFT_NAME)
#undef CORE_DRIFT_NAME
};

const char *core_drift_test_name(core_drift_kind k)
{
    return (unsigned)k < CORE_DRIFT_NTESTS ? test_names[k] : "?";
}

void core_drift_cfg_defaults(core_drift_cfg *c)
{
    *c = (core_drift_cfg){.alpha = 0.05, .permutations = 100, .max_points = 1000,
                          .cbpe_sigma = 3.0, .cbpe_windows = 200, .seed = 1};
}

/* ------------------------------------------------------------------ KS */

double core_kolmogorov_q(double lambda)
{
    if (lambda <= 0.0)
        return 1.0;
    if (lambda < 1.18) { /* the theta-function form converges fast here */
        double s = 0.0, y = M_PI * M_PI / (8.0 * lambda * lambda);
        for (int j = 1; j <= 9; j += 2)
            s += exp(-(double)(j * j) * y);
        double q = 1.0 - sqrt(2.0 * M_PI) / lambda * s;
        return q < 0.0 ? 0.0 : q > 1.0 ? 1.0 : q;
    }
    double s = 0.0, sign = 1.0;
    for (int j = 1; j <= 100; j++, sign = -sign) {
        double t = exp(-2.0 * j * j * lambda * lambda);
        s += sign * t;
        if (t < 1e-300)
            break;
    }
    s *= 2.0;
    return s < 0.0 ? 0.0 : s > 1.0 ? 1.0 : s;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float *sorted_copy(const float *a, int n)
{
    float *s = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (s) {
        memcpy(s, a, sizeof(float) * (size_t)n);
        qsort(s, (size_t)n, sizeof(float), cmp_float);
    }
    return s;
}

/* D of two sorted samples: the empirical CDFs compared after every value
 * (ties advance both sides together). */
static double ks_sorted(const float *a, int na, const float *b, int nb)
{
    int i = 0, j = 0;
    double d = 0.0;
    while (i < na && j < nb) {
        float v = a[i] < b[j] ? a[i] : b[j];
        while (i < na && a[i] == v)
            i++;
        while (j < nb && b[j] == v)
            j++;
        double diff = fabs((double)i / na - (double)j / nb);
        if (diff > d)
            d = diff;
    }
    return d;
}

int core_ks_2samp(const float *a, int na, const float *b, int nb, double *stat, double *p,
                  char *err)
{
    if (na <= 0 || nb <= 0)
        return core_errf(err, "invalid sample sizes %d and %d for a KS test", na, nb);
    float *sa = sorted_copy(a, na), *sb = sorted_copy(b, nb);
    if (!sa || !sb) {
        free(sa);
        free(sb);
        return core_errf(err, "out of memory for a KS test of %d and %d points", na, nb);
    }
    double d = ks_sorted(sa, na, sb, nb), ne = (double)na * nb / (na + nb), r = sqrt(ne);
    free(sa);
    free(sb);
    *stat = d;
    *p = core_kolmogorov_q((r + 0.12 + 0.11 / r) * d);
    return 0;
}

/* ---------------------------------------------------------- chi-square */

/* P(a, x) by its series, for x < a + 1. */
static double gamma_p_series(double a, double x)
{
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 1000; n++) {
        del *= x / ++ap;
        sum += del;
        if (fabs(del) < fabs(sum) * 1e-15)
            break;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Q(a, x) by its continued fraction (modified Lentz), for x >= a + 1. */
static double gamma_q_fraction(double a, double x)
{
    const double tiny = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        d = fabs(d) < tiny ? tiny : d;
        c = b + an / c;
        c = fabs(c) < tiny ? tiny : c;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-15)
            break;
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double core_gamma_q(double a, double x)
{
    if (x <= 0.0)
        return 1.0;
    return x < a + 1.0 ? 1.0 - gamma_p_series(a, x) : gamma_q_fraction(a, x);
}

void core_chi2_2hist(const double *a, const double *b, int k, double *stat, double *p, int *dof)
{
    double na = 0.0, nb = 0.0;
    for (int j = 0; j < k; j++) {
        na += a[j];
        nb += b[j];
    }
    double s = 0.0;
    int cols = 0;
    for (int j = 0; j < k && na > 0 && nb > 0; j++) {
        double t = a[j] + b[j];
        if (t <= 0)
            continue;
        double ea = na * t / (na + nb), eb = nb * t / (na + nb);
        s += (a[j] - ea) * (a[j] - ea) / ea + (b[j] - eb) * (b[j] - eb) / eb;
        cols++;
    }
    *stat = s;
    *dof = cols > 1 ? cols - 1 : 0;
    *p = *dof ? core_gamma_q(*dof / 2.0, s / 2.0) : 1.0;
}

/* ----------------------------------------------------------------- MMD */

/* The k-th smallest of v[0..n) (v reordered): Hoare's selection. */
static float select_kth(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* Up to max indices of [0, n), a seeded draw without replacement. */
static int *draw(int n, int max, uint64_t seed, uint64_t stream, int *used)
{
    int *idx = malloc(sizeof(int) * (size_t)n);
    if (!idx)
        return NULL;
    for (int i = 0; i < n; i++)
        idx[i] = i;
    if (n > max)
        core_rng_shuffle(seed, stream, idx, n);
    *used = n < max ? n : max;
    return idx;
}

/* K (m x m) = the Gaussian kernel of the m points z (m x d); *h its
 * bandwidth, the median squared distance. */
static int kernel_matrix(const float *z, int m, int d, float *k, double *h, char *err)
{
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < m; i++) {
        for (int j = i; j < m; j++) {
            float s = 0.0f;
            for (int t = 0; t < d; t++) {
                float u = z[(size_t)i * d + t] - z[(size_t)j * d + t];
                s += u * u;
            }
            k[(size_t)i * m + j] = k[(size_t)j * m + i] = s;
        }
    }
    size_t np = (size_t)m * (m - 1) / 2, q = 0;
    float *pairs = malloc(sizeof(float) * (np ? np : 1));
    if (!pairs)
        return core_errf(err, "out of memory for the MMD of %d points", m);
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++)
            pairs[q++] = k[(size_t)i * m + j];
    double med = np ? select_kth(pairs, np, np / 2) : 1.0;
    free(pairs);
    *h = med > 0.0 ? med : 1.0;
    const float inv = (float)(1.0 / *h);
#pragma omp parallel for
    for (size_t i = 0; i < (size_t)m * m; i++)
        k[i] = expf(-k[i] * inv);
    return 0;
}

/* Unbiased MMD^2 of the split of the m pooled points: side[i] 0 (x) or 1. */
static double mmd2_split(const float *k, int m, const uint8_t *side, int nx, int ny)
{
    double sxx = 0.0, syy = 0.0, sxy = 0.0;
    for (int i = 0; i < m; i++) {
        const float *row = k + (size_t)i * m;
        for (int j = i + 1; j < m; j++) {
            int s = side[i] + side[j];
            if (s == 0)
                sxx += row[j];
            else if (s == 2)
                syy += row[j];
            else
                sxy += row[j];
        }
    }
    return 2.0 * sxx / ((double)nx * (nx - 1)) + 2.0 * syy / ((double)ny * (ny - 1)) -
           2.0 * sxy / ((double)nx * ny);
}

int core_mmd_test(const float *x, int nx, const float *y, int ny, int d, int perms,
                  int max_points, uint64_t seed, core_mmd *out, char *err)
{
    if (nx < 2 || ny < 2 || d < 1 || max_points < 2 || perms < 0)
        return core_errf(err, "invalid MMD test of %d and %d points of %d values", nx, ny, d);
    int ux, uy, rc = -1;
    int *ix = draw(nx, max_points, seed, 1, &ux), *iy = draw(ny, max_points, seed, 2, &uy);
    const int m = ux + uy;
    float *z = malloc(sizeof(float) * (size_t)m * d), *k = malloc(sizeof(float) * (size_t)m * m);
    uint8_t *side = malloc((size_t)m);
    if (!ix || !iy || !z || !k || !side) {
        core_errf(err, "out of memory for the MMD of %d points", m);
        goto out;
    }
    for (int i = 0; i < m; i++) {
        const float *src = i < ux ? x + (size_t)ix[i] * d : y + (size_t)iy[i - ux] * d;
        memcpy(z + (size_t)i * d, src, sizeof(float) * d);
        side[i] = i >= ux;
    }
    if (kernel_matrix(z, m, d, k, &out->bandwidth, err))
        goto out;
    out->mmd2 = mmd2_split(k, m, side, ux, uy);
    out->nx = ux;
    out->ny = uy;
    int above = 0, failed = 0;
#pragma omp parallel for reduction(+ : above, failed)
    for (int t = 0; t < perms; t++) {
        int *perm = malloc(sizeof(int) * m);
        uint8_t *s = malloc((size_t)m);
        if (!perm || !s) {
            failed++;
        } else {
            for (int i = 0; i < m; i++)
                perm[i] = i;
            core_rng_shuffle(seed, 3 + (uint64_t)t, perm, m);
            for (int i = 0; i < m; i++)
                s[perm[i]] = i >= ux;
            above += mmd2_split(k, m, s, ux, uy) >= out->mmd2;
        }
        free(perm);
        free(s);
    }
    if (failed) {
        core_errf(err, "out of memory for the MMD permutations");
        goto out;
    }
    out->p = (1.0 + above) / (1.0 + perms);
    rc = 0;
out:
    free(ix);
    free(iy);
    free(z);
    free(k);
    free(side);
    return rc;
}

/* ------------------------------------------------------- ATC and CBPE */

double core_atc_threshold(const float *score, int n, double acc)
{
    if (n <= 0)
        return 0.0;
    float *s = sorted_copy(score, n);
    if (!s)
        return 0.0;
    /* The lowest (1 - acc) n scores fall at or below t. */
    int below = (int)lround((1.0 - acc) * n);
    double t = below <= 0 ? (double)s[0] - 1.0 : (double)s[below - 1];
    free(s);
    return t;
}

double core_fraction_above(const float *score, int n, double t)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += score[i] > t;
    return n ? (double)k / n : 0.0;
}

static double mean_of(const float *v, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return n ? s / n : 0.0;
}

/* The mean and standard deviation of the means of `windows` windows of n
 * reference values, drawn with replacement. */
static void window_band(const float *v, int nref, int n, int windows, uint64_t seed,
                        double *mean, double *sd)
{
    double s = 0.0, s2 = 0.0;
    for (int w = 0; w < windows; w++) {
        double m = 0.0;
        for (int i = 0; i < n; i++)
            m += v[core_rng_below(seed, 100 + (uint64_t)w, (uint64_t)i, (uint64_t)nref)];
        m /= n;
        s += m;
        s2 += m * m;
    }
    *mean = windows ? s / windows : 0.0;
    double var = windows > 1 ? (s2 - s * s / windows) / (windows - 1) : 0.0;
    *sd = var > 0.0 ? sqrt(var) : 0.0;
}

/* -------------------------------------------------------- per example */

int core_drift_feat_dim(const core_model *m)
{
    return (int)core_shape_size(m->layers[m->nlayers - 1].in);
}

void core_drift_outputs(core_model *m, const float *x, int n, float *logits, float *feat)
{
    const size_t dim = core_shape_size(m->in), c = (size_t)m->nclass;
    const size_t fd = (size_t)core_drift_feat_dim(m);
    for (int off = 0; off < n; off += m->capacity) {
        int k = n - off < m->capacity ? n - off : m->capacity;
        const float *in = x + dim * off;
        memcpy(logits + c * off, core_model_forward(m, in, k), sizeof(float) * c * k);
        /* The last layer's input: the layer before it's output (a
         * flatten's aliases its own input), or the model's input. */
        const float *f = m->nlayers > 1 ? m->layers[m->nlayers - 2].y : in;
        if (feat)
            memcpy(feat + fd * off, f, sizeof(float) * fd * k);
    }
}

/* softmax of z / T into p (c values); its largest value's index. */
static int softmax_t(const float *z, int c, double T, double *p)
{
    int top = 0;
    for (int j = 1; j < c; j++)
        top = z[j] > z[top] ? j : top;
    double s = 0.0;
    for (int j = 0; j < c; j++)
        s += p[j] = exp((z[j] - z[top]) / T);
    for (int j = 0; j < c; j++)
        p[j] /= s;
    return top;
}

void core_drift_summaries(const float *logits, int n, int c, double T, float *probs,
                          float *entropy, float *conf, float *cal_conf, float *margin, int *pred)
{
    double p[CORE_DRIFT_MAX_CLASSES];
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        int top = softmax_t(z, c, 1.0, p);
        double h = 0.0;
        for (int j = 0; j < c; j++) {
            h -= p[j] > 0.0 ? p[j] * log(p[j]) : 0.0;
            if (probs)
                probs[(size_t)i * c + j] = (float)p[j];
        }
        if (entropy)
            entropy[i] = (float)h;
        if (conf)
            conf[i] = (float)p[top];
        if (pred)
            pred[i] = top;
        softmax_t(z, c, T, p);
        double second = 0.0;
        for (int j = 0; j < c; j++)
            second = j != top && p[j] > second ? p[j] : second;
        if (cal_conf)
            cal_conf[i] = (float)p[top];
        if (margin)
            margin[i] = (float)(p[top] - second);
    }
}

/* ----------------------------------------------------------- a window */

/* The summaries of a set that the tests compare. */
typedef struct {
    float *probs, *entropy, *conf, *cal_conf, *margin;
    int *pred;
} summaries;

static void summaries_free(summaries *s)
{
    free(s->probs);
    free(s->entropy);
    free(s->conf);
    free(s->cal_conf);
    free(s->margin);
    free(s->pred);
}

static int summaries_of(const core_drift_set *set, double T, summaries *s, char *err)
{
    const size_t n = (size_t)set->n;
    *s = (summaries){malloc(sizeof(float) * n * set->c), malloc(sizeof(float) * n),
                     malloc(sizeof(float) * n), malloc(sizeof(float) * n),
                     malloc(sizeof(float) * n), malloc(sizeof(int) * n)};
    if (!s->probs || !s->entropy || !s->conf || !s->cal_conf || !s->margin || !s->pred) {
        summaries_free(s);
        return core_errf(err, "out of memory for the summaries of %d examples", set->n);
    }
    core_drift_summaries(set->logits, set->n, set->c, T, s->probs, s->entropy, s->conf,
                         s->cal_conf, s->margin, s->pred);
    return 0;
}

/* BBSD: KS on each class's softmax column; the smallest p-value. */
static int bbsd(const summaries *r, int nr, const summaries *w, int nw, int c,
                core_drift_result *out, char *err)
{
    float *a = malloc(sizeof(float) * nr), *b = malloc(sizeof(float) * nw);
    int rc = a && b ? 0 : core_errf(err, "out of memory for the BBSD test");
    out->bbsd_p = 2.0;
    for (int j = 0; j < c && !rc; j++) {
        double d, p;
        for (int i = 0; i < nr; i++)
            a[i] = r->probs[(size_t)i * c + j];
        for (int i = 0; i < nw; i++)
            b[i] = w->probs[(size_t)i * c + j];
        rc = core_ks_2samp(a, nr, b, nw, &d, &p, err);
        if (!rc && p < out->bbsd_p) {
            out->bbsd_p = p;
            out->bbsd_stat = d;
            out->bbsd_class = j;
        }
    }
    free(a);
    free(b);
    return rc;
}

static void class_hist(const int *pred, int n, int c, double *h)
{
    for (int j = 0; j < c; j++)
        h[j] = 0.0;
    for (int i = 0; i < n; i++)
        h[pred[i]] += 1.0;
}

static int statistical_tests(const core_drift_set *ref, const core_drift_set *win,
                             const summaries *r, const summaries *w, const core_drift_cfg *cfg,
                             core_drift_result *out, char *err)
{
    double hr[CORE_DRIFT_MAX_CLASSES], hw[CORE_DRIFT_MAX_CLASSES];
    class_hist(r->pred, ref->n, ref->c, hr);
    class_hist(w->pred, win->n, win->c, hw);
    core_chi2_2hist(hw, hr, ref->c, &out->chi2, &out->chi2_p, &out->chi2_dof);
    return bbsd(r, ref->n, w, win->n, ref->c, out, err) ||
           core_ks_2samp(w->entropy, win->n, r->entropy, ref->n, &out->entropy_stat,
                         &out->entropy_p, err) ||
           core_ks_2samp(w->conf, win->n, r->conf, ref->n, &out->conf_stat, &out->conf_p, err) ||
           core_mmd_test(win->feat, win->n, ref->feat, ref->n, ref->d, cfg->permutations,
                         cfg->max_points, cfg->seed, &out->mmd, err);
}

/* The alarm: each statistical test at alpha over their count (BBSD also
 * over the classes), CBPE outside its band. */
static void decide(const core_drift_cfg *cfg, int c, core_drift_result *o)
{
    const double level = cfg->alpha / (CORE_DRIFT_NTESTS - 1);
    const double p[CORE_DRIFT_NTESTS] = {
        [CORE_DRIFT_BBSD] = o->bbsd_p * c, [CORE_DRIFT_ENTROPY] = o->entropy_p,
        [CORE_DRIFT_CONFIDENCE] = o->conf_p, [CORE_DRIFT_CHI2] = o->chi2_p,
        [CORE_DRIFT_MMD] = o->mmd.p};
    o->fired = 0;
    for (int k = 0; k < CORE_DRIFT_NTESTS; k++)
        if (k != CORE_DRIFT_CBPE && p[k] < level)
            o->fired |= 1u << k;
    if (fabs(o->cbpe - o->cbpe_mean) > cfg->cbpe_sigma * o->cbpe_sd)
        o->fired |= 1u << CORE_DRIFT_CBPE;
    o->alarm = o->fired != 0;
}

int core_drift_test(const core_drift_set *ref, const uint8_t *ref_correct,
                    const core_drift_set *win, double T, const core_drift_cfg *cfg,
                    core_drift_result *out, char *err)
{
    if (ref->c != win->c || ref->d != win->d || ref->c < 2 || ref->c > CORE_DRIFT_MAX_CLASSES)
        return core_errf(err, "a window of %d classes and %d features against a reference of "
                              "%d and %d", win->c, win->d, ref->c, ref->d);
    if (ref->n < 2 || win->n < 2)
        return core_errf(err, "a drift test needs two examples a side (window %d, reference %d)",
                         win->n, ref->n);
    memset(out, 0, sizeof *out);
    out->n = win->n;
    summaries r, w;
    if (summaries_of(ref, T, &r, err))
        return -1;
    if (summaries_of(win, T, &w, err)) {
        summaries_free(&r);
        return -1;
    }
    int correct = 0;
    for (int i = 0; i < ref->n; i++)
        correct += ref_correct[i] != 0;
    out->ref_accuracy = (double)correct / ref->n;
    out->atc_threshold = core_atc_threshold(r.cal_conf, ref->n, out->ref_accuracy);
    out->atc = core_fraction_above(w.cal_conf, win->n, out->atc_threshold);
    out->cbpe = mean_of(w.cal_conf, win->n);
    window_band(r.cal_conf, ref->n, win->n, cfg->cbpe_windows, cfg->seed, &out->cbpe_mean,
                &out->cbpe_sd);
    out->margin = mean_of(w.margin, win->n);
    out->ref_margin = mean_of(r.margin, ref->n);
    int rc = statistical_tests(ref, win, &r, &w, cfg, out, err);
    if (!rc)
        decide(cfg, ref->c, out);
    summaries_free(&r);
    summaries_free(&w);
    return rc;
}

/* ------------------------------------------------------ "looks like" */

int core_drift_profile_len(int c)
{
    return 2 * CORE_PROFILE_BINS + c + 1;
}

static int bin_of(double v)
{
    int b = (int)(v * CORE_PROFILE_BINS);
    return b < 0 ? 0 : b >= CORE_PROFILE_BINS ? CORE_PROFILE_BINS - 1 : b;
}

void core_drift_profile(const float *logits, int n, int c, double T, float *profile)
{
    float *conf = profile, *ent = profile + CORE_PROFILE_BINS, *cls = ent + CORE_PROFILE_BINS;
    memset(profile, 0, sizeof(float) * core_drift_profile_len(c));
    const double logc = log((double)c), w = n ? 1.0 / n : 0.0;
    for (int i = 0; i < n; i++) {
        float h, cc, mg;
        int pred;
        core_drift_summaries(logits + (size_t)i * c, 1, c, T, NULL, &h, NULL, &cc, &mg, &pred);
        conf[bin_of(cc)] += (float)w;
        ent[bin_of(h / logc)] += (float)w;
        cls[pred] += (float)w;
        cls[c] += (float)(mg * w);
    }
}

double core_drift_profile_dist(const float *a, const float *b, int c)
{
    double s = 0.0;
    for (int i = 0; i < core_drift_profile_len(c); i++)
        s += fabs((double)a[i] - b[i]);
    return s;
}

void core_drift_atc_of(const float *logits, const int *y, int n, int c, double T,
                       double *threshold, double *accuracy)
{
    float *cal = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    int *pred = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), k = 0;
    if (!cal || !pred) {
        free(cal);
        free(pred);
        return;
    }
    core_drift_summaries(logits, n, c, T, NULL, NULL, NULL, cal, NULL, pred);
    for (int i = 0; i < n; i++)
        k += pred[i] == y[i];
    double acc = n ? (double)k / n : 0.0;
    if (accuracy)
        *accuracy = acc;
    if (threshold)
        *threshold = core_atc_threshold(cal, n, acc);
    free(cal);
    free(pred);
}

int core_drift_matched_atc(const core_drift_shift *shifts, int nshift, const float *logits, int n,
                           int c, double T, double *estimate)
{
    float w[2 * CORE_PROFILE_BINS + CORE_DRIFT_MAX_CLASSES + 1];
    float *cal = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    int best = -1;
    double dist = 0.0;
    if (!cal || c > CORE_DRIFT_MAX_CLASSES) {
        free(cal);
        return -1;
    }
    core_drift_profile(logits, n, c, T, w);
    for (int k = 0; k < nshift; k++) {
        double dd = core_drift_profile_dist(w, shifts[k].profile, c);
        if (best < 0 || dd < dist) {
            best = k;
            dist = dd;
        }
    }
    core_drift_summaries(logits, n, c, T, NULL, NULL, NULL, cal, NULL, NULL);
    if (best >= 0)
        *estimate = core_fraction_above(cal, n, shifts[best].threshold);
    free(cal);
    return best;
}
