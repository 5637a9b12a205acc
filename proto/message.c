/*
 * message.c - the objects of the wire protocol (see proto.h for the format):
 * names of kinds, states and commands, the greeting, requests and their
 * arguments, responses, events, and a client's parse of a server line.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- names */

static const char *const kind_names[] = {"train", "eval", "import"};
#define NKINDS 3
static const char *const state_names[ADV_NSTATES] = {
    "queued", "running", "succeeded", "failed", "cancelled",
};
static const char *const cmd_names[ADV_NCMDS] = {
#define CMD_NAME(e, name) #name,
    ADV_COMMANDS(CMD_NAME)
#undef CMD_NAME
};

const char *adv_job_kind_name(adv_job_kind k)
{
    return (unsigned)k < NKINDS ? kind_names[k] : "unknown";
}

int adv_job_kind_parse(const char *s, adv_job_kind *out)
{
    int i = core_name_index(s, kind_names, NKINDS);
    if (i >= 0)
        *out = (adv_job_kind)i;
    return i >= 0 ? 0 : -1;
}

const char *adv_job_state_name(adv_job_state s)
{
    return (unsigned)s < ADV_NSTATES ? state_names[s] : "unknown";
}

int adv_job_state_parse(const char *s, adv_job_state *out)
{
    int i = core_name_index(s, state_names, ADV_NSTATES);
    if (i >= 0)
        *out = (adv_job_state)i;
    return i >= 0 ? 0 : -1;
}

int adv_job_state_final(adv_job_state s)
{
    return s == ADV_STATE_SUCCEEDED || s == ADV_STATE_FAILED || s == ADV_STATE_CANCELLED;
}

const char *adv_cmd_name(adv_cmd c)
{
    return (unsigned)c < ADV_NCMDS ? cmd_names[c] : "unknown";
}

int adv_cmd_parse(const char *s, adv_cmd *out)
{
    int i = core_name_index(s, cmd_names, ADV_NCMDS);
    if (i >= 0)
        *out = (adv_cmd)i;
    return i >= 0 ? 0 : -1;
}

/* ------------------------------------------------- checkpoint references */

#define EPOCH_MAX 100000

int adv_ckpt_ref_parse(const json_t *v, const char *field, adv_ckpt_ref *out, adv_error *e)
{
    const char *s = json_string_value(v);
    if (s && strcmp(s, "latest") == 0) {
        *out = (adv_ckpt_ref){ADV_CKPT_LATEST, 0};
        return 0;
    }
    if (s && strcmp(s, "best") == 0) {
        *out = (adv_ckpt_ref){ADV_CKPT_BEST, 0};
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= EPOCH_MAX) {
        *out = (adv_ckpt_ref){ADV_CKPT_EPOCH, (int)json_integer_value(v)};
        return 0;
    }
    char got[64];
    adv_proto_show(v, got, sizeof got);
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                      "invalid '%s': expected 'latest', 'best' or an epoch in [0, %d], got %s",
                      field, EPOCH_MAX, got);
}

json_t *adv_ckpt_ref_json(adv_ckpt_ref r)
{
    if (r.which == ADV_CKPT_EPOCH)
        return json_integer(r.epoch);
    return json_string(r.which == ADV_CKPT_BEST ? "best" : "latest");
}

/* ------------------------------------------------------------ greeting */

json_t *adv_proto_greeting(void)
{
    return json_pack("{s:s, s:s, s:i}", "hello", "advd", "version", ADV_VERSION, "protocol",
                     ADV_PROTOCOL);
}

