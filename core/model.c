/*
 * model.c - parsing a model spec into layers, the parameter buffer and its
 * named views, batch buffers, and the forward and backward passes.
 */
#include "model.h"

#include "loss.h"
#include "rng.h"

#include <ctype.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- presets ---------------------------------------------------------- */

static const struct {
    const char *name, *body;
} presets[] = {
    {"cnn-small", "conv32k3p1 relu maxpool2 conv64k3p1 relu maxpool2 fc128 relu"},
    {"madry", "conv32k5p2 relu maxpool2 conv64k5p2 relu maxpool2 fc1024 relu"},
    {"resnet-tiny", "conv16k3p1 relu res16 res16 conv32k3s2p1 relu res32 res32 gap"},
};

const char *core_model_preset(const char *name, int nclass, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(name, presets[i].name) == 0) {
            snprintf(buf, len, "%s fc%d", presets[i].body, nclass);
            return buf;
        }
    return NULL;
}

/* ---- tokens ----------------------------------------------------------- */

/* A token is a word, an optional number, then options letter+number:
 * "conv32k3p1" -> word "conv", num 32, opt['k'] = 3, opt['p'] = 1. */
typedef struct {
    char word[16];
    long num;        /* -1 when absent */
    long opt[26];    /* -1 when absent */
} token;

static int parse_number(const char **s, long *out)
{
    if (!isdigit((unsigned char)**s))
        return -1;
    char *end;
    *out = strtol(*s, &end, 10);
    *s = end;
    return *out > 100000 ? -1 : 0;
}

static int token_parse(const char *text, token *t, char *err)
{
    const char *s = text;
    size_t w = 0;
    memset(t->opt, 0xff, sizeof t->opt);
    t->num = -1;
    while (isalpha((unsigned char)*s) || *s == '-') {
        if (w + 1 >= sizeof t->word)
            return core_errf(err, "unknown layer '%s'", text);
        t->word[w++] = *s++;
    }
    t->word[w] = 0;
    if (isdigit((unsigned char)*s) && parse_number(&s, &t->num))
        return core_errf(err, "'%s': number too large", text);
    while (*s) {
        int letter = *s++;
        long v;
        if (!islower(letter) || parse_number(&s, &v))
            return core_errf(err, "'%s': cannot read option at '%s'", text, s - 1);
        t->opt[letter - 'a'] = v;
    }
    return 0;
}

/* Fail when the token carries options other than those in allowed. */
static int token_only(const token *t, const char *text, const char *allowed, char *err)
{
    for (int i = 0; i < 26; i++)
        if (t->opt[i] >= 0 && !strchr(allowed, 'a' + i))
            return core_errf(err, "'%s': unknown option '%c'", text, 'a' + i);
    return 0;
}

static long opt_or(const token *t, char letter, long fallback)
{
    return t->opt[letter - 'a'] >= 0 ? t->opt[letter - 'a'] : fallback;
}

/* ---- building layers -------------------------------------------------- */

typedef struct {
    core_model *m;
    core_shape shape;  /* current activation shape */
    int flat;          /* after flatten/fc: only fc, relu may follow */
    int index;         /* PyTorch nn.Sequential index of the next layer */
} builder;

static int add_view(core_model *m, const char *name, int ndim, const int *dims, size_t *off)
{
    core_param_view *v = &m->views[m->nviews++];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->ndim = ndim;
    v->size = 1;
    for (int i = 0; i < ndim; i++) {
        v->dims[i] = dims[i];
        v->size *= (size_t)dims[i];
    }
    v->offset = m->nparams;
    *off = m->nparams;
    m->nparams += v->size;
    return 0;
}

