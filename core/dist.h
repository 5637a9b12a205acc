/*
 * dist.h - the collectives a data-parallel job needs, as a table of
 * functions, so that core/ runs on several processes without linking any
 * transport: the MPI worker (daemon/worker_mpi.c) fills one in with Open
 * MPI's calls; a NULL core_dist means one process, and every function here
 * accepts it.
 *
 * Shares: a global batch of n examples is cut into `size` contiguous
 * pieces in rank order, the first n % size one example larger, so rank r's
 * examples are those a one-process run would put at positions [lo, lo +
 * count) of the batch. An evaluation is cut on whole batches instead
 * (core_dist_range), because its randomness is keyed by the batch's start.
 */
#ifndef CORE_DIST_H
#define CORE_DIST_H

#include <stddef.h>

typedef enum { CORE_DIST_F32, CORE_DIST_F64, CORE_DIST_U8 } core_dist_type;

typedef struct core_dist core_dist;
struct core_dist {
    int rank, size;
    /* Element-wise sum over all ranks of buf (n elements), in place on
     * every rank; 0 or -1 with err set. */
    int (*sum)(core_dist *d, void *buf, size_t n, core_dist_type type, char *err);
    /* Rank 0's len bytes of buf into every rank's buf. */
    int (*bcast)(core_dist *d, void *buf, size_t len, char *err);
    double sum_seconds;         /* time spent in sum, for benchmarks */
    long sum_calls;
};

static inline int core_dist_rank(const core_dist *d)
{
    return d ? d->rank : 0;
}

static inline int core_dist_size(const core_dist *d)
{
    return d ? d->size : 1;
}

/* Rank `rank` of `size`'s contiguous share of n items: [*lo, *lo + *count). */
static inline void core_dist_share(int n, int rank, int size, int *lo, int *count)
{
    int base = n / size, extra = n % size;
    *lo = rank * base + (rank < extra ? rank : extra);
    *count = base + (rank < extra ? 1 : 0);
}

/* Rank's share of n examples in whole batches of `batch`: [*a, *b). */
static inline void core_dist_range(int n, int batch, int rank, int size, int *a, int *b)
{
    int nb = (n + batch - 1) / batch, lo, cnt;
    core_dist_share(nb, rank, size, &lo, &cnt);
    *a = lo * batch < n ? lo * batch : n;
    *b = (lo + cnt) * batch < n ? (lo + cnt) * batch : n;
}

/* d's sum, or nothing for one process. */
int core_dist_sum(core_dist *d, void *buf, size_t n, core_dist_type type, char *err);
/* d's bcast, or nothing for one process. */
int core_dist_bcast(core_dist *d, void *buf, size_t len, char *err);
/* Rank 0's flag on every rank (a stop decided by rank 0); -1 on an error. */
int core_dist_agree(core_dist *d, int flag, char *err);

#endif
