/*
 * server.c - advd's socket side: a Unix stream socket served by the libuv
 * loop, one advd_client per connection. The loop never blocks, never drops
 * an answer it owes, and no client, slow, idle, dead or greedy, can lock
 * the others out.
 *
 * Admission. The socket has mode socket_mode (default 0600) and, when
 * socket_group is set, that group. The peer's credentials (SO_PEERCRED,
 * taken by the kernel at connect) must show the daemon's own uid, root, or
 * a member of the socket's group: its primary gid or one of its
 * supplementary groups from SO_PEERGROUPS, the very set the kernel used to
 * let it connect to the socket file, read without NSS (which may block on
 * a network directory) and without /proc (which can race with a pid that
 * exits). Anyone else gets error `forbidden`. Then the limits:
 * max_clients connections in all, of which the last reserved_clients
 * (capped at max_clients - 1) only root and the daemon's uid may take,
 * and max_clients_per_user for every other uid. A refused client gets one
 * error line (`conflict`, "too many connections ...") and is closed.
 * Refusals and forced closes are counted per reason (advd_server_stats,
 * the `info` request) and logged at most once a second per reason, with a
 * "N more" line for the rest.
 *
 * Dead peers. A burst of connect-then-close leaves the backlog full of
 * peers that are already gone. A new connection whose peer has hung up
 * (POLLHUP: the peer closed both directions) is dropped silently before it
 * counts; and before refusing anyone for a limit, the admitted connections
 * are polled (at most once per round of accepts) and those whose peers have
 * hung up are closed, so a dead connection never holds the slot of a live
 * one. A peer that only half-closed (shutdown(SHUT_WR)) is not dead: it
 * still reads its answers.
 *
 * Reading. One read buffer serves the whole loop (libuv's read callback
 * consumes it before the next read); a connection holds a line buffer only
 * while it has bytes not yet answered, so an idle connection costs its
 * struct (about 400 bytes) and the kernel's socket. Lines are split with
 * proto's adv_linebuf; a malformed request is answered with bad_request or
 * invalid_argument and the connection stays usable; a line over
 * ADV_PROTO_MAX_LINE is answered with too_large and the connection closed
 * after that answer. Reading stops while ADVD_CLIENT_HOLD bytes of
 * complete lines wait for their turn, or while ADVD_CLIENT_QUEUE_PAUSE
 * bytes of answers wait for the client to read them.
 *
 * End of stream. On EOF the client's remaining complete lines (and a last
 * line without its newline) are answered in their turn, every queued
 * answer is written, then the connection is shut down and closed. An error
 * on the socket, or a peer that closed both directions, closes at once.
 *
 * Fair service. Nothing is answered in the read callback: clients with
 * complete lines wait in two queues served from an idle handle, in turns
 * of at most ADVD_TURN_REQUESTS lines or ADVD_TURN_NS (a turn's answers
 * go out in one write). A client that had nothing waiting before its read
 * is FRESH and served first; one that used a whole turn and has more joins
 * the BACKLOG, served round robin until ADVD_PASS_NS have passed, when the
 * loop polls for input again (the idea of fq_codel's new and old flows).
 * So a ping waits for the turn under way, not for every pipelined burst.
 *
 * Timeouts, one sweep timer for all connections (not one timer each):
 * line_timeout bounds how long a begun request line may stay incomplete
 * (the client gets bad_request, then the close); idle_timeout (default 0:
 * never) closes a connection that sent and took nothing for that long
 * (`conflict`), except one that watches a job: a watch stream is quiet by
 * nature. A connection being closed that takes none of its last answers
 * for ADVD_LINGER_MS is cut.
 *
 * Writes never block: libuv queues them per client. A client whose unread
 * answers pass ADVD_CLIENT_QUEUE_MAX (watch events keep coming) is
 * disconnected.
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERGROUPS */
#include "advd.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Complete lines held unanswered before reading from the client stops. */
#define ADVD_CLIENT_HOLD ((size_t)64 << 10)
/* One client's turn: at most this many lines, and no more once this many
 * nanoseconds have passed. */
#define ADVD_TURN_REQUESTS 8
#define ADVD_TURN_NS 250000u
/* Backlogged clients' turns before the loop polls for input again. */
#define ADVD_PASS_NS 1000000u
/* A closing client that takes none of its last answers for this long. */
#define ADVD_LINGER_MS 10000
/* File descriptors the daemon needs besides its clients (db, log, workers). */
#define ADVD_FD_SPARE 256

