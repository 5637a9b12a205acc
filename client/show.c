/*
 * show.c - advctl's read commands: list, status, watch (and submit/eval
 * --wait), results, metrics, checkpoints, compare. Tables for people;
 * --json prints the daemon's result object exactly as it came.
 */
#include "client/advctl.h"
#include "core/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static long long integer(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* A number as text, "-" for null. */
static const char *num(const json_t *v, const char *fmt, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, fmt, json_number_value(v));
    return buf;
}

/* A fraction as a percentage, "-" for null. */
static const char *pct(const json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    snprintf(buf, len, "%.1f", 100 * json_number_value(v));
    return buf;
}

static const char *when(const json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v))
        return "-";
    time_t t = (time_t)json_number_value(v);
    struct tm tm;
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    return buf;
}

/* Call cmd on the single JOB argument; --json prints the result. *r is
 * set only when there is something left to print. */
static int job_call(ctl *c, const char *cmd, int argc, char **argv, json_t **r)
{
    int64_t job;
    int rc = ctl_one_job(cmd, argc, argv, &job);
    if (rc || (rc = ctl_call_job(c, cmd, job, r)))
        return rc;
    if (c->json) {
        ctl_print_json(*r);
        json_decref(*r);
        *r = NULL;
    }
    return 0;
}

/* --------------------------------------------------------------- list */

static int list_args(int argc, char **argv, json_t *args)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long long n;
        if (!strcmp(a, "--mine")) {
            json_object_set_new(args, "mine", json_true());
            continue;
        }
        if (strcmp(a, "--state") && strcmp(a, "--kind") && strcmp(a, "--limit"))
            return ctl_usage("list", a[0] == '-' ? "unknown option '%s'"
                                                 : "unexpected argument '%s'", a);
        if (!(v = ctl_optarg("list", argc, argv, &i)))
            return ADVCTL_USAGE;
        if (!strcmp(a, "--limit")) {
            if (ctl_parse_int(v, 0, INT32_MAX, &n))
                return ctl_usage("list", "invalid '--limit': expected an integer >= 0, got '%s'", v);
            json_object_set_new(args, "limit", json_integer(n));
        } else {
            json_object_set_new(args, a + 2, json_string(v));
        }
    }
    return 0;
}

int cmd_list(ctl *c, int argc, char **argv)
{
    json_t *args = json_object(), *r;
    int rc = list_args(argc, argv, args);
    if (rc) {
        json_decref(args);
        return rc;
    }
    if ((rc = ctl_call(c, "list", args, &r)))
        return rc;
    if (c->json) {
        ctl_print_json(r);
        json_decref(r);
        return 0;
    }
    printf("%-6s %-6s %-10s %5s %-7s %-10s %-19s %s\n", "ID", "KIND", "STATE", "PROG", "PARENT",
           "USER", "CREATED", "NAME");
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(r, "jobs"), i, j) {
        char p[16], t[32], parent[24] = "-";
        if (json_is_integer(json_object_get(j, "parent")))
            snprintf(parent, sizeof parent, "%lld", integer(j, "parent"));
        double prog = json_number_value(json_object_get(j, "progress"));
        snprintf(p, sizeof p, "%.0f%%", 100 * prog);
        printf("%-6lld %-6s %-10s %5s %-7s %-10s %-19s %s\n", integer(j, "id"), str(j, "kind"),
               str(j, "state"), p, parent, str(j, "user"),
               when(json_object_get(j, "created"), t, sizeof t), str(j, "name"));
    }
    json_decref(r);
    return 0;
}

/* ------------------------------------------------------------- status */

static void print_spec(const json_t *spec)
{
    const char *key;
    json_t *v;
    int col = 0;
    printf("spec:");
    json_object_foreach((json_t *)spec, key, v) {
        char *s = json_dumps(v, JSON_ENCODE_ANY | ADV_JSON_FLAGS);
        int w = printf("%s%s=%s", col > 60 ? "\n     " : " ", key, s ? s : "?");
        col = col > 60 ? w : col + w;
        free(s);
    }
    printf("\n");
}

