/*
 * drift.h - has the data a model sees drifted from its reference? Label-free
 * tests on a model's outputs (the practice of alibi-detect, Evidently and
 * NannyML), pure functions over arrays:
 *
 *   KS     two-sample Kolmogorov-Smirnov: D = sup |F_a - F_b|, p from the
 *          asymptotic Kolmogorov distribution at sqrt(ne) D with Stephens'
 *          small-sample correction (ne = na nb / (na + nb))
 *   chi2   homogeneity of two histograms (a 2 x k table), empty columns
 *          dropped; p = Q(dof / 2, chi2 / 2), the regularised upper
 *          incomplete gamma function
 *   MMD    unbiased MMD^2 (Gretton et al. 2012) with the Gaussian kernel
 *          k(a, b) = exp(-|a - b|^2 / h), h the median squared distance of
 *          the pooled points (median heuristic); p by a permutation test,
 *          (1 + #{perm >= observed}) / (1 + perms), at most max_points per
 *          side, drawn without replacement with the seeded generator
 *   CBPE   NannyML's confidence-based performance estimate of accuracy: the
 *          mean calibrated top-class probability
 *   ATC    average thresholded confidence (Garg et al. 2022): the threshold
 *          t on the reference's calibrated confidences above which the
 *          reference's fraction equals its accuracy; the estimate is the
 *          window's fraction above t
 *
 * core_drift_test runs them all on a window against a reference (logits
 * and penultimate features of each example) and decides the alarm: each of
 * the CORE_DRIFT_NTESTS - 1 statistical tests at alpha / (that count)
 * (Bonferroni, so a clean window alarms with probability <= alpha; BBSD
 * also divides by the classes: its smallest per-class p-value), and CBPE
 * outside the mean +- sigma sd of the reference's own windows.
 */
#ifndef CORE_DRIFT_H
#define CORE_DRIFT_H

#include "common.h"
#include "model.h"

/* ------------------------------------------------------------ tests */

/* Two-sample KS of a[0..na) and b[0..nb) (copies are sorted). -1: out of
 * memory or an empty sample. */
int core_ks_2samp(const float *a, int na, const float *b, int nb, double *stat, double *p,
                  char *err);
/* Kolmogorov's survival function Q(lambda) = 2 sum (-1)^(j-1) exp(-2 j^2 lambda^2). */
double core_kolmogorov_q(double lambda);

/* Q(a, x) = Gamma(a, x) / Gamma(a), a > 0, x >= 0. */
double core_gamma_q(double a, double x);

/* Chi-square homogeneity of counts a[0..k) and b[0..k): statistic, p-value
 * and degrees of freedom (columns with a count, minus one; p = 1 at 0). */
void core_chi2_2hist(const double *a, const double *b, int k, double *stat, double *p, int *dof);

typedef struct {
    double mmd2;       /* unbiased estimate on the points used */
    double p;
    double bandwidth;  /* h, the median squared distance */
    int nx, ny;        /* points used per side */
} core_mmd;

/* MMD test of x (nx x d) against y (ny x d). */
int core_mmd_test(const float *x, int nx, const float *y, int ny, int d, int perms,
                  int max_points, uint64_t seed, core_mmd *out, char *err);

/* The ATC threshold of n reference scores whose fraction correct is acc,
 * and the fraction of scores above a threshold. */
double core_atc_threshold(const float *score, int n, double acc);
double core_fraction_above(const float *score, int n, double t);

/* ------------------------------------------------------- per example */

#define CORE_DRIFT_MAX_CLASSES 256

/* What a model said about n examples: logits (n x c) and the input of its
 * last layer (n x d, the penultimate features). */
typedef struct {
    int n, c, d;
    const float *logits;
    const float *feat;
} core_drift_set;

/* The model's logits and penultimate features of n examples x (batches of
 * at most m's capacity). feat holds n x core_drift_feat_dim(m). */
int core_drift_feat_dim(const core_model *m);
void core_drift_outputs(core_model *m, const float *x, int n, float *logits, float *feat);

