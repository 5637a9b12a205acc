/*
 * worker.c - `advd --worker`: one job in a process of its own, so that a
 * crash, an abort or running out of memory never takes the daemon down.
 *
 * The pipe protocol is proto/worker.h's (the job on stdin, then "stop";
 * progress, metrics, checkpoints, results and the end on stdout). A stop
 * (or SIGTERM) checkpoints at the next batch boundary and exits 0; EOF on
 * stdin means the daemon is gone: exit 1 at the next batch boundary,
 * writing nothing (PR_SET_PDEATHSIG kills a worker whose daemon died in
 * any case). A stop while the job is still being set up (data, model,
 * checkpoint) ends the worker at once with done "stopped": there is
 * nothing to keep. The worker's C stdout goes to stderr, so that nothing
 * else can write into the protocol.
 *
 * Checkpoints: the worker writes each one as a file in the daemon's
 * checkpoint folder (daemon/ckptfile.h, named j<job>-s<step>-a<attempt>p<pid>)
 * and sends its name, size and crc32; the bytes never cross the daemon's
 * event loop. A training job resumes from the newest of the checkpoints
 * the daemon names whose file passes its checksum, with a warning for
 * each one it had to skip.
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
#include <zlib.h>

#include "daemon/ckptfile.h"
#include "daemon/evalstate.h"
#include "daemon/extras.h"
#include "daemon/store.h"
#include "core/eval.h"
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
/* The "done stopped" line the handler writes, encoded before any signal. */
static char *done_stopped;
static size_t done_stopped_len;

typedef struct eval_run eval_run;

typedef struct {
    core_dist *dist;          /* the MPI worker's ranks; NULL: one process */
    int rank;                 /* 0 alone speaks to the daemon and writes checkpoints */
    int out_fd;               /* messages to the daemon; -1 on ranks other than 0 */
    adv_linebuf in;           /* lines from the daemon */
    int stop, eof;
    adv_wmsg first;           /* the job line, decoded */
    const adv_wjob *job;      /* &first.u.job once it came; NULL before */
    adv_jobspec *spec;
    core_trainer *t;
    eval_run *run;            /* an evaluation's, while it runs */
    int64_t last_ckpt_step;   /* -1: none sent */
    double last_progress;     /* time of the last progress message */
    char err[CORE_ERRLEN];
} worker;

