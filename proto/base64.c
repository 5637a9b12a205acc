/*
 * base64.c - RFC 4648 base64 (standard alphabet, with padding) for binary
 * payloads inside JSON lines: exported checkpoints, the checkpoints a worker
 * sends its daemon, per-example survival bytes.
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *adv_base64_encode(const uint8_t *p, size_t n, size_t *outlen)
{
    size_t len = (n + 2) / 3 * 4;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}

static int sextet(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

int adv_base64_decode(const char *s, size_t len, uint8_t **out, size_t *n, adv_error *e)
{
    *out = NULL;
    *n = 0;
    if (len % 4)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid base64: length %zu is not a multiple of 4", len);
    size_t pad = len >= 1 && s[len - 1] == '=' ? (len >= 2 && s[len - 2] == '=' ? 2 : 1) : 0;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return adv_errorf(e, ADV_E_INTERNAL, "out of memory for %zu base64 bytes", len);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int x = i + k >= len - pad ? 0 : sextet(s[i + k]);
            if (x < 0) {
                free(buf);
                return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                                  "invalid base64: bad character at offset %zu", i + k);
            }
            v = v << 6 | (uint32_t)x;
        }
        buf[o++] = (uint8_t)(v >> 16);
        buf[o++] = (uint8_t)(v >> 8);
        buf[o++] = (uint8_t)v;
    }
    *out = buf;
    *n = o - pad;
    return 0;
}
