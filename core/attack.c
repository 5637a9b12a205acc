/*
 * attack.c - configuration, workspace, the shared helpers and the gradient
 * engine (core_ascent) with the attacks built on it: FGSM, PGD with
 * restarts, uniform noise; plus the dispatch of core_attack_run (APGD in
 * apgd.c, Square in square.c, FAB-T in fab.c).
 *
 * FGSM is one ascent step of size eps without a random start; PGD is
 * core_ascent per restart, keeping per example the first restart that
 * succeeds (misclassifies, or reaches the target), else the one of highest
 * loss. Restart r draws its start from round r only, so restart 0 of an
 * R-restart run is the 1-restart run and more restarts are never weaker.
 * Random starts are uniform points of the eps-ball (L2: a normal direction
 * with radius eps * u^(1/dim), uniform in volume); random_start 2 is
 * TRADES' x + 0.001 N(0, 1). NOISE is one such uniform point (restarts are
 * ignored).
 *
 * Determinism: see attack_internal.h for the counter scheme. Parallel loops
 * run over examples or pixels with each result written by one thread and
 * every per-example reduction done by one thread, so the bytes do not depend
 * on the schedule.
 */
#include "attack_internal.h"
#include "common.h"
#include "loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names, defaults, validation -------------------------------------- */

#define KIND_NAME(kind, name, gradients) name,
#define KIND_GRADIENTS(kind, name, gradients) gradients,
static const char *const kind_names[] = {CORE_ATTACKS(KIND_NAME)};
static const int kind_gradients[] = {CORE_ATTACKS(KIND_GRADIENTS)};
#define NKINDS CORE_NATTACKS
_Static_assert(sizeof kind_names / sizeof kind_names[0] == CORE_NATTACKS, "a name per attack");

const char *core_attack_kind_name(core_attack_kind k)
{
    return (int)k >= 0 && (int)k < NKINDS ? kind_names[k] : "unknown";
}

int core_attack_kind_parse(const char *s, core_attack_kind *out, char *err)
{
    int k = core_name_index(s, kind_names, NKINDS);
    if (k >= 0) {
        *out = (core_attack_kind)k;
        return 0;
    }
    char known[256] = "";
    for (int i = 0; i < NKINDS; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 kind_names[i]);
    return core_errf(err, "unknown attack '%s' (known: %s)", s ? s : "", known);
}

static const char *const norm_names[] = {"linf", "l2"};
static const char *const loss_names[] = {"ce", "cw", "dlr"};

const char *core_norm_name(core_norm n)
{
    return norm_names[n == CORE_NORM_L2];
}

int core_norm_parse(const char *s, core_norm *out, char *err)
{
    int k;
    return core_name_parse(s, norm_names, 2, "norm", &k, err) ? -1 : (*out = (core_norm)k, 0);
}

const char *core_attack_loss_name(core_attack_loss l)
{
    return (unsigned)l < 3 ? loss_names[l] : "ce";
}

int core_attack_loss_parse(const char *s, core_attack_loss *out, char *err)
{
    int k;
    return core_name_parse(s, loss_names, 3, "loss", &k, err) ? -1
                                                              : (*out = (core_attack_loss)k, 0);
}

int core_attack_white_box(const char *name)
{
    int k = core_name_index(name, kind_names, NKINDS);
    return k < 0 || kind_gradients[k];
}

core_attack_cfg core_attack_defaults(core_attack_kind kind, float eps)
{
    core_attack_cfg c = {
        .kind = kind, .norm = CORE_NORM_LINF, .loss = CORE_ALOSS_CE, .eps = eps,
        .alpha = 0.0f, .steps = 20, .restarts = 1, .random_start = 1, .targeted = 0,
        .n_targets = 9, .queries = 5000, .p_init = 0.8f, .seed = 0,
    };
    if (kind == CORE_ATTACK_FGSM) {
        c.steps = 1;
        c.random_start = 0;
    } else if (kind == CORE_ATTACK_APGD_CE || kind == CORE_ATTACK_APGD_T ||
               kind == CORE_ATTACK_FAB_T) {
        c.steps = 100;
        if (kind == CORE_ATTACK_APGD_T)
            c.loss = CORE_ALOSS_DLR;
    }
    return c;
}

