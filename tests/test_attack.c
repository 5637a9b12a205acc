/*
 * test_attack.c - the attack suite on a small model trained in the test.
 *
 * The data: 5 classes of 1x8x8 images, each class a fixed random template
 * of 0.25/0.75 pixels plus Gaussian noise (sigma 0.1), so a small CNN learns
 * it in a few hundred SGD steps (well under a second) and reaches ~100 %
 * clean accuracy, while a perturbation of a few tenths per pixel breaks it.
 * Every test trains the model afresh in a checked fixture (inside Check's
 * fork: libgomp's thread pool does not survive a fork, so the parent must
 * never start it) and attacks the same held-out batch.
 */
#include "testutil.h"

#include "core/attack.h"
#include "core/loss.h"
#include "core/model.h"
#include "core/rng.h"

#include <math.h>

#define NC 5
#define SIDE 8
#define DIM (SIDE * SIDE)
#define NTRAIN 640
#define N 100

static core_model *model;
static core_attack_ws *ws;
static float *xtest, *xadv;
static int ytest[N];
static double clean_acc;

static void make_data(float *x, int *y, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        y[i] = (int)core_rng_below(seed, 0, (uint64_t)i, NC);
        for (int j = 0; j < DIM; j++) {
            float t = core_rng_uniform(99, (uint64_t)y[i], (uint64_t)j) < 0.5f ? 0.25f : 0.75f;
            float v = t + 0.1f * core_rng_normal(seed, 1, (uint64_t)i * DIM + j);
            x[(size_t)i * DIM + j] = fminf(fmaxf(v, 0.0f), 1.0f);
        }
    }
}

/* Plain minibatch SGD on the mean cross-entropy. */
static void train(core_model *m, const float *x, const int *y)
{
    const int batch = 64;
    float dlogits[64 * NC];
    for (int step = 0; step < 150; step++) {
        int off = (step * batch) % NTRAIN;
        const float *z = core_model_forward(m, x + (size_t)off * DIM, batch);
        core_loss_ce(z, y + off, batch, NC, dlogits, NULL);
        core_model_zero_grad(m);
        core_model_backward(m, dlogits, batch, NULL, 1);
        for (size_t k = 0; k < m->nparams; k++)
            m->params[k] -= 0.1f * m->grads[k];
    }
}

static double accuracy(const float *x, int n)
{
    const float *z = core_model_forward(model, x, n);
    return (double)core_count_correct(z, ytest, n, NC) / n;
}

static void setup(void)
{
    char err[CORE_ERRLEN];
    core_shape in = {1, SIDE, SIDE};
    ck_assert_msg(core_model_create("conv8k3p1 relu maxpool2 fc32 relu fc5", in, NC, 1, &model,
                                    err) == 0, "%s", err);
    ck_assert(core_model_reserve(model, NTRAIN, err) == 0);
    float *xtrain = core_alloc(sizeof(float) * NTRAIN * DIM);
    int *ytrain = core_alloc(sizeof(int) * NTRAIN);
    make_data(xtrain, ytrain, NTRAIN, 11);
    train(model, xtrain, ytrain);
    core_free(xtrain);
    core_free(ytrain);
    xtest = core_alloc(sizeof(float) * N * DIM);
    xadv = core_alloc(sizeof(float) * N * DIM);
    make_data(xtest, ytest, N, 12);
    ck_assert_msg(core_attack_ws_create(model, N, &ws, err) == 0, "%s", err);
    clean_acc = accuracy(xtest, N);
}

static void teardown(void)
{
    core_attack_ws_free(ws);
    core_model_free(model);
    core_free(xtest);
    core_free(xadv);
}

/* Runs cfg on the test batch into xadv; returns the robust accuracy. */
static double attack_acc(const core_attack_cfg *cfg, uint8_t *robust)
{
    char err[CORE_ERRLEN];
    uint8_t rob[N];
    int tgt[N];
    for (int i = 0; i < N; i++)
        tgt[i] = (ytest[i] + 1) % NC;
    ck_assert_msg(core_attack_run(cfg, model, ws, xtest, ytest, tgt, N, 5, xadv, rob, err) == 0,
                  "%s", err);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += rob[i];
    if (robust)
        memcpy(robust, rob, N);
    /* robust[] agrees with the model's own verdict at x_adv. */
    ck_assert_double_eq_tol((double)ok / N, accuracy(xadv, N), 1e-9);
    return (double)ok / N;
}

