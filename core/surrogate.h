/*
 * surrogate.h - local surrogate explanations: a linear model fitted to the
 * network's answers on perturbed copies of x, its coefficients the map.
 *
 *   gaussian  Z = (eps / sigma, f(x + eps)), eps ~ N(0, sigma^2) i.i.d. per
 *             input element, `samples` draws, equal weights. The
 *             coefficient of element p, divided by sigma, is the slope of f
 *             along p: as sigma -> 0 it tends to df/dx_p, the saliency of f
 *             (a test checks it).
 *   lime      Ribeiro et al. 2016 on a grid of `patch` x `patch` pixel
 *             squares: sample 0 keeps every patch, the others switch each
 *             patch off with probability 1/2 (its pixels replaced by grey
 *             0.5 or by a 5x5 box blur of x); weight exp(-D^2 / width^2),
 *             D the cosine distance between the on/off mask and the
 *             all-on mask, 1 - sqrt(on / patches), as the LIME paper does
 *             for images and text.
 *
 * f is the explained class's softmax probability (as LIME fits it) or its
 * logit (target). The fit is weighted ridge regression with an intercept
 * on centred features, weights normalised to sum 1, so lambda reads the
 * same for any sample count: (Z'WZ + lambda I) beta = Z'W y, solved by a
 * Cholesky factorisation of our own in double (the systems are at most a
 * few thousand unknowns, solved once per example; a 40-line solver beats a
 * LAPACK dependency for that). With A = W^1/2 (Z - mean) and
 * b = W^1/2 (y - mean), the system is (A'A + lambda I) beta = A'b, d x d;
 * with more features than samples the same solution comes from the dual
 * (AA' + lambda I) alpha = b, beta = A'alpha, s x s. The Gram matrix is
 * one sgemm (gemm.h). The fit's weighted R^2 says how faithful the
 * surrogate is near x; it is measured on samples/5 (at least 8) further
 * draws held out of the fit, since with more features than samples (the
 * Gaussian form on 784 pixels and 500 draws) the fit interpolates its own
 * samples and their R^2 is 1 whatever the model.
 *
 * Attributions have the input's shape: gaussian beta_p / sigma per
 * element; lime beta_patch / C on every pixel and channel of the patch, so
 * core_explain_map shows |beta_patch|.
 */
#ifndef CORE_SURROGATE_H
#define CORE_SURROGATE_H

#include "model.h"

typedef enum { CORE_SURROGATE_GAUSSIAN, CORE_SURROGATE_LIME } core_surrogate_kind;
typedef enum { CORE_TARGET_PROBABILITY, CORE_TARGET_LOGIT } core_surrogate_target;
typedef enum { CORE_FILL_GREY, CORE_FILL_BLUR } core_lime_fill;

typedef struct {
    int gaussian_samples;  /* draws of the Gaussian form (500) */
    float sigma;           /* its noise std, fraction of the pixel range (0.02) */
    int lime_samples;      /* masks of LIME (300) */
    int patch;             /* LIME's patch side in pixels; 0: 4 up to 28 pixels, else 8 */
    float kernel_width;    /* LIME's kernel width on the cosine distance (0.25) */
    float lambda;          /* ridge penalty on the normalised system (1e-3) */
    int fill;              /* a core_lime_fill (grey) */
    int target;            /* a core_surrogate_target (probability) */
    uint64_t seed;
} core_surrogate_cfg;

core_surrogate_cfg core_surrogate_defaults(void);
int core_surrogate_cfg_check(const core_surrogate_cfg *c, char *err);
int core_lime_fill_parse(const char *s, int *out, char *err);
const char *core_lime_fill_name(int v);
int core_surrogate_target_parse(const char *s, int *out, char *err);
const char *core_surrogate_target_name(int v);

/* Model evaluations of one fit: the samples and the held-out draws. */
int core_surrogate_draws(int samples);

/* LIME's patch side for inputs of shape s, and the number of features of
 * a fit (patches, or input elements for the Gaussian form). */
int core_lime_patch(const core_surrogate_cfg *c, core_shape s);
int core_surrogate_features(const core_surrogate_cfg *c, core_surrogate_kind k, core_shape s);

/* Explain n examples (n <= the model's reserved batch) for class cls[i].
 * attr: n x input size; r2 (may be NULL): n held-out weighted R^2; coef (may
 * be NULL): n x features coefficients. Example i draws from stream + i
 * only, so a result does not depend on its batch. Returns 0 or -1. */
int core_surrogate_explain(const core_surrogate_cfg *c, core_surrogate_kind kind, core_model *m,
                           const float *x, const int *cls, int n, uint64_t stream, float *attr,
                           double *r2, float *coef, char *err);

/* Weighted ridge regression of y on the s x d features z (row-major) with
 * an intercept; w: s positive weights (NULL: equal). beta: d
 * coefficients. Returns 0, or -1 when the system is not positive definite
 * (lambda 0 and a constant feature) or memory runs out. */
int core_ridge_fit(const float *z, const double *y, const double *w, int s, int d,
                   double lambda, double *beta, double *intercept, double *r2, char *err);

/* The k features of largest |coef| (k <= d), largest first, ties by
 * index. */
void core_top_features(const float *coef, int d, int k, int *idx);

#endif