/* Where a training job's weights started (spec "init"). */
static void print_lineage(const json_t *r)
{
    const json_t *init = json_object_get(r, "init");
    if (!json_is_object(init))
        return;
    if (json_is_integer(json_object_get(init, "checkpoint"))) {
        printf("started from: job %lld, checkpoint %lld (crc32 %08llx)\n", integer(init, "job"),
               integer(init, "checkpoint"), integer(init, "checksum"));
        return;
    }
    const json_t *ck = json_object_get(json_object_get(json_object_get(r, "spec"), "init"),
                                       "checkpoint");
    char *text = json_dumps(ck, JSON_ENCODE_ANY);
    printf("starts from: job %lld, checkpoint %s (resolved when it starts)\n",
           integer(init, "job"), text ? text : "\"latest\"");
    free(text);
}

int cmd_status(ctl *c, int argc, char **argv)
{
    json_t *r = NULL;
    int rc = job_call(c, "status", argc, argv, &r);
    if (rc || !r)
        return rc;
    char t1[32], t2[32], t3[32];
    printf("job %lld (%s) '%s' of %s (uid %lld): %s, %.0f%%\n", integer(r, "id"), str(r, "kind"),
           str(r, "name"), str(r, "user"), integer(r, "owner"), str(r, "state"),
           100 * json_number_value(json_object_get(r, "progress")));
    json_t *procs = json_object_get(json_object_get(r, "spec"), "procs");
    printf("created %s  started %s  finished %s  attempts %lld  priority %lld  procs %lld\n",
           when(json_object_get(r, "created"), t1, sizeof t1),
           when(json_object_get(r, "started"), t2, sizeof t2),
           when(json_object_get(r, "finished"), t3, sizeof t3), integer(r, "attempts"),
           integer(r, "priority"), json_is_integer(procs) ? (long long)json_integer_value(procs) : 1);
    if (json_is_integer(json_object_get(r, "parent")))
        printf("parent: job %lld\n", integer(r, "parent"));
    print_lineage(r);
    if (json_is_string(json_object_get(r, "error")))
        printf("error: %s\n", str(r, "error"));
    if (json_is_string(json_object_get(r, "warning")))
        printf("warning: %s\n", str(r, "warning"));
    ctl_print_monitor_status(r);
    if (json_is_object(json_object_get(r, "spec")))
        print_spec(json_object_get(r, "spec"));
    json_decref(r);
    return 0;
}

/* -------------------------------------------------------------- watch */

typedef struct {
    int tty, epochs;
    double t0, p0, last_p;
    double loss, ips;
    long long epoch, step;
    double val_clean, val_robust, train_acc;
    int shown;               /* a progress line is on screen (tty) */
} follow_state;

static void fmt_eta(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e7)
        snprintf(buf, len, "?");
    else if (s >= 3600)
        snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
    else
        snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
}

static void fmt_acc(const char *name, double v, char *buf, size_t len)
{
    if (isnan(v))
        buf[0] = '\0';
    else
        snprintf(buf, len, " %s %.1f%%", name, 100 * v);
}

