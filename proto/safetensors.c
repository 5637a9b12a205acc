/*
 * safetensors.c - the head of a safetensors file for a model's parameters,
 * so that a checkpoint can be served as one without a copy of its weights.
 *
 * Format (https://github.com/huggingface/safetensors):
 *   u64 little-endian N, N bytes of JSON header (padded with spaces to a
 *   multiple of 8), then the tensor bytes (F32, little-endian)
 *   header: {"__metadata__": {string: string}, NAME: {"dtype": "F32",
 *            "shape": [...], "data_offsets": [begin, end]}, ...}
 * The tensors are the model's parameter views (PyTorch names and layouts:
 * nn.Sequential indices, convolution weights out x in x kH x kW, linear
 * weights out x in) in buffer order, and the views tile the parameter
 * buffer, so the data section is the checkpoint's parameter bytes as they
 * are (core/state.h), followed by the model's buffers (norm layers' "N.mean"
 * and "N.std", constants of the spec: adv_safetensors_tail): whoever serves
 * a file needs this head, a window into the stored checkpoint and the tail.
 *
 * Reading (adv_safetensors_parse) takes a file from anywhere, so every
 * limit is checked before anything is used: the header length (at most
 * ADV_ST_HEADER_MAX and inside the file), valid JSON without duplicate
 * names, at most ADV_ST_TENSORS_MAX tensors with names of at most
 * ADV_ST_NAME_MAX bytes, shapes of at most ADV_ST_NDIM_MAX dimensions whose
 * element count times the dtype's size is the tensor's byte length, and
 * data offsets inside the data section that tile it exactly (no overlap,
 * no hole, no trailing bytes), as the format's own specification requires.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors wants little-endian floats: add a byte swap for this machine"
#endif

static void add_tensor(json_t *h, const char *name, int ndim, const int *dims, size_t *off,
                       size_t size)
{
    json_t *shape = json_array();
    for (int d = 0; d < ndim; d++)
        json_array_append_new(shape, json_integer(dims[d]));
    size_t end = *off + size * sizeof(float);
    json_object_set_new(h, name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                           "data_offsets", (json_int_t)*off, (json_int_t)end));
    *off = end;
}

static json_t *tensors(const core_model *m, json_t *metadata)
{
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", metadata);
    size_t off = 0;
    for (int i = 0; i < m->nviews; i++)
        add_tensor(h, m->views[i].name, m->views[i].ndim, m->views[i].dims, &off,
                   m->views[i].size);
    core_buffer_view b[CORE_MAX_BUFFERS];
    int nb = core_model_buffers(m, b);
    for (int i = 0; i < nb; i++)
        add_tensor(h, b[i].name, 1, &b[i].len, &off, (size_t)b[i].len);
    return h;
}

int adv_safetensors_tail(const core_model *m, uint8_t **out, size_t *len)
{
    core_buffer_view b[CORE_MAX_BUFFERS];
    int nb = core_model_buffers(m, b);
    size_t n = 0;
    for (int i = 0; i < nb; i++)
        n += (size_t)b[i].len * sizeof(float);
    *len = n;
    if (!(*out = malloc(n ? n : 1)))
        return -1;
    uint8_t *p = *out;
    for (int i = 0; i < nb; i++) {
        memcpy(p, b[i].data, (size_t)b[i].len * sizeof(float));
        p += (size_t)b[i].len * sizeof(float);
    }
    return 0;
}

int adv_safetensors_head(const core_model *m, json_t *metadata, uint8_t **out, size_t *len)
{
    json_t *h = tensors(m, metadata);
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (!text)
        return -1;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    uint8_t *p = malloc(8 + padded);
    if (!p) {
        free(text);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(p + 8, text, n);
    memset(p + 8 + n, ' ', padded - n);
    free(text);
    *out = p;
    *len = 8 + padded;
    return 0;
}

/* ------------------------------------------------------------- reading */

