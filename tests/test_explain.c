/*
 * test_explain.c - explanations (Integrated Gradients' completeness,
 * SmoothGrad's limit, saliency against finite differences), the map
 * comparisons and fragility, and calibration (ECE, NLL, Brier, temperature
 * scaling) against hand-computed values.
 */
#include "testutil.h"

#include <math.h>

#include "core/calib.h"
#include "core/explain.h"
#include "core/rng.h"

#define N 6

static core_model *small_model(void)
{
    char err[CORE_ERRLEN];
    core_model *m;
    ck_assert_msg(core_model_create("conv4k3p1 relu maxpool2 fc16 relu fc10", (core_shape){1, 8, 8},
                                    10, 5, &m, err) == 0, "%s", err);
    ck_assert(core_model_reserve(m, N, err) == 0);
    return m;
}

static float *inputs(int n, size_t dim)
{
    float *x = core_alloc(sizeof(float) * dim * n);
    for (size_t i = 0; i < dim * n; i++)
        x[i] = core_rng_uniform(11, 0, i);
    return x;
}

START_TEST(ig_is_complete)
{
    char err[CORE_ERRLEN];
    core_model *m = small_model();
    const size_t dim = core_shape_size(m->in);
    float *x = inputs(N, dim), *attr = core_alloc(sizeof(float) * dim * N);
    float *zero = core_alloc(sizeof(float) * dim * N);
    core_explain_cfg cfg = core_explain_defaults(CORE_EXPLAIN_IG);
    cfg.steps = 256;
    int pred[N];
    float fx[N], f0[N];
    ck_assert_msg(core_explain(&cfg, m, x, NULL, N, 0, attr, pred, err) == 0, "%s", err);
    ck_assert(core_explain_logit(m, x, pred, N, fx, err) == 0);
    ck_assert(core_explain_logit(m, zero, pred, N, f0, err) == 0);
    for (int i = 0; i < N; i++) {
        double sum = 0.0;
        for (size_t p = 0; p < dim; p++)
            sum += attr[i * dim + p];
        double gap = fx[i] - f0[i];
        /* The stated tolerance: 1 % of the logit change (plus 1e-4). */
        ck_assert_msg(fabs(sum - gap) <= 0.01 * fabs(gap) + 1e-4, "example %d: sum %g, f(x) - f(0) %g",
                      i, sum, gap);
    }
    core_free(x);
    core_free(attr);
    core_free(zero);
    core_model_free(m);
}
END_TEST

START_TEST(smoothgrad_without_noise_is_the_gradient)
{
    char err[CORE_ERRLEN];
    core_model *m = small_model();
    const size_t dim = core_shape_size(m->in);
    float *x = inputs(N, dim), *a = core_alloc(sizeof(float) * dim * N);
    float *b = core_alloc(sizeof(float) * dim * N);
    core_explain_cfg sal = core_explain_defaults(CORE_EXPLAIN_SALIENCY),
                     sg = core_explain_defaults(CORE_EXPLAIN_SMOOTHGRAD);
    sg.sigma = 0.0f;
    ck_assert(core_explain(&sal, m, x, NULL, N, 0, a, NULL, err) == 0);
    ck_assert(core_explain(&sg, m, x, NULL, N, 0, b, NULL, err) == 0);
    double scale = 0.0;
    for (size_t p = 0; p < dim * N; p++)
        scale = fmax(scale, fabs(a[p]));
    ck_assert(scale > 0.0);
    for (size_t p = 0; p < dim * N; p++)
        ck_assert_msg(fabs(a[p] - b[p]) <= 1e-5 * scale, "%zu: %g vs %g", p, a[p], b[p]);
    /* A class out of range is refused, naming it. */
    int bad[N] = {0, 1, 2, 3, 4, 10};
    ck_assert(core_explain(&sal, m, x, bad, N, 0, a, NULL, err) == -1);
    ck_assert_str_eq(err, "invalid class 10 to explain: the model has 10 classes");
    /* With noise it differs, and twice the same gives the same bytes. */
    sg.sigma = 0.15f;
    ck_assert(core_explain(&sg, m, x, NULL, N, 9, a, NULL, err) == 0);
    ck_assert(core_explain(&sg, m, x, NULL, N, 9, b, NULL, err) == 0);
    ck_assert(memcmp(a, b, sizeof(float) * dim * N) == 0);
    core_free(x);
    core_free(a);
    core_free(b);
    core_model_free(m);
}
END_TEST

