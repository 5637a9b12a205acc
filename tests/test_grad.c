/*
 * test_grad.c - every layer's backward pass against finite differences.
 *
 * Each case builds a small model from a spec that isolates one layer kind,
 * takes the mean cross-entropy of a random batch as the loss, and compares
 * the analytic gradient with respect to sampled weights, every bias and
 * sampled input pixels with central differences.
 */
#include "testutil.h"

#include "core/loss.h"
#include "core/model.h"
#include "core/rng.h"

#include <math.h>

#define BATCH 3

typedef struct {
    core_model *m;
    float *x, *dx, *dlogits;
    int y[BATCH];
    int n;
} fixture;

static void fixture_make(fixture *f, const char *spec, core_shape in, int nclass)
{
    char err[CORE_ERRLEN];
    f->n = BATCH;
    ck_assert_msg(core_model_create(spec, in, nclass, 7, &f->m, err) == 0, "%s", err);
    ck_assert(core_model_reserve(f->m, BATCH, err) == 0);
    size_t len = BATCH * core_shape_size(in);
    f->x = core_alloc(len * sizeof(float));
    f->dx = core_alloc(len * sizeof(float));
    f->dlogits = core_alloc((size_t)BATCH * nclass * sizeof(float));
    for (size_t i = 0; i < len; i++)
        f->x[i] = core_rng_uniform(3, 0, i);
    for (int i = 0; i < BATCH; i++)
        f->y[i] = i % nclass;
    /* Non-zero biases so that their gradients see real activations. */
    for (int v = 0; v < f->m->nviews; v++)
        if (f->m->views[v].ndim == 1)
            for (size_t i = 0; i < f->m->views[v].size; i++)
                f->m->params[f->m->views[v].offset + i] = 0.1f * core_rng_normal(5, v, i);
}

static void fixture_free(fixture *f)
{
    core_model_free(f->m);
    core_free(f->x);
    core_free(f->dx);
    core_free(f->dlogits);
}

static double loss_at(fixture *f)
{
    const float *z = core_model_forward(f->m, f->x, f->n);
    return core_loss_ce(z, f->y, f->n, f->m->nclass, NULL, NULL);
}

static void analytic(fixture *f)
{
    const float *z = core_model_forward(f->m, f->x, f->n);
    core_loss_ce(z, f->y, f->n, f->m->nclass, f->dlogits, NULL);
    core_model_zero_grad(f->m);
    core_model_backward(f->m, f->dlogits, f->n, f->dx, 1);
}

static double numeric(fixture *f, float *v, float h)
{
    float keep = *v;
    *v = keep + h;
    double up = loss_at(f);
    *v = keep - h;
    double down = loss_at(f);
    *v = keep;
    return (up - down) / (2.0 * h);
}

static int close_enough(double num, double ana)
{
    return fabs(num - ana) <= 2e-3 + 3e-2 * fmax(fabs(num), fabs(ana));
}

/* ReLU and max-pool make the loss piecewise smooth: a difference quotient
 * whose step crosses a kink measures nothing, and a kink can sit closer than
 * any single step size. So three steps are tried, and an entry matches when
 * one of them agrees with the analytic value. A whole preset has so many
 * kinks (a bias moves every pixel of its channel) that a few entries may
 * match no step; single-layer cases must match everywhere. */
typedef struct {
    int checked, mismatched;
    char first[160];
} tally;

static void compare(fixture *f, float *v, double ana, tally *t, const char *what, size_t i)
{
    static const float steps[] = {4e-3f, 1e-3f, 2.5e-4f};
    double num = 0.0;
    t->checked++;
    for (int s = 0; s < 3; s++) {
        num = numeric(f, v, steps[s]);
        if (close_enough(num, ana))
            return;
    }
    if (t->mismatched++ == 0)
        snprintf(t->first, sizeof t->first, "%s[%zu]: numeric %g analytic %g", what, i, num, ana);
}

/* Check about 24 entries of every parameter view and 40 input pixels. */
static void check_spec_within(const char *spec, core_shape in, int nclass, double max_fraction)
{
    fixture f;
    fixture_make(&f, spec, in, nclass);
    analytic(&f);
    tally t = {0, 0, ""};
    for (int v = 0; v < f.m->nviews; v++) {
        const core_param_view *pv = &f.m->views[v];
        size_t stride = pv->size > 24 ? pv->size / 24 : 1;
        for (size_t i = 0; i < pv->size; i += stride)
            compare(&f, &f.m->params[pv->offset + i], f.m->grads[pv->offset + i], &t,
                    pv->name, i);
    }
    size_t len = BATCH * core_shape_size(in), stride = len > 40 ? len / 40 : 1;
    for (size_t i = 0; i < len; i += stride)
        compare(&f, &f.x[i], f.dx[i], &t, "input", i);
    ck_assert_int_gt(t.checked, 10);
    ck_assert_msg(t.mismatched <= max_fraction * t.checked, "%s: %d of %d entries differ, first %s",
                  spec, t.mismatched, t.checked, t.first);
    fixture_free(&f);
}

