/*
 * test_daemon.c - integration tests of bin/advd: each test starts the real
 * daemon (ADV_BIN, set by `make check` to this build's binary) on a socket
 * and database in a fresh temporary directory and talks to it over the
 * socket with proto's framing and messages.
 *
 * Jobs are tiny (a 4-channel convolution on a few hundred Fashion-MNIST
 * images, one thread) so the whole file runs in well under a minute on two
 * cores. Long-enough jobs for cancel, restart and kill tests are many short
 * epochs with a checkpoint each; the tests act once a checkpoint exists.
 *
 * The daemon is started with PR_SET_PDEATHSIG, so a failing test (a forked
 * Check child) never leaves a daemon behind; its workers follow it.
 */
#define _GNU_SOURCE
#include "daemon/store.h"
#include "proto/proto.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "core/state.h"

#define TINY_MODEL "conv4k3p1 relu maxpool2 fc10"
/* One epoch, about a quarter of a second of work. */
#define TINY_JOB                                                                              \
    "{\"kind\":\"train\",\"name\":\"tiny\",\"model\":\"" TINY_MODEL "\",\"epochs\":1,"        \
    "\"train_limit\":256,\"val_size\":64,\"val_robust_size\":32,\"batch\":64,\"steps\":2,"    \
    "\"seed\":7}"
/* Many short epochs (tens of milliseconds each), a checkpoint after each;
 * restart tests stop the daemon after two, long before the end. */
#define RESTART_EPOCHS 40
#define STR(x) #x
#define XSTR(x) STR(x)
#define LONG_JOB(epochs)                                                                      \
    "{\"kind\":\"train\",\"name\":\"long\",\"model\":\"" TINY_MODEL "\",\"epochs\":" XSTR(epochs) \
    ",\"train_limit\":256,\"val_size\":0,\"val_robust_size\":0,\"batch\":64,\"steps\":3,"     \
    "\"seed\":3,\"keep_checkpoints\":2}"

#include "daemon_harness.h"

/* ------------------------------------------------------------ the client */

typedef struct {
    int fd;
    adv_linebuf lb;
    int next_id;
} client;

static int cl_fill(client *c, int timeout_ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    char buf[65536];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0)
        return 0;
    adv_error e;
    ck_assert_int_eq(adv_linebuf_feed(&c->lb, buf, (size_t)n, &e), 0);
    return 1;
}

/* The next line from the server, parsed; NULL at EOF or after timeout_ms. */
static json_t *cl_next(client *c, int timeout_ms)
{
    const char *line;
    size_t len;
    adv_error e;
    double t0 = now_s();
    for (;;) {
        int r = adv_linebuf_next(&c->lb, &line, &len, &e);
        ck_assert_int_ge(r, 0);
        if (r == 1) {
            json_t *v = json_loadb(line, len, 0, NULL);
            ck_assert_msg(v != NULL, "unparsable line from advd: %.200s", line);
            return v;
        }
        int left = timeout_ms - (int)((now_s() - t0) * 1000);
        if (left <= 0 || cl_fill(c, left) <= 0)
            return NULL;
    }
}

static client *cl_open(void)
{
    client *c = calloc(1, sizeof *c);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, D.sock);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    adv_linebuf_init(&c->lb, 64 << 20);
    json_t *g = cl_next(c, 5000);
    ck_assert_ptr_nonnull(g);
    char version[32];
    adv_error e;
    ck_assert_int_eq(adv_proto_greeting_check(g, version, sizeof version, &e), 0);
    ck_assert_str_eq(version, ADV_VERSION);
    json_decref(g);
    return c;
}

static void cl_close(client *c)
{
    close(c->fd);
    adv_linebuf_free(&c->lb);
    free(c);
}

static void cl_send(client *c, const char *text)
{
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(c->fd, text + done, n - done);
        ck_assert_int_gt(w, 0);
        done += (size_t)w;
    }
}

/* Send {"id": N, "cmd": cmd, args...} and return the response with that id
 * (events before it are dropped). */
static json_t *cl_call(client *c, const char *cmd, const char *args)
{
    char buf[8192];
    int id = ++c->next_id;
    snprintf(buf, sizeof buf, "{\"id\":%d,\"cmd\":\"%s\"%s%s}\n", id, cmd, args ? "," : "",
             args ? args : "");
    cl_send(c, buf);
    for (;;) {
        json_t *r = cl_next(c, 20000);
        ck_assert_msg(r != NULL, "no answer to '%s'", cmd);
        if (json_integer_value(json_object_get(r, "id")) == id)
            return r;
        json_decref(r);
    }
}

static json_t *result_of(json_t *r)
{
    ck_assert_msg(json_is_true(json_object_get(r, "ok")), "request failed: %s",
                  json_string_value(json_object_get(json_object_get(r, "error"), "message")));
    return json_object_get(r, "result");
}

