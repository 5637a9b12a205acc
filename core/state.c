/*
 * state.c - writing and reading training checkpoints (format in state.h).
 *
 * A small cursor struct does bounds-checked little-endian reads, so that a
 * truncated or corrupt buffer is reported rather than read past its end.
 */
#include "state.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define STATE_MAGIC "ADVSTATE"
#define STATE_VERSION 1u

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "state format is little-endian");

typedef struct {
    uint8_t *p;
    size_t off;
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->p)
        memcpy(w->p + w->off, src, n);
    w->off += n;
}

static void put_u32(writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(writer *w, uint64_t v) { put(w, &v, 8); }

/* One pass that either measures (w->p NULL) or writes. */
static void write_all(writer *w, const core_model *m, const core_optim *o,
                      const core_progress *p)
{
    put(w, STATE_MAGIC, 8);
    put_u32(w, STATE_VERSION);
    put_u32(w, (uint32_t)m->in.c);
    put_u32(w, (uint32_t)m->in.h);
    put_u32(w, (uint32_t)m->in.w);
    put_u32(w, (uint32_t)m->nclass);
    put_u32(w, (uint32_t)strlen(m->spec));
    put(w, m->spec, strlen(m->spec));
    put_u64(w, m->nparams);
    put(w, m->params, m->nparams * sizeof(float));
    put_u32(w, (uint32_t)o->cfg.kind);
    size_t osz = core_optim_state_size(o);
    put_u64(w, osz);
    if (w->p)
        core_optim_state_write(o, w->p + w->off);
    w->off += osz;
    put_u64(w, p->seed);
    put_u64(w, (uint64_t)p->epoch);
    put_u64(w, (uint64_t)p->step);
    put(w, &p->loss_sum, 8);
    put_u64(w, (uint64_t)p->correct);
    put_u64(w, (uint64_t)p->seen);
}

int core_state_save(const core_model *m, const core_optim *o, const core_progress *p,
                    uint8_t **buf, size_t *len, char *err)
{
    writer w = {NULL, 0};
    write_all(&w, m, o, p);
    size_t total = w.off + 4;
    w.p = malloc(total);
    if (!w.p)
        return core_errf(err, "out of memory for a %zu-byte checkpoint", total);
    w.off = 0;
    write_all(&w, m, o, p);
    put_u32(&w, (uint32_t)crc32_z(0L, w.p, w.off));
    *buf = w.p;
    *len = total;
    return 0;
}

/* ---- reading ---------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, off;
    char *err;
} reader;

static int get(reader *r, void *dst, size_t n, const char *what)
{
    if (n > r->len - r->off)
        return core_errf(r->err, "checkpoint truncated while reading '%s'", what);
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return 0;
}

typedef struct {
    core_state_info info;
    uint64_t nparams;
    size_t params_off;
    uint32_t opt_kind;
    uint64_t opt_size;
    size_t opt_off;
    core_progress progress;
} parsed_state;

static int check_frame(const uint8_t *buf, size_t len, char *err)
{
    if (len < 8 + 4 + 4 || memcmp(buf, STATE_MAGIC, 8) != 0)
        return core_errf(err, "not a checkpoint (bad magic)");
    uint32_t stored, version;
    memcpy(&version, buf + 8, 4);
    if (version != STATE_VERSION)
        return core_errf(err, "unsupported checkpoint version '%u'", version);
    memcpy(&stored, buf + len - 4, 4);
    if (stored != (uint32_t)crc32_z(0L, buf, len - 4))
        return core_errf(err, "checkpoint checksum mismatch (corrupt or truncated)");
    return 0;
}

/* The fixed part before the parameters: magic, version, shape, spec and
 * the parameter count; r->off ends at the first parameter. */
static int parse_head(reader *r, parsed_state *s)
{
    uint32_t dims[4], spec_len = 0;
    if (get(r, dims, sizeof dims, "shape") || get(r, &spec_len, 4, "spec length"))
        return -1;
    if (spec_len >= CORE_SPEC_LEN)
        return core_errf(r->err, "checkpoint spec too long (%u bytes)", spec_len);
    memset(s, 0, sizeof *s);
    s->info.in = (core_shape){(int)dims[0], (int)dims[1], (int)dims[2]};
    s->info.nclass = (int)dims[3];
    if (get(r, s->info.spec, spec_len, "spec") || get(r, &s->nparams, 8, "parameter count"))
        return -1;
    s->params_off = r->off;
    return 0;
}

int core_state_head(const uint8_t *buf, size_t len, core_state_info *info, size_t *params_off,
                    uint64_t *nparams, char *err)
{
    parsed_state s;
    if (len < 12 || memcmp(buf, STATE_MAGIC, 8) != 0)
        return core_errf(err, "not a checkpoint (bad magic)");
    reader r = {buf, len, 12, err};
    if (parse_head(&r, &s))
        return -1;
    *info = s.info;
    *params_off = s.params_off;
    *nparams = s.nparams;
    return 0;
}

static int parse(const uint8_t *buf, size_t len, parsed_state *s, char *err)
{
    if (check_frame(buf, len, err))
        return -1;
    reader r = {buf, len - 4, 12, err};
    if (parse_head(&r, s))
        return -1;
    if (s->nparams > (r.len - r.off) / sizeof(float))
        return core_errf(err, "checkpoint truncated while reading 'parameters'");
    r.off += s->nparams * sizeof(float);
    if (get(&r, &s->opt_kind, 4, "optimizer kind") || get(&r, &s->opt_size, 8, "optimizer size"))
        return -1;
    s->opt_off = r.off;
    if (s->opt_size > r.len - r.off)
        return core_errf(err, "checkpoint truncated while reading 'optimizer state'");
    r.off += s->opt_size;
    core_progress *p = &s->progress;
    if (get(&r, &p->seed, 8, "seed") || get(&r, &p->epoch, 8, "epoch") ||
        get(&r, &p->step, 8, "step") || get(&r, &p->loss_sum, 8, "loss sum") ||
        get(&r, &p->correct, 8, "correct") || get(&r, &p->seen, 8, "seen"))
        return -1;
    if (r.off != r.len)
        return core_errf(err, "checkpoint has %zu unexpected trailing bytes", r.len - r.off);
    s->info.epoch = p->epoch;
    s->info.step = p->step;
    s->info.seed = p->seed;
    return 0;
}

int core_state_inspect(const uint8_t *buf, size_t len, core_state_info *info, char *err)
{
    parsed_state s;
    if (parse(buf, len, &s, err))
        return -1;
    *info = s.info;
    return 0;
}

int core_state_load(core_model *m, core_optim *o, core_progress *p, const uint8_t *buf,
                    size_t len, char *err)
{
    parsed_state s;
    if (parse(buf, len, &s, err))
        return -1;
    if (strcmp(s.info.spec, m->spec) != 0)
        return core_errf(err, "checkpoint model '%s' differs from '%s'", s.info.spec, m->spec);
    if (s.info.in.c != m->in.c || s.info.in.h != m->in.h || s.info.in.w != m->in.w ||
        s.info.nclass != m->nclass || s.nparams != m->nparams)
        return core_errf(err, "checkpoint shape %dx%dx%d/%d classes differs from the model's",
                         s.info.in.c, s.info.in.h, s.info.in.w, s.info.nclass);
    if (o && (s.opt_kind != (uint32_t)o->cfg.kind || s.opt_size != core_optim_state_size(o)))
        return core_errf(err, "checkpoint optimizer '%s' differs from '%s'",
                         s.opt_kind == CORE_OPT_ADAM ? "adam" : "sgd",
                         core_opt_kind_name(o->cfg.kind));
    memcpy(m->params, buf + s.params_off, m->nparams * sizeof(float));
    if (o)
        core_optim_state_read(o, buf + s.opt_off);
    if (p)
        *p = s.progress;
    return 0;
}

int core_state_model(const uint8_t *buf, size_t len, core_model **out, char *err)
{
    parsed_state s;
    if (parse(buf, len, &s, err))
        return -1;
    /* Sizes first, so that a spec that does not match the parameters
     * stored cannot make us allocate gigabytes for a kilobyte checkpoint. */
    core_model *m;
    if (core_model_describe(s.info.spec, s.info.in, s.info.nclass, &m, err))
        return -1;
    size_t nparams = m->nparams;
    core_model_free(m);
    if (nparams != s.nparams)
        return core_errf(err, "checkpoint holds %llu parameters, its model '%s' has %zu",
                         (unsigned long long)s.nparams, s.info.spec, nparams);
    if (core_model_create(s.info.spec, s.info.in, s.info.nclass, 0, &m, err))
        return -1;
    if (core_state_load(m, NULL, NULL, buf, len, err)) {
        core_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
