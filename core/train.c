/*
 * train.c - the training loop (see train.h).
 *
 * One batch: gather, make the inputs of the method (clean, PGD, FGSM-RS or
 * TRADES' KL ascent), forward, loss, backward, optimiser step with the
 * schedule's learning rate. One epoch: shuffle, batches, then validation
 * (clean and PGD-20) and, for fgsm-rs, the catastrophic-overfitting guard:
 * PGD accuracy on a fixed training batch; a drop of more than 20 points
 * from the previous epoch restores the weights of the epoch's start and
 * ends training early (Wong et al. 2020 stop early for the same reason).
 */
#include "train.h"

#include "loss.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CO_GUARD_DROP 0.20f
#define VAL_PGD_STEPS 20
#define GUARD_PGD_STEPS 10

/* ---- configuration ------------------------------------------------------ */

static const char *const method_names[] = {"clean", "pgd", "fgsm-rs", "trades"};

const char *core_method_name(core_method m)
{
    return (unsigned)m < 4 ? method_names[m] : "?";
}

int core_method_parse(const char *s, core_method *out, char *err)
{
    int i = core_name_index(s, method_names, 4);
    if (i >= 0) {
        *out = (core_method)i;
        return 0;
    }
    return core_errf(err, "unknown method '%s' (expected clean, pgd, fgsm-rs or trades)", s);
}

core_train_cfg core_train_defaults(void)
{
    return (core_train_cfg){
        .epochs = 2, .batch = 128, .seed = 0,
        .opt = core_opt_defaults(CORE_OPT_SGD),
        .sched = {.kind = CORE_SCHED_ONECYCLE, .step_epochs = 1, .gamma = 0.1f},
        .method = CORE_METHOD_PGD, .norm = CORE_NORM_LINF, .eps = 0.1f, .steps = 7,
        .mix = 1.0f, .trades_beta = 6.0f, .val_size = 1000, .val_robust_size = 500,
        .co_guard = 1, .augment = core_augment_defaults(), .init = CORE_INIT_TORCH,
    };
}

static int bad_float(float v, float lo, float hi)
{
    return !(v >= lo && v <= hi);
}

int core_train_cfg_check(const core_train_cfg *c, char *err)
{
    if (c->epochs < 1 || c->epochs > 100000)
        return core_errf(err, "invalid epochs '%d' (must be in [1, 100000])", c->epochs);
    if (c->batch < 1 || c->batch > CORE_MAX_BATCH)
        return core_errf(err, "invalid batch '%d' (must be in [1, %d])", c->batch, CORE_MAX_BATCH);
    if (c->train_last < 0 || c->train_last > CORE_MAX_LAYERS)
        return core_errf(err, "invalid train_last '%d' (must be in [0, %d])", c->train_last,
                         CORE_MAX_LAYERS);
    if (core_augment_check(&c->augment, err))
        return -1;
    if ((unsigned)c->method > CORE_METHOD_TRADES)
        return core_errf(err, "invalid method '%d'", (int)c->method);
    if (bad_float(c->eps, 0.0f, c->norm == CORE_NORM_LINF ? 1.0f : 1000.0f))
        return core_errf(err, "invalid eps '%g' (must be in [0, %s])", c->eps,
                         c->norm == CORE_NORM_LINF ? "1" : "1000");
    if (bad_float(c->alpha, 0.0f, 1000.0f))
        return core_errf(err, "invalid alpha '%g' (must be >= 0)", c->alpha);
    if (c->steps < 1 || c->steps > 10000)
        return core_errf(err, "invalid steps '%d' (must be in [1, 10000])", c->steps);
    if (bad_float(c->mix, 1e-6f, 1.0f))
        return core_errf(err, "invalid mix '%g' (must be in (0, 1])", c->mix);
    if (bad_float(c->trades_beta, 0.0f, 1000.0f))
        return core_errf(err, "invalid trades-beta '%g' (must be in [0, 1000])", c->trades_beta);
    if (c->eps_ramp_epochs < 0 || c->eps_ramp_epochs > c->epochs)
        return core_errf(err, "invalid eps-ramp '%d' (must be in [0, epochs])", c->eps_ramp_epochs);
    if (c->val_size < 0 || c->val_robust_size < 0)
        return core_errf(err, "invalid val-size '%d' (must be >= 0)", c->val_size);
    return 0;
}