static core_attack_cfg cfg_of(core_attack_kind kind, float eps)
{
    core_attack_cfg c = core_attack_defaults(kind, eps);
    c.seed = 3;
    c.n_targets = NC - 1;
    c.queries = 1000;
    return c;
}

START_TEST(test_clean_model)
{
    fprintf(stderr, "clean accuracy %.2f\n", clean_acc);
    ck_assert(clean_acc >= 0.95);
}
END_TEST

/* ||x_adv - x|| <= eps + 1e-6 in the attack's norm and x_adv in [0, 1]. */
static void check_bounds(const core_attack_cfg *cfg, const char *what)
{
    attack_acc(cfg, NULL);
    for (int i = 0; i < N; i++) {
        double l2 = 0.0, linf = 0.0;
        for (int j = 0; j < DIM; j++) {
            float a = xadv[i * DIM + j], d = a - xtest[i * DIM + j];
            ck_assert_msg(a >= 0.0f && a <= 1.0f, "%s: pixel %g out of [0, 1]", what, (double)a);
            l2 += (double)d * d;
            linf = fmax(linf, fabs(d));
        }
        double size = cfg->norm == CORE_NORM_L2 ? sqrt(l2) : linf;
        ck_assert_msg(size <= cfg->eps + 1e-6, "%s: example %d at distance %g > eps %g", what, i,
                      size, (double)cfg->eps);
    }
}

START_TEST(test_bounds)
{
    static const core_attack_kind kinds[] = {CORE_ATTACK_FGSM,   CORE_ATTACK_PGD,
                                             CORE_ATTACK_APGD_CE, CORE_ATTACK_APGD_T,
                                             CORE_ATTACK_SQUARE, CORE_ATTACK_NOISE,
                                             CORE_ATTACK_FAB_T};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        core_attack_cfg c = cfg_of(kinds[k], 0.1f);
        c.steps = kinds[k] == CORE_ATTACK_FGSM ? 1 : 20;
        c.queries = 300;
        check_bounds(&c, core_attack_kind_name(kinds[k]));
    }
    core_attack_cfg c = cfg_of(CORE_ATTACK_PGD, 1.0f);
    c.norm = CORE_NORM_L2;
    check_bounds(&c, "pgd-l2");
    c.kind = CORE_ATTACK_NOISE;
    check_bounds(&c, "noise-l2");
    c.kind = CORE_ATTACK_APGD_CE;
    check_bounds(&c, "apgd-l2");
    c = cfg_of(CORE_ATTACK_PGD, 0.1f);
    c.loss = CORE_ALOSS_CW;
    check_bounds(&c, "pgd-cw");
    c.loss = CORE_ALOSS_CE;
    c.targeted = 1;
    check_bounds(&c, "pgd-targeted");
}
END_TEST

START_TEST(test_strength_order)
{
    static const float radii[] = {0.12f, 0.15f};
    for (int r = 0; r < 2; r++) {
        float eps = radii[r];
        core_attack_cfg c = cfg_of(CORE_ATTACK_FGSM, eps);
        double fgsm = attack_acc(&c, NULL);
        c = cfg_of(CORE_ATTACK_PGD, eps);
        double pgd = attack_acc(&c, NULL);
        c.loss = CORE_ALOSS_CW;
        double cw = attack_acc(&c, NULL);
        c = cfg_of(CORE_ATTACK_APGD_CE, eps);
        double apgd = attack_acc(&c, NULL);
        c = cfg_of(CORE_ATTACK_APGD_T, eps);
        double apgdt = attack_acc(&c, NULL);
        c = cfg_of(CORE_ATTACK_SQUARE, eps);
        double square = attack_acc(&c, NULL);
        c = cfg_of(CORE_ATTACK_NOISE, eps);
        double noise = attack_acc(&c, NULL);
        fprintf(stderr,
                "eps %.2f: clean %.2f noise %.2f fgsm %.2f pgd-20 %.2f pgd-cw %.2f apgd-ce %.2f "
                "apgd-t %.2f square-1000 %.2f\n",
                (double)eps, clean_acc, noise, fgsm, pgd, cw, apgd, apgdt, square);
        ck_assert(pgd <= fgsm);
        ck_assert(pgd < clean_acc);
        ck_assert(noise >= pgd);
        ck_assert(apgd <= fgsm);
        ck_assert(apgdt <= fgsm);
    }
}
END_TEST

