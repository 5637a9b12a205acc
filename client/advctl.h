/*
 * advctl.h - what the parts of advctl, advd's command-line client, share:
 * the connection to the daemon (conn.c), the command table and its
 * helpers (main.c), and the commands themselves (submit.c, show.c,
 * reports.c, export.c, images.c).
 *
 * Every command is a function `int cmd_x(ctl *c, int argc, char **argv)`
 * returning the process exit status: ADVCTL_OK, ADVCTL_FAILED (a job failed
 * or was not found, or the daemon refused), ADVCTL_USAGE, ADVCTL_UNREACHABLE.
 * argv[0] is the command name; options follow in any order.
 */
#ifndef ADVCTL_H
#define ADVCTL_H

#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"

enum { ADVCTL_OK = 0, ADVCTL_FAILED = 1, ADVCTL_USAGE = 2, ADVCTL_UNREACHABLE = 3 };

typedef struct {
    char socket_path[CORE_PATH_MAX];
    int json;           /* --json: print the daemon's result objects */
    int fd;             /* -1 until connected */
    adv_linebuf lines;
    int next_id;
    char server_version[64];
} ctl;

/* conn.c ------------------------------------------------------------ */

/* The socket path: --socket, else $ADVD_SOCKET, else advd's own default. */
void ctl_default_socket(char *out, size_t len);
/* Connect and check the greeting; on failure prints why and returns the
 * exit status (ADVCTL_UNREACHABLE or ADVCTL_FAILED). */
int ctl_connect(ctl *c);
void ctl_close(ctl *c);
/* Send {"cmd": cmd, ...args} (args stolen, may be NULL) and wait for its
 * response. 0 with *result (a new reference) or an exit status after
 * printing the daemon's error as one line. */
int ctl_call(ctl *c, const char *cmd, json_t *args, json_t **result);
/* Like ctl_call with a "job" argument. */
int ctl_call_job(ctl *c, const char *cmd, int64_t job, json_t **result);
/* The next event pushed by the daemon (new reference), or NULL when the
 * connection ended (message printed). */
json_t *ctl_next_event(ctl *c);
/* A large thing in pieces (export, images by name): calls cmd with args
 * (stolen) and "offset" until "eof", into *bytes (malloc'ed, *n bytes);
 * *last is the last answer (its other fields). */
int ctl_pull(ctl *c, const char *cmd, json_t *args, uint8_t **bytes, size_t *n, json_t **last);
/* The exit status for a daemon error code. */
int ctl_status_of(adv_errcode code);

/* main.c ------------------------------------------------------------ */

/* Print a one-line error ("advctl: ...") and return ADVCTL_FAILED. */
int ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "advctl CMD: MESSAGE" and the command's usage; ADVCTL_USAGE. */
int ctl_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print result as one JSON line (the --json output). */
void ctl_print_json(const json_t *result);
/* Parse a job id; 0 on success. */
int ctl_parse_job(const char *s, int64_t *out);
int ctl_parse_int(const char *s, long long lo, long long hi, long long *out);
int ctl_parse_double(const char *s, double *out);
/* The option value after argv[*i] (advancing *i), or NULL after printing
 * the usage error. */
const char *ctl_optarg(const char *cmd, int argc, char **argv, int *i);
/* A job given as the single positional argument of cmd (else usage). */
int ctl_one_job(const char *cmd, int argc, char **argv, int64_t *job);

/* Commands ------------------------------------------------------------ */

int cmd_submit(ctl *c, int argc, char **argv);
int cmd_eval(ctl *c, int argc, char **argv);
int cmd_list(ctl *c, int argc, char **argv);
int cmd_status(ctl *c, int argc, char **argv);
int cmd_watch(ctl *c, int argc, char **argv);
int cmd_cancel(ctl *c, int argc, char **argv);
int cmd_results(ctl *c, int argc, char **argv);
int cmd_metrics(ctl *c, int argc, char **argv);
int cmd_checkpoints(ctl *c, int argc, char **argv);
int cmd_compare(ctl *c, int argc, char **argv);
int cmd_images(ctl *c, int argc, char **argv);
int cmd_report(ctl *c, int argc, char **argv);

/* submit.c: command-line flags that set a key of a job spec, from a
 * table ending in {NULL}. CTL_TRUE / CTL_FALSE are switches that take no
 * value. ctl_apply_flag: argv[*i] is a flag of table t: set it in spec
 * (advancing *i past its value); 0, 1 when it is not one of the table's,
 * or ADVCTL_USAGE after printing why. ctl_parse_ckpt: the value of
 * --checkpoint (latest, best or an epoch) into spec's "checkpoint". */
/* CTL_INIT: "JOB[:CKPT]" as {"job": JOB, "checkpoint": CKPT}. */
typedef enum { CTL_INT, CTL_FLOAT, CTL_STR, CTL_TRUE, CTL_FALSE, CTL_INIT } ctl_flag_type;
typedef struct {
    const char *flag, *key;
    ctl_flag_type type;
} ctl_flag;

