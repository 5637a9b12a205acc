/*
 * test_indicators.c - each indicator of attack failure (core/indicators.h)
 * raised on purpose by a model or an attack made to fail that way, and
 * left quiet on a sound model with a sound attack.
 *
 * The models are set by hand, not trained: a template matcher (fc5 whose
 * weights are +-1 after five random 0.25/0.75 templates of 8x8 pixels,
 * which classifies the templates with margins of several logits) is the
 * sound one; the others break it in one way each.
 */
#include "testutil.h"

#include "core/indicators.h"
#include "core/rng.h"

#include <math.h>

#define NC 5
#define DIM 64
#define N 20
static const core_shape IN = {1, 8, 8};

static float template_pixel(int k, int j)
{
    return core_rng_uniform(99, (uint64_t)k, (uint64_t)j) < 0.5f ? 0.25f : 0.75f;
}

/* A model of spec for in, room for N examples. */
static core_model *model_of(const char *spec, core_shape in, int nclass)
{
    char err[CORE_ERRLEN];
    core_model *m;
    ck_assert_msg(core_model_create(spec, in, nclass, 1, &m, err) == 0, "%s", err);
    ck_assert_msg(core_model_reserve(m, N, err) == 0, "%s", err);
    return m;
}

static void set(core_model *m, const char *name, const float *v)
{
    const core_param_view *p = core_model_view(m, name);
    ck_assert_msg(p != NULL, "no view '%s'", name);
    memcpy(m->params + p->offset, v, p->size * sizeof(float));
}

static core_model *template_model(float scale)
{
    core_model *m = model_of("fc5", IN, NC);
    float w[NC * DIM], b[NC] = {0};
    for (int k = 0; k < NC; k++)
        for (int j = 0; j < DIM; j++)
            w[k * DIM + j] = scale * (template_pixel(k, j) > 0.5f ? 1.0f : -1.0f);
    set(m, "1.weight", w);
    set(m, "1.bias", b);
    return m;
}

/* N examples: the templates in turn (class i % NC). */
static void templates(float *x, int *y)
{
    for (int i = 0; i < N; i++) {
        y[i] = i % NC;
        for (int j = 0; j < DIM; j++)
            x[i * DIM + j] = template_pixel(y[i], j);
    }
}

static core_indicators measure(const core_attack_cfg *cfg, core_model *m, const float *x,
                               const int *y, int n, core_warnings *w)
{
    char err[CORE_ERRLEN];
    core_attack_ws *ws;
    core_indicators ind;
    ck_assert_msg(core_attack_ws_create(m, N, &ws, err) == 0, "%s", err);
    ck_assert_msg(core_indicators_run(cfg, m, ws, x, y, n, 3, &ind, err) == 0, "%s", err);
    core_attack_ws_free(ws);
    memset(w, 0, sizeof *w);
    core_indicators_warn(&ind, core_attack_kind_name(cfg->kind), cfg->eps, w);
    return ind;
}

static int warned(const core_warnings *w, const char *what)
{
    for (int i = 0; i < w->count; i++)
        if (strstr(w->text[i], what))
            return 1;
    return 0;
}

/* PGD-50 on the template matcher: it resists at eps 0.03, and nothing is
 * amiss. Weights of 0.25 keep its losses above float's rounding to 0. */
START_TEST(sound_model_is_quiet)
{
    float x[N * DIM];
    int y[N];
    templates(x, y);
    core_model *m = template_model(0.25f);
    core_attack_cfg cfg = core_attack_defaults(CORE_ATTACK_PGD, 0.03f);
    cfg.steps = 50;
    core_warnings w;
    core_indicators ind = measure(&cfg, m, x, y, N, &w);
    ck_assert_int_eq(ind.n, N);
    ck_assert_int_eq(ind.correct, N);
    ck_assert_int_eq(ind.traced, N);
    ck_assert_int_eq(ind.failed, N);
    ck_assert_int_eq(ind.silent, 0);
    ck_assert_int_eq(ind.incomplete, 0);
    ck_assert_int_eq(ind.zero_grad, 0);
    ck_assert_int_eq(ind.unconstrained, 0);
    ck_assert_int_eq(ind.unstable_n, CORE_IND_UNSTABLE_N);
    ck_assert_msg(core_indicators_unstable(&ind) < 0.2, "%g", core_indicators_unstable(&ind));
    ck_assert_int_eq(w.count, 0);
    core_model_free(m);
}
END_TEST

