/*
 * rng.c - the non-inline parts of the counter-based generator (see rng.h).
 */
#include "rng.h"

#include <math.h>

float core_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t bits = core_rng_u64(seed, stream, counter);
    /* Two 32-bit halves; u1 in (0, 1] so that log() stays finite. */
    double u1 = ((double)(bits >> 32) + 1.0) / 4294967296.0;
    double u2 = (double)(bits & 0xffffffffu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void core_rng_shuffle(uint64_t seed, uint64_t stream, int *idx, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)core_rng_below(seed, stream, (uint64_t)i, (uint64_t)i + 1);
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
