/*
 * test_monitor.c - advctl predict and drift monitors end to end, against a
 * real advd (daemon_harness.h) driven by this build's advctl: scoring PNG
 * files, a PNG folder and an IDX file; the errors a user gets; a monitor
 * whose clean windows stay quiet and whose corrupted window alarms, shown
 * by monitor and status; windows and the partial window surviving a
 * restart; scoring not waiting behind a queued training job; the
 * temperature of an evaluation with calibration; and the loader of loose
 * inputs (core_inputs_file_load: PNG, IDX, CIFAR-10, anything else).
 */
#define _GNU_SOURCE
#include "daemon_harness.h"

#include <png.h>
#include <sys/stat.h>

#include "core/corrupt.h"
#include "core/data.h"

#define MODEL "conv8k3p1 relu maxpool2 fc16 relu fc10"

/* ------------------------------------------------------------ advctl */

static struct {
    int rc;
    char out[1 << 20], err[1 << 14];
} R;

static void slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* In a child: exec advctl --socket D.sock ARGS... (NULL-terminated). */
static void exec_ctl(const char **args)
{
    const char *argv[32] = {getenv("ADVCTL_BIN") ? getenv("ADVCTL_BIN") : "bin/advctl",
                            "--socket", D.sock};
    int n = 3;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    execv(argv[0], (char **)argv);
    _exit(127);
}

/* advctl --socket D.sock ARGS... (NULL-terminated) into R. */
static int ctl_argv(const char **args)
{
    char out[400], err[400];
    snprintf(out, sizeof out, "%s/ctl.out", D.dir);
    snprintf(err, sizeof err, "%s/ctl.err", D.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
        dup2(open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
        exec_ctl(args);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    R.rc = WEXITSTATUS(status);
    slurp(out, R.out, sizeof R.out);
    slurp(err, R.err, sizeof R.err);
    return R.rc;
}

#define EXPECT(rc_, ...)                                                                      \
    do {                                                                                      \
        int got_ = ctl_argv((const char *[]){__VA_ARGS__, NULL});                             \
        ck_assert_msg(got_ == (rc_), "advctl exited %d, not %d\nstdout: %.2000s\nstderr: %s",  \
                      got_, (rc_), R.out, R.err);                                             \
    } while (0)
#define HAS(text, needle) ck_assert_msg(strstr((text), (needle)), "no '%s' in: %.3000s", (needle), (text))

/* advctl ARGS... in the background, its stdout into path; its pid. */
static pid_t ctl_background(const char *path, const char **args)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), 1);
        exec_ctl(args);
    }
    return pid;
}

/* Waits up to 20 s for the file at path to hold needle. */
static void wait_for_text(const char *path, const char *needle)
{
    static char buf[1 << 16];
    double t0 = now_s();
    for (;;) {
        slurp(path, buf, sizeof buf);
        if (strstr(buf, needle))
            return;
        ck_assert_msg(now_s() - t0 < 20, "no '%s' in %s within 20 s: %s", needle, path, buf);
        usleep(50000);
    }
}

static long long out_id(void)
{
    long long id = strtoll(R.out, NULL, 10);
    ck_assert_msg(id >= 1, "no job id in: %s", R.out);
    return id;
}

/* ------------------------------------------------------------ inputs */

static core_dataset test_set;

static void load_test_set(void)
{
    char err[CORE_ERRLEN], dir[4096];
    core_data_format fmt;
    ck_assert(core_data_resolve("fashion-mnist", &fmt, dir, err) == 0);
    ck_assert_msg(core_dataset_load(fmt, dir, CORE_SPLIT_TEST, 1000, &test_set, err) == 0, "%s",
                  err);
}

/* Test images [off, off + n) as an IDX images file, corrupted by kind at
 * severity (0: clean). */
static void write_idx(const char *path, int off, int n, core_corruption kind, int severity)
{
    char err[CORE_ERRLEN];
    const size_t dim = 784;
    float *x = malloc(sizeof(float) * dim * n), *xc = malloc(sizeof(float) * dim * n);
    int *y = malloc(sizeof(int) * n), *idx = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++)
        idx[i] = off + i;
    core_dataset_gather(&test_set, idx, n, x, y);
    ck_assert(core_corrupt(kind, severity, x, xc, n, test_set.shape, 1, 5, err) == 0);
    FILE *f = fopen(path, "wb");
    const uint8_t head[16] = {0, 0, 8, 3, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                              (uint8_t)(n >> 8), (uint8_t)n, 0, 0, 0, 28, 0, 0, 0, 28};
    fwrite(head, 1, sizeof head, f);
    for (size_t i = 0; i < dim * n; i++)
        fputc((int)lrintf(xc[i] * 255.0f), f);
    fclose(f);
    free(x);
    free(xc);
    free(y);
    free(idx);
}

static void write_png(const char *path, const uint8_t *gray, int w, int h)
{
    png_image img = {.version = PNG_IMAGE_VERSION, .width = (png_uint_32)w,
                     .height = (png_uint_32)h, .format = PNG_FORMAT_GRAY};
    ck_assert(png_image_write_to_file(&img, path, 0, gray, 0, NULL));
}