static void expect_error(json_t *r, const char *code, const char *in_message)
{
    const json_t *e = json_object_get(r, "error");
    ck_assert(json_is_false(json_object_get(r, "ok")));
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    const char *msg = json_string_value(json_object_get(e, "message"));
    ck_assert_msg(msg && strstr(msg, in_message), "message '%s' lacks '%s'", msg, in_message);
    json_decref(r);
}

static int64_t submit(client *c, const char *spec)
{
    char args[4096];
    snprintf(args, sizeof args, "\"spec\":%s", spec);
    json_t *r = cl_call(c, "submit", args);
    int64_t id = json_integer_value(json_object_get(result_of(r), "job"));
    ck_assert_int_gt(id, 0);
    json_decref(r);
    return id;
}

static json_t *call_job(client *c, const char *cmd, int64_t job)
{
    char args[64];
    snprintf(args, sizeof args, "\"job\":%lld", (long long)job);
    return cl_call(c, cmd, args);
}

/* Watch job on a connection of its own until its final state event; returns
 * that event. Also counts the progress events seen. */
static json_t *watch_to_end(int64_t job, int timeout_s, int *progress_events)
{
    client *c = cl_open();
    json_t *r = call_job(c, "watch", job);
    result_of(r);
    json_decref(r);
    double t0 = now_s();
    for (;;) {
        json_t *ev = cl_next(c, 1000);
        ck_assert_msg(now_s() - t0 < timeout_s, "job %lld did not end within %d s",
                      (long long)job, timeout_s);
        if (!ev)
            continue;
        const char *kind = json_string_value(json_object_get(ev, "event"));
        adv_job_state st;
        if (kind && !strcmp(kind, "progress") && progress_events)
            ++*progress_events;
        if (kind && !strcmp(kind, "state") &&
            adv_job_state_parse(json_string_value(json_object_get(ev, "state")), &st) == 0 &&
            adv_job_state_final(st)) {
            cl_close(c);
            return ev;
        }
        json_decref(ev);
    }
}

static const char *state_str(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "state"));
}

static json_t *status(client *c, int64_t job)
{
    return call_job(c, "status", job);
}

static int count_array(client *c, const char *cmd, int64_t job, const char *key)
{
    json_t *r = call_job(c, cmd, job);
    int n = (int)json_array_size(json_object_get(result_of(r), key));
    json_decref(r);
    return n;
}

/* The points of one metric of a job (a new reference to the array). */
static json_t *metric(client *c, int64_t job, const char *key)
{
    char args[128];
    snprintf(args, sizeof args, "\"job\":%lld,\"key\":\"%s\"", (long long)job, key);
    json_t *r = cl_call(c, "metrics", args);
    json_t *m = json_incref(json_object_get(result_of(r), "metrics"));
    json_decref(r);
    return m;
}

static size_t metric_count(client *c, int64_t job, const char *key)
{
    json_t *m = metric(c, job, key);
    size_t n = json_array_size(m);
    json_decref(m);
    return n;
}

/* Wait until the job has at least n checkpoints (the job must be running). */
static void wait_checkpoints(client *c, int64_t job, int n)
{
    double t0 = now_s();
    for (;;) {
        json_t *r = call_job(c, "checkpoints", job);
        json_t *a = json_object_get(result_of(r), "checkpoints");
        json_t *last = json_array_get(a, json_array_size(a) - 1);
        int have = last ? (int)json_integer_value(json_object_get(last, "epoch")) : 0;
        json_decref(r);
        if (have >= n)
            return;
        ck_assert_msg(now_s() - t0 < 20, "job %lld has no checkpoint at epoch %d", (long long)job,
                      n);
        usleep(20000);
    }
}

static const char *job_field_str(client *c, int64_t job, const char *key, char *out, size_t len)
{
    json_t *r = status(c, job);
    const char *s = json_string_value(json_object_get(result_of(r), key));
    snprintf(out, len, "%s", s ? s : "");
    json_decref(r);
    return out;
}

static int job_field_int(client *c, int64_t job, const char *key)
{
    json_t *r = status(c, job);
    int v = (int)json_integer_value(json_object_get(result_of(r), key));
    json_decref(r);
    return v;
}

/* The latest checkpoint of a job, base64 (malloc'ed). */
static char *export_latest(client *c, int64_t job)
{
    json_t *r = call_job(c, "export", job);
    char *data = strdup(json_string_value(json_object_get(result_of(r), "data")));
    json_decref(r);
    return data;
}

