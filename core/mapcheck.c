/*
 * mapcheck.c - the cascading model-randomisation test (mapcheck.h).
 */
#include "mapcheck.h"

#include <math.h>
#include <string.h>

#include "explain.h"
#include "rng.h"
#include "units.h"

/* Randomisation draws: apart from every other use of the seed. */
#define STREAM_MAPCHECK (CORE_STREAM_USER + (9ULL << 40))

core_mapcheck_cfg core_mapcheck_defaults(void)
{
    return (core_mapcheck_cfg){.threshold = 0.5f};
}

/* He-normal weights and zero biases for one conv's or fc's views. */
static void reinit(core_model *m, size_t w_off, size_t b_off, size_t nw, size_t nb, size_t fan_in,
                   uint64_t seed)
{
    const float std = sqrtf(2.0f / (float)fan_in);
    for (size_t i = 0; i < nw; i++)
        m->params[w_off + i] = std * core_rng_normal(seed, STREAM_MAPCHECK + w_off, i);
    memset(m->params + b_off, 0, sizeof(float) * nb);
}

static void reinit_conv(core_model *m, const core_conv *c, uint64_t seed)
{
    size_t fan_in = (size_t)c->cin * c->k * c->k;
    reinit(m, c->w_off, c->b_off, fan_in * c->cout, (size_t)c->cout, fan_in, seed);
}

static void reinit_layer(core_model *m, const core_layer *l, uint64_t seed)
{
    if (l->kind == CORE_LAYER_FC) {
        size_t in = core_shape_size(l->in);
        reinit(m, l->w_off, l->b_off, in * (size_t)l->out.c, (size_t)l->out.c, in, seed);
        return;
    }
    for (int c = 0; c < (l->kind == CORE_LAYER_RES ? 2 : 1); c++)
        reinit_conv(m, &l->conv[c], seed);
}

static int has_params(const core_layer *l)
{
    return l->kind == CORE_LAYER_CONV || l->kind == CORE_LAYER_FC || l->kind == CORE_LAYER_RES;
}

static double mean_spearman(const float *a, const float *b, int n, int plane)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += core_spearman(a + (size_t)i * plane, b + (size_t)i * plane, plane);
    return n ? s / n : 0.0;
}

int core_mapcheck_run(const core_mapcheck_cfg *cfg, core_model *m, const float *x, int n,
                      core_map_fn fn, void *ctx, core_mapcheck *out, char *err)
{
    const int plane = m->in.h * m->in.w;
    float *saved = core_alloc(sizeof(float) * m->nparams);
    float *ref = core_alloc(sizeof(float) * (size_t)plane * n);
    float *map = core_alloc(sizeof(float) * (size_t)plane * n);
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!saved || !ref || !map) {
        core_errf(err, "out of memory for the randomisation test of %d examples", n);
        goto out;
    }
    memcpy(saved, m->params, sizeof(float) * m->nparams);
    if (fn(ctx, m, x, n, ref, err))
        goto out;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const core_layer *l = &m->layers[i];
        if (!has_params(l))
            continue;
        reinit_layer(m, l, cfg->seed);
        if (fn(ctx, m, x, n, map, err))
            goto restore;
        core_layer_label(m, i, out->layer[out->steps], sizeof out->layer[0]);
        out->spearman[out->steps++] = mean_spearman(ref, map, n, plane);
    }
    out->final = out->steps ? out->spearman[out->steps - 1] : 1.0;
    out->flagged = out->final >= cfg->threshold;
    rc = 0;
restore:
    memcpy(m->params, saved, sizeof(float) * m->nparams);
out:
    core_free(saved);
    core_free(ref);
    core_free(map);
    return rc;
}
