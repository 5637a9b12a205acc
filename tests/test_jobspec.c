/*
 * test_jobspec.c - job spec validation and canonical JSON: defaults, round
 * trips, every field given every wrong type, unknown keys, data sets and
 * model specs that cannot work, and thousands of generated bad specs.
 *
 * Data sets: the IDX and CIFAR-10 fixtures are empty files in a temporary
 * directory (validation checks that files are there and readable, it does
 * not load them); "fashion-mnist" is Debian's package, present on every
 * machine that builds advd (scripts/deps.sh installs it).
 */
#include "proto/proto.h"
#include "testutil.h"
#include "core/corrupt.h"

#include <math.h>
#include <sys/stat.h>

/* ------------------------------------------------------------- helpers */

static void touch(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

/* dir/mnist (plain IDX names), dir/cifar, dir/png/{cat,dog}. */
static void make_fixtures(char *dir, size_t len)
{
    adv_test_tmpdir(dir, len);
    char sub[4200];
    static const char *const idx[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                      "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"};
    static const char *const cifar[] = {"data_batch_1.bin", "data_batch_2.bin",
                                        "data_batch_3.bin", "data_batch_4.bin",
                                        "data_batch_5.bin", "test_batch.bin"};
    snprintf(sub, sizeof sub, "%s/mnist", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    for (int i = 0; i < 4; i++)
        touch(sub, idx[i]);
    snprintf(sub, sizeof sub, "%s/cifar", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    for (int i = 0; i < 6; i++)
        touch(sub, cifar[i]);
    snprintf(sub, sizeof sub, "%s/png", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/png/cat", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
}

static int parse(const char *text, adv_jobspec *s, adv_error *e)
{
    e->code = (adv_errcode)-1;
    e->msg[0] = '\0';
    return adv_jobspec_parse_text(text, strlen(text), s, e);
}

static void expect_ok(const char *text, adv_jobspec *s)
{
    adv_error e;
    ck_assert_msg(parse(text, s, &e) == 0, "%s: %s", text, e.msg);
}

static void expect_bad(const char *text, const char *needle)
{
    adv_jobspec s;
    adv_error e;
    ck_assert_msg(parse(text, &s, &e) == -1, "%s: accepted", text);
    ck_assert_msg(e.code == ADV_E_INVALID_ARGUMENT, "%s: code %s", text, adv_errcode_name(e.code));
    ck_assert_msg(strstr(e.msg, needle) != NULL, "%s: '%s' lacks '%s'", text, e.msg, needle);
}

/* Canonical text of a valid spec; it must parse back to itself. */
static char *round_trip(const char *text)
{
    adv_jobspec a, b;
    expect_ok(text, &a);
    char *ca = adv_jobspec_canonical(&a);
    ck_assert_ptr_nonnull(ca);
    expect_ok(ca, &b);
    char *cb = adv_jobspec_canonical(&b);
    ck_assert_str_eq(ca, cb);
    free(cb);
    return ca;
}

/* ------------------------------------------------------------ defaults */

START_TEST(test_train_defaults)
{
    adv_jobspec s;
    expect_ok("{\"kind\":\"train\"}", &s);
    core_train_cfg d = core_train_defaults();
    ck_assert_int_eq(s.kind, ADV_JOB_TRAIN);
    ck_assert_str_eq(s.train.dataset, "fashion-mnist");
    ck_assert_str_eq(s.train.data_dir, CORE_FASHION_MNIST_DIR);
    ck_assert_str_eq(s.train.model, "cnn-small");
    ck_assert_int_eq(s.train.shape.c, 1);
    ck_assert_int_eq(s.train.nclass, 10);
    ck_assert_int_eq(memcmp(&s.train.cfg, &d, sizeof d), 0);
    ck_assert_int_eq(s.train.checkpoint_every, 1);
    ck_assert_int_eq(s.train.keep_checkpoints, 3);
    char *c = adv_jobspec_canonical(&s);
    ck_assert_str_eq(c, "{\"kind\":\"train\",\"name\":\"\",\"priority\":0,\"threads\":0,\"procs\":1,"
                        "\"dataset\":\"fashion-mnist\",\"model\":\"cnn-small\",\"epochs\":2,"
                        "\"batch\":128,\"optimizer\":\"sgd\",\"lr\":0.05,\"momentum\":0.9,"
                        "\"beta2\":0.999,\"weight_decay\":0.0005,\"nesterov\":false,"
                        "\"schedule\":\"onecycle\",\"step_epochs\":1,\"gamma\":0.1,"
                        "\"lr_min\":0.0,\"method\":\"pgd\",\"norm\":\"linf\",\"eps\":0.1,"
                        "\"alpha\":0.0,\"steps\":7,\"mix\":1.0,\"trades_beta\":6.0,"
                        "\"eps_ramp\":0,\"co_guard\":true,\"train_limit\":0,\"val_size\":1000,"
                        "\"val_robust_size\":500,\"seed\":0,\"checkpoint_every\":1,"
                        "\"keep_checkpoints\":3,\"train_layers\":\"all\",\"augment_crop\":0,"
                        "\"augment_flip\":false,\"augment_brightness\":0.0,"
                        "\"augment_contrast\":0.0,\"augment_noise\":0.0,"
                        "\"augment_corruptions\":\"\",\"augment_severity\":3,"
                        "\"augment_prob\":0.5,\"augmix\":false,\"augmix_js\":12.0}");
    free(c);
}
END_TEST

/* Adam's defaults, not SGD's, when the optimizer is adam. */
START_TEST(test_optimizer_defaults_follow_kind)
{
    adv_jobspec s;
    expect_ok("{\"kind\":\"train\",\"optimizer\":\"adam\"}", &s);
    ck_assert_float_eq(s.train.cfg.opt.lr, 1e-3f);
    ck_assert_float_eq(s.train.cfg.opt.weight_decay, 0.0f);
    expect_ok("{\"kind\":\"train\",\"lr\":0.2,\"optimizer\":\"adam\"}", &s);
    ck_assert_float_eq(s.train.cfg.opt.lr, 0.2f);
}
END_TEST

START_TEST(test_eval_defaults)
{
    adv_jobspec s;
    expect_ok("{\"kind\":\"eval\",\"job\":4}", &s);
    ck_assert_int_eq(s.kind, ADV_JOB_EVAL);
    ck_assert_int_eq(s.eval.job, 4);
    ck_assert_int_eq(s.eval.checkpoint.which, ADV_CKPT_LATEST);
    ck_assert_int_eq(s.eval.attack.kind, CORE_ATTACK_PGD);
    ck_assert_int_eq(s.eval.attack.steps, 20);
    ck_assert_int_eq(s.eval.neps, 1);
    ck_assert_float_eq(s.eval.eps[0], 0.1f);
    ck_assert_int_eq(s.eval.sanity, 1);
    ck_assert_int_eq(s.eval.limit, 1000);
    /* APGD's own defaults. */
    expect_ok("{\"kind\":\"eval\",\"job\":4,\"attack\":\"apgd-t\"}", &s);
    ck_assert_int_eq(s.eval.attack.steps, 100);
    ck_assert_int_eq(s.eval.attack.loss, CORE_ALOSS_DLR);
    /* FAB-T's: AutoAttack's standard 100 iterations, 9 targets. */
    expect_ok("{\"kind\":\"eval\",\"job\":4,\"attack\":\"fab-t\"}", &s);
    ck_assert_int_eq(s.eval.attack.kind, CORE_ATTACK_FAB_T);
    ck_assert_int_eq(s.eval.attack.steps, 100);
    ck_assert_int_eq(s.eval.attack.n_targets, 9);
}
END_TEST

/* ---------------------------------------------------------- round trips */

START_TEST(test_round_trips)
{
    char dir[256], text[8192];
    make_fixtures(dir, sizeof dir);
    const char *specs[] = {
        "{\"kind\":\"train\",\"name\":\"r\\u00e9sum\\u00e9\",\"epochs\":10,\"batch\":64,"
        "\"optimizer\":\"adam\",\"lr\":0.0003,\"schedule\":\"one-cycle\",\"method\":\"trades\","
        "\"trades_beta\":6,\"eps\":0.3,\"steps\":10,\"seed\":9007199254740993,"
        "\"priority\":-5,\"threads\":2,\"eps_ramp\":5,\"keep_checkpoints\":1}",
        "{\"kind\":\"train\",\"norm\":\"l2\",\"eps\":1.5,\"method\":\"fgsm-rs\",\"co_guard\":false,"
        "\"model\":\"conv8k3p1 relu maxpool2 fc10\",\"nesterov\":true,\"weight_decay\":0,"
        "\"mix\":0.5,\"val_size\":0,\"val_robust_size\":0,\"train_limit\":500}",
        "{\"kind\":\"eval\",\"job\":12,\"checkpoint\":\"best\",\"attack\":\"apgd-ce\","
        "\"eps\":[0.01,0.03137255,0.1],\"restarts\":2,\"loss\":\"dlr\",\"limit\":500,"
        "\"sanity\":false,\"seed\":3}",
        "{\"kind\":\"eval\",\"job\":1,\"checkpoint\":7,\"suite\":\"autoattack\",\"eps\":0.3}",
        "{\"kind\":\"eval\",\"job\":1,\"attack\":\"square\",\"queries\":100,\"name\":\"sq\"}",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        free(round_trip(specs[i]));
    const char *sets[] = {"mnist:%s/mnist", "fashion-mnist:%s/mnist", "cifar10:%s/cifar",
                          "png:%s/png"};
    for (int i = 0; i < 4; i++) {
        char ds[4200];
        snprintf(ds, sizeof ds, sets[i], dir);
        snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"%s\",\"model\":\"%s\"}",
                 ds, i == 2 ? "resnet-tiny" : "madry");
        char *c = round_trip(text);
        ck_assert_ptr_nonnull(strstr(c, ds));
        free(c);
    }
    /* The suite's canonical form has no single-attack flags. */
    char *c = round_trip("{\"kind\":\"eval\",\"job\":1,\"suite\":\"strong\"}");
    ck_assert_ptr_null(strstr(c, "\"steps\""));
    ck_assert_ptr_nonnull(strstr(c, "\"suite\":\"strong\""));
    free(c);
    c = round_trip("{\"kind\":\"train\",\"lr\":0.1,\"eps\":0.031372549}");
    ck_assert_ptr_nonnull(strstr(c, "\"lr\":0.1,"));
    ck_assert_ptr_nonnull(strstr(c, "\"eps\":0.031372547,"));
    free(c);
}
END_TEST

/* ------------------------------------------------- every field, wrong */

static const char *const wrong_values[] = {
    "\"abc\"", "1e300", "-1", "2.5", "true", "null", "[]", "{}", "\"NaN\"",
    "9223372036854775807", "-9223372036854775807", "0", "[1,\"x\"]", "{\"a\":[{}]}",
    "\"\\u00e9\\u0001\"", "1e-300",
};

/* Every key of the canonical spec, every wrong value: each refusal is
 * invalid_argument naming the key; null, {} and nested junk are refused
 * for every key. */
static void every_field(const char *base)
{
    adv_jobspec s;
    expect_ok(base, &s);
    json_t *canon = adv_jobspec_json(&s);
    const char *key;
    json_t *v;
    int refused = 0, tried = 0;
    json_object_foreach(canon, key, v) {
        for (size_t w = 0; w < sizeof wrong_values / sizeof wrong_values[0]; w++, tried++) {
            json_error_t jerr;
            json_t *spec = json_loads(base, 0, &jerr);
            json_t *bad = json_loads(wrong_values[w], JSON_DECODE_ANY, &jerr);
            ck_assert_ptr_nonnull(bad);
            json_object_set_new(spec, key, bad);
            adv_error e = {.code = (adv_errcode)-1};
            adv_jobspec out;
            int rc = adv_jobspec_parse(spec, &out, &e);
            int must = w == 5 || w == 7 || w == 13;
            ck_assert_msg(rc == -1 || !must, "'%s': %s accepted", key, wrong_values[w]);
            if (rc == -1) {
                char quoted[64], indexed[64];
                snprintf(quoted, sizeof quoted, "'%s'", key);
                snprintf(indexed, sizeof indexed, "'%s[", key); /* 'eps[1]' */
                ck_assert_msg(e.code == ADV_E_INVALID_ARGUMENT, "'%s': code %d", key, e.code);
                ck_assert_msg(strstr(e.msg, quoted) || strstr(e.msg, indexed),
                              "'%s' = %s: '%s' does not name it", key, wrong_values[w], e.msg);
                refused++;
            }
            json_decref(spec);
        }
    }
    json_decref(canon);
    ck_assert_int_gt(refused, tried / 2);
}

START_TEST(test_every_field_wrong_train)
{
    every_field("{\"kind\":\"train\"}");
}
END_TEST

START_TEST(test_every_field_wrong_eval)
{
    every_field("{\"kind\":\"eval\",\"job\":2}");
    every_field("{\"kind\":\"eval\",\"job\":2,\"suite\":\"pgd\"}");
}
END_TEST

START_TEST(test_messages)
{
    expect_bad("{\"kind\":\"train\",\"epochs\":\"abc\"}",
               "invalid 'epochs': expected an integer in [1, 100000], got 'abc'");
    expect_bad("{\"kind\":\"train\",\"epoch\":3}", "unknown key 'epoch' in a train spec "
                                                   "(did you mean 'epochs'?)");
    expect_bad("{\"kind\":\"train\",\"zzzz\":3}", "unknown key 'zzzz' in a train spec");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"epochs\":3}", "unknown key 'epochs' in an eval");
    expect_bad("{\"kind\":\"train\",\"lr\":0}", "invalid 'lr': expected a number in (0, 100], got 0");
    expect_bad("{\"kind\":\"train\",\"momentum\":1}", "in [0, 1), got 1");
    expect_bad("{\"kind\":\"train\",\"batch\":2.0}", "invalid 'batch': expected an integer");
    expect_bad("{\"kind\":\"train\",\"seed\":-1}", "invalid 'seed': expected an integer >= 0, got -1");
    expect_bad("{\"kind\":\"train\",\"nesterov\":1}", "invalid 'nesterov': expected true or false");
    expect_bad("{\"kind\":\"train\",\"optimizer\":\"rmsprop\"}",
               "invalid 'optimizer': unknown optimizer 'rmsprop'");
    expect_bad("{\"kind\":\"train\",\"method\":\"mart\"}", "invalid 'method': unknown method 'mart'");
    expect_bad("{\"kind\":\"train\",\"norm\":\"l1\"}", "invalid 'norm': unknown norm 'l1'");
    expect_bad("{\"kind\":\"train\",\"schedule\":3}", "invalid 'schedule': expected a string, got 3");
    expect_bad("{\"kind\":\"train\",\"name\":\"a\\nb\"}", "invalid 'name': control characters");
    expect_bad("{\"kind\":\"trian\"}", "invalid 'kind': expected train, eval or import, got 'trian'");
    expect_bad("{\"epochs\":3}", "missing 'kind'");
    expect_bad("[1]", "expected a JSON object");
    expect_bad("{\"kind\":\"train\",", "malformed JSON");
    expect_bad("{\"kind\":\"eval\"}", "missing 'job' in an eval spec");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"eps\":[]}", "invalid 'eps': expected 1 to 16 values");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"eps\":[0.1,\"x\"]}", "invalid 'eps[1]'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"checkpoint\":\"first\"}", "invalid 'checkpoint'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"attack\":\"cw\"}", "invalid 'attack': unknown attack 'cw'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"loss\":\"mse\"}", "invalid 'loss': unknown loss 'mse'");
}
END_TEST

/* A model trained elsewhere: its data set and model spec, nothing to train. */
START_TEST(test_import_specs)
{
    adv_jobspec s;
    expect_ok("{\"kind\":\"import\",\"model\":\"norm(0.5;0.25) conv4k3p1 relu fc10\","
              "\"name\":\"mine\"}", &s);
    ck_assert_int_eq(s.kind, ADV_JOB_IMPORT);
    ck_assert_str_eq(s.train.dataset, "fashion-mnist");
    ck_assert_int_eq(s.train.nclass, 10);
    char *c = round_trip("{\"kind\":\"import\",\"model\":\"cnn-small\"}");
    ck_assert_str_eq(c, "{\"kind\":\"import\",\"name\":\"\",\"priority\":0,\"threads\":0,\"procs\":1,"
                        "\"dataset\":\"fashion-mnist\",\"model\":\"cnn-small\"}");
    free(c);
    expect_bad("{\"kind\":\"import\"}", "missing 'model' in an import spec");
    expect_bad("{\"kind\":\"import\",\"model\":\"cnn-small\",\"epochs\":2}",
               "unknown key 'epochs' in an import spec");
    expect_bad("{\"kind\":\"import\",\"model\":\"norm(1;0) fc10\"}",
               "invalid 'model': 'norm(1;0)': std must be positive");
}
END_TEST

START_TEST(test_cross_field_checks)
{
    expect_bad("{\"kind\":\"train\",\"eps\":2}", "invalid 'eps': expected a number in [0, 1] for "
                                                 "norm 'linf', got 2");
    expect_bad("{\"kind\":\"train\",\"epochs\":2,\"eps_ramp\":3}", "invalid 'eps_ramp'");
    expect_bad("{\"kind\":\"train\",\"val_size\":10,\"val_robust_size\":20}",
               "invalid 'val_robust_size'");
    expect_bad("{\"kind\":\"train\",\"train_limit\":100,\"val_size\":100,"
               "\"val_robust_size\":0}", "invalid 'val_size'");
    expect_bad("{\"kind\":\"train\",\"nesterov\":true,\"momentum\":0}", "nesterov");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"suite\":\"pgd\",\"steps\":3}",
               "'steps' cannot be used with 'suite'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"suite\":\"pgd\",\"attack\":\"pgd\"}",
               "cannot be used");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"suite\":\"weak\"}", "invalid 'suite': unknown suite 'weak'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"attack\":\"square\",\"norm\":\"l2\"}",
               "invalid 'norm': 'square' supports only 'linf'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"attack\":\"fab-t\",\"norm\":\"l2\"}",
               "invalid 'norm': 'fab-t' supports only 'linf'");
    expect_bad("{\"kind\":\"eval\",\"job\":1,\"eps\":[0.1,1.5]}", "invalid 'eps'");
    adv_jobspec s;
    expect_ok("{\"kind\":\"eval\",\"job\":1,\"eps\":[0.1,1.5],\"norm\":\"l2\"}", &s);
    ck_assert_int_eq(s.eval.neps, 2);
}
END_TEST

