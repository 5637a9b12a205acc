/*
 * jobspec.c - job specs: complete validation before anything is queued, and
 * the canonical JSON the store keeps. The daemon and the client share it.
 *
 * Format: a JSON object with "kind": "train", "eval" or "import" and the
 * keys of the tables below (train_fields, eval_fields, import_fields: a
 * model trained elsewhere names its data set and model spec only); every key is optional unless
 * marked required, and missing keys take core_train_defaults() /
 * core_attack_defaults() values. The canonical form lists every key of the
 * table in table order with its value, so it reads the same spec back.
 *
 * One table per kind drives both directions (parsing and encoding), so a
 * key cannot be accepted without being stored, nor stored without being
 * accepted.
 */
#include "internal.h"

#include "core/corrupt.h"
#include "core/units.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(core_opt_kind) == sizeof(int), "enums are stored through int");

/* ---------------------------------------------------------- enum names */

typedef struct {
    int (*parse)(const char *s, int *out, char *err);
    const char *(*name)(int v);
} enum_ops;

#define CORE_ENUM(tag, type, parse_fn, name_fn)                                         \
    static int tag##_parse(const char *s, int *out, char *err)                         \
    {                                                                                   \
        type v;                                                                         \
        if (parse_fn(s, &v, err))                                                       \
            return -1;                                                                  \
        *out = (int)v;                                                                  \
        return 0;                                                                       \
    }                                                                                   \
    static const char *tag##_name(int v) { return name_fn((type)v); }                   \
    static const enum_ops tag##_ops = {tag##_parse, tag##_name};

CORE_ENUM(opt, core_opt_kind, core_opt_kind_parse, core_opt_kind_name)
CORE_ENUM(sched, core_sched_kind, core_sched_kind_parse, core_sched_kind_name)
CORE_ENUM(method, core_method, core_method_parse, core_method_name)
CORE_ENUM(attack, core_attack_kind, core_attack_kind_parse, core_attack_kind_name)

CORE_ENUM(norm, core_norm, core_norm_parse, core_norm_name)
CORE_ENUM(loss, core_attack_loss, core_attack_loss_parse, core_attack_loss_name)

/* What an evaluation draws for `advctl images` (adv_images_kind order). */
static const char *const images_names[ADV_NIMAGES] = {
    "none", "adversarial", "saliency", "smoothgrad", "ig", "corruptions", "guided",
    "gaussian-local", "lime", "units"};

int adv_images_kind_parse(const char *s, int *out, char *err)
{
    return core_name_parse(s, images_names, ADV_NIMAGES, "images", out, err);
}

const char *adv_images_kind_name(int v)
{
    return (unsigned)v < ADV_NIMAGES ? images_names[v] : "none";
}

static const enum_ops images_ops = {adv_images_kind_parse, adv_images_kind_name};

CORE_ENUM(fill, int, core_lime_fill_parse, core_lime_fill_name)
CORE_ENUM(target, int, core_surrogate_target_parse, core_surrogate_target_name)

/* ------------------------------------------------------------ the tables */

typedef enum { F_INT, F_I64, F_FLOAT, F_BOOL, F_STR, F_ENUM, F_CKPT, F_EPS, F_INIT, F_LAYERS,
               F_FAMILIES } ftype;

enum {
    FL_REQUIRED = 1,
    FL_LO_OPEN = 2,   /* the range excludes lo */
    FL_HI_OPEN = 4,   /* the range excludes hi */
    FL_ATTACK = 8,    /* eval: a flag of a single attack, not of a suite */
    FL_SUITE = 16,    /* eval: only with a suite */
};

typedef struct {
    const char *name;
    ftype type;
    size_t off;       /* into adv_jobspec */
    double lo, hi;    /* value range; F_STR: length range */
    int flags;
    const enum_ops *en;
} field;

#define OFF(member) offsetof(adv_jobspec, member)
#define I64_MAX 9223372036854775807.0
#define COMMON_FIELDS                                                       \
    {"name", F_STR, OFF(name), 0, ADV_NAME_MAX, 0, NULL},                   \
    {"priority", F_INT, OFF(priority), -1000, 1000, 0, NULL},               \
    {"threads", F_INT, OFF(threads), 0, 1024, 0, NULL},                     \
    {"procs", F_INT, OFF(procs), 1, ADV_PROCS_MAX, 0, NULL}

