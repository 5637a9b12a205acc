/*
 * drift_tasks.c - what a drift monitor computes, run off the loop on
 * score.h's queue: scoring images, a monitor's reference and its
 * corruption profiles, a full window's drift tests and hint.
 *
 * Reference format (monitors.reference; native byte order, the daemon's
 * own): i32 n, c, d; f32 logits[n][c]; f32 features[n][d]; u8 correct[n].
 * Pending rows (monitors.pending): f32 [logits c, features d] per example.
 * Profiles (monitors.profiles): [{"name": "contrast", "severity": 3,
 * "accuracy": A, "threshold": its ATC threshold, "profile":
 * [core_drift_profile]}...], "clean" first, "pgd" (at the job's eps, 10
 * steps) last when the job has an eps: the labelled shifts of the hint
 * and of the shift-matched ATC (core_drift_matched_atc).
 */
#include "daemon/drift_tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/attack.h"
#include "core/corrupt.h"
#include "core/rng.h"

#define BATCH 128
#define PROFILE_N 500          /* held-out examples each profile is made of */
#define PGD_STEPS 10
#define STREAM_PROFILE (CORE_STREAM_USER + (5ULL << 40))
#define STREAM_PGD (CORE_STREAM_USER + (6ULL << 40))

/* ------------------------------------------------------------ scoring */

static int scores_alloc(advd_scores *s, int n, const core_model *m, char *err)
{
    s->n = n;
    s->c = m->nclass;
    s->d = core_drift_feat_dim(m);
    s->logits = malloc(sizeof(float) * (size_t)n * s->c);
    s->feat = malloc(sizeof(float) * (size_t)n * s->d);
    return s->logits && s->feat ? 0 : core_errf(err, "out of memory for %d outputs", n);
}

void advd_scores_free(advd_scores *s)
{
    free(s->logits);
    free(s->feat);
    s->logits = s->feat = NULL;
}

/* Outputs of n examples given as bytes (pixels / 255). */
static int score_bytes(core_model *m, const uint8_t *px, int n, advd_scores *s, char *err)
{
    const size_t dim = core_shape_size(m->in);
    float *x = malloc(sizeof(float) * dim * BATCH);
    if (!x || scores_alloc(s, n, m, err)) {
        free(x);
        return x ? -1 : core_errf(err, "out of memory for a batch");
    }
    for (int off = 0; off < n; off += BATCH) {
        int k = n - off < BATCH ? n - off : BATCH;
        for (size_t i = 0; i < dim * k; i++)
            x[i] = px[dim * off + i] * (1.0f / 255.0f);
        core_drift_outputs(m, x, k, s->logits + (size_t)s->c * off, s->feat + (size_t)s->d * off);
    }
    free(x);
    return 0;
}

void advd_predict_run(advd_task *task)
{
    advd_predict_task *t = (advd_predict_task *)task;
    core_model *m = advd_task_model(task, t->ckpt.ckpt_id, t->ckpt.crc, t->ckpt.state,
                                    t->ckpt.len, BATCH, t->err);
    t->rc = -1;
    if (!m)
        return;
    if (core_shape_size(m->in) * (size_t)t->n != t->npixels) {
        core_errf(t->err, "invalid 'pixels': %zu bytes for %d images, but the model takes "
                  "images of %d x %d x %d (channels x height x width, %zu bytes each)",
                  t->npixels, t->n, m->in.c, m->in.h, m->in.w, core_shape_size(m->in));
        return;
    }
    core_dataset names = {0};
    if (core_dataset_load(t->spec.train.fmt, t->spec.train.data_dir, CORE_SPLIT_TEST, 1, &names,
                          t->err) == 0) {
        for (int j = 0; j < m->nclass && j < CORE_MAX_CLASSES; j++)
            snprintf(t->names[j], sizeof t->names[j], "%s", names.class_names[j]);
        core_dataset_free(&names);
    } else {
        for (int j = 0; j < m->nclass && j < CORE_MAX_CLASSES; j++)
            snprintf(t->names[j], sizeof t->names[j], "%d", j);
    }
    t->rc = score_bytes(m, t->pixels, t->n, &t->out, t->err);
}

/* ---------------------------------------------------------- reference */

/* The held-out split the training used (the same seeded split), or its
 * first examples when it had none. */
static int held_out(const adv_train_spec *ts, core_dataset *tr, core_data_split *split,
                    const int **idx, int *n, char *err)
{
    if (core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TRAIN, ts->train_limit, tr, err) ||
        core_data_split_make(tr->n, ts->cfg.val_size < tr->n ? ts->cfg.val_size : 0,
                             ts->cfg.seed, split, err))
        return -1;
    *idx = split->nval ? split->val : split->train;
    *n = split->nval ? split->nval : (split->ntrain < 1000 ? split->ntrain : 1000);
    return 0;
}

static int correct_count(const float *logits, const int *y, int n, int c, uint8_t *correct)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        int top = 0;
        for (int j = 1; j < c; j++)
            top = z[j] > z[top] ? j : top;
        if (correct)
            correct[i] = top == y[i];
        k += top == y[i];
    }
    return k;
}

