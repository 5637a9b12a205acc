/*
 * calib.h - does a model know when it is wrong? Calibration of its
 * softmax confidences (Guo et al. 2017, "On Calibration of Modern Neural
 * Networks").
 *
 *   ECE    expected calibration error over CORE_CALIB_BINS equal-width bins
 *          of the top-class confidence: sum_b |B_b|/N |conf_b - acc_b|,
 *          empty bins skipped
 *   NLL    mean -log p_y
 *   Brier  mean over examples of sum_k (p_k - [k == y])^2
 *
 * All take logits (n x c) and a temperature T that divides them first (1:
 * the model as it is). Temperature scaling fits the one T that minimises
 * the NLL on held-out examples; it never changes a prediction.
 */
#ifndef CORE_CALIB_H
#define CORE_CALIB_H

#include "common.h"

#define CORE_CALIB_BINS 15

typedef struct {
    int n;
    double accuracy, ece, nll, brier;
    /* The reliability diagram: bin b covers confidences (b/B, (b+1)/B]. */
    int count[CORE_CALIB_BINS];
    double confidence[CORE_CALIB_BINS], bin_accuracy[CORE_CALIB_BINS]; /* means; 0 when empty */
} core_calibration;

void core_calibration_measure(const float *logits, const int *y, int n, int c, double temperature,
                              core_calibration *out);

/* The temperature in [CORE_TEMP_MIN, CORE_TEMP_MAX] minimising the mean
 * NLL of logits / T: Newton's method on 1/T, in which the NLL is convex,
 * safeguarded by bisection. 1 when n == 0. */
#define CORE_TEMP_MIN 0.05
#define CORE_TEMP_MAX 20.0
double core_temperature_fit(const float *logits, const int *y, int n, int c);

#endif