static const field train_fields[] = {
    COMMON_FIELDS,
    {"dataset", F_STR, OFF(train.dataset), 1, ADV_DATASET_MAX - 1, 0, NULL},
    {"model", F_STR, OFF(train.model), 1, CORE_SPEC_LEN - 17, 0, NULL},
    {"epochs", F_INT, OFF(train.cfg.epochs), 1, 100000, 0, NULL},
    {"batch", F_INT, OFF(train.cfg.batch), 1, CORE_MAX_BATCH, 0, NULL},
    {"optimizer", F_ENUM, OFF(train.cfg.opt.kind), 0, 0, 0, &opt_ops},
    {"lr", F_FLOAT, OFF(train.cfg.opt.lr), 0, 100, FL_LO_OPEN, NULL},
    {"momentum", F_FLOAT, OFF(train.cfg.opt.momentum), 0, 1, FL_HI_OPEN, NULL},
    {"beta2", F_FLOAT, OFF(train.cfg.opt.beta2), 0, 1, FL_HI_OPEN, NULL},
    {"weight_decay", F_FLOAT, OFF(train.cfg.opt.weight_decay), 0, 10, 0, NULL},
    {"nesterov", F_BOOL, OFF(train.cfg.opt.nesterov), 0, 0, 0, NULL},
    {"schedule", F_ENUM, OFF(train.cfg.sched.kind), 0, 0, 0, &sched_ops},
    {"step_epochs", F_INT, OFF(train.cfg.sched.step_epochs), 1, 100000, 0, NULL},
    {"gamma", F_FLOAT, OFF(train.cfg.sched.gamma), 0, 1, FL_LO_OPEN, NULL},
    {"lr_min", F_FLOAT, OFF(train.cfg.sched.lr_min), 0, 100, 0, NULL},
    {"method", F_ENUM, OFF(train.cfg.method), 0, 0, 0, &method_ops},
    {"norm", F_ENUM, OFF(train.cfg.norm), 0, 0, 0, &norm_ops},
    {"eps", F_FLOAT, OFF(train.cfg.eps), 0, 1000, 0, NULL},
    {"alpha", F_FLOAT, OFF(train.cfg.alpha), 0, 1000, 0, NULL},
    {"steps", F_INT, OFF(train.cfg.steps), 1, 10000, 0, NULL},
    {"mix", F_FLOAT, OFF(train.cfg.mix), 0, 1, FL_LO_OPEN, NULL},
    {"trades_beta", F_FLOAT, OFF(train.cfg.trades_beta), 0, 1000, 0, NULL},
    {"eps_ramp", F_INT, OFF(train.cfg.eps_ramp_epochs), 0, 100000, 0, NULL},
    {"co_guard", F_BOOL, OFF(train.cfg.co_guard), 0, 0, 0, NULL},
    {"train_limit", F_INT, OFF(train.train_limit), 0, 100000000, 0, NULL},
    {"val_size", F_INT, OFF(train.cfg.val_size), 0, 10000000, 0, NULL},
    {"val_robust_size", F_INT, OFF(train.cfg.val_robust_size), 0, 10000000, 0, NULL},
    {"seed", F_I64, OFF(train.cfg.seed), 0, I64_MAX, 0, NULL},
    {"checkpoint_every", F_INT, OFF(train.checkpoint_every), 1, 100000, 0, NULL},
    {"keep_checkpoints", F_INT, OFF(train.keep_checkpoints), 1, 1000, 0, NULL},
    {"init", F_INIT, OFF(train.init), 0, 0, 0, NULL},
    {"train_layers", F_LAYERS, OFF(train.cfg.train_last), 0, CORE_MAX_LAYERS, 0, NULL},
    {"augment_crop", F_INT, OFF(train.cfg.augment.crop), 0, 64, 0, NULL},
    {"augment_flip", F_BOOL, OFF(train.cfg.augment.flip), 0, 0, 0, NULL},
    {"augment_brightness", F_FLOAT, OFF(train.cfg.augment.brightness), 0, 1, 0, NULL},
    {"augment_contrast", F_FLOAT, OFF(train.cfg.augment.contrast), 0, 1, 0, NULL},
    {"augment_noise", F_FLOAT, OFF(train.cfg.augment.noise), 0, 1, 0, NULL},
    {"augment_corruptions", F_FAMILIES, OFF(train.cfg.augment.corruptions), 0, 0, 0, NULL},
    {"augment_severity", F_INT, OFF(train.cfg.augment.corrupt_severity), 1, 5, 0, NULL},
    {"augment_prob", F_FLOAT, OFF(train.cfg.augment.corrupt_prob), 0, 1, FL_LO_OPEN, NULL},
    {"augmix", F_BOOL, OFF(train.cfg.augment.augmix), 0, 0, 0, NULL},
    {"augmix_js", F_FLOAT, OFF(train.cfg.augment.augmix_js), 0, 1000, 0, NULL},
};

static const field import_fields[] = {
    COMMON_FIELDS,
    {"dataset", F_STR, OFF(train.dataset), 1, ADV_DATASET_MAX - 1, 0, NULL},
    {"model", F_STR, OFF(train.model), 1, CORE_SPEC_LEN - 17, FL_REQUIRED, NULL},
};