static void check_spec(const char *spec, core_shape in, int nclass)
{
    check_spec_within(spec, in, nclass, 0.0);
}

static void check_preset(const char *spec, core_shape in)
{
    check_spec_within(spec, in, 10, 0.03);
}

START_TEST(grad_fc) { check_spec("fc4", (core_shape){2, 3, 3}, 4); }
END_TEST
START_TEST(grad_maxpool_only) { check_spec("maxpool2 fc3", (core_shape){2, 6, 6}, 3); }
END_TEST
/* The branch-free 2x2 max pool against the plain definition, with many
 * ties (the first of equals wins) and odd sizes (the last row and column
 * dropped). */
START_TEST(maxpool2_matches_definition)
{
    char err[CORE_ERRLEN];
    core_model *m;
    const core_shape in = {2, 5, 7};
    ck_assert_msg(core_model_create("maxpool2 fc3", in, 3, 1, &m, err) == 0, "%s", err);
    ck_assert(core_model_reserve(m, 3, err) == 0);
    float x[3 * 2 * 5 * 7];
    for (int i = 0; i < 3 * 70; i++)
        x[i] = (float)((i * 7919) % 5);
    core_model_forward(m, x, 3);
    const core_layer *l = &m->layers[0];
    ck_assert_int_eq(l->out.h, 2);
    ck_assert_int_eq(l->out.w, 3);
    for (int pl = 0; pl < 3 * 2; pl++)
        for (int oy = 0; oy < 2; oy++)
            for (int ox = 0; ox < 3; ox++) {
                const float *p = x + pl * 35;
                int best = 2 * oy * 7 + 2 * ox;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        if (p[(2 * oy + dy) * 7 + 2 * ox + dx] > p[best])
                            best = (2 * oy + dy) * 7 + 2 * ox + dx;
                const int o = (pl * 2 + oy) * 3 + ox;
                ck_assert_int_eq(l->argmax[o], best);
                ck_assert_float_eq(l->y[o], p[best]);
            }
    core_model_free(m);
}
END_TEST

START_TEST(grad_relu) { check_spec("fc8 relu fc3", (core_shape){1, 4, 4}, 3); }
END_TEST
START_TEST(grad_conv) { check_spec("conv3k3p1 fc3", (core_shape){2, 5, 5}, 3); }
END_TEST
START_TEST(grad_conv_stride) { check_spec("conv4k3s2p1 fc3", (core_shape){3, 7, 6}, 3); }
END_TEST
START_TEST(grad_conv_nopad) { check_spec("conv2k5 fc3", (core_shape){1, 8, 8}, 3); }
END_TEST
START_TEST(grad_maxpool) { check_spec("conv3k3p1 maxpool2 fc3", (core_shape){1, 6, 6}, 3); }
END_TEST
START_TEST(grad_avgpool) { check_spec("conv3k3p1 avgpool2s1 fc3", (core_shape){1, 5, 5}, 3); }
END_TEST
START_TEST(grad_gap) { check_spec("conv4k3p1 gap fc3", (core_shape){2, 5, 4}, 3); }
END_TEST
START_TEST(grad_res) { check_spec("conv3k3p1 res3 fc3", (core_shape){2, 5, 5}, 3); }
END_TEST
START_TEST(grad_res_first) { check_spec("res fc3", (core_shape){2, 4, 4}, 3); }
END_TEST
/* Per-channel constants, the first layer and an inner one. */
START_TEST(grad_norm)
{
    check_spec("norm(0.4,0.5;0.3,0.7) conv3k3p1 norm(0.1;2) fc3", (core_shape){2, 5, 5}, 3);
}
END_TEST

