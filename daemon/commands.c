/*
 * commands.c - the answer to each request of the wire protocol (proto.h):
 * submit list status cancel metrics results checkpoints export watch ping
 * version images. Requests arrive parsed and type-checked by adv_request_parse;
 * every handler answers exactly once, through advd_client_send.
 *
 * Results:
 *   submit       {"job": id, "state": "queued"}
 *   list         {"jobs": [job...]}              (jobs without their spec)
 *   status       job                             (with "spec" as an object)
 *   cancel       {"job", "state"}: "cancelled" for a queued job; a running
 *                job answers "running" with "cancelling": true and ends
 *                "cancelled" once its worker stopped (watch it)
 *   metrics      {"job", "metrics": [{"key","step","epoch","value","time"}]}
 *   results      {"job", "results": [evaluation...], "reports": [{"job",
 *                "kind", "data", "created"}...]} (reports: calibration,
 *                corruptions and explanations of the eval jobs; extras.c)
 *   images       {"job", "images": [{"name", "size", "data" (base64)}]}:
 *                the pictures an eval job drew (PNG files and index.tsv)
 *   checkpoints  {"job", "checkpoints": [{"id","epoch","step",...}]}
 *   export       {"job","checkpoint","epoch","step","size","checksum"} plus
 *                "data" (base64) or "path" (written there, mode 0600, through
 *                a temporary file and a rename; synchronously: a checkpoint
 *                of a few MB costs the loop milliseconds); inline data must
 *                fit in one protocol line, else too_large
 *   watch        {"job": job}, then events until a final state event
 *   ping         {"pong": true}
 *   version      {"version","protocol","sqlite","jansson","libuv"}
 */
#include "advd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    advd *d;
    advd_client *c;
    const adv_request *req;
} call;

static void reply(const call *k, json_t *result)
{
    advd_client_send(k->c, adv_proto_ok(k->req->id, result));
}

__attribute__((format(printf, 3, 4))) static void fail(const call *k, adv_errcode code,
                                                       const char *fmt, ...)
{
    adv_error e = {.code = code};
    char msg[ADV_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    adv_errorf(&e, code, "%s", msg);
    advd_client_send(k->c, adv_proto_error(k->req->id, &e));
}

/* A store failure as the protocol's error code. */
static void fail_store(const call *k, int rc, const char *err)
{
    adv_errcode code = rc == ADV_STORE_NOT_FOUND  ? ADV_E_NOT_FOUND
                       : rc == ADV_STORE_CONFLICT ? ADV_E_CONFLICT
                                                  : ADV_E_INTERNAL;
    if (code == ADV_E_INTERNAL)
        advd_log(k->d, "store: %s", err);
    fail(k, code, "%s", err);
}

static json_t *real_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *time_or_null(double t)
{
    return t > 0 ? json_real(t) : json_null();
}

static json_t *text_json(const char *text, json_t *dflt)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (!v)
        return dflt;
    json_decref(dflt);
    return v;
}

static json_t *job_json(const adv_job *j, int with_spec)
{
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                          (json_int_t)j->id, "kind", adv_job_kind_name(j->kind), "name", j->name,
                          "state", adv_job_state_name(j->state), "priority", j->priority,
                          "attempts", j->attempts, "parent",
                          j->parent ? json_integer(j->parent) : json_null(), "progress",
                          real_or_null(j->progress), "created", time_or_null(j->created),
                          "started", time_or_null(j->started), "finished",
                          time_or_null(j->finished), "error",
                          j->error ? json_string(j->error) : json_null());
    if (o && with_spec)
        json_object_set_new(o, "spec", text_json(j->spec, json_null()));
    return o;
}

/* The job named by the request's "job", or an answer (not_found) and -1. */
static int get_job(const call *k, adv_job *j)
{
    char err[CORE_ERRLEN];
    int rc = adv_store_job_get(k->d->store, adv_request_int(k->req, "job", 0), j, err);
    if (rc)
        fail_store(k, rc, err);
    return rc;
}

/* -------------------------------------------------------------- submit */