static const field eval_fields[] = {
    COMMON_FIELDS,
    {"job", F_I64, OFF(eval.job), 1, I64_MAX, FL_REQUIRED, NULL},
    {"checkpoint", F_CKPT, OFF(eval.checkpoint), 0, 0, 0, NULL},
    {"suite", F_STR, OFF(eval.suite), 1, sizeof(((adv_eval_spec *)0)->suite) - 1, FL_SUITE, NULL},
    {"attack", F_ENUM, OFF(eval.attack.kind), 0, 0, FL_ATTACK, &attack_ops},
    {"norm", F_ENUM, OFF(eval.attack.norm), 0, 0, FL_ATTACK, &norm_ops},
    {"loss", F_ENUM, OFF(eval.attack.loss), 0, 0, FL_ATTACK, &loss_ops},
    {"steps", F_INT, OFF(eval.attack.steps), 1, 100000, FL_ATTACK, NULL},
    {"restarts", F_INT, OFF(eval.attack.restarts), 1, 100, FL_ATTACK, NULL},
    {"alpha", F_FLOAT, OFF(eval.attack.alpha), 0, 1000, FL_ATTACK, NULL},
    {"queries", F_INT, OFF(eval.attack.queries), 1, 1000000, FL_ATTACK, NULL},
    {"targets", F_INT, OFF(eval.attack.n_targets), 1, CORE_MAX_CLASSES - 1, FL_ATTACK, NULL},
    {"eps", F_EPS, 0, 0, 1000, 0, NULL},
    {"limit", F_INT, OFF(eval.limit), 1, 10000000, 0, NULL},
    {"sanity", F_BOOL, OFF(eval.sanity), 0, 0, 0, NULL},
    {"seed", F_I64, OFF(eval.seed), 0, I64_MAX, 0, NULL},
    {"calibration", F_BOOL, OFF(eval.calibration), 0, 0, 0, NULL},
    {"corruptions", F_BOOL, OFF(eval.corruptions), 0, 0, 0, NULL},
    {"explain", F_BOOL, OFF(eval.explain), 0, 0, 0, NULL},
    {"explain_limit", F_INT, OFF(eval.explain_limit), 1, 100000, 0, NULL},
    {"explain_class", F_INT, OFF(eval.explain_class), -1, CORE_MAX_CLASSES - 1, 0, NULL},
    {"smoothgrad_samples", F_INT, OFF(eval.smoothgrad_samples), 1, 10000, 0, NULL},
    {"smoothgrad_sigma", F_FLOAT, OFF(eval.smoothgrad_sigma), 0, 1, 0, NULL},
    {"ig_steps", F_INT, OFF(eval.ig_steps), 1, 100000, 0, NULL},
    {"fragility_eps", F_FLOAT, OFF(eval.fragility_eps), 0, 1, 0, NULL},
    {"images", F_ENUM, OFF(eval.images), 0, 0, 0, &images_ops},
    {"images_n", F_INT, OFF(eval.images_n), 1, ADV_IMAGES_MAX, 0, NULL},
    {"explain_methods", F_STR, OFF(eval.explain_methods), 1,
     sizeof(((adv_eval_spec *)0)->explain_methods) - 1, 0, NULL},
    {"method_limit", F_INT, OFF(eval.method_limit), 1, 100000, 0, NULL},
    {"gaussian_samples", F_INT, OFF(eval.gaussian_samples), 2, 100000, 0, NULL},
    {"gaussian_sigma", F_FLOAT, OFF(eval.gaussian_sigma), 0, 1, FL_LO_OPEN, NULL},
    {"lime_samples", F_INT, OFF(eval.lime_samples), 2, 100000, 0, NULL},
    {"lime_patch", F_INT, OFF(eval.lime_patch), 0, 1024, 0, NULL},
    {"lime_kernel_width", F_FLOAT, OFF(eval.lime_kernel_width), 0, 100, FL_LO_OPEN, NULL},
    {"lime_fill", F_ENUM, OFF(eval.lime_fill), 0, 0, 0, &fill_ops},
    {"ridge_lambda", F_FLOAT, OFF(eval.ridge_lambda), 0, 1e6, FL_LO_OPEN, NULL},
    {"surrogate_target", F_ENUM, OFF(eval.surrogate_target), 0, 0, 0, &target_ops},
    {"units_layer", F_STR, OFF(eval.units_layer), 1,
     sizeof(((adv_eval_spec *)0)->units_layer) - 1, 0, NULL},
    {"units_k", F_INT, OFF(eval.units_k), 1, 64, 0, NULL},
    {"units_steps", F_INT, OFF(eval.units_steps), 0, 10000, 0, NULL},
};

