/*
 * daemon_harness.h - a real bin/advd for the integration tests
 * (test_daemon.c, test_advctl.c, test_loop.c, ...): started on a socket
 * and database in a fresh temporary directory (ADV_BIN, set by `make
 * check`, names the binary), ready once its log says it listens, killed at
 * teardown.
 *
 * The daemon runs with PR_SET_PDEATHSIG, so a failing test (a forked Check
 * child) never leaves one behind; its workers follow it. One daemon per
 * test program at a time: the state lives in D. Raw connections
 * (harness_connect, harness_next), the open-file limit and a process's
 * resident memory are here for the tests that hold many connections.
 */
#ifndef ADV_DAEMON_HARNESS_H
#define ADV_DAEMON_HARNESS_H

#include "proto/proto.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
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

/* ------------------------------------------------- raw connections */

/* A connection to the daemon's socket (no greeting read), or -1 with errno. */
static inline int harness_connect(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, sock);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    errno = e;
    return -1;
}

/* The next line on fd, parsed (lb keeps what follows it); NULL at EOF or
 * after timeout_ms. */
static inline json_t *harness_next(int fd, adv_linebuf *lb, int timeout_ms)
{
    const char *line;
    size_t len;
    adv_error e;
    double t0 = now_s();
    for (;;) {
        if (adv_linebuf_next(lb, &line, &len, &e) == 1)
            return json_loadb(line, len, 0, NULL);
        int left = timeout_ms - (int)((now_s() - t0) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char buf[65536];
        ssize_t n;
        if (left <= 0 || poll(&p, 1, left) <= 0 || (n = read(fd, buf, sizeof buf)) <= 0 ||
            adv_linebuf_feed(lb, buf, (size_t)n, &e))
            return NULL;
    }
}

/* Every connection is a file descriptor: tests holding a thousand need
 * the soft limit raised. */
static inline void harness_raise_nofile(rlim_t want)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ck_assert_msg(rl.rlim_cur >= want, "the open-file limit (%llu) is below %llu",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

/* /proc/PID/NAME (stat, environ, cmdline...) into buf, NUL-terminated;
 * the bytes read (0: no such process, or unreadable). */
static inline size_t harness_proc_file(pid_t pid, const char *name, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return n;
}

/* A process's resident memory in KiB (VmRSS), 0 when unknown. */
static inline long harness_rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

#endif
