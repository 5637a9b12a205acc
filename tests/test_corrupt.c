/*
 * test_corrupt.c - the corruptions of core/corrupt.h against hand-computed
 * pixels (severity 0 and the deterministic ones), the statistics of the
 * random ones, and the PNG canvases of core/image.h decoded back.
 */
#include "testutil.h"

#include <math.h>
#include <png.h>

#include "core/corrupt.h"
#include "core/image.h"
#include "core/rng.h"

#define TOL 1e-6f

static float *filled(size_t len, float v)
{
    float *x = core_alloc(sizeof(float) * len);
    for (size_t i = 0; i < len; i++)
        x[i] = v;
    return x;
}

static void corrupt_ok(core_corruption c, int sev, const float *x, float *y, int n, core_shape s)
{
    char err[CORE_ERRLEN];
    ck_assert_msg(core_corrupt(c, sev, x, y, n, s, 7, 3, err) == 0, "%s", err);
}

START_TEST(severity_zero_is_identity)
{
    core_shape s = {3, 5, 6};
    size_t len = core_shape_size(s) * 2;
    float *x = core_alloc(sizeof(float) * len), *y = core_alloc(sizeof(float) * len);
    for (size_t i = 0; i < len; i++)
        x[i] = (float)((i * 37) % 101) / 100.0f;
    for (int c = 0; c < CORE_NCORRUPTIONS; c++) {
        corrupt_ok((core_corruption)c, 0, x, y, 2, s);
        ck_assert_msg(memcmp(x, y, sizeof(float) * len) == 0, "%s", core_corruption_name(c));
    }
    core_free(x);
    core_free(y);
}
END_TEST

START_TEST(every_corruption_stays_in_range_and_is_deterministic)
{
    core_shape s = {3, 8, 8};
    size_t len = core_shape_size(s) * 4;
    float *x = core_alloc(sizeof(float) * len), *y = core_alloc(sizeof(float) * len),
          *z = core_alloc(sizeof(float) * len);
    for (size_t i = 0; i < len; i++)
        x[i] = (float)((i * 53) % 97) / 96.0f;
    for (int c = 0; c < CORE_NCORRUPTIONS; c++)
        for (int sev = 1; sev <= CORE_SEVERITIES; sev++) {
            corrupt_ok((core_corruption)c, sev, x, y, 4, s);
            corrupt_ok((core_corruption)c, sev, x, z, 4, s);
            ck_assert(memcmp(y, z, sizeof(float) * len) == 0);
            for (size_t i = 0; i < len; i++)
                ck_assert_msg(y[i] >= 0.0f && y[i] <= 1.0f, "%s %d: %g", core_corruption_name(c),
                              sev, (double)y[i]);
        }
    core_free(x);
    core_free(y);
    core_free(z);
}
END_TEST

START_TEST(brightness_and_contrast_by_hand)
{
    core_shape s = {1, 2, 2};
    float x[4] = {0.0f, 0.2f, 0.4f, 0.98f}, y[4];
    corrupt_ok(CORE_CORRUPT_BRIGHTNESS, 1, x, y, 1, s);
    float want_b[4] = {0.05f, 0.25f, 0.45f, 1.0f};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(y[i], want_b[i], TOL);
    float xc[4] = {0.0f, 0.2f, 0.4f, 0.6f};   /* mean 0.3; factor 0.75 */
    corrupt_ok(CORE_CORRUPT_CONTRAST, 1, xc, y, 1, s);
    float want_c[4] = {0.075f, 0.225f, 0.375f, 0.525f};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(y[i], want_c[i], TOL);
    /* RGB: the mean is per channel. */
    core_shape rgb = {3, 1, 2};
    float xr[6] = {0.0f, 1.0f, 0.5f, 0.5f, 0.2f, 0.4f}, yr[6];
    corrupt_ok(CORE_CORRUPT_CONTRAST, 2, xr, yr, 1, rgb);  /* factor 0.5 */
    float want_r[6] = {0.25f, 0.75f, 0.5f, 0.5f, 0.25f, 0.35f};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(yr[i], want_r[i], TOL);
}
END_TEST

