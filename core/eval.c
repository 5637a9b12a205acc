/*
 * eval.c - robustness evaluation over a range of examples (eval.h): the
 * clean check, then the attack or suite at each eps, batch by batch,
 * recording each example's survival.
 */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loss.h"
#include "rng.h"
#include "train.h"

int core_eval_out_alloc(const core_eval_cfg *c, int n, int nclass, core_eval_out *o, char *err)
{
    memset(o, 0, sizeof *o);
    if (c->neps < 1 || c->neps > CORE_EVAL_EPS_MAX)
        return core_errf(err, "invalid eps count %d (1 to %d)", c->neps, CORE_EVAL_EPS_MAX);
    *o = (core_eval_out){.n = n, .neps = c->neps, .nclass = nclass};
    o->clean_ok = calloc((size_t)n + 1, 1);
    o->survival = calloc((size_t)n * (size_t)c->neps + 1, 1);
    if (c->keep_adv_logits && !c->use_suite)
        o->adv_logits = core_alloc(sizeof(float) * (size_t)nclass * (size_t)n + 1);
    if (!o->clean_ok || !o->survival || (c->keep_adv_logits && !c->use_suite && !o->adv_logits)) {
        core_eval_out_free(o);
        return core_errf(err, "out of memory for the results of %d examples", n);
    }
    if (o->adv_logits) /* zero outside a range: ranks' rows merge by a sum */
        memset(o->adv_logits, 0, sizeof(float) * (size_t)nclass * (size_t)n);
    return 0;
}

void core_eval_out_free(core_eval_out *o)
{
    free(o->clean_ok);
    free(o->survival);
    core_free(o->adv_logits);
    memset(o, 0, sizeof *o);
}

static void clean_check(core_model *m, const float *x, const int *y, int a, int k,
                        core_eval_out *o)
{
    const float *z = core_model_forward(m, x, k);
    for (int i = 0; i < k; i++)
        o->clean_ok[a + i] = core_argmax(z + (size_t)i * m->nclass, m->nclass) == y[i];
}

/* One batch [s, s + k) at eps index e. */
static int attack_batch(const core_eval_cfg *c, const core_suite *suite, const core_attack_cfg *a,
                        core_model *m, core_attack_ws *ws, const float *x, const int *y, int e,
                        int s, int k, float *x_adv, core_eval_out *o, char *err)
{
    uint64_t stream = CORE_STREAM_USER + ((uint64_t)e << 32) + (uint64_t)s;
    uint8_t *robust = core_eval_survival(o, e) + s;
    if (c->use_suite)
        return core_suite_run(suite, m, ws, x, y, k, stream, robust, NULL, err);
    if (core_attack_run(a, m, ws, x, y, NULL, k, stream, x_adv, robust, err))
        return -1;
    if (e == 0 && o->adv_logits) /* kept for calibration under attack */
        memcpy(o->adv_logits + (size_t)o->nclass * s, core_model_forward(m, x_adv, k),
               sizeof(float) * (size_t)o->nclass * k);
    return 0;
}

/* Batches [s0, b) at eps index e of the range that starts at a. */
static int eps_range(const core_eval_cfg *c, core_model *m, core_attack_ws *ws, const float *x,
                     const int *y, int s0, int b, int a, int e, const core_eval_hooks *h,
                     float *x_adv, core_eval_out *o, char *err)
{
    size_t dim = core_shape_size(m->in);
    core_suite suite;
    core_attack_cfg at = c->attack;
    at.eps = c->eps[e];
    at.seed = c->seed;
    if (c->use_suite && core_suite_preset(c->suite, c->eps[e], c->seed, &suite, err))
        return -1;
    for (int s = s0; s < b; s += c->batch) {
        int k = b - s < c->batch ? b - s : c->batch;
        if (attack_batch(c, &suite, &at, m, ws, x + dim * (size_t)s, y + s, e, s, k, x_adv, o,
                         err))
            return -1;
        if (h && h->on_batch && h->on_batch(h->ctx, e, s + k - a, b - a))
            return 1;
    }
    return 0;
}

