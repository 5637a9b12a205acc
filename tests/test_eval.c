/*
 * test_eval.c - the evaluation library (core/eval.h) without a daemon:
 * ranges evaluated apart and merged equal the whole set bit for bit; a
 * suite's per-example survival is the element-wise minimum of its
 * attacks' (and of the clean check); accuracies follow from the rows; a
 * hook stops it; and the evaluation's calibration and corruption steps:
 * a known temperature is recovered, severity 0 leaves clean accuracy.
 */
#include "core/calib.h"
#include "core/corrupt.h"
#include "core/eval.h"
#include "core/loss.h"
#include "core/rng.h"
#include "testutil.h"

#include <math.h>

#define NC 4
#define SIDE 6
#define DIM (SIDE * SIDE)
#define N 96
#define BATCH 32

static core_model *model;
static core_attack_ws *ws;
static float x[N * DIM];
static int y[N];

/* Class c is a template of bright and dark pixels plus noise; the linear
 * model scores each class by its centred template, which separates the
 * classes well but not by much: attacks at eps 0.1 flip some. */
static float template_px(int c, int j)
{
    return core_rng_uniform(77, (uint64_t)c, (uint64_t)j) < 0.5f ? 0.3f : 0.7f;
}

static void setup(void)
{
    char err[CORE_ERRLEN];
    core_shape in = {1, SIDE, SIDE};
    ck_assert_msg(core_model_create("fc4", in, NC, 1, &model, err) == 0, "%s", err);
    const core_param_view *w = core_model_view(model, "1.weight"),
                          *b = core_model_view(model, "1.bias");
    ck_assert(w && b);
    for (int c = 0; c < NC; c++) {
        model->params[b->offset + c] = 0.0f;
        for (int j = 0; j < DIM; j++)
            model->params[w->offset + (size_t)c * DIM + j] = 4.0f * (template_px(c, j) - 0.5f);
    }
    for (int i = 0; i < N; i++) {
        y[i] = (int)core_rng_below(5, 0, (uint64_t)i, NC);
        for (int j = 0; j < DIM; j++) {
            float v = template_px(y[i], j) + 0.25f * core_rng_normal(6, 1, (uint64_t)i * DIM + j);
            x[i * DIM + j] = fminf(fmaxf(v, 0.0f), 1.0f);
        }
    }
    ck_assert(core_model_reserve(model, N, err) == 0);
    ck_assert_msg(core_attack_ws_create(model, N, &ws, err) == 0, "%s", err);
}

static void teardown(void)
{
    core_attack_ws_free(ws);
    core_model_free(model);
}

static core_eval_cfg pgd_cfg(void)
{
    core_eval_cfg c = {.attack = core_attack_defaults(CORE_ATTACK_PGD, 0.1f), .neps = 2,
                       .eps = {0.05f, 0.15f}, .seed = 3, .batch = BATCH, .keep_adv_logits = 1};
    c.attack.steps = 10;
    return c;
}

static void run(const core_eval_cfg *c, int a, int b, core_eval_out *o)
{
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(core_eval_range(c, model, ws, x, y, a, b, NULL, o, err) == 0, "%s", err);
}

START_TEST(test_ranges_merge_to_the_whole)
{
    core_eval_cfg c = pgd_cfg();
    core_eval_out whole, part, merged;
    char err[CORE_ERRLEN];
    ck_assert(core_eval_out_alloc(&c, N, NC, &whole, err) == 0);
    ck_assert(core_eval_out_alloc(&c, N, NC, &part, err) == 0);
    ck_assert(core_eval_out_alloc(&c, N, NC, &merged, err) == 0);
    run(&c, 0, N, &whole);
    /* Two "processes": [0, 64) in merged itself, [64, 96) in part. */
    run(&c, 0, 2 * BATCH, &merged);
    run(&c, 2 * BATCH, N, &part);
    core_eval_merge(&merged, &part, 2 * BATCH, N);
    ck_assert_mem_eq(merged.clean_ok, whole.clean_ok, N);
    ck_assert_mem_eq(merged.survival, whole.survival, (size_t)N * 2);
    ck_assert_mem_eq(merged.adv_logits, whole.adv_logits, sizeof(float) * N * NC);
    /* Accuracies are the rows' shares, and an attack never beats the clean check. */
    double clean = core_eval_clean_acc(&whole);
    const float *z = core_model_forward(model, x, N);
    ck_assert_double_eq(clean, (double)core_count_correct(z, y, N, NC) / N);
    ck_assert_msg(clean > 0.6 && core_eval_robust_acc(&whole, 1) < clean, "clean %g robust %g",
                  clean, core_eval_robust_acc(&whole, 1));
    ck_assert(core_eval_robust_acc(&whole, 1) <= core_eval_robust_acc(&whole, 0));
    for (int i = 0; i < N; i++)
        ck_assert(core_eval_survival(&whole, 0)[i] <= whole.clean_ok[i]);
    /* A range must start on a batch, unless it is empty (a rank left
     * without a batch when the examples end mid-batch). */
    ck_assert_int_eq(core_eval_range(&c, model, ws, x, y, 5, N, NULL, &part, err), -1);
    ck_assert_msg(strstr(err, "invalid evaluation range [5, 96)"), "%s", err);
    ck_assert_int_eq(core_eval_range(&c, model, ws, x, y, 50, 50, NULL, &part, err), 0);
    core_eval_out_free(&whole);
    core_eval_out_free(&part);
    core_eval_out_free(&merged);
}
END_TEST

