/*
 * augment.h - data augmentation on the fly: each training batch is changed
 * as it is gathered, every example by its own draws from (seed, global
 * step, example), so a rerun with the same seed gives the same bytes and a
 * run resumed from a checkpoint continues as if never stopped.
 *
 * Per example, in this order, each only when set:
 *   crop         pad with crop zeros on every side, cut a random H x W window
 *   flip         mirror left-right with probability 1/2 (off by default: it
 *                changes digits)
 *   brightness   add U(-b, b)
 *   contrast     scale about the example's per-channel mean by U(1-c, 1+c)
 *   noise        add N(0, sigma^2)
 *   corruptions  with probability corrupt_prob, one of the chosen families
 *                of corrupt.h at a severity U{1..corrupt_severity}: the
 *                families a model trained on, held out from its corruption
 *                score (ImageNet-C's rule)
 * then clip to [0, 1]. AugMix (Hendrycks et al. 2020) is separate: the
 * trainer asks for two AugMix views of the batch and adds the
 * Jensen-Shannon consistency loss (train.c).
 */
#ifndef CORE_AUGMENT_H
#define CORE_AUGMENT_H

#include "common.h"

typedef struct {
    int crop;              /* padding in pixels of a random crop (0: off) */
    int flip;              /* horizontal flips */
    float brightness;      /* (0: off) */
    float contrast;        /* (0: off) */
    float noise;           /* Gaussian sigma (0: off) */
    unsigned corruptions;  /* bit c: core_corruption c may be drawn (0: off) */
    int corrupt_severity;  /* highest severity drawn, 1..5 */
    float corrupt_prob;    /* share of examples corrupted, (0, 1] */
    int augmix;            /* AugMix views with the JS consistency loss */
    float augmix_js;       /* the JS term's weight (lambda, 12 in the paper) */
    int augmix_width, augmix_depth; /* chains mixed (3), most ops per chain (3) */
} core_augment_cfg;

/* Everything off; corruption severity 3, probability 0.5; AugMix 12, 3, 3. */
core_augment_cfg core_augment_defaults(void);
int core_augment_check(const core_augment_cfg *a, char *err);
/* Whether core_augment_batch changes anything. */
int core_augment_active(const core_augment_cfg *a);

/* Augment the n examples of x (shape s) in place; example i of the batch of
 * global step `step` draws from (seed, stream of step, i). */
int core_augment_batch(const core_augment_cfg *a, float *x, int n, core_shape s, uint64_t seed,
                       int64_t step, char *err);

/* y = one AugMix view of each of the n examples of x: width chains of 1 to
 * depth operations (autocontrast, equalize, posterize, solarize, shear),
 * mixed with Dirichlet(1) weights, then with x by a Beta(1, 1) factor. The
 * operations avoid the corruptions a model is tested on. view picks an
 * independent draw (0, 1). */
int core_augmix(const core_augment_cfg *a, const float *x, float *y, int n, core_shape s,
                uint64_t seed, int64_t step, int view, char *err);

/* "gaussian_noise,contrast" or "all" -> a bit mask of corrupt.h families. */
int core_corruption_set_parse(const char *s, unsigned *out, char *err);

#endif