static const struct {
    const char *name;
    adv_st_dtype dtype;
    int size;
} dtypes[] = {{"F32", ADV_ST_F32, 4}, {"F16", ADV_ST_F16, 2}, {"BF16", ADV_ST_BF16, 2}};

const char *adv_st_dtype_name(adv_st_dtype d)
{
    return dtypes[d].name;
}

int adv_st_dtype_size(adv_st_dtype d)
{
    return dtypes[d].size;
}

void adv_st_file_free(adv_st_file *f)
{
    free(f->t);
    f->t = NULL;
    f->n = 0;
}

static int bad_tensor(adv_error *e, const char *name, const char *what)
{
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid safetensors tensor '%.64s': %s", name,
                      what);
}

static int parse_dtype(const char *name, const json_t *v, adv_st_tensor *t, adv_error *e)
{
    const char *s = json_string_value(v);
    for (size_t i = 0; s && i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(s, dtypes[i].name)) {
            t->dtype = dtypes[i].dtype;
            return 0;
        }
    char got[64];
    if (!v)
        return bad_tensor(e, name, "missing dtype (expected F32, F16 or BF16)");
    adv_proto_show(v, got, sizeof got);
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                      "invalid safetensors tensor '%.64s': dtype %s (expected F32, F16 or BF16)",
                      name, got);
}

/* The shape, and its element count (no overflow: each dimension and the
 * product stay under 2^40). */
static int parse_shape(const char *name, const json_t *v, adv_st_tensor *t, uint64_t *count,
                       adv_error *e)
{
    if (!json_is_array(v) || json_array_size(v) > ADV_ST_NDIM_MAX)
        return bad_tensor(e, name, "shape must be an array of at most 8 integers");
    t->ndim = (int)json_array_size(v);
    *count = 1;
    for (int d = 0; d < t->ndim; d++) {
        const json_t *x = json_array_get(v, (size_t)d);
        json_int_t k = json_integer_value(x);
        if (!json_is_integer(x) || k < 0 || k >= ((json_int_t)1 << 40) ||
            (k && *count > (((uint64_t)1 << 40) / (uint64_t)k)))
            return bad_tensor(e, name, "shape must hold integers in [0, 2^40) with a product "
                                       "under 2^40");
        t->dims[d] = (int64_t)k;
        *count *= (uint64_t)k;
    }
    return 0;
}

static int parse_offsets(const char *name, const json_t *v, size_t data_len, uint64_t count,
                         adv_st_tensor *t, adv_error *e)
{
    const json_t *a = json_array_get(v, 0), *b = json_array_get(v, 1);
    json_int_t begin = json_integer_value(a), end = json_integer_value(b);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(a) ||
        !json_is_integer(b) || begin < 0 || end < begin || (uint64_t)end > data_len)
        return bad_tensor(e, name, "data_offsets must be [begin, end] inside the file's data");
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    if ((uint64_t)(end - begin) != count * (uint64_t)adv_st_dtype_size(t->dtype)) {
        char what[160];
        snprintf(what, sizeof what, "%lld bytes, but its shape holds %llu %s values",
                 (long long)(end - begin), (unsigned long long)count,
                 adv_st_dtype_name(t->dtype));
        return bad_tensor(e, name, what);
    }
    return 0;
}

static int parse_tensor(const char *name, const json_t *v, size_t data_len, adv_st_tensor *t,
                        adv_error *e)
{
    uint64_t count = 0;
    if (strlen(name) > ADV_ST_NAME_MAX)
        return bad_tensor(e, name, "name longer than 127 bytes");
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!json_is_object(v))
        return bad_tensor(e, name, "expected an object with dtype, shape and data_offsets");
    return parse_dtype(name, json_object_get(v, "dtype"), t, e) ||
                   parse_shape(name, json_object_get(v, "shape"), t, &count, e) ||
                   parse_offsets(name, json_object_get(v, "data_offsets"), data_len, count, t, e)
               ? -1
               : 0;
}

