/*
 * report_extras.c - the sections of `advctl report` drawn from the
 * evaluations' reports (daemon/extras.c): reliability diagrams with the
 * calibration table, corruption heat maps and bars, and explanations
 * (saliency fragility, the explanation methods compared, the
 * randomisation test, local surrogates, warnings and pictures). Every plot
 * overlays the report's jobs in their colours; a job without a report
 * says what to run.
 */
#include "client/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- calibration */

static void reliability_plot(FILE *f, const report *r, const char *which, const char *title)
{
    static rep_series ss;
    char id[64];
    snprintf(id, sizeof id, "reliability-%s", which);
    for (int c = 0; id[c]; c++)
        id[c] = id[c] == '.' ? '-' : id[c];
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "calibration"), *b;
        char what[128], name[160], path[64];
        size_t k;
        if (!d)
            continue;
        snprintf(path, sizeof path, "%s.ece", which);
        snprintf(what, sizeof what, "ECE %.3f", ctl_number(d, path));
        rep_series_name(r, i, what, name, sizeof name);
        rep_curve *c = rep_add_series(&ss, name, i, 0);
        if (!c)
            continue;
        /* which is "inputs.when", e.g. "clean.before" */
        snprintf(path, sizeof path, "%.*s", (int)strcspn(which, "."), which);
        const json_t *bins = json_object_get(
            json_object_get(json_object_get(d, path), which + strcspn(which, ".") + 1), "bins");
        json_array_foreach(bins, k, b) {
            if (ctl_number(b, "count") <= 0)
                continue;
            if (r->n == 1)   /* one job: bars over the bins */
                rep_curve_add(c, 50 * (ctl_number(b, "lo") + ctl_number(b, "hi")), 100 * ctl_number(b, "accuracy"));
            else
                rep_curve_add(c, 100 * ctl_number(b, "confidence"), 100 * ctl_number(b, "accuracy"));
        }
        if (r->n == 1 && json_array_size(bins))
            ss.s[ss.n - 1].bar_width = 100.0 / json_array_size(bins);
    }
    rep_series_done(&ss);
    svg_plot p = rep_plot(id, title, "confidence (%)", "accuracy (%)", 0, 100);
    p.xmin = 0;
    p.xmax = 100;
    p.diagonal = 1;
    p.caption = r->n == 1 ? "bars: accuracy of the examples whose confidence falls in the bin; "
                            "dashed: perfect calibration"
                          : "points: mean confidence and accuracy of each non-empty bin; "
                            "dashed: perfect calibration";
    svg_lines(f, &p, ss.s, ss.n);
    rep_series_free(&ss);
}

static void calibration_table(FILE *f, const report *r)
{
    static const char *const inputs[] = {"clean", "adversarial"};
    fputs("<table>\n<tr><th>job</th><th>inputs</th><th>examples</th><th>accuracy (%)</th>"
          "<th>temperature</th><th>ECE</th><th>ECE after T</th><th>NLL (nats)</th>"
          "<th>NLL after T</th><th>Brier</th><th>Brier after T</th></tr>\n",
          f);
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "calibration");
        for (int k = 0; d && k < 2; k++) {
            const json_t *ba = json_object_get(d, inputs[k]);
            char what[96];
            if (k)
                snprintf(what, sizeof what, "%s at eps %g", rep_str(d, "attack"),
                         ctl_number(d, "eps"));
            fputs("<tr><td>", f);
            html_escape(f, rep_job_name(r, i));
            fputs("</td><td>", f);
            html_escape(f, k ? what : "clean");
            fprintf(f, "</td><td class=\"num\">%.0f</td><td class=\"num\">%.1f</td>"
                       "<td class=\"num\">%.3f</td>",
                    ctl_number(ba, "before.n"), 100 * ctl_number(ba, "before.accuracy"),
                    ctl_number(d, "temperature"));
            static const char *const cols[] = {"before.ece", "after.ece", "before.nll",
                                               "after.nll", "before.brier", "after.brier"};
            for (int c = 0; c < 6; c++)
                fprintf(f, "<td class=\"num\">%.3f</td>", ctl_number(ba, cols[c]));
            fputs("</tr>\n", f);
        }
    }
    fputs("</table>\n", f);
}

