/*
 * apgd.c - APGD-CE and APGD-T (Croce & Hein 2020) with the DLR loss.
 *
 * Follows the reference implementation (autoattack/autopgd_base.py):
 *   - start on the eps-sphere: x0 = P(x + eps * t / ||t||), t ~ U(-1, 1)
 *     (L-inf) or N(0, 1) (L2);
 *   - per example step eta = 2 eps; z = P(x_k + eta * dir(g));
 *     x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})), a = 0.75
 *     (1 on the first iteration), where x_{k-1} is the point the previous
 *     iteration started from (so after a restart the momentum points from
 *     there to the best point, as in the reference);
 *   - checkpoints after 22, 41, 57, ... iterations (core_apgd_checkpoints);
 *     at each, per example, halve eta and go back to the best-loss point
 *     (and its gradient) when (1) the loss rose in at most 0.75 k of the k
 *     steps since the last checkpoint or (2) eta was not halved at the last
 *     checkpoint and the best loss has not improved since. As in the
 *     reference, (2) cannot fire at the first checkpoint.
 * The result per example is a misclassified iterate when one was met (the
 * first), else the best-loss point.
 *
 * APGD-T runs n_targets rounds, each with the targeted DLR loss towards the
 * (k+2)-th highest clean logit (k = 0..n_targets-1), and every round after
 * the first only on the examples still robust, compacted into a contiguous
 * sub-batch. Restarts multiply the rounds the same way. Examples that are
 * misclassified at the clean input are left as they are.
 */
#include "attack_internal.h"
#include "common.h"
#include "loss.h"

#include <math.h>
#include <string.h>

int core_apgd_checkpoints(int n_iter, int *out, int max)
{
    /* The reference's integer version of p_{j+1} = p_j + max(p_j - p_{j-1}
     * - 0.03, 0.06): the first gap is 0.22 N, each next one 0.03 N shorter,
     * never below 0.06 N. */
    int gap = n_iter * 22 / 100, decr = n_iter * 3 / 100, min = n_iter * 6 / 100;
    gap = gap > 1 ? gap : 1;
    decr = decr > 1 ? decr : 1;
    min = min > 1 ? min : 1;
    int count = 0;
    for (int at = gap; at <= n_iter; at += gap) {
        if (count < max)
            out[count] = at;
        count++;
        gap = gap - decr > min ? gap - decr : min;
    }
    return count;
}

/* ---- DLR loss ------------------------------------------------------------- */

/* Indices of the four largest logits of z, in descending order. */
static void top4(const float *z, int c, int *top)
{
    int k = 0;
    for (int j = 0; j < c; j++) {
        int p = k < 4 ? k++ : 4;
        while (p > 0 && z[j] > z[top[p - 1]]) {
            if (p < 4)
                top[p] = top[p - 1];
            p--;
        }
        if (p < 4)
            top[p] = j;
    }
}

float core_loss_dlr(const float *logits, const int *y, const int *target, int n, int c,
                    float *dlogits, float *per_example)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        int top[4] = {0, 0, 0, 0}, yi = y[i], other;
        top4(z, c, top);
        /* numerator: z_y - z_o; denominator: z_pi1 - z_pi3 (untargeted) or
         * z_pi1 - (z_pi3 + z_pi4) / 2 (targeted). */
        float num = target ? z[yi] - z[(other = target[i])] : attack_margin(z, c, yi, &other);
        float den = (target ? z[top[0]] - 0.5f * (z[top[2]] + z[top[3]]) : z[top[0]] - z[top[2]])
                    + 1e-12f;
        float loss = -num / den;
        total += loss;
        if (per_example)
            per_example[i] = loss;
        if (!dlogits)
            continue;
        float *d = dlogits + (size_t)i * c, inv = 1.0f / (float)n;
        memset(d, 0, (size_t)c * sizeof(float));
        float dnum = -1.0f / den, dden = num / (den * den);
        d[yi] += dnum * inv;
        d[other] -= dnum * inv;
        d[top[0]] += dden * inv;
        if (target) {
            d[top[2]] -= 0.5f * dden * inv;
            d[top[3]] -= 0.5f * dden * inv;
        } else {
            d[top[2]] -= dden * inv;
        }
    }
    return (float)(total / n);
}

/* ---- one APGD run on a contiguous batch --------------------------------- */

typedef struct {
    core_model *m;
    core_attack_ws *ws;
    const core_attack_cfg *cfg;
    attack_loss_ctx loss;
    const float *x;
    const int *y, *ids;
    int n;
    uint64_t stream, round;
} apgd_batch;

