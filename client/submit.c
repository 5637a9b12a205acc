/*
 * submit.c - `advctl submit` and `advctl eval`: a job spec built from an
 * optional JSON file and command-line flags (flags win), validated here
 * with proto's adv_jobspec_parse (the daemon's own code) before it is
 * sent, so that a bad value is reported without a round trip; relative
 * data-set directories are made absolute first (advd runs elsewhere).
 */
#include "client/advctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The flags of a kind's spec keys (proto's table, adv_jobspec_key):
 * "--KEY" with '-' for '_' and a value; a switch for a boolean, "--KEY"
 * when it defaults to false, "--no-KEY" when to true. Built once. */
#define SPEC_FLAGS_MAX 128

typedef struct {
    ctl_flag flag[SPEC_FLAGS_MAX + 1];
    char name[SPEC_FLAGS_MAX][48];
    int built;
} spec_flags;

static const ctl_flag *flags_of(adv_job_kind kind)
{
    static spec_flags cache[2]; /* train, eval: what advctl asks for, read-only once made */
    spec_flags *f = &cache[kind == ADV_JOB_EVAL];
    adv_key_type type;
    int on, n = 0;
    const char *key;
    for (int i = 0; !f->built && (key = adv_jobspec_key(kind, i, &type, &on)) && n < SPEC_FLAGS_MAX;
         i++) {
        static const ctl_flag_type as[] = {[ADV_KEY_INT] = CTL_INT, [ADV_KEY_NUMBER] = CTL_FLOAT,
                                           [ADV_KEY_TEXT] = CTL_STR, [ADV_KEY_INIT] = CTL_INIT};
        if (type == ADV_KEY_OTHER)
            continue;
        char *name = f->name[n];
        snprintf(name, sizeof f->name[n], "--%s%s", type == ADV_KEY_BOOL && on ? "no-" : "", key);
        for (char *c = name + 2; *c; c++)
            *c = *c == '_' ? '-' : *c;
        f->flag[n++] = (ctl_flag){name, key, type != ADV_KEY_BOOL ? as[type]
                                             : on                 ? CTL_FALSE
                                                                  : CTL_TRUE};
    }
    f->built = 1;
    return f->flag;
}

static const ctl_flag *find_flag(const ctl_flag *t, const char *name)
{
    for (; t->flag; t++)
        if (!strcmp(t->flag, name))
            return t;
    return NULL;
}

/* "JOB" or "JOB:CKPT" (latest, best or an epoch). */
static json_t *init_value(const char *cmd, const char *flag, const char *s)
{
    char job[32];
    const char *colon = strchr(s, ':');
    long long id, ep;
    snprintf(job, sizeof job, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
    if (ctl_parse_int(job, 1, INT64_MAX, &id)) {
        ctl_usage(cmd, "invalid '%s': expected JOB[:latest|best|EPOCH], got '%s'", flag, s);
        return NULL;
    }
    const char *ck = colon ? colon + 1 : "latest";
    return json_pack("{s:I, s:o}", "job", (json_int_t)id, "checkpoint",
                     ctl_parse_int(ck, 0, 100000, &ep) == 0 ? json_integer(ep) : json_string(ck));
}

/* The JSON value of a flag's text, or NULL after a usage error. */
static json_t *flag_value(const char *cmd, const ctl_flag *f, const char *s)
{
    long long i;
    double d;
    switch (f->type) {
    case CTL_INIT:
        return init_value(cmd, f->flag, s);
    case CTL_INT:
        if (ctl_parse_int(s, LLONG_MIN, LLONG_MAX, &i) == 0)
            return json_integer(i);
        ctl_usage(cmd, "invalid '%s': expected an integer, got '%s'", f->flag, s);
        return NULL;
    case CTL_FLOAT:
        if (ctl_parse_double(s, &d) == 0)
            return json_real(d);
        ctl_usage(cmd, "invalid '%s': expected a number, got '%s'", f->flag, s);
        return NULL;
    case CTL_STR:
        return json_string(s);
    case CTL_TRUE:
    case CTL_FALSE:
        return json_boolean(f->type == CTL_TRUE);
    }
    return NULL;
}

int ctl_apply_flag(const char *cmd, const ctl_flag *t, int argc, char **argv, int *i,
                   json_t *spec)
{
    const ctl_flag *f = find_flag(t, argv[*i]);
    if (!f)
        return 1;
    const int is_switch = f->type == CTL_TRUE || f->type == CTL_FALSE;
    const char *s = is_switch ? "" : ctl_optarg(cmd, argc, argv, i);
    json_t *v = s ? flag_value(cmd, f, s) : NULL;
    if (!v)
        return ADVCTL_USAGE;
    json_object_set_new(spec, f->key, v);
    return 0;
}

/* "fmt:DIR" with a relative DIR becomes "fmt:/abs/DIR". */
static void absolute_dataset(json_t *spec)
{
    const char *ds = json_string_value(json_object_get(spec, "dataset"));
    const char *colon = ds ? strchr(ds, ':') : NULL;
    if (!colon || colon[1] == '/' || colon[1] == '\0')
        return;
    char resolved[PATH_MAX], cwd[PATH_MAX], out[2 * PATH_MAX + 64];
    const char *dir = colon + 1;
    if (realpath(dir, resolved))
        snprintf(out, sizeof out, "%.*s:%s", (int)(colon - ds), ds, resolved);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(out, sizeof out, "%.*s:%s/%s", (int)(colon - ds), ds, cwd, dir);
    else
        return;
    json_object_set_new(spec, "dataset", json_string(out));
}

int ctl_validate_spec(const char *cmd, const json_t *spec)
{
    adv_jobspec *s = malloc(sizeof *s);
    adv_error e;
    if (!s)
        return ctl_error("out of memory");
    int rc = adv_jobspec_parse(spec, s, &e);
    free(s);
    if (rc) {
        fprintf(stderr, "advctl %s: %s\n", cmd, e.msg);
        return ADVCTL_USAGE;
    }
    return 0;
}

int ctl_submit_spec(ctl *c, json_t *spec, int64_t *job, json_t **result)
{
    json_t *r;
    int rc = ctl_call(c, "submit", json_pack("{s:o}", "spec", spec), &r);
    if (rc)
        return rc;
    *job = json_integer_value(json_object_get(r, "job"));
    if (result)
        *result = r;
    else
        json_decref(r);
    return 0;
}

/* Submit spec (stolen); print the job id; follow it with wait. */
static int send_spec(ctl *c, json_t *spec, int wait)
{
    json_t *r;
    int64_t job;
    int rc = ctl_submit_spec(c, spec, &job, &r);
    if (rc)
        return rc;
    if (c->json)
        ctl_print_json(r);
    else
        printf("%lld\n", (long long)job);
    fflush(stdout);
    json_decref(r);
    return wait ? ctl_follow(c, job) : 0;
}

/* ------------------------------------------------------------- submit */

static int load_file(const char *path, json_t **spec)
{
    json_error_t je;
    *spec = json_load_file(path, 0, &je);
    if (!*spec)
        return ctl_usage("submit", "cannot read job file '%s': %s (line %d)", path, je.text,
                         je.line);
    if (!json_is_object(*spec)) {
        json_decref(*spec);
        return ctl_usage("submit", "job file '%s' does not hold a JSON object", path);
    }
    return 0;
}

static int submit_args(int argc, char **argv, json_t **spec, int *wait)
{
    const char *file = NULL;
    json_t *flags = json_object();
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--wait"))
            *wait = 1;
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else if ((rc = ctl_apply_flag("submit", flags_of(ADV_JOB_TRAIN), argc, argv, &i,
                                      flags)) == 1)
            rc = ctl_usage("submit", argv[i][0] == '-' ? "unknown option '%s'"
                                                       : "unexpected argument '%s'", argv[i]);
    }
    if (!rc && file)
        rc = load_file(file, spec);
    if (!rc && !file)
        *spec = json_object();
    if (!rc) {
        json_object_update(*spec, flags);
        if (!json_object_get(*spec, "kind"))
            json_object_set_new(*spec, "kind", json_string("train"));
    }
    json_decref(flags);
    return rc;
}