/* ---- creation ----------------------------------------------------------- */

static int alloc_buffers(core_trainer *t, char *err)
{
    const int B = t->cfg.batch, C = t->data->nclass;
    const size_t dim = core_shape_size(t->data->shape);
    t->order = core_alloc(sizeof(int) * (size_t)t->split.ntrain);
    t->x = core_alloc(sizeof(float) * B * dim);
    t->x_adv = core_alloc(sizeof(float) * B * dim);
    t->y = core_alloc(sizeof(int) * B);
    const int views = t->cfg.augment.augmix ? 3 : 1; /* AugMix: the batch and two views */
    t->dlogits = core_alloc(sizeof(float) * views * B * C);
    t->probs = core_alloc(sizeof(float) * 3 * B * C);
    if (views > 1 && !(t->x_mix = core_alloc(sizeof(float) * views * B * dim)))
        return core_errf(err, "out of memory for AugMix's views");
    if (!t->order || !t->x || !t->x_adv || !t->y || !t->dlogits || !t->probs)
        return core_errf(err, "out of memory for a batch of %d", B);
    if (t->cfg.method == CORE_METHOD_FGSM_RS && t->cfg.co_guard) {
        t->snapshot = core_alloc(sizeof(float) * t->model->nparams);
        t->opt_snapshot = core_alloc(core_optim_state_size(&t->opt));
        if (!t->snapshot || !t->opt_snapshot)
            return core_errf(err, "out of memory for the overfitting guard");
    }
    return 0;
}

int core_trainer_create(const core_train_cfg *cfg, const char *model_spec,
                        const core_dataset *train, core_trainer **out, char *err)
{
    if (core_train_cfg_check(cfg, err))
        return -1;
    if (cfg->val_size >= train->n)
        return core_errf(err, "invalid val-size '%d' (the training set has %d examples)",
                         cfg->val_size, train->n);
    core_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return core_errf(err, "out of memory");
    t->cfg = *cfg;
    t->data = train;
    t->progress.seed = cfg->seed;
    t->co_last_acc = NAN;
    if (core_model_create(model_spec, train->shape, train->nclass, cfg->seed, &t->model, err))
        goto fail;
    if (cfg->init != CORE_INIT_HE) /* core_model_create initialised with He */
        core_model_init(t->model, cfg->seed, cfg->init);
    core_model_freeze(t->model, cfg->train_last);
    if (core_model_reserve(t->model, cfg->augment.augmix ? 3 * cfg->batch : cfg->batch, err) ||
        core_optim_init(&t->opt, &cfg->opt, t->model->nparams - t->model->frozen, err) ||
        core_data_split_make(train->n, cfg->val_size, cfg->seed, &t->split, err) ||
        core_attack_ws_create(t->model, cfg->batch, &t->ws, err) || alloc_buffers(t, err))
        goto fail;
    t->batches_per_epoch = (t->split.ntrain + cfg->batch - 1) / cfg->batch;
    *out = t;
    return 0;
fail:
    core_trainer_free(t);
    return -1;
}

void core_trainer_free(core_trainer *t)
{
    if (!t)
        return;
    core_model_free(t->model);
    core_optim_free(&t->opt);
    core_data_split_free(&t->split);
    core_attack_ws_free(t->ws);
    core_free(t->order);
    core_free(t->x);
    core_free(t->x_adv);
    core_free(t->y);
    core_free(t->dlogits);
    core_free(t->probs);
    core_free(t->x_mix);
    core_free(t->ids);
    core_free(t->snapshot);
    core_free(t->opt_snapshot);
    free(t);
}

/* ---- one batch ---------------------------------------------------------- */

static void ce_loss_fn(void *ctx, const float *logits, int n, int c, float *dlogits,
                       float *per_example)
{
    core_loss_ce(logits, (const int *)ctx, n, c, dlogits, per_example);
}

/* TRADES' inner loss: KL(p || softmax(z)) per example, p the clean
 * probabilities (ctx); its gradient with respect to z is softmax(z) - p. */
