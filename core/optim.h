/*
 * optim.h - optimisers and learning-rate schedules.
 *
 * An optimiser updates one contiguous parameter buffer from one contiguous
 * gradient buffer of the same length (the model's), so its state is also two
 * flat buffers (momentum / Adam's m and v) that a checkpoint writes as is.
 *
 * Semantics follow PyTorch so that results compare with the peer:
 *   SGD:  g = grad + wd * w; buf = mom * buf + g (buf = g on the first step);
 *         w -= lr * (nesterov ? g + mom * buf : buf)
 *   Adam: g = grad + wd * w (L2, as torch.optim.Adam); bias-corrected m, v;
 *         w -= lr * mhat / (sqrt(vhat) + eps)
 * Schedules give the learning rate (and, for one-cycle, the momentum / beta1)
 * at a global step t in [0, total_steps):
 *   constant: lr
 *   step:     lr * gamma^(floor(epoch / step_epochs))
 *   cosine:   lr_min + (lr - lr_min) * (1 + cos(pi * t / total)) / 2
 *   onecycle: torch.optim.lr_scheduler.OneCycleLR defaults: pct_start 0.3,
 *             cosine annealing, div_factor 25, final_div_factor 1e4, momentum
 *             cycled between 0.85 and 0.95 (inversely to the learning rate).
 */
#ifndef CORE_OPTIM_H
#define CORE_OPTIM_H

#include "common.h"

typedef enum { CORE_OPT_SGD, CORE_OPT_ADAM } core_opt_kind;
typedef enum {
    CORE_SCHED_CONSTANT,
    CORE_SCHED_STEP,
    CORE_SCHED_COSINE,
    CORE_SCHED_ONECYCLE
} core_sched_kind;

typedef struct {
    core_opt_kind kind;
    float lr;            /* base (constant/step/cosine) or maximum (onecycle) */
    float momentum;      /* SGD momentum, Adam beta1 */
    float beta2;         /* Adam */
    float eps;           /* Adam */
    float weight_decay;
    int nesterov;        /* SGD */
} core_opt_cfg;

typedef struct {
    core_sched_kind kind;
    int step_epochs;     /* step schedule: decay every step_epochs epochs */
    float gamma;         /* step schedule: decay factor */
    float lr_min;        /* cosine floor */
} core_sched_cfg;

typedef struct {
    core_opt_cfg cfg;
    size_t n;            /* parameters */
    float *m;            /* SGD momentum buffer / Adam first moment */
    float *v;            /* Adam second moment (NULL for SGD) */
    int64_t t;           /* updates applied so far */
} core_optim;

/* Defaults: SGD lr 0.05 momentum 0.9 wd 5e-4; Adam lr 1e-3 betas (0.9,0.999) eps 1e-8. */
core_opt_cfg core_opt_defaults(core_opt_kind kind);
int core_opt_kind_parse(const char *s, core_opt_kind *out, char *err);
int core_sched_kind_parse(const char *s, core_sched_kind *out, char *err);
const char *core_opt_kind_name(core_opt_kind k);
const char *core_sched_kind_name(core_sched_kind k);

int core_optim_init(core_optim *o, const core_opt_cfg *cfg, size_t nparams, char *err);
void core_optim_free(core_optim *o);

/* One update of params from grads with learning rate lr and momentum/beta1
 * mom (the schedule's values for this step). OpenMP-parallel, deterministic. */
void core_optim_step(core_optim *o, float *params, const float *grads, float lr, float mom);

/* The learning rate and momentum at global step t (0-based) of total_steps,
 * steps_per_epoch steps in an epoch. */
typedef struct {
    float lr, momentum;
} core_sched_point;

core_sched_point core_sched_at(const core_sched_cfg *s, const core_opt_cfg *o,
                               int64_t t, int64_t total_steps, int steps_per_epoch);

/* Size in bytes of the optimiser state for n parameters, and its (de)serialisation
 * into/from a flat buffer: t (int64 little-endian) then m then v. */
size_t core_optim_state_size(const core_optim *o);
void core_optim_state_write(const core_optim *o, uint8_t *buf);
void core_optim_state_read(core_optim *o, const uint8_t *buf);

#endif