int adv_proto_greeting_check(const json_t *obj, char *version, size_t vlen, adv_error *e)
{
    const char *hello = json_string_value(json_object_get(obj, "hello"));
    const json_t *proto = json_object_get(obj, "protocol");
    const char *ver = json_string_value(json_object_get(obj, "version"));
    if (!hello || strcmp(hello, "advd") != 0 || !json_is_integer(proto) || !ver)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "the server did not greet as advd");
    if (json_integer_value(proto) != ADV_PROTOCOL)
        return adv_errorf(e, ADV_E_CONFLICT,
                          "server '%.40s' speaks protocol %" JSON_INTEGER_FORMAT
                          ", this client speaks %d", ver, json_integer_value(proto), ADV_PROTOCOL);
    if (version)
        snprintf(version, vlen, "%s", ver);
    return 0;
}

/* ------------------------------------------------------------ requests */

typedef enum { A_JOB, A_INT, A_STR, A_OBJ, A_CKPT, A_STATE, A_KIND, A_BOOL, A_FORMAT,
               A_DATA } arg_type;

typedef struct {
    const char *name;
    arg_type type;
    int required;
} arg_def;

#define MAX_ARGS 5
/* The arguments of each command, indexed by adv_cmd. */
static const arg_def cmd_args[ADV_NCMDS][MAX_ARGS] = {
    [ADV_CMD_SUBMIT] = {{"spec", A_OBJ, 1}},
    [ADV_CMD_LIST] = {{"state", A_STATE, 0}, {"kind", A_KIND, 0}, {"limit", A_INT, 0},
                      {"mine", A_BOOL, 0}},
    [ADV_CMD_STATUS] = {{"job", A_JOB, 1}},
    [ADV_CMD_CANCEL] = {{"job", A_JOB, 1}},
    [ADV_CMD_METRICS] = {{"job", A_JOB, 1}, {"key", A_STR, 0}, {"since", A_INT, 0}},
    [ADV_CMD_RESULTS] = {{"job", A_JOB, 1}},
    [ADV_CMD_CHECKPOINTS] = {{"job", A_JOB, 1}},
    [ADV_CMD_EXPORT] = {{"job", A_JOB, 1}, {"checkpoint", A_CKPT, 0}, {"format", A_FORMAT, 0},
                        {"offset", A_INT, 0}, {"length", A_INT, 0}},
    [ADV_CMD_WATCH] = {{"job", A_JOB, 1}},
    [ADV_CMD_IMAGES] = {{"job", A_JOB, 1}, {"name", A_STR, 0}, {"offset", A_INT, 0},
                        {"length", A_INT, 0}},
    [ADV_CMD_IMPORT] = {{"spec", A_OBJ, 0}, {"size", A_INT, 0}, {"upload", A_INT, 0},
                        {"offset", A_INT, 0}, {"data", A_DATA, 1}},
    [ADV_CMD_PREDICT] = {{"job", A_JOB, 1}, {"checkpoint", A_CKPT, 0}, {"monitor", A_BOOL, 0},
                         {"n", A_INT, 1}, {"pixels", A_DATA, 1}},
    [ADV_CMD_MONITOR] = {{"job", A_JOB, 1}, {"checkpoint", A_CKPT, 0}, {"window", A_INT, 0},
                         {"since", A_INT, 0}},
};

static int arg_bad(adv_error *e, const char *name, const char *want, const json_t *v)
{
    char got[64];
    adv_proto_show(v, got, sizeof got);
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid '%s': expected %s, got %s", name, want,
                      got);
}

