/*
 * dist.c - the one-process defaults of dist.h's collectives, and the
 * time they take (bench figures of the all-reduce).
 */
#include "dist.h"

#include <stdint.h>

#include "common.h"

int core_dist_sum(core_dist *d, void *buf, size_t n, core_dist_type type, char *err)
{
    if (!d || d->size == 1)
        return 0;
    double t0 = core_now_s();
    int rc = d->sum(d, buf, n, type, err);
    d->sum_seconds += core_now_s() - t0;
    d->sum_calls++;
    return rc;
}

int core_dist_bcast(core_dist *d, void *buf, size_t len, char *err)
{
    return !d || d->size == 1 ? 0 : d->bcast(d, buf, len, err);
}

int core_dist_agree(core_dist *d, int flag, char *err)
{
    int32_t v = flag;
    return core_dist_bcast(d, &v, sizeof v, err) ? -1 : (int)v;
}
