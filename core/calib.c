/*
 * calib.c - ECE, NLL, Brier score and temperature scaling (calib.h).
 *
 * Sums are in double and in example order, so results do not depend on
 * threads; these run on at most a few tens of thousands of logits.
 */
#include "calib.h"

#include <math.h>
#include <string.h>

/* Softmax of z / T into p (c entries) and log p[y]. */
static double softmax_t(const float *z, int c, double inv_t, int y, double *p)
{
    double mx = -INFINITY, sum = 0.0;
    for (int k = 0; k < c; k++)
        mx = fmax(mx, z[k] * inv_t);
    for (int k = 0; k < c; k++)
        sum += p[k] = exp(z[k] * inv_t - mx);
    for (int k = 0; k < c; k++)
        p[k] /= sum;
    return z[y] * inv_t - mx - log(sum);
}

void core_calibration_measure(const float *logits, const int *y, int n, int c, double temperature,
                              core_calibration *out)
{
    double p[c > 0 ? c : 1], conf_sum[CORE_CALIB_BINS] = {0}, hit_sum[CORE_CALIB_BINS] = {0};
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n <= 0 || c <= 0)
        return;
    const double inv_t = 1.0 / temperature;
    double nll = 0.0, brier = 0.0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        nll -= softmax_t(logits + (size_t)i * c, c, inv_t, y[i], p);
        int top = 0;
        for (int k = 0; k < c; k++) {
            double d = p[k] - (k == y[i]);
            brier += d * d;
            if (p[k] > p[top])
                top = k;
        }
        int b = (int)ceil(p[top] * CORE_CALIB_BINS) - 1;
        b = b < 0 ? 0 : b >= CORE_CALIB_BINS ? CORE_CALIB_BINS - 1 : b;
        out->count[b]++;
        conf_sum[b] += p[top];
        hit_sum[b] += top == y[i];
        correct += top == y[i];
    }
    for (int b = 0; b < CORE_CALIB_BINS; b++) {
        if (!out->count[b])
            continue;
        out->confidence[b] = conf_sum[b] / out->count[b];
        out->bin_accuracy[b] = hit_sum[b] / out->count[b];
        out->ece += (double)out->count[b] / n * fabs(out->confidence[b] - out->bin_accuracy[b]);
    }
    out->accuracy = (double)correct / n;
    out->nll = nll / n;
    out->brier = brier / n;
}

/* d/dbeta and d2/dbeta2 of the mean NLL of beta * logits. */
static void nll_derivatives(const float *logits, const int *y, int n, int c, double beta,
                            double *d1, double *d2)
{
    double p[c];
    *d1 = *d2 = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        softmax_t(z, c, beta, y[i], p);
        double mean = 0.0, sq = 0.0;
        for (int k = 0; k < c; k++) {
            mean += p[k] * z[k];
            sq += p[k] * z[k] * z[k];
        }
        *d1 += mean - z[y[i]];
        *d2 += sq - mean * mean;
    }
    *d1 /= n;
    *d2 /= n;
}

double core_temperature_fit(const float *logits, const int *y, int n, int c)
{
    if (n <= 0 || c <= 0)
        return 1.0;
    double lo = 1.0 / CORE_TEMP_MAX, hi = 1.0 / CORE_TEMP_MIN, d1, d2;
    nll_derivatives(logits, y, n, c, lo, &d1, &d2);
    if (d1 >= 0.0)
        return CORE_TEMP_MAX;   /* the NLL only grows with beta: as flat as allowed */
    nll_derivatives(logits, y, n, c, hi, &d1, &d2);
    if (d1 <= 0.0)
        return CORE_TEMP_MIN;   /* it keeps falling: as sharp as allowed */
    double beta = 1.0 / 1.5;    /* Guo et al.'s starting T */
    for (int it = 0; it < 100 && hi - lo > 1e-12 * hi; it++) {
        nll_derivatives(logits, y, n, c, beta, &d1, &d2);
        if (d1 > 0.0)
            hi = beta;
        else
            lo = beta;
        double next = d2 > 0.0 ? beta - d1 / d2 : -1.0;
        if (!(next > lo && next < hi))
            next = 0.5 * (lo + hi);   /* Newton left the bracket: bisect */
        if (fabs(next - beta) <= 1e-12 * beta)
            break;
        beta = next;
    }
    return 1.0 / beta;
}
