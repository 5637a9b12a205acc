/*
 * test_faults.c - fault injection against a real bin/advd (issue 16): a
 * worker killed in each phase of a job, a worker under a small
 * address-space limit, another process holding the database's write lock
 * for 5 s, the database on a file system that fills up, and a checkpoint
 * file corrupted in place.
 *
 * Phases are hit deterministically by the worker's ADVD_FAULT hook
 * (daemon/worker.c), set in the daemon's environment: the first attempt of
 * a job SIGKILLs itself on reaching the phase. Jobs are tiny (a 4-channel
 * convolution on 256 Fashion-MNIST images, one thread, about 30 ms an
 * epoch); every wait is generous and the assertions are on outcomes, never
 * on timings, except the busy-lock bound (BUSY_BOUND_S).
 */
#define _GNU_SOURCE
#include "proto/proto.h"
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "daemon_calls.h"

#define STR_(x) #x
#define STR(x) STR_(x)
/* A tiny training job of that many epochs (a literal or a macro naming one). */
#define JOB_SPEC(epochs)                                                                      \
    "{\"kind\":\"train\",\"name\":\"fault\",\"model\":\"conv4k3p1 relu maxpool2 fc10\","      \
    "\"epochs\":" STR(epochs) ",\"train_limit\":256,\"val_size\":0,\"val_robust_size\":0,"    \
    "\"batch\":64,\"steps\":2,\"seed\":5,\"keep_checkpoints\":2}"

/* The newest checkpoint of a run of spec on a fresh daemon and database
 * (no fault): what an interrupted run must end with, bit for bit. */
static char *uninterrupted_ckpt(const char *spec, size_t *n)
{
    stop_daemon(SIGTERM);
    unsetenv("ADVD_FAULT");
    snprintf(D.db, sizeof D.db, "%s/uninterrupted.db", D.dir);
    start_daemon_with(NULL);
    int64_t id = submit(spec);
    expect_succeeded(id, 120);
    return newest_ckpt_bytes(id, n);
}

/* --------------------------------------------------------- worker death */

static const char *const phases[] = {"load", "train", "checkpoint", "eval"};
#define NPHASES ((int)(sizeof phases / sizeof phases[0]))
#define KILLED_EPOCHS 3

/* _i: phase i % 4, with one retry when i >= 4. */
START_TEST(test_worker_killed)
{
    const char *phase = phases[_i % NPHASES];
    int retries = _i >= NPHASES;
    const char *opt[] = {"--retries", retries ? "1" : "0", NULL};
    setenv("ADVD_FAULT", phase, 1);
    start_daemon_with(opt);
    int64_t id = submit(JOB_SPEC(KILLED_EPOCHS));
    json_t *s = wait_final(id, 120);
    LOG_HAS("killing myself");
    if (!retries) {
        ck_assert_str_eq(str_of(s, "state"), "failed");
        HAS(str_of(s, "error"), "killed by signal 9");
        json_decref(s);
        expect_ping();
        return;
    }
    ck_assert_msg(!strcmp(str_of(s, "state"), "succeeded"), "phase %s: %s: %s", phase,
                  str_of(s, "state"), str_of(s, "error"));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "attempts")), 2);
    json_decref(s);
    LOG_HAS("attempt 1 failed (worker killed by signal 9");
    /* Past its first checkpoint, attempt 2 resumes from the last one. */
    if (strcmp(phase, "load"))
        LOG_HAS("resuming from step");
    ck_assert_int_eq(metric_rows(id, "train_loss"), KILLED_EPOCHS);
    ck_assert_int_eq(metric_rows(id, "test_pgd20_acc"), 1);
    expect_ping();
    /* And ends with the very weights of a run nobody killed. */
    size_t n, m;
    char *got = newest_ckpt_bytes(id, &n);
    char *want = uninterrupted_ckpt(JOB_SPEC(KILLED_EPOCHS), &m);
    ck_assert_msg(n == m && !memcmp(got, want, n),
                  "phase %s: the retried job's final checkpoint differs from an uninterrupted "
                  "run's (%zu and %zu bytes)",
                  phase, n, m);
    free(got);
    free(want);
}
END_TEST

