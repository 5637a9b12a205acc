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
 *   corruptions   {"n", "clean_accuracy", "mean_accuracy", "corruptions":
 *                  [{"name", "levels": [5], "accuracy": [5]}]}
 *   explanations  {"n", "ig": {"steps", "baseline": "zeros", "mean_abs_error",
 *                  "mean_abs_delta", "rel_error"}, "smoothgrad": {"samples",
 *                  "sigma"}, "fragility": {"map": "saliency", "eps", "topk_frac",
 *                  "k", "tries", "n", "random": F, "adversarial": F}} with
 *                  F = {"topk", "spearman", "com_shift"}
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
#include "core/explain.h"
#include "core/image.h"
#include "core/loss.h"
#include "core/rng.h"

/* Streams of the random numbers drawn here, apart from the attacks'. */
#define STREAM_ADV (CORE_STREAM_USER + (1ULL << 40))
#define STREAM_CORRUPT (CORE_STREAM_USER + (2ULL << 40))
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

/* out = adversarial versions of n examples of in. */
static int adversarial(const advd_extras *x, const float *in, const int *y, int n, float *out)
{
    const char *name;
    const core_attack_cfg a = adv_attack(x, &name);
    const size_t dim = core_shape_size(x->m->in);
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        if (core_attack_run(&a, x->m, x->ws, in + dim * off, y + off, NULL, k,
                            STREAM_ADV + (uint64_t)off, out + dim * off, NULL, x->err) ||
            stopped(x))
            return -1;
    }
    return 0;
}

/* logits (n x classes) of n examples. */
static void logits_of(const advd_extras *x, const float *in, int n, float *logits)
{
    const size_t dim = core_shape_size(x->m->in), c = (size_t)x->m->nclass;
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        memcpy(logits + c * off, core_model_forward(x->m, in + dim * off, k),
               sizeof(float) * c * k);
    }
}

static void predictions(const advd_extras *x, const float *in, int n, int *pred)
{
    const size_t dim = core_shape_size(x->m->in);
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        const float *z = core_model_forward(x->m, in + dim * off, k);
        for (int i = 0; i < k; i++)
            pred[off + i] = core_argmax(z + (size_t)i * x->m->nclass, x->m->nclass);
    }
}

/* How many of n examples the model classifies as y. */
static int correct_of(const advd_extras *x, const float *in, const int *y, int n)
{
    const size_t dim = core_shape_size(x->m->in);
    int correct = 0;
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        correct += core_count_correct(core_model_forward(x->m, in + dim * off, k), y + off, k,
                                      x->m->nclass);
    }
    return correct;
}

static void send_report(const advd_extras *x, const char *kind, json_t *data)
{
    x->send(x->ctx, json_pack("{s:s, s:s, s:o}", "type", "report", "kind", kind, "data", data));
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
    float *xb = NULL, *logits = NULL;
    int *yb = NULL, rc = -1;
    const size_t dim = core_shape_size(x->m->in);
    if (core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TRAIN, ts->train_limit, &tr, x->err) ||
        core_data_split_make(tr.n, ts->cfg.val_size < tr.n ? ts->cfg.val_size : 0, ts->cfg.seed,
                             &split, x->err))
        goto out;
    const int *idx = split.nval ? split.val : split.train;
    int n = split.nval ? split.nval : (split.ntrain < FIT_FALLBACK ? split.ntrain : FIT_FALLBACK);
    xb = core_alloc(sizeof(float) * dim * x->batch);
    yb = core_alloc(sizeof(int) * n);
    logits = core_alloc(sizeof(float) * (size_t)x->m->nclass * n);
    if (!xb || !yb || !logits) {
        core_errf(x->err, "out of memory for %d validation examples", n);
        goto out;
    }
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        core_dataset_gather(&tr, idx + off, k, xb, yb + off);
        logits_of(x, xb, k, logits + (size_t)x->m->nclass * off);
    }
    *t = core_temperature_fit(logits, yb, n, x->m->nclass);
    *fit_on = split.nval ? "validation" : "train";
    *fit_n = n;
    rc = 0;
out:
    core_free(xb);
    core_free(yb);
    core_free(logits);
    core_data_split_free(&split);
    core_dataset_free(&tr);
    return rc;
}

