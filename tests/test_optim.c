/*
 * test_optim.c - optimisers and schedules against PyTorch 1.13.
 *
 * The reference numbers were produced once with torch (float32 tensors,
 * hyper-parameters passed as the float32 values used here) and are
 * hard-coded, so the test needs no Python. Each block says how it was made.
 */
#include "core/optim.h"
#include "testutil.h"

#include <math.h>
#include <omp.h>

#define NP 4
#define REL 1e-6

/* w0 and three gradients, all exact in float32. */
static const float W0[NP] = {0.5f, -1.25f, 2.0f, 0.75f};
static const float G[3][NP] = {
    {0.25f, -0.5f, 1.0f, -0.125f},
    {0.125f, 0.375f, -0.75f, 0.5f},
    {-0.25f, 0.0625f, 0.5f, 1.5f},
};

static void assert_close(double got, double want, const char *what, int i)
{
    double tol = REL * fabs(want) + 1e-12;
    ck_assert_msg(fabs(got - want) <= tol, "%s[%d]: got %.9g, want %.9g",
                  what, i, got, want);
}

static void init_ok(core_optim *o, const core_opt_cfg *c, size_t n)
{
    char err[CORE_ERRLEN] = "";
    ck_assert_msg(core_optim_init(o, c, n, err) == 0, "init: %s", err);
}

/* Three steps at a fixed lr/momentum, each checked against want[step]. */
static void run_three(const core_opt_cfg *c, const float want[3][NP], const char *what)
{
    core_optim o;
    float w[NP];
    memcpy(w, W0, sizeof w);
    init_ok(&o, c, NP);
    for (int s = 0; s < 3; s++) {
        core_optim_step(&o, w, G[s], c->lr, c->momentum);
        for (int i = 0; i < NP; i++)
            assert_close(w[i], want[s][i], what, s * NP + i);
    }
    ck_assert_int_eq(o.t, 3);
    core_optim_free(&o);
}