/* ------------------------------------------------ resumable evaluations */

/* A model large enough that its evaluation takes seconds. */
#define WIDE_SPEC                                                                             \
    "{\"kind\":\"train\",\"name\":\"wide\",\"model\":\"conv32k3p1 relu maxpool2 fc10\","    \
    "\"epochs\":1,\"train_limit\":256,\"val_size\":64,\"val_robust_size\":0,\"batch\":64,"    \
    "\"steps\":2,\"seed\":5}"

static int64_t submit_eval_of(int64_t job, int steps, int limit)
{
    char spec[400];
    snprintf(spec, sizeof spec,
             "{\"kind\":\"eval\",\"job\":%lld,\"attack\":\"pgd\",\"steps\":%d,"
             "\"eps\":[0.05,0.1],\"limit\":%d,\"explain\":false,\"corruptions\":false}",
             (long long)job, steps, limit);
    return submit(spec);
}

static int count_in_log(const char *needle)
{
    int n = 0;
    for (const char *p = read_log(); (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* No evaluation progress file is left in the checkpoint folder. */
static void expect_no_evalstate(void)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s.ckpt", D.db);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        ck_assert_msg(!strstr(e->d_name, ".evalstate"), "%s is left", e->d_name);
    if (d)
        closedir(d);
}

/* Waits until job runs with some progress, and not all. */
static void wait_midway(int64_t job)
{
    double t0 = now_s();
    for (;;) {
        json_t *s = job_status(job);
        double p = json_number_value(json_object_get(s, "progress"));
        int mid = !strcmp(str_of(s, "state"), "running") && p > 0.0 && p < 0.5;
        ck_assert_msg(strcmp(str_of(s, "state"), "succeeded"), "job %lld ended too soon",
                      (long long)job);
        json_decref(s);
        if (mid)
            return;
        ck_assert_msg(now_s() - t0 < 120, "job %lld never got under way", (long long)job);
        usleep(20000);
    }
}

/* An evaluation whose worker is killed in its second eps (ADVD_FAULT=
 * evalstate: SIGKILL once its progress is saved there) and one stopped by
 * the daemon's shutdown (SIGTERM: requeued, its progress saved at the
 * stop) resume where they were, and store the per-example survival and
 * the calibration of runs nobody interrupted, byte for byte. */
START_TEST(test_evaluation_resumes)
{
    const char *opt[] = {"--retries", "1", NULL};
    setenv("ADVD_FAULT", "evalstate", 1);
    start_daemon_with(opt);
    int64_t small = submit(JOB_SPEC(2)), wide = submit(WIDE_SPEC);
    expect_succeeded(small, 120);
    expect_succeeded(wide, 120);
    /* A training job's final evaluation keeps its per-example survival. */
    size_t final_n;
    free(survival_of(small, &final_n));
    ck_assert_int_eq(final_n, 100); /* the harness's --final-eval-limit */
    int64_t killed = submit_eval_of(small, 10, 512);
    json_t *s = wait_final(killed, 180);
    ck_assert_msg(!strcmp(str_of(s, "state"), "succeeded"), "%s", str_of(s, "error"));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "attempts")), 2);
    json_decref(s);
    LOG_HAS("killing myself");
    LOG_HAS("resuming the evaluation at eps 2 of 2, example 128");
    expect_no_evalstate();

    stop_daemon(SIGTERM);
    unsetenv("ADVD_FAULT");
    start_daemon_with(opt);
    /* Under the sanitizers an attack step costs ten times more. */
    const int wide_steps = adv_test_under_asan() ? 2 : 20;
    int64_t stopped = submit_eval_of(wide, wide_steps, 384);
    wait_midway(stopped);
    int before = count_in_log("resuming the evaluation");
    stop_daemon(SIGTERM);
    start_daemon_with(opt);
    expect_succeeded(stopped, 300);
    ck_assert_int_eq(count_in_log("resuming the evaluation"), before + 1);
    expect_no_evalstate();
    size_t n[4];
    char *got[2] = {survival_of(killed, &n[0]), survival_of(stopped, &n[1])};
    char *cal[2] = {report_of(killed, "calibration"), report_of(stopped, "calibration")};

    /* The same jobs on a fresh database, with nobody in the way. */
    stop_daemon(SIGTERM);
    snprintf(D.db, sizeof D.db, "%s/uninterrupted.db", D.dir);
    start_daemon_with(opt);
    small = submit(JOB_SPEC(2)), wide = submit(WIDE_SPEC);
    expect_succeeded(small, 120);
    expect_succeeded(wide, 120);
    int64_t e[2] = {submit_eval_of(small, 10, 512), submit_eval_of(wide, wide_steps, 384)};
    for (int i = 0; i < 2; i++) {
        expect_succeeded(e[i], 300);
        char *want = survival_of(e[i], &n[2 + i]), *wcal = report_of(e[i], "calibration");
        ck_assert_int_eq(n[i], n[2 + i]);
        ck_assert_msg(n[i] > 0 && !memcmp(got[i], want, n[i]),
                      "evaluation %d: the resumed survival differs from an uninterrupted run's", i);
        ck_assert_msg(!strcmp(cal[i], wcal), "evaluation %d: calibration differs", i);
        free(want);
        free(wcal);
        free(got[i]);
        free(cal[i]);
    }
}
END_TEST

