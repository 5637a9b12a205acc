/*
 * scheduler.c - runs queued jobs: claims them from the store (at most
 * --workers at once), spawns one `advd --worker` process per job (uv_spawn;
 * the pipe protocol is described atop worker.c), records what each worker
 * reports (progress, metrics, checkpoints, evaluations: the daemon is the
 * database's only writer) and decides each job's end when its worker is
 * gone: both its output pipes closed and its exit seen.
 *
 *   done "succeeded", exit 0      -> succeeded
 *   stopped for a cancel          -> cancelled (checkpoints kept)
 *   stopped for a shutdown        -> queued again
 *   anything else                 -> failed, with the cause: exit status or
 *                                    signal, the worker's error message or
 *                                    the last lines of its stderr; or queued
 *                                    again while attempts <= --retries (a
 *                                    retry resumes from the last checkpoint)
 * A stopped worker that has not exited after --grace seconds is killed.
 */
#include "advd.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

enum { STOP_NONE, STOP_CANCEL, STOP_SHUTDOWN };
enum { DONE_NONE, DONE_SUCCEEDED, DONE_STOPPED };
#define TAIL_MAX 2048
#define NHANDLES 5

struct advd_worker {
    advd *d;
    advd_worker *prev, *next;
    int64_t job;
    int attempt;
    adv_job_kind kind;
    int keep;                   /* train: checkpoints to keep */
    int64_t eval_ckpt;          /* eval: the checkpoint it evaluates */
    int64_t last_ckpt;          /* train: the latest checkpoint it stored */
    uv_process_t proc;
    uv_pipe_t in, out, err;     /* the worker's stdin, stdout, stderr */
    uv_timer_t grace;
    int open;                   /* handles not yet closed */
    int spawned;                /* uv_spawn was called: proc is a handle */
    double progress;
    int64_t from_step;          /* the step of the checkpoint it starts from; -1: none */
    int out_eof, err_eof, exited, finished;
    int64_t exit_status;
    int term_signal;
    int stop, done;
    char *error;                /* the worker's own error message */
    adv_linebuf msgs;
    char tail[TAIL_MAX];        /* the end of its stderr */
    size_t tail_len;
    char rbuf[65536];
};

typedef struct {
    uv_write_t req;
    char *data;
} wwrite;

static void worker_check_end(advd_worker *w);
static int start_job(advd *d, adv_job *j);

/* ----------------------------------------------------------- scheduling */

static void on_kick(uv_timer_t *t)
{
    advd *d = t->data;
    while (!d->stopping && d->nworkers < d->opt.workers) {
        adv_job j;
        char err[CORE_ERRLEN];
        int rc = adv_store_job_claim(d->store, &j, err);
        if (rc == ADV_STORE_NOT_FOUND)
            return;
        if (rc) {
            advd_log(d, "cannot claim a job: %s", err);
            return;
        }
        start_job(d, &j);
        adv_job_clear(&j);
    }
}

void advd_schedule_soon(advd *d)
{
    if (!d->stopping)
        uv_timer_start(&d->kick, on_kick, 0, 0);
}

/* ------------------------------------------------------- to the worker */

static void on_wwrite_done(uv_write_t *req, int status)
{
    wwrite *x = (wwrite *)req;
    (void)status; /* a worker that is gone is noticed by its exit */
    free(x->data);
    free(x);
}

