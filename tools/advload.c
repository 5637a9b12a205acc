/*
 * advload - advd's event loop under load (issue 19), in one run against a
 * real daemon:
 *
 *   advload [--socket PATH | --advd PATH] [--rounds N] [--pings N]
 *           [--submits N] [--seconds S]
 *
 * Without --socket it starts its own advd (--advd, default: advd beside
 * this program) in the foreground on a socket and database in a fresh
 * temporary directory, with default settings, and stops it at the end.
 *
 * It prints
 *   - pings/s on one pipelined connection (--pings requests written as fast
 *     as the socket takes them, answers read as they come);
 *   - submits/s of the default spec ({"kind":"train"}), each cancelled as
 *     soon as its answer names the job (no training), a window of 64 in
 *     flight on one connection (--submits of them);
 *   - the p50, p99 and largest latency of an innocent client's ping (one at
 *     a time, a millisecond apart, for --seconds) with no load, and while
 *     each of these runs: 1000 idle connections; 100 slow-line connections
 *     (each sends a byte of a request every 100 ms); bursts of 500 submits
 *     (100 pipelined on each of 5 connections, then their cancels); a client
 *     that writes requests and never reads the answers.
 * Each figure is the median over --rounds runs (the largest latency: the
 * largest of all), next to the targets: p99 under 5 ms, at least
 * 20 000 pings/s and 500 submits/s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 15
#define IDLE_CONNS 1000
#define SLOW_CONNS 100
#define BURST_CONNS 5
#define BURST_EACH 100
#define WINDOW 64
#define SUBMIT "{\"id\":%d,\"cmd\":\"submit\",\"spec\":{\"kind\":\"train\"}}\n"
#define PING "{\"id\":1,\"cmd\":\"ping\"}\n"

static char sock_path[108];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "advload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

/* ---------------------------------------------------------- connections */

static int dial(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A connection with its greeting read (blocking reads of whole lines). */
typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
} line_conn;

/* The next line (NUL-terminated, without "\n") into out; -1 at EOF. */
static int read_line(line_conn *c, char *out, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            snprintf(out, cap, "%.*s", (int)n, c->buf);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return 0;
        }
        if (c->len == sizeof c->buf)
            c->len = 0; /* a line longer than we care about */
        ssize_t k = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (k <= 0)
            return -1;
        c->len += (size_t)k;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static line_conn *open_greeted(void)
{
    line_conn *c = calloc(1, sizeof *c);
    char line[4096];
    if (!c || (c->fd = dial()) < 0 || read_line(c, line, sizeof line) ||
        !strstr(line, "\"hello\""))
        die("cannot connect to advd at '%s' (or it refused us)", sock_path);
    return c;
}

static void close_conn(line_conn *c)
{
    close(c->fd);
    free(c);
}

/* The answer to one request, events skipped. */
static int call(line_conn *c, const char *req, char *out, size_t cap)
{
    if (write_all(c->fd, req, strlen(req)))
        return -1;
    do {
        if (read_line(c, out, cap))
            return -1;
    } while (!strstr(out, "\"ok\":"));
    return 0;
}

static long long job_of(const char *answer)
{
    const char *p = strstr(answer, "\"job\":");
    return p ? atoll(p + 6) : -1;
}

/* ------------------------------------------------------------ throughput */

/* N pipelined pings on one connection; answers per second. */
static double pipelined_pings(int n)
{
    line_conn *c = open_greeted();
    size_t plen = strlen(PING), total = plen * (size_t)n, sent = 0;
    char *out = malloc(total), in[1 << 16];
    for (int i = 0; i < n; i++)
        memcpy(out + plen * (size_t)i, PING, plen);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    int got = 0;
    double t0 = now_s();
    while (got < n) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN | (sent < total ? POLLOUT : 0)};
        if (poll(&p, 1, 10000) <= 0)
            die("%s", "advd stopped answering pipelined pings");
        if ((p.revents & POLLOUT) && sent < total) {
            ssize_t k = write(c->fd, out + sent, total - sent);
            if (k > 0)
                sent += (size_t)k;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t k = read(c->fd, in, sizeof in);
            if (k <= 0)
                die("%s", "advd closed the pipelined connection");
            for (ssize_t i = 0; i < k; i++)
                got += in[i] == '\n';
        }
    }
    double rate = n / (now_s() - t0);
    free(out);
    close_conn(c);
    return rate;
}