/* ----------------------------------------------------- memory pressure */

/* About 20 M weights (80 MB), with their gradients and momentum 240 MB. */
#define BIG_JOB                                                                               \
    "{\"kind\":\"train\",\"name\":\"big\",\"model\":\"fc4096 relu fc4096 relu fc10\","        \
    "\"epochs\":1,\"train_limit\":256,\"val_size\":0,\"val_robust_size\":0,\"batch\":64,"     \
    "\"steps\":1,\"seed\":5}"


/* The daemon (and so its workers) under a 160 MiB address-space limit:
 * the daemon needs a few MiB, a tiny job's worker some tens, a job with
 * about 20 M weights (BIG_JOB) more than the limit. */
START_TEST(test_memory_limit)
{
    if (adv_test_under_asan()) {
        printf("test_memory_limit: skipped under AddressSanitizer (it reserves terabytes of "
               "address space)\n");
        return;
    }
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)160 << 20;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    start_daemon_with(NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    int64_t big = submit(BIG_JOB);
    json_t *s = wait_final(big, 120);
    ck_assert_str_eq(str_of(s, "state"), "failed");
    HAS(str_of(s, "error"), "out of memory");
    printf("test_memory_limit: %s\n", str_of(s, "error"));
    json_decref(s);
    /* The daemon carries on, and a small job still runs. */
    expect_ping();
    expect_succeeded(submit(JOB_SPEC(1)), 120);
}
END_TEST

/* -------------------------------------------------- busy database lock */

#define LOCK_S 5
/* The daemon's SQLite busy timeout (daemon/main.c): no request waits
 * longer than this for the lock, plus MARGIN_S for a loaded machine. */
#define BUSY_BOUND_S 5
#define MARGIN_S 10
#define BUSY_EPOCHS 200

/* A child holding the write lock (BEGIN IMMEDIATE) for LOCK_S seconds;
 * returns its pid once the lock is held. */
static pid_t hold_write_lock(void)
{
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sqlite3 *db;
        char c = 1;
        if (sqlite3_open(D.db, &db) || sqlite3_busy_timeout(db, 10000) ||
            sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL))
            _exit(1);
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        sleep(LOCK_S);
        _exit(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) ? 1 : 0);
    }
    close(ready[1]);
    char c;
    ck_assert_msg(read(ready[0], &c, 1) == 1, "the lock holder could not lock the database");
    close(ready[0]);
    return pid;
}

/* A request's answer and how long it took. */
static json_t *timed(double *took, const char *fmt, const char *arg)
{
    double t0 = now_s();
    json_t *r = call(fmt, arg);
    *took = now_s() - t0;
    return r;
}

