/*
 * test_advctl.c - integration tests of bin/advctl (ADVCTL_BIN, set by
 * `make check`) against a real bin/advd (ADV_BIN) on a socket and database
 * in a fresh temporary directory: every command, --json output parsed and
 * checked, exit codes (2 usage, 3 no daemon, 1 missing or failed job), the
 * default submission, and an export read back tensor by tensor against
 * the checkpoint (core_state_model), and an evaluation with calibration,
 * corruptions and explanations whose pictures are decoded back with
 * libpng.
 *
 * Jobs are tiny (a 4-channel convolution on 256 Fashion-MNIST images, one
 * thread), as in test_daemon.c.
 */
#define _GNU_SOURCE
#include "proto/proto.h"
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <png.h>

#include "core/state.h"
#include "daemon_harness.h"

#define TINY_MODEL "conv4k3p1 relu maxpool2 fc10"

/* ------------------------------------------------------------ the daemon */

static const char *env_or(const char *name, const char *dflt)
{
    const char *b = getenv(name);
    return b && *b ? b : dflt;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static void start_daemon(void)
{
    start_daemon_with(NULL);
}

/* The harness's setup, and no socket from the environment. */
static void ctl_setup(void)
{
    setup();
    unsetenv("ADVD_SOCKET");
}

/* ------------------------------------------------------------ advctl */

typedef struct {
    int rc;
    char *out, *err;
} run_t;

static run_t R;

/* Run advctl --socket D.sock ARGS... (NULL-terminated); its exit status,
 * stdout and stderr in R. */
static int ctl_argv(int with_socket, const char **args)
{
    char out[400], err[400];
    snprintf(out, sizeof out, "%s/ctl.out", D.dir);
    snprintf(err, sizeof err, "%s/ctl.err", D.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        const char *argv[64] = {env_or("ADVCTL_BIN", "bin/advctl")};
        int n = 1;
        if (with_socket) {
            argv[n++] = "--socket";
            argv[n++] = D.sock;
        }
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "advctl died of signal %d", WTERMSIG(status));
    free(R.out);
    free(R.err);
    R.rc = WEXITSTATUS(status);
    R.out = read_text(out);
    R.err = read_text(err);
    return R.rc;
}

#define CTL(...) ctl_argv(1, (const char *[]){__VA_ARGS__, NULL})
#define CTL_NOSOCK(...) ctl_argv(0, (const char *[]){__VA_ARGS__, NULL})

#define EXPECT(rc_, ...)                                                                      \
    do {                                                                                      \
        int got_ = CTL(__VA_ARGS__);                                                          \
        ck_assert_msg(got_ == (rc_), "advctl exited %d, not %d\nstdout: %s\nstderr: %s", got_, \
                      (rc_), R.out, R.err);                                                   \
    } while (0)

/* stdout of the last run as JSON (one object per line: the first). */
static json_t *out_json(void)
{
    json_error_t je;
    json_t *v = json_loadb(R.out, strcspn(R.out, "\n"), 0, &je);
    ck_assert_msg(v != NULL, "advctl --json printed no JSON (%s): %s", je.text, R.out);
    return v;
}

static int64_t out_id(void)
{
    long long id = strtoll(R.out, NULL, 10);
    ck_assert_msg(id >= 1, "no job id in: %s", R.out);
    return id;
}

#define HAS(text, needle) ck_assert_msg(strstr((text), (needle)), "no '%s' in: %s", (needle), (text))

/* ------------------------------------------ a raw request, for comparison */

static json_t *raw_call(const char *request)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, D.sock);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    adv_linebuf lb;
    adv_linebuf_init(&lb, ADV_PROTO_MAX_LINE);
    const char *line;
    size_t len;
    adv_error e;
    json_t *resp = NULL;
    int lines = 0;
    while (!resp) {
        int r = adv_linebuf_next(&lb, &line, &len, &e);
        ck_assert_int_ge(r, 0);
        if (r == 1) {
            if (++lines == 2) /* the first is the greeting */
                resp = json_loadb(line, len, 0, NULL);
            continue;
        }
        char buf[65536];
        ssize_t n = read(fd, buf, sizeof buf);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(adv_linebuf_feed(&lb, buf, (size_t)n, &e), 0);
    }
    adv_linebuf_free(&lb);
    close(fd);
    ck_assert(json_is_true(json_object_get(resp, "ok")));
    json_t *result = json_incref(json_object_get(resp, "result"));
    json_decref(resp);
    return result;
}

