/*
 * extras.c - calibration, corruptions, explanations and pictures of an
 * evaluation job (extras.h), worker side.
 *
 * Report objects (the "data" of a report message, stored as is):
 *   calibration   {"temperature", "fit_on": "validation"|"train", "fit_n",
 *                  "attack", "eps", "clean": {"before": C, "after": C},
 *                  "adversarial": {"before": C, "after": C}} with
 *                  C = {"n", "accuracy", "ece", "nll", "brier", "bins": [{"lo",
 *                  "hi", "count", "confidence", "accuracy"} x 15]}; "after" is
 *                  at the temperature fitted on the parent's validation split
 *                  (or on training examples when it had none: "fit_on")
 *   corruptions   {"n", "clean_accuracy", "mean_accuracy" (over the families held
 *                 out of training), "mean_accuracy_all", "held_out", "corruptions":
 *                  [{"name", "levels": [5], "accuracy": [5], "seen_in_training"}]}
 *   explanations  {"n", "ig": {"steps", "baseline": "zeros", "mean_abs_error",
 *                  "mean_abs_delta", "rel_error"}, "smoothgrad": {"samples",
 *                  "sigma"}, "fragility": {"map": "saliency", "eps", "topk_frac",
 *                  "k", "tries", "n", "random": F, "adversarial": F},
 *                  "methods": {NAME: M, ...} for each of explain_methods,
 *                  "surrogates": {"gaussian"|"lime": S} for those asked,
 *                  "warnings": ["guided: ...", ...]} with
 *                  F = {"topk", "spearman", "com_shift"},
 *                  M = {"n", "forward", "backward" (passes per example),
 *                  "seconds" (the n maps), "seconds_per_100",
 *                  "fragility": {"eps", "tries", "k", "n", "random": F,
 *                  "adversarial": F}, "randomisation": {"n", "layers":
 *                  ["fc2", ...] (randomised top down, cumulatively),
 *                  "spearman": [one per layer], "final", "threshold",
 *                  "flagged"}},
 *                  S = {"n", "samples", "held_out" (draws the R^2 is measured
 *                  on), "target", "lambda", "features", "r2_mean", "r2_min",
 *                  gaussian: "sigma"; lime: "patch",
 *                  "kernel_width", "fill"; "examples": [{"index", "class",
 *                  "r2", "top": [{"feature", "channel", "y", "x",
 *                  "weight"}]}]} (y, x: the pixel, or the patch's top-left
 *                  corner; channel -1 for a patch)
 *   The per-method figures use the first method_limit explained examples
 *   (and the randomisation test the first batch of them); the report is
 *   the hook of the HTML report (issue 15): every figure it shows is here.
 * The adversarial inputs (calibration, pictures) come from the evaluation's
 * attack at its first eps (for calibration, the logits the evaluation kept),
 * or PGD-20 for a suite (suites keep no inputs).
 */
#include "extras.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/calib.h"
#include "core/corrupt.h"
#include "core/eval.h"
#include "core/explain.h"
#include "core/image.h"
#include "core/loss.h"
#include "core/mapcheck.h"
#include "core/rng.h"
#include "core/surrogate.h"
#include "core/units.h"

/* Streams of the random numbers drawn here, apart from the attacks'. */
#define STREAM_ADV (CORE_STREAM_USER + (1ULL << 40))
#define STREAM_EXPLAIN (CORE_STREAM_USER + (3ULL << 40))

static int stopped(const advd_extras *x)
{
    return x->stop(x->ctx) ? core_errf(x->err, "stopped before the evaluation finished") : 0;
}

static int batch_of(const advd_extras *x, int off, int n)
{
    return n - off < x->batch ? n - off : x->batch;
}

/* The attack behind the adversarial inputs, and its name. */
static core_attack_cfg adv_attack(const advd_extras *x, const char **name)
{
    const adv_eval_spec *es = x->es;
    core_attack_cfg a = es->attack;
    if (es->use_suite) {
        a = core_attack_defaults(CORE_ATTACK_PGD, es->eps[0]);
        a.steps = 20;
        a.norm = CORE_NORM_LINF;
    }
    a.eps = es->eps[0];
    a.seed = es->seed;
    *name = core_attack_kind_name(a.kind);
    return a;
}

/* Adversarial examples of n inputs, the first being example `first` of
 * the evaluated set (its batches' noise is keyed by their place in it). */
static int adversarial(const advd_extras *x, const float *in, const int *y, int n, int first,
                       float *out)
{
    const char *name;
    const core_attack_cfg a = adv_attack(x, &name);
    const size_t dim = core_shape_size(x->m->in);
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        if (core_attack_run(&a, x->m, x->ws, in + dim * off, y + off, NULL, k,
                            STREAM_ADV + (uint64_t)(first + off), out + dim * off, NULL, x->err) ||
            stopped(x))
            return -1;
    }
    return 0;
}

/* data stolen. */
static void send_report(const advd_extras *x, const char *kind, json_t *data)
{
    adv_wmsg m = {.type = ADV_W_REPORT, .u.report.data = data};
    snprintf(m.u.report.kind, sizeof m.u.report.kind, "%s", kind);
    x->send(x->ctx, &m);
    json_decref(data);
}

/* ---------------------------------------------------------- calibration */

static json_t *calibration_json(const core_calibration *c)
{
    json_t *bins = json_array();
    for (int b = 0; b < CORE_CALIB_BINS; b++)
        json_array_append_new(bins, json_pack("{s:f, s:f, s:i, s:f, s:f}", "lo",
                                              (double)b / CORE_CALIB_BINS, "hi",
                                              (double)(b + 1) / CORE_CALIB_BINS, "count",
                                              c->count[b], "confidence", c->confidence[b],
                                              "accuracy", c->bin_accuracy[b]));
    return json_pack("{s:i, s:f, s:f, s:f, s:f, s:o}", "n", c->n, "accuracy", c->accuracy, "ece",
                     c->ece, "nll", c->nll, "brier", c->brier, "bins", bins);
}

static json_t *before_after(const float *logits, const int *y, int n, int c, double t)
{
    core_calibration before, after;
    core_calibration_measure(logits, y, n, c, 1.0, &before);
    core_calibration_measure(logits, y, n, c, t, &after);
    return json_pack("{s:o, s:o}", "before", calibration_json(&before), "after",
                     calibration_json(&after));
}