static void render(follow_state *f, int64_t job)
{
    char bar[21], eta[16], where[64] = "", a1[32], a2[32], a3[32];
    int fill = (int)(f->last_p * 20 + 0.5);
    for (int i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[20] = '\0';
    double dt = core_now_s() - f->t0, dp = f->last_p - f->p0;
    fmt_eta(dp > 0 ? (1 - f->last_p) * dt / dp : NAN, eta, sizeof eta);
    if (f->epochs > 0 && f->last_p > 0 && f->step > 0) {
        long long bpe = llround((double)f->step / f->last_p / f->epochs);
        long long b = bpe > 0 ? f->step - f->epoch * bpe : 0, e = f->epoch + 1;
        if (b <= 0 && f->epoch > 0) /* at an epoch's end */
            b = bpe, e = f->epoch;
        snprintf(where, sizeof where, " epoch %lld/%d batch %lld/%lld", e, f->epochs, b, bpe);
    }
    fmt_acc("train", f->train_acc, a1, sizeof a1);
    fmt_acc("val", f->val_clean, a2, sizeof a2);
    fmt_acc("robust", f->val_robust, a3, sizeof a3);
    char ips[32] = "", loss[32] = "";
    if (f->ips > 0)
        snprintf(ips, sizeof ips, " %.0f img/s", f->ips);
    if (!isnan(f->loss))
        snprintf(loss, sizeof loss, " loss %.3f", f->loss);
    printf("%sjob %lld [%s] %3.0f%%%s ETA %s%s%s%s%s%s%s", f->tty ? "\r\033[K" : "",
           (long long)job, bar, 100 * f->last_p, where, eta, ips, loss, a1, a2, a3,
           f->tty ? "" : "\n");
    fflush(stdout);
    f->shown = f->tty;
}

static void on_progress(follow_state *f, const json_t *ev)
{
    const json_t *m = json_object_get(ev, "metrics");
    f->last_p = json_number_value(json_object_get(ev, "progress"));
    if (f->t0 == 0) {
        f->t0 = core_now_s();
        f->p0 = f->last_p;
    }
    /* Metrics events number epochs from 0 and carry an older progress. */
    if (!m && json_is_integer(json_object_get(ev, "epoch")))
        f->epoch = integer(ev, "epoch");
    if (!m && json_is_integer(json_object_get(ev, "step")))
        f->step = integer(ev, "step");
    if (json_is_number(json_object_get(ev, "loss")))
        f->loss = json_number_value(json_object_get(ev, "loss"));
    if (json_is_number(json_object_get(ev, "images_per_s")))
        f->ips = json_number_value(json_object_get(ev, "images_per_s"));
    if (m) {
        const json_t *v;
        if (json_is_number(v = json_object_get(m, "val_clean_acc")))
            f->val_clean = json_number_value(v);
        if (json_is_number(v = json_object_get(m, "val_robust_acc")))
            f->val_robust = json_number_value(v);
        if (json_is_number(v = json_object_get(m, "train_acc")))
            f->train_acc = json_number_value(v);
    }
}

/* 1 when ev is a state event of a final state (*outcome: the exit status
 * for it), else 0. */
static int final_event(const json_t *ev, int *outcome)
{
    adv_job_state st;
    if (strcmp(str(ev, "event"), "state") || adv_job_state_parse(str(ev, "state"), &st) ||
        !adv_job_state_final(st))
        return 0;
    *outcome = st == ADV_STATE_SUCCEEDED ? ADVCTL_OK : ADVCTL_FAILED;
    return 1;
}

/* A state event: 1 when final (with *outcome), 0 otherwise. */
static int on_state(follow_state *f, int64_t job, const json_t *ev, int *outcome)
{
    const char *name = str(ev, "state");
    if (f->shown)
        printf("\n");
    f->shown = 0;
    if (json_is_string(json_object_get(ev, "error")))
        printf("job %lld %s: %s\n", (long long)job, name, str(ev, "error"));
    else
        printf("job %lld %s\n", (long long)job, name);
    fflush(stdout);
    return final_event(ev, outcome);
}

static int epochs_of(ctl *c, int64_t job)
{
    json_t *r;
    if (ctl_call_job(c, "status", job, &r))
        return 0;
    int n = (int)json_integer_value(json_object_get(json_object_get(r, "spec"), "epochs"));
    json_decref(r);
    return n;
}

int ctl_follow(ctl *c, int64_t job)
{
    follow_state f = {.tty = isatty(1), .loss = NAN, .val_clean = NAN, .val_robust = NAN,
                      .train_acc = NAN};
    json_t *r, *ev;
    f.epochs = epochs_of(c, job);
    int rc = ctl_call_job(c, "watch", job, &r), outcome = ADVCTL_FAILED;
    if (rc)
        return rc;
    if (c->json)
        ctl_print_json(r);
    json_decref(r);
    while ((ev = ctl_next_event(c))) {
        int done = 0;
        if (c->json) {
            ctl_print_json(ev);
            done = final_event(ev, &outcome);
        } else if (!strcmp(str(ev, "event"), "progress")) {
            on_progress(&f, ev);
            render(&f, job);
        } else if (!strcmp(str(ev, "event"), "state")) {
            done = on_state(&f, job, ev, &outcome);
        }
        json_decref(ev);
        if (done)
            return outcome;
    }
    return ADVCTL_UNREACHABLE;
}

int ctl_wait(ctl *c, int64_t job)
{
    json_t *r, *ev;
    int rc = ctl_call_job(c, "watch", job, &r), outcome;
    if (rc)
        return rc;
    json_decref(r);
    while ((ev = ctl_next_event(c))) {
        int done = final_event(ev, &outcome);
        if (done && outcome != ADVCTL_OK)
            ctl_error("job %lld %s: %s", (long long)job, str(ev, "state"), str(ev, "error"));
        json_decref(ev);
        if (done)
            return outcome;
    }
    return ADVCTL_UNREACHABLE;
}

int cmd_watch(ctl *c, int argc, char **argv)
{
    int64_t job;
    int rc = ctl_one_job("watch", argc, argv, &job);
    return rc ? rc : ctl_follow(c, job);
}

/* ------------------------------------------------------------ results */

void ctl_attack_name(const json_t *spec, char *buf, size_t len)
{
    const char *suite = json_string_value(json_object_get(spec, "suite"));
    const char *attack = json_string_value(json_object_get(spec, "attack"));
    const json_t *steps = json_object_get(spec, "steps");
    if (suite)
        snprintf(buf, len, "suite:%s", suite);
    else if (attack && json_is_integer(steps) && strcmp(attack, "square") &&
             strcmp(attack, "noise") && strcmp(attack, "fgsm"))
        snprintf(buf, len, "%s-%lld%s", attack, (long long)json_integer_value(steps),
                 json_is_true(json_object_get(spec, "final")) ? " (final)" : "");
    else
        snprintf(buf, len, "%s", attack ? attack : "?");
}

static void print_warnings(const json_t *w)
{
    size_t i;
    json_t *s;
    if (!json_array_size(w)) {
        printf("-");
        return;
    }
    json_array_foreach(w, i, s) printf("%s%s", i ? "; " : "", json_string_value(s));
}

int cmd_results(ctl *c, int argc, char **argv)
{
    json_t *r = NULL;
    int rc = job_call(c, "results", argc, argv, &r);
    if (rc || !r)
        return rc;
    printf("%-6s %-18s %-6s %6s %7s %7s  %s\n", "JOB", "ATTACK", "EPS", "N", "CLEAN", "ROBUST",
           "WARNINGS");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "results"), i, e) {
        char a[64], b1[32], b2[32], b3[32];
        ctl_attack_name(json_object_get(e, "spec"), a, sizeof a);
        printf("%-6lld %-18s %-6s %6lld %6s%% %6s%%  ", integer(e, "job"), a,
               num(json_object_get(e, "eps"), "%g", b1, sizeof b1), integer(e, "n"),
               pct(json_object_get(e, "clean_acc"), b2, sizeof b2),
               pct(json_object_get(e, "robust_acc"), b3, sizeof b3));
        print_warnings(json_object_get(e, "warnings"));
        printf("\n");
    }
    ctl_print_reports(json_object_get(r, "reports"));
    json_decref(r);
    return 0;
}

