/*
 * square.c - Square Attack, L-inf (Andriushchenko et al. 2020).
 *
 * Score-based: only forward passes, never a gradient. The loss is the
 * margin z_y - max_{j != y} z_j (attack_margin), minimised.
 *   - init: vertical stripes, x + eps * s with one random sign per
 *     (channel, column), clipped to [0, 1] (1 query);
 *   - each iteration, for every example still robust: a square window of
 *     side max(round(sqrt(p H W)), 1) (at most the image) at a random place,
 *     set to x + eps * s_c with one random sign per channel (if that would
 *     change no pixel, the opposite signs: the original redraws until
 *     something changes); the candidate is kept when its margin is lower;
 *     an example stops once its margin is <= 0;
 *   - p starts at p_init and halves after iterations 10, 50, 200, 500, 1000,
 *     2000, 4000, 6000, 8000 of a 10 000 budget, the schedule rescaled to
 *     the budget (as AutoAttack's rescale_schedule).
 * The budget cfg->queries counts every forward of an example, the init
 * included, so there are queries - 1 iterations. All candidates of one
 * iteration go through the model in one batch.
 */
#include "attack_internal.h"
#include "common.h"

#include <math.h>
#include <string.h>

/* p at iteration it of a budget of `queries`. */
static float square_p(int it, int queries, float p_init)
{
    static const int at[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    int scaled = (int)((double)it / queries * 10000.0);
    float p = p_init;
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++)
        if (scaled > at[k])
            p *= 0.5f;
    return p;
}

static void square_init(const core_attack_cfg *cfg, core_shape s, const float *x, float *out,
                        int n, uint64_t stream, const int *ids)
{
    size_t dim = core_shape_size(s), plane = (size_t)s.h * s.w;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        uint64_t key = attack_key(ATTACK_USE_SQUARE_INIT, attack_id(ids, i), 0);
        for (size_t j = 0; j < dim; j++) {
            size_t ch = j / plane, col = j % (size_t)s.w;
            float sign = core_rng_uniform(cfg->seed, stream, key + ch * s.w + col) < 0.5f ? -1.0f : 1.0f;
            out[(size_t)i * dim + j] = x[(size_t)i * dim + j] + cfg->eps * sign;
        }
    }
    core_project(CORE_NORM_LINF, cfg->eps, x, out, n, dim);
}

/* Writes into cand the current best of example i with one window changed. */
static void square_candidate(const core_attack_cfg *cfg, core_shape s, int side,
                             const float *xi, const float *best, float *cand, uint64_t stream,
                             uint64_t id, int it)
{
    size_t dim = core_shape_size(s), plane = (size_t)s.h * s.w;
    uint64_t key = attack_key(ATTACK_USE_SQUARE, id, (uint64_t)it);
    int vh = (int)core_rng_below(cfg->seed, stream, key, (uint64_t)(s.h - side + 1));
    int vw = (int)core_rng_below(cfg->seed, stream, key + 1, (uint64_t)(s.w - side + 1));
    memcpy(cand, best, dim * sizeof(float));
    for (int flip = 0; flip < 2; flip++) {
        int changed = 0;
        for (int ch = 0; ch < s.c; ch++) {
            float sign = core_rng_uniform(cfg->seed, stream, key + 2 + (uint64_t)ch) < 0.5f ? -1.0f : 1.0f;
            sign = flip ? -sign : sign;
            for (int r = vh; r < vh + side; r++)
                for (int q = vw; q < vw + side; q++) {
                    size_t j = ch * plane + (size_t)r * s.w + q;
                    float v = fminf(fmaxf(xi[j] + cfg->eps * sign, 0.0f), 1.0f);
                    changed |= v != best[j];
                    cand[j] = v;
                }
        }
        if (changed)
            return;
    }
}

int attack_square(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
                  const int *y, int n, uint64_t stream, const int *ids, float *x_adv,
                  char *err)
{
    core_shape s = m->in;
    size_t dim = ws->dim;
    int c = m->nclass;
    float *margin = ws->ex_best, *cand = ws->row[0];
    int *idx = ws->cidx;

    square_init(cfg, s, x, x_adv, n, stream, ids);
    const float *z = core_model_forward(m, x_adv, n);
    for (int i = 0; i < n; i++)
        margin[i] = attack_margin(z + (size_t)i * c, c, y[i], NULL);

    int maxside = s.h < s.w ? s.h : s.w;
    for (int it = 0; it < cfg->queries - 1; it++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (margin[i] > 0.0f)
                idx[k++] = i;
        if (k == 0)
            break;
        float p = square_p(it, cfg->queries, cfg->p_init);
        int side = (int)lroundf(sqrtf(p * (float)(s.h * s.w)));
        side = side < 1 ? 1 : side > maxside ? maxside : side;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < k; t++) {
            int i = idx[t];
            square_candidate(cfg, s, side, x + (size_t)i * dim, x_adv + (size_t)i * dim,
                             cand + (size_t)t * dim, stream, attack_id(ids, i), it);
        }
        z = core_model_forward(m, cand, k);
        for (int t = 0; t < k; t++) {
            int i = idx[t];
            float mg = attack_margin(z + (size_t)t * c, c, y[i], NULL);
            if (mg < margin[i]) {
                margin[i] = mg;
                memcpy(x_adv + (size_t)i * dim, cand + (size_t)t * dim, dim * sizeof(float));
            }
        }
    }
    (void)err;
    return 0;
}
