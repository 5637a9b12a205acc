/*
 * worker.c - `advd --worker`: one job in a process of its own, so that a
 * crash, an abort or running out of memory never takes the daemon down.
 *
 * Pipe protocol (newline-delimited JSON, one object per line, binary data
 * as base64 strings; lines may be far longer than the client protocol's):
 *
 * daemon -> worker, on the worker's stdin
 *   first line, the job:
 *     {"job": ID, "attempt": N, "threads": T, "final_eval_limit": L,
 *      "spec": {canonical spec},
 *      "resume": "<state>"          train: the latest checkpoint, if any
 *      "init": "<state>"            train: the init job's checkpoint (spec "init")
 *      "parent_spec": {...},        eval: the training job's spec (data set)
 *      "checkpoint": "<state>"}     eval: the checkpoint to evaluate
 *   then, at any time: {"cmd": "stop"}: checkpoint at the next batch
 *   boundary, send it, exit 0 (SIGTERM does the same). EOF on stdin means
 *   the daemon is gone: exit 1 at the next batch boundary, writing nothing
 *   (PR_SET_PDEATHSIG kills a worker whose daemon died in any case).
 *   A stop while the job is still being set up (data, model, checkpoint)
 *   ends the worker at once with done "stopped": there is nothing to keep.
 *
 * worker -> daemon, on the worker's stdout (its C stdout is sent to stderr,
 * so that nothing else can write into the protocol):
 *   {"type":"progress","progress":P,"epoch":E,"step":S,"images_per_s":R,"loss":L}
 *                                   (evaluations: P only, at most once a second)
 *   {"type":"metrics","epoch":E,"step":S,"values":{"train_loss":..,...}}  null: NaN
 *   {"type":"checkpoint","epoch":E,"step":S,"val_robust_acc":A|null,"state":"<state>"}
 *   {"type":"eval","spec":{...},"eps":X,"n":N,"clean_acc":A,"robust_acc":B,
 *    "survival":"<n bytes>","warnings":[...]}
 *   {"type":"done","status":"succeeded"|"stopped"}   then exit 0
 *   {"type":"error","message":"..."}                  then exit 1
 * <state> is core_trainer_save's bytes (core/state.h), base64.
 *
 * Training: core_trainer_run with hooks that report progress (at most once
 * a second), record every epoch's metrics, checkpoint every
 * checkpoint_every epochs and at the end, and stop when asked; then the
 * final evaluation, clean and PGD-20 (at the training eps, or 0.1 for clean
 * training) on the test split (the daemon's final_eval_limit images, 0:
 * all), recorded as an evaluation and as test_clean_acc / test_pgd20_acc.
 * Evaluation: the checkpoint's model, the attack or suite at each eps on
 * the first `limit` test images, the sanity probes and checks when asked,
 * then calibration, corruptions, explanations and pictures (extras.c),
 * sent as "report" and "image" messages (see extras.h).
 */
#define _GNU_SOURCE
#include "advd.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "daemon/extras.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/sanity.h"

/* Set by the SIGTERM handler: a signal handler has no other way in. */
static volatile sig_atomic_t term_requested;
/* While a job is set up (data loaded, model built, checkpoint read) there
 * is no boundary at which to look for a stop, and nothing yet that a
 * checkpoint could keep: a stop then ends the worker at once, from the
 * signal handler, with "done stopped" on setup_fd (-1: not setting up). */
static volatile sig_atomic_t setup_fd = -1;

typedef struct {
    int out_fd;               /* messages to the daemon */
    adv_linebuf in;           /* lines from the daemon */
    int stop, eof;
    json_t *job;              /* the first line */
    adv_jobspec *spec;
    int final_eval_limit;
    core_trainer *t;
    int64_t last_ckpt_step;   /* -1: none sent */
    double last_progress;     /* time of the last progress message */
    char err[CORE_ERRLEN];
} worker;

static void stop_in_setup(void)
{
    static const char done[] = "{\"type\":\"done\",\"status\":\"stopped\"}\n";
    int fd = setup_fd;
    if (fd < 0)
        return;
    if (write(fd, done, sizeof done - 1) < 0)
        _exit(1);
    _exit(0);
}

