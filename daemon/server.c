/*
 * server.c - advd's socket side: a Unix stream socket (mode 0600) served by
 * the libuv loop, one advd_client per connection.
 *
 * On connect a client gets the greeting line, after its peer credentials
 * (SO_PEERCRED) show our own uid; other users, and connections beyond
 * --max-clients, get one error line (conflict) and are closed. Requests are
 * split into lines with proto's adv_linebuf: a malformed request is
 * answered with bad_request or invalid_argument and the connection stays
 * usable; a line over ADV_PROTO_MAX_LINE is answered with too_large and the
 * connection is closed after that answer is written.
 *
 * Writes never block: libuv queues them per client. A client that does not
 * read its answers is not read from either once more than
 * ADVD_CLIENT_QUEUE_PAUSE bytes wait for it, and is disconnected when
 * pushed events take its queue beyond ADVD_CLIENT_QUEUE_MAX, so a slow or
 * dead client costs other clients nothing.
 */
#define _GNU_SOURCE /* struct ucred */
#include "advd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct advd_client {
    advd *d;
    uv_pipe_t pipe;
    advd_client *prev, *next;
    adv_linebuf lines;
    int64_t *watch;            /* jobs this client watches */
    int nwatch, capwatch;
    int closing;               /* no more reads or answers */
    int paused;                /* reading stopped until the write queue drains */
    unsigned uid;              /* the peer's, from SO_PEERCRED */
    char rbuf[65536];
};

json_t *advd_server_stats(advd *d)
{
    return json_pack("{s:i, s:i}", "clients", d->nclients, "max_clients", d->opt.max_clients);
}

unsigned advd_client_uid(const advd_client *c)
{
    return c->uid;
}

typedef struct {
    uv_write_t req;
    advd_client *client;
    char *data;
} write_req;

static void client_close(advd_client *c);
static void client_resume(advd_client *c);

/* ------------------------------------------------------------ writing */

static size_t queued(const advd_client *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe);
}

static void on_write_done(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    advd_client *c = w->client;
    free(w->data);
    free(w);
    if (status == 0 && c->paused && !c->closing && queued(c) < ADVD_CLIENT_QUEUE_PAUSE / 2)
        client_resume(c);
}

static void write_line(advd_client *c, char *line, size_t len)
{
    write_req *w = malloc(sizeof *w);
    if (!w) {
        free(line);
        client_close(c);
        return;
    }
    w->client = c;
    w->data = line;
    uv_buf_t buf = uv_buf_init(line, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_write_done);
    if (rc) {
        free(line);
        free(w);
        client_close(c);
    }
}

void advd_client_send(advd_client *c, json_t *msg)
{
    char *line;
    size_t len;
    adv_error e;
    if (c->closing) {
        json_decref(msg);
        return;
    }
    if (queued(c) > ADVD_CLIENT_QUEUE_MAX) {
        advd_log(c->d, "a client does not read its answers: disconnecting it");
        json_decref(msg);
        client_close(c);
        return;
    }
    int rc = adv_proto_encode(msg, &line, &len, &e);
    json_decref(msg);
    if (rc) {
        advd_log(c->d, "cannot encode an answer: %s", e.msg);
        return;
    }
    write_line(c, line, len);
}

/* ------------------------------------------------------ closing a client */

static void on_client_closed(uv_handle_t *h)
{
    advd_client *c = h->data;
    adv_linebuf_free(&c->lines);
    free(c->watch);
    free(c);
}

static void client_close(advd_client *c)
{
    if (c->closing == 2)
        return;
    c->closing = 2;
    advd *d = c->d;
    if (c->prev)
        c->prev->next = c->next;
    else
        d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->nclients--;
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)status;
    advd_client *c = req->data;
    free(req);
    client_close(c);
}

/* Close once the answers already queued are written. */
static void client_close_after_writes(advd_client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_read_stop((uv_stream_t *)&c->pipe);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->pipe, on_shutdown_done)) {
        free(req);
        client_close(c);
        return;
    }
    req->data = c;
}

void advd_server_close_clients(advd *d)
{
    while (d->clients)
        client_close(d->clients);
}

/* ------------------------------------------------------------- watching */

int advd_client_watch(advd_client *c, int64_t job)
{
    for (int i = 0; i < c->nwatch; i++)
        if (c->watch[i] == job)
            return 0;
    if (c->nwatch == c->capwatch) {
        int cap = c->capwatch ? 2 * c->capwatch : 4;
        int64_t *w = realloc(c->watch, sizeof *w * (size_t)cap);
        if (!w)
            return -1;
        c->watch = w;
        c->capwatch = cap;
    }
    c->watch[c->nwatch++] = job;
    return 0;
}

static int is_final_state_event(const json_t *ev)
{
    adv_job_state s;
    const char *name = json_string_value(json_object_get(ev, "state"));
    const char *kind = json_string_value(json_object_get(ev, "event"));
    return kind && !strcmp(kind, "state") && name && adv_job_state_parse(name, &s) == 0 &&
           adv_job_state_final(s);
}

void advd_notify(advd *d, int64_t job, json_t *event)
{
    int final = is_final_state_event(event);
    for (advd_client *c = d->clients, *next; c; c = next) {
        next = c->next;
        for (int i = 0; i < c->nwatch; i++) {
            if (c->watch[i] != job)
                continue;
            if (final)
                c->watch[i] = c->watch[--c->nwatch];
            advd_client_send(c, json_incref(event));
            break;
        }
    }
    json_decref(event);
}

/* ------------------------------------------------------------- reading */

static void answer_error(advd_client *c, const json_t *id, const adv_error *e)
{
    advd_client_send(c, adv_proto_error(id, e));
}