void rep_calibration(FILE *f, const report *r)
{
    rep_section(f, "calibration", "Does it know when it is wrong? (calibration)",
            "Reliability diagrams over 15 equal-width confidence bins, on the evaluated test "
            "images and on their adversarial versions, before and after temperature scaling "
            "(the temperature T is fitted by minimising NLL on the training job's validation "
            "split). ECE: expected calibration error; lower is better.");
    if (!rep_missing_reports(f, r, "calibration", ""))
        return;
    fputs("<div class=\"plots\">\n", f);
    reliability_plot(f, r, "clean.before", "Clean inputs");
    reliability_plot(f, r, "clean.after", "Clean inputs, after temperature scaling");
    reliability_plot(f, r, "adversarial.before", "Adversarial inputs");
    reliability_plot(f, r, "adversarial.after", "Adversarial inputs, after temperature scaling");
    fputs("</div>\n", f);
    calibration_table(f, r);
}

/* ---------------------------------------------------------- corruptions */

static void corruption_heat(FILE *f, const report *r, int i, const json_t *d)
{
    const json_t *list = json_object_get(d, "corruptions"), *c;
    size_t nrows = json_array_size(list), k;
    const char *rows[32], *cols[6] = {"clean", "1", "2", "3", "4", "5"};
    char names[32][64], id[48], title[160];
    double v[32 * 6];
    if (nrows > 32)
        nrows = 32;
    json_array_foreach(list, k, c) {
        if (k >= nrows)
            break;
        snprintf(names[k], sizeof names[k], "%s%s", rep_str(c, "name"),
                 json_is_true(json_object_get(c, "seen_in_training")) ? " (trained)" : "");
        for (char *p = names[k]; *p; p++)
            *p = *p == '_' ? ' ' : *p;
        rows[k] = names[k];
        v[k * 6] = 100 * ctl_number(d, "clean_accuracy");
        for (int s = 0; s < 5; s++)
            v[k * 6 + 1 + s] =
                100 * json_number_value(json_array_get(json_object_get(c, "accuracy"), s));
    }
    snprintf(id, sizeof id, "corruptions-heat-%lld", (long long)r->job[i].id);
    snprintf(title, sizeof title, "Accuracy (%%) per corruption and severity, %s",
             rep_job_name(r, i));
    svg_plot p = rep_plot(id, title, "severity", "accuracy (%)", 0, 100);
    svg_heat(f, &p, rows, (int)nrows, cols, 6, v);
}

void rep_corruptions(FILE *f, const report *r)
{
    static rep_series ss;
    rep_categories cats = {.n = 0};
    rep_section(f, "corruptions", "Does it survive a shifted world? (corruptions)",
            "Accuracy on the evaluated test images under 9 corruptions at severities 1-5 "
            "(CIFAR-10-C / MNIST-C constants), against the clean accuracy. Families marked "
            "(trained) were among the training job's augmentations; its mean corruption "
            "accuracy leaves them out.");
    rep_category(&cats, "clean");
    if (!rep_missing_reports(f, r, "corruptions", " --corruptions")) {
        rep_corruption_pictures(f, r);
        return;
    }
    fputs("<div class=\"plots\">\n", f);
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "corruptions"), *c;
        size_t k;
        char name[128];
        if (!d)
            continue;
        corruption_heat(f, r, i, d);
        rep_series_name(r, i, "", name, sizeof name);
        rep_curve *cv = rep_add_series(&ss, name, i, 0);
        if (!cv)
            continue;
        ss.s[ss.n - 1].bars = 1;
        rep_curve_add(cv, 0, 100 * ctl_number(d, "clean_accuracy"));
        json_array_foreach(json_object_get(d, "corruptions"), k, c) {
            char label[64];
            snprintf(label, sizeof label, "%s", rep_str(c, "name"));
            for (char *p = label; *p; p++)
                *p = *p == '_' ? ' ' : *p;
            double mean = 0;
            for (int s = 0; s < 5; s++)
                mean += json_number_value(json_array_get(json_object_get(c, "accuracy"), s)) / 5;
            rep_bar_at(cv, rep_category(&cats, label), 100 * mean);
        }
    }
    rep_series_done(&ss);
    svg_plot p = rep_plot("corruptions-mean", "Mean accuracy over severities 1-5", "corruption",
                         "accuracy (%)", 0, 100);
    if (ss.n)
        svg_bars(f, &p, cats.cats, cats.n, ss.s, ss.n);
    fputs("</div>\n", f);
    rep_series_free(&ss);
    rep_corruption_pictures(f, r);
}