/* Per-example summaries of logits at temperature T: the softmax at T = 1
 * (probs, n x c; may be NULL), its entropy and top-class probability, the
 * calibrated top-class probability (softmax of logits / T), the margin
 * between the two largest calibrated probabilities, the argmax. Any output
 * may be NULL. */
void core_drift_summaries(const float *logits, int n, int c, double T, float *probs,
                          float *entropy, float *conf, float *cal_conf, float *margin, int *pred);

/* --------------------------------------------------------- a window */

/* X(ENUM, name): the decisions a window's alarm is made of. */
#define CORE_DRIFT_TESTS(X)                                                                     \
    X(BBSD, "bbsd") X(ENTROPY, "entropy") X(CONFIDENCE, "confidence") X(CHI2, "chi2")           \
    X(MMD, "mmd") X(CBPE, "cbpe")

typedef enum {
#define CORE_DRIFT_ENUM(e, name) CORE_DRIFT_##e,
    CORE_DRIFT_TESTS(CORE_DRIFT_ENUM)
#undef CORE_DRIFT_ENUM
    CORE_DRIFT_NTESTS
} core_drift_kind;

const char *core_drift_test_name(core_drift_kind k);

typedef struct {
    double alpha;        /* significance of a window's alarm: 0.05 */
    int permutations;    /* MMD: 100 */
    int max_points;      /* MMD: points per side, 1000 */
    double cbpe_sigma;   /* CBPE alarm band in reference standard deviations: 3 */
    int cbpe_windows;    /* reference windows drawn for that band: 200 */
    uint64_t seed;
} core_drift_cfg;

void core_drift_cfg_defaults(core_drift_cfg *c);

typedef struct {
    int n;
    double bbsd_stat, bbsd_p;  /* the class with the smallest p-value */
    int bbsd_class;
    double entropy_stat, entropy_p, conf_stat, conf_p;
    double chi2, chi2_p;
    int chi2_dof;
    core_mmd mmd;
    double cbpe, cbpe_mean, cbpe_sd;   /* estimate; the reference windows' band */
    double atc, atc_threshold, ref_accuracy;
    double margin, ref_margin;         /* mean calibrated top-two margin */
    unsigned fired;                    /* bit k: test k decided for drift */
    int alarm;
} core_drift_result;

/* The window win against the reference ref, whose examples' correctness
 * (1 / 0) is ref_correct; T is the fitted temperature. */
int core_drift_test(const core_drift_set *ref, const uint8_t *ref_correct,
                    const core_drift_set *win, double T, const core_drift_cfg *cfg,
                    core_drift_result *out, char *err);

/* ------------------------------------------------------ "looks like" */

/* A label-free profile of a set: histograms of the calibrated confidence
 * and of the normalised entropy (CORE_PROFILE_BINS each), the predicted
 * class fractions (c) and the mean margin. core_drift_profile_len(c)
 * floats. */
#define CORE_PROFILE_BINS 10
int core_drift_profile_len(int c);
void core_drift_profile(const float *logits, int n, int c, double T, float *profile);
/* L1 distance of two profiles. */
double core_drift_profile_dist(const float *a, const float *b, int c);

/* Shift-matched ATC. Plain ATC takes its threshold from the reference, so
 * a shift that lowers every confidence but keeps the ranking (contrast)
 * reads as a collapse of accuracy. The daemon knows labelled shifted sets
 * (each corruption at each severity, PGD, made from the held-out split):
 * the window's estimate takes the threshold of the set whose profile is
 * nearest to the window's. */
typedef struct {
    const float *profile;       /* core_drift_profile_len(c) */
    double accuracy, threshold; /* of the labelled set; core_drift_atc_of */
} core_drift_shift;

/* The ATC threshold of a labelled set (logits n x c, at T) and its
 * accuracy (either may be NULL). */
void core_drift_atc_of(const float *logits, const int *y, int n, int c, double T,
                       double *threshold, double *accuracy);
/* The shift nearest to the window (logits n x c) and the window's
 * fraction above that shift's threshold; -1 when nshift is 0. */
int core_drift_matched_atc(const core_drift_shift *shifts, int nshift, const float *logits, int n,
                           int c, double T, double *estimate);

#endif
