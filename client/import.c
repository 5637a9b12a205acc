/*
 * import.c - `advctl import FILE.safetensors --model PRESET|SPEC [--dataset D]
 * [--name S]`: a model trained elsewhere as a job of kind import, which
 * eval, images, report, export and compare then take like a trained one.
 *
 * The file is read here, as the connecting user, and sent in pieces of
 * ADV_CHUNK_MAX bytes (the protocol's "import" request, daemon/import.c);
 * the daemon checks every byte of it against the spec before it stores a
 * checkpoint.
 */
#include "client/advctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *file, *model, *dataset, *name;
} import_args;

static int parse_args(int argc, char **argv, import_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], **to = !strcmp(s, "--model")     ? &a->model
                                        : !strcmp(s, "--dataset") ? &a->dataset
                                        : !strcmp(s, "--name")    ? &a->name
                                                                  : NULL;
        if (to && !(*to = ctl_optarg("import", argc, argv, &i)))
            return ADVCTL_USAGE;
        if (to)
            continue;
        if (s[0] == '-' || a->file)
            return ctl_usage("import", s[0] == '-' ? "unknown option '%s'"
                                                   : "unexpected argument '%s'", s);
        a->file = s;
    }
    if (!a->file)
        return ctl_usage("import", "missing FILE.safetensors");
    if (!a->model)
        return ctl_usage("import", "missing '--model PRESET|SPEC' (the layers the file holds)");
    return 0;
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ctl_error("cannot open '%s': %s", path, strerror(errno));
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    *buf = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc(n ? (size_t)n : 1) : NULL;
    int ok = *buf && fread(*buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) {
        free(*buf);
        return ctl_error("cannot read '%s'", path);
    }
    *len = (size_t)n;
    return 0;
}

/* Every piece in order; *result is the last answer (the job). */
static int send_pieces(ctl *c, json_t *spec, const uint8_t *buf, size_t len, json_t **result)
{
    int64_t upload = 0;
    size_t off = 0;
    int rc = 0;
    *result = NULL;
    do {
        size_t n = len - off < ADV_CHUNK_MAX ? len - off : ADV_CHUNK_MAX;
        char *b64 = adv_base64_encode(buf + off, n, NULL);
        json_t *args = off ? json_pack("{s:I, s:I}", "upload", (json_int_t)upload, "offset",
                                       (json_int_t)off)
                           : json_pack("{s:O, s:I}", "spec", spec, "size", (json_int_t)len);
        if (!b64 || !args) {
            free(b64);
            json_decref(args);
            return ctl_error("out of memory");
        }
        json_object_set_new(args, "data", json_string(b64));
        free(b64);
        json_decref(*result);
        if ((rc = ctl_call(c, "import", args, result)))
            return rc;
        upload = json_integer_value(json_object_get(*result, "upload"));
        off += n;
    } while (off < len);
    return 0;
}

int cmd_import(ctl *c, int argc, char **argv)
{
    import_args a = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    json_t *r = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc || (rc = read_file(a.file, &buf, &len)))
        return rc;
    json_t *spec = json_pack("{s:s, s:s}", "kind", "import", "model", a.model);
    if (a.dataset)
        json_object_set_new(spec, "dataset", json_string(a.dataset));
    if (a.name)
        json_object_set_new(spec, "name", json_string(a.name));
    rc = send_pieces(c, spec, buf, len, &r);
    if (!rc && c->json)
        ctl_print_json(r);
    else if (!rc)
        printf("%lld\nimported %lld tensors (%s, %zu bytes) from %s\n",
               (long long)json_integer_value(json_object_get(r, "job")),
               (long long)json_integer_value(json_object_get(r, "tensors")),
               json_string_value(json_object_get(r, "dtypes")), len, a.file);
    json_decref(r);
    json_decref(spec);
    free(buf);
    return rc;
}
