/*
 * units.c - filters, top activating examples and activation maximisation
 * of a network's convolution channels (units.h).
 */
#define _GNU_SOURCE
#include "units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "rng.h"

static const char *kind_word(core_layer_kind k)
{
    static const char *const words[] = {"conv", "relu", "maxpool", "avgpool", "gap",
                                        "flatten", "fc", "res"};
    return (unsigned)k < sizeof words / sizeof words[0] ? words[k] : "layer";
}

void core_layer_label(const core_model *m, int i, char *buf, size_t len)
{
    int count = 0;
    for (int j = 0; j <= i; j++)
        count += m->layers[j].kind == m->layers[i].kind;
    snprintf(buf, len, "%s%d", kind_word(m->layers[i].kind), count);
}

int core_unit_layer_find(const core_model *m, const char *name, int *layer, char *err)
{
    char label[32];
    for (int i = 0; i < m->nlayers; i++) {
        core_layer_label(m, i, label, sizeof label);
        if (strcmp(label, name) != 0)
            continue;
        if (m->layers[i].kind != CORE_LAYER_CONV && m->layers[i].kind != CORE_LAYER_RES)
            return core_errf(err, "'%s' has no channels to look at (name a conv or res layer)",
                             name);
        *layer = i + 1 < m->nlayers && m->layers[i].kind == CORE_LAYER_CONV &&
                         m->layers[i + 1].kind == CORE_LAYER_RELU
                     ? i + 1
                     : i;
        return 0;
    }
    return core_errf(err, "unknown layer '%s' (conv1, conv2, ... as the model spec numbers them)",
                     name);
}

int core_unit_filters(const core_model *m, float *out, core_shape *tile, int *count, char *err)
{
    const core_conv *c = NULL;
    for (int i = 0; i < m->nlayers && !c; i++)
        if (m->layers[i].kind == CORE_LAYER_CONV || m->layers[i].kind == CORE_LAYER_RES)
            c = &m->layers[i].conv[0];
    if (!c)
        return core_errf(err, "the model has no convolution");
    const int kk = c->k * c->k, grey = c->cin != 3;
    *tile = (core_shape){grey ? 1 : 3, c->k, c->k};
    *count = c->cout;
    for (int o = 0; o < c->cout; o++) {
        const float *w = m->params + c->w_off + (size_t)o * c->cin * kk;
        float *t = out + (size_t)o * core_shape_size(*tile), mx = 1e-12f;
        for (int p = 0; p < c->cin * kk; p++)
            mx = fmaxf(mx, fabsf(w[p]));
        for (int p = 0; p < (int)core_shape_size(*tile); p++) {
            float v = 0.0f;
            if (grey)   /* the channels' mean, for 1 or an unusual count */
                for (int ci = 0; ci < c->cin; ci++)
                    v += w[ci * kk + p] / c->cin;
            else
                v = w[p];
            t[p] = 0.5f + 0.5f * v / mx;
        }
    }
    return 0;
}

void core_unit_scores(core_model *m, int layer, const float *x, int n, float *score, float *act)
{
    const core_shape s = m->layers[layer].out;
    const size_t plane = (size_t)s.h * s.w;
    core_model_forward(m, x, n);
    const float *y = m->layers[layer].y;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < s.c; c++) {
            const float *a = y + ((size_t)i * s.c + c) * plane;
            double sum = 0.0;
            for (size_t p = 0; p < plane; p++)
                sum += a[p];
            score[(size_t)i * s.c + c] = (float)(sum / plane);
        }
    if (act)
        memcpy(act, y, sizeof(float) * plane * s.c * n);
}

typedef struct {
    const float *v;
    int stride;
} strided;

static int cmp_score_desc(const void *pa, const void *pb, void *ctx)
{
    const strided *s = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    float va = s->v[(size_t)a * s->stride], vb = s->v[(size_t)b * s->stride];
    if (va != vb)
        return va > vb ? -1 : 1;
    return (a > b) - (a < b);
}

