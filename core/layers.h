/*
 * layers.h - the layer kinds of a model and their forward/backward passes.
 *
 * Every pass works on a whole batch of n examples in NCHW order. Backward
 * passes take dy (gradient of the loss with respect to the layer's output)
 * and produce dx (with respect to its input; attacks need it all the way down
 * to the pixels) and, when asked, accumulate (+=) the parameter gradients.
 *
 * Parameters are not owned by layers: a layer holds offsets into the model's
 * single parameter buffer and single gradient buffer (see model.h), and the
 * passes receive those two base pointers.
 */
#ifndef CORE_LAYERS_H
#define CORE_LAYERS_H

#include "common.h"

typedef enum {
    CORE_LAYER_CONV,
    CORE_LAYER_RELU,
    CORE_LAYER_MAXPOOL,
    CORE_LAYER_AVGPOOL,
    CORE_LAYER_GAP,      /* global average pool: C x H x W -> C x 1 x 1 */
    CORE_LAYER_FLATTEN,  /* C x H x W -> (C*H*W) x 1 x 1, no copy of data */
    CORE_LAYER_FC,
    CORE_LAYER_RES,      /* relu(x + conv_b(relu(conv_a(x)))), 3x3 pad 1 */
    CORE_LAYER_NORM      /* (x - mean[c]) / std[c] per channel: constants, not parameters */
} core_layer_kind;

/* Channels a norm layer can hold constants for. */
#define CORE_NORM_MAX 64

/* A convolution: weight cout x cin x k x k (PyTorch's layout), bias cout. */
typedef struct {
    int cin, cout, k, stride, pad;
    core_shape in, out;
    size_t w_off, b_off;   /* into the model's parameter/gradient buffers */
} core_conv;

/* Scratch shared by all convolutions of a model, one slice per thread,
 * sized for the largest layer (see conv.c for the chunking). */
typedef struct {
    int threads;                     /* slices */
    size_t col_len, tmp_len, dw_len; /* floats per slice */
    float *col;  /* im2col of a chunk, or its gradient */
    float *tmp;  /* GEMM output of a chunk, or its dy as cout x pixels */
    float *dw;   /* the thread's partial weight and bias gradient */
} core_conv_scratch;

typedef struct {
    core_layer_kind kind;
    core_shape in, out;
    char name[16];       /* index in the equivalent PyTorch nn.Sequential */
    int pool, stride;    /* MAXPOOL / AVGPOOL window and stride */
    core_conv conv[2];   /* CONV uses conv[0]; RES uses conv[0] (a), conv[1] (b) */
    size_t w_off, b_off; /* FC: weight out x in, bias out */
    float mean[CORE_NORM_MAX], std[CORE_NORM_MAX]; /* NORM: one per channel */
    /* Per-batch buffers (allocated by core_model_reserve). */
    float *y;            /* output, n * out (FLATTEN aliases its input; NULL for a CONV
                          * followed by a RELU, which writes relu(conv) into the RELU's) */
    int *argmax;         /* MAXPOOL: input index of each output */
    float *r;            /* RES: relu(conv_a(x)) */
    float *dr;           /* RES: gradient scratch of the same size */
} core_layer;

/* Convolution (conv.c). x: n * in; y: n * out; with relu, y = max(conv, 0)
 * (a ReLU after the convolution, done as it stores). Backward takes the
 * forward's input x again; dx may be NULL. need[] grows to the per-thread
 * scratch lengths (col, tmp, dw) of a batch of n on threads threads. */
void core_conv_scratch_need(const core_conv *c, int n, int threads, size_t need[3]);
/* Allocate a scratch of need[] floats per slice for threads slices; returns
 * 0 or -1 (out of memory: nothing left allocated). Free is NULL-safe. */
int core_conv_scratch_alloc(core_conv_scratch *s, const size_t need[3], int threads);
void core_conv_scratch_free(core_conv_scratch *s);
void core_conv_forward(const core_conv *c, const float *params, const float *x, float *y, int n,
                       core_conv_scratch *s, int relu);
void core_conv_backward(const core_conv *c, const float *params, float *grads, const float *x,
                        const float *dy, float *dx, int n, int param_grads, core_conv_scratch *s);

/* Element-wise and pooling layers (layers.c). */
void core_relu_forward(const float *x, float *y, size_t len);
/* dx = dy where y > 0; dx may alias dy. */
void core_relu_backward(const float *y, const float *dy, float *dx, size_t len);
/* Guided backpropagation's ReLU (Springenberg et al. 2015): dx = dy where
 * y > 0 and dy > 0; dx may alias dy. */
void core_relu_backward_guided(const float *y, const float *dy, float *dx, size_t len);
void core_maxpool_forward(const core_layer *l, const float *x, float *y, int *argmax, int n);
void core_maxpool_backward(const core_layer *l, const float *dy, const int *argmax, float *dx, int n);
void core_avgpool_forward(const core_layer *l, const float *x, float *y, int n);
void core_avgpool_backward(const core_layer *l, const float *dy, float *dx, int n);
/* Input normalisation, per channel: y = (x - mean) / std (subtraction then
 * division, as PyTorch computes it); dx = dy / std. dx may alias dy. */
void core_norm_forward(const core_layer *l, const float *x, float *y, int n);
void core_norm_backward(const core_layer *l, const float *dy, float *dx, int n);
void core_fc_forward(const core_layer *l, const float *params, const float *x, float *y, int n);
void core_fc_backward(const core_layer *l, const float *params, float *grads,
                      const float *x, const float *dy, float *dx, int n, int param_grads);

#endif