static int check_arg(const arg_def *a, const json_t *v, adv_error *e)
{
    const char *s = json_string_value(v);
    json_int_t i = json_integer_value(v);
    adv_job_state st;
    adv_job_kind k;
    adv_ckpt_ref ref;
    switch (a->type) {
    case A_JOB:
        return json_is_integer(v) && i >= 1 ? 0 : arg_bad(e, a->name, "a job id (an integer >= 1)", v);
    case A_INT:
        return json_is_integer(v) && i >= 0 ? 0 : arg_bad(e, a->name, "an integer >= 0", v);
    case A_STR:
        return s && *s && strlen(s) < 256 ? 0 : arg_bad(e, a->name, "a string of 1 to 255 bytes", v);
    case A_OBJ:
        return json_is_object(v) ? 0 : arg_bad(e, a->name, "an object", v);
    case A_CKPT:
        return adv_ckpt_ref_parse(v, a->name, &ref, e);
    case A_STATE:
        return s && adv_job_state_parse(s, &st) == 0
                   ? 0
                   : arg_bad(e, a->name, "queued, running, succeeded, failed or cancelled", v);
    case A_KIND:
        return s && adv_job_kind_parse(s, &k) == 0 ? 0 : arg_bad(e, a->name, "train, eval or import", v);
    case A_BOOL:
        return json_is_boolean(v) ? 0 : arg_bad(e, a->name, "true or false", v);
    case A_FORMAT:
        return s && (!strcmp(s, "state") || !strcmp(s, "safetensors"))
                   ? 0
                   : arg_bad(e, a->name, "'state' or 'safetensors'", v);
    case A_DATA: /* base64 of a piece; its length is bounded by the line */
        return s ? 0 : arg_bad(e, a->name, "a base64 string", v);
    }
    return adv_errorf(e, ADV_E_INTERNAL, "unknown argument type for '%s'", a->name);
}

static int check_args(const adv_request *req, adv_error *e)
{
    const arg_def *defs = cmd_args[req->cmd];
    const char *names[MAX_ARGS + 2] = {"id", "cmd"};
    int n = 2;
    for (int j = 0; j < MAX_ARGS && defs[j].name; j++)
        names[n++] = defs[j].name;
    const char *key;
    json_t *v;
    char where[40];
    snprintf(where, sizeof where, " for '%s'", adv_cmd_name(req->cmd));
    json_object_foreach(req->root, key, v) {
        if (core_name_index(key, names, n) < 0)
            return adv_proto_unknown_key(e, key, where, names + 2, n - 2);
    }
    for (int j = 0; j < MAX_ARGS && defs[j].name; j++) {
        v = json_object_get(req->root, defs[j].name);
        if (!v && defs[j].required)
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "missing '%s'%s", defs[j].name, where);
        if (v && check_arg(&defs[j], v, e))
            return -1;
    }
    return 0;
}

static int check_id(const json_t *id, adv_error *e)
{
    if (!id)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "missing 'id'");
    if (json_is_integer(id))
        return 0;
    if (json_is_string(id) && json_string_length(id) <= 128)
        return 0;
    char got[64];
    adv_proto_show(id, got, sizeof got);
    return adv_errorf(e, ADV_E_BAD_REQUEST,
                      "invalid 'id': expected an integer or a string of at most 128 bytes, got %s",
                      got);
}

static int check_cmd(adv_request *req, adv_error *e)
{
    const json_t *cmd = json_object_get(req->root, "cmd");
    if (!cmd)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "missing 'cmd'");
    const char *s = json_string_value(cmd);
    if (s && adv_cmd_parse(s, &req->cmd) == 0)
        return 0;
    char got[64];
    adv_proto_show(cmd, got, sizeof got);
    const char *hint = s ? adv_proto_suggest(s, cmd_names, ADV_NCMDS) : NULL;
    if (hint)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "unknown command %s (did you mean '%s'?)", got,
                          hint);
    return adv_errorf(e, ADV_E_BAD_REQUEST, "invalid 'cmd': expected a command name, got %s", got);
}

int adv_request_parse(const char *line, size_t len, adv_request *req, adv_error *e)
{
    memset(req, 0, sizeof *req);
    if (adv_proto_decode(line, len, &req->root, e))
        return -1;
    json_t *id = json_object_get(req->root, "id");
    if (check_id(id, e))
        return -1;
    req->id = id;
    if (check_cmd(req, e) || check_args(req, e))
        return -1;
    return 0;
}

void adv_request_free(adv_request *req)
{
    json_decref(req->root);
    memset(req, 0, sizeof *req);
}

const json_t *adv_request_arg(const adv_request *req, const char *key)
{
    return json_object_get(req->root, key);
}

