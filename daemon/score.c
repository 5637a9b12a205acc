/*
 * score.c - the queue of work off the event loop (score.h): libuv's
 * thread pool, one task at a time, and the model kept warm between tasks.
 */
#include "daemon/score.h"

#include <stdlib.h>

#include "core/state.h"

struct advd_tasks {
    advd *d;
    advd_task *head, *tail;      /* queued, not yet started */
    advd_task *running;
    uv_work_t work;
    int pending;                 /* queued and running */
    core_model *model;           /* warm: the last checkpoint's (run() only) */
    int64_t model_ckpt;
    uint32_t model_crc;
};

static void start_next(struct advd_tasks *q);

static void on_work(uv_work_t *w)
{
    struct advd_tasks *q = w->data;
    q->running->run(q->running);
}

static void finish(struct advd_tasks *q, advd_task *t)
{
    q->pending--;
    t->done(q->d, t);
}

static void on_after(uv_work_t *w, int status)
{
    struct advd_tasks *q = w->data;
    advd_task *t = q->running;
    q->running = NULL;
    t->cancelled = status == UV_ECANCELED;
    finish(q, t);
    if (q->d->stopping) { /* what was still queued is answered, not run */
        while (q->head) {
            advd_task *n = q->head;
            q->head = n->next;
            n->cancelled = 1;
            finish(q, n);
        }
        q->tail = NULL;
    }
    start_next(q);
}

static void start_next(struct advd_tasks *q)
{
    if (q->running || !q->head)
        return;
    advd_task *t = q->head;
    q->head = t->next;
    if (!q->head)
        q->tail = NULL;
    q->running = t;
    q->work.data = q;
    if (uv_queue_work(&q->d->loop, &q->work, on_work, on_after)) {
        q->running = NULL;
        t->cancelled = 1;
        finish(q, t);
        start_next(q);
    }
}

void advd_task_submit(advd *d, advd_task *t)
{
    if (!d->tasks && (d->tasks = calloc(1, sizeof *d->tasks)))
        d->tasks->d = d;
    struct advd_tasks *q = d->tasks;
    t->next = NULL;
    t->cancelled = 0;
    t->q = q;
    if (!q) {
        t->cancelled = 1;
        t->done(d, t);
        return;
    }
    q->pending++;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
    start_next(q);
}

int advd_tasks_pending(advd *d)
{
    return d->tasks ? d->tasks->pending : 0;
}

int advd_task_busy(advd *d, int64_t key)
{
    struct advd_tasks *q = d->tasks;
    if (!q || !key)
        return 0;
    if (q->running && q->running->key == key)
        return 1;
    for (advd_task *t = q->head; t; t = t->next)
        if (t->key == key)
            return 1;
    return 0;
}

void advd_tasks_free(advd *d)
{
    if (!d->tasks)
        return;
    core_model_free(d->tasks->model);
    free(d->tasks);
    d->tasks = NULL;
}

core_model *advd_task_model(advd_task *t, int64_t ckpt_id, uint32_t crc, const uint8_t *state,
                            size_t len, int batch, char *err)
{
    struct advd_tasks *q = t->q;
    if (!q->model || q->model_ckpt != ckpt_id || q->model_crc != crc) {
        core_model_free(q->model);
        q->model = NULL;
        if (core_state_model(state, len, &q->model, err))
            return NULL;
        q->model_ckpt = ckpt_id;
        q->model_crc = crc;
    }
    if (core_model_reserve(q->model, batch, err))
        return NULL;
    return q->model;
}
