/*
 * attack.h - adversarial attacks on a model, batched and seeded.
 *
 * Pixels live in [0, 1]. Every attack returns x_adv with ||x_adv - x|| <= eps
 * in its norm (L-inf: per pixel; L2: per example over all pixels) and every
 * pixel of x_adv in [0, 1].
 *
 * Randomness (random starts, Square's windows) is drawn from the counter-based
 * generator with (cfg->seed, stream, example index, ...), so a batch attacked
 * twice with the same stream gives the same bytes at the same thread count.
 *
 * Buffers: a core_attack_ws is made once per (model, largest batch) and
 * reused for every batch, so attacks inside the training loop allocate
 * nothing. The model's own batch buffers must hold the batch too
 * (core_model_reserve).
 *
 * Constants follow ../shared/reference/robustness-methods.md.
 */
#ifndef CORE_ATTACK_H
#define CORE_ATTACK_H

#include "model.h"

typedef enum { CORE_NORM_LINF, CORE_NORM_L2 } core_norm;

/* Every attack, one row: X(KIND, name, uses the model's gradients). The
 * enum, the names, their parser and the white-box property (the sanity
 * checks' rule that a black-box attack must not beat a white-box one)
 * come from it; a new attack adds its row, its file and its case in
 * core_attack_run's dispatch (attack.c).
 *   APGD_T   targeted APGD with the targeted DLR loss
 *   SQUARE   score-based, no gradients (L-inf)
 *   NOISE    uniform random noise in the eps-ball (a baseline)
 *   FAB_T    targeted FAB, minimal L-inf boundary points (fab.c) */
#define CORE_ATTACKS(X)                                                                      \
    X(FGSM, "fgsm", 1) X(PGD, "pgd", 1) X(APGD_CE, "apgd-ce", 1) X(APGD_T, "apgd-t", 1)     \
    X(SQUARE, "square", 0) X(NOISE, "noise", 0) X(FAB_T, "fab-t", 1)

#define CORE_ATTACK_ENUM(kind, name, gradients) CORE_ATTACK_##kind,
#define CORE_ATTACK_COUNT(kind, name, gradients) +1
typedef enum { CORE_ATTACKS(CORE_ATTACK_ENUM) } core_attack_kind;
enum { CORE_NATTACKS = 0 CORE_ATTACKS(CORE_ATTACK_COUNT) };
#undef CORE_ATTACK_ENUM
#undef CORE_ATTACK_COUNT

typedef enum { CORE_ALOSS_CE, CORE_ALOSS_CW, CORE_ALOSS_DLR } core_attack_loss;

typedef struct {
    core_attack_kind kind;
    core_norm norm;
    core_attack_loss loss;
    float eps;
    float alpha;        /* PGD step size (0: 2.5 * eps / steps) */
    int steps;          /* PGD / APGD / FAB iterations (APGD, FAB default 100) */
    int restarts;       /* random restarts (>= 1); per example the worst is kept */
    int random_start;   /* PGD: start at a uniform point of the eps-ball */
    int targeted;       /* PGD: move towards target[] rather than away from y */
    int n_targets;      /* APGD-T, FAB-T: how many of the top other classes (9) */
    int queries;        /* Square: query budget per example (5000) */
    float p_init;       /* Square: initial fraction of pixels changed (0.8) */
    uint64_t seed;
} core_attack_cfg;

/* Sensible defaults for each kind at radius eps. */
core_attack_cfg core_attack_defaults(core_attack_kind kind, float eps);
int core_attack_kind_parse(const char *s, core_attack_kind *out, char *err);
/* Norm and loss names ("linf", "l2"; "ce", "cw", "dlr"): the one list each. */
const char *core_norm_name(core_norm n);
int core_norm_parse(const char *s, core_norm *out, char *err);
const char *core_attack_loss_name(core_attack_loss l);
int core_attack_loss_parse(const char *s, core_attack_loss *out, char *err);
/* Whether the attack named name uses the model's gradients (a suite's or
 * an unknown name: 1). */
int core_attack_white_box(const char *name);
const char *core_attack_kind_name(core_attack_kind k);
/* Validate ranges (eps >= 0, steps >= 1, ...), naming the field at fault. */
int core_attack_cfg_check(const core_attack_cfg *cfg, char *err);

