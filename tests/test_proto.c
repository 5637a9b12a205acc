/*
 * test_proto.c - the wire protocol: line framing, requests, responses,
 * events, a client's parse of server lines, and thousands of generated bad
 * inputs that must each give an error with a code and a message.
 */
#include "proto/proto.h"
#include "testutil.h"

#include <stdint.h>

/* ------------------------------------------------------------- helpers */

/* Feed text in chunks of the given sizes (cycled) and collect the lines,
 * joined with '|'. Returns the number of lines; *rc_out the last next(). */
static int split(const char *text, size_t n, const size_t *chunks, int nchunks, size_t max,
                 char *out, size_t outlen, int *rc_out)
{
    adv_linebuf lb;
    adv_error e;
    adv_linebuf_init(&lb, max);
    out[0] = '\0';
    int lines = 0, rc = 0;
    for (size_t off = 0, c = 0; off < n; c++) {
        size_t k = chunks[c % (size_t)nchunks];
        if (k > n - off)
            k = n - off;
        ck_assert_int_eq(adv_linebuf_feed(&lb, text + off, k, &e), 0);
        off += k;
        const char *line;
        size_t len;
        while ((rc = adv_linebuf_next(&lb, &line, &len, &e)) == 1) {
            ck_assert_uint_eq(strlen(line), len);
            if (lines++)
                strncat(out, "|", outlen - strlen(out) - 1);
            strncat(out, line, outlen - strlen(out) - 1);
        }
        if (rc < 0)
            break;
    }
    if (rc_out)
        *rc_out = rc;
    adv_linebuf_free(&lb);
    return lines;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: reproducible test data, no libc state. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static void expect_error(const char *line, adv_errcode code, const char *needle)
{
    adv_request req;
    adv_error e = {0};
    int rc = adv_request_parse(line, strlen(line), &req, &e);
    ck_assert_msg(rc == -1, "'%s' parsed", line);
    ck_assert_msg(e.code == code, "'%s': code %s, want %s (%s)", line, adv_errcode_name(e.code),
                  adv_errcode_name(code), e.msg);
    ck_assert_msg(strstr(e.msg, needle), "'%s': message '%s' lacks '%s'", line, e.msg, needle);
    adv_request_free(&req);
}

/* ------------------------------------------------------------- framing */

START_TEST(test_split_every_chunk_size)
{
    const char *text = "{\"id\":1,\"cmd\":\"ping\"}\n{\"a\":\"x\\ny\"}\n\n{\"b\":[1,2]}\r\n";
    const char *want = "{\"id\":1,\"cmd\":\"ping\"}|{\"a\":\"x\\ny\"}|{\"b\":[1,2]}";
    size_t n = strlen(text);
    char got[256];
    for (size_t k = 1; k <= n; k++) {
        int rc;
        ck_assert_int_eq(split(text, n, &k, 1, 1024, got, sizeof got, &rc), 3);
        ck_assert_str_eq(got, want);
        ck_assert_int_eq(rc, 0);
    }
    /* Random boundaries. */
    for (int t = 0; t < 500; t++) {
        size_t chunks[8];
        for (int i = 0; i < 8; i++)
            chunks[i] = 1 + rnd() % 9;
        ck_assert_int_eq(split(text, n, chunks, 8, 1024, got, sizeof got, NULL), 3);
        ck_assert_str_eq(got, want);
    }
}
END_TEST

START_TEST(test_split_several_in_one_chunk)
{
    adv_linebuf lb;
    adv_error e;
    const char *line;
    size_t len;
    adv_linebuf_init(&lb, 64);
    const char *chunk = "one\ntwo\nthree\nfou";
    ck_assert_int_eq(adv_linebuf_feed(&lb, chunk, strlen(chunk), &e), 0);
    const char *want[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), 1);
        ck_assert_str_eq(line, want[i]);
    }
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), 0);
    ck_assert_uint_eq(adv_linebuf_pending(&lb), 3);
    ck_assert_int_eq(adv_linebuf_feed(&lb, "r\n", 2, &e), 0);
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), 1);
    ck_assert_str_eq(line, "four");
    ck_assert_uint_eq(adv_linebuf_pending(&lb), 0);
    adv_linebuf_free(&lb);
}
END_TEST