#define FIT_FALLBACK 2000   /* training examples to fit T on without a validation split */

/* The temperature fitted on the parent job's validation split (the same
 * seeded split its training used), or on training examples without one. */
static int fit_temperature(const advd_extras *x, double *t, const char **fit_on, int *fit_n)
{
    const adv_train_spec *ts = &x->parent->train;
    core_dataset tr = {0};
    core_data_split split = {0};
    float *logits = NULL;
    int *yb = NULL, rc = -1;
    if (core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TRAIN, ts->train_limit, &tr, x->err) ||
        core_data_split_make(tr.n, ts->cfg.val_size < tr.n ? ts->cfg.val_size : 0, ts->cfg.seed,
                             &split, x->err))
        goto out;
    const int *idx = split.nval ? split.val : split.train;
    int n = split.nval ? split.nval : (split.ntrain < FIT_FALLBACK ? split.ntrain : FIT_FALLBACK);
    yb = core_alloc(sizeof(int) * n + 1);
    logits = core_alloc(sizeof(float) * (size_t)x->m->nclass * n + 1);
    if (!yb || !logits) {
        core_errf(x->err, "out of memory for %d validation examples", n);
        goto out;
    }
    if (core_eval_logits(x->m, &tr, idx, n, logits, yb, x->err))
        goto out;
    *t = core_temperature_fit(logits, yb, n, x->m->nclass);
    *fit_on = split.nval ? "validation" : "train";
    *fit_n = n;
    rc = 0;
out:
    core_free(yb);
    core_free(logits);
    core_data_split_free(&split);
    core_dataset_free(&tr);
    return rc;
}

/* This rank's whole batches of the n examples. */
static void my_range(const advd_extras *x, int *a, int *b)
{
    core_dist_range(x->n, x->batch, core_dist_rank(x->dist), core_dist_size(x->dist), a, b);
}

/* Clean logits, and the adversarial ones when the evaluation kept none (a
 * suite), of this rank's examples; every rank's summed into rank 0's
 * (zero outside a range). */
static int calibration_logits(const advd_extras *x, float *clean, float *adv, float *xadv)
{
    const size_t dim = core_shape_size(x->m->in), c = (size_t)x->m->nclass;
    int a, b;
    my_range(x, &a, &b);
    memset(clean, 0, sizeof(float) * c * x->n);
    if (adv)
        memset(adv, 0, sizeof(float) * c * x->n);
    if (adv && adversarial(x, x->x + dim * a, x->y + a, b - a, a, xadv + dim * a))
        return -1;
    core_model_logits(x->m, x->x + dim * a, b - a, clean + c * a);
    if (adv)
        core_model_logits(x->m, xadv + dim * a, b - a, adv + c * a);
    return core_dist_sum(x->dist, clean, c * x->n, CORE_DIST_F32, x->err) ||
           (adv && core_dist_sum(x->dist, adv, c * x->n, CORE_DIST_F32, x->err));
}

int advd_extras_calibration(const advd_extras *x)
{
    const size_t dim = core_shape_size(x->m->in), c = (size_t)x->m->nclass;
    const int own = !x->adv_logits;   /* a suite: attack here */
    float *clean = core_alloc(sizeof(float) * c * x->n + 1);
    float *adv = own ? core_alloc(sizeof(float) * c * x->n + 1) : NULL;
    float *xadv = own ? core_alloc(sizeof(float) * dim * x->n + 1) : NULL;
    const char *fit_on, *attack;
    double t;
    int fit_n, rc = -1;
    if (!clean || (own && (!adv || !xadv))) {
        core_errf(x->err, "out of memory for the calibration of %d examples", x->n);
        goto out;
    }
    if (calibration_logits(x, clean, adv, xadv))
        goto out;
    rc = 0;
    if (core_dist_rank(x->dist) != 0)
        goto out;
    if ((rc = fit_temperature(x, &t, &fit_on, &fit_n)))
        goto out;
    adv_attack(x, &attack);
    send_report(x, "calibration",
                json_pack("{s:f, s:s, s:i, s:s, s:f, s:o, s:o}", "temperature", t, "fit_on",
                          fit_on, "fit_n", fit_n, "attack", attack, "eps",
                          adv_float_json(x->es->eps[0]), "clean",
                          before_after(clean, x->y, x->n, (int)c, t), "adversarial",
                          before_after(own ? adv : x->adv_logits, x->y, x->n, (int)c, t)));
out:
    core_free(clean);
    core_free(adv);
    core_free(xadv);
    return rc;
}

/* ---------------------------------------------------------- corruptions */

static int corruption_stop(void *ctx, int e, int done, int total)
{
    (void)e, (void)done, (void)total;
    const advd_extras *x = ctx;
    return x->stop(x->ctx);
}

/* The correct counts of every family and severity: this rank's batches
 * (core_eval_corruptions), summed over ranks. */
static int corruption_counts(const advd_extras *x,
                             double correct[CORE_NCORRUPTIONS][CORE_SEVERITIES])
{
    int a, b;
    my_range(x, &a, &b);
    memset(correct, 0, sizeof(double) * CORE_NCORRUPTIONS * CORE_SEVERITIES);
    core_eval_hooks h = {.on_batch = corruption_stop, .ctx = (void *)x};
    int rc = core_eval_corruptions(x->m, x->x, x->y, a, b, x->batch, x->es->seed, &h, correct,
                                   x->err);
    if (rc == 1)
        return core_errf(x->err, "stopped before the evaluation finished");
    return rc ? -1
              : core_dist_sum(x->dist, correct, CORE_NCORRUPTIONS * CORE_SEVERITIES,
                              CORE_DIST_F64, x->err);
}

/* The families the training job augmented with are held out of the
 * headline score (ImageNet-C's rule: do not train on what you test): the
 * mean is over the others, unless it saw them all. */