/* -------------------------------------------------------- explanations */

static void explanation_table(FILE *f, const report *r)
{
    fputs("<table>\n<tr><th>job</th><th>examples</th><th>IG steps</th><th>IG completeness "
          "error (% of |f(x) - f(0)|)</th><th>SmoothGrad samples, sigma</th><th>fragility "
          "eps</th><th>centre-of-mass shift, random δ (px)</th><th>centre-of-mass shift, "
          "adversarial δ (px)</th></tr>\n",
          f);
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations");
        if (!d)
            continue;
        fputs("<tr><td>", f);
        html_escape(f, rep_job_name(r, i));
        fprintf(f, "</td><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>"
                   "<td class=\"num\">%.2f</td><td class=\"num\">%.0f, %g</td>"
                   "<td class=\"num\">%.4g</td><td class=\"num\">%.2f</td>"
                   "<td class=\"num\">%.2f</td></tr>\n",
                ctl_number(d, "n"), ctl_number(d, "ig.steps"), 100 * ctl_number(d, "ig.rel_error"),
                ctl_number(d, "smoothgrad.samples"), ctl_number(d, "smoothgrad.sigma"),
                ctl_number(d, "fragility.eps"), ctl_number(d, "fragility.random.com_shift"),
                ctl_number(d, "fragility.adversarial.com_shift"));
    }
    fputs("</table>\n", f);
}

static void explanation_warnings(FILE *f, const report *r)
{
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations"), *w;
        size_t k;
        json_array_foreach(json_object_get(d, "warnings"), k, w) {
            fputs("<p class=\"warn\"><b>Warning</b> (", f);
            html_escape(f, rep_job_name(r, i));
            fputs("): ", f);
            html_escape(f, json_string_value(w));
            fputs("</p>\n", f);
        }
    }
}

/* Per explanation method: cost, fragility, the randomisation test. */
static void methods_table(FILE *f, const report *r)
{
    fputs("<table>\n<tr><th>job</th><th>method</th><th>forward, backward passes per "
          "example</th><th>seconds per 100 examples</th><th>top-k overlap, random δ (%)</th>"
          "<th>top-k overlap, adversarial δ (%)</th><th>rank correlation, adversarial δ</th>"
          "<th>rank correlation, all layers randomised</th><th>randomisation test</th></tr>\n",
          f);
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations"), *m;
        const char *name;
        json_object_foreach(json_object_get(d, "methods"), name, m) {
            const json_t *rnd = json_object_get(m, "randomisation");
            int flagged = json_is_true(json_object_get(rnd, "flagged"));
            fputs("<tr><td>", f);
            html_escape(f, rep_job_name(r, i));
            fputs("</td><td>", f);
            html_escape(f, name);
            fprintf(f, "</td><td class=\"num\">%.0f, %.0f</td><td class=\"num\">%.3g</td>"
                       "<td class=\"num\">%.1f</td><td class=\"num\">%.1f</td>"
                       "<td class=\"num\">%.3f</td><td class=\"num\">%.3f</td>",
                    ctl_number(m, "forward"), ctl_number(m, "backward"),
                    ctl_number(m, "seconds_per_100"),
                    100 * ctl_number(m, "fragility.random.topk"),
                    100 * ctl_number(m, "fragility.adversarial.topk"),
                    ctl_number(m, "fragility.adversarial.spearman"), ctl_number(rnd, "final"));
            if (!rnd)
                fputs("<td>-</td></tr>\n", f);
            else if (flagged)
                fprintf(f, "<td class=\"flip\">fails (stays above %.2f)</td></tr>\n",
                        ctl_number(rnd, "threshold"));
            else
                fputs("<td>passes</td></tr>\n", f);
        }
    }
    fputs("</table>\n", f);
}

