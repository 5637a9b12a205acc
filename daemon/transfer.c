/*
 * transfer.c - large things for a client, one piece per request, so that
 * any size fits under the protocol's line limit and the daemon writes no
 * file for anyone (a shared daemon must not write where its users point):
 *
 *   export   a checkpoint as its stored state (core/state.h) or as a
 *            safetensors file (proto/safetensors.c): the head is built from
 *            the model spec, the weights are a window into the stored
 *            state, read straight from SQLite's blob (no whole copy), the
 *            tail the spec's norm buffers
 *   images   one picture of an evaluation by name
 *
 * Answer of a piece: {"size": whole bytes, "offset", "data": base64,
 * "eof": bool} plus what names the thing. The first piece of a checkpoint
 * (offset 0) checks its stored checksum, so a corrupt one is refused before
 * a client writes anything.
 */
#include "advd.h"

#include <stdlib.h>
#include <string.h>

#include "core/state.h"

/* The piece [offset, offset + n) of a thing of size bytes the request asks
 * for (n 0 at the end). */
static int window(const adv_request *req, size_t size, size_t *offset, size_t *n, adv_error *e)
{
    int64_t off = adv_request_int(req, "offset", 0);
    int64_t len = adv_request_int(req, "length", ADV_CHUNK_MAX);
    if ((uint64_t)off > size)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'offset': %lld is beyond the end (%zu bytes)", (long long)off,
                          size);
    if (len > ADV_CHUNK_MAX || len <= 0)
        len = ADV_CHUNK_MAX;
    *offset = (size_t)off;
    *n = size - *offset < (size_t)len ? size - *offset : (size_t)len;
    return 0;
}

static json_t *piece_json(const uint8_t *p, size_t size, size_t offset, size_t n)
{
    char *b64 = adv_base64_encode(p, n, NULL);
    if (!b64)
        return NULL;
    json_t *o = json_pack("{s:I, s:I, s:s, s:b}", "size", (json_int_t)size, "offset",
                          (json_int_t)offset, "data", b64, "eof", offset + n == size);
    free(b64);
    return o;
}

/* ---------------------------------------------------------- checkpoints */

static json_t *as_string(const json_t *v)
{
    if (json_is_string(v))
        return json_incref((json_t *)v);
    char *s = json_dumps(v, JSON_ENCODE_ANY | ADV_JSON_FLAGS);
    json_t *r = json_string(s ? s : "");
    free(s);
    return r;
}

/* Strings only: the job's spec keys, then what the checkpoint is. */
static json_t *metadata(const adv_job *j, const adv_ckpt *c, const core_model *m)
{
    json_t *md = json_object(), *spec = j->spec ? json_loads(j->spec, 0, NULL) : NULL, *v;
    const char *key;
    char buf[64];
    json_object_foreach(spec, key, v) json_object_set_new(md, key, as_string(v));
    json_decref(spec);
    snprintf(buf, sizeof buf, "%dx%dx%d", m->in.c, m->in.h, m->in.w);
    json_object_set_new(md, "format", json_string("pt"));
    json_object_set_new(md, "model_spec", json_string(m->spec));
    json_object_set_new(md, "input_shape", json_string(buf));
    snprintf(buf, sizeof buf, "%d", m->nclass);
    json_object_set_new(md, "classes", json_string(buf));
    json_object_set_new(md, "producer", json_string("advd " ADV_VERSION));
    /* Lineage: the job and checkpoint (with its crc32) it started from. */
    const int64_t fields[] = {j->id, c->id, c->epoch, c->step, j->init_job, j->init_ckpt,
                              j->init_checksum};
    static const char *const names[] = {"job", "checkpoint", "epoch", "step", "init_job",
                                        "init_checkpoint", "init_checksum"};
    for (int i = 0; i < (j->init_ckpt ? 7 : 4); i++) {
        snprintf(buf, sizeof buf, "%lld", (long long)fields[i]);
        json_object_set_new(md, names[i], json_string(buf));
    }
    return md;
}

typedef struct {
    uint8_t *head;        /* safetensors: the file's head; state: NULL */
    size_t head_len;
    uint8_t *tail;        /* safetensors: the model's buffers after the weights */
    size_t tail_len;
    size_t params_off;    /* where the weights start in the stored state */
    size_t size;          /* the whole file */
} layout;

static int safetensors_layout(advd *d, const adv_job *j, const adv_ckpt *c, layout *l,
                              adv_error *e)
{
    uint8_t raw[CORE_STATE_HEAD_MAX];
    size_t n = c->size < sizeof raw ? c->size : sizeof raw;
    char err[CORE_ERRLEN];
    core_state_info info;
    uint64_t nparams;
    core_model *m = NULL;
    if (adv_store_ckpt_read(d->store, c->id, 0, raw, n, err) ||
        core_state_head(raw, n, &info, &l->params_off, &nparams, err) ||
        core_model_describe(info.spec, info.in, info.nclass, &m, err))
        return adv_errorf(e, ADV_E_INTERNAL, "checkpoint %lld: %s", (long long)c->id, err);
    int rc = 0;
    if (m->nparams != nparams || l->params_off + nparams * sizeof(float) > c->size)
        rc = adv_errorf(e, ADV_E_INTERNAL, "checkpoint %lld: %llu parameters do not fit '%s'",
                        (long long)c->id, (unsigned long long)nparams, info.spec);
    else if (adv_safetensors_head(m, metadata(j, c, m), &l->head, &l->head_len) ||
             adv_safetensors_tail(m, &l->tail, &l->tail_len))
        rc = adv_errorf(e, ADV_E_INTERNAL, "out of memory");
    l->size = l->head_len + nparams * sizeof(float) + l->tail_len;
    core_model_free(m);
    return rc;
}

