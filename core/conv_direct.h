/*
 * conv_direct.h - the direct 3x3 (pad 1, stride 1 or 2) and 5x5 (pad 2,
 * stride 1) convolution (conv_direct.c) that conv.c dispatches to when a
 * layer's shape and the CPU qualify.
 *
 * It uses the same per-thread scratch as the im2col path, sliced its own way:
 *   col  the padded inputs (stride 2: split in phases) of up to 4 examples
 *        (the weight gradient takes them together), one example's padded
 *        dy, and for stride 2 the four phases of its dx (fewer than 8 input
 *        channels: its dx tap planes)
 *   tmp  the weights repacked for the kernel, then the thread's weight-gradient
 *        accumulators (16 lanes per weight, summed horizontally at the end)
 *   dw   the thread's partial weight and bias gradient, as for im2col
 */
#ifndef CORE_CONV_DIRECT_H
#define CORE_CONV_DIRECT_H

#include "layers.h"

/* Whether the layer goes through the direct path on this CPU. */
int core_conv_direct_ok(const core_conv *c);
/* Grows need[] (col, tmp, dw floats per thread) to what the direct path uses. */
void core_conv_direct_need(const core_conv *c, size_t need[3]);
void core_conv_direct_forward(const core_conv *c, const float *params, const float *x, float *y,
                              int n, core_conv_scratch *s, int threads, int relu);
/* Fills the per-thread partials s->dw (zeroed by the caller) when param_grads;
 * the caller adds them up in thread order. dx may be NULL. */
void core_conv_direct_backward(const core_conv *c, const float *params, const float *x,
                               const float *dy, float *dx, int n, int param_grads,
                               core_conv_scratch *s, int threads);

#endif