/* Alive and not a zombie. */
static int process_alive(pid_t pid)
{
    char stat[256];
    if (!harness_proc_file(pid, "stat", stat, sizeof stat))
        return 0;
    const char *paren = strrchr(stat, ')');
    return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static pid_t worker_pid(int64_t job, int attempt);

/* A checkpoint of job id in format, pulled in pieces of at most piece bytes
 * (0: the daemon's largest) until eof; checks the pieces add up. */
static uint8_t *pull_export(client *c, int64_t id, const char *format, size_t piece, size_t *n)
{
    uint8_t *all = NULL;
    size_t have = 0;
    for (int eof = 0; !eof;) {
        char args[200];
        int k = snprintf(args, sizeof args, "\"job\":%lld,\"format\":\"%s\",\"offset\":%zu",
                         (long long)id, format, have);
        if (piece)
            snprintf(args + k, sizeof args - (size_t)k, ",\"length\":%zu", piece);
        json_t *r = cl_call(c, "export", args), *res = result_of(r);
        const char *data = json_string_value(json_object_get(res, "data"));
        size_t size = (size_t)json_integer_value(json_object_get(res, "size")), len;
        uint8_t *bytes;
        adv_error e;
        ck_assert_ptr_nonnull(data);
        ck_assert_int_eq(adv_base64_decode(data, strlen(data), &bytes, &len, &e), 0);
        ck_assert(len <= (piece ? piece : ADV_CHUNK_MAX));
        all = realloc(all, have + len + 1);
        memcpy(all + have, bytes, len);
        have += len;
        free(bytes);
        eof = json_is_true(json_object_get(res, "eof"));
        ck_assert(!eof || have == size);
        json_decref(r);
    }
    *n = have;
    return all;
}

/* --------------------------------------------------------------- tests */

START_TEST(test_ping_version)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    json_t *r = cl_call(c, "ping", NULL);
    ck_assert(json_is_true(json_object_get(result_of(r), "pong")));
    json_decref(r);
    r = cl_call(c, "version", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(result_of(r), "version")), ADV_VERSION);
    ck_assert_int_eq(json_integer_value(json_object_get(result_of(r), "protocol")), ADV_PROTOCOL);
    json_decref(r);
    /* String ids are echoed. */
    cl_send(c, "{\"id\":\"abc\",\"cmd\":\"ping\"}\n");
    r = cl_next(c, 5000);
    ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "abc");
    json_decref(r);
    /* The socket is ours alone. */
    struct stat st;
    ck_assert_int_eq(stat(D.sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    cl_close(c);
    ck_assert_int_eq(stop_daemon(SIGTERM), 0);
    ck_assert_int_ne(access(D.sock, F_OK), 0);
}
END_TEST

START_TEST(test_bad_requests)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    /* Malformed JSON: bad_request, and the connection stays usable. */
    cl_send(c, "{\"id\":1,\"cmd\":\"ping\"\n");
    expect_error(cl_next(c, 5000), "bad_request", "malformed JSON");
    cl_send(c, "\x01\x02\xff garbage\n[1,2]\n");
    expect_error(cl_next(c, 5000), "bad_request", "malformed JSON");
    expect_error(cl_next(c, 5000), "bad_request", "expected a JSON object");
    expect_error(cl_call(c, "pong", NULL), "bad_request", "did you mean 'ping'");
    /* Unknown jobs. */
    expect_error(call_job(c, "status", 999), "not_found", "no job 999");
    expect_error(call_job(c, "cancel", 999), "not_found", "no job 999");
    expect_error(call_job(c, "watch", 999), "not_found", "no job 999");
    expect_error(call_job(c, "export", 999), "not_found", "no job 999");
    /* Invalid specs name the field. */
    expect_error(cl_call(c, "submit", "\"spec\":{\"kind\":\"train\",\"epochs\":0}"),
                 "invalid_argument", "'epochs'");
    expect_error(cl_call(c, "submit", "\"spec\":{\"kind\":\"train\",\"epoch\":2}"),
                 "invalid_argument", "unknown key 'epoch'");
    expect_error(cl_call(c, "submit", "\"spec\":{\"kind\":\"train\",\"model\":\"conv0k3 fc10\"}"),
                 "invalid_argument", "'model'");
    expect_error(cl_call(c, "submit", "\"spec\":{\"kind\":\"eval\",\"job\":42}"), "not_found",
                 "invalid 'job': no job 42");
    expect_error(cl_call(c, "status", "\"job\":\"x\""), "invalid_argument", "'job'");
    json_t *r = cl_call(c, "list", NULL);
    ck_assert_int_eq(json_array_size(json_object_get(result_of(r), "jobs")), 0);
    json_decref(r);
    /* An oversized line: too_large, then the connection is closed. */
    size_t big = ADV_PROTO_MAX_LINE + 100;
    char *line = malloc(big + 2);
    memset(line, 'x', big);
    strcpy(line + big, "\n");
    /* The daemon may close before reading it all: ignore EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    for (size_t done = 0; done < big + 1;) {
        ssize_t w = write(c->fd, line + done, big + 1 - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    free(line);
    expect_error(cl_next(c, 5000), "too_large", "line longer than");
    ck_assert_ptr_null(cl_next(c, 5000));
    cl_close(c);
    /* Others are still served. */
    c = cl_open();
    r = cl_call(c, "ping", NULL);
    result_of(r);
    json_decref(r);
    cl_close(c);
}
END_TEST