/* A labelled set's profile, accuracy and ATC threshold (core_drift_shift). */
static json_t *profile_json(const char *name, int severity, const float *logits, const int *y,
                            int n, int c, double T)
{
    float p[2 * CORE_PROFILE_BINS + CORE_MAX_CLASSES + 1];
    double threshold = 0, accuracy = 0;
    core_drift_profile(logits, n, c, T, p);
    core_drift_atc_of(logits, y, n, c, T, &threshold, &accuracy);
    json_t *a = json_array();
    for (int i = 0; i < core_drift_profile_len(c); i++)
        json_array_append_new(a, json_real(p[i]));
    return json_pack("{s:s, s:i, s:f, s:f, s:o}", "name", name, "severity", severity, "accuracy",
                     accuracy, "threshold", threshold, "profile", a);
}

/* Every corruption at every severity, then PGD at eps, on the first n
 * held-out examples x. */
static int profiles(advd_reference_task *t, core_model *m, const float *x, const int *y, int n,
                    const float *clean_logits, char *err)
{
    const size_t dim = core_shape_size(m->in), c = (size_t)m->nclass;
    float *xc = malloc(sizeof(float) * dim * n), *lg = malloc(sizeof(float) * c * n);
    core_attack_ws *ws = NULL;
    int rc = -1;
    t->profiles = json_array();
    if (!xc || !lg) {
        core_errf(err, "out of memory for the corruption profiles");
        goto out;
    }
    json_array_append_new(t->profiles, profile_json("clean", 0, clean_logits, y, n, (int)c, t->T));
    for (int k = 0; k < CORE_NCORRUPTIONS; k++)
        for (int sev = 1; sev <= CORE_SEVERITIES; sev++) {
            if (core_corrupt((core_corruption)k, sev, x, xc, n, m->in, t->spec.train.cfg.seed,
                             STREAM_PROFILE + (uint64_t)(k * 8 + sev), err))
                goto out;
            core_drift_outputs(m, xc, n, lg, NULL);
            json_array_append_new(t->profiles,
                                  profile_json(core_corruption_name((core_corruption)k), sev, lg,
                                               y, n, (int)c, t->T));
        }
    const float eps = t->spec.train.cfg.eps;
    if (eps > 0) {
        core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, eps);
        a.steps = PGD_STEPS;
        a.seed = t->spec.train.cfg.seed;
        if (core_attack_ws_create(m, m->capacity, &ws, err))
            goto out;
        for (int off = 0; off < n; off += m->capacity) {
            int k = n - off < m->capacity ? n - off : m->capacity;
            if (core_attack_run(&a, m, ws, x + dim * off, y + off, NULL, k, STREAM_PGD + off,
                                xc + dim * off, NULL, err))
                goto out;
        }
        core_drift_outputs(m, xc, n, lg, NULL);
        json_array_append_new(t->profiles, profile_json("pgd", 0, lg, y, n, (int)c, t->T));
    }
    rc = 0;
out:
    core_attack_ws_free(ws);
    free(xc);
    free(lg);
    return rc;
}

/* The reference blob of n examples' outputs. */
static int reference_blob(advd_reference_task *t, const advd_scores *s, const int *y)
{
    const size_t n = (size_t)s->n, lc = sizeof(float) * n * s->c, ld = sizeof(float) * n * s->d;
    t->len = 12 + lc + ld + n;
    if (!(t->blob = malloc(t->len)))
        return core_errf(t->err, "out of memory for the reference");
    int32_t head[3] = {s->n, s->c, s->d};
    memcpy(t->blob, head, 12);
    memcpy(t->blob + 12, s->logits, lc);
    memcpy(t->blob + 12 + lc, s->feat, ld);
    t->accuracy = (double)correct_count(s->logits, y, s->n, s->c, t->blob + 12 + lc + ld) / n;
    return 0;
}

void advd_reference_run(advd_task *task)
{
    advd_reference_task *t = (advd_reference_task *)task;
    core_dataset tr = {0};
    core_data_split split = {0};
    advd_scores s = {0};
    const int *idx;
    int n, *y = NULL;
    float *x = NULL;
    t->rc = -1;
    core_model *m = advd_task_model(task, t->ckpt.ckpt_id, t->ckpt.crc, t->ckpt.state,
                                    t->ckpt.len, BATCH, t->err);
    if (!m || held_out(&t->spec.train, &tr, &split, &idx, &n, t->err))
        goto out;
    const size_t dim = core_shape_size(m->in);
    x = malloc(sizeof(float) * dim * n);
    y = malloc(sizeof(int) * n);
    if (!x || !y || scores_alloc(&s, n, m, t->err)) {
        core_errf(t->err, "out of memory for %d held-out examples", n);
        goto out;
    }
    core_dataset_gather(&tr, idx, n, x, y);
    core_drift_outputs(m, x, n, s.logits, s.feat);
    t->n = n;
    t->rc = reference_blob(t, &s, y) ||
            profiles(t, m, x, y, n < PROFILE_N ? n : PROFILE_N, s.logits, t->err);
out:
    advd_scores_free(&s);
    free(x);
    free(y);
    core_data_split_free(&split);
    core_dataset_free(&tr);
}

