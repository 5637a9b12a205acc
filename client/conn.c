/*
 * conn.c - advctl's connection to advd: the socket path, connecting and
 * checking the greeting, one request and its response, pushed events.
 * Framing and message parsing are proto's (adv_linebuf, adv_reply_parse):
 * the client parses exactly what the daemon writes, with the same code.
 */
#include "client/advctl.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* $ADVD_SOCKET; else the user's own daemon ($XDG_RUNTIME_DIR/advd.sock,
 * else /tmp/advd-UID.sock) when that socket exists; else the system
 * service's socket when it exists; else the user's default (for the error
 * message that tells how to start a daemon). */
void ctl_default_socket(char *out, size_t len)
{
    const char *env = getenv("ADVD_SOCKET"), *run = getenv("XDG_RUNTIME_DIR");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return;
    }
    if (run && *run)
        snprintf(out, len, "%s/advd.sock", run);
    else
        snprintf(out, len, "/tmp/advd-%u.sock", (unsigned)getuid());
    if (access(out, F_OK) != 0 && access(ADV_SYSTEM_SOCKET, F_OK) == 0)
        snprintf(out, len, "%s", ADV_SYSTEM_SOCKET);
}

static int unreachable(const ctl *c, const char *why)
{
    fprintf(stderr,
            "advctl: cannot reach advd at '%s': %s\n"
            "advctl: start it with `bin/advd` (or `advd --socket %s`), or point advctl at it "
            "with --socket PATH or ADVD_SOCKET\n",
            c->socket_path, why, c->socket_path);
    return ADVCTL_UNREACHABLE;
}

/* Read more bytes into the line buffer: 1, 0 at EOF, -1 on error. */
static int fill(ctl *c)
{
    char buf[65536];
    ssize_t n;
    do
        n = read(c->fd, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n == 0 ? 0 : -1;
    adv_error e;
    return adv_linebuf_feed(&c->lines, buf, (size_t)n, &e) ? -1 : 1;
}

/* The next message from the daemon: 0 with *r, -1 at EOF or on a bad line
 * (message printed). */
static int next_reply(ctl *c, adv_reply *r)
{
    const char *line;
    size_t len;
    adv_error e;
    for (;;) {
        int k = adv_linebuf_next(&c->lines, &line, &len, &e);
        if (k < 0)
            return ctl_error("bad line from advd: %s", e.msg), -1;
        if (k == 1) {
            if (adv_reply_parse(line, len, r, &e))
                return ctl_error("bad message from advd: %s", e.msg), -1;
            return 0;
        }
        int f = fill(c);
        if (f <= 0) {
            ctl_error("advd closed the connection%s%s", f < 0 ? ": " : "",
                      f < 0 ? strerror(errno) : "");
            return -1;
        }
    }
}

static int greet(ctl *c)
{
    adv_reply r;
    adv_error e;
    if (next_reply(c, &r))
        return ADVCTL_UNREACHABLE;
    if (r.type == ADV_MSG_RESPONSE && !r.ok) {
        int st = ctl_error("advd refused the connection: %s", r.error.msg);
        adv_reply_free(&r);
        return st;
    }
    int rc = r.type == ADV_MSG_GREETING
                 ? adv_proto_greeting_check(r.root, c->server_version,
                                            sizeof c->server_version, &e)
                 : adv_errorf(&e, ADV_E_BAD_REQUEST, "the server did not greet as advd");
    adv_reply_free(&r);
    if (rc)
        return ctl_error("%s", e.msg);
    return 0;
}

int ctl_connect(ctl *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(c->socket_path) >= sizeof sa.sun_path)
        return unreachable(c, "socket path too long");
    memcpy(sa.sun_path, c->socket_path, strlen(c->socket_path) + 1);   /* length checked */
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return unreachable(c, strerror(errno));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa)) {
        int err = errno;
        close(c->fd);
        c->fd = -1;
        return unreachable(c, strerror(err));
    }
    adv_linebuf_init(&c->lines, (size_t)1 << 30);
    c->next_id = 1;
    int rc = greet(c);
    if (rc)
        ctl_close(c);
    return rc;
}

void ctl_close(ctl *c)
{
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    adv_linebuf_free(&c->lines);
}

