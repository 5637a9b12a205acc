/*
 * monitor_db.c - the rows of drift monitors (store.c's schema 6: tables
 * monitors and monitor_windows), through the store's connection. The
 * two reads every job status makes (its monitor, its last window) keep
 * their statements (adv_store_slot); the rest are prepared when used.
 */
#include "daemon/monitor.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static sqlite3 *db_of(advd *d)
{
    return adv_store_sqlite(d->store);
}

static int prepare(advd *d, const char *sql, sqlite3_stmt **s, char *err)
{
    if (sqlite3_prepare_v2(db_of(d), sql, -1, s, NULL) == SQLITE_OK)
        return 0;
    return core_errf(err, "monitors: %s", sqlite3_errmsg(db_of(d)));
}

/* Step a statement that returns no row, then finalise it. */
static int run_once(advd *d, sqlite3_stmt *s, char *err)
{
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : core_errf(err, "monitors: %s", sqlite3_errmsg(db_of(d)));
}

static int exec(advd *d, const char *sql, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db_of(d), sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    core_errf(err, "monitors: %s", msg ? msg : "failed");
    sqlite3_free(msg);
    return -1;
}

static void *blob_copy(sqlite3_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s, col);
    *len = (size_t)sqlite3_column_bytes(s, col);
    void *q = malloc(*len ? *len : 1);
    if (q && p)
        memcpy(q, p, *len);
    return q;
}

void advd_monitor_clear(advd_monitor *m)
{
    free(m->reference);
    free(m->profiles);
    free(m->pending);
    memset(m, 0, sizeof *m);
}

/* adv_store_slot's numbers of the statements kept. */
enum { SLOT_GET, SLOT_WINDOWS };

int advd_monitor_get(advd *d, int64_t job, int blobs, advd_monitor *m, char *err)
{
    memset(m, 0, sizeof *m);
    sqlite3_stmt *s = adv_store_slot(
        d->store, SLOT_GET,
        "SELECT id, checkpoint, epoch, window, temperature, temperature_from, pending_n, "
        "created, (SELECT count(*) FROM monitor_windows WHERE monitor = m.id), "
        "(SELECT count(*) FROM monitor_windows WHERE monitor = m.id AND alarm), "
        "reference, profiles, pending FROM monitors m WHERE job = ?1",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? 1 : core_errf(err, "monitors: %s", sqlite3_errmsg(db_of(d)));
        sqlite3_reset(s);
        return rc;
    }
    m->id = sqlite3_column_int64(s, 0);
    m->job = job;
    m->ckpt = sqlite3_column_int64(s, 1);
    m->epoch = sqlite3_column_int(s, 2);
    m->window = sqlite3_column_int(s, 3);
    m->temperature = sqlite3_column_double(s, 4);
    snprintf(m->temperature_from, sizeof m->temperature_from, "%s",
             (const char *)sqlite3_column_text(s, 5));
    m->pending_n = sqlite3_column_int(s, 6);
    m->created = sqlite3_column_double(s, 7);
    m->windows = sqlite3_column_int(s, 8);
    m->alarms = sqlite3_column_int(s, 9);
    rc = 0;
    if (blobs) {
        size_t plen;
        m->reference = blob_copy(s, 10, &m->reference_len);
        m->profiles = blob_copy(s, 11, &plen);
        m->pending = blob_copy(s, 12, &m->pending_len);
        if (m->profiles) /* stored with its NUL; an empty blob is "" */
            m->profiles[plen ? plen - 1 : 0] = '\0';
        if (!m->reference || !m->profiles || !m->pending)
            rc = core_errf(err, "out of memory for monitor %lld", (long long)m->id);
    }
    sqlite3_reset(s);
    if (rc)
        advd_monitor_clear(m);
    return rc;
}

int advd_monitor_create(advd *d, advd_monitor *m, char *err)
{
    sqlite3_stmt *s;
    if (exec(d, "BEGIN IMMEDIATE", err))
        return -1;
    if (prepare(d, "DELETE FROM monitors WHERE job = ?1", &s, err))
        goto undo;
    sqlite3_bind_int64(s, 1, m->job);
    if (run_once(d, s, err) ||
        prepare(d,
                "INSERT INTO monitors (job, checkpoint, epoch, window, temperature, "
                "temperature_from, reference, profiles, pending, pending_n, created) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, x'', 0, ?9)",
                &s, err))
        goto undo;
    sqlite3_bind_int64(s, 1, m->job);
    sqlite3_bind_int64(s, 2, m->ckpt);
    sqlite3_bind_int(s, 3, m->epoch);
    sqlite3_bind_int(s, 4, m->window);
    sqlite3_bind_double(s, 5, m->temperature);
    sqlite3_bind_text(s, 6, m->temperature_from, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 7, m->reference, (int)m->reference_len, SQLITE_STATIC);
    sqlite3_bind_blob(s, 8, m->profiles, (int)strlen(m->profiles) + 1, SQLITE_STATIC);
    sqlite3_bind_double(s, 9, m->created = now_s());
    if (run_once(d, s, err))
        goto undo;
    m->id = sqlite3_last_insert_rowid(db_of(d));
    return exec(d, "COMMIT", err);
undo:
    exec(d, "ROLLBACK", NULL);
    return -1;
}