static void kl_loss_fn(void *ctx, const float *logits, int n, int c, float *dlogits,
                       float *per_example)
{
    const float *p = ctx;
    core_softmax(logits, dlogits, n, c);
    for (int i = 0; i < n; i++) {
        float kl = 0.0f;
        for (int j = 0; j < c; j++) {
            size_t k = (size_t)i * c + j;
            if (p[k] > 0.0f)
                kl += p[k] * (logf(p[k]) - logf(fmaxf(dlogits[k], 1e-30f)));
            dlogits[k] -= p[k];
        }
        if (per_example)
            per_example[i] = kl;
    }
}

static float step_size(const core_train_cfg *c, float eps)
{
    if (c->alpha > 0.0f)
        return c->alpha;
    return c->method == CORE_METHOD_FGSM_RS ? 1.25f * eps : core_pgd_step(eps, c->steps);
}

/* Adversarial inputs of the first nadv examples into x_adv, the rest clean. */
static void make_adversarial(core_trainer *t, int n, float eps, core_logit_loss_fn fn, void *ctx,
                             int nadv)
{
    const core_train_cfg *c = &t->cfg;
    const size_t dim = core_shape_size(t->data->shape);
    core_ascent_cfg a = {
        .norm = c->norm, .eps = eps, .alpha = step_size(c, eps),
        .steps = c->method == CORE_METHOD_FGSM_RS ? 1 : c->steps,
        .random_start = c->method == CORE_METHOD_TRADES ? 2 : 1, .seed = c->seed,
        .ids = t->dist ? t->ids : NULL,
    };
    if (nadv > 0)
        core_ascent(&a, t->model, t->ws, t->x, nadv,
                    CORE_STREAM_ATTACK + (uint64_t)t->progress.step, fn, ctx, t->x_adv);
    memcpy(t->x_adv + (size_t)nadv * dim, t->x + (size_t)nadv * dim,
           sizeof(float) * (size_t)(n - nadv) * dim);
}

/* Plain cross-entropy step on inputs xin; returns the loss, counts correct. */
static float ce_step(core_trainer *t, const float *xin, int n, int *correct)
{
    const int C = t->model->nclass;
    const float *z = core_model_forward(t->model, xin, n);
    float loss = core_loss_ce(z, t->y, n, C, t->dlogits, NULL);
    *correct = core_count_correct(z, t->y, n, C);
    core_model_backward(t->model, t->dlogits, n, NULL, 1);
    return loss;
}

/* TRADES: the KL term's gradient reaches both the adversarial logits
 * (q - p) and the clean ones (p * (log p - log q - KL)), so the model runs
 * forward and backward twice, accumulating parameter gradients. */
static float trades_step(core_trainer *t, int n, float eps, int *correct)
{
    const int C = t->model->nclass;
    const float beta = t->cfg.trades_beta;
    float *p = t->probs, *q = t->probs + (size_t)n * C;
    core_softmax(core_model_forward(t->model, t->x, n), p, n, C);
    if (eps > 0.0f)
        make_adversarial(t, n, eps, kl_loss_fn, p, n);
    else
        memcpy(t->x_adv, t->x, sizeof(float) * n * core_shape_size(t->data->shape));
    const float *za = core_model_forward(t->model, t->x_adv, n);
    *correct = core_count_correct(za, t->y, n, C);
    core_softmax(za, q, n, C);
    for (int i = 0; i < n * C; i++)
        t->dlogits[i] = beta * (q[i] - p[i]) / (float)n;
    core_model_backward(t->model, t->dlogits, n, NULL, 1);
    const float *z = core_model_forward(t->model, t->x, n);
    float ce = core_loss_ce(z, t->y, n, C, t->dlogits, NULL);
    double kl_total = 0.0;
    for (int i = 0; i < n; i++) {
        double kl = 0.0;
        for (int j = 0; j < C; j++) {
            size_t k = (size_t)i * C + j;
            if (p[k] > 0.0f)
                kl += p[k] * (log(p[k]) - log(fmax(q[k], 1e-30)));
        }
        kl_total += kl;
        for (int j = 0; j < C; j++) {
            size_t k = (size_t)i * C + j;
            double lr = p[k] > 0.0f ? log(p[k]) - log(fmax(q[k], 1e-30)) : 0.0;
            t->dlogits[k] += beta * (float)(p[k] * (lr - kl)) / (float)n;
        }
    }
    core_model_backward(t->model, t->dlogits, n, NULL, 1);
    return ce + beta * (float)(kl_total / n);
}