static void on_term(int sig)
{
    (void)sig;
    term_requested = 1;
    stop_in_setup();
}

/* SIGIO: the daemon wrote on stdin (O_ASYNC, during set-up only). After the
 * job line it only ever sends stop, or closes the pipe: both end the job. */
static void on_input(int sig)
{
    (void)sig;
    stop_in_setup();
}

/* ------------------------------------------------------------ messages */

static void write_all(worker *w, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(w->out_fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(1); /* the daemon is gone: nobody to report to */
        p += k;
        n -= (size_t)k;
    }
}

/* Send msg (stolen) as one line. */
static void send_msg(worker *w, json_t *msg)
{
    char *text = msg ? json_dumps(msg, ADV_JSON_FLAGS) : NULL;
    json_decref(msg);
    if (!text) {
        fprintf(stderr, "advd worker: cannot encode a message\n");
        _exit(1);
    }
    write_all(w, text, strlen(text));
    write_all(w, "\n", 1);
    free(text);
}


static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int fail(worker *w)
{
    fprintf(stderr, "advd worker: %s\n", w->err);
    send_msg(w, json_pack("{s:s, s:s}", "type", "error", "message", w->err));
    return 1;
}

/* ------------------------------------------------------ the daemon's lines */

static void handle_control(worker *w, const char *line, size_t len)
{
    json_t *v = json_loadb(line, len, 0, NULL);
    const char *cmd = json_string_value(json_object_get(v, "cmd"));
    if (cmd && !strcmp(cmd, "stop"))
        w->stop = 1;
    else
        fprintf(stderr, "advd worker: ignoring an unknown control line\n");
    json_decref(v);
}

/* Read what the daemon sent; block: wait for at least one line. */
static void read_control(worker *w, int block)
{
    char buf[65536];
    const char *line;
    size_t len;
    adv_error e;
    for (;;) {
        int r;
        while ((r = adv_linebuf_next(&w->in, &line, &len, &e)) == 1) {
            if (!w->job) {
                w->job = json_loadb(line, len, 0, NULL);
                if (!w->job)
                    w->job = json_object();
                return;
            }
            handle_control(w, line, len);
        }
        if (r < 0) {
            fprintf(stderr, "advd worker: %s\n", e.msg);
            _exit(1);
        }
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int ready = poll(&p, 1, block ? -1 : 0);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            return;
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            w->eof = 1;
            return;
        }
        if (adv_linebuf_feed(&w->in, buf, (size_t)n, &e)) {
            fprintf(stderr, "advd worker: %s\n", e.msg);
            _exit(1);
        }
    }
}

/* 1 when training should stop at this boundary. */
static int should_stop(worker *w)
{
    read_control(w, 0);
    if (w->eof) {
        fprintf(stderr, "advd worker: the daemon closed the pipe; exiting\n");
        _exit(1);
    }
    return w->stop || term_requested;
}

/* Set-up: a stop arrives as SIGIO (or SIGTERM) and ends the worker at once. */
static void setup_begin(worker *w)
{
    int fl = fcntl(0, F_GETFL);
    setup_fd = w->out_fd;
    if (fl < 0 || fcntl(0, F_SETOWN, getpid()) || fcntl(0, F_SETFL, fl | O_ASYNC))
        fprintf(stderr, "advd worker: cannot watch for a stop during set-up: %s\n",
                strerror(errno));
    if (should_stop(w)) /* one that came before */
        stop_in_setup();
}

static void setup_end(void)
{
    setup_fd = -1;
    int fl = fcntl(0, F_GETFL);
    if (fl >= 0)
        fcntl(0, F_SETFL, fl & ~O_ASYNC);
}

/* ------------------------------------------------------------- training */