/* Bytes [offset, offset + n) of the file: from the head, the state, then
 * the tail. */
static int file_bytes(advd *d, const adv_ckpt *c, const layout *l, size_t offset, size_t n,
                      uint8_t *out, adv_error *e)
{
    char err[CORE_ERRLEN];
    size_t tail_at = l->size - l->tail_len, end = offset + n;
    size_t from_head = offset < l->head_len ? l->head_len - offset : 0;
    if (from_head > n)
        from_head = n;
    if (from_head)
        memcpy(out, l->head + offset, from_head);
    size_t from = offset + from_head, upto = end < tail_at ? end : tail_at;
    if (upto > from && adv_store_ckpt_read(d->store, c->id, from - l->head_len + l->params_off,
                                           out + from_head, upto - from, err))
        return adv_errorf(e, ADV_E_INTERNAL, "%s", err);
    if (end > tail_at) {
        size_t start = from > tail_at ? from : tail_at;
        memcpy(out + (start - offset), l->tail + (start - tail_at), end - start);
    }
    return 0;
}

static int export_layout(advd *d, const adv_job *j, const adv_ckpt *c, const char *format,
                         layout *l, adv_error *e)
{
    *l = (layout){NULL, 0, NULL, 0, 0, c->size};
    return strcmp(format, "safetensors") ? 0 : safetensors_layout(d, j, c, l, e);
}

int advd_export_piece(advd *d, const adv_job *j, const adv_request *req, json_t **out,
                      adv_error *e)
{
    adv_ckpt_ref ref = {ADV_CKPT_LATEST, 0};
    const json_t *v = adv_request_arg(req, "checkpoint");
    const char *format = adv_request_str(req, "format", "state");
    char err[CORE_ERRLEN];
    adv_ckpt c;
    if (v)
        adv_ckpt_ref_parse(v, "checkpoint", &ref, NULL);
    int rc = adv_store_ckpt_find(d->store, j->id, ref, &c, err);
    if (rc)
        return adv_errorf(e, rc == ADV_STORE_NOT_FOUND ? ADV_E_NOT_FOUND : ADV_E_INTERNAL, "%s",
                          err);
    layout l = {0};
    size_t offset, n;
    uint8_t *buf = NULL;
    if (adv_request_int(req, "offset", 0) == 0 && adv_store_ckpt_verify(d->store, &c, err))
        rc = adv_errorf(e, ADV_E_INTERNAL, "%s", err);
    else if (export_layout(d, j, &c, format, &l, e) || window(req, l.size, &offset, &n, e))
        rc = -1;
    else if (!(buf = malloc(n ? n : 1)))
        rc = adv_errorf(e, ADV_E_INTERNAL, "out of memory");
    else if (l.head ? file_bytes(d, &c, &l, offset, n, buf, e)
                    : adv_store_ckpt_read(d->store, c.id, offset, buf, n, err)
                          ? adv_errorf(e, ADV_E_INTERNAL, "%s", err)
                          : 0)
        rc = -1;
    else if (!(*out = piece_json(buf, l.size, offset, n)))
        rc = adv_errorf(e, ADV_E_INTERNAL, "out of memory");
    else
        json_object_update_new(*out, json_pack("{s:I, s:I, s:i, s:I, s:s, s:I}", "job",
                                               (json_int_t)j->id, "checkpoint", (json_int_t)c.id,
                                               "epoch", c.epoch, "step", (json_int_t)c.step,
                                               "format", format, "checksum",
                                               (json_int_t)c.checksum));
    free(buf);
    free(l.head);
    free(l.tail);
    adv_ckpt_clear(&c);
    return rc;
}

/* --------------------------------------------------------------- images */

/* Every picture of the job: inline while the answer stays under one
 * piece, else "data": null and the client asks for it by name. */
static json_t *image_list(const adv_image *im, int n)
{
    json_t *a = json_array();
    size_t inline_bytes = 0;
    for (int i = 0; i < n; i++) {
        inline_bytes += im[i].size;
        char *b64 = inline_bytes <= ADV_CHUNK_MAX ? adv_base64_encode(im[i].data, im[i].size, NULL)
                                                  : NULL;
        json_array_append_new(a, json_pack("{s:s, s:I, s:s?}", "name", im[i].name, "size",
                                           (json_int_t)im[i].size, "data", b64));
        free(b64);
    }
    return a;
}

static int image_piece(const adv_image *im, const adv_request *req, json_t **out, adv_error *e)
{
    size_t offset, n;
    if (window(req, im->size, &offset, &n, e))
        return -1;
    if (!(*out = piece_json(im->data + offset, im->size, offset, n)))
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory");
    json_object_set_new(*out, "name", json_string(im->name));
    return 0;
}

int advd_images_answer(advd *d, const adv_job *j, const adv_request *req, json_t **out,
                       adv_error *e)
{
    adv_image *im;
    int n, rc = 0;
    char err[CORE_ERRLEN];
    if (adv_store_image_list(d->store, j->id, &im, &n, err))
        return adv_errorf(e, ADV_E_INTERNAL, "%s", err);
    const char *name = adv_request_str(req, "name", NULL);
    int i = 0;
    while (name && i < n && strcmp(im[i].name, name))
        i++;
    if (!name)
        *out = json_pack("{s:I, s:o}", "job", (json_int_t)j->id, "images", image_list(im, n));
    else if (i == n)
        rc = adv_errorf(e, ADV_E_NOT_FOUND, "job %lld has no picture '%.100s'", (long long)j->id,
                        name);
    else if ((rc = image_piece(&im[i], req, out, e)) == 0)
        json_object_set_new(*out, "job", json_integer(j->id));
    adv_images_free(im, n);
    return rc;
}