static long long id_of(const char *answer)
{
    const char *p = strstr(answer, "\"id\":");
    return p ? atoll(p + 5) : 0;
}

/* Submit, and cancel each job as soon as its number comes back (the
 * cancel's id is minus the job's); WINDOW submits in flight. Submits per
 * second, counted when their cancel is answered. */
static double submits_cancelled(int n)
{
    line_conn *c = open_greeted();
    char req[256], line[4096];
    int sent = 0, inflight = 0, done = 0;
    double t0 = now_s();
    while (done < n) {
        while (sent < n && inflight < WINDOW) {
            snprintf(req, sizeof req, SUBMIT, ++sent);
            if (write_all(c->fd, req, strlen(req)))
                die("%s", "advd closed the submitting connection");
            inflight++;
        }
        if (read_line(c, line, sizeof line))
            die("%s", "advd closed the submitting connection");
        if (!strstr(line, "\"ok\":"))
            continue; /* an event */
        if (strstr(line, "\"ok\":false"))
            die("a submit or cancel failed: %s", line);
        if (id_of(line) < 0) {
            inflight--;
            done++;
            continue;
        }
        long long job = job_of(line);
        snprintf(req, sizeof req, "{\"id\":-%lld,\"cmd\":\"cancel\",\"job\":%lld}\n", job,
                 job);
        if (write_all(c->fd, req, strlen(req)))
            die("%s", "advd closed the submitting connection");
    }
    double rate = n / (now_s() - t0);
    close_conn(c);
    return rate;
}

/* --------------------------------------------------------------- loads */

typedef struct {
    atomic_int running;
    int fds[IDLE_CONNS];
    int n;
} load;

static void open_raw(load *l, int n)
{
    for (l->n = 0; l->n < n; l->n++)
        if ((l->fds[l->n] = dial()) < 0)
            die("cannot open connection %s (open-file limit?)", "for the load");
}

static void close_raw(load *l)
{
    for (int i = 0; i < l->n; i++)
        close(l->fds[i]);
    l->n = 0;
}

static void *slow_lines(void *arg)
{
    load *l = arg;
    static const char req[] = PING;
    for (size_t b = 0; atomic_load(&l->running); b = (b + 1) % (sizeof req - 1)) {
        for (int i = 0; i < l->n; i++)
            if (write(l->fds[i], req + b, 1) < 0)
                break;
        usleep(100000);
    }
    return NULL;
}

static void *never_reads(void *arg)
{
    load *l = arg;
    fcntl(l->fds[0], F_SETFL, fcntl(l->fds[0], F_GETFL) | O_NONBLOCK);
    char chunk[4096];
    size_t plen = strlen(PING);
    for (size_t i = 0; i + plen <= sizeof chunk; i += plen)
        memcpy(chunk + i, PING, plen);
    size_t len = sizeof chunk / plen * plen;
    while (atomic_load(&l->running)) {
        struct pollfd p = {.fd = l->fds[0], .events = POLLOUT};
        if (poll(&p, 1, 20) == 1 && write(l->fds[0], chunk, len) < 0 && errno != EAGAIN)
            break;
    }
    return NULL;
}

/* Bursts of 100 pipelined submits on each of 5 connections, then the
 * cancels of all those jobs, again and again. */