static int send_checkpoint(worker *w, float val_robust_acc)
{
    uint8_t *buf;
    size_t len;
    if (core_trainer_save(w->t, &buf, &len, w->err))
        return -1;
    char *b64 = adv_base64_encode(buf, len, NULL);
    free(buf);
    if (!b64)
        return core_errf(w->err, "out of memory for a checkpoint of %zu bytes", len);
    const core_progress *p = &w->t->progress;
    send_msg(w, json_pack("{s:s, s:I, s:I, s:o, s:s}", "type", "checkpoint", "epoch",
                          (json_int_t)p->epoch, "step", (json_int_t)p->step, "val_robust_acc",
                          num(val_robust_acc), "state", b64));
    free(b64);
    w->last_ckpt_step = p->step;
    return 0;
}

static void send_progress(worker *w, double images_per_s, float loss)
{
    const core_trainer *t = w->t;
    double total = (double)t->cfg.epochs * t->batches_per_epoch;
    double frac = total > 0 ? (double)t->progress.step / total : 0.0;
    send_msg(w, json_pack("{s:s, s:f, s:I, s:I, s:o, s:o}", "type", "progress", "progress",
                          frac > 1 ? 1.0 : frac, "epoch", (json_int_t)t->progress.epoch, "step",
                          (json_int_t)t->progress.step, "images_per_s", num(images_per_s),
                          "loss", num(loss)));
    w->last_progress = core_now_s();
}

static int on_batch(void *ctx, const core_batch_info *b)
{
    worker *w = ctx;
    if (core_now_s() - w->last_progress >= 1.0)
        send_progress(w, b->images_per_s, b->loss);
    return should_stop(w);
}

static void send_epoch_metrics(worker *w, const core_epoch_info *e)
{
    json_t *v = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "train_loss",
                          num(e->train_loss), "train_acc", num(e->train_acc), "val_loss",
                          num(e->val_loss), "val_clean_acc", num(e->val_clean_acc),
                          "val_robust_acc", num(e->val_robust_acc), "lr", num(e->lr), "eps",
                          num(e->eps), "images_per_s", num(e->images_per_s), "seconds",
                          num(e->seconds));
    if (!isnan(e->co_pgd_acc))
        json_object_set_new(v, "co_pgd_acc", num(e->co_pgd_acc));
    if (e->rolled_back)
        json_object_set_new(v, "rolled_back", json_real(1.0));
    send_msg(w, json_pack("{s:s, s:i, s:I, s:o}", "type", "metrics", "epoch", e->epoch, "step",
                          (json_int_t)w->t->progress.step, "values", v));
}

static int on_epoch(void *ctx, const core_epoch_info *e)
{
    worker *w = ctx;
    const core_trainer *t = w->t;
    send_epoch_metrics(w, e);
    int done = (int)t->progress.epoch;
    int stop = should_stop(w);
    if (done % w->spec->train.checkpoint_every == 0 || done >= t->cfg.epochs || stop)
        if (send_checkpoint(w, e->val_robust_acc))
            return -1; /* any non-zero stops; the error is in w->err */
    send_progress(w, e->images_per_s, e->train_loss);
    return stop;
}

static int final_eval(worker *w, const adv_train_spec *ts)
{
    core_dataset te = {0};
    int *idx = NULL, rc = -1;
    core_eval_result clean, rob;
    core_trainer *t = w->t;
    float eps = t->cfg.eps > 0 ? t->cfg.eps : core_train_defaults().eps;
    core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, eps);
    a.steps = 20;
    a.norm = t->cfg.norm;
    a.seed = t->cfg.seed;
    if (core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TEST, w->final_eval_limit, &te,
                          w->err))
        return -1;
    if (!(idx = core_alloc(sizeof(int) * (size_t)te.n))) {
        core_errf(w->err, "out of memory");
        goto out;
    }
    for (int i = 0; i < te.n; i++)
        idx[i] = i;
    if (core_evaluate(t->model, t->ws, &te, idx, te.n, t->cfg.batch, NULL, 0, &clean, w->err) ||
        core_evaluate(t->model, t->ws, &te, idx, te.n, t->cfg.batch, &a, CORE_STREAM_USER, &rob,
                      w->err))
        goto out;
    json_t *spec = json_pack("{s:s, s:s, s:s, s:i, s:b}", "attack", "pgd", "norm",
                             t->cfg.norm == CORE_NORM_L2 ? "l2" : "linf", "loss", "ce", "steps",
                             20, "final", 1);
    send_msg(w, json_pack("{s:s, s:o, s:f, s:i, s:f, s:f, s:[]}", "type", "eval", "spec", spec,
                          "eps", adv_float_json(eps), "n", te.n, "clean_acc", clean.clean_acc,
                          "robust_acc", rob.robust_acc, "warnings"));
    send_msg(w, json_pack("{s:s, s:i, s:I, s:{s:f, s:f}}", "type", "metrics", "epoch",
                          (int)t->progress.epoch, "step", (json_int_t)t->progress.step, "values",
                          "test_clean_acc", clean.clean_acc, "test_pgd20_acc", rob.robust_acc));
    rc = 0;
