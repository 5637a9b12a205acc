/*
 * corrupt.h - common corruptions of images at five severities, in the
 * spirit of CIFAR-10-C (Hendrycks & Dietterich 2019) and MNIST-C (Mu &
 * Gilmer 2019): does a model survive a shifted world, not only an attacker?
 *
 * Images are n examples of shape C x H x W (grayscale or RGB), pixels in
 * [0, 1]; every corruption clips its result to [0, 1]. Severity 0 is the
 * identity; 1..5 use the constants of ../shared/reference/robustness-
 * methods.md. The random ones (noise, the direction of a shift or a
 * rotation) draw from (seed, stream, example, pixel) with the counter-based
 * generator, so the same call gives the same bytes at any thread count.
 */
#ifndef CORE_CORRUPT_H
#define CORE_CORRUPT_H

#include "common.h"

typedef enum {
    CORE_CORRUPT_GAUSSIAN_NOISE,  /* x + N(0, sigma) */
    CORE_CORRUPT_SHOT_NOISE,      /* Poisson(x c) / c */
    CORE_CORRUPT_IMPULSE_NOISE,   /* salt and pepper */
    CORE_CORRUPT_BRIGHTNESS,      /* x + c */
    CORE_CORRUPT_CONTRAST,        /* (x - mean) c + mean, per channel */
    CORE_CORRUPT_GAUSSIAN_BLUR,   /* separable, radius ceil(3 sigma), edges clamped */
    CORE_CORRUPT_PIXELATE,        /* box-average to size c, back by nearest */
    CORE_CORRUPT_TRANSLATE,       /* shift by severity pixels on each axis, zero fill */
    CORE_CORRUPT_ROTATE,          /* 0.2 x severity rad about the centre, bilinear */
    CORE_NCORRUPTIONS
} core_corruption;

#define CORE_SEVERITIES 5

const char *core_corruption_name(core_corruption c);   /* "gaussian_noise", ... */
int core_corruption_parse(const char *s, core_corruption *out, char *err);

/* The constant of corruption c at severity 1..5 (sigma, c, amount, pixels
 * or radians, as documented above). */
double core_corruption_level(core_corruption c, int severity);

/* y = corruption c at severity 0..5 of the n examples in x (y must not
 * alias x). Returns 0, or -1 for a bad severity, shape or allocation. */
int core_corrupt(core_corruption c, int severity, const float *x, float *y, int n,
                 core_shape s, uint64_t seed, uint64_t stream, char *err);

#endif