START_TEST(test_train_watch_eval)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    int64_t id = submit(c, TINY_JOB);
    int progress = 0;
    json_t *ev = watch_to_end(id, 30, &progress);
    ck_assert_msg(!strcmp(state_str(ev), "succeeded"), "job ended %s: %s", state_str(ev),
                  json_string_value(json_object_get(ev, "error")));
    json_decref(ev);
    ck_assert_int_gt(progress, 0);
    /* Status, metrics, checkpoints, the final evaluation. */
    json_t *r = status(c, id);
    json_t *job = result_of(r);
    ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "succeeded");
    ck_assert(json_real_value(json_object_get(job, "progress")) == 1.0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "spec"), "model")),
                     TINY_MODEL);
    json_decref(r);
    ck_assert_int_eq(metric_count(c, id, "train_loss"), 1);
    ck_assert_int_eq(metric_count(c, id, "test_pgd20_acc"), 1);
    ck_assert_int_ge(count_array(c, "checkpoints", id, "checkpoints"), 1);
    r = call_job(c, "results", id);
    json_t *res = json_array_get(json_object_get(result_of(r), "results"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "n")), 100);
    ck_assert(json_is_number(json_object_get(res, "robust_acc")));
    json_decref(r);
    /* Export in pieces: the bytes of a valid checkpoint, pulled 1000 bytes
     * at a time, and as safetensors; the daemon writes no file. */
    size_t n;
    uint8_t *bytes = pull_export(c, id, "state", 1000, &n);
    core_state_info info;
    char err[CORE_ERRLEN];
    ck_assert_msg(core_state_inspect(bytes, n, &info, err) == 0, "%s", err);
    ck_assert_int_eq(info.epoch, 1);
    free(bytes);
    size_t ns;
    bytes = pull_export(c, id, "safetensors", 0, &ns);
    uint64_t hlen = 0;
    memcpy(&hlen, bytes, 8);
    json_t *h = json_loadb((const char *)bytes + 8, hlen, 0, NULL);
    ck_assert_ptr_nonnull(h);
    const json_t *w = json_object_get(h, "0.weight");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(w, "shape"), 0)), 4);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "__metadata__"),
                                                       "model_spec")), TINY_MODEL);
    json_decref(h);
    free(bytes);
    char args[200];
    snprintf(args, sizeof args, "\"job\":%lld,\"offset\":%zu", (long long)id, n + 1);
    expect_error(cl_call(c, "export", args), "invalid_argument", "beyond the end");
    /* An evaluation job on it: robust accuracy at two eps, sanity warnings. */
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"kind\":\"eval\",\"job\":%lld,\"eps\":[0.05,0.1],\"limit\":64,\"steps\":5,"
             "\"sanity\":true,\"seed\":1}", (long long)id);
    int64_t eid = submit(c, spec);
    ev = watch_to_end(eid, 60, NULL);
    ck_assert_msg(!strcmp(state_str(ev), "succeeded"), "eval ended %s: %s", state_str(ev),
                  json_string_value(json_object_get(ev, "error")));
    json_decref(ev);
    r = call_job(c, "results", eid);
    json_t *rows = json_object_get(result_of(r), "results");
    int found = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i);
        if (json_integer_value(json_object_get(row, "job")) != eid)
            continue;
        found++;
        double acc = json_number_value(json_object_get(row, "robust_acc"));
        ck_assert(acc >= 0 && acc <= 1);
        ck_assert_int_eq(json_integer_value(json_object_get(row, "n")), 64);
        ck_assert(json_is_array(json_object_get(row, "warnings")));
        ck_assert(json_is_string(json_object_get(row, "survival")));
    }
    ck_assert_int_eq(found, 2);
    /* The indicators of attack failure: PGD's, at each eps, on a sample. */
    const json_t *reps = json_object_get(result_of(r), "reports"), *rep;
    const json_t *points = NULL;
    size_t k;
    json_array_foreach(reps, k, rep)
        if (!strcmp(json_string_value(json_object_get(rep, "kind")), "indicators"))
            points = json_object_get(json_object_get(rep, "data"), "points");
    ck_assert_int_eq(json_array_size(points), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(points, 0), "attack")),
                     "pgd");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(points, 1), "n")), 64);
    json_decref(r);
    /* The training job's results include its evaluations. */
    ck_assert_int_eq(count_array(c, "results", id, "results"), 3);
    /* What only the worker can check fails the job with its message. */
    snprintf(spec, sizeof spec,
             "{\"kind\":\"eval\",\"job\":%lld,\"attack\":\"apgd-t\",\"targets\":12,"
             "\"limit\":10}", (long long)id);
    ev = watch_to_end(submit(c, spec), 30, NULL);
    ck_assert_str_eq(state_str(ev), "failed");
    const char *why = json_string_value(json_object_get(ev, "error"));
    ck_assert_msg(why && strstr(why, "worker exited with status 1: invalid 'targets'"), "%s", why);
    json_decref(ev);
    cl_close(c);
    ck_assert_int_eq(stop_daemon(SIGTERM), 0);
}
END_TEST

