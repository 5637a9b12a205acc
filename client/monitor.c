/*
 * monitor.c - `advctl monitor JOB [--checkpoint C] --window N` creates the
 * drift monitor of a trained job (its reference: the held-out split's
 * outputs; daemon/monitor.c); `advctl monitor JOB [--watch]` shows its
 * windows as a table, --watch then prints each new window as it is
 * stored (asking every WATCH_S seconds) until interrupted. Also the
 * monitor's lines of `predict --monitor` and `status`.
 */
#include "client/advctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATCH_S 2

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static const char *text(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* A p-value or estimate in 8 columns ("-" when null). */
static void cell(const json_t *o, const char *k, const char *fmt)
{
    const json_t *v = json_object_get(o, k);
    if (json_is_number(v))
        printf(fmt, json_number_value(v));
    else
        printf("%8s", "-");
}

static void table_header(void)
{
    printf("%6s  %-19s %6s  %-5s %8s %8s %8s %8s %8s %8s %8s %8s  %s\n", "window", "time", "n",
           "alarm", "bbsd_p", "entr_p", "conf_p", "chi2_p", "mmd_p", "cbpe", "atc", "atc_shift",
           "alarm reasons / closest");
}

static void table_row(const json_t *w)
{
    char when[32];
    time_t t = (time_t)num(w, "time");
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
    const json_t *stats = json_object_get(w, "stats");
    int alarm = json_is_true(json_object_get(w, "alarm"));
    printf("%6lld  %-19s %6lld  %-5s", (long long)json_integer_value(json_object_get(w, "seq")),
           when, (long long)json_integer_value(json_object_get(w, "n")), alarm ? "ALARM" : "-");
    static const char *const pk[] = {"bbsd_p", "entropy_p", "confidence_p", "chi2_p", "mmd_p"};
    for (size_t i = 0; i < sizeof pk / sizeof *pk; i++)
        cell(w, pk[i], " %8.2g");
    cell(w, "cbpe", " %8.3f");
    cell(w, "atc", " %8.3f");
    printf(" %9.3f", num(stats, "atc_shift"));
    printf("  %s\n", alarm ? text(stats, "alarm_text") : text(w, "hint"));
}

static void print_summary(const json_t *m)
{
    printf("monitor of job %lld on the checkpoint of epoch %lld: windows of %lld, %lld in the "
           "current one; %lld window%s, %lld alarm%s; temperature %.3f (%s)\n",
           (long long)num(m, "job"), (long long)num(m, "epoch"), (long long)num(m, "window"),
           (long long)num(m, "filled"), (long long)num(m, "windows"),
           num(m, "windows") == 1 ? "" : "s", (long long)num(m, "alarms"),
           num(m, "alarms") == 1 ? "" : "s", num(m, "temperature"), text(m, "temperature_from"));
}

void ctl_print_monitor_feed(const json_t *m)
{
    const json_t *ws = json_object_get(m, "windows");
    size_t i;
    json_t *w;
    if (json_array_size(ws))
        table_header();
    json_array_foreach(ws, i, w)
        table_row(w);
    if (json_object_get(m, "error"))
        printf("monitor: %s\n", text(m, "error"));
    printf("monitor: %lld of %lld images in the current window\n",
           (long long)json_integer_value(json_object_get(m, "filled")),
           (long long)json_integer_value(json_object_get(m, "window")));
}

void ctl_print_monitor_status(const json_t *job)
{
    const json_t *m = json_object_get(job, "monitor"), *last = json_object_get(m, "last");
    if (!m)
        return;
    printf("monitor: windows of %lld on epoch %lld, %lld window%s, %lld alarm%s", 
           (long long)num(m, "window"), (long long)num(m, "epoch"), (long long)num(m, "windows"),
           num(m, "windows") == 1 ? "" : "s", (long long)num(m, "alarms"),
           num(m, "alarms") == 1 ? "" : "s");
    if (json_is_true(json_object_get(last, "alarm")))
        printf("; ALARM in the last window (%lld): %s",
               (long long)json_integer_value(json_object_get(last, "seq")),
               text(json_object_get(last, "stats"), "alarm_text"));
    else if (json_is_object(last))
        printf("; the last window (%lld) is clean", (long long)json_integer_value(
                                                         json_object_get(last, "seq")));
    printf("\n");
}

/* ------------------------------------------------------------ command */

typedef struct {
    int64_t job;
    long long window;            /* 0: show */
    int watch;
    json_t *ckpt;                /* {"checkpoint": C} or empty */
} monitor_args;

static int parse_args(int argc, char **argv, monitor_args *a)
{
    int njobs = 0;
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--window")) {
            if (!(v = ctl_optarg("monitor", argc, argv, &i)))
                return ADVCTL_USAGE;
            if (ctl_parse_int(v, 1, 100000000, &a->window))
                return ctl_usage("monitor", "invalid '--window': expected a number of images, "
                                            "got '%s'", v);
        } else if (!strcmp(s, "--checkpoint")) {
            if (!(v = ctl_optarg("monitor", argc, argv, &i)) ||
                ctl_parse_ckpt("monitor", v, a->ckpt))
                return ADVCTL_USAGE;
        } else if (!strcmp(s, "--watch")) {
            a->watch = 1;
        } else if (s[0] != '-' && !njobs++) {
            if (ctl_parse_job(s, &a->job))
                return ctl_usage("monitor", "invalid JOB '%s': expected a job id", s);
        } else {
            return ctl_usage("monitor", s[0] == '-' ? "unknown option '%s'"
                                                    : "unexpected argument '%s'", s);
        }
    }
    if (!njobs)
        return ctl_usage("monitor", "missing JOB");
    if (a->window && a->watch)
        return ctl_usage("monitor", "'--watch' follows a monitor: create it first");
    if (!a->window && json_object_size(a->ckpt))
        return ctl_usage("monitor", "'--checkpoint' is for creating a monitor (with --window)");
    return 0;
}

