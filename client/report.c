/*
 * report.c - `advctl report JOB [JOB...] [-o FILE]`: everything advd knows
 * about one or more training jobs as one self-contained HTML page (html.c)
 * with plots drawn as inline SVG (svg.c), for a browser, offline.
 *
 * The client asks the daemon over the ordinary protocol: version, then per
 * job status, metrics, results (with its eval jobs' evaluations and
 * reports), checkpoints, and images of each picture-drawing eval job; it
 * computes the rest (e.g. per-example survival across attacks) itself. The
 * page is written as the connecting user, through a temporary file renamed
 * into place, so a failed report never leaves half a file. Default file:
 * advd-report-JOB[-JOB...].html.
 *
 * Page: overview (side by side when several jobs), then training curves,
 * robustness against eps with the evaluations and their warnings,
 * survival across attacks, calibration, corruptions, explanations,
 * adversarial examples, checkpoints (report_figs.c, report_pics.c). A
 * section without data says which command fills it.
 */
#include "client/report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

const char *rep_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}


void rep_todo(FILE *f, const char *what, const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fputs("<p class=\"todo\">", f);
    html_escape(f, what);
    fputs(" To fill this section, run <code>", f);
    html_escape(f, cmd);
    fputs("</code> and make the report again.</p>\n", f);
}

const char *rep_job_name(const report *r, int i)
{
    static char buf[REPORT_MAX_JOBS][96];
    const char *name = rep_str(r->job[i].status, "name");
    snprintf(buf[i], sizeof buf[i], *name ? "job %lld (%.60s)" : "job %lld",
             (long long)r->job[i].id, name);
    return buf[i];
}

const json_t *rep_latest_report(const report_job *j, const char *kind)
{
    return ctl_latest_report(json_object_get(j->results, "reports"), kind);
}

int rep_is_drawing(const json_t *eval)
{
    const char *kind = rep_str(json_object_get(eval, "spec"), "images");
    return *kind && strcmp(kind, "none");
}

void rep_when(const json_t *v, char *buf, size_t len)
{
    if (!json_is_number(v)) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)json_number_value(v);
    struct tm tm;
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
}

/* ------------------------------------------------------------ fetching */

/* The pictures of each drawing eval job of j (the latest per kind). */
static int fetch_pictures(ctl *c, report_job *j)
{
    const json_t *e;
    size_t i;
    int64_t done = 0;
    j->pictures = json_object();
    json_array_foreach(json_object_get(j->results, "results"), i, e) {
        int64_t job = json_integer_value(json_object_get(e, "job"));
        if (!rep_is_drawing(e) || job == done)
            continue;
        json_t *im, *files = json_object(), *f;
        size_t k;
        int rc = ctl_call_job(c, "images", job, &im);
        if (rc) {
            json_decref(files);
            return rc;
        }
        json_array_foreach(json_object_get(im, "images"), k, f) {
            uint8_t *bytes;
            size_t n;
            if ((rc = ctl_image_bytes(c, job, rep_str(f, "name"), json_object_get(f, "data"),
                                      &bytes, &n)))
                break;
            char *b64 = adv_base64_encode(bytes, n, NULL);
            free(bytes);
            json_object_set_new(files, rep_str(f, "name"), b64 ? json_string(b64) : json_null());
            free(b64);
        }
        json_object_set_new(j->pictures, rep_str(json_object_get(e, "spec"), "images"),
                            json_pack("{s:I, s:o}", "job", (json_int_t)job, "files", files));
        json_decref(im);
        if (rc)
            return rc;
        done = job;
    }
    return 0;
}