static void expect_succeeded(int64_t job)
{
    json_t *ev = watch_to_end(job, 120, NULL);
    ck_assert_msg(!strcmp(state_str(ev), "succeeded"), "job %lld ended %s: %s", (long long)job,
                  state_str(ev), json_string_value(json_object_get(ev, "error")));
    json_decref(ev);
}

/* A fine-tune from another job: its lineage in status and in the exported
 * metadata; the parent's checkpoint it started from outlives pruning. A
 * corruption family seen in training is held out of the score. */
START_TEST(test_init_and_heldout)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    int64_t parent = submit(c, LONG_JOB(3));
    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"kind\":\"train\",\"model\":\"" TINY_MODEL "\",\"epochs\":1,"
             "\"train_limit\":256,\"val_size\":64,\"val_robust_size\":32,\"batch\":64,"
             "\"steps\":2,\"init\":{\"job\":%lld,\"checkpoint\":2},\"train_layers\":\"last\","
             "\"augment_corruptions\":\"contrast\",\"augment_prob\":1}", (long long)parent);
    int64_t child = submit(c, spec); /* it waits for its parent to end */
    expect_succeeded(parent);
    expect_succeeded(child);
    json_t *r = call_job(c, "status", child);
    const json_t *init = json_object_get(result_of(r), "init");
    ck_assert_int_eq(json_integer_value(json_object_get(init, "job")), parent);
    ck_assert(json_is_integer(json_object_get(init, "checkpoint")));
    int64_t ck = json_integer_value(json_object_get(init, "checkpoint"));
    json_decref(r);
    size_t n;
    uint8_t *st = pull_export(c, child, "safetensors", 0, &n);
    uint64_t hlen;
    memcpy(&hlen, st, 8);
    json_t *h = json_loadb((const char *)st + 8, hlen, 0, NULL);
    json_t *md = json_object_get(h, "__metadata__");
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)ck);
    ck_assert_str_eq(json_string_value(json_object_get(md, "init_checkpoint")), want);
    json_decref(h);
    free(st);
    /* Evaluate with corruptions: contrast is marked and held out. */
    snprintf(spec, sizeof spec, "{\"kind\":\"eval\",\"job\":%lld,\"limit\":32,\"steps\":2,"
                                "\"corruptions\":true,\"calibration\":false}", (long long)child);
    int64_t ev = submit(c, spec);
    expect_succeeded(ev);
    r = call_job(c, "results", ev);
    const json_t *reports = json_object_get(result_of(r), "reports"), *rep, *fam;
    size_t i, f;
    int checked = 0;
    json_array_foreach(reports, i, rep) {
        if (strcmp(json_string_value(json_object_get(rep, "kind")), "corruptions"))
            continue;
        const json_t *d = json_object_get(rep, "data");
        ck_assert_int_eq(json_integer_value(json_object_get(d, "held_out")), 8);
        double held = 0.0;
        json_array_foreach(json_object_get(d, "corruptions"), f, fam) {
            int seen = json_is_true(json_object_get(fam, "seen_in_training"));
            ck_assert_int_eq(seen, !strcmp(json_string_value(json_object_get(fam, "name")),
                                           "contrast"));
            size_t s;
            json_t *a;
            json_array_foreach(json_object_get(fam, "accuracy"), s, a) held +=
                seen ? 0.0 : json_number_value(a);
        }
        ck_assert_double_eq_tol(json_number_value(json_object_get(d, "mean_accuracy")),
                                held / 40.0, 1e-9);
        checked++;
    }
    ck_assert_int_eq(checked, 1);
    json_decref(r);
    cl_close(c);
}
END_TEST