/* --------------------------------------------------------------- tests */

START_TEST(test_no_daemon)
{
    EXPECT(3, "ping");
    HAS(R.err, "cannot reach advd");
    HAS(R.err, "bin/advd");
    HAS(R.err, D.sock);
    EXPECT(3, "status", "1");
    EXPECT(3, "list", "--json");
    /* ADVD_SOCKET names the socket when --socket does not. */
    setenv("ADVD_SOCKET", D.sock, 1);
    ck_assert_int_eq(CTL_NOSOCK("ping"), 3);
    HAS(R.err, D.sock);
}
END_TEST

START_TEST(test_usage)
{
    ck_assert_int_eq(CTL_NOSOCK("bogus"), 2);
    HAS(R.err, "unknown command 'bogus'");
    EXPECT(2, "status");
    HAS(R.err, "missing JOB");
    HAS(R.err, "usage: advctl status JOB");
    EXPECT(2, "status", "x");
    EXPECT(2, "status", "1", "2");
    EXPECT(2, "list", "--limit", "many");
    HAS(R.err, "usage: advctl list");
    EXPECT(2, "submit", "--epochs", "x");
    HAS(R.err, "'--epochs'");
    EXPECT(2, "submit", "--bogus", "1");
    HAS(R.err, "unknown option '--bogus'");
    /* Validated here, with the daemon's code: no daemon needed. */
    EXPECT(2, "submit", "--epochs", "0");
    HAS(R.err, "invalid 'epochs'");
    EXPECT(2, "submit", "--model", "conv0k3 fc10");
    HAS(R.err, "invalid 'model'");
    EXPECT(2, "submit", "--dataset", "mnist:no/such/dir");
    HAS(R.err, "invalid 'dataset'");
    HAS(R.err, "/no/such/dir"); /* made absolute */
    EXPECT(2, "eval", "1");
    HAS(R.err, "--attack NAME or --suite NAME");
    EXPECT(2, "eval", "1", "--suite", "autoattack", "--steps", "3");
    HAS(R.err, "'steps' cannot be used with 'suite'");
    EXPECT(2, "eval", "1", "--attack", "pgd", "--eps", "0.1,x");
    EXPECT(2, "eval", "1", "--attack", "pgd", "--checkpoint", "worst");
    HAS(R.err, "'--checkpoint'");
    EXPECT(2, "export", "1");
    HAS(R.err, "missing '-o FILE'");
    EXPECT(0, "help");
    HAS(R.out, "compare");
    EXPECT(0, "help", "submit");
    HAS(R.out, "--trades-beta");
    EXPECT(2, "help", "nope");
    EXPECT(0, "cancel", "--help");
    HAS(R.out, "usage: advctl cancel JOB");
}
END_TEST

