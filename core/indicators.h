/*
 * indicators.h - indicators of attack failure (Pintor et al., "Indicators
 * of Attack Failure: Debugging and Improving Optimization of Adversarial
 * Examples", NeurIPS 2022): signs that an evaluation's attack failed,
 * rather than the model resisted. Measured on a sample of an evaluation's
 * examples, for a gradient attack (FGSM, PGD, APGD-CE, APGD-T, FAB-T):
 *
 *   silent success     an adversarial point was met along the attack's path,
 *                      but the point it returned is not adversarial;
 *   incomplete optimisation  on the examples the attack failed on, its loss
 *                      along the path, scaled to [0, 1] and made
 *                      non-decreasing, still rises by more than 0.05 over
 *                      the last 10 points;
 *   unavailable gradients  the input gradient of the attack's loss is
 *                      exactly zero;
 *   unstable predictions  the mean relative change of the loss, each capped
 *                      at 1, at 100 uniform random points of the eps-ball
 *                      (on the first CORE_IND_UNSTABLE_N examples);
 *   unconstrained attack failure  the same attack with an unbounded eps
 *                      (L-inf 1: the whole [0, 1] box; L2: its diagonal)
 *                      leaves correctly classified examples correct.
 *
 * The path indicators need the attack's own path: FGSM's and PGD's are
 * traced exactly (their first restart, through core_ascent), APGD's and
 * FAB-T's too (their first round, through a hook in apgd.c and fab.c;
 * FAB's loss is z_t - z_y at each iterate, and a point met counts when it
 * is adversarial within eps, FAB's iterates roaming beyond it). Both
 * return an adversarial point whenever they met one within eps, so their
 * silent successes are 0 by construction. All of it is untargeted (a
 * targeted PGD is measured as its untargeted self) and deterministic for
 * a given stream.
 */
#ifndef CORE_INDICATORS_H
#define CORE_INDICATORS_H

#include "attack.h"
#include "sanity.h"

#define CORE_IND_WINDOW 10          /* the last points of the path looked at */
#define CORE_IND_RISE 0.05f         /* more rise than this there: incomplete */
#define CORE_IND_POINTS 100         /* random points per example (unstable) */
#define CORE_IND_UNSTABLE_N 16      /* examples of a batch they are drawn for */

/* Counts over the examples examined; add batches with core_indicators_add. */
typedef struct {
    int n;                  /* examples examined */
    int correct;            /* of them, correctly classified as they are */
    int traced;             /* examples whose path was traced */
    int silent;             /* of those, silent successes */
    int failed;             /* of those, correct at the returned point */
    int incomplete;         /* of the failed, loss still rising at the end */
    int window;             /* steps looked at for that: min(steps, CORE_IND_WINDOW) */
    int zero_grad;          /* input gradient exactly zero */
    int unstable_n;         /* examples of the random-point sample */
    double unstable_sum;    /* sum of their mean relative loss changes */
    int unconstrained;      /* of the correct, still correct at unbounded eps */
} core_indicators;

/* 1 for the attacks the indicators are about (those that use gradients). */
int core_indicators_apply(core_attack_kind kind);

/* Measure the indicators of cfg's attack on n examples (x, labels y; n at
 * most the capacity of ws and m) into *out (zeroed first). stream seeds the
 * random points and the attacks' random starts. 0, or -1 with err. */
int core_indicators_run(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                        const float *x, const int *y, int n, uint64_t stream,
                        core_indicators *out, char *err);

void core_indicators_add(core_indicators *sum, const core_indicators *b);
/* The unstable-predictions value, in [0, 1] (0 without a sample). */
double core_indicators_unstable(const core_indicators *ind);

/* One warning per indicator raised, naming the attack and eps, e.g.
 * "silent success: pgd met an adversarial point but returned one that is
 * not for 3 of 100 examples at eps 0.1 (keep the best point)". Raised:
 * any silent success; incomplete optimisation on more than 5 % of the
 * examples the attack failed on; any zero gradient; unstable predictions
 * above CORE_IND_UNSTABLE; any correct example left correct at unbounded eps. */
#define CORE_IND_UNSTABLE 0.5
void core_indicators_warn(const core_indicators *ind, const char *attack, float eps,
                          core_warnings *w);

#endif