int core_attack_cfg_check(const core_attack_cfg *c, char *err)
{
    if ((int)c->kind < 0 || (int)c->kind >= NKINDS)
        return core_errf(err, "invalid kind '%d'", (int)c->kind);
    if (c->norm != CORE_NORM_LINF && c->norm != CORE_NORM_L2)
        return core_errf(err, "invalid norm '%d'", (int)c->norm);
    if ((int)c->loss < CORE_ALOSS_CE || (int)c->loss > CORE_ALOSS_DLR)
        return core_errf(err, "invalid loss '%d'", (int)c->loss);
    if (c->norm == CORE_NORM_LINF && !(c->eps >= 0.0f && c->eps <= 1.0f))
        return core_errf(err, "invalid eps '%g' (must be in [0, 1])", (double)c->eps);
    if (c->norm == CORE_NORM_L2 && !(c->eps >= 0.0f && isfinite(c->eps)))
        return core_errf(err, "invalid eps '%g' (must be finite and >= 0)", (double)c->eps);
    if (!(c->alpha >= 0.0f && isfinite(c->alpha)))
        return core_errf(err, "invalid alpha '%g' (must be finite and >= 0)", (double)c->alpha);
    if (c->steps < 1)
        return core_errf(err, "invalid steps '%d' (must be >= 1)", c->steps);
    if (c->restarts < 1)
        return core_errf(err, "invalid restarts '%d' (must be >= 1)", c->restarts);
    if (c->random_start < 0 || c->random_start > 2)
        return core_errf(err, "invalid random_start '%d' (must be 0, 1 or 2)", c->random_start);
    if (c->n_targets < 1)
        return core_errf(err, "invalid n_targets '%d' (must be >= 1)", c->n_targets);
    if (c->queries < 1)
        return core_errf(err, "invalid queries '%d' (must be >= 1)", c->queries);
    if (!(c->p_init > 0.0f && c->p_init <= 1.0f))
        return core_errf(err, "invalid p_init '%g' (must be in (0, 1])", (double)c->p_init);
    return 0;
}

/* ---- workspace ---------------------------------------------------------- */

void core_attack_ws_free(core_attack_ws *ws)
{
    if (!ws)
        return;
    void *bufs[] = {ws->row[0], ws->row[1], ws->row[2], ws->row[3], ws->row[4], ws->row[5],
                    ws->grad, ws->dlogits, ws->logits, ws->loss, ws->ex_best, ws->ex_prev,
                    ws->ex_last, ws->ex_eta, ws->ex_count, ws->ex_flag, ws->ex_done,
                    ws->ex_alive, ws->cx, ws->cout, ws->cy, ws->ct, ws->cids, ws->cidx,
                    ws->cfool, ws->sx, ws->sout, ws->sy, ws->sids, ws->sidx, ws->srob,
                    ws->salive};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        core_free(bufs[i]);
    free(ws);
}

/* Rows of batch x dim floats a workspace holds: row[6], grad, cx, cout, sx,
 * sout (core_attack_ws_create allocates exactly these). */
#define WS_ROWS 11

double core_attack_ws_bytes(size_t dim, int nclass, int batch)
{
    double b = batch;
    return b * ((double)WS_ROWS * dim * sizeof(float) + 2.0 * nclass * sizeof(float) +
                4 * sizeof(float) + 8 * sizeof(int) + 6);
}