START_TEST(test_suite_is_the_minimum_of_its_attacks)
{
    char err[CORE_ERRLEN] = "";
    const float eps = 0.15f;
    core_eval_cfg c = {.use_suite = 1, .suite = "autoattack", .neps = 1, .eps = {eps}, .seed = 9,
                       .batch = N};
    core_eval_out o;
    ck_assert(core_eval_out_alloc(&c, N, NC, &o, err) == 0);
    run(&c, 0, N, &o);
    /* The same suite run directly, with each member's row. */
    core_suite s;
    uint8_t robust[N], rows[CORE_SUITE_MAX * N];
    ck_assert(core_suite_preset("autoattack", eps, 9, &s, err) == 0);
    ck_assert_msg(core_suite_run(&s, model, ws, x, y, N, CORE_STREAM_USER, robust, rows, err) == 0,
                  "%s", err);
    ck_assert_mem_eq(core_eval_survival(&o, 0), robust, N);
    int broken = 0;
    for (int i = 0; i < N; i++) {
        uint8_t min = o.clean_ok[i];
        for (int j = 0; j < s.count; j++)
            min = rows[j * N + i] < min ? rows[j * N + i] : min;
        ck_assert_msg(core_eval_survival(&o, 0)[i] == min, "example %d", i);
        broken += o.clean_ok[i] && !min;
    }
    ck_assert_msg(broken > 0, "the suite broke nothing: the test model is too robust");
    core_eval_out_free(&o);
}
END_TEST

static int stop_after_first(void *ctx, int e, int done, int total)
{
    int *calls = ctx;
    ++*calls;
    return 1;
}

START_TEST(test_hook_stops)
{
    core_eval_cfg c = pgd_cfg();
    core_eval_out o;
    char err[CORE_ERRLEN];
    int calls = 0;
    core_eval_hooks h = {.on_batch = stop_after_first, .ctx = &calls};
    ck_assert(core_eval_out_alloc(&c, N, NC, &o, err) == 0);
    ck_assert_int_eq(core_eval_range(&c, model, ws, x, y, 0, N, &h, &o, err), 1);
    ck_assert_int_eq(calls, 1);
    core_eval_out_free(&o);
    c.neps = 0;
    ck_assert_int_eq(core_eval_out_alloc(&c, N, NC, &o, err), -1);
    ck_assert_str_eq(err, "invalid eps count 0 (1 to 16)");
}
END_TEST

/* Stops after `left` batches, keeping where a resumed run starts. */
typedef struct {
    int left, a;
    core_eval_at next;
} stopper;

static int stop_after(void *ctx, int e, int done, int total)
{
    stopper *s = ctx;
    s->next = core_eval_next(e, done, total, s->a);
    return --s->left <= 0;
}

/* A run stopped after k batches (k = 1 .. all), its rows copied into a
 * fresh result as a state file would carry them, then resumed: the rows
 * equal an uninterrupted run's, bit for bit, at every stopping point. */
