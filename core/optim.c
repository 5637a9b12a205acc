/*
 * optim.c - SGD (momentum, Nesterov, L2 weight decay), Adam, and the
 * learning-rate / momentum schedules (see optim.h).
 *
 * Every formula mirrors the PyTorch implementation it stands in for
 * (torch.optim.SGD with dampening 0, torch.optim.Adam, OneCycleLR), down to
 * the order of the scalar operations, so that a run here can be compared
 * with the peer step by step. Scalars that PyTorch computes as Python floats
 * (bias corrections, schedule values) are computed here in double and only
 * then rounded to float.
 *
 * The update loops are element-wise with a static OpenMP schedule: each
 * element is touched by exactly one thread with the same arithmetic
 * whatever the thread count, so results are bit-for-bit reproducible.
 */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The state is written with memcpy of floats, which is only little-endian
 * on a little-endian host; every target we build for is one. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "optimiser state serialisation assumes a little-endian host");
_Static_assert(sizeof(float) == 4, "optimiser state assumes 32-bit floats");

/* OneCycleLR defaults (torch.optim.lr_scheduler.OneCycleLR). */
#define ONECYCLE_PCT_START 0.3
#define ONECYCLE_DIV 25.0
#define ONECYCLE_FINAL_DIV 1e4
#define ONECYCLE_BASE_MOM 0.85
#define ONECYCLE_MAX_MOM 0.95

/* ---------------------------------------------------------------- names */

core_opt_cfg core_opt_defaults(core_opt_kind kind)
{
    core_opt_cfg c = {.kind = kind, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind == CORE_OPT_ADAM) {
        c.lr = 1e-3f;
        c.momentum = 0.9f; /* beta1 */
    } else {
        c.lr = 0.05f;
        c.momentum = 0.9f;
        c.weight_decay = 5e-4f;
    }
    return c;
}

const char *core_opt_kind_name(core_opt_kind k)
{
    return k == CORE_OPT_ADAM ? "adam" : "sgd";
}

const char *core_sched_kind_name(core_sched_kind k)
{
    switch (k) {
    case CORE_SCHED_STEP:
        return "step";
    case CORE_SCHED_COSINE:
        return "cosine";
    case CORE_SCHED_ONECYCLE:
        return "onecycle";
    default:
        return "constant";
    }
}

int core_opt_kind_parse(const char *s, core_opt_kind *out, char *err)
{
    if (s && strcasecmp(s, "sgd") == 0)
        *out = CORE_OPT_SGD;
    else if (s && strcasecmp(s, "adam") == 0)
        *out = CORE_OPT_ADAM;
    else
        return core_errf(err, "unknown optimizer '%s' (expected sgd or adam)",
                         s ? s : "");
    return 0;
}

int core_sched_kind_parse(const char *s, core_sched_kind *out, char *err)
{
    static const struct {
        const char *name;
        core_sched_kind kind;
    } names[] = {
        {"constant", CORE_SCHED_CONSTANT}, {"step", CORE_SCHED_STEP},
        {"cosine", CORE_SCHED_COSINE},     {"onecycle", CORE_SCHED_ONECYCLE},
        {"one-cycle", CORE_SCHED_ONECYCLE},
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    }
    return core_errf(err, "unknown schedule '%s' (expected constant, step, "
                          "cosine or onecycle)", s ? s : "");
}

/* ------------------------------------------------------- init and free */