int core_eval_range(const core_eval_cfg *c, core_model *m, core_attack_ws *ws, const float *x,
                    const int *y, int a, int b, const core_eval_hooks *h, core_eval_out *o,
                    char *err)
{
    return core_eval_range_from(c, m, ws, x, y, a, b, (core_eval_at){0, a}, h, o, err);
}

int core_eval_range_from(const core_eval_cfg *c, core_model *m, core_attack_ws *ws,
                         const float *x, const int *y, int a, int b, core_eval_at from,
                         const core_eval_hooks *h, core_eval_out *o, char *err)
{
    /* An empty range may sit anywhere: the last rank's, when there are
     * fewer batches than ranks. */
    if (c->batch < 1 || a < 0 || b > o->n || a > b || (a % c->batch && a != b))
        return core_errf(err, "invalid evaluation range [%d, %d) of %d examples in batches of %d",
                         a, b, o->n, c->batch);
    if (from.e < 0 || from.e > c->neps || from.s < a || from.s > b ||
        ((from.s - a) % c->batch && from.s != b))
        return core_errf(err, "invalid resume point: eps index %d, example %d of [%d, %d)",
                         from.e, from.s, a, b);
    size_t dim = core_shape_size(m->in);
    float *x_adv = core_alloc(sizeof(float) * dim * (size_t)c->batch);
    if (!x_adv)
        return core_errf(err, "out of memory for a batch of %d", c->batch);
    for (int s = a; s < b; s += c->batch) {
        int k = b - s < c->batch ? b - s : c->batch;
        clean_check(m, x + dim * (size_t)s, y + s, s, k, o);
    }
    int rc = 0;
    for (int e = from.e; e < c->neps && rc == 0; e++)
        rc = eps_range(c, m, ws, x, y, e == from.e ? from.s : a, b, a, e, h, x_adv, o, err);
    core_free(x_adv);
    return rc;
}

int core_eval_out_sum(core_eval_out *o, core_dist *d, char *err)
{
    size_t n = (size_t)o->n;
    if (core_dist_sum(d, o->clean_ok, n, CORE_DIST_U8, err) ||
        core_dist_sum(d, o->survival, n * (size_t)o->neps, CORE_DIST_U8, err))
        return -1;
    if (!o->adv_logits)
        return 0;
    return core_dist_sum(d, o->adv_logits, n * (size_t)o->nclass, CORE_DIST_F32, err);
}

void core_eval_merge(core_eval_out *dst, const core_eval_out *src, int a, int b)
{
    size_t k = (size_t)(b - a);
    memcpy(dst->clean_ok + a, src->clean_ok + a, k);
    for (int e = 0; e < dst->neps; e++)
        memcpy(core_eval_survival(dst, e) + a, core_eval_survival(src, e) + a, k);
    if (dst->adv_logits && src->adv_logits)
        memcpy(dst->adv_logits + (size_t)a * dst->nclass, src->adv_logits + (size_t)a * dst->nclass,
               sizeof(float) * k * (size_t)dst->nclass);
}

static double share(const uint8_t *v, int n)
{
    int64_t ones = 0;
    for (int i = 0; i < n; i++)
        ones += v[i] != 0;
    return n ? (double)ones / n : NAN;
}

double core_eval_clean_acc(const core_eval_out *o)
{
    return share(o->clean_ok, o->n);
}

double core_eval_robust_acc(const core_eval_out *o, int e)
{
    return share(core_eval_survival(o, e), o->n);
}

int core_eval_indicators(const core_eval_cfg *c, core_model *m, core_attack_ws *ws,
                         const float *x, const int *y, int n, int e, core_indicators *ind,
                         core_attack_kind *kinds, char *err)
{
    core_suite s = {.count = 1, .attacks = {c->attack}};
    s.attacks[0].eps = c->eps[e];
    s.attacks[0].seed = c->seed;
    if (c->use_suite && core_suite_preset(c->suite, c->eps[e], c->seed, &s, err))
        return -1;
    uint64_t stream = CORE_STREAM_USER + ((uint64_t)e << 32);
    int k = 0;
    for (int j = 0; j < s.count; j++) {
        core_attack_cfg a = s.attacks[j];
        if (!core_indicators_apply(a.kind))
            continue;
        if ((a.kind == CORE_ATTACK_APGD_T || a.kind == CORE_ATTACK_FAB_T) &&
            a.n_targets >= m->nclass) /* as the suite clamps them */
            a.n_targets = m->nclass - 1;
        if (core_indicators_run(&a, m, ws, x, y, n, stream, &ind[k], err))
            return -1;
        kinds[k++] = a.kind;
    }
    return k;
}