int core_attack_ws_create(const core_model *m, int batch, core_attack_ws **out, char *err)
{
    *out = NULL;
    if (batch < 1)
        return core_errf(err, "invalid batch '%d' for the attack workspace (must be >= 1)",
                         batch);
    core_attack_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return core_errf(err, "out of memory for the attack workspace");
    ws->cap = batch;
    ws->nclass = m->nclass;
    ws->dim = core_shape_size(m->in);
    size_t b = (size_t)batch, rows = b * ws->dim * sizeof(float), f = b * sizeof(float),
           i = b * sizeof(int), logit = b * (size_t)m->nclass * sizeof(float);
    int ok = 1;
#define ALLOC(p, bytes) ok &= ((p) = core_alloc(bytes)) != NULL
    _Static_assert(sizeof ws->row / sizeof ws->row[0] + 5 == WS_ROWS, "WS_ROWS counts the rows");
    for (int r = 0; r < 6; r++)
        ALLOC(ws->row[r], rows);
    ALLOC(ws->grad, rows);
    ALLOC(ws->cx, rows);
    ALLOC(ws->cout, rows);
    ALLOC(ws->sx, rows);
    ALLOC(ws->sout, rows);
    ALLOC(ws->dlogits, logit);
    ALLOC(ws->logits, logit);
    ALLOC(ws->loss, f);
    ALLOC(ws->ex_best, f);
    ALLOC(ws->ex_prev, f);
    ALLOC(ws->ex_last, f);
    ALLOC(ws->ex_eta, f);
    ALLOC(ws->ex_count, i);
    ALLOC(ws->cy, i);
    ALLOC(ws->ct, i);
    ALLOC(ws->cids, i);
    ALLOC(ws->cidx, i);
    ALLOC(ws->sy, i);
    ALLOC(ws->sids, i);
    ALLOC(ws->sidx, i);
    ALLOC(ws->ex_flag, b);
    ALLOC(ws->ex_done, b);
    ALLOC(ws->ex_alive, b);
    ALLOC(ws->cfool, b);
    ALLOC(ws->srob, b);
    ALLOC(ws->salive, b);
#undef ALLOC
    if (!ok) {
        core_attack_ws_free(ws);
        return core_errf(err, "out of memory for an attack workspace of %d examples", batch);
    }
    *out = ws;
    return 0;
}

/* ---- shared helpers ----------------------------------------------------- */

float attack_margin(const float *z, int c, int y, int *other)
{
    int o = y == 0 ? 1 : 0;
    for (int j = 0; j < c; j++)
        if (j != y && z[j] > z[o])
            o = j;
    if (other)
        *other = o;
    return z[y] - z[o];
}

void core_project(core_norm norm, float eps, const float *x, float *x_adv, int n, size_t dim)
{
    if (norm == CORE_NORM_LINF) {
        size_t len = (size_t)n * dim;
#pragma omp parallel for simd schedule(static)
        for (size_t j = 0; j < len; j++) {
            float lo = fmaxf(x[j] - eps, 0.0f), hi = fminf(x[j] + eps, 1.0f);
            x_adv[j] = fminf(fmaxf(x_adv[j], lo), hi);
        }
        return;
    }
    /* L2: scale the perturbation into the ball, then clip to [0, 1]; the
     * clip only shrinks each |delta_j| (x is in [0, 1]), so both hold. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *a = x_adv + (size_t)i * dim;
        double s = 0.0;
        for (size_t j = 0; j < dim; j++)
            s += (double)(a[j] - xi[j]) * (a[j] - xi[j]);
        float scale = s > (double)eps * eps ? (float)(eps / sqrt(s)) : 1.0f;
        for (size_t j = 0; j < dim; j++)
            a[j] = fminf(fmaxf(xi[j] + (a[j] - xi[j]) * scale, 0.0f), 1.0f);
    }
}

void attack_random_point(core_norm norm, float eps, int on_sphere, const float *x, float *out,
                         int n, size_t dim, uint64_t seed, uint64_t stream, int use,
                         const int *ids, uint64_t round)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        uint64_t key = attack_key(use, attack_id(ids, i), round);
        const float *xi = x + (size_t)i * dim;
        float *o = out + (size_t)i * dim;
        double size = 0.0; /* L-inf: max |t|; L2: ||t||_2 */
        for (size_t j = 0; j < dim; j++) {
            float t = norm == CORE_NORM_LINF ? 2.0f * core_rng_uniform(seed, stream, key + j) - 1.0f
                                             : core_rng_normal(seed, stream, key + j);
            o[j] = t;
            size = norm == CORE_NORM_LINF ? fmax(size, fabsf(t)) : size + (double)t * t;
        }
        if (norm == CORE_NORM_L2)
            size = sqrt(size);
        double radius = eps;
        if (!on_sphere && norm == CORE_NORM_L2) /* uniform in volume */
            radius *= pow(core_rng_uniform(seed, stream, key + dim), 1.0 / (double)dim);
        if (!on_sphere && norm == CORE_NORM_LINF)
            size = 1.0; /* U(-eps, eps) per pixel as drawn */
        float scale = size > 0.0 ? (float)(radius / size) : 0.0f;
        for (size_t j = 0; j < dim; j++)
            o[j] = xi[j] + scale * o[j];
    }
    core_project(norm, eps, x, out, n, dim);
}

