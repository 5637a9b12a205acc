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
 * are (core/state.h): whoever serves a file needs this head and a window
 * into the stored checkpoint, nothing more.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors wants little-endian floats: add a byte swap for this machine"
#endif

static json_t *tensors(const core_model *m, json_t *metadata)
{
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", metadata);
    size_t off = 0;
    for (int i = 0; i < m->nviews; i++) {
        const core_param_view *v = &m->views[i];
        json_t *shape = json_array();
        for (int d = 0; d < v->ndim; d++)
            json_array_append_new(shape, json_integer(v->dims[d]));
        size_t end = off + v->size * sizeof(float);
        json_object_set_new(h, v->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)end));
        off = end;
    }
    return h;
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