#define NFIELDS(t) ((int)(sizeof(t) / sizeof((t)[0])))

static const field *table_of(adv_job_kind k, int *n)
{
    *n = k == ADV_JOB_TRAIN ? NFIELDS(train_fields)
         : k == ADV_JOB_EVAL ? NFIELDS(eval_fields)
                             : NFIELDS(import_fields);
    return k == ADV_JOB_TRAIN ? train_fields : k == ADV_JOB_EVAL ? eval_fields : import_fields;
}

static const field *find(const field *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static void *at(adv_jobspec *s, const field *f)
{
    return (char *)s + f->off;
}

static const void *cat(const adv_jobspec *s, const field *f)
{
    return (const char *)s + f->off;
}

/* ------------------------------------------------------ parsing a field */

static int bad(adv_error *e, const char *name, const char *want, const json_t *v)
{
    char got[64];
    adv_proto_show(v, got, sizeof got);
    return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid '%s': expected %s, got %s", name, want,
                      got);
}

/* "an integer in [1, 100000]", "a number in (0, 1]", "an integer >= 0". */
static void describe(const field *f, const char *noun, char *out, size_t len)
{
    if (f->hi >= I64_MAX)
        snprintf(out, len, "%s >= %.15g", noun, f->lo);
    else
        snprintf(out, len, "%s in %c%.15g, %.15g%c", noun, f->flags & FL_LO_OPEN ? '(' : '[',
                 f->lo, f->hi, f->flags & FL_HI_OPEN ? ')' : ']');
}

static int in_range(const field *f, double d)
{
    int lo_ok = f->flags & FL_LO_OPEN ? d > f->lo : d >= f->lo;
    int hi_ok = f->flags & FL_HI_OPEN ? d < f->hi : d <= f->hi;
    return lo_ok && hi_ok;
}

static int parse_int(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    char want[80];
    describe(f, "an integer", want, sizeof want);
    /* Compared as integers: a double cannot hold every int64. */
    json_int_t i = json_integer_value(v);
    if (!json_is_integer(v) || i < (json_int_t)f->lo ||
        (f->hi < I64_MAX && i > (json_int_t)f->hi))
        return bad(e, f->name, want, v);
    if (f->type == F_I64)
        *(int64_t *)at(s, f) = (int64_t)i;
    else
        *(int *)at(s, f) = (int)i;
    return 0;
}

static int parse_float(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    char want[80];
    describe(f, "a number", want, sizeof want);
    /* Checked in double first (converting an out-of-range double to float
     * is undefined), then again as the float actually used. */
    if (!json_is_number(v) || !in_range(f, json_number_value(v)))
        return bad(e, f->name, want, v);
    float x = (float)json_number_value(v);
    if (!in_range(f, x))
        return bad(e, f->name, want, v);
    *(float *)at(s, f) = x;
    return 0;
}

static int parse_str(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    char want[80];
    snprintf(want, sizeof want, "a string of %.0f to %.0f bytes", f->lo, f->hi);
    const char *str = json_string_value(v);
    if (!str || json_string_length(v) < (size_t)f->lo || json_string_length(v) > (size_t)f->hi)
        return bad(e, f->name, want, v);
    for (const char *p = str; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                              "invalid '%s': control characters are not allowed", f->name);
    memcpy(at(s, f), str, json_string_length(v) + 1);
    return 0;
}