START_TEST(test_cancel)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    int64_t a = submit(c, LONG_JOB(200));
    int64_t b = submit(c, TINY_JOB);
    /* b waits for the only worker: cancelled at once. */
    json_t *r = call_job(c, "cancel", b);
    ck_assert_str_eq(json_string_value(json_object_get(result_of(r), "state")), "cancelled");
    json_decref(r);
    expect_error(call_job(c, "cancel", b), "conflict", "already cancelled");
    /* a runs: status answers at once, */
    wait_checkpoints(c, a, 1);
    double t0 = now_s();
    json_decref(status(c, a));
    ck_assert_msg(now_s() - t0 < 0.2, "status took %.3f s while training", now_s() - t0);
    /* then, asked to stop, it ends cancelled with its checkpoints. */
    r = call_job(c, "cancel", a);
    ck_assert(json_is_true(json_object_get(result_of(r), "cancelling")));
    json_decref(r);
    json_t *ev = watch_to_end(a, 20, NULL);
    ck_assert_str_eq(state_str(ev), "cancelled");
    json_decref(ev);
    ck_assert_int_ge(count_array(c, "checkpoints", a, "checkpoints"), 1);
    char buf[256];
    ck_assert_str_eq(job_field_str(c, a, "state", buf, sizeof buf), "cancelled");
    cl_close(c);
}
END_TEST

START_TEST(test_sigterm_restart)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    int64_t id = submit(c, LONG_JOB(RESTART_EPOCHS));
    wait_checkpoints(c, id, 2);
    cl_close(c);
    ck_assert_int_eq(stop_daemon(SIGTERM), 0);
    ck_assert_int_ne(access(D.sock, F_OK), 0);
    /* Requeued in the database, with a checkpoint. */
    adv_store *st;
    adv_job j;
    char err[CORE_ERRLEN];
    ck_assert_msg(adv_store_open(D.db, 1000, &st, err) == 0, "%s", err);
    ck_assert_int_eq(adv_store_job_get(st, id, &j, err), 0);
    ck_assert_int_eq(j.state, ADV_STATE_QUEUED);
    adv_job_clear(&j);
    adv_store_close(st);
    start_daemon_with(NULL);
    json_t *ev = watch_to_end(id, 90, NULL);
    ck_assert_str_eq(state_str(ev), "succeeded");
    json_decref(ev);
    c = cl_open();
    ck_assert_int_eq(job_field_int(c, id, "attempts"), 2);
    ck_assert_int_eq(metric_count(c, id, "train_loss"), RESTART_EPOCHS);
    ck_assert_ptr_nonnull(strstr(read_log(), "resuming from step"));
    /* The same spec run without a stop ends with the same bytes. */
    int64_t again = submit(c, LONG_JOB(RESTART_EPOCHS));
    ev = watch_to_end(again, 90, NULL);
    ck_assert_str_eq(state_str(ev), "succeeded");
    json_decref(ev);
    char *resumed = export_latest(c, id), *straight = export_latest(c, again);
    ck_assert_msg(strcmp(resumed, straight) == 0, "a resumed job ends with other weights");
    free(resumed);
    free(straight);
    cl_close(c);
}
END_TEST

START_TEST(test_kill9_daemon)
{
    start_daemon_with(NULL);
    client *c = cl_open();
    int64_t id = submit(c, LONG_JOB(RESTART_EPOCHS));
    wait_checkpoints(c, id, 2);
    cl_close(c);
    pid_t worker = worker_pid(id, 1);
    stop_daemon(SIGKILL);
    /* Its worker follows it (PR_SET_PDEATHSIG). */
    double t0 = now_s();
    while (process_alive(worker)) {
        ck_assert_msg(now_s() - t0 < 5, "worker %d outlived its daemon", (int)worker);
        usleep(10000);
    }
    /* The stale socket is replaced; the job resumes from its checkpoint. */
    ck_assert_int_eq(access(D.sock, F_OK), 0);
    start_daemon_with(NULL);
    json_t *ev = watch_to_end(id, 90, NULL);
    ck_assert_str_eq(state_str(ev), "succeeded");
    json_decref(ev);
    const char *log = read_log();
    ck_assert_ptr_nonnull(strstr(log, "replacing stale socket"));
    ck_assert_ptr_nonnull(strstr(log, "requeued 1 job"));
    ck_assert_ptr_nonnull(strstr(log, "resuming from step"));
    c = cl_open();
    json_t *m = metric(c, id, "train_loss");
    ck_assert_int_eq(json_array_size(m), RESTART_EPOCHS);
    for (size_t i = 0; i < json_array_size(m); i++)
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(m, i), "epoch")),
                         (json_int_t)i);
    json_decref(m);
    /* Same seed, one thread: the weights of an uninterrupted run. */
    int64_t again = submit(c, LONG_JOB(RESTART_EPOCHS));
    ev = watch_to_end(again, 90, NULL);
    ck_assert_str_eq(state_str(ev), "succeeded");
    json_decref(ev);
    char *resumed = export_latest(c, id), *straight = export_latest(c, again);
    ck_assert_msg(strcmp(resumed, straight) == 0, "a resumed job ends with other weights");
    free(resumed);
    free(straight);
    cl_close(c);
}
END_TEST