/* AugMix's batch and two views of the gathered batch of n into x_mix,
 * before a rank takes its share, so the views are one process's. */
static int augmix_views(core_trainer *t, int n, char *err)
{
    const size_t per = (size_t)n * core_shape_size(t->data->shape);
    memcpy(t->x_mix, t->x, sizeof(float) * per);
    for (int v = 0; v < 2; v++)
        if (core_augmix(&t->cfg.augment, t->x, t->x_mix + (1 + v) * per, n, t->data->shape,
                        t->cfg.seed, t->progress.step, v, err))
            return -1;
    return 0;
}

/* AugMix's Jensen-Shannon term on the batch x and its two views (x_mix,
 * augmix_views): lambda * JS(p_x, p_1, p_2), JS = mean_i KL(p_i || M), M
 * their mean. Its gradient with respect to view i's probabilities is
 * lambda (log p_i - log M) / 3; through the softmax, dz = p (g - <p, g>).
 * Accumulates parameter gradients; returns the term. */
static float augmix_step(core_trainer *t, int n)
{
    const core_augment_cfg *a = &t->cfg.augment;
    const int C = t->model->nclass;
    float *p = t->probs;
    core_softmax(core_model_forward(t->model, t->x_mix, 3 * n), p, 3 * n, C);
    double js = 0.0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < C; k++) {
            float pk[3], m = 0.0f;
            for (int v = 0; v < 3; v++)
                m += (pk[v] = fmaxf(p[((size_t)v * n + i) * C + k], 1e-12f)) / 3.0f;
            for (int v = 0; v < 3; v++) {
                float g = a->augmix_js * (logf(pk[v]) - logf(m)) / 3.0f;
                js += pk[v] * (logf(pk[v]) - logf(m)) / 3.0;
                t->dlogits[((size_t)v * n + i) * C + k] = g; /* g first, softmax below */
            }
        }
    for (int r = 0; r < 3 * n; r++) {
        float *g = t->dlogits + (size_t)r * C, *pr = p + (size_t)r * C, dot = 0.0f;
        for (int k = 0; k < C; k++)
            dot += pr[k] * g[k];
        for (int k = 0; k < C; k++)
            g[k] = pr[k] * (g[k] - dot) / (float)n;
    }
    core_model_backward(t->model, t->dlogits, 3 * n, NULL, 1);
    return a->augmix_js * (float)(js / n);
}

/* One batch's gradients of this rank's n examples (all of them in one
 * process); returns their mean loss, counts the correct ones. */
static float train_batch(core_trainer *t, int n, float eps, int *correct)
{
    const core_train_cfg *c = &t->cfg;
    core_model_zero_grad(t->model);
    switch (c->method) {
    case CORE_METHOD_TRADES:
        return trades_step(t, n, eps, correct);
    case CORE_METHOD_PGD:
    case CORE_METHOD_FGSM_RS: {
        /* The first nadv of the global batch are attacked; of them, this
         * rank holds those from its share's start lo. */
        int nadv = c->method == CORE_METHOD_PGD ? (int)lroundf(c->mix * (float)t->bn) : t->bn;
        if (eps <= 0.0f || nadv < 1)
            return ce_step(t, t->x, n, correct);
        int mine = nadv - t->lo < 0 ? 0 : nadv - t->lo > n ? n : nadv - t->lo;
        make_adversarial(t, n, eps, ce_loss_fn, t->y, mine);
        return ce_step(t, t->x_adv, n, correct);
    }
    case CORE_METHOD_CLEAN:
        break;
    }
    return ce_step(t, t->x, n, correct);
}

/* ---- epochs ------------------------------------------------------------- */

static float eps_at(const core_trainer *t, int64_t step)
{
    if (t->cfg.eps_ramp_epochs <= 0)
        return t->cfg.eps;
    double ramp = (double)t->cfg.eps_ramp_epochs * t->batches_per_epoch;
    return t->cfg.eps * (float)fmin(1.0, (double)(step + 1) / ramp);
}