/* TRADES' start: x + 0.001 * N(0, 1), projected. */
static void trades_start(float eps, core_norm norm, const float *x, float *out, int n,
                         size_t dim, uint64_t seed, uint64_t stream, const int *ids,
                         uint64_t round)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        uint64_t key = attack_key(ATTACK_USE_START, attack_id(ids, i), round);
        for (size_t j = 0; j < dim; j++)
            out[(size_t)i * dim + j] =
                x[(size_t)i * dim + j] + 0.001f * core_rng_normal(seed, stream, key + j);
    }
    core_project(norm, eps, x, out, n, dim);
}

void attack_step(core_norm norm, float alpha, const float *alpha_i, const float *x,
                 const float *g, float *out, int n, size_t dim)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *gi = g + (size_t)i * dim, *xi = x + (size_t)i * dim;
        float *o = out + (size_t)i * dim;
        float a = alpha_i ? alpha_i[i] : alpha;
        if (norm == CORE_NORM_LINF) {
            for (size_t j = 0; j < dim; j++)
                o[j] = xi[j] + a * (float)((gi[j] > 0.0f) - (gi[j] < 0.0f));
            continue;
        }
        double s = 0.0;
        for (size_t j = 0; j < dim; j++)
            s += (double)gi[j] * gi[j];
        /* Per-example normalisation: the 1/n of the mean loss cancels. */
        float k = s > 0.0 ? (float)(a / sqrt(s)) : 0.0f;
        for (size_t j = 0; j < dim; j++)
            o[j] = xi[j] + k * gi[j];
    }
}

int attack_compact(const uint8_t *alive, int n, int *idx)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (alive[i])
            idx[k++] = i;
    return k;
}

void attack_gather(float *dst, const float *src, const int *idx, int k, size_t dim)
{
#pragma omp parallel for schedule(static)
    for (int t = 0; t < k; t++)
        memcpy(dst + (size_t)t * dim, src + (size_t)idx[t] * dim, dim * sizeof(float));
}

void attack_scatter(float *dst, const float *src, const int *idx, int k, size_t dim)
{
#pragma omp parallel for schedule(static)
    for (int t = 0; t < k; t++)
        memcpy(dst + (size_t)idx[t] * dim, src + (size_t)t * dim, dim * sizeof(float));
}

/* ---- losses to maximise -------------------------------------------------- */

/* Targeted CW: -relu(max_{j != t} z_j - z_t + kappa), maximised as z_t
 * overtakes every other logit by kappa. */
static void cw_targeted(const float *logits, const int *t, int n, int c, float *dlogits,
                        float *per_example)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        float *d = dlogits + (size_t)i * c;
        int other;
        float gap = CORE_CW_KAPPA - attack_margin(z, c, t[i], &other);
        per_example[i] = gap > 0.0f ? -gap : 0.0f;
        memset(d, 0, (size_t)c * sizeof(float));
        if (gap > 0.0f) {
            d[t[i]] = 1.0f / (float)n;
            d[other] = -1.0f / (float)n;
        }
    }
}

void attack_loss_fn(void *vctx, const float *logits, int n, int c, float *dlogits,
                    float *per_example)
{
    const attack_loss_ctx *ctx = vctx;
    const int *t = ctx->target;
    switch (ctx->loss) {
    case CORE_ALOSS_DLR:
        core_loss_dlr(logits, ctx->y, t, n, c, dlogits, per_example);
        return;
    case CORE_ALOSS_CW:
        if (t)
            cw_targeted(logits, t, n, c, dlogits, per_example);
        else
            core_loss_cw(logits, ctx->y, n, c, CORE_CW_KAPPA, dlogits, per_example);
        return;
    case CORE_ALOSS_CE:
        core_loss_ce(logits, t ? t : ctx->y, n, c, dlogits, per_example);
        if (t) /* towards the target: maximise -CE(target) */
            for (size_t j = 0; j < (size_t)n * c; j++)
                dlogits[j] = -dlogits[j];
        if (t)
            for (int i = 0; i < n; i++)
                per_example[i] = -per_example[i];
        return;
    }
}

