/*
 * test_store.c - the SQLite store: schema creation and versioning, reopen,
 * the job life cycle and queue order, crash recovery, checkpoint pruning
 * and checksums, metric upserts and evaluation results. Every database is
 * a new file in a temporary directory.
 */
#include "daemon/store.h"
#include "testutil.h"

#include <math.h>
#include <sqlite3.h>

/* ------------------------------------------------------------- helpers */

static char db_path[512];

static adv_store *open_new(void)
{
    char dir[256];
    adv_test_tmpdir(dir, sizeof dir);
    snprintf(db_path, sizeof db_path, "%s/advd.db", dir);
    adv_store *st;
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_open(db_path, 1000, &st, err) == 0, "open: %s", err);
    return st;
}

static adv_store *reopen(adv_store *st)
{
    adv_store_close(st);
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_open(db_path, 1000, &st, err) == 0, "reopen: %s", err);
    return st;
}

/* A statement on a second, raw connection (what another process sees). */
static void raw_exec(const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg);
    sqlite3_close(db);
}

static int64_t raw_int(const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static int64_t add_job(adv_store *st, adv_job_kind kind, const char *name, int priority,
                       int64_t parent)
{
    adv_job j = {.kind = kind, .priority = priority, .parent = parent,
                 .spec = (char *)"{\"kind\":\"train\"}"};
    snprintf(j.name, sizeof j.name, "%s", name);
    int64_t id = 0;
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_job_insert(st, &j, &id, err) == 0, "insert: %s", err);
    ck_assert_int_gt(id, 0);
    return id;
}

static adv_job_state state_of(adv_store *st, int64_t id)
{
    adv_job j;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_job_get(st, id, &j, err), 0);
    adv_job_state s = j.state;
    adv_job_clear(&j);
    return s;
}

static int64_t claim(adv_store *st)
{
    adv_job j;
    char err[CORE_ERRLEN];
    int rc = adv_store_job_claim(st, &j, err);
    if (rc == ADV_STORE_NOT_FOUND)
        return 0;
    ck_assert_msg(rc == 0, "claim: %s", err);
    ck_assert_int_eq(j.state, ADV_STATE_RUNNING);
    int64_t id = j.id;
    adv_job_clear(&j);
    return id;
}

static void set_state(adv_store *st, int64_t id, adv_job_state s, const char *error, int want)
{
    char err[CORE_ERRLEN] = "";
    int rc = adv_store_job_set_state(st, id, s, error, err);
    ck_assert_msg(rc == want, "job %lld -> %s: %d (%s)", (long long)id, adv_job_state_name(s),
                  rc, err);
}

/* ------------------------------------------------------------- schema */

START_TEST(test_create_and_reopen)
{
    adv_store *st = open_new();
    int v = 0;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_schema_version(st, &v, err), 0);
    ck_assert_int_eq(v, ADV_STORE_SCHEMA);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), ADV_STORE_SCHEMA);
    for (const char *t = "jobs\0checkpoints\0metrics\0evaluations\0"; *t; t += strlen(t) + 1) {
        char q[128];
        snprintf(q, sizeof q, "SELECT count(*) FROM sqlite_master WHERE name = '%s'", t);
        ck_assert_int_eq(raw_int(q), 1);
    }
    int64_t id = add_job(st, ADV_JOB_TRAIN, "keep me", 3, 0);
    st = reopen(st);
    adv_job j;
    ck_assert_int_eq(adv_store_job_get(st, id, &j, err), 0);
    ck_assert_str_eq(j.name, "keep me");
    ck_assert_str_eq(j.spec, "{\"kind\":\"train\"}");
    ck_assert_int_eq(j.priority, 3);
    ck_assert_int_eq(j.state, ADV_STATE_QUEUED);
    ck_assert(j.created > 1.6e9);
    ck_assert_ptr_null(j.error);
    adv_job_clear(&j);
    /* WAL, as the open set it (persistent in the file). */
    sqlite3 *db;
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    adv_store_close(st);
}
END_TEST