int core_eval_logits(core_model *m, const core_dataset *ds, const int *idx, int n, float *logits,
                     int *y, char *err)
{
    const size_t dim = core_shape_size(m->in), c = (size_t)m->nclass;
    float *xb = core_alloc(sizeof(float) * dim * (size_t)m->capacity + 1);
    if (!xb)
        return core_errf(err, "out of memory for a batch of %d", m->capacity);
    for (int off = 0; off < n; off += m->capacity) {
        int k = n - off < m->capacity ? n - off : m->capacity;
        core_dataset_gather(ds, idx + off, k, xb, y + off);
        core_model_logits(m, xb, k, logits + c * off);
    }
    core_free(xb);
    return 0;
}

int core_eval_corruptions(core_model *m, const float *x, const int *y, int a, int b, int batch,
                          uint64_t seed, const core_eval_hooks *h,
                          double correct[CORE_NCORRUPTIONS][CORE_SEVERITIES], char *err)
{
    const size_t dim = core_shape_size(m->in);
    float *buf = core_alloc(sizeof(float) * dim * (size_t)batch + 1);
    if (!buf)
        return core_errf(err, "out of memory for a batch of %d corrupted examples", batch);
    int rc = 0;
    for (int c = 0; c < CORE_NCORRUPTIONS && rc == 0; c++)
        for (int s = 1; s <= CORE_SEVERITIES && rc == 0; s++)
            for (int off = a; off < b && rc == 0; off += batch) {
                int k = b - off < batch ? b - off : batch;
                uint64_t stream =
                    CORE_EVAL_STREAM_CORRUPT + ((uint64_t)(c * 8 + s) << 32) + (uint64_t)off;
                if (core_corrupt((core_corruption)c, s, x + dim * off, buf, k, m->in, seed, stream,
                                 err)) {
                    rc = -1;
                    break;
                }
                correct[c][s - 1] +=
                    core_count_correct(core_model_forward(m, buf, k), y + off, k, m->nclass);
                if (h && h->on_batch &&
                    h->on_batch(h->ctx, c * CORE_SEVERITIES + s - 1, off + k - a, b - a))
                    rc = 1;
            }
    core_free(buf);
    return rc;
}

/* The whole of ds in two arrays, for core_eval_range. */
static int gather_all(const core_dataset *ds, float **x, int **y, char *err)
{
    const size_t dim = core_shape_size(ds->shape);
    int *idx = core_alloc(sizeof(int) * (size_t)ds->n + 1);
    *x = core_alloc(sizeof(float) * dim * (size_t)ds->n + 1);
    *y = core_alloc(sizeof(int) * (size_t)ds->n + 1);
    if (!idx || !*x || !*y) {
        core_free(idx);
        return core_errf(err, "out of memory for %d test images", ds->n);
    }
    for (int i = 0; i < ds->n; i++)
        idx[i] = i;
    core_dataset_gather(ds, idx, ds->n, *x, *y);
    core_free(idx);
    return 0;
}

int core_eval_final(const core_final_cfg *c, core_model *m, core_attack_ws *ws,
                    const core_dataset *ds, core_eval_out *out, char *err)
{
    core_eval_cfg ec = {.attack = core_attack_defaults(CORE_ATTACK_PGD, c->eps), .neps = 1,
                        .eps = {c->eps}, .seed = c->seed, .batch = c->batch};
    ec.attack.steps = 20;
    ec.attack.norm = c->norm;
    float *x = NULL;
    int *y = NULL, a, b;
    core_dist_range(ds->n, c->batch, core_dist_rank(c->dist), core_dist_size(c->dist), &a, &b);
    int rc = core_eval_out_alloc(&ec, ds->n, m->nclass, out, err) || gather_all(ds, &x, &y, err) ||
             core_eval_range(&ec, m, ws, x, y, a, b, NULL, out, err) ||
             core_eval_out_sum(out, c->dist, err);
    core_free(x);
    core_free(y);
    return rc ? -1 : 0;
}