/* ---- the ascent engine --------------------------------------------------- */

static void ascent_round(const core_ascent_cfg *cfg, core_model *m, core_attack_ws *ws,
                         const float *x, int n, uint64_t stream, const int *ids,
                         uint64_t round, core_logit_loss_fn fn, void *ctx, float *x_adv)
{
    size_t dim = ws->dim;
    if (cfg->random_start == 1)
        attack_random_point(cfg->norm, cfg->eps, 0, x, x_adv, n, dim, cfg->seed, stream,
                            ATTACK_USE_START, ids, round);
    else if (cfg->random_start == 2)
        trades_start(cfg->eps, cfg->norm, x, x_adv, n, dim, cfg->seed, stream, ids, round);
    else
        memcpy(x_adv, x, (size_t)n * dim * sizeof(float));
    for (int s = 0; s < cfg->steps; s++) {
        const float *z = core_model_forward(m, x_adv, n);
        fn(ctx, z, n, m->nclass, ws->dlogits, ws->loss);
        core_model_backward(m, ws->dlogits, n, ws->grad, 0);
        attack_step(cfg->norm, cfg->alpha, NULL, x_adv, ws->grad, x_adv, n, dim);
        core_project(cfg->norm, cfg->eps, x, x_adv, n, dim);
    }
}

void core_ascent(const core_ascent_cfg *cfg, core_model *m, core_attack_ws *ws,
                 const float *x, int n, uint64_t stream, core_logit_loss_fn fn, void *ctx,
                 float *x_adv)
{
    if (n > ws->cap || n > m->capacity) {
        memcpy(x_adv, x, (size_t)n * ws->dim * sizeof(float));
        return;
    }
    ascent_round(cfg, m, ws, x, n, stream, cfg->ids, 0, fn, ctx, x_adv);
}

/* ---- FGSM, PGD, noise ---------------------------------------------------- */

/* Success of a restart: misclassified, or (targeted) classified as the target. */
static int restart_succeeded(const float *z, int c, int y, const int *target, int i)
{
    return target ? attack_margin(z, c, target[i], NULL) > 0.0f : attack_margin(z, c, y, NULL) <= 0.0f;
}

core_ascent_cfg core_attack_ascent(const core_attack_cfg *cfg)
{
    int fgsm = cfg->kind == CORE_ATTACK_FGSM;
    return (core_ascent_cfg){
        .norm = cfg->norm, .eps = cfg->eps, .seed = cfg->seed,
        .steps = fgsm ? 1 : cfg->steps,
        .alpha = fgsm ? cfg->eps : cfg->alpha > 0.0f ? cfg->alpha
                                                     : core_pgd_step(cfg->eps, cfg->steps),
        .random_start = fgsm ? 0 : cfg->random_start,
    };
}

static void attack_pgd(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                       const float *x, const int *y, const int *target, int n,
                       uint64_t stream, const int *ids, float *x_adv)
{
    core_ascent_cfg a = core_attack_ascent(cfg);
    /* Without randomness every restart would repeat the first. */
    int restarts = a.random_start ? cfg->restarts : 1;
    attack_loss_ctx ctx = {.loss = cfg->loss, .y = y, .target = target};
    size_t dim = ws->dim;
    int c = m->nclass;
    for (int r = 0; r < restarts; r++) {
        float *cur = ws->row[0];
        ascent_round(&a, m, ws, x, n, stream, ids, (uint64_t)r, attack_loss_fn, &ctx, cur);
        const float *z = core_model_forward(m, cur, n);
        attack_loss_fn(&ctx, z, n, c, ws->dlogits, ws->loss);
        for (int i = 0; i < n; i++) {
            int ok = restart_succeeded(z + (size_t)i * c, c, y[i], target, i);
            if (r > 0 && (ws->ex_done[i] || (!ok && !(ws->loss[i] > ws->ex_best[i]))))
                continue;
            memcpy(x_adv + (size_t)i * dim, cur + (size_t)i * dim, dim * sizeof(float));
            ws->ex_best[i] = ws->loss[i];
            ws->ex_done[i] = (uint8_t)ok;
        }
    }
}