START_TEST(saliency_matches_finite_differences)
{
    char err[CORE_ERRLEN];
    core_model *m = small_model();
    const size_t dim = core_shape_size(m->in);
    float *x = inputs(N, dim), *attr = core_alloc(sizeof(float) * dim * N);
    core_explain_cfg cfg = core_explain_defaults(CORE_EXPLAIN_SALIENCY);
    int cls[N] = {0, 1, 2, 3, 4, 5};
    ck_assert(core_explain(&cfg, m, x, cls, N, 0, attr, NULL, err) == 0);
    float hi[N], lo[N];
    for (size_t p = 5; p < dim; p += 13) {
        const float h = 1e-3f, keep = x[p];
        x[p] = keep + h;
        core_explain_logit(m, x, cls, N, hi, err);
        x[p] = keep - h;
        core_explain_logit(m, x, cls, N, lo, err);
        x[p] = keep;
        ck_assert_msg(fabs((hi[0] - lo[0]) / (2 * h) - attr[p]) < 2e-3, "pixel %zu: %g vs %g", p,
                      (hi[0] - lo[0]) / (2 * h), attr[p]);
    }
    core_free(x);
    core_free(attr);
    core_model_free(m);
}
END_TEST

START_TEST(map_comparisons_by_hand)
{
    float a[6] = {6, 5, 4, 3, 2, 1}, b[6] = {1, 2, 3, 4, 5, 6}, c[6] = {6, 5, 1, 1, 1, 1};
    ck_assert_double_eq_tol(core_topk_overlap(a, a, 6, 2), 1.0, 1e-12);
    ck_assert_double_eq_tol(core_topk_overlap(a, b, 6, 2), 0.0, 1e-12);
    ck_assert_double_eq_tol(core_topk_overlap(a, b, 6, 4), 0.5, 1e-12);
    ck_assert_double_eq_tol(core_spearman(a, a, 6), 1.0, 1e-12);
    ck_assert_double_eq_tol(core_spearman(a, b, 6), -1.0, 1e-12);
    /* Ties share their average rank: c ranks 1, 2, 4.5, 4.5, 4.5, 4.5. */
    double ra[6] = {1, 2, 3, 4, 5, 6}, rc[6] = {1, 2, 4.5, 4.5, 4.5, 4.5}, sab = 0, saa = 0, scc = 0;
    for (int i = 0; i < 6; i++) {
        sab += (ra[i] - 3.5) * (rc[i] - 3.5);
        saa += (ra[i] - 3.5) * (ra[i] - 3.5);
        scc += (rc[i] - 3.5) * (rc[i] - 3.5);
    }
    ck_assert_double_eq_tol(core_spearman(a, c, 6), sab / sqrt(saa * scc), 1e-12);
    /* Centres of mass of two points of a 2 x 3 map. */
    float p[6] = {1, 0, 0, 0, 0, 0}, q[6] = {0, 0, 0, 0, 0, 1};
    ck_assert_double_eq_tol(core_com_shift(p, q, 2, 3), sqrt(1.0 + 4.0), 1e-12);
}
END_TEST

START_TEST(fragility_is_bounded_and_ordered)
{
    char err[CORE_ERRLEN];
    core_model *m = small_model();
    float *x = inputs(N, core_shape_size(m->in));
    core_fragility_cfg cfg = core_fragility_defaults();
    cfg.topk = 0.1f;
    core_fragility f;
    ck_assert_msg(core_fragility_measure(&cfg, m, x, N, 0, &f, err) == 0, "%s", err);
    ck_assert_int_eq(f.k, 6);   /* 10 % of 64 pixels */
    ck_assert(f.n > 0 && f.n <= N);
    ck_assert(f.topk_random >= 0.0 && f.topk_random <= 1.0);
    ck_assert(f.topk_adv <= f.topk_random);   /* the search starts from the random delta */
    ck_assert(f.spearman_random >= -1.0 && f.spearman_random <= 1.0 && f.com_random >= 0.0);
    /* No perturbation at all: the maps are the same. */
    cfg.eps = 0.0f;
    ck_assert(core_fragility_measure(&cfg, m, x, N, 0, &f, err) == 0);
    ck_assert_int_eq(f.n, N);
    ck_assert_double_eq_tol(f.topk_random, 1.0, 1e-12);
    ck_assert_double_eq_tol(f.spearman_adv, 1.0, 1e-12);
    ck_assert_double_eq_tol(f.com_adv, 0.0, 1e-12);
    core_free(x);
    core_model_free(m);
}
END_TEST

/* ---------------------------------------------------------- calibration */

