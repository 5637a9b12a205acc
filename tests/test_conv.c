/*
 * test_conv.c - core_conv_forward / core_conv_backward against naive loops.
 *
 * The shapes cover both paths of conv.c: 3x3 pad 1 with stride 1 or 2 and
 * 5x5 pad 2 with stride 1 go to the direct convolution (conv_direct.c) on
 * AVX-512 machines, everything else to im2col + GEMM. Widths are chosen to
 * not be multiples of 16 (masked vector tails), channel counts to not be
 * multiples of the kernel's blocks; 5x5 with fewer than 8 input channels
 * takes dx by tap planes.
 */
#include "testutil.h"

#include "core/layers.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>

typedef struct {
    int cin, cout, k, stride, pad, h, w, n;
} conv_case;

static core_conv make_conv(const conv_case *cc)
{
    core_conv c = {cc->cin, cc->cout, cc->k, cc->stride, cc->pad, {cc->cin, cc->h, cc->w}, {0},
                   0, 0};
    c.out = (core_shape){cc->cout, (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1,
                         (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1};
    c.w_off = 0;
    c.b_off = (size_t)cc->cout * cc->cin * cc->k * cc->k;
    return c;
}

/* x at (e, ci, iy, ix), zero outside the image. */
static double x_at(const core_conv *c, const float *x, int e, int ci, int iy, int ix)
{
    if (iy < 0 || iy >= c->in.h || ix < 0 || ix >= c->in.w)
        return 0.0;
    return x[(((size_t)e * c->cin + ci) * c->in.h + iy) * c->in.w + ix];
}

/* The three passes by their definitions, in double. */
static void reference(const core_conv *c, const float *p, const float *x, const float *dy, int n,
                      double *y, double *dx, double *dw)
{
    const int k = c->k, oh = c->out.h, ow = c->out.w, ckk = c->cin * k * k;
    memset(dx, 0, sizeof(double) * n * core_shape_size(c->in));
    memset(dw, 0, sizeof(double) * (c->cout * ckk + c->cout));
    for (int e = 0; e < n; e++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    const size_t o = (((size_t)e * c->cout + co) * oh + oy) * ow + ox;
                    double s = p[c->b_off + co];
                    dw[c->cout * ckk + co] += dy[o];
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                const int iy = oy * c->stride - c->pad + ki;
                                const int ix = ox * c->stride - c->pad + kj;
                                const size_t wi = ((size_t)co * c->cin + ci) * k * k + ki * k + kj;
                                const double xv = x_at(c, x, e, ci, iy, ix);
                                s += p[wi] * xv;
                                dw[wi] += dy[o] * xv;
                                if (iy >= 0 && iy < c->in.h && ix >= 0 && ix < c->in.w)
                                    dx[(((size_t)e * c->cin + ci) * c->in.h + iy) * c->in.w + ix] +=
                                        dy[o] * p[wi];
                            }
                    y[o] = s;
                }
}

/* max |a - b| relative to max |b|. */
static double rel_err(const float *a, const double *b, size_t len)
{
    double d = 0.0, m = 1e-12;
    for (size_t i = 0; i < len; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

static float *randoms(size_t len, uint64_t stream)
{
    float *v = core_alloc(len * sizeof(float));
    for (size_t i = 0; i < len; i++)
        v[i] = core_rng_normal(17, stream, i);
    return v;
}

static void check_case(const conv_case *cc, int threads)
{
    const core_conv c = make_conv(cc);
    const int n = cc->n;
    const size_t in = n * core_shape_size(c.in), out = n * core_shape_size(c.out);
    const size_t np = c.b_off + c.cout;
    float *p = randoms(np, 1), *x = randoms(in, 2), *dy = randoms(out, 3);
    float *y = core_alloc(out * sizeof(float)), *dx = core_alloc(in * sizeof(float));
    float *g = core_alloc(np * sizeof(float));
    double *ry = malloc(out * sizeof(double)), *rdx = malloc(in * sizeof(double));
    double *rg = malloc(np * sizeof(double));

    size_t need[3] = {1, 1, 1};
    core_conv_scratch_need(&c, n, threads, need);
    core_conv_scratch s;
    ck_assert(core_conv_scratch_alloc(&s, need, threads) == 0);
    int keep = omp_get_max_threads();
    omp_set_num_threads(threads);
    core_conv_forward(&c, p, x, y, n, &s, 0);
    for (size_t i = 0; i < np; i++)
        g[i] = 0.5f; /* backward accumulates */
    core_conv_backward(&c, p, g, x, dy, dx, n, 1, &s);
    omp_set_num_threads(keep);

    reference(&c, p, x, dy, n, ry, rdx, rg);
    for (size_t i = 0; i < np; i++)
        rg[i] += 0.5;
    char what[96];
    snprintf(what, sizeof what, "cin %d cout %d k %d s %d p %d %dx%d n %d, %d threads", cc->cin,
             cc->cout, cc->k, cc->stride, cc->pad, cc->h, cc->w, n, threads);
    double ey = rel_err(y, ry, out), edx = rel_err(dx, rdx, in), eg = rel_err(g, rg, np);
    ck_assert_msg(ey < 1e-5, "%s: forward error %g", what, ey);
    ck_assert_msg(edx < 1e-5, "%s: dx error %g", what, edx);
    ck_assert_msg(eg < 1e-5, "%s: dW error %g", what, eg);

    /* Without param_grads, dx alone; without dx, the gradients alone. */
    memset(dx, 0, in * sizeof(float));
    core_conv_backward(&c, p, g, x, dy, dx, n, 0, &s);
    ck_assert_msg(rel_err(dx, rdx, in) < 1e-5, "%s: dx-only error", what);
    for (size_t i = 0; i < np; i++)
        g[i] = 0.5f;
    core_conv_backward(&c, p, g, x, dy, NULL, n, 1, &s);
    ck_assert_msg(rel_err(g, rg, np) < 1e-5, "%s: dW-only error", what);

    /* With the ReLU done as the output is stored: the same bytes as the
     * forward pass followed by the ReLU layer. */
    float *yr = core_alloc(out * sizeof(float));
    omp_set_num_threads(threads);
    core_conv_forward(&c, p, x, y, n, &s, 0);
    core_relu_forward(y, y, out);
    core_conv_forward(&c, p, x, yr, n, &s, 1);
    omp_set_num_threads(keep);
    ck_assert_msg(memcmp(y, yr, out * sizeof(float)) == 0, "%s: forward + relu differs", what);
    core_free(yr);

    core_conv_scratch_free(&s);
    core_free(p);
    core_free(x);
    core_free(dy);
    core_free(y);
    core_free(dx);
    core_free(g);
    free(ry);
    free(rdx);
    free(rg);
}

static const conv_case cases[] = {
    /* the direct path: resnet-tiny's shapes, then odd ones */
    {16, 16, 3, 1, 1, 28, 28, 3},
    {32, 32, 3, 1, 1, 14, 14, 3},
    {1, 16, 3, 1, 1, 28, 28, 2},
    {16, 1, 3, 1, 1, 7, 7, 3},
    {3, 5, 3, 1, 1, 5, 5, 4},
    {3, 12, 3, 1, 1, 6, 9, 2},
    {2, 9, 3, 1, 1, 1, 1, 2},
    {4, 3, 3, 1, 1, 3, 17, 1},
    {5, 8, 3, 1, 1, 33, 40, 1},
    {2, 3, 3, 1, 1, 2, 64, 1},
    {2, 3, 3, 1, 1, 1, 20, 2},
    /* several weight-gradient groups of several images (4, 4, 1) */
    {32, 32, 3, 1, 1, 14, 14, 9},
    {16, 32, 3, 2, 1, 28, 28, 9},
    /* stride 2 (direct, through the four input phases) */
    {16, 32, 3, 2, 1, 28, 28, 2},
    {3, 5, 3, 2, 1, 7, 6, 2},
    {16, 32, 3, 2, 1, 27, 27, 1},
    {1, 8, 3, 2, 1, 5, 5, 3},
    {4, 9, 3, 2, 1, 1, 2, 1},
    {2, 16, 3, 2, 1, 14, 33, 1},
    {7, 1, 3, 2, 1, 9, 12, 2},
    /* 5x5 pad 2 stride 1 (direct): madry's shapes, then odd ones */
    {1, 32, 5, 1, 2, 28, 28, 2},
    {32, 64, 5, 1, 2, 14, 14, 2},
    {32, 1, 5, 1, 2, 28, 28, 1},
    {8, 9, 5, 1, 2, 7, 7, 3},
    {3, 8, 5, 1, 2, 5, 5, 2},
    {9, 3, 5, 1, 2, 1, 1, 2},
    {3, 9, 5, 1, 2, 4, 17, 1},
    {64, 8, 5, 1, 2, 3, 14, 1},
    {1, 3, 5, 1, 2, 2, 64, 1},
    /* im2col + GEMM */
    {2, 4, 5, 1, 0, 8, 8, 2},
    {2, 3, 5, 2, 2, 9, 9, 2},
    {3, 3, 3, 1, 0, 7, 6, 2},
    {2, 3, 3, 1, 1, 4, 70, 1},
};

START_TEST(conv_matches_reference)
{
    check_case(&cases[_i], 1);
    check_case(&cases[_i], 2);
    check_case(&cases[_i], 3);
}
END_TEST

/* The same thread count gives the same bytes, run after run (3x3 and 5x5). */
static const conv_case repeat_cases[] = {{16, 16, 3, 1, 1, 28, 28, 5}, {8, 16, 5, 1, 2, 14, 14, 5}};

START_TEST(conv_deterministic)
{
    const conv_case cc = repeat_cases[_i];
    const core_conv c = make_conv(&cc);
    const size_t in = cc.n * core_shape_size(c.in), out = cc.n * core_shape_size(c.out);
    const size_t np = c.b_off + c.cout;
    float *p = randoms(np, 4), *x = randoms(in, 5), *dy = randoms(out, 6);
    float *g[2], *dx[2], *y[2];
    size_t need[3] = {1, 1, 1};
    core_conv_scratch_need(&c, cc.n, 2, need);
    core_conv_scratch s;
    ck_assert(core_conv_scratch_alloc(&s, need, 2) == 0);
    for (int r = 0; r < 2; r++) {
        g[r] = core_alloc(np * sizeof(float));
        dx[r] = core_alloc(in * sizeof(float));
        y[r] = core_alloc(out * sizeof(float));
        memset(g[r], 0, np * sizeof(float));
        core_conv_forward(&c, p, x, y[r], cc.n, &s, 0);
        core_conv_backward(&c, p, g[r], x, dy, dx[r], cc.n, 1, &s);
    }
    ck_assert(memcmp(y[0], y[1], out * sizeof(float)) == 0);
    ck_assert(memcmp(dx[0], dx[1], in * sizeof(float)) == 0);
    ck_assert(memcmp(g[0], g[1], np * sizeof(float)) == 0);
    for (int r = 0; r < 2; r++) {
        core_free(g[r]);
        core_free(dx[r]);
        core_free(y[r]);
    }
    core_conv_scratch_free(&s);
    core_free(p);
    core_free(x);
    core_free(dy);
}
END_TEST

static Suite *suite_conv(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("passes");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, conv_matches_reference, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_loop_test(tc, conv_deterministic, 0,
                        (int)(sizeof repeat_cases / sizeof repeat_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_conv)