out:
    core_free(idx);
    core_dataset_free(&te);
    return rc;
}

/* The base64 string at key of the job line, decoded; 0 when absent. */
static int job_bytes(worker *w, const char *key, uint8_t **buf, size_t *len)
{
    const json_t *v = json_object_get(w->job, key);
    adv_error e;
    *buf = NULL;
    *len = 0;
    if (!json_is_string(v))
        return 0;
    if (adv_base64_decode(json_string_value(v), json_string_length(v), buf, len, &e))
        return core_errf(w->err, "invalid '%s' from the daemon: %s", key, e.msg);
    return 0;
}

static int run_train(worker *w)
{
    const adv_train_spec *ts = &w->spec->train;
    core_dataset tr = {0};
    uint8_t *resume = NULL, *init = NULL;
    size_t rlen = 0, ilen = 0;
    int rc = -1, reinit = 0;
    core_train_hooks hooks = {.on_batch = on_batch, .on_epoch = on_epoch, .ctx = w};
    setup_begin(w);
    /* A retry resumes from its own checkpoint; only a first start takes
     * the init job's weights. */
    int failed = core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TRAIN, ts->train_limit,
                                   &tr, w->err) ||
                 core_trainer_create(&ts->cfg, ts->model, &tr, &w->t, w->err) ||
                 job_bytes(w, "resume", &resume, &rlen) || job_bytes(w, "init", &init, &ilen) ||
                 (resume && core_trainer_load(w->t, resume, rlen, w->err)) ||
                 (!resume && init && core_trainer_init_from(w->t, init, ilen, &reinit, w->err));
    setup_end();
    if (reinit)
        fprintf(stderr, "advd worker: the final layer has %d classes, not the init model's: "
                        "it starts from fresh weights\n", w->t->model->nclass);
    if (failed)
        goto out;
    w->last_ckpt_step = resume ? w->t->progress.step : -1;
    send_progress(w, 0.0, NAN);
    int r = core_trainer_run(w->t, &hooks, w->err);
    if (r < 0 || (r == 1 && w->err[0]))
        goto out;
    if (w->last_ckpt_step != w->t->progress.step && send_checkpoint(w, NAN))
        goto out;
    if (r == 1) {
        send_msg(w, json_pack("{s:s, s:s}", "type", "done", "status", "stopped"));
        rc = 0;
        goto out;
    }
    if (final_eval(w, ts))
        goto out;
    send_msg(w, json_pack("{s:s, s:s}", "type", "done", "status", "succeeded"));
    rc = 0;
out:
    free(resume);
    free(init);
    core_trainer_free(w->t);
    w->t = NULL;
    core_dataset_free(&tr);
    return rc;
}

/* ----------------------------------------------------------- evaluation */

typedef struct {
    core_model *m;
    core_attack_ws *ws;
    core_dataset te;
    int n, batch;
    int *idx, *y;
    float *x, *x_adv;
    float *adv_logits;   /* n x classes at the first eps (single attacks, calibration) */
    uint8_t *robust;
} eval_run;

static void eval_free(eval_run *r)
{
    core_attack_ws_free(r->ws);
    core_model_free(r->m);
    core_dataset_free(&r->te);
    core_free(r->idx);
    core_free(r->y);
    core_free(r->x);
    core_free(r->x_adv);
    core_free(r->adv_logits);
    free(r->robust);
}

