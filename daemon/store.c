/*
 * store.c - the SQLite store (see store.h for the API and its conventions).
 *
 * Schema, version 1 (PRAGMA user_version = 1):
 *   jobs(id, kind 'train'|'eval'|'import' (version 5), name, spec JSON, state queued|running|
 *        succeeded|failed|cancelled, priority, parent -> jobs, progress,
 *        attempts, error, created, started, finished)
 *   checkpoints(id, job -> jobs, epoch, step, state BLOB, size, checksum
 *        (zlib crc32 of state), val_robust_acc (NULL: not measured),
 *        created; UNIQUE (job, step))
 *   metrics(job -> jobs, key, step, epoch, value (NULL: NaN), time;
 *        PRIMARY KEY (job, key, step))
 *   evaluations(id, job -> jobs, checkpoint -> checkpoints (SET NULL when
 *        pruned), epoch, step, spec JSON, eps, n, clean_acc, robust_acc,
 *        survival BLOB (n bytes), warnings JSON array, created)
 * Version 2 adds what an evaluation finds beyond adversarial accuracy:
 *   reports(id, job -> jobs, kind calibration|corruptions|explanations,
 *        data JSON object, created; UNIQUE (job, kind))
 *   images(job -> jobs, name, data BLOB (a PNG or a text index), created;
 *        PRIMARY KEY (job, name))
 * Version 3 adds ownership and fair share (a shared daemon):
 *   jobs.owner (the submitter's uid; NULL for jobs from before: the
 *        daemon's own user's)
 *   jobs.init_job, jobs.init_ckpt, jobs.init_checksum: a training job's
 *        lineage, the job whose checkpoint it started from (init_ckpt set
 *        when it starts; that checkpoint is never pruned while referred to)
 *   runs(job -> jobs, owner, started, ended (NULL while running)), one row
 *        per time a job ran, kept by two triggers on jobs.state so that no
 *        path that moves a job can forget it; the scheduler's fair share
 *        reads each user's running time of the last day from it
 * Version 4 moves checkpoint bytes into files (daemon/ckptfile.h) and adds
 * a note for the job's owner:
 *   checkpoints.file: the file in the checkpoint folder holding the bytes
 *        (state is then empty; rows from before keep their blob, file NULL,
 *        until the daemon's start moves them out: adv_store_ckpt_unblob)
 *   jobs.warning: the last thing the job's owner should know (a checkpoint
 *        that failed its checksum and was skipped, say); NULL: none
 * Version 5: jobs.kind may be 'import' (advctl import: a job holding one
 *        checkpoint of a model trained elsewhere, never run).
 * Version 6: drift monitors (daemon/monitor_db.c, which reads and writes
 * them through adv_store_sqlite):
 *   monitors: one per training job, on one checkpoint, with its window
 *        size, the temperature its confidences are calibrated with, the
 *        reference (the held-out split's outputs, monitor_db.c's format),
 *        the corruption profiles (JSON), and the current partial window's
 *        per-example outputs (pending, pending_n examples)
 *   monitor_windows: one row per full window: its p-values, accuracy
 *        estimates, alarm, hint and every statistic (stats, JSON)
 * Version 7: indexes on jobs.init_ckpt (pruning asks it at every
 * checkpoint) and on jobs (state, owner, priority, id) (the claim);
 * reports.kind loses its CHECK list (ADV_REPORT_KINDS is the
 * one list, checked on every put).
 * A later version is one more entry in migrations[]: the SQL that takes
 * version i to i + 1, run in the same transaction as the user_version bump.
 */
#include "store.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <zlib.h>

#include "daemon/ckptfile.h"
#include "daemon/evalstate.h"

/* Now in Unix seconds, as now() gives it, inside SQL (triggers). */
#define SQL_NOW "((julianday('now') - 2440587.5) * 86400.0)"
/* Fair share looks back this far (seconds). */
#define FAIR_WINDOW "86400.0"

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL CHECK (kind IN ('train', 'eval')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  spec TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
    "    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  priority INTEGER NOT NULL DEFAULT 0,"
    "  parent INTEGER REFERENCES jobs(id),"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  created REAL NOT NULL,"
    "  started REAL,"
    "  finished REAL);"
    "CREATE INDEX jobs_queue ON jobs (state, priority DESC, id);"
    "CREATE INDEX jobs_parent ON jobs (parent);"
    "CREATE TABLE checkpoints ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  epoch INTEGER NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  state BLOB NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  checksum INTEGER NOT NULL,"
    "  val_robust_acc REAL,"
    "  created REAL NOT NULL,"
    "  UNIQUE (job, step));"
    "CREATE TABLE metrics ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  value REAL,"
    "  time REAL NOT NULL,"
    "  PRIMARY KEY (job, key, step)) WITHOUT ROWID;"
    "CREATE TABLE evaluations ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  checkpoint INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,"
    "  epoch INTEGER NOT NULL,"
    "  step INTEGER NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  eps REAL NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  clean_acc REAL,"
    "  robust_acc REAL,"
    "  survival BLOB,"
    "  warnings TEXT NOT NULL DEFAULT '[]',"
    "  created REAL NOT NULL);"
    "CREATE INDEX evaluations_job ON evaluations (job);",
    /* 1 -> 2 */
    "CREATE TABLE reports ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('calibration', 'corruptions', 'explanations')),"
    "  data TEXT NOT NULL,"
    "  created REAL NOT NULL,"
    "  UNIQUE (job, kind));"
    "CREATE TABLE images ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  created REAL NOT NULL,"
    "  PRIMARY KEY (job, name)) WITHOUT ROWID;",
    /* 2 -> 3 */
    "ALTER TABLE jobs ADD COLUMN owner INTEGER;"
    "ALTER TABLE jobs ADD COLUMN init_job INTEGER REFERENCES jobs(id);"
    "ALTER TABLE jobs ADD COLUMN init_ckpt INTEGER REFERENCES checkpoints(id);"
    "ALTER TABLE jobs ADD COLUMN init_checksum INTEGER;"
    "CREATE INDEX jobs_owner ON jobs (owner, state);"
    "CREATE TABLE runs ("
    "  job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  owner INTEGER,"
    "  started REAL NOT NULL,"
    "  ended REAL);"
    "CREATE INDEX runs_ended ON runs (ended);"
    "CREATE TRIGGER runs_start AFTER UPDATE OF state ON jobs"
    "  WHEN new.state = 'running' AND old.state <> 'running' BEGIN"
    "  INSERT INTO runs (job, owner, started) VALUES (new.id, new.owner, " SQL_NOW ");"
    "  END;"
    "CREATE TRIGGER runs_end AFTER UPDATE OF state ON jobs"
    "  WHEN old.state = 'running' AND new.state <> 'running' BEGIN"
    "  UPDATE runs SET ended = max(started, " SQL_NOW ") WHERE job = new.id AND ended IS NULL;"
    "  END;",
    /* 3 -> 4 */
    "ALTER TABLE checkpoints ADD COLUMN file TEXT;"
    "ALTER TABLE jobs ADD COLUMN warning TEXT;",
    /* 4 -> 5: kind 'import' (advctl import). SQLite cannot alter a CHECK
     * constraint; widening an IN list changes no stored row, so the
     * table's SQL is edited in place, as SQLite's documentation allows for
     * changes that leave the file's content valid. */
    "PRAGMA writable_schema = ON;"
    "UPDATE sqlite_master SET sql = replace(sql, 'CHECK (kind IN (''train'', ''eval''))',"
    "  'CHECK (kind IN (''train'', ''eval'', ''import''))') WHERE type = 'table' AND name = 'jobs';"
    "PRAGMA writable_schema = RESET;",
    /* 5 -> 6: drift monitors (daemon/monitor_db.c) */
    "CREATE TABLE monitors ("
    "  id INTEGER PRIMARY KEY,"
    "  job INTEGER NOT NULL UNIQUE REFERENCES jobs(id) ON DELETE CASCADE,"
    "  checkpoint INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  window INTEGER NOT NULL,"
    "  temperature REAL NOT NULL,"
    "  temperature_from TEXT NOT NULL,"
    "  reference BLOB NOT NULL,"
    "  profiles TEXT NOT NULL,"
    "  pending BLOB,"
    "  pending_n INTEGER NOT NULL DEFAULT 0,"
    "  created REAL NOT NULL);"
    "CREATE TABLE monitor_windows ("
    "  monitor INTEGER NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  time REAL NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  bbsd_p REAL, entropy_p REAL, confidence_p REAL, chi2_p REAL, mmd_p REAL,"
    "  cbpe REAL, atc REAL,"
    "  alarm INTEGER NOT NULL,"
    "  hint TEXT,"
    "  stats TEXT NOT NULL,"
    "  PRIMARY KEY (monitor, seq)) WITHOUT ROWID;",
    /* 6 -> 7: pruning asks at every checkpoint whether a job starts from
     * it; without this index that read every row of jobs (seconds per
     * checkpoint with 10 000 jobs, inside the event loop). */
    "CREATE INDEX jobs_init_ckpt ON jobs(init_ckpt) WHERE init_ckpt IS NOT NULL;"
    /* ... and the claim walks each owner's queue in order instead of
     * sorting every queued job (9 ms with 500 queued, in the loop) ... */
    "CREATE INDEX jobs_claim ON jobs(state, owner, priority DESC, id);"
    /* ... and report kinds are ADV_REPORT_KINDS (proto/worker.h), checked
     * by adv_store_report_put: the column's own list, which would need an
     * edit of the table for every new kind, goes (as in 4 -> 5). */
    "PRAGMA writable_schema = ON;"
    "UPDATE sqlite_master SET sql = replace(sql, ' CHECK (kind IN (''calibration'', "
    "''corruptions'', ''explanations''))', '') WHERE type = 'table' AND name = 'reports';"
    "PRAGMA writable_schema = RESET;",
};
_Static_assert(sizeof migrations / sizeof migrations[0] == ADV_STORE_SCHEMA,
               "one migration per schema version");

