/*
 * import.c - a model trained elsewhere, from a safetensors file: the spec
 * names every tensor the file must hold (PyTorch's nn.Sequential names and
 * layouts, as export writes them: core_model_view and core_model_buffers),
 * the file gives their values in F32, F16 or BF16 (read exactly as floats).
 *
 * Everything is checked before a model is handed out: the file's limits
 * (safetensors.c), the set of names and each shape (one message lists
 * every missing, extra and mis-shaped tensor with its shapes), finite
 * values, and norm buffers equal to the spec's constants.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tensor the model expects. */
typedef struct {
    const char *name;
    int ndim;
    const int *dims;
    float *dst;          /* parameters: where its values go; buffers: NULL */
    const float *value;  /* buffers: the spec's constants */
    size_t size;
} want;

static void shape_of(int ndim, const int *d32, const int64_t *d64, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(out + o, len - o, d ? "x%lld" : "%lld",
                              (long long)(d32 ? d32[d] : d64[d]));
    if (!ndim)
        snprintf(out, len, "scalar");
}

static int same_shape(const want *w, const adv_st_tensor *t)
{
    if (w->ndim != t->ndim)
        return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->dims[d] != w->dims[d])
            return 0;
    return 1;
}

static const adv_st_tensor *file_tensor(const adv_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name))
            return &f->t[i];
    return NULL;
}

static int expected(const want *w, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(w[i].name, name))
            return 1;
    return 0;
}

static void append(char *msg, size_t len, const char *fmt, const char *a, const char *b,
                   const char *c)
{
    size_t o = strlen(msg);
    if (o < len)
        snprintf(msg + o, len - o, fmt, a, b, c);
}

/* Every mismatch between the model's tensors and the file's, or 0. */
static int check_names(const want *w, int nw, const adv_st_file *f, const char *spec,
                       adv_error *e)
{
    char msg[ADV_ERRLEN] = "", a[96], b[96];
    for (int i = 0; i < nw; i++) {
        const adv_st_tensor *t = file_tensor(f, w[i].name);
        shape_of(w[i].ndim, w[i].dims, NULL, a, sizeof a);
        if (t)
            shape_of(t->ndim, NULL, t->dims, b, sizeof b);
        if (!t)
            append(msg, sizeof msg, "; missing '%s' (%s)%s", w[i].name, a, "");
        else if (!same_shape(&w[i], t))
            append(msg, sizeof msg, "; '%s' is %s in the file, expected %s", w[i].name, b, a);
    }
    for (int i = 0; i < f->n; i++)
        if (!expected(w, nw, f->t[i].name)) {
            shape_of(f->t[i].ndim, NULL, f->t[i].dims, b, sizeof b);
            append(msg, sizeof msg, "; extra '%s' (%s)%s", f->t[i].name, b, "");
        }
    if (!msg[0])
        return 0;
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "the file's tensors do not fit '%.80s': %s",
                      spec, msg + 2);
}

/* The values: finite, into the parameters, or equal to the spec's. */
static int copy_values(const want *w, int nw, const adv_st_file *f, adv_error *e)
{
    for (int i = 0; i < nw; i++) {
        const adv_st_tensor *t = file_tensor(f, w[i].name);
        float *v = w[i].dst ? w[i].dst : malloc(w[i].size * sizeof(float) + 1);
        if (!v)
            return adv_errorf(e, ADV_E_INTERNAL, "out of memory");
        adv_st_tensor_floats(f, t, v);
        size_t j = 0, bad = 0;
        while (j < w[i].size && isfinite(v[j]) && (!w[i].value || v[j] == w[i].value[j]))
            j++;
        bad = j < w[i].size;
        float got = bad ? v[j] : 0.0f;
        if (!w[i].dst)
            free(v);
        if (bad && !isfinite(got))
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                              "tensor '%s' holds a value that is not finite (%g at %zu)",
                              w[i].name, (double)got, j);
        if (bad)
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                              "buffer '%s' is %.9g at %zu in the file but %.9g in the spec's "
                              "norm(...)", w[i].name, (double)got, j, (double)w[i].value[j]);
    }
    return 0;
}

int adv_safetensors_model(const uint8_t *buf, size_t len, const char *spec, core_shape in,
                          int nclass, core_model **out, adv_error *e)
{
    char err[CORE_ERRLEN];
    adv_st_file f;
    core_model *m = NULL;
    want *w = NULL;
    core_buffer_view b[CORE_MAX_BUFFERS];
    *out = NULL;
    if (adv_safetensors_parse(buf, len, &f, e))
        return -1;
    int rc = -1;
    if (core_model_create(spec, in, nclass, 0, &m, err)) {
        adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'model': %s", err);
        goto out;
    }
    int nb = core_model_buffers(m, b), nw = 0;
    if (!(w = calloc((size_t)(m->nviews + nb), sizeof *w))) {
        adv_errorf(e, ADV_E_INTERNAL, "out of memory");
        goto out;
    }
    for (int i = 0; i < m->nviews; i++, nw++) {
        const core_param_view *v = &m->views[i];
        w[nw] = (want){v->name, v->ndim, v->dims, m->params + v->offset, NULL, v->size};
    }
    for (int i = 0; i < nb; i++, nw++)
        w[nw] = (want){b[i].name, 1, &b[i].len, NULL, b[i].data, (size_t)b[i].len};
    if (check_names(w, nw, &f, m->spec, e) || copy_values(w, nw, &f, e))
        goto out;
    *out = m;
    m = NULL;
    rc = 0;
out:
    free(w);
    core_model_free(m);
    adv_st_file_free(&f);
    return rc;
}
