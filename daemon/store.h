/*
 * store.h - advd's durable state in one SQLite file: jobs, checkpoints,
 * metrics and evaluation results (the schema is at the top of store.c).
 *
 * The daemon is the only writer; WAL mode lets readers (a second client
 * tool, sqlite3 on the command line) look while it writes. Every function
 * returns 0 on success or a negative ADV_STORE_* code with a one-line
 * message in err (CORE_ERRLEN bytes; may be NULL) naming what failed:
 *   ADV_STORE_ERROR      SQLite or the system failed
 *   ADV_STORE_NOT_FOUND  no such job or checkpoint ("no job 7")
 *   ADV_STORE_CONFLICT   the job is not in a state that allows it
 *   ADV_STORE_CORRUPT    a checkpoint failed its checksum or its file is
 *                        missing: never used
 * Times are seconds since the Unix epoch (REAL), 0 when not set. Strings
 * and buffers in results are malloc'ed and released by the *_clear/_free
 * functions.
 */
#ifndef ADV_STORE_H
#define ADV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"
#include "proto/proto.h"
#include "proto/worker.h"

#define ADV_STORE_SCHEMA 7   /* PRAGMA user_version this code writes */

enum {
    ADV_STORE_OK = 0,
    ADV_STORE_ERROR = -1,
    ADV_STORE_NOT_FOUND = -2,
    ADV_STORE_CONFLICT = -3,
    ADV_STORE_CORRUPT = -4,
};

typedef struct adv_store adv_store;

/* Open (creating the file and migrating the schema to ADV_STORE_SCHEMA);
 * busy_ms: how long a statement waits for a lock held by another process. */
int adv_store_open(const char *path, int busy_ms, adv_store **out, char *err);
void adv_store_close(adv_store *st);
/* The connection, for the daemon's modules that keep their own tables
 * (monitor_db.c); the loop's thread only. */
typedef struct sqlite3 sqlite3;
sqlite3 *adv_store_sqlite(adv_store *st);
/* Their statements that run per request (a job's status reads its
 * monitor), prepared on first use and kept until the store closes: slot
 * (0 to ADV_STORE_SLOTS - 1, the caller's numbering) holds sql. Returned
 * reset, without bindings; the caller resets it after use. NULL on an
 * error. */
#define ADV_STORE_SLOTS 4
typedef struct sqlite3_stmt sqlite3_stmt;
sqlite3_stmt *adv_store_slot(adv_store *st, int slot, const char *sql, char *err);

/* WAL checkpoints (daemon/walckpt.c): replace this connection's automatic
 * ones, which run inside a commit, by a call of full(ctx) after a commit
 * that leaves the WAL at 1000 pages or more; run one PASSIVE checkpoint
 * (copies what no reader needs, waits for nobody), from any one thread at
 * a time. */
int adv_store_wal_manual(adv_store *st, void (*full)(void *ctx), void *ctx, char *err);
int adv_store_wal_checkpoint(adv_store *st, char *err);
int adv_store_schema_version(adv_store *st, int *version, char *err);

/* ------------------------------------------------------------------ jobs */

typedef struct {
    int64_t id;
    adv_job_kind kind;
    char name[ADV_NAME_MAX + 1];
    char *spec;                 /* canonical JSON (adv_jobspec_canonical) */
    adv_job_state state;
    int priority;               /* higher first */
    int attempts;               /* times it was started */
    int64_t parent;             /* eval jobs: the training job; else 0 */
    double progress;            /* [0, 1] */
    double created, started, finished;
    char *error;                /* why it failed / was cancelled / requeued; NULL */
    int64_t owner;              /* the submitter's uid; -1: unknown (the daemon's user) */
    int64_t init_job;           /* train: the job it started from (0: none) */
    int64_t init_ckpt;          /* and that job's checkpoint, once started (0: not yet) */
    uint32_t init_checksum;     /* its crc32 */
    char *warning;              /* the last note for its owner; NULL: none */
} adv_job;

void adv_job_clear(adv_job *j);
void adv_jobs_free(adv_job *jobs, int n);

/* A new queued job from j->kind, name, spec, priority and parent (0: none;
 * else it must exist). */
int adv_store_job_insert(adv_store *st, const adv_job *j, int64_t *id, char *err);
int adv_store_job_get(adv_store *st, int64_t id, adv_job *out, char *err);

