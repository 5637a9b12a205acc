/*
 * drift_tasks.h - the tasks of drift monitors (drift_tasks.c computes them
 * off the loop; monitor.c fills them in and finishes them on the loop).
 * Each embeds advd_task first, so a task pointer is the task.
 */
#ifndef ADVD_DRIFT_TASKS_H
#define ADVD_DRIFT_TASKS_H

#include "core/data.h"
#include "daemon/monitor.h"

typedef struct {
    int n, c, d;
    float *logits, *feat;
} advd_scores;

void advd_scores_free(advd_scores *s);

/* Where a task's answer goes: the connection (by serial) and the id. */
typedef struct {
    uint64_t client;
    json_t *id;
} advd_answer_to;

typedef struct {
    advd_task task;
    advd_answer_to to;
    adv_jobspec spec;             /* the training job's */
    int64_t job;
    int epoch, monitor;           /* monitor: feed the job's monitor */
    double T;
    char temperature_from[96];
    advd_ckpt_bytes ckpt;
    uint8_t *pixels;
    size_t npixels;
    int n;
    /* out */
    int rc;
    char err[CORE_ERRLEN];
    char names[CORE_MAX_CLASSES][32];
    advd_scores out;
} advd_predict_task;

typedef struct {
    advd_task task;
    advd_answer_to to;
    adv_jobspec spec;
    advd_monitor m;               /* job, checkpoint, window, temperature */
    double T;
    advd_ckpt_bytes ckpt;
    /* out */
    int rc, n;
    char err[CORE_ERRLEN];
    uint8_t *blob;
    size_t len;
    double accuracy;
    json_t *profiles;
} advd_reference_task;

typedef struct {
    advd_task task;
    advd_answer_to to;            /* client 0: nobody waits */
    json_t *answer;               /* the predict's result, completed with the window */
    int64_t monitor;
    uint8_t *reference;
    size_t reference_len;
    json_t *profiles;
    float *rows;                  /* n rows of (c + d) floats */
    int n;
    double T;
    core_drift_cfg cfg;
    /* out */
    int rc;
    char err[CORE_ERRLEN];
    core_drift_result result;
    char hint[256];
    double atc_shift;             /* ATC with the nearest labelled shift's threshold */
    char shift[64];               /* that shift: "contrast, severity 3", "pgd", "clean" */
} advd_window_task;

void advd_predict_run(advd_task *t);
void advd_reference_run(advd_task *t);
void advd_window_run(advd_task *t);

/* A view of a reference blob (no copy); -1 when it is not one. */
int advd_reference_view(const uint8_t *blob, size_t len, core_drift_set *set,
                        const uint8_t **correct);

#endif
