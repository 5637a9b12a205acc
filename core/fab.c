/*
 * fab.c - FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein
 * 2020), L-inf, as AutoAttack's standard version runs it: n_targets rounds
 * (9), each towards the (k+2)-th highest clean logit, 100 iterations, one
 * restart, every round after the first only on the examples still robust.
 *
 * FAB looks for the adversarial point closest to x, not for the highest
 * loss. Each iteration, at the current point x1, with f = z_t - z_y (< 0
 * while the target is not reached) and w = grad f:
 *   - d1, d2: the smallest L-inf steps that put x1 and x on the
 *     linearised boundary f(x1) + w.(p - x1) = 0 inside the box [0, 1]
 *     (fab_project);
 *   - a = min(|d1| / (|d1| + |d2|), alpha_max) (norms floored at 1e-8);
 *   - x1 = clip((x1 + eta d1)(1 - a) + (x + eta d2) a, 0, 1): a step that
 *     overshoots the boundary by eta and is biased towards x;
 *   - when x1 is misclassified: keep it if it is the closest to x so far,
 *     then pull it back, x1 = x + beta (x1 - x).
 * alpha_max 0.1, eta 1.05, beta 0.9 are the reference's. The result of a
 * round is the closest adversarial point when it lies within eps of x,
 * else nothing: an example is broken only by a point of the eps-ball, and
 * x_adv stays x for the others. Restart r > 0 of a target starts at
 * x + eps/2 * t / |t|_inf, t ~ U(-1, 1) (the reference's random start).
 *
 * Round 0 without a random start draws no random numbers: the attack is
 * deterministic, and the first N iterations of a longer run are the N of a
 * shorter one, so more iterations never break fewer examples.
 */
#include "attack_internal.h"
#include "common.h"

#include <math.h>
#include <string.h>

#define FAB_ALPHA_MAX 0.1f
#define FAB_ETA 1.05f
#define FAB_BETA 0.9f
/* Newton steps of one projection: exact after as many as the box
 * constraints it crosses, usually a handful. */
#define FAB_PROJ_STEPS 100

/* The weighted room sum g(lambda) = sum_j |w_j| min(lambda, room_j) and its
 * slope (the weight of the coordinates not yet at the box). */
static double fab_room_sum(const float *w, const float *room, size_t dim, double lambda,
                           double *slope)
{
    double g = 0.0, s = 0.0;
    for (size_t j = 0; j < dim; j++) {
        double a = fabsf(w[j]);
        if (room[j] > lambda) {
            g += a * lambda;
            s += a;
        } else {
            g += a * room[j];
        }
    }
    *slope = s;
    return g;
}

/* The smallest L-inf step d (into d) with w.(p + d) = w.p - c and p + d in
 * [0, 1]; when the box makes that impossible, the step that comes closest
 * (every coordinate moved to its bound). Each coordinate moves by
 * min(lambda, room_j) against sign(c w_j); g(lambda) above is how far w.p
 * then moves, concave and piecewise linear, so Newton from lambda = 0 never
 * passes the root and ends on it. room is dim floats of scratch. */
static void fab_project(const float *p, const float *w, double c, size_t dim, float *room,
                        float *d)
{
    float dir = c > 0.0 ? -1.0f : 1.0f;
    for (size_t j = 0; j < dim; j++) {
        float up = dir * w[j] > 0.0f; /* this coordinate moves up */
        room[j] = up ? 1.0f - p[j] : p[j];
    }
    double need = fabs(c), slope, lambda = 0.0;
    double total = fab_room_sum(w, room, dim, INFINITY, &slope);
    if (total <= need) {
        lambda = INFINITY;
    } else {
        for (int k = 0; k < FAB_PROJ_STEPS; k++) {
            double g = fab_room_sum(w, room, dim, lambda, &slope);
            if (g >= need || slope <= 0.0)
                break;
            double next = lambda + (need - g) / slope;
            if (!(next > lambda))
                break;
            lambda = next;
        }
    }
    for (size_t j = 0; j < dim; j++) {
        float sgn = (float)((w[j] > 0.0f) - (w[j] < 0.0f)) * dir;
        d[j] = sgn * (float)fmin(lambda, room[j]);
    }
}

/* max_j |a_j - b_j|, or max_j |a_j| when b is NULL. */
static float linf_dist(const float *a, const float *b, size_t dim)
{
    float m = 0.0f;
    for (size_t j = 0; j < dim; j++)
        m = fmaxf(m, fabsf(b ? a[j] - b[j] : a[j]));
    return m;
}

typedef struct {
    core_model *m;
    core_attack_ws *ws;
    const core_attack_cfg *cfg;
    const float *x;
    const int *y, *t, *ids;
    int n;
    uint64_t stream, round;
    int restart;
} fab_batch;

/* f = z_t - z_y per example into ws->loss and its input gradient into ws->grad. */
static void fab_gradient(const fab_batch *b, const float *x1)
{
    core_attack_ws *ws = b->ws;
    int c = b->m->nclass;
    const float *z = core_model_forward(b->m, x1, b->n);
    memset(ws->dlogits, 0, sizeof(float) * (size_t)b->n * c);
    for (int i = 0; i < b->n; i++) {
        const float *zi = z + (size_t)i * c;
        ws->loss[i] = zi[b->t[i]] - zi[b->y[i]];
        ws->dlogits[(size_t)i * c + b->t[i]] = 1.0f;
        ws->dlogits[(size_t)i * c + b->y[i]] = -1.0f;
    }
    core_model_backward(b->m, ws->dlogits, b->n, ws->grad, 0);
}