static int fetch_job(ctl *c, report_job *j)
{
    int rc = ctl_call_job(c, "status", j->id, &j->status);
    if (rc)
        return rc;
    if (!strcmp(rep_str(j->status, "kind"), "eval")) {
        const json_t *parent = json_object_get(j->status, "parent");
        return ctl_usage("report", "job %lld is an evaluation: give its training job (%lld)",
                         (long long)j->id, (long long)json_integer_value(parent));
    }
    if ((rc = ctl_call_job(c, "metrics", j->id, &j->metrics)) ||
        (rc = ctl_call_job(c, "results", j->id, &j->results)) ||
        (rc = ctl_call_job(c, "checkpoints", j->id, &j->checkpoints)) ||
        (json_object_get(j->status, "monitor") &&
         (rc = ctl_call_job(c, "monitor", j->id, &j->monitor))))
        return rc;
    return fetch_pictures(c, j);
}

static void free_report(report *r)
{
    for (int i = 0; i < r->n; i++) {
        report_job *j = &r->job[i];
        json_decref(j->status);
        json_decref(j->metrics);
        json_decref(j->results);
        json_decref(j->checkpoints);
        json_decref(j->pictures);
        json_decref(j->monitor);
    }
}

/* ------------------------------------------------------------ overview */

static void cell_text(FILE *f, const char *s)
{
    fputs("<td>", f);
    html_escape(f, *s ? s : "-");
    fputs("</td>", f);
}

static void cell_num(FILE *f, double v, const char *fmt, double scale)
{
    if (isnan(v)) {
        fputs("<td class=\"num\">-</td>", f);
        return;
    }
    fputs("<td class=\"num\">", f);
    fprintf(f, fmt, v * scale);
    fputs("</td>", f);
}

/* The last value of a metric key, NaN when never recorded. */
static double last_metric(const report_job *j, const char *key)
{
    double v = NAN;
    const json_t *m;
    size_t i;
    json_array_foreach(json_object_get(j->metrics, "metrics"), i, m) {
        if (!strcmp(rep_str(m, "key"), key) && json_is_number(json_object_get(m, "value")))
            v = json_number_value(json_object_get(m, "value"));
    }
    return v;
}

static int epochs_done(const report_job *j)
{
    int done = 0;
    const json_t *m;
    size_t i;
    json_array_foreach(json_object_get(j->metrics, "metrics"), i, m) {
        if (!strcmp(rep_str(m, "key"), "train_loss"))
            done = (int)json_integer_value(json_object_get(m, "epoch")) + 1;
    }
    return done;
}

/* A spec value as text. */
static void spec_text(const json_t *spec, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(spec, key);
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
    else
        snprintf(buf, len, "-");
}

typedef enum { ROW_SPEC, ROW_FIELD, ROW_TIME, ROW_METRIC, ROW_SUMMARY } row_kind;

typedef struct {
    const char *label;
    row_kind kind;
    const char *key;     /* spec key, status field, metric key; summary: index */
    int percent;         /* 1: a fraction shown as %; ROW_SPEC: a setting of the
                            training attack; ROW_SUMMARY: 2 a count */
    int results;         /* 0: the job's table, 1: the results' */
} overview_row;

