/*
 * monitor.c - the predict and monitor requests (monitor.h). Each finds the
 * job, its checkpoint and temperature on the loop, hands the computing to
 * score.h's queue (drift_tasks.c) and answers from the task's done().
 *
 *   predict  {"job", "checkpoint", "epoch", "temperature",
 *            "temperature_from", "predictions": [{"class", "name",
 *            "confidence", "top": [{"class", "name", "p"} x 3]}]}, and
 *            with "monitor": true also "monitor": {"id", "window",
 *            "filled", "windows": [the windows this request completed]}
 *   monitor  with "window": create the job's monitor (replacing one and
 *            its windows), answer its summary (monitor_db.c); without:
 *            {"monitor": summary, "windows": [rows after "since"]}
 *
 * Windows. Each predict through a monitor appends its examples' outputs
 * (logits and penultimate features) to the monitor's pending rows in the
 * store, so a stopped daemon loses nothing. When pending holds a full
 * window, a window task tests its first `window` rows; its done() stores
 * the window's row, drops those rows from pending and starts the next
 * full window, if any, before the predict is answered. One window of a
 * monitor is queued at a time (advd_task_busy, keyed by the monitor's
 * id); a full window left by a stopped daemon is tested at the next
 * predict through the monitor.
 *
 * Confidences are calibrated with the temperature an evaluation with
 * calibration fitted on the job's validation split (its latest), else
 * T = 1; every answer says which.
 */
#include "daemon/drift_tasks.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define WINDOW_MIN 20
#define WINDOW_MAX 100000
#define TOP_K 3

/* ---------------------------------------------------------- the model */

/* What a request works on, found on the loop. */
typedef struct {
    adv_job job;
    adv_jobspec spec;
    adv_ckpt ckpt;                 /* with its bytes */
    double T;
    char from[96];
} target;

static void target_clear(target *t)
{
    adv_job_clear(&t->job);
    adv_ckpt_clear(&t->ckpt);
}

static int store_error(int rc, const char *err, adv_error *e)
{
    adv_errcode code = rc == ADV_STORE_NOT_FOUND ? ADV_E_NOT_FOUND : ADV_E_INTERNAL;
    return adv_errorf(e, code, "%s", err);
}

/* The latest temperature an evaluation with calibration fitted. */
static void find_temperature(advd *d, int64_t job, double *T, char *from, size_t len)
{
    adv_report *r;
    int n;
    char err[CORE_ERRLEN];
    double best = -1;
    *T = 1.0;
    snprintf(from, len, "none (T = 1): no evaluation with calibration");
    if (adv_store_report_list(d->store, job, &r, &n, err))
        return;
    for (int i = 0; i < n; i++) {
        json_t *data = strcmp(r[i].kind, "calibration") ? NULL : json_loads(r[i].data, 0, NULL);
        double t = json_number_value(json_object_get(data, "temperature"));
        if (t > 0 && r[i].created >= best) {
            best = r[i].created;
            *T = t;
            snprintf(from, len, "calibration of evaluation job %lld", (long long)r[i].job);
        }
        json_decref(data);
    }
    adv_reports_free(r, n);
}

/* The checkpoint of id among job's, with its bytes checked by crc32. */
static int ckpt_by_id(advd *d, int64_t job, int64_t id, adv_ckpt *out, adv_error *e)
{
    adv_ckpt *list;
    int n, found = -1;
    char err[CORE_ERRLEN];
    int rc = adv_store_ckpt_list(d->store, job, &list, &n, err);
    if (rc)
        return store_error(rc, err, e);
    for (int i = 0; i < n; i++)
        found = list[i].id == id ? i : found;
    if (found < 0) {
        adv_ckpts_free(list, n);
        return adv_errorf(e, ADV_E_NOT_FOUND, "job %lld's monitor is on a checkpoint that was "
                          "removed: create the monitor again", (long long)job);
    }
    *out = list[found];
    list[found].state = NULL;
    adv_ckpts_free(list, n);
    if (!(out->state = malloc(out->size ? out->size : 1)))
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory for checkpoint %lld", (long long)id);
    if (adv_store_ckpt_read(d->store, id, 0, out->state, out->size, err))
        return adv_errorf(e, ADV_E_INTERNAL, "%s", err);
    if ((uint32_t)crc32(0, out->state, (uInt)out->size) != out->checksum)
        return adv_errorf(e, ADV_E_INTERNAL, "checkpoint %lld of job %lld fails its checksum",
                          (long long)id, (long long)job);
    return 0;
}

