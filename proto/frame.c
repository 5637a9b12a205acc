/*
 * frame.c - newline-delimited JSON framing (see proto.h): the incremental
 * line splitter, one object to one line and back, and the error helpers
 * every proto/ file uses.
 */
#define _GNU_SOURCE /* memrchr */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- errors */

static const char *const code_names[] = {
    "bad_request", "invalid_argument", "not_found", "conflict", "too_large", "forbidden",
    "internal",
};
#define NCODES ((int)(sizeof code_names / sizeof code_names[0]))

const char *adv_errcode_name(adv_errcode c)
{
    return (int)c >= 0 && (int)c < NCODES ? code_names[c] : "internal";
}

int adv_errcode_parse(const char *s, adv_errcode *out)
{
    int i = core_name_index(s, code_names, NCODES);
    if (i >= 0)
        *out = (adv_errcode)i;
    return i >= 0 ? 0 : -1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
 * The same rules as jansson's: no overlong forms, no surrogates, <= U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Messages quote what peers send; json_string() needs valid UTF-8 and a
 * log line needs no control characters, so both become '?'. */
void adv_proto_sanitize(char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0 || c < 0x20 || c == 0x7F) {
            s[i++] = '?';
            continue;
        }
        i += k;
    }
}

int adv_errorf(adv_error *e, adv_errcode code, const char *fmt, ...)
{
    if (!e)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    adv_proto_sanitize(e->msg);
    return -1;
}

json_t *adv_proto_string(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char *copy = strdup(s);
    if (!copy)
        return NULL;
    adv_proto_sanitize(copy);
    v = json_string(copy);
    free(copy);
    return v;
}

/* Edit distance of a and b, capped: anything above cap reads cap + 1. */
static int distance(const char *a, const char *b, int cap)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64 || abs(la - lb) > cap)
        return cap + 1;
    int row[65];
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *adv_proto_suggest(const char *key, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < n; i++) {
        int d = distance(key, names[i], 2);
        if (d < best_d && 2 * d < (int)strlen(names[i])) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

int adv_proto_unknown_key(adv_error *e, const char *key, const char *where,
                          const char *const *names, int n)
{
    const char *hint = adv_proto_suggest(key, names, n);
    if (hint)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "unknown key '%.60s'%s (did you mean '%s'?)",
                          key, where, hint);
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "unknown key '%.60s'%s", key, where);
}

void adv_proto_show(const json_t *v, char *out, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        const char *s = json_string_value(v);
        int cut = strlen(s) > 40;
        snprintf(out, len, "'%.40s%s'", s, cut ? "..." : "");
        break;
    }
    case JSON_INTEGER:
        snprintf(out, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(out, len, "%.9g", json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        snprintf(out, len, "%s", json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false");
        break;
    case JSON_OBJECT:
        snprintf(out, len, "an object");
        break;
    default:
        snprintf(out, len, "an array");
        break;
    }
}

/* ------------------------------------------------------- line splitter */

void adv_linebuf_init(adv_linebuf *lb, size_t max)
{
    memset(lb, 0, sizeof *lb);
    lb->max = max;
}

void adv_linebuf_free(adv_linebuf *lb)
{
    free(lb->buf);
    memset(lb, 0, sizeof *lb);
}

static int too_large(adv_linebuf *lb, adv_error *e)
{
    lb->too_large = 2;
    lb->len = lb->start = lb->scanned = lb->tail = 0;
    return adv_errorf(e, ADV_E_TOO_LARGE, "line longer than %zu bytes", lb->max);
}

/* Drop the lines already returned so the buffer holds only what is left. */
static void compact(adv_linebuf *lb)
{
    if (lb->start == 0)
        return;
    memmove(lb->buf, lb->buf + lb->start, lb->len - lb->start);
    lb->len -= lb->start;
    lb->start = 0;
}

static int reserve(adv_linebuf *lb, size_t need, adv_error *e)
{
    if (need <= lb->cap)
        return 0;
    size_t cap = lb->cap ? lb->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *p = realloc(lb->buf, cap);
    if (!p)
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory for a line of %zu bytes", need);
    lb->buf = p;
    lb->cap = cap;
    return 0;
}

int adv_linebuf_feed(adv_linebuf *lb, const void *data, size_t n, adv_error *e)
{
    if (lb->too_large == 2)
        return too_large(lb, e);
    if (lb->too_large || n == 0)
        return 0;
    const char *nl = memrchr(data, '\n', n);
    size_t after = nl ? n - (size_t)(nl - (const char *)data) - 1 : lb->tail + n;
    size_t take = n;
    /* One more byte than max: the unfinished line may end in "\r". */
    if (after > lb->max + 1) {
        lb->too_large = 1;
        take = nl ? (size_t)(nl - (const char *)data) + 1 : 0;
        after = nl ? 0 : lb->tail;
    }
    compact(lb);
    if (reserve(lb, lb->len + take + 1, e))
        return -1;
    memcpy(lb->buf + lb->len, data, take);
    lb->len += take;
    lb->tail = after;
    return 0;
}

int adv_linebuf_next(adv_linebuf *lb, const char **line, size_t *len, adv_error *e)
{
    if (lb->too_large == 2)
        return too_large(lb, e);
    for (;;) {
        char *from = lb->buf + lb->start;
        size_t have = lb->len - lb->start;
        char *nl = have > lb->scanned ? memchr(from + lb->scanned, '\n', have - lb->scanned)
                                      : NULL;
        if (!nl) {
            lb->scanned = have;
            return lb->too_large ? too_large(lb, e) : 0;
        }
        size_t n = (size_t)(nl - from);
        lb->start += n + 1;
        lb->scanned = 0;
        if (n > 0 && from[n - 1] == '\r')
            n--;
        if (n > lb->max)
            return too_large(lb, e);
        if (n == 0)
            continue; /* empty lines are skipped */
        from[n] = '\0';
        *line = from;
        *len = n;
        return 1;
    }
}

size_t adv_linebuf_pending(const adv_linebuf *lb)
{
    return lb->tail;
}

/* --------------------------------------------------- objects and lines */

int adv_proto_encode(const json_t *obj, char **line, size_t *len, adv_error *e)
{
    *line = NULL;
    *len = 0;
    if (!json_is_object(obj) && !json_is_array(obj))
        return adv_errorf(e, ADV_E_INTERNAL, "cannot encode a JSON value that is not an object");
    char *text = json_dumps(obj, ADV_JSON_FLAGS);
    if (!text)
        return adv_errorf(e, ADV_E_INTERNAL, "cannot encode JSON (out of memory or a bad value)");
    size_t n = strlen(text);
    char *out = realloc(text, n + 2);
    if (!out) {
        free(text);
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory for a line of %zu bytes", n);
    }
    /* JSON_COMPACT escapes newlines inside strings, so the line has one. */
    out[n] = '\n';
    out[n + 1] = '\0';
    *line = out;
    *len = n + 1;
    return 0;
}

int adv_proto_decode(const char *line, size_t len, json_t **out, adv_error *e)
{
    *out = NULL;
    if (len > ADV_PROTO_MAX_LINE)
        return adv_errorf(e, ADV_E_TOO_LARGE, "line longer than %d bytes", ADV_PROTO_MAX_LINE);
    json_error_t jerr;
    json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return adv_errorf(e, ADV_E_BAD_REQUEST, "malformed JSON at column %d: %s", jerr.column,
                          jerr.text);
    if (!json_is_object(v)) {
        json_decref(v);
        return adv_errorf(e, ADV_E_BAD_REQUEST, "expected a JSON object, got an array");
    }
    *out = v;
    return 0;
}
