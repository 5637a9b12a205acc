/*
 * commands.c - the answer to each request of the wire protocol (proto.h,
 * ADV_COMMANDS). Requests arrive parsed and type-checked by adv_request_parse;
 * every handler answers exactly once, through advd_client_send.
 *
 * Who may do what (users.c): everyone admitted reads every job; cancel,
 * export, images and evaluating a job (submit of an eval) are for its owner,
 * root and the daemon's uid (else forbidden). A submit is refused with
 * too_large past the user's 'max_queued_per_user' or when the job's memory
 * estimate (proto/estimate.c) exceeds 'max_job_memory'.
 *
 * Results:
 *   submit       {"job": id, "state": "queued"}
 *   list         {"jobs": [job...]}   (jobs without their spec; "mine": true
 *                                      for the peer's own; every job has
 *                                      "owner" (uid) and "user" (name))
 *   status       job                             (with "spec" as an object)
 *   cancel       {"job", "state"}: "cancelled" for a queued job; a running
 *                job answers "running" with "cancelling": true and ends
 *                "cancelled" once its worker stopped (watch it)
 *   metrics      {"job", "metrics": [{"key","step","epoch","value","time"}]}
 *   results      {"job", "results": [evaluation...], "reports": [{"job",
 *                "kind", "data", "created"}...]} (reports: calibration,
 *                corruptions and explanations of the eval jobs; extras.c)
 *   images       {"job", "images": [{"name", "size", "data" (base64, or null
 *                past ADV_CHUNK_MAX in all: ask by "name" in pieces)}]}:
 *                the pictures an eval job drew (PNG files and index.tsv)
 *   checkpoints  {"job", "checkpoints": [{"id","epoch","step",...}]}
 *   export       {"job","checkpoint","epoch","step","format","checksum",
 *                "size","offset","data","eof"}: one piece (transfer.c)
 *   import       {"upload","received"} per piece, then {"job","state",
 *                "checkpoint","checksum","tensors","dtypes","size"} (import.c)
 *   predict      scores with a checkpoint; monitor: a drift monitor (monitor.c)
 *   watch        {"job": job}, then events until a final state event
 *   ping         {"pong": true}
 *   version      {"version","protocol","sqlite","jansson","libuv"}
 *   info         the connection side's counters (server.c), "scoring_tasks"
 */
#include "advd.h"
#include "monitor.h"

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

static json_t *job_json(advd *d, const adv_job *j, int with_spec)
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
    if (o && j->init_job) /* lineage: the checkpoint is known once the job started */
        json_object_set_new(
            o, "init",
            json_pack("{s:I, s:o, s:o}", "job", (json_int_t)j->init_job, "checkpoint",
                      j->init_ckpt ? json_integer(j->init_ckpt) : json_null(), "checksum",
                      j->init_ckpt ? json_integer(j->init_checksum) : json_null()));
    if (o && j->warning) /* e.g. a corrupt checkpoint skipped on resume */
        json_object_set_new(o, "warning", json_string(j->warning));
    if (o) {
        json_object_set_new(o, "owner", json_integer(advd_owner_uid(j->owner)));
        json_object_set_new(o, "user", json_string(advd_user_name(d, j->owner)));
    }
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

/* 0 when the peer may act on j (its owner, root, the daemon's uid); else
 * an answer (forbidden), j cleared, and -1. */
static int check_owner(const call *k, adv_job *j, const char *what)
{
    unsigned uid = advd_client_uid(k->c);
    if (advd_may_act(uid, j->owner))
        return 0;
    fail(k, ADV_E_FORBIDDEN, "job %lld belongs to '%s': you (uid %u) may not %s it",
         (long long)j->id, advd_user_name(k->d, j->owner), uid, what);
    adv_job_clear(j);
    return -1;
}

/* The job a spec field names (an eval's "job", a training job's "init"),
 * when the peer may act on it: else an answer naming the field and -1. */