/* An attack cut to 2 steps: its loss still rises at the end (PGD through
 * core_ascent, APGD and FAB-T through their hook; neither returns a point
 * short of one it met: no silent success). */
static void cut_to_two_steps(core_attack_kind kind, const char *warning)
{
    float x[N * DIM];
    int y[N];
    templates(x, y);
    core_model *m = template_model(0.25f);
    core_attack_cfg cfg = core_attack_defaults(kind, 0.03f);
    cfg.steps = 2;
    cfg.n_targets = cfg.n_targets < NC - 1 ? cfg.n_targets : NC - 1; /* FAB-T's */
    core_warnings w;
    core_indicators ind = measure(&cfg, m, x, y, N, &w);
    ck_assert_int_eq(ind.traced, N);
    ck_assert_int_eq(ind.failed, N);
    ck_assert_int_eq(ind.silent, 0);
    ck_assert_int_eq(ind.incomplete, N);
    ck_assert_int_eq(ind.window, 2);
    ck_assert_msg(warned(&w, warning), "no warning '%s'", warning);
    core_model_free(m);
}

START_TEST(two_steps_are_incomplete)
{
    cut_to_two_steps(CORE_ATTACK_PGD, "incomplete optimisation: pgd's loss still rises over its "
                                      "last 2 steps for 20 of the 20 examples it failed on at "
                                      "eps 0.03");
}
END_TEST

START_TEST(apgd_two_steps_are_incomplete)
{
    cut_to_two_steps(CORE_ATTACK_APGD_CE, "incomplete optimisation: apgd-ce's loss still rises "
                                          "over its last 2 steps for 20 of the 20 examples it "
                                          "failed on at eps 0.03");
}
END_TEST

START_TEST(fab_two_steps_are_incomplete)
{
    cut_to_two_steps(CORE_ATTACK_FAB_T, "incomplete optimisation: fab-t's loss still rises over "
                                        "its last 2 steps for 20 of the 20 examples it failed on "
                                        "at eps 0.03");
}
END_TEST

/* A zero-gradient layer: conv weights 0, bias -1, so the ReLU after it is
 * off everywhere and the logits are the last bias, whatever the input. */
START_TEST(zero_gradient_layer)
{
    float x[N * DIM];
    int y[N];
    templates(x, y);
    for (int i = 0; i < N; i++)
        y[i] = 0;
    core_model *m = model_of("conv2k3p1 relu fc5", IN, NC);
    float cw[2 * 9] = {0}, cb[2] = {-1.0f, -1.0f}, fb[NC] = {1.0f};
    set(m, "0.weight", cw);
    set(m, "0.bias", cb);
    set(m, "3.bias", fb);
    core_attack_cfg cfg = core_attack_defaults(CORE_ATTACK_APGD_CE, 0.1f);
    cfg.steps = 10;
    core_warnings w;
    core_indicators ind = measure(&cfg, m, x, y, N, &w);
    ck_assert_int_eq(ind.correct, N);
    ck_assert_int_eq(ind.zero_grad, N);
    ck_assert_int_eq(ind.unconstrained, N);
    ck_assert_int_eq(ind.traced, N); /* through APGD's hook: a flat path */
    ck_assert_int_eq(ind.incomplete, 0);
    ck_assert(warned(&w, "unavailable gradients: the input gradient of apgd-ce's loss is "
                         "exactly zero for 20 of 20 examples at eps 0.1"));
    ck_assert(warned(&w, "unconstrained attack failure: apgd-ce with an unbounded eps leaves "
                         "20 of 20 examples correctly classified"));
    core_model_free(m);
}
END_TEST

/* One pixel x, class 1's logit a tent 10 * (relu(x - 0.3) - 2 relu(x - 0.62)
 * + relu(x - 0.94)) against class 0's 2.7: class 1 wins on (0.57, 0.675).
 * PGD from 0.5 with steps of 0.1 goes 0.6 (adversarial), 0.7, 0.6, 0.7...:
 * after an even number of steps it returns 0.7, having met 0.6. */