static void stop_in_setup(void)
{
    int fd = setup_fd;
    if (fd < 0)
        return;
    if (write(fd, done_stopped, done_stopped_len) < 0)
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

/* Send m as one line; m stays the caller's. Other ranks than 0 say
 * nothing: rank 0's messages stand for the job. */
static void send_msg(worker *w, const adv_wmsg *m)
{
    if (w->rank != 0)
        return;
    size_t len;
    char *line = adv_wmsg_encode(m, &len);
    if (!line) {
        fprintf(stderr, "advd worker: cannot encode a '%s' message\n", adv_wtype_name(m->type));
        _exit(1);
    }
    write_all(w, line, len);
    free(line);
}

/* A metric's value: NaN travels as null. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static void send_text(worker *w, adv_wtype type, const char *text)
{
    adv_wmsg m = {.type = type, .u.text.message = (char *)text};
    send_msg(w, &m);
}

static void send_done(worker *w, int succeeded)
{
    adv_wmsg m = {.type = ADV_W_DONE, .u.done.succeeded = succeeded};
    send_msg(w, &m);
}

static int fail(worker *w)
{
    fprintf(stderr, "advd worker: %s\n", w->err);
    send_text(w, ADV_W_ERROR, w->err);
    return 1;
}

/* Fault injection, for tests/test_faults.c and scripts/soak-crash.sh: with
 * ADVD_FAULT=PHASE in the daemon's environment (workers inherit it), the
 * first attempt of every job kills itself with SIGKILL on reaching PHASE:
 * load (its data just loaded), train (a batch after the attempt's first
 * checkpoint), checkpoint (the state of its second checkpoint saved, not
 * yet sent), eval (the evaluation begins) or evalstate (an evaluation's
 * progress saved in the middle of its second eps; with this phase the
 * progress is saved after every batch). Unset: nothing happens.
 * Returns 0, to sit in a chain of calls. */
static int fault_wanted(const char *phase)
{
    static const char *want;
    static int looked;
    if (!looked++)
        want = getenv("ADVD_FAULT");
    return want && !strcmp(want, phase);
}

static int fault_point(const worker *w, const char *phase)
{
    if (fault_wanted(phase) && w->job->attempt == 1) {
        fprintf(stderr, "advd worker: ADVD_FAULT=%s: killing myself\n", phase);
        raise(SIGKILL);
    }
    return 0;
}

/* ------------------------------------------------------ the daemon's lines */

/* The first line must be the job; after it only stop means anything. A
 * first line that is not a job leaves w->job NULL and the reason in err. */
static void handle_line(worker *w, const char *line, size_t len)
{
    adv_error e;
    adv_wmsg m;
    if (adv_wmsg_decode(line, len, &m, &e)) {
        if (!w->job)
            core_errf(w->err, "invalid job line from the daemon: %s", e.msg);
        else
            fprintf(stderr, "advd worker: ignoring a line from the daemon: %s\n", e.msg);
        return;
    }
    if (!w->job && m.type == ADV_W_JOB) {
        w->first = m;
        w->job = &w->first.u.job;
        return;
    }
    if (!w->job)
        core_errf(w->err, "expected a job line from the daemon, got '%s'", adv_wtype_name(m.type));
    else if (m.type == ADV_W_STOP)
        w->stop = 1;
    else
        fprintf(stderr, "advd worker: ignoring a '%s' line from the daemon\n",
                adv_wtype_name(m.type));
    adv_wmsg_clear(&m);
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
            int first = !w->job;
            handle_line(w, line, len);
            if (first)
                return; /* the job, or the reason there is none */
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

/* Whether rank 0 was asked to stop (other ranks read nothing). */
static int stop_asked(worker *w)
{
    if (w->rank != 0)
        return term_requested;
    read_control(w, 0);
    if (w->eof) {
        fprintf(stderr, "advd worker: the daemon closed the pipe; exiting\n");
        _exit(1);
    }
    return w->stop || term_requested;
}

/* 1 when training should stop at this boundary: rank 0's word, on every
 * rank (a boundary every rank reaches in step). */
static int should_stop(worker *w)
{
    int stop = core_dist_agree(w->dist, stop_asked(w), w->err);
    if (stop < 0) {
        fprintf(stderr, "advd worker: %s\n", w->err);
        _exit(1);
    }
    return stop;
}

/* Set-up: a stop arrives as SIGIO (or SIGTERM) and ends the worker at once. */
static void setup_begin(worker *w)
{
    if (w->rank != 0)
        return;
    int fl = fcntl(0, F_GETFL);
    setup_fd = w->out_fd;
    if (fl < 0 || fcntl(0, F_SETOWN, getpid()) || fcntl(0, F_SETFL, fl | O_ASYNC))
        fprintf(stderr, "advd worker: cannot watch for a stop during set-up: %s\n",
                strerror(errno));
    if (stop_asked(w)) /* one that came before */
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

/* The trainer's state as a checkpoint file, then its name to the daemon. */
static int send_checkpoint(worker *w, float val_robust_acc)
{
    if (w->rank != 0) /* the state is the same on every rank */
        return 0;
    const core_progress *p = &w->t->progress;
    adv_wmsg m = {.type = ADV_W_CHECKPOINT,
                  .u.checkpoint = {.epoch = p->epoch, .step = p->step,
                                   .val_robust_acc = val_robust_acc}};
    adv_wckpt *c = &m.u.checkpoint.ckpt;
    uint8_t *buf;
    size_t len;
    char tag[32];
    if (core_trainer_save(w->t, &buf, &len, w->err))
        return -1;
    snprintf(tag, sizeof tag, "a%dp%ld", w->job->attempt, (long)getpid());
    adv_ckptfile_name(w->job->job, p->step, tag, c->file, sizeof c->file);
    int rc = adv_ckptfile_write(w->job->ckpt_dir, c->file, buf, len, &c->crc32, w->err);
    free(buf);
    if (rc)
        return -1;
    c->size = len;
    c->step = p->step;
    if (w->last_ckpt_step >= 0)
        fault_point(w, "checkpoint");
    send_msg(w, &m);
    w->last_ckpt_step = p->step;
    return 0;
}

static void send_progress_msg(worker *w, double frac, int64_t epoch, int64_t step,
                              double images_per_s, double loss)
{
    adv_wmsg m = {.type = ADV_W_PROGRESS,
                  .u.progress = {.progress = frac > 1 ? 1.0 : frac, .epoch = epoch, .step = step,
                                 .images_per_s = images_per_s, .loss = loss}};
    send_msg(w, &m);
    w->last_progress = core_now_s();
}

static void send_metrics(worker *w, int64_t epoch, json_t *values)
{
    adv_wmsg m = {.type = ADV_W_METRICS,
                  .u.metrics = {.epoch = epoch, .step = w->t->progress.step, .values = values}};
    send_msg(w, &m);
    json_decref(values);
}

static void send_progress(worker *w, double images_per_s, float loss)
{
    const core_trainer *t = w->t;
    double total = (double)t->cfg.epochs * t->batches_per_epoch;
    double frac = total > 0 ? (double)t->progress.step / total : 0.0;
    send_progress_msg(w, frac, t->progress.epoch, t->progress.step, images_per_s, loss);
}

static int on_batch(void *ctx, const core_batch_info *b)
{
    worker *w = ctx;
    if (w->last_ckpt_step >= 0)
        fault_point(w, "train");
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
    send_metrics(w, e->epoch, v);
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

/* Clean and PGD-20 on the test split (core_eval_final): an evaluation
 * row with its per-example survival, like any evaluation's, and the
 * test_clean_acc / test_pgd20_acc metrics. */
static int final_eval(worker *w, const adv_train_spec *ts)
{
    core_dataset te = {0};
    core_eval_out rows = {0};
    core_trainer *t = w->t;
    float eps = t->cfg.eps > 0 ? t->cfg.eps : core_train_defaults().eps;
    core_final_cfg fc = {.eps = eps, .norm = t->cfg.norm, .seed = t->cfg.seed,
                         .batch = t->cfg.batch, .dist = w->dist};
    if (core_dataset_load(ts->fmt, ts->data_dir, CORE_SPLIT_TEST, w->job->final_eval_limit, &te,
                          w->err) ||
        fault_point(w, "eval") || core_eval_final(&fc, t->model, t->ws, &te, &rows, w->err)) {
        core_eval_out_free(&rows);
        core_dataset_free(&te);
        return -1;
    }
    double clean = core_eval_clean_acc(&rows), rob = core_eval_robust_acc(&rows, 0);
    adv_wmsg m = {.type = ADV_W_EVAL,
                  .u.eval = {.spec = json_pack("{s:s, s:s, s:s, s:i, s:b}", "attack", "pgd",
                                               "norm", core_norm_name(t->cfg.norm),
                                               "loss", "ce", "steps", 20, "final", 1),
                             .warnings = json_array(), .eps = adv_float_json(eps), .n = te.n,
                             .clean_acc = clean, .robust_acc = rob,
                             .survival = core_eval_survival(&rows, 0)}};
    send_msg(w, &m);
    json_decref(m.u.eval.spec);
    json_decref(m.u.eval.warnings);
    send_metrics(w, t->progress.epoch,
                 json_pack("{s:f, s:f}", "test_clean_acc", clean, "test_pgd20_acc", rob));
    core_eval_out_free(&rows);
    core_dataset_free(&te);
    return 0;
}

/* The bytes of checkpoint file c, checked: ADV_STORE_CORRUPT when its
 * size or crc32 differ from what the daemon stored. */
static int load_ckpt(worker *w, const adv_wckpt *c, uint8_t **buf, size_t *len)
{
    *len = (size_t)c->size;
    return adv_ckptfile_load(w->job->ckpt_dir, c->file, c->size, c->crc32, buf, w->err);
}

/* The newest resume checkpoint whose file holds (*buf NULL: none named);
 * each one skipped is a warning the job's owner sees in `status`. */
static int load_resume(worker *w, uint8_t **buf, size_t *len)
{
    char msg[CORE_ERRLEN + 128];
    *buf = NULL;
    for (int i = 0; i < w->job->nresume; i++) {
        const adv_wckpt *c = &w->job->resume[i];
        if (load_ckpt(w, c, buf, len) == 0)
            return 0;
        snprintf(msg, sizeof msg, "checkpoint at step %lld skipped: %s", (long long)c->step,
                 w->err);
        fprintf(stderr, "advd worker: %s\n", msg);
        send_text(w, ADV_W_WARNING, msg);
    }
    if (w->job->nresume)
        return core_errf(w->err, "no usable checkpoint to resume from: all %d failed their check",
                         w->job->nresume);
    return 0;
}

/* The init job's checkpoint (spec "init"), when the daemon named one. */
static int load_init(worker *w, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    return w->job->has_init ? load_ckpt(w, &w->job->init, buf, len) : 0;
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
                                   &tr, w->err) || fault_point(w, "load") ||
                 core_trainer_create(&ts->cfg, ts->model, &tr, &w->t, w->err) ||
                 core_trainer_set_dist(w->t, w->dist, w->err) ||
                 load_resume(w, &resume, &rlen) || (!resume && load_init(w, &init, &ilen)) ||
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
    if (w->dist) /* every rank's, in the log: they must be equal */
        fprintf(stderr, "advd worker: parameters' crc32 %08lx at step %lld (%zu parameters, "
                        "%.4g forward FLOPs an image)\n",
                crc32(0, (const Bytef *)w->t->model->params,
                      (uInt)(sizeof(float) * w->t->model->nparams)),
                (long long)w->t->progress.step, w->t->model->nparams,
                core_model_flops(w->t->model));
    if (r == 1) {
        send_done(w, 0);
        rc = 0;
        goto out;
    }
    if (final_eval(w, ts))
        goto out;
    send_done(w, 1);
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

_Static_assert(ADV_EPS_MAX == CORE_EVAL_EPS_MAX, "an eval spec's eps list fits core_eval_cfg");

struct eval_run {
    core_model *m;
    core_attack_ws *ws;
    core_dataset te;
    int n, batch;
    int *idx, *y;
    float *x;
    core_eval_cfg cfg;
    core_eval_out out;
    /* Progress on disk (evalstate.h): this rank's range, its file. */
    adv_evalstate_key key;
    char state_name[96];
    double last_save;
};

static void eval_free(eval_run *r)
{
    core_attack_ws_free(r->ws);
    core_model_free(r->m);
    core_dataset_free(&r->te);
    core_free(r->idx);
    core_free(r->y);
    core_free(r->x);
    core_eval_out_free(&r->out);
}

/* The spec's attack or suite, eps list and seed as core/eval.h's settings. */
static core_eval_cfg eval_cfg(const adv_eval_spec *es, int batch)
{
    core_eval_cfg c = {.use_suite = es->use_suite, .attack = es->attack, .neps = es->neps,
                       .seed = es->seed, .batch = batch, .keep_adv_logits = es->calibration};
    snprintf(c.suite, sizeof c.suite, "%s", es->suite);
    memcpy(c.eps, es->eps, sizeof(float) * (size_t)es->neps);
    return c;
}

static int eval_setup(worker *w, const adv_jobspec *parent, eval_run *r)
{
    const adv_eval_spec *es = &w->spec->eval;
    uint8_t *state;
    size_t len;
    if (!w->job->has_checkpoint)
        return core_errf(w->err, "the daemon sent no checkpoint to evaluate");
    if (load_ckpt(w, &w->job->checkpoint, &state, &len))
        return -1;
    int rc = core_state_model(state, len, &r->m, w->err);
    free(state);
    if (rc || core_dataset_load(parent->train.fmt, parent->train.data_dir, CORE_SPLIT_TEST,
                                es->limit, &r->te, w->err))
        return -1;
    if (core_shape_size(r->te.shape) != core_shape_size(r->m->in) || r->te.nclass > r->m->nclass)
        return core_errf(w->err, "the test split does not fit the checkpoint's model");
    if (!es->use_suite &&
        (es->attack.kind == CORE_ATTACK_APGD_T || es->attack.kind == CORE_ATTACK_FAB_T) &&
        es->attack.n_targets >= r->m->nclass)
        return core_errf(w->err, "invalid 'targets': %d is not fewer than the %d classes",
                         es->attack.n_targets, r->m->nclass);
    r->n = r->te.n;
    r->batch = r->n < ADV_EVAL_BATCH ? r->n : ADV_EVAL_BATCH;
    r->cfg = eval_cfg(es, r->batch > 0 ? r->batch : 1);
    size_t dim = core_shape_size(r->m->in);
    r->idx = core_alloc(sizeof(int) * (size_t)r->n + 1);
    r->y = core_alloc(sizeof(int) * (size_t)r->n + 1);
    r->x = core_alloc(sizeof(float) * dim * (size_t)r->n + 1);
    if (!r->idx || !r->y || !r->x)
        return core_errf(w->err, "out of memory for %d test images", r->n);
    if (core_eval_out_alloc(&r->cfg, r->n, r->m->nclass, &r->out, w->err))
        return -1;
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
    send_progress_msg(w, p, 0, 0, NAN, NAN);
}

static double attack_share(const adv_eval_spec *es)
{
    return has_extras(es) ? 0.7 : 1.0;
}

/* Progress is saved at most this often (and at a stop). */
#define EVALSTATE_EVERY_S 2.0

/* This rank's rows so far and where a resumed run starts, on disk. A
 * failed save costs only a resume's head start: a warning in the log. */
static void save_state(worker *w, core_eval_at at)
{
    eval_run *r = w->run;
    char err[CORE_ERRLEN];
    r->last_save = core_now_s();
    if (adv_evalstate_save(w->job->ckpt_dir, r->state_name, &r->key, at, &r->out, err))
        fprintf(stderr, "advd worker: %s\n", err);
    else if (at.e == 1 && at.s > r->key.a)
        fault_point(w, "evalstate");
}

/* core_eval_range's hook: the progress saved now and then, and a stop
 * ends the evaluation between batches (its progress saved: the retry or
 * the restart resumes there). Ranks have ranges of unequal length, so no
 * collective here: rank 0 alone stops, and its end ends the others
 * (mpirun, srun). */
static int on_eval_batch(void *ctx, int e, int done, int total)
{
    worker *w = ctx;
    const adv_eval_spec *es = &w->spec->eval;
    int stop = stop_asked(w);
    if (stop || core_now_s() - w->run->last_save >= EVALSTATE_EVERY_S ||
        fault_wanted("evalstate"))
        save_state(w, core_eval_next(e, done, total, w->run->key.a));
    if (stop)
        return 1;
    eval_progress(w, attack_share(es) * (e + (double)done / total) / es->neps, 0);
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

/* Examples the indicators of attack failure look at, per eps: a sample
 * (they cost about two runs of the attack on it). */
#define INDICATOR_SAMPLE 64

/* The indicators of each gradient attack at eps i: their warnings into
 * warn, their counts appended to points (the "indicators" report). */
static int indicators_at(worker *w, eval_run *r, int i, core_warnings *warn, json_t *points)
{
    core_indicators ind[CORE_SUITE_MAX];
    core_attack_kind kinds[CORE_SUITE_MAX];
    int n = r->n < INDICATOR_SAMPLE ? r->n : INDICATOR_SAMPLE;
    int k = core_eval_indicators(&r->cfg, r->m, r->ws, r->x, r->y, n, i, ind, kinds, w->err);
    for (int j = 0; j < k; j++) {
        const core_indicators *d = &ind[j];
        const char *name = core_attack_kind_name(kinds[j]);
        core_indicators_warn(d, name, r->cfg.eps[i], warn);
        json_array_append_new(
            points, json_pack("{s:s, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:i}", "attack",
                              name, "eps", adv_float_json(r->cfg.eps[i]), "n", d->n, "correct",
                              d->correct, "traced", d->traced, "silent", d->silent, "failed",
                              d->failed, "incomplete", d->incomplete, "zero_grad", d->zero_grad,
                              "unstable", core_indicators_unstable(d), "unconstrained",
                              d->unconstrained));
    }
    return k < 0 ? -1 : 0;
}

/* The attack's point at each eps, the sanity probes' beside it and the
 * indicators of attack failure; the checks' warnings as a JSON array of
 * strings, the indicators' counts into *report (kind "indicators"). */
static json_t *eval_warnings(worker *w, eval_run *r, json_t **report)
{
    const adv_eval_spec *es = &w->spec->eval;
    core_eval_point pts[ADV_EPS_MAX * (1 + CORE_SANITY_PROBES)];
    core_warnings warn = {0};
    json_t *points = json_array();
    int np = 0;
    *report = NULL;
    for (int i = 0; i < es->neps; i++) {
        add_point(es, es->eps[i], r->n, core_eval_robust_acc(&r->out, i), &pts[np++]);
        int steps = !es->use_suite && es->attack.kind == CORE_ATTACK_PGD ? es->attack.steps : 10;
        if (es->sanity && es->attack.norm == CORE_NORM_LINF) {
            int k = core_sanity_probe(r->m, r->ws, &r->te, r->idx, r->n, r->batch, es->eps[i],
                                      steps, es->seed, pts + np, w->err);
            if (k < 0 || indicators_at(w, r, i, &warn, points))
                return json_decref(points), NULL;
            np += k;
        }
    }
    if (es->sanity)
        core_sanity_check(pts, np, r->m->nclass, &warn);
    if (json_array_size(points))
        *report = json_pack("{s:o}", "points", points);
    else
        json_decref(points);
    json_t *warnings = json_array();
    for (int i = 0; i < warn.count; i++)
        json_array_append_new(warnings, json_string(warn.text[i]));
    return warnings;
}

static void send_eval_row(worker *w, eval_run *r, int i, const json_t *warnings)
{
    const adv_eval_spec *es = &w->spec->eval;
    json_t *spec = json_deep_copy(w->job->spec);
    json_t *eps = json_array_get(json_object_get(spec, "eps"), (size_t)i);
    if (eps)
        json_object_set(spec, "eps", eps);
    else
        json_object_set_new(spec, "eps", json_real(es->eps[i]));
    adv_wmsg m = {.type = ADV_W_EVAL,
                  .u.eval = {.spec = spec, .warnings = (json_t *)warnings,
                             .eps = adv_float_json(es->eps[i]), .n = r->n,
                             .clean_acc = core_eval_clean_acc(&r->out),
                             .robust_acc = core_eval_robust_acc(&r->out, i),
                             .survival = core_eval_survival(&r->out, i)}};
    send_msg(w, &m);
    json_decref(spec);
}

static void extras_send(void *ctx, const adv_wmsg *msg)
{
    send_msg(ctx, msg);
}

/* Rank-local, as on_eval_batch: the extras' ranks do unequal work. */
static int extras_stop(void *ctx)
{
    return stop_asked(ctx);
}

/* Calibration, corruptions, explanations and pictures, as asked; every
 * rank runs the steps that split the examples, rank 0 all of them. */
static int run_extras(worker *w, eval_run *r, const adv_jobspec *parent)
{
    const adv_eval_spec *es = &w->spec->eval;
    const advd_extras x = {.m = r->m, .ws = r->ws, .te = &r->te, .x = r->x, .y = r->y, .n = r->n,
                           .batch = r->batch, .clean_acc = core_eval_clean_acc(&r->out),
                           .adv_logits = r->out.adv_logits, .es = es, .parent = parent,
                           .dist = w->dist, .send = extras_send, .stop = extras_stop, .ctx = w,
                           .err = w->err};
    const struct {
        int (*run)(const advd_extras *);
        int split;
    } steps[4] = {{es->calibration ? advd_extras_calibration : NULL, 1},
                  {es->corruptions ? advd_extras_corruptions : NULL, 1},
                  {es->explain ? advd_extras_explanations : NULL, 0},
                  {advd_extras_images, 0}};
    for (int i = 0; i < 4; i++) {
        if (steps[i].run && (steps[i].split || w->rank == 0) && steps[i].run(&x))
            return -1;
        eval_progress(w, attack_share(es) + (1 - attack_share(es)) * (i + 1) / 4, 1);
    }
    return 0;
}

/* The key of this rank's progress file: the job's spec and checkpoint,
 * the evaluation's shape and the rank's range [a, b). */
static void state_key(worker *w, eval_run *r, int a, int b)
{
    char *spec = json_dumps(w->job->spec, JSON_COMPACT | JSON_SORT_KEYS);
    r->key = (adv_evalstate_key){
        .spec_crc = spec ? (uint32_t)crc32(0, (const Bytef *)spec, (uInt)strlen(spec)) : 0,
        .ckpt_crc = w->job->checkpoint.crc32, .n = r->n, .neps = r->cfg.neps,
        .nclass = r->m->nclass, .batch = r->cfg.batch, .a = a, .b = b};
    free(spec);
    adv_evalstate_name(w->job->job, w->rank, core_dist_size(w->dist), r->state_name,
                       sizeof r->state_name);
}

/* Where this rank starts: from its progress file when one holds (the
 * rows done are loaded), else from the beginning. */
static core_eval_at resume_point(worker *w, eval_run *r)
{
    core_eval_at at = {0, r->key.a};
    char err[CORE_ERRLEN], msg[CORE_ERRLEN + 64];
    int rc = adv_evalstate_load(w->job->ckpt_dir, r->state_name, &r->key, &at, &r->out, err);
    if (rc == 0) {
        fprintf(stderr, "advd worker: resuming the evaluation at eps %d of %d, example %d\n",
                at.e + 1, r->cfg.neps, at.s);
        return at;
    }
    if (rc != ADV_STORE_NOT_FOUND) {
        snprintf(msg, sizeof msg, "%s; the evaluation starts over", err);
        fprintf(stderr, "advd worker: %s\n", msg);
        send_text(w, ADV_W_WARNING, msg);
    }
    return (core_eval_at){0, r->key.a};
}

/* This rank's whole batches of the examples (resumed where its progress
 * file says), then every rank's rows summed into rank 0's (each rank's
 * are zero outside its range): the per-example rows of a one-process run. */
static int eval_ranks(worker *w, eval_run *r, const core_eval_hooks *hooks)
{
    int a, b;
    core_dist_range(r->n, r->batch, w->rank, core_dist_size(w->dist), &a, &b);
    state_key(w, r, a, b);
    core_eval_at at = resume_point(w, r);
    r->last_save = core_now_s();
    w->run = r;
    int rc = core_eval_range_from(&r->cfg, r->m, r->ws, r->x, r->y, a, b, at, hooks, &r->out,
                                  w->err);
    w->run = NULL;
    if (rc == 1)
        return core_errf(w->err, "stopped before the evaluation finished");
    return rc ? rc : core_eval_out_sum(&r->out, w->dist, w->err);
}

static int run_eval(worker *w, const adv_jobspec *parent)
{
    const adv_eval_spec *es = &w->spec->eval;
    eval_run r = {0};
    core_eval_hooks hooks = {.on_batch = on_eval_batch, .ctx = w};
    json_t *warnings = NULL, *indicators = NULL;
    int rc = -1;
    setup_begin(w);
    int failed = eval_setup(w, parent, &r) || fault_point(w, "eval");
    setup_end();
    if (failed)
        goto out;
    if (eval_ranks(w, &r, &hooks))
        goto out;
    if (w->rank != 0) { /* rank 0 reports and checks; the ranks split some extras */
        rc = run_extras(w, &r, parent) ? -1 : 0;
        goto out;
    }
    if (!(warnings = eval_warnings(w, &r, &indicators)))
        goto out;
    eval_progress(w, attack_share(es), 1);
    for (int i = 0; i < es->neps; i++)
        send_eval_row(w, &r, i, warnings);
    if (indicators)
        send_msg(w, &(adv_wmsg){.type = ADV_W_REPORT,
                                .u.report = {.kind = "indicators", .data = indicators}});
    if (run_extras(w, &r, parent))
        goto out;
    send_done(w, 1);
    rc = 0;
out:
    json_decref(warnings);
    json_decref(indicators);
    eval_free(&r);
    return rc;
}

/* --------------------------------------------------------------- entry */

static int parse_spec(worker *w, const json_t *spec, const char *key, adv_jobspec *out)
{
    adv_error e;
    if (!spec)
        return core_errf(w->err, "no '%s' from the daemon", key);
    if (adv_jobspec_parse(spec, out, &e))
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
    if (parse_spec(w, w->job->spec, "spec", w->spec))
        goto out;
    core_set_threads(w->spec->threads > 0 ? w->spec->threads : w->job->threads);
    if (w->spec->kind == ADV_JOB_TRAIN)
        rc = run_train(w);
    else if (parse_spec(w, w->job->parent_spec, "parent_spec", parent) == 0)
        rc = run_eval(w, parent);
out:
    free(parent);
    free(w->spec);
    return rc;
}

/* Rank 0's job line on every rank: other ranks have no stdin (mpirun and
 * srun forward it to rank 0 alone). 0, 1 when rank 0 has no job, -1 on
 * an error (w->err). */
static int share_job(worker *w)
{
    char *line = NULL;
    uint64_t len = 0;
    size_t n = 0;
    if (w->rank == 0 && w->job && !(line = adv_wmsg_encode(&w->first, &n)))
        return core_errf(w->err, "out of memory for the job line"); /* the others: killed */
    len = n;
    int rc = core_dist_bcast(w->dist, &len, sizeof len, w->err);
    if (rc == 0 && w->rank != 0 && len > 0 && !(line = malloc(len)))
        rc = core_errf(w->err, "out of memory for the job line");
    if (rc == 0 && len > 0)
        rc = core_dist_bcast(w->dist, line, len, w->err);
    adv_error e;
    if (rc == 0 && w->rank != 0 && len > 0) {
        if (adv_wmsg_decode(line, len, &w->first, &e))
            rc = core_errf(w->err, "rank 0's job line does not decode: %s", e.msg);
        else if (w->first.type != ADV_W_JOB)
            rc = core_errf(w->err, "rank 0 sent a '%s' line, not the job",
                           adv_wtype_name(w->first.type));
        else
            w->job = &w->first.u.job;
    }
    free(line);
    return rc ? -1 : len == 0 ? 1 : 0;
}

int advd_worker_main(core_dist *dist)
{
    worker w = {.dist = dist, .rank = core_dist_rank(dist), .last_ckpt_step = -1};
    /* A worker never outlives its daemon (or its mpirun, srun). */
    pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent || parent == 1)
        return 1;
    signal(SIGINT, SIG_IGN); /* a terminal's ^C is the daemon's to handle */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGIO, on_input);
    w.out_fd = w.rank == 0 ? dup(1) : -1;
    if ((w.rank == 0 && w.out_fd < 0) || dup2(2, 1) < 0) {
        fprintf(stderr, "advd worker: cannot set up the pipes: %s\n", strerror(errno));
        return 1;
    }
    adv_wmsg stopped = {.type = ADV_W_DONE};
    if (!(done_stopped = adv_wmsg_encode(&stopped, &done_stopped_len))) {
        fprintf(stderr, "advd worker: out of memory\n");
        return 1;
    }
    adv_linebuf_init(&w.in, ADV_WORKER_LINE_MAX);
    if (w.rank == 0)
        read_control(&w, 1);
    int rc, shared = w.dist ? share_job(&w) : 0;
    if (shared < 0)
        rc = fail(&w);
    else if (shared > 0 && w.rank != 0)
        rc = 1; /* rank 0 says why */
    else if (!w.job)
        rc = w.err[0] ? fail(&w) : (fprintf(stderr, "advd worker: no job on stdin\n"), 1);
    else
        rc = run_job(&w) ? fail(&w) : 0;
    adv_wmsg_clear(&w.first);
    adv_linebuf_free(&w.in);
    free(done_stopped);
    return rc;
}