int advd_extras_corruptions(const advd_extras *x)
{
    const unsigned seen = x->parent ? x->parent->train.cfg.augment.corruptions : 0;
    const int all_seen = seen == (1u << CORE_NCORRUPTIONS) - 1;
    double correct[CORE_NCORRUPTIONS][CORE_SEVERITIES], total = 0.0, held_total = 0.0;
    int held = 0;
    if (corruption_counts(x, correct))
        return -1;
    if (core_dist_rank(x->dist) != 0)
        return 0;
    json_t *list = json_array();
    for (int c = 0; c < CORE_NCORRUPTIONS; c++) {
        json_t *levels = json_array(), *acc = json_array();
        int trained = seen >> c & 1;
        held += !trained || all_seen;
        for (int s = 1; s <= CORE_SEVERITIES; s++) {
            double a = x->n ? correct[c][s - 1] / x->n : 0.0;
            total += a;
            held_total += !trained || all_seen ? a : 0.0;
            json_array_append_new(levels, json_real(core_corruption_level((core_corruption)c, s)));
            json_array_append_new(acc, json_real(a));
        }
        json_array_append_new(list, json_pack("{s:s, s:o, s:o, s:b}", "name",
                                              core_corruption_name((core_corruption)c), "levels",
                                              levels, "accuracy", acc, "seen_in_training",
                                              trained));
    }
    send_report(x, "corruptions",
                json_pack("{s:i, s:f, s:f, s:f, s:i, s:o}", "n", x->n, "clean_accuracy",
                          x->clean_acc, "mean_accuracy",
                          held_total / (held * CORE_SEVERITIES), "mean_accuracy_all",
                          total / (CORE_NCORRUPTIONS * CORE_SEVERITIES), "held_out", held,
                          "corruptions", list));
    return 0;
}

/* --------------------------------------------------------- explanations */

static core_explain_cfg explain_cfg(const advd_extras *x, core_explain_method method)
{
    core_explain_cfg c = core_explain_defaults(method);
    c.samples = x->es->smoothgrad_samples;
    c.sigma = x->es->smoothgrad_sigma;
    c.steps = x->es->ig_steps;
    c.seed = x->es->seed;
    c.sur.gaussian_samples = x->es->gaussian_samples;
    c.sur.sigma = x->es->gaussian_sigma;
    c.sur.lime_samples = x->es->lime_samples;
    c.sur.patch = x->es->lime_patch;
    c.sur.kernel_width = x->es->lime_kernel_width;
    c.sur.lambda = x->es->ridge_lambda;
    c.sur.fill = x->es->lime_fill;
    c.sur.target = x->es->surrogate_target;
    c.sur.seed = x->es->seed;
    return c;
}

/* The classes to explain: es->explain_class for all, or NULL (each
 * prediction). cls holds k entries. */
static const int *explained_classes(const advd_extras *x, int *cls, int k)
{
    if (x->es->explain_class < 0)
        return NULL;
    for (int i = 0; i < k; i++)
        cls[i] = x->es->explain_class;
    return cls;
}

/* IG's completeness gap over one batch: adds |sum IG - (z(x) - z(0))| and
 * |z(x) - z(0)| per example. */
static int ig_batch(const advd_extras *x, const float *in, int k, float *attr, float *zero,
                    double *err_sum, double *delta_sum)
{
    const size_t dim = core_shape_size(x->m->in);
    core_explain_cfg cfg = explain_cfg(x, CORE_EXPLAIN_IG);
    int pred[k], cls[k];
    float fx[k], f0[k];
    const int *explained = explained_classes(x, cls, k);
    if (core_explain(&cfg, x->m, in, explained, k, 0, attr, pred, x->err) ||
        core_explain_logit(x->m, in, explained ? explained : pred, k, fx, x->err) ||
        core_explain_logit(x->m, zero, explained ? explained : pred, k, f0, x->err))
        return -1;
    for (int i = 0; i < k; i++) {
        double sum = 0.0;
        for (size_t p = 0; p < dim; p++)
            sum += attr[i * dim + p];
        *err_sum += fabs(sum - (fx[i] - f0[i]));
        *delta_sum += fabs((double)fx[i] - f0[i]);
    }
    return 0;
}

static json_t *fragility_json(double topk, double spearman, double com)
{
    return json_pack("{s:f, s:f, s:f}", "topk", topk, "spearman", spearman, "com_shift", com);
}

/* Fragility of fc's maps over the first n examples, batch by batch: the
 * means over the examples whose random delta kept the label. */
static json_t *fragility_over(const advd_extras *x, const core_fragility_cfg *fc, int n)
{
    const size_t dim = core_shape_size(x->m->in);
    double sum[6] = {0};
    core_fragility f = {0};
    int used = 0;
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        if (core_fragility_measure(fc, x->m, x->x + dim * off, k, STREAM_EXPLAIN + (uint64_t)off,
                                   &f, x->err) ||
            stopped(x))
            return NULL;
        double v[6] = {f.topk_random, f.spearman_random, f.com_random,
                       f.topk_adv, f.spearman_adv, f.com_adv};
        for (int i = 0; i < 6; i++)
            sum[i] += v[i] * f.n;
        used += f.n;
    }
    for (int i = 0; i < 6 && used; i++)
        sum[i] /= used;
    return json_pack("{s:f, s:f, s:i, s:i, s:i, s:o, s:o}", "eps", adv_float_json(fc->eps),
                     "topk_frac", adv_float_json(fc->topk), "k", f.k, "tries", fc->tries, "n",
                     used, "random", fragility_json(sum[0], sum[1], sum[2]), "adversarial",
                     fragility_json(sum[3], sum[4], sum[5]));
}

/* ------------------------------------------------- every method's figures */

#define METHOD_TRIES 4        /* random-search steps of the per-method fragility */
#define SURROGATE_SHOWN 8     /* examples whose top features the report lists */
#define TOP_FEATURES 5

/* One method's maps of fixed classes (the trained model's predictions, or
 * the class asked for): the randomisation test explains the same class
 * under every model. */
typedef struct {
    core_explain_cfg cfg;
    const int *cls;
} method_maps;

static int method_map(void *ctx, core_model *m, const float *in, int n, float *map, char *err)
{
    const method_maps *mm = ctx;
    float *attr = core_alloc(sizeof(float) * core_shape_size(m->in) * n);
    if (!attr)
        return core_errf(err, "out of memory for %d maps", n);
    int rc = core_explain(&mm->cfg, m, in, mm->cls, n, STREAM_EXPLAIN, attr, NULL, err);
    if (rc == 0)
        core_explain_map(attr, n, m->in, map);
    core_free(attr);
    return rc;
}

/* The classes explained of the first n examples. */
static void classes_of(const advd_extras *x, int n, int *cls)
{
    if (x->es->explain_class >= 0)
        for (int i = 0; i < n; i++)
            cls[i] = x->es->explain_class;
    else
        core_model_predict(x->m, x->x, n, cls);
}

