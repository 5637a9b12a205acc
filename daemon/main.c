/*
 * main.c - advd, the adversarial-training daemon: options, configuration
 * file, single-instance lock, logging, signals and the event loop's life.
 *
 *   advd [--config FILE] [--key VALUE ...]   (the settings: options.c, advd --help)
 *   advd --worker        (internal: one job's process, see worker.c)
 *
 * The configuration file holds the same settings as "key = value" lines
 * (see etc/advd.conf); the command line wins over it. Without --foreground the daemon detaches once
 * it listens and logs to advd.log next to the database.
 *
 * SIGTERM / SIGINT: stop accepting, ask workers to checkpoint and exit,
 * requeue their jobs, close the database, remove the socket, exit 0. A
 * second signal kills the workers at once (their jobs are still requeued).
 */
#include "advd.h"
#include "daemon/score.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- logging */

void advd_log(advd *d, const char *fmt, ...)
{
    FILE *f = d->log ? d->log : stderr;
    char when[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
    fprintf(f, "%s advd[%d]: ", when, (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

void advd_job_event(advd *d, int64_t job, adv_job_state state, const char *error)
{
    if (error)
        advd_log(d, "job %lld %s: %s", (long long)job, adv_job_state_name(state), error);
    else
        advd_log(d, "job %lld %s", (long long)job, adv_job_state_name(state));
    advd_notify(d, job, adv_proto_event_state(job, state, error));
}

/* ------------------------------------------------------------- options */

static int load_config(advd_options *o, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    int rc = advd_options_read(o, f, path, err);
    fclose(f);
    return rc;
}

static void default_paths(advd_options *o)
{
    const char *run = getenv("XDG_RUNTIME_DIR"), *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (run && *run && strlen(run) + 10 < sizeof o->socket_path)
        snprintf(o->socket_path, sizeof o->socket_path, "%s/advd.sock", run);
    else
        snprintf(o->socket_path, sizeof o->socket_path, "/tmp/advd-%u.sock", (unsigned)getuid());
    if (state && *state)
        snprintf(o->db_path, sizeof o->db_path, "%s/advd/advd.db", state);
    else
        snprintf(o->db_path, sizeof o->db_path, "%s/.local/state/advd/advd.db",
                 home && *home ? home : "/tmp");
}

/* "--max-clients" -> "max_clients". */
static void option_key(const char *arg, char *key, size_t len)
{
    snprintf(key, len, "%s", arg + 2);
    char *eq = strchr(key, '=');
    if (eq)
        *eq = '\0';
    for (char *p = key; *p; p++)
        if (*p == '-')
            *p = '_';
}

/* Returns 0, 1 when the program should exit 0 (help, version), -1. */
static int parse_args(int argc, char **argv, advd_options *o, char *err)
{
    advd_options_defaults(o);
    default_paths(o);
    /* The configuration file first: the command line wins. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc && load_config(o, argv[i + 1], err))
            return -1;
        if (!strncmp(argv[i], "--config=", 9) && load_config(o, argv[i] + 9, err))
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char key[64];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return advd_options_usage(stdout), 1;
        if (!strcmp(a, "--version"))
            return printf("advd %s (protocol %d)\n", ADV_VERSION, ADV_PROTOCOL), 1;
        if (strncmp(a, "--", 2) != 0)
            return core_errf(err, "unexpected argument '%.60s'", a);
        option_key(a, key, sizeof key);
        const char *eq = strchr(a, '=');
        int arity = strcmp(key, "config") ? advd_option_arity(key) : 1;
        if (arity < 0)
            return core_errf(err, "unknown option '%.60s'", a);
        if (!eq && arity == 0) {
            advd_option_set(o, key, "true", err);
            continue;
        }
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return core_errf(err, "option '%.60s' needs a value", a);
        if (!strcmp(key, "config"))
            continue;
        if (advd_option_set(o, key, v, err))
            return -1;
    }
    if (o->max_job_memory == 0) /* automatic: half the machine's memory */
        o->max_job_memory = (int64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE) / 2;
    return 0;
}

/* ------------------------------------------------ files and single instance */

static int mkdir_p(const char *dir, char *err)
{
    char p[CORE_PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) && errno != EEXIST)
            return core_errf(err, "cannot create '%s': %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0700) && errno != EEXIST)
        return core_errf(err, "cannot create '%s': %s", p, strerror(errno));
    return 0;
}

static int make_db_dir(const char *db, char *err)
{
    char dir[CORE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", db);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    return mkdir_p(dir, err);
}

/* An flock on DB.lock, held for the daemon's life. */
static int take_lock(advd *d, char *err)
{
    char path[CORE_PATH_JOIN];
    snprintf(path, sizeof path, "%s.lock", d->opt.db_path);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    int e = errno;
    close(d->lock_fd);
    d->lock_fd = -1;
    if (e == EWOULDBLOCK)
        return core_errf(err, "another advd is using the database '%s' (lock '%s' is held)",
                         d->opt.db_path, path);
    return core_errf(err, "cannot lock '%s': %s", path, strerror(e));
}

/* Without --foreground: fork, and let the parent exit once the child
 * listens (0) or failed (1). Returns the write end the child reports on. */
static int detach(void)
{
    int fds[2];
    if (pipe(fds))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(fds[1]);
        char c = 1;
        ssize_t n = read(fds[0], &c, 1);
        _exit(n == 1 && c == 0 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    return fds[1];
}

static int open_log(advd *d, char *err)
{
    if (d->opt.foreground)
        return 0;
    char path[CORE_PATH_JOIN];
    snprintf(path, sizeof path, "%s", d->opt.db_path);
    char *slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0),
             "advd.log");
    d->log = fopen(path, "a");
    if (!d->log)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    dup2(fileno(d->log), 2);
    return 0;
}

/* -------------------------------------------------------------- signals */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void advd_maybe_exit(advd *d)
{
    if (d->stopping != 1 || d->nworkers > 0)
        return;
    d->stopping = 2;
    advd_log(d, "stopped");
    advd_server_close_clients(d);
    uv_close((uv_handle_t *)&d->sig_term, on_handle_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_handle_closed);
    uv_close((uv_handle_t *)&d->kick, on_handle_closed);
    advd_walckpt_stop(d);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    advd *d = s->data;
    if (d->stopping) {
        advd_log(d, "second %s: killing the workers", strsignal(signum));
        advd_scheduler_kill(d);
        return;
    }
    d->stopping = 1;
    advd_log(d, "stopping on %s", strsignal(signum));
    advd_server_stop(d);
    advd_scheduler_shutdown(d);
    advd_maybe_exit(d);
}

static int start_signals(advd *d, char *err)
{
    int rc;
    d->sig_term.data = d->sig_int.data = d;
    if ((rc = uv_signal_init(&d->loop, &d->sig_term)) ||
        (rc = uv_signal_init(&d->loop, &d->sig_int)) ||
        (rc = uv_signal_start(&d->sig_term, on_stop_signal, SIGTERM)) ||
        (rc = uv_signal_start(&d->sig_int, on_stop_signal, SIGINT)))
        return core_errf(err, "cannot handle signals: %s", uv_strerror(rc));
    return 0;
}

/* ------------------------------------------------------------------ run */

/* No worker runs yet: move checkpoints an older advd kept in the database
 * out to files, and remove files no row names (a worker's that the last
 * daemon died before recording). Neither stops the daemon: a checkpoint
 * left inside fails its job with a message saying so. */
static void tidy_checkpoints(advd *d)
{
    char err[CORE_ERRLEN];
    int n = 0;
    if (adv_store_ckpt_unblob(d->store, &n, err))
        advd_log(d, "cannot move checkpoints out of the database: %s", err);
    if (n)
        advd_log(d, "moved %d checkpoint%s out of the database into '%s'", n, n == 1 ? "" : "s",
                 adv_store_ckpt_dir(d->store));
    if (adv_store_ckpt_sweep(d->store, &n, err))
        advd_log(d, "cannot tidy the checkpoint folder: %s", err);
    else if (n)
        advd_log(d, "removed %d unrecorded checkpoint file%s", n, n == 1 ? "" : "s");
}

static int open_store(advd *d, char *err)
{
    if (adv_store_open(d->opt.db_path, 5000, &d->store, err))
        return -1;
    int n = 0;
    if (adv_store_requeue_running(d->store, &n, err))
        return -1;
    if (n)
        advd_log(d, "requeued %d job%s left running by a previous daemon", n, n == 1 ? "" : "s");
    tidy_checkpoints(d);
    return 0;
}

static int start(advd *d, int ready_fd, char *err)
{
    size_t len = sizeof d->exe;
    int rc = uv_loop_init(&d->loop);
    if (rc)
        return core_errf(err, "cannot start the event loop: %s", uv_strerror(rc));
    d->loop_ok = 1;
    d->loop.data = d;
    if ((rc = uv_exepath(d->exe, &len)))
        return core_errf(err, "cannot find this program's path: %s", uv_strerror(rc));
    advd_launch_cfg lc = advd_launch_of(d);
    if (advd_launch_check(&lc, err))
        return -1;
    if (open_store(d, err) || advd_walckpt_start(d, err) || start_signals(d, err))
        return -1;
    if ((rc = uv_timer_init(&d->loop, &d->kick)))
        return core_errf(err, "cannot create a timer: %s", uv_strerror(rc));
    d->kick.data = d;
    if (advd_server_start(d, err))
        return -1;
    advd_log(d, "advd %s listening on '%s', database '%s', %d worker%s", ADV_VERSION,
             d->opt.socket_path, d->opt.db_path, d->opt.workers, d->opt.workers == 1 ? "" : "s");
    if (ready_fd >= 0) {
        char ok = 0;
        if (write(ready_fd, &ok, 1) != 1)
            advd_log(d, "cannot tell the parent process that the daemon is ready");
        close(ready_fd);
    }
    advd_schedule_soon(d);
    return 0;
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(advd *d)
{
    advd_imports_free(d);
    advd_tasks_free(d);
    advd_walckpt_stop(d); /* a start that failed half-way */
    if (d->store)
        adv_store_close(d->store);
    d->store = NULL;
    if (d->loop_ok && uv_loop_close(&d->loop) == UV_EBUSY) {
        uv_walk(&d->loop, close_handle, NULL);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
    }
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    if (d->log)
        fclose(d->log);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--worker"))
        return advd_worker_main(NULL);
    advd d = {.lock_fd = -1};
    char err[CORE_ERRLEN] = "";
    int rc = parse_args(argc, argv, &d.opt, err);
    if (rc)
        return rc > 0 ? 0 : (fprintf(stderr, "advd: %s\n", err),
                          fprintf(stderr, "advd: see 'advd --help'\n"), 2);
    signal(SIGPIPE, SIG_IGN);
    if (make_db_dir(d.opt.db_path, err) || take_lock(&d, err)) {
        fprintf(stderr, "advd: %s\n", err);
        return 1;
    }
    int ready_fd = d.opt.foreground ? -1 : detach();
    if (open_log(&d, err)) {
        fprintf(stderr, "advd: %s\n", err);
        return 1;
    }
    if (start(&d, ready_fd, err)) {
        advd_log(&d, "%s", err);
        advd_server_stop(&d);
        finish(&d);
        return 1;
    }
    uv_run(&d.loop, UV_RUN_DEFAULT);
    finish(&d);
    return 0;
}