START_TEST(test_busy_database)
{
    start_daemon_with(NULL);
    int64_t job = submit(JOB_SPEC(BUSY_EPOCHS));
    wait_checkpoints(job, 1); /* it trains, writing metrics and checkpoints */
    pid_t holder = hold_write_lock();
    /* Every request is answered within the bound: a write waits for the
     * lock or fails with a clear error; a read may wait behind a write the
     * daemon is doing for the job (its loop waits with it). */
    double t_status, t_ping, t_submit;
    char req[128];
    snprintf(req, sizeof req, "{\"id\":1,\"cmd\":\"status\",\"job\":%lld}", (long long)job);
    json_decref(timed(&t_status, "%s", req));
    json_decref(timed(&t_ping, "%s", "{\"id\":1,\"cmd\":\"ping\"}"));
    json_t *r = timed(&t_submit, "{\"id\":1,\"cmd\":\"submit\",\"spec\":%s}", JOB_SPEC(1));
    int submitted = json_is_true(json_object_get(r, "ok"));
    int64_t second = submitted ? json_integer_value(json_object_get(ok_result(r), "job")) : 0;
    if (!submitted)
        HAS(error_of(r), "locked");
    printf("test_busy_database: under a %d s write lock: status %.2f s, ping %.2f s, submit "
           "%.2f s (%s)\n",
           LOCK_S, t_status, t_ping, t_submit, submitted ? "accepted" : error_of(r));
    json_decref(r);
    double worst = t_status > t_ping ? t_status : t_ping;
    worst = worst > t_submit ? worst : t_submit;
    ck_assert_msg(worst < BUSY_BOUND_S + MARGIN_S, "a request waited %.1f s", worst);
    int status;
    ck_assert_int_eq(waitpid(holder, &status, 0), holder);
    ck_assert_int_eq(status, 0);
    /* Nothing lost: the running job records every epoch and succeeds; an
     * accepted submit runs. */
    expect_succeeded(job, 180);
    ck_assert_int_eq(metric_rows(job, "train_loss"), BUSY_EPOCHS);
    if (second)
        expect_succeeded(second, 120);
    expect_ping();
}
END_TEST

/* ------------------------------------------------------------ disk full */

#define FULL_EPOCHS 300
/* The disk stays full this long after the cause is first named. */
#define FULL_S 3

/* D.dir/fs, an 8 MiB tmpfs of its own, holds the database and its
 * checkpoints (the socket and the log stay outside); 0 when it cannot be
 * mounted (not root, no CAP_SYS_ADMIN). The mount lives in a mount
 * namespace of the test's own, which the daemon it starts inherits: it
 * goes away with them even when a failed assertion ends the test before
 * its teardown. */
static int mount_small_fs(void)
{
    char fs[300];
    snprintf(fs, sizeof fs, "%s/fs", D.dir);
    ck_assert_int_eq(mkdir(fs, 0700), 0);
    if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mount("advd-test", fs, "tmpfs", 0, "size=8m,mode=0700")) {
        printf("test_disk_full: skipped: cannot mount a tmpfs on %s: %s (needs root)\n", fs,
               strerror(errno));
        return 0;
    }
    snprintf(D.db, sizeof D.db, "%s/fs/advd.db", D.dir);
    return 1;
}

/* Grow path until a write fails with ENOSPC: the file system is full
 * again after anything freed space (the daemon pruning a checkpoint). */
static void fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    ck_assert_int_ge(fd, 0);
    static char block[4096];
    while (write(fd, block, sizeof block) > 0)
        ;
    ck_assert_int_eq(errno, ENOSPC);
    close(fd);
}

static int names_full_disk(const char *s)
{
    return strstr(s, "No space left on device") || strstr(s, "database or disk is full");
}

