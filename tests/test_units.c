/*
 * test_units.c - looking inside a network (layer names, filters, top
 * activating examples, activation maximisation), the cascading
 * model-randomisation test of explanation maps (Adebayo et al. 2018), and
 * the evaluation spec keys of both and of the surrogates.
 */
#include "testutil.h"

#include <math.h>

#include "core/explain.h"
#include "core/gemm.h"
#include "core/mapcheck.h"
#include "core/rng.h"
#include "core/units.h"
#include "proto/proto.h"

#define N 8

static core_model *model(const char *spec, core_shape in)
{
    char err[CORE_ERRLEN];
    core_model *m;
    ck_assert_msg(core_model_create(spec, in, 10, 5, &m, err) == 0, "%s", err);
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

START_TEST(layer_names)
{
    char err[CORE_ERRLEN], label[16];
    core_model *m = model("cnn-small", (core_shape){1, 12, 12});
    int layer;
    ck_assert(core_unit_layer_find(m, "conv1", &layer, err) == 0);
    ck_assert_int_eq(layer, 1);   /* the ReLU after it: what the next layer sees */
    ck_assert(core_unit_layer_find(m, "conv2", &layer, err) == 0);
    ck_assert_int_eq(layer, 4);
    ck_assert(core_unit_layer_find(m, "conv3", &layer, err) == -1);
    ck_assert_str_eq(err, "unknown layer 'conv3' (conv1, conv2, ... as the model spec numbers "
                          "them)");
    ck_assert(core_unit_layer_find(m, "fc1", &layer, err) == -1);
    ck_assert_str_eq(err, "'fc1' has no channels to look at (name a conv or res layer)");
    core_layer_label(m, m->nlayers - 1, label, sizeof label);
    ck_assert_str_eq(label, "fc2");
    core_model_free(m);
}
END_TEST

START_TEST(filters_and_top_examples)
{
    char err[CORE_ERRLEN];
    core_model *m = model("conv3k3p1 relu maxpool2 fc10", (core_shape){1, 6, 6});
    float tiles[3 * 9];
    core_shape t;
    int count;
    ck_assert(core_unit_filters(m, tiles, &t, &count, err) == 0);
    ck_assert(count == 3 && t.c == 1 && t.h == 3 && t.w == 3);
    for (int f = 0; f < 3; f++) {   /* each filter scaled on its own: one end reaches 0 or 1 */
        float lo = 1, hi = 0;
        for (int p = 0; p < 9; p++) {
            lo = fminf(lo, tiles[f * 9 + p]);
            hi = fmaxf(hi, tiles[f * 9 + p]);
        }
        ck_assert(lo >= 0 && hi <= 1 && (fabsf(lo) < 1e-6f || fabsf(hi - 1) < 1e-6f));
    }
    /* Example i is i/8 times a fixed image: channel scores grow with i
     * for a channel that is active, so its top three are 7, 6, 5. */
    float *x = inputs(1, 36), *xs = core_alloc(sizeof(float) * 36 * N);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < 36; p++)
            xs[i * 36 + p] = x[p] * (float)i / N;
    float score[N * 3], act[N * 3 * 36];
    int top[3], layer;
    ck_assert(core_unit_layer_find(m, "conv1", &layer, err) == 0);
    core_unit_scores(m, layer, xs, N, score, act);
    int c = score[(N - 1) * 3] > 0 ? 0 : score[(N - 1) * 3 + 1] > 0 ? 1 : 2;
    ck_assert(score[(N - 1) * 3 + c] > 0);
    core_unit_top(score + c, N, 3, 3, top);
    ck_assert(top[0] == 7 && top[1] == 6 && top[2] == 5);
    float rgb[3 * 36];
    core_unit_overlay(xs + 7 * 36, m->in, act + (7 * 3 + c) * 36, 6, 6, 1.0f, rgb);
    for (int p = 0; p < 3 * 36; p++)
        ck_assert(rgb[p] >= 0.0f && rgb[p] <= 1.0f);
    core_free(x);
    core_free(xs);
    core_model_free(m);
}
END_TEST