/* What the connection side counts and logs: X(name, kind). A refusal
 * happens at connect; a close ends an admitted connection. */
#define ADVD_CONN_EVENTS(X)                                                                      \
    X(forbidden, REFUSED) X(max_clients, REFUSED) X(max_clients_per_user, REFUSED)               \
    X(accept_failed, REFUSED) X(line_timeout, CLOSED) X(idle_timeout, CLOSED)                    \
    X(slow_reader, CLOSED) X(linger, CLOSED)

typedef enum {
#define ADVD_EV_ENUM(name, kind) EV_##name,
    ADVD_CONN_EVENTS(ADVD_EV_ENUM)
#undef ADVD_EV_ENUM
    EV_COUNT
} conn_event;

enum { REFUSED, CLOSED };
static const struct {
    const char *name;
    int kind;
} event_info[EV_COUNT] = {
#define ADVD_EV_INFO(name, kind) {#name, kind},
    ADVD_CONN_EVENTS(ADVD_EV_INFO)
#undef ADVD_EV_INFO
};

typedef struct {
    unsigned uid;
    int n;
} user_slots;

/* Clients with lines to answer: FRESH ones had nothing waiting before
 * their last read; BACKLOG ones used a whole turn and have more. */
enum { NOT_READY, FRESH, BACKLOG };
typedef struct {
    advd_client *head, *tail;
    int n;
} ready_queue;

struct advd_conns {
    char rbuf[65536];                   /* the loop's one read buffer */
    ready_queue ready[2];               /* FRESH, BACKLOG: clients with lines to answer */
    uv_idle_t serve;                    /* runs turns while the queue is not empty */
    uv_timer_t sweep;                   /* timeouts, and the log's "N more" lines */
    uv_check_t tick;                    /* after each poll: a new round of accepts */
    int open_handles;                   /* serve, sweep, tick: freed when all closed */
    advd_client *batching;              /* the client whose turn it is */
    uv_buf_t *batch;                    /* its answers, written at the end of the turn */
    int nbatch, capbatch;
    user_slots *users;                  /* connections per uid (admitted ones) */
    int nusers, capusers;
    unsigned self;                      /* the daemon's uid */
    int has_group;
    gid_t group;
    int reserved;                       /* reserved_clients, at most max_clients - 1 */
    int reaped;                         /* dead peers polled since the last poll */
    uint64_t accepted, hung_up;
    uint64_t count[EV_COUNT];
    uint64_t logged_at[EV_COUNT];
    unsigned unlogged[EV_COUNT];        /* events since logged_at not yet logged */
    int shut;                           /* closing down: no more timers or turns */
};

struct advd_client {
    advd *d;
    uv_pipe_t pipe;
    advd_client *prev, *next;           /* every connection */
    advd_client *ready_prev, *ready_next;
    adv_linebuf lines;                  /* no buffer while nothing is held */
    int64_t *watch;                     /* jobs this client watches */
    int nwatch, capwatch;
    uint64_t line_since;                /* loop time a partial line began; 0: none */
    uint64_t active_at;                 /* loop time of the last read or write */
    unsigned uid;                       /* the peer's, from SO_PEERCRED */
    uint64_t serial;                    /* unique for the daemon's life (advd_client_find) */
    unsigned char admitted;             /* counted against the limits */
    unsigned char closing;              /* 1: after the queued writes; 2: closed */
    unsigned char reading, paused, eof;
    unsigned char ready;                /* NOT_READY, FRESH or BACKLOG */
};

typedef struct {
    uv_write_t req;
    advd_client *client;
    int n;
    char *data[];
} write_req;

static void client_close(advd_client *c);
static void client_close_after_writes(advd_client *c);
static void ready_push(advd_client *c, int which);
static void on_serve(uv_idle_t *h);
static void update_read(advd_client *c);
static void sweep_update(advd *d);

unsigned advd_client_uid(const advd_client *c)
{
    return c->uid;
}

uint64_t advd_client_serial(const advd_client *c)
{
    return c->serial;
}

