/*
 * main.c - advctl, the command-line client of advd: global options, the
 * table of commands with their usage, help, and the small commands (ping,
 * version, cancel).
 *
 *   advctl [--socket PATH] [--json] COMMAND [ARGS]
 *
 * --socket and --json may also follow the command. Exit status: 0 ok, 1 a
 * job failed or was not found (or the daemon refused), 2 usage, 3 advd
 * cannot be reached.
 */
#include "client/advctl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name, *alias;
    int (*fn)(ctl *c, int argc, char **argv);
    const char *args;    /* usage after the name */
    const char *summary;
} command;

static int cmd_ping(ctl *c, int argc, char **argv);
static int cmd_version(ctl *c, int argc, char **argv);
static int cmd_help(ctl *c, int argc, char **argv);

static const command commands[] = {
    {"submit", NULL, cmd_submit,
     "[JOB.json] [--name S] [--dataset D] [--model M] [--epochs N] [--batch N]\n"
     "       [--optimizer sgd|adam] [--lr X] [--schedule S] [--method clean|pgd|fgsm-rs|trades]\n"
     "       [--eps X] [--alpha X] [--steps N] [--norm linf|l2] [--trades-beta X]\n"
     "       [--train-limit N] [--val-size N] [--val-robust-size N] [--seed N] [--priority N]\n"
     "       [--checkpoint-every N] [--init JOB[:latest|best|EPOCH]] [--train-layers all|last|last:K]\n"
     "       [--augment-crop PAD] [--augment-flip] [--augment-brightness X] [--augment-contrast X]\n"
     "       [--augment-noise SIGMA] [--augment-corruptions NAME,...|all] [--augment-severity S]\n"
     "       [--augment-prob P] [--augmix [--augmix-js X]] [--procs N] [--wait]",
     "queue a training job (no arguments: cnn-small, PGD-7 on Fashion-MNIST, eps 0.1)"},
    {"eval", NULL, cmd_eval,
     "JOB [--checkpoint latest|best|EPOCH] (--attack NAME [--steps N] [--restarts N]\n"
     "       [--alpha X] [--norm linf|l2] [--loss ce|cw|dlr] [--queries N] [--targets N]\n"
     "       | --suite NAME) [--eps X[,Y,...]] [--limit N] [--seed N] [--no-sanity]\n"
     "       [--no-calibration] [--corruptions] [--explain [--explain-limit N] [--explain-class K]\n"
     "       [--smoothgrad-samples N] [--smoothgrad-sigma X] [--ig-steps N] [--fragility-eps X]]\n"
     "       [--procs N] [--wait]",
     "queue an evaluation of a checkpoint of JOB (with calibration, corruptions, explanations)"},
    {"list", "ls", cmd_list, "[--state STATE] [--kind train|eval|import] [--limit N] [--mine]",
     "list jobs (everyone's; --mine: your own)"},
    {"status", NULL, cmd_status, "JOB", "show a job"},
    {"watch", NULL, cmd_watch, "JOB", "follow a job's progress to its end"},
    {"cancel", NULL, cmd_cancel, "JOB", "cancel a queued or running job"},
    {"results", NULL, cmd_results, "JOB", "the evaluations of a job"},
    {"metrics", NULL, cmd_metrics, "JOB [--key KEY] [--csv]", "the recorded metrics of a job"},
    {"checkpoints", NULL, cmd_checkpoints, "JOB", "the stored checkpoints of a job"},
    {"compare", NULL, cmd_compare, "JOB JOB...", "final clean and robust accuracies side by side"},
    {"export", NULL, cmd_export, "JOB [--checkpoint latest|best|EPOCH] -o FILE.safetensors",
     "write a checkpoint's weights as safetensors"},
    {"import", NULL, cmd_import,
     "FILE.safetensors --model PRESET|SPEC [--dataset D] [--name S]",
     "a model trained elsewhere (PyTorch names) as a job that eval, report... take"},
    {"predict", NULL, cmd_predict,
     "JOB [--checkpoint latest|best|EPOCH] [--monitor] INPUT...",
     "classify PNG files, folders of PNGs, IDX or CIFAR-10 files with a checkpoint of JOB"},
    {"monitor", NULL, cmd_monitor, "JOB [--checkpoint latest|best|EPOCH] --window N | JOB [--watch]",
     "create JOB's drift monitor (windows of N images), or show its windows"},
    {"images", NULL, cmd_images,
     "JOB (--adversarial | --saliency | --smoothgrad | --ig | --guided | --gaussian-local |\n"
     "       --lime | --corruptions | --units LAYER) [-n N] [--class K]\n"
     "       [--checkpoint latest|best|EPOCH] [--eps X] [--attack NAME] [--seed N] -o DIR",
     "draw PNG pictures of JOB's model at work (or fetch an eval job's) into DIR"},
    {"report", NULL, cmd_report, "JOB [JOB...] [-o FILE.html]",
     "one HTML page with plots of training jobs (default advd-report-JOB.html)"},
    {"ping", NULL, cmd_ping, "", "check that advd answers"},
    {"version", NULL, cmd_version, "", "versions of advctl and advd"},
    {"help", NULL, cmd_help, "[COMMAND]", "this help, or a command's"},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static const command *find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name) ||
            (commands[i].alias && !strcmp(commands[i].alias, name)))
            return &commands[i];
    return NULL;
}

/* ------------------------------------------------------------ helpers */

int ctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("advctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return ADVCTL_FAILED;
}

static void print_usage(FILE *f, const command *k)
{
    fprintf(f, "usage: advctl %s%s%s\n", k->name, *k->args ? " " : "", k->args);
}