/* --------------------------------------------------- data sets, models */

START_TEST(test_dataset_errors)
{
    char dir[256], text[8192];
    make_fixtures(dir, sizeof dir);
    expect_bad("{\"kind\":\"train\",\"dataset\":\"imagenet\"}",
               "invalid 'dataset': unknown data set 'imagenet'");
    expect_bad("{\"kind\":\"train\",\"dataset\":\"mnist:\"}", "invalid 'dataset': no directory");
    expect_bad("{\"kind\":\"train\",\"dataset\":\"mnist:data/mnist\"}",
               "invalid 'dataset': directory 'data/mnist' is not an absolute path");
    snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"mnist:%s/none\"}", dir);
    expect_bad(text, "No such file or directory");
    /* A directory without the files: the first missing one is named. */
    snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"cifar10:%s/mnist\"}", dir);
    expect_bad(text, "data_batch_1.bin': No such file");
    snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"mnist:%s/cifar\"}", dir);
    expect_bad(text, "train-images-idx3-ubyte.gz': No such file");
    snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"png:%s/mnist/t10k-images-idx3-ubyte\"}", dir);
    expect_bad(text, "is not a directory");
    /* A directory where a file should be. */
    snprintf(text, sizeof text, "%s/cifar/test_batch.bin", dir);
    ck_assert_int_eq(remove(text), 0);
    ck_assert_int_eq(mkdir(text, 0700), 0);
    snprintf(text, sizeof text, "{\"kind\":\"train\",\"dataset\":\"cifar10:%s/cifar\"}", dir);
    expect_bad(text, "test_batch.bin' is not a file");
}
END_TEST