/* The best checkpoint of job ?1, one definition for pruning, loading and
 * listing: highest validation robust accuracy, the earliest at a tie. */
#define BEST_ID                                                                  \
    "(SELECT id FROM checkpoints WHERE job = ?1 AND val_robust_acc IS NOT NULL " \
    "ORDER BY val_robust_acc DESC, step ASC LIMIT 1)"

#define JOB_COLS                                                                 \
    "id, kind, name, spec, state, priority, attempts, parent, progress, created, " \
    "started, finished, error, owner, init_job, init_ckpt, init_checksum, warning"
#define CKPT_COLS "id, job, epoch, step, val_robust_acc, checksum, size, created, " \
                  "id = " BEST_ID ", file"
#define EVAL_COLS "id, job, checkpoint, epoch, step, spec, eps, n, clean_acc, robust_acc, " \
                  "survival, warnings, created"

/* Every statement, prepared once on first use. */
enum {
    S_BEGIN, S_COMMIT, S_ROLLBACK,
    S_JOB_EXISTS, S_JOB_INSERT, S_JOB_GET, S_JOB_LIST, S_JOB_STATE, S_JOB_CLAIM,
    S_JOB_REQUEUE, S_JOB_PROGRESS, S_JOB_QUEUED_BY, S_JOB_LINEAGE, S_JOB_WARN,
    S_CKPT_AT, S_CKPT_PUT, S_CKPT_PRUNE, S_CKPT_FILE, S_CKPT_BLOB, S_CKPT_LATEST, S_CKPT_BEST,
    S_CKPT_EPOCH, S_CKPT_LIST, S_CKPT_LEGACY, S_CKPT_UNBLOB,
    S_METRIC_PUT, S_METRIC_GET,
    S_EVAL_CKPT, S_EVAL_PUT, S_EVAL_LIST,
    S_REPORT_PUT, S_REPORT_LIST, S_IMAGE_PUT, S_IMAGE_LIST,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_JOB_EXISTS] = "SELECT kind, state FROM jobs WHERE id = ?1",
    [S_JOB_INSERT] = "INSERT INTO jobs (kind, name, spec, priority, parent, created, owner,"
                     " init_job) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [S_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR state = ?1) "
                   "AND (?2 IS NULL OR kind = ?2) AND (?4 IS NULL OR owner IS ?4) "
                   "ORDER BY priority DESC, id LIMIT ?3",
    /* ?2 the new state, ?3 the error, ?4 now, ?5 ?6 the states it may leave. */
    [S_JOB_STATE] =
        "UPDATE jobs SET state = ?2,"
        " started = CASE ?2 WHEN 'running' THEN ?4 WHEN 'queued' THEN NULL ELSE started END,"
        " finished = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled') THEN ?4 END,"
        " attempts = attempts + (?2 = 'running'),"
        " progress = CASE ?2 WHEN 'succeeded' THEN 1.0 ELSE progress END,"
        " error = CASE ?2 WHEN 'succeeded' THEN NULL ELSE coalesce(?3, error) END"
        " WHERE id = ?1 AND state IN (?5, ?6)",
    /* Fair share: the runnable job of the user with the least running time
     * in the last FAIR_WINDOW seconds (running jobs count up to now), then
     * of the user served least recently; inside one user's jobs, priority
     * then age. */
    [S_JOB_CLAIM] =
        "UPDATE jobs SET state = 'running', started = ?1, finished = NULL,"
        " attempts = attempts + 1 WHERE id = ("
        " WITH recent AS (SELECT owner, sum(min(coalesce(ended, ?1), ?1) -"
        "   max(started, ?1 - " FAIR_WINDOW ")) AS used, max(started) AS last"
        "   FROM runs WHERE coalesce(ended, ?1) > ?1 - " FAIR_WINDOW " GROUP BY owner)"
        /* Each owner's first runnable job by priority then age (one walk
         * of index jobs_claim per owner, not a sort of the whole queue),
         * then the owner by fair share. */
        " , picks AS (SELECT o.owner, (SELECT j.id FROM jobs j WHERE j.state = 'queued'"
        "   AND j.owner IS o.owner AND j.kind <> 'import' AND (j.parent IS NULL OR"
        "   (SELECT p.state FROM jobs p WHERE p.id = j.parent) NOT IN ('queued', 'running'))"
        "   AND (j.init_job IS NULL OR"
        "   (SELECT p.state FROM jobs p WHERE p.id = j.init_job) NOT IN ('queued', 'running'))"
        "   ORDER BY j.priority DESC, j.id LIMIT 1) AS id"
        "   FROM (SELECT DISTINCT owner FROM jobs WHERE state = 'queued') o)"
        " SELECT j.id FROM picks k JOIN jobs j ON j.id = k.id LEFT JOIN recent r"
        " ON r.owner IS k.owner"
        " ORDER BY coalesce(r.used, 0), coalesce(r.last, 0), j.priority DESC, j.id LIMIT 1)"
        " RETURNING id",
    [S_JOB_REQUEUE] = "UPDATE jobs SET state = 'queued', started = NULL WHERE state = 'running'",
    [S_JOB_PROGRESS] = "UPDATE jobs SET progress = ?2 WHERE id = ?1 AND state = 'running'",
    [S_JOB_QUEUED_BY] = "SELECT count(*) FROM jobs WHERE owner IS ?1 AND state = 'queued'",
    [S_JOB_LINEAGE] = "UPDATE jobs SET init_ckpt = ?2, init_checksum = ?3 WHERE id = ?1",
    [S_JOB_WARN] = "UPDATE jobs SET warning = ?2 WHERE id = ?1",
    [S_CKPT_AT] = "SELECT file FROM checkpoints WHERE job = ?1 AND step = ?2",
    [S_CKPT_PUT] =
        "INSERT INTO checkpoints (job, epoch, step, state, size, checksum, val_robust_acc,"
        " created, file) VALUES (?1, ?2, ?3, x'', ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (job, step) DO UPDATE"
        " SET epoch = excluded.epoch, state = excluded.state, size = excluded.size,"
        " checksum = excluded.checksum, val_robust_acc = excluded.val_robust_acc,"
        " created = excluded.created, file = excluded.file RETURNING id",
    [S_CKPT_PRUNE] =
        "DELETE FROM checkpoints WHERE job = ?1 AND id NOT IN (SELECT id FROM checkpoints"
        " WHERE job = ?1 ORDER BY step DESC LIMIT ?2) AND id IS NOT " BEST_ID
        " AND id NOT IN (SELECT init_ckpt FROM jobs WHERE init_ckpt IS NOT NULL) RETURNING file",
    [S_CKPT_FILE] = "SELECT 1 FROM checkpoints WHERE file = ?1",
    [S_CKPT_BLOB] = "SELECT file, state FROM checkpoints WHERE id = ?1",
    [S_CKPT_LATEST] = "SELECT " CKPT_COLS ", state FROM checkpoints WHERE job = ?1"
                      " ORDER BY step DESC LIMIT 1",
    [S_CKPT_BEST] = "SELECT " CKPT_COLS ", state FROM checkpoints WHERE id = " BEST_ID,
    [S_CKPT_EPOCH] = "SELECT " CKPT_COLS ", state FROM checkpoints WHERE job = ?1"
                     " AND epoch = ?2 ORDER BY step LIMIT 1",
    [S_CKPT_LIST] = "SELECT " CKPT_COLS " FROM checkpoints WHERE job = ?1 ORDER BY step",
    [S_CKPT_LEGACY] = "SELECT id, job, step, state FROM checkpoints WHERE file IS NULL LIMIT 1",
    [S_CKPT_UNBLOB] = "UPDATE checkpoints SET file = ?2, state = x'' WHERE id = ?1",
    [S_METRIC_PUT] = "INSERT INTO metrics (job, key, step, epoch, value, time)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (job, key, step) DO UPDATE"
                     " SET epoch = excluded.epoch, value = excluded.value, time = excluded.time",
    [S_METRIC_GET] = "SELECT key, step, epoch, value, time FROM metrics WHERE job = ?1"
                     " AND (?2 IS NULL OR key = ?2) AND step >= ?3 ORDER BY key, step",
    [S_EVAL_CKPT] = "SELECT epoch, step FROM checkpoints WHERE id = ?1",
    [S_EVAL_PUT] = "INSERT INTO evaluations (job, checkpoint, epoch, step, spec, eps, n,"
                   " clean_acc, robust_acc, survival, warnings, created)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [S_EVAL_LIST] = "SELECT " EVAL_COLS " FROM evaluations WHERE job = ?1 OR job IN"
                    " (SELECT id FROM jobs WHERE parent = ?1) ORDER BY id",
    [S_REPORT_PUT] = "INSERT INTO reports (job, kind, data, created) VALUES (?1, ?2, ?3, ?4)"
                     " ON CONFLICT (job, kind) DO UPDATE SET data = excluded.data,"
                     " created = excluded.created",
    [S_REPORT_LIST] = "SELECT id, job, kind, data, created FROM reports WHERE job = ?1 OR job IN"
                      " (SELECT id FROM jobs WHERE parent = ?1) ORDER BY job, id",
    [S_IMAGE_PUT] = "INSERT INTO images (job, name, data, created) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (job, name) DO UPDATE SET data = excluded.data,"
                    " created = excluded.created",
    [S_IMAGE_LIST] = "SELECT name, data FROM images WHERE job = ?1 ORDER BY name",
};