/* A version-1 database (before reports and images, owners and runs) is
 * migrated in place, keeping its jobs; they have no owner. */
START_TEST(test_schema_migrates_from_v1)
{
    adv_store *st = open_new();
    int64_t id = add_job(st, ADV_JOB_TRAIN, "old", 0, 0);
    raw_exec("DROP TABLE monitor_windows; DROP TABLE monitors;"
             "ALTER TABLE checkpoints DROP COLUMN file;"
             "DROP TABLE reports; DROP TABLE images; DROP TRIGGER runs_start;"
             "DROP TRIGGER runs_end; DROP TABLE runs; DROP INDEX jobs_owner;"
             "CREATE TABLE v1 AS SELECT id, kind, name, spec, state, priority, parent, progress,"
             " attempts, error, created, started, finished FROM jobs;"
             "DROP TABLE jobs; ALTER TABLE v1 RENAME TO jobs; PRAGMA user_version = 1");
    st = reopen(st);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), ADV_STORE_SCHEMA);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE name IN "
                             "('reports', 'images', 'runs', 'runs_start', 'runs_end')"), 5);
    ck_assert_int_eq(state_of(st, id), ADV_STATE_QUEUED);
    adv_job j;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_job_get(st, id, &j, err), 0);
    ck_assert_int_eq(j.owner, -1);
    adv_job_clear(&j);
    adv_store_close(st);
}
END_TEST