/* Top-k overlap of each method's map under a random and an adversarial δ
 * (one job: both; several: the adversarial one, a bar per job). */
static void methods_fragility(FILE *f, const report *r)
{
    static rep_series ss;
    rep_categories cats = {.n = 0};
    static const char *const deltas[] = {"random", "adversarial"};
    for (int i = 0; i < r->n; i++) {
        const json_t *methods = json_object_get(rep_latest_report(&r->job[i], "explanations"),
                                                "methods"), *m;
        const char *name;
        for (int d = r->n > 1; d < 2 && json_object_size(methods); d++) {
            char what[64], label[160];
            snprintf(what, sizeof what, "%s δ", deltas[d]);
            rep_series_name(r, i, what, label, sizeof label);
            rep_curve *c = rep_add_series(&ss, label, r->n > 1 ? i : d, 0);
            if (!c)
                continue;
            ss.s[ss.n - 1].bars = 1;
            json_object_foreach((json_t *)methods, name, m) {
                char path[64];
                snprintf(path, sizeof path, "fragility.%s.topk", deltas[d]);
                rep_bar_at(c, rep_category(&cats, name), 100 * ctl_number(m, path));
            }
        }
    }
    for (int i = 0; i < ss.n; i++)
        while (ss.c[i].n < cats.n)
            rep_curve_add(&ss.c[i], ss.c[i].n, NAN);
    rep_series_done(&ss);
    if (ss.n) {
        svg_plot p = rep_plot("fragility-methods", "Top-k overlap of each method's map under δ",
                             "explanation method", "top-k pixels kept (%)", 0, 100);
        svg_bars(f, &p, cats.cats, cats.n, ss.s, ss.n);
    }
    rep_series_free(&ss);
}

/* Spearman correlation of each method's map with the trained model's as
 * layers are randomised from the top (Adebayo et al. 2018). */
static void randomisation_plot(FILE *f, const report *r)
{
    static rep_series ss;
    const json_t *layers = NULL;
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations"), *m, *v;
        const char *name;
        int k = 0;
        json_object_foreach(json_object_get(d, "methods"), name, m) {
            const json_t *rnd = json_object_get(m, "randomisation");
            size_t l;
            char label[160];
            if (!rnd)
                continue;
            layers = json_object_get(rnd, "layers");
            rep_series_name(r, i, name, label, sizeof label);
            rep_curve *c = rep_add_series(&ss, label, r->n > 1 ? i : k, r->n > 1 ? k % 4 : 0);
            k++;
            if (!c)
                continue;
            rep_curve_add(c, 0, 1);
            json_array_foreach(json_object_get(rnd, "spearman"), l, v)
                rep_curve_add(c, (double)l + 1, json_number_value(v));
        }
    }
    rep_series_done(&ss);
    if (ss.n) {
        char caption[512] = "layers randomised cumulatively from the top:";
        const json_t *v;
        size_t l;
        json_array_foreach(layers, l, v)
            snprintf(caption + strlen(caption), sizeof caption - strlen(caption), "%s %zu = %s",
                     l ? "," : "", l + 1, json_string_value(v));
        strncat(caption, "; a map that stays near 1 does not depend on what the model learned",
                sizeof caption - strlen(caption) - 1);
        svg_plot p = rep_plot("randomisation", "Model randomisation test",
                             "layers randomised (from the top)",
                             "rank correlation with the trained model's map", NAN, 1);
        p.xinteger = 1;
        p.caption = caption;
        svg_lines(f, &p, ss.s, ss.n);
    }
    rep_series_free(&ss);
}