/* Send msg (stolen) to the worker's stdin. */
static void worker_send(advd_worker *w, json_t *msg)
{
    char *text = msg ? json_dumps(msg, ADV_JSON_FLAGS) : NULL;
    json_decref(msg);
    wwrite *x = malloc(sizeof *x);
    size_t n = text ? strlen(text) : 0;
    char *line = text ? realloc(text, n + 2) : NULL;
    if (!x || !line) {
        free(x);
        free(line ? line : text);
        advd_log(w->d, "job %lld: cannot send its worker a message", (long long)w->job);
        return;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    x->data = line;
    uv_buf_t buf = uv_buf_init(line, (unsigned)(n + 1));
    if (uv_write(&x->req, (uv_stream_t *)&w->in, &buf, 1, on_wwrite_done)) {
        free(line);
        free(x);
    }
}

/* ------------------------------------------------------ worker messages */

static void msg_progress(advd_worker *w, json_t *m)
{
    advd *d = w->d;
    char err[CORE_ERRLEN];
    double p = json_number_value(json_object_get(m, "progress"));
    w->progress = p;
    if (adv_store_job_progress(d->store, w->job, p < 0 ? 0 : p > 1 ? 1 : p, err))
        advd_log(d, "job %lld: %s", (long long)w->job, err);
    json_t *f = json_deep_copy(m);
    json_object_del(f, "type");
    json_object_del(f, "progress");
    advd_notify(d, w->job, adv_proto_event_progress(w->job, p, f));
}

static void msg_metrics(advd_worker *w, json_t *m)
{
    advd *d = w->d;
    json_t *values = json_object_get(m, "values");
    adv_metric pts[64];
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(values, key, v) {
        if (n == 64 || strlen(key) >= ADV_METRIC_KEY)
            continue;
        pts[n++] = (adv_metric){.key = key,
                                .step = json_integer_value(json_object_get(m, "step")),
                                .epoch = (int)json_integer_value(json_object_get(m, "epoch")),
                                .value = json_is_number(v) ? json_number_value(v) : NAN};
    }
    char err[CORE_ERRLEN];
    if (n && adv_store_metrics_put(d->store, w->job, pts, n, err))
        advd_log(d, "job %lld: %s", (long long)w->job, err);
    advd_notify(d, w->job, adv_proto_event_progress(w->job, w->progress,
                                                    json_pack("{s:O, s:O, s:O}", "metrics", values,
                                                              "epoch", json_object_get(m, "epoch"),
                                                              "step", json_object_get(m, "step"))));
}

static void msg_checkpoint(advd_worker *w, json_t *m)
{
    advd *d = w->d;
    const json_t *s = json_object_get(m, "state");
    const json_t *acc = json_object_get(m, "val_robust_acc");
    adv_error e;
    char err[CORE_ERRLEN];
    adv_ckpt c = {.job = w->job, .epoch = (int)json_integer_value(json_object_get(m, "epoch")),
                  .step = json_integer_value(json_object_get(m, "step")),
                  .val_robust_acc = json_is_number(acc) ? json_number_value(acc) : NAN};
    if (adv_base64_decode(json_string_value(s) ? json_string_value(s) : "",
                          json_string_length(s), &c.state, &c.size, &e)) {
        advd_log(d, "job %lld: bad checkpoint from the worker: %s", (long long)w->job, e.msg);
        return;
    }
    if (adv_store_ckpt_put(d->store, &c, w->keep, &w->last_ckpt, err))
        advd_log(d, "job %lld: %s", (long long)w->job, err);
    else
        advd_log(d, "job %lld: checkpoint at epoch %d, step %lld (%zu bytes)",
                 (long long)w->job, c.epoch, (long long)c.step, c.size);
    free(c.state);
}

static void msg_eval(advd_worker *w, json_t *m)
{
    advd *d = w->d;
    adv_error e;
    char err[CORE_ERRLEN];
    const json_t *surv = json_object_get(m, "survival");
    size_t n = 0;
    adv_eval ev = {.job = w->job,
                   .checkpoint = w->kind == ADV_JOB_EVAL ? w->eval_ckpt : w->last_ckpt,
                   .spec = json_dumps(json_object_get(m, "spec"), ADV_JSON_FLAGS),
                   .eps = json_number_value(json_object_get(m, "eps")),
                   .n = (int)json_integer_value(json_object_get(m, "n")),
                   .clean_acc = json_number_value(json_object_get(m, "clean_acc")),
                   .robust_acc = json_number_value(json_object_get(m, "robust_acc")),
                   .warnings = json_dumps(json_object_get(m, "warnings"), ADV_JSON_FLAGS)};
    if (json_is_string(surv) && adv_base64_decode(json_string_value(surv), json_string_length(surv),
                                                  &ev.survival, &n, &e) == 0 &&
        n != (size_t)ev.n) {
        free(ev.survival);
        ev.survival = NULL;
    }
    if (!ev.spec || adv_store_eval_put(d->store, &ev, NULL, err))
        advd_log(d, "job %lld: cannot store an evaluation: %s", (long long)w->job,
                 ev.spec ? err : "no spec");
    free(ev.spec);
    free(ev.warnings);
    free(ev.survival);
}

/* {"type":"report","kind":K,"data":{...}}: calibration, corruptions or
 * explanations of an evaluation. */
static void msg_report(advd_worker *w, json_t *m)
{
    char err[CORE_ERRLEN];
    const char *kind = json_string_value(json_object_get(m, "kind"));
    char *data = json_dumps(json_object_get(m, "data"), ADV_JSON_FLAGS);
    if (!kind || !data || adv_store_report_put(w->d->store, w->job, kind, data, err))
        advd_log(w->d, "job %lld: cannot store a report: %s", (long long)w->job,
                 kind && data ? err : "no kind or data");
    free(data);
}

/* {"type":"image","name":N,"data":"<base64>"}: a picture (or its index). */
static void msg_image(advd_worker *w, json_t *m)
{
    adv_error e;
    char err[CORE_ERRLEN];
    const char *name = json_string_value(json_object_get(m, "name"));
    const json_t *b64 = json_object_get(m, "data");
    uint8_t *data = NULL;
    size_t n = 0;
    if (!name || !json_is_string(b64) ||
        adv_base64_decode(json_string_value(b64), json_string_length(b64), &data, &n, &e))
        advd_log(w->d, "job %lld: unreadable image from the worker", (long long)w->job);
    else if (adv_store_image_put(w->d->store, w->job, name, data, n, err))
        advd_log(w->d, "job %lld: cannot store an image: %s", (long long)w->job, err);
    free(data);
}

static void worker_message(advd_worker *w, const char *line, size_t len)
{
    json_t *m = json_loadb(line, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type)
        advd_log(w->d, "job %lld: unreadable message from the worker", (long long)w->job);
    else if (!strcmp(type, "progress"))
        msg_progress(w, m);
    else if (!strcmp(type, "metrics"))
        msg_metrics(w, m);
    else if (!strcmp(type, "checkpoint"))
        msg_checkpoint(w, m);
    else if (!strcmp(type, "eval"))
        msg_eval(w, m);
    else if (!strcmp(type, "report"))
        msg_report(w, m);
    else if (!strcmp(type, "image"))
        msg_image(w, m);
    else if (!strcmp(type, "done")) {
        const char *s = json_string_value(json_object_get(m, "status"));
        w->done = s && !strcmp(s, "succeeded") ? DONE_SUCCEEDED : DONE_STOPPED;
    } else if (!strcmp(type, "error")) {
        free(w->error);
        const char *msg = json_string_value(json_object_get(m, "message"));
        w->error = strdup(msg ? msg : "unknown error");
    }
    json_decref(m);
}

/* ---------------------------------------------------------- worker pipes */

static void on_worker_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    advd_worker *w = h->data;
    *buf = uv_buf_init(w->rbuf, sizeof w->rbuf);
}