static core_opt_cfg sgd_cfg(int nesterov)
{
    core_opt_cfg c = core_opt_defaults(CORE_OPT_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.weight_decay = 0.01f;
    c.nesterov = nesterov;
    return c;
}

static core_opt_cfg adam_cfg(void)
{
    core_opt_cfg c = core_opt_defaults(CORE_OPT_ADAM);
    c.lr = 0.01f;
    c.weight_decay = 0.01f;
    return c;
}

/* torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01) */
START_TEST(test_sgd_momentum_wd)
{
    static const float want[3][NP] = {
        {0.4745f, -1.19875002f, 1.898f, 0.761749983f},
        {0.438575506f, -1.18892622f, 1.87930202f, 0.72156322f},
        {0.430804878f, -1.18514597f, 1.81059456f, 0.534673572f},
    };
    core_opt_cfg c = sgd_cfg(0);
    run_three(&c, want, "sgd");
}
END_TEST

/* The same recurrence written out by hand, independent of torch: the first
 * step sets buf = g, later ones buf = mom * buf + g. */
START_TEST(test_sgd_by_hand)
{
    core_opt_cfg c = sgd_cfg(0);
    core_optim o;
    float w[NP], hw[NP], hb[NP];
    memcpy(w, W0, sizeof w);
    memcpy(hw, W0, sizeof hw);
    init_ok(&o, &c, NP);
    for (int s = 0; s < 3; s++) {
        core_optim_step(&o, w, G[s], c.lr, c.momentum);
        for (int i = 0; i < NP; i++) {
            double g = G[s][i] + (double)c.weight_decay * hw[i];
            hb[i] = (float)(s == 0 ? g : c.momentum * (double)hb[i] + g);
            hw[i] = (float)(hw[i] - (double)c.lr * hb[i]);
            assert_close(w[i], hw[i], "sgd-hand", s * NP + i);
        }
    }
    core_optim_free(&o);
}
END_TEST

/* Momentum 0 is plain SGD: w -= lr * (g + wd * w). */
START_TEST(test_sgd_plain)
{
    core_opt_cfg c = sgd_cfg(0);
    c.momentum = 0;
    core_optim o;
    float w[NP], hw[NP];
    memcpy(w, W0, sizeof w);
    memcpy(hw, W0, sizeof hw);
    init_ok(&o, &c, NP);
    for (int s = 0; s < 3; s++) {
        core_optim_step(&o, w, G[s], c.lr, 0.0f);
        for (int i = 0; i < NP; i++) {
            hw[i] = (float)(hw[i] - (double)c.lr * (G[s][i] + (double)c.weight_decay * hw[i]));
            assert_close(w[i], hw[i], "plain", s * NP + i);
        }
    }
    core_optim_free(&o);
}
END_TEST

/* torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True) */
START_TEST(test_sgd_nesterov)
{
    static const float want[3][NP] = {
        {0.451550007f, -1.15262496f, 1.80620003f, 0.772324979f},
        {0.406287074f, -1.18017244f, 1.86264825f, 0.685375035f},
        {0.423934877f, -1.18188524f, 1.74903822f, 0.366512984f},
    };
    core_opt_cfg c = sgd_cfg(1);
    run_three(&c, want, "nesterov");
}
END_TEST

/* torch.optim.Adam(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) */
START_TEST(test_adam)
{
    static const float want[3][NP] = {
        {0.49000001f, -1.24000001f, 1.99000001f, 0.75999999f},
        {0.480651021f, -1.23883033f, 1.98888493f, 0.75426054f},
        {0.479323626f, -1.23843777f, 1.98564112f, 0.746773958f},
    };
    core_opt_cfg c = adam_cfg();
    run_three(&c, want, "adam");
}
END_TEST

/* torch.optim.Adam(lr=0.01, wd 0) under OneCycleLR(max_lr=0.01,
 * total_steps=10): beta1 is cycled (0.95, 0.9, 0.85) and the bias
 * correction uses each step's beta1. */
START_TEST(test_adam_onecycle)
{
    static const float want_lr[3] = {0.000399999991f, 0.00519999988f, 0.00999999978f};
    static const float want_b1[3] = {0.95f, 0.9f, 0.85f};
    static const float want[3][NP] = {
        {0.499599993f, -1.24960005f, 1.99960005f, 0.750400007f},
        {0.496310741f, -1.25052905f, 2.00052905f, 0.747068226f},
        {0.498382986f, -1.2521106f, 1.99887836f, 0.739636481f},
    };
    core_opt_cfg c = adam_cfg();
    c.weight_decay = 0;
    core_sched_cfg s = {.kind = CORE_SCHED_ONECYCLE};
    core_optim o;
    float w[NP];
    memcpy(w, W0, sizeof w);
    init_ok(&o, &c, NP);
    for (int t = 0; t < 3; t++) {
        core_sched_point p = core_sched_at(&s, &c, t, 10, 10);
        assert_close(p.lr, want_lr[t], "lr", t);
        assert_close(p.momentum, want_b1[t], "beta1", t);
        core_optim_step(&o, w, G[t], p.lr, p.momentum);
        for (int i = 0; i < NP; i++)
            assert_close(w[i], want[t][i], "adam-1cycle", t * NP + i);
    }
    core_optim_free(&o);
}
END_TEST

/* A long vector split across threads gives the same bits as one thread. */
START_TEST(test_thread_count_invariant)
{
    enum { N = 100003 };
    core_opt_cfg cfgs[2] = {sgd_cfg(1), adam_cfg()};
    for (int k = 0; k < 2; k++) {
        float *w[2], *g = malloc(N * sizeof *g);
        ck_assert_ptr_nonnull(g);
        for (int i = 0; i < N; i++)
            g[i] = sinf((float)i * 0.37f);
        for (int r = 0; r < 2; r++) {
            core_optim o;
            int saved = omp_get_max_threads();
            w[r] = malloc(N * sizeof *w[r]);
            ck_assert_ptr_nonnull(w[r]);
            for (int i = 0; i < N; i++)
                w[r][i] = cosf((float)i * 0.11f);
            init_ok(&o, &cfgs[k], N);
            omp_set_num_threads(r == 0 ? 1 : 4);
            for (int s = 0; s < 3; s++)
                core_optim_step(&o, w[r], g, cfgs[k].lr, cfgs[k].momentum);
            omp_set_num_threads(saved);
            core_optim_free(&o);
        }
        ck_assert_int_eq(memcmp(w[0], w[1], N * sizeof(float)), 0);
        free(w[0]);
        free(w[1]);
        free(g);
    }
}
END_TEST

/* ---------------------------------------------------------- schedules */

START_TEST(test_sched_constant)
{
    core_opt_cfg c = sgd_cfg(0);
    core_sched_cfg s = {.kind = CORE_SCHED_CONSTANT};
    for (int64_t t = 0; t < 1000; t += 97) {
        core_sched_point p = core_sched_at(&s, &c, t, 1000, 100);
        ck_assert_float_eq(p.lr, c.lr);
        ck_assert_float_eq(p.momentum, c.momentum);
    }
}
END_TEST

START_TEST(test_sched_step)
{
    core_opt_cfg c = sgd_cfg(0);
    core_sched_cfg s = {.kind = CORE_SCHED_STEP, .step_epochs = 30, .gamma = 0.1f};
    /* 10 steps an epoch: epochs 0..29 at lr, 30..59 at lr/10, 60.. at lr/100. */
    static const struct {
        int64_t t;
        double lr;
    } pts[] = {{0, 0.1}, {299, 0.1}, {300, 0.01}, {599, 0.01}, {600, 0.001}, {899, 0.001}};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        core_sched_point p = core_sched_at(&s, &c, pts[i].t, 900, 10);
        assert_close(p.lr, (double)c.lr * pow(s.gamma, (double)(pts[i].t / 300)), "step", (int)i);
        assert_close(p.lr, pts[i].lr, "step-approx", (int)i);
        ck_assert_float_eq(p.momentum, c.momentum);
    }
}
END_TEST

