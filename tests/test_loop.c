/*
 * test_loop.c - advd's event loop against clients that behave badly rather
 * than send bad bytes (issue 19), and who may connect at all (issue 11):
 * a real bin/advd (ADV_BIN) on a temporary socket and database, each test
 * asserting what a user must get, never how fast.
 *
 *   half-close      2000 pipelined pings then shutdown(SHUT_WR): every answer
 *   crowd           1000 idle and 100 trickling connections held: a new
 *                   `advctl ping` works; the memory per idle connection
 *   dead peers      a burst of connect-then-close takes no live client's slot
 *   refusals        one error line each, counted in `info`, logged at a
 *                   bounded rate
 *   fairness        a pipelined burst and another client's requests: all served
 *   timeouts        a partial line is cut after line_timeout with an error
 *                   line; an idle client stays, or with idle_timeout is cut
 *                   unless it watches a job
 *   largest spec    answered (accepted or too_large) without the daemon
 *                   growing by more than a few MiB
 *   admission       (as root) a non-member is refused with `forbidden`, a
 *                   member of the socket's group admitted, the per-user limit
 *                   refuses the (N+1)th connection while root still connects;
 *                   an unknown socket group stops the daemon at start
 *   worker set-up   a stop while a worker builds its model ends it at once
 */
#define _GNU_SOURCE
#include "proto/proto.h"
#include "testutil.h"

#include <grp.h>
#include <sys/stat.h>

#include "daemon_harness.h"

/* A tiny job that runs for a while (many short epochs), for watching. */
#define LONG_JOB                                                                              \
    "{\"kind\":\"train\",\"name\":\"long\",\"model\":\"conv4k3p1 relu maxpool2 fc10\","       \
    "\"epochs\":500,\"train_limit\":256,\"val_size\":0,\"val_robust_size\":0,\"batch\":64,"   \
    "\"steps\":1,\"seed\":3}"

typedef struct {
    int fd;
    adv_linebuf lb;
} conn;

static void conn_init(conn *c, int fd)
{
    c->fd = fd;
    adv_linebuf_init(&c->lb, 64 << 20);
}

static void conn_close(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    adv_linebuf_free(&c->lb);
}

static json_t *conn_next(conn *c, int timeout_ms)
{
    return harness_next(c->fd, &c->lb, timeout_ms);
}

/* Connected and greeted. */
static void conn_open(conn *c)
{
    int fd = harness_connect(D.sock);
    ck_assert_msg(fd >= 0, "cannot connect to advd: %s", strerror(errno));
    conn_init(c, fd);
    json_t *g = conn_next(c, 10000);
    ck_assert_msg(g && json_object_get(g, "hello"), "no greeting from advd");
    json_decref(g);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        ck_assert_int_gt(w, 0);
        p += w;
        n -= (size_t)w;
    }
}

/* The answer to one request line (events before it are skipped). */
static json_t *conn_call(conn *c, const char *line)
{
    send_all(c->fd, line, strlen(line));
    for (;;) {
        json_t *r = conn_next(c, 20000);
        ck_assert_msg(r != NULL, "no answer to %s", line);
        if (json_object_get(r, "ok"))
            return r;
        json_decref(r);
    }
}

static const char *error_code(const json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

static const char *error_message(const json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "message"));
}

static void expect_error(json_t *r, const char *code, const char *part)
{
    ck_assert_msg(r != NULL, "expected an error %s, got nothing", code);
    ck_assert_msg(json_is_false(json_object_get(r, "ok")), "expected an error %s", code);
    ck_assert_str_eq(error_code(r), code);
    ck_assert_msg(strstr(error_message(r), part), "'%s' does not say '%s'", error_message(r),
                  part);
    json_decref(r);
}

static void expect_pong(conn *c)
{
    json_t *r = conn_call(c, "{\"id\":7,\"cmd\":\"ping\"}\n");
    ck_assert_msg(json_is_true(json_object_get(r, "ok")), "ping failed");
    json_decref(r);
}

/* One counter of the info request: group "refused" or "closed", or NULL
 * for a top-level one. */
