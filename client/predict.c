/*
 * predict.c - `advctl predict JOB [--checkpoint latest|best|EPOCH]
 * [--monitor] INPUT...`: the class of each input by a checkpoint of JOB,
 * one line per image: its name, the predicted class, the calibrated
 * confidence and the top 3 (--json: one object with every prediction).
 *
 * An INPUT is a PNG file, a folder of PNG files (sorted by name), an IDX
 * images file or a CIFAR-10 batch (core_inputs_file_load): the images of
 * a file are named FILE#INDEX. Every image must have the model's input
 * shape; they go in requests of at most ADV_CHUNK_MAX pixel bytes.
 * --monitor scores through the job's drift monitor (advctl monitor): the
 * images join its window, and the windows they complete are printed.
 */
#include "client/advctl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/data.h"

typedef struct {
    uint8_t *pixels;
    char **names;
    int n, cap;
    core_shape shape;
    char first[CORE_PATH_MAX];          /* where the shape came from, for messages */
} inputs;

static void inputs_free(inputs *in)
{
    for (int i = 0; i < in->n; i++)
        free(in->names[i]);
    free(in->names);
    free(in->pixels);
}

static const char *shape_text(core_shape s, char *buf, size_t len)
{
    snprintf(buf, len, "%dx%d %s", s.w, s.h, s.c == 1 ? "gray" : s.c == 3 ? "RGB" : "?");
    return buf;
}

/* Append the examples of ds (from path); names: path, or path#i. */
static int inputs_add(inputs *in, const core_dataset *ds, const char *path)
{
    char a[32], b[32];
    if (in->n == 0) {
        in->shape = ds->shape;
        snprintf(in->first, sizeof in->first, "%s", path);
    } else if (memcmp(&in->shape, &ds->shape, sizeof in->shape)) {
        return ctl_error("'%s' holds %s images but '%s' holds %s", path,
                         shape_text(ds->shape, a, sizeof a), in->first,
                         shape_text(in->shape, b, sizeof b));
    }
    const size_t dim = core_shape_size(ds->shape);
    if (in->n + ds->n > in->cap) {
        int cap = in->cap ? in->cap : 64;
        while (cap < in->n + ds->n)
            cap *= 2;
        uint8_t *p = realloc(in->pixels, dim * (size_t)cap);
        char **nm = p ? realloc(in->names, sizeof *nm * (size_t)cap) : NULL;
        if (p)
            in->pixels = p;
        if (!nm)
            return ctl_error("out of memory for %d images", in->n + ds->n);
        in->names = nm;
        in->cap = cap;
    }
    memcpy(in->pixels + dim * (size_t)in->n, ds->pixels, dim * (size_t)ds->n);
    for (int i = 0; i < ds->n; i++) {
        char name[CORE_PATH_JOIN];
        if (ds->n == 1)
            snprintf(name, sizeof name, "%s", path);
        else
            snprintf(name, sizeof name, "%s#%d", path, i);
        if (!(in->names[in->n + i] = strdup(name)))
            return ctl_error("out of memory");
    }
    in->n += ds->n;
    return 0;
}

static int add_file(inputs *in, const char *path)
{
    core_dataset ds;
    char err[CORE_ERRLEN];
    if (core_inputs_file_load(path, 0, &ds, err))
        return ctl_error("%s", err);
    int rc = inputs_add(in, &ds, path);
    core_dataset_free(&ds);
    return rc;
}

static int add_folder(inputs *in, const char *dir)
{
    char **names, err[CORE_ERRLEN], path[CORE_PATH_JOIN];
    int n, rc = 0;
    if (core_png_folder_list(dir, &names, &n, err))
        return ctl_error("%s", err);
    if (n == 0)
        rc = ctl_error("'%s': no PNG images in the folder", dir);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 names[i]);
        if (!rc)
            rc = add_file(in, path);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int add_input(inputs *in, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return add_folder(in, path);
    return add_file(in, path);
}

/* ------------------------------------------------------------ output */

static void print_header(const json_t *r, int monitor)
{
    printf("job %lld, checkpoint of epoch %lld%s; confidence at temperature %.3f (%s)\n",
           (long long)json_integer_value(json_object_get(r, "job")),
           (long long)json_integer_value(json_object_get(r, "epoch")),
           monitor ? " (the monitor's)" : "",
           json_number_value(json_object_get(r, "temperature")),
           json_string_value(json_object_get(r, "temperature_from")));
}

