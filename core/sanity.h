/*
 * sanity.h - checks for false robustness (Carlini et al. 2019, "On
 * Evaluating Adversarial Robustness"; Athalye et al. 2018), run as part of
 * every evaluation report.
 *
 * An evaluation is a list of measured points (attack, eps, steps, restarts,
 * robust accuracy). The checks compare the points with each other:
 *   - robust accuracy must not rise when eps grows (same attack);
 *   - more steps or restarts must not raise it (same attack and eps);
 *   - FGSM must not be stronger than PGD, random noise not stronger than
 *     any gradient attack (same eps);
 *   - the black-box Square attack must not beat the best white-box attack by
 *     more than 0.2 points (the sign of masked gradients);
 *   - at L-inf eps >= 0.5 accuracy must reach chance (1 / classes) or below.
 * Each violation becomes one plain-language warning, e.g.
 *   "possible gradient masking: square beats pgd by 7.2 points at eps 0.1"
 */
#ifndef CORE_SANITY_H
#define CORE_SANITY_H

#include "attack.h"
#include "data.h"

#define CORE_WARN_LEN 200
#define CORE_WARN_MAX 16

typedef struct {
    char attack[24];     /* core_attack_kind_name, or a suite name */
    core_norm norm;
    float eps;
    int steps, restarts;
    int n;               /* examples */
    double robust_acc;
} core_eval_point;

typedef struct {
    int count;
    char text[CORE_WARN_MAX][CORE_WARN_LEN];
} core_warnings;

/* Append one warning (dropped past CORE_WARN_MAX). */
void core_warn(core_warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Compare the points; append one warning per violation. Tolerance: half a
 * point of accuracy, or one example, whichever is larger. */
void core_sanity_check(const core_eval_point *pts, int npts, int nclass, core_warnings *w);

/* The probes that give the checks something to compare at radius eps
 * (L-inf): FGSM, PGD-k, PGD-2k, PGD-k with 3 restarts, noise, Square with a
 * small budget, PGD-k at 2 * eps and at eps 0.5. Runs them on examples
 * idx[0..n) of ds, appends the points to pts (room for at least
 * CORE_SANITY_PROBES more) and returns how many it added, or -1. */
#define CORE_SANITY_PROBES 8
int core_sanity_probe(core_model *m, core_attack_ws *ws, const core_dataset *ds, const int *idx,
                      int n, int batch, float eps, int steps, uint64_t seed,
                      core_eval_point *pts, char *err);

#endif