START_TEST(test_restarts_monotone)
{
    for (int norm = 0; norm < 2; norm++) {
        core_attack_cfg c = cfg_of(CORE_ATTACK_PGD, norm ? 0.8f : 0.1f);
        c.norm = norm ? CORE_NORM_L2 : CORE_NORM_LINF;
        c.steps = 5;
        uint8_t r1[N], r3[N];
        double a1 = attack_acc(&c, r1);
        c.restarts = 3;
        double a3 = attack_acc(&c, r3);
        fprintf(stderr, "pgd-5 %s: 1 restart %.2f, 3 restarts %.2f\n", norm ? "l2" : "linf", a1,
                a3);
        for (int i = 0; i < N; i++)
            ck_assert_msg(!r3[i] || r1[i], "example %d robust with 3 restarts only", i);
    }
}
END_TEST

START_TEST(test_eps_extremes)
{
    static const core_attack_kind kinds[] = {CORE_ATTACK_FGSM,   CORE_ATTACK_PGD,
                                             CORE_ATTACK_APGD_CE, CORE_ATTACK_APGD_T,
                                             CORE_ATTACK_SQUARE, CORE_ATTACK_NOISE,
                                             CORE_ATTACK_FAB_T};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        core_attack_cfg c = cfg_of(kinds[k], 0.0f);
        c.queries = 100;
        ck_assert_double_eq_tol(attack_acc(&c, NULL), clean_acc, 1e-9);
        ck_assert(memcmp(xadv, xtest, sizeof(float) * N * DIM) == 0);
    }
    core_attack_kind strong[] = {CORE_ATTACK_PGD, CORE_ATTACK_APGD_CE, CORE_ATTACK_SQUARE,
                                 CORE_ATTACK_FAB_T};
    for (size_t k = 0; k < sizeof strong / sizeof strong[0]; k++) {
        core_attack_cfg c = cfg_of(strong[k], 0.5f);
        double acc = attack_acc(&c, NULL);
        fprintf(stderr, "eps 0.5 %s: %.2f\n", core_attack_kind_name(strong[k]), acc);
        ck_assert(acc <= 1.0 / NC);
    }
}
END_TEST

START_TEST(test_suite)
{
    char err[CORE_ERRLEN];
    float eps = 0.12f;
    core_suite s;
    ck_assert_msg(core_suite_preset("strong", eps, 3, &s, err) == 0, "%s", err);
    ck_assert_int_eq(s.count, 6);
    for (int j = 0; j < s.count; j++) {
        s.attacks[j].steps = s.attacks[j].steps > 20 ? 20 : s.attacks[j].steps;
        s.attacks[j].queries = 500;
    }
    uint8_t robust[N], per[CORE_SUITE_MAX * N];
    ck_assert_msg(core_suite_run(&s, model, ws, xtest, ytest, N, 5, robust, per, err) == 0, "%s",
                  err);
    int suite_ok = 0, and_ok = 0, agree = 0;
    for (int i = 0; i < N; i++)
        suite_ok += robust[i];
    double suite = (double)suite_ok / N, worst = 1.0;
    uint8_t all[N];
    for (int i = 0; i < N; i++)
        all[i] = 1;
    for (int j = 0; j < s.count; j++) {
        core_attack_cfg c = s.attacks[j];
        if (c.kind == CORE_ATTACK_APGD_T || c.kind == CORE_ATTACK_FAB_T)
            c.n_targets = NC - 1;
        uint8_t rob[N];
        double a = attack_acc(&c, rob);
        worst = fmin(worst, a);
        for (int i = 0; i < N; i++) {
            all[i] &= rob[i];
            /* per_attack agrees with the member alone where it ran. */
            ck_assert(robust[i] <= per[j * N + i]);
        }
    }
    for (int i = 0; i < N; i++) {
        and_ok += all[i];
        agree += all[i] == robust[i];
    }
    fprintf(stderr, "suite 'strong' (20 steps) eps %.2f: %.2f, worst member %.2f, AND %.2f, "
            "agreement %d/%d\n", (double)eps, suite, worst, (double)and_ok / N, agree, N);
    ck_assert(suite <= worst);
    ck_assert(suite <= (double)and_ok / N);

    /* AutoAttack's standard version and its constants. */
    ck_assert_int_eq(core_suite_preset("autoattack", eps, 3, &s, err), 0);
    ck_assert_int_eq(s.count, 4);
    static const core_attack_kind standard[] = {CORE_ATTACK_APGD_CE, CORE_ATTACK_APGD_T,
                                                CORE_ATTACK_FAB_T, CORE_ATTACK_SQUARE};
    for (int j = 0; j < 4; j++)
        ck_assert_int_eq(s.attacks[j].kind, standard[j]);
    ck_assert_int_eq(s.attacks[2].steps, 100);
    ck_assert_int_eq(s.attacks[2].restarts, 1);
    ck_assert_int_eq(s.attacks[2].n_targets, 9);
    ck_assert_int_eq(s.attacks[3].queries, 5000);
    ck_assert_int_eq(core_suite_preset("pgd", eps, 3, &s, err), 0);
    ck_assert_int_eq(s.attacks[0].steps, 20);
    ck_assert_int_eq(core_suite_preset("nope", eps, 3, &s, err), -1);
    ck_assert_str_eq(err, "unknown suite 'nope' (known: autoattack, pgd, strong)");
}
END_TEST