START_TEST(test_ping_version_missing)
{
    start_daemon();
    EXPECT(0, "ping");
    HAS(R.out, "alive");
    EXPECT(0, "ping", "--json");
    json_t *v = out_json();
    ck_assert(json_is_true(json_object_get(v, "pong")));
    json_decref(v);
    EXPECT(0, "--json", "version");
    v = out_json();
    ck_assert_str_eq(json_string_value(json_object_get(v, "version")), ADV_VERSION);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "protocol")), ADV_PROTOCOL);
    json_decref(v);
    EXPECT(0, "version");
    HAS(R.out, "advctl " ADV_VERSION);
    HAS(R.out, "advd " ADV_VERSION);
    /* A job that does not exist: 1, one line naming it. */
    EXPECT(1, "status", "999");
    HAS(R.err, "not_found: no job 999");
    ck_assert_int_eq(strchr(R.err, '\n') - R.err + 1, (long)strlen(R.err));
    EXPECT(1, "cancel", "999");
    EXPECT(1, "watch", "999");
    EXPECT(1, "results", "999", "--json");
    EXPECT(1, "export", "999", "-o", "/tmp/never.safetensors");
    EXPECT(1, "compare", "999");
    /* The daemon's own argument errors: usage, naming the field. */
    EXPECT(2, "list", "--state", "bogus");
    HAS(R.err, "'state'");
    EXPECT(0, "list", "--json");
    v = out_json();
    ck_assert_int_eq(json_array_size(json_object_get(v, "jobs")), 0);
    json_decref(v);
}
END_TEST

static void check_export(int64_t job, const char *file)
{
    /* The checkpoint itself, from the daemon (small: one piece). */
    char req[600];
    snprintf(req, sizeof req, "{\"id\":1,\"cmd\":\"export\",\"job\":%lld}\n", (long long)job);
    json_t *r = raw_call(req);
    ck_assert(json_is_true(json_object_get(r, "eof")));
    const char *b64 = json_string_value(json_object_get(r, "data"));
    uint8_t *state;
    size_t slen;
    adv_error ae;
    ck_assert_int_eq(adv_base64_decode(b64, strlen(b64), &state, &slen, &ae), 0);
    json_decref(r);
    core_model *m;
    char err[CORE_ERRLEN];
    ck_assert_msg(core_state_model(state, slen, &m, err) == 0, "%s", err);
    free(state);
    FILE *f;
    /* The safetensors file. */
    f = fopen(file, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t st[1 << 22];
    size_t n = fread(st, 1, sizeof st, f);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)st[i] << (8 * i);
    ck_assert_int_eq(hlen % 8, 0);
    json_t *h = json_loadb((const char *)st + 8, hlen, 0, NULL);
    ck_assert_ptr_nonnull(h);
    json_t *md = json_object_get(h, "__metadata__");
    ck_assert_str_eq(json_string_value(json_object_get(md, "model_spec")), m->spec);
    ck_assert_str_eq(json_string_value(json_object_get(md, "model")), TINY_MODEL);
    ck_assert_str_eq(json_string_value(json_object_get(md, "epoch")), "1");
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)job);
    ck_assert_str_eq(json_string_value(json_object_get(md, "job")), id);
    const char *key;
    json_t *v;
    json_object_foreach(md, key, v) ck_assert_msg(json_is_string(v), "metadata '%s'", key);
    ck_assert_int_eq(json_object_size(h), (size_t)m->nviews + 1);
    const uint8_t *data = st + 8 + hlen;
    for (int i = 0; i < m->nviews; i++) {
        const core_param_view *pv = &m->views[i];
        json_t *t = json_object_get(h, pv->name);
        ck_assert_msg(t != NULL, "no tensor '%s'", pv->name);
        ck_assert_str_eq(json_string_value(json_object_get(t, "dtype")), "F32");
        json_t *shape = json_object_get(t, "shape");
        ck_assert_int_eq(json_array_size(shape), pv->ndim);
        for (int d = 0; d < pv->ndim; d++)
            ck_assert_int_eq(json_integer_value(json_array_get(shape, d)), pv->dims[d]);
        json_t *off = json_object_get(t, "data_offsets");
        size_t b = (size_t)json_integer_value(json_array_get(off, 0));
        size_t e = (size_t)json_integer_value(json_array_get(off, 1));
        ck_assert_int_eq(e - b, pv->size * sizeof(float));
        ck_assert_int_le(8 + hlen + e, n);
        ck_assert_msg(memcmp(data + b, m->params + pv->offset, e - b) == 0,
                      "tensor '%s' differs from the checkpoint", pv->name);
    }
    json_decref(h);
    core_model_free(m);
}

