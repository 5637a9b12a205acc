/*
 * worker.c - the worker protocol's codec (the format is atop worker.h):
 * one encoder and one decoder per message kind, chosen through tables
 * built from ADV_WORKER_MSGS.
 */
#include "proto/worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *adv_wtype_name(adv_wtype t)
{
    static const char *const names[] = {
#define X(name, str, member) str,
        ADV_WORKER_MSGS(X)
#undef X
    };
    return t < ADV_W_COUNT ? names[t] : "?";
}

int adv_report_kind_valid(const char *kind)
{
    static const char *const kinds[] = {
#define X(name) #name,
        ADV_REPORT_KINDS(X)
#undef X
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kind, kinds[i]))
            return 1;
    return 0;
}

int adv_ckpt_file_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= ADV_CKPT_FILE_MAX || name[0] == '.')
        return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
            return 0;
    return 1;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ------------------------------------------------------------ encoders */

static json_t *ckpt_json(const adv_wckpt *c)
{
    return json_pack("{s:s, s:I, s:I, s:I}", "file", c->file, "size", (json_int_t)c->size,
                     "crc32", (json_int_t)c->crc32, "step", (json_int_t)c->step);
}

static json_t *enc_job(const adv_wmsg *m)
{
    const adv_wjob *j = &m->u.job;
    json_t *o = json_pack("{s:i, s:I, s:i, s:i, s:i, s:s, s:O}", "v", ADV_WORKER_PROTO, "job",
                          (json_int_t)j->job, "attempt", j->attempt, "threads", j->threads,
                          "final_eval_limit", j->final_eval_limit, "ckpt_dir",
                          j->ckpt_dir ? j->ckpt_dir : "", "spec", j->spec);
    if (!o)
        return NULL;
    if (j->parent_spec)
        json_object_set(o, "parent_spec", j->parent_spec);
    if (j->nresume) {
        json_t *a = json_array();
        for (int i = 0; i < j->nresume; i++)
            json_array_append_new(a, ckpt_json(&j->resume[i]));
        json_object_set_new(o, "resume", a);
    }
    if (j->has_init)
        json_object_set_new(o, "init", ckpt_json(&j->init));
    if (j->has_checkpoint)
        json_object_set_new(o, "checkpoint", ckpt_json(&j->checkpoint));
    return o;
}

static json_t *enc_none(const adv_wmsg *m)
{
    (void)m;
    return json_object();
}

static json_t *enc_progress(const adv_wmsg *m)
{
    const adv_wprogress *p = &m->u.progress;
    return json_pack("{s:o, s:I, s:I, s:o, s:o}", "progress", num(p->progress), "epoch",
                     (json_int_t)p->epoch, "step", (json_int_t)p->step, "images_per_s",
                     num(p->images_per_s), "loss", num(p->loss));
}

static json_t *enc_metrics(const adv_wmsg *m)
{
    const adv_wmetrics *x = &m->u.metrics;
    return json_pack("{s:I, s:I, s:O}", "epoch", (json_int_t)x->epoch, "step",
                     (json_int_t)x->step, "values", x->values);
}

static json_t *enc_checkpoint(const adv_wmsg *m)
{
    const adv_wcheckpoint *c = &m->u.checkpoint;
    return json_pack("{s:I, s:I, s:o, s:o}", "epoch", (json_int_t)c->epoch, "step",
                     (json_int_t)c->step, "val_robust_acc", num(c->val_robust_acc), "ckpt",
                     ckpt_json(&c->ckpt));
}

static json_t *enc_eval(const adv_wmsg *m)
{
    const adv_weval *v = &m->u.eval;
    json_t *o = json_pack("{s:O, s:o, s:i, s:o, s:o, s:O}", "spec", v->spec, "eps", num(v->eps),
                          "n", v->n, "clean_acc", num(v->clean_acc), "robust_acc",
                          num(v->robust_acc), "warnings", v->warnings);
    if (o && v->survival) {
        char *b64 = adv_base64_encode(v->survival, (size_t)v->n, NULL);
        json_object_set_new(o, "survival", b64 ? json_string(b64) : json_null());
        free(b64);
    }
    return o;
}