/* Decision: empty lines (and "\r\n" alone) are skipped, not errors. */
START_TEST(test_split_empty_lines_skipped)
{
    char got[64];
    size_t k = 3;
    ck_assert_int_eq(split("\n\r\n\n{}\n\n", 8, &k, 1, 16, got, sizeof got, NULL), 1);
    ck_assert_str_eq(got, "{}");
    ck_assert_int_eq(split("\n\n\n", 3, &k, 1, 16, got, sizeof got, NULL), 0);
}
END_TEST

START_TEST(test_split_too_large)
{
    char got[256];
    int rc;
    size_t k = 5;
    /* Exactly max bytes is fine, "\r" not counted; max + 1 is not. */
    ck_assert_int_eq(split("12345678\n1234567\r\n", 18, &k, 1, 8, got, sizeof got, &rc), 2);
    ck_assert_str_eq(got, "12345678|1234567");
    ck_assert_int_eq(split("ok\n123456789\nnext\n", 18, &k, 1, 8, got, sizeof got, &rc), 1);
    ck_assert_str_eq(got, "ok");
    ck_assert_int_eq(rc, -1);
    /* An unfinished line already over the limit: reported after the lines
     * before it, and nothing more is buffered. */
    adv_linebuf lb;
    adv_error e = {0};
    const char *line;
    size_t len;
    adv_linebuf_init(&lb, 8);
    ck_assert_int_eq(adv_linebuf_feed(&lb, "a\nb\n0123456789abcdef", 20, &e), 0);
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), 1);
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), 1);
    ck_assert_str_eq(line, "b");
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), -1);
    ck_assert_int_eq(e.code, ADV_E_TOO_LARGE);
    ck_assert_str_eq(e.msg, "line longer than 8 bytes");
    /* Sticky. */
    ck_assert_int_eq(adv_linebuf_feed(&lb, "{}\n", 3, &e), -1);
    ck_assert_int_eq(adv_linebuf_next(&lb, &line, &len, &e), -1);
    adv_linebuf_free(&lb);
}
END_TEST

/* The real limit, 1 MiB, fed as a socket would (64 KiB reads). */
START_TEST(test_split_one_mebibyte)
{
    size_t n = ADV_PROTO_MAX_LINE + 2;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', n);
    adv_linebuf lb;
    adv_error e;
    const char *line;
    size_t len;
    for (int over = 0; over < 2; over++) {
        adv_linebuf_init(&lb, ADV_PROTO_MAX_LINE);
        size_t total = ADV_PROTO_MAX_LINE + (size_t)over;
        big[total] = '\n';
        int rc = 0;
        for (size_t off = 0; off <= total && rc == 0; off += 65536) {
            size_t k = total + 1 - off < 65536 ? total + 1 - off : 65536;
            ck_assert_int_eq(adv_linebuf_feed(&lb, big + off, k, &e), 0);
            rc = adv_linebuf_next(&lb, &line, &len, &e);
        }
        ck_assert_int_eq(rc, over ? -1 : 1);
        if (!over)
            ck_assert_uint_eq(len, ADV_PROTO_MAX_LINE);
        else
            ck_assert_int_eq(e.code, ADV_E_TOO_LARGE);
        ck_assert_uint_le(lb.cap, 2 * (size_t)ADV_PROTO_MAX_LINE + 65536);
        adv_linebuf_free(&lb);
        big[total] = 'x';
    }
    free(big);
}
END_TEST

START_TEST(test_encode_decode)
{
    json_t *o = json_pack("{s:i, s:s, s:f}", "id", 3, "text", "a\nb\"c", "x", 0.05);
    char *line;
    size_t len;
    adv_error e;
    ck_assert_int_eq(adv_proto_encode(o, &line, &len, &e), 0);
    ck_assert_str_eq(line, "{\"id\":3,\"text\":\"a\\nb\\\"c\",\"x\":0.05}\n");
    ck_assert_uint_eq(len, strlen(line));
    json_t *back;
    ck_assert_int_eq(adv_proto_decode(line, len - 1, &back, &e), 0);
    ck_assert(json_equal(o, back));
    json_decref(back);
    free(line);
    json_decref(o);

    ck_assert_int_eq(adv_proto_decode("[1]", 3, &back, &e), -1);
    ck_assert_int_eq(e.code, ADV_E_BAD_REQUEST);
    ck_assert_str_eq(e.msg, "expected a JSON object, got an array");
    ck_assert_int_eq(adv_proto_decode("{\"a\":1,\"a\":2}", 13, &back, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "duplicate"));
    ck_assert_int_eq(adv_proto_decode("{\"a\":", 5, &back, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "malformed JSON at column"));
    ck_assert_ptr_null(back);
}
END_TEST

