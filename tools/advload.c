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
 *
 *   advload --mix N [--idle M] [--seconds S] [--socket PATH | --advd PATH]
 *
 * instead runs issue 16's load: a training job (MIX_TRAIN) keeps the
 * daemon's worker busy while N clients at once, for S seconds, each loop
 * over: connect, submit a job, poll its status and ping MIX_POLLS times,
 * cancel it, watch the training job and hang up abruptly after its first
 * event; meanwhile M idle connections (at most 1000), opened first, are
 * held. It prints requests/s, the p50/p99/max latency of status and ping,
 * connections, refusals (a connection the daemon turned away) and other
 * errors, how many idle connections the daemon dropped, and (its own
 * daemon only) advd's resident memory before, at most during (sampled
 * every 100 ms) and after.
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
#define MIX_TRAIN                                                                            \
    "{\"id\":1,\"cmd\":\"submit\",\"spec\":{\"kind\":\"train\",\"name\":\"mix\","                \
    "\"model\":\"conv4k3p1 relu maxpool2 fc10\",\"epochs\":100000,\"train_limit\":256,"       \
    "\"val_size\":0,\"val_robust_size\":0,\"batch\":64,\"steps\":2}}\n"
#define MIX_POLLS 10
#define MIX_SAMPLES 16384

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

/* -------------------------------------------------------- the mix (issue 16) */

typedef struct {
    double until;
    long long train_job;
    long long requests, conns, refused, errors;
    size_t nstatus, nping;
    double status_ms[MIX_SAMPLES], ping_ms[MIX_SAMPLES];
} mix_client;

/* One request, its latency into ms[*n] (while room); -1 when the
 * connection broke, 1 when the answer is an error. */
static int timed_call(line_conn *c, const char *req, double *ms, size_t *n, char *out,
                      size_t cap)
{
    double t0 = now_s();
    if (call(c, req, out, cap))
        return -1;
    if (ms && *n < MIX_SAMPLES)
        ms[(*n)++] = (now_s() - t0) * 1e3;
    return strstr(out, "\"ok\":false") ? 1 : 0;
}

/* One round of a client's loop; -1 when the daemon hung up on it. */
static int mix_round(mix_client *m)
{
    line_conn *c = calloc(1, sizeof *c);
    char req[256], line[1 << 16];
    int rc = -1;
    if (!c || (c->fd = dial()) < 0 || read_line(c, line, sizeof line) ||
        !strstr(line, "\"hello\"")) {
        m->refused++;
        goto out;
    }
    m->conns++;
    snprintf(req, sizeof req, SUBMIT, 1);
    int r = timed_call(c, req, NULL, NULL, line, sizeof line);
    long long job = r == 0 ? job_of(line) : -1;
    m->requests++;
    m->errors += r != 0;
    for (int i = 0; r >= 0 && i < MIX_POLLS && job > 0; i++) {
        snprintf(req, sizeof req, "{\"id\":2,\"cmd\":\"status\",\"job\":%lld}\n", job);
        int a = timed_call(c, req, m->status_ms, &m->nstatus, line, sizeof line);
        int b = a < 0 ? -1 : timed_call(c, PING, m->ping_ms, &m->nping, line, sizeof line);
        m->requests += 2;
        m->errors += (a != 0) + (b != 0);
        r = a < 0 || b < 0 ? -1 : 0;
    }
    if (r >= 0 && job > 0) {
        snprintf(req, sizeof req, "{\"id\":3,\"cmd\":\"cancel\",\"job\":%lld}\n", job);
        r = timed_call(c, req, NULL, NULL, line, sizeof line);
        m->requests++;
        m->errors += r != 0;
    }
    /* Watch, take the first event or answer, and hang up with the rest
     * unread. */
    snprintf(req, sizeof req, "{\"id\":4,\"cmd\":\"watch\",\"job\":%lld}\n", m->train_job);
    if (r >= 0 && write_all(c->fd, req, strlen(req)) == 0 && read_line(c, line, sizeof line) == 0)
        rc = 0, m->requests++;
out:
    if (c && c->fd >= 0)
        close(c->fd);
    free(c);
    return rc;
}

static void *mix_thread(void *arg)
{
    mix_client *m = arg;
    while (now_s() < m->until)
        if (mix_round(m))
            m->errors++, usleep(10000); /* a refused connection counts here too */
    return NULL;
}

