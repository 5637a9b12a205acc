/*
 * explain.c - saliency, SmoothGrad, Integrated Gradients, guided
 * backpropagation, the surrogates' entry (surrogate.c) and the fragility
 * of any method's maps (explain.h).
 *
 * Every gradient method is a sequence of whole-batch gradient computations
 * of one logit per example (dlogits = one-hot of the explained class),
 * averaged in a fixed order, so results depend on the thread count only.
 */
#define _GNU_SOURCE
#include "explain.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "attack.h"
#include "loss.h"
#include "rng.h"

static const char *const method_names[] = {
#define X(tag, name) #name,
    CORE_EXPLAIN_METHODS(X)
#undef X
};

const char *core_explain_method_name(core_explain_method m)
{
    return (unsigned)m < CORE_EXPLAIN_NMETHODS ? method_names[m] : "unknown";
}

static int method_parse(const char *s, core_explain_method *out, char *err)
{
    int i = core_name_index(s, method_names, CORE_EXPLAIN_NMETHODS);
    if (i >= 0) {
        *out = (core_explain_method)i;
        return 0;
    }
    return core_errf(err, "unknown explanation '%s' (saliency, smoothgrad, ig, guided, gaussian "
                          "or lime)", s);
}

int core_explain_methods_parse(const char *list, unsigned *mask, char *err)
{
    char word[32];
    *mask = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        core_explain_method m = CORE_EXPLAIN_SALIENCY;
        if (n == 0 || n >= sizeof word)
            return core_errf(err, "invalid method list '%s' (names separated by commas)", list);
        snprintf(word, sizeof word, "%.*s", (int)n, p);
        if (strcmp(word, "all") == 0)
            *mask |= CORE_EXPLAIN_ALL;
        else if (method_parse(word, &m, err))
            return -1;
        else
            *mask |= 1u << m;
        p += n + (p[n] == ',');
    }
    return *mask ? 0 : core_errf(err, "empty method list");
}

void core_explain_methods_format(unsigned mask, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int m = 0; m < CORE_EXPLAIN_NMETHODS; m++)
        if (mask & (1u << m) && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
                                     method_names[m]);
}

core_explain_cfg core_explain_defaults(core_explain_method method)
{
    return (core_explain_cfg){.method = method, .samples = 25, .sigma = 0.15f, .steps = 64,
                              .sur = core_surrogate_defaults()};
}

void core_explain_cost(const core_explain_cfg *cfg, int *forward, int *backward)
{
    switch (cfg->method) {
    case CORE_EXPLAIN_SMOOTHGRAD:
        *forward = *backward = cfg->samples;
        return;
    case CORE_EXPLAIN_IG:
        *forward = *backward = cfg->steps;
        return;
    case CORE_EXPLAIN_GAUSSIAN:
        *forward = core_surrogate_draws(cfg->sur.gaussian_samples);
        *backward = 0;
        return;
    case CORE_EXPLAIN_LIME:
        *forward = core_surrogate_draws(cfg->sur.lime_samples);
        *backward = 0;
        return;
    default:
        *forward = *backward = 1;
    }
}

core_fragility_cfg core_fragility_defaults(void)
{
    return (core_fragility_cfg){.eps = 8.0f / 255.0f, .topk = 0.02f, .tries = 16,
                                .map = core_explain_defaults(CORE_EXPLAIN_SALIENCY)};
}

/* ------------------------------------------------------------ gradients */

/* Scratch of one call: a perturbed batch, its input gradient, one-hot
 * dlogits and the classes. */
typedef struct {
    float *xb, *g, *dl;
    int *cls;
} grad_ws;

static void grad_ws_free(grad_ws *w)
{
    core_free(w->xb);
    core_free(w->g);
    core_free(w->dl);
    core_free(w->cls);
}