static long long info_count(const char *group, const char *name)
{
    conn c;
    conn_open(&c);
    json_t *r = conn_call(&c, "{\"id\":1,\"cmd\":\"info\"}\n");
    json_t *res = json_object_get(r, "result");
    json_t *v = json_object_get(group ? json_object_get(res, group) : res, name);
    ck_assert_msg(json_is_integer(v), "info has no '%s'", name);
    long long n = json_integer_value(v);
    json_decref(r);
    conn_close(&c);
    return n;
}

static int count_in_log(const char *needle)
{
    int n = 0;
    for (const char *p = read_log(); (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ------------------------------------------------------------ half-close */

START_TEST(test_half_close)
{
    start_daemon_with(NULL);
    enum { N = 2000 };
    char *reqs = malloc((size_t)N * 48), *p = reqs;
    for (int i = 1; i <= N; i++)
        p += sprintf(p, "{\"id\":%d,\"cmd\":\"ping\"}\n", i);
    /* The last request without its newline is answered too. */
    p[-1] = '\0';
    conn c;
    conn_open(&c);
    send_all(c.fd, reqs, strlen(reqs));
    ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
    int got = 0;
    json_t *r;
    while ((r = conn_next(&c, 10000))) {
        ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), got + 1);
        ck_assert(json_is_true(json_object_get(r, "ok")));
        json_decref(r);
        got++;
    }
    ck_assert_int_eq(got, N);
    conn_close(&c);
    free(reqs);
}
END_TEST

/* ------------------------------------------------------------- the crowd */

static int run_advctl_ping(void)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        const char *bin = getenv("ADVCTL_BIN");
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(bin && *bin ? bin : "bin/advctl", "advctl", "--socket", D.sock, "ping",
              (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

START_TEST(test_crowd)
{
    enum { IDLE = 1000, SLOW = 100 };
    harness_raise_nofile(IDLE + SLOW + 64);
    const char *opts[] = {"--max-clients", "2048", NULL};
    start_daemon_with(opts);
    conn probe;
    conn_open(&probe);
    expect_pong(&probe);
    long before = harness_rss_kib(D.pid);
    int *idle = malloc(sizeof(int) * IDLE), slow[SLOW];
    for (int i = 0; i < IDLE; i++) {
        idle[i] = harness_connect(D.sock);
        ck_assert_msg(idle[i] >= 0, "connection %d: %s", i, strerror(errno));
    }
    expect_pong(&probe); /* the daemon has taken them all in */
    long after = harness_rss_kib(D.pid);
    double per = (double)(after - before) * 1024.0 / IDLE;
    printf("test_loop: %d idle connections: %ld KiB of daemon RSS, %.0f bytes each\n", IDLE,
           after - before, per);
    ck_assert_msg(per < 8192, "an idle connection costs %.0f bytes", per);
    for (int i = 0; i < SLOW; i++) {
        slow[i] = harness_connect(D.sock);
        ck_assert_int_ge(slow[i], 0);
    }
    /* The slow ones trickle a request a byte at a time meanwhile. */
    const char *req = "{\"id\":1,\"cmd\":\"ping\"}";
    for (size_t b = 0; b < 4; b++) {
        for (int i = 0; i < SLOW; i++)
            send_all(slow[i], req + b, 1);
        ck_assert_int_eq(run_advctl_ping(), 0);
        usleep(100000);
    }
    conn fresh;
    conn_open(&fresh);
    expect_pong(&fresh);
    ck_assert_int_eq(info_count(NULL, "clients"), IDLE + SLOW + 3);
    conn_close(&fresh);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    for (int i = 0; i < SLOW; i++)
        close(slow[i]);
    free(idle);
    conn_close(&probe);
}
END_TEST

/* A burst of connect-then-close takes no slot from the live clients, and
 * the backlog takes the burst: no non-blocking connect fails with EAGAIN. */
START_TEST(test_dead_peers)
{
    const char *opts[] = {"--max-clients", "20", NULL};
    start_daemon_with(opts);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s", (int)sizeof sa.sun_path - 1, D.sock);
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect %d: %s", i,
                      strerror(errno));
        close(fd);
    }
    conn live[19];
    for (int i = 0; i < 19; i++)
        conn_open(&live[i]);
    expect_pong(&live[18]);
    ck_assert_int_eq(count_in_log("refused a connection"), 0);
    for (int i = 0; i < 19; i++)
        conn_close(&live[i]);
}
END_TEST

/* Each refused client gets one error line; the log stays short. */
START_TEST(test_refusals_counted)
{
    const char *opts[] = {"--max-clients", "2", NULL};
    start_daemon_with(opts);
    conn held[2];
    conn_open(&held[0]);
    conn_open(&held[1]);
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        conn c;
        int fd = harness_connect(D.sock);
        ck_assert_int_ge(fd, 0);
        conn_init(&c, fd);
        expect_error(conn_next(&c, 5000), "conflict", "too many connections (at most 2)");
        ck_assert_ptr_null(conn_next(&c, 5000));
        conn_close(&c);
    }
    conn_close(&held[1]); /* room for info's own connection */
    ck_assert_int_eq(info_count("refused", "max_clients"), N);
    /* The rest are summed up in a line that comes within two seconds. */
    double t0 = now_s();
    while (!count_in_log("more connections refused (max_clients)") && now_s() - t0 < 5)
        usleep(50000);
    ck_assert_int_ge(count_in_log("more connections refused (max_clients)"), 1);
    int lines = count_in_log("refused a connection");
    ck_assert_msg(lines >= 1 && lines <= 5, "%d log lines for %d refusals", lines, N);
    conn_close(&held[0]);
}
END_TEST