int advd_extras_calibration(const advd_extras *x)
{
    const size_t dim = core_shape_size(x->m->in), c = (size_t)x->m->nclass;
    const int own = !x->adv_logits;   /* a suite: attack here */
    float *clean = core_alloc(sizeof(float) * c * x->n);
    float *adv = own ? core_alloc(sizeof(float) * c * x->n) : NULL;
    float *xadv = own ? core_alloc(sizeof(float) * dim * x->n) : NULL;
    const char *fit_on, *attack;
    double t;
    int fit_n, rc = -1;
    if (!clean || (own && (!adv || !xadv))) {
        core_errf(x->err, "out of memory for the calibration of %d examples", x->n);
        goto out;
    }
    if (fit_temperature(x, &t, &fit_on, &fit_n) ||
        (own && adversarial(x, x->x, x->y, x->n, xadv)))
        goto out;
    logits_of(x, x->x, x->n, clean);
    if (own)
        logits_of(x, xadv, x->n, adv);
    adv_attack(x, &attack);
    send_report(x, "calibration",
                json_pack("{s:f, s:s, s:i, s:s, s:f, s:o, s:o}", "temperature", t, "fit_on",
                          fit_on, "fit_n", fit_n, "attack", attack, "eps",
                          adv_float_json(x->es->eps[0]), "clean",
                          before_after(clean, x->y, x->n, (int)c, t), "adversarial",
                          before_after(own ? adv : x->adv_logits, x->y, x->n, (int)c, t)));
    rc = 0;
out:
    core_free(clean);
    core_free(adv);
    core_free(xadv);
    return rc;
}

/* ---------------------------------------------------------- corruptions */

/* Correctly classified of the n examples under corruption c at severity. */
static int corrupted_correct(const advd_extras *x, core_corruption c, int severity, float *buf,
                             int *correct)
{
    const size_t dim = core_shape_size(x->m->in);
    *correct = 0;
    for (int off = 0; off < x->n; off += x->batch) {
        int k = batch_of(x, off, x->n);
        uint64_t stream = STREAM_CORRUPT + ((uint64_t)(c * 8 + severity) << 32) + (uint64_t)off;
        if (core_corrupt(c, severity, x->x + dim * off, buf, k, x->m->in, x->es->seed, stream,
                         x->err))
            return -1;
        *correct += correct_of(x, buf, x->y + off, k);
    }
    return stopped(x);
}

int advd_extras_corruptions(const advd_extras *x)
{
    const size_t dim = core_shape_size(x->m->in);
    float *buf = core_alloc(sizeof(float) * dim * x->batch);
    int rc = -1;
    json_t *list = json_array();
    double total = 0.0;
    if (!buf) {
        core_errf(x->err, "out of memory for the corruptions of %d examples", x->n);
        goto out;
    }
    for (int c = 0; c < CORE_NCORRUPTIONS; c++) {
        json_t *levels = json_array(), *acc = json_array();
        for (int s = 1; s <= CORE_SEVERITIES; s++) {
            int correct;
            if (corrupted_correct(x, (core_corruption)c, s, buf, &correct)) {
                json_decref(levels);
                json_decref(acc);
                goto out;
            }
            double a = x->n ? (double)correct / x->n : 0.0;
            total += a;
            json_array_append_new(levels, json_real(core_corruption_level((core_corruption)c, s)));
            json_array_append_new(acc, json_real(a));
        }
        json_array_append_new(list, json_pack("{s:s, s:o, s:o}", "name",
                                              core_corruption_name((core_corruption)c), "levels",
                                              levels, "accuracy", acc));
    }
    send_report(x, "corruptions",
                json_pack("{s:i, s:f, s:f, s:O}", "n", x->n, "clean_accuracy", x->clean_acc,
                          "mean_accuracy",
                          total / (CORE_NCORRUPTIONS * CORE_SEVERITIES), "corruptions", list));
    rc = 0;
out:
    json_decref(list);
    core_free(buf);
    return rc;
}

/* --------------------------------------------------------- explanations */

static core_explain_cfg explain_cfg(const advd_extras *x, core_explain_method method)
{
    core_explain_cfg c = core_explain_defaults(method);
    c.samples = x->es->smoothgrad_samples;
    c.sigma = x->es->smoothgrad_sigma;
    c.steps = x->es->ig_steps;
    c.seed = x->es->seed;
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

int advd_extras_explanations(const advd_extras *x)
{
    const size_t dim = core_shape_size(x->m->in);
    const int n = x->es->explain_limit < x->n ? x->es->explain_limit : x->n;
    float *attr = core_alloc(sizeof(float) * dim * x->batch);
    float *zero = core_alloc(sizeof(float) * dim * x->batch);
    double ig_err = 0.0, ig_delta = 0.0, sum[6] = {0};
    core_fragility_cfg fc = core_fragility_defaults();
    core_fragility f = {0};
    int used = 0, rc = -1;
    fc.eps = x->es->fragility_eps;
    fc.seed = x->es->seed;
    if (!attr || !zero) {
        core_errf(x->err, "out of memory for explaining %d examples", n);
        goto out;
    }
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        const float *in = x->x + dim * off;
        if (ig_batch(x, in, k, attr, zero, &ig_err, &ig_delta) ||
            core_fragility_measure(&fc, x->m, in, k, STREAM_EXPLAIN + (uint64_t)off, &f, x->err) ||
            stopped(x))
            goto out;
        double v[6] = {f.topk_random, f.spearman_random, f.com_random,
                       f.topk_adv, f.spearman_adv, f.com_adv};
        for (int i = 0; i < 6; i++)
            sum[i] += v[i] * f.n;
        used += f.n;
    }
    for (int i = 0; i < 6 && used; i++)
        sum[i] /= used;
    json_t *frag = json_pack("{s:s, s:f, s:f, s:i, s:i, s:i, s:o, s:o}", "map", "saliency", "eps",
                             adv_float_json(fc.eps), "topk_frac", adv_float_json(fc.topk), "k",
                             f.k, "tries", fc.tries, "n", used,
                             "random", fragility_json(sum[0], sum[1], sum[2]),
                             "adversarial", fragility_json(sum[3], sum[4], sum[5]));
    send_report(x, "explanations",
                json_pack("{s:i, s:{s:i, s:s, s:f, s:f, s:f}, s:{s:i, s:f}, s:o}", "n", n, "ig",
                          "steps", x->es->ig_steps, "baseline", "zeros", "mean_abs_error",
                          n ? ig_err / n : 0.0, "mean_abs_delta", n ? ig_delta / n : 0.0,
                          "rel_error", ig_delta > 0 ? ig_err / ig_delta : 0.0, "smoothgrad",
                          "samples", x->es->smoothgrad_samples, "sigma",
                          adv_float_json(x->es->smoothgrad_sigma), "fragility", frag));
    rc = 0;
out:
    core_free(attr);
    core_free(zero);
    return rc;
}