START_TEST(test_sched_cosine)
{
    core_opt_cfg c = sgd_cfg(0);
    core_sched_cfg s = {.kind = CORE_SCHED_COSINE, .lr_min = 0.001f};
    assert_close(core_sched_at(&s, &c, 0, 100, 10).lr, 0.1, "cos", 0);
    assert_close(core_sched_at(&s, &c, 50, 100, 10).lr,
                 (double)s.lr_min + ((double)c.lr - s.lr_min) / 2, "cos", 50);
    assert_close(core_sched_at(&s, &c, 100, 100, 10).lr, s.lr_min, "cos", 100);
    /* Monotone over the run, and held at the floor past its end. */
    float prev = INFINITY;
    for (int64_t t = 0; t <= 100; t++) {
        float lr = core_sched_at(&s, &c, t, 100, 10).lr;
        ck_assert_float_le(lr, prev);
        prev = lr;
    }
    assert_close(core_sched_at(&s, &c, 150, 100, 10).lr, s.lr_min, "cos", 150);
    ck_assert_float_eq(core_sched_at(&s, &c, 7, 100, 10).momentum, c.momentum);
}
END_TEST

struct onecycle_ref {
    int64_t t;
    double lr, mom;
};

static void check_onecycle(int64_t total, const struct onecycle_ref *ref, size_t n)
{
    core_opt_cfg c = sgd_cfg(0);
    core_sched_cfg s = {.kind = CORE_SCHED_ONECYCLE};
    for (size_t i = 0; i < n; i++) {
        core_sched_point p = core_sched_at(&s, &c, ref[i].t, total, 10);
        assert_close(p.lr, ref[i].lr, "onecycle lr", (int)ref[i].t);
        assert_close(p.momentum, ref[i].mom, "onecycle mom", (int)ref[i].t);
    }
}

/* OneCycleLR(SGD(lr=0.1, momentum=0.9), max_lr=0.1, total_steps=100):
 * param_groups' lr/momentum read before each optimizer step t. */
START_TEST(test_sched_onecycle_100)
{
    static const struct onecycle_ref ref[] = {
        {0, 0.00400000006, 0.95},         {1, 0.00428137812, 0.949706898},
        {10, 0.0295163953, 0.923420422},  {28, 0.0997186234, 0.850293102},
        {29, 0.100000001, 0.85},          {30, 0.099949655, 0.850050347},
        {50, 0.0793893462, 0.870610737},  {98, 5.07464723e-05, 0.949949653},
        {99, 4.00000006e-07, 0.95},
    };
    check_onecycle(100, ref, sizeof ref / sizeof ref[0]);
}
END_TEST

/* The same with total_steps=938: phase one ends at 280.4, between steps. */
START_TEST(test_sched_onecycle_938)
{
    static const struct onecycle_ref ref[] = {
        {0, 0.00400000006, 0.95},           {1, 0.00400301272, 0.949996862},
        {10, 0.00430095441, 0.949686506},   {279, 0.0999940967, 0.850006151},
        {280, 0.0999995195, 0.850000502},   {281, 0.0999997955, 0.850000206},
        {469, 0.0809871722, 0.869012905},   {936, 9.72315414e-07, 0.949999428},
        {937, 4.00000006e-07, 0.95},
    };
    check_onecycle(938, ref, sizeof ref / sizeof ref[0]);
}
END_TEST

/* Shape: starts at max/25 with momentum 0.95, peaks at max with 0.85,
 * ends at max/25/1e4 with 0.95, and holds the end past total_steps. */