START_TEST(test_model_errors)
{
    expect_bad("{\"kind\":\"train\",\"model\":\"conv0k3 fc10\"}", "invalid 'model': ");
    expect_bad("{\"kind\":\"train\",\"model\":\"bogus fc10\"}", "unknown layer 'bogus'");
    expect_bad("{\"kind\":\"train\",\"model\":\"conv8 relu fc5\"}", "must end with 'fc10'");
    expect_bad("{\"kind\":\"train\",\"model\":\"maxpool64 fc10\"}", "invalid 'model'");
    expect_bad("{\"kind\":\"train\",\"model\":\"\"}", "invalid 'model': expected a string of 1");
    adv_jobspec s;
    expect_ok("{\"kind\":\"train\",\"model\":\"resnet-tiny\"}", &s);
}
END_TEST

/* ------------------------------------------------------ generated junk */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* A random JSON value: scalars of every type, and nesting. */
static json_t *junk(int depth)
{
    switch (rnd() % (depth > 3 ? 6 : 8)) {
    case 0:
        return json_integer((json_int_t)rnd());
    case 1:
        return json_real(ldexp((double)(rnd() % 1000), (int)(rnd() % 200) - 100));
    case 2:
        return json_string(wrong_values[rnd() % 16]);
    case 3:
        return json_boolean(rnd() % 2);
    case 4:
        return json_null();
    case 5:
        return json_integer((json_int_t)(rnd() % 5) - 1);
    case 6: {
        json_t *a = json_array();
        for (int i = (int)(rnd() % 4); i > 0; i--)
            json_array_append_new(a, junk(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(rnd() % 4); i > 0; i--)
            json_object_set_new(o, i % 2 ? "kind" : "x", junk(depth + 1));
        return o;
    }
    }
}

START_TEST(test_fuzz_specs)
{
    static const char *const keys[] = {
        "kind", "name", "dataset", "model", "epochs", "batch", "optimizer", "lr", "momentum",
        "weight_decay", "nesterov", "schedule", "method", "eps", "alpha", "steps", "norm",
        "mix", "trades_beta", "eps_ramp", "train_limit", "val_size", "val_robust_size",
        "seed", "priority", "checkpoint_every", "keep_checkpoints", "threads", "job",
        "checkpoint", "attack", "suite", "restarts", "loss", "queries", "targets", "limit",
        "sanity", "bogus", "epoch",
    };
    const int nkeys = (int)(sizeof keys / sizeof keys[0]);
    int ok = 0, refused = 0;
    for (int t = 0; t < 3000; t++) {
        json_error_t jerr;
        json_t *spec = json_loads(t % 2 ? "{\"kind\":\"train\",\"model\":\"conv4 fc10\"}"
                                        : "{\"kind\":\"eval\",\"job\":3}", 0, &jerr);
        for (int m = 1 + (int)(rnd() % 3); m > 0; m--)
            json_object_set_new(spec, keys[rnd() % (uint64_t)nkeys], junk(0));
        adv_jobspec s;
        adv_error e = {.code = (adv_errcode)-1};
        if (adv_jobspec_parse(spec, &s, &e) == 0) {
            /* Whatever got through must survive its own canonical form. */
            char *c = adv_jobspec_canonical(&s);
            adv_jobspec s2;
            ck_assert_msg(adv_jobspec_parse_text(c, strlen(c), &s2, &e) == 0, "%s: %s", c, e.msg);
            free(c);
            ok++;
        } else {
            ck_assert_int_eq(e.code, ADV_E_INVALID_ARGUMENT);
            ck_assert_msg(strchr(e.msg, '\'') != NULL, "no field named in '%s'", e.msg);
            json_t *str = json_string(e.msg);
            ck_assert_ptr_nonnull(str); /* valid UTF-8 */
            json_decref(str);
            refused++;
        }
        json_decref(spec);
    }
    /* Raw bytes and truncations as spec text. */
    const char *good = "{\"kind\":\"eval\",\"job\":3,\"eps\":[0.1,0.2],\"attack\":\"fgsm\"}";
    for (size_t cut = 0; cut < strlen(good); cut++) {
        adv_jobspec s;
        adv_error e;
        ck_assert_int_eq(adv_jobspec_parse_text(good, cut, &s, &e), -1);
        ck_assert_int_eq(e.code, ADV_E_INVALID_ARGUMENT);
    }
    for (int t = 0; t < 1000; t++) {
        char buf[64];
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rnd();
        adv_jobspec s;
        adv_error e;
        ck_assert_int_eq(adv_jobspec_parse_text(buf, n, &s, &e), -1);
    }
    ck_assert_int_gt(refused, 1000);
    ck_assert_int_gt(ok, 10);
}
END_TEST

/* init, train_layers and the augmentation keys: parsed, canonical, and
 * refused with the key named. */
START_TEST(test_transfer_keys)
{
    adv_jobspec s;
    expect_ok("{\"kind\":\"train\",\"init\":{\"job\":4,\"checkpoint\":\"best\"},"
              "\"train_layers\":\"last:2\",\"augment_corruptions\":\"contrast,rotate\","
              "\"augmix\":true}", &s);
    ck_assert_int_eq(s.train.init.job, 4);
    ck_assert_int_eq(s.train.init.ckpt.which, ADV_CKPT_BEST);
    ck_assert_int_eq(s.train.cfg.train_last, 2);
    ck_assert_uint_eq(s.train.cfg.augment.corruptions,
                      1u << CORE_CORRUPT_CONTRAST | 1u << CORE_CORRUPT_ROTATE);
    char *c = adv_jobspec_canonical(&s);
    ck_assert_ptr_nonnull(strstr(c, "\"init\":{\"job\":4,\"checkpoint\":\"best\"}"));
    ck_assert_ptr_nonnull(strstr(c, "\"train_layers\":\"last:2\""));
    ck_assert_ptr_nonnull(strstr(c, "\"augment_corruptions\":\"contrast,rotate\""));
    free(c);
    expect_ok("{\"kind\":\"train\",\"init\":{\"job\":4},\"train_layers\":\"last\"}", &s);
    ck_assert_int_eq(s.train.init.ckpt.which, ADV_CKPT_LATEST);
    ck_assert_int_eq(s.train.cfg.train_last, 1);
    expect_bad("{\"kind\":\"train\",\"init\":{\"job\":0}}", "invalid 'init'");
    expect_bad("{\"kind\":\"train\",\"init\":{\"job\":3,\"x\":1}}", "invalid 'init'");
    expect_bad("{\"kind\":\"train\",\"init\":{\"job\":3,\"checkpoint\":\"first\"}}",
               "invalid 'init.checkpoint'");
    expect_bad("{\"kind\":\"train\",\"train_layers\":\"last:0\"}", "invalid 'train_layers'");
    expect_bad("{\"kind\":\"train\",\"train_layers\":\"first\"}", "invalid 'train_layers'");
    expect_bad("{\"kind\":\"train\",\"augment_corruptions\":\"fog\"}",
               "invalid 'augment_corruptions': unknown corruption 'fog'");
    expect_bad("{\"kind\":\"train\",\"augment_severity\":6}", "invalid 'augment_severity'");
}
END_TEST

/* The keys a client makes flags of: every canonical key but the kind,
 * with its type, and booleans with their defaults. */
START_TEST(test_keys_for_flags)
{
    adv_key_type type;
    int on, n = 0, co_guard = -1, augmix = -1;
    const char *k;
    for (int i = 0; (k = adv_jobspec_key(ADV_JOB_TRAIN, i, &type, &on)); i++, n++) {
        if (!strcmp(k, "co_guard"))
            co_guard = type == ADV_KEY_BOOL && on;
        if (!strcmp(k, "augmix"))
            augmix = type == ADV_KEY_BOOL && !on;
        if (!strcmp(k, "init"))
            ck_assert_int_eq(type, ADV_KEY_INIT);
        if (!strcmp(k, "weight_decay"))
            ck_assert_int_eq(type, ADV_KEY_NUMBER);
    }
    ck_assert_int_eq(co_guard, 1);
    ck_assert_int_eq(augmix, 1);
    /* As many as the canonical spec has, less "kind". */
    adv_jobspec s;
    adv_error e;
    ck_assert(adv_jobspec_parse_text("{\"kind\":\"train\"}", 16, &s, &e) == 0);
    json_t *canon = adv_jobspec_json(&s);
    ck_assert_int_eq(n, (int)json_object_size(canon) - 1 + 1); /* + init, absent by default */
    json_decref(canon);
    int others = 0;
    for (int i = 0; (k = adv_jobspec_key(ADV_JOB_EVAL, i, &type, &on)); i++)
        others += type == ADV_KEY_OTHER;
    ck_assert_int_eq(others, 3); /* job, checkpoint, eps: advctl eval's own */
}
END_TEST

/* Decoding does no I/O: a spec whose data set is gone decodes (the
 * daemon reads stored specs so), and the environment check names it. */
START_TEST(test_decode_without_files)
{
    const char *text = "{\"kind\":\"train\",\"dataset\":\"mnist:/nonexistent/data\"}";
    adv_jobspec s;
    adv_error e;
    ck_assert_int_eq(adv_jobspec_decode_text(text, strlen(text), &s, &e), 0);
    ck_assert_str_eq(s.train.data_dir, "/nonexistent/data");
    ck_assert_int_eq(s.train.shape.c * s.train.shape.h * s.train.shape.w, 784);
    ck_assert_int_eq(adv_jobspec_check_env(&s, &e), -1);
    ck_assert_msg(strstr(e.msg, "invalid 'dataset': cannot read '/nonexistent/data'"), "%s", e.msg);
    ck_assert_int_eq(adv_jobspec_parse_text(text, strlen(text), &s, &e), -1);
}
END_TEST

static Suite *suite_jobspec(void)
{
    Suite *s = suite_create("jobspec");
    TCase *tc = tcase_create("jobspec");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_defaults);
    tcase_add_test(tc, test_optimizer_defaults_follow_kind);
    tcase_add_test(tc, test_eval_defaults);
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_every_field_wrong_train);
    tcase_add_test(tc, test_every_field_wrong_eval);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_import_specs);
    tcase_add_test(tc, test_keys_for_flags);
    tcase_add_test(tc, test_decode_without_files);
    tcase_add_test(tc, test_cross_field_checks);
    tcase_add_test(tc, test_dataset_errors);
    tcase_add_test(tc, test_model_errors);
    tcase_add_test(tc, test_fuzz_specs);
    tcase_add_test(tc, test_transfer_keys);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_jobspec)