advd_client *advd_client_find(advd *d, uint64_t serial)
{
    for (advd_client *c = d->clients; c; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

static uint64_t now_ms(advd *d)
{
    return uv_now(&d->loop);
}

/* --------------------------------------------------- counting and logging */

json_t *advd_server_stats(advd *d)
{
    advd_conns *s = d->conns;
    json_t *by_kind[2] = {json_object(), json_object()};
    for (int i = 0; i < EV_COUNT; i++)
        json_object_set_new(by_kind[event_info[i].kind], event_info[i].name,
                            json_integer((json_int_t)s->count[i]));
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:I, s:I, s:o, s:o}", "clients",
                     d->nclients, "users", s->nusers, "max_clients", d->opt.max_clients,
                     "max_clients_per_user", d->opt.max_clients_per_user, "reserved_clients",
                     s->reserved, "line_timeout", d->opt.line_timeout_ms / 1000.0,
                     "idle_timeout", d->opt.idle_timeout_ms / 1000.0, "accepted",
                     (json_int_t)s->accepted, "hung_up", (json_int_t)s->hung_up, "refused",
                     by_kind[REFUSED], "closed", by_kind[CLOSED]);
}

static const char *event_verb(conn_event ev)
{
    return event_info[ev].kind == REFUSED ? "refused" : "closed";
}

/* The "N more" line for events not logged one by one. */
static void log_unlogged(advd *d, conn_event ev)
{
    advd_conns *s = d->conns;
    if (!s->unlogged[ev])
        return;
    advd_log(d, "%u more connection%s %s (%s) in the last second", s->unlogged[ev],
             s->unlogged[ev] == 1 ? "" : "s", event_verb(ev), event_info[ev].name);
    s->unlogged[ev] = 0;
}

/* Count an event; log it unless one of its kind was logged this second. */
static void conn_event_log(advd *d, conn_event ev, const char *msg)
{
    advd_conns *s = d->conns;
    uint64_t now = now_ms(d);
    s->count[ev]++;
    if (s->logged_at[ev] && now - s->logged_at[ev] < 1000) {
        s->unlogged[ev]++;
        sweep_update(d);
        return;
    }
    log_unlogged(d, ev);
    s->logged_at[ev] = now;
    advd_log(d, "%s a connection: %s", event_verb(ev), msg);
}

/* ------------------------------------------------------- users' slots */

static user_slots *user_find(advd_conns *s, unsigned uid)
{
    for (int i = 0; i < s->nusers; i++)
        if (s->users[i].uid == uid)
            return &s->users[i];
    return NULL;
}

static int user_count(advd_conns *s, unsigned uid)
{
    user_slots *u = user_find(s, uid);
    return u ? u->n : 0;
}

static int user_add(advd_conns *s, unsigned uid)
{
    user_slots *u = user_find(s, uid);
    if (u)
        return u->n++, 0;
    if (s->nusers == s->capusers) {
        int cap = s->capusers ? 2 * s->capusers : 8;
        user_slots *p = realloc(s->users, sizeof *p * (size_t)cap);
        if (!p)
            return -1;
        s->users = p;
        s->capusers = cap;
    }
    s->users[s->nusers++] = (user_slots){uid, 1};
    return 0;
}

static void user_remove(advd_conns *s, unsigned uid)
{
    user_slots *u = user_find(s, uid);
    if (u && --u->n == 0)
        *u = s->users[--s->nusers];
}

/* ------------------------------------------------------------ writing */

static size_t queued(const advd_client *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->pipe);
}

static void on_write_done(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    advd_client *c = w->client;
    for (int i = 0; i < w->n; i++)
        free(w->data[i]);
    free(w);
    /* Being closed: callbacks may come after the loop's state is gone. */
    if (status == UV_ECANCELED || c->closing == 2)
        return;
    if (status < 0) {
        client_close(c); /* the peer is gone */
        return;
    }
    c->active_at = now_ms(c->d);
    if (c->paused && queued(c) < ADVD_CLIENT_QUEUE_PAUSE / 2) {
        c->paused = 0;
        ready_push(c, FRESH);
        update_read(c);
    }
}

/* One write of n lines (stolen). */
static void write_lines(advd_client *c, const uv_buf_t *bufs, int n)
{
    write_req *w = malloc(sizeof *w + sizeof(char *) * (size_t)n);
    if (w) {
        w->client = c;
        w->n = n;
        for (int i = 0; i < n; i++)
            w->data[i] = bufs[i].base;
    }
    if (!w || uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, (unsigned)n, on_write_done)) {
        for (int i = 0; i < n; i++)
            free(bufs[i].base);
        free(w);
        client_close(c);
    }
}

/* The answers of the client's turn, in one write (or dropped with it). */
static void flush_batch(advd_client *c)
{
    advd_conns *s = c->d->conns;
    if (s->batching != c || s->nbatch == 0)
        return;
    int n = s->nbatch;
    s->nbatch = 0;
    if (c->closing == 2) {
        for (int i = 0; i < n; i++)
            free(s->batch[i].base);
        return;
    }
    write_lines(c, s->batch, n);
}