START_TEST(blur_of_a_point_is_the_gaussian)
{
    core_shape s = {1, 7, 7};
    float x[49] = {0}, y[49];
    x[3 * 7 + 3] = 1.0f;
    corrupt_ok(CORE_CORRUPT_GAUSSIAN_BLUR, 1, x, y, 1, s);   /* sigma 0.4, radius 2 */
    double k[5], sum = 0.0;
    for (int d = -2; d <= 2; d++)
        sum += k[d + 2] = exp(-d * d / (2.0 * 0.4 * 0.4));
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) {
            int di = i - 3, dj = j - 3;
            double want = abs(di) <= 2 && abs(dj) <= 2 ? k[di + 2] / sum * k[dj + 2] / sum : 0.0;
            ck_assert_float_eq_tol(y[i * 7 + j], (float)want, TOL);
        }
}
END_TEST

START_TEST(pixelate_by_hand)
{
    /* Width 4 at factor 0.75: three cells of 4/3 pixels each, averaged by
     * overlap, then each pixel takes the cell of its centre. */
    core_shape s = {1, 1, 4};
    float x[4] = {0.0f, 0.3f, 0.6f, 0.9f}, y[4];
    corrupt_ok(CORE_CORRUPT_PIXELATE, 4, x, y, 1, s);
    float want[4] = {0.075f, 0.45f, 0.45f, 0.825f};
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq_tol(y[i], want[i], 1e-6f);
}
END_TEST

START_TEST(translate_shifts_by_severity)
{
    core_shape s = {1, 5, 5};
    float x[25], y[25];
    for (int i = 0; i < 25; i++)
        x[i] = (i + 1) / 25.0f;
    corrupt_ok(CORE_CORRUPT_TRANSLATE, 1, x, y, 1, s);
    int matched = 0;
    for (int sy = -1; sy <= 1; sy += 2)
        for (int sx = -1; sx <= 1; sx += 2) {
            int same = 1;
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++) {
                    int si = i - sy, sj = j - sx;
                    float want = si >= 0 && si < 5 && sj >= 0 && sj < 5 ? x[si * 5 + sj] : 0.0f;
                    same &= y[i * 5 + j] == want;
                }
            matched += same;
        }
    ck_assert_int_eq(matched, 1);
}
END_TEST

START_TEST(rotate_by_hand)
{
    /* A single bright pixel right of the centre of a 3x3 image: after a
     * rotation by +-0.2 rad, that pixel keeps (1 - sin 0.2) cos 0.2 of it,
     * and the centre stays dark. */
    core_shape s = {1, 3, 3};
    float x[9] = {0}, y[9];
    x[1 * 3 + 2] = 1.0f;
    corrupt_ok(CORE_CORRUPT_ROTATE, 1, x, y, 1, s);
    ck_assert_float_eq_tol(y[1 * 3 + 2], (float)((1.0 - sin(0.2)) * cos(0.2)), 1e-5f);
    ck_assert_float_eq_tol(y[4], 0.0f, TOL);
    /* A constant image keeps its centre. */
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    corrupt_ok(CORE_CORRUPT_ROTATE, 5, ones, y, 1, s);
    ck_assert_float_eq_tol(y[4], 1.0f, TOL);
    ck_assert(y[0] < 1.0f);   /* corners rotate in from outside: zero */
}
END_TEST

/* The random corruptions at severity 1, pixel by pixel from the same
 * counter-based draws: example e uses stream + e, counter = pixel. */