typedef struct {
    int state;   /* an adv_job_state, or -1 for any */
    int kind;    /* an adv_job_kind, or -1 for any */
    int limit;   /* 0: all */
    int by_owner;   /* only the jobs of owner */
    int64_t owner;
} adv_job_filter;

/* A training job started from checkpoint ckpt (crc32 checksum) of its
 * init_job: kept with the job, and that checkpoint is no longer pruned. */
int adv_store_job_lineage(adv_store *st, int64_t id, int64_t ckpt, uint32_t checksum, char *err);

/* Queued jobs of one owner (-1: those without one). */
int adv_store_jobs_queued_by(adv_store *st, int64_t owner, int *n, char *err);

/* Jobs by priority (highest first), then id. */
int adv_store_job_list(adv_store *st, const adv_job_filter *f, adv_job **out, int *n, char *err);

/* Move a job along its life: queued -> running (started, attempts + 1),
 * running -> queued (a retry or a shutdown; error kept as the reason),
 * running -> succeeded (progress 1, error cleared), queued|running ->
 * failed|cancelled (finished, with error). Anything else is a conflict. */
int adv_store_job_set_state(adv_store *st, int64_t id, adv_job_state state, const char *error,
                            char *err);

/* Atomically take the next job to run and mark it running, by fair share
 * between owners: the queued job of the owner with the least running time
 * in the last 24 hours (ties: the owner served least recently), and among
 * one owner's jobs the highest priority, oldest first; evaluations whose
 * training job is still queued or running are skipped.
 * ADV_STORE_NOT_FOUND when there is none. */
int adv_store_job_claim(adv_store *st, adv_job *out, char *err);

/* At startup: jobs left running by a daemon that died are queued again. */
int adv_store_requeue_running(adv_store *st, int *count, char *err);

/* Set (text NULL: clear) the note a job's owner sees in its status. */
int adv_store_job_warn(adv_store *st, int64_t id, const char *text, char *err);

/* A running job's progress fraction in [0, 1]. */
int adv_store_job_progress(adv_store *st, int64_t id, double progress, char *err);

/* ----------------------------------------------------------- checkpoints */

typedef struct {
    int64_t id, job;
    int epoch;                  /* epochs completed */
    int64_t step;               /* global step (unique within a job) */
    double val_robust_acc;      /* NAN when not measured */
    int is_best;                /* the best by val_robust_acc of its job */
    uint32_t checksum;          /* crc32 of state */
    size_t size;
    double created;
    uint8_t *state;             /* core_trainer_save bytes; NULL in lists */
    char file[ADV_CKPT_FILE_MAX]; /* its file in the checkpoint folder; "": in the row */
} adv_ckpt;

void adv_ckpt_clear(adv_ckpt *c);
void adv_ckpts_free(adv_ckpt *c, int n);

/* The checkpoint folder (daemon/ckptfile.h): workers write there. */
const char *adv_store_ckpt_dir(const adv_store *st);

/* Record a checkpoint for c->job at c->step (replacing one at the same
 * step), then, in the same transaction, delete the job's other checkpoints
 * but the keep_last latest and the best (keep_last 0: keep all), and
 * their files. Either c->file names a file a worker has written durably
 * into the folder (c->size, c->checksum describe it), or c->file is "" and
 * c->state (c->size bytes) is written to a new file first. The row's
 * commit is not fsync'd (sync NORMAL): after a power cut the job may
 * resume from the checkpoint before. *id may be NULL. */
int adv_store_ckpt_put(adv_store *st, const adv_ckpt *c, int keep_last, int64_t *id, char *err);

/* Load one with its bytes, verifying size and checksum (ADV_STORE_CORRUPT
 * on a mismatch). Best: highest val_robust_acc, earliest at a tie; by
 * epoch: the first checkpoint taken with that many epochs completed. */
int adv_store_ckpt_get(adv_store *st, int64_t job, adv_ckpt_ref ref, adv_ckpt *out, char *err);
/* The same without its state (out->state NULL). */
int adv_store_ckpt_find(adv_store *st, int64_t job, adv_ckpt_ref ref, adv_ckpt *out, char *err);
/* n bytes of checkpoint id's state from offset, straight from the blob
 * (no whole copy): for serving a large checkpoint piece by piece. */
