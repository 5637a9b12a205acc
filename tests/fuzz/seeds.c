/*
 * seeds.c - writes the binary seeds of the fuzz corpus (make fuzz-seeds)
 * from real files: the first Fashion-MNIST test images (Debian's
 * dataset-fashion-mnist) as IDX files, plain and gzip'ed, as CIFAR-10
 * records and as PNG files; PNG files of the system; checkpoints saved by
 * core_trainer_save after training on those images. The text seeds
 * (requests, specs, configuration files, base64) are kept by hand.
 *
 *   seeds DIR     writes DIR/HARNESS/NAME (DIR: the corpus, HARNESS: fuzz_idx,
 *                 fuzz_cifar, fuzz_png or fuzz_state)
 *
 * A seed of several files joins them with FUZZ_SEP, as the harnesses
 * split them (fuzz.h).
 */
#include "fuzz.h"

#include "core/image.h"
#include "core/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *out_dir;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "seeds: %s: %s\n", what, msg);
    exit(1);
}

/* A growing byte buffer: a seed being put together. */
typedef struct {
    uint8_t *p;
    size_t n;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    if (!b->p)
        die("put", "out of memory");
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_sep(bytes *b)
{
    put(b, FUZZ_SEP, sizeof FUZZ_SEP - 1);
}

static void put_be32(bytes *b, uint32_t v)
{
    uint8_t w[4] = {v >> 24, v >> 16, v >> 8, v};
    put(b, w, 4);
}

/* Write b to DIR/KIND/NAME and empty it. */
static void save(bytes *b, const char *kind, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, kind);
    if (mkdir(path, 0755) && errno != EEXIST)
        die(path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, kind, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, b->n, f) != b->n || fclose(f))
        die(path, "cannot write");
    printf("%s (%zu bytes)\n", path, b->n);
    free(b->p);
    *b = (bytes){0};
}

