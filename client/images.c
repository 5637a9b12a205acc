/*
 * images.c - `advctl images JOB --adversarial|--saliency|--smoothgrad|--ig|
 * --guided|--gaussian-local|--lime|--corruptions|--units LAYER [-n 16]
 * [--checkpoint C] [--eps X] [--attack NAME] [--seed N] -o DIR`: pictures
 * of a model at work, as PNG files. --units draws the first n channels of
 * LAYER (conv1, conv2, ...): filters.png, top.png (the --units-k test
 * examples, of --limit 1000, that activate each channel most) and one
 * maximise_LAYER_C.png per channel.
 *
 * The client has neither the data nor the model, so it asks the daemon: it
 * queues a small evaluation job on JOB's checkpoint that draws the pictures
 * (priority 1000, the first n test images, no sanity probes, no
 * calibration; the attack defaults to PGD at JOB's training eps), follows
 * it to its end, then fetches the files with the `images` request and
 * writes them into DIR with their index (index.tsv: label and predictions
 * of every example). Given an eval job and no picture kind, it fetches
 * the pictures that job drew.
 */
#include "client/advctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    int64_t job;
    int kind;              /* adv_images_kind; ADV_IMAGES_NONE: fetch only */
    long long n;
    const char *out;
    json_t *flags;         /* eval-spec keys given on the command line */
} images_args;

/* The options that go into the drawing job's spec as they are. */
static const ctl_flag spec_flags[] = {
    {"--attack", "attack", CTL_STR},
    {"--eps", "eps", CTL_FLOAT},
    {"--seed", "seed", CTL_INT},
    {"--class", "explain_class", CTL_INT},
    {"--limit", "limit", CTL_INT},
    {"--units-k", "units_k", CTL_INT},
    {"--units-steps", "units_steps", CTL_INT},
    {"--gaussian-samples", "gaussian_samples", CTL_INT},
    {"--gaussian-sigma", "gaussian_sigma", CTL_FLOAT},
    {"--lime-samples", "lime_samples", CTL_INT},
    {"--lime-patch", "lime_patch", CTL_INT},
    {"--lime-fill", "lime_fill", CTL_STR},
    {"--surrogate-target", "surrogate_target", CTL_STR},
    {NULL, NULL, CTL_INT},
};

#define KINDS "--adversarial, --saliency, --smoothgrad, --ig, --guided, --gaussian-local, " \
              "--lime, --corruptions or --units LAYER"

/* Units examples: enough test images for a channel's top ones to mean
 * something (-n counts channels there). */
#define UNITS_LIMIT 1000

static int parse_arg(int argc, char **argv, int *i, images_args *a, int *njobs)
{
    const char *s = argv[*i], *v;
    int kind, rc;
    if (s[0] == '-' && s[1] == '-' && adv_images_kind_parse(s + 2, &kind, NULL) == 0 &&
        kind != ADV_IMAGES_NONE) {
        if (a->kind != ADV_IMAGES_NONE)
            return ctl_usage("images", "give one of " KINDS);
        if (kind == ADV_IMAGES_UNITS) {
            if (!(v = ctl_optarg("images", argc, argv, i)))
                return ADVCTL_USAGE;
            json_object_set_new(a->flags, "units_layer", json_string(v));
        }
        a->kind = kind;
        return 0;
    }
    if (!strcmp(s, "-n")) {
        if (!(v = ctl_optarg("images", argc, argv, i)))
            return ADVCTL_USAGE;
        return ctl_parse_int(v, 1, ADV_IMAGES_MAX, &a->n)
                   ? ctl_usage("images", "invalid '-n': expected an integer in [1, %d], got '%s'",
                               ADV_IMAGES_MAX, v)
                   : 0;
    }
    if (!strcmp(s, "-o") || !strcmp(s, "--output"))
        return (a->out = ctl_optarg("images", argc, argv, i)) ? 0 : ADVCTL_USAGE;
    if (!strcmp(s, "--checkpoint"))
        return (v = ctl_optarg("images", argc, argv, i)) ? ctl_parse_ckpt("images", v, a->flags)
                                                         : ADVCTL_USAGE;
    if (s[0] != '-' && !(*njobs)++)
        return ctl_parse_job(s, &a->job) ? ctl_usage("images", "invalid JOB '%s': expected a "
                                                               "job id", s)
                                         : 0;
    if ((rc = ctl_apply_flag("images", spec_flags, argc, argv, i, a->flags)) != 1)
        return rc;
    return ctl_usage("images", s[0] == '-' ? "unknown option '%s'" : "unexpected argument '%s'",
                     s);
}

static int parse_args(int argc, char **argv, images_args *a)
{
    int njobs = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++)
        rc = parse_arg(argc, argv, &i, a, &njobs);
    if (rc)
        return rc;
    if (!njobs)
        return ctl_usage("images", "missing JOB");
    return a->out ? 0 : ctl_usage("images", "missing '-o DIR'");
}

/* The eval spec of the drawing job: the command line's keys over these
 * defaults, eps that of JOB's adversarial training unless given. */
