/*
 * model.h - a sequential CNN described by a short text spec.
 *
 * Grammar (tokens separated by spaces; N, K, S, P positive integers):
 *   convN[kK][sS][pP]  convolution to N channels, K x K kernel (3), stride S
 *                      (1), zero padding P (0)            e.g. conv32k3p1
 *   relu               rectified linear unit
 *   maxpoolK[sS]       max pool, K x K window, stride S (K)  e.g. maxpool2
 *   avgpoolK[sS]       average pool, same shape rules
 *   gap                global average pool (C x H x W -> C)
 *   flatten            C x H x W -> C*H*W (inserted automatically before the
 *                      first fc, as in PyTorch's nn.Flatten)
 *   fcN                fully connected to N outputs
 *   res[N]             residual block relu(x + conv(relu(conv(x)))) of two
 *                      3x3 pad-1 convolutions keeping the N input channels
 *   norm(MEAN;STD)     (x - mean) / std per channel, input normalisation as
 *                      part of the model; MEAN and STD are one number for
 *                      every channel or one per channel, comma-separated
 *                      e.g. norm(0.4914,0.4822,0.4465;0.2470,0.2435,0.2616).
 *                      Constants of the spec, not trained; exported as the
 *                      PyTorch buffers "N.mean" and "N.std" (core_model_buffers)
 * The last layer must be fc<classes>. Presets: cnn-small, madry,
 * resnet-tiny (see core_model_preset), layer for layer the models of
 * ../shared/peers/torch_peer.py, down to the nn.Sequential indices used as
 * parameter names ("0.weight", "2.a.bias", ...).
 *
 * Memory: all parameters live in one contiguous buffer and all gradients in
 * another of the same layout; core_param_view names slices of them. Batch
 * buffers are allocated once by core_model_reserve and reused.
 */
#ifndef CORE_MODEL_H
#define CORE_MODEL_H

#include "layers.h"

#define CORE_MAX_LAYERS 64
#define CORE_MAX_VIEWS (2 * 2 * CORE_MAX_LAYERS)
#define CORE_SPEC_LEN 1024
/* Values of one example's activation at any layer, and parameters of a
 * model: beyond these a spec is refused (int indexing, and no machine
 * here holds more). */
#define CORE_MAX_VALUES (1 << 30)
#define CORE_MAX_PARAMS 4e9

/* A named tensor inside the parameter buffer, PyTorch naming and layout. */
typedef struct {
    char name[32];
    size_t offset, size;
    int ndim, dims[4];
} core_param_view;

typedef struct {
    char spec[CORE_SPEC_LEN];  /* expanded spec (presets resolved) */
    core_shape in;
    int nclass;
    int nlayers;
    core_layer layers[CORE_MAX_LAYERS];
    size_t nparams;
    float *params, *grads;
    size_t frozen;             /* params [0, frozen) are not trained (core_model_freeze) */
    int nviews;
    core_param_view views[CORE_MAX_VIEWS];
    /* Batch buffers. */
    int capacity;              /* largest batch reserved */
    float *gbuf[2];            /* ping-pong gradient buffers */
    core_conv_scratch scratch;
    const float *x;            /* input of the last forward, for backward */
    int guided;                /* 1: ReLUs pass back only positive gradients (guided
                                  backpropagation, explain.h); 0: the true gradient */
} core_model;

/* The spec of a preset name with its final layer sized for nclass, or NULL. */
const char *core_model_preset(const char *name, int nclass, char *buf, size_t len);

/* Parse spec (or a preset name) for inputs of shape in and nclass classes.
 * On success *out is a new model with He-initialised weights (seeded). */
int core_model_create(const char *spec, core_shape in, int nclass, uint64_t seed,
                      core_model **out, char *err);
void core_model_free(core_model *m);

/* The same model's layers and parameter views without any buffer (params
 * and grads NULL): its shapes and names, at no cost in its size. Only
 * core_model_free may be called on it. */
int core_model_describe(const char *spec, core_shape in, int nclass, core_model **out,
                        char *err);

/* Initialisation: He (normal, std sqrt(2 / fan_in), zero biases; what
 * core_model_create does), or PyTorch's default for Conv2d / Linear
 * (weights and biases uniform in +-1/sqrt(fan_in)), to reproduce the
 * peer's recipe exactly. */
typedef enum { CORE_INIT_HE, CORE_INIT_TORCH } core_init;

int core_init_parse(const char *s, core_init *out, char *err);
void core_model_init(core_model *m, uint64_t seed, core_init kind);

/* What a model would cost, from its spec alone: arithmetic on the layer
 * shapes, no parameter or batch buffer allocated (a daemon judges specs
 * with it). batch_bytes is what core_model_reserve(batch) would allocate
 * with threads threads. */
typedef struct {
    double params;       /* parameters (floats) */
    double batch_bytes;  /* batch buffers: activations, gradients, scratch */
    double flops;        /* multiply-adds of one forward pass of one example */
} core_model_cost;

int core_model_estimate(const char *spec, core_shape in, int nclass, int batch, int threads,
                        core_model_cost *cost, char *err);

/* Make the batch buffers hold up to batch examples (no-op when they do). */
int core_model_reserve(core_model *m, int batch, char *err);

/* Forward pass of n <= capacity examples; returns the n x nclass logits,
 * valid until the next forward. x must stay alive until backward. */
const float *core_model_forward(core_model *m, const float *x, int n);

/* The logits (n x nclass) and the predicted classes of any number of
 * examples, in passes of the model's capacity. */
void core_model_logits(core_model *m, const float *x, int n, float *logits);
void core_model_predict(core_model *m, const float *x, int n, int *pred);

/* Backward pass from dlogits (n x nclass) of the last forward. Accumulates
 * parameter gradients into m->grads when param_grads is set; writes the
 * gradient with respect to the input into dx when dx is not NULL. */
void core_model_backward(core_model *m, const float *dlogits, int n, float *dx, int param_grads);
/* The same from the output of layer `top` (dy: n x its output) down to the
 * input, for objectives on an inner layer (units.h). */
void core_model_backward_from(core_model *m, int top, const float *dy, int n, float *dx,
                              int param_grads);

void core_model_zero_grad(core_model *m);

/* Feature extraction: train only the last k parametrised layers (0: all).
 * Views come in layer order, so the frozen ones are a prefix of the
 * parameter buffer, params [0, m->frozen): backward computes no gradient
 * for them (it still passes through them when an input gradient is
 * wanted) and an optimiser sees only the rest. */
void core_model_freeze(core_model *m, int k);

/* Start from another model's weights: every tensor of dst is copied from
 * src's tensor of the same name and shape. The final layer may differ in
 * its class count only (it keeps dst's fresh initialisation: *reinit set);
 * any other missing or mis-shaped tensor is an error listing both shapes. */
int core_model_transfer(core_model *dst, const core_model *src, int *reinit, char *err);
const core_param_view *core_model_view(const core_model *m, const char *name);

/* A constant tensor that is not a parameter (a PyTorch buffer): each norm
 * layer's "N.mean" and "N.std", one float per channel. */
typedef struct {
    char name[32];
    const float *data;
    int len;
} core_buffer_view;
#define CORE_MAX_BUFFERS (2 * CORE_MAX_LAYERS)
/* The model's buffers in layer order into out (room for CORE_MAX_BUFFERS);
 * returns how many. */
int core_model_buffers(const core_model *m, core_buffer_view *out);
/* Multiply-adds of one forward pass of one example (for GFLOP/s figures). */
double core_model_flops(const core_model *m);

#endif