/* ------------------------------------------------------------- window */

int advd_reference_view(const uint8_t *blob, size_t len, core_drift_set *set,
                        const uint8_t **correct)
{
    int32_t h[3];
    if (len < 12)
        return -1;
    memcpy(h, blob, 12);
    if (h[0] < 2 || h[1] < 2 || h[1] > CORE_DRIFT_MAX_CLASSES || h[2] < 1 ||
        len != 12 + (sizeof(float) * (h[1] + h[2]) + 1) * (size_t)h[0])
        return -1;
    /* The blob is malloc'ed: its floats are aligned after the 12 bytes. */
    set->n = h[0];
    set->c = h[1];
    set->d = h[2];
    set->logits = (const float *)(blob + 12);
    set->feat = set->logits + (size_t)h[0] * h[1];
    *correct = (const uint8_t *)(set->feat + (size_t)h[0] * h[2]);
    return 0;
}

/* The monitor's profiles as shifts (their floats in *buf); their count. */
static int shifts_of(json_t *profiles, int c, core_drift_shift **out, float **buf)
{
    const int len = core_drift_profile_len(c), n = (int)json_array_size(profiles);
    *out = malloc(sizeof **out * (size_t)(n ? n : 1));
    *buf = malloc(sizeof(float) * (size_t)len * (n ? n : 1));
    if (!*out || !*buf)
        return 0;
    int k = 0;
    size_t i;
    json_t *e;
    json_array_foreach(profiles, i, e) {
        json_t *a = json_object_get(e, "profile");
        if ((int)json_array_size(a) != len)
            continue;
        float *p = *buf + (size_t)k * len;
        for (int j = 0; j < len; j++)
            p[j] = (float)json_real_value(json_array_get(a, j));
        (*out)[k++] = (core_drift_shift){p, json_real_value(json_object_get(e, "accuracy")),
                                         json_real_value(json_object_get(e, "threshold"))};
    }
    return k;
}

/* The nearest labelled shift: the hint and the shift-matched ATC. */
static void make_hint(advd_window_task *t, const float *logits, int n, int c)
{
    core_drift_shift *shifts;
    float *buf;
    int ns = shifts_of(t->profiles, c, &shifts, &buf);
    int k = core_drift_matched_atc(shifts, ns, logits, n, c, t->T, &t->atc_shift);
    free(shifts);
    free(buf);
    json_t *e = k >= 0 ? json_array_get(t->profiles, (size_t)k) : NULL;
    const char *name = json_string_value(json_object_get(e, "name"));
    int sev = (int)json_integer_value(json_object_get(e, "severity"));
    double acc = json_real_value(json_object_get(e, "accuracy"));
    if (k < 0)
        t->atc_shift = t->result.atc;
    if (!name || !strcmp(name, "clean") || !strcmp(name, "pgd"))
        snprintf(t->shift, sizeof t->shift, "%s", name ? name : "clean");
    else
        snprintf(t->shift, sizeof t->shift, "%s, severity %d", name, sev);
    if (!t->result.alarm) /* near the reference: the nearest profile means little */
        snprintf(t->hint, sizeof t->hint, "no drift");
    else if (!name || !strcmp(name, "clean"))
        snprintf(t->hint, sizeof t->hint, "closest: clean held-out inputs");
    else if (!strcmp(name, "pgd"))
        snprintf(t->hint, sizeof t->hint,
                 "closest: adversarial inputs (PGD at the job's eps; accuracy there %.2f): "
                 "mean confidence margin %.2f against %.2f on the reference",
                 acc, t->result.margin, t->result.ref_margin);
    else
        snprintf(t->hint, sizeof t->hint, "closest: %s (accuracy there %.2f)", t->shift, acc);
}

void advd_window_run(advd_task *task)
{
    advd_window_task *t = (advd_window_task *)task;
    core_drift_set ref;
    const uint8_t *correct;
    t->rc = -1;
    if (advd_reference_view(t->reference, t->reference_len, &ref, &correct)) {
        core_errf(t->err, "the monitor's reference is damaged: create the monitor again");
        return;
    }
    const int c = ref.c, d = ref.d, n = t->n;
    float *lg = malloc(sizeof(float) * (size_t)n * c), *ft = malloc(sizeof(float) * (size_t)n * d);
    if (!lg || !ft) {
        core_errf(t->err, "out of memory for a window of %d", n);
    } else {
        for (int i = 0; i < n; i++) {
            const float *row = t->rows + (size_t)i * (c + d);
            memcpy(lg + (size_t)i * c, row, sizeof(float) * c);
            memcpy(ft + (size_t)i * d, row + c, sizeof(float) * d);
        }
        core_drift_set win = {n, c, d, lg, ft};
        t->rc = core_drift_test(&ref, correct, &win, t->T, &t->cfg, &t->result, t->err);
        if (!t->rc)
            make_hint(t, lg, n, c);
    }
    free(lg);
    free(ft);
}
