/*
 * daemon_calls.h - requests to the harness's daemon (daemon_harness.h),
 * one connection each, and its database read beside it: what the tests
 * that drive whole jobs share (test_faults.c, test_mpi.c).
 */
#ifndef ADV_DAEMON_CALLS_H
#define ADV_DAEMON_CALLS_H

#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "daemon_harness.h"

/* ------------------------------------------------------------ requests */

/* The last 1500 bytes of the daemon's log, for a failure message. */
static inline const char *log_tail(void)
{
    static char buf[1501];
    FILE *f = fopen(D.log, "r");
    size_t n = 0;
    if (f && fseek(f, -1500, SEEK_END))
        rewind(f);
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* One request on a connection of its own: the answer (events skipped). */
static inline json_t *call(const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    int fd = harness_connect(D.sock);
    ck_assert_msg(fd >= 0, "cannot connect to advd: %s", strerror(errno));
    adv_linebuf lb;
    adv_linebuf_init(&lb, 64 << 20);
    json_t *r = harness_next(fd, &lb, 30000); /* the greeting */
    ck_assert_msg(r != NULL, "no greeting from advd");
    ck_assert_int_eq(write(fd, line, (size_t)n), n);
    do {
        json_decref(r);
        r = harness_next(fd, &lb, 30000);
        ck_assert_msg(r != NULL, "no answer to %s", line);
    } while (!json_object_get(r, "ok"));
    adv_linebuf_free(&lb);
    close(fd);
    return r;
}

static inline const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static inline const char *error_of(const json_t *r)
{
    return str_of(json_object_get(r, "error"), "message");
}

static inline const json_t *ok_result(const json_t *r)
{
    ck_assert_msg(json_is_true(json_object_get(r, "ok")), "request failed: %s", error_of(r));
    return json_object_get(r, "result");
}

static inline void expect_ping(void)
{
    json_t *r = call("{\"id\":1,\"cmd\":\"ping\"}");
    ok_result(r);
    json_decref(r);
}

static inline int64_t submit(const char *spec)
{
    json_t *r = call("{\"id\":1,\"cmd\":\"submit\",\"spec\":%s}", spec);
    int64_t id = json_integer_value(json_object_get(ok_result(r), "job"));
    json_decref(r);
    ck_assert_int_gt(id, 0);
    return id;
}

/* The job's status result (a new reference). */
static inline json_t *job_status(int64_t job)
{
    json_t *r = call("{\"id\":1,\"cmd\":\"status\",\"job\":%lld}", (long long)job);
    json_t *s = json_incref((json_t *)ok_result(r));
    json_decref(r);
    return s;
}

/* Poll status until the job is in a final state; returns that status. */
static inline json_t *wait_final(int64_t job, int timeout_s)
{
    double t0 = now_s();
    for (;;) {
        json_t *s = job_status(job);
        adv_job_state st;
        if (adv_job_state_parse(str_of(s, "state"), &st) == 0 && adv_job_state_final(st))
            return s;
        json_decref(s);
        ck_assert_msg(now_s() - t0 < timeout_s, "job %lld did not end within %d s: %s",
                      (long long)job, timeout_s, log_tail());
        usleep(50000);
    }
}

static inline void expect_succeeded(int64_t job, int timeout_s)
{
    json_t *s = wait_final(job, timeout_s);
    ck_assert_msg(!strcmp(str_of(s, "state"), "succeeded"), "job %lld %s: %s", (long long)job,
                  str_of(s, "state"), str_of(s, "error"));
    json_decref(s);
}

static inline size_t metric_rows(int64_t job, const char *key)
{
    json_t *r = call("{\"id\":1,\"cmd\":\"metrics\",\"job\":%lld,\"key\":\"%s\"}",
                     (long long)job, key);
    size_t n = json_array_size(json_object_get(ok_result(r), "metrics"));
    json_decref(r);
    return n;
}

#define HAS(s, needle) ck_assert_msg(strstr((s), (needle)), "'%s' lacks '%s'", (s), (needle))
#define LOG_HAS(needle)                                                                       \
    ck_assert_msg(strstr(read_log(), (needle)), "the log lacks '%s': ...%s", (needle), log_tail())

/* ------------------------------------------- the database, read beside */

static inline sqlite3 *db_open(void)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(D.db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

/* The first column of the first row of sql (?1 = job) as an integer. */
static inline int64_t db_int(const char *sql, int64_t job)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *q;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK, "%s: %s", sql,
                  sqlite3_errmsg(db));
    sqlite3_bind_int64(q, 1, job);
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static inline void wait_checkpoints(int64_t job, int n)
{
    double t0 = now_s();
    while (db_int("SELECT count(*) FROM checkpoints WHERE job = ?1", job) < n) {
        ck_assert_msg(now_s() - t0 < 60, "job %lld has no %d checkpoints: %s", (long long)job,
                      n, log_tail());
        usleep(20000);
    }
}

/* The job's newest checkpoint row, every column (a prepared statement
 * on a connection of its own: finish with row_done). */
static inline sqlite3_stmt *newest_ckpt_row(int64_t job)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT * FROM checkpoints WHERE job = ?1"
                                        " ORDER BY step DESC LIMIT 1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, job);
    ck_assert_msg(sqlite3_step(q) == SQLITE_ROW, "job %lld has no checkpoint", (long long)job);
    return q;
}