/* The pid in the log's last "job N running (attempt A, pid P" line. */
static pid_t worker_pid(int64_t job, int attempt)
{
    double t0 = now_s();
    char needle[64];
    snprintf(needle, sizeof needle, "job %lld running (attempt %d, pid ", (long long)job, attempt);
    for (;;) {
        const char *p = strstr(read_log(), needle);
        if (p)
            return (pid_t)atoi(p + strlen(needle));
        ck_assert_msg(now_s() - t0 < 20, "no worker for job %lld attempt %d", (long long)job,
                      attempt);
        usleep(20000);
    }
}

START_TEST(test_kill9_worker)
{
    const char *retry[] = {"--retries", "1", NULL};
    start_daemon_with(retry);
    client *c = cl_open();
    int64_t id = submit(c, LONG_JOB(200));
    wait_checkpoints(c, id, 1);
    /* First kill: retried (attempt 2 resumes), second kill: failed. */
    ck_assert_int_eq(kill(worker_pid(id, 1), SIGKILL), 0);
    pid_t second = worker_pid(id, 2);
    ck_assert_int_eq(kill(second, SIGKILL), 0);
    json_t *ev = watch_to_end(id, 20, NULL);
    ck_assert_str_eq(state_str(ev), "failed");
    const char *why = json_string_value(json_object_get(ev, "error"));
    ck_assert_msg(why && strstr(why, "killed by signal 9"), "error: %s", why);
    json_decref(ev);
    ck_assert_ptr_nonnull(strstr(read_log(), "attempt 1 failed (worker killed by signal 9"));
    /* The daemon carries on. */
    json_t *r = cl_call(c, "ping", NULL);
    result_of(r);
    json_decref(r);
    int64_t next = submit(c, TINY_JOB);
    ev = watch_to_end(next, 30, NULL);
    ck_assert_str_eq(state_str(ev), "succeeded");
    json_decref(ev);
    cl_close(c);
}
END_TEST

START_TEST(test_single_instance)
{
    start_daemon_with(NULL);
    char log2[400], sock2[400], db2[400];
    snprintf(log2, sizeof log2, "%s/second.log", D.dir);
    snprintf(sock2, sizeof sock2, "%s/other.sock", D.dir);
    snprintf(db2, sizeof db2, "%s/other.db", D.dir);
    int status;
    /* Same database, another socket: the lock refuses it. */
    pid_t p = spawn_daemon(sock2, D.db, log2, NULL);
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    /* Same socket, another database: the live socket refuses it. */
    p = spawn_daemon(D.sock, db2, log2, NULL);
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    FILE *f = fopen(log2, "r");
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(buf, "another advd is using the database"), "%s", buf);
    ck_assert_msg(strstr(buf, "another advd is listening on"), "%s", buf);
    /* The first one still serves. */
    client *c = cl_open();
    json_t *r = cl_call(c, "ping", NULL);
    result_of(r);
    json_decref(r);
    cl_close(c);
}
END_TEST

START_TEST(test_config_file)
{
    char conf[400], log2[400];
    snprintf(conf, sizeof conf, "%s/advd.conf", D.dir);
    snprintf(log2, sizeof log2, "%s/bad.log", D.dir);
    /* A bad line is refused with its number, before anything starts. */
    FILE *f = fopen(conf, "w");
    fputs("# comment\nworkers = 2\nbogus = 1\n", f);
    fclose(f);
    const char *with_conf[] = {"--config", conf, NULL};
    int status;
    pid_t p = spawn_daemon(D.sock, D.db, log2, with_conf);
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    f = fopen(log2, "r");
    char buf[2048] = "";
    buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
    fclose(f);
    ck_assert_msg(strstr(buf, "line 3: unknown setting 'bogus'"), "%s", buf);
    /* A good one is used: two workers run two jobs at once. */
    f = fopen(conf, "w");
    fputs("workers = 2   # two at once\nretries=0\n", f);
    fclose(f);
    start_daemon_with(with_conf);
    ck_assert_ptr_nonnull(strstr(read_log(), "2 workers"));
    cl_close(cl_open());
}
END_TEST

