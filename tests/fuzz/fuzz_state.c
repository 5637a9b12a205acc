/*
 * fuzz_state.c - a checkpoint as read back from the store (core/state.c):
 * its head, its summary, a model built from it and a full restore with an
 * optimiser.
 *
 * Input: the checkpoint's bytes; each is tried as it is and again with its
 * last 4 bytes set to the right crc32, so that the fuzzer gets past the
 * checksum. Checks: every rejection has a message, and none is for want of
 * memory (a kilobyte checkpoint must not ask for gigabytes: the replay
 * runs under an address-space limit); a checkpoint restored into a model
 * and optimiser saves back to the same bytes.
 */
#include "fuzz.h"
#include "core/state.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Restore into m with an optimiser of each kind; where it fits, saving
 * again must give buf back. */
static void restore(core_model *m, const uint8_t *buf, size_t len)
{
    char err[CORE_ERRLEN];
    for (int kind = CORE_OPT_SGD; kind <= CORE_OPT_ADAM; kind++) {
        core_opt_cfg cfg = core_opt_defaults((core_opt_kind)kind);
        core_optim o;
        core_progress p;
        FUZZ_CHECK(core_optim_init(&o, &cfg, m->nparams, err) == 0);
        if (core_state_load(m, &o, &p, buf, len, err) == 0) {
            uint8_t *again;
            size_t n;
            FUZZ_CHECK(core_state_save(m, &o, &p, &again, &n, err) == 0);
            FUZZ_CHECK(n == len && memcmp(again, buf, len) == 0);
            free(again);
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
        core_optim_free(&o);
    }
}

static void load(const uint8_t *buf, size_t len)
{
    char err[CORE_ERRLEN] = "";
    core_state_info info;
    size_t off;
    uint64_t nparams;
    if (core_state_head(buf, len, &info, &off, &nparams, err) == 0)
        FUZZ_CHECK(off <= len && strlen(info.spec) < CORE_SPEC_LEN);
    else
        FUZZ_CHECK(err[0] != '\0');
    err[0] = '\0';
    if (core_state_inspect(buf, len, &info, err)) {
        FUZZ_CHECK(err[0] != '\0');
        return;
    }
    core_model *m;
    if (core_state_model(buf, len, &m, err)) {
        FUZZ_CHECK(err[0] != '\0' && !strstr(err, "out of memory"));
        return;
    }
    restore(m, buf, len);
    core_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load(data, size);
    if (size < 4)
        return 0;
    uint8_t *fixed = malloc(size);
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32_z(0L, fixed, size - 4);
    memcpy(fixed + size - 4, &crc, 4);
    load(fixed, size);
    free(fixed);
    return 0;
}