static core_sched_point sched_at(const core_trainer *t, int64_t step)
{
    int64_t total = (int64_t)t->cfg.epochs * t->batches_per_epoch;
    return core_sched_at(&t->cfg.sched, &t->cfg.opt, step, total, t->batches_per_epoch);
}

static core_attack_cfg pgd_cfg(const core_trainer *t, int steps)
{
    core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, t->cfg.eps);
    a.norm = t->cfg.norm;
    a.steps = steps;
    a.alpha = core_pgd_step(t->cfg.eps, steps);
    a.seed = t->cfg.seed;
    return a;
}

static int validate(core_trainer *t, core_epoch_info *info, char *err)
{
    info->val_loss = info->val_clean_acc = info->val_robust_acc = NAN;
    if (t->split.nval == 0)
        return 0;
    core_eval_result r;
    if (core_evaluate(t->model, t->ws, t->data, t->split.val, t->split.nval, t->cfg.batch, NULL,
                      0, &r, err))
        return -1;
    info->val_loss = (float)r.clean_loss;
    info->val_clean_acc = (float)r.clean_acc;
    int nrob = t->cfg.val_robust_size < t->split.nval ? t->cfg.val_robust_size : t->split.nval;
    if (nrob == 0 || t->cfg.eps <= 0.0f)
        return 0;
    core_attack_cfg a = pgd_cfg(t, VAL_PGD_STEPS);
    if (core_evaluate(t->model, t->ws, t->data, t->split.val, nrob, t->cfg.batch, &a,
                      CORE_STREAM_EVAL + (uint64_t)info->epoch, &r, err))
        return -1;
    info->val_robust_acc = (float)r.robust_acc;
    return 0;
}

static void guard_snapshot(core_trainer *t)
{
    if (!t->snapshot)
        return;
    memcpy(t->snapshot, t->model->params, sizeof(float) * t->model->nparams);
    core_optim_state_write(&t->opt, t->opt_snapshot);
}

/* The fgsm-rs guard; returns 1 when it rolled the epoch back. */
static int guard_check(core_trainer *t, core_epoch_info *info, char *err)
{
    info->co_pgd_acc = NAN;
    if (!t->snapshot || t->cfg.eps <= 0.0f)
        return 0;
    int n = t->cfg.batch < t->split.ntrain ? t->cfg.batch : t->split.ntrain;
    core_attack_cfg a = pgd_cfg(t, GUARD_PGD_STEPS);
    core_eval_result r;
    if (core_evaluate(t->model, t->ws, t->data, t->split.train, n, t->cfg.batch, &a,
                      CORE_STREAM_GUARD + (uint64_t)info->epoch, &r, err))
        return -1;
    info->co_pgd_acc = (float)r.robust_acc;
    int collapsed = !isnan(t->co_last_acc) && t->co_last_acc - info->co_pgd_acc > CO_GUARD_DROP;
    if (!collapsed) {
        t->co_last_acc = info->co_pgd_acc;
        return 0;
    }
    memcpy(t->model->params, t->snapshot, sizeof(float) * t->model->nparams);
    core_optim_state_read(&t->opt, t->opt_snapshot);
    return 1;
}

static int finish_epoch(core_trainer *t, double t0, int64_t seen0, const core_train_hooks *h,
                        char *err)
{
    core_progress *p = &t->progress;
    double dt = core_now_s() - t0;
    core_epoch_info info = {
        .epoch = (int)p->epoch,
        .train_loss = p->seen ? (float)(p->loss_sum / (double)p->seen) : NAN,
        .train_acc = p->seen ? (float)((double)p->correct / (double)p->seen) : NAN,
        .lr = sched_at(t, p->step > 0 ? p->step - 1 : 0).lr, .eps = eps_at(t, p->step - 1),
        .images_per_s = dt > 0 ? (double)(p->seen - seen0) / dt : 0.0, .seconds = dt,
    };
    int rolled = guard_check(t, &info, err);
    if (rolled < 0 || validate(t, &info, err))
        return -1;
    info.rolled_back = rolled;
    p->epoch++;
    p->loss_sum = 0.0;
    p->correct = p->seen = 0;
    if (rolled) {
        t->stopped_early = 1;
        p->epoch = t->cfg.epochs;
    }
    return h && h->on_epoch && h->on_epoch(h->ctx, &info) ? 1 : 0;
}