static void expect_integrity(void)
{
    sqlite3 *db = db_open();
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

START_TEST(test_disk_full)
{
    if (!mount_small_fs())
        return;
    char filler[400];
    snprintf(filler, sizeof filler, "%s/fs/filler", D.dir);
    const char *opt[] = {"--retries", "100", NULL};
    start_daemon_with(opt);
    int64_t id = submit(JOB_SPEC(FULL_EPOCHS));
    wait_checkpoints(id, 2);
    /* The daemon keeps answering status; the job's error (or, when the
     * full database cannot take even that, the daemon's log) names the
     * cause. */
    double t0 = now_s();
    for (;;) {
        fill(filler);
        json_t *s = job_status(id);
        const char *where = names_full_disk(str_of(s, "error")) ? "status"
                            : names_full_disk(read_log())       ? "log"
                                                                : NULL;
        if (where)
            printf("test_disk_full: the cause in the %s; job %lld %s: %s\n", where,
                   (long long)id, str_of(s, "state"), str_of(s, "error"));
        json_decref(s);
        if (where)
            break;
        ck_assert_msg(now_s() - t0 < 60, "no error naming the full disk: %s", log_tail());
        usleep(50000);
    }
    for (t0 = now_s(); now_s() - t0 < FULL_S; usleep(50000)) {
        fill(filler);
        expect_ping();
        json_decref(job_status(id));
    }
    /* Space returns: the job resumes from its last good checkpoint and
     * records every epoch once. */
    ck_assert_int_eq(unlink(filler), 0);
    expect_succeeded(id, 180);
    ck_assert_int_eq(metric_rows(id, "train_loss"), FULL_EPOCHS);
    expect_ping();
    stop_daemon(SIGTERM);
    expect_integrity();
}
END_TEST

/* --------------------------------------------------- corrupt checkpoint */

#define CORRUPT_EPOCHS 100

/* Flip one byte in the middle of path, keeping its size. */
static void corrupt(const char *path)
{
    int fd = open(path, O_RDWR);
    ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    ck_assert_int_eq(fstat(fd, &sb), 0);
    unsigned char c;
    ck_assert_int_eq(pread(fd, &c, 1, sb.st_size / 2), 1);
    c ^= 0xff;
    ck_assert_int_eq(pwrite(fd, &c, 1, sb.st_size / 2), 1);
    close(fd);
}

/* The daemon dies mid-training, the newest checkpoint file is damaged
 * while it is down; restarted, it resumes the job from the one before,
 * with a warning in status, and the job succeeds. */
START_TEST(test_corrupt_checkpoint)
{
    start_daemon_with(NULL);
    int64_t id = submit(JOB_SPEC(CORRUPT_EPOCHS));
    wait_checkpoints(id, 2);
    stop_daemon(SIGKILL);
    char path[700];
    ck_assert_msg(newest_ckpt_file(id, path, sizeof path),
                  "job %lld's newest checkpoint has no file (a database before schema 4)",
                  (long long)id);
    corrupt(path);
    start_daemon_with(NULL);
    expect_succeeded(id, 180);
    json_t *s = job_status(id);
    printf("test_corrupt_checkpoint: warning: %s\n", str_of(s, "warning"));
    HAS(str_of(s, "warning"), "checkpoint");
    json_decref(s);
    ck_assert_int_eq(metric_rows(id, "train_loss"), CORRUPT_EPOCHS);
    expect_ping();
}
END_TEST

/* ------------------------------------------------------------- fixture */

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(path);
}

/* Stop the daemon, unmount the disk-full test's file system if mounted,
 * remove the test's folder. */
static void teardown_all(void)
{
    char fs[300];
    teardown();
    snprintf(fs, sizeof fs, "%s/fs", D.dir);
    umount2(fs, MNT_DETACH); /* not mounted: nothing to do */
    nftw(D.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* One case per fault (CK_RUN_CASE=worker, memory, busy, disk or corrupt
 * runs one). */
static void add_case(Suite *s, const char *name, const TTest *t, int loops)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown_all);
    tcase_add_loop_test(tc, t, 0, loops);
    suite_add_tcase(s, tc);
}

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    add_case(s, "worker", test_worker_killed, 2 * NPHASES);
    add_case(s, "evaluation", test_evaluation_resumes, 1);
    add_case(s, "memory", test_memory_limit, 1);
    add_case(s, "busy", test_busy_database, 1);
    add_case(s, "disk", test_disk_full, 1);
    add_case(s, "corrupt", test_corrupt_checkpoint, 1);
    return s;
}

ADV_TEST_MAIN(faults_suite)
