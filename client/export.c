/*
 * export.c - `advctl export JOB [--checkpoint latest|best|EPOCH] -o FILE`:
 * a checkpoint's weights as a safetensors file.
 *
 * The daemon serves the file in pieces (export with "format":
 * "safetensors", proto/safetensors.c has the format note): PyTorch's
 * names and layouts, __metadata__ with the expanded model spec, input
 * shape, classes, job, checkpoint, epoch, step and every key of the job's
 * training spec. We write it as the connecting user, through a temporary
 * file and a rename, so a failed export leaves no half-written model; the
 * daemon writes nothing.
 */
#include "client/advctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int64_t job;
    const char *checkpoint; /* NULL: latest */
    const char *out;
} export_args;

static int parse_args(int argc, char **argv, export_args *a)
{
    int njobs = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-o") || !strcmp(s, "--output")) {
            if (!(a->out = ctl_optarg("export", argc, argv, &i)))
                return ADVCTL_USAGE;
        } else if (!strcmp(s, "--checkpoint")) {
            if (!(a->checkpoint = ctl_optarg("export", argc, argv, &i)))
                return ADVCTL_USAGE;
        } else if (s[0] != '-' && !njobs++) {
            if (ctl_parse_job(s, &a->job))
                return ctl_usage("export", "invalid JOB '%s': expected a job id", s);
        } else {
            return ctl_usage("export", s[0] == '-' ? "unknown option '%s'"
                                                   : "unexpected argument '%s'", s);
        }
    }
    if (!njobs)
        return ctl_usage("export", "missing JOB");
    if (!a->out)
        return ctl_usage("export", "missing '-o FILE'");
    return 0;
}

static json_t *ckpt_json(const char *s)
{
    long long ep;
    if (!s)
        return json_string("latest");
    return ctl_parse_int(s, 0, 100000, &ep) == 0 ? json_integer(ep) : json_string(s);
}

/* Through a temporary file beside out and a rename. */
static int write_file(const char *out, const uint8_t *buf, size_t len)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ctl_error("cannot create '%s': %s", tmp, strerror(errno));
    int ok = fwrite(buf, 1, len, f) == len;
    if (fclose(f) || !ok || rename(tmp, out)) {
        int err = errno;
        unlink(tmp);
        return ctl_error("cannot write '%s': %s", out, strerror(err));
    }
    return 0;
}

/* Tensors in a safetensors file's header (for the summary line). */
static int count_tensors(const uint8_t *buf, size_t len)
{
    uint64_t n = 0;
    for (int i = 0; len >= 8 && i < 8; i++)
        n |= (uint64_t)buf[i] << (8 * i);
    json_t *h = len >= 8 && n <= len - 8 ? json_loadb((const char *)buf + 8, n, 0, NULL) : NULL;
    int k = h ? (int)json_object_size(h) - (json_object_get(h, "__metadata__") != NULL) : -1;
    json_decref(h);
    return k;
}

int cmd_export(ctl *c, int argc, char **argv)
{
    export_args a = {0};
    uint8_t *buf;
    size_t len;
    json_t *info;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    json_t *args = json_pack("{s:I, s:o, s:s}", "job", (json_int_t)a.job, "checkpoint",
                             ckpt_json(a.checkpoint), "format", "safetensors");
    if ((rc = ctl_pull(c, "export", args, &buf, &len, &info)))
        return rc;
    rc = write_file(a.out, buf, len);
    json_object_del(info, "data");
    if (!rc && c->json)
        ctl_print_json(info);
    else if (!rc)
        printf("job %lld epoch %lld: %d tensors, %zu bytes -> %s\n", (long long)a.job,
               (long long)json_integer_value(json_object_get(info, "epoch")),
               count_tensors(buf, len), len, a.out);
    free(buf);
    json_decref(info);
    return rc;
}
