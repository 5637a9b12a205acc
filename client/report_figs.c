/*
 * report_figs.c - the sections of `advctl report` drawn from a job's
 * metrics and evaluations: training curves, robust accuracy against eps
 * (with the evaluations table and its warnings) and per-example survival
 * across attacks. Every plot overlays the report's jobs in their colours
 * (svg.c); a section without data says what to run.
 *
 * Survival: every evaluation row of an eval job carries one byte per
 * evaluated example (1: still classified correctly under the attack), over
 * the first n test images; the rows on one checkpoint therefore line up
 * example by example. "First broken by A" means: A is the only attack that
 * broke the example at the smallest eps at which any attack broke it.
 */
#include "client/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------- training curves */

typedef struct {
    const char *key, *label;
    int dash;
} metric_line;

static void metric_curve(const report_job *j, const char *key, double scale, rep_curve *c)
{
    const json_t *m;
    size_t i;
    json_array_foreach(json_object_get(j->metrics, "metrics"), i, m) {
        if (strcmp(rep_str(m, "key"), key))
            continue;
        rep_curve_add(c, ctl_number(m, "epoch") + 1, ctl_number(m, "value") * scale);
    }
    rep_curve_sort(c);
}

static void metric_plot(FILE *f, const report *r, const svg_plot *p, const metric_line *lines,
                        int nl, double scale)
{
    static rep_series ss;
    for (int i = 0; i < r->n; i++)
        for (int l = 0; l < nl; l++) {
            char name[128];
            rep_series_name(r, i, lines[l].label, name, sizeof name);
            rep_curve *c = rep_add_series(&ss, name, r->n > 1 ? i : l, lines[l].dash);
            if (c)
                metric_curve(&r->job[i], lines[l].key, scale, c);
        }
    rep_series_done(&ss);
    svg_lines(f, p, ss.s, ss.n);
    rep_series_free(&ss);
}

static int has_metrics(const report *r)
{
    for (int i = 0; i < r->n; i++)
        if (json_array_size(json_object_get(r->job[i].metrics, "metrics")))
            return 1;
    return 0;
}

void rep_training(FILE *f, const report *r)
{
    static const metric_line loss[] = {{"train_loss", "training loss", 0},
                                       {"val_loss", "validation loss", 1}};
    static const metric_line acc[] = {{"train_acc", "training accuracy", 2},
                                      {"val_clean_acc", "validation, clean", 0},
                                      {"val_robust_acc", "validation, under attack", 1}};
    static const metric_line lr[] = {{"lr", "learning rate", 0}};
    static const metric_line speed[] = {{"images_per_s", "training speed", 0}};
    rep_section(f, "training", "Training curves",
            "One point per epoch, at its end. Training loss and accuracy are on the training "
            "inputs as trained on (adversarial ones for adversarial training); validation "
            "under attack uses the job's own training attack.");
    for (int i = 0; i < r->n; i++)
        if (!json_array_size(json_object_get(r->job[i].metrics, "metrics"))) {
            char what[192];
            snprintf(what, sizeof what, "No epoch of %s has ended yet, so it has no curves.",
                     rep_job_name(r, i));
            rep_todo(f, what, "advctl watch %lld", (long long)r->job[i].id);
        }
    if (!has_metrics(r))
        return;
    fputs("<div class=\"plots\">\n", f);
    svg_plot p = rep_plot("training-loss", "Loss", "epoch", "cross-entropy loss (nats)", 0, NAN);
    p.xinteger = 1;
    metric_plot(f, r, &p, loss, 2, 1);
    p = rep_plot("training-accuracy", "Accuracy", "epoch", "accuracy (%)", 0, 100);
    p.xinteger = 1;
    metric_plot(f, r, &p, acc, 3, 100);
    p = rep_plot("learning-rate", "Learning rate (at the epoch's end)", "epoch",
                "learning rate (per step)", 0, NAN);
    p.xinteger = 1;
    metric_plot(f, r, &p, lr, 1, 1);
    p = rep_plot("throughput", "Throughput", "epoch", "training images/s", 0, NAN);
    p.xinteger = 1;
    metric_plot(f, r, &p, speed, 1, 1);
    fputs("</div>\n", f);
}

/* ------------------------------------------------------ evaluation rows */

typedef struct {
    char label[80];
    int64_t job, ckpt;
    double eps, clean, robust;
    int n, final, epoch;
    uint8_t *surv;      /* n bytes or NULL */
    const json_t *row;
} erow;

