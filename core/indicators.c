/*
 * indicators.c - indicators of attack failure (see indicators.h).
 *
 * One run measures, on the same n examples: the loss and input gradient at
 * the clean points (unavailable gradients), the loss at CORE_IND_POINTS
 * random points of the eps-ball for the first CORE_IND_UNSTABLE_N examples
 * (unstable predictions), the traced path of FGSM or PGD (silent success,
 * incomplete optimisation) and the attack itself at an unbounded eps
 * (unconstrained attack failure). It uses the attack workspace's engine
 * buffers (grad, dlogits, loss) and allocates the rest.
 */
#include "indicators.h"

#include "attack_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int core_indicators_apply(core_attack_kind kind)
{
    return kind == CORE_ATTACK_FGSM || kind == CORE_ATTACK_PGD || kind == CORE_ATTACK_APGD_CE ||
           kind == CORE_ATTACK_APGD_T || kind == CORE_ATTACK_FAB_T;
}

/* The untargeted loss the attack maximises (APGD-T's is DLR). */
static attack_loss_ctx loss_of(const core_attack_cfg *cfg, const int *y)
{
    core_attack_loss loss = cfg->kind == CORE_ATTACK_APGD_T ? CORE_ALOSS_DLR : cfg->loss;
    return (attack_loss_ctx){.loss = loss, .y = y, .target = NULL};
}

/* Per-example loss of the n points at xs into out; logits into *z. */
static void losses_at(core_model *m, core_attack_ws *ws, attack_loss_ctx *ctx, const float *xs,
                      int n, float *out, const float **z)
{
    const float *logits = core_model_forward(m, xs, n);
    attack_loss_fn(ctx, logits, n, m->nclass, ws->dlogits, out);
    if (z)
        *z = logits;
}

static int fooled(const float *z, int c, int y)
{
    return attack_margin(z, c, y, NULL) <= 0.0f;
}

/* Clean accuracy and exactly-zero input gradients; clean losses into l0. */
static void clean_point(core_model *m, core_attack_ws *ws, attack_loss_ctx *ctx, const float *x,
                        const int *y, int n, float *l0, core_indicators *out)
{
    const float *z;
    losses_at(m, ws, ctx, x, n, l0, &z);
    for (int i = 0; i < n; i++)
        out->correct += !fooled(z + (size_t)i * m->nclass, m->nclass, y[i]);
    core_model_backward(m, ws->dlogits, n, ws->grad, 0);
    for (int i = 0; i < n; i++) {
        const float *g = ws->grad + (size_t)i * ws->dim;
        size_t j = 0;
        while (j < ws->dim && g[j] == 0.0f)
            j++;
        out->zero_grad += j == ws->dim;
    }
}

/* Mean relative loss change at random points of the eps-ball, each change
 * capped at 1 (a loss of 0 is compared as 1). */
static void unstable(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                     attack_loss_ctx *ctx, const float *x, int n, uint64_t stream,
                     const float *l0, float *xs, core_indicators *out)
{
    int k = n < CORE_IND_UNSTABLE_N ? n : CORE_IND_UNSTABLE_N;
    double sum[CORE_IND_UNSTABLE_N] = {0};
    for (int p = 0; p < CORE_IND_POINTS; p++) {
        /* Rounds past any restart's, so no attack start repeats here. */
        attack_random_point(cfg->norm, cfg->eps, 0, x, xs, k, ws->dim, cfg->seed, stream,
                            ATTACK_USE_START, NULL, (1ULL << 32) + (uint64_t)p);
        losses_at(m, ws, ctx, xs, k, ws->loss, NULL);
        for (int i = 0; i < k; i++) {
            double ref = fabs((double)l0[i]), d = fabs((double)ws->loss[i] - l0[i]);
            d /= ref > 0.0 ? ref : 1.0;
            sum[i] += d < 1.0 ? d : 1.0;
        }
    }
    for (int i = 0; i < k; i++)
        out->unstable_sum += sum[i] / CORE_IND_POINTS;
    out->unstable_n = k;
}

/* The path of FGSM or PGD's first restart, recorded by the loss callback:
 * each point's loss, and whether an adversarial one was met. */
typedef struct {
    attack_loss_ctx loss;
    int n, step;
    float *path;          /* (steps + 1) x n */
    uint8_t *met;
} trace;