static void *submit_bursts(void *arg)
{
    load *l = arg;
    line_conn *c[BURST_CONNS];
    static char req[BURST_EACH * 128];
    char line[4096];
    long long jobs[BURST_CONNS][BURST_EACH];
    for (int i = 0; i < BURST_CONNS; i++)
        c[i] = open_greeted();
    while (atomic_load(&l->running)) {
        for (int i = 0; i < BURST_CONNS; i++) {
            size_t n = 0;
            for (int k = 0; k < BURST_EACH; k++)
                n += (size_t)sprintf(req + n, SUBMIT, k + 1);
            write_all(c[i]->fd, req, n);
        }
        for (int i = 0; i < BURST_CONNS; i++)
            for (int k = 0; k < BURST_EACH; k++) {
                do
                    if (read_line(c[i], line, sizeof line))
                        die("%s", "advd closed a burst connection");
                while (!strstr(line, "\"ok\":"));
                jobs[i][k] = job_of(line);
            }
        for (int i = 0; i < BURST_CONNS; i++) {
            size_t n = 0;
            for (int k = 0; k < BURST_EACH; k++)
                n += (size_t)sprintf(req + n, "{\"id\":1,\"cmd\":\"cancel\",\"job\":%lld}\n",
                                     jobs[i][k]);
            write_all(c[i]->fd, req, n);
        }
        for (int i = 0; i < BURST_CONNS; i++)
            for (int k = 0; k < BURST_EACH; k++)
                do
                    if (read_line(c[i], line, sizeof line))
                        die("%s", "advd closed a burst connection");
                while (!strstr(line, "\"ok\":"));
    }
    for (int i = 0; i < BURST_CONNS; i++)
        close_conn(c[i]);
    return NULL;
}

/* ---------------------------------------------------- the innocent client */

typedef struct {
    double p50, p99, max;
} latency;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Pings one at a time, a millisecond apart, for `seconds`; milliseconds. */
static latency innocent_pings(double seconds)
{
    line_conn *c = open_greeted();
    size_t cap = 1 << 16, n = 0;
    double *ms = malloc(sizeof *ms * cap);
    char line[4096];
    double end = now_s() + seconds;
    while (now_s() < end && n < cap) {
        double t0 = now_s();
        if (call(c, PING, line, sizeof line))
            die("%s", "advd closed the innocent client's connection");
        ms[n++] = (now_s() - t0) * 1e3;
        usleep(1000);
    }
    qsort(ms, n, sizeof *ms, cmp_double);
    latency r = {ms[n / 2], ms[(size_t)(n * 0.99)], ms[n - 1]};
    free(ms);
    close_conn(c);
    return r;
}

enum { SC_NONE, SC_IDLE, SC_SLOW, SC_BURST, SC_DEAF, NSCEN };
static const char *const scen_name[NSCEN] = {
    "no load", "1000 idle connections", "100 slow-line connections",
    "500-submit bursts (5 connections)", "a client that never reads"};

static latency scenario(int which, double seconds)
{
    static load l;
    pthread_t t;
    void *(*fn)(void *) = NULL;
    atomic_store(&l.running, 1);
    if (which == SC_IDLE)
        open_raw(&l, IDLE_CONNS);
    if (which == SC_SLOW)
        open_raw(&l, SLOW_CONNS), fn = slow_lines;
    if (which == SC_DEAF)
        open_raw(&l, 1), fn = never_reads;
    if (which == SC_BURST)
        fn = submit_bursts;
    if (fn && pthread_create(&t, NULL, fn, &l))
        die("%s", "cannot start a thread");
    usleep(200000); /* the load is under way */
    latency r = innocent_pings(seconds);
    atomic_store(&l.running, 0);
    if (fn)
        pthread_join(t, NULL);
    close_raw(&l);
    usleep(100000); /* the daemon closes them before the next */
    return r;
}

/* ------------------------------------------------------------ the daemon */