START_TEST(test_sched_onecycle_shape)
{
    core_opt_cfg c = sgd_cfg(0);
    core_sched_cfg s = {.kind = CORE_SCHED_ONECYCLE};
    const int64_t total = 1000;
    core_sched_point first = core_sched_at(&s, &c, 0, total, 10);
    core_sched_point peak = core_sched_at(&s, &c, 299, total, 10);
    core_sched_point last = core_sched_at(&s, &c, total - 1, total, 10);
    core_sched_point over = core_sched_at(&s, &c, total + 5, total, 10);
    assert_close(first.lr, c.lr / 25.0, "first", 0);
    assert_close(first.momentum, 0.95, "first mom", 0);
    assert_close(peak.lr, c.lr, "peak", 0);
    assert_close(peak.momentum, 0.85, "peak mom", 0);
    assert_close(last.lr, c.lr / 25.0 / 1e4, "last", 0);
    assert_close(last.momentum, 0.95, "last mom", 0);
    ck_assert_float_eq(over.lr, last.lr);
    ck_assert_float_eq(over.momentum, last.momentum);
    for (int64_t t = 1; t < total; t++) {
        float a = core_sched_at(&s, &c, t - 1, total, 10).lr;
        float b = core_sched_at(&s, &c, t, total, 10).lr;
        if (t <= 299)
            ck_assert_float_ge(b, a);
        else
            ck_assert_float_le(b, a);
    }
}
END_TEST

/* ---------------------------------------------------------------- state */

static void check_round_trip(const core_opt_cfg *c)
{
    enum { N = 37 };
    core_optim a, b;
    float wa[N], wb[N], g[N];
    for (int i = 0; i < N; i++) {
        wa[i] = (float)i * 0.1f - 1.0f;
        g[i] = sinf((float)i);
    }
    init_ok(&a, c, N);
    for (int s = 0; s < 5; s++)
        core_optim_step(&a, wa, g, c->lr, c->momentum);

    size_t size = core_optim_state_size(&a);
    ck_assert_uint_eq(size, 8 + (c->kind == CORE_OPT_ADAM ? 2 : 1) * N * sizeof(float));
    uint8_t *buf = malloc(size);
    ck_assert_ptr_nonnull(buf);
    core_optim_state_write(&a, buf);
    ck_assert_uint_eq(buf[0], 5); /* t, little-endian */
    for (int i = 1; i < 8; i++)
        ck_assert_uint_eq(buf[i], 0);

    init_ok(&b, c, N);
    core_optim_state_read(&b, buf);
    ck_assert_int_eq(b.t, 5);
    memcpy(wb, wa, sizeof wb);
    core_optim_step(&a, wa, g, c->lr * 0.5f, c->momentum);
    core_optim_step(&b, wb, g, c->lr * 0.5f, c->momentum);
    ck_assert_int_eq(memcmp(wa, wb, sizeof wa), 0);
    ck_assert_int_eq(memcmp(a.m, b.m, N * sizeof(float)), 0);
    if (c->kind == CORE_OPT_ADAM)
        ck_assert_int_eq(memcmp(a.v, b.v, N * sizeof(float)), 0);
    free(buf);
    core_optim_free(&a);
    core_optim_free(&b);
}

START_TEST(test_state_round_trip)
{
    core_opt_cfg sgd = sgd_cfg(1), adam = adam_cfg();
    check_round_trip(&sgd);
    check_round_trip(&adam);
}
END_TEST

/* ------------------------------------------------------- config errors */

static void expect_bad(const core_opt_cfg *c, const char *needle)
{
    core_optim o;
    char err[CORE_ERRLEN] = "";
    ck_assert_int_eq(core_optim_init(&o, c, 8, err), -1);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
    ck_assert_ptr_null(o.m); /* left freeable */
    core_optim_free(&o);
}

START_TEST(test_bad_configs)
{
    core_opt_cfg c;
    c = sgd_cfg(0), c.lr = -1;
    expect_bad(&c, "invalid learning rate '-1'");
    c = sgd_cfg(0), c.lr = 0;
    expect_bad(&c, "learning rate");
    c = sgd_cfg(0), c.lr = INFINITY;
    expect_bad(&c, "learning rate");
    c = sgd_cfg(0), c.lr = NAN;
    expect_bad(&c, "learning rate");
    c = sgd_cfg(0), c.momentum = 1;
    expect_bad(&c, "invalid momentum '1'");
    c = sgd_cfg(0), c.momentum = -0.5f;
    expect_bad(&c, "momentum");
    c = sgd_cfg(0), c.weight_decay = -0.1f;
    expect_bad(&c, "weight decay");
    c = sgd_cfg(1), c.momentum = 0;
    expect_bad(&c, "nesterov");
    c = adam_cfg(), c.beta2 = 1;
    expect_bad(&c, "beta2");
    c = adam_cfg(), c.momentum = 1;
    expect_bad(&c, "beta1");
    c = adam_cfg(), c.eps = 0;
    expect_bad(&c, "eps");
    /* The NULL err buffer is allowed. */
    core_optim o;
    c = sgd_cfg(0), c.lr = -1;
    ck_assert_int_eq(core_optim_init(&o, &c, 8, NULL), -1);
}
END_TEST

