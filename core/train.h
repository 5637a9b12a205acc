/*
 * train.h - the training loop: clean and adversarial training of a model on
 * a data set, with hooks for progress, cancellation and checkpoints.
 *
 * Methods:
 *   clean    standard training
 *   pgd      Madry et al.: train on PGD examples (random start); mix < 1
 *            trains on that fraction of adversarial examples per batch, the
 *            rest clean
 *   fgsm-rs  Wong et al. 2020: uniform start, one FGSM step of 1.25 * eps;
 *            guarded against catastrophic overfitting (see train.c)
 *   trades   Zhang et al. 2019: CE(f(x), y) + beta * KL(f(x) || f(x')),
 *            x' maximising the KL from x + 0.001 * N(0, 1)
 *
 * Transfer: core_trainer_init_from starts from another model's weights;
 * train_last freezes all but the last K parametrised layers (feature
 * extraction). Augmentation (augment.h) changes each batch as it is
 * gathered; the adversary attacks the augmented batch. AugMix adds the
 * Jensen-Shannon consistency of the batch and two AugMix views to any
 * method's loss.
 *
 * Determinism: the batch order of epoch e is a shuffle seeded by (seed, e),
 * attack noise is keyed by the global step, so the same seed and thread
 * count give the same bytes, and a run restored from a checkpoint (which may
 * be taken at any batch boundary) continues exactly as if never stopped.
 */
#ifndef CORE_TRAIN_H
#define CORE_TRAIN_H

#include "attack.h"
#include "augment.h"
#include "data.h"
#include "dist.h"
#include "optim.h"
#include "state.h"

/* The largest batch: beyond what fits in memory anyway (a daemon refuses a
 * job that would not fit by its memory estimate, not by this). */
#define CORE_MAX_BATCH 10000000

typedef enum {
    CORE_METHOD_CLEAN,
    CORE_METHOD_PGD,
    CORE_METHOD_FGSM_RS,
    CORE_METHOD_TRADES
} core_method;

typedef struct {
    int epochs, batch;
    uint64_t seed;
    core_opt_cfg opt;
    core_sched_cfg sched;
    core_method method;
    core_norm norm;
    float eps;             /* attack radius (pixels in [0, 1]) */
    float alpha;           /* step size; 0: 2.5 * eps / steps (fgsm-rs: 1.25 * eps) */
    int steps;             /* pgd / trades inner steps */
    float mix;             /* pgd: adversarial fraction of each batch, (0, 1] */
    float trades_beta;
    int eps_ramp_epochs;   /* ramp eps linearly from 0 over these epochs (0: off) */
    int val_size;          /* held-out training examples for validation */
    int val_robust_size;   /* of those, how many get PGD-20 each epoch */
    int co_guard;          /* fgsm-rs: roll back a catastrophically overfit epoch */
    core_init init;        /* weight initialisation (default torch: PyTorch's, the peer's) */
    int train_last;        /* train only the last K parametrised layers (0: all) */
    core_augment_cfg augment;  /* applied to every training batch (augment.h) */
} core_train_cfg;

/* Defaults: cnn-small-sized recipe of the PyTorch peer: 2 epochs, batch 128,
 * SGD lr 0.05 momentum 0.9 wd 5e-4 one-cycle, pgd eps 0.1, 7 steps, and
 * PyTorch's initialisation (He's cost the default job 1.8 clean and 1.9
 * PGD-20 points against the peer: README, "Quality"). */
core_train_cfg core_train_defaults(void);
int core_train_cfg_check(const core_train_cfg *cfg, char *err);
int core_method_parse(const char *s, core_method *out, char *err);
const char *core_method_name(core_method m);

typedef struct {
    int64_t step;           /* global step just finished */
    int epoch;              /* 0-based epoch in progress */
    int batch, batches;     /* batch index within the epoch, batches per epoch */
    float loss, acc;        /* of this batch */
    float lr, eps;
    double images_per_s;    /* since the epoch (or resume) started */
} core_batch_info;

