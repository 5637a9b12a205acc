/*
 * common.c - error formatting and aligned allocation (see common.h).
 */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int core_errf(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, CORE_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

double core_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *core_alloc(size_t bytes)
{
    if (bytes == 0)
        bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void core_free(void *p)
{
    free(p);
}

int core_name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

int core_name_parse(const char *s, const char *const *names, int n, const char *what, int *out,
                    char *err)
{
    int found = core_name_index(s, names, n);
    if (found >= 0)
        return *out = found, 0;
    char expected[160] = "";
    for (int i = 0; i < n; i++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
                 names[i], i + 2 < n ? ", " : i + 2 == n ? " or " : "");
    return core_errf(err, "unknown %s '%.40s' (expected %s)", what, s ? s : "", expected);
}
