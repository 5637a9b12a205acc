/*
 * test_worker_proto.c - the worker protocol (proto/worker.h): every
 * message survives encode -> decode with each field intact, and lines
 * that are not a well-formed message are rejected with an error naming
 * the message and the field.
 */
#include "proto/worker.h"
#include "testutil.h"

#include <math.h>

/* Encode m, decode the line (without its newline) into out. */
static void round_trip(const adv_wmsg *m, adv_wmsg *out)
{
    size_t len = 0;
    char *line = adv_wmsg_encode(m, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_gt(len, 1);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* one line */
    adv_error e;
    ck_assert_msg(adv_wmsg_decode(line, len - 1, out, &e) == 0, "%s: %s", line, e.msg);
    ck_assert_int_eq(out->type, m->type);
    free(line);
}

static void ckpt_eq(const adv_wckpt *a, const adv_wckpt *b)
{
    ck_assert_str_eq(a->file, b->file);
    ck_assert_uint_eq(a->size, b->size);
    ck_assert_uint_eq(a->crc32, b->crc32);
    ck_assert_int_eq(a->step, b->step);
}

static adv_wckpt ckpt(int64_t step)
{
    adv_wckpt c = {.size = 1000 + (uint64_t)step, .crc32 = 0xdeadbeefu - (uint32_t)step,
                   .step = step};
    snprintf(c.file, sizeof c.file, "j7-s%lld-a1p42.state", (long long)step);
    return c;
}

START_TEST(test_every_type_named)
{
    for (int t = 0; t < ADV_W_COUNT; t++)
        ck_assert_str_ne(adv_wtype_name((adv_wtype)t), "?");
    ck_assert_str_eq(adv_wtype_name(ADV_W_COUNT), "?");
}
END_TEST

START_TEST(test_job)
{
    adv_wmsg m = {.type = ADV_W_JOB,
                  .u.job = {.job = 7, .attempt = 2, .threads = 4, .final_eval_limit = 500,
                            .ckpt_dir = (char *)"/var/lib/advd/advd.db.ckpt",
                            .spec = json_pack("{s:s, s:f}", "kind", "train", "eps", 0.1),
                            .parent_spec = json_pack("{s:s}", "kind", "train"),
                            .nresume = 3, .has_init = 1, .init = ckpt(5)}};
    for (int i = 0; i < 3; i++)
        m.u.job.resume[i] = ckpt(300 - 100 * i);
    adv_wmsg out;
    round_trip(&m, &out);
    const adv_wjob *a = &m.u.job, *b = &out.u.job;
    ck_assert_int_eq(b->job, 7);
    ck_assert_int_eq(b->attempt, 2);
    ck_assert_int_eq(b->threads, 4);
    ck_assert_int_eq(b->final_eval_limit, 500);
    ck_assert_str_eq(b->ckpt_dir, a->ckpt_dir);
    ck_assert(json_equal(b->spec, a->spec));
    ck_assert(json_equal(b->parent_spec, a->parent_spec));
    ck_assert_int_eq(b->nresume, 3);
    for (int i = 0; i < 3; i++)
        ckpt_eq(&b->resume[i], &a->resume[i]);
    ck_assert(b->has_init && !b->has_checkpoint);
    ckpt_eq(&b->init, &a->init);
    adv_wmsg_clear(&out);
    json_decref(a->spec);
    json_decref(a->parent_spec);
}
END_TEST

START_TEST(test_progress_and_metrics)
{
    adv_wmsg m = {.type = ADV_W_PROGRESS,
                  .u.progress = {.progress = 0.25, .epoch = 1, .step = 40, .images_per_s = 812.5,
                                 .loss = NAN}};
    adv_wmsg out;
    round_trip(&m, &out);
    ck_assert_double_eq(out.u.progress.progress, 0.25);
    ck_assert_int_eq(out.u.progress.epoch, 1);
    ck_assert_int_eq(out.u.progress.step, 40);
    ck_assert_double_eq(out.u.progress.images_per_s, 812.5);
    ck_assert(isnan(out.u.progress.loss)); /* NaN travels as null */
    adv_wmsg_clear(&out);

    json_t *v = json_pack("{s:f, s:n}", "train_loss", 0.5, "val_robust_acc");
    m = (adv_wmsg){.type = ADV_W_METRICS, .u.metrics = {.epoch = 2, .step = 80, .values = v}};
    round_trip(&m, &out);
    ck_assert_int_eq(out.u.metrics.epoch, 2);
    ck_assert_int_eq(out.u.metrics.step, 80);
    ck_assert(json_equal(out.u.metrics.values, v));
    adv_wmsg_clear(&out);
    json_decref(v);
}
END_TEST

START_TEST(test_checkpoint_and_eval)
{
    adv_wmsg m = {.type = ADV_W_CHECKPOINT,
                  .u.checkpoint = {.epoch = 3, .step = 120, .val_robust_acc = 0.625,
                                   .ckpt = ckpt(120)}};
    adv_wmsg out;
    round_trip(&m, &out);
    ck_assert_int_eq(out.u.checkpoint.epoch, 3);
    ck_assert_double_eq(out.u.checkpoint.val_robust_acc, 0.625);
    ckpt_eq(&out.u.checkpoint.ckpt, &m.u.checkpoint.ckpt);
    adv_wmsg_clear(&out);

    uint8_t surv[5] = {1, 0, 1, 1, 0};
    json_t *spec = json_pack("{s:s}", "attack", "pgd"), *warn = json_pack("[s]", "look out");
    m = (adv_wmsg){.type = ADV_W_EVAL,
                   .u.eval = {.spec = spec, .warnings = warn, .eps = 0.1, .n = 5,
                              .clean_acc = 0.8, .robust_acc = 0.6, .survival = surv}};
    round_trip(&m, &out);
    const adv_weval *b = &out.u.eval;
    ck_assert(json_equal(b->spec, spec) && json_equal(b->warnings, warn));
    ck_assert_double_eq(b->eps, 0.1);
    ck_assert_int_eq(b->n, 5);
    ck_assert_double_eq(b->clean_acc, 0.8);
    ck_assert_double_eq(b->robust_acc, 0.6);
    ck_assert_ptr_nonnull(b->survival);
    ck_assert_mem_eq(b->survival, surv, 5);
    adv_wmsg_clear(&out);
    json_decref(spec);
    json_decref(warn);
}
END_TEST

START_TEST(test_report_image_text_done)
{
    json_t *data = json_pack("{s:f}", "ece", 0.05);
    adv_wmsg m = {.type = ADV_W_REPORT, .u.report = {.kind = "calibration", .data = data}};
    adv_wmsg out;
    round_trip(&m, &out);
    ck_assert_str_eq(out.u.report.kind, "calibration");
    ck_assert(json_equal(out.u.report.data, data));
    adv_wmsg_clear(&out);
    json_decref(data);

    uint8_t png[6] = {0x89, 'P', 'N', 'G', 0, 255};
    m = (adv_wmsg){.type = ADV_W_IMAGE, .u.image = {.name = "saliency.png", .data = png, .len = 6}};
    round_trip(&m, &out);
    ck_assert_str_eq(out.u.image.name, "saliency.png");
    ck_assert_uint_eq(out.u.image.len, 6);
    ck_assert_mem_eq(out.u.image.data, png, 6);
    adv_wmsg_clear(&out);

    const adv_wtype texts[] = {ADV_W_WARNING, ADV_W_ERROR};
    for (int i = 0; i < 2; i++) {
        m = (adv_wmsg){.type = texts[i], .u.text.message = (char *)"cannot write 'x': disk full"};
        round_trip(&m, &out);
        ck_assert_str_eq(out.u.text.message, "cannot write 'x': disk full");
        adv_wmsg_clear(&out);
    }
    for (int ok = 0; ok < 2; ok++) {
        m = (adv_wmsg){.type = ADV_W_DONE, .u.done.succeeded = ok};
        round_trip(&m, &out);
        ck_assert_int_eq(out.u.done.succeeded, ok);
    }
    m = (adv_wmsg){.type = ADV_W_STOP};
    round_trip(&m, &out);
}
END_TEST

/* A line that must be refused, with err containing want. */
static void rejected(const char *line, const char *want)
{
    adv_wmsg out;
    adv_error e = {0};
    ck_assert_msg(adv_wmsg_decode(line, strlen(line), &out, &e) != 0, "accepted: %s", line);
    ck_assert_msg(strstr(e.msg, want), "%s: got '%s', want '%s'", line, e.msg, want);
}

START_TEST(test_malformed_rejected)
{
    rejected("", "not a JSON object");
    rejected("[1]", "not a JSON object");
    rejected("{\"step\": 1}", "has no 'type'");
    rejected("{\"type\": \"dance\"}", "unknown worker message 'dance'");
    rejected("{\"type\": \"progress\", \"progress\": \"half\", \"epoch\": 0, \"step\": 0,"
             " \"images_per_s\": null, \"loss\": null}", "'progress': 'progress' must be a number");
    rejected("{\"type\": \"progress\", \"progress\": 0.5, \"epoch\": -1, \"step\": 0,"
             " \"images_per_s\": null, \"loss\": null}", "'epoch' must be an integer");
    rejected("{\"type\": \"metrics\", \"epoch\": 1, \"step\": 2, \"values\": [1]}",
             "'values' must be");
    rejected("{\"type\": \"checkpoint\", \"epoch\": 1, \"step\": 2, \"val_robust_acc\": null,"
             " \"ckpt\": {\"file\": \"../../etc/passwd\", \"size\": 9, \"crc32\": 1, \"step\": 2}}",
             "not a path");
    rejected("{\"type\": \"checkpoint\", \"epoch\": 1, \"step\": 2, \"val_robust_acc\": null,"
             " \"ckpt\": {\"file\": \"a.state\", \"size\": 9, \"crc32\": 4294967296, \"step\": 2}}",
             "'crc32' must be an integer");
    rejected("{\"type\": \"eval\", \"spec\": {}, \"eps\": 0.1, \"n\": 4, \"clean_acc\": 1,"
             " \"robust_acc\": 1, \"warnings\": [], \"survival\": \"AAAA\"}", "'survival'");
    rejected("{\"type\": \"image\", \"name\": \"a.png\", \"data\": \"***\"}", "'data'");
    rejected("{\"type\": \"report\", \"kind\": \"horoscope\", \"data\": {}}",
             "'kind' must be a report kind");
    rejected("{\"type\": \"done\", \"status\": \"maybe\"}", "'status'");
    rejected("{\"type\": \"job\", \"v\": 99, \"job\": 1}", "worker protocol 99, expected 1");
    rejected("{\"type\": \"job\", \"v\": 1, \"job\": 1, \"attempt\": 1, \"threads\": 1,"
             " \"final_eval_limit\": 0, \"ckpt_dir\": \"/d\", \"spec\": {}, \"resume\": "
             "[{},{},{},{},{},{},{},{},{}]}", "at most 8");
    rejected("{\"type\": \"warning\", \"type\": \"error\", \"message\": \"x\"}",
             "not a JSON object"); /* duplicate keys */
}
END_TEST

START_TEST(test_file_names)
{
    ck_assert(adv_ckpt_file_valid("j1-s20-a1p99.state"));
    ck_assert(!adv_ckpt_file_valid(""));
    ck_assert(!adv_ckpt_file_valid(".hidden"));
    ck_assert(!adv_ckpt_file_valid("a/b"));
    ck_assert(!adv_ckpt_file_valid(".."));
    char longname[ADV_CKPT_FILE_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[ADV_CKPT_FILE_MAX] = '\0';
    ck_assert(!adv_ckpt_file_valid(longname));
}
END_TEST

static Suite *suite_worker_proto(void)
{
    Suite *s = suite_create("worker_proto");
    TCase *tc = tcase_create("worker_proto");
    tcase_add_test(tc, test_every_type_named);
    tcase_add_test(tc, test_job);
    tcase_add_test(tc, test_progress_and_metrics);
    tcase_add_test(tc, test_checkpoint_and_eval);
    tcase_add_test(tc, test_report_image_text_done);
    tcase_add_test(tc, test_malformed_rejected);
    tcase_add_test(tc, test_file_names);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_worker_proto)