/* Gradient ascent raises every channel's mean activation, from grey plus
 * noise, with jitter, decay and blur on; the same seed gives the same
 * pictures. */
START_TEST(maximisation_raises_the_objective)
{
    char err[CORE_ERRLEN];
    core_model *m = model("conv4k3p1 relu maxpool2 conv6k3p1 relu fc10", (core_shape){1, 12, 12});
    core_maximise_cfg cfg = core_maximise_defaults();
    cfg.steps = 32;
    cfg.seed = 4;
    for (int l = 1; l <= 2; l++) {
        char name[16];
        int layer;
        snprintf(name, sizeof name, "conv%d", l);
        ck_assert(core_unit_layer_find(m, name, &layer, err) == 0);
        const int c = m->layers[layer].out.c;
        float *img = core_alloc(sizeof(float) * 144 * c), *again = core_alloc(sizeof(float) * 144 * c);
        double start[8], end[8];
        ck_assert_msg(core_unit_maximise(&cfg, m, layer, 0, c, img, start, end, err) == 0, "%s",
                      err);
        for (int j = 0; j < c; j++)
            ck_assert_msg(end[j] > start[j] && end[j] > 0, "%s channel %d: %g -> %g", name, j,
                          start[j], end[j]);
        for (int p = 0; p < 144 * c; p++)
            ck_assert(img[p] >= 0.0f && img[p] <= 1.0f);
        ck_assert(core_unit_maximise(&cfg, m, layer, 0, c, again, NULL, NULL, err) == 0);
        ck_assert(memcmp(img, again, sizeof(float) * 144 * c) == 0);
        core_free(img);
        core_free(again);
    }
    ck_assert(core_unit_maximise(&cfg, m, 1, 3, 2, NULL, NULL, NULL, err) == -1);
    core_model_free(m);
}
END_TEST

/* A map that ignores the weights: the gradient magnitude of the input
 * image (an edge detector). */
static int edge_map(void *ctx, core_model *m, const float *x, int n, float *map, char *err)
{
    (void)ctx;
    (void)err;
    const int h = m->in.h, w = m->in.w;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int z = 0; z < w; z++) {
                const float *p = x + (size_t)i * h * w;
                float gx = p[y * w + (z + 1 < w ? z + 1 : z)] - p[y * w + (z > 0 ? z - 1 : z)];
                float gy = p[(y + 1 < h ? y + 1 : y) * w + z] - p[(y > 0 ? y - 1 : y) * w + z];
                map[((size_t)i * h + y) * w + z] = sqrtf(gx * gx + gy * gy);
            }
    return 0;
}

static int method_map(void *ctx, core_model *m, const float *x, int n, float *map, char *err)
{
    const core_explain_cfg *cfg = ctx;
    const int cls[N] = {0, 1, 2, 3, 4, 5, 6, 7};
    float *attr = core_alloc(sizeof(float) * core_shape_size(m->in) * n);
    int rc = core_explain(cfg, m, x, cls, n, 0, attr, NULL, err);
    core_explain_map(attr, n, m->in, map);
    core_free(attr);
    return rc;
}

