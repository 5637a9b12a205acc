/*
 * score.h - the daemon's work that computes: scoring images with a
 * checkpoint, a drift monitor's reference and a window's drift tests. The
 * event loop never computes; these run on libuv's thread pool, one task at
 * a time in the order submitted (FIFO), beside the training workers, which
 * are other processes: a predict never waits for a worker slot, only for
 * the scoring tasks queued before it.
 *
 * A task's run() may touch neither the store nor the loop (it gets copies
 * of what it needs); its done() runs on the loop afterwards, stores what
 * run() found, answers, and frees the task. One model is kept warm between
 * tasks: the last checkpoint scored (by checkpoint id), used only by run().
 */
#ifndef ADVD_SCORE_H
#define ADVD_SCORE_H

#include "daemon/advd.h"

typedef struct advd_task advd_task;
struct advd_task {
    void (*run)(advd_task *t);              /* on a pool thread */
    void (*done)(advd *d, advd_task *t);    /* on the loop; frees t */
    int cancelled;                          /* 1: run() never ran (daemon stopping) */
    int64_t key;                            /* what it works on (advd_task_busy); 0: none */
    advd_task *next;
    struct advd_tasks *q;                   /* set by advd_task_submit */
};

/* Queue t (done() is called exactly once, also when cancelled). */
void advd_task_submit(advd *d, advd_task *t);
/* Tasks queued and not finished (info, tests). */
int advd_tasks_pending(advd *d);
/* 1 when a task of this key is queued or running (one window of a
 * monitor at a time). */
int advd_task_busy(advd *d, int64_t key);
/* At exit, once the loop ran dry: the warm model. */
void advd_tasks_free(advd *d);

/* From run(): the model of checkpoint ckpt_id with checksum crc (state
 * bytes), warm when the last task used the same one; reserved for batch examples. NULL with
 * err set when the bytes are not a checkpoint. */
core_model *advd_task_model(advd_task *t, int64_t ckpt_id, uint32_t crc, const uint8_t *state,
                            size_t len, int batch, char *err);

#endif
