/*
 * monitor.h - drift monitors on a training job's checkpoint: the predict
 * and monitor requests (monitor.c), the computing behind them (drift_tasks.c,
 * on score.h's queue) and their rows (monitor_db.c, tables of store.c's
 * schema 6).
 */
#ifndef ADVD_MONITOR_H
#define ADVD_MONITOR_H

#include "core/drift.h"
#include "daemon/advd.h"
#include "daemon/score.h"

/* The largest batch of one predict request (the client sends more in
 * several requests, each line under ADV_PROTO_MAX_LINE). */
#define ADVD_PREDICT_MAX 4096

typedef struct {
    int64_t id, job, ckpt;
    int epoch, window;
    double temperature;
    char temperature_from[96];   /* "evaluation job 5", or "none (T = 1)" */
    uint8_t *reference;          /* drift_tasks.c's format; NULL unless asked */
    size_t reference_len;
    char *profiles;              /* JSON array; NULL unless asked */
    uint8_t *pending;            /* pending_n rows of (c + d) floats */
    size_t pending_len;
    int pending_n;
    double created;
    int windows, alarms;         /* rows so far, and those that alarmed */
} advd_monitor;

/* monitor_db.c. Functions return 0, or -1 with err; get returns 1 when
 * the job has no monitor. */
int advd_monitor_get(advd *d, int64_t job, int blobs, advd_monitor *m, char *err);
void advd_monitor_clear(advd_monitor *m);
/* Insert m (its id is set), replacing the job's previous monitor and its
 * windows. */
int advd_monitor_create(advd *d, advd_monitor *m, char *err);
int advd_monitor_set_pending(advd *d, int64_t id, const void *rows, size_t len, int n, char *err);
/* One full window; *seq its number (1, 2, ...). */
int advd_monitor_window_put(advd *d, int64_t id, const core_drift_result *r, const char *hint,
                            json_t *stats, int *seq, char *err);
/* The windows after seq `since`, oldest first, as JSON objects. */
int advd_monitor_windows(advd *d, int64_t id, int64_t since, json_t **out, char *err);
/* For status: {"id", "job", "checkpoint", "epoch", "window", "filled", "windows",
 * "alarms", "last": the newest window or null}; NULL when none. */
json_t *advd_monitor_summary(advd *d, int64_t job);

/* monitor.c: the requests. */
void advd_cmd_predict(advd *d, advd_client *c, const adv_request *req);
void advd_cmd_monitor(advd *d, advd_client *c, const adv_request *req);

/* drift_tasks.c: what runs off the loop. */
typedef struct {
    int64_t ckpt_id;
    uint32_t crc;
    uint8_t *state;              /* the checkpoint's bytes */
    size_t len;
} advd_ckpt_bytes;

#endif