/* The evaluations of a job, but those of picture-drawing jobs. */
static int load_rows(const report_job *j, erow **out)
{
    const json_t *list = json_object_get(j->results, "results"), *e;
    size_t i;
    int n = 0;
    *out = calloc(json_array_size(list) + 1, sizeof(erow));
    if (!*out)
        return 0;
    json_array_foreach(list, i, e) {
        if (rep_is_drawing(e))
            continue;
        erow *w = &(*out)[n++];
        const json_t *spec = json_object_get(e, "spec");
        ctl_attack_name(spec, w->label, sizeof w->label);
        if (!strcmp(rep_str(spec, "norm"), "l2"))
            strncat(w->label, " L2", sizeof w->label - strlen(w->label) - 1);
        w->job = (int64_t)ctl_number(e, "job");
        w->ckpt = (int64_t)ctl_number(e, "checkpoint");
        w->epoch = (int)ctl_number(e, "epoch");
        w->eps = ctl_number(e, "eps");
        w->clean = ctl_number(e, "clean_acc");
        w->robust = ctl_number(e, "robust_acc");
        w->n = (int)ctl_number(e, "n");
        w->final = json_is_true(json_object_get(spec, "final"));
        w->row = e;
        const char *s = json_string_value(json_object_get(e, "survival"));
        size_t len;
        adv_error err;
        if (s && adv_base64_decode(s, strlen(s), &w->surv, &len, &err) == 0 &&
            len != (size_t)w->n) {
            free(w->surv);
            w->surv = NULL;
        }
    }
    return n;
}

static void free_rows(erow *rows, int n)
{
    for (int i = 0; i < n; i++)
        free(rows[i].surv);
    free(rows);
}

/* The checkpoint with the most rows that carry survival bytes (the latest
 * on a tie), and the number of examples they all share; 0 when none. */
static int64_t survival_ckpt(const erow *rows, int n, int *common)
{
    int64_t best = 0;
    int best_count = 0;
    for (int i = 0; i < n; i++) {
        int count = 0;
        for (int k = 0; k < n; k++)
            count += rows[k].surv && rows[k].ckpt == rows[i].ckpt;
        if (rows[i].surv && count >= best_count)
            best = rows[i].ckpt, best_count = count;
    }
    *common = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].surv && rows[i].ckpt == best)
            *common = *common && *common < rows[i].n ? *common : rows[i].n;
    return best;
}

/* ---------------------------------------------------------- robustness */

/* Per-example worst case over every attack at each eps at which at least
 * two attacks ran on the survival checkpoint; eps 0 is clean. */
static void worst_case(const erow *rows, int n, rep_curve *c)
{
    int common;
    int64_t ck = survival_ckpt(rows, n, &common);
    for (int i = 0; i < n && common > 0; i++) {
        const erow *a = &rows[i];
        int seen = 0, attacks = 0, survive = 0;
        if (!a->surv || a->ckpt != ck)
            continue;
        for (int k = 0; k < i; k++)
            seen |= rows[k].surv && rows[k].ckpt == ck && rows[k].eps == a->eps;
        if (seen)
            continue;
        for (int k = 0; k < n; k++) {
            int other = 1;
            if (!rows[k].surv || rows[k].ckpt != ck || rows[k].eps != a->eps)
                continue;
            for (int m = 0; m < k; m++)
                if (rows[m].surv && rows[m].ckpt == ck && rows[m].eps == a->eps &&
                    !strcmp(rows[m].label, rows[k].label))
                    other = 0;
            attacks += other;
        }
        if (attacks < 2)
            continue;
        for (int e = 0; e < common; e++) {
            int ok = 1;
            for (int k = 0; k < n && ok; k++)
                if (rows[k].surv && rows[k].ckpt == ck && rows[k].eps == a->eps)
                    ok = rows[k].surv[e] != 0;
            survive += ok;
        }
        if (!c->n)
            rep_curve_add(c, 0, 100 * a->clean);
        rep_curve_add(c, a->eps, 100.0 * survive / common);
    }
    rep_curve_sort(c);
}

