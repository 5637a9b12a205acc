/*
 * test_transfer.c - starting from a trained model and training against
 * distribution shift (core/): weights copied bit for bit, a class-count
 * change that re-initialises only the last layer, frozen layers that stay
 * as they were with no optimiser state, augmentation that is the same for
 * the same seed and different for another, and AugMix training.
 */
#include "testutil.h"

#include "core/augment.h"
#include "core/corrupt.h"
#include "core/rng.h"
#include "core/train.h"

#include <math.h>

#define SMALL "conv8k3p1 relu maxpool2 conv16k3p1 relu maxpool2 fc32 relu fc10"

#define FASHION_TRAIN 1000
#define FASHION_TEST 200
#include "fashion.h"

static core_train_cfg small_cfg(core_method method, uint64_t seed)
{
    core_train_cfg c = core_train_defaults();
    c.method = method;
    c.init = CORE_INIT_HE; /* these one-epoch tiny models learn faster from He's */
    c.epochs = 1;
    c.batch = 64;
    c.steps = 2;
    c.val_size = 64;
    c.val_robust_size = 32;
    c.seed = seed;
    return c;
}

static core_trainer *make(const core_train_cfg *c, const char *spec)
{
    char err[CORE_ERRLEN];
    core_trainer *t = NULL;
    ck_assert_msg(core_trainer_create(c, spec, &train_set, &t, err) == 0, "%s", err);
    return t;
}

static void run(core_trainer *t)
{
    char err[CORE_ERRLEN];
    ck_assert_msg(core_trainer_run(t, NULL, err) >= 0, "%s", err);
}

static core_eval_result evaluate(core_model *m)
{
    char err[CORE_ERRLEN];
    int idx[200];
    for (int i = 0; i < test_set.n; i++)
        idx[i] = i;
    core_attack_ws *ws;
    ck_assert(core_model_reserve(m, 64, err) == 0);
    ck_assert(core_attack_ws_create(m, 64, &ws, err) == 0);
    core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, 0.1f);
    a.steps = 5;
    core_eval_result r;
    ck_assert_msg(core_evaluate(m, ws, &test_set, idx, test_set.n, 64, &a, CORE_STREAM_USER, &r,
                                err) == 0, "%s", err);
    core_attack_ws_free(ws);
    return r;
}

/* A trained model's checkpoint bytes. */
static uint8_t *trained_state(size_t *len)
{
    core_train_cfg c = small_cfg(CORE_METHOD_PGD, 1);
    core_trainer *t = make(&c, SMALL);
    run(t);
    uint8_t *buf;
    char err[CORE_ERRLEN];
    ck_assert(core_trainer_save(t, &buf, len, err) == 0);
    core_trainer_free(t);
    return buf;
}

/* init: the weights arrive bit for bit, so an untrained child evaluates
 * exactly as its parent. */
START_TEST(test_init_copies_weights)
{
    size_t len;
    uint8_t *state = trained_state(&len);
    char err[CORE_ERRLEN];
    core_model *parent;
    ck_assert(core_state_model(state, len, &parent, err) == 0);
    core_train_cfg c = small_cfg(CORE_METHOD_CLEAN, 99); /* another seed: other fresh weights */
    core_trainer *child = make(&c, SMALL);
    ck_assert(memcmp(child->model->params, parent->params, parent->nparams * 4) != 0);
    int reinit = -1;
    ck_assert_msg(core_trainer_init_from(child, state, len, &reinit, err) == 0, "%s", err);
    ck_assert_int_eq(reinit, 0);
    ck_assert(memcmp(child->model->params, parent->params, parent->nparams * 4) == 0);
    core_eval_result a = evaluate(parent), b = evaluate(child->model);
    ck_assert(a.clean_acc == b.clean_acc && a.robust_acc == b.robust_acc &&
              a.clean_loss == b.clean_loss);
    core_model_free(parent);
    core_trainer_free(child);
    free(state);
}
END_TEST

/* Ten classes to three: every tensor but the last layer's is copied; the
 * last keeps its fresh weights. Any other mismatch names both shapes. */
START_TEST(test_init_class_change)
{
    char err[CORE_ERRLEN];
    core_model *src, *dst, *fresh, *other;
    core_shape in = {1, 28, 28};
    ck_assert(core_model_create(SMALL, in, 10, 1, &src, err) == 0);
    const char *three = "conv8k3p1 relu maxpool2 conv16k3p1 relu maxpool2 fc32 relu fc3";
    ck_assert(core_model_create(three, in, 3, 2, &dst, err) == 0);
    ck_assert(core_model_create(three, in, 3, 2, &fresh, err) == 0);
    int reinit = 0;
    ck_assert_msg(core_model_transfer(dst, src, &reinit, err) == 0, "%s", err);
    ck_assert_int_eq(reinit, 1);
    for (int i = 0; i < dst->nviews; i++) {
        const core_param_view *v = &dst->views[i];
        const core_param_view *s = core_model_view(src, v->name);
        int last = i >= dst->nviews - 2;
        const float *want = last ? fresh->params + v->offset : src->params + s->offset;
        ck_assert_msg(memcmp(dst->params + v->offset, want, v->size * 4) == 0, "tensor '%s'",
                      v->name);
    }
    ck_assert(core_model_create("conv4k3p1 relu maxpool2 conv16k3p1 relu maxpool2 fc32 relu fc10",
                                in, 10, 3, &other, err) == 0);
    ck_assert_int_eq(core_model_transfer(other, src, &reinit, err), -1);
    ck_assert_str_eq(err, "tensor '0.weight' is 4x1x3x3 here but 8x1x3x3 in the checkpoint's '"
                          SMALL "'");
    core_model_free(src);
    core_model_free(dst);
    core_model_free(fresh);
    core_model_free(other);
}
END_TEST