static void on_worker_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    advd_worker *w = s->data;
    adv_error e;
    const char *line;
    size_t len;
    if (n < 0) {
        uv_read_stop(s);
        w->out_eof = 1;
        worker_check_end(w);
        return;
    }
    if (adv_linebuf_feed(&w->msgs, buf->base, (size_t)n, &e) == 0) {
        int r;
        while ((r = adv_linebuf_next(&w->msgs, &line, &len, &e)) == 1)
            worker_message(w, line, len);
        if (r == 0)
            return;
    }
    advd_log(w->d, "job %lld: %s from the worker; killing it", (long long)w->job, e.msg);
    uv_process_kill(&w->proc, SIGKILL);
    uv_read_stop(s);
    w->out_eof = 1;
    worker_check_end(w);
}

static void on_worker_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    advd_worker *w = s->data;
    if (n < 0) {
        uv_read_stop(s);
        w->err_eof = 1;
        worker_check_end(w);
        return;
    }
    size_t k = (size_t)n > TAIL_MAX ? TAIL_MAX : (size_t)n;
    const char *src = buf->base + (size_t)n - k;
    if (w->tail_len + k > TAIL_MAX) {
        size_t drop = w->tail_len + k - TAIL_MAX;
        memmove(w->tail, w->tail + drop, w->tail_len - drop);
        w->tail_len -= drop;
    }
    memcpy(w->tail + w->tail_len, src, k);
    w->tail_len += k;
}

