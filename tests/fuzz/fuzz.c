/*
 * fuzz.c - the harnesses' shared helpers (fuzz.h): checks, input parts and
 * the scratch folder.
 */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}

int fuzz_part(const uint8_t *data, size_t size, int k, const uint8_t **p, size_t *n)
{
    const size_t seplen = sizeof FUZZ_SEP - 1;
    for (;; k--) {
        const uint8_t *sep = memmem(data, size, FUZZ_SEP, seplen);
        size_t len = sep ? (size_t)(sep - data) : size;
        if (k == 0) {
            *p = data;
            *n = len;
            return 1;
        }
        if (!sep)
            return 0;
        data += len + seplen;
        size -= len + seplen;
    }
}

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return ftw->level > 0 ? remove(path) : 0;
}

void fuzz_clear(void)
{
    if (*dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dir(void)
{
    fuzz_clear();
    rmdir(dir);
}

const char *fuzz_dir(void)
{
    if (*dir)
        return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%.40s/advd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    atexit(remove_dir);
    return dir;
}

const char *fuzz_write(const char *rel, const uint8_t *p, size_t n)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), rel);
    for (char *s = strchr(path + strlen(dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        FUZZ_CHECK(mkdir(path, 0700) == 0 || errno == EEXIST);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(p, 1, n, f) == n);
    FUZZ_CHECK(fclose(f) == 0);
    return path;
}

void fuzz_dataset(core_data_format fmt, const char *const *names, int nnames,
                  const uint8_t *data, size_t size)
{
    const uint8_t *p;
    size_t n;
    for (int k = 0; k < nnames && fuzz_part(data, size, k, &p, &n); k++)
        fuzz_write(names[k], p, n);
    core_dataset ds;
    char err[CORE_ERRLEN] = "";
    if (core_dataset_load(fmt, fuzz_dir(), CORE_SPLIT_TEST, FUZZ_DATA_LIMIT, &ds, err) == 0) {
        FUZZ_CHECK(ds.n >= 0 && ds.n <= FUZZ_DATA_LIMIT);
        FUZZ_CHECK(ds.nclass > 0 && ds.nclass <= CORE_MAX_CLASSES);
        FUZZ_CHECK(ds.shape.c > 0 && ds.shape.h > 0 && ds.shape.w > 0);
        for (int i = 0; i < ds.n; i++)
            FUZZ_CHECK(ds.labels[i] < ds.nclass);
        for (int c = 0; c < ds.nclass; c++)
            FUZZ_CHECK(memchr(ds.class_names[c], '\0', sizeof ds.class_names[c]) != NULL);
        core_dataset_free(&ds);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    fuzz_clear();
}