/* Maps of examples off..off+k-1 for cls (NULL: the predictions, which
 * pred gets); a surrogate's fits also give their R^2 and coefficients
 * (r2 and coef may then be NULL; they are untouched for other methods). */
static int explained_maps(const advd_extras *x, const core_explain_cfg *cfg, const int *cls,
                          int off, int k, float *attr, int *pred, double *r2, float *coef)
{
    const size_t dim = core_shape_size(x->m->in);
    const float *in = x->x + dim * off;
    const uint64_t stream = STREAM_EXPLAIN + (uint64_t)off;
    if (cfg->method != CORE_EXPLAIN_GAUSSIAN && cfg->method != CORE_EXPLAIN_LIME)
        return core_explain(cfg, x->m, in, cls, k, stream, attr, pred, x->err);
    if (pred)
        core_model_predict(x->m, in, k, pred);
    return core_surrogate_explain(&cfg->sur, cfg->method == CORE_EXPLAIN_LIME
                                                 ? CORE_SURROGATE_LIME
                                                 : CORE_SURROGATE_GAUSSIAN,
                                  x->m, in, cls ? cls : pred, k, stream, attr, r2, coef, x->err);
}

/* Seconds for the maps of n examples, batch by batch; attr: n x input;
 * r2 and coef as explained_maps takes them. */
static int timed_maps(const advd_extras *x, const core_explain_cfg *cfg, const int *cls, int n,
                      float *attr, double *r2, float *coef, double *seconds)
{
    const size_t dim = core_shape_size(x->m->in);
    const int d = core_surrogate_features(&cfg->sur, cfg->method == CORE_EXPLAIN_LIME
                                                         ? CORE_SURROGATE_LIME
                                                         : CORE_SURROGATE_GAUSSIAN,
                                          x->m->in);
    double t0 = core_now_s();
    for (int off = 0; off < n; off += x->batch)
        if (explained_maps(x, cfg, cls + off, off, batch_of(x, off, n), attr + dim * off, NULL,
                           r2 + off, coef + (size_t)d * off) ||
            stopped(x))
            return -1;
    *seconds = core_now_s() - t0;
    return 0;
}

static json_t *randomisation(const advd_extras *x, const core_explain_cfg *cfg, const int *cls,
                             int n, json_t *warnings)
{
    const core_mapcheck_cfg mc = {.threshold = core_mapcheck_defaults().threshold,
                                  .seed = x->es->seed};
    method_maps mm = {*cfg, cls};
    core_mapcheck r;
    const int k = n < x->batch ? n : x->batch;
    if (core_mapcheck_run(&mc, x->m, x->x, k, method_map, &mm, &r, x->err) || stopped(x))
        return NULL;
    json_t *layers = json_array(), *rho = json_array();
    for (int s = 0; s < r.steps; s++) {
        json_array_append_new(layers, json_string(r.layer[s]));
        json_array_append_new(rho, json_real(r.spearman[s]));
    }
    if (r.flagged) {
        char w[256];
        snprintf(w, sizeof w, "%s maps barely change when the model's weights are randomised "
                              "(Spearman %.2f after every layer, flagged at %.2f): they show the "
                              "input more than what the model learned",
                 core_explain_method_name(cfg->method), r.final, (double)mc.threshold);
        json_array_append_new(warnings, json_string(w));
    }
    return json_pack("{s:i, s:o, s:o, s:f, s:f, s:b}", "n", k, "layers", layers, "spearman", rho,
                     "final", r.final, "threshold", adv_float_json(mc.threshold), "flagged",
                     r.flagged);
}

/* Feature j of a fit as (channel, y, x): a pixel of the Gaussian form, or
 * a patch's top-left corner (channel -1). */
static json_t *feature_json(const core_surrogate_cfg *sc, core_surrogate_kind kind,
                            core_shape s, int j, float weight)
{
    int c = -1, y, xx;
    if (kind == CORE_SURROGATE_GAUSSIAN) {
        c = j / (s.h * s.w);
        y = j / s.w % s.h;
        xx = j % s.w;
    } else {
        int p = core_lime_patch(sc, s), gw = (s.w + p - 1) / p;
        y = j / gw * p;
        xx = j % gw * p;
    }
    return json_pack("{s:i, s:i, s:i, s:i, s:f}", "feature", j, "channel", c, "y", y, "x", xx,
                     "weight", (double)weight);
}

/* The Gaussian or LIME fits of n examples: their held-out R^2 and the
 * first examples' top features (coef: n x features). */
static json_t *surrogate_json(const core_explain_cfg *cfg, core_shape s, const int *cls, int n,
                              const double *r2, const float *coef)
{
    const core_surrogate_kind kind =
        cfg->method == CORE_EXPLAIN_LIME ? CORE_SURROGATE_LIME : CORE_SURROGATE_GAUSSIAN;
    const int d = core_surrogate_features(&cfg->sur, kind, s);
    const int shown = n < SURROGATE_SHOWN ? n : SURROGATE_SHOWN;
    const int ntop = d < TOP_FEATURES ? d : TOP_FEATURES;
    const int samples =
        kind == CORE_SURROGATE_LIME ? cfg->sur.lime_samples : cfg->sur.gaussian_samples;
    double mean = 0.0, min = 1.0;
    json_t *examples = json_array();
    for (int i = 0; i < n; i++) {
        mean += r2[i] / n;
        min = r2[i] < min ? r2[i] : min;
    }
    for (int i = 0; i < shown; i++) {
        int top[TOP_FEATURES];
        json_t *t = json_array();
        core_top_features(coef + (size_t)d * i, d, ntop, top);
        for (int j = 0; j < ntop; j++)
            json_array_append_new(t, feature_json(&cfg->sur, kind, s, top[j],
                                                  coef[(size_t)d * i + top[j]]));
        json_array_append_new(examples, json_pack("{s:i, s:i, s:f, s:o}", "index", i, "class",
                                                  cls[i], "r2", r2[i], "top", t));
    }
    json_t *out = json_pack("{s:i, s:i, s:i, s:s, s:f, s:i, s:f, s:f, s:o}", "n", n, "samples",
                            samples, "held_out", core_surrogate_draws(samples) - samples,
                            "target", core_surrogate_target_name(cfg->sur.target), "lambda",
                            adv_float_json(cfg->sur.lambda), "features", d, "r2_mean", mean,
                            "r2_min", min, "examples", examples);
    if (kind == CORE_SURROGATE_GAUSSIAN) {
        json_object_set_new(out, "sigma", json_real(adv_float_json(cfg->sur.sigma)));
    } else {
        json_object_set_new(out, "patch", json_integer(core_lime_patch(&cfg->sur, s)));
        json_object_set_new(out, "kernel_width",
                            json_real(adv_float_json(cfg->sur.kernel_width)));
        json_object_set_new(out, "fill", json_string(core_lime_fill_name(cfg->sur.fill)));
    }
    return out;
}