START_TEST(randomisation_flags_a_map_that_ignores_the_weights)
{
    char err[CORE_ERRLEN];
    core_model *m = model("conv4k3p1 relu maxpool2 fc16 relu fc10", (core_shape){1, 12, 12});
    float *x = inputs(N, 144), *before = core_alloc(sizeof(float) * m->nparams);
    memcpy(before, m->params, sizeof(float) * m->nparams);
    core_mapcheck_cfg cfg = core_mapcheck_defaults();
    cfg.seed = 8;
    core_mapcheck r;
    ck_assert_msg(core_mapcheck_run(&cfg, m, x, N, edge_map, NULL, &r, err) == 0, "%s", err);
    ck_assert_int_eq(r.steps, 3);
    ck_assert_str_eq(r.layer[0], "fc2");
    ck_assert_str_eq(r.layer[2], "conv1");
    ck_assert_double_eq_tol(r.final, 1.0, 1e-12);
    ck_assert(r.flagged);
    core_explain_cfg sal = core_explain_defaults(CORE_EXPLAIN_SALIENCY);
    ck_assert(core_mapcheck_run(&cfg, m, x, N, method_map, &sal, &r, err) == 0);
    ck_assert_msg(!r.flagged && r.final < cfg.threshold, "saliency: final %g", r.final);
    for (int s = 0; s < r.steps; s++)
        ck_assert(r.spearman[s] >= -1.0 && r.spearman[s] < 1.0);
    /* The trained weights are back, bit for bit. */
    ck_assert(memcmp(before, m->params, sizeof(float) * m->nparams) == 0);
    core_free(x);
    core_free(before);
    core_model_free(m);
}
END_TEST

static int eval_spec(const char *extra, adv_jobspec *s, adv_error *e)
{
    char text[512];
    snprintf(text, sizeof text, "{\"kind\":\"eval\",\"job\":1%s}", extra);
    return adv_jobspec_parse_text(text, strlen(text), s, e);
}

START_TEST(spec_keys)
{
    adv_jobspec s;
    adv_error e;
    ck_assert_msg(eval_spec("", &s, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(s.eval.explain_methods, "saliency,smoothgrad,ig,guided,gaussian,lime");
    ck_assert(s.eval.method_limit == 16 && s.eval.gaussian_samples == 500 &&
              s.eval.lime_samples == 300 && s.eval.units_k == 8);
    ck_assert_str_eq(s.eval.units_layer, "conv1");
    ck_assert(eval_spec(",\"explain_methods\":\"lime,guided\",\"lime_patch\":7,"
                        "\"lime_fill\":\"blur\",\"surrogate_target\":\"logit\","
                        "\"units_layer\":\"conv2\",\"images\":\"gaussian-local\"", &s, &e) == 0);
    ck_assert(s.eval.lime_patch == 7 && s.eval.lime_fill == CORE_FILL_BLUR &&
              s.eval.surrogate_target == CORE_TARGET_LOGIT && s.eval.images == ADV_IMAGES_GAUSSIAN);
    /* The canonical form reads back the same. */
    char *c = adv_jobspec_canonical(&s);
    adv_jobspec again;
    ck_assert(adv_jobspec_parse_text(c, strlen(c), &again, &e) == 0);
    ck_assert_str_eq(again.eval.explain_methods, "lime,guided");
    free(c);
    ck_assert(eval_spec(",\"explain_methods\":\"lime,bogus\"", &s, &e) == -1);
    ck_assert_int_eq(e.code, ADV_E_INVALID_ARGUMENT);
    ck_assert_str_eq(e.msg, "invalid 'explain_methods': unknown explanation 'bogus' (saliency, "
                            "smoothgrad, ig, guided, gaussian or lime)");
    ck_assert(eval_spec(",\"lime_fill\":\"pink\"", &s, &e) == -1);
    ck_assert_str_eq(e.msg, "invalid 'lime_fill': unknown fill 'pink' (grey or blur)");
    ck_assert(eval_spec(",\"gaussian_sigma\":0", &s, &e) == -1);
    ck_assert(eval_spec(",\"ridge_lambda\":0", &s, &e) == -1);
}
END_TEST

/* Tiny models: threads would only wait on each other, and on a shared
 * machine a descheduled one stalls every parallel loop. Results do not
 * depend on the thread count. */
static void one_thread(void)
{
    core_set_threads(1);
}

static Suite *suite_units(void)
{
    Suite *s = suite_create("units");
    TCase *tc = tcase_create("units");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, one_thread, NULL);
    tcase_add_test(tc, layer_names);
    tcase_add_test(tc, filters_and_top_examples);
    tcase_add_test(tc, maximisation_raises_the_objective);
    tcase_add_test(tc, randomisation_flags_a_map_that_ignores_the_weights);
    tcase_add_test(tc, spec_keys);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_units)