START_TEST(test_concurrent_clients)
{
    const char *two[] = {"--max-clients", "8", NULL};
    start_daemon_with(two);
    client *c[8];
    for (int i = 0; i < 8; i++)
        c[i] = cl_open();
    /* The ninth is refused with one line, then closed. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, D.sock);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    client extra = {.fd = fd};
    adv_linebuf_init(&extra.lb, 1 << 20);
    expect_error(cl_next(&extra, 5000), "conflict", "too many connections");
    ck_assert_ptr_null(cl_next(&extra, 5000));
    close(fd);
    adv_linebuf_free(&extra.lb);
    /* Requests from all of them, interleaved, each answered on its own. */
    char req[64];
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 8; i++) {
            snprintf(req, sizeof req, "{\"id\":%d,\"cmd\":\"ping\"}\n", round * 8 + i);
            cl_send(c[i], req);
        }
    for (int i = 0; i < 8; i++)
        for (int round = 0; round < 20; round++) {
            json_t *r = cl_next(c[i], 5000);
            ck_assert_ptr_nonnull(r);
            ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), round * 8 + i);
            json_decref(r);
        }
    for (int i = 0; i < 8; i++)
        cl_close(c[i]);
}
END_TEST

/* A client that sends without ever reading costs the others nothing. */
START_TEST(test_slow_client)
{
    start_daemon_with(NULL);
    client *slow = cl_open();
    int flags = fcntl(slow->fd, F_GETFL);
    fcntl(slow->fd, F_SETFL, flags | O_NONBLOCK);
    const char *req = "{\"id\":1,\"cmd\":\"version\"}\n";
    size_t sent = 0, len = strlen(req);
    double t0 = now_s();
    /* Until the socket is full both ways: the daemon stopped reading it. */
    while (now_s() - t0 < 5) {
        ssize_t w = write(slow->fd, req, len);
        struct pollfd pf = {.fd = slow->fd, .events = POLLOUT};
        if (w < 0 && errno == EAGAIN && poll(&pf, 1, 300) == 0)
            break;
        if (w < 0 && errno == EAGAIN)
            continue;
        ck_assert_int_eq(w, (ssize_t)len);
        sent += len;
    }
    /* It blocked: the daemon holds about ADVD_CLIENT_QUEUE_PAUSE (1 MiB) of
     * unread answers, then stops reading this client. */
    ck_assert_msg(now_s() - t0 < 5, "the daemon kept reading (%zu bytes)", sent);
    ck_assert_msg(sent > (64 << 10), "only %zu bytes went in", sent);
    client *c = cl_open();
    double t1 = now_s();
    json_t *r = cl_call(c, "ping", NULL);
    result_of(r);
    json_decref(r);
    ck_assert_msg(now_s() - t1 < 0.5, "ping took %.3f s", now_s() - t1);
    cl_close(c);
    cl_close(slow);
}
END_TEST

/* Another uid is refused (only testable as root: the socket is made
 * world-writable for the purpose). */
START_TEST(test_other_uid_refused)
{
    if (geteuid() != 0)
        return;
    start_daemon_with(NULL);
    ck_assert_int_eq(chmod(D.sock, 0666), 0);
    chmod(D.dir, 0755);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t p = fork();
    if (p == 0) {
        if (setuid(65534))
            _exit(2);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, D.sock);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa))
            _exit(3);
        char buf[512];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0 && write(pipefd[1], buf, (size_t)n) != n)
            _exit(4);
        _exit(0);
    }
    close(pipefd[1]);
    char buf[512] = "";
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    int status;
    waitpid(p, &status, 0);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_msg(strstr(buf, "connections from uid 65534 are not allowed"), "got '%s'", buf);
}
END_TEST

/* A worker that does not stop is killed after --grace; still cancelled. */
START_TEST(test_cancel_grace_kill)
{
    const char *grace[] = {"--grace", "0.3", NULL};
    start_daemon_with(grace);
    client *c = cl_open();
    int64_t id = submit(c, LONG_JOB(200));
    wait_checkpoints(c, id, 1);
    pid_t w = worker_pid(id, 1);
    ck_assert_int_eq(kill(w, SIGSTOP), 0);
    json_decref(call_job(c, "cancel", id));
    json_t *ev = watch_to_end(id, 10, NULL);
    ck_assert_str_eq(state_str(ev), "cancelled");
    json_decref(ev);
    ck_assert_ptr_nonnull(strstr(read_log(), "did not stop within the grace period"));
    cl_close(c);
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("advd");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ping_version);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_single_instance);
    tcase_add_test(tc, test_config_file);
    tcase_add_test(tc, test_concurrent_clients);
    tcase_add_test(tc, test_slow_client);
    tcase_add_test(tc, test_other_uid_refused);
    tcase_add_test(tc, test_train_watch_eval);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_init_and_heldout);
    tcase_add_test(tc, test_cancel_grace_kill);
    tcase_add_test(tc, test_sigterm_restart);
    tcase_add_test(tc, test_kill9_daemon);
    tcase_add_test(tc, test_kill9_worker);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(daemon_suite)