START_TEST(test_autoattack_suite)
{
    char err[CORE_ERRLEN];
    core_suite s;
    ck_assert_int_eq(core_suite_preset("autoattack", 0.12f, 3, &s, err), 0);
    s.attacks[3].queries = 1000;
    uint8_t robust[N];
    ck_assert_msg(core_suite_run(&s, model, ws, xtest, ytest, N, 5, robust, NULL, err) == 0, "%s",
                  err);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += robust[i];
    core_attack_cfg c = cfg_of(CORE_ATTACK_PGD, 0.12f);
    double pgd = attack_acc(&c, NULL);
    fprintf(stderr, "eps 0.12: autoattack (square 1000) %.2f, pgd-20 %.2f\n", (double)ok / N, pgd);
    ck_assert((double)ok / N <= pgd + 0.02);
}
END_TEST

START_TEST(test_apgd_checkpoints)
{
    int got[32];
    static const int want[] = {22, 41, 57, 70, 80, 87, 93, 99};
    ck_assert_int_eq(core_apgd_checkpoints(100, got, 32), 8);
    for (int k = 0; k < 8; k++)
        ck_assert_int_eq(got[k], want[k]);
    ck_assert_int_eq(core_apgd_checkpoints(100, got, 3), 8); /* counts past max */
    int n = core_apgd_checkpoints(10, got, 32);
    ck_assert(n >= 1 && got[n - 1] <= 10);
}
END_TEST

START_TEST(test_dlr)
{
    /* z = (3, 1, 2, 0.5, -1), y = 0: margin 3 - 2 = 1, pi1 - pi3 = 3 - 1 = 2. */
    float z[5] = {3.0f, 1.0f, 2.0f, 0.5f, -1.0f}, d[5];
    int y = 0, t = 3;
    float loss = core_loss_dlr(z, &y, NULL, 1, 5, d, NULL);
    ck_assert_float_eq_tol(loss, -0.5f, 1e-6f);
    /* dL/dz: y: -1/2 + 1/4 (as pi1) = -0.25; other (2): +0.5; pi3 (1): -0.25. */
    float want[5] = {-0.25f, -0.25f, 0.5f, 0.0f, 0.0f};
    for (int j = 0; j < 5; j++)
        ck_assert_float_eq_tol(d[j], want[j], 1e-6f);
    /* Targeted towards 3: -(3 - 0.5) / (3 - (1 + 0.5) / 2) = -2.5 / 2.25. */
    loss = core_loss_dlr(z, &y, &t, 1, 5, d, NULL);
    ck_assert_float_eq_tol(loss, -2.5f / 2.25f, 1e-6f);
    /* Finite differences on random logits, both variants, two examples. */
    float zz[10], dd[10];
    int yy[2] = {1, 4}, tt[2] = {2, 0};
    for (int j = 0; j < 10; j++)
        zz[j] = 2.0f * core_rng_normal(8, 0, (uint64_t)j);
    for (int targeted = 0; targeted < 2; targeted++) {
        const int *tp = targeted ? tt : NULL;
        core_loss_dlr(zz, yy, tp, 2, 5, dd, NULL);
        for (int j = 0; j < 10; j++) {
            float keep = zz[j], h = 1e-3f;
            zz[j] = keep + h;
            double up = core_loss_dlr(zz, yy, tp, 2, 5, NULL, NULL);
            zz[j] = keep - h;
            double down = core_loss_dlr(zz, yy, tp, 2, 5, NULL, NULL);
            zz[j] = keep;
            ck_assert_msg(fabs((up - down) / (2 * h) - dd[j]) < 2e-3, "dlr grad %d: %g vs %g", j,
                          (up - down) / (2 * h), (double)dd[j]);
        }
    }
}
END_TEST