/* ------------------------------------------------------------ fairness */

START_TEST(test_burst_and_another_client)
{
    start_daemon_with(NULL);
    enum { N = 5000, M = 50 };
    char *reqs = malloc((size_t)N * 48), *p = reqs;
    for (int i = 1; i <= N; i++)
        p += sprintf(p, "{\"id\":%d,\"cmd\":\"%s\"}\n", i, i % 10 ? "ping" : "list");
    conn greedy, other;
    conn_open(&greedy);
    conn_open(&other);
    send_all(greedy.fd, reqs, strlen(reqs));
    for (int i = 0; i < M; i++)
        expect_pong(&other);
    for (int i = 1; i <= N; i++) {
        json_t *r = conn_next(&greedy, 20000);
        ck_assert_msg(r != NULL, "answer %d of %d missing", i, N);
        ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), i);
        ck_assert(json_is_true(json_object_get(r, "ok")));
        json_decref(r);
    }
    conn_close(&greedy);
    conn_close(&other);
    free(reqs);
}
END_TEST

/* ------------------------------------------------------------ timeouts */

START_TEST(test_line_timeout)
{
    const char *opts[] = {"--line-timeout", "0.5", NULL};
    start_daemon_with(opts);
    conn idle, slow;
    conn_open(&idle);
    conn_open(&slow);
    send_all(slow.fd, "{\"id\":1,\"cmd\":", 14);
    expect_error(conn_next(&slow, 10000), "bad_request", "line_timeout");
    ck_assert_ptr_null(conn_next(&slow, 5000));
    /* Without idle_timeout a quiet client stays. */
    expect_pong(&idle);
    ck_assert_int_eq(info_count("closed", "line_timeout"), 1);
    conn_close(&slow);
    conn_close(&idle);
}
END_TEST

START_TEST(test_idle_timeout_spares_watchers)
{
    const char *opts[] = {"--idle-timeout", "0.5", NULL};
    start_daemon_with(opts);
    conn quiet, watcher;
    conn_open(&quiet);
    conn_open(&watcher);
    json_t *r = conn_call(&watcher, "{\"id\":1,\"cmd\":\"submit\",\"spec\":" LONG_JOB "}\n");
    json_int_t job = json_integer_value(json_object_get(json_object_get(r, "result"), "job"));
    ck_assert_int_gt(job, 0);
    json_decref(r);
    char line[128];
    snprintf(line, sizeof line, "{\"id\":2,\"cmd\":\"watch\",\"job\":%lld}\n", (long long)job);
    json_decref(conn_call(&watcher, line));
    expect_error(conn_next(&quiet, 10000), "conflict", "idle_timeout");
    ck_assert_ptr_null(conn_next(&quiet, 5000));
    usleep(1500 * 1000); /* three idle timeouts */
    snprintf(line, sizeof line, "{\"id\":3,\"cmd\":\"cancel\",\"job\":%lld}\n", (long long)job);
    r = conn_call(&watcher, line);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    conn_close(&quiet);
    conn_close(&watcher);
}
END_TEST

/* ---------------------------------------------------------- largest spec */

/* The grammar's limit: fully connected layers as wide as one layer's
 * weights allow (63245 x 63245 < 4e9), as many as the model string holds. */