/* Cost, fragility and randomisation of one method on n examples; a
 * surrogate's fits go into surrogates too. */
static json_t *method_figures(const advd_extras *x, core_explain_method meth, const int *cls,
                              int n, json_t *surrogates, json_t *warnings)
{
    const core_explain_cfg cfg = explain_cfg(x, meth);
    const size_t dim = core_shape_size(x->m->in);
    const int surrogate = meth == CORE_EXPLAIN_GAUSSIAN || meth == CORE_EXPLAIN_LIME;
    const int d = surrogate ? core_surrogate_features(&cfg.sur, meth == CORE_EXPLAIN_LIME
                                                                     ? CORE_SURROGATE_LIME
                                                                     : CORE_SURROGATE_GAUSSIAN,
                                                      x->m->in)
                            : 0;
    float *attr = core_alloc(sizeof(float) * dim * n), *coef = core_alloc(sizeof(float) * (d * n + 1));
    double *r2 = malloc(sizeof(double) * (n + 1)), seconds;
    core_fragility_cfg fc = core_fragility_defaults();
    json_t *frag = NULL, *rnd = NULL, *out = NULL;
    int fwd, bwd;
    fc.eps = x->es->fragility_eps;
    fc.tries = METHOD_TRIES;
    fc.map = cfg;
    fc.seed = x->es->seed;
    core_explain_cost(&cfg, &fwd, &bwd);
    if (!attr || !coef || !r2) {
        core_errf(x->err, "out of memory for the %s maps of %d examples",
                  core_explain_method_name(meth), n);
        goto out;
    }
    if (timed_maps(x, &cfg, cls, n, attr, r2, coef, &seconds) ||
        !(frag = fragility_over(x, &fc, n)) || !(rnd = randomisation(x, &cfg, cls, n, warnings)))
        goto out;
    if (surrogate)
        json_object_set_new(surrogates, core_explain_method_name(meth),
                            surrogate_json(&cfg, x->m->in, cls, n, r2, coef));
    out = json_pack("{s:i, s:i, s:i, s:f, s:f, s:O, s:O}", "n", n, "forward", fwd, "backward",
                    bwd, "seconds", seconds, "seconds_per_100", n ? seconds * 100.0 / n : 0.0,
                    "fragility", frag, "randomisation", rnd);
out:
    json_decref(frag);
    json_decref(rnd);
    core_free(attr);
    core_free(coef);
    free(r2);
    return out;
}

/* "methods", "surrogates" and "warnings" of the report, for explain_methods. */
static int every_method(const advd_extras *x, int n, json_t *report)
{
    unsigned mask;
    int *cls = core_alloc(sizeof(int) * (n > 0 ? n : 1)), rc = -1;
    json_t *methods = json_object(), *surrogates = json_object(), *warnings = json_array();
    if (core_explain_methods_parse(x->es->explain_methods, &mask, x->err))
        goto out;
    if (!cls) {
        core_errf(x->err, "out of memory for explaining %d examples", n);
        goto out;
    }
    classes_of(x, n, cls);
    for (int meth = 0; meth < CORE_EXPLAIN_NMETHODS; meth++) {
        if (!(mask & (1u << meth)))
            continue;
        json_t *f = method_figures(x, (core_explain_method)meth, cls, n, surrogates, warnings);
        if (!f)
            goto out;
        json_object_set_new(methods, core_explain_method_name((core_explain_method)meth), f);
    }
    json_object_set(report, "methods", methods);
    json_object_set(report, "surrogates", surrogates);
    json_object_set(report, "warnings", warnings);
    rc = 0;
out:
    json_decref(methods);
    json_decref(surrogates);
    json_decref(warnings);
    core_free(cls);
    return rc;
}

int advd_extras_explanations(const advd_extras *x)
{
    const size_t dim = core_shape_size(x->m->in);
    const int n = x->es->explain_limit < x->n ? x->es->explain_limit : x->n;
    const int nm = x->es->method_limit < n ? x->es->method_limit : n;
    float *attr = core_alloc(sizeof(float) * dim * x->batch);
    float *zero = core_alloc(sizeof(float) * dim * x->batch);
    double ig_err = 0.0, ig_delta = 0.0;
    core_fragility_cfg fc = core_fragility_defaults();
    json_t *frag = NULL, *report = NULL;
    int rc = -1;
    fc.eps = x->es->fragility_eps;
    fc.seed = x->es->seed;
    if (!attr || !zero) {
        core_errf(x->err, "out of memory for explaining %d examples", n);
        goto out;
    }
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        if (ig_batch(x, x->x + dim * off, k, attr, zero, &ig_err, &ig_delta) || stopped(x))
            goto out;
    }
    if (!(frag = fragility_over(x, &fc, n)))
        goto out;
    json_object_set_new(frag, "map", json_string("saliency"));
    report = json_pack("{s:i, s:{s:i, s:s, s:f, s:f, s:f}, s:{s:i, s:f}, s:O}", "n", n, "ig",
                       "steps", x->es->ig_steps, "baseline", "zeros", "mean_abs_error",
                       n ? ig_err / n : 0.0, "mean_abs_delta", n ? ig_delta / n : 0.0,
                       "rel_error", ig_delta > 0 ? ig_err / ig_delta : 0.0, "smoothgrad",
                       "samples", x->es->smoothgrad_samples, "sigma",
                       adv_float_json(x->es->smoothgrad_sigma), "fragility", frag);
    if (every_method(x, nm, report))
        goto out;
    send_report(x, "explanations", report);
    report = NULL;
    rc = 0;
out:
    json_decref(frag);
    json_decref(report);
    core_free(attr);
    core_free(zero);
    return rc;
}