/* ------------------------------------------------------------ requests */

START_TEST(test_request_every_command)
{
    static const char *lines[ADV_NCMDS] = {
        "{\"id\":1,\"cmd\":\"submit\",\"spec\":{\"kind\":\"train\"}}",
        "{\"id\":2,\"cmd\":\"list\",\"state\":\"queued\",\"kind\":\"eval\",\"limit\":5}",
        "{\"id\":\"s\",\"cmd\":\"status\",\"job\":3}",
        "{\"id\":4,\"cmd\":\"cancel\",\"job\":3}",
        "{\"id\":5,\"cmd\":\"metrics\",\"job\":3,\"key\":\"loss\",\"since\":10}",
        "{\"id\":6,\"cmd\":\"results\",\"job\":3}",
        "{\"id\":7,\"cmd\":\"checkpoints\",\"job\":3}",
        "{\"id\":8,\"cmd\":\"export\",\"job\":3,\"checkpoint\":\"best\",\"format\":"
        "\"safetensors\",\"offset\":524288,\"length\":1000}",
        "{\"id\":9,\"cmd\":\"watch\",\"job\":3}",
        "{\"id\":10,\"cmd\":\"ping\"}",
        "{\"id\":-11,\"cmd\":\"version\"}",
        "{\"id\":12,\"cmd\":\"images\",\"job\":3}",
        "{\"id\":13,\"cmd\":\"info\"}",
        "{\"id\":14,\"cmd\":\"import\",\"upload\":2,\"offset\":8,\"data\":\"AAAA\"}",
        "{\"id\":15,\"cmd\":\"predict\",\"job\":3,\"monitor\":true,\"n\":1,\"pixels\":\"AAAA\"}",
        "{\"id\":16,\"cmd\":\"monitor\",\"job\":3,\"checkpoint\":\"best\",\"window\":500}",
    };
    /* A command added to ADV_COMMANDS without its line here is caught. */
    for (int c = 0; c < ADV_NCMDS; c++)
        ck_assert_msg(lines[c] != NULL, "no request line for '%s'", adv_cmd_name((adv_cmd)c));
    for (int c = 0; c < ADV_NCMDS; c++) {
        adv_request req;
        adv_error e = {0};
        ck_assert_msg(adv_request_parse(lines[c], strlen(lines[c]), &req, &e) == 0, "%s: %s",
                      lines[c], e.msg);
        ck_assert_int_eq(req.cmd, c);
        ck_assert_str_eq(adv_cmd_name(req.cmd), adv_cmd_name((adv_cmd)c));
        ck_assert_ptr_nonnull(req.id);
        adv_request_free(&req);
    }
    adv_request req;
    adv_error e;
    ck_assert_int_eq(adv_request_parse(lines[4], strlen(lines[4]), &req, &e), 0);
    ck_assert_int_eq(adv_request_int(&req, "job", 0), 3);
    ck_assert_int_eq(adv_request_int(&req, "absent", -7), -7);
    ck_assert_str_eq(adv_request_str(&req, "key", NULL), "loss");
    ck_assert_str_eq(adv_request_str(&req, "nope", "d"), "d");
    adv_request_free(&req);
}
END_TEST