/* The job of the request (a trained model; own: the peer's to act on),
 * its spec, the checkpoint (ckpt_id > 0: that one, else the request's
 * "checkpoint") and temperature. */
static int find_target(advd *d, advd_client *c, const adv_request *req, int own, int64_t ckpt_id,
                       target *t, adv_error *e)
{
    char err[CORE_ERRLEN];
    memset(t, 0, sizeof *t);
    int64_t id = adv_request_int(req, "job", 0);
    int rc = adv_store_job_get(d->store, id, &t->job, err);
    if (rc)
        return store_error(rc, err, e);
    if (t->job.kind == ADV_JOB_EVAL)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'job': job %lld is an evaluation, "
                          "not a trained model", (long long)id);
    if (own && !advd_may_act(advd_client_uid(c), t->job.owner))
        return adv_errorf(e, ADV_E_FORBIDDEN, "job %lld belongs to '%s': you (uid %u) may not "
                          "monitor it", (long long)id, advd_user_name(d, t->job.owner),
                          advd_client_uid(c));
    if (adv_jobspec_decode_text(t->job.spec, strlen(t->job.spec), &t->spec, e))
        return -1;
    adv_ckpt_ref ref = {ADV_CKPT_LATEST, 0};
    const json_t *v = adv_request_arg(req, "checkpoint");
    if (v && adv_ckpt_ref_parse(v, "checkpoint", &ref, e))
        return -1;
    if (ckpt_id > 0)
        rc = ckpt_by_id(d, id, ckpt_id, &t->ckpt, e);
    else if ((rc = adv_store_ckpt_get(d->store, id, ref, &t->ckpt, err)))
        store_error(rc, err, e);
    if (rc)
        return -1;
    find_temperature(d, id, &t->T, t->from, sizeof t->from);
    return 0;
}

/* The checkpoint's bytes move into a task. */
static void take_ckpt(target *t, advd_ckpt_bytes *b)
{
    *b = (advd_ckpt_bytes){t->ckpt.id, t->ckpt.checksum, t->ckpt.state, t->ckpt.size};
    t->ckpt.state = NULL;
}

/* ------------------------------------------------------------ answers */

static advd_answer_to answer_to(advd_client *c, const adv_request *req)
{
    return (advd_answer_to){advd_client_serial(c), req->id ? json_deep_copy(req->id) : NULL};
}

/* Answer (result or e), when the client is still connected. */
static void answer(advd *d, advd_answer_to *to, json_t *result, const adv_error *e)
{
    advd_client *c = to->client ? advd_client_find(d, to->client) : NULL;
    if (c)
        advd_client_send(c, result ? adv_proto_ok(to->id, result) : adv_proto_error(to->id, e));
    else
        json_decref(result);
    json_decref(to->id);
    to->id = NULL;
}

static void answer_error(advd *d, advd_answer_to *to, adv_errcode code, const char *msg)
{
    adv_error e;
    adv_errorf(&e, code, "%s", msg);
    answer(d, to, NULL, &e);
}

static void reply_error(advd_client *c, const adv_request *req, const adv_error *e)
{
    advd_client_send(c, adv_proto_error(req->id, e));
}

static const char *cancelled_msg = "the daemon is stopping: scoring was cancelled";

/* ------------------------------------------------------------ windows */

static void window_done(advd *d, advd_task *task);

static size_t row_bytes(int c, int dd)
{
    return sizeof(float) * (size_t)(c + dd);
}

/* When m's pending rows hold a full window and none is queued, queue its
 * test (the answer, stolen, waits for it); else answer. */