/* ------------------------------------------------------------- pictures */

static int send_file(const advd_extras *x, const char *name, const uint8_t *data, size_t len)
{
    adv_wmsg m = {.type = ADV_W_IMAGE, .u.image = {.data = (uint8_t *)data, .len = len}};
    if ((size_t)snprintf(m.u.image.name, sizeof m.u.image.name, "%s", name) >=
        sizeof m.u.image.name)
        return core_errf(x->err, "picture name '%s' is too long", name);
    x->send(x->ctx, &m);
    return 0;
}

static int send_canvas(const advd_extras *x, const char *name, const core_canvas *cv)
{
    uint8_t *png;
    size_t len;
    if (core_png_encode(cv, &png, &len, x->err))
        return -1;
    int rc = send_file(x, name, png, len);
    free(png);
    return rc;
}

/* A growing text file (the index beside the pictures). */
typedef struct {
    char *text;
    size_t len;
    FILE *f;
} text_buf;

static const char *class_name(const advd_extras *x, int k)
{
    return k >= 0 && k < x->te->nclass ? x->te->class_names[k] : "?";
}

/* Pixels per source pixel: tiles of about 100 pixels, whatever the data. */
static int zoom_of(core_shape s)
{
    int big = s.h > s.w ? s.h : s.w, z = 100 / (big > 0 ? big : 1);
    return z < 1 ? 1 : z > 8 ? 8 : z;
}

/* n examples of shape s drawn as tiles, `per_row` to a row. */
static int grid_of(const advd_extras *x, const char *name, const float *imgs, int n, int per_row)
{
    core_canvas cv;
    const core_shape s = x->m->in;
    const int cols = n < per_row ? n : per_row;
    if (core_canvas_init(&cv, (n + cols - 1) / cols, cols, s.h, s.w, zoom_of(s), x->err))
        return -1;
    for (int i = 0; i < n; i++)
        core_canvas_image(&cv, i / cols, i % cols, imgs + core_shape_size(s) * i, s);
    int rc = send_canvas(x, name, &cv);
    core_canvas_free(&cv);
    return rc;
}

#define PER_ROW 8

static int images_adversarial(const advd_extras *x, int n, text_buf *idx)
{
    const size_t dim = core_shape_size(x->m->in), len = dim * n;
    const char *attack;
    const core_attack_cfg a = adv_attack(x, &attack);
    float *xadv = core_alloc(sizeof(float) * len), *delta = core_alloc(sizeof(float) * len);
    int *pc = core_alloc(sizeof(int) * n), *pa = core_alloc(sizeof(int) * n), rc = -1;
    if (!xadv || !delta || !pc || !pa) {
        core_errf(x->err, "out of memory for %d pictures", n);
        goto out;
    }
    if (adversarial(x, x->x, x->y, n, 0, xadv))
        goto out;
    core_model_predict(x->m, x->x, n, pc);
    core_model_predict(x->m, xadv, n, pa);
    /* The perturbation, grey at zero and black/white at -eps/+eps. */
    float scale = a.eps > 0 ? a.eps : 1.0f;
    if (a.norm == CORE_NORM_L2) {
        scale = 1e-12f;
        for (size_t p = 0; p < len; p++)
            scale = fmaxf(scale, fabsf(xadv[p] - x->x[p]));
    }
    for (size_t p = 0; p < len; p++)
        delta[p] = 0.5f + 0.5f * (xadv[p] - x->x[p]) / scale;
    fprintf(idx->f, "# %s at eps %g; perturbation.png: grey 0, white +%g, black -%g; %d to a row\n"
                    "index\tlabel\tclean_pred\tadversarial_pred\tlinf\n",
            attack, (double)a.eps, (double)scale, (double)scale, PER_ROW);
    for (int i = 0; i < n; i++) {
        float linf = 0.0f;
        for (size_t p = 0; p < dim; p++)
            linf = fmaxf(linf, fabsf(xadv[i * dim + p] - x->x[i * dim + p]));
        fprintf(idx->f, "%d\t%s\t%s\t%s\t%.4f\n", i, class_name(x, x->y[i]), class_name(x, pc[i]),
                class_name(x, pa[i]), (double)linf);
    }
    if (grid_of(x, "clean.png", x->x, n, PER_ROW) ||
        grid_of(x, "adversarial.png", xadv, n, PER_ROW) ||
        grid_of(x, "perturbation.png", delta, n, PER_ROW))
        goto out;
    rc = 0;
out:
    core_free(xadv);
    core_free(delta);
    core_free(pc);
    core_free(pa);
    return rc;
}

/* The colour bar of every heat map: 0 on the left, the map's maximum on
 * the right. */
static int legend(const advd_extras *x)
{
    core_canvas cv;
    enum { W = 256, H = 16 };
    float bar[H * W];
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            bar[i * W + j] = (float)j / (W - 1);
    if (core_canvas_init(&cv, 1, 1, H, W, 1, x->err))
        return -1;
    core_canvas_heat(&cv, 0, 0, bar, H, W);
    int rc = send_canvas(x, "legend.png", &cv);
    core_canvas_free(&cv);
    return rc;
}