static void on_worker_exit(uv_process_t *p, int64_t status, int sig)
{
    advd_worker *w = p->data;
    w->exited = 1;
    w->exit_status = status;
    w->term_signal = sig;
    worker_check_end(w);
}

/* ----------------------------------------------------------- the end */

/* The last lines of the worker's stderr, joined with " | ". */
static void stderr_tail(const advd_worker *w, char *out, size_t len)
{
    char buf[TAIL_MAX + 1];
    memcpy(buf, w->tail, w->tail_len);
    buf[w->tail_len] = '\0';
    size_t n = w->tail_len;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    int lines = 0;
    char *start = buf + n;
    while (start > buf && lines < 3)
        if (*--start == '\n')
            lines++;
    if (*start == '\n')
        start++;
    for (char *c = start; *c; c++)
        if (*c == '\n')
            *c = '|';
    snprintf(out, len, "%.400s", start);
}

static void describe_failure(const advd_worker *w, char *out, size_t len)
{
    char how[128], tail[420];
    if (w->term_signal)
        snprintf(how, sizeof how, "killed by signal %d (%s)", w->term_signal,
                 strsignal(w->term_signal));
    else
        snprintf(how, sizeof how, "exited with status %lld", (long long)w->exit_status);
    stderr_tail(w, tail, sizeof tail);
    if (w->error)
        snprintf(out, len, "worker %s: %s", how, w->error);
    else if (tail[0])
        snprintf(out, len, "worker %s; stderr: %s", how, tail);
    else
        snprintf(out, len, "worker %s", how);
}

static void set_state(advd *d, int64_t job, adv_job_state s, const char *why)
{
    char err[CORE_ERRLEN];
    if (adv_store_job_set_state(d->store, job, s, why, err))
        advd_log(d, "job %lld: %s", (long long)job, err);
    else
        advd_job_event(d, job, s, why);
}

/* The job's next state and why (empty: no reason), from how its worker
 * ended. */
static adv_job_state outcome(const advd_worker *w, char *why, size_t len)
{
    int clean_exit = w->exited && w->exit_status == 0 && w->term_signal == 0;
    char cause[1024];
    why[0] = '\0';
    if (w->done == DONE_SUCCEEDED && clean_exit)
        return ADV_STATE_SUCCEEDED;
    if (w->stop == STOP_CANCEL) {
        snprintf(why, len, "cancelled by a client");
        return ADV_STATE_CANCELLED;
    }
    if (w->stop == STOP_SHUTDOWN) {
        snprintf(why, len, "requeued at daemon shutdown");
        return ADV_STATE_QUEUED;
    }
    if (w->done == DONE_STOPPED && clean_exit) {
        snprintf(why, len, "the worker stopped on a signal; requeued");
        return ADV_STATE_QUEUED;
    }
    describe_failure(w, cause, sizeof cause);
    if (w->attempt <= w->d->opt.retries) {
        snprintf(why, len, "attempt %d failed (%s); retrying", w->attempt, cause);
        return ADV_STATE_QUEUED;
    }
    snprintf(why, len, "%s", cause);
    return ADV_STATE_FAILED;
}

static void record_end(advd_worker *w)
{
    char why[1200];
    adv_job_state s = outcome(w, why, sizeof why);
    set_state(w->d, w->job, s, why[0] ? why : NULL);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    advd_worker *w = h->data;
    if (--w->open > 0)
        return;
    adv_linebuf_free(&w->msgs);
    free(w->error);
    free(w);
}

static void worker_close(advd_worker *w)
{
    advd *d = w->d;
    if (w->prev)
        w->prev->next = w->next;
    else
        d->workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    d->nworkers--;
    uv_handle_t *hs[NHANDLES] = {(uv_handle_t *)&w->proc, (uv_handle_t *)&w->in,
                                 (uv_handle_t *)&w->out, (uv_handle_t *)&w->err,
                                 (uv_handle_t *)&w->grace};
    int first = w->spawned ? 0 : 1;
    w->open = NHANDLES - first;
    for (int i = first; i < NHANDLES; i++)
        uv_close(hs[i], on_worker_handle_closed);
}

static void worker_check_end(advd_worker *w)
{
    if (!w->exited || !w->out_eof || !w->err_eof || w->finished)
        return;
    w->finished = 1;
    record_end(w);
    advd *d = w->d;
    worker_close(w);
    advd_schedule_soon(d);
    advd_maybe_exit(d);
}

