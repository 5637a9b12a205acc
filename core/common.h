/*
 * common.h - conventions shared by every file in core/.
 *
 * Errors: functions that can fail return 0 on success and -1 on failure and
 * write a one-line message into a caller-provided buffer of CORE_ERRLEN
 * bytes. Messages follow git's grammar: lower case, the subject quoted, no
 * full stop ("cannot open '/x/y': No such file or directory"). Library code
 * never prints and never exits.
 *
 * Memory: every float buffer comes from core_alloc (64-byte aligned, so
 * AVX-512 loads never straddle a line) and goes back through core_free.
 */
#ifndef CORE_COMMON_H
#define CORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define CORE_ERRLEN 256
/* A path's bytes with its NUL (Linux's PATH_MAX), and a buffer for a
 * folder of that size joined with a file name: the one pair of sizes for
 * every path buffer. */
#define CORE_PATH_MAX 4096
#define CORE_PATH_JOIN (CORE_PATH_MAX + 256)

/* Write a formatted message into err (may be NULL). Always returns -1 so
 * that error paths read "return core_errf(err, ...);". */
int core_errf(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The index of s in names[0..n), or -1 (also for s NULL): the one lookup
 * behind every *_parse of a named kind. */
int core_name_index(const char *s, const char *const *names, int n);
/* s's index in names into *out, or -1 with "unknown WHAT 'S' (expected A,
 * B or C)" in err. */
int core_name_parse(const char *s, const char *const *names, int n, const char *what, int *out,
                    char *err);

/* Seconds on the monotonic clock, for durations and rates. */
double core_now_s(void);

/* 64-byte aligned allocation, zero-filled; NULL on failure. */
void *core_alloc(size_t bytes);
void core_free(void *p);

/* Activation/image shape of one example: channels, height, width. */
typedef struct {
    int c, h, w;
} core_shape;

static inline size_t core_shape_size(core_shape s)
{
    return (size_t)s.c * (size_t)s.h * (size_t)s.w;
}

#endif
