/*
 * loss.c - cross-entropy and CW margin losses (see loss.h).
 */
#include "loss.h"

#include <math.h>
#include <stddef.h>

int core_argmax(const float *row, int c)
{
    int best = 0;
    for (int j = 1; j < c; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

int core_count_correct(const float *logits, const int *y, int n, int c)
{
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok += core_argmax(logits + (size_t)i * c, c) == y[i];
    return ok;
}

/* Softmax of one row, shifted by its maximum; returns log(sum(exp(z - max))). */
static float softmax_row(const float *z, float *p, int c, float *max_out)
{
    float mx = z[0];
    for (int j = 1; j < c; j++)
        mx = z[j] > mx ? z[j] : mx;
    float sum = 0.0f;
    for (int j = 0; j < c; j++) {
        p[j] = expf(z[j] - mx);
        sum += p[j];
    }
    for (int j = 0; j < c; j++)
        p[j] /= sum;
    *max_out = mx;
    return logf(sum);
}

void core_softmax(const float *logits, float *p, int n, int c)
{
    for (int i = 0; i < n; i++) {
        float mx;
        softmax_row(logits + (size_t)i * c, p + (size_t)i * c, c, &mx);
    }
}

float core_loss_ce(const float *logits, const int *y, int n, int c, float *dlogits,
                   float *per_example)
{
    double total = 0.0;
    float p[256]; /* data sets have at most CORE_MAX_CLASSES (256) classes */
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        float mx, lse = softmax_row(z, p, c, &mx);
        float loss = lse + mx - z[y[i]];
        total += loss;
        if (per_example)
            per_example[i] = loss;
        if (dlogits)
            for (int j = 0; j < c; j++)
                dlogits[(size_t)i * c + j] = (p[j] - (j == y[i])) / (float)n;
    }
    return (float)(total / n);
}

float core_loss_cw(const float *logits, const int *y, int n, int c, float kappa,
                   float *dlogits, float *per_example)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        int other = y[i] == 0 ? 1 : 0;
        for (int j = 0; j < c; j++)
            if (j != y[i] && z[j] > z[other])
                other = j;
        float margin = z[y[i]] - z[other] + kappa;
        float loss = margin > 0.0f ? -margin : 0.0f;
        total += loss;
        if (per_example)
            per_example[i] = loss;
        if (dlogits) {
            float *d = dlogits + (size_t)i * c;
            for (int j = 0; j < c; j++)
                d[j] = 0.0f;
            if (margin > 0.0f) {
                d[y[i]] = -1.0f / (float)n;
                d[other] = 1.0f / (float)n;
            }
        }
    }
    return (float)(total / n);
}
