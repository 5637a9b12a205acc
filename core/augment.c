/*
 * augment.c - the augmentations of augment.h, one function per operation
 * on one example (C x H x W), the batch in parallel. Every draw is
 * core_rng(seed, stream of the step + example, counter) with counters
 * fixed per use, so nothing depends on the thread count.
 */
#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corrupt.h"
#include "rng.h"

/* Per-example draw counters (below any pixel-indexed counter's range). */
enum { R_CROP_Y, R_CROP_X, R_FLIP, R_BRIGHT, R_CONTRAST, R_CORRUPT, R_FAMILY, R_SEVERITY,
       R_NOISE = 1 << 20 };

/* The stream of example i of step's batch in view (0: the batch, 1 and 2:
 * AugMix's views): a hash of (step, i), which fit 40 and 24 bits
 * (CORE_MAX_BATCH < 2^24), so no two examples ever share one. */
static uint64_t ex_stream(uint64_t seed, int64_t step, int view, int i)
{
    return core_rng_u64(seed, CORE_STREAM_AUGMENT + (uint64_t)view,
                        (uint64_t)step << 24 | (uint64_t)i);
}

core_augment_cfg core_augment_defaults(void)
{
    return (core_augment_cfg){.corrupt_severity = 3, .corrupt_prob = 0.5f, .augmix_js = 12.0f,
                              .augmix_width = 3, .augmix_depth = 3};
}

int core_augment_check(const core_augment_cfg *a, char *err)
{
    if (a->crop < 0 || a->crop > 64)
        return core_errf(err, "invalid 'augment_crop': %d (must be in [0, 64])", a->crop);
    if (!(a->brightness >= 0 && a->brightness <= 1) || !(a->contrast >= 0 && a->contrast <= 1))
        return core_errf(err, "invalid brightness or contrast jitter (must be in [0, 1])");
    if (!(a->noise >= 0 && a->noise <= 1))
        return core_errf(err, "invalid 'augment_noise': %g (must be in [0, 1])", (double)a->noise);
    if (a->corrupt_severity < 1 || a->corrupt_severity > CORE_SEVERITIES)
        return core_errf(err, "invalid corruption severity %d (must be in [1, %d])",
                         a->corrupt_severity, CORE_SEVERITIES);
    if (!(a->corrupt_prob > 0 && a->corrupt_prob <= 1))
        return core_errf(err, "invalid corruption probability %g (must be in (0, 1])",
                         (double)a->corrupt_prob);
    if (a->corruptions >> CORE_NCORRUPTIONS)
        return core_errf(err, "invalid corruption set %#x", a->corruptions);
    if (a->augmix_width < 1 || a->augmix_width > 8 || a->augmix_depth < 1 || a->augmix_depth > 8 ||
        !(a->augmix_js >= 0 && a->augmix_js <= 1000))
        return core_errf(err, "invalid AugMix settings (width and depth 1..8, js in [0, 1000])");
    return 0;
}

int core_augment_active(const core_augment_cfg *a)
{
    return a->crop || a->flip || a->brightness > 0 || a->contrast > 0 || a->noise > 0 ||
           a->corruptions;
}

int core_corruption_set_parse(const char *s, unsigned *out, char *err)
{
    *out = 0;
    if (!strcmp(s, "all")) {
        *out = (1u << CORE_NCORRUPTIONS) - 1;
        return 0;
    }
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        core_corruption c;
        if (core_corruption_parse(t, &c, err))
            return -1;
        *out |= 1u << c;
    }
    return 0;
}

/* ---- one example -------------------------------------------------------- */

static float clip01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Random crop of the zero-padded image and a mirror, through tmp. */
static void crop_flip(const core_augment_cfg *a, float *x, float *tmp, core_shape s,
                      uint64_t seed, uint64_t st)
{
    int p = a->crop;
    int dy = p ? (int)core_rng_below(seed, st, R_CROP_Y, 2 * (uint64_t)p + 1) - p : 0;
    int dx = p ? (int)core_rng_below(seed, st, R_CROP_X, 2 * (uint64_t)p + 1) - p : 0;
    int flip = a->flip && core_rng_uniform(seed, st, R_FLIP) < 0.5f;
    if (!dx && !dy && !flip)
        return;
    for (int c = 0; c < s.c; c++)
        for (int y = 0; y < s.h; y++)
            for (int xx = 0; xx < s.w; xx++) {
                int sy = y + dy, sx = (flip ? s.w - 1 - xx : xx) + dx;
                tmp[((size_t)c * s.h + y) * s.w + xx] =
                    sy >= 0 && sy < s.h && sx >= 0 && sx < s.w ? x[((size_t)c * s.h + sy) * s.w + sx]
                                                               : 0.0f;
            }
    memcpy(x, tmp, sizeof(float) * core_shape_size(s));
}

