/*
 * reports.c - how `advctl results` and `advctl compare` show what an
 * evaluation found beyond adversarial accuracy: calibration, corruptions
 * and explanations (the report objects of daemon/extras.c): every
 * method's cost, fragility and randomisation correlations, the
 * surrogates' R^2 and top features, and the maps the randomisation test
 * flagged. The reliability-diagram bins and all surrogate examples are
 * left to --json.
 */
#include "client/advctl.h"
#include "core/corrupt.h"

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

double ctl_number(const json_t *o, const char *path)
{
    return number(o, path);
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

/* Families the training job augmented with are marked, and held out of
 * the mean unless it saw them all. */
static void print_corruptions(long long job, const json_t *d)
{
    double held = number(d, "held_out");
    printf("\ncorruptions (job %lld): %.0f examples, clean %.1f%%, mean corruption accuracy "
           "%.1f%%",
           job, number(d, "n"), 100 * number(d, "clean_accuracy"),
           100 * number(d, "mean_accuracy"));
    if (held > 0 && held < CORE_NCORRUPTIONS)
        printf(" over the %.0f families held out of training (all: %.1f%%)", held,
               100 * number(d, "mean_accuracy_all"));
    printf("\n  %-16s %6s %6s %6s %6s %6s\n", "CORRUPTION", "S1", "S2", "S3", "S4", "S5");
    size_t i, s;
    json_t *c, *a;
    json_array_foreach(json_object_get(d, "corruptions"), i, c) {
        printf("  %-16s", text(c, "name"));
        json_array_foreach(json_object_get(c, "accuracy"), s, a)
            printf(" %5.1f%%", 100 * json_number_value(a));
        printf("%s\n", json_is_true(json_object_get(c, "seen_in_training"))
                           ? "  (seen in training)" : "");
    }
}

/* One row per method: cost, fragility, randomisation correlations. */
static void print_methods(const json_t *methods)
{
    const char *name;
    const json_t *m, *first = NULL;
    json_object_foreach((json_t *)methods, name, m) {
        first = m;
        break;
    }
    if (!first)
        return;
    const json_t *fr = json_object_get(first, "fragility"),
                 *rnd = json_object_get(first, "randomisation");
    size_t i;
    json_t *v;
    printf("  every method on %.0f examples: passes per example, seconds per 100 examples; "
           "fragility at eps %.4g (top-k %.0f pixels, %.0f search steps); Spearman of the map "
           "after randomising the layers top down (%.0f examples)\n",
           number(first, "n"), number(fr, "eps"), number(fr, "k"), number(fr, "tries"),
           number(rnd, "n"));
    printf("  %-10s %6s %5s %8s %9s %8s %9s ", "METHOD", "FWD", "BWD", "S/100", "TOPK_RAND",
           "TOPK_ADV", "SPEAR_ADV");
    json_array_foreach(json_object_get(rnd, "layers"), i, v)
        printf(" %6s", json_string_value(v));
    printf("  FLAG\n");
    json_object_foreach((json_t *)methods, name, m) {
        fr = json_object_get(m, "fragility");
        rnd = json_object_get(m, "randomisation");
        printf("  %-10s %6.0f %5.0f %8.3g %8.1f%% %7.1f%% %9.3f ", name, number(m, "forward"),
               number(m, "backward"), number(m, "seconds_per_100"),
               100 * number(fr, "random.topk"), 100 * number(fr, "adversarial.topk"),
               number(fr, "adversarial.spearman"));
        json_array_foreach(json_object_get(rnd, "spearman"), i, v)
            printf(" %6.2f", json_number_value(v));
        printf("  %s\n", json_is_true(json_object_get(rnd, "flagged")) ? "FLAGGED" : "-");
    }
}

static void print_surrogates(const json_t *surrogates)
{
    const char *name;
    const json_t *s;
    json_object_foreach((json_t *)surrogates, name, s) {
        printf("  %s surrogate of the %s: weighted R^2 mean %.3f (min %.3f) on %.0f examples, "
               "%.0f samples, %.0f features, ridge lambda %g",
               name, text(s, "target"), number(s, "r2_mean"), number(s, "r2_min"),
               number(s, "n"), number(s, "samples"), number(s, "features"), number(s, "lambda"));
        if (json_object_get(s, "sigma"))
            printf(", sigma %g\n", number(s, "sigma"));
        else
            printf(", %.0f px patches, %s fill, kernel width %g\n", number(s, "patch"),
                   text(s, "fill"), number(s, "kernel_width"));
        size_t i, j;
        json_t *e, *t;
        json_array_foreach(json_object_get(s, "examples"), i, e) {
            if (i == 3)   /* --json has them all */
                break;
            printf("    example %.0f (class %.0f, R^2 %.3f): top", number(e, "index"),
                   number(e, "class"), number(e, "r2"));
            json_array_foreach(json_object_get(e, "top"), j, t)
                printf(" (%.0f,%.0f) %+.3g", number(t, "y"), number(t, "x"), number(t, "weight"));
            printf("\n");
        }
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
    print_methods(json_object_get(d, "methods"));
    print_surrogates(json_object_get(d, "surrogates"));
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(d, "warnings"), i, w)
        printf("  warning: %s\n", json_string_value(w));
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

/* LIME's mean R^2, else the Gaussian form's. */
static double surrogate_r2(const json_t *surrogates)
{
    double lime = number(surrogates, "lime.r2_mean");
    return isnan(lime) ? number(surrogates, "gaussian.r2_mean") : lime;
}

/* Methods the randomisation test flagged (NaN without the test). */
static double flagged_methods(const json_t *methods)
{
    const char *name;
    const json_t *m;
    double n = json_object_size(methods) ? 0.0 : NAN;
    json_object_foreach((json_t *)methods, name, m)
        n += json_is_true(json_object_get(json_object_get(m, "randomisation"), "flagged"));
    return n;
}

const json_t *ctl_latest_report(const json_t *reports, const char *kind)
{
    size_t i;
    json_t *r;
    const json_t *found = NULL;
    json_array_foreach(reports, i, r) if (!strcmp(text(r, "kind"), kind)) found =
        json_object_get(r, "data");
    return found;
}

/* Mean over severities of family f of a corruptions report, or NaN. */
static double family_mean(const json_t *d, size_t f, int *seen)
{
    const json_t *c = json_array_get(json_object_get(d, "corruptions"), f);
    size_t s;
    json_t *a;
    double sum = 0.0;
    *seen = json_is_true(json_object_get(c, "seen_in_training"));
    json_array_foreach(json_object_get(c, "accuracy"), s, a) sum += json_number_value(a);
    return c && s ? sum / (double)s : NAN;
}

void ctl_print_family_table(const json_t *rows)
{
    size_t j, n = json_array_size(rows);
    json_t *row;
    int any = 0;
    json_array_foreach(rows, j, row) any |= json_is_object(json_object_get(row, "data"));
    if (!any)
        return;
    printf("\ncorruption accuracy per family (mean of severities 1-5; * seen in training):\n");
    printf("  %-16s", "FAMILY");
    json_array_foreach(rows, j, row) printf(" %9s%-3lld", "job ", (long long)json_integer_value(
                                                                   json_object_get(row, "job")));
    printf("\n");
    for (size_t f = 0; f < CORE_NCORRUPTIONS; f++) {
        printf("  %-16s", core_corruption_name((core_corruption)f));
        for (j = 0; j < n; j++) {
            int seen = 0;
            double v = family_mean(json_object_get(json_array_get(rows, j), "data"), f, &seen);
            if (isnan(v))
                printf(" %12s", "-");
            else
                printf(" %10.1f%%%s", 100 * v, seen ? "*" : " ");
        }
        printf("\n");
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
            out[5] = surrogate_r2(json_object_get(d, "surrogates"));
            out[6] = flagged_methods(json_object_get(d, "methods"));
        }
    }
}
