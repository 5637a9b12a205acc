/*
 * scheduler.c - runs queued jobs: claims them from the store (at most
 * --workers at once), spawns one `advd --worker` process per job (uv_spawn;
 * the pipe protocol is proto/worker.h's), records what each worker
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
 *
 * Checkpoints reach the daemon as files the worker wrote in the store's
 * checkpoint folder; recording one is a row, never the bytes, so no
 * message from a worker costs the event loop more than its line.
 */
#define _GNU_SOURCE /* pipe2 */
#include "advd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/ckptfile.h"
#include "daemon/evalstate.h"
#include "daemon/launch.h"
#include "proto/worker.h"

enum { STOP_NONE, STOP_CANCEL, STOP_SHUTDOWN };
enum { DONE_NONE, DONE_SUCCEEDED, DONE_STOPPED };
#define TAIL_MAX 2048
/* A worker's stderr lines reach the daemon's log cut to this. */
#define LOG_LINE_MAX 512
/* mpirun and salloc get SIGTERM first (they end their ranks, salloc gives
 * the allocation back), then SIGKILL this much later. */
#define KILL_TERM_MS 5000
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
    int procs;                  /* the spec's processes (MPI ranks) */
    int launcher;               /* the daemon's, when it started (launch.h) */
    int term_sent;              /* mpirun, salloc: SIGTERM sent, SIGKILL next */
    pid_t pid;                  /* 0 until spawned */
    int pidfd;                  /* readable once it exits (pidfd_open); -1: none */
    uv_poll_t exitw;            /* watches pidfd */
    uv_pipe_t in, out, err;     /* the worker's stdin, stdout, stderr */
    uv_timer_t grace;
    int open;                   /* handles not yet closed */
    int spawned;                /* exitw is a handle */
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
    char line[LOG_LINE_MAX];    /* a stderr line not yet logged */
    size_t line_len;
    char rbuf[65536];
};

typedef struct {
    uv_write_t req;
    char *data;
} wwrite;

static void worker_check_end(advd_worker *w);

static void on_kill_timer(uv_timer_t *t);

/* SIGKILL, unless it is not running (never started, or reaped). mpirun
 * and salloc get SIGTERM first, so that they end their ranks (a rank's
 * parent death signal would too, but srun's ranks are not salloc's
 * children) and salloc gives its allocation back: SIGKILL follows after
 * KILL_TERM_MS. */
static void worker_kill(advd_worker *w)
{
    if (w->pid <= 0 || w->exited)
        return;
    if (w->launcher == ADVD_LAUNCH_LOCAL || w->term_sent) {
        kill(w->pid, SIGKILL);
        return;
    }
    w->term_sent = 1;
    kill(w->pid, SIGTERM);
    uv_timer_start(&w->grace, on_kill_timer, KILL_TERM_MS, 0);
}

static void on_kill_timer(uv_timer_t *t)
{
    worker_kill(t->data);
}
static int start_job(advd *d, adv_job *j);

/* ----------------------------------------------------------- scheduling */

/* How long to wait before writing again after the store refused a write
 * (a full disk, an I/O error). */
#define STORE_RETRY_MS 2000

static int has_worker(const advd *d, int64_t job)
{
    for (const advd_worker *w = d->workers; w; w = w->next)
        if (w->job == job)
            return 1;
    return 0;
}

/* Jobs left 'running' with no worker, because the store could not record
 * their end: queued again (they resume from their last checkpoint) once
 * it can. 0 when none is left. */
static int requeue_unrecorded(advd *d)
{
    adv_job_filter f = {.state = ADV_STATE_RUNNING, .kind = -1};
    adv_job *jobs;
    int n, left = 0;
    char err[CORE_ERRLEN];
    if (adv_store_job_list(d->store, &f, &jobs, &n, err))
        return advd_log(d, "cannot list running jobs: %s", err), -1;
    for (int i = 0; i < n; i++) {
        if (has_worker(d, jobs[i].id))
            continue;
        if (adv_store_job_set_state(d->store, jobs[i].id, ADV_STATE_QUEUED,
                                    "requeued: the store could not record how its worker ended",
                                    err))
            left = -1;
        else
            advd_log(d, "job %lld: requeued (its end could not be recorded before)",
                     (long long)jobs[i].id);
    }
    adv_jobs_free(jobs, n);
    return left;
}