/* ---- dispatch ------------------------------------------------------------ */

static int run_checks(const core_attack_cfg *cfg, const core_model *m, const core_attack_ws *ws,
                      const int *y, const int *target, int n, char *err)
{
    if (core_attack_cfg_check(cfg, err))
        return -1;
    if (ws->dim != core_shape_size(m->in) || ws->nclass != m->nclass)
        return core_errf(err, "attack workspace was made for another model shape");
    if (n < 0 || n > ws->cap)
        return core_errf(err, "invalid batch '%d' (the attack workspace holds %d)", n, ws->cap);
    if (n > m->capacity)
        return core_errf(err, "invalid batch '%d' (the model holds %d; call core_model_reserve)",
                         n, m->capacity);
    int c = m->nclass;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= c)
            return core_errf(err, "invalid label '%d' (must be in [0, %d))", y[i], c);
    int targeted = cfg->targeted && (cfg->kind == CORE_ATTACK_PGD || cfg->kind == CORE_ATTACK_FGSM);
    if (targeted && !target)
        return core_errf(err, "invalid targeted '1' (no target labels given)");
    for (int i = 0; targeted && i < n; i++)
        if (target[i] < 0 || target[i] >= c)
            return core_errf(err, "invalid target '%d' (must be in [0, %d))", target[i], c);
    if ((cfg->kind == CORE_ATTACK_APGD_T || cfg->kind == CORE_ATTACK_FAB_T) && cfg->n_targets >= c)
        return core_errf(err, "invalid n_targets '%d' (must be < %d classes)", cfg->n_targets, c);
    int dlr = cfg->loss == CORE_ALOSS_DLR || cfg->kind == CORE_ATTACK_APGD_T;
    int need = cfg->kind == CORE_ATTACK_APGD_T || (dlr && targeted) ? 4 : 3;
    if (dlr && c < need)
        return core_errf(err, "invalid loss 'dlr' (needs >= %d classes, the model has %d)", need, c);
    if ((cfg->kind == CORE_ATTACK_SQUARE || cfg->kind == CORE_ATTACK_FAB_T) &&
        cfg->norm != CORE_NORM_LINF)
        return core_errf(err, "invalid norm 'l2' for '%s' (only linf is supported)",
                         core_attack_kind_name(cfg->kind));
    return 0;
}

int attack_run_ids(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                   const float *x, const int *y, const int *target, int n, uint64_t stream,
                   const int *ids, float *x_adv, uint8_t *robust, char *err)
{
    if (run_checks(cfg, m, ws, y, target, n, err))
        return -1;
    if (n == 0)
        return 0;
    const int *t = cfg->targeted ? target : NULL;
    switch (cfg->kind) {
    case CORE_ATTACK_FGSM:
    case CORE_ATTACK_PGD:
        attack_pgd(cfg, m, ws, x, y, t, n, stream, ids, x_adv);
        break;
    case CORE_ATTACK_NOISE:
        attack_random_point(cfg->norm, cfg->eps, 0, x, x_adv, n, ws->dim, cfg->seed, stream,
                            ATTACK_USE_START, ids, 0);
        break;
    case CORE_ATTACK_APGD_CE:
    case CORE_ATTACK_APGD_T:
        if (attack_apgd(cfg, m, ws, x, y, n, stream, ids, x_adv, err))
            return -1;
        break;
    case CORE_ATTACK_SQUARE:
        if (attack_square(cfg, m, ws, x, y, n, stream, ids, x_adv, err))
            return -1;
        break;
    case CORE_ATTACK_FAB_T:
        if (attack_fab(cfg, m, ws, x, y, n, stream, ids, x_adv, err))
            return -1;
        break;
    }
    if (robust) {
        const float *z = core_model_forward(m, x_adv, n);
        for (int i = 0; i < n; i++)
            robust[i] = attack_margin(z + (size_t)i * m->nclass, m->nclass, y[i], NULL) > 0.0f;
    }
    return 0;
}

int core_attack_run(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                    const float *x, const int *y, const int *target, int n, uint64_t stream,
                    float *x_adv, uint8_t *robust, char *err)
{
    return attack_run_ids(cfg, m, ws, x, y, target, n, stream, NULL, x_adv, robust, err);
}