static char *path_in(const char *name)
{
    static char buf[4][600];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 600, "%s/%s", D.dir, name);
    return p;
}

/* ------------------------------------------------------------- tests */

static char job[32];

/* A clean-trained tiny model and the inputs, on a daemon of one worker. */
static void trained_job(void)
{
    load_test_set();
    start_daemon_with((const char *[]){"--workers", "1", NULL});
    EXPECT(0, "submit", "--model", MODEL, "--method", "clean", "--epochs", "1", "--train-limit",
           "4000", "--val-size", "1000", "--val-robust-size", "0", "--seed", "3", "--wait");
    snprintf(job, sizeof job, "%lld", out_id());
    mkdir(path_in("pngs"), 0700);
    write_png(path_in("pngs/a.png"), test_set.pixels, 28, 28);
    write_png(path_in("pngs/b.png"), test_set.pixels + 784, 28, 28);
    write_png(path_in("small.png"), test_set.pixels, 20, 20);
    write_idx(path_in("clean.idx"), 0, 600, CORE_CORRUPT_CONTRAST, 0);
    write_idx(path_in("contrast.idx"), 600, 200, CORE_CORRUPT_CONTRAST, 5);
    write_idx(path_in("more.idx"), 800, 200, CORE_CORRUPT_CONTRAST, 0);
    FILE *f = fopen(path_in("notes.txt"), "w");
    fputs("not an image\n", f);
    fclose(f);
}

START_TEST(predict_and_monitor_end_to_end)
{
    trained_job();
    /* Files, a folder, an IDX file. */
    EXPECT(0, "predict", job, path_in("pngs/a.png"));
    HAS(R.out, "confidence at temperature 1.000 (none (T = 1)");
    HAS(R.out, "pngs/a.png\t");
    EXPECT(0, "predict", job, path_in("pngs"), "--checkpoint", "1");
    HAS(R.out, "pngs/a.png\t");
    HAS(R.out, "pngs/b.png\t");
    EXPECT(0, "predict", job, path_in("clean.idx"), "--json");
    json_t *v = json_loads(R.out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(v, "predictions")), 600);
    json_t *p = json_array_get(json_object_get(v, "predictions"), 599);
    ck_assert_str_eq(json_string_value(json_object_get(p, "file")), path_in("clean.idx#599"));
    ck_assert_int_eq(json_array_size(json_object_get(p, "top")), 3);
    double conf = json_number_value(json_object_get(p, "confidence"));
    ck_assert(conf > 0.1 && conf <= 1.0);
    json_decref(v);
    /* What a user gets wrong. */
    EXPECT(1, "predict", job, path_in("notes.txt"));
    HAS(R.err, "not a PNG image, an IDX images file or a CIFAR-10 batch");
    EXPECT(2, "predict", job, path_in("small.png"));
    HAS(R.err, "the model takes images of 1 x 28 x 28");
    EXPECT(1, "predict", job, path_in("pngs/a.png"), path_in("small.png"));
    HAS(R.err, "holds 20x20 gray images but");
    EXPECT(1, "predict", "999", path_in("pngs/a.png"));
    EXPECT(2, "predict", job);
    EXPECT(1, "predict", job, "--monitor", path_in("pngs/a.png"));
    HAS(R.err, "has no monitor: create one with 'advctl monitor");
    EXPECT(1, "monitor", job);
    EXPECT(2, "monitor", job, "--window", "5");
    HAS(R.err, "invalid 'window'");

    /* A monitor: clean windows stay quiet, the contrast window alarms. */
    EXPECT(0, "monitor", job, "--window", "200");
    HAS(R.out, "reference: 1000 held-out examples");
    EXPECT(0, "predict", job, "--monitor", path_in("clean.idx"));
    HAS(R.out, "monitor: 0 of 200 images in the current window");
    ck_assert_ptr_null(strstr(R.out, "ALARM"));
    EXPECT(0, "predict", job, "--monitor", path_in("contrast.idx"));
    HAS(R.out, "ALARM");
    HAS(R.out, "drift:");
    HAS(R.out, "closest:");
    EXPECT(0, "status", job);
    HAS(R.out, "monitor: windows of 200");
    HAS(R.out, "1 alarm; ALARM in the last window (4): drift:");
    EXPECT(0, "monitor", job);
    HAS(R.out, "4 windows, 1 alarm");

    /* A partial window and the windows survive a restart. */
    EXPECT(0, "predict", job, "--monitor", path_in("pngs"));
    stop_daemon(SIGTERM);
    start_daemon_with((const char *[]){"--workers", "1", NULL});
    EXPECT(0, "monitor", job);
    HAS(R.out, "2 in the current one; 4 windows, 1 alarm");
    EXPECT(0, "predict", job, "--monitor", path_in("more.idx"));
    HAS(R.out, "monitor: 2 of 200 images in the current window");
    EXPECT(0, "monitor", job, "--json");
    v = json_loads(R.out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(v, "windows")), 5);
    json_decref(v);

    /* --watch prints the windows so far, then each new one as it fills. */
    const char *watched = path_in("watch.out");
    pid_t watcher = ctl_background(watched, (const char *[]){"monitor", job, "--watch", NULL});
    wait_for_text(watched, "5 windows, 1 alarm");
    EXPECT(0, "predict", job, "--monitor", path_in("contrast.idx"));
    wait_for_text(watched, "\n     6  ");
    kill(watcher, SIGTERM);
    waitpid(watcher, NULL, 0);
    char rows[1 << 14];
    slurp(watched, rows, sizeof rows);
    const char *six = strstr(rows, "\n     6  ");
    ck_assert_msg(strstr(six, "ALARM"), "the contrast window did not alarm: %s", rows);

    /* advctl report shows the windows and their alarms. */
    EXPECT(0, "report", job, "-o", path_in("report.html"));
    static char page[1 << 21];
    slurp(path_in("report.html"), page, sizeof page);
    HAS(page, "<h2 id=\"monitor\">Drift monitor</h2>");
    HAS(page, "6 windows, <b>2 alarms</b>");
    HAS(page, "<td><b>ALARM</b></td>");
    HAS(page, "data-plot=\"monitor-estimates\" data-series=\"2\" data-points=\"12\"");
}
END_TEST