int ctl_apply_flag(const char *cmd, const ctl_flag *t, int argc, char **argv, int *i,
                   json_t *spec);
int ctl_parse_ckpt(const char *cmd, const char *s, json_t *spec);

/* submit.c: validate a spec with the daemon's own code (printing the
 * message that names the field; ADVCTL_USAGE), and submit one (stolen):
 * 0 with the new job's id and, when result is not NULL, the response. */
int ctl_validate_spec(const char *cmd, const json_t *spec);
int ctl_submit_spec(ctl *c, json_t *spec, int64_t *job, json_t **result);

/* reports.c ---------------------------------------------------------- */

/* The number at a dotted path ("clean.before.ece") in o; NaN if absent. */
double ctl_number(const json_t *o, const char *path);
/* The calibration, corruption and explanation reports of `results`. */
void ctl_print_reports(const json_t *reports);
/* For compare, from the latest report of each kind (NaN when absent):
 * mean corruption accuracy, clean ECE before and after temperature
 * scaling, saliency top-k overlap under random and adversarial deltas. */
#define CTL_SUMMARY 7   /* ..., surrogate R^2, maps flagged by randomisation */
void ctl_report_summary(const json_t *reports, double out[CTL_SUMMARY]);
/* The data of the latest report of kind among reports, or NULL. */
const json_t *ctl_latest_report(const json_t *reports, const char *kind);
/* compare: per-family corruption accuracy of several jobs side by side;
 * rows: [{"job": id, "data": corruptions report data or null}...]. */
void ctl_print_family_table(const json_t *rows);
int cmd_export(ctl *c, int argc, char **argv);
int cmd_import(ctl *c, int argc, char **argv);
int cmd_predict(ctl *c, int argc, char **argv);
int cmd_monitor(ctl *c, int argc, char **argv);

/* monitor.c: a drift monitor's lines: the windows a `predict --monitor`
 * completed (its answer's "monitor"), and the line of `status` (nothing
 * when the job has no monitor). */
void ctl_print_monitor_feed(const json_t *monitor);
void ctl_print_monitor_status(const json_t *job);

/* images.c: the bytes of one entry {"name", "data"} of an `images`
 * answer of job: its inline base64 data, or (data null: too large to come
 * with the list) asked for by name in pieces; *bytes is malloc'ed. */
int ctl_image_bytes(ctl *c, int64_t job, const char *name, const json_t *data,
                    uint8_t **bytes, size_t *n);

/* show.c: an evaluation's attack as people name it ("pgd-20",
 * "suite:autoattack", "pgd-20 (final)") from its spec. */
void ctl_attack_name(const json_t *spec, char *buf, size_t len);

/* show.c: follow a job to its end, printing progress; exit status of its
 * outcome (0 succeeded, 1 otherwise). */
int ctl_follow(ctl *c, int64_t job);
/* Wait for job to end without printing progress (a failure is printed as
 * one line); the exit status for its outcome. */
int ctl_wait(ctl *c, int64_t job);

/* html.c: the page around a report (html_begin .. html_end), text
 * escaped for HTML, and a base64 PNG inlined as an <img> with a data: URI
 * (-1, nothing written, when the bytes are not a PNG file). */
void html_begin(FILE *f, const char *title);
void html_end(FILE *f);
void html_escape(FILE *f, const char *s);
int html_png(FILE *f, const char *b64, const char *alt);

/* svg.c: plots as inline SVG (a <figure> each). A series is n points
 * (x[i], y[i]); NaN is a gap. colour indexes a colour-blind-safe palette
 * (svg_colour), dash 0 solid, 1 dashed, 2 dotted, 3 dash-dot; bar_width
 * > 0 draws the points as bars that wide (in x units) instead of a line.
 * xmin/xmax/ymin/ymax: NaN to fit the data. Labels carry their units. */
typedef struct {
    const char *name;
    int colour, dash;
    double bar_width;
    int bars;                 /* legend swatch of a bar chart */
    const double *x, *y;
    int n;
} svg_series;

typedef struct {
    const char *id, *title, *xlabel, *ylabel, *caption;   /* caption may be NULL */
    double xmin, xmax, ymin, ymax;
    int diagonal;             /* the y = x reference line */
    int xinteger;             /* x ticks on whole numbers only (epochs) */
} svg_plot;

const char *svg_colour(int i);
void svg_lines(FILE *f, const svg_plot *p, const svg_series *s, int ns);
/* Grouped bars: series i's y[k] is its bar in category k. */
void svg_bars(FILE *f, const svg_plot *p, const char *const *cats, int ncats,
              const svg_series *s, int ns);
/* A heat map of v (nrows x ncols, row-major), coloured from ymin to ymax
 * with the value written in each cell; ylabel names the colour scale. */
void svg_heat(FILE *f, const svg_plot *p, const char *const *rows, int nrows,
              const char *const *cols, int ncols, const double *v);

#endif
