/*
 * test_shared.c - advd as a shared service (issue 11), against a real
 * daemon: jobs belong to the uid that submitted them, another user's
 * cancel, evaluation and export are forbidden, list --mine, fair share
 * between users, the per-user queue limit, too_large at submit from the
 * memory estimate, and a checkpoint over 1 MiB exported through the socket.
 *
 * Other users are real uids: the test runs as root, and each client is
 * bin/advctl (ADVCTL_BIN) forked with setgroups/setgid/setuid to an
 * unprivileged uid in the socket's group (nogroup, mode 0660), as members
 * of group advd reach a system service. Not root: every test is skipped.
 */
#define _GNU_SOURCE
#include "daemon/store.h"
#include "proto/proto.h"
#include "testutil.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "core/state.h"

#include "daemon_harness.h"

#define UID_A 61001
#define UID_B 61002
#define TINY "--model \"conv4k3p1 relu maxpool2 fc10\""
#define GROUP "nogroup"

typedef struct {
    int status;
    char out[1 << 16], err[1 << 14];
} run_t;

static run_t R;

/* A copy of ADVCTL_BIN in the test's directory (mode 0711): the build
 * tree may sit below a folder other users cannot enter. */
static const char *advctl_bin(void)
{
    static char copy[400];
    const char *b = getenv("ADVCTL_BIN");
    snprintf(copy, sizeof copy, "%s/advctl", D.dir);
    if (access(copy, X_OK) == 0)
        return copy;
    FILE *in = fopen(b && *b ? b : "bin/advctl", "rb"), *out = fopen(copy, "wb");
    ck_assert(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_int_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(chmod(copy, 0755), 0);
    return copy;
}

/* Read all of fd into buf (NUL-terminated). */
static void slurp(int fd, char *buf, size_t len)
{
    size_t n = 0;
    ssize_t r;
    while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
}

/* bin/advctl --socket D.sock ARGS (a shell word list) as uid (0: root);
 * its exit status, stdout and stderr in R. */
static int ctl_as(unsigned uid, const char *args)
{
    int out[2], err[2];
    const char *bin = advctl_bin();
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(err), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct group *g = getgrnam(GROUP);
        gid_t gid = g ? g->gr_gid : 65534;
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (uid && (setgroups(1, &gid) || setgid(gid) || setuid(uid)))
            _exit(120);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "cd %s && exec %s --socket %s %s", D.dir, bin, D.sock,
                 args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    slurp(err[0], R.err, sizeof R.err);
    slurp(out[0], R.out, sizeof R.out);
    int st;
    waitpid(pid, &st, 0);
    R.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return R.status;
}

#define HAS(s, needle) ck_assert_msg(strstr((s), (needle)), "'%s' lacks '%s'", (s), (needle))
#define EXPECT(st, uid, args)                                                                 \
    ck_assert_msg(ctl_as(uid, args) == (st), "advctl %s as %u: status %d, want %d\n%s%s",    \
                  args, (unsigned)(uid), R.status, st, R.out, R.err)

/* A job id printed by submit. */
static long long submit_as(unsigned uid, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "submit %s", args);
    EXPECT(0, uid, cmd);
    return atoll(R.out);
}

/* The daemon serving other users: the socket in group nogroup, mode
 * 0660, its directory passable by anyone. */