static int parse_enum(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    char err[CORE_ERRLEN];
    if (!json_is_string(v))
        return bad(e, f->name, "a string", v);
    if (f->en->parse(json_string_value(v), (int *)at(s, f), err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid '%s': %s", f->name, err);
    return 0;
}

static int parse_eps(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    adv_eval_spec *ev = &s->eval;
    field one = *f;
    one.type = F_FLOAT;
    if (!json_is_array(v)) {
        one.off = OFF(eval.eps[0]);
        ev->neps = 1;
        return json_is_number(v) ? parse_float(&one, v, s, e)
                                 : bad(e, f->name, "a number or an array of numbers", v);
    }
    if (json_array_size(v) < 1 || json_array_size(v) > ADV_EPS_MAX)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'eps': expected 1 to %d values, got %zu", ADV_EPS_MAX,
                          json_array_size(v));
    char name[32];
    one.name = name;
    for (int i = 0; i < (int)json_array_size(v); i++) {
        snprintf(name, sizeof name, "eps[%d]", i);
        one.off = OFF(eval.eps) + (size_t)i * sizeof(float);
        if (parse_float(&one, json_array_get(v, i), s, e))
            return -1;
    }
    ev->neps = (int)json_array_size(v);
    return 0;
}

/* {"job": N, "checkpoint": "best"|"latest"|EPOCH}; absent: none (the
 * canonical spec leaves it out then). */
static int parse_init(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    adv_init_ref *r = at(s, f);
    *r = (adv_init_ref){0, {ADV_CKPT_LATEST, 0}};
    const json_t *job = json_object_get(v, "job"), *ck = json_object_get(v, "checkpoint");
    if (!json_is_object(v) || !json_is_integer(job) || json_integer_value(job) < 1 ||
        json_object_size(v) != 1u + (ck != NULL))
        return bad(e, f->name, "{\"job\": N, \"checkpoint\": \"best\"|\"latest\"|EPOCH}", v);
    r->job = (int64_t)json_integer_value(job);
    return ck ? adv_ckpt_ref_parse(ck, "init.checkpoint", &r->ckpt, e) : 0;
}

/* "all" (0), "last" (1) or "last:K". */
static int parse_layers(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    const char *t = json_string_value(v);
    char *end;
    long k = -1;
    if (t && !strcmp(t, "all"))
        k = 0;
    else if (t && !strcmp(t, "last"))
        k = 1;
    else if (t && !strncmp(t, "last:", 5) && t[5] >= '0' && t[5] <= '9')
        k = strtol(t + 5, &end, 10), k = *end ? -1 : k;
    if (k < 0 || k > f->hi || (t && !strncmp(t, "last:", 5) && k == 0))
        return bad(e, f->name, "'all', 'last' or 'last:K' (K in [1, 64])", v);
    *(int *)at(s, f) = (int)k;
    return 0;
}

static void layers_name(int k, char *out, size_t len)
{
    if (k <= 1)
        snprintf(out, len, "%s", k ? "last" : "all");
    else
        snprintf(out, len, "last:%d", k);
}

/* A list of corruption families: "contrast,gaussian_blur", "all" or "". */
static int parse_families(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    const char *t = json_string_value(v);
    char err[CORE_ERRLEN];
    unsigned *set = at(s, f);
    if (!t || strlen(t) > 200)
        return bad(e, f->name, "corruption names separated by commas, or 'all'", v);
    if (!*t)
        return *set = 0, 0;
    if (core_corruption_set_parse(t, set, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid '%s': %s", f->name, err);
    return 0;
}

static json_t *families_json(unsigned set)
{
    char buf[256] = "";
    size_t o = 0;
    for (int c = 0; c < CORE_NCORRUPTIONS; c++)
        if (set >> c & 1)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? "," : "",
                                  core_corruption_name((core_corruption)c));
    return json_string(buf);
}

static int parse_field(const field *f, const json_t *v, adv_jobspec *s, adv_error *e)
{
    switch (f->type) {
    case F_INT:
    case F_I64:
        return parse_int(f, v, s, e);
    case F_FLOAT:
        return parse_float(f, v, s, e);
    case F_BOOL:
        if (!json_is_boolean(v))
            return bad(e, f->name, "true or false", v);
        *(int *)at(s, f) = json_is_true(v);
        return 0;
    case F_STR:
        return parse_str(f, v, s, e);
    case F_ENUM:
        return parse_enum(f, v, s, e);
    case F_CKPT:
        return adv_ckpt_ref_parse(v, f->name, (adv_ckpt_ref *)at(s, f), e);
    case F_EPS:
        return parse_eps(f, v, s, e);
    case F_INIT:
        return parse_init(f, v, s, e);
    case F_LAYERS:
        return parse_layers(f, v, s, e);
    case F_FAMILIES:
        return parse_families(f, v, s, e);
    }
    return adv_errorf(e, ADV_E_INTERNAL, "unknown field type for '%s'", f->name);
}

/* ------------------------------------------------------ the data set */

/* The name resolved to a format and folder, and the input shape the
 * format implies: no I/O (a PNG folder's shape is known only once read). */
static int resolve_dataset(adv_train_spec *t, adv_error *e)
{
    char err[CORE_ERRLEN];
    if (core_data_resolve(t->dataset, &t->fmt, t->data_dir, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'dataset': %s", err);
    switch (t->fmt) {
    case CORE_FORMAT_IDX:
        t->shape = (core_shape){1, 28, 28};
        t->nclass = 10;
        return 0;
    case CORE_FORMAT_CIFAR10:
        t->shape = (core_shape){3, 32, 32};
        t->nclass = 10;
        return 0;
    case CORE_FORMAT_PNGDIR:
        /* Image size and class count are known only after reading every
         * PNG, too slow for a submit: the worker checks the model against
         * them when it loads the set. */
        t->shape = (core_shape){0, 0, 0};
        t->nclass = 0;
        return 0;
    }
    return adv_errorf(e, ADV_E_INTERNAL, "unknown data format %d", (int)t->fmt);
}

/* Every file the worker will open is there and readable (core/data.c's
 * probe). The contents are not loaded (a submit must answer at once): a
 * truncated or corrupt file fails the job in the worker, with the
 * loader's message. */
static int check_files(const adv_train_spec *t, adv_error *e)
{
    char err[CORE_ERRLEN];
    if (core_data_probe(t->fmt, t->data_dir, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'dataset': %s", err);
    return 0;
}

/* Judge the model for the data set's shape with the spec parser and the
 * shape arithmetic of core/model.c, the only judges of a model; nothing is
 * allocated in proportion to it (estimate.c), so any spec is answered at
 * once. */
static int check_model(const adv_train_spec *t, adv_error *e)
{
    adv_job_cost cost;
    return adv_train_cost(t, 1, 1, &cost, e);
}

/* ----------------------------------------------- checks across fields */

static int check_train(adv_train_spec *t, adv_error *e)
{
    core_train_cfg *c = &t->cfg;
    char err[CORE_ERRLEN];
    if (c->norm == CORE_NORM_LINF && c->eps > 1.0f)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'eps': expected a number in [0, 1] for norm 'linf', got %g",
                          (double)c->eps);
    if (c->eps_ramp_epochs > c->epochs)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'eps_ramp': %d is more than 'epochs' (%d)", c->eps_ramp_epochs,
                          c->epochs);
    if (c->val_robust_size > c->val_size)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'val_robust_size': %d is more than 'val_size' (%d)",
                          c->val_robust_size, c->val_size);
    if (t->train_limit > 0 && c->val_size >= t->train_limit)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "invalid 'val_size': %d leaves no training examples of 'train_limit' "
                          "(%d)", c->val_size, t->train_limit);
    /* The core's own checks have the last word (their messages name the
     * field too); the optimizer's run in core_optim_init. */
    core_optim o;
    int rc = core_optim_init(&o, &c->opt, 0, err);
    core_optim_free(&o);
    if (rc || core_train_cfg_check(c, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "%s", err);
    return resolve_dataset(t, e) || check_model(t, e) ? -1 : 0;
}

/* APGD-T's targets must be fewer than the classes, known only from the
 * parent job's data set: the daemon checks that when it runs the job. */
static int check_eval(adv_eval_spec *ev, const json_t *obj, adv_error *e)
{
    char err[CORE_ERRLEN];
    for (int i = 0; i < NFIELDS(eval_fields); i++) {
        const field *f = &eval_fields[i];
        if (ev->use_suite && (f->flags & FL_ATTACK) && json_object_get(obj, f->name))
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "'%s' cannot be used with 'suite'",
                              f->name);
    }
    for (int i = 0; i < ev->neps; i++) {
        if (ev->attack.norm == CORE_NORM_LINF && ev->eps[i] > 1.0f)
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                              "invalid 'eps': expected numbers in [0, 1] for norm 'linf', got %g",
                              (double)ev->eps[i]);
        core_attack_cfg a = ev->attack;
        a.eps = ev->eps[i];
        core_suite suite;
        if (ev->use_suite ? core_suite_preset(ev->suite, a.eps, ev->seed, &suite, err)
                          : core_attack_cfg_check(&a, err))
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid '%s': %s",
                              ev->use_suite ? "suite" : "attack", err);
    }
    unsigned methods;
    if (core_explain_methods_parse(ev->explain_methods, &methods, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'explain_methods': %s", err);
    if (!ev->use_suite && (ev->attack.kind == CORE_ATTACK_SQUARE || ev->attack.kind == CORE_ATTACK_FAB_T) &&
        ev->attack.norm != CORE_NORM_LINF)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'norm': '%s' supports only 'linf'",
                          core_attack_kind_name(ev->attack.kind));
    return 0;
}

/* ---------------------------------------------------------- parsing */

static int parse_kind(const json_t *spec, adv_jobspec *s, adv_error *e)
{
    if (!json_is_object(spec))
        return bad(e, "spec", "a job spec object", spec);
    const json_t *k = json_object_get(spec, "kind");
    if (!k)
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT,
                          "missing 'kind' (expected train, eval or import)");
    if (!json_is_string(k) || adv_job_kind_parse(json_string_value(k), &s->kind))
        return bad(e, "kind", "train, eval or import", k);
    return 0;
}

