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
    char socket_path[4096];
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

/* submit.c: command-line flags that set a key of a job spec, from a
 * table ending in {NULL}. CTL_TRUE / CTL_FALSE are switches that take no
 * value. ctl_apply_flag: argv[*i] is a flag of table t: set it in spec
 * (advancing *i past its value); 0, 1 when it is not one of the table's,
 * or ADVCTL_USAGE after printing why. ctl_parse_ckpt: the value of
 * --checkpoint (latest, best or an epoch) into spec's "checkpoint". */
typedef enum { CTL_INT, CTL_FLOAT, CTL_STR, CTL_TRUE, CTL_FALSE } ctl_flag_type;
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

/* The calibration, corruption and explanation reports of `results`. */
void ctl_print_reports(const json_t *reports);
/* For compare, from the latest report of each kind (NaN when absent):
 * mean corruption accuracy, clean ECE before and after temperature
 * scaling, saliency top-k overlap under random and adversarial deltas. */
#define CTL_SUMMARY 5
void ctl_report_summary(const json_t *reports, double out[CTL_SUMMARY]);
int cmd_export(ctl *c, int argc, char **argv);

/* show.c: follow a job to its end, printing progress; exit status of its
 * outcome (0 succeeded, 1 otherwise). */
int ctl_follow(ctl *c, int64_t job);
/* Wait for job to end without printing progress (a failure is printed as
 * one line); the exit status for its outcome. */
int ctl_wait(ctl *c, int64_t job);

#endif