START_TEST(test_request_errors)
{
    expect_error("nonsense", ADV_E_BAD_REQUEST, "malformed JSON");
    expect_error("{\"cmd\":\"ping\"}", ADV_E_BAD_REQUEST, "missing 'id'");
    expect_error("{\"id\":1.5,\"cmd\":\"ping\"}", ADV_E_BAD_REQUEST, "invalid 'id'");
    expect_error("{\"id\":{},\"cmd\":\"ping\"}", ADV_E_BAD_REQUEST, "got an object");
    expect_error("{\"id\":1}", ADV_E_BAD_REQUEST, "missing 'cmd'");
    expect_error("{\"id\":1,\"cmd\":7}", ADV_E_BAD_REQUEST, "invalid 'cmd'");
    expect_error("{\"id\":1,\"cmd\":\"stauts\"}", ADV_E_BAD_REQUEST,
                 "unknown command 'stauts' (did you mean 'status'?)");
    expect_error("{\"id\":1,\"cmd\":\"status\"}", ADV_E_INVALID_ARGUMENT,
                 "missing 'job' for 'status'");
    expect_error("{\"id\":1,\"cmd\":\"status\",\"job\":\"3\"}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'job': expected a job id (an integer >= 1), got '3'");
    expect_error("{\"id\":1,\"cmd\":\"status\",\"job\":0}", ADV_E_INVALID_ARGUMENT, "got 0");
    expect_error("{\"id\":1,\"cmd\":\"status\",\"jb\":3}", ADV_E_INVALID_ARGUMENT,
                 "unknown key 'jb' for 'status' (did you mean 'job'?)");
    expect_error("{\"id\":1,\"cmd\":\"ping\",\"x\":3}", ADV_E_INVALID_ARGUMENT,
                 "unknown key 'x' for 'ping'");
    expect_error("{\"id\":1,\"cmd\":\"list\",\"state\":\"done\"}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'state'");
    expect_error("{\"id\":1,\"cmd\":\"list\",\"kind\":\"x\"}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'kind'");
    expect_error("{\"id\":1,\"cmd\":\"list\",\"limit\":-1}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'limit'");
    expect_error("{\"id\":1,\"cmd\":\"export\",\"job\":1,\"checkpoint\":\"worst\"}",
                 ADV_E_INVALID_ARGUMENT, "invalid 'checkpoint'");
    expect_error("{\"id\":1,\"cmd\":\"export\",\"job\":1,\"path\":\"/x\"}",
                 ADV_E_INVALID_ARGUMENT, "unknown key 'path' for 'export'");
    expect_error("{\"id\":1,\"cmd\":\"export\",\"job\":1,\"format\":\"onnx\"}",
                 ADV_E_INVALID_ARGUMENT, "invalid 'format': expected 'state' or 'safetensors'");
    expect_error("{\"id\":1,\"cmd\":\"list\",\"mine\":1}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'mine': expected true or false");
    expect_error("{\"id\":1,\"cmd\":\"submit\",\"spec\":[]}", ADV_E_INVALID_ARGUMENT,
                 "invalid 'spec': expected an object, got an array");

    /* The id survives an argument error so the response can echo it. */
    adv_request req;
    adv_error e;
    const char *l = "{\"id\":\"abc\",\"cmd\":\"status\"}";
    ck_assert_int_eq(adv_request_parse(l, strlen(l), &req, &e), -1);
    ck_assert_str_eq(json_string_value(req.id), "abc");
    adv_request_free(&req);
}
END_TEST

/* ---------------------------------------------------- responses, events */

static adv_reply reply_of(json_t *msg)
{
    char *line;
    size_t len;
    adv_error e;
    adv_reply r;
    ck_assert_int_eq(adv_proto_encode(msg, &line, &len, &e), 0);
    ck_assert_int_eq(adv_reply_parse(line, len - 1, &r, &e), 0);
    free(line);
    json_decref(msg);
    return r;
}

START_TEST(test_responses)
{
    json_t *id = json_integer(42);
    adv_reply r = reply_of(adv_proto_ok(id, json_pack("{s:i}", "job", 7)));
    ck_assert_int_eq(r.type, ADV_MSG_RESPONSE);
    ck_assert(r.ok);
    ck_assert_int_eq(json_integer_value(r.id), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(r.result, "job")), 7);
    adv_reply_free(&r);

    adv_error err;
    adv_errorf(&err, ADV_E_NOT_FOUND, "no job %d", 7);
    r = reply_of(adv_proto_error(id, &err));
    ck_assert(!r.ok);
    ck_assert_int_eq(r.error.code, ADV_E_NOT_FOUND);
    ck_assert_str_eq(r.error.msg, "no job 7");
    adv_reply_free(&r);
    json_decref(id);

    /* No id: null. A message with bytes that are not UTF-8 is repaired. */
    adv_errorf(&err, ADV_E_BAD_REQUEST, "bad '%s'", "\xff\xfe\x01ok\xc3\xa9");
    ck_assert_str_eq(err.msg, "bad '???ok\xc3\xa9'");
    json_t *m = adv_proto_error(NULL, &err);
    ck_assert(json_is_null(json_object_get(m, "id")));
    r = reply_of(m);
    ck_assert_str_eq(r.error.msg, "bad '???ok\xc3\xa9'");
    adv_reply_free(&r);

    r = reply_of(adv_proto_ok(NULL, NULL));
    ck_assert(r.ok && json_object_size(r.result) == 0);
    adv_reply_free(&r);
}
END_TEST