START_TEST(silent_success_on_a_tent)
{
    const core_shape in = {1, 1, 1};
    core_model *m = model_of("fc3 relu fc2", in, 2);
    const float w1[3] = {1, 1, 1}, b1[3] = {-0.3f, -0.62f, -0.94f};
    const float w2[6] = {0, 0, 0, 10, -20, 10}, b2[2] = {2.7f, 0};
    set(m, "1.weight", w1);
    set(m, "1.bias", b1);
    set(m, "3.weight", w2);
    set(m, "3.bias", b2);
    const float x[1] = {0.5f};
    const int y[1] = {0};
    core_attack_cfg cfg = core_attack_defaults(CORE_ATTACK_PGD, 0.25f);
    cfg.alpha = 0.1f;
    cfg.random_start = 0;
    cfg.restarts = 1;
    core_warnings w;
    for (int steps = 3; steps <= 4; steps++) {
        cfg.steps = steps;
        core_indicators ind = measure(&cfg, m, x, y, 1, &w);
        ck_assert_int_eq(ind.correct, 1);
        ck_assert_int_eq(ind.silent, steps == 4);
        ck_assert_int_eq(ind.failed, steps == 4);
        ck_assert_int_eq(warned(&w, "silent success: pgd met an adversarial point but returned "
                                    "one that is not for 1 of 1 examples at eps 0.25"),
                         steps == 4);
    }
    core_model_free(m);
}
END_TEST

/* Class 1's weights alternate +-1000 over the pixels: 0 at a flat grey
 * image, hundreds of logits either way at random points of the ball. */
START_TEST(unstable_predictions)
{
    float x[N * DIM];
    int y[N];
    for (int i = 0; i < N * DIM; i++)
        x[i] = 0.5f;
    for (int i = 0; i < N; i++)
        y[i] = 0;
    core_model *m = model_of("fc5", IN, NC);
    float wt[NC * DIM] = {0}, b[NC] = {5.0f};
    for (int j = 0; j < DIM; j++)
        wt[DIM + j] = j % 2 ? 1000.0f : -1000.0f;
    set(m, "1.weight", wt);
    set(m, "1.bias", b);
    core_attack_cfg cfg = core_attack_defaults(CORE_ATTACK_FGSM, 0.05f);
    core_warnings w;
    core_indicators ind = measure(&cfg, m, x, y, N, &w);
    ck_assert_msg(core_indicators_unstable(&ind) > CORE_IND_UNSTABLE, "%g",
                  core_indicators_unstable(&ind));
    ck_assert(warned(&w, "unstable predictions: fgsm's loss changes by"));
    ck_assert(warned(&w, "at random points of the eps-0.05 ball"));
    core_model_free(m);
}
END_TEST

START_TEST(refuses_non_gradient_attacks)
{
    char err[CORE_ERRLEN];
    float x[N * DIM];
    int y[N];
    templates(x, y);
    core_model *m = template_model(1.0f);
    core_attack_ws *ws;
    core_indicators ind;
    ck_assert(core_attack_ws_create(m, N, &ws, err) == 0);
    core_attack_cfg cfg = core_attack_defaults(CORE_ATTACK_SQUARE, 0.1f);
    ck_assert_int_eq(core_indicators_apply(cfg.kind), 0);
    ck_assert_int_eq(core_indicators_run(&cfg, m, ws, x, y, N, 1, &ind, err), -1);
    ck_assert_msg(strstr(err, "invalid attack 'square' for indicators of failure"), "%s", err);
    cfg = core_attack_defaults(CORE_ATTACK_PGD, 0.1f);
    ck_assert_int_eq(core_indicators_run(&cfg, m, ws, x, y, N + 1, 1, &ind, err), -1);
    ck_assert_msg(strstr(err, "invalid batch '21'"), "%s", err);
    core_attack_ws_free(ws);
    core_model_free(m);
}
END_TEST

static Suite *suite_indicators(void)
{
    Suite *s = suite_create("indicators");
    TCase *tc = tcase_create("indicators");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sound_model_is_quiet);
    tcase_add_test(tc, two_steps_are_incomplete);
    tcase_add_test(tc, apgd_two_steps_are_incomplete);
    tcase_add_test(tc, fab_two_steps_are_incomplete);
    tcase_add_test(tc, zero_gradient_layer);
    tcase_add_test(tc, silent_success_on_a_tent);
    tcase_add_test(tc, unstable_predictions);
    tcase_add_test(tc, refuses_non_gradient_attacks);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_indicators)