static int send_all(ctl *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ctl_error("cannot write to advd: %s", strerror(errno)), -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ctl_status_of(adv_errcode code)
{
    switch (code) {
    case ADV_E_INVALID_ARGUMENT:
    case ADV_E_BAD_REQUEST:
        return ADVCTL_USAGE;
    default:
        return ADVCTL_FAILED;
    }
}

static int send_request(ctl *c, const char *cmd, json_t *args, int id)
{
    json_t *req = args ? args : json_object();
    json_object_set_new(req, "id", json_integer(id));
    json_object_set_new(req, "cmd", json_string(cmd));
    char *line;
    size_t len;
    adv_error e;
    int rc = adv_proto_encode(req, &line, &len, &e);
    json_decref(req);
    if (rc)
        return ctl_error("cannot encode the request: %s", e.msg), -1;
    rc = send_all(c, line, len);
    free(line);
    return rc;
}

int ctl_call(ctl *c, const char *cmd, json_t *args, json_t **result)
{
    int id = c->next_id++;
    *result = NULL;
    if (c->fd < 0) {
        int rc = ctl_connect(c);
        if (rc) {
            json_decref(args);
            return rc;
        }
    }
    if (send_request(c, cmd, args, id))
        return ADVCTL_UNREACHABLE;
    for (;;) {
        adv_reply r;
        if (next_reply(c, &r))
            return ADVCTL_UNREACHABLE;
        if (r.type != ADV_MSG_RESPONSE || json_integer_value(r.id) != id) {
            adv_reply_free(&r); /* an event of an earlier watch */
            continue;
        }
        if (!r.ok) {
            fprintf(stderr, "advctl: %s: %s\n", adv_errcode_name(r.error.code), r.error.msg);
            int st = ctl_status_of(r.error.code);
            adv_reply_free(&r);
            return st;
        }
        *result = json_incref((json_t *)r.result);
        adv_reply_free(&r);
        return 0;
    }
}

int ctl_call_job(ctl *c, const char *cmd, int64_t job, json_t **result)
{
    return ctl_call(c, cmd, json_pack("{s:I}", "job", (json_int_t)job), result);
}

/* One answer's piece appended to buf (allocated on the first, of the
 * whole size). The whole and what it is of ("checkpoint": latest moves
 * while a job trains) must stay those of the first answer. */
static int take_piece(const char *cmd, const json_t *r, const json_t *first, uint8_t **buf,
                      size_t *have, int *eof)
{
    const json_t *d = json_object_get(r, "data");
    json_int_t size = json_integer_value(json_object_get(r, "size"));
    uint8_t *piece;
    size_t len;
    adv_error e;
    *eof = json_is_true(json_object_get(r, "eof"));
    if (!json_is_string(d) || size < 0 ||
        adv_base64_decode(json_string_value(d), json_string_length(d), &piece, &len, &e))
        return ctl_error("the daemon sent an unusable piece of '%s'", cmd);
    if (first && (!json_equal(json_object_get(r, "size"), json_object_get(first, "size")) ||
                  !json_equal(json_object_get(r, "checkpoint"),
                              json_object_get(first, "checkpoint")))) {
        free(piece);
        return ctl_error("'%s' changed while it was read (a newer checkpoint?): try again", cmd);
    }
    if (*have + len > (size_t)size || (!*eof && len == 0) || (*eof && *have + len != (size_t)size)) {
        free(piece);
        return ctl_error("the daemon's pieces of '%s' do not add up to %lld bytes", cmd,
                         (long long)size);
    }
    if (!*buf && !(*buf = malloc(size ? (size_t)size : 1))) {
        free(piece);
        return ctl_error("out of memory for %lld bytes", (long long)size);
    }
    memcpy(*buf + *have, piece, len);
    *have += len;
    free(piece);
    return 0;
}

int ctl_pull(ctl *c, const char *cmd, json_t *args, uint8_t **bytes, size_t *n, json_t **last)
{
    size_t have = 0;
    uint8_t *buf = NULL;
    json_t *r = NULL, *first = NULL;
    int rc = 0, eof = 0;
    while (!eof && rc == 0) {
        json_object_set_new(args, "offset", json_integer((json_int_t)have));
        if (r != first)
            json_decref(r);
        if ((rc = ctl_call(c, cmd, json_incref(args), &r)) == 0)
            rc = take_piece(cmd, r, first, &buf, &have, &eof);
        if (!first)
            first = r;
    }
    json_decref(args);
    if (r != first)
        json_decref(first);
    if (rc) {
        free(buf);
        json_decref(r);
        return rc;
    }
    *bytes = buf;
    *n = have;
    *last = r;
    return 0;
}

json_t *ctl_next_event(ctl *c)
{
    for (;;) {
        adv_reply r;
        if (next_reply(c, &r))
            return NULL;
        if (r.type == ADV_MSG_EVENT) {
            json_t *ev = json_incref(r.root);
            adv_reply_free(&r);
            return ev;
        }
        adv_reply_free(&r);
    }
}