static void start_shared(const char **more)
{
    if (geteuid() != 0)
        return;
    const char *extra[16] = {"--socket-group", GROUP, "--socket-mode", "0660"};
    int n = 4;
    for (int i = 0; more && more[i]; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    ck_assert_int_eq(chmod(D.dir, 0711), 0);
    start_daemon_with(extra);
}

#define NEED_ROOT()                                                                           \
    do {                                                                                      \
        if (geteuid() != 0) {                                                                 \
            fprintf(stderr, "%s: skipped (needs root to act as other uids)\n", __func__);    \
            return;                                                                           \
        }                                                                                     \
    } while (0)

/* Wait for a job to reach a final state; its "state" word. */
static const char *wait_job(long long id)
{
    static char state[32];
    char cmd[64];
    snprintf(cmd, sizeof cmd, "watch %lld --json", id);
    ctl_as(0, cmd);
    snprintf(cmd, sizeof cmd, "status %lld --json", id);
    EXPECT(0, 0, cmd);
    json_t *j = json_loads(R.out, 0, NULL);
    snprintf(state, sizeof state, "%s", json_string_value(json_object_get(j, "state")));
    json_decref(j);
    return state;
}

/* --------------------------------------------------------------- tests */

START_TEST(test_owners)
{
    NEED_ROOT();
    const char *more[] = {"--workers", "1", NULL};
    start_shared(more);
    /* A long job of A's, queued behind nothing: running or queued. */
    long long a = submit_as(UID_A, TINY " --epochs 200 --train-limit 256 --val-size 0"
                                       " --val-robust-size 0 --batch 64");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cancel %lld", a);
    EXPECT(1, UID_B, cmd);
    HAS(R.err, "forbidden");
    HAS(R.err, "belongs to '61001'");
    snprintf(cmd, sizeof cmd, "export %lld -o m.safetensors", a);
    EXPECT(1, UID_B, cmd);
    HAS(R.err, "forbidden");
    snprintf(cmd, sizeof cmd, "eval %lld --attack pgd --limit 10", a);
    EXPECT(1, UID_B, cmd);
    HAS(R.err, "forbidden");
    snprintf(cmd, sizeof cmd, "images %lld --adversarial -o pics", a);
    EXPECT(1, UID_B, cmd);
    HAS(R.err, "forbidden");
    /* Everyone sees every job, with its owner; --mine only one's own. */
    long long b = submit_as(UID_B, TINY " --epochs 1 --train-limit 256 --val-size 64"
                                       " --val-robust-size 32");
    EXPECT(0, UID_B, "list --json");
    json_t *l = json_loads(R.out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "jobs")), 2);
    json_decref(l);
    EXPECT(0, UID_B, "list --mine --json");
    l = json_loads(R.out, 0, NULL);
    json_t *jobs = json_object_get(l, "jobs");
    ck_assert_int_eq(json_array_size(jobs), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(jobs, 0), "id")), b);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(jobs, 0), "owner")),
                     UID_B);
    json_decref(l);
    EXPECT(0, UID_A, "list");
    HAS(R.out, "USER");
    HAS(R.out, "61002");
    /* The owner and root may cancel. */
    snprintf(cmd, sizeof cmd, "cancel %lld", b);
    EXPECT(0, 0, cmd);
    snprintf(cmd, sizeof cmd, "cancel %lld", a);
    EXPECT(0, UID_A, cmd);
    ck_assert_str_eq(wait_job(a), "cancelled");
}
END_TEST

/* With one worker, after A's first job ran, B's job goes before A's other
 * queued ones, though it was submitted last and at a lower priority. */
START_TEST(test_fair_share)
{
    NEED_ROOT();
    const char *more[] = {"--workers", "1", NULL};
    start_shared(more);
    const char *job = TINY " --epochs 1 --train-limit 256 --val-size 64 --val-robust-size 32"
                           " --priority 5";
    long long a1 = submit_as(UID_A, job), a2 = submit_as(UID_A, job), a3 = submit_as(UID_A, job);
    long long b1 = submit_as(UID_B, TINY " --epochs 1 --train-limit 256 --val-size 64"
                                         " --val-robust-size 32");
    const long long all[] = {a1, a2, a3, b1};
    double started[4];
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(wait_job(all[i]), "succeeded");
        char cmd[64];
        snprintf(cmd, sizeof cmd, "status %lld --json", all[i]);
        EXPECT(0, 0, cmd);
        json_t *j = json_loads(R.out, 0, NULL);
        started[i] = json_number_value(json_object_get(j, "started"));
        json_decref(j);
    }
    /* a1 first (nobody had run), then b1, then a2 and a3. */
    ck_assert(started[0] < started[3]);
    ck_assert_msg(started[3] < started[1] && started[3] < started[2],
                  "b1 started at %.3f, after a2 %.3f or a3 %.3f", started[3], started[1],
                  started[2]);
}
END_TEST

