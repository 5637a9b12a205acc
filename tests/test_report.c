/*
 * test_report.c - `advctl report` (ADVCTL_BIN) against a real advd
 * (ADV_BIN) on a temporary socket and database: the report of a short real
 * training job with two evaluation jobs (calibration, corruptions,
 * explanations) and drawn pictures, checked as
 *   - strict HTML: `tidy -q -e` exits 0 (no error, no warning);
 *   - self-contained: no http(s) URL anywhere, every src a data: PNG, no
 *     href or url() that leaves the page, no script;
 *   - one SVG per plot, each with the number of series and points that the
 *     job's metrics and evaluations imply (data-series / data-points, see
 *     client/svg.c), and a section that says what to run where data is
 *     missing;
 *   - every inline picture decodes as a PNG file (libpng);
 *   - in headless Chromium (Debian's): the screenshot has the window's
 *     size, is not blank, the page ends within it (its length is that of a
 *     full report), and the page logs nothing to the console (the same
 *     check on a page with a console error must see it);
 * plus a two-job report (plots overlaid) and the command's errors.
 *
 * The jobs are tiny (a 4-channel convolution on 256 Fashion-MNIST images,
 * one thread), so the whole program takes well under a minute and a half.
 */
#define _GNU_SOURCE
#include "proto/proto.h"
#include "testutil.h"

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "daemon_harness.h"

#define TINY_MODEL "conv4k3p1 relu maxpool2 fc10"
#define SHOT_W 1280
#define SHOT_H 14000

/* ------------------------------------------------------------- running */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    if (len)
        *len = got;
    return buf;
}

typedef struct {
    int rc;
    char *out;   /* stdout and stderr together */
} ran;

/* Run argv (NULL-terminated; argv[0] a path, or a name found in PATH)
 * with stdout and stderr into one file; exit status and output. */
static ran run(const char **argv)
{
    char path[400];
    snprintf(path, sizeof path, "%s/run.out", D.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], (char **)argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "%s died of signal %d", argv[0], WTERMSIG(status));
    return (ran){WEXITSTATUS(status), slurp(path, NULL)};
}

static const char *advctl_bin(void)
{
    const char *b = getenv("ADVCTL_BIN");
    return b && *b ? b : "bin/advctl";
}

/* advctl --socket D.sock ARGS...; its output freed unless kept. */
static int ctl_run(char **keep, const char **args)
{
    const char *argv[64] = {advctl_bin(), "--socket", D.sock};
    int n = 3;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    ran r = run(argv);
    if (keep)
        *keep = r.out;
    else
        free(r.out);
    return r.rc;
}

#define CTL(keep, ...) ctl_run(keep, (const char *[]){__VA_ARGS__, NULL})

#define EXPECT(rc_, ...)                                                                  \
    do {                                                                                  \
        char *out_;                                                                       \
        int got_ = CTL(&out_, __VA_ARGS__);                                               \
        ck_assert_msg(got_ == (rc_), "advctl exited %d, not %d: %s", got_, (rc_), out_); \
        free(out_);                                                                       \
    } while (0)

/* ------------------------------------------------------------ the page */

/* The value of attribute name in the tag that starts at tag. */
static int attr_int(const char *tag, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *end = strchr(tag, '>'), *p = strstr(tag, key);
    ck_assert_msg(p && p < end, "no %s in %.120s", name, tag);
    return atoi(p + strlen(key));
}

/* The <svg> of plot id, or NULL. */
static const char *plot(const char *html, const char *id)
{
    char key[128];
    snprintf(key, sizeof key, "data-plot=\"%s\"", id);
    const char *p = strstr(html, key);
    if (!p)
        return NULL;
    while (p > html && strncmp(p, "<svg", 4))
        p--;
    return p;
}

