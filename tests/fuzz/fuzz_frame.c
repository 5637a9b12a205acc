/*
 * fuzz_frame.c - a client's bytes as the daemon takes them: split into
 * lines (adv_linebuf, fed in pieces), each line parsed as a request
 * (adv_request_parse) and answered, and the same line read as a client
 * reads the server's (adv_reply_parse, the greeting check).
 *
 * Input: one byte choosing the piece size and the line limit, then the
 * stream. Checks: lines stay within the limit and hold no newline; every
 * error has a message; every answer, ok or error, encodes to one line of
 * JSON that decodes to the same object.
 */
#include "fuzz.h"
#include "proto/proto.h"

#include <string.h>

static void answer(json_t *msg)
{
    char *line;
    size_t len;
    json_t *back;
    FUZZ_CHECK(adv_proto_encode(msg, &line, &len, NULL) == 0);
    FUZZ_CHECK(memchr(line, '\n', len - 1) == NULL && line[len - 1] == '\n');
    FUZZ_CHECK(adv_proto_decode(line, len - 1, &back, NULL) == 0);
    FUZZ_CHECK(json_equal(msg, back));
    json_decref(back);
    free(line);
    json_decref(msg);
}

static void request(const char *line, size_t len)
{
    adv_request req;
    adv_error e = {0};
    if (adv_request_parse(line, len, &req, &e) == 0) {
        FUZZ_CHECK(adv_cmd_name(req.cmd) != NULL);
        adv_request_int(&req, "job", 0);
        adv_request_str(&req, "key", NULL);
        answer(adv_proto_ok(req.id, json_pack("{s:s}", "cmd", adv_cmd_name(req.cmd))));
    } else {
        FUZZ_CHECK(e.msg[0] != '\0');
        answer(adv_proto_error(req.id, &e));
    }
    adv_request_free(&req);
}

static void reply(const char *line, size_t len)
{
    adv_reply r;
    adv_error e = {0};
    char version[32];
    if (adv_reply_parse(line, len, &r, &e) == 0) {
        if (r.type == ADV_MSG_GREETING && adv_proto_greeting_check(r.root, version,
                                                                   sizeof version, &e))
            FUZZ_CHECK(e.msg[0] != '\0');
        if (r.type == ADV_MSG_RESPONSE && !r.ok)
            FUZZ_CHECK(adv_errcode_name(r.error.code) != NULL);
    } else {
        FUZZ_CHECK(e.msg[0] != '\0');
    }
    adv_reply_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = 1 + (data[0] & 0x3f), max = data[0] & 0x40 ? 64 : ADV_PROTO_MAX_LINE;
    adv_linebuf lb;
    adv_linebuf_init(&lb, max);
    adv_error e;
    int rc = 0;
    for (size_t at = 1; at < size && rc >= 0; at += piece) {
        size_t n = size - at < piece ? size - at : piece;
        const char *line;
        size_t len;
        FUZZ_CHECK(adv_linebuf_feed(&lb, data + at, n, &e) == 0);
        while ((rc = adv_linebuf_next(&lb, &line, &len, &e)) == 1) {
            FUZZ_CHECK(len > 0 && len <= max && !memchr(line, '\n', len));
            request(line, len);
            reply(line, len);
        }
        FUZZ_CHECK(rc == 0 || e.code == ADV_E_TOO_LARGE);
    }
    adv_linebuf_free(&lb);
    return 0;
}