static void next_window(advd *d, const advd_monitor *m, advd_answer_to to, json_t *ans)
{
    core_drift_set ref;
    const uint8_t *correct;
    advd_window_task *w = NULL;
    if (m->pending_n >= m->window && !advd_task_busy(d, m->id) &&
        !advd_reference_view(m->reference, m->reference_len, &ref, &correct) &&
        (w = calloc(1, sizeof *w))) {
        size_t len = row_bytes(ref.c, ref.d) * (size_t)m->window;
        w->rows = malloc(len);
        w->reference = malloc(m->reference_len);
        w->profiles = json_loads(m->profiles, 0, NULL);
        if (w->rows && w->reference && m->pending_len >= len) {
            memcpy(w->rows, m->pending, len);
            memcpy(w->reference, m->reference, m->reference_len);
            w->reference_len = m->reference_len;
            w->n = m->window;
            w->monitor = m->id;
            w->T = m->temperature;
            core_drift_cfg_defaults(&w->cfg);
            w->cfg.alpha = d->opt.drift_alpha;
            w->cfg.permutations = d->opt.drift_permutations;
            w->cfg.max_points = d->opt.drift_points;
            w->cfg.cbpe_sigma = d->opt.drift_sigma;
            w->cfg.seed = (uint64_t)m->id * 1000003u + (uint64_t)m->windows; /* per window */
            w->to = to;
            w->answer = ans;
            w->task = (advd_task){.run = advd_window_run, .done = window_done, .key = m->id};
            advd_task_submit(d, &w->task);
            return;
        }
        free(w->rows);
        free(w->reference);
        json_decref(w->profiles);
        free(w);
        advd_log(d, "monitor %lld: out of memory for a window", (long long)m->id);
    }
    answer(d, &to, ans, NULL);
}

/* Every statistic of a window, the names of the tests that fired, the
 * alarm's text (into text). */
static json_t *stats_json(const advd_window_task *w, char *text, size_t len)
{
    const core_drift_result *r = &w->result;
    const char *hint = w->hint;
    json_t *fired = json_array();
    snprintf(text, len, "drift:");
    for (int i = 0; i < CORE_DRIFT_NTESTS; i++)
        if (r->fired & 1u << i) {
            json_array_append_new(fired, json_string(core_drift_test_name(i)));
            size_t used = strlen(text);
            snprintf(text + used, len - used, " %s", core_drift_test_name(i));
        }
    size_t used = strlen(text);
    if (*hint)
        snprintf(text + used, len - used, "; %s", hint);
    json_t *o = json_pack("{s:f, s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:i, "
                     "s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:s}",
                     "bbsd_stat", r->bbsd_stat, "bbsd_p", r->bbsd_p, "bbsd_class", r->bbsd_class,
                     "entropy_stat", r->entropy_stat, "entropy_p", r->entropy_p, "conf_stat",
                     r->conf_stat, "conf_p", r->conf_p, "chi2", r->chi2, "chi2_p", r->chi2_p,
                     "chi2_dof", r->chi2_dof, "mmd2", r->mmd.mmd2, "mmd_p", r->mmd.p,
                     "mmd_bandwidth", r->mmd.bandwidth, "mmd_points", r->mmd.nx, "cbpe", r->cbpe,
                     "cbpe_mean", r->cbpe_mean, "cbpe_sd", r->cbpe_sd, "atc", r->atc,
                     "atc_threshold", r->atc_threshold, "ref_accuracy", r->ref_accuracy,
                     "margin", r->margin, "ref_margin", r->ref_margin, "fired", fired,
                     "alarm_text", r->alarm ? text : "");
    json_object_set_new(o, "atc_shift", json_real(w->atc_shift));
    json_object_set_new(o, "atc_shift_from", json_string(w->shift));
    return o;
}

/* Store the window, drop its rows from pending. */
static int store_window(advd *d, advd_window_task *w, advd_monitor *m, json_t **row, char *err)
{
    char text[512];
    int seq;
    json_t *stats = stats_json(w, text, sizeof text), *rows = NULL;
    int rc = advd_monitor_window_put(d, w->monitor, &w->result, w->hint, stats, &seq, err);
    json_decref(stats);
    if (rc)
        return -1;
    size_t drop = m->pending_len / (size_t)(m->pending_n ? m->pending_n : 1) * (size_t)w->n;
    drop = drop < m->pending_len ? drop : m->pending_len;
    if (advd_monitor_set_pending(d, m->id, m->pending + drop, m->pending_len - drop,
                                 m->pending_n - w->n, err))
        return -1;
    memmove(m->pending, m->pending + drop, m->pending_len - drop);
    m->pending_len -= drop;
    m->pending_n -= w->n;
    if (w->result.alarm)
        advd_log(d, "monitor of job %lld: window %d alarm: %s", (long long)m->job, seq, text);
    if (!advd_monitor_windows(d, m->id, seq - 1, &rows, err)) {
        *row = json_incref(json_array_get(rows, 0));
        json_decref(rows);
    }
    return 0;
}

