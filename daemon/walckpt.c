/*
 * walckpt.c - the store's WAL checkpoints, off the event loop.
 *
 * In WAL mode with synchronous NORMAL a commit writes the log and syncs
 * nothing; the fsync comes when the log is copied back into the database
 * (a checkpoint). SQLite runs one inside whichever commit fills the log
 * past 1000 pages, which in advd is a request on the event loop: it stalled
 * every client for 6 to 76 ms on this disk. So the daemon's connection
 * never checkpoints (adv_store_wal_manual): a commit that fills the log
 * past 1000 pages, and a timer every second for what is left after a
 * burst, hand one PASSIVE checkpoint at a time to libuv's thread pool, on
 * a second connection that nothing else uses. A passive checkpoint waits
 * for no reader or writer: what it cannot copy now, the next one does.
 */
#include "advd.h"

#include <stdlib.h>

#define WALCKPT_EVERY_MS 1000

struct advd_walckpt {
    advd *d;
    adv_store *st;          /* the second connection; used by the work only */
    uv_timer_t timer;
    uv_work_t work;
    int pending;            /* the timer's handle and a queued work, not yet done */
    int busy, failed;       /* failed: the last error was logged */
    int rc;
    char err[CORE_ERRLEN];
};

static void walckpt_free(struct advd_walckpt *w)
{
    if (--w->pending > 0)
        return;
    adv_store_close(w->st);
    free(w);
}

static void on_work(uv_work_t *req)
{
    struct advd_walckpt *w = req->data;
    w->rc = adv_store_wal_checkpoint(w->st, w->err);
}

static void on_work_done(uv_work_t *req, int status)
{
    struct advd_walckpt *w = req->data;
    w->busy = 0;
    if (status == 0 && w->rc && !w->failed) /* once per run of failures */
        advd_log(w->d, "cannot checkpoint the database's WAL: %s", w->err);
    w->failed = status == 0 && w->rc;
    walckpt_free(w);
}

static void checkpoint_soon(void *ctx)
{
    struct advd_walckpt *w = ctx;
    if (w->busy)
        return;
    w->work.data = w;
    if (uv_queue_work(&w->d->loop, &w->work, on_work, on_work_done) == 0)
        w->busy = 1, w->pending++;
}

static void on_timer(uv_timer_t *t)
{
    checkpoint_soon(t->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    walckpt_free(h->data);
}

int advd_walckpt_start(advd *d, char *err)
{
    struct advd_walckpt *w = calloc(1, sizeof *w);
    if (!w)
        return core_errf(err, "out of memory");
    w->d = d;
    if (adv_store_open(d->opt.db_path, 5000, &w->st, err) ||
        adv_store_wal_manual(d->store, checkpoint_soon, w, err)) {
        adv_store_close(w->st);
        free(w);
        return -1;
    }
    uv_timer_init(&d->loop, &w->timer);
    w->timer.data = w;
    w->pending = 1;
    uv_timer_start(&w->timer, on_timer, WALCKPT_EVERY_MS, WALCKPT_EVERY_MS);
    d->walckpt = w;
    return 0;
}

void advd_walckpt_stop(advd *d)
{
    struct advd_walckpt *w = d->walckpt;
    if (!w)
        return;
    d->walckpt = NULL;
    adv_store_wal_manual(d->store, NULL, NULL, NULL); /* no more calls to w */
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}
