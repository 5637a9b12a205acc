/*
 * fuzz_config.c - advd's configuration file (daemon/options.c), read from
 * memory through fmemopen. Input: the file's text. Checks: a refusal names
 * the line; accepted settings are within the table's ranges.
 */
#include "fuzz.h"
#include "daemon/advd.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    FUZZ_CHECK(f != NULL);
    advd_options o;
    advd_options_defaults(&o);
    char err[CORE_ERRLEN] = "";
    if (advd_options_read(&o, f, "fuzz.conf", err) == 0) {
        FUZZ_CHECK(memchr(o.socket_path, '\0', sizeof o.socket_path) != NULL);
        FUZZ_CHECK(memchr(o.db_path, '\0', sizeof o.db_path) != NULL);
        FUZZ_CHECK(memchr(o.socket_group, '\0', sizeof o.socket_group) != NULL);
        FUZZ_CHECK(o.workers >= 1 && o.socket_mode >= 0 && o.socket_mode <= 0777);
        FUZZ_CHECK(o.grace_ms >= 0 && o.line_timeout_ms >= 0 && o.idle_timeout_ms >= 0);
        FUZZ_CHECK(o.max_job_memory >= 0);
    } else {
        FUZZ_CHECK(strstr(err, "'fuzz.conf' line ") == err);
    }
    fclose(f);
    return 0;
}
