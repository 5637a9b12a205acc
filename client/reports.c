/*
 * reports.c - how `advctl results` and `advctl compare` show what an
 * evaluation found beyond adversarial accuracy: calibration, corruptions
 * and explanations (the report objects of daemon/extras.c). The
 * reliability-diagram bins are left to --json.
 */
#include "client/advctl.h"

#include <math.h>
#include <string.h>

static double number(const json_t *o, const char *path)
{
    char key[64];
    const json_t *v = o;
    for (const char *p = path; v && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        v = json_object_get(v, key);
        p += n + (p[n] == '.');
    }
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *text(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

static void calibration_row(const char *name, const json_t *ba)
{
    printf("  %-12s %6.0f %6.1f%% %6.3f %6.3f %6.3f %6.3f %6.3f %6.3f\n", name,
           number(ba, "before.n"), 100 * number(ba, "before.accuracy"), number(ba, "before.ece"),
           number(ba, "after.ece"), number(ba, "before.nll"), number(ba, "after.nll"),
           number(ba, "before.brier"), number(ba, "after.brier"));
}

static void print_calibration(long long job, const json_t *d)
{
    printf("\ncalibration (job %lld): temperature %.3f fitted on %.0f %s examples; adversarial: "
           "%s at eps %g\n",
           job, number(d, "temperature"), number(d, "fit_n"), text(d, "fit_on"), text(d, "attack"),
           number(d, "eps"));
    printf("  %-12s %6s %7s %6s %6s %6s %6s %6s %6s\n", "INPUTS", "N", "ACC", "ECE", "ECE_T",
           "NLL", "NLL_T", "BRIER", "BRIER_T");
    calibration_row("clean", json_object_get(d, "clean"));
    calibration_row("adversarial", json_object_get(d, "adversarial"));
}

static void print_corruptions(long long job, const json_t *d)
{
    printf("\ncorruptions (job %lld): %.0f examples, clean %.1f%%, mean corruption accuracy "
           "%.1f%%\n",
           job, number(d, "n"), 100 * number(d, "clean_accuracy"),
           100 * number(d, "mean_accuracy"));
    printf("  %-16s %6s %6s %6s %6s %6s\n", "CORRUPTION", "S1", "S2", "S3", "S4", "S5");
    size_t i, s;
    json_t *c, *a;
    json_array_foreach(json_object_get(d, "corruptions"), i, c) {
        printf("  %-16s", text(c, "name"));
        json_array_foreach(json_object_get(c, "accuracy"), s, a)
            printf(" %5.1f%%", 100 * json_number_value(a));
        printf("\n");
    }
}

static void print_explanations(long long job, const json_t *d)
{
    const json_t *f = json_object_get(d, "fragility");
    printf("\nexplanations (job %lld): %.0f examples\n", job, number(d, "n"));
    printf("  integrated gradients, %.0f steps from zeros: completeness error %.2f%% of "
           "|f(x) - f(0)| (mean |gap| %.4g)\n",
           number(d, "ig.steps"), 100 * number(d, "ig.rel_error"), number(d, "ig.mean_abs_error"));
    printf("  smoothgrad: %.0f samples, sigma %g\n", number(d, "smoothgrad.samples"),
           number(d, "smoothgrad.sigma"));
    printf("  saliency fragility at eps %.4g (top-k: %.0f pixels; %.0f examples keep their "
           "label)\n",
           number(f, "eps"), number(f, "k"), number(f, "n"));
    printf("  %-12s %7s %9s %10s\n", "DELTA", "TOP-K", "SPEARMAN", "COM_SHIFT");
    const char *rows[2] = {"random", "adversarial"};
    for (int r = 0; r < 2; r++) {
        const json_t *v = json_object_get(f, rows[r]);
        printf("  %-12s %6.1f%% %9.3f %7.2f px\n", rows[r], 100 * number(v, "topk"),
               number(v, "spearman"), number(v, "com_shift"));
    }
}

void ctl_print_reports(const json_t *reports)
{
    size_t i;
    json_t *r;
    json_array_foreach(reports, i, r) {
        const char *kind = text(r, "kind");
        long long job = (long long)json_integer_value(json_object_get(r, "job"));
        const json_t *d = json_object_get(r, "data");
        if (!strcmp(kind, "calibration"))
            print_calibration(job, d);
        else if (!strcmp(kind, "corruptions"))
            print_corruptions(job, d);
        else if (!strcmp(kind, "explanations"))
            print_explanations(job, d);
    }
}

void ctl_report_summary(const json_t *reports, double out[CTL_SUMMARY])
{
    size_t i;
    json_t *r;
    for (int k = 0; k < CTL_SUMMARY; k++)
        out[k] = NAN;
    /* Reports come oldest job first: the latest of each kind wins. */
    json_array_foreach(reports, i, r) {
        const char *kind = text(r, "kind");
        const json_t *d = json_object_get(r, "data");
        if (!strcmp(kind, "corruptions")) {
            out[0] = number(d, "mean_accuracy");
        } else if (!strcmp(kind, "calibration")) {
            out[1] = number(d, "clean.before.ece");
            out[2] = number(d, "clean.after.ece");
        } else if (!strcmp(kind, "explanations")) {
            out[3] = number(d, "fragility.random.topk");
            out[4] = number(d, "fragility.adversarial.topk");
        }
    }
}
