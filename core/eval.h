/*
 * eval.h - robustness evaluation as a library: a model's clean check and an
 * attack or a suite at each eps, per example, over any range [a, b) of a
 * set of examples, so that the work can be split (batch by batch, or one
 * range per process) and the per-example results merged; and the clean +
 * PGD-20 evaluation that closes a training run. The daemon's evaluation
 * jobs (daemon/worker.c) and bin/advbench call these; calibration,
 * corruptions and explanations then work on the same model
 * (daemon/extras.c).
 *
 * Randomness: the batch of examples [s, s + batch) at eps index e draws
 * from stream CORE_STREAM_USER + (e << 32) + s (the suite's members and an
 * attack's restarts derive theirs from it), so a range that starts on a
 * multiple of the batch gives the same bits as the whole set, whoever runs
 * it. Accuracies are computed from the merged per-example rows.
 */
#ifndef CORE_EVAL_H
#define CORE_EVAL_H

#include <stdint.h>

#include "attack.h"
#include "corrupt.h"
#include "data.h"
#include "dist.h"
#include "indicators.h"
#include "model.h"
#include "rng.h"

#define CORE_EVAL_EPS_MAX 16

typedef struct {
    int use_suite;              /* 1: the suite named `suite`; 0: `attack` */
    char suite[32];
    core_attack_cfg attack;     /* its eps and seed are replaced by eps[e] and seed */
    float eps[CORE_EVAL_EPS_MAX];
    int neps;                   /* 1 to CORE_EVAL_EPS_MAX */
    uint64_t seed;
    int batch;                  /* examples per attack call; ranges start on a multiple */
    int keep_adv_logits;        /* single attack: the adversarial logits at eps[0] */
} core_eval_cfg;

/* After each batch: eps index e, examples done of the range at that eps.
 * A non-zero return stops the evaluation (core_eval_range returns 1). */
typedef struct {
    int (*on_batch)(void *ctx, int e, int done, int total);
    void *ctx;
} core_eval_hooks;

/* Per-example results of a set of n examples; a range fills its part, and
 * the rest stays zero (so that ranges' results also merge by a sum). */
typedef struct {
    int n, neps, nclass;
    uint8_t *clean_ok;          /* n: 1 = classified correctly */
    uint8_t *survival;          /* neps rows of n: 1 = correct under the attack at eps[e] */
    float *adv_logits;          /* n x nclass at eps[0] (keep_adv_logits), else NULL */
} core_eval_out;

int core_eval_out_alloc(const core_eval_cfg *c, int n, int nclass, core_eval_out *o, char *err);
void core_eval_out_free(core_eval_out *o);

/* Examples [a, b) of x (n x the model's input) and y: clean check, then
 * each eps in turn; the model must be reserved and ws sized for
 * c->batch. 0 done, 1 stopped by the hook, -1 on an error. */
int core_eval_range(const core_eval_cfg *c, core_model *m, core_attack_ws *ws, const float *x,
                    const int *y, int a, int b, const core_eval_hooks *h, core_eval_out *o,
                    char *err);

/* Where an interrupted evaluation resumes: eps index e, the batch that
 * starts at example s (e = neps: only the clean check is left). */
typedef struct {
    int e, s;
} core_eval_at;

/* The point after the hook's (e, done, total) of a range from a: what a
 * resumed run starts at. */
static inline core_eval_at core_eval_next(int e, int done, int total, int a)
{
    return done >= total ? (core_eval_at){e + 1, a} : (core_eval_at){e, a + done};
}

/* core_eval_range from `from` on: o holds the rows of the batches before
 * it (as a stopped run left them, or loaded); the randomness of each
 * batch is keyed by its place, so the rows end as an uninterrupted run's.
 * The clean check runs again on the whole range (it is one pass). */
int core_eval_range_from(const core_eval_cfg *c, core_model *m, core_attack_ws *ws,
                         const float *x, const int *y, int a, int b, core_eval_at from,
                         const core_eval_hooks *h, core_eval_out *o, char *err);

/* Every rank's rows of o summed into every rank's o (each zero outside
 * its range): the rows of the whole set. Nothing for one process. */
int core_eval_out_sum(core_eval_out *o, core_dist *d, char *err);

/* Copy examples [a, b) of src's rows into dst's (another process's part). */
void core_eval_merge(core_eval_out *dst, const core_eval_out *src, int a, int b);

double core_eval_clean_acc(const core_eval_out *o);
double core_eval_robust_acc(const core_eval_out *o, int e);
static inline uint8_t *core_eval_survival(const core_eval_out *o, int e)
{
    return o->survival + (size_t)e * (size_t)o->n;
}

/* The logits (n x the model's classes) and labels of examples idx[0..n)
 * of ds, gathered and scored a capacity at a time: what a temperature is
 * fitted on. */
int core_eval_logits(core_model *m, const core_dataset *ds, const int *idx, int n, float *logits,
                     int *y, char *err);

/* Corruption accuracy (corrupt.h: every family at severities 1 to
 * CORE_SEVERITIES) of examples [a, b) of x, y: the correct counts into
 * correct[family][severity - 1], added to what is there, so ranges (or
 * processes) merge by a sum. The corruptions' noise of the batch at s is
 * keyed by (seed, family, severity, s), so a range that starts on a
 * multiple of batch draws the whole set's. The hook (may be NULL) is
 * asked after each batch with e = family x CORE_SEVERITIES + severity -
 * 1; 0 done, 1 stopped by it, -1 on an error. */
/* The corruptions' random streams (the pictures of `advctl images` draw
 * the same), apart from the attacks'. */
#define CORE_EVAL_STREAM_CORRUPT (CORE_STREAM_USER + (2ULL << 40))

int core_eval_corruptions(core_model *m, const float *x, const int *y, int a, int b, int batch,
                          uint64_t seed, const core_eval_hooks *h,
                          double correct[CORE_NCORRUPTIONS][CORE_SEVERITIES], char *err);

/* Indicators of attack failure (indicators.h) at eps[e] on examples
 * [0, n) (n at most c->batch: a sample, they cost about two attacks): one
 * entry per gradient attack, c's own or each of its suite's, into ind[]
 * and kinds[] (CORE_SUITE_MAX entries). Returns how many, or -1. */
int core_eval_indicators(const core_eval_cfg *c, core_model *m, core_attack_ws *ws,
                         const float *x, const int *y, int n, int e, core_indicators *ind,
                         core_attack_kind *kinds, char *err);

/* The evaluation that closes a training run (the daemon's and advbench
 * train's): the clean check and PGD-20 (default step, random start) on
 * the whole of a data set, in batches of `batch` through a ws sized for
 * it, as core_eval_range's rows (out, allocated here: free it) like any
 * evaluation's. With dist, each rank evaluates its whole batches
 * (core_dist_range) and the rows are summed: every rank gets the
 * one-process rows. */
typedef struct {
    float eps;
    core_norm norm;
    uint64_t seed;
    int batch;
    core_dist *dist;            /* NULL: one process */
} core_final_cfg;

int core_eval_final(const core_final_cfg *c, core_model *m, core_attack_ws *ws,
                    const core_dataset *ds, core_eval_out *out, char *err);

#endif