/* Idle connections the daemon has closed or answered with an error (a
 * held one has sent its greeting only). */
static int dropped(const load *l)
{
    int n = 0;
    for (int i = 0; i < l->n; i++) {
        char buf[4096];
        ssize_t k;
        int gone = 0;
        fcntl(l->fds[i], F_SETFL, fcntl(l->fds[i], F_GETFL) | O_NONBLOCK);
        while ((k = read(l->fds[i], buf, sizeof buf - 1)) > 0) {
            buf[k] = '\0';
            gone |= strstr(buf, "\"ok\":false") != NULL;
        }
        n += gone || k == 0 || errno != EAGAIN;
    }
    return n;
}

/* Resident memory of pid in KiB (VmRSS), 0 when unknown. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static void print_latency(const char *what, double *ms, size_t n)
{
    qsort(ms, n, sizeof *ms, cmp_double);
    if (n)
        printf("  %-8s %8zu samples   p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms\n", what, n,
               ms[n / 2], ms[(size_t)((double)n * 0.99)], ms[n - 1]);
}

/* Merge every client's samples of one kind into all (room for n * MIX_SAMPLES). */
static size_t gather(mix_client *m, int n, int status, double *all)
{
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        size_t c = status ? m[i].nstatus : m[i].nping;
        memcpy(all + k, status ? m[i].status_ms : m[i].ping_ms, sizeof *all * c);
        k += c;
    }
    return k;
}

static void run_mix(int n, int idle, double seconds, pid_t pid)
{
    static load held;
    line_conn *c = open_greeted();
    char line[4096];
    if (call(c, MIX_TRAIN, line, sizeof line) || job_of(line) <= 0)
        die("cannot submit the training job: %s", line);
    long long train = job_of(line);
    close_conn(c);
    sleep(2); /* its worker is training */
    long rss0 = rss_kib(pid);
    open_raw(&held, idle);
    mix_client *m = calloc((size_t)n, sizeof *m);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    double *all = malloc(sizeof *all * MIX_SAMPLES * (size_t)n);
    if (!m || !t || !all)
        die("%s", "out of memory");
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        m[i].until = t0 + seconds;
        m[i].train_job = train;
        if (pthread_create(&t[i], NULL, mix_thread, &m[i]))
            die("%s", "cannot start a client thread");
    }
    long peak = rss0; /* sampled every 100 ms while the clients run */
    while (now_s() < t0 + seconds) {
        long r = rss_kib(pid);
        peak = r > peak ? r : peak;
        usleep(100000);
    }
    long long req = 0, conns = 0, refused = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        req += m[i].requests, conns += m[i].conns, refused += m[i].refused;
        errors += m[i].errors;
    }
    double took = now_s() - t0;
    int lost = dropped(&held);
    close_raw(&held);
    sleep(1); /* the daemon closes the last connections */
    long rss1 = rss_kib(pid);
    printf("advd on '%s', training job %lld running; %d clients for %.0f s, %d idle "
           "connections held\n",
           sock_path, train, n, seconds, idle);
    printf("  %lld requests, %.0f /s; %lld connections, %.0f /s; %lld refused; %lld other "
           "errors\n",
           req, (double)req / took, conns, (double)conns / took, refused, errors - refused);
    printf("  idle connections dropped by the daemon: %d of %d\n", lost, idle);
    print_latency("status", all, gather(m, n, 1, all));
    print_latency("ping", all, gather(m, n, 0, all));
    if (pid > 0)
        printf("  advd resident memory: %ld KiB before, %ld KiB at most during, %ld KiB after "
               "(%+ld KiB)\n",
               rss0, peak, rss1, rss1 - rss0);
    free(all);
    free(t);
    free(m);
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
                    "               [--submits N] [--seconds S]\n"
                    "       advload --mix N [--idle M] [--seconds S] [--socket PATH | --advd "
                    "PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    char advd[PATH_MAX] = "", dir[64] = "";
    int rounds = 3, pings = 100000, submits = 1000, mix = 0, idle = 0;
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
        else if (!strcmp(a, "--mix") && (mix = atoi(v)) >= 1 && mix <= 10000)
            continue;
        else if (!strcmp(a, "--idle") && (idle = atoi(v)) >= 0 && idle <= IDLE_CONNS)
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
    if (mix) {
        run_mix(mix, idle, seconds, pid);
        if (pid > 0)
            stop_advd(pid, dir);
        return 0;
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
