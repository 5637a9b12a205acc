/*
 * replay.c - a main for the fuzz harnesses without libFuzzer: feeds each
 * file named on the command line, or each file in a named folder, to
 * LLVMFuzzerTestOneInput once. Without arguments it replays the harness's
 * saved inputs, tests/fuzz/corpus/NAME and tests/fuzz/regress/NAME (NAME:
 * the program's own name), as make check does. A failed check or a
 * sanitizer's report ends the program with a failure; so does finding no
 * input at all.
 *
 * Without AddressSanitizer (which reserves terabytes of address space) the
 * process gets libFuzzer's memory limit as an address-space limit, so that
 * an input that makes a parser allocate gigabytes fails here as under
 * libFuzzer instead of taking the machine's memory.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define FUZZ_MEMORY_LIMIT (2048ul << 20) /* make fuzz's -rss_limit_mb=2048 */

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap)
            buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf)
        return -1;
    /* A copy of exactly n bytes, so that reading past the end is caught. */
    uint8_t *in = malloc(n ? n : 1);
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Replay a file or every file of a folder (sorted); a missing folder is
 * skipped when optional. Returns the inputs replayed, -1 on error. */
static int replay(const char *path, int optional)
{
    struct stat st;
    if (stat(path, &st))
        return optional ? 0 : (perror(path), -1);
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) ? -1 : 1;
    struct dirent **names;
    int n = scandir(path, &names, NULL, cmp_name), count = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
        if (names[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode))
            count = count < 0 || replay_file(file) ? -1 : count + 1;
        free(names[i]);
    }
    free(names);
    return n < 0 ? -1 : count;
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int total = 0, n;
#ifndef FUZZ_ASAN
    struct rlimit lim = {FUZZ_MEMORY_LIMIT, FUZZ_MEMORY_LIMIT};
    if (setrlimit(RLIMIT_AS, &lim))
        perror("setrlimit");
#endif
    for (int i = 1; i < argc; i++)
        if ((n = replay(argv[i], 0)) < 0)
            return 1;
        else
            total += n;
    if (argc == 1) {
        char dir[512];
        static const char *const kinds[] = {"corpus", "regress"};
        for (int k = 0; k < 2; k++) {
            snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kinds[k], name);
            if ((n = replay(dir, k == 1)) < 0)
                return 1;
            total += n;
        }
    }
    printf("%s: %d inputs replayed\n", name, total);
    return total > 0 ? 0 : 1;
}