void core_unit_top(const float *score, int n, int stride, int k, int *idx)
{
    int *all = malloc(sizeof(int) * (size_t)n);
    if (!all) {
        for (int i = 0; i < k; i++)
            idx[i] = i;
        return;
    }
    for (int i = 0; i < n; i++)
        all[i] = i;
    strided ctx = {score, stride};
    qsort_r(all, (size_t)n, sizeof(int), cmp_score_desc, &ctx);
    memcpy(idx, all, sizeof(int) * (size_t)k);
    free(all);
}

void core_unit_overlay(const float *x, core_shape s, const float *act, int ah, int aw,
                       float amax, float *rgb)
{
    const size_t plane = (size_t)s.h * s.w;
    for (int i = 0; i < s.h; i++)
        for (int j = 0; j < s.w; j++) {
            const size_t p = (size_t)i * s.w + j;
            float grey = 0.0f, a = act[(size_t)(i * ah / s.h) * aw + j * aw / s.w];
            uint8_t hot[3];
            for (int c = 0; c < s.c; c++)
                grey += x[c * plane + p] / s.c;
            core_colormap_hot(amax > 0.0f ? fmaxf(a, 0.0f) / amax : 0.0f, hot);
            for (int c = 0; c < 3; c++)
                rgb[c * plane + p] = 0.4f * grey + 0.6f * hot[c] / 255.0f;
        }
}

/* ------------------------------------------------ activation maximisation */

core_maximise_cfg core_maximise_defaults(void)
{
    return (core_maximise_cfg){.steps = 64, .lr = 0.05f, .decay = 0.01f, .jitter = 1,
                               .blur_every = 4};
}

/* out = x rolled by (dy, dx) pixels, wrapping around, per plane. */
static void roll(const float *x, float *out, int planes, int h, int w, int dy, int dx)
{
    for (int pl = 0; pl < planes; pl++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                out[((size_t)pl * h + (i + dy + h) % h) * w + (j + dx + w) % w] =
                    x[((size_t)pl * h + i) * w + j];
}

/* One [1 2 1] / 4 pass along rows (vertical 0) or columns, edges clamped. */
static void blur_pass(const float *in, float *out, int h, int w, int vertical)
{
    static const float k[3] = {0.25f, 0.5f, 0.25f};
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            float v = 0.0f;
            for (int d = -1; d <= 1; d++) {
                int ii = vertical ? i + d : i, jj = vertical ? j : j + d;
                ii = ii < 0 ? 0 : ii >= h ? h - 1 : ii;
                jj = jj < 0 ? 0 : jj >= w ? w - 1 : jj;
                v += k[d + 1] * in[ii * w + jj];
            }
            out[i * w + j] = v;
        }
}

/* A [1 2 1] x [1 2 1] / 16 blur of every plane. */
static void blur3(float *x, float *tmp, int planes, int h, int w)
{
    for (int pl = 0; pl < planes; pl++) {
        blur_pass(x + (size_t)pl * h * w, tmp, h, w, 0);
        blur_pass(tmp, x + (size_t)pl * h * w, h, w, 1);
    }
}

static int silent(const float *g, size_t dim)
{
    for (size_t p = 0; p < dim; p++)
        if (g[p] != 0.0f)
            return 0;
    return 1;
}

static int any_silent(const float *g, int n, size_t dim)
{
    for (int j = 0; j < n; j++)
        if (silent(g + dim * j, dim))
            return 1;
    return 0;
}

/* Example j's objective: the mean of channel first + j. */
static void objectives(core_model *m, int layer, int first, const float *x, int n, float *score,
                       double *out)
{
    const int c = m->layers[layer].out.c;
    core_unit_scores(m, layer, x, n, score, NULL);
    for (int j = 0; j < n; j++)
        out[j] = score[(size_t)j * c + first + j];
}