/* Loss, gradient into g and misclassification flags at xk. */
static void apgd_eval(const apgd_batch *b, const float *xk, float *g, uint8_t *fooled)
{
    core_attack_ws *ws = b->ws;
    int c = b->m->nclass;
    const float *z = core_model_forward(b->m, xk, b->n);
    for (int i = 0; i < b->n; i++)
        fooled[i] = attack_margin(z + (size_t)i * c, c, b->y[i], NULL) <= 0.0f;
    attack_loss_fn((void *)&b->loss, z, b->n, c, ws->dlogits, ws->loss);
    core_model_backward(b->m, ws->dlogits, b->n, g, 0);
}

/* The first round's point, to the indicators' hook when one is set. */
static void apgd_trace(const apgd_batch *b, const uint8_t *fooled)
{
    core_attack_ws *ws = b->ws;
    if (ws->trace && b->round == 0)
        ws->trace(ws->trace_ctx, b->ids, ws->loss, fooled, b->n);
}

static void copy_row(float *dst, const float *src, int i, size_t dim)
{
    memcpy(dst + (size_t)i * dim, src + (size_t)i * dim, dim * sizeof(float));
}

/* The momentum step from xk (previous start xp, gradient g) into xz. */
static void apgd_move(const apgd_batch *b, const float *xk, const float *xp, const float *g,
                      float *xz, float a)
{
    const core_attack_cfg *cfg = b->cfg;
    size_t dim = b->ws->dim, len = (size_t)b->n * dim;
    attack_step(cfg->norm, 0.0f, b->ws->ex_eta, xk, g, xz, b->n, dim);
    core_project(cfg->norm, cfg->eps, b->x, xz, b->n, dim);
#pragma omp parallel for simd schedule(static)
    for (size_t j = 0; j < len; j++)
        xz[j] = xk[j] + a * (xz[j] - xk[j]) + (1.0f - a) * (xk[j] - xp[j]);
    core_project(cfg->norm, cfg->eps, b->x, xz, b->n, dim);
}

/* The checkpoint test and restart of example i after a window of k steps. */
static void apgd_checkpoint(core_attack_ws *ws, int i, int k, float *xk, float *g,
                            const float *xbest, const float *gbest)
{
    int osc = (float)ws->ex_count[i] <= 0.75f * (float)k;
    int stalled = !ws->ex_flag[i] && ws->ex_last[i] >= ws->ex_best[i];
    int reduce = osc || stalled;
    ws->ex_flag[i] = (uint8_t)reduce;
    ws->ex_last[i] = ws->ex_best[i];
    ws->ex_count[i] = 0;
    if (reduce) {
        ws->ex_eta[i] *= 0.5f;
        copy_row(xk, xbest, i, ws->dim);
        copy_row(g, gbest, i, ws->dim);
    }
}

/* Runs APGD; writes the result rows into out and success into fooled. */
static void apgd_run_batch(const apgd_batch *b, float *out, uint8_t *fooled)
{
    core_attack_ws *ws = b->ws;
    const core_attack_cfg *cfg = b->cfg;
    size_t dim = ws->dim;
    int n = b->n;
    float *xk = ws->row[0], *xp = ws->row[1], *xz = ws->row[2];
    float *xbest = ws->row[3], *gbest = ws->row[4], *xadv = ws->row[5], *g = ws->grad;
    uint8_t *now = ws->ex_done;

    attack_random_point(cfg->norm, cfg->eps, 1, b->x, xk, n, dim, cfg->seed, b->stream,
                        ATTACK_USE_APGD, b->ids, b->round);
    apgd_eval(b, xk, g, now);
    apgd_trace(b, now);
    memcpy(xbest, xk, (size_t)n * dim * sizeof(float));
    memcpy(gbest, g, (size_t)n * dim * sizeof(float));
    memcpy(xp, xk, (size_t)n * dim * sizeof(float));
    for (int i = 0; i < n; i++) {
        fooled[i] = now[i];
        if (now[i])
            copy_row(xadv, xk, i, dim);
        ws->ex_eta[i] = 2.0f * cfg->eps;
        ws->ex_best[i] = ws->ex_prev[i] = ws->ex_last[i] = ws->loss[i];
        ws->ex_count[i] = 0;
        ws->ex_flag[i] = 1; /* the reference starts with "reduced": no test (2) first */
    }

    int ckpt[64], nckpt = core_apgd_checkpoints(cfg->steps, ckpt, 64), next = 0, since = 0;
    for (int it = 0; it < cfg->steps; it++) {
        apgd_move(b, xk, xp, g, xz, it > 0 ? 0.75f : 1.0f);
        float *t = xp; /* rotate: the start of this step becomes x_{k-1} */
        xp = xk;
        xk = xz;
        xz = t;
        apgd_eval(b, xk, g, now);
        apgd_trace(b, now);
        since++;
        int at_ckpt = next < nckpt && it + 1 == ckpt[next];
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            float l = ws->loss[i];
            if (now[i] && !fooled[i]) {
                fooled[i] = 1;
                copy_row(xadv, xk, i, dim);
            }
            ws->ex_count[i] += l > ws->ex_prev[i];
            ws->ex_prev[i] = l;
            if (l > ws->ex_best[i]) {
                ws->ex_best[i] = l;
                copy_row(xbest, xk, i, dim);
                copy_row(gbest, g, i, dim);
            }
            if (at_ckpt)
                apgd_checkpoint(ws, i, since, xk, g, xbest, gbest);
        }
        if (at_ckpt) {
            next++;
            since = 0;
        }
    }
    for (int i = 0; i < n; i++)
        copy_row(out, fooled[i] ? xadv : xbest, i, dim);
}