/* ------------------------------------------------------------- spawning */

static int worker_init(advd *d, advd_worker *w, const adv_job *j)
{
    w->d = d;
    w->job = j->id;
    w->attempt = j->attempts;
    w->kind = j->kind;
    w->from_step = -1;
    adv_linebuf_init(&w->msgs, ADVD_WORKER_LINE_MAX);
    uv_pipe_init(&d->loop, &w->in, 0);
    uv_pipe_init(&d->loop, &w->out, 0);
    uv_pipe_init(&d->loop, &w->err, 0);
    uv_timer_init(&d->loop, &w->grace);
    w->proc.data = w->in.data = w->out.data = w->err.data = w->grace.data = w;
    return 0;
}

/* The state bytes of a checkpoint as base64 into msg[key]; its id, step
 * and (sum not NULL) crc32 into the out-parameters. */
static int attach_ckpt(advd *d, json_t *msg, const char *key, int64_t job, adv_ckpt_ref ref,
                       int64_t *id, int64_t *step, uint32_t *sum, char *err)
{
    adv_ckpt c;
    int rc = adv_store_ckpt_get(d->store, job, ref, &c, err);
    if (rc)
        return rc;
    char *b64 = adv_base64_encode(c.state, c.size, NULL);
    *id = c.id;
    *step = c.step;
    if (sum)
        *sum = c.checksum;
    adv_ckpt_clear(&c);
    if (!b64)
        return core_errf(err, "out of memory");
    json_object_set_new(msg, key, json_string(b64));
    free(b64);
    return 0;
}

static int eval_inputs(advd *d, advd_worker *w, const adv_jobspec *s, json_t *msg, char *err)
{
    adv_job parent;
    if (adv_store_job_get(d->store, s->eval.job, &parent, err))
        return -1;
    json_object_set_new(msg, "parent_spec", json_loads(parent.spec, 0, NULL));
    adv_job_clear(&parent);
    int rc = attach_ckpt(d, msg, "checkpoint", s->eval.job, s->eval.checkpoint, &w->eval_ckpt,
                         &w->from_step, NULL, err);
    if (rc == ADV_STORE_NOT_FOUND)
        return core_errf(err, "job %lld has no checkpoint '%s'", (long long)s->eval.job,
                         s->eval.checkpoint.which == ADV_CKPT_BEST     ? "best"
                         : s->eval.checkpoint.which == ADV_CKPT_LATEST ? "latest"
                                                                       : "at that epoch");
    return rc ? -1 : 0;
}

/* A training job's starting weights (spec "init"), on its first start: the
 * checkpoint is resolved now, when its job has ended, and kept with the
 * job (lineage; no longer pruned). */