static void expect_plot(const char *html, const char *id, int series, int points)
{
    const char *p = plot(html, id);
    ck_assert_msg(p != NULL, "no plot '%s'", id);
    ck_assert_msg(attr_int(p, "data-series") == series, "plot '%s': %d series, not %d", id,
                  attr_int(p, "data-series"), series);
    if (points >= 0)
        ck_assert_msg(attr_int(p, "data-points") == points, "plot '%s': %d points, not %d", id,
                      attr_int(p, "data-points"), points);
    /* The series' own counts add up to the plot's. */
    const char *end = strstr(p, "</svg>"), *g = p;
    int sum = 0, n = 0;
    while ((g = strstr(g + 1, "<g class=\"series\"")) && g < end) {
        sum += attr_int(g, "data-points");
        n++;
    }
    ck_assert_int_eq(n, series);
    ck_assert_int_eq(sum, attr_int(p, "data-points"));
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Nothing outside the page: every src, href and url() stays inside. */
static void expect_self_contained(const char *html)
{
    ck_assert_msg(!strcasestr(html, "http://") && !strcasestr(html, "https://"),
                  "the page names a web address");
    ck_assert_msg(!strcasestr(html, "<script") && !strcasestr(html, "<link") &&
                      !strcasestr(html, "@import") && !strcasestr(html, "@font-face"),
                  "the page loads a script, style sheet or font");
    static const char *const refs[] = {"src=\"", "href=\"", "url("};
    for (int k = 0; k < 3; k++)
        for (const char *p = html; (p = strcasestr(p, refs[k])); p++) {
            const char *v = p + strlen(refs[k]);
            ck_assert_msg(!strncmp(v, "data:image/png;base64,", 22) || v[0] == '#',
                          "reference outside the page: %.60s", p);
        }
}

/* Every inline picture decodes as a PNG file; how many there are. */
static int expect_pngs(const char *html)
{
    static const char key[] = "src=\"data:image/png;base64,";
    int n = 0;
    for (const char *p = html; (p = strstr(p, key)); p++, n++) {
        const char *b64 = p + strlen(key);
        size_t len = strcspn(b64, "\"");
        uint8_t *bytes;
        size_t nb;
        adv_error e;
        ck_assert_msg(adv_base64_decode(b64, len, &bytes, &nb, &e) == 0, "%s", e.msg);
        png_image im = {.version = PNG_IMAGE_VERSION};
        ck_assert_msg(png_image_begin_read_from_memory(&im, bytes, nb), "picture %d: %s", n,
                      im.message);
        im.format = PNG_FORMAT_RGB;
        uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
        ck_assert_msg(png_image_finish_read(&im, NULL, px, 0, NULL), "picture %d: %s", n,
                      im.message);
        ck_assert(im.width > 0 && im.height > 0);
        free(px);
        free(bytes);
    }
    return n;
}

static void expect_tidy(const char *path)
{
    ran r = run((const char *[]){"tidy", "-q", "-e", path, NULL});
    ck_assert_msg(r.rc != 127, "tidy is not installed (scripts/deps.sh report)");
    ck_assert_msg(r.rc == 0, "tidy finds fault with %s (exit %d):\n%s", path, r.rc, r.out);
    free(r.out);
}

/* ------------------------------------------------------------ browser */

typedef struct {
    unsigned width, height;
    unsigned last_row;       /* the lowest row that is not white */
    double ink;              /* fraction of pixels that are not white */
    char *log;
} shot;

static shot screenshot(const char *page, unsigned w, unsigned h)
{
    char png[400], shot_arg[420], url[600], size[64], profile[400];
    snprintf(png, sizeof png, "%s/shot.png", D.dir);
    snprintf(shot_arg, sizeof shot_arg, "--screenshot=%s", png);
    snprintf(url, sizeof url, "file://%s", page);
    snprintf(size, sizeof size, "--window-size=%u,%u", w, h);
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium", D.dir);
    unlink(png);
    ran r = run((const char *[]){"chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                 "--disable-background-networking", "--disable-component-update",
                                 "--disable-sync", "--no-first-run", "--hide-scrollbars",
                                 "--enable-logging=stderr", "--v=0", profile, size, shot_arg, url,
                                 NULL});
    ck_assert_msg(r.rc != 127, "chromium is not installed (scripts/deps.sh report)");
    ck_assert_msg(r.rc == 0, "chromium failed (exit %d): %s", r.rc, r.out);
    png_image im = {.version = PNG_IMAGE_VERSION};
    ck_assert_msg(png_image_begin_read_from_file(&im, png), "no screenshot: %s", r.out);
    im.format = PNG_FORMAT_GRAY;
    uint8_t *px = malloc(PNG_IMAGE_SIZE(im));
    ck_assert(png_image_finish_read(&im, NULL, px, 0, NULL));
    shot s = {im.width, im.height, 0, 0, r.out};
    size_t ink = 0;
    for (unsigned y = 0; y < im.height; y++)
        for (unsigned x = 0; x < im.width; x++)
            if (px[(size_t)y * im.width + x] < 245) {
                ink++;
                s.last_row = y;
            }
    s.ink = (double)ink / ((double)im.width * im.height);
    free(px);
    return s;
}

static void expect_renders(const char *page)
{
    /* The console check must see an error where there is one. */
    char bad[400];
    snprintf(bad, sizeof bad, "%s/console-error.html", D.dir);
    FILE *f = fopen(bad, "w");
    fputs("<!DOCTYPE html><html><head><title>x</title></head><body><p>x</p>"
          "<script>console.error('report-test-error')</script></body></html>",
          f);
    fclose(f);
    shot s = screenshot(bad, 400, 300);
    ck_assert_msg(strstr(s.log, "CONSOLE") && strstr(s.log, "report-test-error"),
                  "chromium's log shows no console message: %s", s.log);
    free(s.log);

    s = screenshot(page, SHOT_W, SHOT_H);
    ck_assert_uint_eq(s.width, SHOT_W);
    ck_assert_uint_eq(s.height, SHOT_H);
    ck_assert_msg(!strstr(s.log, "CONSOLE"), "the page logged to the console: %s", s.log);
    ck_assert_msg(s.ink > 0.02, "the screenshot is nearly blank (%.4f of it inked)", s.ink);
    /* A full report is several screens long and ends inside the window. */
    ck_assert_msg(s.last_row > 4000 && s.last_row < SHOT_H - 100,
                  "the page's content ends at row %u of %u", s.last_row, SHOT_H);
    free(s.log);
    char profile[400];
    snprintf(profile, sizeof profile, "%s/chromium", D.dir);
    free(run((const char *[]){"rm", "-rf", profile, NULL}).out);
}

/* ---------------------------------------------------------------- tests */

/* The explanation methods' plots, as many points as job 1's latest
 * explanations report has methods (and randomised layers); how many
 * plots that is (0 from a daemon that compares no methods). */
static int expect_method_plots(const char *html)
{
    char *out;
    ck_assert_int_eq(CTL(&out, "--json", "results", "1"), 0);
    json_t *r = json_loads(out, 0, NULL), *rp, *m;
    ck_assert_msg(r != NULL, "no JSON: %s", out);
    const json_t *methods = NULL;
    const char *name;
    size_t i;
    int layers = 0, randomised = 0;
    json_array_foreach(json_object_get(r, "reports"), i, rp) {
        if (!strcmp(json_string_value(json_object_get(rp, "kind")), "explanations"))
            methods = json_object_get(json_object_get(rp, "data"), "methods");
    }
    int n = (int)json_object_size(methods);
    json_object_foreach((json_t *)methods, name, m) {
        const json_t *rnd = json_object_get(m, "randomisation");
        randomised += rnd != NULL;
        if (rnd)
            layers = (int)json_array_size(json_object_get(rnd, "spearman"));
    }
    if (n)
        expect_plot(html, "fragility-methods", 2, 2 * n);
    if (randomised)
        expect_plot(html, "randomisation", randomised, randomised * (layers + 1));
    json_decref(r);
    free(out);
    return (n > 0) + (randomised > 0);
}

/* s as the page writes it (client/html.c's escapes). */
static void escaped(const char *s, char *out, size_t n)
{
    static const char *const from = "&<>\"'", *const to[] = {"&amp;", "&lt;", "&gt;",
                                                             "&quot;", "&#39;"};
    size_t k = 0;
    for (; *s && k + 7 < n; s++) {
        const char *hit = strchr(from, *s);
        k += (size_t)snprintf(out + k, n - k, "%s", hit ? to[hit - from] : (char[]){*s, 0});
    }
    out[k] = '\0';
}

/* Every sanity warning of job 1's evaluations is a warning box. */
static void expect_warnings_shown(const char *html)
{
    char text[1024];
    char *out;
    ck_assert_int_eq(CTL(&out, "--json", "results", "1"), 0);
    json_t *r = json_loads(out, 0, NULL), *e, *w;
    ck_assert_msg(r != NULL, "no JSON: %s", out);
    size_t i, k;
    json_array_foreach(json_object_get(r, "results"), i, e) {
        json_array_foreach(json_object_get(e, "warnings"), k, w) {
            const char *box = strstr(html, "<p class=\"warn\"><b>Warning</b>");
            escaped(json_string_value(w), text, sizeof text);
            ck_assert_msg(box && strstr(box, text), "warning '%s' not shown",
                          json_string_value(w));
        }
    }
    json_decref(r);
    free(out);
}

static void submit_tiny(const char *method, const char *epochs)
{
    EXPECT(0, "submit", "--model", TINY_MODEL, "--method", method, "--epochs", epochs,
           "--train-limit", "256", "--val-size", "64", "--val-robust-size", "32", "--wait");
}

START_TEST(test_report_of_a_real_job)
{
    char page[400], html_path[400], pics[400];
    start_daemon_with(NULL);
    submit_tiny("pgd", "2");                                                         /* 1 */
    EXPECT(0, "eval", "1", "--attack", "pgd", "--steps", "5", "--eps", "0.05,0.1", "--limit",
           "64", "--corruptions", "--explain", "--explain-limit", "8", "--ig-steps", "8",
           "--smoothgrad-samples", "4", "--wait");                                   /* 2 */
    EXPECT(0, "eval", "1", "--attack", "fgsm", "--eps", "0.05,0.1", "--limit", "64",
           "--no-calibration", "--no-sanity", "--wait");                             /* 3 */
    snprintf(pics, sizeof pics, "%s/pictures", D.dir);
    EXPECT(0, "images", "1", "--adversarial", "-n", "4", "-o", pics);                /* 4 */
    EXPECT(0, "images", "1", "--saliency", "-n", "4", "-o", pics);                   /* 5 */
    EXPECT(0, "images", "1", "--corruptions", "-n", "1", "-o", pics);                /* 6 */

    snprintf(html_path, sizeof html_path, "%s/report.html", D.dir);
    char *out;
    ck_assert_int_eq(CTL(&out, "report", "1", "-o", html_path), 0);
    ck_assert_msg(strstr(out, html_path), "advctl report printed: %s", out);
    free(out);
    realpath(html_path, page);
    char *html = slurp(page, NULL);
    expect_tidy(page);
    expect_self_contained(html);

    /* 2 epochs: a point each per metric. */
    expect_plot(html, "training-loss", 2, 4);
    expect_plot(html, "training-accuracy", 3, 6);
    expect_plot(html, "learning-rate", 1, 2);
    expect_plot(html, "throughput", 1, 2);
    /* pgd-20 (final): clean + 0.1; pgd-5 and fgsm: clean + 2 eps; their
     * per-example worst case at both eps. */
    expect_plot(html, "robustness", 4, 2 + 3 + 3 + 3);
    ck_assert(strstr(html, "data-name=\"pgd-5\"") && strstr(html, "data-name=\"fgsm\""));
    ck_assert(strstr(html, "data-name=\"worst case over all attacks, per example\""));
    expect_plot(html, "survival", 1, -1);
    expect_plot(html, "reliability-clean-before", 1, -1);
    expect_plot(html, "reliability-clean-after", 1, -1);
    expect_plot(html, "reliability-adversarial-before", 1, -1);
    expect_plot(html, "reliability-adversarial-after", 1, -1);
    expect_plot(html, "corruptions-heat-1", 9, 9 * 6);
    expect_plot(html, "corruptions-mean", 1, 1 + 9);
    expect_plot(html, "fragility", 1, 4);
    ck_assert_int_eq(count(html, "<svg"), 13 + expect_method_plots(html));
    /* The drawn pictures: clean, adversarial, perturbation; saliency and
     * its legend; corruptions. SmoothGrad and IG say how to draw them. */
    ck_assert_int_eq(expect_pngs(html), 6);
    ck_assert(strstr(html, "advctl images 1 --smoothgrad"));
    ck_assert(strstr(html, "(nor ig, "));
    ck_assert(strstr(html, "index: labels and predictions"));
    expect_warnings_shown(html);
    expect_renders(page);
    free(html);

    /* Two jobs: the curves overlaid, a column each; the clean job's
     * missing evaluations say what to run. */
    submit_tiny("clean", "1");                                                       /* 7 */
    ck_assert_int_eq(CTL(NULL, "report", "1", "7", "-o", html_path), 0);
    html = slurp(html_path, NULL);
    expect_tidy(html_path);
    expect_self_contained(html);
    expect_plot(html, "training-loss", 4, 6);
    expect_plot(html, "robustness", 5, 13);
    ck_assert(strstr(html, "advctl eval 7 --attack pgd --corruptions --wait"));
    ck_assert(strstr(html, "job 7</th>"));
    free(html);

    /* Errors: an eval job, a job twice, an unwritable path (no file left). */
    EXPECT(2, "report", "2");
    EXPECT(2, "report", "1", "1");
    char bad[450];
    snprintf(bad, sizeof bad, "%s/no/such/dir/r.html", D.dir);
    EXPECT(1, "report", "1", "-o", bad);
}
END_TEST

START_TEST(test_report_usage)
{
    start_daemon_with(NULL);
    EXPECT(2, "report");
    EXPECT(2, "report", "x");
    EXPECT(2, "report", "1", "--bogus");
    EXPECT(2, "report", "1", "-o");
    EXPECT(1, "report", "42");
    char *out;
    CTL(&out, "help", "report");
    ck_assert_msg(strstr(out, "usage: advctl report JOB [JOB...] [-o FILE.html]"), "%s", out);
    free(out);
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_report_usage);
    tcase_add_test(tc, test_report_of_a_real_job);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(report_suite)