static void trace_fn(void *vctx, const float *z, int n, int c, float *dlogits, float *per)
{
    trace *t = vctx;
    attack_loss_fn(&t->loss, z, n, c, dlogits, per);
    for (int i = 0; i < n; i++) {
        t->path[(size_t)t->step * n + i] = per[i];
        t->met[i] |= (uint8_t)fooled(z + (size_t)i * c, c, t->loss.y[i]);
    }
    t->step++;
}

/* The loss over the last CORE_IND_WINDOW steps of path (len points, stride
 * n), scaled to [0, 1] over the path and made non-decreasing: still rising? */
static int still_rising(const float *path, int len, int n)
{
    float lo = path[0], hi = path[0];
    for (int s = 1; s < len; s++) {
        lo = fminf(lo, path[(size_t)s * n]);
        hi = fmaxf(hi, path[(size_t)s * n]);
    }
    if (!(hi > lo))
        return 0;
    int from = len - 1 > CORE_IND_WINDOW ? len - 1 - CORE_IND_WINDOW : 0;
    float best = lo, at_from = 0.0f;
    for (int s = 0; s < len; s++) {
        best = fmaxf(best, path[(size_t)s * n]);
        if (s == from)
            at_from = best;
    }
    return (best - at_from) / (hi - lo) > CORE_IND_RISE;
}

/* The workspace's hook (attack_internal.h) for APGD and FAB: their first
 * round's points, by the examples' places in the batch. */
static void hook_trace_fn(void *vctx, const int *ids, const float *loss, const uint8_t *met,
                          int k)
{
    trace *t = vctx;
    for (int i = 0; i < k; i++) {
        t->path[(size_t)t->step * t->n + ids[i]] = loss[i];
        t->met[ids[i]] |= met[i];
    }
    t->step++;
}

/* APGD and FAB report their path through the workspace's hook. */
static int by_hook(core_attack_kind k)
{
    return k == CORE_ATTACK_APGD_CE || k == CORE_ATTACK_APGD_T || k == CORE_ATTACK_FAB_T;
}

/* The attack's path: FGSM's and PGD's first restart through core_ascent
 * (the last point's loss added after), APGD's and FAB's first round
 * through their hook (APGD: its start and every iteration; FAB: every
 * iterate, its loss z_t - z_y). The returned point into xs. */
static int run_traced(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                      const float *x, const int *y, int n, uint64_t stream, float *xs,
                      trace *t, int steps, char *err)
{
    if (!by_hook(cfg->kind)) {
        core_ascent_cfg a = core_attack_ascent(cfg);
        const float *z;
        core_ascent(&a, m, ws, x, n, stream, trace_fn, t, xs);
        losses_at(m, ws, &t->loss, xs, n, t->path + (size_t)steps * n, &z);
        return 0;
    }
    ws->trace = hook_trace_fn;
    ws->trace_ctx = t;
    int rc = core_attack_run(cfg, m, ws, x, y, NULL, n, stream, xs, NULL, err);
    ws->trace = NULL;
    return rc;
}

static int traced_path(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                       const float *x, const int *y, int n, uint64_t stream, float *xs,
                       core_indicators *out, char *err)
{
    int steps = by_hook(cfg->kind) ? cfg->steps : core_attack_ascent(cfg).steps;
    trace t = {.loss = loss_of(cfg, y), .n = n};
    t.path = calloc(((size_t)steps + 1) * (size_t)n, sizeof(float));
    t.met = calloc((size_t)n, 1);
    if (!t.path || !t.met || run_traced(cfg, m, ws, x, y, n, stream, xs, &t, steps, err)) {
        free(t.path);
        free(t.met);
        return t.path && t.met ? -1 : core_errf(err, "out of memory for a path of %d steps", steps);
    }
    const float *z = core_model_forward(m, xs, n);
    for (int i = 0; i < n; i++) {
        int adv = fooled(z + (size_t)i * m->nclass, m->nclass, y[i]);
        out->silent += t.met[i] && !adv;
        out->failed += !adv;
        out->incomplete += !adv && still_rising(t.path + i, steps + 1, n);
    }
    out->traced = n;
    out->window = steps < CORE_IND_WINDOW ? steps : CORE_IND_WINDOW;
    free(t.path);
    free(t.met);
    return 0;
}

