/*
 * ckptfile.c - checkpoint files (see ckptfile.h): durable writes through a
 * temporary name, checked reads, piecewise reads and removal.
 */
#include "daemon/ckptfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "daemon/store.h"

int adv_ckptfile_dir(const char *db_path, char *out, size_t size, char *err)
{
    if ((size_t)snprintf(out, size, "%s.ckpt", db_path) >= size)
        return core_errf(err, "database path '%s' is too long", db_path);
    return 0;
}

int adv_ckptfile_mkdir(const char *dir, char *err)
{
    if (mkdir(dir, 0700) && errno != EEXIST)
        return core_errf(err, "cannot create checkpoint folder '%s': %s", dir, strerror(errno));
    return 0;
}

void adv_ckptfile_name(int64_t job, int64_t step, const char *tag, char *out, size_t size)
{
    snprintf(out, size, "j%lld-s%lld-%s.state", (long long)job, (long long)step, tag);
}

static int path_of(const char *dir, const char *name, char *out, char *err)
{
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
        return core_errf(err, "checkpoint path '%s/%s' is too long", dir, name);
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Make the rename itself durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int adv_ckptfile_write(const char *dir, const char *name, const void *p, size_t n, uint32_t *crc,
                       char *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    if (path_of(dir, name, path, err))
        return -1;
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return core_errf(err, "cannot write checkpoint '%s': %s", tmp, strerror(errno));
    int bad = write_all(fd, p, n) || fsync(fd);
    int saved = errno;
    if (close(fd) && !bad) {
        bad = 1;
        saved = errno;
    }
    if (bad || rename(tmp, path) || sync_dir(dir)) {
        saved = bad ? saved : errno;
        unlink(tmp);
        return core_errf(err, "cannot write checkpoint '%s': %s", path, strerror(saved));
    }
    *crc = (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n);
    return 0;
}

int adv_ckptfile_pread(const char *dir, const char *name, size_t offset, void *buf, size_t n,
                       char *err)
{
    char path[PATH_MAX];
    if (path_of(dir, name, path, err))
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int missing = errno == ENOENT;
        core_errf(err, "cannot read checkpoint '%s': %s", path, strerror(errno));
        return missing ? ADV_STORE_CORRUPT : -1;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(offset + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    int saved = got < n ? errno : 0;
    close(fd);
    if (got < n)
        return core_errf(err, "cannot read checkpoint '%s': %s", path,
                         saved ? strerror(saved) : "the file is shorter than stored"),
               ADV_STORE_CORRUPT;
    return 0;
}

int adv_ckptfile_load(const char *dir, const char *name, uint64_t size, uint32_t crc,
                      uint8_t **out, char *err)
{
    *out = NULL;
    if (size == 0 || size > SIZE_MAX / 2)
        return core_errf(err, "checkpoint '%s' has an impossible size %llu", name,
                         (unsigned long long)size), ADV_STORE_CORRUPT;
    uint8_t *p = malloc((size_t)size);
    if (!p)
        return core_errf(err, "out of memory for a checkpoint of %llu bytes",
                         (unsigned long long)size);
    int rc = adv_ckptfile_pread(dir, name, 0, p, (size_t)size, err);
    uint32_t got = rc ? 0 : (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, (size_t)size);
    if (!rc && got != crc)
        rc = (core_errf(err, "checkpoint '%s' fails its checksum (crc32 %08x, stored %08x)", name,
                        (unsigned)got, (unsigned)crc), ADV_STORE_CORRUPT);
    if (rc)
        free(p);
    else
        *out = p;
    return rc;
}

int adv_ckptfile_remove(const char *dir, const char *name, char *err)
{
    char path[PATH_MAX];
    if (path_of(dir, name, path, err))
        return -1;
    if (unlink(path) && errno != ENOENT)
        return core_errf(err, "cannot remove checkpoint '%s': %s", path, strerror(errno));
    return 0;
}