/* ------------------------------------------------------------ metrics */

static int metrics_args(int argc, char **argv, int64_t *job, const char **key, int *csv)
{
    int njobs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv"))
            *csv = 1;
        else if (!strcmp(argv[i], "--key")) {
            if (!(*key = ctl_optarg("metrics", argc, argv, &i)))
                return ADVCTL_USAGE;
        } else if (argv[i][0] != '-' && !njobs++) {
            if (ctl_parse_job(argv[i], job))
                return ctl_usage("metrics", "invalid JOB '%s': expected a job id", argv[i]);
        } else
            return ctl_usage("metrics", argv[i][0] == '-' ? "unknown option '%s'"
                                                          : "unexpected argument '%s'", argv[i]);
    }
    return njobs ? 0 : ctl_usage("metrics", "missing JOB");
}

static void print_csv(const json_t *metrics)
{
    size_t i;
    json_t *m;
    printf("epoch,step,key,value\n");
    json_array_foreach(metrics, i, m) {
        char b[32];
        const char *v = num(json_object_get(m, "value"), "%.7g", b, sizeof b);
        printf("%lld,%lld,%s,%s\n", integer(m, "epoch"), integer(m, "step"), str(m, "key"),
               strcmp(v, "-") ? v : "");
    }
}

#define PIVOT_MAX 64

