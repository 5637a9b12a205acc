/*
 * test_train.c - the training loop on real Fashion-MNIST images: learning,
 * determinism, checkpoints that resume bit for bit, every method, and
 * adversarial training that beats clean training under attack.
 */
#include "testutil.h"

#include "core/rng.h"
#include "core/train.h"

#include <math.h>

#define SMALL "conv8k3p1 relu maxpool2 conv16k3p1 relu maxpool2 fc32 relu fc10"

#define FASHION_TRAIN 2000
#define FASHION_TEST 400
#include "fashion.h"

/* The first n examples of the training set as a view (no copy). */
static core_dataset subset(int n)
{
    core_dataset d = train_set;
    d.n = n;
    return d;
}

static core_train_cfg small_cfg(core_method method, int epochs)
{
    core_train_cfg c = core_train_defaults();
    c.method = method;
    c.epochs = epochs;
    c.batch = 64;
    c.steps = 3;
    c.val_size = 64;
    c.val_robust_size = 32;
    c.seed = 42;
    return c;
}

static core_trainer *make(const core_train_cfg *c, const char *spec, const core_dataset *d)
{
    char err[CORE_ERRLEN];
    core_trainer *t = NULL;
    ck_assert_msg(core_trainer_create(c, spec, d, &t, err) == 0, "%s", err);
    return t;
}

static void run(core_trainer *t, const core_train_hooks *h)
{
    char err[CORE_ERRLEN];
    ck_assert_msg(core_trainer_run(t, h, err) >= 0, "%s", err);
}

static double test_accuracy(core_model *m, const core_attack_cfg *a)
{
    char err[CORE_ERRLEN];
    int idx[400];
    for (int i = 0; i < test_set.n; i++)
        idx[i] = i;
    core_attack_ws *ws;
    ck_assert(core_attack_ws_create(m, 64, &ws, err) == 0);
    core_eval_result r;
    ck_assert_msg(core_evaluate(m, ws, &test_set, idx, test_set.n, 64, a, CORE_STREAM_USER, &r,
                                err) == 0, "%s", err);
    core_attack_ws_free(ws);
    return a ? r.robust_acc : r.clean_acc;
}

typedef struct {
    int epochs;
    float loss[16], val_acc[16];
} epoch_log;

static int log_epoch(void *ctx, const core_epoch_info *e)
{
    epoch_log *l = ctx;
    l->loss[l->epochs] = e->train_loss;
    l->val_acc[l->epochs++] = e->val_clean_acc;
    return 0;
}

START_TEST(train_learns)
{
    core_dataset d = subset(1024);
    core_train_cfg c = small_cfg(CORE_METHOD_CLEAN, 3);
    core_trainer *t = make(&c, "cnn-small", &d);
    epoch_log log = {0};
    core_train_hooks h = {.on_epoch = log_epoch, .ctx = &log};
    run(t, &h);
    ck_assert_int_eq(log.epochs, 3);
    ck_assert_msg(log.loss[2] < 0.8f * log.loss[0], "loss %g -> %g", log.loss[0], log.loss[2]);
    double acc = test_accuracy(t->model, NULL);
    ck_assert_msg(acc > 0.6, "test accuracy %g", acc);
    ck_assert(log.val_acc[2] > 0.5f);
    core_trainer_free(t);
}
END_TEST

static void run_method(core_method method, uint8_t **state, size_t *len)
{
    char err[CORE_ERRLEN];
    core_dataset d = subset(256);
    core_train_cfg c = small_cfg(method, 2);
    core_trainer *t = make(&c, SMALL, &d);
    run(t, NULL);
    for (size_t i = 0; i < t->model->nparams; i++)
        ck_assert(isfinite(t->model->params[i]));
    ck_assert(core_trainer_save(t, state, len, err) == 0);
    core_trainer_free(t);
}

START_TEST(train_deterministic)
{
    static const core_method methods[] = {CORE_METHOD_CLEAN, CORE_METHOD_PGD,
                                          CORE_METHOD_FGSM_RS, CORE_METHOD_TRADES};
    for (int m = 0; m < 4; m++) {
        uint8_t *a, *b;
        size_t la, lb;
        run_method(methods[m], &a, &la);
        run_method(methods[m], &b, &lb);
        ck_assert_uint_eq(la, lb);
        ck_assert_msg(memcmp(a, b, la) == 0, "%s: two runs differ", core_method_name(methods[m]));
        free(a);
        free(b);
    }
}
END_TEST

typedef struct {
    int64_t stop_at;
} stopper;

static int stop_at_step(void *ctx, const core_batch_info *b)
{
    return b->step == ((stopper *)ctx)->stop_at;
}