START_TEST(test_targeted)
{
    char err[CORE_ERRLEN];
    core_attack_cfg c = cfg_of(CORE_ATTACK_PGD, 0.4f);
    c.targeted = 1;
    c.steps = 50;
    int tgt[N];
    for (int i = 0; i < N; i++)
        tgt[i] = (ytest[i] + 1 + i % (NC - 1)) % NC;
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, tgt, N, 5, xadv, NULL, err) == 0);
    const float *z = core_model_forward(model, xadv, N);
    int hit = 0;
    for (int i = 0; i < N; i++)
        hit += core_argmax(z + i * NC, NC) == tgt[i];
    fprintf(stderr, "targeted pgd-50 eps 0.4: %d/%d reach the target\n", hit, N);
    ck_assert(hit >= 0.8 * N);
    /* Targeted without targets is an error. */
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
    ck_assert(strstr(err, "targeted") != NULL);
}
END_TEST

START_TEST(test_determinism)
{
    char err[CORE_ERRLEN];
    static const core_attack_kind kinds[] = {CORE_ATTACK_PGD, CORE_ATTACK_APGD_T,
                                             CORE_ATTACK_SQUARE, CORE_ATTACK_NOISE};
    float *again = core_alloc(sizeof(float) * N * DIM);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        core_attack_cfg c = cfg_of(kinds[k], 0.1f);
        c.steps = 10;
        c.queries = 200;
        ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == 0);
        ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, again, NULL, err) == 0);
        ck_assert_msg(memcmp(xadv, again, sizeof(float) * N * DIM) == 0, "%s not repeatable",
                      core_attack_kind_name(kinds[k]));
        c.seed = 4;
        ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, again, NULL, err) == 0);
        ck_assert_msg(memcmp(xadv, again, sizeof(float) * N * DIM) != 0, "%s ignores the seed",
                      core_attack_kind_name(kinds[k]));
        c.seed = 3;
        ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 6, again, NULL, err) == 0);
        ck_assert_msg(memcmp(xadv, again, sizeof(float) * N * DIM) != 0, "%s ignores the stream",
                      core_attack_kind_name(kinds[k]));
    }
    core_free(again);
}
END_TEST

START_TEST(test_square_no_gradients)
{
    /* Backward is the only writer of the model's gradient buffers: a
     * sentinel there survives an attack that only runs forward passes. */
    size_t len = (size_t)N * NC;
    for (size_t j = 0; j < len; j++)
        model->gbuf[0][j] = model->gbuf[1][j] = 777.0f;
    core_attack_cfg c = cfg_of(CORE_ATTACK_SQUARE, 0.3f);
    double acc = attack_acc(&c, NULL);
    for (size_t j = 0; j < len; j++)
        ck_assert(model->gbuf[0][j] == 777.0f && model->gbuf[1][j] == 777.0f);
    fprintf(stderr, "square-1000 eps 0.3: %.2f (clean %.2f)\n", acc, clean_acc);
    ck_assert(acc < clean_acc - 0.3);
}
END_TEST