static int batch_add(advd_conns *s, char *line, size_t len)
{
    if (s->nbatch == s->capbatch) {
        int cap = s->capbatch ? 2 * s->capbatch : 16;
        uv_buf_t *b = realloc(s->batch, sizeof *b * (size_t)cap);
        if (!b)
            return -1;
        s->batch = b;
        s->capbatch = cap;
    }
    s->batch[s->nbatch++] = uv_buf_init(line, (unsigned)len);
    return 0;
}

static void close_slow_reader(advd_client *c)
{
    char msg[160];
    snprintf(msg, sizeof msg, "uid %u does not read its answers (over %zu MiB queued)", c->uid,
             ADVD_CLIENT_QUEUE_MAX >> 20);
    conn_event_log(c->d, EV_slow_reader, msg);
    client_close(c);
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
        json_decref(msg);
        close_slow_reader(c);
        return;
    }
    int rc = adv_proto_encode(msg, &line, &len, &e);
    json_decref(msg);
    if (rc) {
        advd_log(c->d, "cannot encode an answer: %s", e.msg);
        return;
    }
    uv_buf_t buf = uv_buf_init(line, (unsigned)len);
    if (c->d->conns->batching != c)
        write_lines(c, &buf, 1);
    else if (batch_add(c->d->conns, line, len)) {
        free(line);
        client_close(c);
    }
}

static void send_error(advd_client *c, const json_t *id, const adv_error *e)
{
    advd_client_send(c, adv_proto_error(id, e));
}

/* ------------------------------------------------------ closing a client */

static void on_client_closed(uv_handle_t *h)
{
    /* Runs after the loop's own state may be gone (shutdown): touch only c. */
    advd_client *c = h->data;
    adv_linebuf_free(&c->lines);
    free(c->watch);
    free(c);
}

static void ready_remove(advd_client *c)
{
    if (c->ready == NOT_READY)
        return;
    ready_queue *q = &c->d->conns->ready[c->ready - 1];
    if (c->ready_prev)
        c->ready_prev->ready_next = c->ready_next;
    else
        q->head = c->ready_next;
    if (c->ready_next)
        c->ready_next->ready_prev = c->ready_prev;
    else
        q->tail = c->ready_prev;
    c->ready_prev = c->ready_next = NULL;
    c->ready = NOT_READY;
    q->n--;
}

/* Close now, dropping whatever is queued. */
static void client_close(advd_client *c)
{
    if (c->closing == 2)
        return;
    advd *d = c->d;
    c->closing = 2;
    flush_batch(c); /* drops the turn's answers */
    ready_remove(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->admitted) {
        d->nclients--;
        user_remove(d->conns, c->uid);
    }
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
    sweep_update(d);
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
    flush_batch(c);
    c->closing = 1;
    c->active_at = now_ms(c->d); /* the linger starts now */
    ready_remove(c);
    update_read(c);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->pipe, on_shutdown_done)) {
        free(req);
        client_close(c);
        return;
    }
    req->data = c;
}