static void handle_line(advd_client *c, const char *line, size_t len)
{
    adv_request req;
    adv_error e;
    if (adv_request_parse(line, len, &req, &e))
        answer_error(c, req.id, &e);
    else
        advd_command(c->d, c, &req);
    adv_request_free(&req);
}

/* Answer the complete lines held, unless the client stops reading. */
static void drain_lines(advd_client *c)
{
    const char *line;
    size_t len;
    adv_error e;
    while (!c->closing) {
        if (queued(c) > ADVD_CLIENT_QUEUE_PAUSE) {
            c->paused = 1;
            uv_read_stop((uv_stream_t *)&c->pipe);
            return;
        }
        int r = adv_linebuf_next(&c->lines, &line, &len, &e);
        if (r == 0)
            return;
        if (r < 0) {
            answer_error(c, NULL, &e);
            client_close_after_writes(c);
            return;
        }
        handle_line(c, line, len);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    advd_client *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    advd_client *c = s->data;
    adv_error e;
    if (n < 0) {
        client_close(c);
        return;
    }
    if (n == 0 || c->closing)
        return;
    if (adv_linebuf_feed(&c->lines, buf->base, (size_t)n, &e)) {
        answer_error(c, NULL, &e);
        client_close_after_writes(c);
        return;
    }
    drain_lines(c);
}

static void client_resume(advd_client *c)
{
    c->paused = 0;
    drain_lines(c);
    if (!c->paused && !c->closing &&
        uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_client_read))
        client_close(c);
}

/* --------------------------------------------------------- connections */

static void refuse(advd_client *c, const char *fmt, unsigned n)
{
    adv_error e;
    adv_errorf(&e, ADV_E_CONFLICT, fmt, n);
    advd_log(c->d, "refusing a connection: %s", e.msg);
    answer_error(c, NULL, &e);
    client_close_after_writes(c);
}

/* 0 when the peer runs as our uid; else the peer's uid in *uid. */
static int check_peer(advd_client *c, unsigned *uid)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
        return *uid = (unsigned)-1, -1;
    *uid = (unsigned)cred.uid;
    return cred.uid == getuid() ? 0 : -1;
}

static void link_client(advd *d, advd_client *c)
{
    c->next = d->clients;
    if (d->clients)
        d->clients->prev = c;
    d->clients = c;
    d->nclients++;
}

static void on_connection(uv_stream_t *server, int status)
{
    advd *d = server->data;
    if (status < 0) {
        advd_log(d, "cannot accept a connection: %s", uv_strerror(status));
        return;
    }
    advd_client *c = calloc(1, sizeof *c);
    if (!c || uv_pipe_init(&d->loop, &c->pipe, 0)) {
        free(c);
        advd_log(d, "cannot accept a connection: out of memory");
        return;
    }
    c->d = d;
    c->pipe.data = c;
    adv_linebuf_init(&c->lines, ADV_PROTO_MAX_LINE);
    link_client(d, c);
    if (uv_accept(server, (uv_stream_t *)&c->pipe)) {
        client_close(c);
        return;
    }
    unsigned uid;
    if (check_peer(c, &uid)) {
        refuse(c, "connections from uid %u are not allowed", uid);
        return;
    }
    c->uid = uid;
    if (d->nclients > d->opt.max_clients) {
        refuse(c, "too many connections (at most %u)", (unsigned)d->opt.max_clients);
        return;
    }
    advd_client_send(c, adv_proto_greeting());
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_client_read))
        client_close(c);
}

/* ------------------------------------------------------------ the socket */

/* A socket file left by a daemon that died is replaced; a live one means
 * another daemon serves it. */
static int check_socket_path(advd *d, char *err)
{
    const char *path = d->opt.socket_path;
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT)
            return 0;
        return core_errf(err, "cannot examine '%s': %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return core_errf(err, "'%s' exists and is not a socket", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return core_errf(err, "cannot create a socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (live)
        return core_errf(err, "another advd is listening on '%s'", path);
    advd_log(d, "replacing stale socket '%s'", path);
    if (unlink(path) && errno != ENOENT)
        return core_errf(err, "cannot remove stale socket '%s': %s", path, strerror(errno));
    return 0;
}

int advd_server_start(advd *d, char *err)
{
    if (check_socket_path(d, err))
        return -1;
    int rc = uv_pipe_init(&d->loop, &d->server, 0);
    if (rc)
        return core_errf(err, "cannot create the server socket: %s", uv_strerror(rc));
    d->server.data = d;
    mode_t old = umask(0177);
    rc = uv_pipe_bind(&d->server, d->opt.socket_path);
    umask(old);
    if (rc) {
        uv_close((uv_handle_t *)&d->server, NULL);
        return core_errf(err, "cannot bind '%s': %s", d->opt.socket_path, uv_strerror(rc));
    }
    d->listening = 1;
    if (chmod(d->opt.socket_path, 0600))
        return core_errf(err, "cannot chmod '%s': %s", d->opt.socket_path, strerror(errno));
    if ((rc = uv_listen((uv_stream_t *)&d->server, 128, on_connection)))
        return core_errf(err, "cannot listen on '%s': %s", d->opt.socket_path, uv_strerror(rc));
    return 0;
}

void advd_server_stop(advd *d)
{
    if (!d->listening)
        return;
    d->listening = 0;
    uv_close((uv_handle_t *)&d->server, NULL);
    if (unlink(d->opt.socket_path) && errno != ENOENT)
        advd_log(d, "cannot remove '%s': %s", d->opt.socket_path, strerror(errno));
}