static json_t *drawing_spec(const images_args *a, const json_t *train_spec)
{
    json_t *spec = json_pack("{s:s, s:I, s:s, s:i, s:I, s:s, s:I, s:b, s:b, s:s}", "kind", "eval",
                             "job", (json_int_t)a->job, "name", "images", "priority", 1000,
                             "limit", (json_int_t)a->n, "images", adv_images_kind_name(a->kind),
                             "images_n", (json_int_t)a->n, "sanity", 0, "calibration", 0,
                             "attack", "pgd");
    if (a->kind == ADV_IMAGES_UNITS)
        json_object_set_new(spec, "limit", json_integer(UNITS_LIMIT));
    const char *method = json_string_value(json_object_get(train_spec, "method"));
    if (method && strcmp(method, "clean") &&
        json_number_value(json_object_get(train_spec, "eps")) > 0)
        json_object_set(spec, "eps", json_object_get(train_spec, "eps"));
    json_object_update(spec, a->flags);
    return spec;
}

/* Queue the drawing job on training job a->job and follow it; *eval_job
 * is the new job. */
static int draw(ctl *c, const images_args *a, const json_t *status, int64_t *eval_job)
{
    json_t *spec = drawing_spec(a, json_object_get(status, "spec"));
    int rc = ctl_validate_spec("images", spec);
    if (rc) {
        json_decref(spec);
        return rc;
    }
    if ((rc = ctl_submit_spec(c, spec, eval_job, NULL)))
        return rc;
    if (c->json)
        return ctl_wait(c, *eval_job);
    fprintf(stderr, "advctl images: job %lld draws the pictures\n", (long long)*eval_job);
    return ctl_follow(c, *eval_job);
}

/* The bytes of one entry of the `images` answer: inline, or (data null:
 * too large to come with the list) asked for by name in pieces. */
int ctl_image_bytes(ctl *c, int64_t job, const char *name, const json_t *data,
                    uint8_t **bytes, size_t *n)
{
    adv_error e;
    json_t *last;
    if (json_is_null(data)) {
        int rc = ctl_pull(c, "images", json_pack("{s:I, s:s}", "job", (json_int_t)job, "name",
                                                 name), bytes, n, &last);
        json_decref(last);
        return rc;
    }
    if (adv_base64_decode(json_string_value(data), json_string_length(data), bytes, n, &e))
        return ctl_error("image '%s': %s", name, e.msg);
    return 0;
}

/* Write one file of the `images` response into dir. */
static int write_image(ctl *c, int64_t job, const char *dir, const json_t *im, json_t *files)
{
    const char *name = json_string_value(json_object_get(im, "name"));
    const json_t *data = json_object_get(im, "data");
    if (!name || !*name || strchr(name, '/') || name[0] == '.' ||
        !(json_is_string(data) || json_is_null(data)))
        return ctl_error("the daemon sent an unusable image entry");
    uint8_t *bytes;
    size_t n;
    int rc = ctl_image_bytes(c, job, name, data, &bytes, &n);
    if (rc)
        return rc;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(bytes, 1, n, f) == n;
    ok = f && fclose(f) == 0 && ok;
    free(bytes);
    if (!ok)
        return ctl_error("cannot write '%s': %s", path, strerror(errno));
    json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)n,
                                           "path", path));
    return 0;
}

/* mkdir -p: dir and any missing parents. */
static int make_dirs(const char *dir)
{
    char path[CORE_PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return errno = ENAMETOOLONG, -1;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

static int fetch(ctl *c, int64_t job, const char *dir)
{
    json_t *r, *im, *files = json_array();
    int rc = ctl_call_job(c, "images", job, &r);
    if (rc) {
        json_decref(files);
        return rc;
    }
    size_t i;
    if (json_array_size(json_object_get(r, "images")) == 0)
        rc = ctl_error("job %lld drew no pictures (run 'advctl images JOB --adversarial -o DIR' "
                       "on its training job)", (long long)job);
    else if (make_dirs(dir))
        rc = ctl_error("cannot create '%s': %s", dir, strerror(errno));
    json_array_foreach(json_object_get(r, "images"), i, im) {
        if (rc || (rc = write_image(c, job, dir, im, files)))
            break;
    }
    if (!rc && c->json) {
        json_t *out = json_pack("{s:I, s:s, s:O}", "job", (json_int_t)job, "dir", dir, "files",
                                files);
        ctl_print_json(out);
        json_decref(out);
    } else if (!rc)
        json_array_foreach(files, i, im)
            printf("%s\n", json_string_value(json_object_get(im, "path")));
    json_decref(files);
    json_decref(r);
    return rc;
}

int cmd_images(ctl *c, int argc, char **argv)
{
    images_args a = {.kind = ADV_IMAGES_NONE, .n = 16, .flags = json_object()};
    int rc = parse_args(argc, argv, &a);
    json_t *st;
    if (rc || (rc = ctl_call_job(c, "status", a.job, &st))) {
        json_decref(a.flags);
        return rc;
    }
    const char *kind = json_string_value(json_object_get(st, "kind"));
    int64_t job = a.job;
    if (kind && !strcmp(kind, "eval") && a.kind != ADV_IMAGES_NONE)
        rc = ctl_usage("images", "job %lld is an evaluation: give its training job to draw "
                                 "pictures, or no picture kind to fetch the ones it drew",
                       (long long)a.job);
    else if (kind && strcmp(kind, "eval") && a.kind == ADV_IMAGES_NONE)
        rc = ctl_usage("images", "give one of " KINDS);
    else if (a.kind != ADV_IMAGES_NONE)
        rc = draw(c, &a, st, &job);
    json_decref(st);
    json_decref(a.flags);
    return rc ? rc : fetch(c, job, a.out);
}