START_TEST(test_events_and_greeting)
{
    adv_reply r = reply_of(adv_proto_event_progress(3, 0.25, json_pack("{s:i}", "epoch", 1)));
    ck_assert_int_eq(r.type, ADV_MSG_EVENT);
    ck_assert_str_eq(r.event, "progress");
    ck_assert_int_eq(json_integer_value(json_object_get(r.root, "job")), 3);
    ck_assert_double_eq(json_real_value(json_object_get(r.root, "progress")), 0.25);
    ck_assert_int_eq(json_integer_value(json_object_get(r.root, "epoch")), 1);
    adv_reply_free(&r);
    r = reply_of(adv_proto_event_progress(3, NAN, NULL));
    ck_assert_double_eq(json_real_value(json_object_get(r.root, "progress")), 0.0);
    adv_reply_free(&r);
    r = reply_of(adv_proto_event_state(3, ADV_STATE_FAILED, "killed by signal 9\n\xff"));
    ck_assert_str_eq(r.event, "state");
    ck_assert_str_eq(json_string_value(json_object_get(r.root, "state")), "failed");
    ck_assert_str_eq(json_string_value(json_object_get(r.root, "error")),
                     "killed by signal 9??");
    adv_reply_free(&r);

    r = reply_of(adv_proto_greeting());
    ck_assert_int_eq(r.type, ADV_MSG_GREETING);
    char version[32];
    adv_error e;
    ck_assert_int_eq(adv_proto_greeting_check(r.root, version, sizeof version, &e), 0);
    ck_assert_str_eq(version, ADV_VERSION);
    json_object_set_new(r.root, "protocol", json_integer(ADV_PROTOCOL + 1));
    ck_assert_int_eq(adv_proto_greeting_check(r.root, version, sizeof version, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "speaks protocol 3"));
    adv_reply_free(&r);

    const char *odd = "{\"x\":1}";
    ck_assert_int_eq(adv_reply_parse(odd, strlen(odd), &r, &e), -1);
    adv_reply_free(&r);
}
END_TEST

START_TEST(test_names)
{
    static const char *codes[] = {"bad_request", "invalid_argument", "not_found",
                                  "conflict", "too_large", "forbidden", "internal"};
    for (int i = 0; i < 7; i++) {
        adv_errcode c;
        ck_assert_str_eq(adv_errcode_name((adv_errcode)i), codes[i]);
        ck_assert_int_eq(adv_errcode_parse(codes[i], &c), 0);
        ck_assert_int_eq(c, i);
    }
    adv_job_state s;
    for (int i = 0; i < ADV_NSTATES; i++) {
        ck_assert_int_eq(adv_job_state_parse(adv_job_state_name((adv_job_state)i), &s), 0);
        ck_assert_int_eq(s, i);
    }
    ck_assert(adv_job_state_final(ADV_STATE_CANCELLED) && !adv_job_state_final(ADV_STATE_RUNNING));
    adv_ckpt_ref ref;
    adv_error e;
    json_t *v = json_integer(12);
    ck_assert_int_eq(adv_ckpt_ref_parse(v, "checkpoint", &ref, &e), 0);
    ck_assert(ref.which == ADV_CKPT_EPOCH && ref.epoch == 12);
    json_t *back = adv_ckpt_ref_json(ref);
    ck_assert(json_equal(v, back));
    json_decref(v);
    json_decref(back);
}
END_TEST

/* ------------------------------------------------------- generated junk */

/* Whatever the input, a parse either succeeds or gives a known code and a
 * one-line message that json_string() accepts, and the error response
 * encodes to one line. */