static int eval_setup(worker *w, const adv_jobspec *parent, eval_run *r)
{
    const adv_eval_spec *es = &w->spec->eval;
    uint8_t *state;
    size_t len;
    if (job_bytes(w, "checkpoint", &state, &len))
        return -1;
    if (!state)
        return core_errf(w->err, "the daemon sent no checkpoint to evaluate");
    int rc = core_state_model(state, len, &r->m, w->err);
    free(state);
    if (rc || core_dataset_load(parent->train.fmt, parent->train.data_dir, CORE_SPLIT_TEST,
                                es->limit, &r->te, w->err))
        return -1;
    if (core_shape_size(r->te.shape) != core_shape_size(r->m->in) || r->te.nclass > r->m->nclass)
        return core_errf(w->err, "the test split does not fit the checkpoint's model");
    if (!es->use_suite && es->attack.kind == CORE_ATTACK_APGD_T &&
        es->attack.n_targets >= r->m->nclass)
        return core_errf(w->err, "invalid 'targets': %d is not fewer than the %d classes",
                         es->attack.n_targets, r->m->nclass);
    r->n = r->te.n;
    r->batch = r->n < ADV_EVAL_BATCH ? r->n : ADV_EVAL_BATCH;
    size_t dim = core_shape_size(r->m->in);
    r->idx = core_alloc(sizeof(int) * (size_t)r->n);
    r->y = core_alloc(sizeof(int) * (size_t)r->n);
    r->x = core_alloc(sizeof(float) * dim * (size_t)r->n);
    r->x_adv = core_alloc(sizeof(float) * dim * (size_t)r->batch);
    r->robust = malloc((size_t)r->n);
    if (es->calibration && !es->use_suite)
        r->adv_logits = core_alloc(sizeof(float) * (size_t)r->m->nclass * (size_t)r->n);
    if (!r->idx || !r->y || !r->x || !r->x_adv || !r->robust ||
        (es->calibration && !es->use_suite && !r->adv_logits))
        return core_errf(w->err, "out of memory for %d test images", r->n);
    for (int i = 0; i < r->n; i++)
        r->idx[i] = i;
    core_dataset_gather(&r->te, r->idx, r->n, r->x, r->y);
    if (core_model_reserve(r->m, r->batch, w->err) ||
        core_attack_ws_create(r->m, r->batch, &r->ws, w->err))
        return -1;
    return 0;
}

/* Whether the evaluation has work after its attacks (extras.c). */
static int has_extras(const adv_eval_spec *es)
{
    return es->calibration || es->corruptions || es->explain || es->images != ADV_IMAGES_NONE;
}

/* An evaluation's progress p in [0, 1], at most once a second unless
 * forced: the attacks take the first 70 % when extras follow, else all. */
static void eval_progress(worker *w, double p, int force)
{
    if (!force && core_now_s() - w->last_progress < 1.0)
        return;
    w->last_progress = core_now_s();
    send_msg(w, json_pack("{s:s, s:f, s:i, s:i}", "type", "progress", "progress", p, "epoch", 0,
                          "step", 0));
}

static double attack_share(const adv_eval_spec *es)
{
    return has_extras(es) ? 0.7 : 1.0;
}