static int check_keys(const json_t *spec, const field *t, int n, adv_job_kind kind, adv_error *e)
{
    const char *names[64];
    for (int i = 0; i < n; i++)
        names[i] = t[i].name;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)spec, key, v) {
        if (strcmp(key, "kind") != 0 && !find(t, n, key))
            return adv_proto_unknown_key(e, key, kind == ADV_JOB_TRAIN  ? " in a train spec"
                                                 : kind == ADV_JOB_EVAL ? " in an eval spec"
                                                                        : " in an import spec",
                                         names, n);
    }
    return 0;
}

/* Defaults that depend on another key: the optimizer's (Adam's lr is not
 * SGD's) and the attack's (APGD runs 100 steps, PGD 20). */
static int parse_first(const json_t *spec, const field *t, int n, adv_jobspec *s, adv_error *e)
{
    const char *key = s->kind == ADV_JOB_TRAIN ? "optimizer" : "attack";
    const json_t *v = json_object_get(spec, key);
    if (v && parse_field(find(t, n, key), v, s, e))
        return -1;
    if (s->kind == ADV_JOB_TRAIN)
        s->train.cfg.opt = core_opt_defaults(s->train.cfg.opt.kind);
    else
        s->eval.attack = core_attack_defaults(s->eval.attack.kind, s->eval.eps[0]);
    return 0;
}