static const overview_row overview_rows[] = {
    {"name", ROW_FIELD, "name", 0, 0},
    {"state", ROW_FIELD, "state", 0, 0},
    {"owner", ROW_FIELD, "user", 0, 0},
    {"data set", ROW_SPEC, "dataset", 0, 0},
    {"model", ROW_SPEC, "model", 0, 0},
    {"training method", ROW_SPEC, "method", 0, 0},
    {"training eps", ROW_SPEC, "eps", 1, 0},
    {"norm", ROW_SPEC, "norm", 1, 0},
    {"attack steps in training", ROW_SPEC, "steps", 1, 0},
    {"epochs", ROW_SPEC, "epochs", 0, 0},
    {"batch", ROW_SPEC, "batch", 0, 0},
    {"optimizer", ROW_SPEC, "optimizer", 0, 0},
    {"learning rate", ROW_SPEC, "lr", 0, 0},
    {"schedule", ROW_SPEC, "schedule", 0, 0},
    {"training images", ROW_SPEC, "train_limit", 0, 0},
    {"seed", ROW_SPEC, "seed", 0, 0},
    {"created", ROW_TIME, "created", 0, 1},
    {"started", ROW_TIME, "started", 0, 1},
    {"finished", ROW_TIME, "finished", 0, 1},
    {"validation clean accuracy (%)", ROW_METRIC, "val_clean_acc", 1, 1},
    {"validation robust accuracy (%)", ROW_METRIC, "val_robust_acc", 1, 1},
    {"test clean accuracy (%)", ROW_METRIC, "test_clean_acc", 1, 1},
    {"test PGD-20 accuracy (%)", ROW_METRIC, "test_pgd20_acc", 1, 1},
    {"mean corruption accuracy (%)", ROW_SUMMARY, "0", 1, 1},
    {"ECE, clean", ROW_SUMMARY, "1", 0, 1},
    {"ECE after temperature scaling", ROW_SUMMARY, "2", 0, 1},
    {"saliency top-k overlap, random δ (%)", ROW_SUMMARY, "3", 1, 1},
    {"saliency top-k overlap, adversarial δ (%)", ROW_SUMMARY, "4", 1, 1},
    {"surrogate R² (LIME, else Gaussian)", ROW_SUMMARY, "5", 0, 1},
    {"explanation methods failing randomisation", ROW_SUMMARY, "6", 2, 1},
};

static void overview_cell(FILE *f, const report_job *j, const overview_row *row)
{
    const json_t *st = j->status, *spec = json_object_get(st, "spec");
    char b[128];
    switch (row->kind) {
    case ROW_SPEC:
        spec_text(spec, row->key, b, sizeof b);
        if (row->percent && !strcmp(rep_str(spec, "method"), "clean"))
            snprintf(b, sizeof b, "- (clean training)");
        cell_text(f, b);
        break;
    case ROW_FIELD:
        if (!strcmp(row->key, "user") && json_is_integer(json_object_get(st, "owner"))) {
            snprintf(b, sizeof b, "%s (uid %lld)", rep_str(st, "user"),
                     (long long)json_integer_value(json_object_get(st, "owner")));
            cell_text(f, b);
        } else if (!strcmp(row->key, "state") && strcmp(rep_str(st, "state"), "succeeded")) {
            snprintf(b, sizeof b, "%s, %.0f %%", rep_str(st, "state"),
                     100 * ctl_number(st, "progress"));
            cell_text(f, b);
        } else {
            cell_text(f, rep_str(st, row->key));
        }
        break;
    case ROW_TIME:
        rep_when(json_object_get(st, row->key), b, sizeof b);
        cell_text(f, b);
        break;
    case ROW_METRIC:
        cell_num(f, last_metric(j, row->key), row->percent ? "%.1f" : "%.4g",
                 row->percent ? 100 : 1);
        break;
    case ROW_SUMMARY: {
        double v[CTL_SUMMARY];
        ctl_report_summary(json_object_get(j->results, "reports"), v);
        /* percent: 1 a percentage, 2 a count, 0 a plain figure */
        cell_num(f, v[atoi(row->key)], row->percent == 1 ? "%.1f" : row->percent ? "%.0f" : "%.3f",
                 row->percent == 1 ? 100 : 1);
        break;
    }
    }
}