/* The attack or suite at one eps over every example, batch by batch. */
static int eval_eps(worker *w, eval_run *r, float eps, int which, double *acc)
{
    const adv_eval_spec *es = &w->spec->eval;
    size_t dim = core_shape_size(r->m->in);
    uint64_t stream = CORE_STREAM_USER + ((uint64_t)which << 32);
    core_suite suite;
    core_attack_cfg a = es->attack;
    a.eps = eps;
    a.seed = es->seed;
    if (es->use_suite && core_suite_preset(es->suite, eps, es->seed, &suite, w->err))
        return -1;
    int survived = 0;
    for (int off = 0; off < r->n; off += r->batch) {
        int k = r->n - off < r->batch ? r->n - off : r->batch;
        const float *x = r->x + dim * (size_t)off;
        int rc = es->use_suite
                     ? core_suite_run(&suite, r->m, r->ws, x, r->y + off, k, stream + (uint64_t)off,
                                      r->robust + off, NULL, w->err)
                     : core_attack_run(&a, r->m, r->ws, x, r->y + off, NULL, k,
                                       stream + (uint64_t)off, r->x_adv, r->robust + off, w->err);
        if (rc)
            return -1;
        if (which == 0 && r->adv_logits) /* kept for the calibration report */
            memcpy(r->adv_logits + (size_t)r->m->nclass * off,
                   core_model_forward(r->m, r->x_adv, k), sizeof(float) * r->m->nclass * k);
        if (should_stop(w))
            return core_errf(w->err, "stopped before the evaluation finished");
        eval_progress(w, attack_share(es) * (which + (double)(off + k) / r->n) / es->neps, 0);
    }
    for (int i = 0; i < r->n; i++)
        survived += r->robust[i] != 0;
    *acc = r->n ? (double)survived / r->n : 0.0;
    return 0;
}

static void add_point(const adv_eval_spec *es, float eps, int n, double acc, core_eval_point *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->attack, sizeof p->attack, "%.*s", (int)sizeof p->attack - 1,
             es->use_suite ? es->suite : core_attack_kind_name(es->attack.kind));
    p->norm = es->attack.norm;
    p->eps = eps;
    p->steps = es->attack.steps;
    p->restarts = es->attack.restarts;
    p->n = n;
    p->robust_acc = acc;
}

static void send_eval_row(worker *w, eval_run *r, int i, double clean, double acc,
                          const json_t *warnings)
{
    const adv_eval_spec *es = &w->spec->eval;
    json_t *spec = json_deep_copy(json_object_get(w->job, "spec"));
    json_t *eps = json_array_get(json_object_get(spec, "eps"), (size_t)i);
    if (eps)
        json_object_set(spec, "eps", eps);
    else
        json_object_set_new(spec, "eps", json_real(es->eps[i]));
    char *surv = adv_base64_encode(r->robust, (size_t)r->n, NULL);
    send_msg(w, json_pack("{s:s, s:o, s:f, s:i, s:f, s:f, s:s?, s:O}", "type", "eval", "spec",
                          spec, "eps", adv_float_json(es->eps[i]), "n", r->n, "clean_acc", clean,
                          "robust_acc", acc, "survival", surv, "warnings", warnings));
    free(surv);
}

static void extras_send(void *ctx, json_t *msg)
{
    send_msg(ctx, msg);
}

static int extras_stop(void *ctx)
{
    return should_stop(ctx);
}

/* Calibration, corruptions, explanations and pictures, as asked. */
static int run_extras(worker *w, eval_run *r, const adv_jobspec *parent, double clean_acc)
{
    const adv_eval_spec *es = &w->spec->eval;
    const advd_extras x = {.m = r->m, .ws = r->ws, .te = &r->te, .x = r->x, .y = r->y, .n = r->n,
                           .batch = r->batch, .clean_acc = clean_acc,
                           .adv_logits = r->adv_logits, .es = es,
                           .parent = parent, .send = extras_send,
                           .stop = extras_stop, .ctx = w, .err = w->err};
    int (*const steps[4])(const advd_extras *) = {
        es->calibration ? advd_extras_calibration : NULL,
        es->corruptions ? advd_extras_corruptions : NULL,
        es->explain ? advd_extras_explanations : NULL, advd_extras_images};
    for (int i = 0; i < 4; i++) {
        if (steps[i] && steps[i](&x))
            return -1;
        eval_progress(w, attack_share(es) + (1 - attack_share(es)) * (i + 1) / 4, 1);
    }
    return 0;
}