struct adv_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    sqlite3_stmt *slot[ADV_STORE_SLOTS];  /* adv_store_slot's */
    char dir[PATH_MAX];         /* the checkpoint folder (ckptfile.h) */
    void (*wal_full)(void *);   /* adv_store_wal_manual's callback, or NULL */
    void *wal_ctx;
};

/* ---------------------------------------------------------------- basics */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "cannot WHAT: SQLite's message" (what is formatted). */
__attribute__((format(printf, 3, 4))) static int db_err(adv_store *st, char *err,
                                                        const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return core_errf(err, "cannot %s: %s", what, sqlite3_errmsg(st->db));
}

/* *s, prepared from text on first use and kept; reset, no bindings. */
static sqlite3_stmt *kept(adv_store *st, sqlite3_stmt **s, const char *text, const char *which,
                          int id, char *err)
{
    if (*s) {
        sqlite3_reset(*s);
        sqlite3_clear_bindings(*s);
        return *s;
    }
    if (sqlite3_prepare_v3(st->db, text, -1, SQLITE_PREPARE_PERSISTENT, s, NULL)) {
        db_err(st, err, "prepare %s %d", which, id);
        return NULL;
    }
    return *s;
}

/* The statement, prepared on first use and reset with no bindings. */
static sqlite3_stmt *prep(adv_store *st, int id, char *err)
{
    return kept(st, &st->stmt[id], sql[id], "statement", id, err);
}

/* Run a statement that returns no rows to its end. */
static int run(adv_store *st, sqlite3_stmt *s, const char *what, char *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return db_err(st, err, "%s", what);
    return 0;
}

/* Next row: 1, or 0 at the end, or -1 on an error. */
static int row(adv_store *st, sqlite3_stmt *s, const char *what, char *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    db_err(st, err, "%s", what);
    sqlite3_reset(s);
    return -1;
}

static int simple(adv_store *st, int id, const char *what, char *err)
{
    sqlite3_stmt *s = prep(st, id, err);
    return s ? run(st, s, what, err) : -1;
}

static int begin(adv_store *st, char *err)
{
    return simple(st, S_BEGIN, "begin a transaction", err);
}

static int commit(adv_store *st, char *err)
{
    return simple(st, S_COMMIT, "commit", err);
}

/* Undo after a failure; returns rc so error paths read "return undo(...)". */
static int undo(adv_store *st, int rc)
{
    if (!sqlite3_get_autocommit(st->db))
        simple(st, S_ROLLBACK, "roll back", NULL);
    return rc;
}

static char *dup_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? strdup((const char *)t) : NULL;
}

static double col_real(sqlite3_stmt *s, int col, double if_null)
{
    return sqlite3_column_type(s, col) == SQLITE_NULL ? if_null : sqlite3_column_double(s, col);
}

static void bind_real(sqlite3_stmt *s, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_double(s, i, v);
}

/* Whether job id exists: 0, or ADV_STORE_NOT_FOUND. */
static int job_exists(adv_store *st, int64_t id, adv_job_kind *kind, char *err)
{
    sqlite3_stmt *s = prep(st, S_JOB_EXISTS, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int r = row(st, s, "look up a job", err);
    if (r == 1 && kind)
        adv_job_kind_parse((const char *)sqlite3_column_text(s, 0), kind);
    sqlite3_reset(s);
    if (r < 0)
        return -1;
    return r ? 0 : (core_errf(err, "no job %lld", (long long)id), ADV_STORE_NOT_FOUND);
}

/* ------------------------------------------------------ open and schema */

static int pragma_int(adv_store *st, const char *pragma, int *out, char *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, pragma, -1, &s, NULL))
        return db_err(st, err, "run '%s'", pragma);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_err(st, err, "run '%s'", pragma);
    return 0;
}