static int insert_job(const call *k, const adv_jobspec *s, int64_t *id)
{
    char err[CORE_ERRLEN];
    adv_job j = {.kind = s->kind, .priority = s->priority,
                 .parent = s->kind == ADV_JOB_EVAL ? s->eval.job : 0,
                 .spec = adv_jobspec_canonical(s)};
    snprintf(j.name, sizeof j.name, "%s", s->name);
    if (!j.spec) {
        fail(k, ADV_E_INTERNAL, "cannot encode the job spec");
        return -1;
    }
    int rc = adv_store_job_insert(k->d->store, &j, id, err);
    free(j.spec);
    if (rc == ADV_STORE_NOT_FOUND || rc == ADV_STORE_CONFLICT)
        fail(k, rc == ADV_STORE_NOT_FOUND ? ADV_E_NOT_FOUND : ADV_E_INVALID_ARGUMENT,
             "invalid 'job': %s", err);
    else if (rc)
        fail_store(k, rc, err);
    return rc;
}

static void cmd_submit(const call *k)
{
    adv_error e;
    adv_jobspec *s = malloc(sizeof *s);
    int64_t id;
    if (!s) {
        fail(k, ADV_E_INTERNAL, "out of memory");
        return;
    }
    if (adv_jobspec_parse(adv_request_arg(k->req, "spec"), s, &e)) {
        advd_client_send(k->c, adv_proto_error(k->req->id, &e));
    } else if (insert_job(k, s, &id) == 0) {
        advd_job_event(k->d, id, ADV_STATE_QUEUED, NULL);
        reply(k, json_pack("{s:I, s:s}", "job", (json_int_t)id, "state", "queued"));
        advd_schedule_soon(k->d);
    }
    free(s);
}

/* ------------------------------------------------------------ reading */

static void cmd_list(const call *k)
{
    adv_job_filter f = {.state = -1, .kind = -1,
                        .limit = (int)adv_request_int(k->req, "limit", 0)};
    adv_job_state st;
    adv_job_kind kind;
    if (adv_job_state_parse(adv_request_str(k->req, "state", NULL), &st) == 0)
        f.state = (int)st;
    if (adv_job_kind_parse(adv_request_str(k->req, "kind", NULL), &kind) == 0)
        f.kind = (int)kind;
    adv_job *jobs;
    int n;
    char err[CORE_ERRLEN];
    int rc = adv_store_job_list(k->d->store, &f, &jobs, &n, err);
    if (rc) {
        fail_store(k, rc, err);
        return;
    }
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, job_json(&jobs[i], 0));
    adv_jobs_free(jobs, n);
    reply(k, json_pack("{s:o}", "jobs", a));
}

static void cmd_status(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    reply(k, job_json(&j, 1));
    adv_job_clear(&j);
}

static void cmd_metrics(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    adv_metric_row *m;
    int n;
    char err[CORE_ERRLEN];
    int rc = adv_store_metrics_get(k->d->store, j.id, adv_request_str(k->req, "key", NULL),
                                   adv_request_int(k->req, "since", 0), &m, &n, err);
    if (rc == 0) {
        json_t *a = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(a, json_pack("{s:s, s:I, s:i, s:o, s:f}", "key", m[i].key,
                                               "step", (json_int_t)m[i].step, "epoch",
                                               m[i].epoch, "value", real_or_null(m[i].value),
                                               "time", m[i].time));
        free(m);
        reply(k, json_pack("{s:I, s:o}", "job", (json_int_t)j.id, "metrics", a));
    } else {
        fail_store(k, rc, err);
    }
    adv_job_clear(&j);
}

static json_t *eval_json(const adv_eval *ev)
{
    char *surv = ev->survival ? adv_base64_encode(ev->survival, (size_t)ev->n, NULL) : NULL;
    json_t *o = json_pack(
        "{s:I, s:I, s:o, s:i, s:I, s:o, s:f, s:i, s:o, s:o, s:o, s:o, s:f}", "id",
        (json_int_t)ev->id, "job", (json_int_t)ev->job, "checkpoint",
        ev->checkpoint ? json_integer(ev->checkpoint) : json_null(), "epoch", ev->epoch, "step",
        (json_int_t)ev->step, "spec", text_json(ev->spec, json_null()), "eps", ev->eps, "n",
        ev->n, "clean_acc", real_or_null(ev->clean_acc), "robust_acc",
        real_or_null(ev->robust_acc), "survival", surv ? json_string(surv) : json_null(),
        "warnings", text_json(ev->warnings, json_array()), "created", ev->created);
    free(surv);
    return o;
}