static void window_done(advd *d, advd_task *task)
{
    advd_window_task *w = (advd_window_task *)task;
    advd_monitor m = {0};
    char err[CORE_ERRLEN] = "";
    json_t *row = NULL, *mon = json_object_get(w->answer, "monitor");
    int64_t job = json_integer_value(json_object_get(w->answer, "job"));
    if (w->task.cancelled)
        snprintf(err, sizeof err, "the daemon is stopping: the full window is tested at the "
                 "next predict through the monitor");
    else if (w->rc)
        snprintf(err, sizeof err, "%s", w->err);
    if (err[0] || advd_monitor_get(d, job, 1, &m, err) || m.id != w->monitor ||
        store_window(d, w, &m, &row, err)) {
        /* Cancelled, failed, or the monitor was replaced meanwhile: the
         * predictions stand, the window's error is told. */
        if (!err[0])
            snprintf(err, sizeof err, "the monitor was replaced while testing a window");
        advd_log(d, "monitor %lld: window not tested: %s", (long long)w->monitor, err);
        json_object_set_new(mon, "error", json_string(err));
        answer(d, &w->to, w->answer, NULL);
    } else {
        json_array_append_new(json_object_get(mon, "windows"), row ? row : json_null());
        json_object_set_new(mon, "filled", json_integer(m.pending_n));
        next_window(d, &m, w->to, w->answer);
    }
    advd_monitor_clear(&m);
    free(w->rows);
    free(w->reference);
    json_decref(w->profiles);
    free(w);
}

/* Append the outputs to the monitor's pending rows; then windows. */
static void feed_monitor(advd *d, advd_predict_task *t, json_t *ans)
{
    advd_monitor m;
    char err[CORE_ERRLEN];
    const advd_scores *s = &t->out;
    const size_t rb = row_bytes(s->c, s->d);
    int rc = advd_monitor_get(d, t->job, 1, &m, err);
    if (rc || m.id != t->monitor) {
        answer_error(d, &t->to, rc < 0 ? ADV_E_INTERNAL : ADV_E_CONFLICT,
                     rc < 0 ? err : "the job's monitor was replaced while scoring: predict again");
        json_decref(ans);
        if (!rc)
            advd_monitor_clear(&m);
        return;
    }
    uint8_t *rows = realloc(m.pending, m.pending_len + rb * (size_t)s->n);
    if (!rows) {
        answer_error(d, &t->to, ADV_E_INTERNAL, "out of memory for the monitor's window");
        json_decref(ans);
        advd_monitor_clear(&m);
        return;
    }
    m.pending = rows;
    for (int i = 0; i < s->n; i++) {
        float *r = (float *)(rows + m.pending_len + rb * (size_t)i);
        memcpy(r, s->logits + (size_t)i * s->c, sizeof(float) * s->c);
        memcpy(r + s->c, s->feat + (size_t)i * s->d, sizeof(float) * s->d);
    }
    m.pending_len += rb * (size_t)s->n;
    m.pending_n += s->n;
    if (advd_monitor_set_pending(d, m.id, m.pending, m.pending_len, m.pending_n, err)) {
        answer_error(d, &t->to, ADV_E_INTERNAL, err);
        json_decref(ans);
    } else {
        json_object_set_new(ans, "monitor",
                            json_pack("{s:I, s:i, s:i, s:[]}", "id", (json_int_t)m.id, "window",
                                      m.window, "filled", m.pending_n, "windows"));
        next_window(d, &m, t->to, ans); /* the answer now travels with the windows */
        t->to.id = NULL;
    }
    advd_monitor_clear(&m);
}

/* ------------------------------------------------------------ predict */

/* One example's answer: its class, calibrated confidence and top-3. */
static json_t *prediction_json(const advd_predict_task *t, const float *z)
{
    const int c = t->out.c;
    float scaled[CORE_DRIFT_MAX_CLASSES] = {0}, p[CORE_DRIFT_MAX_CLASSES];
    int pred, order[TOP_K];
    for (int j = 0; j < c; j++)
        scaled[j] = (float)(z[j] / t->T);
    core_drift_summaries(scaled, 1, c, 1.0, p, NULL, NULL, NULL, NULL, &pred);
    json_t *top = json_array();
    for (int k = 0; k < TOP_K && k < c; k++) {
        order[k] = -1;
        for (int j = 0; j < c; j++) {
            int taken = 0;
            for (int q = 0; q < k; q++)
                taken |= order[q] == j;
            if (!taken && (order[k] < 0 || p[j] > p[order[k]]))
                order[k] = j;
        }
        json_array_append_new(top, json_pack("{s:i, s:s, s:f}", "class", order[k], "name",
                                             t->names[order[k]], "p", (double)p[order[k]]));
    }
    return json_pack("{s:i, s:s, s:f, s:o}", "class", pred, "name", t->names[pred],
                     "confidence", (double)p[pred], "top", top);
}