START_TEST(test_resumed_equals_uninterrupted)
{
    core_eval_cfg c = pgd_cfg();
    core_eval_out whole, first, resumed;
    char err[CORE_ERRLEN] = "";
    ck_assert(core_eval_out_alloc(&c, N, NC, &whole, err) == 0);
    run(&c, BATCH, N, &whole);
    const int batches = 2 * (N - BATCH) / BATCH;
    for (int k = 1; k <= batches; k++) {
        stopper st = {.left = k, .a = BATCH};
        core_eval_hooks h = {.on_batch = stop_after, .ctx = &st};
        ck_assert(core_eval_out_alloc(&c, N, NC, &first, err) == 0);
        ck_assert(core_eval_out_alloc(&c, N, NC, &resumed, err) == 0);
        ck_assert_int_eq(core_eval_range(&c, model, ws, x, y, BATCH, N, &h, &first, err), 1);
        core_eval_merge(&resumed, &first, BATCH, N);
        ck_assert_msg(core_eval_range_from(&c, model, ws, x, y, BATCH, N, st.next, NULL, &resumed,
                                           err) == 0, "%s", err);
        ck_assert_mem_eq(resumed.clean_ok, whole.clean_ok, N);
        ck_assert_mem_eq(resumed.survival, whole.survival, (size_t)N * 2);
        ck_assert_mem_eq(resumed.adv_logits, whole.adv_logits, sizeof(float) * N * NC);
        core_eval_out_free(&first);
        core_eval_out_free(&resumed);
    }
    ck_assert(core_eval_out_alloc(&c, N, NC, &first, err) == 0);
    ck_assert_int_eq(core_eval_range_from(&c, model, ws, x, y, BATCH, N, (core_eval_at){0, 5},
                                          NULL, &first, err), -1);
    ck_assert_str_eq(err, "invalid resume point: eps index 0, example 5 of [32, 96)");
    core_eval_out_free(&first);
    core_eval_out_free(&whole);
}
END_TEST

/* Logits T0 times too sharp, labels drawn from the softmax at the right
 * temperature: the fit recovers T0. */
START_TEST(test_known_temperature)
{
    enum { n = 4000, k = 5 };
    const double t0 = 2.5;
    float *z = malloc(sizeof(float) * n * k);
    int *lab = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        double p[k], sum = 0;
        for (int j = 0; j < k; j++) {
            double base = 2.0 * core_rng_normal(21, (uint64_t)i, (uint64_t)j);
            z[i * k + j] = (float)(t0 * base);
            sum += p[j] = exp(base);
        }
        double u = core_rng_uniform(22, 0, (uint64_t)i) * sum;
        lab[i] = k - 1;
        for (int j = 0; j < k; j++)
            if ((u -= p[j]) < 0) {
                lab[i] = j;
                break;
            }
    }
    double t = core_temperature_fit(z, lab, n, k);
    ck_assert_msg(fabs(t - t0) < 0.15 * t0, "fitted %g, true %g", t, t0);
    free(z);
    free(lab);
}
END_TEST

START_TEST(test_severity_zero_is_clean)
{
    char err[CORE_ERRLEN] = "";
    core_shape in = {1, SIDE, SIDE};
    float *xc = malloc(sizeof x);
    for (int c = 0; c < CORE_NCORRUPTIONS; c++) {
        ck_assert_msg(core_corrupt((core_corruption)c, 0, x, xc, N, in, 1, 2, err) == 0, "%s",
                      err);
        int clean = core_count_correct(core_model_forward(model, x, N), y, N, NC);
        int corrupted = core_count_correct(core_model_forward(model, xc, N), y, N, NC);
        ck_assert_msg(corrupted == clean, "%s: %d vs %d", core_corruption_name(c), corrupted,
                      clean);
    }
    free(xc);
}
END_TEST

/* Corruption counts of ranges on whole batches add up to the whole set's
 * (what the ranks of an MPI evaluation sum), and a corruption costs
 * accuracy at its worst severity. */
START_TEST(test_corruption_ranges_sum_to_the_whole)
{
    char err[CORE_ERRLEN] = "";
    static double whole[CORE_NCORRUPTIONS][CORE_SEVERITIES], parts[CORE_NCORRUPTIONS][CORE_SEVERITIES];
    ck_assert_msg(core_eval_corruptions(model, x, y, 0, N, BATCH, 9, NULL, whole, err) == 0,
                  "%s", err);
    ck_assert(core_eval_corruptions(model, x, y, 0, BATCH, BATCH, 9, NULL, parts, err) == 0);
    ck_assert(core_eval_corruptions(model, x, y, BATCH, N, BATCH, 9, NULL, parts, err) == 0);
    ck_assert(!memcmp(whole, parts, sizeof whole));
    int clean = core_count_correct(core_model_forward(model, x, N), y, N, NC), hurt = 0;
    for (int c = 0; c < CORE_NCORRUPTIONS; c++)
        hurt += whole[c][CORE_SEVERITIES - 1] < clean;
    ck_assert_msg(hurt >= CORE_NCORRUPTIONS / 2, "only %d corruptions cost accuracy", hurt);
}
END_TEST

static Suite *suite_eval(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ranges_merge_to_the_whole);
    tcase_add_test(tc, test_suite_is_the_minimum_of_its_attacks);
    tcase_add_test(tc, test_hook_stops);
    tcase_add_test(tc, test_resumed_equals_uninterrupted);
    tcase_add_test(tc, test_known_temperature);
    tcase_add_test(tc, test_severity_zero_is_clean);
    tcase_add_test(tc, test_corruption_ranges_sum_to_the_whole);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_eval)