static int by_begin(const void *a, const void *b)
{
    const adv_st_tensor *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1
                                                                 : x->end > y->end;
}

/* The tensors, sorted by offset, must tile [0, data_len) exactly. */
static int check_tiling(adv_st_file *f, size_t data_len, adv_error *e)
{
    qsort(f->t, (size_t)f->n, sizeof *f->t, by_begin);
    size_t at = 0;
    for (int i = 0; i < f->n; i++) {
        if (f->t[i].begin < at)
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                              "invalid safetensors file: tensors '%.64s' and '%.64s' overlap",
                              f->t[i - 1].name, f->t[i].name);
        if (f->t[i].begin > at)
            break;
        at = f->t[i].end;
    }
    if (at != data_len)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid safetensors file: bytes from %zu of the %zu-byte data belong "
                          "to no tensor", at, data_len);
    return 0;
}

static int parse_header(const json_t *h, size_t data_len, adv_st_file *out, adv_error *e)
{
    const json_t *md = json_object_get(h, "__metadata__");
    size_t n = json_object_size(h) - (md != NULL);
    if (md && !json_is_object(md))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid safetensors header: __metadata__ must be an object");
    if (n > ADV_ST_TENSORS_MAX)
        return adv_errorf(e, ADV_E_TOO_LARGE,
                          "invalid safetensors header: %zu tensors, more than %d", n,
                          ADV_ST_TENSORS_MAX);
    if (!(out->t = calloc(n ? n : 1, sizeof *out->t)))
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)h, key, v) {
        if (v != md && parse_tensor(key, v, data_len, &out->t[out->n++], e))
            return -1;
    }
    return check_tiling(out, data_len, e);
}

int adv_safetensors_parse(const uint8_t *buf, size_t len, adv_st_file *out, adv_error *e)
{
    memset(out, 0, sizeof *out);
    uint64_t hlen = 0;
    for (int i = 0; len >= 8 && i < 8; i++)
        hlen |= (uint64_t)buf[i] << (8 * i);
    if (len < 8)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid safetensors file: %zu bytes, shorter than its length field",
                          len);
    if (hlen > ADV_ST_HEADER_MAX)
        return adv_errorf(e, ADV_E_TOO_LARGE,
                          "invalid safetensors file: a %llu-byte header, more than %d",
                          (unsigned long long)hlen, ADV_ST_HEADER_MAX);
    if (hlen > len - 8)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid safetensors file: a %llu-byte header in a %zu-byte file",
                          (unsigned long long)hlen, len);
    json_error_t je;
    json_t *h = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(h)) {
        json_decref(h);
        adv_proto_sanitize(je.text);
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid safetensors header: %s", h ? "not a JSON object" : je.text);
    }
    out->data = buf + 8 + hlen;
    int rc = parse_header(h, len - 8 - (size_t)hlen, out, e);
    json_decref(h);
    if (rc)
        adv_st_file_free(out);
    return rc;
}

/* IEEE half and bfloat16 to float: exact (both are subsets of float). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000u | (man << 13);
    else if (exp)
        bits = sign | ((exp + 112) << 23) | (man << 13);
    else if (!man)
        bits = sign;
    else { /* subnormal: normalise */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void adv_st_tensor_floats(const adv_st_file *f, const adv_st_tensor *t, float *out)
{
    const uint8_t *p = f->data + t->begin;
    size_t n = (t->end - t->begin) / (size_t)adv_st_dtype_size(t->dtype);
    if (t->dtype == ADV_ST_F32) {
        memcpy(out, p, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        uint32_t bits = (uint32_t)h << 16; /* bfloat16: float's top half */
        if (t->dtype == ADV_ST_F16)
            out[i] = half_to_float(h);
        else
            memcpy(&out[i], &bits, 4);
    }
}