static int images_explained(const advd_extras *x, core_explain_method method, int n,
                            text_buf *idx)
{
    const core_shape s = x->m->in;
    const size_t dim = core_shape_size(s), plane = (size_t)s.h * s.w;
    const core_explain_cfg cfg = explain_cfg(x, method);
    float *attr = core_alloc(sizeof(float) * dim * n), *map = core_alloc(sizeof(float) * plane * n);
    int *pred = core_alloc(sizeof(int) * n), rc = -1, per_row = PER_ROW / 2;
    /* The surrogates' pictures also say how well each fit: their R^2. */
    const int surrogate = method == CORE_EXPLAIN_GAUSSIAN || method == CORE_EXPLAIN_LIME;
    double *r2 = malloc(sizeof(double) * n);
    core_canvas cv = {0};
    char name[32];
    if (!attr || !map || !pred || !r2) {
        core_errf(x->err, "out of memory for %d pictures", n);
        goto out;
    }
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        int cls[k];
        const int *explained = explained_classes(x, cls, k);
        if (explained_maps(x, &cfg, explained, off, k, attr + dim * off, pred + off, r2 + off,
                           NULL) ||
            stopped(x))
            goto out;
    }
    core_explain_map(attr, n, s, map);
    int cols = n < per_row ? n : per_row;
    if (core_canvas_init(&cv, (n + cols - 1) / cols, 2 * cols, s.h, s.w, zoom_of(s), x->err))
        goto out;
    fprintf(idx->f, "# %s of the %s of %s; each example is its input beside its heat map "
                    "(legend.png: black 0 ... white the map's maximum); %d to a row\n"
                    "index\tlabel\tpred\texplained\trow\tcolumn\tmax%s\n",
            core_explain_method_name(method),
            surrogate ? core_surrogate_target_name(cfg.sur.target) : "logit",
            x->es->explain_class < 0 ? "the predicted class" : "the class asked for", cols,
            surrogate ? "\tr2" : "");
    for (int i = 0; i < n; i++) {
        float mx = 0.0f;
        for (size_t p = 0; p < plane; p++)
            mx = fmaxf(mx, map[i * plane + p]);
        core_canvas_image(&cv, i / cols, 2 * (i % cols), x->x + dim * i, s);
        core_canvas_heat(&cv, i / cols, 2 * (i % cols) + 1, map + plane * i, s.h, s.w);
        fprintf(idx->f, "%d\t%s\t%s\t%s\t%d\t%d\t%.6g", i, class_name(x, x->y[i]),
                class_name(x, pred[i]),
                class_name(x, x->es->explain_class < 0 ? pred[i] : x->es->explain_class), i / cols,
                2 * (i % cols), (double)mx);
        if (surrogate)
            fprintf(idx->f, "\t%.4f", r2[i]);
        fputc('\n', idx->f);
    }
    snprintf(name, sizeof name, "%s.png", core_explain_method_name(method));
    rc = send_canvas(x, name, &cv) || legend(x) ? -1 : 0;
out:
    core_canvas_free(&cv);
    free(r2);
    core_free(attr);
    core_free(map);
    core_free(pred);
    return rc;
}

/* The first test example under every corruption (rows) at severities 0..5. */
static int images_corruptions(const advd_extras *x, text_buf *idx)
{
    const core_shape s = x->m->in;
    const size_t dim = core_shape_size(s);
    float *img = core_alloc(sizeof(float) * dim);
    core_canvas cv = {0};
    int rc = -1;
    if (!img || core_canvas_init(&cv, CORE_NCORRUPTIONS, CORE_SEVERITIES + 1, s.h, s.w,
                                 zoom_of(s), x->err)) {
        if (!img)
            core_errf(x->err, "out of memory");
        goto out;
    }
    fprintf(idx->f, "# test example 0 (label %s): its prediction under each corruption (a row) "
                    "at severities 0 (clean) to %d (the columns)\nrow\tcorruption",
            class_name(x, x->y[0]), CORE_SEVERITIES);
    for (int sev = 0; sev <= CORE_SEVERITIES; sev++)
        fprintf(idx->f, "\tseverity_%d", sev);
    fputc('\n', idx->f);
    for (int c = 0; c < CORE_NCORRUPTIONS; c++) {
        fprintf(idx->f, "%d\t%s", c, core_corruption_name((core_corruption)c));
        for (int sev = 0; sev <= CORE_SEVERITIES; sev++) {
            int pred;
            if (core_corrupt((core_corruption)c, sev, x->x, img, 1, s, x->es->seed,
                             CORE_EVAL_STREAM_CORRUPT + ((uint64_t)(c * 8 + sev) << 32), x->err))
                goto out;
            core_model_predict(x->m, img, 1, &pred);
            core_canvas_image(&cv, c, sev, img, s);
            fprintf(idx->f, "\t%s", class_name(x, pred));
        }
        fputc('\n', idx->f);
    }
    rc = send_canvas(x, "corruptions.png", &cv);
out:
    core_canvas_free(&cv);
    core_free(img);
    return rc;
}

/* ---------------------------------------------------------------- units */

/* The first convolution's filters, one tile each, 8 to a row. */
static int units_filters(const advd_extras *x, text_buf *idx)
{
    const core_model *m = x->m;
    core_shape t;
    int count;
    float *tiles = core_alloc(sizeof(float) * m->nparams);   /* more than enough */
    core_canvas cv = {0};
    int rc = -1;
    if (!tiles)
        return core_errf(x->err, "out of memory for the filters");
    if (core_unit_filters(m, tiles, &t, &count, x->err))
        goto out;
    const int cols = count < PER_ROW ? count : PER_ROW;
    if (core_canvas_init(&cv, (count + cols - 1) / cols, cols, t.h, t.w, zoom_of(t), x->err))
        goto out;
    for (int f = 0; f < count; f++)
        core_canvas_image(&cv, f / cols, f % cols, tiles + core_shape_size(t) * f, t);
    fprintf(idx->f, "# filters.png: the first convolution's %d filters (%dx%d), %d to a row, "
                    "each scaled on its own (grey 0, white +max|w|, black -max|w|)\n",
            count, t.h, t.w, cols);
    rc = send_canvas(x, "filters.png", &cv);
out:
    core_canvas_free(&cv);
    core_free(tiles);
    return rc;
}

/* Scores (n x C) of layer over the evaluated examples. */
static int unit_scores(const advd_extras *x, int layer, float *score)
{
    const size_t dim = core_shape_size(x->m->in);
    const int c = x->m->layers[layer].out.c;
    for (int off = 0; off < x->n; off += x->batch) {
        core_unit_scores(x->m, layer, x->x + dim * off, batch_of(x, off, x->n),
                         score + (size_t)c * off, NULL);
        if (stopped(x))
            return -1;
    }
    return 0;
}

/* top.png: channel ch's k most activating examples in row ch, each under
 * its activation plane (the same scale along a row). */