/* One row per (epoch, step), one column per key, in order of appearance. */
typedef struct {
    const char *keys[PIVOT_MAX];
    int nkeys;
    long long row[2 * 4096];   /* epoch, step pairs */
    int nrows;
} pivot;

static int pivot_key(pivot *p, const char *k)
{
    for (int i = 0; i < p->nkeys; i++)
        if (!strcmp(p->keys[i], k))
            return i;
    return p->nkeys < PIVOT_MAX ? (p->keys[p->nkeys] = k, p->nkeys++) : -1;
}

static int pivot_row(pivot *p, long long epoch, long long step)
{
    for (int i = 0; i < p->nrows; i++)
        if (p->row[2 * i] == epoch && p->row[2 * i + 1] == step)
            return i;
    if (p->nrows == 4096)
        return -1;
    p->row[2 * p->nrows] = epoch;
    p->row[2 * p->nrows + 1] = step;
    return p->nrows++;
}

static int cmp_row(const void *a, const void *b)
{
    const long long *x = a, *y = b;
    return x[1] != y[1] ? (x[1] > y[1]) - (x[1] < y[1]) : (x[0] > y[0]) - (x[0] < y[0]);
}

static void print_pivot(const json_t *metrics)
{
    static pivot p;
    size_t i;
    json_t *m;
    memset(&p, 0, sizeof p);
    json_array_foreach(metrics, i, m) {
        pivot_key(&p, str(m, "key"));
        pivot_row(&p, integer(m, "epoch"), integer(m, "step"));
    }
    qsort(p.row, (size_t)p.nrows, 2 * sizeof(long long), cmp_row);
    printf("%-5s %-7s", "EPOCH", "STEP");
    for (int k = 0; k < p.nkeys; k++)
        printf(" %*s", (int)strlen(p.keys[k]) < 9 ? 9 : (int)strlen(p.keys[k]), p.keys[k]);
    printf("\n");
    for (int r = 0; r < p.nrows; r++) {
        printf("%-5lld %-7lld", p.row[2 * r], p.row[2 * r + 1]);
        for (int k = 0; k < p.nkeys; k++) {
            char b[32];
            const char *v = "";
            json_array_foreach(metrics, i, m) {
                if (integer(m, "epoch") == p.row[2 * r] && integer(m, "step") == p.row[2 * r + 1] &&
                    !strcmp(str(m, "key"), p.keys[k]))
                    v = num(json_object_get(m, "value"),
                            fabs(json_number_value(json_object_get(m, "value"))) >= 1000 ? "%.0f"
                                                                                        : "%.4g",
                            b, sizeof b);
            }
            printf(" %*s", (int)strlen(p.keys[k]) < 9 ? 9 : (int)strlen(p.keys[k]), v);
        }
        printf("\n");
    }
}

int cmd_metrics(ctl *c, int argc, char **argv)
{
    int64_t job = 0;
    const char *key = NULL;
    int csv = 0;
    json_t *r;
    int rc = metrics_args(argc, argv, &job, &key, &csv);
    if (rc)
        return rc;
    json_t *args = json_pack("{s:I}", "job", (json_int_t)job);
    if (key)
        json_object_set_new(args, "key", json_string(key));
    if ((rc = ctl_call(c, "metrics", args, &r)))
        return rc;
    if (c->json) {
        ctl_print_json(r);
        json_decref(r);
        return 0;
    }
    if (csv)
        print_csv(json_object_get(r, "metrics"));
    else
        print_pivot(json_object_get(r, "metrics"));
    json_decref(r);
    return 0;
}

/* -------------------------------------------------------- checkpoints */

int cmd_checkpoints(ctl *c, int argc, char **argv)
{
    json_t *r = NULL;
    int rc = job_call(c, "checkpoints", argc, argv, &r);
    if (rc || !r)
        return rc;
    printf("%-6s %-6s %-8s %-10s %-4s %10s  %s\n", "ID", "EPOCH", "STEP", "VAL_ROBUST", "BEST",
           "BYTES", "CREATED");
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(r, "checkpoints"), i, k) {
        char b[32], t[32];
        printf("%-6lld %-6lld %-8lld %-10s %-4s %10lld  %s\n", integer(k, "id"),
               integer(k, "epoch"), integer(k, "step"),
               num(json_object_get(k, "val_robust_acc"), "%.4f", b, sizeof b),
               json_is_true(json_object_get(k, "best")) ? "yes" : "", integer(k, "size"),
               when(json_object_get(k, "created"), t, sizeof t));
    }
    json_decref(r);
    return 0;
}