/* ---- rounds over restarts and targets ---------------------------------- */

/* The (rank+1)-th highest logit of z (rank 1: the runner-up). */
static int ranked_class(const float *z, int c, int rank)
{
    int best = -1;
    for (int r = 0; r <= rank; r++) {
        int pick = -1;
        for (int j = 0; j < c; j++) {
            /* Strictly below the previous pick, ties broken by index. */
            int below = best < 0 || z[j] < z[best] || (z[j] == z[best] && j > best);
            if (below && (pick < 0 || z[j] > z[pick]))
                pick = j;
        }
        best = pick;
    }
    return best;
}

void attack_rounds_begin(core_model *m, core_attack_ws *ws, const float *x, const int *y, int n,
                         float *x_adv)
{
    int c = m->nclass;
    const float *z = core_model_forward(m, x, n);
    memcpy(ws->logits, z, (size_t)n * c * sizeof(float));
    memcpy(x_adv, x, (size_t)n * ws->dim * sizeof(float));
    for (int i = 0; i < n; i++)
        ws->ex_alive[i] = attack_margin(ws->logits + (size_t)i * c, c, y[i], NULL) > 0.0f;
}

int attack_round_gather(core_attack_ws *ws, const float *x, const int *y, const int *ids,
                        const uint8_t *alive, int n, int rank)
{
    int c = ws->nclass, k = attack_compact(alive, n, ws->cidx);
    for (int t = 0; t < k; t++) {
        int i = ws->cidx[t];
        ws->cy[t] = y[i];
        ws->cids[t] = (int)attack_id(ids, i);
        ws->ct[t] = ranked_class(ws->logits + (size_t)i * c, c, rank);
    }
    attack_gather(ws->cx, x, ws->cidx, k, ws->dim);
    return k;
}

int attack_apgd(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
                const int *y, int n, uint64_t stream, const int *ids, float *x_adv, char *err)
{
    int targeted = cfg->kind == CORE_ATTACK_APGD_T;
    int per_restart = targeted ? cfg->n_targets : 1;
    size_t dim = ws->dim;
    uint8_t *alive = ws->ex_alive;

    /* Clean logits: who is worth attacking, and APGD-T's targets. */
    attack_rounds_begin(m, ws, x, y, n, x_adv);

    for (int round = 0; round < cfg->restarts * per_restart; round++) {
        int k = attack_round_gather(ws, x, y, ids, alive, n, round % per_restart + 1);
        if (k == 0)
            break;
        apgd_batch b = {
            .m = m, .ws = ws, .cfg = cfg, .x = ws->cx, .y = ws->cy, .ids = ws->cids, .n = k,
            .stream = stream, .round = (uint64_t)round,
            .loss = {.loss = targeted ? CORE_ALOSS_DLR : cfg->loss, .y = ws->cy,
                     .target = targeted ? ws->ct : NULL},
        };
        apgd_run_batch(&b, ws->cout, ws->cfool);
        /* The first round gives every example its best point; later rounds
         * only replace it with a success. */
        for (int t = 0; t < k; t++) {
            int i = ws->cidx[t];
            if (round == 0 || ws->cfool[t])
                memcpy(x_adv + (size_t)i * dim, ws->cout + (size_t)t * dim, dim * sizeof(float));
            alive[i] = !ws->cfool[t];
        }
    }
    (void)err;
    return 0;
}