int advd_monitor_set_pending(advd *d, int64_t id, const void *rows, size_t len, int n, char *err)
{
    sqlite3_stmt *s;
    if (prepare(d, "UPDATE monitors SET pending = ?2, pending_n = ?3 WHERE id = ?1", &s, err))
        return -1;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_blob(s, 2, len ? rows : "", (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 3, n);
    return run_once(d, s, err);
}

static void bind_real(sqlite3_stmt *s, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(s, i, v);
    else
        sqlite3_bind_null(s, i);
}

int advd_monitor_window_put(advd *d, int64_t id, const core_drift_result *r, const char *hint,
                            json_t *stats, int *seq, char *err)
{
    sqlite3_stmt *s;
    char *text = json_dumps(stats, ADV_JSON_FLAGS);
    if (!text)
        return core_errf(err, "out of memory for a window's statistics");
    int rc = prepare(d,
                     "INSERT INTO monitor_windows (monitor, seq, time, n, bbsd_p, entropy_p, "
                     "confidence_p, chi2_p, mmd_p, cbpe, atc, alarm, hint, stats) VALUES (?1, "
                     "(SELECT coalesce(max(seq), 0) + 1 FROM monitor_windows WHERE monitor = ?1), "
                     "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING seq",
                     &s, err);
    if (rc) {
        free(text);
        return -1;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_double(s, 2, now_s());
    sqlite3_bind_int(s, 3, r->n);
    const double p[] = {r->bbsd_p, r->entropy_p, r->conf_p, r->chi2_p, r->mmd.p, r->cbpe, r->atc};
    for (int i = 0; i < 7; i++)
        bind_real(s, 4 + i, p[i]);
    sqlite3_bind_int(s, 11, r->alarm);
    if (hint && *hint)
        sqlite3_bind_text(s, 12, hint, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, text, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    rc = rc == SQLITE_ROW ? 0 : core_errf(err, "monitors: %s", sqlite3_errmsg(db_of(d)));
    sqlite3_finalize(s);
    free(text);
    return rc;
}

static json_t *col_real(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? json_null()
                                                    : json_real(sqlite3_column_double(s, i));
}

static json_t *window_row(sqlite3_stmt *s)
{
    static const char *const names[] = {"bbsd_p", "entropy_p", "confidence_p", "chi2_p",
                                        "mmd_p",  "cbpe",      "atc"};
    const char *hint = (const char *)sqlite3_column_text(s, 11);
    json_t *o = json_pack("{s:i, s:f, s:i, s:b, s:o}", "seq", sqlite3_column_int(s, 0), "time",
                          sqlite3_column_double(s, 1), "n", sqlite3_column_int(s, 2), "alarm",
                          sqlite3_column_int(s, 10), "hint",
                          hint ? json_string(hint) : json_null());
    for (int i = 0; o && i < 7; i++)
        json_object_set_new(o, names[i], col_real(s, 3 + i));
    json_t *stats = json_loads((const char *)sqlite3_column_text(s, 12), 0, NULL);
    if (o)
        json_object_set_new(o, "stats", stats ? stats : json_null());
    return o;
}

int advd_monitor_windows(advd *d, int64_t id, int64_t since, json_t **out, char *err)
{
    sqlite3_stmt *s = adv_store_slot(
        d->store, SLOT_WINDOWS,
        "SELECT seq, time, n, bbsd_p, entropy_p, confidence_p, chi2_p, mmd_p, cbpe, atc, alarm, "
        "hint, stats FROM monitor_windows WHERE monitor = ?1 AND seq > ?2 ORDER BY seq",
        err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, since);
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(a, window_row(s));
    if (rc != SQLITE_DONE)
        core_errf(err, "monitors: %s", sqlite3_errmsg(db_of(d)));
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        json_decref(a);
        return -1;
    }
    *out = a;
    return 0;
}

json_t *advd_monitor_summary(advd *d, int64_t job)
{
    advd_monitor m;
    char err[CORE_ERRLEN];
    json_t *w = NULL;
    if (advd_monitor_get(d, job, 0, &m, err))
        return NULL;
    json_t *last = m.windows && !advd_monitor_windows(d, m.id, m.windows - 1, &w, err) &&
                           json_array_size(w)
                       ? json_incref(json_array_get(w, 0))
                       : json_null();
    json_decref(w);
    return json_pack("{s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:o}", "id",
                     (json_int_t)m.id, "job", (json_int_t)job, "checkpoint", (json_int_t)m.ckpt, "epoch", m.epoch,
                     "window", m.window, "filled", m.pending_n, "windows", m.windows, "alarms",
                     m.alarms, "temperature", m.temperature, "temperature_from",
                     m.temperature_from, "last", last);
}
