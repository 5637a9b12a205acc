/*
 * report_monitor.c - the drift monitor's section of `advctl report`: for
 * each job with a monitor (`advctl monitor JOB --window N`), the
 * label-free accuracy estimates of every window (CBPE and ATC, the dashed
 * line) against the window's number, and a table of the windows with
 * their tests' p-values and their alarm, or the hint of what the inputs
 * look like. The windows come from the daemon's "monitor" answer as
 * `advctl monitor JOB --json` shows them.
 */
#include "client/report.h"

#include <stdio.h>

static const json_t *windows_of(const report_job *j)
{
    return json_object_get(j->monitor, "windows");
}

static void estimates_plot(FILE *f, const report *r)
{
    static rep_series ss;
    static const struct {
        const char *key, *label;
    } lines[] = {{"cbpe", "CBPE"}, {"atc", "ATC"}};
    for (int i = 0; i < r->n; i++)
        for (int l = 0; l < 2 && windows_of(&r->job[i]); l++) {
            char name[128];
            rep_series_name(r, i, lines[l].label, name, sizeof name);
            rep_curve *c = rep_add_series(&ss, name, r->n > 1 ? i : l, l);
            const json_t *w;
            size_t k;
            json_array_foreach(windows_of(&r->job[i]), k, w)
                if (c && json_is_number(json_object_get(w, lines[l].key)))
                    rep_curve_add(c, ctl_number(w, "seq"), 100 * ctl_number(w, lines[l].key));
        }
    rep_series_done(&ss);
    svg_plot p = rep_plot("monitor-estimates", "Estimated accuracy of each window", "window",
                          "estimated accuracy (%)", 0, 100);
    p.xinteger = 1;
    fputs("<div class=\"plots\">\n", f);
    svg_lines(f, &p, ss.s, ss.n);
    fputs("</div>\n", f);
    rep_series_free(&ss);
}

static void cell_p(FILE *f, const json_t *w, const char *key, const char *fmt, double scale)
{
    const json_t *v = json_object_get(w, key);
    fputs("<td class=\"num\">", f);
    if (json_is_number(v))
        fprintf(f, fmt, scale * json_number_value(v));
    else
        fputs("-", f);
    fputs("</td>", f);
}

static void window_row(FILE *f, const json_t *w)
{
    static const char *const pk[] = {"bbsd_p", "entropy_p", "confidence_p", "chi2_p", "mmd_p"};
    int alarm = json_is_true(json_object_get(w, "alarm"));
    char when[32];
    rep_when(json_object_get(w, "time"), when, sizeof when);
    fprintf(f, "<tr%s><td class=\"num\">%lld</td><td>%s</td><td class=\"num\">%lld</td><td>%s</td>",
            alarm ? " class=\"warn\"" : "", (long long)ctl_number(w, "seq"), when,
            (long long)ctl_number(w, "n"), alarm ? "<b>ALARM</b>" : "-");
    for (size_t i = 0; i < sizeof pk / sizeof *pk; i++)
        cell_p(f, w, pk[i], "%.2g", 1);
    cell_p(f, w, "cbpe", "%.1f", 100);
    cell_p(f, w, "atc", "%.1f", 100);
    fputs("<td>", f);
    const char *text = alarm ? rep_str(json_object_get(w, "stats"), "alarm_text")
                             : rep_str(w, "hint");
    html_escape(f, *text ? text : "-");
    fputs("</td></tr>\n", f);
}

static void windows_table(FILE *f, const report *r, int i)
{
    const json_t *m = json_object_get(r->job[i].monitor, "monitor"), *w;
    size_t k;
    fputs("<p>", f);
    if (r->n > 1) {
        html_escape(f, rep_job_name(r, i));
        fputs(": ", f);
    }
    fprintf(f, "windows of %lld images on the checkpoint of epoch %lld; %lld windows, "
               "<b>%lld alarm%s</b>; %lld images in the current window; temperature %.3f.</p>\n",
            (long long)ctl_number(m, "window"), (long long)ctl_number(m, "epoch"),
            (long long)ctl_number(m, "windows"), (long long)ctl_number(m, "alarms"),
            ctl_number(m, "alarms") == 1 ? "" : "s", (long long)ctl_number(m, "filled"),
            ctl_number(m, "temperature"));
    fputs("<table>\n<tr><th>window</th><th>closed</th><th>images</th><th>alarm</th>"
          "<th>BBSD p</th><th>entropy p</th><th>confidence p</th><th>chi-square p</th>"
          "<th>MMD p</th><th>CBPE (%)</th><th>ATC (%)</th><th>alarm, or what it looks "
          "like</th></tr>\n",
          f);
    json_array_foreach(windows_of(&r->job[i]), k, w)
        window_row(f, w);
    fputs("</table>\n", f);
}

void rep_monitor(FILE *f, const report *r)
{
    int any = 0;
    for (int i = 0; i < r->n; i++)
        any += json_array_size(windows_of(&r->job[i])) > 0;
    rep_section(f, "monitor", "Drift monitor",
                "A monitor compares each window of the inputs scored through it (advctl predict "
                "--monitor) with the job's held-out examples: per-class softmax (BBSD), entropy "
                "and confidence by Kolmogorov-Smirnov, the predicted classes by chi-square, the "
                "penultimate features by MMD; CBPE and ATC estimate the accuracy without labels.");
    if (!any) {
        for (int i = 0; i < r->n; i++) {
            char what[192];
            snprintf(what, sizeof what, "%s has no monitor windows.", rep_job_name(r, i));
            rep_todo(f, what, "advctl monitor %lld --window 500", (long long)r->job[i].id);
        }
        return;
    }
    estimates_plot(f, r);
    for (int i = 0; i < r->n; i++)
        if (json_array_size(windows_of(&r->job[i])))
            windows_table(f, r, i);
}