static inline void row_done(sqlite3_stmt *q)
{
    sqlite3 *db = sqlite3_db_handle(q);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* The index of the column named name, -1 when the table has none. */
static inline int column(sqlite3_stmt *q, const char *name)
{
    for (int i = 0; i < sqlite3_column_count(q); i++)
        if (!strcmp(sqlite3_column_name(q, i), name))
            return i;
    return -1;
}

/* The file holding the job's newest checkpoint (<db>.ckpt/NAME) into
 * path; 0 when its bytes are a blob in the database (before schema 4). */
static inline int newest_ckpt_file(int64_t job, char *path, size_t len)
{
    sqlite3_stmt *q = newest_ckpt_row(job);
    int c = column(q, "file");
    const char *name = c >= 0 ? (const char *)sqlite3_column_text(q, c) : NULL;
    if (name)
        snprintf(path, len, "%s.ckpt/%s", D.db, name);
    row_done(q);
    return name != NULL;
}

/* The bytes of the job's newest checkpoint (malloc'd): its file or its
 * blob. */
static inline char *newest_ckpt_bytes(int64_t job, size_t *n)
{
    char path[700];
    char *bytes;
    if (newest_ckpt_file(job, path, sizeof path)) {
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
        struct stat sb;
        ck_assert_int_eq(fstat(fileno(f), &sb), 0);
        *n = (size_t)sb.st_size;
        bytes = malloc(*n + 1);
        ck_assert_int_eq(fread(bytes, 1, *n, f), *n);
        fclose(f);
        return bytes;
    }
    sqlite3_stmt *q = newest_ckpt_row(job);
    int c = column(q, "state");
    *n = (size_t)sqlite3_column_bytes(q, c);
    bytes = malloc(*n + 1);
    memcpy(bytes, sqlite3_column_blob(q, c), *n);
    row_done(q);
    return bytes;
}

/* The evaluation rows' survival bytes of job, concatenated by eps. */
static inline char *survival_of(int64_t job, size_t *n)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT survival FROM evaluations WHERE job = ?1"
                                        " ORDER BY eps",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, job);
    char *all = calloc(1, 1);
    *n = 0;
    while (sqlite3_step(q) == SQLITE_ROW)
        {
        size_t k = (size_t)sqlite3_column_bytes(q, 0);
        all = realloc(all, *n + k + 1);
        memcpy(all + *n, sqlite3_column_blob(q, 0), k);
        *n += k;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return all;
}

/* The data of job's report of kind (malloc'd; "" when none). */
static inline char *report_of(int64_t job, const char *kind)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT data FROM reports WHERE job = ?1 AND kind = ?2",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, job);
    sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
    char *s = strdup(sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
    sqlite3_close(db);
    return s;
}

#endif