typedef struct {
    int epoch;              /* 0-based epoch just finished */
    float train_loss, train_acc;
    float val_loss, val_clean_acc, val_robust_acc; /* NaN without validation */
    float co_pgd_acc;       /* fgsm-rs guard: PGD accuracy on the fixed batch */
    float lr, eps;
    double images_per_s, seconds;
    int rolled_back;        /* fgsm-rs guard fired: weights are those before it */
} core_epoch_info;

/* Return non-zero from a hook to stop at this boundary (cancellation,
 * shutdown); the trainer's state is then consistent for a checkpoint. */
typedef struct {
    int (*on_batch)(void *ctx, const core_batch_info *info);
    int (*on_epoch)(void *ctx, const core_epoch_info *info);
    void *ctx;
} core_train_hooks;

typedef struct {
    core_train_cfg cfg;
    core_model *model;
    core_optim opt;
    core_progress progress;
    const core_dataset *data;
    core_data_split split;
    core_attack_ws *ws;
    int batches_per_epoch;
    int stopped_early;      /* the fgsm-rs guard ended training */
    /* Batch buffers. */
    int *order;
    float *x, *x_adv, *dlogits, *probs;
    int *y;
    float *x_mix;           /* AugMix: the batch and its two views, 3 x batch */
    /* Data parallel (core_trainer_set_dist): this rank's share of the
     * batch in progress, [lo, lo + count) of its bn examples. */
    core_dist *dist;
    int *ids;               /* lo, lo + 1, ...: the share's noise keys */
    int bn, lo;
    /* fgsm-rs guard: weights and optimiser at the start of the epoch. */
    float *snapshot;
    uint8_t *opt_snapshot;
    float co_last_acc;
} core_trainer;

/* Build a trainer for model spec on a training set (the trainer owns the
 * model; the data set must outlive it). */
int core_trainer_create(const core_train_cfg *cfg, const char *model_spec,
                        const core_dataset *train, core_trainer **out, char *err);
void core_trainer_free(core_trainer *t);

/* Start from a trained model's checkpoint (core/state.h bytes) instead of
 * the random weights: core_model_transfer's rules; *reinit is set when the
 * final layer's class count differed and it kept its fresh weights. Call
 * before training starts. */
int core_trainer_init_from(core_trainer *t, const uint8_t *buf, size_t len, int *reinit,
                           char *err);

/* Train on d's ranks: every rank gathers and augments the whole global
 * batch (the same bytes as one process), attacks and back-propagates its
 * share, then the gradients are summed over ranks (one call on the one
 * gradient buffer) and every rank takes the same optimiser step, so the
 * parameters stay equal on every rank. The loss, accuracy and images/s
 * reported are the global batch's. Validation and the fgsm-rs guard run
 * on every rank alike. d must outlive the trainer; NULL: one process. */
int core_trainer_set_dist(core_trainer *t, core_dist *d, char *err);

/* Train until cfg.epochs are done or a hook asks to stop. Returns 0 when
 * training finished, 1 when a hook stopped it, -1 on error. */
int core_trainer_run(core_trainer *t, const core_train_hooks *hooks, char *err);

/* Checkpoint of the whole training state, and its restoration. */
int core_trainer_save(const core_trainer *t, uint8_t **buf, size_t *len, char *err);
int core_trainer_load(core_trainer *t, const uint8_t *buf, size_t len, char *err);

/* Accuracy and mean loss on examples idx[0..n) of ds, clean (attack NULL)
 * or under an attack; batch-wise through a caller-supplied workspace. */
typedef struct {
    double clean_acc, clean_loss, robust_acc;
    int n;
} core_eval_result;

int core_evaluate(core_model *m, core_attack_ws *ws, const core_dataset *ds, const int *idx,
                  int n, int batch, const core_attack_cfg *attack, uint64_t stream,
                  core_eval_result *out, char *err);

#endif