static void photometric(const core_augment_cfg *a, float *x, core_shape s, uint64_t seed,
                        uint64_t st)
{
    const size_t plane = (size_t)s.h * s.w;
    float ub = 2.0f * core_rng_uniform(seed, st, R_BRIGHT) - 1.0f;
    float uc = 2.0f * core_rng_uniform(seed, st, R_CONTRAST) - 1.0f;
    float add = a->brightness > 0 ? a->brightness * ub : 0.0f;
    float mul = a->contrast > 0 ? 1.0f + a->contrast * uc : 1.0f;
    for (int c = 0; c < s.c; c++) {
        float *p = x + c * plane, mean = 0.0f;
        for (size_t i = 0; i < plane; i++)
            mean += p[i];
        mean /= (float)plane;
        for (size_t i = 0; i < plane; i++) {
            float v = (p[i] - mean) * mul + mean + add;
            if (a->noise > 0)
                v += a->noise * core_rng_normal(seed, st, R_NOISE + c * plane + i);
            p[i] = clip01(v);
        }
    }
}

/* One of the chosen families at a random severity, with probability p. */
static int corrupt_one(const core_augment_cfg *a, float *x, float *tmp, core_shape s,
                       uint64_t seed, uint64_t st, char *err)
{
    if (!a->corruptions || core_rng_uniform(seed, st, R_CORRUPT) >= a->corrupt_prob)
        return 0;
    int fams[CORE_NCORRUPTIONS], k = 0;
    for (int c = 0; c < CORE_NCORRUPTIONS; c++)
        if (a->corruptions >> c & 1)
            fams[k++] = c;
    core_corruption c = (core_corruption)fams[core_rng_below(seed, st, R_FAMILY, (uint64_t)k)];
    int sev = 1 + (int)core_rng_below(seed, st, R_SEVERITY, (uint64_t)a->corrupt_severity);
    if (core_corrupt(c, sev, x, tmp, 1, s, seed, st, err))
        return -1;
    memcpy(x, tmp, sizeof(float) * core_shape_size(s));
    return 0;
}

int core_augment_batch(const core_augment_cfg *a, float *x, int n, core_shape s, uint64_t seed,
                       int64_t step, char *err)
{
    if (!core_augment_active(a))
        return 0;
    const size_t dim = core_shape_size(s);
    int failed = 0;
    char msg[CORE_ERRLEN] = "";
#pragma omp parallel
    {
        float *tmp = malloc(sizeof(float) * dim);
#pragma omp for schedule(static) reduction(| : failed)
        for (int i = 0; i < n; i++) {
            uint64_t st = ex_stream(seed, step, 0, i);
            float *e = x + (size_t)i * dim;
            if (!tmp) {
                failed = 1;
                continue;
            }
            crop_flip(a, e, tmp, s, seed, st);
            photometric(a, e, s, seed, st);
            if (corrupt_one(a, e, tmp, s, seed, st, msg))
                failed = 1;
        }
        free(tmp);
    }
    return failed ? core_errf(err, "cannot augment a batch: %s", *msg ? msg : "out of memory")
                  : 0;
}

/* ---- AugMix --------------------------------------------------------------- */

typedef enum { OP_AUTOCONTRAST, OP_EQUALIZE, OP_POSTERIZE, OP_SOLARIZE, OP_SHEAR, NOPS } augmix_op;

static void op_autocontrast(float *p, size_t plane)
{
    float lo = p[0], hi = p[0];
    for (size_t i = 1; i < plane; i++)
        lo = fminf(lo, p[i]), hi = fmaxf(hi, p[i]);
    if (hi - lo < 1e-6f)
        return;
    for (size_t i = 0; i < plane; i++)
        p[i] = (p[i] - lo) / (hi - lo);
}