int ctl_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "advctl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    const command *k = find_command(cmd);
    if (k)
        print_usage(stderr, k);
    return ADVCTL_USAGE;
}

void ctl_print_json(const json_t *result)
{
    char *s = json_dumps(result, ADV_JSON_FLAGS);
    if (s)
        puts(s);
    free(s);
}

int ctl_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int ctl_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int ctl_parse_job(const char *s, int64_t *out)
{
    long long v;
    if (ctl_parse_int(s, 1, INT64_MAX, &v))
        return -1;
    *out = v;
    return 0;
}

const char *ctl_optarg(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        ctl_usage(cmd, "option '%s' needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int ctl_one_job(const char *cmd, int argc, char **argv, int64_t *job)
{
    if (argc != 2)
        return ctl_usage(cmd, argc < 2 ? "missing JOB" : "unexpected argument '%s'", argv[argc - 1]);
    if (ctl_parse_job(argv[1], job))
        return ctl_usage(cmd, "invalid JOB '%s': expected a job id (an integer >= 1)", argv[1]);
    return 0;
}

/* ------------------------------------------------------- small commands */

static int no_args(const char *cmd, int argc, char **argv)
{
    return argc > 1 ? ctl_usage(cmd, "unexpected argument '%s'", argv[1]) : 0;
}

static int cmd_ping(ctl *c, int argc, char **argv)
{
    json_t *r;
    int rc = no_args("ping", argc, argv);
    if (rc || (rc = ctl_call(c, "ping", NULL, &r)))
        return rc;
    if (c->json)
        ctl_print_json(r);
    else
        printf("advd %s is alive at %s\n", c->server_version, c->socket_path);
    json_decref(r);
    return 0;
}

static int cmd_version(ctl *c, int argc, char **argv)
{
    json_t *r;
    int rc = no_args("version", argc, argv);
    if (rc)
        return rc;
    if (!c->json)
        printf("advctl %s (protocol %d)\n", ADV_VERSION, ADV_PROTOCOL);
    fflush(stdout);
    if ((rc = ctl_call(c, "version", NULL, &r)))
        return rc;
    if (c->json)
        ctl_print_json(r);
    else
        printf("advd %s (protocol %lld; sqlite %s, jansson %s, libuv %s)\n",
               json_string_value(json_object_get(r, "version")),
               (long long)json_integer_value(json_object_get(r, "protocol")),
               json_string_value(json_object_get(r, "sqlite")),
               json_string_value(json_object_get(r, "jansson")),
               json_string_value(json_object_get(r, "libuv")));
    json_decref(r);
    return 0;
}

static void general_help(FILE *f)
{
    fprintf(f, "usage: advctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
    for (int i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n--socket PATH (or ADVD_SOCKET): advd's socket (default: "
               "$XDG_RUNTIME_DIR/advd.sock,\n"
               "  else /tmp/advd-$UID.sock, else the system service's " ADV_SYSTEM_SOCKET ")\n--json: print the daemon's result object\n"
               "exit status: 0 ok, 1 job failed or not found, 2 usage, 3 advd unreachable\n"
               "`advctl help COMMAND` shows a command's options.\n");
}

static int cmd_help(ctl *c, int argc, char **argv)
{
    if (argc == 1) {
        general_help(stdout);
        return 0;
    }
    const command *k = argc == 2 ? find_command(argv[1]) : NULL;
    if (!k)
        return ctl_usage("help", argc > 2 ? "unexpected argument '%s'" : "unknown command '%s'",
                         argv[argc - 1]);
    print_usage(stdout, k);
    printf("\n%s\n", k->summary);
    return 0;
}

int cmd_cancel(ctl *c, int argc, char **argv)
{
    int64_t job;
    json_t *r;
    int rc = ctl_one_job("cancel", argc, argv, &job);
    if (rc || (rc = ctl_call_job(c, "cancel", job, &r)))
        return rc;
    if (c->json)
        ctl_print_json(r);
    else if (json_is_true(json_object_get(r, "cancelling")))
        printf("job %lld: cancelling (its worker is stopping)\n", (long long)job);
    else
        printf("job %lld: %s\n", (long long)job, json_string_value(json_object_get(r, "state")));
    json_decref(r);
    return 0;
}

/* ------------------------------------------------------------- main */

/* Take --socket and --json out of argv wherever they are (before "--"). */
static int global_options(ctl *c, int *argc, char **argv)
{
    int n = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            c->json = 1;
        } else if (!strcmp(argv[i], "--socket")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "advctl: option '--socket' needs a value\n");
                general_help(stderr);
                return ADVCTL_USAGE;
            }
            snprintf(c->socket_path, sizeof c->socket_path, "%s", argv[++i]);
        } else if (!strncmp(argv[i], "--socket=", 9)) {
            snprintf(c->socket_path, sizeof c->socket_path, "%s", argv[i] + 9);
        } else {
            argv[n++] = argv[i];
        }
    }
    *argc = n;
    argv[n] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    ctl c = {.fd = -1};
    ctl_default_socket(c.socket_path, sizeof c.socket_path);
    if (global_options(&c, &argc, argv))
        return ADVCTL_USAGE;
    if (argc < 2) {
        general_help(stderr);
        return ADVCTL_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        general_help(stdout);
        return 0;
    }
    const command *k = find_command(argv[1]);
    if (!k) {
        fprintf(stderr, "advctl: unknown command '%s' (see `advctl help`)\n", argv[1]);
        return ADVCTL_USAGE;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            print_usage(stdout, k);
            return 0;
        }
    int rc = k->fn(&c, argc - 1, argv + 1);
    ctl_close(&c);
    return rc;
}