/* One line per attack of job i: (0, clean) then (eps, robust). */
static void attack_lines(const report *r, int i, const erow *rows, int n, rep_series *ss)
{
    char seen[REP_MAX_SERIES][80];
    int nseen = 0;
    for (int k = 0; k < n; k++) {
        int dup = 0;
        for (int s = 0; s < nseen; s++)
            dup |= !strcmp(seen[s], rows[k].label);
        if (dup || nseen == REP_MAX_SERIES)
            continue;
        snprintf(seen[nseen++], sizeof seen[0], "%s", rows[k].label);
        char name[128];
        rep_series_name(r, i, rows[k].label, name, sizeof name);
        rep_curve *c = rep_add_series(ss, name, r->n > 1 ? i : nseen - 1, r->n > 1 ? (nseen - 1) % 3 : 0);
        for (int m = 0; c && m < n; m++)
            if (!strcmp(rows[m].label, rows[k].label)) {
                rep_curve_add(c, 0, 100 * rows[m].clean);
                rep_curve_add(c, rows[m].eps, 100 * rows[m].robust);
            }
        if (c)
            rep_curve_sort(c);
    }
    char name[128];
    rep_series_name(r, i, "worst case over all attacks, per example", name, sizeof name);
    rep_curve *c = rep_add_series(ss, name, r->n > 1 ? i : 6, 3);
    if (c)
        worst_case(rows, n, c);
    if (c && !c->n)
        ss->n--;
}

static void warnings(FILE *f, const report *r)
{
    for (int i = 0; i < r->n; i++) {
        const json_t *e, *w;
        size_t k, m;
        json_array_foreach(json_object_get(r->job[i].results, "results"), k, e) {
            json_array_foreach(json_object_get(e, "warnings"), m, w) {
                char a[80];
                ctl_attack_name(json_object_get(e, "spec"), a, sizeof a);
                fprintf(f, "<p class=\"warn\"><b>Warning</b> (eval job %lld, %s at eps %g): ",
                        (long long)ctl_number(e, "job"), a, ctl_number(e, "eps"));
                html_escape(f, json_string_value(w));
                fputs("</p>\n", f);
            }
        }
    }
}

static void eval_table(FILE *f, const report *r)
{
    fputs("<table>\n<tr>", f);
    if (r->n > 1)
        fputs("<th>training job</th>", f);
    fputs("<th>eval job</th><th>checkpoint epoch</th><th>attack</th><th>eps</th>"
          "<th>examples</th><th>clean accuracy (%)</th><th>robust accuracy (%)</th>"
          "<th>warnings</th></tr>\n",
          f);
    for (int i = 0; i < r->n; i++) {
        erow *rows;
        int n = load_rows(&r->job[i], &rows);
        for (int k = 0; k < n; k++) {
            const erow *w = &rows[k];
            fputs("<tr>", f);
            if (r->n > 1)
                fprintf(f, "<td class=\"num\">%lld</td>", (long long)r->job[i].id);
            fprintf(f, "<td class=\"num\">%lld</td><td class=\"num\">%d</td><td>",
                    (long long)w->job, w->epoch);
            html_escape(f, w->label);
            fprintf(f, "</td><td class=\"num\">%g</td><td class=\"num\">%d</td>"
                       "<td class=\"num\">%.1f</td><td class=\"num\">%.1f</td>",
                    w->eps, w->n, 100 * w->clean, 100 * w->robust);
            size_t nw = json_array_size(json_object_get(w->row, "warnings"));
            fprintf(f, nw ? "<td class=\"flip\">%zu (above)</td></tr>\n" : "<td>none</td></tr>\n",
                    nw);
        }
        free_rows(rows, n);
    }
    fputs("</table>\n", f);
}

void rep_robustness(FILE *f, const report *r)
{
    static rep_series ss;
    rep_section(f, "robustness", "Robust accuracy against the attack budget",
            "Accuracy under each attack at each eps (L∞ unless marked L2; pixels in [0, 1]), "
            "from every evaluation of the job; eps 0 is the clean accuracy. The dash-dot line is "
            "the per-example worst case over all attacks run at that eps on the same "
            "checkpoint: an example counts only if it survives every one of them.");
    for (int i = 0; i < r->n; i++) {
        erow *rows;
        int n = load_rows(&r->job[i], &rows);
        attack_lines(r, i, rows, n, &ss);
        free_rows(rows, n);
    }
    rep_series_done(&ss);
    if (ss.n) {
        fputs("<div class=\"plots\">\n", f);
        svg_plot p = rep_plot("robustness", "Robust accuracy against eps", "eps (L∞ radius)",
                             "accuracy (%)", 0, 100);
        p.xmin = 0;
        svg_lines(f, &p, ss.s, ss.n);
        fputs("</div>\n", f);
    }
    int any = ss.n;   /* a line per attack: there are evaluations */
    rep_series_free(&ss);
    fputs("<h3>Evaluations</h3>\n", f);
    warnings(f, r);
    if (any)
        eval_table(f, r);
    for (int i = 0; i < r->n; i++) {
        erow *rows;
        int n = load_rows(&r->job[i], &rows), evals = 0;
        for (int k = 0; k < n; k++)
            evals += !rows[k].final;
        if (!evals) {
            char what[192];
            snprintf(what, sizeof what, "No evaluation job has attacked %s yet.",
                     rep_job_name(r, i));
            rep_todo(f, what,
                     "advctl eval %lld --attack apgd-ce --eps 0.05,0.1,0.2 --limit 1000 --wait",
                     (long long)r->job[i].id);
        }
        free_rows(rows, n);
    }
}