START_TEST(test_reports_and_images)
{
    adv_store *st = open_new();
    char err[CORE_ERRLEN];
    int64_t train = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    int64_t ev = add_job(st, ADV_JOB_EVAL, "e", 0, train);
    ck_assert_int_eq(adv_store_report_put(st, ev, "calibration", "{\"ece\":0.1}", err), 0);
    ck_assert_int_eq(adv_store_report_put(st, ev, "calibration", "{\"ece\":0.2}", err), 0);
    ck_assert_int_eq(adv_store_report_put(st, ev, "corruptions", "{\"n\":5}", err), 0);
    ck_assert_int_eq(adv_store_report_put(st, ev, "fog", "{}", err), -1);
    ck_assert_str_eq(err, "unknown report kind 'fog'");
    ck_assert_int_eq(adv_store_report_put(st, ev, "corruptions", "[1]", err), -1);
    ck_assert_str_eq(err, "invalid 'corruptions' report (expected a JSON object)");
    ck_assert_int_eq(adv_store_report_put(st, 99, "corruptions", "{}", err), ADV_STORE_NOT_FOUND);
    /* The training job lists its eval jobs' reports; a rerun replaced one. */
    adv_report *r;
    int n;
    ck_assert_int_eq(adv_store_report_list(st, train, &r, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(r[0].kind, "calibration");
    ck_assert_str_eq(r[0].data, "{\"ece\":0.2}");
    ck_assert_int_eq(r[1].job, ev);
    adv_reports_free(r, n);
    const uint8_t png[4] = {0x89, 'P', 0, 'G'};
    ck_assert_int_eq(adv_store_image_put(st, ev, "b.png", png, 4, err), 0);
    ck_assert_int_eq(adv_store_image_put(st, ev, "a.tsv", png, 2, err), 0);
    ck_assert_int_eq(adv_store_image_put(st, ev, "../x.png", png, 4, err), -1);
    ck_assert_int_eq(adv_store_image_put(st, ev, ".hidden", png, 4, err), -1);
    ck_assert_str_eq(err, "invalid image name '.hidden'");
    adv_image *im;
    ck_assert_int_eq(adv_store_image_list(st, ev, &im, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(im[0].name, "a.tsv");
    ck_assert_int_eq(im[1].size, 4);
    ck_assert(memcmp(im[1].data, png, 4) == 0);
    adv_images_free(im, n);
    adv_store_close(st);
}
END_TEST

START_TEST(test_schema_newer_refused)
{
    adv_store *st = open_new();
    adv_store_close(st);
    raw_exec("PRAGMA user_version = 99");
    char err[CORE_ERRLEN] = "";
    ck_assert_int_eq(adv_store_open(db_path, 100, &st, err), -1);
    ck_assert_ptr_null(st);
    char want[96];
    snprintf(want, sizeof want, "database schema version 99 is newer than this advd's (%d)",
             ADV_STORE_SCHEMA);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_open_errors)
{
    adv_store *st;
    char err[CORE_ERRLEN] = "";
    ck_assert_int_eq(adv_store_open("/nonexistent-dir/x/advd.db", 100, &st, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open database '/nonexistent-dir/x/advd.db'"));
    /* Not a database. */
    char dir[256], path[300];
    adv_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/junk.db", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an SQLite database, not at all, not even a little bit\n", f);
    fclose(f);
    ck_assert_int_eq(adv_store_open(path, 100, &st, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "file is not a database"));
}
END_TEST

/* --------------------------------------------------------------- jobs */

START_TEST(test_job_lifecycle)
{
    adv_store *st = open_new();
    char err[CORE_ERRLEN];
    int64_t id = add_job(st, ADV_JOB_TRAIN, "a", 0, 0);
    /* Not running yet: no progress, no success. */
    ck_assert_int_eq(adv_store_job_progress(st, id, 0.5, err), ADV_STORE_CONFLICT);
    ck_assert_str_eq(err, "cannot mark job 1 running: it is queued");
    set_state(st, id, ADV_STATE_SUCCEEDED, NULL, ADV_STORE_CONFLICT);
    ck_assert_int_eq(claim(st), id);
    ck_assert_int_eq(adv_store_job_progress(st, id, 0.5, err), 0);
    ck_assert_int_eq(adv_store_job_progress(st, id, 1.5, err), -1);
    ck_assert_int_eq(adv_store_job_progress(st, id, NAN, err), -1);
    /* A retry: back to queued with the reason, then running again. */
    set_state(st, id, ADV_STATE_QUEUED, "worker killed by signal 9", 0);
    ck_assert_int_eq(claim(st), id);
    set_state(st, id, ADV_STATE_SUCCEEDED, NULL, 0);
    adv_job j;
    ck_assert_int_eq(adv_store_job_get(st, id, &j, err), 0);
    ck_assert_int_eq(j.state, ADV_STATE_SUCCEEDED);
    ck_assert_int_eq(j.attempts, 2);
    ck_assert_double_eq(j.progress, 1.0);
    ck_assert(j.started > 0 && j.finished >= j.started);
    ck_assert_ptr_null(j.error);
    adv_job_clear(&j);
    /* Final states stay final. */
    set_state(st, id, ADV_STATE_CANCELLED, "too late", ADV_STORE_CONFLICT);
    set_state(st, id, ADV_STATE_RUNNING, NULL, ADV_STORE_CONFLICT);
    set_state(st, 999, ADV_STATE_CANCELLED, NULL, ADV_STORE_NOT_FOUND);
    ck_assert_int_eq(adv_store_job_get(st, 999, &j, err), ADV_STORE_NOT_FOUND);
    ck_assert_str_eq(err, "no job 999");
    /* Cancel a queued job; fail a running one. */
    int64_t b = add_job(st, ADV_JOB_TRAIN, "b", 0, 0), c = add_job(st, ADV_JOB_TRAIN, "c", 0, 0);
    set_state(st, b, ADV_STATE_CANCELLED, "cancelled by the user", 0);
    ck_assert_int_eq(claim(st), c);
    set_state(st, c, ADV_STATE_FAILED, "out of memory", 0);
    ck_assert_int_eq(adv_store_job_get(st, c, &j, err), 0);
    ck_assert_str_eq(j.error, "out of memory");
    ck_assert(j.finished > 0);
    adv_job_clear(&j);
    ck_assert_int_eq(claim(st), 0);
    adv_store_close(st);
}
END_TEST

START_TEST(test_claim_order)
{
    adv_store *st = open_new();
    int64_t low = add_job(st, ADV_JOB_TRAIN, "low", -1, 0);
    int64_t mid1 = add_job(st, ADV_JOB_TRAIN, "mid1", 0, 0);
    int64_t high = add_job(st, ADV_JOB_TRAIN, "high", 5, 0);
    int64_t mid2 = add_job(st, ADV_JOB_TRAIN, "mid2", 0, 0);
    /* An evaluation waits for its training job, whatever its priority. */
    int64_t ev = add_job(st, ADV_JOB_EVAL, "ev", 100, mid2);
    ck_assert_int_eq(claim(st), high);
    ck_assert_int_eq(claim(st), mid1);
    ck_assert_int_eq(claim(st), mid2);
    ck_assert_int_eq(claim(st), low);
    ck_assert_int_eq(claim(st), 0);
    set_state(st, mid2, ADV_STATE_SUCCEEDED, NULL, 0);
    ck_assert_int_eq(claim(st), ev);

    /* The list, in run order, filtered. */
    adv_job *jobs;
    int n;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_job_list(st, NULL, &jobs, &n, err), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(jobs[0].id, ev);
    ck_assert_int_eq(jobs[1].id, high);
    ck_assert_int_eq(jobs[4].id, low);
    adv_jobs_free(jobs, n);
    adv_job_filter f = {.state = ADV_STATE_RUNNING, .kind = ADV_JOB_TRAIN, .limit = 2};
    ck_assert_int_eq(adv_store_job_list(st, &f, &jobs, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(jobs[0].id, high);
    ck_assert_int_eq(jobs[1].id, mid1);
    adv_jobs_free(jobs, n);
    f = (adv_job_filter){.state = -1, .kind = ADV_JOB_EVAL};
    ck_assert_int_eq(adv_store_job_list(st, &f, &jobs, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(jobs[0].parent, mid2);
    adv_jobs_free(jobs, n);

    /* Parents must exist and be training jobs. */
    adv_job j = {.kind = ADV_JOB_EVAL, .spec = (char *)"{}", .parent = 77};
    ck_assert_int_eq(adv_store_job_insert(st, &j, NULL, err), ADV_STORE_NOT_FOUND);
    ck_assert_str_eq(err, "no job 77");
    j.parent = ev;
    ck_assert_int_eq(adv_store_job_insert(st, &j, NULL, err), ADV_STORE_CONFLICT);
    adv_store_close(st);
}
END_TEST

static int64_t add_owned(adv_store *st, const char *name, int priority, int64_t owner)
{
    adv_job j = {.kind = ADV_JOB_TRAIN, .priority = priority, .owner = owner,
                 .spec = (char *)"{\"kind\":\"train\"}"};
    snprintf(j.name, sizeof j.name, "%s", name);
    int64_t id = 0;
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_job_insert(st, &j, &id, err) == 0, "insert: %s", err);
    return id;
}

/* Fair share: after one of user 1000's jobs ran, user 2000's job goes next
 * although it is newer and of lower priority; priority still orders one
 * user's own jobs. Owners are kept, listed and counted. */
START_TEST(test_claim_fair_share)
{
    adv_store *st = open_new();
    char err[CORE_ERRLEN];
    int64_t a1 = add_owned(st, "a1", 5, 1000), a2 = add_owned(st, "a2", 1, 1000);
    int64_t a3 = add_owned(st, "a3", 9, 1000), b1 = add_owned(st, "b1", 0, 2000);
    int n;
    ck_assert_int_eq(adv_store_jobs_queued_by(st, 1000, &n, err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(adv_store_jobs_queued_by(st, 3000, &n, err), 0);
    ck_assert_int_eq(n, 0);
    /* Nobody has run yet: priority decides (a3), as without owners. */
    ck_assert_int_eq(claim(st), a3);
    usleep(30000);
    set_state(st, a3, ADV_STATE_SUCCEEDED, NULL, 0);
    ck_assert_int_eq(claim(st), b1);
    usleep(30000);
    set_state(st, b1, ADV_STATE_SUCCEEDED, NULL, 0);
    /* User 2000 has run about as long, but 1000's jobs are all it has. */
    ck_assert_int_eq(claim(st), a1);
    set_state(st, a1, ADV_STATE_CANCELLED, NULL, 0);
    ck_assert_int_eq(claim(st), a2);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM runs WHERE ended IS NULL"), 1);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM runs WHERE owner = 1000"), 3);
    adv_job_filter f = {.state = -1, .kind = -1, .by_owner = 1, .owner = 2000};
    adv_job *jobs;
    ck_assert_int_eq(adv_store_job_list(st, &f, &jobs, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(jobs[0].id, b1);
    ck_assert_int_eq(jobs[0].owner, 2000);
    adv_jobs_free(jobs, n);
    adv_store_close(st);
}
END_TEST

START_TEST(test_requeue_at_startup)
{
    adv_store *st = open_new();
    int64_t a = add_job(st, ADV_JOB_TRAIN, "a", 0, 0), b = add_job(st, ADV_JOB_TRAIN, "b", 0, 0);
    int64_t c = add_job(st, ADV_JOB_TRAIN, "c", 0, 0);
    ck_assert_int_eq(claim(st), a);
    ck_assert_int_eq(claim(st), b);
    set_state(st, b, ADV_STATE_SUCCEEDED, NULL, 0);
    /* The daemon dies here: a stays running in the file. */
    st = reopen(st);
    int count = -1;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_requeue_running(st, &count, err), 0);
    ck_assert_int_eq(count, 1);
    ck_assert_int_eq(state_of(st, a), ADV_STATE_QUEUED);
    ck_assert_int_eq(state_of(st, b), ADV_STATE_SUCCEEDED);
    ck_assert_int_eq(state_of(st, c), ADV_STATE_QUEUED);
    ck_assert_int_eq(claim(st), a); /* still first in line */
    adv_job j;
    ck_assert_int_eq(adv_store_job_get(st, a, &j, err), 0);
    ck_assert_int_eq(j.attempts, 2);
    adv_job_clear(&j);
    adv_store_close(st);
}
END_TEST

/* -------------------------------------------------------- checkpoints */

static int64_t put_ckpt(adv_store *st, int64_t job, int epoch, int64_t step, double acc, int keep)
{
    uint8_t bytes[64];
    for (int i = 0; i < 64; i++)
        bytes[i] = (uint8_t)(step * 7 + i);
    adv_ckpt c = {.job = job, .epoch = epoch, .step = step, .val_robust_acc = acc,
                  .state = bytes, .size = sizeof bytes};
    int64_t id = 0;
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_ckpt_put(st, &c, keep, &id, err) == 0, "put: %s", err);
    return id;
}

static int64_t ckpt_step(adv_store *st, int64_t job, adv_ckpt_ref ref, int want_rc)
{
    adv_ckpt c;
    char err[CORE_ERRLEN] = "";
    int rc = adv_store_ckpt_get(st, job, ref, &c, err);
    ck_assert_msg(rc == want_rc, "get: %d (%s)", rc, err);
    if (rc)
        return -1;
    ck_assert_uint_eq(c.size, 64);
    ck_assert_uint_eq(c.state[5], (uint8_t)(c.step * 7 + 5));
    int64_t step = c.step;
    adv_ckpt_clear(&c);
    return step;
}

START_TEST(test_checkpoint_pruning)
{
    adv_store *st = open_new();
    int64_t job = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    const adv_ckpt_ref latest = {ADV_CKPT_LATEST, 0}, best = {ADV_CKPT_BEST, 0};
    char err[CORE_ERRLEN];
    ck_assert_int_eq(ckpt_step(st, job, latest, ADV_STORE_NOT_FOUND), -1);
    /* Robust accuracy per epoch: the best is epoch 2 (0.40). */
    static const double acc[] = {0.10, 0.30, 0.40, 0.35, 0.20, 0.40, 0.38};
    for (int e = 0; e < 7; e++)
        put_ckpt(st, job, e + 1, (e + 1) * 100, acc[e], 3);
    adv_ckpt *list;
    int n;
    ck_assert_int_eq(adv_store_ckpt_list(st, job, &list, &n, err), 0);
    /* The last three (epochs 5, 6, 7) plus the best (epoch 3, earliest of the tie). */
    ck_assert_int_eq(n, 4);
    static const int want_epochs[] = {3, 5, 6, 7};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(list[i].epoch, want_epochs[i]);
        ck_assert_int_eq(list[i].is_best, i == 0);
        ck_assert_ptr_null(list[i].state);
    }
    adv_ckpts_free(list, n);
    ck_assert_int_eq(ckpt_step(st, job, latest, 0), 700);
    ck_assert_int_eq(ckpt_step(st, job, best, 0), 300);
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_EPOCH, 6}, 0), 600);
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_EPOCH, 1}, ADV_STORE_NOT_FOUND), -1);
    /* A checkpoint again at the same step replaces the old one. */
    put_ckpt(st, job, 7, 700, 0.9, 3);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM checkpoints WHERE step = 700"), 1);
    ck_assert_int_eq(ckpt_step(st, job, best, 0), 700);
    /* keep 0: nothing pruned. */
    int64_t other = add_job(st, ADV_JOB_TRAIN, "u", 0, 0);
    for (int e = 0; e < 5; e++)
        put_ckpt(st, other, e, e, NAN, 0);
    ck_assert_int_eq(ckpt_step(st, other, best, ADV_STORE_NOT_FOUND), -1);
    ck_assert_int_eq(adv_store_ckpt_list(st, other, &list, &n, err), 0);
    ck_assert_int_eq(n, 5);
    ck_assert(isnan(list[0].val_robust_acc));
    adv_ckpts_free(list, n);
    /* No job, no checkpoint. */
    adv_ckpt c = {.job = 4242, .state = (uint8_t *)"x", .size = 1};
    ck_assert_int_eq(adv_store_ckpt_put(st, &c, 3, NULL, err), ADV_STORE_NOT_FOUND);
    ck_assert_int_eq(ckpt_step(st, 4242, latest, ADV_STORE_NOT_FOUND), -1);
    adv_store_close(st);
}
END_TEST

/* The path of checkpoint id's file. */
static void ckpt_path(adv_store *st, int64_t id, char *out, size_t len)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT file FROM checkpoints WHERE id = %lld", (long long)id);
    sqlite3 *db;
    sqlite3_stmt *s;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
    snprintf(out, len, "%s/%s", adv_store_ckpt_dir(st), (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Overwrite n bytes at offset of a file (n 0: truncate it there). */
static void poke(const char *path, long offset, const char *bytes, size_t n)
{
    if (n == 0) {
        ck_assert_int_eq(truncate(path, offset), 0);
        return;
    }
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, offset, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

START_TEST(test_checkpoint_checksum)
{
    adv_store *st = open_new();
    int64_t job = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    int64_t first = put_ckpt(st, job, 1, 100, 0.5, 3);
    int64_t id = put_ckpt(st, job, 2, 200, 0.1, 3);
    char path[1024];
    /* One flipped byte in the file of the latest. */
    ckpt_path(st, id, path, sizeof path);
    poke(path, 10, "X", 1);
    adv_ckpt c;
    char err[CORE_ERRLEN] = "";
    ck_assert_int_eq(adv_store_ckpt_get(st, job, (adv_ckpt_ref){ADV_CKPT_LATEST, 0}, &c, err),
                     ADV_STORE_CORRUPT);
    ck_assert_ptr_null(c.state);
    ck_assert_msg(strstr(err, "crc32"), "%s", err);
    /* The intact one still loads. */
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_BEST, 0}, 0), 100);
    /* A truncated file, then a missing one. */
    ckpt_path(st, first, path, sizeof path);
    poke(path, 3, NULL, 0);
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_BEST, 0}, ADV_STORE_CORRUPT), -1);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_BEST, 0}, ADV_STORE_CORRUPT), -1);
    adv_store_close(st);
}
END_TEST