static void predict_done(advd *d, advd_task *task)
{
    advd_predict_task *t = (advd_predict_task *)task;
    if (t->task.cancelled || t->rc) {
        answer_error(d, &t->to, t->task.cancelled ? ADV_E_CONFLICT : ADV_E_INVALID_ARGUMENT,
                     t->task.cancelled ? cancelled_msg : t->err);
    } else if (t->out.c > CORE_DRIFT_MAX_CLASSES) {
        answer_error(d, &t->to, ADV_E_INVALID_ARGUMENT, "the model has too many classes");
    } else {
        json_t *preds = json_array();
        for (int i = 0; i < t->out.n; i++)
            json_array_append_new(preds, prediction_json(t, t->out.logits + (size_t)i * t->out.c));
        json_t *ans = json_pack("{s:I, s:I, s:i, s:f, s:s, s:o}", "job", (json_int_t)t->job,
                                "checkpoint", (json_int_t)t->ckpt.ckpt_id, "epoch", t->epoch,
                                "temperature", t->T, "temperature_from", t->temperature_from,
                                "predictions", preds);
        if (t->monitor)
            feed_monitor(d, t, ans);
        else
            answer(d, &t->to, ans, NULL);
    }
    json_decref(t->to.id);
    advd_scores_free(&t->out);
    free(t->ckpt.state);
    free(t->pixels);
    free(t);
}

void advd_cmd_predict(advd *d, advd_client *c, const adv_request *req)
{
    adv_error e;
    target tg;
    advd_monitor m = {0};
    int use_monitor = json_is_true(adv_request_arg(req, "monitor"));
    int64_t n = adv_request_int(req, "n", 0), job = adv_request_int(req, "job", 0);
    char err[CORE_ERRLEN];
    advd_predict_task *t = NULL;
    const char *b64 = adv_request_str(req, "pixels", "");
    if (n < 1 || n > ADVD_PREDICT_MAX) {
        adv_errorf(&e, ADV_E_INVALID_ARGUMENT, "invalid 'n': expected 1 to %d images, got %lld",
                   ADVD_PREDICT_MAX, (long long)n);
        reply_error(c, req, &e);
        return;
    }
    if (use_monitor) {
        int rc = advd_monitor_get(d, job, 0, &m, err);
        if (rc < 0)
            adv_errorf(&e, ADV_E_INTERNAL, "%s", err);
        else if (rc)
            adv_errorf(&e, ADV_E_NOT_FOUND, "job %lld has no monitor: create one with 'advctl "
                       "monitor %lld --window N'", (long long)job, (long long)job);
        if (rc) {
            reply_error(c, req, &e);
            return;
        }
        if (adv_request_arg(req, "checkpoint")) {
            adv_errorf(&e, ADV_E_INVALID_ARGUMENT, "invalid 'checkpoint': a predict through "
                       "job %lld's monitor scores with its checkpoint (epoch %d)",
                       (long long)job, m.epoch);
            reply_error(c, req, &e);
            return;
        }
    }
    if (find_target(d, c, req, use_monitor, m.ckpt, &tg, &e) ||
        !(t = calloc(1, sizeof *t)) ||
        adv_base64_decode(b64, strlen(b64), &t->pixels, &t->npixels, &e)) {
        if (t)
            free(t);
        else if (!e.msg[0])
            adv_errorf(&e, ADV_E_INTERNAL, "out of memory");
        reply_error(c, req, &e);
        target_clear(&tg);
        return;
    }
    t->task = (advd_task){.run = advd_predict_run, .done = predict_done};
    t->to = answer_to(c, req);
    t->spec = tg.spec;
    t->job = tg.job.id;
    t->epoch = tg.ckpt.epoch;
    t->monitor = use_monitor ? (int)m.id : 0;
    t->T = use_monitor ? m.temperature : tg.T;
    snprintf(t->temperature_from, sizeof t->temperature_from, "%s",
             use_monitor ? m.temperature_from : tg.from);
    t->n = (int)n;
    take_ckpt(&tg, &t->ckpt);
    target_clear(&tg);
    advd_task_submit(d, &t->task);
}

/* ------------------------------------------------------------ monitor */