START_TEST(test_good_configs)
{
    core_opt_kind kinds[2] = {CORE_OPT_SGD, CORE_OPT_ADAM};
    for (int k = 0; k < 2; k++) {
        core_opt_cfg c = core_opt_defaults(kinds[k]);
        core_optim o;
        init_ok(&o, &c, 0); /* an empty model is not an error */
        core_optim_free(&o);
        init_ok(&o, &c, 10);
        ck_assert_ptr_nonnull(o.m);
        ck_assert(kinds[k] == CORE_OPT_ADAM ? o.v != NULL : o.v == NULL);
        for (int i = 0; i < 10; i++)
            ck_assert_float_eq(o.m[i], 0.0f);
        core_optim_free(&o);
    }
}
END_TEST

/* ------------------------------------------------------ names, defaults */

START_TEST(test_defaults)
{
    core_opt_cfg s = core_opt_defaults(CORE_OPT_SGD), a = core_opt_defaults(CORE_OPT_ADAM);
    ck_assert_float_eq(s.lr, 0.05f);
    ck_assert_float_eq(s.momentum, 0.9f);
    ck_assert_float_eq(s.weight_decay, 5e-4f);
    ck_assert_int_eq(s.nesterov, 0);
    ck_assert_float_eq(a.lr, 1e-3f);
    ck_assert_float_eq(a.momentum, 0.9f);
    ck_assert_float_eq(a.beta2, 0.999f);
    ck_assert_float_eq(a.eps, 1e-8f);
    ck_assert_float_eq(a.weight_decay, 0.0f);
}
END_TEST

START_TEST(test_parse_names)
{
    char err[CORE_ERRLEN];
    core_opt_kind ok;
    core_sched_kind sk;
    ck_assert_int_eq(core_opt_kind_parse("sgd", &ok, err), 0);
    ck_assert_int_eq(ok, CORE_OPT_SGD);
    ck_assert_int_eq(core_opt_kind_parse("adam", &ok, err), 0);
    ck_assert_int_eq(ok, CORE_OPT_ADAM);
    ck_assert_int_eq(core_opt_kind_parse("foo", &ok, err), -1);
    ck_assert_str_eq(err, "unknown optimizer 'foo' (expected sgd or adam)");
    ck_assert_str_eq(core_opt_kind_name(CORE_OPT_SGD), "sgd");
    ck_assert_str_eq(core_opt_kind_name(CORE_OPT_ADAM), "adam");

    static const char *names[] = {"constant", "step", "cosine", "onecycle"};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(core_sched_kind_parse(names[k], &sk, err), 0);
        ck_assert_int_eq(sk, k);
        ck_assert_str_eq(core_sched_kind_name(sk), names[k]);
    }
    ck_assert_int_eq(core_sched_kind_parse("one-cycle", &sk, err), 0);
    ck_assert_int_eq(sk, CORE_SCHED_ONECYCLE);
    ck_assert_int_eq(core_sched_kind_parse("linear", &sk, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown schedule 'linear'"));
}
END_TEST

static Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sgd_momentum_wd);
    tcase_add_test(tc, test_sgd_by_hand);
    tcase_add_test(tc, test_sgd_plain);
    tcase_add_test(tc, test_sgd_nesterov);
    tcase_add_test(tc, test_adam);
    tcase_add_test(tc, test_adam_onecycle);
    tcase_add_test(tc, test_thread_count_invariant);
    tcase_add_test(tc, test_sched_constant);
    tcase_add_test(tc, test_sched_step);
    tcase_add_test(tc, test_sched_cosine);
    tcase_add_test(tc, test_sched_onecycle_100);
    tcase_add_test(tc, test_sched_onecycle_938);
    tcase_add_test(tc, test_sched_onecycle_shape);
    tcase_add_test(tc, test_state_round_trip);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_test(tc, test_good_configs);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_parse_names);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_optim)