static void overview_table(FILE *f, const report *r, int results)
{
    fputs("<table>\n<tr><th></th>", f);
    for (int i = 0; i < r->n; i++) {
        fprintf(f, "<th><span class=\"swatch\" style=\"color:%s\">&#9632;</span>",
                svg_colour(i));
        html_escape(f, rep_job_name(r, i));
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    for (size_t k = 0; k < sizeof overview_rows / sizeof overview_rows[0]; k++) {
        const overview_row *row = &overview_rows[k];
        if (row->results != results ||
            (!strcmp(row->key, "user") && !json_object_get(r->job[0].status, "user")))
            continue;   /* user: a daemon that does not record owners */
        fputs("<tr><th>", f);
        html_escape(f, row->label);
        fputs("</th>", f);
        for (int i = 0; i < r->n; i++)
            overview_cell(f, &r->job[i], row);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* The jobs side by side: settings, then times and headline results. */
static void overview(FILE *f, const report *r)
{
    fputs("<h2 id=\"overview\">Overview</h2>\n<div class=\"tables\">\n", f);
    overview_table(f, r, 0);
    overview_table(f, r, 1);
    fputs("</div>\n", f);
}

/* A running, queued or failed job says so, and how far it got. */
static void job_state(FILE *f, const report_job *j)
{
    const json_t *st = j->status;
    const char *state = rep_str(st, "state");
    int epochs = (int)ctl_number(json_object_get(st, "spec"), "epochs");
    if (!strcmp(state, "succeeded"))
        return;
    int final = !strcmp(state, "failed") || !strcmp(state, "cancelled");
    fprintf(f, "<p class=\"%s\">Job %lld is <b>", final ? "warn" : "running", (long long)j->id);
    html_escape(f, state);
    fprintf(f, "</b>: %.0f %% done, %d of %d epochs recorded.", 100 * ctl_number(st, "progress"),
            epochs_done(j), epochs);
    if (json_is_string(json_object_get(st, "error"))) {
        fputs(" Error: ", f);
        html_escape(f, rep_str(st, "error"));
        fputs(".", f);
    }
    if (!final)
        fprintf(f, " This report shows what was recorded so far; follow the job with "
                   "<code>advctl watch %lld</code> and make the report again when it ends.",
                (long long)j->id);
    fputs("</p>\n", f);
}

static void full_specs(FILE *f, const report *r)
{
    for (int i = 0; i < r->n; i++) {
        const json_t *spec = json_object_get(r->job[i].status, "spec"), *v;
        const char *key;
        fputs("<details><summary>full spec of ", f);
        html_escape(f, rep_job_name(r, i));
        fputs("</summary>\n<table>\n", f);
        json_object_foreach((json_t *)spec, key, v) {
            char b[256];
            spec_text(spec, key, b, sizeof b);
            fputs("<tr><th>", f);
            html_escape(f, key);
            fputs("</th>", f);
            cell_text(f, b);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n</details>\n", f);
    }
}

/* ---------------------------------------------------------- checkpoints */

static void checkpoints(FILE *f, const report *r)
{
    fputs("<h2 id=\"checkpoints\">Checkpoints</h2>\n", f);
    for (int i = 0; i < r->n; i++) {
        const json_t *k, *list = json_object_get(r->job[i].checkpoints, "checkpoints");
        size_t n;
        if (r->n > 1) {
            fputs("<h3>", f);
            html_escape(f, rep_job_name(r, i));
            fputs("</h3>\n", f);
        }
        if (!json_array_size(list)) {
            rep_todo(f, "No checkpoint stored yet.", "advctl watch %lld",
                     (long long)r->job[i].id);
            continue;
        }
        fputs("<table>\n<tr><th>id</th><th>epoch</th><th>step</th><th>validation robust "
              "accuracy (%)</th><th>best</th><th>size (bytes)</th><th>created</th></tr>\n",
              f);
        json_array_foreach(list, n, k) {
            char b[64];
            fprintf(f, "<tr><td class=\"num\">%lld</td><td class=\"num\">%lld</td>"
                       "<td class=\"num\">%lld</td>",
                    (long long)ctl_number(k, "id"), (long long)ctl_number(k, "epoch"),
                    (long long)ctl_number(k, "step"));
            cell_num(f, ctl_number(k, "val_robust_acc"), "%.1f", 100);
            cell_text(f, json_is_true(json_object_get(k, "best")) ? "best" : "");
            cell_num(f, ctl_number(k, "size"), "%.0f", 1);
            rep_when(json_object_get(k, "created"), b, sizeof b);
            cell_text(f, b);
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
}

/* ---------------------------------------------------------------- page */

static void page(FILE *f, const report *r, const json_t *version)
{
    char title[256] = "advd report: job", now[64];
    for (int i = 0; i < r->n; i++)
        snprintf(title + strlen(title), sizeof title - strlen(title), "%s %lld",
                 i ? (i + 1 == r->n ? " and" : ",") : (r->n > 1 ? "s" : ""),
                 (long long)r->job[i].id);
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S %Z", localtime_r(&t, &tm));
    html_begin(f, title);
    fputs("<h1>", f);
    html_escape(f, title);
    fprintf(f, "</h1>\n<p class=\"meta\">Made %s by advctl %s from advd ", now, ADV_VERSION);
    html_escape(f, rep_str(version, "version"));
    fprintf(f, " (protocol %lld, SQLite ", (long long)ctl_number(version, "protocol"));
    html_escape(f, rep_str(version, "sqlite"));
    fputs("). Times are in the time zone of the line above. Each job keeps one colour in "
          "every plot.</p>\n",
          f);
    for (int i = 0; i < r->n; i++)
        job_state(f, &r->job[i]);
    overview(f, r);
    full_specs(f, r);
    rep_training(f, r);
    rep_robustness(f, r);
    rep_survival(f, r);
    rep_calibration(f, r);
    rep_corruptions(f, r);
    rep_explanations(f, r);
    rep_adversarial(f, r);
    rep_monitor(f, r);
    checkpoints(f, r);
    html_end(f);
}

/* ------------------------------------------------------------- command */

static int parse_args(int argc, char **argv, report *r, const char **out)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(*out = ctl_optarg("report", argc, argv, &i)))
                return ADVCTL_USAGE;
        } else if (a[0] == '-') {
            return ctl_usage("report", "unknown option '%s'", a);
        } else if (r->n == REPORT_MAX_JOBS) {
            return ctl_usage("report", "too many jobs: at most %d in one report",
                             REPORT_MAX_JOBS);
        } else if (ctl_parse_job(a, &r->job[r->n++].id)) {
            return ctl_usage("report", "invalid JOB '%s': expected a job id", a);
        }
    }
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < i; k++)
            if (r->job[i].id == r->job[k].id)
                return ctl_usage("report", "job %lld is given twice", (long long)r->job[i].id);
    return r->n ? 0 : ctl_usage("report", "missing JOB");
}

/* Write the page to path through a temporary file and a rename. */
static int write_page(const char *path, const report *r, const json_t *version)
{
    char tmp[CORE_PATH_JOIN];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp)
        return ctl_error("cannot write '%s': %s", path, strerror(ENAMETOOLONG));
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ctl_error("cannot create '%s': %s", path, strerror(errno));
    page(f, r, version);
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return ctl_error("cannot write '%s': %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

int cmd_report(ctl *c, int argc, char **argv)
{
    static report r;
    const char *out = NULL;
    json_t *version = NULL;
    char dflt[64 + 24 * REPORT_MAX_JOBS] = "advd-report";
    memset(&r, 0, sizeof r);
    int rc = parse_args(argc, argv, &r, &out);
    for (int i = 0; !rc && i < r.n; i++)
        rc = fetch_job(c, &r.job[i]);
    if (!rc)
        rc = ctl_call(c, "version", NULL, &version);
    if (!rc && !out) {
        for (int i = 0; i < r.n; i++)
            snprintf(dflt + strlen(dflt), sizeof dflt - strlen(dflt), "-%lld",
                     (long long)r.job[i].id);
        strcat(dflt, ".html");
        out = dflt;
    }
    if (!rc)
        rc = write_page(out, &r, version);
    if (!rc && c->json) {
        json_t *o = json_pack("{s:s, s:[]}", "path", out, "jobs");
        for (int i = 0; i < r.n; i++)
            json_array_append_new(json_object_get(o, "jobs"), json_integer(r.job[i].id));
        ctl_print_json(o);
        json_decref(o);
    } else if (!rc) {
        printf("%s\n", out);
    }
    json_decref(version);
    free_report(&r);
    return rc;
}
