/*
 * suite.c - attack suites: named presets and the worst-case runner.
 *
 * Each attack of a suite runs only on the examples that survived the clean
 * check and every attack before it, compacted into a contiguous sub-batch;
 * the examples keep their original index as the id of their random draws,
 * so an example meets the same randomness as when the attack runs alone on
 * the whole batch. robust[i] is then the AND of the clean check and of
 * every member: the per-example worst case.
 *
 * Member j of a preset gets seed + j, so no two members share draws.
 * APGD-T's and FAB-T's n_targets are clamped to nclass - 1 at run time, so
 * "autoattack" means "the 9 runner-up classes, or all of them when there
 * are fewer". "autoattack" is AutoAttack's standard version: APGD-CE,
 * APGD-T, FAB-T, Square; "strong" adds PGD-100 x 5 and PGD-CW-100 before it.
 */
#include "attack_internal.h"
#include "common.h"

#include <stdio.h>
#include <string.h>

static core_attack_cfg member(core_attack_kind kind, float eps, int steps, int restarts,
                              core_attack_loss loss, uint64_t seed)
{
    core_attack_cfg c = core_attack_defaults(kind, eps);
    c.steps = steps;
    c.restarts = restarts;
    c.loss = loss;
    c.seed = seed;
    return c;
}

int core_suite_preset(const char *name, float eps, uint64_t seed, core_suite *out, char *err)
{
    memset(out, 0, sizeof *out);
    core_attack_cfg *a = out->attacks;
    int n = 0;
    if (name && strcmp(name, "autoattack") == 0) {
        a[n++] = member(CORE_ATTACK_APGD_CE, eps, 100, 1, CORE_ALOSS_CE, seed + 0);
        a[n++] = member(CORE_ATTACK_APGD_T, eps, 100, 1, CORE_ALOSS_DLR, seed + 1);
        a[n++] = member(CORE_ATTACK_FAB_T, eps, 100, 1, CORE_ALOSS_CE, seed + 2);
        a[n++] = member(CORE_ATTACK_SQUARE, eps, 1, 1, CORE_ALOSS_CE, seed + 3);
    } else if (name && strcmp(name, "pgd") == 0) {
        a[n++] = member(CORE_ATTACK_PGD, eps, 20, 1, CORE_ALOSS_CE, seed + 0);
    } else if (name && strcmp(name, "strong") == 0) {
        a[n++] = member(CORE_ATTACK_PGD, eps, 100, 5, CORE_ALOSS_CE, seed + 0);
        a[n++] = member(CORE_ATTACK_PGD, eps, 100, 1, CORE_ALOSS_CW, seed + 1);
        a[n++] = member(CORE_ATTACK_APGD_CE, eps, 100, 1, CORE_ALOSS_CE, seed + 2);
        a[n++] = member(CORE_ATTACK_APGD_T, eps, 100, 1, CORE_ALOSS_DLR, seed + 3);
        a[n++] = member(CORE_ATTACK_FAB_T, eps, 100, 1, CORE_ALOSS_CE, seed + 4);
        a[n++] = member(CORE_ATTACK_SQUARE, eps, 1, 1, CORE_ALOSS_CE, seed + 5);
    } else {
        return core_errf(err, "unknown suite '%s' (known: autoattack, pgd, strong)",
                         name ? name : "");
    }
    for (int j = 0; j < n; j++)
        if (core_attack_cfg_check(&a[j], err))
            return -1;
    snprintf(out->name, sizeof out->name, "%s", name);
    out->count = n;
    return 0;
}

/* Records attack j's survival: 1 for every example it did not run on. */
static void record(uint8_t *per_attack, int j, int n, const uint8_t *srob, const int *idx, int k)
{
    if (!per_attack)
        return;
    uint8_t *row = per_attack + (size_t)j * n;
    memset(row, 1, (size_t)n);
    for (int t = 0; t < k; t++)
        row[idx[t]] = srob[t];
}

int core_suite_run(const core_suite *s, core_model *m, core_attack_ws *ws, const float *x,
                   const int *y, int n, uint64_t stream, uint8_t *robust, uint8_t *per_attack,
                   char *err)
{
    if (s->count < 1 || s->count > CORE_SUITE_MAX)
        return core_errf(err, "invalid suite size '%d' (must be in [1, %d])", s->count,
                         CORE_SUITE_MAX);
    if (n < 0 || n > ws->cap || n > m->capacity)
        return core_errf(err, "invalid batch '%d' (the workspace holds %d, the model %d)", n,
                         ws->cap, m->capacity);
    if (n == 0)
        return 0;
    int c = m->nclass;
    size_t dim = ws->dim;
    uint8_t *alive = ws->salive;
    const float *z = core_model_forward(m, x, n);
    for (int i = 0; i < n; i++)
        alive[i] = attack_margin(z + (size_t)i * c, c, y[i], NULL) > 0.0f;

    for (int j = 0; j < s->count; j++) {
        core_attack_cfg cfg = s->attacks[j];
        if ((cfg.kind == CORE_ATTACK_APGD_T || cfg.kind == CORE_ATTACK_FAB_T) &&
            cfg.n_targets >= c)
            cfg.n_targets = c - 1;
        int k = attack_compact(alive, n, ws->sidx);
        for (int t = 0; t < k; t++) {
            ws->sy[t] = y[ws->sidx[t]];
            ws->sids[t] = ws->sidx[t];
        }
        attack_gather(ws->sx, x, ws->sidx, k, dim);
        if (k > 0 && attack_run_ids(&cfg, m, ws, ws->sx, ws->sy, NULL, k, stream, ws->sids,
                                    ws->sout, ws->srob, err))
            return -1;
        record(per_attack, j, n, ws->srob, ws->sidx, k);
        for (int t = 0; t < k; t++)
            alive[ws->sidx[t]] = ws->srob[t];
    }
    if (robust)
        memcpy(robust, alive, (size_t)n);
    return 0;
}