START_TEST(scoring_does_not_wait_for_training)
{
    trained_job();
    /* One worker slot, taken by a long job, and another queued behind it. */
    EXPECT(0, "submit", "--model", MODEL, "--epochs", "50", "--train-limit", "4000", "--seed",
           "4");
    EXPECT(0, "submit", "--model", MODEL, "--epochs", "50", "--train-limit", "4000", "--seed",
           "5");
    double t0 = now_s();
    EXPECT(0, "predict", job, path_in("clean.idx"));
    ck_assert_msg(now_s() - t0 < 20, "predict took %.1f s", now_s() - t0);
    /* The temperature an evaluation with calibration fitted. */
    EXPECT(0, "eval", job, "--attack", "fgsm", "--limit", "64", "--no-sanity",
           "--priority", "10");
    char ev[32];
    snprintf(ev, sizeof ev, "%lld", out_id());
    EXPECT(0, "cancel", "2");
    EXPECT(0, "watch", ev);
    EXPECT(0, "predict", job, path_in("pngs/a.png"));
    HAS(R.out, "(calibration of evaluation job ");
    EXPECT(0, "cancel", "3");
}
END_TEST

/* core_inputs_file_load tells the files apart by their first bytes. */
START_TEST(inputs_by_their_first_bytes)
{
    char err[CORE_ERRLEN], path[600];
    core_dataset ds;
    setup();
    load_test_set();
    snprintf(path, sizeof path, "%s/a.png", D.dir);
    write_png(path, test_set.pixels, 28, 28);
    ck_assert_msg(core_inputs_file_load(path, 0, &ds, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 1);
    ck_assert_int_eq(memcmp(ds.pixels, test_set.pixels, 784), 0);
    core_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/x.idx", D.dir);
    write_idx(path, 0, 7, CORE_CORRUPT_CONTRAST, 0);
    ck_assert_msg(core_inputs_file_load(path, 5, &ds, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 5);
    ck_assert_int_eq(ds.shape.h, 28);
    ck_assert_int_eq(memcmp(ds.pixels, test_set.pixels, 784 * 5), 0);
    core_dataset_free(&ds);
    /* Two CIFAR-10 records: a label byte and 3072 pixels each. */
    snprintf(path, sizeof path, "%s/batch.bin", D.dir);
    FILE *f = fopen(path, "wb");
    for (int r = 0; r < 2; r++) {
        fputc(3 + r, f);
        for (int i = 0; i < 3072; i++)
            fputc((i + r) & 255, f);
    }
    fclose(f);
    ck_assert_msg(core_inputs_file_load(path, 0, &ds, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 2);
    ck_assert_int_eq(ds.shape.c, 3);
    ck_assert_int_eq(ds.labels[1], 4);
    ck_assert_int_eq(ds.pixels[3072 + 5], 6);
    core_dataset_free(&ds);
    snprintf(path, sizeof path, "%s/junk.txt", D.dir);
    f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    ck_assert(core_inputs_file_load(path, 0, &ds, err) == -1);
    ck_assert_msg(strstr(err, "not a PNG image, an IDX images file or a CIFAR-10 batch"), "%s", err);
    ck_assert(core_inputs_file_load(D.dir, 0, &ds, err) == -1);
    core_dataset_free(&test_set);
}
END_TEST

static Suite *suite_monitor(void)
{
    Suite *s = suite_create("monitor");
    TCase *tc = tcase_create("monitor");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, predict_and_monitor_end_to_end);
    tcase_add_test(tc, scoring_does_not_wait_for_training);
    suite_add_tcase(s, tc);
    TCase *ti = tcase_create("inputs");
    tcase_add_test(ti, inputs_by_their_first_bytes);
    suite_add_tcase(s, ti);
    return s;
}

ADV_TEST_MAIN(suite_monitor)
