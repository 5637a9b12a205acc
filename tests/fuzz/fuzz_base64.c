/*
 * fuzz_base64.c - base64 as export and images carry it (proto/base64.c).
 *
 * Input: text to decode. Checks: text that decodes re-encodes to text
 * that decodes to the same bytes, and is at most 3/4 of its length; the
 * input's bytes themselves survive an encode and a decode unchanged.
 */
#include "fuzz.h"
#include "proto/proto.h"

#include <string.h>

/* encode then decode p: the same n bytes back. */
static void round_trip(const uint8_t *p, size_t n)
{
    size_t len, m;
    uint8_t *back;
    char *text = adv_base64_encode(p, n, &len);
    FUZZ_CHECK(text != NULL && len == (n + 2) / 3 * 4 && strlen(text) == len);
    FUZZ_CHECK(adv_base64_decode(text, len, &back, &m, NULL) == 0);
    FUZZ_CHECK(m == n && memcmp(back, p, n) == 0);
    free(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *out;
    size_t n;
    adv_error e = {0};
    if (adv_base64_decode((const char *)data, size, &out, &n, &e) == 0) {
        FUZZ_CHECK(n <= size / 4 * 3);
        round_trip(out, n);
        free(out);
    } else {
        FUZZ_CHECK(out == NULL && e.msg[0] != '\0');
    }
    round_trip(data, size);
    return 0;
}
