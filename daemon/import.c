/*
 * import.c - a model trained elsewhere becomes a job of kind "import" with
 * one checkpoint, which eval, images, report, export and compare then use
 * like any trained job's.
 *
 * The client sends the safetensors file in pieces under the line limit
 * (the mirror of export's pieces, transfer.c):
 *   first   {"cmd": "import", "spec": {"kind": "import", "model", "dataset",
 *           "name"}, "size": whole bytes, "data": base64 of the first piece}
 *           -> {"upload": id, "received": bytes}
 *   next    {"cmd": "import", "upload": id, "offset": bytes received so far,
 *           "data": ...} -> the same, until the last piece, which answers
 *           {"job", "state": "succeeded", "checkpoint", "checksum",
 *            "tensors", "dtypes"}
 * The spec is validated first (the data set readable, the model buildable)
 * and bounds the size: at most the header limit plus the model's
 * parameters and buffers in float32. An upload belongs to the uid that
 * began it, takes its pieces in order, and is dropped after
 * ADVD_IMPORT_IDLE_S without one; at most ADVD_IMPORTS are in progress.
 * The whole file is then parsed with every limit (proto/safetensors.c) and
 * matched against the spec (proto/import.c) before anything is stored.
 */
#include "advd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/optim.h"
#include "core/state.h"

#define ADVD_IMPORTS 8
#define ADVD_IMPORT_IDLE_S 300.0

typedef struct {
    int64_t id;             /* 0: a free slot */
    unsigned uid;
    adv_jobspec *spec;
    uint8_t *buf;
    size_t size, got;
    double last;            /* time of the last piece */
} upload;

struct advd_uploads {
    int64_t next;
    upload u[ADVD_IMPORTS];
};

static void upload_drop(upload *u)
{
    free(u->spec);
    free(u->buf);
    memset(u, 0, sizeof *u);
}

void advd_imports_free(advd *d)
{
    if (!d->uploads)
        return;
    for (int i = 0; i < ADVD_IMPORTS; i++)
        upload_drop(&d->uploads->u[i]);
    free(d->uploads);
    d->uploads = NULL;
}

/* The largest file a spec's model can come in: header and float32s. */
static int size_bound(const adv_jobspec *s, double *bound, adv_error *e)
{
    char err[CORE_ERRLEN];
    core_model *m;
    if (core_model_describe(s->train.model, s->train.shape, s->train.nclass, &m, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'model': %s", err);
    double values = (double)m->nparams;
    for (int i = 0; i < m->nlayers; i++)
        values += m->layers[i].kind == CORE_LAYER_NORM ? 2.0 * m->layers[i].in.c : 0.0;
    core_model_free(m);
    *bound = 8.0 + ADV_ST_HEADER_MAX + 4.0 * values;
    return 0;
}

static upload *upload_begin(advd *d, unsigned uid, const adv_request *req, adv_error *e)
{
    if (!d->uploads && !(d->uploads = calloc(1, sizeof *d->uploads)))
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory"), NULL;
    upload *u = NULL;
    double now = core_now_s(), bound;
    for (int i = 0; i < ADVD_IMPORTS; i++) {
        upload *x = &d->uploads->u[i];
        if (x->id && now - x->last > ADVD_IMPORT_IDLE_S)
            upload_drop(x);
        if (!x->id && !u)
            u = x;
    }
    if (!u)
        return adv_errorf(e, ADV_E_TOO_LARGE, "%d imports in progress, try again later",
                          ADVD_IMPORTS), NULL;
    const json_t *spec = adv_request_arg(req, "spec");
    int64_t size = adv_request_int(req, "size", -1);
    if (!spec || size < 0)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "missing 'spec' or 'size' (or 'upload' to go on with one)"), NULL;
    if (!(u->spec = malloc(sizeof *u->spec)))
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory"), NULL;
    int rc = adv_jobspec_parse(spec, u->spec, e);
    if (rc == 0 && u->spec->kind != ADV_JOB_IMPORT)
        rc = adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'spec': expected kind 'import'");
    if (rc == 0 && (rc = size_bound(u->spec, &bound, e)) == 0 &&
        ((double)size > bound || (double)size > (double)d->opt.max_job_memory))
        rc = adv_errorf(e, ADV_E_TOO_LARGE, "invalid 'size': %lld bytes, more than a "
                        "safetensors file of this model can be", (long long)size);
    if (rc == 0 && !(u->buf = malloc(size ? (size_t)size : 1)))
        rc = adv_errorf(e, ADV_E_INTERNAL, "out of memory for %lld bytes", (long long)size);
    if (rc) {
        upload_drop(u);
        return NULL;
    }
    *u = (upload){++d->uploads->next, uid, u->spec, u->buf, (size_t)size, 0, now};
    return u;
}

static upload *upload_find(advd *d, unsigned uid, int64_t id, adv_error *e)
{
    for (int i = 0; d->uploads && i < ADVD_IMPORTS; i++)
        if (d->uploads->u[i].id == id && d->uploads->u[i].uid == uid)
            return &d->uploads->u[i];
    return adv_errorf(e, ADV_E_NOT_FOUND, "no import upload %lld of yours in progress",
                      (long long)id), NULL;
}

/* Append the request's piece at its offset. */
static int upload_add(upload *u, const adv_request *req, adv_error *e)
{
    const char *b64 = adv_request_str(req, "data", "");
    uint8_t *p;
    size_t n;
    int64_t off = adv_request_int(req, "offset", 0);
    if ((size_t)off != u->got)
        return adv_errorf(e, ADV_E_CONFLICT, "invalid 'offset': %lld, but %zu bytes came so far",
                          (long long)off, u->got);
    if (adv_base64_decode(b64, strlen(b64), &p, &n, e))
        return -1;
    int rc = 0;
    if (n > u->size - u->got)
        rc = adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'data': past the announced 'size' "
                        "(%zu bytes)", u->size);
    else if (n)
        memcpy(u->buf + u->got, p, n);
    u->got += rc ? 0 : n;
    u->last = core_now_s();
    free(p);
    return rc;
}