/* Data parallel: this rank's share of the gathered batch of n moved to
 * the front of the batch buffers (and of AugMix's views); *count set. */
static void take_share(core_trainer *t, int n, int *count)
{
    const size_t dim = core_shape_size(t->data->shape);
    int lo;
    core_dist_share(n, t->dist->rank, t->dist->size, &lo, count);
    const size_t k = (size_t)*count;
    memmove(t->x, t->x + lo * dim, sizeof(float) * k * dim);
    memmove(t->y, t->y + lo, sizeof(int) * k);
    for (int v = 0; t->x_mix && v < 3; v++)
        memmove(t->x_mix + v * k * dim, t->x_mix + ((size_t)v * n + lo) * dim,
                sizeof(float) * k * dim);
    for (int i = 0; i < *count; i++)
        t->ids[i] = lo + i;
    t->lo = lo;
}

/* Data parallel: the global batch's gradient (each rank's mean over its
 * share, weighted by the share's size, summed over ranks), loss and
 * correct count. */
static int reduce_batch(core_trainer *t, int count, float *loss, int *correct, char *err)
{
    core_model *m = t->model;
    const float w = (float)count / (float)t->bn;
    float *g = m->grads + m->frozen;
    const size_t ng = (size_t)(m->nparams - m->frozen);
    for (size_t i = 0; i < ng; i++)
        g[i] *= w;
    double tot[2] = {(double)*loss * count, (double)*correct};
    if (core_dist_sum(t->dist, g, ng, CORE_DIST_F32, err) ||
        core_dist_sum(t->dist, tot, 2, CORE_DIST_F64, err))
        return -1;
    *loss = (float)(tot[0] / t->bn);
    *correct = (int)tot[1];
    return 0;
}

/* Batch b of the epoch gathered and augmented (the whole global batch on
 * every rank), then this rank's share taken; returns its size, -1. */
static int load_batch(core_trainer *t, int b, char *err)
{
    const int B = t->cfg.batch;
    int n = b * B + B <= t->split.ntrain ? B : t->split.ntrain - b * B, count = n;
    core_dataset_gather(t->data, t->order + (size_t)b * B, n, t->x, t->y);
    if (core_augment_batch(&t->cfg.augment, t->x, n, t->data->shape, t->cfg.seed,
                           t->progress.step, err) ||
        (t->cfg.augment.augmix && augmix_views(t, n, err)))
        return -1;
    t->bn = n;
    t->lo = 0;
    if (t->dist)
        take_share(t, n, &count);
    return count;
}

/* One optimiser step on batch b; its loss and correct count (global). */
static int step_batch(core_trainer *t, int b, float *loss, int *correct, char *err)
{
    core_progress *p = &t->progress;
    int count = load_batch(t, b, err);
    if (count < 0)
        return -1;
    core_sched_point sp = sched_at(t, p->step);
    *correct = 0;
    *loss = count ? train_batch(t, count, eps_at(t, p->step), correct) : 0.0f;
    if (count && t->cfg.augment.augmix)
        *loss += augmix_step(t, count);
    if (!count)
        core_model_zero_grad(t->model);
    if (t->dist && reduce_batch(t, count, loss, correct, err))
        return -1;
    core_optim_step(&t->opt, t->model->params + t->model->frozen,
                    t->model->grads + t->model->frozen, sp.lr, sp.momentum);
    p->step++;
    p->loss_sum += (double)*loss * t->bn;
    p->correct += *correct;
    p->seen += t->bn;
    return 0;
}

