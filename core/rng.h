/*
 * rng.h - a counter-based random number generator.
 *
 * Every random number is a pure function of (seed, stream, counter): there is
 * no hidden state to advance, so parallel loops draw the same numbers whatever
 * the thread count or schedule, and a resumed job redraws exactly what an
 * uninterrupted one would. Streams separate uses (shuffling of epoch e, the
 * random start of attack step s, the init of layer l...); counters index the
 * numbers within a stream (typically the element index).
 *
 * The mixer is SplitMix64's finaliser applied to a combination of the three
 * words; it passes BigCrush as a counter-mode generator and costs a few ns.
 */
#ifndef CORE_RNG_H
#define CORE_RNG_H

#include <stdint.h>

static inline uint64_t core_mix64(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ULL;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z;
}

/* 64 random bits for (seed, stream, counter). */
static inline uint64_t core_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t k = core_mix64(seed + 0x9e3779b97f4a7c15ULL * (stream + 1));
    return core_mix64(k ^ (counter * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
}

/* Uniform float in [0, 1), 24 random bits. */
static inline float core_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (float)(core_rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal (Box-Muller on two uniforms of the same counter). */
float core_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform integer in [0, n), n > 0. */
static inline uint64_t core_rng_below(uint64_t seed, uint64_t stream, uint64_t counter, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)core_rng_u64(seed, stream, counter) * n) >> 64);
}

/* Fisher-Yates shuffle of idx[0..n) driven by (seed, stream). */
void core_rng_shuffle(uint64_t seed, uint64_t stream, int *idx, int n);

/* Stream identifiers: the top 16 bits name the use, the low 48 bits index
 * it (layer, epoch, global step...), so no two uses of one seed collide. */
#define CORE_STREAM_INIT (1ULL << 48)    /* + parameter view index */
#define CORE_STREAM_SHUFFLE (2ULL << 48) /* + epoch */
#define CORE_STREAM_SPLIT (3ULL << 48)   /* validation split */
#define CORE_STREAM_ATTACK (4ULL << 48)  /* + global step: training attacks */
#define CORE_STREAM_EVAL (5ULL << 48)    /* + epoch: validation attacks */
#define CORE_STREAM_GUARD (6ULL << 48)   /* + epoch: fgsm-rs overfitting guard */
#define CORE_STREAM_USER (7ULL << 48)    /* + anything: evaluation jobs */
#define CORE_STREAM_AUGMENT (8ULL << 48) /* + view, step and example: augmentation */

#endif