START_TEST(test_train_flow)
{
    start_daemon();
    /* A job file, and flags that override it. */
    char file[400], model[400];
    snprintf(file, sizeof file, "%s/tiny.json", D.dir);
    FILE *f = fopen(file, "w");
    fputs("{\"kind\":\"train\",\"name\":\"from-file\",\"epochs\":5,\"val_robust_size\":32,"
          "\"batch\":64}\n", f);
    fclose(f);
    EXPECT(0, "submit", file, "--name", "tiny", "--model", TINY_MODEL, "--epochs", "1",
           "--train-limit", "256", "--val-size", "64", "--steps", "2", "--seed", "7", "--wait");
    int64_t id = out_id();
    HAS(R.out, "epoch 1/1 batch 3/3"); /* plain progress lines: not a terminal */
    HAS(R.out, "succeeded");
    char ids[32], eids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    /* status --json is exactly the daemon's result. */
    EXPECT(0, "status", ids, "--json");
    json_t *v = out_json();
    char req[200];
    snprintf(req, sizeof req, "{\"id\":1,\"cmd\":\"status\",\"job\":%s}\n", ids);
    json_t *raw = raw_call(req);
    ck_assert(json_equal(v, raw));
    json_decref(raw);
    json_t *spec = json_object_get(v, "spec");
    ck_assert_str_eq(json_string_value(json_object_get(v, "state")), "succeeded");
    ck_assert_str_eq(json_string_value(json_object_get(v, "name")), "tiny");
    ck_assert_int_eq(json_integer_value(json_object_get(spec, "epochs")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(spec, "val_robust_size")), 32);
    ck_assert_str_eq(json_string_value(json_object_get(spec, "model")), TINY_MODEL);
    json_decref(v);
    EXPECT(0, "status", ids);
    HAS(R.out, "succeeded");
    HAS(R.out, "model=");
    /* list */
    EXPECT(0, "ls", "--json", "--kind", "train", "--state", "succeeded", "--limit", "5");
    v = out_json();
    ck_assert_int_eq(json_array_size(json_object_get(v, "jobs")), 1);
    json_decref(v);
    EXPECT(0, "list");
    HAS(R.out, "tiny");
    HAS(R.out, "succeeded");
    /* metrics, checkpoints, results */
    EXPECT(0, "metrics", ids, "--json");
    v = out_json();
    ck_assert_int_gt(json_array_size(json_object_get(v, "metrics")), 5);
    json_decref(v);
    EXPECT(0, "metrics", ids, "--csv");
    HAS(R.out, "epoch,step,key,value\n");
    HAS(R.out, ",train_loss,");
    EXPECT(0, "metrics", ids, "--key", "test_pgd20_acc");
    HAS(R.out, "test_pgd20_acc");
    ck_assert_ptr_null(strstr(R.out, "train_loss"));
    EXPECT(0, "checkpoints", ids, "--json");
    v = out_json();
    ck_assert_int_ge(json_array_size(json_object_get(v, "checkpoints")), 1);
    json_decref(v);
    EXPECT(0, "checkpoints", ids);
    HAS(R.out, "VAL_ROBUST");
    EXPECT(0, "results", ids, "--json");
    v = out_json();
    json_t *row = json_array_get(json_object_get(v, "results"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "n")), 100);
    json_decref(v);
    EXPECT(0, "results", ids);
    HAS(R.out, "pgd-20 (final)");
    /* watch of a finished job: its outcome at once. */
    EXPECT(0, "watch", ids);
    HAS(R.out, "succeeded");
    /* An evaluation at two eps. */
    EXPECT(0, "eval", ids, "--attack", "pgd", "--steps", "2", "--eps", "0.05,0.1", "--limit",
           "32", "--checkpoint", "latest", "--no-sanity", "--wait");
    int64_t eid = out_id();
    snprintf(eids, sizeof eids, "%lld", (long long)eid);
    EXPECT(0, "results", eids, "--json");
    v = out_json();
    ck_assert_int_eq(json_array_size(json_object_get(v, "results")), 2);
    json_decref(v);
    /* A job that fails in the worker: exit status 1, the reason shown. */
    EXPECT(1, "eval", ids, "--attack", "apgd-t", "--targets", "12", "--limit", "10", "--wait");
    HAS(R.out, "failed");
    HAS(R.out, "invalid 'targets'");
    /* compare */
    EXPECT(0, "compare", ids, ids);
    HAS(R.out, "TEST_PGD20");
    HAS(R.out, "tiny");
    EXPECT(0, "compare", ids, "--json");
    v = out_json();
    ck_assert_int_eq(json_array_size(v), 1);
    json_decref(v);
    /* export, read back against the checkpoint. */
    snprintf(model, sizeof model, "%s/model.safetensors", D.dir);
    EXPECT(0, "export", ids, "--checkpoint", "latest", "-o", model);
    HAS(R.out, model);
    check_export(id, model);
    EXPECT(1, "export", ids, "--checkpoint", "7", "-o", model);
}
END_TEST

