/*
 * options.c - advd's settings: one table (ADVD_OPTIONS in advd.h) drives the
 * configuration file, the command line and the usage text.
 *
 * The configuration file holds "key = value" lines ('#' starts a comment);
 * the command line's --key options (with '-' for '_') win over it. Kinds:
 *   path     a file name, 1 to the field's size - 1 bytes
 *   count    an integer in [lo, hi]
 *   seconds  a decimal number of seconds in [lo, hi], kept in milliseconds
 *   bytes    an integer with an optional K, M, G or T suffix (powers of 1024),
 *            kept in bytes; 0 where the table allows it means "automatic"
 *   mode     an octal file mode such as 0660
 *   name     a user or group name (or empty)
 *   bool     true/yes/1 or false/no/0
 *   real     a decimal number in [lo, hi]
 *   words    command-line arguments separated by blanks (or empty)
 *   launcher local, mpirun or slurm (launch.h)
 */
#include "advd.h"
#include "daemon/launch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_PATH, OPT_COUNT, OPT_SECONDS, OPT_BYTES, OPT_MODE, OPT_NAME, OPT_BOOL,
               OPT_REAL, OPT_WORDS, OPT_LAUNCHER } opt_kind;

typedef struct {
    const char *key;     /* configuration-file name; --key with '-' for '_' */
    opt_kind kind;
    size_t off;          /* the field in advd_options */
    size_t size;         /* path and name: the buffer's size */
    double lo, hi;
    const char *arg;     /* the value's name in the usage text */
    const char *help;
} opt_def;

#define ADVD_OPT_DEF(key, kind, field, lo, hi, arg, help)                                   \
    {#key, OPT_##kind, offsetof(advd_options, field), sizeof(((advd_options *)0)->field), lo, \
     hi, arg, help},
static const opt_def opt_table[] = {ADVD_OPTIONS(ADVD_OPT_DEF)};
#undef ADVD_OPT_DEF
#define NOPTS ((int)(sizeof opt_table / sizeof opt_table[0]))

static const char *kind_name(opt_kind k)
{
    static const char *names[] = {"a path", "an integer", "seconds", "a size (K, M, G)",
                                  "an octal mode", "a name", "true or false", "a number",
                                  "arguments", "local, mpirun or slurm"};
    return names[k];
}

static int bad(const opt_def *o, const char *v, char *err)
{
    if (o->kind == OPT_COUNT || o->kind == OPT_SECONDS || o->kind == OPT_REAL)
        return core_errf(err, "invalid '%s': expected %s in [%g, %g], got '%.40s'", o->key,
                         kind_name(o->kind), o->lo, o->hi, v);
    return core_errf(err, "invalid '%s': expected %s, got '%.40s'", o->key, kind_name(o->kind), v);
}

static int parse_bytes(const char *v, double *out)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || n < 0)
        return -1;
    static const char units[] = "KMGT";
    const char *u = *end ? strchr(units, *end == 'k' ? 'K' : *end) : NULL;
    if (*end && (!u || (end[1] && strcmp(end + 1, "B") && strcmp(end + 1, "iB"))))
        return -1;
    for (const char *p = units; u && p <= u; p++)
        n *= 1024.0;
    *out = n;
    return 0;
}

static int parse_number(const opt_def *o, const char *v, double *out)
{
    char *end;
    errno = 0;
    if (o->kind == OPT_BYTES)
        return parse_bytes(v, out);
    if (o->kind == OPT_MODE) {
        long m = strtol(v, &end, 8);
        *out = (double)m;
        return errno || end == v || *end || m < 0 || m > 0777 ? -1 : 0;
    }
    if (o->kind == OPT_COUNT) {
        long n = strtol(v, &end, 10);
        *out = (double)n;
        return errno || end == v || *end ? -1 : 0;
    }
    *out = strtod(v, &end);
    return errno || end == v || *end ? -1 : 0;
}