static void check_outcome(const char *line, size_t len)
{
    adv_request req;
    adv_error e = {.code = (adv_errcode)-1, .msg = ""};
    int rc = adv_request_parse(line, len, &req, &e);
    if (rc == 0) {
        adv_request_free(&req);
        return;
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_msg((int)e.code >= ADV_E_BAD_REQUEST && e.code <= ADV_E_INTERNAL, "code %d",
                  (int)e.code);
    ck_assert_msg(strlen(e.msg) > 0, "empty message");
    ck_assert_ptr_null(strchr(e.msg, '\n'));
    json_t *resp = adv_proto_error(req.id, &e);
    char *out;
    size_t n;
    ck_assert_msg(adv_proto_encode(resp, &out, &n, &e) == 0, "cannot encode the error");
    ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
    free(out);
    json_decref(resp);
    adv_request_free(&req);
}

static const char *const seeds[] = {
    "{\"id\":1,\"cmd\":\"status\",\"job\":3}",
    "{\"id\":\"x\",\"cmd\":\"submit\",\"spec\":{\"kind\":\"train\",\"epochs\":3}}",
    "{\"id\":2,\"cmd\":\"list\",\"state\":\"running\",\"limit\":10}",
    "{\"id\":3,\"cmd\":\"export\",\"job\":1,\"checkpoint\":4,\"offset\":8}",
};

static const char *const junk_values[] = {
    "null", "true", "-1", "0", "1e308", "-1e308", "9223372036854775807",
    "99999999999999999999999", "\"\"", "\"\\u00e9\\ud83d\\ude00\"", "[]", "{}",
    "[[[[[[[[[[1]]]]]]]]]]", "{\"a\":{\"b\":{\"c\":[]}}}", "\"\\u0000\"", "1.5", "\"NaN\"",
};

START_TEST(test_fuzz_requests)
{
    char buf[512];
    int tried = 0;
    /* Random bytes. */
    for (int t = 0; t < 2000; t++, tried++) {
        size_t n = rnd() % 64;
        for (size_t i = 0; i < n; i++)
            buf[i] = t % 2 ? (char)rnd() : " {}[]\":,0123456789abcdefnulltrue\\"[rnd() % 34];
        check_outcome(buf, n);
    }
    /* Every truncation and one-byte corruption of valid requests. */
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        size_t n = strlen(seeds[s]);
        for (size_t cut = 0; cut <= n; cut++, tried++)
            check_outcome(seeds[s], cut);
        for (size_t i = 0; i < n; i++, tried++) {
            memcpy(buf, seeds[s], n);
            buf[i] = (char)rnd();
            check_outcome(buf, n);
        }
    }
    /* Each argument of each command replaced by each junk value. */
    static const char *const keys[] = {"id", "cmd", "job", "spec", "state", "kind", "limit",
                                       "key", "since", "checkpoint", "format", "offset",
                                       "length", "name", "mine", "extra"};
    for (int c = 0; c < ADV_NCMDS; c++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            for (size_t v = 0; v < sizeof junk_values / sizeof junk_values[0]; v++, tried++) {
                int n = snprintf(buf, sizeof buf, "{\"id\":1,\"cmd\":\"%s\",\"job\":1,\"%s\":%s}",
                                 adv_cmd_name((adv_cmd)c), keys[k], junk_values[v]);
                check_outcome(buf, (size_t)n);
            }
    /* Deep nesting past jansson's limit. */
    char *deep = malloc(200001);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', 100000);
    memset(deep + 100000, ']', 100000);
    check_outcome(deep, 200000);
    free(deep);
    ck_assert_int_gt(tried, 4000);
}
END_TEST

/* RFC 4648's test vectors, every length round trip, and rejections. */
START_TEST(test_base64)
{
    static const char *const vec[][2] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t n;
        char *enc = adv_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]), &n);
        ck_assert_str_eq(enc, vec[i][1]);
        ck_assert_uint_eq(n, strlen(vec[i][1]));
        free(enc);
    }
    uint8_t bytes[300];
    for (int i = 0; i < 300; i++)
        bytes[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= 300; len += 1 + len / 8) {
        size_t n, m;
        char *enc = adv_base64_encode(bytes, len, &n);
        uint8_t *dec;
        adv_error e;
        ck_assert_int_eq(adv_base64_decode(enc, n, &dec, &m, &e), 0);
        ck_assert_uint_eq(m, len);
        ck_assert(len == 0 || memcmp(dec, bytes, len) == 0);
        free(enc);
        free(dec);
    }
    uint8_t *dec;
    size_t m;
    adv_error e;
    ck_assert_int_eq(adv_base64_decode("Zm9", 3, &dec, &m, &e), -1);
    ck_assert_int_eq(e.code, ADV_E_INVALID_ARGUMENT);
    ck_assert_int_eq(adv_base64_decode("Zm=v", 4, &dec, &m, &e), -1);
    ck_assert_int_eq(adv_base64_decode("Zm9\n", 4, &dec, &m, &e), -1);
    ck_assert_ptr_null(dec);
}
END_TEST

static Suite *suite_proto(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("proto");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_split_every_chunk_size);
    tcase_add_test(tc, test_split_several_in_one_chunk);
    tcase_add_test(tc, test_split_empty_lines_skipped);
    tcase_add_test(tc, test_split_too_large);
    tcase_add_test(tc, test_split_one_mebibyte);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_request_every_command);
    tcase_add_test(tc, test_request_errors);
    tcase_add_test(tc, test_responses);
    tcase_add_test(tc, test_events_and_greeting);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_fuzz_requests);
    tcase_add_test(tc, test_base64);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_proto)