/* Two-class logits whose softmax gives class 0 probability p. */
static void two_class(float *z, double p)
{
    z[0] = (float)log(p);
    z[1] = (float)log(1.0 - p);
}

START_TEST(ece_of_calibrated_set_is_zero)
{
    /* Confidence p in five bins, exactly 100 p of each 100 correct. */
    const double conf[5] = {0.55, 0.65, 0.75, 0.85, 0.95};
    float z[1000];
    int y[500], n = 0;
    for (int b = 0; b < 5; b++)
        for (int i = 0; i < 100; i++, n++) {
            two_class(z + 2 * n, conf[b]);
            y[n] = i < (int)lround(conf[b] * 100) ? 0 : 1;
        }
    core_calibration c;
    core_calibration_measure(z, y, n, 2, 1.0, &c);
    ck_assert_msg(c.ece < 1e-6, "ece %g", c.ece);
    ck_assert_double_eq_tol(c.accuracy, 0.75, 1e-12);
}
END_TEST

START_TEST(ece_nll_brier_by_hand)
{
    /* 100 at confidence 0.9 with 60 right (a gap of 0.3), 100 at 0.6 with
     * 60 right (no gap): ECE = 0.5 * 0.3. */
    float z[400];
    int y[200];
    for (int i = 0; i < 200; i++) {
        two_class(z + 2 * i, i < 100 ? 0.9 : 0.6);
        y[i] = (i % 100) < 60 ? 0 : 1;
    }
    core_calibration c;
    core_calibration_measure(z, y, 200, 2, 1.0, &c);
    ck_assert_double_eq_tol(c.ece, 0.15, 1e-6);
    ck_assert_int_eq(c.count[13], 100);     /* 0.9 lies in (13/15, 14/15] */
    ck_assert_double_eq_tol(c.bin_accuracy[13], 0.6, 1e-12);
    ck_assert_double_eq_tol(c.confidence[13], 0.9, 1e-6);
    /* NLL and Brier of the first group alone. */
    core_calibration_measure(z, y, 100, 2, 1.0, &c);
    double nll = -(0.6 * log(0.9) + 0.4 * log(0.1));
    double brier = 0.6 * 2 * 0.1 * 0.1 + 0.4 * 2 * 0.9 * 0.9;
    ck_assert_double_eq_tol(c.nll, nll, 1e-6);
    ck_assert_double_eq_tol(c.brier, brier, 1e-6);
}
END_TEST

START_TEST(temperature_scaling_fixes_overconfidence)
{
    /* 10 classes, logits 8x too sharp: 70 % right at confidence ~1. */
    enum { n = 400, k = 10 };
    float *z = malloc(sizeof(float) * n * k);
    int y[n];
    for (int i = 0; i < n; i++) {
        int pred = i % k;
        for (int j = 0; j < k; j++)
            z[i * k + j] = 8.0f * (j == pred ? 2.0f : core_rng_uniform(3, i, j));
        y[i] = (i % 10) < 7 ? pred : (pred + 1) % k;
    }
    core_calibration before, after;
    double t = core_temperature_fit(z, y, n, k);
    core_calibration_measure(z, y, n, k, 1.0, &before);
    core_calibration_measure(z, y, n, k, t, &after);
    ck_assert_msg(t > 1.0, "T %g", t);
    ck_assert_msg(after.nll < before.nll, "nll %g -> %g", before.nll, after.nll);
    ck_assert_msg(after.ece < before.ece, "ece %g -> %g", before.ece, after.ece);
    ck_assert_double_eq(after.accuracy, before.accuracy);
    /* It is the minimum: a step either way costs. */
    core_calibration up, down;
    core_calibration_measure(z, y, n, k, t * 1.01, &up);
    core_calibration_measure(z, y, n, k, t / 1.01, &down);
    ck_assert(up.nll >= after.nll && down.nll >= after.nll);
    free(z);
}
END_TEST

static Suite *suite_explain(void)
{
    Suite *s = suite_create("explain");
    TCase *tc = tcase_create("explain");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ig_is_complete);
    tcase_add_test(tc, smoothgrad_without_noise_is_the_gradient);
    tcase_add_test(tc, saliency_matches_finite_differences);
    tcase_add_test(tc, map_comparisons_by_hand);
    tcase_add_test(tc, fragility_is_bounded_and_ordered);
    tcase_add_test(tc, ece_of_calibrated_set_is_zero);
    tcase_add_test(tc, ece_nll_brier_by_hand);
    tcase_add_test(tc, temperature_scaling_fixes_overconfidence);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_explain)