/* A stored report with its data as an object. */
static json_t *report_json(const adv_report *r)
{
    json_t *data = json_loads(r->data, 0, NULL);
    return json_pack("{s:I, s:s, s:o, s:f}", "job", (json_int_t)r->job, "kind", r->kind, "data",
                     data ? data : json_object(), "created", r->created);
}

static void cmd_results(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    adv_eval *ev;
    int n;
    char err[CORE_ERRLEN];
    int rc = adv_store_eval_list(k->d->store, j.id, &ev, &n, err);
    if (rc == 0) {
        json_t *a = json_array(), *reports = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(a, eval_json(&ev[i]));
        adv_evals_free(ev, n);
        adv_report *r;
        if ((rc = adv_store_report_list(k->d->store, j.id, &r, &n, err)) == 0) {
            for (int i = 0; i < n; i++)
                json_array_append_new(reports, report_json(&r[i]));
            adv_reports_free(r, n);
            reply(k, json_pack("{s:I, s:o, s:o}", "job", (json_int_t)j.id, "results", a,
                               "reports", reports));
        } else {
            json_decref(a);
            json_decref(reports);
        }
    }
    if (rc)
        fail_store(k, rc, err);
    adv_job_clear(&j);
}

static void cmd_images(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    adv_image *im;
    int n;
    char err[CORE_ERRLEN];
    int rc = adv_store_image_list(k->d->store, j.id, &im, &n, err);
    if (rc == 0) {
        json_t *a = json_array();
        for (int i = 0; i < n; i++) {
            char *b64 = adv_base64_encode(im[i].data, im[i].size, NULL);
            json_array_append_new(a, json_pack("{s:s, s:I, s:s?}", "name", im[i].name, "size",
                                               (json_int_t)im[i].size, "data", b64));
            free(b64);
        }
        adv_images_free(im, n);
        reply(k, json_pack("{s:I, s:o}", "job", (json_int_t)j.id, "images", a));
    } else {
        fail_store(k, rc, err);
    }
    adv_job_clear(&j);
}

static json_t *ckpt_json(const adv_ckpt *c)
{
    return json_pack("{s:I, s:i, s:I, s:o, s:b, s:I, s:I, s:f}", "id", (json_int_t)c->id,
                     "epoch", c->epoch, "step", (json_int_t)c->step, "val_robust_acc",
                     real_or_null(c->val_robust_acc), "best", c->is_best, "checksum",
                     (json_int_t)c->checksum, "size", (json_int_t)c->size, "created",
                     c->created);
}

static void cmd_checkpoints(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    adv_ckpt *c;
    int n;
    char err[CORE_ERRLEN];
    int rc = adv_store_ckpt_list(k->d->store, j.id, &c, &n, err);
    if (rc == 0) {
        json_t *a = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(a, ckpt_json(&c[i]));
        adv_ckpts_free(c, n);
        reply(k, json_pack("{s:I, s:o}", "job", (json_int_t)j.id, "checkpoints", a));
    } else {
        fail_store(k, rc, err);
    }
    adv_job_clear(&j);
}

/* -------------------------------------------------------------- export */