/* Each test is written as !(ok) so that NaN fails it. */
static int validate(const core_opt_cfg *c, char *err)
{
    int adam = c->kind == CORE_OPT_ADAM;
    if (c->kind != CORE_OPT_SGD && !adam)
        return core_errf(err, "invalid optimizer kind '%d'", (int)c->kind);
    if (!(c->lr > 0 && isfinite(c->lr)))
        return core_errf(err, "invalid learning rate '%g' (must be > 0)",
                         (double)c->lr);
    if (!(c->momentum >= 0 && c->momentum < 1))
        return core_errf(err, "invalid %s '%g' (must be in [0, 1))",
                         adam ? "beta1" : "momentum", (double)c->momentum);
    if (!(c->weight_decay >= 0 && isfinite(c->weight_decay)))
        return core_errf(err, "invalid weight decay '%g' (must be >= 0)",
                         (double)c->weight_decay);
    if (adam && !(c->beta2 >= 0 && c->beta2 < 1))
        return core_errf(err, "invalid beta2 '%g' (must be in [0, 1))",
                         (double)c->beta2);
    if (adam && !(c->eps > 0 && isfinite(c->eps)))
        return core_errf(err, "invalid eps '%g' (must be > 0)", (double)c->eps);
    /* torch.optim.SGD refuses Nesterov without momentum: it would silently
     * be plain SGD. */
    if (!adam && c->nesterov && !(c->momentum > 0))
        return core_errf(err, "invalid nesterov '%d' (requires momentum > 0)",
                         c->nesterov);
    return 0;
}

int core_optim_init(core_optim *o, const core_opt_cfg *cfg, size_t nparams, char *err)
{
    memset(o, 0, sizeof *o);
    if (validate(cfg, err))
        return -1;
    if (nparams > SIZE_MAX / 2 / sizeof(float))
        return core_errf(err, "too many parameters '%zu'", nparams);
    o->cfg = *cfg;
    o->n = nparams;
    o->m = core_alloc(nparams * sizeof(float));
    if (cfg->kind == CORE_OPT_ADAM)
        o->v = core_alloc(nparams * sizeof(float));
    if (!o->m || (cfg->kind == CORE_OPT_ADAM && !o->v)) {
        core_optim_free(o);
        return core_errf(err, "cannot allocate optimizer state for '%zu' "
                              "parameters", nparams);
    }
    return 0;
}

