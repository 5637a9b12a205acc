/*
 * worker_mpi.c - `advd-worker-mpi --worker`: the worker (worker.c) on the
 * ranks of an Open MPI job, started by the daemon through mpirun or srun
 * (launch.c). The only file that includes mpi.h; the daemon never links
 * MPI, and `make` builds this binary only where Open MPI is installed.
 *
 * core_dist's sum is one MPI_Allreduce (MPI_SUM), its bcast MPI_Bcast
 * from rank 0. With two ranks a float sum is a + b on both, so the ranks'
 * parameters stay bit-identical; Open MPI's reductions over more ranks are
 * also computed in the same order on every rank for a given size.
 *
 * Every rank's stderr goes through a pipe that a thread copies to the
 * real stderr with "rank N: " before each line, so the daemon's log tells
 * the ranks apart; stdout is rank 0's alone (the worker protocol).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "advd.h"
#include "core/common.h"

static MPI_Datatype mpi_type(core_dist_type t)
{
    switch (t) {
    case CORE_DIST_F32:
        return MPI_FLOAT;
    case CORE_DIST_F64:
        return MPI_DOUBLE;
    case CORE_DIST_U8:
        return MPI_UNSIGNED_CHAR;
    }
    return MPI_DATATYPE_NULL;
}

static int mpi_failed(int rc, const char *what, char *err)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return core_errf(err, "%s failed: %.*s", what, len, msg);
}

/* MPI counts are ints: large buffers go in pieces. */
#define MPI_CHUNK ((size_t)1 << 30)

static int mpi_sum(core_dist *d, void *buf, size_t n, core_dist_type type, char *err)
{
    (void)d;
    size_t esize = type == CORE_DIST_F64 ? 8 : type == CORE_DIST_F32 ? 4 : 1;
    for (size_t at = 0; at < n; at += MPI_CHUNK) {
        size_t k = n - at < MPI_CHUNK ? n - at : MPI_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * esize, (int)k, mpi_type(type),
                               MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "MPI_Allreduce", err);
    }
    return 0;
}

static int mpi_bcast(core_dist *d, void *buf, size_t len, char *err)
{
    (void)d;
    for (size_t at = 0; at < len; at += MPI_CHUNK) {
        size_t k = len - at < MPI_CHUNK ? len - at : MPI_CHUNK;
        int rc = MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_failed(rc, "MPI_Bcast", err);
    }
    return 0;
}

/* ---- stderr, tagged with the rank ---------------------------------------- */

typedef struct {
    int from, to; /* the pipe's read end, the real stderr */
    int rank;
} tagger;

static void write_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static void *tag_lines(void *arg)
{
    tagger *t = arg;
    char buf[4096], tag[32];
    int at_start = 1, taglen = snprintf(tag, sizeof tag, "rank %d: ", t->rank);
    ssize_t n;
    while ((n = read(t->from, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (ssize_t i = 0, start = 0; i < n; i++) {
            if (at_start)
                write_fd(t->to, tag, (size_t)taglen), at_start = 0;
            if (buf[i] == '\n' || i == n - 1) {
                write_fd(t->to, buf + start, (size_t)(i + 1 - start));
                start = i + 1;
                at_start = buf[i] == '\n';
            }
        }
    }
    return NULL;
}

/* fd 2 becomes a pipe to the tagging thread; 0, or -1 (stderr untagged). */
static int tag_stderr(tagger *t, pthread_t *th)
{
    int p[2];
    if (pipe(p))
        return -1;
    t->from = p[0];
    t->to = dup(2);
    if (t->to < 0 || dup2(p[1], 2) < 0 || pthread_create(th, NULL, tag_lines, t)) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    close(p[1]);
    return 0;
}

/* Lines still in the pipe reach stderr before the process ends. */
static void untag_stderr(tagger *t, pthread_t th)
{
    fflush(stdout);
    fflush(stderr);
    /* The worker pointed fd 1 at fd 2 too: both go, then the thread sees EOF. */
    dup2(t->to, 1);
    dup2(t->to, 2);
    pthread_join(th, NULL);
}

int main(int argc, char **argv)
{
    int provided, rank = 0, size = 1;
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "--worker"))) {
        fprintf(stderr, "usage: advd-worker-mpi [--worker]  (started by advd through mpirun or "
                        "srun, never by hand)\n");
        return 2;
    }
    /* Only the main thread calls MPI; OpenMP's threads compute. */
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "advd-worker-mpi: MPI_Init_thread failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tagger t = {.rank = rank};
    pthread_t th;
    int tagged = tag_stderr(&t, &th) == 0;
    core_dist d = {.rank = rank, .size = size, .sum = mpi_sum, .bcast = mpi_bcast};
    int rc = advd_worker_main(&d);
    if (d.sum_calls)
        fprintf(stderr, "advd worker: %ld all-reduces took %.3f s in all\n", d.sum_calls,
                d.sum_seconds);
    if (tagged)
        untag_stderr(&t, th);
    if (rc) /* the others may wait in a collective: end them all */
        MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return 0;
}
