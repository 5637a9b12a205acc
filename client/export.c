/*
 * export.c - `advctl export JOB [--checkpoint latest|best|EPOCH] -o FILE`:
 * a checkpoint's weights as a safetensors file.
 *
 * The daemon writes the checkpoint (core/state.h bytes) to a temporary
 * file of ours (its inline base64 form is refused above about 780 KB); we
 * load it with core_state_model and write, per core_param_view, the
 * tensors under PyTorch's names and layouts (nn.Sequential indices,
 * convolution weights out x in x kH x kW, linear weights out x in):
 *
 *   u64 little-endian N, N bytes of JSON header (padded with spaces to a
 *   multiple of 8), then the tensor bytes (F32, little-endian)
 *   header: {"__metadata__": {string: string}, NAME: {"dtype": "F32",
 *            "shape": [...], "data_offsets": [begin, end]}, ...}
 *
 * __metadata__ holds the expanded model spec, input shape, classes, job,
 * checkpoint, epoch, step and every key of the job's training spec, all
 * as strings (the format allows nothing else there).
 */
#include "client/advctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/state.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors wants little-endian floats: add a byte swap for this machine"
#endif

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

/* ------------------------------------------------- getting the bytes */

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st))
        return f ? fclose(f) : 0, ctl_error("cannot read '%s': %s", path, strerror(errno));
    *len = (size_t)st.st_size;
    *buf = malloc(*len ? *len : 1);
    size_t got = *buf ? fread(*buf, 1, *len, f) : 0;
    fclose(f);
    if (got != *len) {
        free(*buf);
        return ctl_error("cannot read '%s': short read", path);
    }
    return 0;
}

/* A private directory for the daemon to write into (absolute: the
 * protocol wants an absolute path). */
static int temp_dir(char *dir, size_t len)
{
    const char *base = getenv("TMPDIR");
    char abs[PATH_MAX];
    if (!base || !*base || !realpath(base, abs))
        snprintf(abs, sizeof abs, "/tmp");
    snprintf(dir, len, "%.4000s/advctl-XXXXXX", abs);
    if (!mkdtemp(dir))
        return ctl_error("cannot create a temporary directory in '%s': %s", abs, strerror(errno));
    return 0;
}

/* The checkpoint's bytes and the daemon's description of it (*info). */
static int fetch(ctl *c, const export_args *a, uint8_t **buf, size_t *len, json_t **info)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    int rc = temp_dir(dir, sizeof dir);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/checkpoint.advstate", dir);
    json_t *args = json_pack("{s:I, s:o, s:s}", "job", (json_int_t)a->job, "checkpoint",
                             ckpt_json(a->checkpoint), "path", path);
    rc = ctl_call(c, "export", args, info);
    if (!rc && (rc = read_file(path, buf, len)))
        json_decref(*info);
    unlink(path);
    rmdir(dir);
    return rc;
}

/* ------------------------------------------------- the safetensors file */

static json_t *as_string(const json_t *v)
{
    if (json_is_string(v))
        return json_incref((json_t *)v);
    char *s = json_dumps(v, JSON_ENCODE_ANY | ADV_JSON_FLAGS);
    json_t *r = json_string(s ? s : "");
    free(s);
    return r;
}

static json_t *metadata(const core_model *m, const json_t *info, const json_t *spec)
{
    json_t *md = json_object();
    const char *key;
    json_t *v;
    char shape[64];
    json_object_foreach((json_t *)spec, key, v) json_object_set_new(md, key, as_string(v));
    snprintf(shape, sizeof shape, "%dx%dx%d", m->in.c, m->in.h, m->in.w);
    json_object_set_new(md, "format", json_string("pt"));
    json_object_set_new(md, "model_spec", json_string(m->spec));
    json_object_set_new(md, "input_shape", json_string(shape));
    snprintf(shape, sizeof shape, "%d", m->nclass);
    json_object_set_new(md, "classes", json_string(shape));
    json_object_set_new(md, "producer", json_string("advctl " ADV_VERSION));
    static const char *const from_info[] = {"job", "checkpoint", "epoch", "step"};
    for (int i = 0; i < 4; i++)
        json_object_set_new(md, from_info[i], as_string(json_object_get(info, from_info[i])));
    return md;
}

static json_t *header(const core_model *m, json_t *md)
{
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", md);
    size_t off = 0;
    for (int i = 0; i < m->nviews; i++) {
        const core_param_view *v = &m->views[i];
        json_t *shape = json_array();
        for (int d = 0; d < v->ndim; d++)
            json_array_append_new(shape, json_integer(v->dims[d]));
        size_t end = off + v->size * sizeof(float);
        json_object_set_new(h, v->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)end));
        off = end;
    }
    return h;
}

static int write_tensors(FILE *f, const core_model *m, const char *text)
{
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    uint64_t len = padded;
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(len >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(text, 1, n, f) == n;
    for (size_t i = n; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < m->nviews; i++) {
        const core_param_view *v = &m->views[i];
        ok = fwrite(m->params + v->offset, sizeof(float), v->size, f) == v->size;
    }
    return ok ? 0 : -1;
}

/* Through a temporary file and a rename: never a half-written model. The
 * header h is stolen. */
static int write_safetensors(const char *out, const core_model *m, json_t *h)
{
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", out, (int)getpid());
    FILE *f = text ? fopen(tmp, "wb") : NULL;
    if (!f) {
        free(text);
        return ctl_error("cannot create '%s': %s", tmp, strerror(errno));
    }
    int rc = write_tensors(f, m, text);
    free(text);
    if (fclose(f) || rc || rename(tmp, out)) {
        int err = errno;
        unlink(tmp);
        return ctl_error("cannot write '%s': %s", out, strerror(err));
    }
    return 0;
}

int cmd_export(ctl *c, int argc, char **argv)
{
    export_args a = {0};
    uint8_t *buf;
    size_t len;
    json_t *info, *st;
    char err[CORE_ERRLEN];
    core_model *m = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc || (rc = ctl_call_job(c, "status", a.job, &st)))
        return rc;
    if ((rc = fetch(c, &a, &buf, &len, &info))) {
        json_decref(st);
        return rc;
    }
    if (core_state_model(buf, len, &m, err))
        rc = ctl_error("job %lld: cannot read its checkpoint: %s", (long long)a.job, err);
    else
        rc = write_safetensors(a.out, m,
                               header(m, metadata(m, info, json_object_get(st, "spec"))));
    if (!rc && c->json)
        ctl_print_json(info);
    else if (!rc)
        printf("job %lld epoch %lld: %d tensors, %zu parameters -> %s\n", (long long)a.job,
               (long long)json_integer_value(json_object_get(info, "epoch")), m->nviews,
               m->nparams, a.out);
    core_model_free(m);
    free(buf);
    json_decref(info);
    json_decref(st);
    return rc;
}