/* ------------------------------------------------------------- pictures */

static int send_file(const advd_extras *x, const char *name, const uint8_t *data, size_t len)
{
    char *b64 = adv_base64_encode(data, len, NULL);
    if (!b64)
        return core_errf(x->err, "out of memory for '%s'", name);
    x->send(x->ctx, json_pack("{s:s, s:s, s:s}", "type", "image", "name", name, "data", b64));
    free(b64);
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
    if (adversarial(x, x->x, x->y, n, xadv))
        goto out;
    predictions(x, x->x, n, pc);
    predictions(x, xadv, n, pa);
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
    core_canvas cv = {0};
    char name[32];
    if (!attr || !map || !pred) {
        core_errf(x->err, "out of memory for %d pictures", n);
        goto out;
    }
    for (int off = 0; off < n; off += x->batch) {
        int k = batch_of(x, off, n);
        int cls[k];
        if (core_explain(&cfg, x->m, x->x + dim * off, explained_classes(x, cls, k), k,
                         STREAM_EXPLAIN + (uint64_t)off, attr + dim * off, pred + off, x->err) ||
            stopped(x))
            goto out;
    }
    core_explain_map(attr, n, s, map);
    int cols = n < per_row ? n : per_row;
    if (core_canvas_init(&cv, (n + cols - 1) / cols, 2 * cols, s.h, s.w, zoom_of(s), x->err))
        goto out;
    fprintf(idx->f, "# %s of the logit of %s; each example is its input beside its heat map "
                    "(legend.png: black 0 ... white the map's maximum); %d to a row\n"
                    "index\tlabel\tpred\texplained\trow\tcolumn\tmax\n",
            core_explain_method_name(method),
            x->es->explain_class < 0 ? "the predicted class" : "the class asked for", cols);
    for (int i = 0; i < n; i++) {
        float mx = 0.0f;
        for (size_t p = 0; p < plane; p++)
            mx = fmaxf(mx, map[i * plane + p]);
        core_canvas_image(&cv, i / cols, 2 * (i % cols), x->x + dim * i, s);
        core_canvas_heat(&cv, i / cols, 2 * (i % cols) + 1, map + plane * i, s.h, s.w);
        fprintf(idx->f, "%d\t%s\t%s\t%s\t%d\t%d\t%.6g\n", i, class_name(x, x->y[i]),
                class_name(x, pred[i]),
                class_name(x, x->es->explain_class < 0 ? pred[i] : x->es->explain_class), i / cols,
                2 * (i % cols), (double)mx);
    }
    snprintf(name, sizeof name, "%s.png", core_explain_method_name(method));
    rc = send_canvas(x, name, &cv) || legend(x) ? -1 : 0;
out:
    core_canvas_free(&cv);
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
                             STREAM_CORRUPT + ((uint64_t)(c * 8 + sev) << 32), x->err))
                goto out;
            predictions(x, img, 1, &pred);
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
    else
        rc = images_explained(x, kind == ADV_IMAGES_SALIENCY     ? CORE_EXPLAIN_SALIENCY
                                 : kind == ADV_IMAGES_SMOOTHGRAD ? CORE_EXPLAIN_SMOOTHGRAD
                                                                 : CORE_EXPLAIN_IG,
                              n, &idx);
    fclose(idx.f);
    if (rc == 0)
        rc = send_file(x, "index.tsv", (const uint8_t *)idx.text, idx.len);
    free(idx.text);
    return rc;
}