static int init_input(advd *d, const adv_job *j, const adv_jobspec *s, json_t *msg, char *err)
{
    const adv_init_ref *r = &s->train.init;
    if (!r->job)
        return 0;
    int64_t id, step;
    uint32_t sum;
    int rc = attach_ckpt(d, msg, "init", r->job, r->ckpt, &id, &step, &sum, err);
    if (rc == 0)
        rc = adv_store_job_lineage(d->store, j->id, id, sum, err);
    if (rc == ADV_STORE_NOT_FOUND) {
        char why[CORE_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        return core_errf(err, "invalid 'init': %s", why);
    }
    return rc ? -1 : 0;
}

/* The first line for the worker: the job and what it resumes from. */
static json_t *job_message(advd *d, advd_worker *w, const adv_job *j, char *err)
{
    adv_error e;
    adv_jobspec *s = malloc(sizeof *s);
    if (!s)
        return core_errf(err, "out of memory"), NULL;
    json_t *msg = NULL;
    if (adv_jobspec_parse_text(j->spec, strlen(j->spec), s, &e)) {
        core_errf(err, "%s", e.msg);
        goto out;
    }
    w->keep = s->train.keep_checkpoints;
    msg = json_pack("{s:I, s:i, s:i, s:i, s:o}", "job", (json_int_t)j->id, "attempt",
                    j->attempts, "threads", d->opt.threads, "final_eval_limit",
                    d->opt.final_eval_limit, "spec", json_loads(j->spec, 0, NULL));
    int rc = 0;
    if (s->kind == ADV_JOB_TRAIN) {
        rc = attach_ckpt(d, msg, "resume", j->id, (adv_ckpt_ref){ADV_CKPT_LATEST, 0},
                         &w->last_ckpt, &w->from_step, NULL, err);
        rc = rc == ADV_STORE_NOT_FOUND ? init_input(d, j, s, msg, err) : rc;
    } else {
        rc = eval_inputs(d, w, s, msg, err);
    }
    if (rc) {
        json_decref(msg);
        msg = NULL;
    }
out:
    free(s);
    return msg;
}

static int spawn(advd *d, advd_worker *w, char *err)
{
    char *args[] = {d->exe, (char *)"--worker", NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&w->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&w->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&w->err},
    };
    uv_process_options_t o = {.exit_cb = on_worker_exit, .file = d->exe, .args = args,
                              .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(&d->loop, &w->proc, &o);
    w->spawned = 1;
    w->proc.data = w;
    if (rc)
        return core_errf(err, "cannot start a worker: %s", uv_strerror(rc));
    if ((rc = uv_read_start((uv_stream_t *)&w->out, on_worker_alloc, on_worker_out)) ||
        (rc = uv_read_start((uv_stream_t *)&w->err, on_worker_alloc, on_worker_err))) {
        uv_process_kill(&w->proc, SIGKILL);
        return core_errf(err, "cannot read from a worker: %s", uv_strerror(rc));
    }
    return 0;
}

static void link_worker(advd *d, advd_worker *w)
{
    w->next = d->workers;
    if (d->workers)
        d->workers->prev = w;
    d->workers = w;
    d->nworkers++;
}

static int start_job(advd *d, adv_job *j)
{
    char err[CORE_ERRLEN] = "";
    advd_worker *w = calloc(1, sizeof *w);
    if (!w) {
        set_state(d, j->id, ADV_STATE_FAILED, "out of memory");
        return -1;
    }
    worker_init(d, w, j);
    link_worker(d, w);
    json_t *msg = job_message(d, w, j, err);
    if (!msg || spawn(d, w, err)) {
        json_decref(msg);
        set_state(d, j->id, ADV_STATE_FAILED, err);
        w->finished = 1;
        worker_close(w);
        return -1;
    }
    worker_send(w, msg);
    if (w->kind == ADV_JOB_TRAIN && w->from_step >= 0)
        advd_log(d, "job %lld running (attempt %d, pid %d, resuming from step %lld)",
                 (long long)j->id, j->attempts, w->proc.pid, (long long)w->from_step);
    else
        advd_log(d, "job %lld running (attempt %d, pid %d)", (long long)j->id, j->attempts,
                 w->proc.pid);
    advd_notify(d, j->id, adv_proto_event_state(j->id, ADV_STATE_RUNNING, NULL));
    return 0;
}

/* ------------------------------------------------------------ stopping */

static void on_grace_over(uv_timer_t *t)
{
    advd_worker *w = t->data;
    advd_log(w->d, "job %lld: the worker did not stop within the grace period; killing it",
             (long long)w->job);
    uv_process_kill(&w->proc, SIGKILL);
}

static void request_stop(advd_worker *w, int why)
{
    if (w->stop == STOP_NONE || why == STOP_CANCEL)
        w->stop = why;
    if (uv_is_active((uv_handle_t *)&w->grace))
        return;
    worker_send(w, json_pack("{s:s}", "cmd", "stop"));
    uv_timer_start(&w->grace, on_grace_over, (uint64_t)w->d->opt.grace_ms, 0);
}

int advd_cancel_running(advd *d, int64_t job)
{
    for (advd_worker *w = d->workers; w; w = w->next)
        if (w->job == job && !w->finished) {
            advd_log(d, "job %lld: cancelling", (long long)job);
            request_stop(w, STOP_CANCEL);
            return 0;
        }
    return -1;
}

void advd_scheduler_shutdown(advd *d)
{
    uv_timer_stop(&d->kick);
    for (advd_worker *w = d->workers; w; w = w->next)
        request_stop(w, STOP_SHUTDOWN);
}

void advd_scheduler_kill(advd *d)
{
    for (advd_worker *w = d->workers; w; w = w->next)
        uv_process_kill(&w->proc, SIGKILL);
}