static json_t *summary_or_error(advd *d, int64_t job, adv_error *e)
{
    json_t *s = advd_monitor_summary(d, job);
    if (!s)
        adv_errorf(e, ADV_E_NOT_FOUND, "job %lld has no monitor: create one with 'advctl "
                   "monitor %lld --window N'", (long long)job, (long long)job);
    return s;
}

static void reference_done(advd *d, advd_task *task)
{
    advd_reference_task *t = (advd_reference_task *)task;
    char err[CORE_ERRLEN];
    if (t->task.cancelled || t->rc) {
        answer_error(d, &t->to, t->task.cancelled ? ADV_E_CONFLICT : ADV_E_INVALID_ARGUMENT,
                     t->task.cancelled ? cancelled_msg : t->err);
    } else {
        t->m.reference = t->blob;
        t->m.reference_len = t->len;
        t->m.profiles = json_dumps(t->profiles, ADV_JSON_FLAGS);
        t->blob = NULL;
        adv_error e;
        json_t *s = NULL;
        if (!t->m.profiles || advd_monitor_create(d, &t->m, err))
            adv_errorf(&e, ADV_E_INTERNAL, "%s", t->m.profiles ? err : "out of memory");
        else if ((s = summary_or_error(d, t->m.job, &e)))
            json_object_set_new(s, "reference", json_pack("{s:i, s:f}", "n", t->n, "accuracy",
                                                          t->accuracy));
        if (s)
            advd_log(d, "monitor of job %lld created: checkpoint epoch %d, window %d, reference "
                     "of %d held-out examples (accuracy %.3f), T %.3f", (long long)t->m.job,
                     t->m.epoch, t->m.window, t->n, t->accuracy, t->m.temperature);
        answer(d, &t->to, s, &e);
    }
    json_decref(t->to.id);
    advd_monitor_clear(&t->m);
    free(t->blob);
    free(t->ckpt.state);
    json_decref(t->profiles);
    free(t);
}

static void monitor_create(advd *d, advd_client *c, const adv_request *req, int64_t window)
{
    adv_error e;
    target tg;
    advd_reference_task *t = NULL;
    if (window < WINDOW_MIN || window > WINDOW_MAX) {
        adv_errorf(&e, ADV_E_INVALID_ARGUMENT, "invalid 'window': expected %d to %d examples, "
                   "got %lld", WINDOW_MIN, WINDOW_MAX, (long long)window);
        reply_error(c, req, &e);
        return;
    }
    if (find_target(d, c, req, 1, 0, &tg, &e) || !(t = calloc(1, sizeof *t))) {
        if (!t && !e.msg[0])
            adv_errorf(&e, ADV_E_INTERNAL, "out of memory");
        reply_error(c, req, &e);
        target_clear(&tg);
        return;
    }
    t->task = (advd_task){.run = advd_reference_run, .done = reference_done};
    t->to = answer_to(c, req);
    t->spec = tg.spec;
    t->m.job = tg.job.id;
    t->m.ckpt = tg.ckpt.id;
    t->m.epoch = tg.ckpt.epoch;
    t->m.window = (int)window;
    t->m.temperature = t->T = tg.T;
    snprintf(t->m.temperature_from, sizeof t->m.temperature_from, "%s", tg.from);
    take_ckpt(&tg, &t->ckpt);
    target_clear(&tg);
    advd_task_submit(d, &t->task);
}

static void monitor_show(advd *d, advd_client *c, const adv_request *req)
{
    adv_error e;
    char err[CORE_ERRLEN];
    int64_t job = adv_request_int(req, "job", 0);
    json_t *s = summary_or_error(d, job, &e), *rows = NULL;
    if (s && advd_monitor_windows(d, json_integer_value(json_object_get(s, "id")),
                                  adv_request_int(req, "since", 0), &rows, err)) {
        adv_errorf(&e, ADV_E_INTERNAL, "%s", err);
        json_decref(s);
        s = NULL;
    }
    if (s)
        advd_client_send(c, adv_proto_ok(req->id, json_pack("{s:I, s:o, s:o}", "job",
                                                             (json_int_t)job, "monitor", s,
                                                             "windows", rows)));
    else
        reply_error(c, req, &e);
}

void advd_cmd_monitor(advd *d, advd_client *c, const adv_request *req)
{
    if (adv_request_arg(req, "window"))
        monitor_create(d, c, req, adv_request_int(req, "window", 0));
    else
        monitor_show(d, c, req);
}
