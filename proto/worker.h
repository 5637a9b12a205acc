/*
 * worker.h - the worker protocol: what advd and its `advd --worker`
 * process say to each other over the worker's stdin and stdout. Both
 * sides build and read every message through this module, so a field
 * added on one side cannot be forgotten on the other.
 *
 * Format (version ADV_WORKER_PROTO): one JSON object per line, its kind in
 * "type". Checkpoints never travel in a line: the worker writes each one
 * as a file in the daemon's checkpoint folder (daemon/ckptfile.h) and
 * names it; the daemon names the files a worker starts from the same way.
 *
 * daemon -> worker
 *   job      first line: {"type":"job","v":1,"job":ID,"attempt":N,
 *            "threads":T,"final_eval_limit":L,"ckpt_dir":"/path",
 *            "spec":{..}, "parent_spec":{..} (eval: the training job's),
 *            "resume":[ckpt, ...] (train: newest first; the first whose
 *            checksum holds is used), "init":ckpt (train, spec "init"),
 *            "checkpoint":ckpt (eval)}
 *            ckpt = {"file":NAME,"size":BYTES,"crc32":C,"step":S}
 *   stop     {"type":"stop"}: checkpoint at the next batch boundary, exit
 * worker -> daemon
 *   progress   {"progress":P,"epoch":E,"step":S,"images_per_s":R,"loss":L}
 *   metrics    {"epoch":E,"step":S,"values":{"key":number|null, ...}}
 *   checkpoint {"epoch":E,"step":S,"val_robust_acc":A|null,"ckpt":ckpt}
 *   eval       {"spec":{..},"eps":X,"n":N,"clean_acc":A,"robust_acc":B,
 *               "survival":"<base64 of n bytes>"|absent,"warnings":[".."]}
 *   report     {"kind":K,"data":{..}}, K one of ADV_REPORT_KINDS
 *   image      {"name":N,"data":"<base64>"}
 *   warning    {"message":".."}   something the job's owner should know
 *   done       {"status":"succeeded"|"stopped"}, then exit 0
 *   error      {"message":".."}, then exit 1
 * Numbers that are NaN travel as null.
 */
#ifndef ADV_PROTO_WORKER_H
#define ADV_PROTO_WORKER_H

#include "proto.h"

#define ADV_WORKER_PROTO 1
/* Longest line either side accepts: images and reports are the largest. */
#define ADV_WORKER_LINE_MAX ((size_t)64 << 20)
#define ADV_WORKER_RESUME_MAX 8
#define ADV_CKPT_FILE_MAX 96

/* X(NAME, "type", member): one list for the enum, the names and the
 * codec tables in worker.c (a message without its encoder and decoder
 * does not link). */
#define ADV_WORKER_MSGS(X)                \
    X(JOB, "job", job)                    \
    X(STOP, "stop", none)                 \
    X(PROGRESS, "progress", progress)     \
    X(METRICS, "metrics", metrics)        \
    X(CHECKPOINT, "checkpoint", checkpoint) \
    X(EVAL, "eval", eval)                 \
    X(REPORT, "report", report)           \
    X(IMAGE, "image", image)              \
    X(WARNING, "warning", text)           \
    X(DONE, "done", done)                 \
    X(ERROR, "error", text)

typedef enum {
#define X(name, str, member) ADV_W_##name,
    ADV_WORKER_MSGS(X)
#undef X
    ADV_W_COUNT
} adv_wtype;

const char *adv_wtype_name(adv_wtype t);

/* What an evaluation reports beyond its accuracies, one row per (job,
 * kind) in the store: X(name), the name as it is stored and sent. */
#define ADV_REPORT_KINDS(X)                                                      \
    X(calibration)  /* ECE, NLL, Brier, reliability bins, fitted temperature */ \
    X(corruptions)  /* accuracy per corruption and severity */                  \
    X(explanations) /* saliency checks, faithfulness, fragility */              \
    X(indicators)   /* indicators of attack failure, per attack and eps */

/* 1 when kind is one of ADV_REPORT_KINDS. */
int adv_report_kind_valid(const char *kind);

/* A checkpoint file in the daemon's checkpoint folder. */
typedef struct {
    char file[ADV_CKPT_FILE_MAX];
    uint64_t size;
    uint32_t crc32;
    int64_t step;
} adv_wckpt;

typedef struct {
    int64_t job;
    int attempt, threads, final_eval_limit;
    char *ckpt_dir;
    json_t *spec, *parent_spec;         /* parent_spec: NULL but for eval */
    adv_wckpt resume[ADV_WORKER_RESUME_MAX];
    int nresume;
    int has_init, has_checkpoint;
    adv_wckpt init, checkpoint;
} adv_wjob;

typedef struct {
    double progress, images_per_s, loss;
    int64_t epoch, step;
} adv_wprogress;

typedef struct {
    int64_t epoch, step;
    json_t *values;                     /* key -> number or null */
} adv_wmetrics;

typedef struct {
    int64_t epoch, step;
    double val_robust_acc;              /* NAN: not measured */
    adv_wckpt ckpt;
} adv_wcheckpoint;

typedef struct {
    json_t *spec, *warnings;            /* warnings: an array of strings */
    double eps, clean_acc, robust_acc;
    int n;
    uint8_t *survival;                  /* n bytes, or NULL */
} adv_weval;

typedef struct {
    char kind[32];
    json_t *data;
} adv_wreport;

typedef struct {
    char name[128];
    uint8_t *data;
    size_t len;
} adv_wimage;

typedef struct {
    int succeeded;                      /* 0: stopped */
} adv_wdone;

typedef struct {
    char *message;
} adv_wtext;

typedef struct {
    adv_wtype type;
    union {
        adv_wjob job;
        adv_wprogress progress;
        adv_wmetrics metrics;
        adv_wcheckpoint checkpoint;
        adv_weval eval;
        adv_wreport report;
        adv_wimage image;
        adv_wdone done;
        adv_wtext text;
        int none;
    } u;
} adv_wmsg;

/* The line for m, newline included (malloc'd; NULL when out of memory).
 * m is only read: its strings and JSON stay the caller's. */
char *adv_wmsg_encode(const adv_wmsg *m, size_t *len);

/* Parse and check one line (without its newline) into out, which owns
 * what it points to afterwards (adv_wmsg_clear); invalid_argument naming
 * the message and the field when anything is missing or of a wrong type. */
int adv_wmsg_decode(const char *line, size_t len, adv_wmsg *out, adv_error *e);

void adv_wmsg_clear(adv_wmsg *m);

/* A checkpoint file name as a worker may give it: 1 to ADV_CKPT_FILE_MAX-1
 * of [A-Za-z0-9._-], not starting with a dot (never a path). */
int adv_ckpt_file_valid(const char *name);

#endif