int cmd_submit(ctl *c, int argc, char **argv)
{
    json_t *spec = NULL;
    int wait = 0;
    int rc = submit_args(argc, argv, &spec, &wait);
    if (rc)
        return rc;
    absolute_dataset(spec);
    if ((rc = ctl_validate_spec("submit", spec))) {
        json_decref(spec);
        return rc;
    }
    return send_spec(c, spec, wait);
}

/* --------------------------------------------------------------- eval */

static int parse_eps(const char *s, json_t *spec)
{
    json_t *a = json_array();
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double d;
        if (ctl_parse_double(tok, &d)) {
            json_decref(a);
            return ctl_usage("eval", "invalid '--eps': expected numbers separated by commas, "
                                     "got '%s'", s);
        }
        json_array_append_new(a, json_real(d));
    }
    json_object_set_new(spec, "eps", a);
    return 0;
}

int ctl_parse_ckpt(const char *cmd, const char *s, json_t *spec)
{
    long long ep;
    json_t *v = ctl_parse_int(s, 0, 100000, &ep) == 0 ? json_integer(ep) : json_string(s);
    adv_ckpt_ref ref;
    adv_error e;
    if (adv_ckpt_ref_parse(v, "--checkpoint", &ref, &e)) {
        json_decref(v);
        return ctl_usage(cmd, "%s", e.msg);
    }
    json_object_set_new(spec, "checkpoint", v);
    return 0;
}

static int eval_arg(int argc, char **argv, int *i, json_t *spec, int *wait, int *njobs)
{
    const char *a = argv[*i], *v;
    int64_t job;
    if (!strcmp(a, "--wait"))
        return *wait = 1, 0;
    if (!strcmp(a, "--eps"))
        return (v = ctl_optarg("eval", argc, argv, i)) ? parse_eps(v, spec) : ADVCTL_USAGE;
    if (!strcmp(a, "--checkpoint"))
        return (v = ctl_optarg("eval", argc, argv, i)) ? ctl_parse_ckpt("eval", v, spec) : ADVCTL_USAGE;
    if (a[0] != '-') {
        if (++*njobs > 1 || ctl_parse_job(a, &job))
            return ctl_usage("eval", "unexpected argument '%s'", a);
        return json_object_set_new(spec, "job", json_integer(job)), 0;
    }
    int rc = ctl_apply_flag("eval", flags_of(ADV_JOB_EVAL), argc, argv, i, spec);
    return rc == 1 ? ctl_usage("eval", "unknown option '%s'", a) : rc;
}

int cmd_eval(ctl *c, int argc, char **argv)
{
    json_t *spec = json_pack("{s:s}", "kind", "eval");
    int wait = 0, njobs = 0, rc = 0;
    for (int i = 1; i < argc && !rc; i++)
        rc = eval_arg(argc, argv, &i, spec, &wait, &njobs);
    if (!rc && !njobs)
        rc = ctl_usage("eval", "missing JOB");
    if (!rc && !json_object_get(spec, "attack") && !json_object_get(spec, "suite"))
        rc = ctl_usage("eval", "give --attack NAME or --suite NAME");
    if (!rc)
        rc = ctl_validate_spec("eval", spec);
    if (rc) {
        json_decref(spec);
        return rc;
    }
    return send_spec(c, spec, wait);
}
