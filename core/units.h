/*
 * units.h - looking inside a network: what its convolution channels
 * respond to.
 *
 * Layers are named as a person reads the model spec: "conv1" is the first
 * `conv` token, "conv2" the second, "fc1" the first `fc`, "res1" the first
 * residual block. A unit layer's activation is the layer's output after
 * the ReLU that follows it, if one does (what the next layer sees).
 *
 *   filters    the first convolution's weights, one tile per output
 *              channel (C_in x k x k, grey for one input channel, RGB for
 *              three), each scaled on its own: 0.5 + 0.5 w / max|w|
 *   scores     each channel's mean activation over its plane, per example:
 *              the examples that activate a channel most are those of the
 *              largest scores; where in the image is the activation plane
 *              itself, up-sampled over the example (core_unit_overlay)
 *   maximise   activation maximisation (Yosinski et al. 2015; Olah et al.
 *              2017): gradient ascent on a channel's mean activation from
 *              grey plus a little noise, each step on a jittered copy (a
 *              random shift of up to `jitter` pixels, rolled with wrap-around so the
 *              gradient rolls back exactly) with
 *              the gradient normalised by its mean |g|, then L2 decay
 *              towards grey, a 3x3 blur every `blur_every` steps, and
 *              clipping to [0, 1]. A channel silent everywhere has no
 *              gradient after its ReLU: for that step it follows the
 *              gradient of its mean before the ReLU (Olah et al.'s pre-ReLU
 *              objective) until it wakes. Deterministic under the seed.
 */
#ifndef CORE_UNITS_H
#define CORE_UNITS_H

#include "model.h"

/* "conv2" -> the index of the layer whose output is its activation. */
int core_unit_layer_find(const core_model *m, const char *name, int *layer, char *err);
/* The spec name of layer i ("conv2", "fc1", "res1") or its kind. */
void core_layer_label(const core_model *m, int i, char *buf, size_t len);

/* The first convolution's filters as images: *tile gets C_in x k x k
 * (C_in 1 or 3; other counts are shown channel-averaged as grey), out
 * holds cout tiles. Returns 0 or -1 (no convolution). */
int core_unit_filters(const core_model *m, float *out, core_shape *tile, int *count, char *err);

/* Mean activation of every channel of `layer` for n examples (n <= the
 * reserved batch): score n x C. act (may be NULL) gets the activation
 * planes, n x C x H x W. */
void core_unit_scores(core_model *m, int layer, const float *x, int n, float *score, float *act);

/* The k of n examples with the largest score[i * stride], largest first. */
void core_unit_top(const float *score, int n, int stride, int k, int *idx);

/* x (shape s, grey or RGB) at half brightness under an activation plane
 * (ah x aw, up-sampled by nearest pixel, scaled by amax) in the "hot"
 * colours: rgb is 3 x s.h x s.w. */
void core_unit_overlay(const float *x, core_shape s, const float *act, int ah, int aw,
                       float amax, float *rgb);

typedef struct {
    int steps;        /* gradient steps (64) */
    float lr;         /* step on the normalised gradient (0.05) */
    float decay;      /* L2 decay towards grey per step (0.01) */
    int jitter;       /* largest shift, pixels (1) */
    int blur_every;   /* steps between blurs, 0: none (4) */
    uint64_t seed;
} core_maximise_cfg;

core_maximise_cfg core_maximise_defaults(void);

/* Maximise channels first..first+n-1 of `layer`, one example each (n <=
 * the reserved batch): img gets n inputs; start/end (may be NULL) the
 * objective (mean activation, unjittered) at the start and the end. */
int core_unit_maximise(const core_maximise_cfg *cfg, core_model *m, int layer, int first, int n,
                       float *img, double *start, double *end, char *err);

#endif
