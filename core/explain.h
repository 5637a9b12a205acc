/*
 * explain.h - is the model looking at the right pixels? Gradient-based
 * explanations and how fragile they are.
 *
 *   saliency    dz_c/dx (Simonyan et al. 2014), z_c the logit of class c
 *   smoothgrad  the mean of dz_c/dx over `samples` copies of x with
 *               Gaussian noise of std `sigma` (a fraction of the [0, 1]
 *               pixel range; Smilkov et al. 2017)
 *   ig          Integrated Gradients (Sundararajan et al. 2017):
 *               (x - x') * mean_k dz_c/dx at x' + (k - 1/2)/m (x - x'),
 *               k = 1..m (the midpoint rule), baseline x' = 0. Completeness:
 *               the attributions sum to z_c(x) - z_c(x') up to the Riemann
 *               error, which shrinks as 1/m^2 between ReLU kinks.
 *   guided      guided backpropagation (Springenberg et al. 2015): dz_c/dx
 *               with every ReLU passing back only positive gradients
 *               where its input was positive (core_model's guided mode)
 *   gaussian    the Gaussian local surrogate, and
 *   lime        LIME on a grid of patches (surrogate.h): fitted, not
 *               differentiated; the class probability by default
 *
 * Attributions have the input's shape and sign; a heat map is the sum over
 * channels of their absolute values (core_explain_map). The class is the
 * model's prediction unless the caller names one.
 *
 * Fragility (Ghorbani et al. 2019): how much the saliency map of x moves
 * under a small perturbation delta (L-inf radius eps, pixels kept in
 * [0, 1]) that keeps the predicted label. Maps are compared by the overlap
 * of their top-k pixels (k = topk x pixels), Spearman's rank correlation and
 * the shift of their centre of mass (pixels). Two deltas: a random sign
 * perturbation of size eps, and an adversarial one found by random search
 * from it: `tries` times, a fresh sign step of eps/2 is added and projected,
 * and kept when the label holds and the top-k overlap drops. (Ghorbani's
 * attack follows the gradient of the map itself, which is zero almost
 * everywhere for a ReLU network; a search needs no second derivatives.)
 * Only examples whose random delta keeps the label count, so for each of
 * them the adversarial overlap is at most the random one. The maps are
 * those of any method (cfg.map; saliency by default), drawn with the same
 * noise at x and at x + delta, so only delta moves them.
 */
#ifndef CORE_EXPLAIN_H
#define CORE_EXPLAIN_H

#include "model.h"
#include "surrogate.h"

/* One list for the enum and the names. */
#define CORE_EXPLAIN_METHODS(X) \
    X(SALIENCY, saliency) X(SMOOTHGRAD, smoothgrad) X(IG, ig) X(GUIDED, guided) \
    X(GAUSSIAN, gaussian) X(LIME, lime)

typedef enum {
#define X(tag, name) CORE_EXPLAIN_##tag,
    CORE_EXPLAIN_METHODS(X)
#undef X
    CORE_EXPLAIN_NMETHODS
} core_explain_method;

typedef struct {
    core_explain_method method;
    int samples;     /* SmoothGrad copies (25) */
    float sigma;     /* SmoothGrad noise std, fraction of the pixel range (0.15) */
    int steps;       /* IG steps (64) */
    core_surrogate_cfg sur;   /* gaussian, lime (surrogate.h) */
    uint64_t seed;   /* also sur.seed's, set by core_explain */
} core_explain_cfg;

core_explain_cfg core_explain_defaults(core_explain_method method);
const char *core_explain_method_name(core_explain_method m);   /* "saliency", ... */

/* A comma-separated list of methods ("saliency,guided,lime") as a bit mask
 * (bit m for method m), and back; "all" names every method. */
#define CORE_EXPLAIN_ALL ((1u << CORE_EXPLAIN_NMETHODS) - 1)
int core_explain_methods_parse(const char *list, unsigned *mask, char *err);
void core_explain_methods_format(unsigned mask, char *buf, size_t len);

/* What one map of one example costs: forward and backward passes. */
void core_explain_cost(const core_explain_cfg *cfg, int *forward, int *backward);

/* Attributions of n examples (n <= the model's reserved batch) for class
 * cls[i], or the predicted class when cls is NULL; pred (may be NULL) gets
 * the predictions. attr: n x input size. Returns 0 or -1 (a class out of
 * range, out of memory). */
int core_explain(const core_explain_cfg *cfg, core_model *m, const float *x, const int *cls,
                 int n, uint64_t stream, float *attr, int *pred, char *err);

/* Heat maps: map[i] (H x W) = sum over channels of |attr[i]|. */
void core_explain_map(const float *attr, int n, core_shape s, float *map);

/* z_c(x) for each example: the logit the attributions explain. */
int core_explain_logit(core_model *m, const float *x, const int *cls, int n, float *out,
                       char *err);

typedef struct {
    float eps;       /* L-inf radius of delta (8/255) */
    float topk;      /* fraction of pixels in the top-k sets (0.02) */
    int tries;       /* random-search steps of the adversarial delta (16) */
    core_explain_cfg map;   /* the maps compared (saliency) */
    uint64_t seed;
} core_fragility_cfg;

typedef struct {
    int n;           /* examples whose random delta kept the label */
    int k;           /* pixels in a top-k set */
    double topk_random, spearman_random, com_random;   /* means over n */
    double topk_adv, spearman_adv, com_adv;
} core_fragility;

core_fragility_cfg core_fragility_defaults(void);
/* Measure on n examples (n <= the model's reserved batch). */
int core_fragility_measure(const core_fragility_cfg *cfg, core_model *m, const float *x, int n,
                           uint64_t stream, core_fragility *out, char *err);

/* The comparisons, on two maps of p pixels (exposed for tests). */
double core_topk_overlap(const float *a, const float *b, int p, int k);
double core_spearman(const float *a, const float *b, int p);
double core_com_shift(const float *a, const float *b, int h, int w);

#endif