static int grad_ws_init(grad_ws *w, const core_model *m, int n, char *err)
{
    const size_t dim = core_shape_size(m->in);
    memset(w, 0, sizeof *w);
    if (n > m->capacity)
        return core_errf(err, "%d examples do not fit the model's batch of %d", n, m->capacity);
    w->xb = core_alloc(sizeof(float) * dim * (size_t)n);
    w->g = core_alloc(sizeof(float) * dim * (size_t)n);
    w->dl = core_alloc(sizeof(float) * (size_t)m->nclass * (size_t)n);
    w->cls = core_alloc(sizeof(int) * (size_t)n);
    if (!w->xb || !w->g || !w->dl || !w->cls) {
        grad_ws_free(w);
        return core_errf(err, "out of memory for explaining %d examples", n);
    }
    return 0;
}

/* g = dz_cls/dx at x for each example; pred (may be NULL) gets the
 * predictions at x. */
static void logit_grad(core_model *m, grad_ws *w, const float *x, const int *cls, int n,
                       float *g, int *pred)
{
    const int c = m->nclass;
    const float *z = core_model_forward(m, x, n);
    memset(w->dl, 0, sizeof(float) * (size_t)c * n);
    for (int i = 0; i < n; i++) {
        if (pred)
            pred[i] = core_argmax(z + (size_t)i * c, c);
        w->dl[(size_t)i * c + cls[i]] = 1.0f;
    }
    core_model_backward(m, w->dl, n, g, 0);
}

static void predict(core_model *m, const float *x, int n, int *pred)
{
    const float *z = core_model_forward(m, x, n);
    for (int i = 0; i < n; i++)
        pred[i] = core_argmax(z + (size_t)i * m->nclass, m->nclass);
}

static void smoothgrad(const core_explain_cfg *cfg, core_model *m, grad_ws *w, const float *x,
                       int n, uint64_t stream, float *attr)
{
    const size_t dim = core_shape_size(m->in), len = dim * (size_t)n;
    memset(attr, 0, sizeof(float) * len);
    for (int s = 0; s < cfg->samples; s++) {
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < dim; p++)
                w->xb[i * dim + p] = x[i * dim + p] +
                                     cfg->sigma * core_rng_normal(cfg->seed, stream + i,
                                                                  (uint64_t)s * dim + p);
        logit_grad(m, w, w->xb, w->cls, n, w->g, NULL);
        for (size_t p = 0; p < len; p++)
            attr[p] += w->g[p] / cfg->samples;
    }
}

static void integrated_gradients(const core_explain_cfg *cfg, core_model *m, grad_ws *w,
                                 const float *x, int n, float *attr)
{
    const size_t len = core_shape_size(m->in) * (size_t)n;
    memset(attr, 0, sizeof(float) * len);
    for (int k = 1; k <= cfg->steps; k++) {
        const float a = ((float)k - 0.5f) / (float)cfg->steps;
        for (size_t p = 0; p < len; p++)
            w->xb[p] = a * x[p];   /* x' + a (x - x') with x' = 0 */
        logit_grad(m, w, w->xb, w->cls, n, w->g, NULL);
        for (size_t p = 0; p < len; p++)
            attr[p] += w->g[p];
    }
    for (size_t p = 0; p < len; p++)
        attr[p] *= x[p] / (float)cfg->steps;
}