/* train_layers last:1: only the final fc trains; the rest is unchanged to
 * the bit, and the optimiser holds state for the trained part only. */
START_TEST(test_frozen_layers)
{
    core_train_cfg c = small_cfg(CORE_METHOD_PGD, 5);
    c.train_last = 1;
    core_trainer *t = make(&c, SMALL);
    const core_model *m = t->model;
    const core_param_view *last = core_model_view(m, "9.weight");
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(m->frozen, last->offset);
    ck_assert_int_eq(t->opt.n, m->nparams - m->frozen);
    float *before = malloc(m->nparams * sizeof(float));
    memcpy(before, m->params, m->nparams * sizeof(float));
    run(t);
    ck_assert(memcmp(before, m->params, m->frozen * sizeof(float)) == 0);
    ck_assert(memcmp(before + m->frozen, m->params + m->frozen,
                     (m->nparams - m->frozen) * sizeof(float)) != 0);
    /* Nothing accumulates below the trained part either. */
    for (size_t i = 0; i < m->frozen; i++)
        ck_assert(m->grads[i] == 0.0f);
    free(before);
    core_trainer_free(t);
    /* last:2 trains the two fc layers; all: nothing frozen. */
    c.train_last = 2;
    t = make(&c, SMALL);
    ck_assert_int_eq(t->model->frozen, core_model_view(t->model, "7.weight")->offset);
    core_trainer_free(t);
    c.train_last = 0;
    t = make(&c, SMALL);
    ck_assert_int_eq(t->model->frozen, 0);
    core_trainer_free(t);
}
END_TEST

static float *augmented(const core_augment_cfg *a, uint64_t seed, int64_t step)
{
    const size_t dim = 784;
    float *x = malloc(sizeof(float) * 64 * dim);
    int idx[64], y[64];
    char err[CORE_ERRLEN];
    for (int i = 0; i < 64; i++)
        idx[i] = i;
    core_dataset_gather(&train_set, idx, 64, x, y);
    ck_assert_msg(core_augment_batch(a, x, 64, train_set.shape, seed, step, err) == 0, "%s", err);
    for (size_t i = 0; i < 64 * dim; i++)
        ck_assert(x[i] >= 0.0f && x[i] <= 1.0f);
    return x;
}

/* Same seed and step: the same bytes; another seed or step: different. */
START_TEST(test_augment_determinism)
{
    core_augment_cfg a = core_augment_defaults();
    a.crop = 2;
    a.flip = 1;
    a.brightness = 0.2f;
    a.contrast = 0.3f;
    a.noise = 0.05f;
    a.corruptions = 1u << CORE_CORRUPT_CONTRAST | 1u << CORE_CORRUPT_GAUSSIAN_BLUR;
    const size_t bytes = sizeof(float) * 64 * 784;
    float *x1 = augmented(&a, 7, 3), *x2 = augmented(&a, 7, 3), *x3 = augmented(&a, 8, 3),
          *x4 = augmented(&a, 7, 4);
    ck_assert(memcmp(x1, x2, bytes) == 0);
    ck_assert(memcmp(x1, x3, bytes) != 0);
    ck_assert(memcmp(x1, x4, bytes) != 0);
    core_augment_cfg off = core_augment_defaults();
    float *x0 = augmented(&off, 7, 3), *raw = augmented(&off, 1, 1);
    ck_assert(memcmp(x0, raw, bytes) == 0);
    free(x1), free(x2), free(x3), free(x4), free(x0), free(raw);
}
END_TEST

/* AugMix: views are deterministic and differ from the input; training with
 * the JS term runs and is bit-identical when repeated. */
START_TEST(test_augmix)
{
    core_augment_cfg a = core_augment_defaults();
    char err[CORE_ERRLEN];
    float *x = augmented(&a, 1, 1), *v1 = malloc(sizeof(float) * 64 * 784),
          *v2 = malloc(sizeof(float) * 64 * 784);
    ck_assert(core_augmix(&a, x, v1, 64, train_set.shape, 5, 2, 0, err) == 0);
    ck_assert(core_augmix(&a, x, v2, 64, train_set.shape, 5, 2, 0, err) == 0);
    ck_assert(memcmp(v1, v2, sizeof(float) * 64 * 784) == 0);
    ck_assert(memcmp(v1, x, sizeof(float) * 64 * 784) != 0);
    ck_assert(core_augmix(&a, x, v2, 64, train_set.shape, 5, 2, 1, err) == 0);
    ck_assert(memcmp(v1, v2, sizeof(float) * 64 * 784) != 0);
    free(x), free(v1), free(v2);
    core_train_cfg c = small_cfg(CORE_METHOD_CLEAN, 3);
    c.augment.augmix = 1;
    c.augment.crop = 2;
    core_trainer *t1 = make(&c, SMALL), *t2 = make(&c, SMALL);
    run(t1);
    run(t2);
    ck_assert(memcmp(t1->model->params, t2->model->params, t1->model->nparams * 4) == 0);
    ck_assert(evaluate(t1->model).clean_acc > 0.3);
    core_trainer_free(t1);
    core_trainer_free(t2);
}
END_TEST

static Suite *suite_transfer(void)
{
    Suite *s = suite_create("transfer");
    TCase *tc = tcase_create("transfer");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, load_data, free_data);
    tcase_add_test(tc, test_init_copies_weights);
    tcase_add_test(tc, test_init_class_change);
    tcase_add_test(tc, test_frozen_layers);
    tcase_add_test(tc, test_augment_determinism);
    tcase_add_test(tc, test_augmix);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_transfer)