START_TEST(noise_pixels_by_hand)
{
    core_shape s = {1, 4, 4};
    float x[32], y[32];
    for (int i = 0; i < 32; i++)
        x[i] = i / 31.0f;
    corrupt_ok(CORE_CORRUPT_GAUSSIAN_NOISE, 1, x, y, 2, s);   /* seed 7, stream 3 */
    for (int e = 0; e < 2; e++)
        for (int p = 0; p < 16; p++) {
            float v = x[e * 16 + p] + 0.04f * core_rng_normal(7, 3 + e, p);
            ck_assert_float_eq(y[e * 16 + p], v < 0 ? 0 : v > 1 ? 1 : v);
        }
    corrupt_ok(CORE_CORRUPT_IMPULSE_NOISE, 1, x, y, 2, s);    /* 1 % salt and pepper */
    for (int e = 0; e < 2; e++)
        for (int p = 0; p < 16; p++) {
            uint64_t r = core_rng_u64(7, 3 + e, p);
            float want = (r >> 11) * 0x1p-53 < 0.01 ? (float)(r & 1) : x[e * 16 + p];
            ck_assert_float_eq(y[e * 16 + p], want);
        }
    /* Pixelate at severity 1 keeps a 4-pixel row: round(4 x 0.95) = 4 cells. */
    corrupt_ok(CORE_CORRUPT_PIXELATE, 1, x, y, 2, s);
    ck_assert(memcmp(x, y, sizeof x) == 0);
}
END_TEST

/* Mean and standard deviation of y - x over len values. */
static void diff_stats(const float *x, const float *y, size_t len, double *mean, double *sd)
{
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < len; i++) {
        s += y[i] - x[i];
        ss += (double)(y[i] - x[i]) * (y[i] - x[i]);
    }
    *mean = s / len;
    *sd = sqrt(ss / len - *mean * *mean);
}

START_TEST(noise_has_its_published_spread)
{
    core_shape s = {1, 32, 32};
    const int n = 32;
    size_t len = core_shape_size(s) * n;
    float *x = filled(len, 0.5f), *y = core_alloc(sizeof(float) * len);
    double mean, sd;
    corrupt_ok(CORE_CORRUPT_GAUSSIAN_NOISE, 1, x, y, n, s);     /* sigma 0.04 */
    diff_stats(x, y, len, &mean, &sd);
    ck_assert_msg(fabs(mean) < 0.002 && fabs(sd - 0.04) < 0.002, "mean %g sd %g", mean, sd);
    corrupt_ok(CORE_CORRUPT_SHOT_NOISE, 1, x, y, n, s);         /* Poisson(250) / 500 */
    diff_stats(x, y, len, &mean, &sd);
    ck_assert_msg(fabs(mean) < 0.002 && fabs(sd - sqrt(0.5 / 500)) < 0.002, "mean %g sd %g", mean, sd);
    float *dark = filled(len, 0.02f);                           /* Poisson(10) / 500: Knuth */
    corrupt_ok(CORE_CORRUPT_SHOT_NOISE, 1, dark, y, n, s);
    diff_stats(dark, y, len, &mean, &sd);
    ck_assert_msg(fabs(mean) < 0.0005 && fabs(sd - sqrt(0.02 / 500)) < 0.0005, "mean %g sd %g",
                  mean, sd);
    corrupt_ok(CORE_CORRUPT_IMPULSE_NOISE, 5, x, y, n, s);      /* 7 % of pixels */
    int hit = 0;
    for (size_t i = 0; i < len; i++)
        if (y[i] != 0.5f) {
            ck_assert(y[i] == 0.0f || y[i] == 1.0f);
            hit++;
        }
    ck_assert_msg(fabs((double)hit / len - 0.07) < 0.006, "%d of %zu", hit, len);
    core_free(x);
    core_free(y);
    core_free(dark);
}
END_TEST

START_TEST(bad_arguments_are_named)
{
    char err[CORE_ERRLEN];
    core_shape s = {1, 2, 2};
    float x[4] = {0}, y[4];
    ck_assert(core_corrupt(CORE_CORRUPT_BRIGHTNESS, 6, x, y, 1, s, 1, 1, err) == -1);
    ck_assert_str_eq(err, "invalid severity 6: not in 0..5");
    core_corruption c;
    ck_assert(core_corruption_parse("fog", &c, err) == -1);
    ck_assert(strstr(err, "unknown corruption 'fog'") == err);
    ck_assert(core_corruption_parse("pixelate", &c, err) == 0 && c == CORE_CORRUPT_PIXELATE);
}
END_TEST

/* ---------------------------------------------------------------- PNG */