static int create(ctl *c, const monitor_args *a)
{
    json_t *r, *args = json_copy(a->ckpt);
    json_object_set_new(args, "job", json_integer(a->job));
    json_object_set_new(args, "window", json_integer(a->window));
    int rc = ctl_call(c, "monitor", args, &r);
    if (rc)
        return rc;
    if (c->json) {
        ctl_print_json(r);
    } else {
        json_t *ref = json_object_get(r, "reference");
        print_summary(r);
        printf("reference: %lld held-out examples, accuracy %.3f\n", (long long)num(ref, "n"),
               num(ref, "accuracy"));
    }
    json_decref(r);
    return 0;
}

/* The windows after *since (printed), *since moved to the last. */
static int show(ctl *c, const monitor_args *a, long long *since, int header)
{
    json_t *r;
    int rc = ctl_call(c, "monitor", json_pack("{s:I, s:I}", "job", (json_int_t)a->job, "since",
                                              (json_int_t)*since), &r);
    if (rc)
        return rc;
    const json_t *ws = json_object_get(r, "windows");
    size_t i;
    json_t *w;
    if (c->json && !a->watch) {
        ctl_print_json(r);
    } else if (!c->json) {
        if (header) {
            print_summary(json_object_get(r, "monitor"));
            table_header();
        }
    }
    json_array_foreach(ws, i, w) {
        if (c->json && a->watch)
            ctl_print_json(w);
        else if (!c->json)
            table_row(w);
        *since = json_integer_value(json_object_get(w, "seq"));
    }
    fflush(stdout);
    json_decref(r);
    return 0;
}

int cmd_monitor(ctl *c, int argc, char **argv)
{
    monitor_args a = {.ckpt = json_object()};
    long long since = 0;
    int rc = parse_args(argc, argv, &a);
    if (!rc && a.window)
        rc = create(c, &a);
    else if (!rc)
        rc = show(c, &a, &since, 1);
    while (!rc && a.watch) {
        sleep(WATCH_S);
        rc = show(c, &a, &since, 0);
    }
    json_decref(a.ckpt);
    return rc;
}