void core_optim_free(core_optim *o)
{
    core_free(o->m);
    core_free(o->v);
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------- updates */

/* torch.optim.SGD, dampening 0. On the first step the buffer is g itself
 * (torch clones d_p). With a zeroed buffer mom * 0 + g is already g, but
 * saying so explicitly keeps torch's rule true whatever the buffer holds
 * (a state read with t = 0, a -0.0 gradient). */
static void sgd_step(core_optim *o, float *restrict w, const float *restrict grad,
                     float lr, float mom)
{
    float *restrict buf = o->m;
    const float wd = o->cfg.weight_decay;
    const int first = o->t == 0, nesterov = o->cfg.nesterov;
    const ptrdiff_t n = (ptrdiff_t)o->n;

#pragma omp parallel for simd schedule(static)
    for (ptrdiff_t i = 0; i < n; i++) {
        float g = grad[i] + wd * w[i];
        float b = first ? g : mom * buf[i] + g;
        buf[i] = b;
        w[i] -= lr * (nesterov ? g + mom * b : b);
    }
}

/* torch.optim.Adam (1.13 single-tensor path): L2 decay folded into the
 * gradient, then w -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). The
 * bias corrections use this step's beta1, as torch does when one-cycle
 * rewrites betas[0] between steps. */
static void adam_step(core_optim *o, float *restrict w, const float *restrict grad,
                      float lr, float beta1)
{
    float *restrict m = o->m, *restrict v = o->v;
    const float wd = o->cfg.weight_decay, beta2 = o->cfg.beta2, eps = o->cfg.eps;
    const double step = (double)(o->t + 1);
    const float step_size = (float)((double)lr / (1.0 - pow(beta1, step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
    const float a1 = (float)(1.0 - (double)beta1), a2 = (float)(1.0 - (double)beta2);
    const ptrdiff_t n = (ptrdiff_t)o->n;

#pragma omp parallel for simd schedule(static)
    for (ptrdiff_t i = 0; i < n; i++) {
        float g = grad[i] + wd * w[i];
        float mi = beta1 * m[i] + a1 * g;
        float vi = beta2 * v[i] + a2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

void core_optim_step(core_optim *o, float *params, const float *grads, float lr, float mom)
{
    if (o->cfg.kind == CORE_OPT_ADAM)
        adam_step(o, params, grads, lr, mom);
    else
        sgd_step(o, params, grads, lr, mom);
    o->t++;
}

/* ----------------------------------------------------------- schedules */

/* OneCycleLR._annealing_cos: start at pct 0, end at pct 1. */
static double anneal_cos(double start, double end, double pct)
{
    return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1.0);
}

/* OneCycleLR.get_lr with two phases. Phase boundaries are the float steps
 * torch uses (0.3 * total - 1, then total - 1), not rounded ones, so the
 * peak can fall between two steps exactly as it does in torch. */
static core_sched_point onecycle_at(double max_lr, int64_t t, int64_t total)
{
    const double initial = max_lr / ONECYCLE_DIV;
    const double min_lr = initial / ONECYCLE_FINAL_DIV;
    const double end1 = ONECYCLE_PCT_START * (double)total - 1.0;
    const double end2 = (double)total - 1.0;
    double start, pct, lr, mom;

    if ((double)t <= end1) {
        start = 0.0;
        pct = ((double)t - start) / (end1 - start);
        lr = anneal_cos(initial, max_lr, pct);
        mom = anneal_cos(ONECYCLE_MAX_MOM, ONECYCLE_BASE_MOM, pct);
    } else {
        start = end1;
        pct = ((double)t - start) / (end2 - start);
        lr = anneal_cos(max_lr, min_lr, pct);
        mom = anneal_cos(ONECYCLE_BASE_MOM, ONECYCLE_MAX_MOM, pct);
    }
    return (core_sched_point){(float)lr, (float)mom};
}

core_sched_point core_sched_at(const core_sched_cfg *s, const core_opt_cfg *o,
                               int64_t t, int64_t total_steps, int steps_per_epoch)
{
    core_sched_point p = {o->lr, o->momentum};
    const double lr = o->lr;

    if (t < 0)
        t = 0;
    switch (s->kind) {
    case CORE_SCHED_STEP: {
        /* A degenerate period means "never decay" rather than a division
         * by zero. */
        if (steps_per_epoch <= 0 || s->step_epochs <= 0)
            break;
        int64_t epoch = t / steps_per_epoch;
        p.lr = (float)(lr * pow(s->gamma, (double)(epoch / s->step_epochs)));
        break;
    }
    case CORE_SCHED_COSINE:
        if (total_steps <= 0)
            break;
        /* Past the end the cosine would climb again; hold the floor. */
        if (t > total_steps)
            t = total_steps;
        p.lr = (float)((double)s->lr_min + (lr - (double)s->lr_min) *
                       (1.0 + cos(M_PI * (double)t / (double)total_steps)) / 2.0);
        break;
    case CORE_SCHED_ONECYCLE:
        /* torch raises past the end; holding the last step's values lets a
         * caller that overruns by a step keep the final (tiny) rate. */
        if (total_steps < 1)
            total_steps = 1;
        if (t > total_steps - 1)
            t = total_steps - 1;
        p = onecycle_at(lr, t, total_steps);
        break;
    default:
        break;
    }
    return p;
}

/* -------------------------------------------------------- (de)serialise */

size_t core_optim_state_size(const core_optim *o)
{
    size_t moments = o->cfg.kind == CORE_OPT_ADAM ? 2 : 1;
    return sizeof(int64_t) + moments * o->n * sizeof(float);
}

void core_optim_state_write(const core_optim *o, uint8_t *buf)
{
    uint64_t t = (uint64_t)o->t;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(t >> (8 * i));
    buf += 8;
    memcpy(buf, o->m, o->n * sizeof(float));
    if (o->cfg.kind == CORE_OPT_ADAM)
        memcpy(buf + o->n * sizeof(float), o->v, o->n * sizeof(float));
}

void core_optim_state_read(core_optim *o, const uint8_t *buf)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t |= (uint64_t)buf[i] << (8 * i);
    o->t = (int64_t)t;
    buf += 8;
    memcpy(o->m, buf, o->n * sizeof(float));
    if (o->cfg.kind == CORE_OPT_ADAM)
        memcpy(o->v, buf + o->n * sizeof(float), o->n * sizeof(float));
}