/* Runs the rest of the current epoch; 1 when a hook asked to stop. */
static int run_epoch(core_trainer *t, const core_train_hooks *h, char *err)
{
    core_progress *p = &t->progress;
    const int bpe = t->batches_per_epoch;
    memcpy(t->order, t->split.train, sizeof(int) * (size_t)t->split.ntrain);
    core_rng_shuffle(t->cfg.seed, CORE_STREAM_SHUFFLE + (uint64_t)p->epoch, t->order,
                     t->split.ntrain);
    int first = (int)(p->step - p->epoch * bpe);
    if (first == 0)
        guard_snapshot(t);
    double t0 = core_now_s();
    int64_t seen0 = p->seen;
    for (int b = first; b < bpe; b++) {
        float loss;
        int correct;
        if (step_batch(t, b, &loss, &correct, err))
            return -1;
        double dt = core_now_s() - t0;
        core_batch_info bi = {
            .step = p->step, .epoch = (int)p->epoch, .batch = b, .batches = bpe, .loss = loss,
            .acc = (float)correct / (float)t->bn, .lr = sched_at(t, p->step - 1).lr,
            .eps = eps_at(t, p->step - 1),
            .images_per_s = dt > 0 ? (double)(p->seen - seen0) / dt : 0.0,
        };
        if (h && h->on_batch && h->on_batch(h->ctx, &bi))
            return 1;
    }
    return finish_epoch(t, t0, seen0, h, err);
}

int core_trainer_set_dist(core_trainer *t, core_dist *d, char *err)
{
    t->dist = d && d->size > 1 ? d : NULL;
    if (t->dist && !t->ids && !(t->ids = core_alloc(sizeof(int) * (size_t)t->cfg.batch)))
        return core_errf(err, "out of memory");
    return 0;
}

int core_trainer_run(core_trainer *t, const core_train_hooks *hooks, char *err)
{
    while (t->progress.epoch < t->cfg.epochs) {
        int r = run_epoch(t, hooks, err);
        if (r)
            return r;
    }
    return 0;
}

/* ---- checkpoints, evaluation -------------------------------------------- */

int core_trainer_init_from(core_trainer *t, const uint8_t *buf, size_t len, int *reinit,
                           char *err)
{
    core_model *src;
    if (core_state_model(buf, len, &src, err))
        return -1;
    int rc = core_model_transfer(t->model, src, reinit, err);
    core_model_free(src);
    return rc;
}

int core_trainer_save(const core_trainer *t, uint8_t **buf, size_t *len, char *err)
{
    return core_state_save(t->model, &t->opt, &t->progress, buf, len, err);
}

int core_trainer_load(core_trainer *t, const uint8_t *buf, size_t len, char *err)
{
    core_progress p;
    if (core_state_load(t->model, &t->opt, &p, buf, len, err))
        return -1;
    if (p.seed != t->cfg.seed)
        return core_errf(err, "checkpoint seed '%llu' differs from the job's '%llu'",
                         (unsigned long long)p.seed, (unsigned long long)t->cfg.seed);
    t->progress = p;
    return 0;
}

int core_evaluate(core_model *m, core_attack_ws *ws, const core_dataset *ds, const int *idx,
                  int n, int batch, const core_attack_cfg *attack, uint64_t stream,
                  core_eval_result *out, char *err)
{
    const size_t dim = core_shape_size(ds->shape);
    float *x = core_alloc(sizeof(float) * batch * dim), *xa = core_alloc(sizeof(float) * batch * dim);
    int *y = core_alloc(sizeof(int) * batch);
    uint8_t *robust = core_alloc((size_t)batch);
    int rc = 0;
    if (!x || !xa || !y || !robust) {
        rc = core_errf(err, "out of memory for an evaluation batch of %d", batch);
        goto done;
    }
    double loss = 0.0;
    int64_t ok = 0, rob = 0;
    for (int b = 0; b < n && rc == 0; b += batch) {
        int nb = n - b < batch ? n - b : batch;
        core_dataset_gather(ds, idx + b, nb, x, y);
        const float *z = core_model_forward(m, x, nb);
        loss += core_loss_ce(z, y, nb, m->nclass, NULL, NULL) * nb;
        ok += core_count_correct(z, y, nb, m->nclass);
        if (!attack)
            continue;
        rc = core_attack_run(attack, m, ws, x, y, NULL, nb,
                             stream + ((uint64_t)b << 24), xa, robust, err);
        for (int i = 0; i < nb; i++)
            rob += robust[i];
    }
    *out = (core_eval_result){
        .clean_acc = n ? (double)ok / n : NAN, .clean_loss = n ? loss / n : NAN,
        .robust_acc = attack && n ? (double)rob / n : NAN, .n = n,
    };
done:
    core_free(x);
    core_free(xa);
    core_free(y);
    core_free(robust);
    return rc;
}