static void print_prediction(const char *name, const json_t *p)
{
    printf("%s\t%s\t%.3f\t(", name, json_string_value(json_object_get(p, "name")),
           json_number_value(json_object_get(p, "confidence")));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(p, "top"), i, t)
        printf("%s%s %.3f", i ? ", " : "", json_string_value(json_object_get(t, "name")),
               json_number_value(json_object_get(t, "p")));
    printf(")\n");
}

/* ---------------------------------------------------------- requests */

/* base: the arguments every request shares ("job", "checkpoint",
 * "monitor"). */
static int parse_args(int argc, char **argv, json_t *base, inputs *in)
{
    int njobs = 0, rc;
    int64_t job;
    const char *v;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--checkpoint")) {
            if (!(v = ctl_optarg("predict", argc, argv, &i)) ||
                ctl_parse_ckpt("predict", v, base))
                return ADVCTL_USAGE;
        } else if (!strcmp(s, "--monitor")) {
            json_object_set_new(base, "monitor", json_true());
        } else if (s[0] == '-' && s[1]) {
            return ctl_usage("predict", "unknown option '%s'", s);
        } else if (!njobs++) {
            if (ctl_parse_job(s, &job))
                return ctl_usage("predict", "invalid JOB '%s': expected a job id", s);
            json_object_set_new(base, "job", json_integer(job));
        } else if ((rc = add_input(in, s))) {
            return rc;
        }
    }
    if (!njobs)
        return ctl_usage("predict", "missing JOB");
    if (!in->n)
        return ctl_usage("predict", "missing INPUT (PNG files, a folder of PNGs, an IDX or "
                                    "CIFAR-10 file)");
    return 0;
}

static json_t *request_args(const json_t *base, const inputs *in, int off, int k)
{
    const size_t dim = core_shape_size(in->shape);
    char *b64 = adv_base64_encode(in->pixels + dim * (size_t)off, dim * (size_t)k, NULL);
    json_t *args = b64 ? json_copy((json_t *)base) : NULL;
    if (args) {
        json_object_set_new(args, "n", json_integer(k));
        json_object_set_new(args, "pixels", json_string(b64));
    }
    free(b64);
    return args;
}

/* Merge one answer into the --json result (predictions with their file
 * names, the monitor's windows). */
static void merge(json_t *all, json_t *r, const inputs *in, int off)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "predictions"), i, p) {
        json_object_set_new(p, "file", json_string(in->names[off + (int)i]));
        json_array_append(json_object_get(all, "predictions"), p);
    }
    json_t *m = json_object_get(r, "monitor");
    if (!m)
        return;
    json_t *have = json_object_get(all, "monitor");
    if (have) {
        json_array_extend(json_object_get(have, "windows"), json_object_get(m, "windows"));
        json_object_set(have, "filled", json_object_get(m, "filled"));
        if (json_object_get(m, "error"))
            json_object_set(have, "error", json_object_get(m, "error"));
    } else {
        json_object_set(all, "monitor", m);
    }
}

int cmd_predict(ctl *c, int argc, char **argv)
{
    json_t *base = json_object();
    inputs in = {0};
    int rc = parse_args(argc, argv, base, &in);
    const int monitor = json_object_get(base, "monitor") != NULL;
    const size_t dim = in.n ? core_shape_size(in.shape) : 1;
    int per = (int)(ADV_CHUNK_MAX / dim);
    per = per < 1 ? 1 : per > 4096 ? 4096 : per;
    json_t *all = json_object();
    json_object_set_new(all, "predictions", json_array());
    for (int off = 0; !rc && off < in.n; off += per) {
        int k = in.n - off < per ? in.n - off : per;
        json_t *r, *args = request_args(base, &in, off, k);
        if (!args) {
            rc = ctl_error("out of memory");
            break;
        }
        if ((rc = ctl_call(c, "predict", args, &r)))
            break;
        if (off == 0) {
            const char *keys[] = {"job", "checkpoint", "epoch", "temperature", "temperature_from"};
            for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
                json_object_set(all, keys[i], json_object_get(r, keys[i]));
            if (!c->json)
                print_header(r, monitor);
        }
        size_t i;
        json_t *p;
        if (!c->json)
            json_array_foreach(json_object_get(r, "predictions"), i, p)
                print_prediction(in.names[off + (int)i], p);
        merge(all, r, &in, off);
        json_decref(r);
    }
    if (!rc && c->json)
        ctl_print_json(all);
    else if (!rc && json_object_get(all, "monitor"))
        ctl_print_monitor_feed(json_object_get(all, "monitor"));
    json_decref(all);
    json_decref(base);
    inputs_free(&in);
    return rc;
}