START_TEST(png_canvas_decodes_back)
{
    char err[CORE_ERRLEN];
    core_canvas cv;
    ck_assert(core_canvas_init(&cv, 2, 3, 4, 5, 1, err) == 0);
    ck_assert_int_eq(cv.w, 3 * 5 + 4 * CORE_IMAGE_GUTTER);
    ck_assert_int_eq(cv.h, 2 * 4 + 3 * CORE_IMAGE_GUTTER);
    float gray[20], map[20] = {0};
    for (int i = 0; i < 20; i++)
        gray[i] = i / 19.0f;
    map[7] = 2.0f;
    map[8] = 1.0f;
    core_canvas_image(&cv, 0, 0, gray, (core_shape){1, 4, 5});
    core_canvas_heat(&cv, 1, 2, map, 4, 5);
    uint8_t *png;
    size_t len;
    ck_assert_msg(core_png_encode(&cv, &png, &len, err) == 0, "%s", err);
    png_image img = {.version = PNG_IMAGE_VERSION};
    ck_assert(png_image_begin_read_from_memory(&img, png, len));
    ck_assert_int_eq(img.width, (unsigned)cv.w);
    ck_assert_int_eq(img.height, (unsigned)cv.h);
    img.format = PNG_FORMAT_RGB;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
    ck_assert(png_image_finish_read(&img, NULL, px, 0, NULL));
    ck_assert(memcmp(px, cv.rgb, (size_t)cv.w * cv.h * 3) == 0);
    const int g = CORE_IMAGE_GUTTER;
    uint8_t *first = px + ((size_t)g * cv.w + g) * 3, *last = px + ((size_t)(g + 3) * cv.w + g + 4) * 3;
    ck_assert(first[0] == 0 && first[1] == 0 && first[2] == 0);
    ck_assert(last[0] == 255 && last[1] == 255 && last[2] == 255);
    /* The hottest pixel of the heat map is white, half of it red-orange. */
    int ty = g + 1 * (4 + g), tx = g + 2 * (5 + g);
    uint8_t *hot = px + ((size_t)(ty + 1) * cv.w + tx + 2) * 3, *half = hot + 3;
    ck_assert(hot[0] == 255 && hot[1] == 255 && hot[2] == 255);
    ck_assert(half[0] == 255 && half[1] == 128 && half[2] == 0);
    free(px);
    free(png);
    core_canvas_free(&cv);
    /* Zoom: each source pixel a 3 x 3 block. */
    ck_assert(core_canvas_init(&cv, 1, 1, 2, 2, 3, err) == 0);
    ck_assert_int_eq(cv.w, 6 + 2 * CORE_IMAGE_GUTTER);
    float two[4] = {0.0f, 1.0f, 1.0f, 0.0f};
    core_canvas_image(&cv, 0, 0, two, (core_shape){1, 2, 2});
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++) {
            const uint8_t *q = cv.rgb + ((size_t)(g + y) * cv.w + g + x) * 3;
            ck_assert_int_eq(q[0], ((y / 3) ^ (x / 3)) ? 255 : 0);
        }
    core_canvas_free(&cv);
    ck_assert(core_canvas_init(&cv, 1, 1, 2, 2, 0, err) == -1);
    ck_assert(strstr(err, "invalid canvas") == err);
}
END_TEST

static Suite *suite_corrupt(void)
{
    Suite *s = suite_create("corrupt");
    TCase *tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, severity_zero_is_identity);
    tcase_add_test(tc, every_corruption_stays_in_range_and_is_deterministic);
    tcase_add_test(tc, brightness_and_contrast_by_hand);
    tcase_add_test(tc, blur_of_a_point_is_the_gaussian);
    tcase_add_test(tc, pixelate_by_hand);
    tcase_add_test(tc, translate_shifts_by_severity);
    tcase_add_test(tc, rotate_by_hand);
    tcase_add_test(tc, noise_has_its_published_spread);
    tcase_add_test(tc, noise_pixels_by_hand);
    tcase_add_test(tc, bad_arguments_are_named);
    tcase_add_test(tc, png_canvas_decodes_back);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_corrupt)