int adv_store_ckpt_read(adv_store *st, int64_t id, size_t offset, void *buf, size_t n, char *err);
/* Read c's state piece by piece and compare its crc32 with the stored one
 * (ADV_STORE_CORRUPT when it differs). */
int adv_store_ckpt_verify(adv_store *st, const adv_ckpt *c, char *err);

/* At the daemon's start: move the checkpoints an advd before schema 4
 * kept inside the database out to files, one row at a time; *moved
 * counts them. */
int adv_store_ckpt_unblob(adv_store *st, int *moved, char *err);

/* A job's checkpoints, by step, without their bytes. */
int adv_store_ckpt_list(adv_store *st, int64_t job, adv_ckpt **out, int *n, char *err);

/* At the daemon's start, when no worker writes: remove the files of the
 * checkpoint folder that no row names (a worker's that the daemon died
 * before recording, a pruned one whose removal failed). */
int adv_store_ckpt_sweep(adv_store *st, int *removed, char *err);

/* --------------------------------------------------------------- metrics */

#define ADV_METRIC_KEY 64

typedef struct {
    const char *key;            /* 1 to ADV_METRIC_KEY - 1 bytes */
    int64_t step;
    int epoch;
    double value;               /* NaN is kept (stored as NULL) */
} adv_metric;

typedef struct {
    char key[ADV_METRIC_KEY];
    int64_t step;
    int epoch;
    double value, time;
} adv_metric_row;

/* One transaction for the batch; a point at a (job, key, step) that exists
 * replaces it, so a resumed job never duplicates a row. */
int adv_store_metrics_put(adv_store *st, int64_t job, const adv_metric *m, int n, char *err);

/* A job's time series ordered by key then step; key NULL for every key,
 * only steps >= since. */
int adv_store_metrics_get(adv_store *st, int64_t job, const char *key, int64_t since,
                          adv_metric_row **out, int *n, char *err);

/* ----------------------------------------------------------- evaluations */

typedef struct {
    int64_t id;
    int64_t job;                /* the job that ran it (an eval job, or a
                                   training job's final evaluation) */
    int64_t checkpoint;         /* 0: none, or deleted since */
    int epoch;                  /* of the checkpoint (kept after pruning) */
    int64_t step;
    char *spec;                 /* attack or suite, JSON */
    double eps;
    int n;                      /* examples */
    double clean_acc, robust_acc;
    uint8_t *survival;          /* n bytes, 1: survived every attack; or NULL */
    char *warnings;             /* JSON array of strings; NULL reads "[]" */
    double created;
} adv_eval;

void adv_evals_free(adv_eval *e, int n);

/* epoch and step are taken from the checkpoint when there is one. */
int adv_store_eval_put(adv_store *st, const adv_eval *ev, int64_t *id, char *err);

/* The evaluations a job ran and those of the eval jobs on its
 * checkpoints, oldest first. */
int adv_store_eval_list(adv_store *st, int64_t job, adv_eval **out, int *n, char *err);

/* --------------------------------------------------- reports and images */

/* What an evaluation job found beyond adversarial accuracy: one JSON
 * object per (job, kind), kind "calibration", "corruptions" or
 * "explanations"; putting one again replaces it (a retried job). */
typedef struct {
    int64_t id, job;
    char kind[16];
    char *data;                 /* JSON object */
    double created;
} adv_report;

int adv_store_report_put(adv_store *st, int64_t job, const char *kind, const char *data,
                         char *err);
/* The reports of a job and of the eval jobs on its checkpoints, by job. */
int adv_store_report_list(adv_store *st, int64_t job, adv_report **out, int *n, char *err);
void adv_reports_free(adv_report *r, int n);

/* Pictures an evaluation drew (PNG files and their text index), by name:
 * a plain file name, no '/', not starting with '.'. */
#define ADV_IMAGE_NAME 64
typedef struct {
    char name[ADV_IMAGE_NAME];
    uint8_t *data;
    size_t size;
} adv_image;

int adv_store_image_put(adv_store *st, int64_t job, const char *name, const uint8_t *data,
                        size_t size, char *err);
int adv_store_image_list(adv_store *st, int64_t job, adv_image **out, int *n, char *err);
void adv_images_free(adv_image *im, int n);

#endif