/* The state of an imported model: its weights, a fresh SGD state, epoch 0. */
static int import_state(core_model *m, uint8_t **state, size_t *len, adv_error *e)
{
    char err[CORE_ERRLEN];
    core_optim o;
    core_opt_cfg cfg = core_opt_defaults(CORE_OPT_SGD);
    core_progress p = {0};
    int rc = core_optim_init(&o, &cfg, m->nparams, err) ||
             core_state_save(m, &o, &p, state, len, err);
    core_optim_free(&o);
    return rc ? adv_errorf(e, ADV_E_INTERNAL, "%s", err) : 0;
}

/* The job, running, its checkpoint, succeeded: one checkpoint or a failed job. */
static int store_job(advd *d, const upload *u, const uint8_t *state, size_t len, int64_t *id,
                     adv_ckpt *c, adv_error *e)
{
    char err[CORE_ERRLEN];
    adv_job j = {.kind = ADV_JOB_IMPORT, .priority = u->spec->priority, .owner = u->uid,
                 .spec = adv_jobspec_canonical(u->spec)};
    snprintf(j.name, sizeof j.name, "%s", u->spec->name);
    *c = (adv_ckpt){.epoch = 0, .step = 0, .val_robust_acc = NAN, .size = len,
                    .state = (uint8_t *)state};
    int rc = !j.spec || adv_store_job_insert(d->store, &j, id, err) ||
             adv_store_job_set_state(d->store, *id, ADV_STATE_RUNNING, NULL, err);
    free(j.spec);
    if (rc)
        return adv_errorf(e, ADV_E_INTERNAL, "cannot store the job: %s", err);
    c->job = *id;
    adv_ckpt_ref latest = {ADV_CKPT_LATEST, 0};
    if (adv_store_ckpt_put(d->store, c, 0, &c->id, err) ||
        adv_store_ckpt_find(d->store, *id, latest, c, err) ||
        adv_store_job_set_state(d->store, *id, ADV_STATE_SUCCEEDED, NULL, err)) {
        adv_store_job_set_state(d->store, *id, ADV_STATE_FAILED, err, NULL);
        return adv_errorf(e, ADV_E_INTERNAL, "cannot store the checkpoint: %s", err);
    }
    return 0;
}

/* "F32" or "F16+BF16": what the file held. */
static json_t *dtypes_of(const upload *u)
{
    adv_st_file f;
    char out[32] = "";
    unsigned seen = 0;
    if (adv_safetensors_parse(u->buf, u->size, &f, NULL) == 0)
        for (int i = 0; i < f.n; i++)
            seen |= 1u << f.t[i].dtype;
    for (int t = ADV_ST_F32; t <= ADV_ST_BF16; t++)
        if (seen & (1u << t))
            snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", out[0] ? "+" : "",
                     adv_st_dtype_name((adv_st_dtype)t));
    adv_st_file_free(&f);
    return json_string(out);
}

static int upload_finish(advd *d, upload *u, json_t **out, adv_error *e)
{
    const adv_train_spec *t = &u->spec->train;
    core_model *m;
    uint8_t *state = NULL;
    size_t len;
    int64_t id;
    adv_ckpt c;
    if (adv_safetensors_model(u->buf, u->size, t->model, t->shape, t->nclass, &m, e))
        return -1;
    int tensors = m->nviews + core_model_buffers(m, (core_buffer_view[CORE_MAX_BUFFERS]){0});
    int rc = import_state(m, &state, &len, e) || store_job(d, u, state, len, &id, &c, e);
    core_model_free(m);
    free(state);
    if (rc)
        return -1;
    adv_ckpt_clear(&c);
    advd_job_event(d, id, ADV_STATE_SUCCEEDED, NULL);
    *out = json_pack("{s:I, s:s, s:I, s:I, s:i, s:o, s:I}", "job", (json_int_t)id, "state",
                     "succeeded", "checkpoint", (json_int_t)c.id, "checksum",
                     (json_int_t)c.checksum, "tensors", tensors, "dtypes", dtypes_of(u),
                     "size", (json_int_t)u->size);
    return 0;
}

int advd_import_piece(advd *d, unsigned uid, const adv_request *req, json_t **out,
                      adv_error *e)
{
    int64_t id = adv_request_int(req, "upload", 0);
    upload *u = id ? upload_find(d, uid, id, e) : upload_begin(d, uid, req, e);
    if (!u)
        return -1;
    if (upload_add(u, req, e)) {
        upload_drop(u);
        return -1;
    }
    int rc = 0;
    if (u->got < u->size)
        *out = json_pack("{s:I, s:I}", "upload", (json_int_t)u->id, "received",
                         (json_int_t)u->got);
    else {
        rc = upload_finish(d, u, out, e);
        upload_drop(u);
    }
    return rc;
}