/* ------------------------------------------------------------ survival */

/* The category of example e: "survives every attack", "several at
 * once" or the one attack that broke it first. */
static const char *breaker(const erow *rows, int n, int64_t ck, int e)
{
    double first = INFINITY;
    const char *who = NULL;
    for (int k = 0; k < n; k++)
        if (rows[k].surv && rows[k].ckpt == ck && !rows[k].surv[e] && rows[k].eps < first)
            first = rows[k].eps;
    if (isinf(first))
        return "survives every attack";
    for (int k = 0; k < n; k++)
        if (rows[k].surv && rows[k].ckpt == ck && !rows[k].surv[e] && rows[k].eps == first) {
            if (who && strcmp(who, rows[k].label))
                return "several at once";
            who = rows[k].label;
        }
    return who;
}

/* Job i's counts per category into c; the number of examples (0: none). */
static int survival_job(FILE *f, const report *r, int i, rep_categories *cats, rep_curve *c)
{
    erow *rows;
    int n = load_rows(&r->job[i], &rows), common, runs = 0;
    int64_t ck = survival_ckpt(rows, n, &common);
    double count[REP_MAX_CATS] = {0};
    for (int e = 0; e < common; e++) {
        int k = rep_category(cats, breaker(rows, n, ck, e));
        if (k >= 0)
            count[k]++;
    }
    for (int k = 0; k < n; k++)
        runs += rows[k].surv && rows[k].ckpt == ck;
    if (!common) {
        char what[192];
        snprintf(what, sizeof what, "No evaluation of %s has recorded per-example results yet.",
                 rep_job_name(r, i));
        rep_todo(f, what, "advctl eval %lld --attack pgd --eps 0.05,0.1 --limit 1000 --wait",
                 (long long)r->job[i].id);
    } else {
        int k = rep_category(cats, "survives every attack");
        fputs("<p>", f);
        html_escape(f, rep_job_name(r, i));
        fprintf(f, ": of the first %d test images, <b>%.0f survive every one of the %d attack "
                   "runs</b> on the checkpoint of epoch %d (",
                common, k >= 0 ? count[k] : 0, runs, rows[0].epoch);
        for (int m = 0, first = 1; m < n; m++)
            if (rows[m].surv && rows[m].ckpt == ck) {
                fprintf(f, "%s", first ? "" : ", ");
                html_escape(f, rows[m].label);
                fprintf(f, " at %g", rows[m].eps);
                first = 0;
            }
        fputs(").</p>\n", f);
    }
    for (int k = 0; common && k < cats->n; k++)
        rep_curve_add(c, k, 100 * count[k] / common);
    free_rows(rows, n);
    return common;
}

void rep_survival(FILE *f, const report *r)
{
    static rep_series ss;
    rep_categories cats = {.n = 0};
    rep_section(f, "survival", "Which attack breaks each example",
            "Each example evaluated on one checkpoint either survives every attack ever run on "
            "it, or is broken first (at the smallest eps) by one attack, or by several at once "
            "(this includes examples misclassified without any attack).");
    rep_category(&cats, "survives every attack");
    int any = 0;
    for (int i = 0; i < r->n; i++) {
        char name[128];
        rep_series_name(r, i, "", name, sizeof name);
        rep_curve *c = rep_add_series(&ss, name, i, 0);
        if (c && survival_job(f, r, i, &cats, c))
            any = 1;
        else if (c)
            ss.n--;   /* nothing to draw for this job */
    }
    /* Categories found by later jobs: pad the earlier jobs' bars. */
    for (int i = 0; i < ss.n; i++) {
        if (ss.c[i].n == 0)
            continue;
        for (int k = ss.c[i].n; k < cats.n; k++)
            rep_curve_add(&ss.c[i], k, 0);
        ss.s[i].bars = 1;
    }
    rep_series_done(&ss);
    if (any) {
        fputs("<div class=\"plots\">\n", f);
        svg_plot p = rep_plot("survival", "How each example was first broken", "", "examples (%)",
                             0, 100);
        svg_bars(f, &p, cats.cats, cats.n, ss.s, ss.n);
        fputs("</div>\n", f);
    }
    rep_series_free(&ss);
}

