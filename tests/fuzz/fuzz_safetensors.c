/*
 * fuzz_safetensors.c - a safetensors file from outside, as `advctl import`
 * sends it (proto/safetensors.c, proto/import.c): the header parse with its
 * limits, the dtype conversions and the match against a model spec.
 *
 * Input: the file's bytes. Checks: a rejected file has a message; an
 * accepted one has tensors sorted by offset that tile its data section
 * inside the input, each readable as floats; a model built from it has
 * finite parameters and exports (head, parameters, buffers) to a file that
 * builds the same model again, bit for bit.
 */
#include "fuzz.h"
#include "proto/proto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The model the seeds hold: input 1x6x6, 3 classes. */
#define SPEC "norm(0.5;0.25) conv2k3p1 relu maxpool2 fc3"
static const core_shape IN = {1, 6, 6};

static void check_file(const uint8_t *data, size_t size, const adv_st_file *f)
{
    size_t at = 0;
    for (int i = 0; i < f->n; i++) {
        const adv_st_tensor *t = &f->t[i];
        FUZZ_CHECK(t->begin == at && t->end >= t->begin);
        FUZZ_CHECK(f->data + t->end <= data + size);
        at = t->end;
        size_t n = (t->end - t->begin) / (size_t)adv_st_dtype_size(t->dtype);
        float *v = malloc(n * sizeof(float) + 1);
        FUZZ_CHECK(v != NULL);
        adv_st_tensor_floats(f, t, v);
        free(v);
    }
    FUZZ_CHECK(f->data + at == data + size);
}

/* The model's own export must build it again, bit for bit. */
static void check_model(const core_model *m)
{
    for (size_t i = 0; i < m->nparams; i++)
        FUZZ_CHECK(isfinite(m->params[i]));
    uint8_t *head, *tail;
    size_t hl, tl;
    FUZZ_CHECK(adv_safetensors_head(m, json_object(), &head, &hl) == 0);
    FUZZ_CHECK(adv_safetensors_tail(m, &tail, &tl) == 0);
    size_t pl = m->nparams * sizeof(float), len = hl + pl + tl;
    uint8_t *file = malloc(len);
    FUZZ_CHECK(file != NULL);
    memcpy(file, head, hl);
    memcpy(file + hl, m->params, pl);
    memcpy(file + hl + pl, tail, tl);
    core_model *back;
    adv_error e = {0};
    FUZZ_CHECK(adv_safetensors_model(file, len, SPEC, IN, 3, &back, &e) == 0);
    FUZZ_CHECK(back->nparams == m->nparams && memcmp(back->params, m->params, pl) == 0);
    core_model_free(back);
    free(file);
    free(head);
    free(tail);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    adv_st_file f;
    adv_error e = {0};
    if (adv_safetensors_parse(data, size, &f, &e)) {
        FUZZ_CHECK(e.msg[0] != '\0');
        return 0;
    }
    check_file(data, size, &f);
    adv_st_file_free(&f);
    core_model *m;
    e.msg[0] = '\0';
    if (adv_safetensors_model(data, size, SPEC, IN, 3, &m, &e)) {
        FUZZ_CHECK(e.msg[0] != '\0');
        return 0;
    }
    check_model(m);
    core_model_free(m);
    return 0;
}