/* An error line, counted and logged, then the close. */
static void close_for(advd_client *c, conn_event ev, adv_errcode code, const char *fmt, ...)
{
    adv_error e = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    char msg[ADV_ERRLEN + 32];
    snprintf(msg, sizeof msg, "uid %u: %s", c->uid, e.msg);
    conn_event_log(c->d, ev, msg);
    send_error(c, NULL, &e);
    client_close_after_writes(c);
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

/* Bytes of complete lines held but not yet answered. */
static size_t unanswered(const advd_client *c)
{
    return c->lines.len - c->lines.start - adv_linebuf_pending(&c->lines);
}

/* Give back the line buffer of a client that holds nothing. */
static void release_lines(advd_client *c)
{
    if (c->lines.buf && c->lines.len == c->lines.start && !c->lines.too_large) {
        adv_linebuf_free(&c->lines);
        adv_linebuf_init(&c->lines, ADV_PROTO_MAX_LINE);
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    advd_client *c = h->data;
    *buf = uv_buf_init(c->d->conns->rbuf, sizeof c->d->conns->rbuf);
}

/* The peer closed both directions: nobody is left to read an answer. */
static int peer_gone(advd_client *c)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd))
        return 1;
    struct pollfd p = {.fd = fd, .events = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static void feed(advd_client *c, const char *data, size_t n)
{
    adv_error e;
    if (adv_linebuf_feed(&c->lines, data, n, &e)) {
        send_error(c, NULL, &e);
        client_close_after_writes(c);
    }
}

/* The line timeout runs from the first byte of a line not yet complete. */
static void track_partial_line(advd_client *c, int had_newline)
{
    if (!adv_linebuf_pending(&c->lines))
        c->line_since = 0;
    else if (had_newline || !c->line_since)
        c->line_since = now_ms(c->d);
}

static void on_eof(advd_client *c)
{
    c->eof = 1;
    update_read(c);
    if (peer_gone(c)) {
        client_close(c);
        return;
    }
    /* A last request without its newline is a request all the same. */
    if (adv_linebuf_pending(&c->lines))
        feed(c, "\n", 1);
    c->line_since = 0;
    ready_push(c, FRESH);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    advd_client *c = s->data;
    if (n == UV_EOF && !c->closing) {
        on_eof(c);
        return;
    }
    if (n < 0) {
        client_close(c);
        return;
    }
    if (n == 0 || c->closing)
        return;
    c->active_at = now_ms(c->d);
    feed(c, buf->base, (size_t)n);
    if (c->closing)
        return;
    track_partial_line(c, memchr(buf->base, '\n', (size_t)n) != NULL);
    ready_push(c, FRESH);
    update_read(c);
}

/* Read while there is room: not closing, no EOF, answers taken, and not
 * too many lines waiting for their turn. */
static void update_read(advd_client *c)
{
    int want = !c->closing && !c->eof && !c->paused && unanswered(c) < ADVD_CLIENT_HOLD;
    if (want == c->reading)
        return;
    c->reading = (unsigned char)want;
    if (!want) {
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    /* A partial line held while we did not read gets its full time. */
    if (c->line_since)
        c->line_since = now_ms(c->d);
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_client_read))
        client_close(c);
}

/* -------------------------------------------------------- fair service */

/* Queue a client for a turn (a queued one keeps its place). */
static void ready_push(advd_client *c, int which)
{
    advd_conns *s = c->d->conns;
    if (c->ready || c->closing || c->paused || s->shut)
        return;
    ready_queue *q = &s->ready[which - 1];
    c->ready = (unsigned char)which;
    c->ready_prev = q->tail;
    c->ready_next = NULL;
    if (q->tail)
        q->tail->ready_next = c;
    else
        q->head = c;
    q->tail = c;
    q->n++;
    if (!uv_is_active((uv_handle_t *)&s->serve))
        uv_idle_start(&s->serve, on_serve);
}

static void handle_line(advd_client *c, const char *line, size_t len)
{
    adv_request req;
    adv_error e;
    if (adv_request_parse(line, len, &req, &e))
        send_error(c, req.id, &e);
    else
        advd_command(c->d, c, &req);
    adv_request_free(&req);
}

/* One turn: 1 when the client has more lines for a later turn. */
static int answer_turn(advd_client *c)
{
    uint64_t t0 = uv_hrtime();
    const char *line;
    size_t len;
    adv_error e;
    for (int n = 0; !c->closing; n++) {
        if (queued(c) > ADVD_CLIENT_QUEUE_PAUSE) {
            c->paused = 1; /* until its answers drain (on_write_done) */
            return 0;
        }
        if (n == ADVD_TURN_REQUESTS || uv_hrtime() - t0 > ADVD_TURN_NS)
            return 1;
        int r = adv_linebuf_next(&c->lines, &line, &len, &e);
        if (r == 0)
            return 0;
        if (r < 0) {
            send_error(c, NULL, &e);
            client_close_after_writes(c);
            return 0;
        }
        handle_line(c, line, len);
    }
    return 0;
}

static void serve_client(advd_conns *s, advd_client *c)
{
    s->batching = c;
    int more = answer_turn(c);
    flush_batch(c);
    s->batching = NULL;
    if (c->closing)
        return;
    if (more) {
        ready_push(c, BACKLOG);
        return;
    }
    if (c->paused) {
        update_read(c);
        return;
    }
    release_lines(c);
    if (c->eof)
        client_close_after_writes(c);
    else
        update_read(c);
}

static void serve_first(advd_conns *s, int which)
{
    advd_client *c = s->ready[which - 1].head;
    ready_remove(c);
    serve_client(s, c);
}