START_TEST(test_largest_spec)
{
    start_daemon_with(NULL);
    conn c;
    conn_open(&c);
    expect_pong(&c);
    char model[1100] = "";
    for (int i = 0; i < 62 && strlen(model) + 8 + 4 < 1007; i++)
        strcat(model, "fc63245 ");
    strcat(model, "fc10");
    char *line = malloc(4096);
    snprintf(line, 4096,
             "{\"id\":1,\"cmd\":\"submit\",\"spec\":{\"kind\":\"train\",\"model\":\"%s\","
             "\"epochs\":1}}\n",
             model);
    long before = harness_rss_kib(D.pid);
    json_t *r = conn_call(&c, line);
    long after = harness_rss_kib(D.pid);
    if (json_is_true(json_object_get(r, "ok"))) {
        json_int_t job = json_integer_value(json_object_get(json_object_get(r, "result"), "job"));
        snprintf(line, 4096, "{\"id\":2,\"cmd\":\"cancel\",\"job\":%lld}\n", (long long)job);
        json_decref(conn_call(&c, line));
    } else {
        ck_assert_msg(error_code(r) && !strcmp(error_code(r), "too_large"),
                      "the largest spec: %s: %s", error_code(r), error_message(r));
    }
    json_decref(r);
    printf("test_loop: the largest spec grew the daemon by %ld KiB\n", after - before);
    ck_assert_msg(after - before < 8 * 1024, "the daemon grew by %ld KiB", after - before);
    expect_pong(&c);
    conn_close(&c);
    free(line);
}
END_TEST

/* ------------------------------------------------------------- admission */

/* The first line on c, compact, or "nothing", as one line of f. */
static void report_line(FILE *f, conn *c)
{
    json_t *r = conn_next(c, 5000);
    char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
    fprintf(f, "%s\n", s ? s : "nothing");
    free(s);
    json_decref(r);
}

/* In a child running as uid/gid 65534 (with group `extra` too unless -1):
 * open n connections and report the first line of each, then the answer
 * to a ping on the first, one line each, in out. */
static void as_nobody(gid_t extra, int n, char *out, size_t len)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_IGN);
        FILE *f = fdopen(fds[1], "w");
        if (setgroups(extra == (gid_t)-1 ? 0 : 1, &extra) || setgid(65534) || setuid(65534))
            _exit(2);
        conn c[16];
        for (int i = 0; i < n && i < 16; i++) {
            int fd = harness_connect(D.sock);
            c[i].fd = -1;
            if (fd < 0)
                fprintf(f, "connect: %s\n", strerror(errno));
            else {
                conn_init(&c[i], fd);
                report_line(f, &c[i]);
            }
        }
        static const char ping[] = "{\"id\":9,\"cmd\":\"ping\"}\n";
        /* A refused connection has nothing more: its report is "nothing". */
        if (n > 0 && c[0].fd >= 0) {
            if (write(c[0].fd, ping, sizeof ping - 1) < 0)
                fprintf(f, "write: %s\n", strerror(errno));
            report_line(f, &c[0]);
        }
        fclose(f);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < len && (k = read(fds[0], out + got, len - 1 - got)) > 0)
        got += (size_t)k;
    out[got] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: %s", out);
}

static gid_t users_group(void)
{
    struct group *g = getgrnam("users");
    ck_assert_msg(g != NULL, "no group 'users' on this machine");
    return g->gr_gid;
}

/* Root starts the daemon; uid 65534 must reach the socket's folder. */
static void start_shared(const char *mode, const char *per_user)
{
    const char *opts[] = {"--socket-group", "users", "--socket-mode", mode,
                          "--max-clients-per-user", per_user, NULL};
    ck_assert_int_eq(chmod(D.dir, 0755), 0);
    start_daemon_with(opts);
}

START_TEST(test_forbidden)
{
    if (geteuid() != 0)
        return;
    start_shared("0666", "8");
    char out[4096];
    as_nobody((gid_t)-1, 1, out, sizeof out);
    ck_assert_msg(strstr(out, "\"code\":\"forbidden\""), "got %s", out);
    ck_assert_msg(strstr(out, "connections from uid 65534 are not allowed"), "got %s", out);
    ck_assert_msg(strstr(out, "nothing"), "the connection stayed open: %s", out);
    ck_assert_int_eq(info_count("refused", "forbidden"), 1);
}
END_TEST