/* ----------------------------------------------------------- import */

/* The first evaluation row of job ids (results --json) into *row. */
static json_t *first_eval(const char *ids)
{
    EXPECT(0, "results", ids, "--json");
    json_t *v = out_json();
    json_t *row = json_incref(json_array_get(json_object_get(v, "results"), 0));
    ck_assert_ptr_nonnull(row);
    json_decref(v);
    return row;
}

/* export -> import: the same weights bit for bit, the same evaluation to
 * the last example; and a file that does not fit is refused, naming why. */
START_TEST(test_import_round_trip)
{
    start_daemon();
    const char *spec = "norm(0.286;0.353) " TINY_MODEL;
    char file[400], back[400], ids[32], iids[32], eval_a[32], eval_b[32];
    snprintf(file, sizeof file, "%s/m.safetensors", D.dir);
    snprintf(back, sizeof back, "%s/back.safetensors", D.dir);
    EXPECT(0, "submit", "--name", "normed", "--model", spec, "--epochs", "1", "--train-limit",
           "256", "--val-size", "64", "--val-robust-size", "32", "--steps", "2", "--seed", "3",
           "--wait");
    snprintf(ids, sizeof ids, "%lld", (long long)out_id());
    EXPECT(0, "export", ids, "-o", file);
    EXPECT(0, "import", file, "--model", spec, "--name", "again");
    HAS(R.out, "imported 6 tensors (F32");
    snprintf(iids, sizeof iids, "%lld", (long long)out_id());
    EXPECT(0, "ls", "--json", "--kind", "import");
    json_t *v = out_json();
    ck_assert_int_eq(json_array_size(json_object_get(v, "jobs")), 1);
    json_decref(v);
    /* Its export: the same data section (the metadata differs). */
    EXPECT(0, "export", iids, "-o", back);
    char *a = read_text(file), *b = read_text(back);
    struct stat sa, sb;
    ck_assert(stat(file, &sa) == 0 && stat(back, &sb) == 0);
    size_t weights = 4 * (4 * 9 + 4 + 10 * 4 * 14 * 14 + 10 + 2);
    ck_assert(memcmp(a + sa.st_size - weights, b + sb.st_size - weights, weights) == 0);
    free(a);
    free(b);
    /* The same evaluation of both. */
    const char *ev[] = {ids, iids};
    char *out[] = {eval_a, eval_b};
    for (int i = 0; i < 2; i++) {
        EXPECT(0, "eval", ev[i], "--attack", "pgd", "--steps", "3", "--limit", "64", "--seed",
               "5", "--no-calibration", "--wait");
        snprintf(out[i], 32, "%lld", (long long)out_id());
    }
    json_t *ra = first_eval(eval_a), *rb = first_eval(eval_b);
    static const char *const keys[] = {"clean_acc", "robust_acc", "survival", "n"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(json_equal(json_object_get(ra, keys[i]), json_object_get(rb, keys[i])),
                      "'%s' differs", keys[i]);
    json_decref(ra);
    json_decref(rb);
    /* Another layout: refused before anything is stored. */
    EXPECT(2, "import", file);
    EXPECT(2, "import", file, "--model", TINY_MODEL);
    HAS(R.err, "extra '0.mean' (1)");
    HAS(R.err, "missing '0.weight' (4x1x3x3)");
    /* A file cut short: its last tensor ends past the data, and the
     * daemon goes on. */
    ck_assert(truncate(file, sa.st_size - 4) == 0);
    EXPECT(2, "import", file, "--model", spec);
    HAS(R.err, "invalid safetensors tensor '0.std': data_offsets must be [begin, end] inside");
    EXPECT(0, "ping");
}
END_TEST

/* ------------------------------------------ beyond adversarial accuracy */

typedef struct {
    unsigned w, h;
    uint8_t *rgb;
} picture;

static picture read_png(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    png_image img = {.version = PNG_IMAGE_VERSION};
    ck_assert_msg(png_image_begin_read_from_file(&img, path), "cannot read %s: %s", path,
                  img.message);
    img.format = PNG_FORMAT_RGB;
    picture p = {img.width, img.height, malloc(PNG_IMAGE_SIZE(img))};
    ck_assert(png_image_finish_read(&img, NULL, p.rgb, 0, NULL));
    return p;
}

/* Tiles are 28 x 28 pixels drawn 3x (84), with 2-pixel gutters. */
#define TILE 84
#define GRID(n) ((n) * TILE + ((n) + 1) * 2)

static const uint8_t *px(const picture *p, unsigned y, unsigned x)
{
    return p->rgb + ((size_t)y * p->w + x) * 3;
}

/* Tile (r, c) is grey (an input) or a heat map (r >= g >= b, with white at
 * its hottest pixel). */
static void check_tile(const picture *p, int r, int c, int heat)
{
    int white = 0;
    for (int y = 0; y < TILE; y++)
        for (int x = 0; x < TILE; x++) {
            const uint8_t *q = px(p, 2 + r * (TILE + 2) + y, 2 + c * (TILE + 2) + x);
            if (heat)
                ck_assert_msg(q[0] >= q[1] && q[1] >= q[2], "not the hot colour map");
            else
                ck_assert_msg(q[0] == q[1] && q[1] == q[2], "an input tile is not grey");
            white |= q[0] == 255 && q[1] == 255 && q[2] == 255;
        }
    if (heat)
        ck_assert_msg(white, "a heat map without its maximum");
}

static int count_lines(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *t = read_text(path);
    int n = 0;
    for (char *p = t; *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

static void check_reports(const json_t *reports)
{
    size_t i;
    json_t *r;
    int seen = 0;
    json_array_foreach(reports, i, r) {
        const char *kind = json_string_value(json_object_get(r, "kind"));
        json_t *d = json_object_get(r, "data");
        if (!strcmp(kind, "calibration")) {
            double t = json_number_value(json_object_get(d, "temperature"));
            ck_assert(t >= 0.05 && t <= 20.0);
            json_t *before = json_object_get(json_object_get(d, "clean"), "before");
            double ece = json_number_value(json_object_get(before, "ece"));
            ck_assert(ece >= 0.0 && ece <= 1.0);
            json_t *bins = json_object_get(before, "bins"), *b;
            ck_assert_int_eq(json_array_size(bins), 15);
            long long total = 0;
            size_t k;
            json_array_foreach(bins, k, b) total += json_integer_value(json_object_get(b, "count"));
            ck_assert_int_eq(total, 64);
            ck_assert_str_eq(json_string_value(json_object_get(d, "fit_on")), "validation");
            seen |= 1;
        } else if (!strcmp(kind, "corruptions")) {
            json_t *list = json_object_get(d, "corruptions"), *c;
            ck_assert_int_eq(json_array_size(list), 9);
            size_t k;
            json_array_foreach(list, k, c) {
                ck_assert_int_eq(json_array_size(json_object_get(c, "accuracy")), 5);
                double a = json_number_value(json_array_get(json_object_get(c, "accuracy"), 4));
                ck_assert(a >= 0.0 && a <= 1.0);
            }
            seen |= 2;
        } else if (!strcmp(kind, "explanations")) {
            json_t *ig = json_object_get(d, "ig"), *f = json_object_get(d, "fragility");
            ck_assert_int_eq(json_integer_value(json_object_get(d, "n")), 16);
            ck_assert(json_number_value(json_object_get(ig, "rel_error")) < 0.05);
            double rnd = json_number_value(json_object_get(json_object_get(f, "random"), "topk"));
            double adv = json_number_value(json_object_get(json_object_get(f, "adversarial"), "topk"));
            ck_assert(rnd >= 0.0 && rnd <= 1.0 && adv <= rnd);
            seen |= 4;
        }
    }
    ck_assert_int_eq(seen, 7);
}

START_TEST(test_beyond_accuracy)
{
    start_daemon();
    EXPECT(0, "submit", "--model", TINY_MODEL, "--epochs", "1", "--train-limit", "256",
           "--val-size", "64", "--val-robust-size", "32", "--steps", "2", "--seed", "3", "--wait");
    char ids[32], eids[32], dir[400];
    snprintf(ids, sizeof ids, "%lld", (long long)out_id());
    EXPECT(0, "eval", ids, "--attack", "fgsm", "--limit", "64", "--no-sanity", "--corruptions",
           "--explain", "--explain-limit", "16", "--ig-steps", "128", "--wait");
    snprintf(eids, sizeof eids, "%lld", (long long)out_id());
    EXPECT(0, "results", ids, "--json");
    json_t *v = out_json();
    check_reports(json_object_get(v, "reports"));
    json_decref(v);
    EXPECT(0, "results", ids);
    HAS(R.out, "calibration (job");
    HAS(R.out, "mean corruption accuracy");
    HAS(R.out, "saliency fragility");
    EXPECT(0, "compare", ids);
    HAS(R.out, "CORRUPT");
    ck_assert_ptr_null(strstr(R.out, "   -      -      -"));   /* every summary filled */
    /* Pictures: saliency beside the inputs, adversarial triplets, corruptions. */
    snprintf(dir, sizeof dir, "%s/pictures/sal", D.dir);
    EXPECT(0, "images", ids, "--saliency", "-n", "4", "-o", dir);
    HAS(R.out, "saliency.png");
    picture p = read_png(dir, "saliency.png");
    ck_assert_int_eq(p.w, GRID(8));
    ck_assert_int_eq(p.h, GRID(1));
    for (int c = 0; c < 8; c++)
        check_tile(&p, 0, c, c % 2);
    free(p.rgb);
    p = read_png(dir, "legend.png");
    ck_assert_int_eq(p.w, 260);
    free(p.rgb);
    ck_assert_int_eq(count_lines(dir, "index.tsv"), 2 + 4);
    snprintf(dir, sizeof dir, "%s/adv", D.dir);
    EXPECT(0, "images", ids, "--adversarial", "-n", "4", "--eps", "0.2", "-o", dir, "--json");
    v = out_json();
    ck_assert_int_eq(json_array_size(json_object_get(v, "files")), 4);
    json_decref(v);
    const char *grids[3] = {"clean.png", "adversarial.png", "perturbation.png"};
    for (int g = 0; g < 3; g++) {
        p = read_png(dir, grids[g]);
        ck_assert_int_eq(p.w, GRID(4));
        ck_assert_int_eq(p.h, GRID(1));
        for (int c = 0; c < 4; c++)
            check_tile(&p, 0, c, 0);
        free(p.rgb);
    }
    snprintf(dir, sizeof dir, "%s/cor", D.dir);
    EXPECT(0, "images", ids, "--corruptions", "-o", dir);
    p = read_png(dir, "corruptions.png");
    ck_assert_int_eq(p.w, GRID(6));
    ck_assert_int_eq(p.h, GRID(9));
    free(p.rgb);
    ck_assert_int_eq(count_lines(dir, "index.tsv"), 2 + 9);
    /* Integrated Gradients of a class the user names. */
    snprintf(dir, sizeof dir, "%s/ig", D.dir);
    EXPECT(0, "images", ids, "--ig", "-n", "2", "--class", "3", "-o", dir);
    char path[600];
    snprintf(path, sizeof path, "%s/index.tsv", dir);
    char *index = read_text(path);
    HAS(index, "explained");
    const char *row = strchr(strchr(index, '\n') + 1, '\n') + 1;   /* after the header */
    for (int i = 0; i < 2; i++, row = strchr(row, '\n') + 1) {
        char label[32], pred[32], explained[32];
        ck_assert_int_eq(sscanf(row, "%*d\t%31[^\t]\t%31[^\t]\t%31[^\t]", label, pred, explained), 3);
        ck_assert_str_eq(explained, "Dress");
    }
    free(index);
    EXPECT(2, "images", ids, "--ig", "--class", "x", "-o", dir);
    /* Fetching what an eval job drew; the errors. */
    snprintf(dir, sizeof dir, "%s/again", D.dir);
    EXPECT(1, "images", eids, "-o", dir);
    HAS(R.err, "drew no pictures");
    EXPECT(2, "images", ids, "-o", dir);
    EXPECT(2, "images", ids, "--ig");
    HAS(R.err, "missing '-o DIR'");
    EXPECT(2, "images", ids, "--ig", "--saliency", "-o", dir);
    EXPECT(2, "images", ids, "--ig", "-n", "0", "-o", dir);
    EXPECT(1, "images", "999", "--ig", "-o", dir);
    EXPECT(2, "eval", ids, "--attack", "pgd", "--explain-limit", "0");
    HAS(R.err, "invalid 'explain_limit'");
}
END_TEST

START_TEST(test_default_submit)
{
    start_daemon();
    ck_assert_int_eq(CTL("submit"), 0);
    int64_t id = out_id();
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    EXPECT(0, "status", ids, "--json");
    json_t *v = out_json(), *spec = json_object_get(v, "spec");
    const char *state = json_string_value(json_object_get(v, "state"));
    ck_assert_msg(!strcmp(state, "queued") || !strcmp(state, "running"), "%s", state);
    ck_assert_str_eq(json_string_value(json_object_get(spec, "model")), "cnn-small");
    ck_assert_str_eq(json_string_value(json_object_get(spec, "dataset")), "fashion-mnist");
    ck_assert_str_eq(json_string_value(json_object_get(spec, "method")), "pgd");
    ck_assert_int_eq(json_integer_value(json_object_get(spec, "steps")), 7);
    ck_assert(json_number_value(json_object_get(spec, "eps")) == 0.1);
    json_decref(v);
    EXPECT(0, "cancel", ids, "--json");
    v = out_json();
    ck_assert_int_eq(json_integer_value(json_object_get(v, "job")), id);
    json_decref(v);
    /* Cancelled is not success. */
    EXPECT(1, "watch", ids);
    HAS(R.out, "cancelled");
    EXPECT(1, "cancel", ids);
    HAS(R.err, "conflict: job");
}
END_TEST

static Suite *advctl_suite(void)
{
    Suite *s = suite_create("advctl");
    TCase *tc = tcase_create("advctl");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, ctl_setup, teardown);
    tcase_add_test(tc, test_no_daemon);
    tcase_add_test(tc, test_usage);
    tcase_add_test(tc, test_ping_version_missing);
    tcase_add_test(tc, test_train_flow);
    tcase_add_test(tc, test_default_submit);
    tcase_add_test(tc, test_beyond_accuracy);
    suite_add_tcase(s, tc);
    /* Its own case, so that CK_RUN_CASE=import runs it alone. */
    TCase *import = tcase_create("import");
    tcase_set_timeout(import, 300);
    tcase_add_checked_fixture(import, ctl_setup, teardown);
    tcase_add_test(import, test_import_round_trip);
    suite_add_tcase(s, import);
    return s;
}

ADV_TEST_MAIN(advctl_suite)