/* Histogram equalisation on 256 levels. */
static void op_equalize(float *p, size_t plane)
{
    size_t hist[256] = {0}, cdf = 0;
    float map[256];
    for (size_t i = 0; i < plane; i++)
        hist[(int)(clip01(p[i]) * 255.0f + 0.5f)]++;
    for (int v = 0; v < 256; v++) {
        cdf += hist[v];
        map[v] = (float)cdf / (float)plane;
    }
    for (size_t i = 0; i < plane; i++)
        p[i] = map[(int)(clip01(p[i]) * 255.0f + 0.5f)];
}

static void op_apply(augmix_op op, float *x, float *tmp, core_shape s, float u)
{
    const size_t plane = (size_t)s.h * s.w, dim = core_shape_size(s);
    switch (op) {
    case OP_AUTOCONTRAST:
    case OP_EQUALIZE:
        for (int c = 0; c < s.c; c++)
            (op == OP_EQUALIZE ? op_equalize : op_autocontrast)(x + c * plane, plane);
        return;
    case OP_POSTERIZE: { /* 4 to 7 bits */
        float levels = (float)(1 << (4 + (int)(u * 3.999f))) - 1.0f;
        for (size_t i = 0; i < dim; i++)
            x[i] = floorf(clip01(x[i]) * levels + 0.5f) / levels;
        return;
    }
    case OP_SOLARIZE: { /* invert above a threshold in [0.5, 1] */
        float th = 1.0f - 0.5f * u;
        for (size_t i = 0; i < dim; i++)
            x[i] = x[i] >= th ? 1.0f - x[i] : x[i];
        return;
    }
    case OP_SHEAR: { /* x' = x + k (y - centre), k in [-0.3, 0.3], nearest */
        float k = 0.6f * u - 0.3f;
        for (int c = 0; c < s.c; c++)
            for (int y = 0; y < s.h; y++)
                for (int xx = 0; xx < s.w; xx++) {
                    int sx = (int)lrintf((float)xx + k * ((float)y - 0.5f * (float)s.h));
                    tmp[((size_t)c * s.h + y) * s.w + xx] =
                        sx >= 0 && sx < s.w ? x[((size_t)c * s.h + y) * s.w + sx] : 0.0f;
                }
        memcpy(x, tmp, sizeof(float) * dim);
        return;
    }
    case NOPS:
        return;
    }
}

/* One example's view: mix of width chains, then with the original. */
static void augmix_one(const core_augment_cfg *a, const float *x, float *y, float *chain,
                       float *tmp, core_shape s, uint64_t seed, uint64_t st)
{
    const size_t dim = core_shape_size(s);
    float w[8], wsum = 0.0f;
    for (int k = 0; k < a->augmix_width; k++) /* Dirichlet(1): normalised Exp(1) */
        wsum += w[k] = -logf(1.0f - core_rng_uniform(seed, st, 100 + k));
    float m = core_rng_uniform(seed, st, 99); /* Beta(1, 1) */
    for (size_t i = 0; i < dim; i++)
        y[i] = m * x[i];
    for (int k = 0; k < a->augmix_width; k++) {
        memcpy(chain, x, sizeof(float) * dim);
        int depth = 1 + (int)core_rng_below(seed, st, 200 + k, (uint64_t)a->augmix_depth);
        for (int d = 0; d < depth; d++) {
            uint64_t ctr = 300 + 16 * (uint64_t)k + 2 * (uint64_t)d;
            augmix_op op = (augmix_op)core_rng_below(seed, st, ctr, NOPS);
            op_apply(op, chain, tmp, s, core_rng_uniform(seed, st, ctr + 1));
        }
        float wk = (1.0f - m) * w[k] / wsum;
        for (size_t i = 0; i < dim; i++)
            y[i] += wk * chain[i];
    }
}

int core_augmix(const core_augment_cfg *a, const float *x, float *y, int n, core_shape s,
                uint64_t seed, int64_t step, int view, char *err)
{
    const size_t dim = core_shape_size(s);
    int failed = 0;
#pragma omp parallel
    {
        float *chain = malloc(sizeof(float) * dim), *tmp = malloc(sizeof(float) * dim);
#pragma omp for schedule(static) reduction(| : failed)
        for (int i = 0; i < n; i++) {
            if (!chain || !tmp) {
                failed = 1;
                continue;
            }
            augmix_one(a, x + (size_t)i * dim, y + (size_t)i * dim, chain, tmp, s, seed,
                       ex_stream(seed, step, 1 + view, i));
        }
        free(chain);
        free(tmp);
    }
    return failed ? core_errf(err, "out of memory for AugMix") : 0;
}
