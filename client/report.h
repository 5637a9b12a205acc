/*
 * report.h - what the parts of `advctl report` share (report.c: the
 * command, fetching and the page; report_plot.c: plot helpers;
 * report_figs.c and report_extras.c: the sections with plots;
 * report_pics.c: the pictures the daemon drew).
 *
 * A report covers 1 to REPORT_MAX_JOBS training jobs; job i is drawn in
 * svg_colour(i) in every plot, so one colour means one job throughout.
 */
#ifndef ADVCTL_REPORT_H
#define ADVCTL_REPORT_H

#include "client/advctl.h"

#define REPORT_MAX_JOBS 8

typedef struct {
    int64_t id;
    json_t *status;      /* the daemon's answers, as they came */
    json_t *metrics;
    json_t *results;
    json_t *checkpoints;
    json_t *pictures;    /* {"adversarial": {"job": ID, "files": {NAME: BASE64}}, ...}:
                            the latest drawing job of each kind */
    json_t *monitor;     /* its drift monitor's windows, or NULL */
} report_job;

typedef struct {
    report_job job[REPORT_MAX_JOBS];
    int n;
} report;

/* report.c: helpers for the sections. */
const char *rep_str(const json_t *o, const char *key);
void rep_todo(FILE *f, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The name of job i in legends: "job 3" (with its name when it has one). */
const char *rep_job_name(const report *r, int i);
/* The latest report of kind ("calibration", ...) of a job's evaluations. */
const json_t *rep_latest_report(const report_job *j, const char *kind);
/* A time in Unix seconds as local "YYYY-MM-DD HH:MM:SS" ("-": none). */
void rep_when(const json_t *v, char *buf, size_t len);
/* 1 when an evaluation row came from a picture-drawing job (advctl images). */
int rep_is_drawing(const json_t *eval);

/* report_plot.c: what the sections share. A curve grows point by point;
 * a rep_series holds one plot's series (svg_series pointing into their
 * curves once rep_series_done is called); categories name the bars of a
 * bar chart, a series' point k being its bar in category k. */
typedef struct {
    double *x, *y;
    int n, cap;
} rep_curve;

void rep_curve_add(rep_curve *c, double x, double y);
void rep_curve_free(rep_curve *c);
/* Sort by x; of equal x keep the last added. */
void rep_curve_sort(rep_curve *c);

#define REP_MAX_SERIES 64

/* The series of one plot, with the curves and names they point into. */
typedef struct {
    svg_series s[REP_MAX_SERIES];
    rep_curve c[REP_MAX_SERIES];
    char name[REP_MAX_SERIES][192];
    int n;
} rep_series;

/* A new series (NULL when the plot is full) and its curve. */
rep_curve *rep_add_series(rep_series *ss, const char *name, int colour, int dash);
void rep_series_done(rep_series *ss);
void rep_series_free(rep_series *ss);

#define REP_MAX_CATS 24

typedef struct {
    const char *cats[REP_MAX_CATS];
    char text[REP_MAX_CATS][80];
    int n;
} rep_categories;

/* The index of category name (added if new; -1 when full). */
int rep_category(rep_categories *c, const char *name);
/* Bar `at` (a category index, -1: none) of a bar series, gaps before it. */
void rep_bar_at(rep_curve *c, int at, double v);

/* An <h2> with an introduction (may be NULL). */
void rep_section(FILE *f, const char *id, const char *title, const char *intro);
/* A plot fitted to its data but for the y range (NaN: fitted too). */
svg_plot rep_plot(const char *id, const char *title, const char *xlabel, const char *ylabel,
                  double ymin, double ymax);
/* Says, for each job without a report of kind, which eval to run (flags
 * after "--attack pgd"); how many jobs have one. */
int rep_missing_reports(FILE *f, const report *r, const char *kind, const char *flags);
/* A legend name: what, prefixed by the job's name when several jobs share
 * the plot (the job's name alone when what is empty). */
void rep_series_name(const report *r, int job, const char *what, char *buf, size_t len);

/* report_monitor.c: the drift monitor's windows and alarms. */
void rep_monitor(FILE *f, const report *r);

/* report_figs.c: the sections from metrics and evaluations. */
void rep_training(FILE *f, const report *r);
void rep_robustness(FILE *f, const report *r);
void rep_survival(FILE *f, const report *r);

/* report_extras.c: the sections from the evaluations' reports. */
void rep_calibration(FILE *f, const report *r);
void rep_corruptions(FILE *f, const report *r);
void rep_explanations(FILE *f, const report *r);

/* report_pics.c: the pictures drawn by `advctl images` of every job,
 * each with its index (labels and predictions) as a table, or what to run
 * to draw them: the section of adversarial examples, and the pictures of
 * the corruptions and explanations sections. */
void rep_adversarial(FILE *f, const report *r);
void rep_corruption_pictures(FILE *f, const report *r);
void rep_explanation_pictures(FILE *f, const report *r);

#endif
