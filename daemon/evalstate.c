/*
 * evalstate.c - an evaluation's progress file (evalstate.h).
 */
#include "daemon/evalstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "daemon/ckptfile.h"
#include "daemon/store.h"

static const char magic[16] = "advd-evalstate1\n";
#define SUFFIX ".evalstate"

void adv_evalstate_name(int64_t job, int rank, int size, char *out, size_t len)
{
    snprintf(out, len, "j%lld-eval-r%dof%d" SUFFIX, (long long)job, rank, size);
}

int adv_evalstate_is(const char *name)
{
    size_t n = strlen(name), k = strlen(SUFFIX);
    return n > k && !strcmp(name + n - k, SUFFIX);
}

/* The header: magic, key, resume point, whether logits follow. */
typedef struct {
    char magic[16];
    adv_evalstate_key key;
    int32_t e, s, has_logits;
} head;

static size_t rows_size(const adv_evalstate_key *k, int has_logits)
{
    size_t n = (size_t)k->n;
    return n + n * (size_t)k->neps + (has_logits ? sizeof(float) * n * (size_t)k->nclass : 0);
}

int adv_evalstate_save(const char *dir, const char *name, const adv_evalstate_key *k,
                       core_eval_at at, const core_eval_out *o, char *err)
{
    head h = {.key = *k, .e = at.e, .s = at.s, .has_logits = o->adv_logits != NULL};
    memcpy(h.magic, magic, sizeof magic);
    size_t n = (size_t)k->n, len = sizeof h + rows_size(k, h.has_logits) + 4;
    uint8_t *buf = malloc(len), *p = buf;
    if (!buf)
        return core_errf(err, "out of memory for an evaluation state of %zu bytes", len);
    memcpy(p, &h, sizeof h), p += sizeof h;
    memcpy(p, o->clean_ok, n), p += n;
    memcpy(p, o->survival, n * (size_t)k->neps), p += n * (size_t)k->neps;
    if (h.has_logits)
        memcpy(p, o->adv_logits, sizeof(float) * n * (size_t)k->nclass),
            p += sizeof(float) * n * (size_t)k->nclass;
    uint32_t crc = (uint32_t)crc32_z(crc32_z(0, NULL, 0), buf, (size_t)(p - buf)), ignored;
    memcpy(p, &crc, 4);
    int rc = adv_ckptfile_write(dir, name, buf, len, &ignored, err);
    free(buf);
    return rc;
}

static int read_file(const char *dir, const char *name, uint8_t **out, size_t *len, char *err)
{
    char path[CORE_PATH_JOIN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? ADV_STORE_NOT_FOUND
                               : core_errf(err, "cannot read '%s': %s", path, strerror(errno));
    int rc = fseek(f, 0, SEEK_END);
    long n = rc ? -1 : ftell(f);
    *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!*out || fseek(f, 0, SEEK_SET) || fread(*out, 1, (size_t)n, f) != (size_t)n) {
        free(*out);
        *out = NULL;
        fclose(f);
        return core_errf(err, "cannot read '%s'", path);
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

static int corrupt(const char *name, const char *why, char *err)
{
    core_errf(err, "evaluation state '%s' %s", name, why);
    return ADV_STORE_CORRUPT;
}

/* The file's header, checked against its crc32 and the key. */
static int check(const uint8_t *buf, size_t len, const adv_evalstate_key *k, head *h,
                 const char *name, char *err)
{
    uint32_t crc;
    if (len < sizeof *h + 4)
        return corrupt(name, "is truncated", err);
    memcpy(h, buf, sizeof *h);
    memcpy(&crc, buf + len - 4, 4);
    if (memcmp(h->magic, magic, sizeof magic) ||
        crc != (uint32_t)crc32_z(crc32_z(0, NULL, 0), buf, len - 4))
        return corrupt(name, "fails its check", err);
    if (memcmp(&h->key, k, sizeof *k) || len != sizeof *h + rows_size(k, h->has_logits) + 4 ||
        h->e < 0 || h->e > k->neps || h->s < k->a || h->s > k->b)
        return corrupt(name, "is another evaluation's (spec, checkpoint or range differ)", err);
    return 0;
}

int adv_evalstate_load(const char *dir, const char *name, const adv_evalstate_key *k,
                       core_eval_at *at, core_eval_out *o, char *err)
{
    uint8_t *buf;
    size_t len;
    head h;
    int rc = read_file(dir, name, &buf, &len, err);
    if (rc)
        return rc;
    if ((rc = check(buf, len, k, &h, name, err)) == 0 && h.has_logits != (o->adv_logits != NULL))
        rc = corrupt(name, "is another evaluation's (logits)", err);
    if (rc == 0) {
        const uint8_t *p = buf + sizeof h;
        size_t n = (size_t)k->n;
        memcpy(o->clean_ok, p, n), p += n;
        memcpy(o->survival, p, n * (size_t)k->neps), p += n * (size_t)k->neps;
        if (h.has_logits)
            memcpy(o->adv_logits, p, sizeof(float) * n * (size_t)k->nclass);
        *at = (core_eval_at){h.e, h.s};
    }
    free(buf);
    return rc;
}

int adv_evalstate_remove(const char *dir, int64_t job, int procs, char *err)
{
    char name[96];
    int rc = 0;
    for (int r = 0; r < procs; r++) {
        adv_evalstate_name(job, r, procs, name, sizeof name);
        if (adv_ckptfile_remove(dir, name, err))
            rc = -1;
    }
    return rc;
}