typedef struct core_attack_ws core_attack_ws;

int core_attack_ws_create(const core_model *m, int batch, core_attack_ws **out, char *err);
/* The bytes core_attack_ws_create allocates for inputs of dim values. */
double core_attack_ws_bytes(size_t dim, int nclass, int batch);
void core_attack_ws_free(core_attack_ws *ws);

/* Attack n examples (x, labels y; target used only when cfg->targeted).
 * Writes x_adv (n * input size) and, when robust is not NULL, robust[i] = 1
 * when example i is still classified as y[i] at x_adv. Returns 0 or -1. */
int core_attack_run(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                    const float *x, const int *y, const int *target, int n,
                    uint64_t stream, float *x_adv, uint8_t *robust, char *err);

/* A sign-gradient ascent on an arbitrary loss, the engine of PGD and of
 * TRADES' inner maximisation: the callback gets the logits and writes the
 * gradient of the loss to maximise with respect to them (and each example's
 * loss into per_example, used to keep the best restart). */
typedef void (*core_logit_loss_fn)(void *ctx, const float *logits, int n, int c,
                                   float *dlogits, float *per_example);

typedef struct {
    core_norm norm;
    float eps, alpha;
    int steps;
    int random_start;   /* 1: uniform in the ball; 2: x + 0.001 * N(0,1) (TRADES) */
    uint64_t seed;
    const int *ids;     /* example i draws its noise as example ids[i] (NULL: as i); a
                           data-parallel rank passes its share's places in the batch */
} core_ascent_cfg;

/* The default PGD step size, 2.5 * eps / steps (Madry et al.): the one
 * definition for attacks, training, probes and benchmarks. */
static inline float core_pgd_step(float eps, int steps)
{
    return 2.5f * eps / (float)steps;
}

/* The ascent that FGSM or PGD runs for cfg (FGSM: one step of eps from x). */
core_ascent_cfg core_attack_ascent(const core_attack_cfg *cfg);

/* n must not exceed the capacity of ws nor of the model (there is no error
 * return: a larger n leaves x_adv = x). */
void core_ascent(const core_ascent_cfg *cfg, core_model *m, core_attack_ws *ws,
                 const float *x, int n, uint64_t stream, core_logit_loss_fn fn, void *ctx,
                 float *x_adv);

/* Project x_adv onto the eps-ball around x in the given norm, then [0, 1]. */
void core_project(core_norm norm, float eps, const float *x, float *x_adv, int n, size_t dim);

/* APGD's checkpoints for n_iter iterations, as iteration counts (the check
 * runs after that many iterations; N = 100: 22 41 57 70 80 87 93 99). Writes
 * at most max of them into out and returns how many there are. */
int core_apgd_checkpoints(int n_iter, int *out, int max);

/* The DLR loss of Croce & Hein (target NULL: untargeted; else targeted
 * towards target[i]), same conventions as core_loss_ce: returns the mean,
 * writes d(mean loss)/d(logits) and each example's loss when asked. Needs
 * c >= 3 (untargeted) or c >= 4 (targeted). */
float core_loss_dlr(const float *logits, const int *y, const int *target, int n, int c,
                    float *dlogits, float *per_example);

/* A suite: attacks run in order, each only on the examples that survived the
 * ones before, so survival is the per-example worst case. */
#define CORE_SUITE_MAX 8
typedef struct {
    char name[32];
    int count;
    core_attack_cfg attacks[CORE_SUITE_MAX];
} core_suite;

/* "autoattack" = APGD-CE, APGD-T, FAB-T, Square (AutoAttack's standard
 * version); "pgd" = PGD-20 (CE); "strong" = PGD-100 x 5 restarts,
 * PGD-CW-100, APGD-CE, APGD-T, FAB-T, Square. */
int core_suite_preset(const char *name, float eps, uint64_t seed, core_suite *out, char *err);

/* Run a suite on n examples: robust[i] = 1 when example i survives every
 * attack (and is correctly classified to begin with); per_attack (may be
 * NULL, count x n) records each attack's own survival for the examples it
 * ran on (1 for examples already broken). */
int core_suite_run(const core_suite *s, core_model *m, core_attack_ws *ws, const float *x,
                   const int *y, int n, uint64_t stream, uint8_t *robust, uint8_t *per_attack,
                   char *err);

#endif