static void on_kick(uv_timer_t *t)
{
    advd *d = t->data;
    if (d->unrecorded && requeue_unrecorded(d)) {
        if (!d->stopping)
            uv_timer_start(&d->kick, on_kick, STORE_RETRY_MS, 0);
        return;
    }
    d->unrecorded = 0;
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

/* Send a line (stolen, newline included) to the worker's stdin. */
static void worker_send_line(advd_worker *w, char *line, size_t len)
{
    wwrite *x = line ? malloc(sizeof *x) : NULL;
    if (!x) {
        free(line);
        advd_log(w->d, "job %lld: cannot send its worker a message", (long long)w->job);
        return;
    }
    x->data = line;
    uv_buf_t buf = uv_buf_init(line, (unsigned)len);
    if (uv_write(&x->req, (uv_stream_t *)&w->in, &buf, 1, on_wwrite_done)) {
        free(line);
        free(x);
    }
}

static void worker_send(advd_worker *w, const adv_wmsg *m)
{
    size_t len = 0;
    char *line = adv_wmsg_encode(m, &len);
    worker_send_line(w, line, len);
}

/* ------------------------------------------------------ worker messages */

/* What a worker reported could not be stored (a full disk): its attempt
 * ends here rather than going on with a gap in its record; a retry
 * resumes from its last recorded checkpoint and writes the rest again. */
static void stop_unrecorded(advd_worker *w, const char *what, const char *err)
{
    advd_log(w->d, "job %lld: cannot record %s: %s; ending the attempt", (long long)w->job, what,
             err);
    char why[CORE_ERRLEN + 64];
    snprintf(why, sizeof why, "cannot record %s: %s", what, err);
    free(w->error);
    w->error = strdup(why);
    worker_kill(w);
}

static void msg_progress(advd_worker *w, const adv_wprogress *m)
{
    advd *d = w->d;
    char err[CORE_ERRLEN];
    double p = !(m->progress > 0) ? 0 : m->progress > 1 ? 1 : m->progress;
    w->progress = p;
    if (adv_store_job_progress(d->store, w->job, p, err))
        advd_log(d, "job %lld: %s", (long long)w->job, err);
    json_t *f = json_pack("{s:I, s:I}", "epoch", (json_int_t)m->epoch, "step",
                          (json_int_t)m->step);
    if (isfinite(m->images_per_s))
        json_object_set_new(f, "images_per_s", json_real(m->images_per_s));
    if (isfinite(m->loss))
        json_object_set_new(f, "loss", json_real(m->loss));
    advd_notify(d, w->job, adv_proto_event_progress(w->job, p, f));
}

static void msg_metrics(advd_worker *w, const adv_wmetrics *m)
{
    advd *d = w->d;
    adv_metric pts[64];
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(m->values, key, v) {
        if (n == 64 || strlen(key) >= ADV_METRIC_KEY)
            continue;
        pts[n++] = (adv_metric){.key = key, .step = m->step, .epoch = (int)m->epoch,
                                .value = json_is_number(v) ? json_number_value(v) : NAN};
    }
    char err[CORE_ERRLEN];
    if (n && adv_store_metrics_put(d->store, w->job, pts, n, err)) {
        stop_unrecorded(w, "its metrics", err);
        return;
    }
    advd_notify(d, w->job,
                adv_proto_event_progress(w->job, w->progress,
                                         json_pack("{s:O, s:I, s:I}", "metrics", m->values,
                                                   "epoch", (json_int_t)m->epoch, "step",
                                                   (json_int_t)m->step)));
}

/* A checkpoint file the worker wrote: one row (and the pruning of older
 * ones), no bytes. A file the store cannot record is removed. */
static void msg_checkpoint(advd_worker *w, const adv_wcheckpoint *m)
{
    advd *d = w->d;
    char err[CORE_ERRLEN];
    adv_ckpt c = {.job = w->job, .epoch = (int)m->epoch, .step = m->step,
                  .val_robust_acc = m->val_robust_acc, .checksum = m->ckpt.crc32,
                  .size = (size_t)m->ckpt.size};
    snprintf(c.file, sizeof c.file, "%s", m->ckpt.file);
    if (adv_store_ckpt_put(d->store, &c, w->keep, &w->last_ckpt, err)) {
        adv_ckptfile_remove(adv_store_ckpt_dir(d->store), c.file, NULL);
        stop_unrecorded(w, "a checkpoint", err);
        return;
    }
    advd_log(d, "job %lld: checkpoint at epoch %d, step %lld (%zu bytes)", (long long)w->job,
             c.epoch, (long long)c.step, c.size);
}

static void msg_eval(advd_worker *w, const adv_weval *m)
{
    advd *d = w->d;
    char err[CORE_ERRLEN];
    adv_eval ev = {.job = w->job,
                   .checkpoint = w->kind == ADV_JOB_EVAL ? w->eval_ckpt : w->last_ckpt,
                   .spec = json_dumps(m->spec, ADV_JSON_FLAGS), .eps = m->eps, .n = m->n,
                   .clean_acc = m->clean_acc, .robust_acc = m->robust_acc,
                   .survival = m->survival,
                   .warnings = json_dumps(m->warnings, ADV_JSON_FLAGS)};
    if (!ev.spec || !ev.warnings || adv_store_eval_put(d->store, &ev, NULL, err))
        advd_log(d, "job %lld: cannot store an evaluation: %s", (long long)w->job,
                 ev.spec && ev.warnings ? err : "out of memory");
    free(ev.spec);
    free(ev.warnings);
}

/* Calibration, corruptions or explanations of an evaluation. */
static void msg_report(advd_worker *w, const adv_wreport *m)
{
    char err[CORE_ERRLEN];
    char *data = json_dumps(m->data, ADV_JSON_FLAGS);
    if (!data || adv_store_report_put(w->d->store, w->job, m->kind, data, err))
        advd_log(w->d, "job %lld: cannot store a report: %s", (long long)w->job,
                 data ? err : "out of memory");
    free(data);
}

/* A picture (or its index). */
static void msg_image(advd_worker *w, const adv_wimage *m)
{
    char err[CORE_ERRLEN];
    if (adv_store_image_put(w->d->store, w->job, m->name, m->data, m->len, err))
        advd_log(w->d, "job %lld: cannot store an image: %s", (long long)w->job, err);
}

/* Something the job's owner should know (a corrupt checkpoint skipped):
 * kept with the job, shown by status. */
static void msg_warning(advd_worker *w, const adv_wtext *m)
{
    char err[CORE_ERRLEN];
    advd_log(w->d, "job %lld: warning: %s", (long long)w->job, m->message);
    if (adv_store_job_warn(w->d->store, w->job, m->message, err))
        advd_log(w->d, "job %lld: %s", (long long)w->job, err);
}

static void msg_error(advd_worker *w, const adv_wtext *m)
{
    free(w->error);
    w->error = strdup(m->message);
}

static void msg_unexpected(advd_worker *w, adv_wtype t)
{
    advd_log(w->d, "job %lld: ignoring a '%s' message from the worker", (long long)w->job,
             adv_wtype_name(t));
}

static void worker_message(advd_worker *w, const char *line, size_t len)
{
    adv_wmsg m;
    adv_error e;
    if (adv_wmsg_decode(line, len, &m, &e)) {
        advd_log(w->d, "job %lld: unreadable message from the worker: %s", (long long)w->job,
                 e.msg);
        return;
    }
    switch (m.type) { /* no default: a message kind left out does not compile quietly */
    case ADV_W_PROGRESS: msg_progress(w, &m.u.progress); break;
    case ADV_W_METRICS: msg_metrics(w, &m.u.metrics); break;
    case ADV_W_CHECKPOINT: msg_checkpoint(w, &m.u.checkpoint); break;
    case ADV_W_EVAL: msg_eval(w, &m.u.eval); break;
    case ADV_W_REPORT: msg_report(w, &m.u.report); break;
    case ADV_W_IMAGE: msg_image(w, &m.u.image); break;
    case ADV_W_WARNING: msg_warning(w, &m.u.text); break;
    case ADV_W_DONE: w->done = m.u.done.succeeded ? DONE_SUCCEEDED : DONE_STOPPED; break;
    case ADV_W_ERROR: msg_error(w, &m.u.text); break;
    case ADV_W_JOB:
    case ADV_W_STOP:
    case ADV_W_COUNT: msg_unexpected(w, m.type); break;
    }
    adv_wmsg_clear(&m);
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
    worker_kill(w);
    uv_read_stop(s);
    w->out_eof = 1;
    worker_check_end(w);
}

/* The stderr line gathered so far into the daemon's log (an MPI worker's
 * begin "rank N: "; mpirun's and srun's own say which rank ended how). */
static void log_line(advd_worker *w)
{
    if (w->line_len)
        advd_log(w->d, "job %lld: worker: %.*s", (long long)w->job, (int)w->line_len, w->line);
    w->line_len = 0;
}

/* Each line the worker writes on stderr, cut to LOG_LINE_MAX, logged. */
static void log_stderr(advd_worker *w, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\n')
            log_line(w);
        else if (w->line_len < sizeof w->line - 1)
            w->line[w->line_len++] = p[i];
}

static void on_worker_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    advd_worker *w = s->data;
    if (n < 0) {
        log_line(w); /* a last line without its newline */
        uv_read_stop(s);
        w->err_eof = 1;
        worker_check_end(w);
        return;
    }
    log_stderr(w, buf->base, (size_t)n);
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

/* The worker's pidfd is readable: it has exited; reap it. */
static void on_worker_exit(uv_poll_t *h, int status, int events)
{
    advd_worker *w = h->data;
    int st;
    pid_t r;
    while ((r = waitpid(w->pid, &st, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return; /* not yet (a spurious wake-up) */
    uv_poll_stop(h);
    w->exited = 1;
    w->exit_status = r < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    w->term_signal = r > 0 && WIFSIGNALED(st) ? WTERMSIG(st) : 0;
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

/* The rank that ended first, as mpirun ("...noticed that process rank 1
 * with PID 42 on node n exited on signal 9 (Killed).") or srun ("srun:
 * error: n: task 1: Killed") said it in the stderr tail: "rank 1 exited on
 * signal 9 (Killed)" into out, or "" when neither did. */
static void failed_rank(const advd_worker *w, char *out, size_t len)
{
    char buf[TAIL_MAX + 1];
    memcpy(buf, w->tail, w->tail_len);
    buf[w->tail_len] = '\0';
    int rank;
    char rest[160];
    const char *p = strstr(buf, "process rank ");
    out[0] = '\0';
    if (p && sscanf(p, "process rank %d with PID %*d on node %*s %159[^.\n]", &rank, rest) == 2)
        snprintf(out, len, "rank %d %s", rank, rest);
    else if ((p = strstr(buf, ": task ")) && sscanf(p, ": task %d: %159[^\n]", &rank, rest) == 2)
        snprintf(out, len, "rank %d: %s", rank, rest);
}

static void describe_failure(const advd_worker *w, char *out, size_t len)
{
    char how[256], tail[420], rank[200];
    const char *who = w->launcher == ADVD_LAUNCH_LOCAL ? "worker" : "worker's launcher";
    if (w->term_signal)
        snprintf(how, sizeof how, "%s killed by signal %d (%s)", who, w->term_signal,
                 strsignal(w->term_signal));
    else
        snprintf(how, sizeof how, "%s exited with status %lld", who, (long long)w->exit_status);
    failed_rank(w, rank, sizeof rank);
    if (rank[0])
        snprintf(how + strlen(how), sizeof how - strlen(how), " (%s)", rank);
    stderr_tail(w, tail, sizeof tail);
    if (w->error)
        snprintf(out, len, "%s: %s", how, w->error);
    else if (tail[0])
        snprintf(out, len, "%s; stderr: %s", how, tail);
    else
        snprintf(out, len, "%s", how);
}

static void set_state(advd *d, int64_t job, adv_job_state s, const char *why)
{
    char err[CORE_ERRLEN];
    if (adv_store_job_set_state(d->store, job, s, why, err) == 0) {
        advd_job_event(d, job, s, why);
        return;
    }
    advd_log(d, "job %lld: %s; retrying in %d s", (long long)job, err, STORE_RETRY_MS / 1000);
    d->unrecorded = 1; /* on_kick requeues it once the store takes writes */
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
    char why[1200], err[CORE_ERRLEN];
    adv_job_state s = outcome(w, why, sizeof why);
    set_state(w->d, w->job, s, why[0] ? why : NULL);
    /* An evaluation that ended needs its progress no more (evalstate.h). */
    if (w->kind == ADV_JOB_EVAL && adv_job_state_final(s) &&
        adv_evalstate_remove(adv_store_ckpt_dir(w->d->store), w->job, w->procs, err))
        advd_log(w->d, "job %lld: %s", (long long)w->job, err);
}

static void on_worker_handle_closed(uv_handle_t *h)
{
    advd_worker *w = h->data;
    if (--w->open > 0)
        return;
    adv_linebuf_free(&w->msgs);
    if (w->pidfd >= 0)
        close(w->pidfd);
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
    uv_handle_t *hs[NHANDLES] = {(uv_handle_t *)&w->exitw, (uv_handle_t *)&w->in,
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
    w->pidfd = -1;
    w->launcher = d->opt.launcher;
    w->procs = 1;
    adv_linebuf_init(&w->msgs, ADV_WORKER_LINE_MAX);
    uv_pipe_init(&d->loop, &w->in, 0);
    uv_pipe_init(&d->loop, &w->out, 0);
    uv_pipe_init(&d->loop, &w->err, 0);
    uv_timer_init(&d->loop, &w->grace);
    w->exitw.data = w->in.data = w->out.data = w->err.data = w->grace.data = w;
    return 0;
}

/* A stored checkpoint as the worker protocol names it: its file. */
static int wckpt_of(const adv_ckpt *c, adv_wckpt *out, char *err)
{
    if (!c->file[0])
        return core_errf(err, "checkpoint %lld has no file (an old database whose checkpoints "
                              "could not be moved out at start-up)", (long long)c->id);
    snprintf(out->file, sizeof out->file, "%s", c->file);
    out->size = c->size;
    out->crc32 = c->checksum;
    out->step = c->step;
    return 0;
}

/* One of a job's checkpoints, by reference, for the worker. */
static int find_ckpt(advd *d, int64_t job, adv_ckpt_ref ref, adv_ckpt *c, adv_wckpt *out,
                     char *err)
{
    int rc = adv_store_ckpt_find(d->store, job, ref, c, err);
    return rc ? rc : wckpt_of(c, out, err);
}

static int eval_inputs(advd *d, advd_worker *w, const adv_jobspec *s, adv_wjob *m, char *err)
{
    adv_job parent;
    adv_ckpt c;
    if (adv_store_job_get(d->store, s->eval.job, &parent, err))
        return -1;
    m->parent_spec = json_loads(parent.spec, 0, NULL);
    adv_job_clear(&parent);
    int rc = find_ckpt(d, s->eval.job, s->eval.checkpoint, &c, &m->checkpoint, err);
    if (rc == ADV_STORE_NOT_FOUND)
        return core_errf(err, "job %lld has no checkpoint '%s'", (long long)s->eval.job,
                         s->eval.checkpoint.which == ADV_CKPT_BEST     ? "best"
                         : s->eval.checkpoint.which == ADV_CKPT_LATEST ? "latest"
                                                                       : "at that epoch");
    if (rc)
        return -1;
    m->has_checkpoint = 1;
    w->eval_ckpt = c.id;
    w->from_step = c.step;
    return 0;
}

/* A training job's starting weights (spec "init"), on its first start: the
 * checkpoint is resolved now, when its job has ended, and kept with the
 * job (lineage; no longer pruned). */
static int init_input(advd *d, const adv_job *j, const adv_jobspec *s, adv_wjob *m, char *err)
{
    const adv_init_ref *r = &s->train.init;
    adv_ckpt c;
    if (!r->job)
        return 0;
    int rc = find_ckpt(d, r->job, r->ckpt, &c, &m->init, err);
    if (rc == 0)
        rc = adv_store_job_lineage(d->store, j->id, c.id, c.checksum, err);
    if (rc == ADV_STORE_NOT_FOUND) {
        char why[CORE_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        return core_errf(err, "invalid 'init': %s", why);
    }
    m->has_init = rc == 0;
    return rc ? -1 : 0;
}

/* A retry or a restart resumes from the job's newest checkpoints, newest
 * first: the worker takes the first whose file passes its check. */
static int resume_inputs(advd *d, advd_worker *w, const adv_job *j, adv_wjob *m, char *err)
{
    adv_ckpt *list;
    int n;
    if (adv_store_ckpt_list(d->store, j->id, &list, &n, err))
        return -1;
    int rc = 0;
    for (int i = n - 1; i >= 0 && m->nresume < ADV_WORKER_RESUME_MAX && rc == 0; i--)
        rc = wckpt_of(&list[i], &m->resume[m->nresume++], err);
    if (n) {
        w->last_ckpt = list[n - 1].id;
        w->from_step = list[n - 1].step;
    }
    adv_ckpts_free(list, n);
    return rc;
}

/* The first line for the worker: the job and what it starts from. */
static char *job_message(advd *d, advd_worker *w, const adv_job *j, size_t *len, char *err)
{
    adv_error e;
    adv_jobspec *s = malloc(sizeof *s);
    adv_wmsg m = {.type = ADV_W_JOB,
                  .u.job = {.job = j->id, .attempt = j->attempts, .threads = d->opt.threads,
                            .final_eval_limit = d->opt.final_eval_limit,
                            .ckpt_dir = (char *)adv_store_ckpt_dir(d->store),
                            .spec = json_loads(j->spec, 0, NULL)}};
    adv_wjob *wj = &m.u.job;
    char *line = NULL;
    int rc = -1;
    if (!s || !wj->spec)
        core_errf(err, "out of memory");
    else if (adv_jobspec_decode_text(j->spec, strlen(j->spec), s, &e))
        core_errf(err, "%s", e.msg);
    else if (s->kind == ADV_JOB_TRAIN)
        rc = resume_inputs(d, w, j, wj, err) || (!wj->nresume && init_input(d, j, s, wj, err));
    else
        rc = eval_inputs(d, w, s, wj, err);
    if (rc == 0) {
        w->keep = s->train.keep_checkpoints;
        w->procs = s->procs;
    }
    if (rc == 0 && !(line = adv_wmsg_encode(&m, len)))
        core_errf(err, "out of memory");
    json_decref(wj->spec);
    json_decref(wj->parent_spec);
    free(s);
    return line;
}

/* The worker's three pipes: child ends at [0] (its stdin, stdout,
 * stderr), the daemon's at [1]; all close-on-exec until dup'd into place. */
static int worker_pipes(int fds[3][2], char *err)
{
    for (int i = 0; i < 3; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC))
            return core_errf(err, "cannot create a worker's pipes: %s", strerror(errno));
        fds[i][0] = i == 0 ? p[0] : p[1];
        fds[i][1] = i == 0 ? p[1] : p[0];
    }
    return 0;
}

static void close_fds(int fds[3][2], int side)
{
    for (int i = 0; i < 3; i++)
        if (fds[i][side] >= 0)
            close(fds[i][side]), fds[i][side] = -1;
}

/* posix_spawn, not fork: glibc starts the child with CLONE_VM | CLONE_VFORK,
 * so the daemon's page tables are neither copied nor made copy-on-write.
 * uv_spawn's fork cost the event loop 4-8 ms per worker on this virtual
 * machine (the copy, then a fault for each page the daemon wrote next),
 * which a burst of short jobs turned into stalls for every client. */
advd_launch_cfg advd_launch_of(const advd *d)
{
    const advd_options *o = &d->opt;
    return (advd_launch_cfg){.launcher = o->launcher, .exe = d->exe, .worker_mpi = o->worker_mpi,
                             .mpirun_args = o->mpirun_args, .salloc_args = o->salloc_args,
                             .srun_args = o->srun_args};
}

static int spawn_process(advd *d, advd_worker *w, int fds[3][2], char *err)
{
    advd_launch_cfg lc = advd_launch_of(d);
    char buf[8192], *args[ADVD_LAUNCH_ARGV_MAX + 1];
    lc.launcher = w->launcher;
    if (advd_launch_argv(&lc, w->job, w->procs, buf, sizeof buf, args, err) < 0)
        return -1;
    if (w->launcher != ADVD_LAUNCH_LOCAL) {
        char line[2048];
        advd_launch_line(args, line, sizeof line);
        advd_log(d, "job %lld: %d processes: %s", (long long)w->job, w->procs, line);
    }
    extern char **environ;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i][0], i);
    /* The daemon's signal handlers and mask are not the worker's. */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    /* mpirun and salloc are looked up on PATH. */
    int rc = posix_spawnp(&w->pid, args[0], &fa, &at, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return rc ? core_errf(err, "cannot start a worker ('%s'): %s", args[0], strerror(rc)) : 0;
}

/* The daemon's ends as libuv pipes, and the pidfd watched for the exit. */
static int watch_worker(advd *d, advd_worker *w, int fds[3][2], char *err)
{
    uv_pipe_t *ends[3] = {&w->in, &w->out, &w->err};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if ((rc = uv_pipe_open(ends[i], fds[i][1])) == 0)
            fds[i][1] = -1; /* the handle owns it now */
    if (rc)
        return core_errf(err, "cannot watch a worker's pipes: %s", uv_strerror(rc));
    w->pidfd = (int)syscall(SYS_pidfd_open, w->pid, 0);
    if (w->pidfd < 0)
        return core_errf(err, "cannot watch a worker's exit (pidfd_open): %s", strerror(errno));
    if ((rc = uv_poll_init(&d->loop, &w->exitw, w->pidfd)))
        return core_errf(err, "cannot watch a worker's exit: %s", uv_strerror(rc));
    w->spawned = 1;
    w->exitw.data = w;
    if ((rc = uv_poll_start(&w->exitw, UV_READABLE, on_worker_exit)) ||
        (rc = uv_read_start((uv_stream_t *)&w->out, on_worker_alloc, on_worker_out)) ||
        (rc = uv_read_start((uv_stream_t *)&w->err, on_worker_alloc, on_worker_err)))
        return core_errf(err, "cannot read from a worker: %s", uv_strerror(rc));
    return 0;
}

static int spawn(advd *d, advd_worker *w, char *err)
{
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int rc = worker_pipes(fds, err) || spawn_process(d, w, fds, err);
    close_fds(fds, 0); /* the child's ends are the child's */
    if (rc == 0 && watch_worker(d, w, fds, err)) {
        kill(w->pid, SIGKILL);
        if (!w->spawned) /* nothing will reap it */
            waitpid(w->pid, NULL, 0);
        rc = -1;
    }
    close_fds(fds, 1);
    return rc ? -1 : 0;
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
    size_t len;
    char *line = job_message(d, w, j, &len, err);
    if (!line || spawn(d, w, err)) {
        free(line);
        set_state(d, j->id, ADV_STATE_FAILED, err);
        w->finished = 1;
        worker_close(w);
        return -1;
    }
    worker_send_line(w, line, len);
    if (w->kind == ADV_JOB_TRAIN && w->from_step >= 0)
        advd_log(d, "job %lld running (attempt %d, pid %d, resuming from step %lld or the "
                    "newest checkpoint before it that passes its check)",
                 (long long)j->id, j->attempts, (int)w->pid, (long long)w->from_step);
    else
        advd_log(d, "job %lld running (attempt %d, pid %d)", (long long)j->id, j->attempts,
                 (int)w->pid);
    advd_notify(d, j->id, adv_proto_event_state(j->id, ADV_STATE_RUNNING, NULL));
    return 0;
}

/* ------------------------------------------------------------ stopping */

static void on_grace_over(uv_timer_t *t)
{
    advd_worker *w = t->data;
    advd_log(w->d, "job %lld: the worker did not stop within the grace period; killing it",
             (long long)w->job);
    worker_kill(w);
}

static void request_stop(advd_worker *w, int why)
{
    if (w->stop == STOP_NONE || why == STOP_CANCEL)
        w->stop = why;
    if (uv_is_active((uv_handle_t *)&w->grace))
        return;
    worker_send(w, &(adv_wmsg){.type = ADV_W_STOP});
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
        worker_kill(w);
}