int core_explain(const core_explain_cfg *cfg, core_model *m, const float *x, const int *cls,
                 int n, uint64_t stream, float *attr, int *pred, char *err)
{
    grad_ws w;
    if (cfg->samples < 1 || cfg->steps < 1 || !(cfg->sigma >= 0.0f))
        return core_errf(err, "invalid explanation settings: samples %d, steps %d, sigma %g",
                         cfg->samples, cfg->steps, (double)cfg->sigma);
    for (int i = 0; cls && i < n; i++)
        if (cls[i] < 0 || cls[i] >= m->nclass)
            return core_errf(err, "invalid class %d to explain: the model has %d classes", cls[i],
                             m->nclass);
    if (grad_ws_init(&w, m, n, err))
        return -1;
    if (pred || !cls)
        predict(m, x, n, pred ? pred : w.cls);
    if (cls)
        memcpy(w.cls, cls, sizeof(int) * (size_t)n);
    else if (pred)
        memcpy(w.cls, pred, sizeof(int) * (size_t)n);
    int rc = 0;
    if (cfg->method == CORE_EXPLAIN_SMOOTHGRAD) {
        smoothgrad(cfg, m, &w, x, n, stream, attr);
    } else if (cfg->method == CORE_EXPLAIN_IG) {
        integrated_gradients(cfg, m, &w, x, n, attr);
    } else if (cfg->method == CORE_EXPLAIN_GAUSSIAN || cfg->method == CORE_EXPLAIN_LIME) {
        core_surrogate_cfg sc = cfg->sur;
        sc.seed = cfg->seed;
        rc = core_surrogate_explain(&sc, cfg->method == CORE_EXPLAIN_LIME
                                             ? CORE_SURROGATE_LIME : CORE_SURROGATE_GAUSSIAN,
                                    m, x, w.cls, n, stream, attr, NULL, NULL, err);
    } else {
        /* Guided: the same pass with the model's ReLUs in guided mode. */
        m->guided = cfg->method == CORE_EXPLAIN_GUIDED;
        logit_grad(m, &w, x, w.cls, n, attr, NULL);
        m->guided = 0;
    }
    grad_ws_free(&w);
    return rc;
}

void core_explain_map(const float *attr, int n, core_shape s, float *map)
{
    const size_t plane = (size_t)s.h * s.w;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < plane; p++) {
            float v = 0.0f;
            for (int c = 0; c < s.c; c++)
                v += fabsf(attr[((size_t)i * s.c + c) * plane + p]);
            map[i * plane + p] = v;
        }
}

int core_explain_logit(core_model *m, const float *x, const int *cls, int n, float *out,
                       char *err)
{
    if (n > m->capacity)
        return core_errf(err, "%d examples do not fit the model's batch of %d", n, m->capacity);
    const float *z = core_model_forward(m, x, n);
    for (int i = 0; i < n; i++)
        out[i] = z[(size_t)i * m->nclass + cls[i]];
    return 0;
}

/* ---------------------------------------------------- map comparisons */

typedef struct {
    const float *v;
} by_value;

/* Descending value, then ascending index: a total order, so top-k sets
 * and ranks are well defined under ties. */
static int cmp_desc(const void *pa, const void *pb, void *ctx)
{
    const float *v = ((const by_value *)ctx)->v;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (v[a] != v[b])
        return v[a] > v[b] ? -1 : 1;
    return (a > b) - (a < b);
}

static int *order_desc(const float *v, int p)
{
    int *idx = malloc(sizeof(int) * (size_t)p);
    if (!idx)
        return NULL;
    for (int i = 0; i < p; i++)
        idx[i] = i;
    by_value ctx = {v};
    qsort_r(idx, (size_t)p, sizeof(int), cmp_desc, &ctx);
    return idx;
}

double core_topk_overlap(const float *a, const float *b, int p, int k)
{
    int *ia = order_desc(a, p), *ib = order_desc(b, p);
    unsigned char *in_a = calloc((size_t)p, 1);
    double r = NAN;
    if (ia && ib && in_a && k > 0 && k <= p) {
        int common = 0;
        for (int i = 0; i < k; i++)
            in_a[ia[i]] = 1;
        for (int i = 0; i < k; i++)
            common += in_a[ib[i]];
        r = (double)common / k;
    }
    free(ia);
    free(ib);
    free(in_a);
    return r;
}

/* Ranks 1..p, ties sharing their average rank. */
static int average_ranks(const float *v, int p, double *rank)
{
    int *idx = order_desc(v, p);
    if (!idx)
        return -1;
    for (int i = 0; i < p;) {
        int j = i;
        while (j + 1 < p && v[idx[j + 1]] == v[idx[i]])
            j++;
        for (int q = i; q <= j; q++)
            rank[idx[q]] = 0.5 * (i + j) + 1.0;
        i = j + 1;
    }
    free(idx);
    return 0;
}

