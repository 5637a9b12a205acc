/*
 * launch.c - the worker's command line for each launcher (launch.h).
 */
#include "daemon/launch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"

static const char *const names[] = {"local", "mpirun", "slurm"};

int advd_launcher_parse(const char *s, int *out)
{
    int k = core_name_index(s, names, (int)(sizeof names / sizeof names[0]));
    return k < 0 ? -1 : (*out = k, 0);
}

const char *advd_launcher_name(int l)
{
    return l >= 0 && l < (int)(sizeof names / sizeof names[0]) ? names[l] : "?";
}

/* An argv under construction: words copied into a buffer. */
typedef struct {
    char **argv;
    int n;
    char *buf;
    size_t len, used;
    int full;
} words;

static void add(words *w, const char *s, size_t k)
{
    if (w->full || w->n >= ADVD_LAUNCH_ARGV_MAX || w->used + k + 1 > w->len) {
        w->full = 1;
        return;
    }
    char *p = w->buf + w->used;
    memcpy(p, s, k);
    p[k] = '\0';
    w->used += k + 1;
    w->argv[w->n++] = p;
}

static void add_str(words *w, const char *s)
{
    add(w, s, strlen(s));
}

static void add_int(words *w, long long v)
{
    char t[32];
    add(w, t, (size_t)snprintf(t, sizeof t, "%lld", v));
}

/* A setting's words, split on blanks. */
static void add_split(words *w, const char *s)
{
    while (s && *s) {
        s += strspn(s, " \t");
        size_t k = strcspn(s, " \t");
        if (k)
            add(w, s, k);
        s += k;
    }
}

/* The MPI worker: the setting, or advd-worker-mpi beside the daemon. */
static void worker_mpi_path(const advd_launch_cfg *c, char *path, size_t len)
{
    const char *slash = strrchr(c->exe, '/');
    if (c->worker_mpi && *c->worker_mpi)
        snprintf(path, len, "%s", c->worker_mpi);
    else
        snprintf(path, len, "%.*sadvd-worker-mpi", slash ? (int)(slash - c->exe + 1) : 0, c->exe);
}

static void add_worker_mpi(words *w, const advd_launch_cfg *c)
{
    char path[CORE_PATH_JOIN];
    worker_mpi_path(c, path, sizeof path);
    add_str(w, path);
    add_str(w, "--worker");
}

int advd_launch_check(const advd_launch_cfg *c, char *err)
{
    char path[CORE_PATH_JOIN];
    if (c->launcher == ADVD_LAUNCH_LOCAL)
        return 0;
    worker_mpi_path(c, path, sizeof path);
    if (access(path, X_OK))
        return core_errf(err, "launcher '%s' needs the MPI worker '%s': %s (make builds it "
                              "where Open MPI is installed; 'worker_mpi' names another path)",
                         advd_launcher_name(c->launcher), path, strerror(errno));
    return 0;
}

int advd_launch_argv(const advd_launch_cfg *c, int64_t job, int procs, char *buf, size_t len,
                     char *argv[ADVD_LAUNCH_ARGV_MAX + 1], char *err)
{
    words w = {.argv = argv, .buf = buf, .len = len};
    char name[40];
    switch (c->launcher) {
    case ADVD_LAUNCH_LOCAL:
        if (procs > 1)
            return core_errf(err, "invalid 'procs': %d processes need the daemon's launcher to "
                                  "be mpirun or slurm (it is 'local')", procs);
        add_str(&w, c->exe);
        add_str(&w, "--worker");
        break;
    case ADVD_LAUNCH_MPIRUN:
        add_str(&w, "mpirun");
        add_str(&w, "-np");
        add_int(&w, procs);
        add_split(&w, c->mpirun_args);
        add_worker_mpi(&w, c);
        break;
    case ADVD_LAUNCH_SLURM:
        snprintf(name, sizeof name, "advd-%lld", (long long)job);
        add_str(&w, "salloc");
        add_str(&w, "-n");
        add_int(&w, procs);
        add_str(&w, "-J");
        add_str(&w, name);
        add_split(&w, c->salloc_args);
        add_str(&w, "srun");
        add_str(&w, "-n");
        add_int(&w, procs);
        add_str(&w, "--input=0");
        add_split(&w, c->srun_args);
        add_worker_mpi(&w, c);
        break;
    default:
        return core_errf(err, "unknown launcher %d", c->launcher);
    }
    if (w.full)
        return core_errf(err, "the worker's command line is too long (over %d words or %zu "
                              "bytes)", ADVD_LAUNCH_ARGV_MAX, len);
    argv[w.n] = NULL;
    return w.n;
}

void advd_launch_line(char *const argv[], char *out, size_t len)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] && at + 1 < len; i++) {
        int k = snprintf(out + at, len - at, "%s%s", i ? " " : "", argv[i]);
        if (k < 0)
            break;
        at += (size_t)k;
    }
}