static int exec(adv_store *st, const char *text, const char *what, char *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, text, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    core_errf(err, "cannot %s: %s", what, msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return -1;
}

/* WAL so that readers never block the daemon. Sync NORMAL: every commit
 * survives a crash of advd; a power cut may lose the last commits before
 * the next fsync, never corrupt the file. A checkpoint's file is fsync'd
 * before its row is written (ckptfile.c), and a row lost to a power cut
 * only means resuming from the checkpoint before. An fsync per commit
 * (FULL) cost 3-10 ms of the event loop per submit here, capping submits
 * at about 100/s. */
static int configure(adv_store *st, int busy_ms, char *err)
{
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, busy_ms);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL))
        return db_err(st, err, "set WAL mode");
    int rc = sqlite3_step(s);
    int wal = rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!wal)
        return rc == SQLITE_ROW ? core_errf(err, "cannot set WAL mode: the database refused")
                                : db_err(st, err, "set WAL mode");
    int fk = 0;
    if (exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", "configure", err) ||
        pragma_int(st, "PRAGMA foreign_keys", &fk, err))
        return -1;
    return fk == 1 ? 0 : core_errf(err, "cannot enable foreign keys: SQLite built without them");
}

/* Read the version and step it up inside one write transaction, so that
 * two processes opening a new file at once migrate it once. */
static int migrate(adv_store *st, char *err)
{
    int v = 0;
    if (begin(st, err) || pragma_int(st, "PRAGMA user_version", &v, err))
        return undo(st, -1);
    if (v > ADV_STORE_SCHEMA)
        return undo(st, core_errf(err, "database schema version %d is newer than this "
                                       "advd's (%d)", v, ADV_STORE_SCHEMA));
    for (; v < ADV_STORE_SCHEMA; v++) {
        char bump[64], what[64];
        snprintf(what, sizeof what, "migrate the schema to version %d", v + 1);
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (exec(st, migrations[v], what, err) || exec(st, bump, what, err))
            return undo(st, -1);
    }
    return commit(st, err) ? undo(st, -1) : 0;
}

int adv_store_open(const char *path, int busy_ms, adv_store **out, char *err)
{
    *out = NULL;
    adv_store *st = calloc(1, sizeof *st);
    if (!st)
        return core_errf(err, "out of memory");
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        core_errf(err, "cannot open database '%s': %s", path,
                  st->db ? sqlite3_errmsg(st->db) : "out of memory");
        adv_store_close(st);
        return -1;
    }
    if (adv_ckptfile_dir(path, st->dir, sizeof st->dir, err) ||
        adv_ckptfile_mkdir(st->dir, err) || configure(st, busy_ms, err) || migrate(st, err)) {
        adv_store_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

sqlite3 *adv_store_sqlite(adv_store *st)
{
    return st->db;
}

/* SQLite's own trigger for an automatic checkpoint, the hook it installs. */
#define WAL_FULL_FRAMES 1000

static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int frames)
{
    adv_store *st = ctx;
    (void)db;
    (void)name;
    if (frames >= WAL_FULL_FRAMES && st->wal_full)
        st->wal_full(st->wal_ctx);
    return SQLITE_OK;
}

int adv_store_wal_manual(adv_store *st, void (*full)(void *ctx), void *ctx, char *err)
{
    st->wal_full = full;
    st->wal_ctx = ctx;
    sqlite3_wal_hook(st->db, on_wal_commit, st); /* replaces the automatic checkpoints */
    /* A log that a burst of writes grew is cut back when it restarts. */
    return exec(st, "PRAGMA journal_size_limit = 4194304", "limit the WAL's size", err);
}

int adv_store_wal_checkpoint(adv_store *st, char *err)
{
    int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : db_err(st, err, "checkpoint the WAL");
}

sqlite3_stmt *adv_store_slot(adv_store *st, int slot, const char *sql, char *err)
{
    if (slot < 0 || slot >= ADV_STORE_SLOTS) {
        core_errf(err, "no statement slot %d", slot);
        return NULL;
    }
    return kept(st, &st->slot[slot], sql, "statement of slot", slot, err);
}

void adv_store_close(adv_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    for (int i = 0; i < ADV_STORE_SLOTS; i++)
        sqlite3_finalize(st->slot[i]);
    sqlite3_close(st->db);
    free(st);
}

int adv_store_schema_version(adv_store *st, int *version, char *err)
{
    return pragma_int(st, "PRAGMA user_version", version, err);
}

/* ------------------------------------------------------------------ jobs */

void adv_job_clear(adv_job *j)
{
    free(j->spec);
    free(j->error);
    free(j->warning);
    memset(j, 0, sizeof *j);
}

void adv_jobs_free(adv_job *jobs, int n)
{
    for (int i = 0; jobs && i < n; i++)
        adv_job_clear(&jobs[i]);
    free(jobs);
}

/* One row of JOB_COLS. */
static int read_job(sqlite3_stmt *s, adv_job *j, char *err)
{
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(s, 0);
    adv_job_kind_parse((const char *)sqlite3_column_text(s, 1), &j->kind);
    snprintf(j->name, sizeof j->name, "%s", (const char *)sqlite3_column_text(s, 2));
    j->spec = dup_text(s, 3);
    adv_job_state_parse((const char *)sqlite3_column_text(s, 4), &j->state);
    j->priority = sqlite3_column_int(s, 5);
    j->attempts = sqlite3_column_int(s, 6);
    j->parent = sqlite3_column_int64(s, 7);
    j->progress = sqlite3_column_double(s, 8);
    j->created = sqlite3_column_double(s, 9);
    j->started = sqlite3_column_double(s, 10);
    j->finished = sqlite3_column_double(s, 11);
    j->error = dup_text(s, 12);
    j->owner = sqlite3_column_type(s, 13) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 13);
    j->init_job = sqlite3_column_int64(s, 14);
    j->init_ckpt = sqlite3_column_int64(s, 15);
    j->init_checksum = (uint32_t)sqlite3_column_int64(s, 16);
    j->warning = dup_text(s, 17);
    if (!j->spec || (!j->error && sqlite3_column_type(s, 12) != SQLITE_NULL) ||
        (!j->warning && sqlite3_column_type(s, 17) != SQLITE_NULL)) {
        adv_job_clear(j);
        return core_errf(err, "out of memory");
    }
    return 0;
}

