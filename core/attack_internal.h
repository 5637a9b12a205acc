/*
 * attack_internal.h - what attack.c, apgd.c, square.c, fab.c and suite.c share:
 * the workspace layout, the random-counter scheme and the small helpers
 * (margin, random points, steps, row gathering) that each exist once.
 *
 * Random numbers. Every draw is core_rng_*(seed, stream, counter) with
 *   counter = attack_key(use, id, round) + element
 * where use names the purpose (random start, APGD start, Square's windows),
 * id is the example's index within the caller's batch (kept through the
 * compactions of the suite and of APGD-T, so an example draws the same
 * numbers whichever others survive), round is the restart (PGD), the
 * restart-and-target round (APGD) or the iteration (Square), and element
 * is the pixel or the slot within one draw. The key is a 64-bit mix, so
 * runs of 2^24 consecutive elements of different keys practically never
 * overlap.
 */
#ifndef CORE_ATTACK_INTERNAL_H
#define CORE_ATTACK_INTERNAL_H

#include "attack.h"
#include "rng.h"

/* Scratch for every attack, sized at creation for cap examples. Rows are
 * cap * dim floats. Which function uses what:
 *   row[0..5]  the iterates: PGD's current restart (row[0]), APGD's
 *              x_k, x_{k-1}, proposal, best point, its gradient, the
 *              misclassified iterate; Square's candidates (row[0]); FAB's
 *              x_k, closest adversarial point, two projections, scratch
 *   grad, dlogits, loss  one forward/backward of the engine
 *   ex_*       per-example state of PGD restarts, APGD, Square and FAB
 *   c*         the attack-level compaction (APGD and FAB rounds)
 *   s*         the suite-level compaction
 *   trace      indicators.c's hook into APGD's and FAB's paths (NULL: none)
 */
struct core_attack_ws {
    int cap, nclass;
    size_t dim;
    /* Called for every point of APGD's and FAB's first round (APGD: its
     * start, then each iteration; FAB: each iterate, then the last) with
     * the examples' ids (their places in the caller's batch), their losses
     * and whether each point is adversarial (FAB: within eps). */
    void (*trace)(void *ctx, const int *ids, const float *loss, const uint8_t *fooled, int n);
    void *trace_ctx;
    float *row[6];
    float *grad, *dlogits, *logits, *loss;
    float *ex_best, *ex_prev, *ex_last, *ex_eta;
    int *ex_count;
    uint8_t *ex_flag, *ex_done, *ex_alive;
    float *cx, *cout;
    int *cy, *ct, *cids, *cidx;
    uint8_t *cfool;
    float *sx, *sout;
    int *sy, *sids, *sidx;
    uint8_t *srob, *salive;
};

enum { ATTACK_USE_START = 1, ATTACK_USE_APGD, ATTACK_USE_SQUARE_INIT, ATTACK_USE_SQUARE };

static inline uint64_t attack_key(int use, uint64_t id, uint64_t round)
{
    return core_mix64(core_mix64(core_mix64((uint64_t)use) + id) + round);
}

/* The example id used for random counters: ids[i], or i without a map. */
static inline uint64_t attack_id(const int *ids, int i)
{
    return ids ? (uint64_t)ids[i] : (uint64_t)i;
}

/* z_y - max_{j != y} z_j (<= 0: fooled); *other gets that j when not NULL. */
float attack_margin(const float *z, int c, int y, int *other);

/* A random point around x written to out and projected: on_sphere = 0:
 * uniform in the eps-ball (L-inf: U(-eps, eps) per pixel; L2: a normal
 * direction with radius eps * u^(1/dim), uniform in volume); on_sphere = 1:
 * on its surface (t / ||t|| * eps, APGD's start). */
void attack_random_point(core_norm norm, float eps, int on_sphere, const float *x, float *out,
                         int n, size_t dim, uint64_t seed, uint64_t stream, int use,
                         const int *ids, uint64_t round);

/* out = x + a_i * dir(g): dir = sign(g) (L-inf) or g / ||g||_2 per example;
 * a_i = alpha_i[i] when alpha_i is not NULL, else alpha. out may be x. */
void attack_step(core_norm norm, float alpha, const float *alpha_i, const float *x,
                 const float *g, float *out, int n, size_t dim);

/* The loss callback of every gradient attack (PGD, FGSM, APGD). */
typedef struct {
    core_attack_loss loss;
    const int *y, *target; /* target: NULL for untargeted */
} attack_loss_ctx;

void attack_loss_fn(void *ctx, const float *logits, int n, int c, float *dlogits,
                    float *per_example);

/* Indices of alive[i] != 0 into idx; returns their count. */
int attack_compact(const uint8_t *alive, int n, int *idx);
void attack_gather(float *dst, const float *src, const int *idx, int k, size_t dim);
void attack_scatter(float *dst, const float *src, const int *idx, int k, size_t dim);

/* core_attack_run with example ids for the random counters (NULL: 0..n-1). */
int attack_run_ids(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws,
                   const float *x, const int *y, const int *target, int n, uint64_t stream,
                   const int *ids, float *x_adv, uint8_t *robust, char *err);

/* Before the rounds of APGD and FAB-T: the clean logits into ws->logits,
 * x_adv = x, and ws->ex_alive[i] set for the examples worth attacking
 * (classified correctly). */
void attack_rounds_begin(core_model *m, core_attack_ws *ws, const float *x, const int *y, int n,
                         float *x_adv);

/* The rounds of APGD and FAB-T: compacts the examples with alive[i] set
 * into ws->cx / cy / cids / cidx (ws->ct: each one's rank-th highest clean
 * logit, rank 1 the runner-up, from the n x nclass ws->logits); returns
 * their count. */
int attack_round_gather(core_attack_ws *ws, const float *x, const int *y, const int *ids,
                        const uint8_t *alive, int n, int rank);

/* The attacks of apgd.c, square.c and fab.c, on a checked configuration. */
int attack_apgd(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
                const int *y, int n, uint64_t stream, const int *ids, float *x_adv, char *err);
int attack_square(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
                  const int *y, int n, uint64_t stream, const int *ids, float *x_adv,
                  char *err);
int attack_fab(const core_attack_cfg *cfg, core_model *m, core_attack_ws *ws, const float *x,
               const int *y, int n, uint64_t stream, const int *ids, float *x_adv, char *err);

#endif