/* Stop mid-epoch, checkpoint, rebuild from scratch, resume: same bytes. */
START_TEST(train_resume_exact)
{
    char err[CORE_ERRLEN];
    core_dataset d = subset(320);
    core_train_cfg c = small_cfg(CORE_METHOD_PGD, 2);
    core_trainer *whole = make(&c, SMALL, &d);
    run(whole, NULL);

    core_trainer *first = make(&c, SMALL, &d);
    stopper s = {.stop_at = 6};
    core_train_hooks h = {.on_batch = stop_at_step, .ctx = &s};
    ck_assert_int_eq(core_trainer_run(first, &h, err), 1);
    uint8_t *buf;
    size_t len;
    ck_assert(core_trainer_save(first, &buf, &len, err) == 0);
    core_trainer_free(first);

    core_trainer *second = make(&c, SMALL, &d);
    ck_assert_msg(core_trainer_load(second, buf, len, err) == 0, "%s", err);
    ck_assert_int_eq(second->progress.step, 6);
    run(second, NULL);
    ck_assert(memcmp(whole->model->params, second->model->params,
                     whole->model->nparams * sizeof(float)) == 0);
    ck_assert(memcmp(whole->opt.m, second->opt.m, whole->opt.n * sizeof(float)) == 0);
    free(buf);
    core_trainer_free(whole);
    core_trainer_free(second);
}
END_TEST

START_TEST(state_rejects_damage)
{
    char err[CORE_ERRLEN];
    uint8_t *buf;
    size_t len;
    run_method(CORE_METHOD_CLEAN, &buf, &len);
    core_state_info info;
    ck_assert(core_state_inspect(buf, len, &info, err) == 0);
    ck_assert_str_eq(info.spec, SMALL);
    ck_assert_int_eq(info.epoch, 2);
    core_model *m;
    ck_assert(core_state_model(buf, len, &m, err) == 0);

    buf[len / 2] ^= 0x40;
    ck_assert(core_state_inspect(buf, len, &info, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    buf[len / 2] ^= 0x40;
    ck_assert(core_state_inspect(buf, len - 9, &info, err) == -1);
    ck_assert(core_state_inspect(buf, 5, &info, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "magic"));

    core_dataset d = subset(256);
    core_train_cfg c = small_cfg(CORE_METHOD_CLEAN, 1);
    core_trainer *other = make(&c, "cnn-small", &d);
    ck_assert(core_trainer_load(other, buf, len, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "differs"));
    core_trainer_free(other);
    core_model_free(m);
    free(buf);
}
END_TEST

START_TEST(train_rejects_bad_config)
{
    char err[CORE_ERRLEN];
    core_dataset d = subset(256);
    core_trainer *t = NULL;
    core_train_cfg c = small_cfg(CORE_METHOD_PGD, 1);
    c.eps = 1.5f;
    ck_assert(core_trainer_create(&c, SMALL, &d, &t, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "eps"));
    c = small_cfg(CORE_METHOD_PGD, 1);
    c.batch = 0;
    ck_assert(core_trainer_create(&c, SMALL, &d, &t, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "batch"));
    c = small_cfg(CORE_METHOD_PGD, 1);
    c.val_size = 256;
    ck_assert(core_trainer_create(&c, SMALL, &d, &t, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "val-size"));
    c = small_cfg(CORE_METHOD_PGD, 1);
    ck_assert(core_trainer_create(&c, "conv8k3 fc7", &d, &t, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "fc10"));
    ck_assert(core_trainer_create(&c, "conv8k3 bogus fc10", &d, &t, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "'bogus'"));
    core_method m;
    ck_assert(core_method_parse("madry", &m, err) == -1);
    ck_assert_ptr_nonnull(strstr(err, "'madry'"));
}
END_TEST

/* The point of the project: PGD training buys accuracy under PGD. */
START_TEST(adversarial_beats_clean_under_attack)
{
    if (adv_test_under_asan()) { /* training and attacks run under it above */
        printf("test_train: adversarial_beats_clean_under_attack skipped under "
               "AddressSanitizer\n");
        return;
    }
    core_dataset d = subset(2000);
    core_attack_cfg pgd = core_attack_defaults(CORE_ATTACK_PGD, 0.1f);
    pgd.steps = 10;
    pgd.alpha = 0.025f;
    double robust[2], clean[2];
    core_method methods[2] = {CORE_METHOD_CLEAN, CORE_METHOD_PGD};
    for (int i = 0; i < 2; i++) {
        core_train_cfg c = small_cfg(methods[i], 4);
        c.val_size = 0;
        c.steps = 5;
        core_trainer *t = make(&c, SMALL, &d);
        run(t, NULL);
        clean[i] = test_accuracy(t->model, NULL);
        robust[i] = test_accuracy(t->model, &pgd);
        core_trainer_free(t);
    }
    ck_assert_msg(robust[1] > robust[0] + 0.15, "PGD accuracy: clean-trained %g, PGD-trained %g",
                  robust[0], robust[1]);
    ck_assert_msg(clean[1] > 0.5, "PGD-trained clean accuracy %g", clean[1]);
}
END_TEST

static Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_add_unchecked_fixture(tc, load_data, free_data);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_learns);
    tcase_add_test(tc, train_deterministic);
    tcase_add_test(tc, train_resume_exact);
    tcase_add_test(tc, state_rejects_damage);
    tcase_add_test(tc, train_rejects_bad_config);
    tcase_add_test(tc, adversarial_beats_clean_under_attack);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_train)