int adv_store_job_insert(adv_store *st, const adv_job *j, int64_t *id, char *err)
{
    adv_job_kind parent_kind;
    if (!j->spec)
        return core_errf(err, "cannot insert a job without a spec");
    if (begin(st, err))
        return -1;
    int rc = j->parent ? job_exists(st, j->parent, &parent_kind, err) : 0;
    if (rc)
        return undo(st, rc);
    if (j->parent && parent_kind == ADV_JOB_EVAL)
        return undo(st, (core_errf(err, "job %lld is not a training job", (long long)j->parent),
                         ADV_STORE_CONFLICT));
    sqlite3_stmt *s = prep(st, S_JOB_INSERT, err);
    if (!s)
        return undo(st, -1);
    sqlite3_bind_text(s, 1, adv_job_kind_name(j->kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, j->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, j->spec, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 4, j->priority);
    if (j->parent)
        sqlite3_bind_int64(s, 5, j->parent);
    sqlite3_bind_double(s, 6, now());
    if (j->owner >= 0)
        sqlite3_bind_int64(s, 7, j->owner);
    if (j->init_job)
        sqlite3_bind_int64(s, 8, j->init_job);
    if (run(st, s, "insert a job", err))
        return undo(st, -1);
    int64_t new_id = sqlite3_last_insert_rowid(st->db);
    if (commit(st, err))
        return undo(st, -1);
    if (id)
        *id = new_id;
    return 0;
}

int adv_store_job_get(adv_store *st, int64_t id, adv_job *out, char *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = prep(st, S_JOB_GET, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int r = row(st, s, "read a job", err);
    int rc = r < 0 ? -1 : r == 0 ? (core_errf(err, "no job %lld", (long long)id),
                                    ADV_STORE_NOT_FOUND)
                                 : read_job(s, out, err);
    sqlite3_reset(s);
    return rc;
}

/* Collect every row of a query with read_one into a growing array. */
typedef int (*read_fn)(sqlite3_stmt *s, void *item, char *err);

static int collect(adv_store *st, sqlite3_stmt *s, size_t size, read_fn read_one,
                   void (*free_all)(void *, int), const char *what, void **out, int *n,
                   char *err)
{
    char *items = NULL;
    int count = 0, cap = 0, r;
    while ((r = row(st, s, what, err)) == 1) {
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            char *p = realloc(items, (size_t)cap * size);
            if (!p) {
                r = core_errf(err, "out of memory");
                break;
            }
            items = p;
        }
        if (read_one(s, items + (size_t)count * size, err)) {
            r = -1;
            break;
        }
        count++;
    }
    sqlite3_reset(s);
    if (r < 0) {
        free_all(items, count);
        return -1;
    }
    *out = items;
    *n = count;
    return 0;
}

/* A job's rows of statement id (its ?1 the job), collected with read_one. */
static int list_of_job(adv_store *st, int id, int64_t job, size_t size, read_fn read_one,
                       void (*free_all)(void *, int), const char *what, void **out, int *n,
                       char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = prep(st, id, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    return collect(st, s, size, read_one, free_all, what, out, n, err);
}

static int read_job_v(sqlite3_stmt *s, void *item, char *err)
{
    return read_job(s, item, err);
}

static void free_jobs_v(void *p, int n)
{
    adv_jobs_free(p, n);
}

int adv_store_job_list(adv_store *st, const adv_job_filter *f, adv_job **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = prep(st, S_JOB_LIST, err);
    if (!s)
        return -1;
    if (f && f->state >= 0)
        sqlite3_bind_text(s, 1, adv_job_state_name(f->state), -1, SQLITE_STATIC);
    if (f && f->kind >= 0)
        sqlite3_bind_text(s, 2, adv_job_kind_name(f->kind), -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, f && f->limit > 0 ? f->limit : -1);
    if (f && f->by_owner)
        sqlite3_bind_int64(s, 4, f->owner);
    return collect(st, s, sizeof(adv_job), read_job_v, free_jobs_v, "list jobs", (void **)out,
                   n, err);
}

int adv_store_job_warn(adv_store *st, int64_t id, const char *text, char *err)
{
    sqlite3_stmt *s = prep(st, S_JOB_WARN, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    if (text)
        sqlite3_bind_text(s, 2, text, -1, SQLITE_TRANSIENT);
    return run(st, s, "record a job's warning", err);
}

int adv_store_job_lineage(adv_store *st, int64_t id, int64_t ckpt, uint32_t checksum, char *err)
{
    sqlite3_stmt *s = prep(st, S_JOB_LINEAGE, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, ckpt);
    sqlite3_bind_int64(s, 3, checksum);
    return run(st, s, "record a job's lineage", err);
}

int adv_store_jobs_queued_by(adv_store *st, int64_t owner, int *n, char *err)
{
    sqlite3_stmt *s = prep(st, S_JOB_QUEUED_BY, err);
    if (!s)
        return -1;
    if (owner >= 0)
        sqlite3_bind_int64(s, 1, owner);
    int r = row(st, s, "count queued jobs", err);
    *n = r == 1 ? sqlite3_column_int(s, 0) : 0;
    sqlite3_reset(s);
    return r < 0 ? -1 : 0;
}

/* Why a state change matched no row: no such job, or a conflict. */
static int explain_state(adv_store *st, int64_t id, adv_job_state to, char *err)
{
    adv_job j;
    int rc = adv_store_job_get(st, id, &j, err);
    if (rc)
        return rc;
    core_errf(err, "cannot mark job %lld %s: it is %s", (long long)id, adv_job_state_name(to),
              adv_job_state_name(j.state));
    adv_job_clear(&j);
    return ADV_STORE_CONFLICT;
}

int adv_store_job_set_state(adv_store *st, int64_t id, adv_job_state state, const char *error,
                            char *err)
{
    /* The states each state may be entered from (two, repeated if one). */
    static const adv_job_state from[ADV_NSTATES][2] = {
        [ADV_STATE_QUEUED] = {ADV_STATE_RUNNING, ADV_STATE_RUNNING},
        [ADV_STATE_RUNNING] = {ADV_STATE_QUEUED, ADV_STATE_QUEUED},
        [ADV_STATE_SUCCEEDED] = {ADV_STATE_RUNNING, ADV_STATE_RUNNING},
        [ADV_STATE_FAILED] = {ADV_STATE_QUEUED, ADV_STATE_RUNNING},
        [ADV_STATE_CANCELLED] = {ADV_STATE_QUEUED, ADV_STATE_RUNNING},
    };
    if ((unsigned)state >= ADV_NSTATES)
        return core_errf(err, "invalid job state %d", (int)state);
    sqlite3_stmt *s = prep(st, S_JOB_STATE, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_text(s, 2, adv_job_state_name(state), -1, SQLITE_STATIC);
    if (error)
        sqlite3_bind_text(s, 3, error, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 4, now());
    sqlite3_bind_text(s, 5, adv_job_state_name(from[state][0]), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, adv_job_state_name(from[state][1]), -1, SQLITE_STATIC);
    if (run(st, s, "change a job's state", err))
        return -1;
    return sqlite3_changes(st->db) ? 0 : explain_state(st, id, state, err);
}

int adv_store_job_claim(adv_store *st, adv_job *out, char *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = prep(st, S_JOB_CLAIM, err);
    if (!s)
        return -1;
    sqlite3_bind_double(s, 1, now());
    int r = row(st, s, "claim a job", err);
    int64_t id = r == 1 ? sqlite3_column_int64(s, 0) : 0;
    /* Stepping to the end completes the UPDATE ... RETURNING. */
    if (r == 1 && sqlite3_step(s) != SQLITE_DONE)
        r = db_err(st, err, "claim a job");
    sqlite3_reset(s);
    if (r < 0)
        return -1;
    if (r == 0)
        return core_errf(err, "no job is waiting to run"), ADV_STORE_NOT_FOUND;
    return adv_store_job_get(st, id, out, err);
}

int adv_store_requeue_running(adv_store *st, int *count, char *err)
{
    if (simple(st, S_JOB_REQUEUE, "requeue running jobs", err))
        return -1;
    if (count)
        *count = sqlite3_changes(st->db);
    return 0;
}

int adv_store_job_progress(adv_store *st, int64_t id, double progress, char *err)
{
    if (!(progress >= 0.0 && progress <= 1.0))
        return core_errf(err, "invalid progress '%g' (must be in [0, 1])", progress);
    sqlite3_stmt *s = prep(st, S_JOB_PROGRESS, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_double(s, 2, progress);
    if (run(st, s, "record a job's progress", err))
        return -1;
    return sqlite3_changes(st->db) ? 0 : explain_state(st, id, ADV_STATE_RUNNING, err);
}

/* ----------------------------------------------------------- checkpoints */

void adv_ckpt_clear(adv_ckpt *c)
{
    free(c->state);
    memset(c, 0, sizeof *c);
}

void adv_ckpts_free(adv_ckpt *c, int n)
{
    for (int i = 0; c && i < n; i++)
        adv_ckpt_clear(&c[i]);
    free(c);
}

static uint32_t checksum(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n);
}

const char *adv_store_ckpt_dir(const adv_store *st)
{
    return st->dir;
}

/* A name no other writer of this step uses: the store's own files carry
 * "d" and the time; a worker's carry its attempt (daemon/worker.c). */
static void own_file_name(const adv_ckpt *c, char *out, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tag[40];
    snprintf(tag, sizeof tag, "d%llx%09ld", (unsigned long long)ts.tv_sec, ts.tv_nsec);
    adv_ckptfile_name(c->job, c->step, tag, out, size);
}

/* Names (malloc'd, NULLs skipped) from column 0 of every row of s. */
static int collect_names(adv_store *st, sqlite3_stmt *s, char ***names, int *n, const char *what,
                         char *err)
{
    int r;
    while ((r = row(st, s, what, err)) == 1) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        char **grown = t ? realloc(*names, sizeof **names * (size_t)(*n + 1)) : *names;
        if (t && (!grown || !(grown[*n] = strdup((const char *)t)))) {
            *names = grown ? grown : *names;
            sqlite3_reset(s);
            return core_errf(err, "out of memory");
        }
        *names = grown;
        *n += t ? 1 : 0;
    }
    sqlite3_reset(s);
    return r < 0 ? -1 : 0;
}

/* After a commit: the files of rows that are gone (a failure to remove
 * one leaves a file that the next start's sweep finds). */
static void remove_files(adv_store *st, char **names, int n)
{
    for (int i = 0; i < n; i++) {
        adv_ckptfile_remove(st->dir, names[i], NULL);
        free(names[i]);
    }
    free(names);
}

static int ckpt_row(adv_store *st, const adv_ckpt *c, int keep_last, int64_t *id, char ***gone,
                    int *ngone, char *err);

int adv_store_ckpt_put(adv_store *st, const adv_ckpt *c, int keep_last, int64_t *id, char *err)
{
    adv_ckpt row_of = *c;
    if (!c->file[0]) {
        if (!c->state || c->size == 0)
            return core_errf(err, "cannot store an empty checkpoint for job %lld",
                             (long long)c->job);
        int rc = job_exists(st, c->job, NULL, err);
        if (rc)
            return rc;
        own_file_name(c, row_of.file, sizeof row_of.file);
        if (adv_ckptfile_write(st->dir, row_of.file, c->state, c->size, &row_of.checksum, err))
            return -1;
    }
    char **gone = NULL;
    int ngone = 0;
    int rc = ckpt_row(st, &row_of, keep_last, id, &gone, &ngone, err);
    if (rc && !c->file[0])
        adv_ckptfile_remove(st->dir, row_of.file, NULL);
    remove_files(st, gone, ngone);
    return rc;
}

/* The row for a checkpoint whose file exists, and the pruning, in one
 * transaction; *gone gets the files no row names any more. */
static int ckpt_row(adv_store *st, const adv_ckpt *c, int keep_last, int64_t *id, char ***gone,
                    int *ngone, char *err)
{
    if (!adv_ckpt_file_valid(c->file))
        return core_errf(err, "invalid checkpoint file name '%s'", c->file);
    if (begin(st, err))
        return -1;
    int rc = job_exists(st, c->job, NULL, err);
    if (rc)
        return undo(st, rc);
    sqlite3_stmt *s = prep(st, S_CKPT_AT, err);
    if (!s)
        return undo(st, -1);
    sqlite3_bind_int64(s, 1, c->job);
    sqlite3_bind_int64(s, 2, c->step);
    if (collect_names(st, s, gone, ngone, "look up a checkpoint", err) || !(s = prep(st, S_CKPT_PUT, err)))
        return undo(st, -1);
    sqlite3_bind_int64(s, 1, c->job);
    sqlite3_bind_int(s, 2, c->epoch);
    sqlite3_bind_int64(s, 3, c->step);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)c->size);
    sqlite3_bind_int64(s, 5, c->checksum);
    bind_real(s, 6, c->val_robust_acc);
    sqlite3_bind_double(s, 7, now());
    sqlite3_bind_text(s, 8, c->file, -1, SQLITE_STATIC);
    int r = row(st, s, "store a checkpoint", err);
    int64_t new_id = r == 1 ? sqlite3_column_int64(s, 0) : 0;
    if (r == 1 && sqlite3_step(s) != SQLITE_DONE)
        r = db_err(st, err, "store a checkpoint");
    sqlite3_reset(s);
    if (r != 1)
        return undo(st, r < 0 ? -1 : core_errf(err, "cannot store a checkpoint: no row"));
    if (*ngone == 1 && !strcmp((*gone)[0], c->file)) /* the same file again */
        free((*gone)[--*ngone]);
    if (keep_last > 0) {
        sqlite3_stmt *p = prep(st, S_CKPT_PRUNE, err);
        if (!p)
            return undo(st, -1);
        sqlite3_bind_int64(p, 1, c->job);
        sqlite3_bind_int(p, 2, keep_last);
        if (collect_names(st, p, gone, ngone, "prune old checkpoints", err))
            return undo(st, -1);
    }
    if (commit(st, err))
        return undo(st, -1);
    if (id)
        *id = new_id;
    return 0;
}

/* The bytes of a row from before version 4, kept in the database. */
static int legacy_state(sqlite3_stmt *s, adv_ckpt *c, char *err)
{
    const void *blob = sqlite3_column_blob(s, 10);
    size_t n = (size_t)sqlite3_column_bytes(s, 10);
    if (n != c->size || checksum(blob, n) != c->checksum)
        return core_errf(err, "checkpoint %lld of job %lld fails its checksum (%zu bytes, crc32 "
                              "%08x; stored %zu bytes, crc32 %08x)", (long long)c->id,
                         (long long)c->job, n, blob ? checksum(blob, n) : 0, c->size,
                         c->checksum), ADV_STORE_CORRUPT;
    c->state = malloc(n);
    if (!c->state)
        return core_errf(err, "out of memory for a checkpoint of %zu bytes", n);
    memcpy(c->state, blob, n);
    return 0;
}

/* One row of CKPT_COLS (and the state after them when with_state). */
static int read_ckpt(adv_store *st, sqlite3_stmt *s, adv_ckpt *c, int with_state, char *err)
{
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(s, 0);
    c->job = sqlite3_column_int64(s, 1);
    c->epoch = sqlite3_column_int(s, 2);
    c->step = sqlite3_column_int64(s, 3);
    c->val_robust_acc = col_real(s, 4, NAN);
    c->checksum = (uint32_t)sqlite3_column_int64(s, 5);
    c->size = (size_t)sqlite3_column_int64(s, 6);
    c->created = sqlite3_column_double(s, 7);
    c->is_best = sqlite3_column_int(s, 8);
    const unsigned char *file = sqlite3_column_text(s, 9);
    snprintf(c->file, sizeof c->file, "%s", file ? (const char *)file : "");
    if (!with_state)
        return 0;
    if (!c->file[0])
        return legacy_state(s, c, err);
    return adv_ckptfile_load(st->dir, c->file, c->size, c->checksum, &c->state, err);
}

static int ckpt_get(adv_store *st, int64_t job, adv_ckpt_ref ref, int with_state, adv_ckpt *out,
                    char *err)
{
    memset(out, 0, sizeof *out);
    int id = ref.which == ADV_CKPT_BEST ? S_CKPT_BEST
             : ref.which == ADV_CKPT_EPOCH ? S_CKPT_EPOCH : S_CKPT_LATEST;
    sqlite3_stmt *s = prep(st, id, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    if (ref.which == ADV_CKPT_EPOCH)
        sqlite3_bind_int(s, 2, ref.epoch);
    int r = row(st, s, "read a checkpoint", err);
    int rc = r < 0 ? -1 : r == 1 ? read_ckpt(st, s, out, with_state, err) : ADV_STORE_NOT_FOUND;
    sqlite3_reset(s);
    if (rc == ADV_STORE_NOT_FOUND) {
        int exists = job_exists(st, job, NULL, err);
        if (exists)
            return exists;
        if (ref.which == ADV_CKPT_BEST)
            core_errf(err, "no checkpoint of job %lld has a validation robust accuracy",
                      (long long)job);
        else if (ref.which == ADV_CKPT_EPOCH)
            core_errf(err, "no checkpoint of job %lld at epoch %d", (long long)job, ref.epoch);
        else
            core_errf(err, "no checkpoint of job %lld", (long long)job);
    }
    if (rc && rc != ADV_STORE_NOT_FOUND)
        adv_ckpt_clear(out);
    return rc;
}

int adv_store_ckpt_get(adv_store *st, int64_t job, adv_ckpt_ref ref, adv_ckpt *out, char *err)
{
    return ckpt_get(st, job, ref, 1, out, err);
}

int adv_store_ckpt_find(adv_store *st, int64_t job, adv_ckpt_ref ref, adv_ckpt *out, char *err)
{
    return ckpt_get(st, job, ref, 0, out, err);
}

int adv_store_ckpt_read(adv_store *st, int64_t id, size_t offset, void *buf, size_t n, char *err)
{
    sqlite3_stmt *s = prep(st, S_CKPT_BLOB, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, id);
    int r = row(st, s, "read a checkpoint", err);
    const unsigned char *file = r == 1 ? sqlite3_column_text(s, 0) : NULL;
    const uint8_t *blob = r == 1 && !file ? sqlite3_column_blob(s, 1) : NULL;
    size_t size = r == 1 && !file ? (size_t)sqlite3_column_bytes(s, 1) : 0;
    int rc = r < 0 ? -1
             : r == 0 ? core_errf(err, "no checkpoint %lld", (long long)id)
             : file ? adv_ckptfile_pread(st->dir, (const char *)file, offset, buf, n, err)
             : offset > size || n > size - offset
                 ? core_errf(err, "bytes %zu to %zu are outside checkpoint %lld (%zu bytes)",
                             offset, offset + n, (long long)id, size)
                 : (memcpy(buf, blob + offset, n), 0);
    sqlite3_reset(s);
    return rc;
}

int adv_store_ckpt_verify(adv_store *st, const adv_ckpt *c, char *err)
{
    uint8_t chunk[65536];
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < c->size; off += sizeof chunk) {
        size_t n = c->size - off < sizeof chunk ? c->size - off : sizeof chunk;
        if (adv_store_ckpt_read(st, c->id, off, chunk, n, err))
            return -1;
        crc = crc32(crc, chunk, (uInt)n);
    }
    if ((uint32_t)crc != c->checksum)
        return core_errf(err, "checkpoint %lld of job %lld fails its checksum (crc32 %08x, "
                              "stored %08x)", (long long)c->id, (long long)c->job,
                         (unsigned)crc, c->checksum), ADV_STORE_CORRUPT;
    return 0;
}

/* One row from before version 4 out to its file; 0 when none is left. */
static int unblob_one(adv_store *st, char *err)
{
    sqlite3_stmt *s = prep(st, S_CKPT_LEGACY, err), *u;
    int r = s ? row(st, s, "find a checkpoint kept in the database", err) : -1;
    if (r <= 0)
        return r;
    adv_ckpt c = {.id = sqlite3_column_int64(s, 0), .job = sqlite3_column_int64(s, 1),
                  .step = sqlite3_column_int64(s, 2)};
    char tag[32];
    uint32_t crc; /* the row keeps its own: a blob that was corrupt stays so */
    snprintf(tag, sizeof tag, "m%lld", (long long)c.id);
    adv_ckptfile_name(c.job, c.step, tag, c.file, sizeof c.file);
    int rc = adv_ckptfile_write(st->dir, c.file, sqlite3_column_blob(s, 3),
                                (size_t)sqlite3_column_bytes(s, 3), &crc, err);
    sqlite3_reset(s);
    if (rc || !(u = prep(st, S_CKPT_UNBLOB, err)))
        return -1;
    sqlite3_bind_int64(u, 1, c.id);
    sqlite3_bind_text(u, 2, c.file, -1, SQLITE_STATIC);
    if (run(st, u, "record a checkpoint's file", err)) {
        adv_ckptfile_remove(st->dir, c.file, NULL);
        return -1;
    }
    return 1;
}

int adv_store_ckpt_unblob(adv_store *st, int *moved, char *err)
{
    int r;
    *moved = 0;
    while ((r = unblob_one(st, err)) == 1)
        ++*moved;
    return r;
}

static int read_ckpt_v(sqlite3_stmt *s, void *item, char *err)
{
    return read_ckpt(NULL, s, item, 0, err);
}

static void free_ckpts_v(void *p, int n)
{
    adv_ckpts_free(p, n);
}

int adv_store_ckpt_sweep(adv_store *st, int *removed, char *err)
{
    DIR *d = opendir(st->dir);
    if (!d)
        return core_errf(err, "cannot read checkpoint folder '%s': %s", st->dir, strerror(errno));
    sqlite3_stmt *s = prep(st, S_CKPT_FILE, err);
    struct dirent *e;
    int rc = s ? 0 : -1;
    *removed = 0;
    while (!rc && (e = readdir(d))) {
        const char *name = e->d_name;
        int tmp = name[0] == '.' && strlen(name) > 5 && !strcmp(name + strlen(name) - 4, ".tmp");
        if ((!tmp && !adv_ckpt_file_valid(name)) || adv_evalstate_is(name))
            continue; /* ".", "..", anything not ours, and evaluation states
                         (evalstate.h: removed when their job ends) */
        sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
        int r = tmp ? 0 : row(st, s, "look up a checkpoint file", err);
        sqlite3_reset(s);
        if (r < 0)
            rc = -1;
        else if (r == 0 && adv_ckptfile_remove(st->dir, name, err) == 0)
            ++*removed;
    }
    closedir(d);
    return rc;
}

int adv_store_ckpt_list(adv_store *st, int64_t job, adv_ckpt **out, int *n, char *err)
{
    return list_of_job(st, S_CKPT_LIST, job, sizeof(adv_ckpt), read_ckpt_v, free_ckpts_v,
                       "list checkpoints", (void **)out, n, err);
}

/* --------------------------------------------------------------- metrics */

static int put_metric(adv_store *st, sqlite3_stmt *s, int64_t job, const adv_metric *m,
                      double t, char *err)
{
    if (!m->key || !*m->key || strlen(m->key) >= ADV_METRIC_KEY)
        return core_errf(err, "invalid metric key '%.64s' (1 to %d bytes)", m->key ? m->key : "",
                         ADV_METRIC_KEY - 1);
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_text(s, 2, m->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, m->step);
    sqlite3_bind_int(s, 4, m->epoch);
    bind_real(s, 5, m->value);
    sqlite3_bind_double(s, 6, t);
    char what[96];
    snprintf(what, sizeof what, "store metric '%s'", m->key);
    return run(st, s, what, err);
}

int adv_store_metrics_put(adv_store *st, int64_t job, const adv_metric *m, int n, char *err)
{
    if (begin(st, err))
        return -1;
    int rc = job_exists(st, job, NULL, err);
    if (rc)
        return undo(st, rc);
    sqlite3_stmt *s = prep(st, S_METRIC_PUT, err);
    if (!s)
        return undo(st, -1);
    double t = now();
    for (int i = 0; i < n; i++)
        if (put_metric(st, s, job, &m[i], t, err))
            return undo(st, -1);
    return commit(st, err) ? undo(st, -1) : 0;
}

static int read_metric(sqlite3_stmt *s, void *item, char *err)
{
    adv_metric_row *m = item;
    snprintf(m->key, sizeof m->key, "%s", (const char *)sqlite3_column_text(s, 0));
    m->step = sqlite3_column_int64(s, 1);
    m->epoch = sqlite3_column_int(s, 2);
    m->value = col_real(s, 3, NAN);
    m->time = sqlite3_column_double(s, 4);
    return 0;
}

static void free_plain(void *p, int n)
{
    free(p);
}

int adv_store_metrics_get(adv_store *st, int64_t job, const char *key, int64_t since,
                          adv_metric_row **out, int *n, char *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *s = prep(st, S_METRIC_GET, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    if (key)
        sqlite3_bind_text(s, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, since);
    return collect(st, s, sizeof(adv_metric_row), read_metric, free_plain, "read metrics",
                   (void **)out, n, err);
}

/* ----------------------------------------------------------- evaluations */

void adv_evals_free(adv_eval *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        free(e[i].spec);
        free(e[i].survival);
        free(e[i].warnings);
    }
    free(e);
}

/* Warnings must be a JSON array of strings: clients print them as is. */
static int check_warnings(const char *text, char *err)
{
    json_error_t jerr;
    json_t *w = json_loads(text, 0, &jerr);
    int ok = json_is_array(w);
    for (size_t i = 0; ok && i < json_array_size(w); i++)
        ok = json_is_string(json_array_get(w, i));
    json_decref(w);
    return ok ? 0 : core_errf(err, "invalid evaluation warnings '%.40s' (expected a JSON array "
                                   "of strings)", text);
}

/* The epoch and step of the evaluated checkpoint. */
static int ckpt_position(adv_store *st, const adv_eval *ev, int *epoch, int64_t *step, char *err)
{
    *epoch = ev->epoch;
    *step = ev->step;
    if (!ev->checkpoint)
        return 0;
    sqlite3_stmt *s = prep(st, S_EVAL_CKPT, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, ev->checkpoint);
    int r = row(st, s, "look up a checkpoint", err);
    if (r == 1) {
        *epoch = sqlite3_column_int(s, 0);
        *step = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    if (r == 0)
        return core_errf(err, "no checkpoint %lld", (long long)ev->checkpoint),
               ADV_STORE_NOT_FOUND;
    return r < 0 ? -1 : 0;
}

static void bind_eval(sqlite3_stmt *s, const adv_eval *ev, int epoch, int64_t step)
{
    sqlite3_bind_int64(s, 1, ev->job);
    if (ev->checkpoint)
        sqlite3_bind_int64(s, 2, ev->checkpoint);
    sqlite3_bind_int(s, 3, epoch);
    sqlite3_bind_int64(s, 4, step);
    sqlite3_bind_text(s, 5, ev->spec, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 6, ev->eps);
    sqlite3_bind_int(s, 7, ev->n);
    bind_real(s, 8, ev->clean_acc);
    bind_real(s, 9, ev->robust_acc);
    if (ev->survival)
        sqlite3_bind_blob(s, 10, ev->survival, ev->n, SQLITE_STATIC);
    sqlite3_bind_text(s, 11, ev->warnings ? ev->warnings : "[]", -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 12, now());
}

int adv_store_eval_put(adv_store *st, const adv_eval *ev, int64_t *id, char *err)
{
    if (!ev->spec || ev->n < 0)
        return core_errf(err, "invalid evaluation (a spec and n >= 0 are required)");
    if (ev->warnings && check_warnings(ev->warnings, err))
        return -1;
    int epoch;
    int64_t step;
    if (begin(st, err))
        return -1;
    int rc = job_exists(st, ev->job, NULL, err);
    if (rc || (rc = ckpt_position(st, ev, &epoch, &step, err)))
        return undo(st, rc);
    sqlite3_stmt *s = prep(st, S_EVAL_PUT, err);
    if (!s)
        return undo(st, -1);
    bind_eval(s, ev, epoch, step);
    if (run(st, s, "store an evaluation", err))
        return undo(st, -1);
    int64_t new_id = sqlite3_last_insert_rowid(st->db);
    if (commit(st, err))
        return undo(st, -1);
    if (id)
        *id = new_id;
    return 0;
}

static int read_eval(sqlite3_stmt *s, void *item, char *err)
{
    adv_eval *e = item;
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(s, 0);
    e->job = sqlite3_column_int64(s, 1);
    e->checkpoint = sqlite3_column_int64(s, 2);
    e->epoch = sqlite3_column_int(s, 3);
    e->step = sqlite3_column_int64(s, 4);
    e->spec = dup_text(s, 5);
    e->eps = sqlite3_column_double(s, 6);
    e->n = sqlite3_column_int(s, 7);
    e->clean_acc = col_real(s, 8, NAN);
    e->robust_acc = col_real(s, 9, NAN);
    e->warnings = dup_text(s, 11);
    e->created = sqlite3_column_double(s, 12);
    int len = sqlite3_column_bytes(s, 10);
    if (len > 0 && (e->survival = malloc((size_t)len)))
        memcpy(e->survival, sqlite3_column_blob(s, 10), (size_t)len);
    if (!e->spec || !e->warnings || (len > 0 && !e->survival)) {
        free(e->spec);
        free(e->warnings);
        free(e->survival);
        return core_errf(err, "out of memory");
    }
    return 0;
}

static void free_evals_v(void *p, int n)
{
    adv_evals_free(p, n);
}

int adv_store_eval_list(adv_store *st, int64_t job, adv_eval **out, int *n, char *err)
{
    return list_of_job(st, S_EVAL_LIST, job, sizeof(adv_eval), read_eval, free_evals_v,
                       "list evaluations", (void **)out, n, err);
}

/* --------------------------------------------------- reports and images */

int adv_store_report_put(adv_store *st, int64_t job, const char *kind, const char *data,
                         char *err)
{
    if (!adv_report_kind_valid(kind))
        return core_errf(err, "unknown report kind '%.40s'", kind);
    json_error_t jerr;
    json_t *v = json_loads(data, 0, &jerr);
    int ok = json_is_object(v);
    json_decref(v);
    if (!ok)
        return core_errf(err, "invalid '%s' report (expected a JSON object)", kind);
    int rc = job_exists(st, job, NULL, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = prep(st, S_REPORT_PUT, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, data, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, now());
    return run(st, s, "store a report", err);
}

void adv_reports_free(adv_report *r, int n)
{
    for (int i = 0; r && i < n; i++)
        free(r[i].data);
    free(r);
}

static int read_report(sqlite3_stmt *s, void *item, char *err)
{
    adv_report *r = item;
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(s, 0);
    r->job = sqlite3_column_int64(s, 1);
    snprintf(r->kind, sizeof r->kind, "%s", (const char *)sqlite3_column_text(s, 2));
    r->data = dup_text(s, 3);
    r->created = sqlite3_column_double(s, 4);
    return r->data ? 0 : core_errf(err, "out of memory");
}

static void free_reports_v(void *p, int n)
{
    adv_reports_free(p, n);
}

int adv_store_report_list(adv_store *st, int64_t job, adv_report **out, int *n, char *err)
{
    return list_of_job(st, S_REPORT_LIST, job, sizeof(adv_report), read_report, free_reports_v,
                       "list reports", (void **)out, n, err);
}

int adv_store_image_put(adv_store *st, int64_t job, const char *name, const uint8_t *data,
                        size_t size, char *err)
{
    size_t len = strlen(name);
    if (len == 0 || len >= ADV_IMAGE_NAME || strchr(name, '/') || name[0] == '.')
        return core_errf(err, "invalid image name '%.40s'", name);
    int rc = job_exists(st, job, NULL, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = prep(st, S_IMAGE_PUT, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, job);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(s, 3, data, size, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, now());
    return run(st, s, "store an image", err);
}

void adv_images_free(adv_image *im, int n)
{
    for (int i = 0; im && i < n; i++)
        free(im[i].data);
    free(im);
}

static int read_image(sqlite3_stmt *s, void *item, char *err)
{
    adv_image *im = item;
    memset(im, 0, sizeof *im);
    snprintf(im->name, sizeof im->name, "%s", (const char *)sqlite3_column_text(s, 0));
    im->size = (size_t)sqlite3_column_bytes(s, 1);
    im->data = malloc(im->size ? im->size : 1);
    if (!im->data)
        return core_errf(err, "out of memory");
    memcpy(im->data, sqlite3_column_blob(s, 1), im->size);
    return 0;
}

static void free_images_v(void *p, int n)
{
    adv_images_free(p, n);
}

int adv_store_image_list(adv_store *st, int64_t job, adv_image **out, int *n, char *err)
{
    return list_of_job(st, S_IMAGE_LIST, job, sizeof(adv_image), read_image, free_images_v,
                       "list images", (void **)out, n, err);
}
