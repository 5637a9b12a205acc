/*
 * test_gemm.c - the engine's GEMM against the plain triple loop, over every
 * transpose, edge sizes that leave partial tiles, alpha and beta, each of
 * the thread splits, and bit-identical results on repeated calls.
 */
#include "testutil.h"

#include "core/common.h"
#include "core/gemm.h"
#include "core/rng.h"

#include <math.h>
#include <omp.h>

static void fill(float *v, size_t n, uint64_t stream)
{
    for (size_t i = 0; i < n; i++)
        v[i] = core_rng_uniform(9, stream, i) - 0.5f;
}

static void check_shape(int ta, int tb, int m, int n, int k, float alpha, float beta)
{
    float *a = core_alloc(sizeof(float) * m * k), *b = core_alloc(sizeof(float) * k * n);
    float *c = core_alloc(sizeof(float) * m * n), *r = core_alloc(sizeof(float) * m * n);
    fill(a, (size_t)m * k, 1);
    fill(b, (size_t)k * n, 2);
    fill(c, (size_t)m * n, 3);
    memcpy(r, c, sizeof(float) * m * n);
    int lda = ta ? m : k, ldb = tb ? k : n;
    core_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
    core_gemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, r, n);
    for (int i = 0; i < m * n; i++)
        ck_assert_msg(fabsf(c[i] - r[i]) <= 1e-4f * (1.0f + sqrtf((float)k)),
                      "ta %d tb %d %dx%dx%d: c[%d] = %g, expected %g", ta, tb, m, n, k, i, c[i],
                      r[i]);
    core_free(a);
    core_free(b);
    core_free(c);
    core_free(r);
}

START_TEST(gemm_matches_reference)
{
    static const int shapes[][3] = {{1, 1, 1},    {5, 7, 3},     {13, 33, 17},  {12, 32, 256},
                                    {25, 65, 300}, {64, 200, 90}, {200, 64, 700}, {130, 10, 3136},
                                    {16, 144, 5000}, {64, 288, 2100}, {7, 2500, 9}};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++) {
                    check_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f);
                    check_shape(ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 0.5f, 1.0f);
                }
    }
}
END_TEST

START_TEST(gemm_beta_zero_ignores_garbage)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1}, c[4] = {NAN, NAN, INFINITY, NAN};
    core_gemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    ck_assert(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
}
END_TEST

START_TEST(gemm_repeatable)
{
    enum { M = 16, N = 144, K = 20000 };
    float *a = core_alloc(sizeof(float) * M * K), *b = core_alloc(sizeof(float) * N * K);
    float *c1 = core_alloc(sizeof(float) * M * N), *c2 = core_alloc(sizeof(float) * M * N);
    fill(a, (size_t)M * K, 4);
    fill(b, (size_t)N * K, 5);
    omp_set_num_threads(2);
    core_gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c1, N);
    core_gemm(0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c2, N);
    ck_assert(memcmp(c1, c2, sizeof(float) * M * N) == 0);
    core_free(a);
    core_free(b);
    core_free(c1);
    core_free(c2);
}
END_TEST

static Suite *suite_gemm(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gemm_matches_reference);
    tcase_add_test(tc, gemm_beta_zero_ignores_garbage);
    tcase_add_test(tc, gemm_repeatable);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_gemm)