double core_spearman(const float *a, const float *b, int p)
{
    double *ra = malloc(sizeof(double) * (size_t)p), *rb = malloc(sizeof(double) * (size_t)p);
    double r = NAN;
    if (ra && rb && p > 1 && average_ranks(a, p, ra) == 0 && average_ranks(b, p, rb) == 0) {
        double mean = 0.5 * (p + 1), sab = 0.0, saa = 0.0, sbb = 0.0;
        for (int i = 0; i < p; i++) {
            sab += (ra[i] - mean) * (rb[i] - mean);
            saa += (ra[i] - mean) * (ra[i] - mean);
            sbb += (rb[i] - mean) * (rb[i] - mean);
        }
        r = saa > 0.0 && sbb > 0.0 ? sab / sqrt(saa * sbb) : (saa == sbb ? 1.0 : 0.0);
    }
    free(ra);
    free(rb);
    return r;
}

static void centre_of_mass(const float *m, int h, int w, double *cy, double *cx)
{
    double s = 0.0, y = 0.0, x = 0.0;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            s += m[i * w + j];
            y += (double)m[i * w + j] * i;
            x += (double)m[i * w + j] * j;
        }
    *cy = s > 0.0 ? y / s : (h - 1) / 2.0;
    *cx = s > 0.0 ? x / s : (w - 1) / 2.0;
}

double core_com_shift(const float *a, const float *b, int h, int w)
{
    double ay, ax, by, bx;
    centre_of_mass(a, h, w, &ay, &ax);
    centre_of_mass(b, h, w, &by, &bx);
    return hypot(ay - by, ax - bx);
}

/* ------------------------------------------------------------ fragility */

typedef struct {
    double topk, spearman, com;
} map_change;

static map_change compare_maps(const float *a, const float *b, core_shape s, int k)
{
    const int p = s.h * s.w;
    return (map_change){core_topk_overlap(a, b, p, k), core_spearman(a, b, p),
                        core_com_shift(a, b, s.h, s.w)};
}

/* Per-call buffers of the fragility search. */
typedef struct {
    grad_ws g;
    float *map0, *map, *cur, *cand;
    int *pred0, *pred;
    uint8_t *keep;
    map_change *best;
} frag_ws;

static void frag_ws_free(frag_ws *f)
{
    grad_ws_free(&f->g);
    core_free(f->map0);
    core_free(f->map);
    core_free(f->cur);
    core_free(f->cand);
    core_free(f->pred0);
    core_free(f->pred);
    core_free(f->keep);
    core_free(f->best);
}

static int frag_ws_init(frag_ws *f, const core_model *m, int n, char *err)
{
    const size_t dim = core_shape_size(m->in), plane = (size_t)m->in.h * m->in.w;
    memset(f, 0, sizeof *f);
    if (grad_ws_init(&f->g, m, n, err))
        return -1;
    f->map0 = core_alloc(sizeof(float) * plane * n);
    f->map = core_alloc(sizeof(float) * plane * n);
    f->cur = core_alloc(sizeof(float) * dim * n);
    f->cand = core_alloc(sizeof(float) * dim * n);
    f->pred0 = core_alloc(sizeof(int) * n);
    f->pred = core_alloc(sizeof(int) * n);
    f->keep = core_alloc((size_t)n);
    f->best = core_alloc(sizeof(map_change) * n);
    if (!f->map0 || !f->map || !f->cur || !f->cand || !f->pred0 || !f->pred || !f->keep ||
        !f->best) {
        frag_ws_free(f);
        return core_errf(err, "out of memory for the fragility of %d examples", n);
    }
    return 0;
}

/* Maps of cfg->map's method (for the original predictions) and the
 * predictions at xs. Its noise, if any, comes from one stream apart from
 * delta's, the same at x and every x + delta. */
#define MAP_STREAM (1ULL << 39)