static int set_value(advd_options *opts, const opt_def *o, const char *v, char *err)
{
    char *field = (char *)opts + o->off;
    double n;
    switch (o->kind) {
    case OPT_LAUNCHER:
        return advd_launcher_parse(v, (int *)field) ? bad(o, v, err) : 0;
    case OPT_PATH:
    case OPT_NAME:
    case OPT_WORDS:
        if ((o->kind == OPT_PATH && !*v) || strlen(v) >= o->size)
            return core_errf(err, "invalid '%s': expected %s of %s1 to %zu bytes", o->key,
                             kind_name(o->kind), "", o->size - 1);
        snprintf(field, o->size, "%s", v);
        return 0;
    case OPT_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
            return *(int *)field = 1, 0;
        if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
            return *(int *)field = 0, 0;
        return bad(o, v, err);
    default:
        break;
    }
    if (parse_number(o, v, &n) || !(n >= o->lo && n <= o->hi))
        return bad(o, v, err);
    if (o->kind == OPT_SECONDS)
        *(int *)field = (int)(n * 1000.0 + 0.5);
    else if (o->kind == OPT_BYTES)
        *(int64_t *)field = (int64_t)n;
    else if (o->kind == OPT_REAL)
        *(double *)field = n;
    else
        *(int *)field = (int)n;
    return 0;
}

int advd_option_set(advd_options *opts, const char *key, const char *value, char *err)
{
    for (int i = 0; i < NOPTS; i++)
        if (!strcmp(opt_table[i].key, key))
            return set_value(opts, &opt_table[i], value, err);
    return core_errf(err, "unknown setting '%.60s'", key);
}

int advd_option_arity(const char *key)
{
    for (int i = 0; i < NOPTS; i++)
        if (!strcmp(opt_table[i].key, key))
            return opt_table[i].kind == OPT_BOOL ? 0 : 1;
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

int advd_options_read(advd_options *o, FILE *f, const char *name, char *err)
{
    char line[CORE_PATH_JOIN], msg[CORE_ERRLEN]; /* key = a path */
    int no = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return core_errf(err, "'%s' line %d: expected 'key = value'", name, no);
        *eq = '\0';
        if (advd_option_set(o, trim(s), trim(eq + 1), msg))
            return core_errf(err, "'%s' line %d: %s", name, no, msg);
    }
    return 0;
}

void advd_options_defaults(advd_options *o)
{
    *o = (advd_options){
        .workers = 1,
        .grace_ms = 10000,
        .max_clients = 1024,
        .max_clients_per_user = 256,
        .reserved_clients = 4,
        .line_timeout_ms = 30000,
        .idle_timeout_ms = 0,
        .socket_mode = 0600,
        .max_queued_per_user = 1000,
        .max_job_memory = 0,
        .drift_alpha = 0.05,
        .drift_permutations = 100,
        .drift_points = 1000,
        .drift_sigma = 3.0,
        .launcher = ADVD_LAUNCH_LOCAL,
        /* Open MPI binds each rank to one core by default: a rank's
         * OpenMP threads would share it. Debian's Open MPI starts under
         * srun through PMIx only. */
        .mpirun_args = "--bind-to none",
        .srun_args = "--mpi=pmix",
    };
}

void advd_options_usage(FILE *f)
{
    fprintf(f, "usage: advd [options]\n"
               "       advd --help | --version\n\n"
               "Options (also 'key = value' lines of --config FILE; the command line wins):\n"
               "  --config FILE                 read settings from FILE first\n");
    for (int i = 0; i < NOPTS; i++) {
        const opt_def *o = &opt_table[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", o->key, o->kind == OPT_BOOL ? "" : " ",
                 o->kind == OPT_BOOL ? "" : o->arg);
        for (char *p = flag + 2; *p && *p != ' '; p++)
            if (*p == '_')
                *p = '-';
        fprintf(f, "  %-29s %s\n", flag, o->help);
    }
}