/* One FAB step of example i from x1 (in place); d1, d2, room: dim floats. */
static void fab_step(const fab_batch *b, int i, float *x1, float *d1, float *d2, float *room)
{
    size_t dim = b->ws->dim;
    const float *x0 = b->x + (size_t)i * dim, *w = b->ws->grad + (size_t)i * dim;
    double f = b->ws->loss[i], shift = 0.0;
    for (size_t j = 0; j < dim; j++)
        shift += (double)w[j] * (x0[j] - x1[j]);
    fab_project(x1, w, f, dim, room, d1);
    fab_project(x0, w, f + shift, dim, room, d2);
    float a1 = fmaxf(linf_dist(d1, NULL, dim), 1e-8f), a2 = fmaxf(linf_dist(d2, NULL, dim), 1e-8f);
    float a = fminf(fmaxf(a1 / (a1 + a2), 0.0f), FAB_ALPHA_MAX);
    for (size_t j = 0; j < dim; j++) {
        float v = (x1[j] + FAB_ETA * d1[j]) * (1.0f - a) + (x0[j] + FAB_ETA * d2[j]) * a;
        x1[j] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
}

/* The first round's iterate, to the indicators' hook (attack_internal.h)
 * when one is set: FAB's loss z_t - z_y (ws->loss) and whether the iterate
 * is adversarial within eps (FAB's iterates may lie beyond it). */
static void fab_trace(const fab_batch *b, const float *x1)
{
    core_attack_ws *ws = b->ws;
    if (!ws->trace || b->round != 0)
        return;
    uint8_t *met = ws->ex_flag;
    for (int i = 0; i < b->n; i++) {
        size_t off = (size_t)i * ws->dim;
        met[i] = ws->loss[i] > 0.0f &&
                 linf_dist(x1 + off, b->x + off, ws->dim) <= b->cfg->eps;
    }
    ws->trace(ws->trace_ctx, b->ids, ws->loss, met, b->n);
}

/* One round on a contiguous batch: result rows into out (x where nothing
 * within eps was found), success into fooled. */
static void fab_run_batch(const fab_batch *b, float *out, uint8_t *fooled)
{
    core_attack_ws *ws = b->ws;
    const core_attack_cfg *cfg = b->cfg;
    size_t dim = ws->dim;
    int n = b->n, c = b->m->nclass;
    float *x1 = ws->row[0], *best = ws->row[1], *dist = ws->ex_best;
    if (b->restart > 0)
        attack_random_point(CORE_NORM_LINF, 0.5f * cfg->eps, 1, b->x, x1, n, dim, cfg->seed,
                            b->stream, ATTACK_USE_START, b->ids, b->round);
    else
        memcpy(x1, b->x, (size_t)n * dim * sizeof(float));
    for (int i = 0; i < n; i++)
        dist[i] = INFINITY;
    for (int it = 0; it < cfg->steps; it++) {
        fab_gradient(b, x1);
        fab_trace(b, x1);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++)
            fab_step(b, i, x1 + (size_t)i * dim, ws->row[2] + (size_t)i * dim,
                     ws->row[3] + (size_t)i * dim, ws->row[4] + (size_t)i * dim);
        const float *z = core_model_forward(b->m, x1, n);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            if (attack_margin(z + (size_t)i * c, c, b->y[i], NULL) > 0.0f)
                continue;
            float *xi = x1 + (size_t)i * dim;
            const float *x0 = b->x + (size_t)i * dim;
            float t = linf_dist(xi, x0, dim);
            if (t < dist[i]) {
                dist[i] = t;
                memcpy(best + (size_t)i * dim, xi, dim * sizeof(float));
            }
            for (size_t j = 0; j < dim; j++)
                xi[j] = x0[j] + FAB_BETA * (xi[j] - x0[j]);
        }
    }
    if (ws->trace && b->round == 0) { /* the last iterate's point of the path */
        fab_gradient(b, x1);
        fab_trace(b, x1);
    }
    for (int i = 0; i < n; i++) {
        fooled[i] = dist[i] <= cfg->eps;
        memcpy(out + (size_t)i * dim, (fooled[i] ? best : b->x) + (size_t)i * dim,
               dim * sizeof(float));
    }
    core_project(CORE_NORM_LINF, cfg->eps, b->x, out, n, dim);
}

int attack_fab(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
               const int *y, int n, uint64_t stream, const int *ids, float *x_adv, char *err)
{
    size_t dim = ws->dim;
    uint8_t *alive = ws->ex_alive;
    attack_rounds_begin(m, ws, x, y, n, x_adv);

    for (int round = 0; round < cfg->n_targets * cfg->restarts; round++) {
        int target = round / cfg->restarts, restart = round % cfg->restarts;
        int k = attack_round_gather(ws, x, y, ids, alive, n, target + 1);
        if (k == 0)
            break;
        fab_batch b = {.m = m, .ws = ws, .cfg = cfg, .x = ws->cx, .y = ws->cy, .t = ws->ct,
                       .ids = ws->cids, .n = k, .stream = stream, .round = (uint64_t)round,
                       .restart = restart};
        fab_run_batch(&b, ws->cout, ws->cfool);
        for (int t = 0; t < k; t++) {
            int i = ws->cidx[t];
            if (ws->cfool[t])
                memcpy(x_adv + (size_t)i * dim, ws->cout + (size_t)t * dim, dim * sizeof(float));
            alive[i] = !ws->cfool[t];
        }
    }
    (void)err;
    return 0;
}