/* Every fresh client gets a turn; then backlogged ones take turns until
 * ADVD_PASS_NS have passed, and the loop polls for input again. So a
 * client with one request waits for at most the turn under way, however
 * many clients have a backlog. */
static void on_serve(uv_idle_t *h)
{
    advd_conns *s = h->data;
    uint64_t t0 = uv_hrtime();
    for (int n = s->ready[FRESH - 1].n; n > 0 && s->ready[FRESH - 1].head && !s->shut; n--)
        serve_first(s, FRESH);
    while (s->ready[BACKLOG - 1].head && !s->shut) {
        serve_first(s, BACKLOG);
        if (uv_hrtime() - t0 > ADVD_PASS_NS)
            break;
    }
    if (!s->ready[FRESH - 1].head && !s->ready[BACKLOG - 1].head)
        uv_idle_stop(&s->serve);
}

/* --------------------------------------------------------- timeouts */

static void sweep_client(advd_client *c, uint64_t now)
{
    const advd_options *o = &c->d->opt;
    if (c->closing) {
        if (queued(c) && now - c->active_at >= ADVD_LINGER_MS) {
            char msg[96];
            snprintf(msg, sizeof msg, "uid %u took none of its last answers in %d s", c->uid,
                     ADVD_LINGER_MS / 1000);
            conn_event_log(c->d, EV_linger, msg);
            client_close(c);
        }
        return;
    }
    if (!c->admitted)
        return;
    if (o->line_timeout_ms && c->reading && c->line_since &&
        now - c->line_since >= (uint64_t)o->line_timeout_ms)
        close_for(c, EV_line_timeout, ADV_E_BAD_REQUEST,
                  "no complete request line within %g s (line_timeout): closing the connection",
                  o->line_timeout_ms / 1000.0);
    else if (o->idle_timeout_ms && !c->nwatch && !c->ready &&
             now - c->active_at >= (uint64_t)o->idle_timeout_ms)
        close_for(c, EV_idle_timeout, ADV_E_CONFLICT,
                  "idle for %g s (idle_timeout): closing the connection",
                  o->idle_timeout_ms / 1000.0);
}

static void on_sweep(uv_timer_t *t)
{
    advd *d = t->data;
    uint64_t now = now_ms(d);
    for (advd_client *c = d->clients, *next; c; c = next) {
        next = c->next;
        sweep_client(c, now);
    }
    for (int i = 0; i < EV_COUNT; i++)
        if (now - d->conns->logged_at[i] >= 1000)
            log_unlogged(d, (conn_event)i);
    sweep_update(d);
}

/* The sweep's period: a quarter of the shortest timeout, within [50 ms, 1 s]. */
static uint64_t sweep_period(const advd *d)
{
    int ms = 4000;
    if (d->opt.line_timeout_ms && d->opt.line_timeout_ms < ms)
        ms = d->opt.line_timeout_ms;
    if (d->opt.idle_timeout_ms && d->opt.idle_timeout_ms < ms)
        ms = d->opt.idle_timeout_ms;
    ms /= 4;
    return (uint64_t)(ms < 50 ? 50 : ms);
}

/* The sweep runs while there are connections or "N more" lines to log. */
static void sweep_update(advd *d)
{
    advd_conns *s = d->conns;
    int want = !s->shut && d->clients != NULL;
    for (int i = 0; i < EV_COUNT && !want && !s->shut; i++)
        want = s->unlogged[i] > 0;
    int active = uv_is_active((uv_handle_t *)&s->sweep);
    if (want && !active)
        uv_timer_start(&s->sweep, on_sweep, sweep_period(d), sweep_period(d));
    else if (!want && active)
        uv_timer_stop(&s->sweep);
}

/* --------------------------------------------------------- admission */

typedef struct {
    struct ucred cred;
    int fd;
} peer;

static int peer_read(advd_client *c, peer *p)
{
    socklen_t len = sizeof p->cred;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &p->cred, &len))
        return -1;
    p->fd = fd;
    return 0;
}