/* gzip of p, as gzip(1) writes it. */
static void put_gzip(bytes *b, const uint8_t *p, size_t n)
{
    z_stream z = {0};
    uLong cap = compressBound(n) + 32;
    uint8_t *out = malloc(cap);
    if (!out || deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("gzip", "cannot start");
    z.next_in = (uint8_t *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("gzip", "cannot finish");
    put(b, out, z.total_out);
    deflateEnd(&z);
    free(out);
}

/* The IDX files of ds's first n images, the images' header claiming
 * count of them (n for a consistent pair). */
static void idx_files(const core_dataset *ds, int n, uint32_t count, bytes *images,
                      bytes *labels)
{
    put_be32(images, 0x803);
    put_be32(images, count);
    put_be32(images, (uint32_t)ds->shape.h);
    put_be32(images, (uint32_t)ds->shape.w);
    put(images, ds->pixels, (size_t)n * core_shape_size(ds->shape));
    put_be32(labels, 0x801);
    put_be32(labels, count);
    put(labels, ds->labels, (size_t)n);
}

static void idx_seeds(const core_dataset *ds)
{
    bytes seed = {0}, images = {0}, labels = {0};
    idx_files(ds, 3, 3, &images, &labels);
    put(&seed, images.p, images.n);
    put_sep(&seed);
    put(&seed, labels.p, labels.n);
    save(&seed, "fuzz_idx", "fashion-mnist-3");
    put_gzip(&seed, images.p, images.n);
    put_sep(&seed);
    put_gzip(&seed, labels.p, labels.n);
    save(&seed, "fuzz_idx", "fashion-mnist-3-gz");
    free(images.p);
    free(labels.p);
    /* The real files' heads (10 000 images) over one image: short. */
    images = labels = (bytes){0};
    idx_files(ds, 1, 10000, &images, &labels);
    put(&seed, images.p, images.n);
    put_sep(&seed);
    put(&seed, labels.p, labels.n);
    save(&seed, "fuzz_idx", "fashion-mnist-head");
    free(images.p);
    free(labels.p);
}

/* CIFAR-10 records (label, then 32 x 32 red, green, blue planes) of
 * Fashion-MNIST images, grey in all three planes, centred on black. */
static void cifar_records(const core_dataset *ds, int n, bytes *b)
{
    for (int i = 0; i < n; i++) {
        uint8_t rec[1 + 3 * 1024] = {ds->labels[i]};
        const uint8_t *img = ds->pixels + (size_t)i * core_shape_size(ds->shape);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < ds->shape.h; y++)
                memcpy(rec + 1 + ch * 1024 + (y + 2) * 32 + 2, img + y * ds->shape.w,
                       (size_t)ds->shape.w);
        put(b, rec, sizeof rec);
    }
}

static void cifar_seeds(const core_dataset *ds)
{
    bytes seed = {0};
    cifar_records(ds, 1, &seed);
    put_sep(&seed);
    for (int c = 0; c < ds->nclass; c++) {
        put(&seed, ds->class_names[c], strlen(ds->class_names[c]));
        put(&seed, "\n", 1);
    }
    save(&seed, "fuzz_cifar", "fashion-mnist-1-names");
    /* The same with two records, without the class names. */
    cifar_records(ds, 2, &seed);
    save(&seed, "fuzz_cifar", "fashion-mnist-2");
}

/* Example i of ds as a PNG file, as advctl images draws it. */
static void put_png(bytes *b, const core_dataset *ds, int i)
{
    char err[CORE_ERRLEN];
    core_canvas cv;
    size_t size = core_shape_size(ds->shape), len;
    float *x = malloc(size * sizeof *x);
    uint8_t *png;
    core_dataset_gather(ds, &i, 1, x, NULL);
    if (core_canvas_init(&cv, 1, 1, ds->shape.h, ds->shape.w, 1, err) < 0)
        die("canvas", err);
    core_canvas_image(&cv, 0, 0, x, ds->shape);
    if (core_png_encode(&cv, &png, &len, err) < 0)
        die("png", err);
    put(b, png, len);
    free(png);
    free(x);
    core_canvas_free(&cv);
}

static int put_file(bytes *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put(b, buf, n);
    return 0;
}

static void png_seeds(const core_dataset *ds)
{
    bytes seed = {0};
    for (int i = 0; i < 3; i++) {
        if (i)
            put_sep(&seed);
        put_png(&seed, ds, i);
    }
    save(&seed, "fuzz_png", "fashion-mnist-3");
    /* Other colour types, as Debian ships them: a 2-bit and an 8-bit
     * palette, 8-bit RGBA. */
    static const struct {
        const char *path, *name;
    } files[] = {
        {"/usr/share/gitweb/static/git-favicon.png", "palette2-16x16"},
        {"/usr/share/gitweb/static/git-logo.png", "palette8-72x27"},
        {"/usr/share/doc/python3/_static/file.png", "rgba-16x16"},
    };
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        if (put_file(&seed, files[k].path) < 0) {
            fprintf(stderr, "seeds: skipped %s: %s\n", files[k].path, strerror(errno));
            continue;
        }
        save(&seed, "fuzz_png", files[k].name);
    }
}

/* A checkpoint of a small model after one epoch on ds's first 64 images. */
static void state_seed(const core_dataset *ds, core_opt_kind opt, const char *name)
{
    char err[CORE_ERRLEN];
    core_dataset small = *ds;
    small.n = 64;
    core_train_cfg cfg = core_train_defaults();
    cfg.epochs = 1;
    cfg.batch = 16;
    cfg.method = CORE_METHOD_CLEAN;
    cfg.val_size = cfg.val_robust_size = 0;
    cfg.opt = core_opt_defaults(opt);
    core_trainer *t;
    bytes seed = {0};
    if (core_trainer_create(&cfg, "conv4k3s2 relu gap fc10", &small, &t, err) < 0 ||
        core_trainer_run(t, NULL, err) < 0 || core_trainer_save(t, &seed.p, &seed.n, err) < 0)
        die(name, err);
    core_trainer_free(t);
    save(&seed, "fuzz_state", name);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seeds DIR\n");
        return 2;
    }
    out_dir = argv[1];
    char err[CORE_ERRLEN];
    core_dataset ds;
    if (core_dataset_load(CORE_FORMAT_IDX, CORE_FASHION_MNIST_DIR, CORE_SPLIT_TEST, 64, &ds,
                          err) < 0)
        die(CORE_FASHION_MNIST_DIR, err);
    idx_seeds(&ds);
    cifar_seeds(&ds);
    png_seeds(&ds);
    state_seed(&ds, CORE_OPT_SGD, "sgd-conv4-fashion-mnist");
    state_seed(&ds, CORE_OPT_ADAM, "adam-conv4-fashion-mnist");
    core_dataset_free(&ds);
    return 0;
}
