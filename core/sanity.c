/*
 * sanity.c - the false-robustness checks and their probes (see sanity.h).
 */
#include "sanity.h"

#include "rng.h"
#include "train.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void core_warn(core_warnings *w, const char *fmt, ...)
{
    if (w->count >= CORE_WARN_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text[w->count++], CORE_WARN_LEN, fmt, ap);
    va_end(ap);
}

static double tolerance(const core_eval_point *a, const core_eval_point *b)
{
    int n = a->n < b->n ? a->n : b->n;
    return fmax(0.005, n > 0 ? 1.0 / n : 0.0);
}

static int same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static int is_white_box(const core_eval_point *p)
{
    return core_attack_white_box(p->attack);
}

/* b has at least a's steps and restarts, and more of one of them. */
static int more_effort(const core_eval_point *b, const core_eval_point *a)
{
    return b->steps >= a->steps && b->restarts >= a->restarts &&
           (b->steps > a->steps || b->restarts > a->restarts);
}

/* The rules for a pair in which b is noticeably more robust than a: each
 * names a reason why a must not have been the stronger one. */
static void check_pair(const core_eval_point *a, const core_eval_point *b, core_warnings *w)
{
    double gap = b->robust_acc - a->robust_acc;
    if (gap <= tolerance(a, b))
        return;
    int same_attack = same(a->attack, b->attack), same_eps = a->eps == b->eps;
    if (same_attack && b->eps > a->eps && b->steps == a->steps && b->restarts == a->restarts)
        core_warn(w, "robust accuracy rises with eps: %s %.1f%% at eps %g but %.1f%% at eps %g",
                  b->attack, 100 * b->robust_acc, b->eps, 100 * a->robust_acc, a->eps);
    if (same_attack && same_eps && more_effort(b, a))
        core_warn(w, "more iterations help the model: %s-%d x%d gives %.1f%%, "
                     "%s-%d x%d %.1f%% at eps %g",
                  b->attack, b->steps, b->restarts, 100 * b->robust_acc, a->attack, a->steps,
                  a->restarts, 100 * a->robust_acc, a->eps);
    if (same_eps && same(a->attack, "fgsm") && same(b->attack, "pgd"))
        core_warn(w, "fgsm is stronger than pgd at eps %g (%.1f%% vs %.1f%%): pgd may not converge",
                  a->eps, 100 * a->robust_acc, 100 * b->robust_acc);
    if (same_eps && same(a->attack, "noise") && is_white_box(b))
        core_warn(w, "random noise beats %s at eps %g by %.1f points: gradients may be masked",
                  b->attack, a->eps, 100 * gap);
}

static void check_black_box(const core_eval_point *p, int n, core_warnings *w)
{
    for (int i = 0; i < n; i++) {
        if (!same(p[i].attack, "square"))
            continue;
        const core_eval_point *best = NULL;
        for (int j = 0; j < n; j++)
            if (is_white_box(&p[j]) && p[j].eps == p[i].eps && p[j].norm == p[i].norm &&
                (!best || p[j].robust_acc < best->robust_acc))
                best = &p[j];
        if (best && best->robust_acc - p[i].robust_acc > 0.002)
            core_warn(w, "possible gradient masking: square beats %s by %.1f points at eps %g",
                      best->attack, 100 * (best->robust_acc - p[i].robust_acc), p[i].eps);
    }
}

void core_sanity_check(const core_eval_point *p, int n, int nclass, core_warnings *w)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && p[i].norm == p[j].norm)
                check_pair(&p[i], &p[j], w);
    check_black_box(p, n, w);
    double chance = 1.0 / nclass;
    for (int i = 0; i < n; i++)
        if (p[i].norm == CORE_NORM_LINF && p[i].eps >= 0.5f && is_white_box(&p[i]) &&
            p[i].robust_acc > chance + fmax(0.02, 1.0 / (p[i].n ? p[i].n : 1)))
            core_warn(w, "%s leaves %.1f%% accuracy at eps %g, above chance (%.1f%%): "
                         "possible gradient masking", p[i].attack, 100 * p[i].robust_acc, p[i].eps,
                      100 * chance);
}

/* ---- probes ------------------------------------------------------------- */

static int probe(core_model *m, core_attack_ws *ws, const core_dataset *ds, const int *idx, int n,
                 int batch, const core_attack_cfg *a, uint64_t stream, core_eval_point *pt,
                 char *err)
{
    core_eval_result r;
    if (core_evaluate(m, ws, ds, idx, n, batch, a, stream, &r, err))
        return -1;
    *pt = (core_eval_point){.norm = a->norm, .eps = a->eps, .steps = a->steps,
                            .restarts = a->restarts, .n = n, .robust_acc = r.robust_acc};
    snprintf(pt->attack, sizeof pt->attack, "%s", core_attack_kind_name(a->kind));
    return 0;
}

int core_sanity_probe(core_model *m, core_attack_ws *ws, const core_dataset *ds, const int *idx,
                      int n, int batch, float eps, int steps, uint64_t seed,
                      core_eval_point *pts, char *err)
{
    core_attack_cfg c[CORE_SANITY_PROBES];
    c[0] = core_attack_defaults(CORE_ATTACK_FGSM, eps);
    c[1] = core_attack_defaults(CORE_ATTACK_PGD, eps);
    c[1].steps = steps;
    c[2] = c[1];
    c[2].steps = 2 * steps;
    c[3] = c[1];
    c[3].restarts = 3;
    c[4] = core_attack_defaults(CORE_ATTACK_NOISE, eps);
    c[5] = core_attack_defaults(CORE_ATTACK_SQUARE, eps);
    c[5].queries = 300;
    c[6] = c[1];
    c[6].eps = fminf(1.0f, 2.0f * eps);
    c[7] = c[1];
    c[7].eps = 0.5f;
    for (int i = 0; i < CORE_SANITY_PROBES; i++) {
        c[i].seed = seed;
        if (c[i].kind == CORE_ATTACK_PGD)
            c[i].alpha = core_pgd_step(c[i].eps, c[i].steps);
        if (probe(m, ws, ds, idx, n, batch, &c[i], CORE_STREAM_USER + (uint64_t)i, &pts[i], err))
            return -1;
    }
    return CORE_SANITY_PROBES;
}