static int run_eval(worker *w, const adv_jobspec *parent)
{
    const adv_eval_spec *es = &w->spec->eval;
    eval_run r = {0};
    core_eval_result clean;
    core_eval_point pts[ADV_EPS_MAX * (1 + CORE_SANITY_PROBES)];
    double acc[ADV_EPS_MAX];
    uint8_t *surv[ADV_EPS_MAX] = {0};
    int np = 0, rc = -1;
    setup_begin(w);
    int failed = eval_setup(w, parent, &r);
    setup_end();
    if (failed ||
        core_evaluate(r.m, r.ws, &r.te, r.idx, r.n, r.batch, NULL, 0, &clean, w->err))
        goto out;
    for (int i = 0; i < es->neps; i++) {
        if (eval_eps(w, &r, es->eps[i], i, &acc[i]) || !(surv[i] = malloc((size_t)r.n + 1)))
            goto out;
        memcpy(surv[i], r.robust, (size_t)r.n);
        add_point(es, es->eps[i], r.n, acc[i], &pts[np++]);
        int steps = !es->use_suite && es->attack.kind == CORE_ATTACK_PGD ? es->attack.steps : 10;
        if (es->sanity && es->attack.norm == CORE_NORM_LINF) {
            int k = core_sanity_probe(r.m, r.ws, &r.te, r.idx, r.n, r.batch, es->eps[i], steps,
                                      es->seed, pts + np, w->err);
            if (k < 0)
                goto out;
            np += k;
        }
        eval_progress(w, attack_share(es) * (i + 1) / es->neps, 1);
    }
    core_warnings warn = {0};
    if (es->sanity)
        core_sanity_check(pts, np, r.m->nclass, &warn);
    json_t *warnings = json_array();
    for (int i = 0; i < warn.count; i++)
        json_array_append_new(warnings, json_string(warn.text[i]));
    for (int i = 0; i < es->neps; i++) {
        memcpy(r.robust, surv[i], (size_t)r.n);
        send_eval_row(w, &r, i, clean.clean_acc, acc[i], warnings);
    }
    json_decref(warnings);
    if (run_extras(w, &r, parent, clean.clean_acc))
        goto out;
    send_msg(w, json_pack("{s:s, s:s}", "type", "done", "status", "succeeded"));
    rc = 0;
out:
    for (int i = 0; i < ADV_EPS_MAX; i++)
        free(surv[i]);
    eval_free(&r);
    return rc;
}

/* --------------------------------------------------------------- entry */

static int parse_spec(worker *w, const char *key, adv_jobspec *out)
{
    adv_error e;
    if (adv_jobspec_parse(json_object_get(w->job, key), out, &e))
        return core_errf(w->err, "invalid '%s' from the daemon: %s", key, e.msg);
    return 0;
}

static int run_job(worker *w)
{
    adv_jobspec *parent = NULL;
    int rc = -1;
    if (!(w->spec = malloc(sizeof *w->spec)) || !(parent = malloc(sizeof *parent))) {
        core_errf(w->err, "out of memory");
        goto out;
    }
    if (parse_spec(w, "spec", w->spec))
        goto out;
    w->final_eval_limit = (int)json_integer_value(json_object_get(w->job, "final_eval_limit"));
    int threads = (int)json_integer_value(json_object_get(w->job, "threads"));
    core_set_threads(w->spec->threads > 0 ? w->spec->threads : threads);
    if (w->spec->kind == ADV_JOB_TRAIN)
        rc = run_train(w);
    else if (parse_spec(w, "parent_spec", parent) == 0)
        rc = run_eval(w, parent);
out:
    free(parent);
    free(w->spec);
    return rc;
}

int advd_worker_main(void)
{
    worker w = {.last_ckpt_step = -1};
    /* A worker never outlives its daemon. */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent || parent == 1)
        return 1;
    signal(SIGINT, SIG_IGN); /* a terminal's ^C is the daemon's to handle */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGIO, on_input);
    w.out_fd = dup(1);
    if (w.out_fd < 0 || dup2(2, 1) < 0) {
        fprintf(stderr, "advd worker: cannot set up the pipes: %s\n", strerror(errno));
        return 1;
    }
    adv_linebuf_init(&w.in, ADVD_WORKER_LINE_MAX);
    read_control(&w, 1);
    if (!w.job) {
        fprintf(stderr, "advd worker: no job on stdin\n");
        return 1;
    }
    int rc = run_job(&w) ? fail(&w) : 0;
    json_decref(w.job);
    adv_linebuf_free(&w.in);
    return rc;
}