int64_t adv_request_int(const adv_request *req, const char *key, int64_t dflt)
{
    const json_t *v = json_object_get(req->root, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

const char *adv_request_str(const adv_request *req, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(req->root, key));
    return s ? s : dflt;
}

/* ------------------------------------------------- responses and events */

static json_t *id_or_null(const json_t *id)
{
    return id ? json_deep_copy(id) : json_null();
}

json_t *adv_proto_ok(const json_t *id, json_t *result)
{
    json_t *r = json_object();
    json_object_set_new(r, "id", id_or_null(id));
    json_object_set_new(r, "ok", json_true());
    json_object_set_new(r, "result", result ? result : json_object());
    return r;
}

json_t *adv_proto_error(const json_t *id, const adv_error *err)
{
    json_t *r = json_object();
    json_object_set_new(r, "id", id_or_null(id));
    json_object_set_new(r, "ok", json_false());
    json_object_set_new(r, "error", json_pack("{s:s, s:o}", "code", adv_errcode_name(err->code),
                                              "message", adv_proto_string(err->msg)));
    return r;
}

/* {"event": name, "job": job} with fields merged in (fields stolen). */
static json_t *event(const char *name, int64_t job, json_t *fields)
{
    json_t *r = json_pack("{s:s, s:I}", "event", name, "job", (json_int_t)job);
    if (fields) {
        json_object_update_missing(r, fields);
        json_decref(fields);
    }
    return r;
}

json_t *adv_proto_event_progress(int64_t job, double progress, json_t *fields)
{
    /* json_real() refuses NaN and infinities. */
    if (!(progress >= 0.0))
        progress = 0.0;
    if (progress > 1.0)
        progress = 1.0;
    json_t *r = event("progress", job, fields);
    json_object_set_new(r, "progress", json_real(progress));
    return r;
}

json_t *adv_proto_event_state(int64_t job, adv_job_state state, const char *error)
{
    json_t *f = json_pack("{s:s}", "state", adv_job_state_name(state));
    if (error)
        json_object_set_new(f, "error", adv_proto_string(error));
    return event("state", job, f);
}

/* ------------------------------------------------- a client's view */

static int reply_error(adv_reply *r, adv_error *e)
{
    const json_t *err = json_object_get(r->root, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (!code || !msg)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "failed response without 'error.code' and "
                                                "'error.message'");
    adv_errcode c;
    if (adv_errcode_parse(code, &c))
        c = ADV_E_INTERNAL; /* a newer server's code: still a failure */
    adv_errorf(&r->error, c, "%s", msg);
    return 0;
}

static int classify(adv_reply *r, adv_error *e)
{
    const json_t *ok = json_object_get(r->root, "ok");
    if (json_object_get(r->root, "hello")) {
        r->type = ADV_MSG_GREETING;
        return 0;
    }
    if ((r->event = json_string_value(json_object_get(r->root, "event")))) {
        r->type = ADV_MSG_EVENT;
        return 0;
    }
    if (!json_object_get(r->root, "id") || !json_is_boolean(ok))
        return adv_errorf(e, ADV_E_BAD_REQUEST, "message from the server is neither a greeting, "
                                                "a response nor an event");
    r->type = ADV_MSG_RESPONSE;
    r->id = json_object_get(r->root, "id");
    r->ok = json_is_true(ok);
    if (!r->ok)
        return reply_error(r, e);
    r->result = json_object_get(r->root, "result");
    if (!json_is_object(r->result))
        return adv_errorf(e, ADV_E_BAD_REQUEST, "response without a 'result' object");
    return 0;
}

int adv_reply_parse(const char *line, size_t len, adv_reply *out, adv_error *e)
{
    memset(out, 0, sizeof *out);
    if (adv_proto_decode(line, len, &out->root, e))
        return -1;
    return classify(out, e);
}

void adv_reply_free(adv_reply *r)
{
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}