static int get_field_job(const call *k, int64_t id, const char *field, const char *what,
                         adv_job *j)
{
    char err[CORE_ERRLEN];
    int rc = adv_store_job_get(k->d->store, id, j, err);
    if (rc == ADV_STORE_NOT_FOUND)
        return fail(k, ADV_E_NOT_FOUND, "invalid '%s': %s", field, err), -1;
    if (rc)
        return fail_store(k, rc, err), -1;
    return check_owner(k, j, what);
}

static int get_own_job(const call *k, adv_job *j, const char *what)
{
    return get_job(k, j) || check_owner(k, j, what) ? -1 : 0;
}

/* -------------------------------------------------------------- submit */

static int insert_job(const call *k, const adv_jobspec *s, int64_t *id)
{
    char err[CORE_ERRLEN];
    adv_job j = {.kind = s->kind, .priority = s->priority,
                 .parent = s->kind == ADV_JOB_EVAL ? s->eval.job : 0,
                 .owner = advd_client_uid(k->c), .spec = adv_jobspec_canonical(s),
                 .init_job = s->kind == ADV_JOB_TRAIN ? s->train.init.job : 0};
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

/* The training spec a job's memory is judged by: its own, or for an
 * evaluation its parent's (which must be the peer's to evaluate). */
static int train_spec_of(const call *k, const adv_jobspec *s, adv_jobspec *parent,
                         const adv_train_spec **t, int *batch)
{
    adv_error e;
    *t = &s->train;
    *batch = s->train.cfg.batch;
    if (s->kind != ADV_JOB_EVAL)
        return 0;
    adv_job p;
    if (get_field_job(k, s->eval.job, "job", "evaluate", &p))
        return -1;
    /* Not a training job (insert_job says so): nothing to judge the
     * memory by. The parent's spec is decoded, not checked against the
     * files (no I/O on the loop; a data set moved since fails the worker,
     * which says so). */
    int rc = p.kind == ADV_JOB_EVAL || adv_jobspec_decode_text(p.spec, strlen(p.spec), parent, &e);
    adv_job_clear(&p);
    if (rc)
        return *t = NULL, 0;
    *t = &parent->train;
    *batch = ADV_EVAL_BATCH;
    return 0;
}

/* A training job's "init" names a training job of the peer's (or one it
 * may act on); its checkpoint is resolved when the job starts. */
static int check_init(const call *k, const adv_jobspec *s)
{
    if (s->kind != ADV_JOB_TRAIN || !s->train.init.job)
        return 0;
    adv_job p;
    if (get_field_job(k, s->train.init.job, "init", "start a job from", &p))
        return -1;
    int rc = p.kind != ADV_JOB_EVAL ? 0 : -1;
    if (rc)
        fail(k, ADV_E_INVALID_ARGUMENT, "invalid 'init': job %lld is not a trained model",
             (long long)p.id);
    adv_job_clear(&p);
    return rc;
}

/* The limits a shared daemon keeps for each user: queued jobs, and the
 * memory a job would need (refused now rather than killed later). */
static int check_limits(const call *k, const adv_jobspec *s)
{
    unsigned uid = advd_client_uid(k->c);
    char err[CORE_ERRLEN], need[160], limit[32];
    int queued = 0, batch, rc;
    if ((rc = adv_store_jobs_queued_by(k->d->store, uid, &queued, err)))
        return fail_store(k, rc, err), -1;
    if (queued >= k->d->opt.max_queued_per_user && !advd_privileged(uid))
        return fail(k, ADV_E_TOO_LARGE, "you (uid %u) have %d queued jobs, the most "
                    "'max_queued_per_user' allows", uid, queued), -1;
    adv_jobspec *parent = malloc(sizeof *parent);
    const adv_train_spec *t;
    adv_job_cost cost = {0};
    adv_error e;
    int threads = s->threads ? s->threads : k->d->opt.threads;
    if (!parent)
        rc = (fail(k, ADV_E_INTERNAL, "out of memory"), -1);
    else
        rc = train_spec_of(k, s, parent, &t, &batch);
    if (rc == 0 && t && adv_train_cost(t, batch, threads, &cost, &e))
        rc = (advd_client_send(k->c, adv_proto_error(k->req->id, &e)), -1);
    if (rc == 0 && cost.total > (double)k->d->opt.max_job_memory) {
        adv_job_cost_describe(&cost, batch, need, sizeof need);
        adv_bytes_describe((double)k->d->opt.max_job_memory, limit, sizeof limit);
        fail(k, ADV_E_TOO_LARGE, "the job would need about %s, more than 'max_job_memory' (%s)",
             need, limit);
        rc = -1;
    }
    free(parent);
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
    } else if (s->kind == ADV_JOB_IMPORT) {
        fail(k, ADV_E_INVALID_ARGUMENT, "invalid 'kind': an import job comes from the 'import' "
             "request (advctl import FILE)");
    } else if (check_init(k, s) == 0 && check_limits(k, s) == 0 && insert_job(k, s, &id) == 0) {
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
                        .limit = (int)adv_request_int(k->req, "limit", 0),
                        .by_owner = json_is_true(adv_request_arg(k->req, "mine")),
                        .owner = advd_client_uid(k->c)};
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
        json_array_append_new(a, job_json(k->d, &jobs[i], 0));
    adv_jobs_free(jobs, n);
    reply(k, json_pack("{s:o}", "jobs", a));
}