static void expect_reject(core_attack_cfg c, const char *want)
{
    char err[CORE_ERRLEN];
    ck_assert_int_eq(core_attack_cfg_check(&c, err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not contain '%s'", err, want);
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
}

START_TEST(test_bad_configs)
{
    char err[CORE_ERRLEN];
    core_attack_cfg c = cfg_of(CORE_ATTACK_PGD, 0.1f), b;
    ck_assert_int_eq(core_attack_cfg_check(&c, err), 0);
    b = c, b.eps = -0.1f, expect_reject(b, "invalid eps '-0.1' (must be in [0, 1])");
    b = c, b.eps = 1.5f, expect_reject(b, "invalid eps '1.5'");
    b = c, b.eps = NAN, expect_reject(b, "invalid eps 'nan'");
    b = c, b.norm = CORE_NORM_L2, b.eps = -1.0f, expect_reject(b, "invalid eps '-1'");
    b = c, b.steps = 0, expect_reject(b, "invalid steps '0'");
    b = c, b.restarts = 0, expect_reject(b, "invalid restarts '0'");
    b = c, b.queries = 0, expect_reject(b, "invalid queries '0'");
    b = c, b.n_targets = 0, expect_reject(b, "invalid n_targets '0'");
    b = c, b.alpha = -1.0f, expect_reject(b, "invalid alpha '-1'");
    b = c, b.alpha = NAN, expect_reject(b, "invalid alpha 'nan'");
    b = c, b.p_init = 0.0f, expect_reject(b, "invalid p_init '0'");
    b = c, b.random_start = 3, expect_reject(b, "invalid random_start '3'");
    /* Checks that need the model. */
    b = cfg_of(CORE_ATTACK_APGD_T, 0.1f), b.n_targets = NC;
    ck_assert(core_attack_run(&b, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
    ck_assert_str_eq(err, "invalid n_targets '5' (must be < 5 classes)");
    b = cfg_of(CORE_ATTACK_SQUARE, 0.5f), b.norm = CORE_NORM_L2;
    ck_assert(core_attack_run(&b, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
    ck_assert(strstr(err, "norm") != NULL);
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N + 1, 5, xadv, NULL, err) == -1);
    ck_assert(strstr(err, "invalid batch '101'") != NULL);
    core_attack_kind k;
    ck_assert_int_eq(core_attack_kind_parse("apgd-t", &k, err), 0);
    ck_assert_int_eq(k, CORE_ATTACK_APGD_T);
    ck_assert_int_eq(core_attack_kind_parse("fab", &k, err), -1);
    ck_assert_str_eq(err, "unknown attack 'fab' (known: fgsm, pgd, apgd-ce, apgd-t, square, "
                          "noise, fab-t)");
    b = cfg_of(CORE_ATTACK_FAB_T, 0.1f), b.n_targets = NC;
    ck_assert(core_attack_run(&b, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
    ck_assert_str_eq(err, "invalid n_targets '5' (must be < 5 classes)");
    b = cfg_of(CORE_ATTACK_FAB_T, 0.5f), b.norm = CORE_NORM_L2;
    ck_assert(core_attack_run(&b, model, ws, xtest, ytest, NULL, N, 5, xadv, NULL, err) == -1);
    ck_assert_str_eq(err, "invalid norm 'l2' for 'fab-t' (only linf is supported)");
    for (int kk = 0; kk <= CORE_ATTACK_FAB_T; kk++) {
        ck_assert_int_eq(core_attack_kind_parse(core_attack_kind_name(kk), &k, err), 0);
        ck_assert_int_eq(k, kk);
    }
}
END_TEST

/* TRADES-style use of the engine: a KL callback and the 0.001 N(0,1) start. */
typedef struct {
    const float *p_clean;
} kl_ctx;

static void kl_loss(void *vctx, const float *logits, int n, int c, float *dlogits,
                    float *per_example)
{
    const kl_ctx *k = vctx;
    float q[NC];
    for (int i = 0; i < n; i++) {
        core_softmax(logits + i * c, q, 1, c);
        double kl = 0.0;
        for (int j = 0; j < c; j++) {
            const float p = k->p_clean[i * c + j];
            kl += p * (log(p + 1e-12) - log(q[j] + 1e-12));
            dlogits[i * c + j] = (q[j] - p) / n; /* d KL(p || q) / d z */
        }
        per_example[i] = (float)kl;
    }
}

START_TEST(test_ascent_trades)
{
    float *p = core_alloc(sizeof(float) * N * NC);
    core_softmax(core_model_forward(model, xtest, N), p, N, NC);
    kl_ctx ctx = {p};
    core_ascent_cfg a = {.norm = CORE_NORM_LINF, .eps = 0.1f, .alpha = 0.02f, .steps = 10,
                         .random_start = 2, .seed = 9};
    core_ascent(&a, model, ws, xtest, N, 1, kl_loss, &ctx, xadv);
    double max = 0.0, moved = 0.0;
    for (int j = 0; j < N * DIM; j++) {
        double d = fabs(xadv[j] - xtest[j]);
        max = fmax(max, d);
        moved += d;
    }
    ck_assert(max <= 0.1 + 1e-6);
    ck_assert(moved / (N * DIM) > 0.05); /* sign steps took most pixels to the rim */
    double acc = accuracy(xadv, N);
    fprintf(stderr, "trades-kl ascent eps 0.1: accuracy %.2f\n", acc);
    ck_assert(acc < clean_acc);
    core_free(p);
}
END_TEST

/* FAB-T: every broken example is misclassified at a point of the eps-ball
 * (the others keep x_adv = x), never above the clean accuracy, more
 * iterations or restarts never break fewer examples, the same seed gives
 * the same points, and the attack is about as strong as APGD-T. */
START_TEST(test_fab)
{
    char err[CORE_ERRLEN];
    float eps = 0.12f;
    core_attack_cfg c = cfg_of(CORE_ATTACK_FAB_T, eps);
    uint8_t rob[3][N];
    static const int steps[3] = {5, 20, 60};
    double acc[3];
    for (int r = 0; r < 3; r++) {
        c.steps = steps[r];
        acc[r] = attack_acc(&c, rob[r]);
        ck_assert(acc[r] <= clean_acc);
    }
    float *fab60 = core_alloc(sizeof(float) * N * DIM), *again = core_alloc(sizeof(float) * N * DIM);
    memcpy(fab60, xadv, sizeof(float) * N * DIM);
    const float *z = core_model_forward(model, xtest, N);
    int clean_ok[N];
    for (int i = 0; i < N; i++)
        clean_ok[i] = core_argmax(z + i * NC, NC) == ytest[i];
    z = core_model_forward(model, fab60, N);
    for (int i = 0; i < N; i++) {
        int fooled = core_argmax(z + i * NC, NC) != ytest[i];
        ck_assert_int_eq(fooled, !rob[2][i]);
        int moved = memcmp(fab60 + i * DIM, xtest + i * DIM, sizeof(float) * DIM) != 0;
        /* Only correctly classified examples are attacked, and only a
         * success moves x_adv. */
        ck_assert(!moved || (clean_ok[i] && fooled));
        for (int r = 1; r < 3; r++)
            ck_assert_msg(!rob[r][i] || rob[r - 1][i], "example %d robust at %d steps only", i,
                          steps[r]);
    }
    core_attack_cfg t = cfg_of(CORE_ATTACK_APGD_T, eps);
    double apgdt = attack_acc(&t, NULL);
    fprintf(stderr, "eps %.2f: clean %.2f fab-t 5/20/60 steps %.2f %.2f %.2f, apgd-t %.2f\n",
            (double)eps, clean_acc, acc[0], acc[1], acc[2], apgdt);
    ck_assert(acc[2] < clean_acc - 0.2);
    ck_assert(acc[2] <= apgdt + 0.05);

    /* One restart draws nothing: neither the seed nor the stream matters. */
    c.seed = 77;
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 9, again, NULL, err) == 0);
    ck_assert(memcmp(again, fab60, sizeof(float) * N * DIM) == 0);

    /* Later restarts start at random points: repeatable for a seed, and
     * they never lose an example the first restart broke. */
    c.restarts = 2;
    c.steps = 20;
    uint8_t rob2[N];
    double acc2 = attack_acc(&c, rob2);
    memcpy(fab60, xadv, sizeof(float) * N * DIM);
    ck_assert(core_attack_run(&c, model, ws, xtest, ytest, NULL, N, 5, again, NULL, err) == 0);
    ck_assert(memcmp(again, fab60, sizeof(float) * N * DIM) == 0);
    for (int i = 0; i < N; i++)
        ck_assert(!rob2[i] || rob[1][i]);
    fprintf(stderr, "fab-t 20 steps: 1 restart %.2f, 2 restarts %.2f\n", acc[1], acc2);
    core_free(again);
    core_free(fab60);
}
END_TEST

/* On a linear model the linearisation FAB steps on is exact: towards the
 * runner-up class t, the closest L-inf boundary point lies at
 * d = (z_y - z_t) / ||w_y - w_t||_1 (every pixel with w_y != w_t moves by
 * d) when that stays inside [0, 1]. FAB-T must end within 1 % of d. */
START_TEST(test_fab_linear)
{
    char err[CORE_ERRLEN];
    core_shape in = {1, SIDE, SIDE};
    core_model *lin;
    ck_assert_msg(core_model_create("fc5", in, NC, 7, &lin, err) == 0, "%s", err);
    ck_assert(core_model_reserve(lin, N, err) == 0);
    int y[N], t[N];
    float z0[N * NC], *w = core_alloc(sizeof(float) * N * DIM), dl[N * NC] = {0};
    memcpy(z0, core_model_forward(lin, xtest, N), sizeof z0);
    for (int i = 0; i < N; i++) { /* the model's own labels: every example is attacked */
        y[i] = core_argmax(z0 + i * NC, NC);
        float best = -INFINITY;
        for (int k = 0; k < NC; k++)
            if (k != y[i] && z0[i * NC + k] > best)
                best = z0[i * NC + k], t[i] = k;
        dl[i * NC + y[i]] = 1.0f, dl[i * NC + t[i]] = -1.0f;
    }
    core_model_forward(lin, xtest, N);
    core_model_backward(lin, dl, N, w, 0); /* w = w_y - w_t per example */

    core_attack_cfg c = cfg_of(CORE_ATTACK_FAB_T, 1.0f);
    c.n_targets = 1;
    ck_assert(core_attack_run(&c, lin, ws, xtest, y, NULL, N, 5, xadv, NULL, err) == 0);
    int checked = 0;
    for (int i = 0; i < N; i++) {
        double l1 = 0.0, dist = 0.0;
        for (int j = 0; j < DIM; j++) {
            l1 += fabsf(w[i * DIM + j]);
            dist = fmax(dist, fabsf(xadv[i * DIM + j] - xtest[i * DIM + j]));
        }
        double d = (z0[i * NC + y[i]] - z0[i * NC + t[i]]) / l1;
        int inside = 1;
        for (int j = 0; j < DIM; j++) {
            float v = xtest[i * DIM + j] - (float)d * ((w[i * DIM + j] > 0) - (w[i * DIM + j] < 0));
            inside &= v >= 0.0f && v <= 1.0f;
        }
        ck_assert_msg(dist >= d * (1 - 1e-4), "example %d: %g closer than the boundary %g", i,
                      dist, d);
        if (!inside)
            continue;
        ck_assert_msg(dist <= d * 1.01, "example %d: %g, boundary at %g", i, dist, d);
        checked++;
    }
    fprintf(stderr, "fab-t on a linear model: %d/%d examples at the exact boundary\n", checked, N);
    ck_assert(checked >= N / 2);
    core_free(w);
    core_model_free(lin);
}
END_TEST

/* The standard suite's per-example survival is the AND of its members'
 * (as recorded inside the suite, and as each member alone finds it: an
 * example draws the same numbers whichever others survive), so the suite
 * is never above its weakest member. */
START_TEST(test_autoattack_min)
{
    char err[CORE_ERRLEN];
    core_suite s;
    float eps = 0.1f;
    ck_assert_int_eq(core_suite_preset("autoattack", eps, 3, &s, err), 0);
    for (int j = 0; j < s.count; j++) {
        s.attacks[j].steps = 20;
        s.attacks[j].queries = 300;
    }
    uint8_t robust[N], per[CORE_SUITE_MAX * N];
    ck_assert_msg(core_suite_run(&s, model, ws, xtest, ytest, N, 5, robust, per, err) == 0, "%s",
                  err);
    const float *z = core_model_forward(model, xtest, N);
    uint8_t alone[N];
    for (int i = 0; i < N; i++) {
        int all = core_argmax(z + i * NC, NC) == ytest[i];
        for (int j = 0; j < s.count; j++)
            all &= per[j * N + i];
        ck_assert_int_eq(robust[i], all);
        alone[i] = 1;
    }
    double worst = 1.0;
    for (int j = 0; j < s.count; j++) {
        core_attack_cfg c = s.attacks[j];
        c.n_targets = c.n_targets >= NC ? NC - 1 : c.n_targets;
        uint8_t rob[N];
        worst = fmin(worst, attack_acc(&c, rob));
        for (int i = 0; i < N; i++)
            alone[i] &= rob[i];
    }
    int suite_ok = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(robust[i] == alone[i], "example %d: suite %d, members alone %d", i,
                      robust[i], alone[i]);
        suite_ok += robust[i];
    }
    fprintf(stderr, "autoattack (20 steps) eps %.2f: %.2f, weakest member alone %.2f\n",
            (double)eps, (double)suite_ok / N, worst);
    ck_assert((double)suite_ok / N <= worst);
}
END_TEST

static Suite *suite_attack(void)
{
    Suite *s = suite_create("attack");
    TCase *tc = tcase_create("attack");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_clean_model);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_strength_order);
    tcase_add_test(tc, test_restarts_monotone);
    tcase_add_test(tc, test_eps_extremes);
    tcase_add_test(tc, test_suite);
    tcase_add_test(tc, test_autoattack_suite);
    tcase_add_test(tc, test_apgd_checkpoints);
    tcase_add_test(tc, test_dlr);
    tcase_add_test(tc, test_targeted);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_square_no_gradients);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_test(tc, test_ascent_trades);
    tcase_add_test(tc, test_fab);
    tcase_add_test(tc, test_fab_linear);
    tcase_add_test(tc, test_autoattack_min);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_attack)