START_TEST(test_limits)
{
    NEED_ROOT();
    const char *more[] = {"--workers", "1", "--max-queued-per-user", "2", NULL};
    start_shared(more);
    /* A job that would need hundreds of GiB is refused at submit. */
    EXPECT(1, UID_A, "submit --batch 1000000");
    HAS(R.err, "too_large");
    HAS(R.err, "max_job_memory");
    HAS(R.err, "batch of 1000000");
    /* The largest model the grammar allows is answered at once, the
     * daemon still serving. */
    EXPECT(2, UID_A, "submit --model 'fc100000 fc100000 fc100000 fc10'");
    HAS(R.err, "'model'");
    const char *blocker = TINY " --epochs 100 --train-limit 256 --val-size 0"
                               " --val-robust-size 0";
    /* B's long job holds the one worker; A may queue two, not three. */
    long long b = submit_as(UID_B, blocker);
    long long a1 = submit_as(UID_A, blocker), a2 = submit_as(UID_A, blocker);
    EXPECT(1, UID_A, "submit " TINY);
    HAS(R.err, "too_large");
    HAS(R.err, "max_queued_per_user");
    /* Root is not limited; B is another user with its own count. */
    submit_as(UID_B, blocker);
    const long long ids[] = {b, a1, a2};
    for (int i = 0; i < 3; i++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "cancel %lld", ids[i]);
        EXPECT(0, 0, cmd);
    }
    EXPECT(0, 0, "ping");
}
END_TEST

/* A checkpoint of about 5 MB (1.25 M parameters) comes through the
 * socket in pieces: advctl export writes it as the connecting user, and
 * its tensors equal the stored checkpoint's. */
START_TEST(test_large_export)
{
    NEED_ROOT();
    start_shared(NULL);
    long long id = submit_as(UID_A, "--model 'conv4k3p1 relu fc400 relu fc10' --epochs 1"
                                    " --train-limit 256 --val-size 64 --val-robust-size 32"
                                    " --method clean");
    ck_assert_str_eq(wait_job(id), "succeeded");
    char cmd[256], path[400];
    snprintf(path, sizeof path, "%s/a", D.dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(chown(path, UID_A, 0), 0);
    snprintf(cmd, sizeof cmd, "export %lld -o a/big.safetensors", id);
    EXPECT(0, UID_A, cmd);
    snprintf(path, sizeof path, "%s/a/big.safetensors", D.dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_uid, UID_A); /* written by the user, not the daemon */
    ck_assert_int_gt(st.st_size, 1 << 20);
    FILE *f = fopen(path, "rb");
    uint8_t *file = malloc((size_t)st.st_size);
    ck_assert_int_eq(fread(file, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    uint64_t hlen = 0;
    memcpy(&hlen, file, 8);
    json_t *h = json_loadb((const char *)file + 8, hlen, 0, NULL);
    ck_assert_ptr_nonnull(h);
    const json_t *w = json_object_get(h, "3.weight");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(w, "shape"), 0)), 400);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(w, "shape"), 1)), 3136);
    /* The weights against the checkpoint loaded from the database. */
    adv_store *s;
    adv_ckpt c;
    char err[CORE_ERRLEN];
    ck_assert_int_eq(adv_store_open(D.db, 5000, &s, err), 0);
    ck_assert_int_eq(adv_store_ckpt_get(s, id, (adv_ckpt_ref){ADV_CKPT_LATEST, 0}, &c, err), 0);
    core_model *m;
    ck_assert_msg(core_state_model(c.state, c.size, &m, err) == 0, "%s", err);
    ck_assert_int_eq((size_t)st.st_size, 8 + hlen + m->nparams * sizeof(float));
    ck_assert(memcmp(file + 8 + hlen, m->params, m->nparams * sizeof(float)) == 0);
    core_model_free(m);
    adv_ckpt_clear(&c);
    adv_store_close(s);
    json_decref(h);
    free(file);
}
END_TEST

static Suite *suite_shared(void)
{
    Suite *s = suite_create("shared");
    TCase *tc = tcase_create("shared");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_owners);
    tcase_add_test(tc, test_fair_share);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_large_export);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_shared)