/* Whether g is among the peer's supplementary groups at connect time. */
static int peer_has_group(const peer *p, gid_t g)
{
    gid_t small[64], *groups = small;
    socklen_t len = sizeof small;
    int found = 0;
    if (getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len)) {
        if (errno != ERANGE || !(groups = malloc(len)) ||
            getsockopt(p->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
            len = 0;
    }
    for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
        found = groups[i] == g;
    if (groups != small)
        free(groups);
    return found;
}

static int peer_privileged(const advd_conns *s, const peer *p)
{
    return p->cred.uid == 0 || p->cred.uid == s->self;
}

static int peer_allowed(const advd_conns *s, const peer *p)
{
    return peer_privileged(s, p) ||
           (s->has_group && (p->cred.gid == s->group || peer_has_group(p, s->group)));
}

/* All the connections libuv accepts after one poll come in one round;
 * the next poll starts another. */
static void on_tick(uv_check_t *h)
{
    advd_conns *s = h->data;
    s->reaped = 0;
}

/* Close the admitted connections whose peers have hung up (once a round
 * of accepts at most): they must not hold the slots of live clients. */
static void reap_dead(advd *d)
{
    advd_conns *s = d->conns;
    if (s->reaped || d->nclients == 0)
        return;
    s->reaped = 1;
    struct pollfd *p = malloc(sizeof *p * (size_t)d->nclients);
    advd_client **who = malloc(sizeof *who * (size_t)d->nclients);
    nfds_t n = 0;
    for (advd_client *c = d->clients; c && p && who; c = c->next) {
        uv_os_fd_t fd;
        if (c->admitted && !c->closing && !uv_fileno((uv_handle_t *)&c->pipe, &fd) &&
            n < (nfds_t)d->nclients) {
            p[n] = (struct pollfd){.fd = fd, .events = 0};
            who[n++] = c;
        }
    }
    if (p && who && poll(p, n, 0) > 0)
        for (nfds_t i = 0; i < n; i++)
            if (p[i].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                s->hung_up++;
                client_close(who[i]);
            }
    free(p);
    free(who);
}

/* -1 when the peer may connect; else the reason, with msg for it. */
static int admission(advd *d, const peer *p, char *msg, size_t len)
{
    advd_conns *s = d->conns;
    unsigned uid = (unsigned)p->cred.uid;
    if (!peer_allowed(s, p)) {
        snprintf(msg, len,
                 "connections from uid %u are not allowed (only root, uid %u%s%s%s may connect)",
                 uid, s->self, s->has_group ? " and group '" : "",
                 s->has_group ? d->opt.socket_group : "", s->has_group ? "'" : "");
        return EV_forbidden;
    }
    int privileged = peer_privileged(s, p);
    int limit = privileged ? d->opt.max_clients : d->opt.max_clients - s->reserved;
    if (d->nclients >= limit)
        reap_dead(d);
    if (d->nclients >= limit) {
        snprintf(msg, len, "too many connections (at most %d%s)", limit,
                 privileged || !s->reserved ? "" : " besides those kept for root");
        return EV_max_clients;
    }
    if (privileged || user_count(s, uid) < d->opt.max_clients_per_user)
        return -1;
    reap_dead(d);
    if (user_count(s, uid) < d->opt.max_clients_per_user)
        return -1;
    snprintf(msg, len, "too many connections from uid %u (at most %d per user)", uid,
             d->opt.max_clients_per_user);
    return EV_max_clients_per_user;
}

static void refuse(advd_client *c, conn_event ev, const char *msg)
{
    adv_error e;
    adv_errorf(&e, ev == EV_forbidden ? ADV_E_FORBIDDEN : ADV_E_CONFLICT, "%s", msg);
    conn_event_log(c->d, ev, msg);
    send_error(c, NULL, &e);
    client_close_after_writes(c);
}

static advd_client *client_new(advd *d)
{
    advd_client *c = calloc(1, sizeof *c);
    if (!c || uv_pipe_init(&d->loop, &c->pipe, 0)) {
        free(c);
        return NULL;
    }
    static uint64_t serials;
    c->d = d;
    c->serial = ++serials;
    c->pipe.data = c;
    c->active_at = now_ms(d);
    adv_linebuf_init(&c->lines, ADV_PROTO_MAX_LINE);
    c->next = d->clients;
    if (d->clients)
        d->clients->prev = c;
    d->clients = c;
    sweep_update(d);
    return c;
}

static void admit(advd *d, advd_client *c)
{
    if (user_add(d->conns, c->uid)) {
        advd_log(d, "cannot accept a connection: out of memory");
        client_close(c);
        return;
    }
    c->admitted = 1;
    d->nclients++;
    advd_client_send(c, adv_proto_greeting());
    update_read(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    advd *d = server->data;
    advd_conns *s = d->conns;
    char msg[ADV_ERRLEN];
    if (status < 0) {
        conn_event_log(d, EV_accept_failed, uv_strerror(status));
        return;
    }
    advd_client *c = client_new(d);
    if (!c) {
        advd_log(d, "cannot accept a connection: out of memory");
        return;
    }
    peer p;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) || peer_read(c, &p)) {
        client_close(c);
        return;
    }
    s->accepted++;
    c->uid = (unsigned)p.cred.uid;
    if (peer_gone(c)) { /* connected and closed again before we got to it */
        s->hung_up++;
        client_close(c);
        return;
    }
    int ev = admission(d, &p, msg, sizeof msg);
    if (ev >= 0)
        refuse(c, (conn_event)ev, msg);
    else
        admit(d, c);
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

static int lookup_group(advd *d, char *err)
{
    advd_conns *s = d->conns;
    const char *name = d->opt.socket_group;
    if (!*name)
        return 0;
    struct group gr, *found = NULL;
    char buf[16384];
    int rc = getgrnam_r(name, &gr, buf, sizeof buf, &found);
    if (!found)
        return core_errf(err, "invalid 'socket_group': no group '%s'%s%s", name,
                         rc ? ": " : "", rc ? strerror(rc) : "");
    s->has_group = 1;
    s->group = gr.gr_gid;
    return 0;
}

/* Every connection is a file descriptor: raise the soft limit to the hard
 * one, and say so when even that cannot hold max_clients. */
static void raise_fd_limit(advd *d)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)d->opt.max_clients + ADVD_FD_SPARE)
        advd_log(d, "the open-file limit (%llu) holds fewer than max_clients (%d) connections",
                 (unsigned long long)rl.rlim_cur, d->opt.max_clients);
}