static pid_t start_advd(const char *advd, char *dir)
{
    char db[200], log[200];
    snprintf(dir, 64, "%s/advload-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        die("cannot create a temporary folder: %s", strerror(errno));
    snprintf(sock_path, sizeof sock_path, "%s/advd.sock", dir);
    snprintf(db, sizeof db, "%s/advd.db", dir);
    snprintf(log, sizeof log, "%s/advd.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(advd, advd, "--foreground", "--socket", sock_path, "--db", db, "--threads", "1",
              (char *)NULL);
        _exit(127);
    }
    for (double t0 = now_s(); now_s() - t0 < 10; usleep(20000)) {
        int fd = dial(), status;
        if (fd >= 0)
            return close(fd), pid;
        if (waitpid(pid, &status, WNOHANG) == pid)
            die("advd exited at start; see '%s'", log);
    }
    die("advd did not listen on '%s' within 10 s", sock_path);
    return -1;
}

static void stop_advd(pid_t pid, const char *dir)
{
    int status;
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "advload: cannot remove '%s'\n", dir);
}

/* advd beside this program. */
static void default_advd(char *out, size_t len)
{
    char self[PATH_MAX - 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        slash[1] = '\0';
    snprintf(out, len, "%sadvd", slash ? self : "./");
}

/* ------------------------------------------------------------------ main */

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void usage(void)
{
    fprintf(stderr, "usage: advload [--socket PATH | --advd PATH] [--rounds N] [--pings N]\n"
                    "               [--submits N] [--seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    char advd[PATH_MAX] = "", dir[64] = "";
    int rounds = 3, pings = 100000, submits = 1000;
    double seconds = 1.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--socket"))
            snprintf(sock_path, sizeof sock_path, "%s", v);
        else if (!strcmp(a, "--advd"))
            snprintf(advd, sizeof advd, "%s", v);
        else if (!strcmp(a, "--rounds") && (rounds = atoi(v)) >= 1 && rounds <= MAX_ROUNDS)
            continue;
        else if (!strcmp(a, "--pings") && (pings = atoi(v)) >= 1)
            continue;
        else if (!strcmp(a, "--submits") && (submits = atoi(v)) >= 1)
            continue;
        else if (!strcmp(a, "--seconds") && (seconds = atof(v)) > 0)
            continue;
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pid_t pid = -1;
    if (!sock_path[0]) {
        if (!advd[0])
            default_advd(advd, sizeof advd);
        pid = start_advd(advd, dir);
    }
    double ping_rate[MAX_ROUNDS], submit_rate[MAX_ROUNDS], p50[NSCEN][MAX_ROUNDS],
        p99[NSCEN][MAX_ROUNDS], worst[NSCEN] = {0};
    for (int r = 0; r < rounds; r++) {
        ping_rate[r] = pipelined_pings(pings);
        submit_rate[r] = submits_cancelled(submits);
        for (int s = 0; s < NSCEN; s++) {
            latency l = scenario(s, seconds);
            p50[s][r] = l.p50;
            p99[s][r] = l.p99;
            worst[s] = l.max > worst[s] ? l.max : worst[s];
        }
        fprintf(stderr, "advload: round %d of %d done\n", r + 1, rounds);
    }
    printf("advd on '%s', median of %d round%s\n", sock_path, rounds, rounds == 1 ? "" : "s");
    double pr = median(ping_rate, rounds), sr = median(submit_rate, rounds);
    printf("  %-40s %9.0f /s   %s (target >= 20000)\n", "pings, one pipelined connection", pr,
           pr >= 20000 ? "ok" : "MISSED");
    printf("  %-40s %9.0f /s   %s (target >= 500)\n", "submits, each cancelled at once", sr,
           sr >= 500 ? "ok" : "MISSED");
    printf("  innocent ping latency (ms)                 p50      p99      max\n");
    for (int s = 0; s < NSCEN; s++) {
        double m99 = median(p99[s], rounds);
        printf("  %-40s %7.3f  %7.3f  %7.3f   %s\n", scen_name[s], median(p50[s], rounds), m99,
               worst[s], m99 < 5.0 ? "ok" : "MISSED (target p99 < 5)");
    }
    if (pid > 0)
        stop_advd(pid, dir);
    return 0;
}