static core_layer *new_layer(builder *b, core_layer_kind kind, const char *text, char *err)
{
    if (b->m->nlayers >= CORE_MAX_LAYERS) {
        core_errf(err, "'%s': more than %d layers", text, CORE_MAX_LAYERS);
        return NULL;
    }
    core_layer *l = &b->m->layers[b->m->nlayers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in = l->out = b->shape;
    snprintf(l->name, sizeof l->name, "%d", b->index++);
    return l;
}

static int conv_setup(builder *b, core_conv *c, const char *prefix, int cout, int k,
                      int stride, int pad, const char *text, char *err)
{
    core_shape in = b->shape;
    int oh = (in.h + 2 * pad - k) / stride + 1, ow = (in.w + 2 * pad - k) / stride + 1;
    if (in.h + 2 * pad < k || in.w + 2 * pad < k)
        return core_errf(err, "'%s': kernel %dx%d does not fit input %dx%dx%d",
                         text, k, k, in.c, in.h, in.w);
    *c = (core_conv){.cin = in.c, .cout = cout, .k = k, .stride = stride, .pad = pad,
                     .in = in, .out = {cout, oh, ow}};
    if (core_shape_size(c->out) > CORE_MAX_VALUES)
        return core_errf(err, "'%s': output %dx%dx%d is more than %d values per example", text,
                         cout, oh, ow, CORE_MAX_VALUES);
    char name[32];
    int wd[4] = {cout, in.c, k, k};
    snprintf(name, sizeof name, "%s.weight", prefix);
    add_view(b->m, name, 4, wd, &c->w_off);
    snprintf(name, sizeof name, "%s.bias", prefix);
    add_view(b->m, name, 1, &cout, &c->b_off);
    b->shape = c->out;
    return 0;
}

static int build_conv(builder *b, const token *t, const char *text, char *err)
{
    if (token_only(t, text, "ksp", err))
        return -1;
    long k = opt_or(t, 'k', 3), s = opt_or(t, 's', 1), p = opt_or(t, 'p', 0);
    if (t->num <= 0)
        return core_errf(err, "'%s': zero channels (write convN, e.g. conv32k3p1)", text);
    if (k < 1 || s < 1 || k > 64 || p > 64)
        return core_errf(err, "'%s': kernel and stride must be at least 1", text);
    core_layer *l = new_layer(b, CORE_LAYER_CONV, text, err);
    if (!l || conv_setup(b, &l->conv[0], l->name, (int)t->num, (int)k, (int)s, (int)p, text, err))
        return -1;
    l->out = b->shape;
    return 0;
}

static int build_res(builder *b, const token *t, const char *text, char *err)
{
    if (token_only(t, text, "", err))
        return -1;
    if (t->num >= 0 && t->num != b->shape.c)
        return core_errf(err, "'%s': a residual block keeps its %d input channels", text,
                         b->shape.c);
    core_layer *l = new_layer(b, CORE_LAYER_RES, text, err);
    if (!l)
        return -1;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s.a", l->name);
    if (conv_setup(b, &l->conv[0], prefix, b->shape.c, 3, 1, 1, text, err))
        return -1;
    snprintf(prefix, sizeof prefix, "%s.b", l->name);
    return conv_setup(b, &l->conv[1], prefix, b->shape.c, 3, 1, 1, text, err);
}

static int build_pool(builder *b, core_layer_kind kind, const token *t, const char *text, char *err)
{
    if (token_only(t, text, "s", err))
        return -1;
    if (t->num <= 0)
        return core_errf(err, "'%s': zero window (write e.g. maxpool2)", text);
    long s = opt_or(t, 's', t->num);
    if (s < 1)
        return core_errf(err, "'%s': zero stride", text);
    if (t->num > b->shape.h || t->num > b->shape.w)
        return core_errf(err, "'%s': window %ld does not fit input %dx%dx%d", text, t->num,
                         b->shape.c, b->shape.h, b->shape.w);
    core_layer *l = new_layer(b, kind, text, err);
    if (!l)
        return -1;
    l->pool = (int)t->num;
    l->stride = (int)s;
    l->out.h = (b->shape.h - l->pool) / l->stride + 1;
    l->out.w = (b->shape.w - l->pool) / l->stride + 1;
    b->shape = l->out;
    return 0;
}

static int build_flatten(builder *b, const char *text, char *err)
{
    core_layer *l = new_layer(b, CORE_LAYER_FLATTEN, text, err);
    if (!l)
        return -1;
    l->out = (core_shape){(int)core_shape_size(b->shape), 1, 1};
    b->shape = l->out;
    b->flat = 1;
    return 0;
}

static int build_fc(builder *b, const token *t, const char *text, char *err)
{
    if (token_only(t, text, "", err))
        return -1;
    if (t->num <= 0)
        return core_errf(err, "'%s': zero outputs (write fcN, e.g. fc128)", text);
    if (!b->flat && build_flatten(b, "flatten", err))
        return -1;
    core_layer *l = new_layer(b, CORE_LAYER_FC, text, err);
    if (!l)
        return -1;
    int out = (int)t->num, in = (int)core_shape_size(b->shape);
    if ((double)out * in > CORE_MAX_PARAMS)
        return core_errf(err, "'%s': %d x %d weights, more than %.0f", text, out, in,
                         (double)CORE_MAX_PARAMS);
    char name[32];
    int wd[2] = {out, in};
    snprintf(name, sizeof name, "%s.weight", l->name);
    add_view(b->m, name, 2, wd, &l->w_off);
    snprintf(name, sizeof name, "%s.bias", l->name);
    add_view(b->m, name, 1, &out, &l->b_off);
    l->out = (core_shape){out, 1, 1};
    b->shape = l->out;
    return 0;
}

/* Up to max comma-separated finite numbers of s[0, len) into v; returns
 * how many, or -1. Read as doubles then rounded to float, as PyTorch turns
 * a Python float into a float32 tensor. */
static int parse_values(const char *s, size_t len, float *v, int max)
{
    int k = 0;
    const char *end = s + len;
    while (s < end && k < max) {
        char *stop;
        double d = strtod(s, &stop);
        if (stop == s || stop > end || !isfinite((float)d) || (stop < end && *stop != ','))
            return -1;
        v[k++] = (float)d;
        s = stop + (stop < end);
        if (stop + 1 == end)
            return -1; /* a trailing comma */
    }
    return s < end ? -1 : k;
}

/* norm(MEAN;STD): one value for every channel, or one per channel. */
static int build_norm(builder *b, const char *text, char *err)
{
    const char *open = text + 4, *semi = strchr(text, ';');
    size_t len = strlen(text);
    int c = b->shape.c, nm, ns;
    float mean[CORE_NORM_MAX], std[CORE_NORM_MAX];
    if (*open != '(' || !semi || text[len - 1] != ')')
        return core_errf(err, "'%s': expected norm(MEAN;STD), e.g. norm(0.286;0.353)", text);
    if ((nm = parse_values(open + 1, (size_t)(semi - open - 1), mean, CORE_NORM_MAX)) < 1 ||
        (ns = parse_values(semi + 1, (size_t)(text + len - 1 - semi - 1), std, CORE_NORM_MAX)) < 1)
        return core_errf(err, "'%s': expected comma-separated numbers on each side of ';'", text);
    if ((nm != 1 && nm != c) || (ns != 1 && ns != c))
        return core_errf(err, "'%s': %d mean and %d std values for %d channels (give 1 or %d)",
                         text, nm, ns, c, c);
    if (c > CORE_NORM_MAX)
        return core_errf(err, "'%s': %d channels, more than %d", text, c, CORE_NORM_MAX);
    core_layer *l = new_layer(b, CORE_LAYER_NORM, text, err);
    if (!l)
        return -1;
    for (int i = 0; i < c; i++) {
        l->mean[i] = mean[nm == 1 ? 0 : i];
        l->std[i] = std[ns == 1 ? 0 : i];
        if (!(l->std[i] > 0.0f))
            return core_errf(err, "'%s': std must be positive", text);
    }
    return 0;
}

static int build_token(builder *b, const char *text, char *err)
{
    token t;
    if (strncmp(text, "norm", 4) == 0 && (text[4] == '(' || text[4] == '\0'))
        return build_norm(b, text, err);
    if (token_parse(text, &t, err))
        return -1;
    const char *w = t.word;
    int spatial = strcmp(w, "conv") == 0 || strcmp(w, "res") == 0 || strcmp(w, "maxpool") == 0 ||
                  strcmp(w, "avgpool") == 0 || strcmp(w, "gap") == 0;
    if (spatial && b->flat)
        return core_errf(err, "'%s': needs an image input but follows a flat layer", text);
    if (strcmp(w, "conv") == 0)
        return build_conv(b, &t, text, err);
    if (strcmp(w, "res") == 0)
        return build_res(b, &t, text, err);
    if (strcmp(w, "maxpool") == 0)
        return build_pool(b, CORE_LAYER_MAXPOOL, &t, text, err);
    if (strcmp(w, "avgpool") == 0)
        return build_pool(b, CORE_LAYER_AVGPOOL, &t, text, err);
    if (strcmp(w, "fc") == 0)
        return build_fc(b, &t, text, err);
    if (t.num >= 0 || token_only(&t, text, "", err))
        return core_errf(err, "'%s': takes no number or options", text);
    if (strcmp(w, "relu") == 0)
        return new_layer(b, CORE_LAYER_RELU, text, err) ? 0 : -1;
    if (strcmp(w, "flatten") == 0)
        return b->flat ? core_errf(err, "'%s': input is already flat", text)
                       : build_flatten(b, text, err);
    if (strcmp(w, "gap") == 0) {
        core_layer *l = new_layer(b, CORE_LAYER_GAP, text, err);
        if (!l)
            return -1;
        l->out.h = l->out.w = 1;
        b->shape = l->out;
        return 0;
    }
    return core_errf(err, "unknown layer '%s' (expected conv, relu, maxpool, avgpool, gap, "
                          "flatten, fc, res or norm)", text);
}

static int build_all(core_model *m, char *err)
{
    builder b = {.m = m, .shape = m->in};
    char copy[CORE_SPEC_LEN];
    snprintf(copy, sizeof copy, "%s", m->spec);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
        if (build_token(&b, tok, err))
            return -1;
    if (m->nlayers == 0)
        return core_errf(err, "empty model spec");
    const core_layer *last = &m->layers[m->nlayers - 1];
    if (last->kind != CORE_LAYER_FC || last->out.c != m->nclass)
        return core_errf(err, "model must end with 'fc%d' (one output per class), not '%s'",
                         m->nclass, strrchr(m->spec, ' ') ? strrchr(m->spec, ' ') + 1 : m->spec);
    return 0;
}

/* The layers and parameter views of spec, in a model without buffers. */
static int model_parse(const char *spec, core_shape in, int nclass, core_model **out, char *err)
{
    if (!spec || !*spec)
        return core_errf(err, "empty model spec");
    if (nclass < 2 || in.c < 1 || in.h < 1 || in.w < 1)
        return core_errf(err, "invalid input shape %dx%dx%d with %d classes", in.c, in.h, in.w,
                         nclass);
    if (strlen(spec) >= CORE_SPEC_LEN - 16)
        return core_errf(err, "model spec longer than %d characters", CORE_SPEC_LEN - 16);
    core_model *m = calloc(1, sizeof *m);
    if (!m)
        return core_errf(err, "out of memory");
    m->in = in;
    m->nclass = nclass;
    if (!core_model_preset(spec, nclass, m->spec, sizeof m->spec))
        snprintf(m->spec, sizeof m->spec, "%s", spec);
    if (build_all(m, err)) {
        core_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int core_model_describe(const char *spec, core_shape in, int nclass, core_model **out,
                        char *err)
{
    return model_parse(spec, in, nclass, out, err);
}

int core_model_create(const char *spec, core_shape in, int nclass, uint64_t seed,
                      core_model **out, char *err)
{
    core_model *m;
    if (model_parse(spec, in, nclass, &m, err))
        return -1;
    if (m->nparams > CORE_MAX_PARAMS) {
        core_errf(err, "%zu parameters, more than %.0f", m->nparams, (double)CORE_MAX_PARAMS);
        goto fail;
    }
    m->params = core_alloc(m->nparams * sizeof(float));
    m->grads = core_alloc(m->nparams * sizeof(float));
    if (!m->params || !m->grads) {
        core_errf(err, "out of memory for %zu parameters", m->nparams);
        goto fail;
    }
    core_model_init(m, seed, CORE_INIT_HE);
    *out = m;
    return 0;
fail:
    core_model_free(m);
    return -1;
}

/* ---- init, buffers ---------------------------------------------------- */

int core_init_parse(const char *s, core_init *out, char *err)
{
    if (strcmp(s, "he") == 0 || strcmp(s, "torch") == 0) {
        *out = s[0] == 'h' ? CORE_INIT_HE : CORE_INIT_TORCH;
        return 0;
    }
    return core_errf(err, "unknown init '%s' (expected he or torch)", s);
}

void core_model_init(core_model *m, uint64_t seed, core_init kind)
{
    size_t fan_in = 1;
    for (int v = 0; v < m->nviews; v++) {
        const core_param_view *pv = &m->views[v];
        float *w = m->params + pv->offset;
        if (pv->ndim >= 2) /* a weight; its bias view follows it */
            fan_in = pv->size / (size_t)pv->dims[0];
        float he_std = sqrtf(2.0f / (float)fan_in), bound = 1.0f / sqrtf((float)fan_in);
        for (size_t i = 0; i < pv->size; i++) {
            if (kind == CORE_INIT_TORCH)
                w[i] = bound * (2.0f * core_rng_uniform(seed, CORE_STREAM_INIT + (uint64_t)v, i) - 1.0f);
            else
                w[i] = pv->ndim < 2 ? 0.0f : he_std * core_rng_normal(seed, CORE_STREAM_INIT + (uint64_t)v, i);
        }
    }
}

static void free_batch_buffers(core_model *m)
{
    for (int i = 0; i < m->nlayers; i++) {
        core_layer *l = &m->layers[i];
        if (l->kind != CORE_LAYER_FLATTEN)
            core_free(l->y);
        core_free(l->argmax);
        core_free(l->r);
        core_free(l->dr);
        l->y = l->r = l->dr = NULL;
        l->argmax = NULL;
    }
    core_free(m->gbuf[0]);
    core_free(m->gbuf[1]);
    core_conv_scratch_free(&m->scratch);
    m->gbuf[0] = m->gbuf[1] = NULL;
    m->capacity = 0;
}

void core_model_free(core_model *m)
{
    if (!m)
        return;
    free_batch_buffers(m);
    core_free(m->params);
    core_free(m->grads);
    free(m);
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Whether layer i is a convolution with a ReLU right after it. */
static int relu_follows(const core_model *m, int i)
{
    return i + 1 < m->nlayers && m->layers[i].kind == CORE_LAYER_CONV &&
           m->layers[i + 1].kind == CORE_LAYER_RELU;
}

/* The batch buffers of one layer for n examples, in elements: its output
 * (none when flatten, or fused: a convolution followed by a ReLU writes
 * into the ReLU's buffer), a max pool's argmax, a residual block's two
 * inner buffers. Grows the per-thread convolution scratch lengths (need)
 * and the gradient buffer size (g). core_model_reserve allocates exactly
 * this; core_model_estimate adds it up. */
typedef struct {
    size_t y, argmax, r, dr;
} layer_bufs;

static layer_bufs layer_sizes(const core_layer *l, int n, int threads, int fused, size_t need[3],
                              size_t *g)
{
    size_t out = (size_t)n * core_shape_size(l->out), in = (size_t)n * core_shape_size(l->in);
    *g = max_sz(*g, max_sz(in, out));
    layer_bufs b = {0, 0, 0, 0};
    if (l->kind == CORE_LAYER_FLATTEN)
        return b;
    b.y = fused ? 0 : out;
    b.argmax = l->kind == CORE_LAYER_MAXPOOL ? out : 0;
    b.r = b.dr = l->kind == CORE_LAYER_RES ? out : 0;
    int nconv = l->kind == CORE_LAYER_CONV ? 1 : l->kind == CORE_LAYER_RES ? 2 : 0;
    for (int c = 0; c < nconv; c++)
        core_conv_scratch_need(&l->conv[c], n, threads, need);
    return b;
}

/* Allocate one layer's buffers; returns 0 or -1. */
static int reserve_layer(core_layer *l, int n, int threads, int fused, size_t need[3],
                         size_t *g)
{
    layer_bufs b = layer_sizes(l, n, threads, fused, need, g);
    if (b.y && !(l->y = core_alloc(b.y * sizeof(float))))
        return -1;
    if (b.argmax && !(l->argmax = core_alloc(b.argmax * sizeof(int))))
        return -1;
    if (b.r && (!(l->r = core_alloc(b.r * sizeof(float))) ||
                !(l->dr = core_alloc(b.dr * sizeof(float)))))
        return -1;
    return 0;
}

int core_model_estimate(const char *spec, core_shape in, int nclass, int batch, int threads,
                        core_model_cost *cost, char *err)
{
    core_model *m;
    if (model_parse(spec, in, nclass, &m, err))
        return -1;
    size_t need[3] = {1, 1, 1}, g = 1;
    double act = 0;
    for (int i = 0; i < m->nlayers; i++) {
        layer_bufs b = layer_sizes(&m->layers[i], batch, threads, relu_follows(m, i), need, &g);
        act += (double)b.y + (double)b.argmax + (double)b.r + (double)b.dr;
    }
    act += ((double)need[0] + need[1] + need[2]) * threads + 2.0 * (double)g;
    *cost = (core_model_cost){.params = (double)m->nparams,
                              .batch_bytes = act * sizeof(float),
                              .flops = core_model_flops(m)};
    core_model_free(m);
    return 0;
}

/* Batch buffers are sized for the thread count at the time of the call;
 * with more threads later, convolutions use only that many. */
int core_model_reserve(core_model *m, int batch, char *err)
{
    if (batch <= m->capacity)
        return 0;
    free_batch_buffers(m);
    const int threads = omp_get_max_threads();
    size_t need[3] = {1, 1, 1}, g = 1;
    for (int i = 0; i < m->nlayers; i++)
        if (reserve_layer(&m->layers[i], batch, threads, relu_follows(m, i), need, &g))
            goto oom;
    if (core_conv_scratch_alloc(&m->scratch, need, threads))
        goto oom;
    m->gbuf[0] = core_alloc(g * sizeof(float));
    m->gbuf[1] = core_alloc(g * sizeof(float));
    if (!m->gbuf[0] || !m->gbuf[1])
        goto oom;
    m->capacity = batch;
    return 0;
oom:
    free_batch_buffers(m);
    return core_errf(err, "out of memory for a batch of %d", batch);
}

/* ---- forward, backward ------------------------------------------------ */

static void res_forward(core_model *m, core_layer *l, const float *x, int n)
{
    size_t len = (size_t)n * core_shape_size(l->out);
    core_conv_forward(&l->conv[0], m->params, x, l->r, n, &m->scratch, 1);
    core_conv_forward(&l->conv[1], m->params, l->r, l->y, n, &m->scratch, 0);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++) {
        float v = x[i] + l->y[i];
        l->y[i] = v > 0.0f ? v : 0.0f;
    }
}

const float *core_model_forward(core_model *m, const float *x, int n)
{
    m->x = x;
    for (int i = 0; i < m->nlayers; i++) {
        core_layer *l = &m->layers[i];
        switch (l->kind) {
        case CORE_LAYER_CONV:
            if (relu_follows(m, i)) {
                /* The convolution writes the ReLU's output, into the ReLU
                 * layer's buffer (which its backward reads); the ReLU layer
                 * has nothing left to do. */
                l = &m->layers[++i];
                core_conv_forward(&m->layers[i - 1].conv[0], m->params, x, l->y, n, &m->scratch,
                                  1);
            } else {
                core_conv_forward(&l->conv[0], m->params, x, l->y, n, &m->scratch, 0);
            }
            break;
        case CORE_LAYER_RELU:
            core_relu_forward(x, l->y, (size_t)n * core_shape_size(l->out));
            break;
        case CORE_LAYER_MAXPOOL:
            core_maxpool_forward(l, x, l->y, l->argmax, n);
            break;
        case CORE_LAYER_AVGPOOL:
        case CORE_LAYER_GAP:
            core_avgpool_forward(l, x, l->y, n);
            break;
        case CORE_LAYER_FLATTEN:
            l->y = (float *)x; /* same bytes, new shape */
            break;
        case CORE_LAYER_FC:
            core_fc_forward(l, m->params, x, l->y, n);
            break;
        case CORE_LAYER_RES:
            res_forward(m, l, x, n);
            break;
        case CORE_LAYER_NORM:
            core_norm_forward(l, x, l->y, n);
            break;
        }
        x = l->y;
    }
    return x;
}

void core_model_logits(core_model *m, const float *x, int n, float *logits)
{
    const size_t dim = core_shape_size(m->in), c = (size_t)m->nclass;
    for (int off = 0; off < n; off += m->capacity) {
        int k = n - off < m->capacity ? n - off : m->capacity;
        memcpy(logits + c * off, core_model_forward(m, x + dim * off, k), sizeof(float) * c * k);
    }
}

void core_model_predict(core_model *m, const float *x, int n, int *pred)
{
    const size_t dim = core_shape_size(m->in);
    for (int off = 0; off < n; off += m->capacity) {
        int k = n - off < m->capacity ? n - off : m->capacity;
        const float *z = core_model_forward(m, x + dim * off, k);
        for (int i = 0; i < k; i++)
            pred[off + i] = core_argmax(z + (size_t)i * m->nclass, m->nclass);
    }
}

static void relu_backward(const core_model *m, const float *y, const float *dy, float *dx,
                          size_t len)
{
    if (m->guided)
        core_relu_backward_guided(y, dy, dx, len);
    else
        core_relu_backward(y, dy, dx, len);
}

/* dy is the layer's output gradient (clobbered), dx receives its input's. */
static void res_backward(core_model *m, core_layer *l, const float *x, float *dy, float *dx,
                         int n, int pg)
{
    size_t len = (size_t)n * core_shape_size(l->out);
    relu_backward(m, l->y, dy, dy, len);
    core_conv_backward(&l->conv[1], m->params, m->grads, l->r, dy, l->dr, n, pg, &m->scratch);
    relu_backward(m, l->r, l->dr, l->dr, len);
    core_conv_backward(&l->conv[0], m->params, m->grads, x, l->dr, dx, n, pg, &m->scratch);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < len; i++)
        dx[i] += dy[i];
}

static void layer_backward(core_model *m, core_layer *l, const float *x, float *dy, float *dx,
                           int n, int pg)
{
    switch (l->kind) {
    case CORE_LAYER_CONV:
        core_conv_backward(&l->conv[0], m->params, m->grads, x, dy, dx, n, pg, &m->scratch);
        break;
    case CORE_LAYER_RELU:
        relu_backward(m, l->y, dy, dx, (size_t)n * core_shape_size(l->out));
        break;
    case CORE_LAYER_MAXPOOL:
        core_maxpool_backward(l, dy, l->argmax, dx, n);
        break;
    case CORE_LAYER_AVGPOOL:
    case CORE_LAYER_GAP:
        core_avgpool_backward(l, dy, dx, n);
        break;
    case CORE_LAYER_FLATTEN:
        break; /* handled by the caller: same bytes */
    case CORE_LAYER_FC:
        core_fc_backward(l, m->params, m->grads, x, dy, dx, n, pg);
        break;
    case CORE_LAYER_RES:
        res_backward(m, l, x, dy, dx, n, pg);
        break;
    case CORE_LAYER_NORM:
        core_norm_backward(l, dy, dx, n);
        break;
    }
}

void core_model_backward(core_model *m, const float *dlogits, int n, float *dx, int param_grads)
{
    core_model_backward_from(m, m->nlayers - 1, dlogits, n, dx, param_grads);
}

/* Where a layer's parameters start, or SIZE_MAX for none. */
static size_t layer_params(const core_layer *l)
{
    switch (l->kind) {
    case CORE_LAYER_CONV:
    case CORE_LAYER_RES:
        return l->conv[0].w_off;
    case CORE_LAYER_FC:
        return l->w_off;
    default:
        return SIZE_MAX;
    }
}

void core_model_freeze(core_model *m, int k)
{
    m->frozen = 0;
    int seen = 0;
    for (int i = m->nlayers - 1; i >= 0 && k > 0; i--) {
        size_t off = layer_params(&m->layers[i]);
        if (off == SIZE_MAX)
            continue;
        if (seen++ == k) {
            /* Layer i is the highest frozen one: freeze up to its end. */
            for (int j = i + 1; j < m->nlayers; j++)
                if ((m->frozen = layer_params(&m->layers[j])) != SIZE_MAX)
                    return;
        }
    }
    m->frozen = 0;
}

static const core_param_view *view_named(const core_model *m, const char *name)
{
    for (int i = 0; i < m->nviews; i++)
        if (!strcmp(m->views[i].name, name))
            return &m->views[i];
    return NULL;
}

static void shape_text(const core_param_view *v, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int d = 0; v && d < v->ndim && o < len; d++)
        o += (size_t)snprintf(out + o, len - o, d ? "x%d" : "%d", v->dims[d]);
    if (!v)
        snprintf(out, len, "none");
}

/* Same shape from dimension `from` on (1: all but the outputs). */
static int same_shape(const core_param_view *a, const core_param_view *b, int from)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = from; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

int core_model_transfer(core_model *dst, const core_model *src, int *reinit, char *err)
{
    const core_layer *last = &dst->layers[dst->nlayers - 1];
    size_t last_off = layer_params(last);
    *reinit = 0;
    if (dst->nviews != src->nviews)
        return core_errf(err, "the model has %d tensors, the checkpoint's '%s' has %d",
                         dst->nviews, src->spec, src->nviews);
    for (int i = 0; i < dst->nviews; i++) {
        const core_param_view *d = &dst->views[i], *s = view_named(src, d->name);
        if (s && same_shape(d, s, 0)) {
            memcpy(dst->params + d->offset, src->params + s->offset, sizeof(float) * d->size);
            continue;
        }
        /* The final fc with another class count: only its output rows differ. */
        if (s && d->offset >= last_off && same_shape(d, s, 1) && dst->nclass != src->nclass) {
            *reinit = 1;
            continue;
        }
        char a[64], b[64];
        shape_text(d, a, sizeof a);
        shape_text(s, b, sizeof b);
        return core_errf(err, "tensor '%s' is %s here but %s in the checkpoint's '%s'", d->name,
                         a, b, src->spec);
    }
    return 0;
}

void core_model_backward_from(core_model *m, int top, const float *dy_top, int n, float *dx,
                              int param_grads)
{
    int cur = 0;
    float *dy = m->gbuf[cur];
    memcpy(dy, dy_top, sizeof(float) * (size_t)n * core_shape_size(m->layers[top].out));
    for (int i = top; i >= 0; i--) {
        core_layer *l = &m->layers[i];
        const float *x = i > 0 ? m->layers[i - 1].y : m->x;
        int pg = param_grads && layer_params(l) >= m->frozen;
        /* Below the trained layers with no input gradient wanted: done. */
        if (param_grads && !dx && layer_params(l) != SIZE_MAX && !pg)
            break;
        if (l->kind == CORE_LAYER_FLATTEN) {
            if (i == 0 && dx)
                memcpy(dx, dy, sizeof(float) * (size_t)n * core_shape_size(l->in));
            continue;
        }
        if (i == 0) {
            /* The input gradient is wanted only by attacks: conv and fc skip
             * that GEMM when given NULL; a residual block needs a buffer. */
            float *target = dx;
            if (!target && l->kind == CORE_LAYER_RES)
                target = m->gbuf[1 - cur];
            if (target || l->kind == CORE_LAYER_CONV || l->kind == CORE_LAYER_FC)
                layer_backward(m, l, x, dy, target, n, pg);
            break;
        }
        float *out = m->gbuf[1 - cur];
        layer_backward(m, l, x, dy, out, n, pg);
        cur = 1 - cur;
        dy = out;
    }
}

void core_model_zero_grad(core_model *m)
{
    memset(m->grads, 0, m->nparams * sizeof(float));
}

int core_model_buffers(const core_model *m, core_buffer_view *out)
{
    int k = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const core_layer *l = &m->layers[i];
        if (l->kind != CORE_LAYER_NORM)
            continue;
        for (int j = 0; j < 2; j++, k++) {
            snprintf(out[k].name, sizeof out[k].name, "%s.%s", l->name, j ? "std" : "mean");
            out[k].data = j ? l->std : l->mean;
            out[k].len = l->in.c;
        }
    }
    return k;
}

const core_param_view *core_model_view(const core_model *m, const char *name)
{
    for (int i = 0; i < m->nviews; i++)
        if (strcmp(m->views[i].name, name) == 0)
            return &m->views[i];
    return NULL;
}

double core_model_flops(const core_model *m)
{
    double macs = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const core_layer *l = &m->layers[i];
        int nconv = l->kind == CORE_LAYER_CONV ? 1 : l->kind == CORE_LAYER_RES ? 2 : 0;
        for (int c = 0; c < nconv; c++) {
            const core_conv *cv = &l->conv[c];
            macs += (double)cv->cout * cv->out.h * cv->out.w * cv->cin * cv->k * cv->k;
        }
        if (l->kind == CORE_LAYER_FC)
            macs += (double)core_shape_size(l->in) * l->out.c;
    }
    return 2.0 * macs;
}