/* The attack with eps unbounded: correct examples it leaves correct. */
static int unconstrained(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                         const float *x, const int *y, int n, uint64_t stream, float *xs,
                         core_indicators *out, char *err)
{
    core_attack_cfg u = *cfg;
    u.eps = cfg->norm == CORE_NORM_LINF ? 1.0f : sqrtf((float)ws->dim);
    u.targeted = 0;
    uint8_t *robust = malloc((size_t)n + 1);
    if (!robust)
        return core_errf(err, "out of memory");
    int rc = core_attack_run(&u, m, ws, x, y, NULL, n, stream, xs, robust, err);
    for (int i = 0; rc == 0 && i < n; i++)
        out->unconstrained += robust[i];
    free(robust);
    return rc;
}

int core_indicators_run(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                        const float *x, const int *y, int n, uint64_t stream,
                        core_indicators *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (!core_indicators_apply(cfg->kind))
        return core_errf(err, "invalid attack '%s' for indicators of failure (expected a "
                              "gradient attack: fgsm, pgd, apgd-ce, apgd-t or fab-t)",
                         core_attack_kind_name(cfg->kind));
    if (core_attack_cfg_check(cfg, err))
        return -1;
    if (n < 0 || n > ws->cap || n > m->capacity)
        return core_errf(err, "invalid batch '%d' (the workspace holds %d, the model %d)", n,
                         ws->cap, m->capacity);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->nclass)
            return core_errf(err, "invalid label '%d' (must be in [0, %d))", y[i], m->nclass);
    if (n == 0)
        return 0;
    float *l0 = malloc((size_t)n * sizeof(float));
    float *xs = malloc((size_t)n * ws->dim * sizeof(float));
    int rc = 0;
    if (!l0 || !xs)
        rc = core_errf(err, "out of memory for %d examples", n);
    out->n = n;
    attack_loss_ctx ctx = loss_of(cfg, y);
    if (rc == 0) {
        clean_point(m, ws, &ctx, x, y, n, l0, out);
        unstable(cfg, m, ws, &ctx, x, n, stream, l0, xs, out);
    }
    if (rc == 0)
        rc = traced_path(cfg, m, ws, x, y, n, stream, xs, out, err);
    if (rc == 0)
        rc = unconstrained(cfg, m, ws, x, y, n, stream, xs, out, err);
    free(l0);
    free(xs);
    return rc;
}

void core_indicators_add(core_indicators *sum, const core_indicators *b)
{
    sum->n += b->n;
    sum->correct += b->correct;
    sum->traced += b->traced;
    sum->silent += b->silent;
    sum->failed += b->failed;
    sum->incomplete += b->incomplete;
    sum->window = b->window > sum->window ? b->window : sum->window;
    sum->zero_grad += b->zero_grad;
    sum->unstable_n += b->unstable_n;
    sum->unstable_sum += b->unstable_sum;
    sum->unconstrained += b->unconstrained;
}

double core_indicators_unstable(const core_indicators *ind)
{
    return ind->unstable_n ? ind->unstable_sum / ind->unstable_n : 0.0;
}

void core_indicators_warn(const core_indicators *ind, const char *attack, float eps,
                          core_warnings *w)
{
    if (ind->silent)
        core_warn(w, "silent success: %s met an adversarial point but returned one that is "
                     "not for %d of %d examples at eps %g (keep the best point)",
                  attack, ind->silent, ind->traced, (double)eps);
    if (ind->incomplete && ind->incomplete > 0.05 * ind->failed)
        core_warn(w, "incomplete optimisation: %s's loss still rises over its last %d "
                     "step%s for %d of the %d examples it failed on at eps %g (give it more "
                     "steps)",
                  attack, ind->window, ind->window == 1 ? "" : "s", ind->incomplete,
                  ind->failed, (double)eps);
    if (ind->zero_grad)
        core_warn(w, "unavailable gradients: the input gradient of %s's loss is exactly zero "
                     "for %d of %d examples at eps %g (masked or saturated gradients)",
                  attack, ind->zero_grad, ind->n, (double)eps);
    if (core_indicators_unstable(ind) > CORE_IND_UNSTABLE)
        core_warn(w, "unstable predictions: %s's loss changes by %.0f%% on average at random "
                     "points of the eps-%g ball (a noisy model: average its gradients)",
                  attack, 100 * core_indicators_unstable(ind), (double)eps);
    if (ind->unconstrained)
        core_warn(w, "unconstrained attack failure: %s with an unbounded eps leaves %d of %d "
                     "examples correctly classified (the attack is broken, not the model "
                     "strong)",
                  attack, ind->unconstrained, ind->correct);
}