static void cmd_status(const call *k)
{
    adv_job j;
    if (get_job(k, &j))
        return;
    json_t *o = job_json(k->d, &j, 1), *mon = advd_monitor_summary(k->d, j.id);
    if (mon)
        json_object_set_new(o, "monitor", mon);
    reply(k, o);
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

/* A piece answer from transfer.c, or its error. */
static void reply_piece(const call *k, int rc, json_t *result, const adv_error *e)
{
    if (rc)
        advd_client_send(k->c, adv_proto_error(k->req->id, e));
    else
        reply(k, result);
}

static void cmd_images(const call *k)
{
    adv_job j;
    adv_error e;
    json_t *r = NULL;
    if (get_own_job(k, &j, "draw"))
        return;
    int rc = advd_images_answer(k->d, &j, k->req, &r, &e);
    reply_piece(k, rc, r, &e);
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

static void cmd_export(const call *k)
{
    adv_job j;
    adv_error e;
    json_t *r = NULL;
    if (get_own_job(k, &j, "export"))
        return;
    int rc = advd_export_piece(k->d, &j, k->req, &r, &e);
    reply_piece(k, rc, r, &e);
    adv_job_clear(&j);
}

static void cmd_import(const call *k)
{
    adv_error e;
    json_t *r = NULL;
    int rc = advd_import_piece(k->d, advd_client_uid(k->c), k->req, &r, &e);
    reply_piece(k, rc, r, &e);
}

static void cmd_predict(const call *k)
{
    advd_cmd_predict(k->d, k->c, k->req);
}

static void cmd_monitor(const call *k)
{
    advd_cmd_monitor(k->d, k->c, k->req);
}

/* -------------------------------------------------------- cancel, watch */

static void cmd_cancel(const call *k)
{
    adv_job j;
    char err[CORE_ERRLEN];
    if (get_own_job(k, &j, "cancel"))
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
    reply(k, json_pack("{s:o}", "job", job_json(k->d, &j, 0)));
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

/* Counters of the connection side (server.c): clients, refusals, ...,
 * and the scoring tasks queued or running (score.c). */
static void cmd_info(const call *k)
{
    json_t *o = advd_server_stats(k->d);
    json_object_set_new(o, "scoring_tasks", json_integer(advd_tasks_pending(k->d)));
    reply(k, o);
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