static int write_file(const char *path, const uint8_t *p, size_t n, char *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return core_errf(err, "cannot create '%s': %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            core_errf(err, "cannot write '%s': %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        done += (size_t)w;
    }
    if (close(fd) || rename(tmp, path)) {
        core_errf(err, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void export_ckpt(const call *k, const adv_ckpt *c)
{
    const char *path = adv_request_str(k->req, "path", NULL);
    json_t *r = json_pack("{s:I, s:I, s:i, s:I, s:I, s:I}", "job", (json_int_t)c->job,
                          "checkpoint", (json_int_t)c->id, "epoch", c->epoch, "step",
                          (json_int_t)c->step, "size", (json_int_t)c->size, "checksum",
                          (json_int_t)c->checksum);
    char err[CORE_ERRLEN];
    if (path) {
        if (write_file(path, c->state, c->size, err)) {
            json_decref(r);
            fail(k, ADV_E_INVALID_ARGUMENT, "invalid 'path': %s", err);
            return;
        }
        json_object_set_new(r, "path", json_string(path));
        reply(k, r);
        return;
    }
    if ((c->size + 2) / 3 * 4 + 1024 > ADV_PROTO_MAX_LINE) {
        json_decref(r);
        fail(k, ADV_E_TOO_LARGE,
             "checkpoint of %zu bytes does not fit in one line; give 'path'", c->size);
        return;
    }
    char *data = adv_base64_encode(c->state, c->size, NULL);
    if (!data) {
        json_decref(r);
        fail(k, ADV_E_INTERNAL, "out of memory");
        return;
    }
    json_object_set_new(r, "data", json_string(data));
    free(data);
    reply(k, r);
}

static void cmd_export(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    adv_ckpt_ref ref = {ADV_CKPT_LATEST, 0};
    const json_t *v = adv_request_arg(k->req, "checkpoint");
    if (v)
        adv_ckpt_ref_parse(v, "checkpoint", &ref, NULL);
    adv_ckpt c;
    char err[CORE_ERRLEN];
    int rc = adv_store_ckpt_get(k->d->store, j.id, ref, &c, err);
    if (rc == ADV_STORE_CORRUPT)
        fail(k, ADV_E_INTERNAL, "%s", err);
    else if (rc)
        fail_store(k, rc, err);
    else
        export_ckpt(k, &c);
    adv_ckpt_clear(&c);
    adv_job_clear(&j);
}

/* -------------------------------------------------------- cancel, watch */

static void cmd_cancel(const call *k)
{
    adv_job j;
    char err[CORE_ERRLEN];
    if (get_job(k, &j))
        return;
    int64_t id = j.id;
    adv_job_state st = j.state;
    adv_job_clear(&j);
    if (adv_job_state_final(st)) {
        fail(k, ADV_E_CONFLICT, "job %lld is already %s", (long long)id,
             adv_job_state_name(st));
        return;
    }
    if (st == ADV_STATE_RUNNING && advd_cancel_running(k->d, id) == 0) {
        reply(k, json_pack("{s:I, s:s, s:b}", "job", (json_int_t)id, "state", "running",
                           "cancelling", 1));
        return;
    }
    int rc = adv_store_job_set_state(k->d->store, id, ADV_STATE_CANCELLED,
                                     "cancelled by a client", err);
    if (rc) {
        fail_store(k, rc, err);
        return;
    }
    advd_job_event(k->d, id, ADV_STATE_CANCELLED, "cancelled by a client");
    reply(k, json_pack("{s:I, s:s}", "job", (json_int_t)id, "state", "cancelled"));
}

static void cmd_watch(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    if (!adv_job_state_final(j.state) && advd_client_watch(k->c, j.id)) {
        adv_job_clear(&j);
        fail(k, ADV_E_INTERNAL, "out of memory");
        return;
    }
    reply(k, json_pack("{s:o}", "job", job_json(&j, 0)));
    if (adv_job_state_final(j.state))
        advd_client_send(k->c, adv_proto_event_state(j.id, j.state, j.error));
    adv_job_clear(&j);
}

/* ------------------------------------------------------------- trivia */

static void cmd_ping(const call *k)
{
    reply(k, json_pack("{s:b}", "pong", 1));
}

static void cmd_version(const call *k)
{
    reply(k, json_pack("{s:s, s:i, s:s, s:s, s:s}", "version", ADV_VERSION, "protocol",
                       ADV_PROTOCOL, "sqlite", sqlite3_libversion(), "jansson", JANSSON_VERSION,
                       "libuv", uv_version_string()));
}

/* Counters of the connection side (server.c): clients, refusals, ... */
static void cmd_info(const call *k)
{
    reply(k, advd_server_stats(k->d));
}

void advd_command(advd *d, advd_client *c, const adv_request *req)
{
    static void (*const handlers[ADV_NCMDS])(const call *) = {
#define CMD_HANDLER(e, name) [ADV_CMD_##e] = cmd_##name,
        ADV_COMMANDS(CMD_HANDLER)
#undef CMD_HANDLER
    };
    call k = {d, c, req};
    if ((unsigned)req->cmd < ADV_NCMDS && handlers[req->cmd])
        handlers[req->cmd](&k);
    else
        fail(&k, ADV_E_BAD_REQUEST, "unknown command '%s'", adv_cmd_name(req->cmd));
}