static int units_top(const advd_extras *x, int layer, const char *lname, int nch, text_buf *idx)
{
    const core_shape s = x->m->in, o = x->m->layers[layer].out;
    const size_t dim = core_shape_size(s), plane = (size_t)o.h * o.w;
    const int k = x->es->units_k < x->n ? x->es->units_k : x->n;
    float *score = core_alloc(sizeof(float) * o.c * x->n), *act = core_alloc(sizeof(float) * o.c * plane);
    float *rgb = core_alloc(sizeof(float) * 3 * s.h * s.w), *one = core_alloc(sizeof(float) * o.c);
    int *top = core_alloc(sizeof(int) * (k > 0 ? k : 1)), rc = -1;
    core_canvas cv = {0};
    if (!score || !act || !rgb || !one || !top) {
        core_errf(x->err, "out of memory for the top examples of %d channels", nch);
        goto out;
    }
    if (unit_scores(x, layer, score) ||
        core_canvas_init(&cv, nch, k, s.h, s.w, zoom_of(s), x->err))
        goto out;
    fprintf(idx->f, "# top.png: row c shows the %d of %d test examples whose mean activation of "
                    "%s channel c is largest, each under its activation map (hot colours, "
                    "scaled to the row's largest value)\nchannel\trank\tindex\tlabel\tmean\n",
            k, x->n, lname);
    for (int c = 0; c < nch; c++) {
        float amax = 1e-12f;
        core_unit_top(score + c, x->n, o.c, k, top);
        for (int r = 0; r < k; r++) {   /* the row's scale first */
            core_unit_scores(x->m, layer, x->x + dim * top[r], 1, one, act);
            for (size_t p = 0; p < plane; p++)
                amax = fmaxf(amax, act[c * plane + p]);
        }
        for (int r = 0; r < k; r++) {
            const float *ex = x->x + dim * top[r];
            core_unit_scores(x->m, layer, ex, 1, one, act);
            core_unit_overlay(ex, s, act + c * plane, o.h, o.w, amax, rgb);
            core_canvas_image(&cv, c, r, rgb, (core_shape){3, s.h, s.w});
            fprintf(idx->f, "%d\t%d\t%d\t%s\t%.6g\n", c, r, top[r], class_name(x, x->y[top[r]]),
                    (double)score[(size_t)o.c * top[r] + c]);
        }
    }
    rc = send_canvas(x, "top.png", &cv);
out:
    core_canvas_free(&cv);
    core_free(score);
    core_free(act);
    core_free(rgb);
    core_free(one);
    core_free(top);
    return rc;
}

/* maximise_LAYER_C.png, one per channel, batch by batch. */
static int units_maximise(const advd_extras *x, int layer, const char *lname, int nch,
                          text_buf *idx)
{
    const core_shape s = x->m->in;
    const size_t dim = core_shape_size(s);
    core_maximise_cfg mc = core_maximise_defaults();
    float *img = core_alloc(sizeof(float) * dim * x->batch);
    double start[x->batch], end[x->batch];
    int rc = -1;
    mc.steps = x->es->units_steps;
    mc.seed = x->es->seed;
    if (!img)
        return core_errf(x->err, "out of memory for maximising %d channels", nch);
    fprintf(idx->f, "# maximise_%s_C.png: an input that raises the mean activation of %s "
                    "channel C, by %d steps of gradient ascent from grey (L2 decay, jitter, "
                    "blur)\nchannel\tmean_at_start\tmean_at_end\n",
            lname, lname, mc.steps);
    for (int c0 = 0; c0 < nch; c0 += x->batch) {
        int k = batch_of(x, c0, nch);
        if (core_unit_maximise(&mc, x->m, layer, c0, k, img, start, end, x->err) || stopped(x))
            goto out;
        for (int j = 0; j < k; j++) {
            char name[64];
            core_canvas cv;
            if (core_canvas_init(&cv, 1, 1, s.h, s.w, zoom_of(s), x->err))
                goto out;
            core_canvas_image(&cv, 0, 0, img + dim * j, s);
            snprintf(name, sizeof name, "maximise_%s_%d.png", lname, c0 + j);
            int sent = send_canvas(x, name, &cv);
            core_canvas_free(&cv);
            if (sent)
                goto out;
            fprintf(idx->f, "%d\t%.6g\t%.6g\n", c0 + j, start[j], end[j]);
        }
    }
    rc = 0;
out:
    core_free(img);
    return rc;
}

/* `advctl images --units LAYER`: filters, top examples, maximisation of
 * the first n channels of the layer. */
static int images_units(const advd_extras *x, int n, text_buf *idx)
{
    const char *lname = x->es->units_layer;
    int layer;
    if (core_unit_layer_find(x->m, lname, &layer, x->err))
        return -1;
    const int c = x->m->layers[layer].out.c, nch = n < c ? n : c;
    fprintf(idx->f, "# units of %s: channels 0 to %d of %d\n", lname, nch - 1, c);
    return units_filters(x, idx) || units_top(x, layer, lname, nch, idx) ||
                   units_maximise(x, layer, lname, nch, idx)
               ? -1
               : 0;
}

/* The method behind a heat-map picture kind. */
static core_explain_method method_of_images(int kind)
{
    static const struct {
        int kind;
        core_explain_method method;
    } map[] = {{ADV_IMAGES_SALIENCY, CORE_EXPLAIN_SALIENCY},
               {ADV_IMAGES_SMOOTHGRAD, CORE_EXPLAIN_SMOOTHGRAD},
               {ADV_IMAGES_IG, CORE_EXPLAIN_IG},
               {ADV_IMAGES_GUIDED, CORE_EXPLAIN_GUIDED},
               {ADV_IMAGES_GAUSSIAN, CORE_EXPLAIN_GAUSSIAN},
               {ADV_IMAGES_LIME, CORE_EXPLAIN_LIME}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].kind == kind)
            return map[i].method;
    return CORE_EXPLAIN_SALIENCY;
}

int advd_extras_images(const advd_extras *x)
{
    const int kind = x->es->images, n = x->es->images_n < x->n ? x->es->images_n : x->n;
    text_buf idx = {0};
    int rc;
    if (kind == ADV_IMAGES_NONE || n < 1)
        return 0;
    if (!(idx.f = open_memstream(&idx.text, &idx.len)))
        return core_errf(x->err, "out of memory");
    if (kind == ADV_IMAGES_ADVERSARIAL)
        rc = images_adversarial(x, n, &idx);
    else if (kind == ADV_IMAGES_CORRUPTIONS)
        rc = images_corruptions(x, &idx);
    else if (kind == ADV_IMAGES_UNITS)
        rc = images_units(x, x->es->images_n, &idx);
    else
        rc = images_explained(x, method_of_images(kind), n, &idx);
    fclose(idx.f);
    if (rc == 0)
        rc = send_file(x, "index.tsv", (const uint8_t *)idx.text, idx.len);
    free(idx.text);
    return rc;
}