START_TEST(test_group_member)
{
    if (geteuid() != 0)
        return;
    gid_t users = users_group();
    start_shared("0660", "8");
    struct stat st;
    ck_assert_int_eq(stat(D.sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0660);
    ck_assert_int_eq(st.st_gid, users);
    char out[4096];
    as_nobody(users, 1, out, sizeof out);
    ck_assert_msg(strstr(out, "\"hello\":\"advd\""), "no greeting for a member: %s", out);
    ck_assert_msg(strstr(out, "\"pong\":true"), "no pong for a member: %s", out);
    /* Outside the group the socket file itself keeps them away. */
    as_nobody((gid_t)-1, 1, out, sizeof out);
    ck_assert_msg(strstr(out, "connect: Permission denied"), "got %s", out);
}
END_TEST

START_TEST(test_per_user_limit)
{
    if (geteuid() != 0)
        return;
    start_shared("0660", "3");
    char out[8192];
    as_nobody(users_group(), 4, out, sizeof out);
    int greeted = 0;
    for (const char *p = out; (p = strstr(p, "\"hello\":\"advd\"")); p++)
        greeted++;
    ck_assert_msg(greeted == 3, "%d of 4 greeted: %s", greeted, out);
    ck_assert_msg(strstr(out, "too many connections from uid 65534 (at most 3 per user)"),
                  "got %s", out);
    /* Root is not held to it. */
    conn c[5];
    for (int i = 0; i < 5; i++)
        conn_open(&c[i]);
    expect_pong(&c[4]);
    for (int i = 0; i < 5; i++)
        conn_close(&c[i]);
    ck_assert_int_eq(info_count("refused", "max_clients_per_user"), 1);
}
END_TEST

START_TEST(test_unknown_group)
{
    const char *opts[] = {"--socket-group", "no-such-group-advd", NULL};
    int status;
    pid_t p = spawn_daemon(D.sock, D.db, D.log, opts);
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    ck_assert_msg(strstr(read_log(), "no group 'no-such-group-advd'"), "%s", read_log());
    ck_assert_int_ne(access(D.sock, F_OK), 0);
}
END_TEST

/* ------------------------------------------------------------- worker */

/* A stop that comes while a worker sets its job up (here: building a model
 * of 20 M parameters, seconds of work) ends it before any training, with
 * done "stopped", instead of after the set-up and a first batch. */
START_TEST(test_stop_during_setup)
{
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(advd_bin(), "advd", "--worker", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    static const char job[] =
        "{\"type\":\"job\",\"v\":1,\"job\":1,\"attempt\":1,\"threads\":1,"
        "\"final_eval_limit\":10,\"ckpt_dir\":\"/nonexistent\",\"spec\":"
        "{\"kind\":\"train\",\"model\":\"fc4000 fc4000 fc10\",\"epochs\":1}}\n"
        "{\"type\":\"stop\"}\n";
    send_all(in[1], job, sizeof job - 1);
    adv_linebuf lb;
    adv_linebuf_init(&lb, 1 << 20);
    json_t *first = harness_next(out[0], &lb, 60000);
    ck_assert_msg(first != NULL, "the worker said nothing");
    ck_assert_str_eq(json_string_value(json_object_get(first, "type")), "done");
    ck_assert_str_eq(json_string_value(json_object_get(first, "status")), "stopped");
    json_decref(first);
    close(in[1]);
    int status;
    ck_assert_int_eq(waitpid(p, &status, 0), p);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(out[0]);
    adv_linebuf_free(&lb);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc = tcase_create("advd");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_half_close);
    tcase_add_test(tc, test_crowd);
    tcase_add_test(tc, test_dead_peers);
    tcase_add_test(tc, test_refusals_counted);
    tcase_add_test(tc, test_burst_and_another_client);
    tcase_add_test(tc, test_line_timeout);
    tcase_add_test(tc, test_idle_timeout_spares_watchers);
    tcase_add_test(tc, test_largest_spec);
    tcase_add_test(tc, test_forbidden);
    tcase_add_test(tc, test_group_member);
    tcase_add_test(tc, test_per_user_limit);
    tcase_add_test(tc, test_unknown_group);
    tcase_add_test(tc, test_stop_during_setup);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(loop_suite)