static void methods_section(FILE *f, const report *r)
{
    int any = 0;
    for (int i = 0; i < r->n; i++)
        any |= json_object_size(
                   json_object_get(rep_latest_report(&r->job[i], "explanations"), "methods")) > 0;
    if (!any)
        return;
    fputs("<h3>Explanation methods compared</h3>\n", f);
    fputs("<div class=\"plots\">\n", f);
    methods_fragility(f, r);
    randomisation_plot(f, r);
    fputs("</div>\n", f);
    methods_table(f, r);
}

static void surrogates_table(FILE *f, const report *r)
{
    int header = 0;
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations"), *sg;
        const char *name;
        json_object_foreach(json_object_get(d, "surrogates"), name, sg) {
            if (!header++)
                fputs("<h3>Local surrogates</h3>\n<table>\n<tr><th>job</th><th>surrogate</th>"
                      "<th>of the</th><th>examples</th><th>samples</th><th>features</th>"
                      "<th>weighted R² mean</th><th>weighted R² min</th></tr>\n",
                      f);
            fputs("<tr><td>", f);
            html_escape(f, rep_job_name(r, i));
            fputs("</td><td>", f);
            html_escape(f, name);
            fputs("</td><td>", f);
            html_escape(f, rep_str(sg, "target"));
            fprintf(f, "</td><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>"
                       "<td class=\"num\">%.0f</td><td class=\"num\">%.3f</td>"
                       "<td class=\"num\">%.3f</td></tr>\n",
                    ctl_number(sg, "n"), ctl_number(sg, "samples"), ctl_number(sg, "features"),
                    ctl_number(sg, "r2_mean"), ctl_number(sg, "r2_min"));
        }
    }
    if (header)
        fputs("</table>\n", f);
}

void rep_explanations(FILE *f, const report *r)
{
    static rep_series ss;
    static const char *const cats[] = {"top-k overlap, random δ", "top-k overlap, adversarial δ",
                                       "rank correlation, random δ",
                                       "rank correlation, adversarial δ"};
    static const char *const keys[] = {"fragility.random.topk", "fragility.adversarial.topk",
                                       "fragility.random.spearman",
                                       "fragility.adversarial.spearman"};
    rep_section(f, "explanations", "Is it looking at the right pixels? (explanations)",
            "Fragility of saliency maps (Ghorbani et al. 2019): how much of the map survives a "
            "small perturbation that keeps the predicted label, random or chosen to move the "
            "map; 1 means unchanged. A robust model's explanations should move less.");
    rep_missing_reports(f, r, "explanations", " --explain");
    for (int i = 0; i < r->n; i++) {
        const json_t *d = rep_latest_report(&r->job[i], "explanations");
        char name[128];
        if (!d)
            continue;
        rep_series_name(r, i, "", name, sizeof name);
        rep_curve *c = rep_add_series(&ss, name, i, 0);
        if (!c)
            continue;
        ss.s[ss.n - 1].bars = 1;
        for (int k = 0; k < 4; k++)
            rep_curve_add(c, k, ctl_number(d, keys[k]));
    }
    rep_series_done(&ss);
    if (ss.n) {
        fputs("<div class=\"plots\">\n", f);
        svg_plot p = rep_plot("fragility", "Saliency map under a perturbation", "",
                             "similarity (1 = unchanged)", 0, 1);
        svg_bars(f, &p, cats, 4, ss.s, ss.n);
        fputs("</div>\n", f);
        explanation_table(f, r);
    }
    rep_series_free(&ss);
    explanation_warnings(f, r);
    methods_section(f, r);
    surrogates_table(f, r);
    rep_explanation_pictures(f, r);
}