static int maps_at(const core_fragility_cfg *cfg, core_model *m, frag_ws *f, const float *xs,
                   int n, uint64_t stream, float *map, char *err)
{
    core_explain_cfg mc = cfg->map;
    mc.seed = cfg->seed;
    if (mc.method == CORE_EXPLAIN_SALIENCY) {   /* one pass gives both */
        logit_grad(m, &f->g, xs, f->pred0, n, f->g.g, f->pred);
    } else {
        predict(m, xs, n, f->pred);
        if (core_explain(&mc, m, xs, f->pred0, n, stream + MAP_STREAM, f->g.g, NULL, err))
            return -1;
    }
    core_explain_map(f->g.g, n, m->in, map);
    return 0;
}

/* xs = x + step * random signs (draw `round` of the stream), projected
 * onto the eps-ball around x and [0, 1]. */
static void sign_step(const core_fragility_cfg *cfg, const core_model *m, const float *x,
                      const float *from, int n, float step, uint64_t stream, int round, float *xs)
{
    const size_t dim = core_shape_size(m->in);
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < dim; p++) {
            uint64_t r = core_rng_u64(cfg->seed, stream + i, (uint64_t)round * dim + p);
            xs[i * dim + p] = from[i * dim + p] + (r & 1 ? step : -step);
        }
    core_project(CORE_NORM_LINF, cfg->eps, x, xs, n, dim);
}

int core_fragility_measure(const core_fragility_cfg *cfg, core_model *m, const float *x, int n,
                           uint64_t stream, core_fragility *out, char *err)
{
    const size_t dim = core_shape_size(m->in), plane = (size_t)m->in.h * m->in.w;
    frag_ws f;
    memset(out, 0, sizeof *out);
    out->k = (int)lround(cfg->topk * (double)plane);
    out->k = out->k < 1 ? 1 : out->k > (int)plane ? (int)plane : out->k;
    if (!(cfg->eps >= 0.0f) || cfg->tries < 0)
        return core_errf(err, "invalid fragility settings: eps %g, tries %d", (double)cfg->eps,
                         cfg->tries);
    if (frag_ws_init(&f, m, n, err))
        return -1;
    predict(m, x, n, f.pred0);
    if (maps_at(cfg, m, &f, x, n, stream, f.map0, err))
        goto fail;
    /* The random delta: eps times random signs, from x. */
    sign_step(cfg, m, x, x, n, cfg->eps, stream, 0, f.cur);
    if (maps_at(cfg, m, &f, f.cur, n, stream, f.map, err))
        goto fail;
    for (int i = 0; i < n; i++) {
        f.keep[i] = f.pred[i] == f.pred0[i];
        if (!f.keep[i])
            continue;
        f.best[i] = compare_maps(f.map0 + i * plane, f.map + i * plane, m->in, out->k);
        out->n++;
        out->topk_random += f.best[i].topk;
        out->spearman_random += f.best[i].spearman;
        out->com_random += f.best[i].com;
    }
    /* The adversarial delta: a random search from the random one. */
    for (int t = 1; t <= cfg->tries; t++) {
        sign_step(cfg, m, x, f.cur, n, 0.5f * cfg->eps, stream, t, f.cand);
        if (maps_at(cfg, m, &f, f.cand, n, stream, f.map, err))
            goto fail;
        for (int i = 0; i < n; i++) {
            if (!f.keep[i] || f.pred[i] != f.pred0[i])
                continue;
            map_change c = compare_maps(f.map0 + i * plane, f.map + i * plane, m->in, out->k);
            if (c.topk < f.best[i].topk ||
                (c.topk == f.best[i].topk && c.spearman < f.best[i].spearman)) {
                f.best[i] = c;
                memcpy(f.cur + i * dim, f.cand + i * dim, sizeof(float) * dim);
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (f.keep[i]) {
            out->topk_adv += f.best[i].topk;
            out->spearman_adv += f.best[i].spearman;
            out->com_adv += f.best[i].com;
        }
    if (out->n) {
        double *v[] = {&out->topk_random, &out->spearman_random, &out->com_random,
                       &out->topk_adv, &out->spearman_adv, &out->com_adv};
        for (int i = 0; i < 6; i++)
            *v[i] /= out->n;
    }
    frag_ws_free(&f);
    return 0;
fail:
    frag_ws_free(&f);
    return -1;
}