static void defaults(adv_jobspec *s)
{
    adv_job_kind kind = s->kind;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->procs = 1;
    if (kind != ADV_JOB_EVAL) {
        adv_train_spec *t = &s->train;
        snprintf(t->dataset, sizeof t->dataset, "fashion-mnist");
        snprintf(t->model, sizeof t->model, "cnn-small");
        t->cfg = core_train_defaults();
        t->checkpoint_every = 1;
        t->keep_checkpoints = 3;
        t->init.ckpt.which = ADV_CKPT_LATEST;
    } else {
        adv_eval_spec *ev = &s->eval;
        ev->checkpoint.which = ADV_CKPT_LATEST;
        ev->neps = 1;
        ev->eps[0] = core_train_defaults().eps;
        ev->attack = core_attack_defaults(CORE_ATTACK_PGD, ev->eps[0]);
        ev->limit = 1000;
        ev->sanity = 1;
        ev->calibration = 1;
        core_explain_cfg sg = core_explain_defaults(CORE_EXPLAIN_SMOOTHGRAD);
        ev->explain_limit = 256;
        ev->explain_class = -1;
        ev->smoothgrad_samples = sg.samples;
        ev->smoothgrad_sigma = sg.sigma;
        ev->ig_steps = sg.steps;
        ev->fragility_eps = core_fragility_defaults().eps;
        ev->images = ADV_IMAGES_NONE;
        ev->images_n = 16;
        core_surrogate_cfg sc = core_surrogate_defaults();
        core_explain_methods_format(CORE_EXPLAIN_ALL, ev->explain_methods,
                                    sizeof ev->explain_methods);
        ev->method_limit = 16;
        ev->gaussian_samples = sc.gaussian_samples;
        ev->gaussian_sigma = sc.sigma;
        ev->lime_samples = sc.lime_samples;
        ev->lime_patch = sc.patch;
        ev->lime_kernel_width = sc.kernel_width;
        ev->lime_fill = sc.fill;
        ev->ridge_lambda = sc.lambda;
        ev->surrogate_target = sc.target;
        snprintf(ev->units_layer, sizeof ev->units_layer, "conv1");
        ev->units_k = 8;
        ev->units_steps = core_maximise_defaults().steps;
    }
}

int adv_jobspec_decode(const json_t *spec, adv_jobspec *s, adv_error *e)
{
    memset(s, 0, sizeof *s);
    if (parse_kind(spec, s, e))
        return -1;
    int n;
    const field *t = table_of(s->kind, &n);
    defaults(s);
    if (check_keys(spec, t, n, s->kind, e) || parse_first(spec, t, n, s, e))
        return -1;
    for (int i = 0; i < n; i++) {
        const json_t *v = json_object_get(spec, t[i].name);
        if (!v && (t[i].flags & FL_REQUIRED))
            return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "missing '%s' in %s spec", t[i].name,
                              s->kind == ADV_JOB_TRAIN  ? "a train"
                              : s->kind == ADV_JOB_EVAL ? "an eval"
                                                        : "an import");
        if (v && parse_field(&t[i], v, s, e))
            return -1;
    }
    if (s->kind == ADV_JOB_TRAIN)
        return check_train(&s->train, e);
    if (s->kind == ADV_JOB_IMPORT)
        return resolve_dataset(&s->train, e) || check_model(&s->train, e) ? -1 : 0;
    s->eval.use_suite = s->eval.suite[0] != '\0';
    if (s->eval.use_suite && json_object_get(spec, "attack"))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "'attack' and 'suite' cannot be used together");
    return check_eval(&s->eval, spec, e);
}

int adv_jobspec_check_env(const adv_jobspec *s, adv_error *e)
{
    return s->kind == ADV_JOB_EVAL ? 0 : check_files(&s->train, e);
}

int adv_jobspec_parse(const json_t *spec, adv_jobspec *s, adv_error *e)
{
    return adv_jobspec_decode(spec, s, e) || adv_jobspec_check_env(s, e) ? -1 : 0;
}