/* ------------------------------------------------------------ compare */

/* The last value of each metric key of interest. */
static void last_metrics(const json_t *metrics, const char *const *keys, int n, double *out)
{
    size_t i;
    json_t *m;
    for (int k = 0; k < n; k++)
        out[k] = NAN;
    json_array_foreach(metrics, i, m) {
        for (int k = 0; k < n; k++)
            if (!strcmp(str(m, "key"), keys[k]) && json_is_number(json_object_get(m, "value")))
                out[k] = json_number_value(json_object_get(m, "value"));
    }
}

/* A value as text: a percentage, or a plain number for the ECEs. */
static void cell(double v, int percent, char *buf, size_t len)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, percent ? "%.1f%%" : "%.3f", percent ? 100 * v : v);
}

static int compare_one(ctl *c, int64_t job, json_t *all, json_t *families)
{
    static const char *const keys[] = {"val_clean_acc", "val_robust_acc", "test_clean_acc",
                                       "test_pgd20_acc"};
    json_t *st = NULL, *mx = NULL, *res = NULL;
    int rc = ctl_call_job(c, "status", job, &st);
    if (rc || (rc = ctl_call_job(c, "metrics", job, &mx)) ||
        (rc = ctl_call_job(c, "results", job, &res))) {
        json_decref(st);
        json_decref(mx);
        return rc;
    }
    if (c->json) {
        json_array_append_new(all, json_pack("{s:O, s:O, s:O}", "status", st, "metrics", mx,
                                             "results", res));
    } else {
        double v[4 + CTL_SUMMARY];
        char b[4 + CTL_SUMMARY][16];
        last_metrics(json_object_get(mx, "metrics"), keys, 4, v);
        ctl_report_summary(json_object_get(res, "reports"), v + 4);
        const json_t *corr = ctl_latest_report(json_object_get(res, "reports"), "corruptions");
        json_array_append_new(families, json_pack("{s:I, s:O?}", "job", (json_int_t)job, "data",
                                                  corr));
        for (int k = 0; k < 4 + CTL_SUMMARY; k++)
            cell(v[k], k < 5 || k == 7 || k == 8, b[k], sizeof b[k]);
        if (!isnan(v[10]))   /* a count */
            snprintf(b[10], sizeof b[10], "%.0f", v[10]);
        printf("%-6lld %-10s %9s %10s %10s %11s %7s %6s %6s %10s %8s %7s %7s  %s\n",
               (long long)job, str(st, "state"), b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
               b[8], b[9], b[10], str(st, "name"));
    }
    json_decref(st);
    json_decref(mx);
    json_decref(res);
    return 0;
}

int cmd_compare(ctl *c, int argc, char **argv)
{
    int64_t job;
    if (argc < 2)
        return ctl_usage("compare", "missing JOB");
    for (int i = 1; i < argc; i++)
        if (ctl_parse_job(argv[i], &job))
            return ctl_usage("compare", "invalid JOB '%s': expected a job id", argv[i]);
    json_t *all = json_array(), *families = json_array();
    if (!c->json)
        printf("%-6s %-10s %9s %10s %10s %11s %7s %6s %6s %10s %8s %7s %7s  %s\n", "JOB",
               "STATE", "VAL_CLEAN", "VAL_ROBUST", "TEST_CLEAN", "TEST_PGD20", "CORRUPT", "ECE",
               "ECE_T", "EXPL_RAND", "EXPL_ADV", "SURR_R2", "FLAGGED", "NAME");
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        ctl_parse_job(argv[i], &job);
        rc = compare_one(c, job, all, families);
    }
    if (!rc && c->json)
        ctl_print_json(all);
    else if (!rc)
        ctl_print_family_table(families);
    json_decref(all);
    json_decref(families);
    return rc;
}