/* Checkpoints an advd before schema 4 kept inside the database move out
 * to files at start-up; files no row names are swept. */
START_TEST(test_checkpoint_files)
{
    adv_store *st = open_new();
    int64_t job = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    int64_t id = put_ckpt(st, job, 1, 100, 0.5, 3);
    char path[1024], stray[1100], sql[512];
    ckpt_path(st, id, path, sizeof path);
    /* The row as an old advd wrote it: the bytes in the state column. */
    uint8_t bytes[64];
    for (int i = 0; i < 64; i++)
        bytes[i] = (uint8_t)(100 * 7 + i);
    char hex[129];
    for (int i = 0; i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
    snprintf(sql, sizeof sql, "UPDATE checkpoints SET file = NULL, state = x'%s' WHERE id = %lld",
             hex, (long long)id);
    raw_exec(sql);
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_LATEST, 0}, 0), 100);
    /* Its old file is now unrecorded, as is a worker's temporary file. */
    snprintf(stray, sizeof stray, "%s/.j1-s9-a1p1.state.tmp", adv_store_ckpt_dir(st));
    FILE *f = fopen(stray, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    int n = -1;
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(adv_store_ckpt_unblob(st, &n, err) == 0, "%s", err);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM checkpoints WHERE file IS NOT NULL"
                             " AND length(state) = 0"), 1);
    ck_assert_int_eq(adv_store_ckpt_unblob(st, &n, err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_msg(adv_store_ckpt_sweep(st, &n, err) == 0, "%s", err);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(access(stray, F_OK), -1);
    /* The moved checkpoint loads from its new file. */
    ck_assert_int_eq(ckpt_step(st, job, (adv_ckpt_ref){ADV_CKPT_LATEST, 0}, 0), 100);
    adv_store_close(st);
}
END_TEST

/* ------------------------------------------------------------ metrics */

START_TEST(test_metrics_upsert)
{
    adv_store *st = open_new();
    int64_t job = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    char err[CORE_ERRLEN] = "";
    adv_metric m[] = {
        {"loss", 10, 0, 2.5}, {"acc", 10, 0, 0.25}, {"loss", 20, 0, 2.0}, {"val_robust_acc", 20, 0, NAN},
    };
    ck_assert_int_eq(adv_store_metrics_put(st, job, m, 4, err), 0);
    /* A resumed job writes step 20 again: one row, the new value. */
    adv_metric again[] = {{"loss", 20, 1, 1.75}, {"loss", 30, 1, 1.5}};
    ck_assert_int_eq(adv_store_metrics_put(st, job, again, 2, err), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM metrics WHERE key = 'loss' AND step = 20"), 1);
    adv_metric_row *rows;
    int n;
    ck_assert_int_eq(adv_store_metrics_get(st, job, "loss", 0, &rows, &n, err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(rows[1].step, 20);
    ck_assert_int_eq(rows[1].epoch, 1);
    ck_assert_double_eq(rows[1].value, 1.75);
    ck_assert(rows[1].time > 1.6e9);
    free(rows);
    ck_assert_int_eq(adv_store_metrics_get(st, job, NULL, 20, &rows, &n, err), 0);
    ck_assert_int_eq(n, 3); /* loss 20, loss 30, val_robust_acc 20 */
    ck_assert_str_eq(rows[0].key, "loss");
    ck_assert_str_eq(rows[2].key, "val_robust_acc");
    ck_assert(isnan(rows[2].value));
    free(rows);
    /* A bad point rolls the whole batch back. */
    adv_metric bad[] = {{"ok", 40, 1, 1.0}, {"", 40, 1, 1.0}};
    ck_assert_int_eq(adv_store_metrics_put(st, job, bad, 2, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "invalid metric key"));
    ck_assert_int_eq(raw_int("SELECT count(*) FROM metrics WHERE key = 'ok'"), 0);
    ck_assert_int_eq(adv_store_metrics_put(st, 99, m, 1, err), ADV_STORE_NOT_FOUND);
    /* Still usable after the failures. */
    ck_assert_int_eq(adv_store_metrics_put(st, job, bad, 1, err), 0);
    adv_store_close(st);
}
END_TEST

/* -------------------------------------------------------- evaluations */

START_TEST(test_evaluations)
{
    adv_store *st = open_new();
    char err[CORE_ERRLEN] = "";
    int64_t train = add_job(st, ADV_JOB_TRAIN, "t", 0, 0);
    int64_t ck1 = put_ckpt(st, train, 1, 100, NAN, 1);
    int64_t evjob = add_job(st, ADV_JOB_EVAL, "e", 0, train);
    uint8_t surv[5] = {1, 0, 1, 1, 0};
    adv_eval ev = {.job = evjob, .checkpoint = ck1, .spec = (char *)"{\"attack\":\"pgd\"}",
                   .eps = 0.1, .n = 5, .clean_acc = 0.8, .robust_acc = 0.6, .survival = surv,
                   .warnings = (char *)"[\"possible gradient masking\"]"};
    int64_t id1, id2;
    ck_assert_int_eq(adv_store_eval_put(st, &ev, &id1, err), 0);
    /* The training job's own final evaluation, no survival, no warnings. */
    adv_eval fin = {.job = train, .spec = (char *)"{\"suite\":\"pgd\"}", .eps = 0.1, .n = 5,
                    .clean_acc = 0.8, .robust_acc = NAN, .epoch = 1, .step = 100};
    ck_assert_int_eq(adv_store_eval_put(st, &fin, &id2, err), 0);
    /* Pruning the evaluated checkpoint keeps the result and its epoch. */
    put_ckpt(st, train, 2, 200, NAN, 1);
    adv_eval *list;
    int n;
    ck_assert_int_eq(adv_store_eval_list(st, train, &list, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(list[0].id, id1);
    ck_assert_int_eq(list[0].job, evjob);
    ck_assert_int_eq(list[0].checkpoint, 0);
    ck_assert_int_eq(list[0].epoch, 1);
    ck_assert_int_eq(list[0].step, 100);
    ck_assert_str_eq(list[0].spec, "{\"attack\":\"pgd\"}");
    ck_assert_double_eq(list[0].eps, 0.1);
    ck_assert_int_eq(list[0].n, 5);
    ck_assert_double_eq(list[0].robust_acc, 0.6);
    ck_assert_int_eq(memcmp(list[0].survival, surv, 5), 0);
    ck_assert_str_eq(list[0].warnings, "[\"possible gradient masking\"]");
    ck_assert_int_eq(list[1].id, id2);
    ck_assert_ptr_null(list[1].survival);
    ck_assert_str_eq(list[1].warnings, "[]");
    ck_assert(isnan(list[1].robust_acc));
    adv_evals_free(list, n);
    /* Listing by the eval job gives its own only. */
    ck_assert_int_eq(adv_store_eval_list(st, evjob, &list, &n, err), 0);
    ck_assert_int_eq(n, 1);
    adv_evals_free(list, n);
    /* Bad warnings, a missing checkpoint, a missing job. */
    ev.warnings = (char *)"[1]";
    ck_assert_int_eq(adv_store_eval_put(st, &ev, NULL, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "invalid evaluation warnings"));
    ev.warnings = NULL;
    ck_assert_int_eq(adv_store_eval_put(st, &ev, NULL, err), ADV_STORE_NOT_FOUND);
    ck_assert_str_eq(err, "no checkpoint 1");
    ev.job = 555;
    ck_assert_int_eq(adv_store_eval_put(st, &ev, NULL, err), ADV_STORE_NOT_FOUND);
    adv_store_close(st);
}
END_TEST

static Suite *suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_create_and_reopen);
    tcase_add_test(tc, test_schema_newer_refused);
    tcase_add_test(tc, test_schema_migrates_from_v1);
    tcase_add_test(tc, test_reports_and_images);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_job_lifecycle);
    tcase_add_test(tc, test_claim_order);
    tcase_add_test(tc, test_claim_fair_share);
    tcase_add_test(tc, test_requeue_at_startup);
    tcase_add_test(tc, test_checkpoint_pruning);
    tcase_add_test(tc, test_checkpoint_checksum);
    tcase_add_test(tc, test_checkpoint_files);
    tcase_add_test(tc, test_metrics_upsert);
    tcase_add_test(tc, test_evaluations);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_store)