int core_unit_maximise(const core_maximise_cfg *cfg, core_model *m, int layer, int first, int n,
                       float *img, double *start, double *end, char *err)
{
    const core_shape in = m->in, os = m->layers[layer].out;
    const size_t dim = core_shape_size(in), osz = core_shape_size(os), plane = (size_t)os.h * os.w;
    if (n > m->capacity || first < 0 || first + n > os.c)
        return core_errf(err, "channels %d..%d of a layer of %d do not fit a batch of %d", first,
                         first + n - 1, os.c, m->capacity);
    if (cfg->steps < 0 || !(cfg->lr > 0.0f) || !(cfg->decay >= 0.0f) || cfg->jitter < 0)
        return core_errf(err, "invalid maximisation settings: steps %d, lr %g", cfg->steps,
                         (double)cfg->lr);
    float *xs = core_alloc(sizeof(float) * dim * n), *g = core_alloc(sizeof(float) * dim * n);
    float *dy = core_alloc(sizeof(float) * osz * n), *score = core_alloc(sizeof(float) * os.c * n);
    float *tmp = core_alloc(sizeof(float) * dim);
    double *obj = malloc(sizeof(double) * n);
    if (!xs || !g || !dy || !score || !tmp || !obj) {
        core_free(xs), core_free(g), core_free(dy), core_free(score), core_free(tmp), free(obj);
        return core_errf(err, "out of memory for maximising %d channels", n);
    }
    for (size_t p = 0; p < dim * n; p++)
        img[p] = fminf(fmaxf(0.5f + 0.05f * core_rng_normal(cfg->seed, (uint64_t)(first + p / dim),
                                                             p % dim), 0.0f), 1.0f);
    objectives(m, layer, first, img, n, score, obj);
    for (int j = 0; start && j < n; j++)
        start[j] = obj[j];
    for (int j = 0; j < n; j++)
        for (size_t p = 0; p < plane; p++)
            dy[(size_t)j * osz + (size_t)(first + j) * plane + p] = 1.0f / (float)plane;
    /* A channel silent everywhere has no gradient after its ReLU: it
     * takes the gradient of its mean before it until it wakes. */
    const int grad_top = layer > 0 && m->layers[layer].kind == CORE_LAYER_RELU &&
                                 m->layers[layer - 1].kind == CORE_LAYER_CONV
                             ? layer - 1
                             : layer;
    for (int t = 0; t < cfg->steps; t++) {
        const int span = 2 * cfg->jitter + 1;
        const int sy = (int)core_rng_below(cfg->seed, 1ULL << 40, 2 * (uint64_t)t, span) - cfg->jitter;
        const int sx = (int)core_rng_below(cfg->seed, 1ULL << 40, 2 * (uint64_t)t + 1, span) -
                       cfg->jitter;
        roll(img, xs, n * in.c, in.h, in.w, sy, sx);
        core_model_forward(m, xs, n);
        core_model_backward_from(m, layer, dy, n, g, 0);
        if (grad_top != layer && any_silent(g, n, dim)) {
            core_model_backward_from(m, grad_top, dy, n, xs, 0);
            for (int j = 0; j < n; j++)
                if (silent(g + dim * j, dim))
                    memcpy(g + dim * j, xs + dim * j, sizeof(float) * dim);
        }
        roll(g, xs, n * in.c, in.h, in.w, -sy, -sx);   /* the gradient at img */
        for (int j = 0; j < n; j++) {
            float *xi = img + dim * j;
            const float *gi = xs + dim * j;
            double mean = 0.0;
            for (size_t p = 0; p < dim; p++)
                mean += fabsf(gi[p]);
            mean = mean / dim + 1e-12;
            for (size_t p = 0; p < dim; p++)
                xi[p] = 0.5f + (xi[p] + cfg->lr * (float)(gi[p] / mean) - 0.5f) * (1.0f - cfg->decay);
        }
        if (cfg->blur_every > 0 && (t + 1) % cfg->blur_every == 0)
            for (int j = 0; j < n; j++)
                blur3(img + dim * j, tmp, in.c, in.h, in.w);
        for (size_t p = 0; p < dim * n; p++)
            img[p] = fminf(fmaxf(img[p], 0.0f), 1.0f);
    }
    objectives(m, layer, first, img, n, score, obj);
    for (int j = 0; end && j < n; j++)
        end[j] = obj[j];
    core_free(xs), core_free(g), core_free(dy), core_free(score), core_free(tmp), free(obj);
    return 0;
}
