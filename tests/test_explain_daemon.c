/*
 * test_explain_daemon.c - the second half of the explanations end to end:
 * a real bin/advd (ADV_BIN) and bin/advctl (ADVCTL_BIN) on a tiny model:
 * the explanations report's per-method figures, surrogates and
 * randomisation test, `advctl results` showing them, and `advctl images`
 * drawing --guided, --lime and --units pictures.
 */
#include "daemon_harness.h"

#include <jansson.h>

#define TINY "conv4k3p1 relu maxpool2 fc10"

/* advctl --socket D.sock ARGS...: its exit status; its stdout in out. */
static int advctl(char *out, size_t len, const char *args)
{
    const char *bin = getenv("ADVCTL_BIN");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --socket %s %s 2>&1", bin && *bin ? bin : "bin/advctl", D.sock,
             args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int exists(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

static char out[1 << 17];

START_TEST(explanations_end_to_end)
{
    start_daemon_with(NULL);
    ck_assert_msg(advctl(out, sizeof out, "submit --model '" TINY "' --epochs 1 --train-limit 256 "
                                          "--val-size 64 --val-robust-size 32 --steps 2 --seed 3 "
                                          "--wait") == 0, "%s", out);
    ck_assert_msg(advctl(out, sizeof out, "eval 1 --attack fgsm --limit 16 --no-sanity "
                                          "--no-calibration --explain --explain-limit 4 --wait") ==
                      0, "%s", out);
    ck_assert(advctl(out, sizeof out, "results 1 --json") == 0);
    json_error_t je;
    json_t *r = json_loads(out, 0, &je), *rep, *ex = NULL;
    ck_assert_msg(r != NULL, "%s", out);
    size_t i;
    json_array_foreach(json_object_get(r, "reports"), i, rep)
        if (!strcmp(json_string_value(json_object_get(rep, "kind")), "explanations"))
            ex = json_object_get(rep, "data");
    ck_assert_ptr_nonnull(ex);
    json_t *methods = json_object_get(ex, "methods"), *m;
    const char *name;
    ck_assert_int_eq(json_object_size(methods), 6);
    json_object_foreach(methods, name, m) {
        json_t *rnd = json_object_get(m, "randomisation");
        ck_assert_int_eq(json_integer_value(json_object_get(m, "n")), 4);
        ck_assert_int_eq(json_array_size(json_object_get(rnd, "layers")), 2);   /* fc1, conv1 */
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rnd, "layers"), 0)),
                         "fc1");
        double topk = json_number_value(json_object_get(
            json_object_get(json_object_get(m, "fragility"), "random"), "topk"));
        ck_assert_msg(topk >= 0.0 && topk <= 1.0, "%s: %g", name, topk);
        ck_assert(json_is_boolean(json_object_get(rnd, "flagged")));
    }
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(methods, "gaussian"),
                                                        "forward")), 600);
    json_t *lime = json_object_get(json_object_get(ex, "surrogates"), "lime");
    ck_assert_int_eq(json_integer_value(json_object_get(lime, "features")), 49);
    ck_assert(json_number_value(json_object_get(lime, "r2_mean")) <= 1.0);
    ck_assert_int_eq(json_array_size(json_object_get(lime, "examples")), 4);
    ck_assert(json_is_array(json_object_get(ex, "warnings")));
    json_decref(r);
    ck_assert(advctl(out, sizeof out, "results 1") == 0);
    ck_assert_msg(strstr(out, "METHOD") && strstr(out, "lime surrogate of the probability") &&
                  strstr(out, "guided"), "%s", out);
    ck_assert(advctl(out, sizeof out, "compare 1") == 0);
    ck_assert_msg(strstr(out, "SURR_R2") && strstr(out, "FLAGGED"), "%s", out);

    /* Pictures. */
    char dir[400], args[600];
    snprintf(dir, sizeof dir, "%s/lime", D.dir);
    snprintf(args, sizeof args, "images 1 --lime -n 2 --lime-samples 40 -o %s", dir);
    ck_assert_msg(advctl(out, sizeof out, args) == 0, "%s", out);
    ck_assert(exists(dir, "lime.png") && exists(dir, "legend.png"));
    snprintf(dir, sizeof dir, "%s/guided", D.dir);
    snprintf(args, sizeof args, "images 1 --guided -n 2 -o %s", dir);
    ck_assert_msg(advctl(out, sizeof out, args) == 0, "%s", out);
    ck_assert(exists(dir, "guided.png"));
    snprintf(dir, sizeof dir, "%s/units", D.dir);
    snprintf(args, sizeof args, "images 1 --units conv1 -n 2 --units-steps 4 --limit 32 -o %s",
             dir);
    ck_assert_msg(advctl(out, sizeof out, args) == 0, "%s", out);
    ck_assert(exists(dir, "filters.png") && exists(dir, "top.png") &&
              exists(dir, "maximise_conv1_0.png") && exists(dir, "maximise_conv1_1.png") &&
              !exists(dir, "maximise_conv1_2.png"));
    /* A layer the model does not have: the job fails, saying which. */
    snprintf(args, sizeof args, "images 1 --units conv7 -o %s/bad", D.dir);
    ck_assert(advctl(out, sizeof out, args) != 0);
    ck_assert_msg(strstr(out, "unknown layer 'conv7'"), "%s", out);
    ck_assert(advctl(out, sizeof out, "images 1 --units") == 2);
}
END_TEST

static Suite *suite_explain_daemon(void)
{
    Suite *s = suite_create("explain_daemon");
    TCase *tc = tcase_create("explain_daemon");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, explanations_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_explain_daemon)
