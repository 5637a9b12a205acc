/*
 * fuzz_jobspec.c - job specs as submit takes them (proto/jobspec.c), both
 * kinds and every key, with the data set and model checks they run.
 *
 * Input: the spec's JSON text. Checks: a rejected spec has a message; an
 * accepted one has a canonical form that is accepted again and gives the
 * same canonical form (proto.h's promise, which the store relies on).
 */
#include "fuzz.h"
#include "proto/proto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static adv_jobspec spec, again; /* 40 KB each: not on the stack */
    adv_error e = {0};
    if (adv_jobspec_parse_text((const char *)data, size, &spec, &e)) {
        FUZZ_CHECK(e.msg[0] != '\0' && e.code == ADV_E_INVALID_ARGUMENT);
        return 0;
    }
    char *text = adv_jobspec_canonical(&spec);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(adv_jobspec_parse_text(text, strlen(text), &again, &e) == 0);
    char *text2 = adv_jobspec_canonical(&again);
    FUZZ_CHECK(text2 != NULL && strcmp(text, text2) == 0);
    free(text);
    free(text2);
    return 0;
}
