/*
 * daemon_harness.h - a real bin/advd for the integration tests
 * (test_daemon.c, test_advctl.c): started on a socket and database in a
 * fresh temporary directory (ADV_BIN, set by `make check`, names the
 * binary), ready once its log says it listens, killed at teardown.
 *
 * The daemon runs with PR_SET_PDEATHSIG, so a failing test (a forked Check
 * child) never leaves one behind; its workers follow it. One daemon per
 * test program at a time: the state lives in D.
 */
#ifndef ADV_DAEMON_HARNESS_H
#define ADV_DAEMON_HARNESS_H

#include "proto/proto.h"
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

typedef struct {
    char dir[256], sock[300], db[300], log[300];
    pid_t pid;
} daemon_t;

static daemon_t D;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *advd_bin(void)
{
    const char *b = getenv("ADV_BIN");
    return b && *b ? b : "bin/advd";
}

/* Start bin/advd with extra options (NULL-terminated); returns its pid
 * without waiting when wait_ready is 0. */
static pid_t spawn_daemon(const char *sock, const char *db, const char *log, const char **extra)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        const char *argv[32] = {advd_bin(), "--foreground", "--socket", sock, "--db", db,
                                "--threads", "1", "--final-eval-limit", "100", "--grace", "5"};
        int n = 12;
        for (int i = 0; extra && extra[i] && n < 30; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    return pid;
}

static char *read_log(void)
{
    static char buf[1 << 16];
    FILE *f = fopen(D.log, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Ready once it logs that it listens (a probe connection would count
 * against --max-clients until the daemon saw it close). */
static void wait_ready(void)
{
    char needle[64];
    snprintf(needle, sizeof needle, "advd[%d]: advd %s listening on", (int)D.pid, ADV_VERSION);
    double t0 = now_s();
    while (!strstr(read_log(), needle)) {
        int status;
        ck_assert_msg(waitpid(D.pid, &status, WNOHANG) == 0, "advd exited at startup: %s",
                      read_log());
        ck_assert_msg(now_s() - t0 < 10, "advd did not listen within 10 s");
        usleep(5000);
    }
}

static void start_daemon_with(const char **extra)
{
    D.pid = spawn_daemon(D.sock, D.db, D.log, extra);
    wait_ready();
}

static void setup(void)
{
    memset(&D, 0, sizeof D);
    adv_test_tmpdir(D.dir, sizeof D.dir);
    snprintf(D.sock, sizeof D.sock, "%s/advd.sock", D.dir);
    snprintf(D.db, sizeof D.db, "%s/advd.db", D.dir);
    snprintf(D.log, sizeof D.log, "%s/advd.log", D.dir);
}

/* Signal the daemon and wait for it; returns its wait status. */
static int stop_daemon(int sig)
{
    int status = 0;
    if (D.pid <= 0)
        return 0;
    kill(D.pid, sig);
    double t0 = now_s();
    while (waitpid(D.pid, &status, WNOHANG) == 0) {
        ck_assert_msg(now_s() - t0 < 20, "advd did not exit within 20 s of signal %d", sig);
        usleep(10000);
    }
    D.pid = 0;
    return status;
}

static void teardown(void)
{
    if (D.pid > 0)
        stop_daemon(SIGKILL);
}

#endif