/* text decoded as JSON, then by decode (adv_jobspec_decode or _parse). */
static int spec_text(const char *text, size_t len, adv_jobspec *out, adv_error *e,
                     int (*decode)(const json_t *, adv_jobspec *, adv_error *))
{
    json_t *v;
    if (adv_proto_decode(text, len, &v, e)) {
        if (e && e->code == ADV_E_BAD_REQUEST)
            e->code = ADV_E_INVALID_ARGUMENT;
        memset(out, 0, sizeof *out);
        return -1;
    }
    int rc = decode(v, out, e);
    json_decref(v);
    return rc;
}

int adv_jobspec_parse_text(const char *text, size_t len, adv_jobspec *out, adv_error *e)
{
    return spec_text(text, len, out, e, adv_jobspec_parse);
}

int adv_jobspec_decode_text(const char *text, size_t len, adv_jobspec *out, adv_error *e)
{
    return spec_text(text, len, out, e, adv_jobspec_decode);
}

/* ---------------------------------------------------------- encoding */

double adv_float_json(float f)
{
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return strtod(buf, NULL);
}

static json_t *encode_field(const field *f, const adv_jobspec *s)
{
    const void *p = cat(s, f);
    switch (f->type) {
    case F_INT:
        return json_integer(*(const int *)p);
    case F_I64:
        return json_integer((json_int_t) * (const int64_t *)p);
    case F_FLOAT:
        return json_real(adv_float_json(*(const float *)p));
    case F_BOOL:
        return json_boolean(*(const int *)p);
    case F_STR:
        return json_string((const char *)p);
    case F_ENUM:
        return json_string(f->en->name(*(const int *)p));
    case F_CKPT:
        return adv_ckpt_ref_json(*(const adv_ckpt_ref *)p);
    case F_EPS: {
        json_t *a = json_array();
        for (int i = 0; i < s->eval.neps; i++)
            json_array_append_new(a, json_real(adv_float_json(s->eval.eps[i])));
        return a;
    }
    case F_INIT: {
        const adv_init_ref *r = p;
        return r->job ? json_pack("{s:I, s:o}", "job", (json_int_t)r->job, "checkpoint",
                                  adv_ckpt_ref_json(r->ckpt))
                      : NULL;
    }
    case F_LAYERS: {
        char buf[32];
        layers_name(*(const int *)p, buf, sizeof buf);
        return json_string(buf);
    }
    case F_FAMILIES:
        return families_json(*(const unsigned *)p);
    }
    return json_null();
}

json_t *adv_jobspec_json(const adv_jobspec *s)
{
    int n;
    const field *t = table_of(s->kind, &n);
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(adv_job_kind_name(s->kind)));
    for (int i = 0; i < n; i++) {
        int suite = s->kind == ADV_JOB_EVAL && s->eval.use_suite;
        if (s->kind == ADV_JOB_EVAL &&
            (((t[i].flags & FL_ATTACK) && suite) || ((t[i].flags & FL_SUITE) && !suite)))
            continue;
        json_t *v = encode_field(&t[i], s);
        if (v) /* NULL: an optional key left out */
            json_object_set_new(o, t[i].name, v);
    }
    return o;
}

const char *adv_jobspec_key(adv_job_kind kind, int i, adv_key_type *type, int *bool_default)
{
    static const adv_key_type of[] = {
        [F_INT] = ADV_KEY_INT,   [F_I64] = ADV_KEY_INT,     [F_FLOAT] = ADV_KEY_NUMBER,
        [F_BOOL] = ADV_KEY_BOOL, [F_STR] = ADV_KEY_TEXT,    [F_ENUM] = ADV_KEY_TEXT,
        [F_CKPT] = ADV_KEY_OTHER, [F_EPS] = ADV_KEY_OTHER, [F_INIT] = ADV_KEY_INIT,
        [F_LAYERS] = ADV_KEY_TEXT, [F_FAMILIES] = ADV_KEY_TEXT,
    };
    int n;
    const field *t = table_of(kind, &n);
    if (i < 0 || i >= n)
        return NULL;
    *type = t[i].type == F_I64 && !strcmp(t[i].name, "job") ? ADV_KEY_OTHER : of[t[i].type];
    *bool_default = 0;
    if (t[i].type == F_BOOL) {
        adv_jobspec d = {.kind = kind};
        defaults(&d);
        *bool_default = *(const int *)cat(&d, &t[i]);
    }
    return t[i].name;
}

char *adv_jobspec_canonical(const adv_jobspec *s)
{
    json_t *o = adv_jobspec_json(s);
    char *text = json_dumps(o, ADV_JSON_FLAGS);
    json_decref(o);
    return text;
}