/* The socket file's group and mode: bound under umask 0177 (0600), then
 * given to the group, then opened to socket_mode. */
static int set_socket_access(advd *d, char *err)
{
    const char *path = d->opt.socket_path;
    advd_conns *s = d->conns;
    if (s->has_group && chown(path, (uid_t)-1, s->group))
        return core_errf(err, "cannot give '%s' to group '%s': %s", path, d->opt.socket_group,
                         strerror(errno));
    if (chmod(path, (mode_t)d->opt.socket_mode))
        return core_errf(err, "cannot chmod '%s': %s", path, strerror(errno));
    return 0;
}

static int listen_socket(advd *d, char *err)
{
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
    if (set_socket_access(d, err))
        return -1;
    /* The kernel caps the backlog at net.core.somaxconn. */
    int backlog = d->opt.max_clients > SOMAXCONN ? d->opt.max_clients : SOMAXCONN;
    if ((rc = uv_listen((uv_stream_t *)&d->server, backlog, on_connection)))
        return core_errf(err, "cannot listen on '%s': %s", d->opt.socket_path, uv_strerror(rc));
    return 0;
}

int advd_server_start(advd *d, char *err)
{
    advd_conns *s = calloc(1, sizeof *s);
    if (!s)
        return core_errf(err, "out of memory");
    d->conns = s;
    s->self = (unsigned)getuid();
    s->reserved = d->opt.reserved_clients < d->opt.max_clients ? d->opt.reserved_clients
                                                               : d->opt.max_clients - 1;
    if (lookup_group(d, err) || check_socket_path(d, err) || (raise_fd_limit(d), 0) ||
        listen_socket(d, err)) {
        free(s);
        d->conns = NULL;
        return -1;
    }
    uv_idle_init(&d->loop, &s->serve);
    uv_timer_init(&d->loop, &s->sweep);
    uv_check_init(&d->loop, &s->tick);
    s->tick.data = s;
    uv_check_start(&s->tick, on_tick);
    uv_unref((uv_handle_t *)&s->tick); /* it alone keeps no loop alive */
    s->serve.data = s;
    s->sweep.data = d;
    s->open_handles = 3;
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

static void on_conns_handle_closed(uv_handle_t *h)
{
    advd *d = h->loop->data;
    advd_conns *s = d->conns;
    if (--s->open_handles > 0)
        return;
    free(s->batch);
    free(s->users);
    free(s);
    d->conns = NULL;
}

void advd_server_close_clients(advd *d)
{
    advd_conns *s = d->conns;
    if (!s || s->shut)
        return;
    while (d->clients)
        client_close(d->clients);
    s->shut = 1;
    for (int i = 0; i < EV_COUNT; i++)
        log_unlogged(d, (conn_event)i);
    uv_close((uv_handle_t *)&s->serve, on_conns_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_conns_handle_closed);
    uv_close((uv_handle_t *)&s->tick, on_conns_handle_closed);
}