START_TEST(norm_matches_definition)
{
    char err[CORE_ERRLEN];
    core_model *m;
    ck_assert_msg(core_model_create("norm(0.25,0.5;0.5,4) fc2", (core_shape){2, 1, 2}, 2, 1, &m,
                                    err) == 0, "%s", err);
    ck_assert(core_model_reserve(m, 1, err) == 0);
    const float x[4] = {0.0f, 1.0f, 0.5f, 4.5f};
    core_model_forward(m, x, 1);
    const float *y = m->layers[0].y;
    ck_assert(y[0] == -0.5f && y[1] == 1.5f && y[2] == 0.0f && y[3] == 1.0f);
    core_buffer_view b[CORE_MAX_BUFFERS];
    ck_assert_int_eq(core_model_buffers(m, b), 2);
    ck_assert_str_eq(b[0].name, "0.mean");
    ck_assert_str_eq(b[1].name, "0.std");
    ck_assert(b[1].len == 2 && b[1].data[0] == 0.5f && b[1].data[1] == 4.0f);
    ck_assert_int_eq(m->nviews, 2); /* constants, not parameters */
    core_model_free(m);
    static const char *const bad[] = {"norm fc2", "norm(1;0) fc2", "norm(1,2,3;1) fc2",
                                      "norm(1;) fc2", "norm(0.5;1,) fc2", "norm(a;1) fc2",
                                      "norm(0.5;inf) fc2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(core_model_create(bad[i], (core_shape){2, 1, 2}, 2, 1, &m, err) == -1,
                      "%s", bad[i]);
}
END_TEST

START_TEST(grad_preset_cnn_small) { check_preset("cnn-small", (core_shape){1, 12, 12}); }
END_TEST
START_TEST(grad_preset_resnet_tiny) { check_preset("resnet-tiny", (core_shape){1, 8, 8}); }
END_TEST
START_TEST(grad_preset_madry) { check_preset("madry", (core_shape){1, 8, 8}); }
END_TEST

/* Loss gradients with respect to the logits. */
typedef float (*loss_fn)(const float *, const int *, int, int, float *);

static float ce(const float *z, const int *y, int n, int c, float *d)
{
    return core_loss_ce(z, y, n, c, d, NULL);
}

static float cw(const float *z, const int *y, int n, int c, float *d)
{
    return core_loss_cw(z, y, n, c, 0.5f, d, NULL);
}

static void check_loss(loss_fn fn)
{
    enum { N = 4, C = 5 };
    float z[N * C], d[N * C];
    int y[N] = {0, 3, 4, 1};
    for (int i = 0; i < N * C; i++)
        z[i] = 2.0f * core_rng_normal(11, 0, i);
    fn(z, y, N, C, d);
    for (int i = 0; i < N * C; i++) {
        float keep = z[i], h = 1e-3f;
        z[i] = keep + h;
        double up = fn(z, y, N, C, NULL);
        z[i] = keep - h;
        double down = fn(z, y, N, C, NULL);
        z[i] = keep;
        double num = (up - down) / (2.0 * h);
        ck_assert_msg(close_enough(num, d[i]), "logit %d: numeric %g analytic %g", i, num, d[i]);
    }
}

START_TEST(grad_loss_ce) { check_loss(ce); }
END_TEST
START_TEST(grad_loss_cw) { check_loss(cw); }
END_TEST

START_TEST(loss_ce_stable)
{
    float z[3] = {1000.0f, 0.0f, -1000.0f};
    int y = 0;
    float d[3];
    float l = core_loss_ce(z, &y, 1, 3, d, NULL);
    ck_assert(isfinite(l) && l >= 0.0f && l < 1e-6f);
    y = 2;
    l = core_loss_ce(z, &y, 1, 3, d, NULL);
    ck_assert(isfinite(l) && fabsf(l - 2000.0f) < 1e-2f);
}
END_TEST

static Suite *suite_grad(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("layers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grad_fc);
    tcase_add_test(tc, grad_maxpool_only);
    tcase_add_test(tc, maxpool2_matches_definition);
    tcase_add_test(tc, grad_relu);
    tcase_add_test(tc, grad_conv);
    tcase_add_test(tc, grad_conv_stride);
    tcase_add_test(tc, grad_conv_nopad);
    tcase_add_test(tc, grad_maxpool);
    tcase_add_test(tc, grad_avgpool);
    tcase_add_test(tc, grad_gap);
    tcase_add_test(tc, grad_res);
    tcase_add_test(tc, grad_res_first);
    tcase_add_test(tc, grad_norm);
    tcase_add_test(tc, norm_matches_definition);
    tcase_add_test(tc, grad_preset_cnn_small);
    tcase_add_test(tc, grad_preset_resnet_tiny);
    tcase_add_test(tc, grad_preset_madry);
    tcase_add_test(tc, grad_loss_ce);
    tcase_add_test(tc, grad_loss_cw);
    tcase_add_test(tc, loss_ce_stable);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_grad)