static json_t *enc_report(const adv_wmsg *m)
{
    return json_pack("{s:s, s:O}", "kind", m->u.report.kind, "data", m->u.report.data);
}

static json_t *enc_image(const adv_wmsg *m)
{
    char *b64 = adv_base64_encode(m->u.image.data, m->u.image.len, NULL);
    json_t *o = b64 ? json_pack("{s:s, s:s}", "name", m->u.image.name, "data", b64) : NULL;
    free(b64);
    return o;
}

static json_t *enc_text(const adv_wmsg *m)
{
    return json_pack("{s:s}", "message", m->u.text.message ? m->u.text.message : "");
}

static json_t *enc_done(const adv_wmsg *m)
{
    return json_pack("{s:s}", "status", m->u.done.succeeded ? "succeeded" : "stopped");
}

char *adv_wmsg_encode(const adv_wmsg *m, size_t *len)
{
    static json_t *(*const enc[])(const adv_wmsg *) = {
#define X(name, str, member) enc_##member,
        ADV_WORKER_MSGS(X)
#undef X
    };
    if (m->type >= ADV_W_COUNT)
        return NULL;
    json_t *o = enc[m->type](m);
    if (!o || json_object_set_new(o, "type", json_string(adv_wtype_name(m->type)))) {
        json_decref(o);
        return NULL;
    }
    char *text = json_dumps(o, ADV_JSON_FLAGS);
    json_decref(o);
    size_t n = text ? strlen(text) : 0;
    char *line = text ? realloc(text, n + 2) : NULL;
    if (!line) {
        free(text);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

/* ------------------------------------------------------------ decoders */

/* Field readers: each names the message and the field when it fails. */
typedef struct {
    const json_t *o;
    const char *msg;
    adv_error *e;
} reader;

static int bad(const reader *r, const char *key, const char *want)
{
    return adv_errorf(r->e, ADV_E_INVALID_ARGUMENT, "worker message '%s': '%s' must be %s",
                      r->msg, key, want);
}

static int get_int(const reader *r, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(r->o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(r, key, "an integer in range");
    *out = json_integer_value(v);
    return 0;
}

static int get_small(const reader *r, const char *key, int *out)
{
    int64_t v;
    if (get_int(r, key, 0, INT32_MAX, &v))
        return -1;
    *out = (int)v;
    return 0;
}

/* A number, or null for NaN. */
static int get_num(const reader *r, const char *key, double *out)
{
    const json_t *v = json_object_get(r->o, key);
    if (json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v))
        return bad(r, key, "a number or null");
    *out = json_number_value(v);
    return 0;
}

static int get_str(const reader *r, const char *key, const char **out)
{
    const json_t *v = json_object_get(r->o, key);
    if (!json_is_string(v))
        return bad(r, key, "a string");
    *out = json_string_value(v);
    return 0;
}

static int get_copy(const reader *r, const char *key, char *buf, size_t size)
{
    const char *s;
    if (get_str(r, key, &s))
        return -1;
    if (strlen(s) >= size)
        return bad(r, key, "a shorter string");
    memcpy(buf, s, strlen(s) + 1);
    return 0;
}

/* A JSON value of the given type (json_is_object, ...), referenced. */
static int get_json(const reader *r, const char *key, int (*is)(const json_t *),
                    const char *want, json_t **out)
{
    json_t *v = json_object_get(r->o, key);
    if (!v || !is(v))
        return bad(r, key, want);
    *out = json_incref(v);
    return 0;
}

static int is_object(const json_t *v)
{
    return json_is_object(v);
}

static int is_array(const json_t *v)
{
    return json_is_array(v);
}

static int get_bytes(const reader *r, const char *key, uint8_t **out, size_t *n)
{
    const json_t *v = json_object_get(r->o, key);
    if (!json_is_string(v) ||
        adv_base64_decode(json_string_value(v), json_string_length(v), out, n, r->e))
        return bad(r, key, "base64 text");
    return 0;
}

static int get_ckpt(const reader *r, const json_t *o, const char *key, adv_wckpt *c)
{
    reader in = {.o = o, .msg = r->msg, .e = r->e};
    int64_t size, crc;
    if (!json_is_object(o))
        return bad(r, key, "a checkpoint object");
    if (get_copy(&in, "file", c->file, sizeof c->file) || get_int(&in, "size", 1, INT64_MAX, &size) ||
        get_int(&in, "crc32", 0, UINT32_MAX, &crc) || get_int(&in, "step", 0, INT64_MAX, &c->step))
        return -1;
    if (!adv_ckpt_file_valid(c->file))
        return bad(r, key, "a checkpoint file name, not a path");
    c->size = (uint64_t)size;
    c->crc32 = (uint32_t)crc;
    return 0;
}

static int dec_job(const reader *r, adv_wmsg *m)
{
    adv_wjob *j = &m->u.job;
    int64_t v;
    const char *dir;
    if (get_int(r, "v", 0, INT32_MAX, &v))
        return -1;
    if (v != ADV_WORKER_PROTO)
        return adv_errorf(r->e, ADV_E_INVALID_ARGUMENT, "worker protocol %lld, expected %d: "
                          "the daemon and the worker are different versions", (long long)v,
                          ADV_WORKER_PROTO);
    if (get_int(r, "job", 1, INT64_MAX, &j->job) || get_small(r, "attempt", &j->attempt) ||
        get_small(r, "threads", &j->threads) ||
        get_small(r, "final_eval_limit", &j->final_eval_limit) ||
        get_str(r, "ckpt_dir", &dir) || get_json(r, "spec", is_object, "an object", &j->spec))
        return -1;
    if (!(j->ckpt_dir = strdup(dir)))
        return adv_errorf(r->e, ADV_E_INTERNAL, "out of memory");
    if (json_object_get(r->o, "parent_spec") &&
        get_json(r, "parent_spec", is_object, "an object", &j->parent_spec))
        return -1;
    const json_t *a = json_object_get(r->o, "resume"), *c;
    size_t i;
    if (a && (!json_is_array(a) || json_array_size(a) > ADV_WORKER_RESUME_MAX))
        return bad(r, "resume", "an array of at most 8 checkpoints");
    json_array_foreach(a, i, c)
        if (get_ckpt(r, c, "resume", &j->resume[j->nresume++]))
            return -1;
    if ((c = json_object_get(r->o, "init")) && (j->has_init = 1) &&
        get_ckpt(r, c, "init", &j->init))
        return -1;
    if ((c = json_object_get(r->o, "checkpoint")) && (j->has_checkpoint = 1) &&
        get_ckpt(r, c, "checkpoint", &j->checkpoint))
        return -1;
    return 0;
}

static int dec_none(const reader *r, adv_wmsg *m)
{
    (void)r;
    (void)m;
    return 0;
}

static int dec_progress(const reader *r, adv_wmsg *m)
{
    adv_wprogress *p = &m->u.progress;
    return get_num(r, "progress", &p->progress) || get_int(r, "epoch", 0, INT64_MAX, &p->epoch) ||
                   get_int(r, "step", 0, INT64_MAX, &p->step) ||
                   get_num(r, "images_per_s", &p->images_per_s) || get_num(r, "loss", &p->loss)
               ? -1
               : 0;
}

static int dec_metrics(const reader *r, adv_wmsg *m)
{
    adv_wmetrics *x = &m->u.metrics;
    if (get_int(r, "epoch", 0, INT32_MAX, &x->epoch) || get_int(r, "step", 0, INT64_MAX, &x->step) ||
        get_json(r, "values", is_object, "an object", &x->values))
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(x->values, key, v)
        if (!json_is_number(v) && !json_is_null(v))
            return bad(r, "values", "an object of numbers or nulls");
    return 0;
}

static int dec_checkpoint(const reader *r, adv_wmsg *m)
{
    adv_wcheckpoint *c = &m->u.checkpoint;
    return get_int(r, "epoch", 0, INT32_MAX, &c->epoch) ||
                   get_int(r, "step", 0, INT64_MAX, &c->step) ||
                   get_num(r, "val_robust_acc", &c->val_robust_acc) ||
                   get_ckpt(r, json_object_get(r->o, "ckpt"), "ckpt", &c->ckpt)
               ? -1
               : 0;
}

static int dec_eval(const reader *r, adv_wmsg *m)
{
    adv_weval *v = &m->u.eval;
    size_t n = 0;
    if (get_json(r, "spec", is_object, "an object", &v->spec) || get_num(r, "eps", &v->eps) ||
        get_small(r, "n", &v->n) || get_num(r, "clean_acc", &v->clean_acc) ||
        get_num(r, "robust_acc", &v->robust_acc) ||
        get_json(r, "warnings", is_array, "an array", &v->warnings))
        return -1;
    if (json_object_get(r->o, "survival") && get_bytes(r, "survival", &v->survival, &n))
        return -1;
    if (v->survival && n != (size_t)v->n)
        return bad(r, "survival", "n bytes");
    return 0;
}

static int dec_report(const reader *r, adv_wmsg *m)
{
    if (get_copy(r, "kind", m->u.report.kind, sizeof m->u.report.kind) ||
        get_json(r, "data", is_object, "an object", &m->u.report.data))
        return -1;
    return adv_report_kind_valid(m->u.report.kind) ? 0 : bad(r, "kind", "a report kind");
}

static int dec_image(const reader *r, adv_wmsg *m)
{
    return get_copy(r, "name", m->u.image.name, sizeof m->u.image.name) ||
                   get_bytes(r, "data", &m->u.image.data, &m->u.image.len)
               ? -1
               : 0;
}

static int dec_text(const reader *r, adv_wmsg *m)
{
    const char *s;
    if (get_str(r, "message", &s))
        return -1;
    if (!(m->u.text.message = strdup(s)))
        return adv_errorf(r->e, ADV_E_INTERNAL, "out of memory");
    return 0;
}

static int dec_done(const reader *r, adv_wmsg *m)
{
    const char *s;
    if (get_str(r, "status", &s))
        return -1;
    if (strcmp(s, "succeeded") && strcmp(s, "stopped"))
        return bad(r, "status", "'succeeded' or 'stopped'");
    m->u.done.succeeded = !strcmp(s, "succeeded");
    return 0;
}

int adv_wmsg_decode(const char *line, size_t len, adv_wmsg *out, adv_error *e)
{
    static int (*const dec[])(const reader *, adv_wmsg *) = {
#define X(name, str, member) dec_##member,
        ADV_WORKER_MSGS(X)
#undef X
    };
    memset(out, 0, sizeof *out);
    out->type = ADV_W_COUNT;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    int rc = -1;
    if (!json_is_object(o))
        adv_errorf(e, ADV_E_INVALID_ARGUMENT, "worker message is not a JSON object");
    else if (!type)
        adv_errorf(e, ADV_E_INVALID_ARGUMENT, "worker message has no 'type'");
    else {
        for (int t = 0; t < ADV_W_COUNT; t++)
            if (!strcmp(type, adv_wtype_name((adv_wtype)t)))
                out->type = (adv_wtype)t;
        reader r = {.o = o, .msg = type, .e = e};
        if (out->type == ADV_W_COUNT)
            adv_errorf(e, ADV_E_INVALID_ARGUMENT, "unknown worker message '%s'", type);
        else
            rc = dec[out->type](&r, out);
    }
    json_decref(o);
    if (rc)
        adv_wmsg_clear(out);
    return rc;
}

void adv_wmsg_clear(adv_wmsg *m)
{
    switch (m->type) {
    case ADV_W_JOB:
        free(m->u.job.ckpt_dir);
        json_decref(m->u.job.spec);
        json_decref(m->u.job.parent_spec);
        break;
    case ADV_W_METRICS:
        json_decref(m->u.metrics.values);
        break;
    case ADV_W_EVAL:
        json_decref(m->u.eval.spec);
        json_decref(m->u.eval.warnings);
        free(m->u.eval.survival);
        break;
    case ADV_W_REPORT:
        json_decref(m->u.report.data);
        break;
    case ADV_W_IMAGE:
        free(m->u.image.data);
        break;
    case ADV_W_WARNING:
    case ADV_W_ERROR:
        free(m->u.text.message);
        break;
    default:
        break;
    }
    memset(m, 0, sizeof *m);
    m->type = ADV_W_COUNT;
}
