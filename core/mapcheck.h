/*
 * mapcheck.h - sanity checks for explanation maps (Adebayo et al. 2018):
 * the cascading model-randomisation test.
 *
 * The parameterised layers (conv, res, fc) are re-initialised one at a
 * time from the top (the logits) down, cumulatively, with He-normal weights
 * and zero biases drawn from the check's seed; after each step the maps of
 * the same examples are drawn again and compared with the trained model's
 * by Spearman's rank correlation (core_spearman on the heat maps), the
 * mean over examples. A map that explains the model must change once the
 * weights it depends on are noise; one whose correlation stays at or above
 * `threshold` after every layer is random is flagged: it shows the input
 * (edges, say), not what the network learned. The model's parameters are
 * restored before returning.
 */
#ifndef CORE_MAPCHECK_H
#define CORE_MAPCHECK_H

#include "model.h"

/* Heat maps (n x H x W) of n examples under the model as it is now. */
typedef int (*core_map_fn)(void *ctx, core_model *m, const float *x, int n, float *map,
                           char *err);

typedef struct {
    float threshold;   /* flag at or above this final correlation (0.5) */
    uint64_t seed;
} core_mapcheck_cfg;

typedef struct {
    int steps;                              /* parameterised layers */
    char layer[CORE_MAX_LAYERS][16];        /* randomised at step s, top first ("fc2") */
    double spearman[CORE_MAX_LAYERS];       /* mean correlation after step s */
    double final;                           /* after the last step: every layer random */
    int flagged;
} core_mapcheck;

core_mapcheck_cfg core_mapcheck_defaults(void);

/* Run the test on n examples (n <= the model's reserved batch). */
int core_mapcheck_run(const core_mapcheck_cfg *cfg, core_model *m, const float *x, int n,
                      core_map_fn fn, void *ctx, core_mapcheck *out, char *err);

#endif
