/*
 * report_plot.c - what the sections of `advctl report` share to build
 * their plots: growing curves, the series of one plot, bar categories,
 * section headings, and the line that says what to run when a job lacks a
 * report (report.h).
 */
#include "client/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- curves */

void rep_curve_add(rep_curve *c, double x, double y)
{
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        double *nx = realloc(c->x, sizeof(double) * cap), *ny;
        if (!nx)
            return;
        c->x = nx;
        if (!(ny = realloc(c->y, sizeof(double) * cap)))
            return;
        c->y = ny;
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n++] = y;
}

void rep_curve_free(rep_curve *c)
{
    free(c->x);
    free(c->y);
    memset(c, 0, sizeof *c);
}

/* Sort by x; of equal x keep the last added. */
void rep_curve_sort(rep_curve *c)
{
    for (int i = 1; i < c->n; i++)
        for (int k = i; k > 0 && c->x[k - 1] > c->x[k]; k--) {
            double t = c->x[k];
            c->x[k] = c->x[k - 1], c->x[k - 1] = t;
            t = c->y[k];
            c->y[k] = c->y[k - 1], c->y[k - 1] = t;
        }
    int m = 0;
    for (int i = 0; i < c->n; i++) {
        if (m && c->x[m - 1] == c->x[i])
            m--;
        c->x[m] = c->x[i];
        c->y[m++] = c->y[i];
    }
    c->n = m;
}

rep_curve *rep_add_series(rep_series *ss, const char *name, int colour, int dash)
{
    if (ss->n == REP_MAX_SERIES)
        return NULL;
    int i = ss->n++;
    snprintf(ss->name[i], sizeof ss->name[i], "%s", name);
    ss->s[i] = (svg_series){.name = ss->name[i], .colour = colour, .dash = dash};
    return &ss->c[i];
}

/* Point the series at their curves (after the curves stopped growing). */
void rep_series_done(rep_series *ss)
{
    for (int i = 0; i < ss->n; i++) {
        ss->s[i].x = ss->c[i].x;
        ss->s[i].y = ss->c[i].y;
        ss->s[i].n = ss->c[i].n;
    }
}

void rep_series_free(rep_series *ss)
{
    for (int i = 0; i < ss->n; i++)
        rep_curve_free(&ss->c[i]);
    ss->n = 0;
}

void rep_section(FILE *f, const char *id, const char *title, const char *intro)
{
    fprintf(f, "<h2 id=\"%s\">", id);
    html_escape(f, title);
    fputs("</h2>\n", f);
    if (intro) {
        fputs("<p>", f);
        html_escape(f, intro);
        fputs("</p>\n", f);
    }
}

/* A plot fitted to its data but for the y range (NaN: fitted too). */
svg_plot rep_plot(const char *id, const char *title, const char *xlabel, const char *ylabel,
                        double ymin, double ymax)
{
    return (svg_plot){.id = id, .title = title, .xlabel = xlabel, .ylabel = ylabel, .xmin = NAN,
                      .xmax = NAN, .ymin = ymin, .ymax = ymax};
}

/* Says, for each job without a report of kind, what to run; the number
 * of jobs that have one. */
int rep_missing_reports(FILE *f, const report *r, const char *kind, const char *flags)
{
    int have = 0;
    for (int i = 0; i < r->n; i++) {
        char what[192];
        if (rep_latest_report(&r->job[i], kind)) {
            have++;
            continue;
        }
        snprintf(what, sizeof what, "No %s report of %s yet.", kind, rep_job_name(r, i));
        rep_todo(f, what, "advctl eval %lld --attack pgd%s --wait", (long long)r->job[i].id,
                 flags);
    }
    return have;
}

/* A legend name: the job's name when several jobs share the plot. */
void rep_series_name(const report *r, int job, const char *what, char *buf, size_t len)
{
    if (r->n > 1)
        snprintf(buf, len, "%s%s%s", rep_job_name(r, job), *what ? ": " : "", what);
    else
        snprintf(buf, len, "%s", *what ? what : rep_job_name(r, job));
}

int rep_category(rep_categories *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->cats[i], name))
            return i;
    if (c->n == REP_MAX_CATS)
        return -1;
    snprintf(c->text[c->n], sizeof c->text[0], "%s", name);
    c->cats[c->n] = c->text[c->n];
    return c->n++;
}

/* Bar `at` (a category index, -1 when there was no room) of a bar
 * series, gaps before it left empty. */
void rep_bar_at(rep_curve *c, int at, double v)
{
    while (at >= 0 && c->n < at)
        rep_curve_add(c, c->n, NAN);
    if (at >= 0 && c->n == at)
        rep_curve_add(c, at, v);
}

