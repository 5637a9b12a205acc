/*
 * data.c - loading image classification data sets (see data.h).
 *
 * Three sources share one in-memory layout (8-bit CHW pixels + label bytes):
 * IDX files read through zlib (which passes plain files through unchanged),
 * CIFAR-10 binary batches read with stdio, and PNG folders decoded with
 * libpng. Each loader starts by zeroing its output and frees it on any error,
 * so a caller only ever calls core_dataset_free on a loaded data set and a
 * failed load leaks nothing.
 *
 * Errors name the offending file first, so a message cut short by the
 * CORE_ERRLEN buffer still says where the problem is.
 */
#define _GNU_SOURCE /* strcasestr */

#include "data.h"
#include "rng.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PATH_LEN 4096

/* Largest single example accepted (bytes): well above any image data set in
 * use, and low enough that a corrupt header cannot ask for terabytes. */
#define MAX_EXAMPLE_BYTES (1u << 24)

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static const char *const cifar_names[10] = {
    "airplane", "automobile", "bird",  "cat",  "deer",
    "dog",      "frog",       "horse", "ship", "truck"};

/* ---------------------------------------------------------------- helpers */

/* dir + "/" + name into out (PATH_LEN bytes); refuses rather than truncates,
 * since a truncated path would open the wrong file. */
static int join_path(char *out, const char *dir, const char *name, char *err)
{
    int len = snprintf(out, PATH_LEN, "%s/%s", dir, name);
    if (len < 0 || len >= PATH_LEN)
        return core_errf(err, "path too long: '%s/%s'", dir, name);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Number of examples to keep out of n available. */
static size_t apply_limit(size_t n, int limit)
{
    return limit > 0 && (size_t)limit < n ? (size_t)limit : n;
}

static void set_names(core_dataset *ds, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        snprintf(ds->class_names[i], sizeof ds->class_names[i], "%.31s", names[i]);
}

static void set_numeric_names(core_dataset *ds, int n)
{
    for (int i = 0; i < n; i++)
        snprintf(ds->class_names[i], sizeof ds->class_names[i], "%d", i);
}

/* Allocate pixels and labels for n examples of one shape. */
static int ds_alloc(core_dataset *ds, size_t n, core_shape shape, char *err)
{
    if (n > INT_MAX)
        return core_errf(err, "too many examples (%zu)", n);
    ds->n = (int)n;
    ds->shape = shape;
    ds->pixels = core_alloc(n * core_shape_size(shape));
    ds->labels = core_alloc(n);
    if (!ds->pixels || !ds->labels)
        return core_errf(err, "out of memory for %zu examples of %dx%dx%d", n,
                         shape.c, shape.h, shape.w);
    return 0;
}

/* Labels must be below nclass; index is the record number within path. */
static int check_labels(const uint8_t *labels, size_t n, int nclass,
                        const char *path, char *err)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= nclass)
            return core_errf(err, "'%s': label %d of record %zu out of range (expected below %d)",
                             path, labels[i], i, nclass);
    return 0;
}

void core_dataset_free(core_dataset *ds)
{
    if (!ds)
        return;
    core_free(ds->pixels);
    core_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

/* -------------------------------------------------------------------- IDX */

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */

/* Read exactly len bytes. A short read (including a gzip stream that ends
 * early, which zlib reports as Z_BUF_ERROR) is "truncated"; other zlib
 * errors (corrupt deflate data) are reported as zlib words them. */
static int gz_read_exact(gzFile gz, const char *path, void *buf, size_t len,
                         const char *what, char *err)
{
    size_t got = 0;
    while (got < len) {
        size_t chunk = len - got < (1u << 30) ? len - got : (1u << 30);
        int r = gzread(gz, (char *)buf + got, (unsigned)chunk);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            if (zerr != Z_BUF_ERROR)
                return core_errf(err, "'%s': %s", path, msg);
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got < len)
        return core_errf(err, "'%s': truncated: expected %zu %s bytes, got %zu",
                         path, len, what, got);
    return 0;
}

/* Open an IDX file and read its header: the magic (type byte 0x08 and the
 * dimension count) and the dimensions, big-endian. Shared by images and
 * labels, which differ only in the expected magic. Returns NULL on error. */
static gzFile idx_open(const char *path, uint32_t magic, uint32_t *dims, char *err)
{
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        core_errf(err, "cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(gz, 1u << 17);
    int ndims = (int)(magic & 0xff);
    uint8_t head[4 * 4];
    if (gz_read_exact(gz, path, head, 4 * (size_t)(1 + ndims), "header", err) < 0)
        goto fail;
    uint32_t words[4];
    for (int i = 0; i <= ndims; i++)
        words[i] = (uint32_t)head[4 * i] << 24 | (uint32_t)head[4 * i + 1] << 16 |
                   (uint32_t)head[4 * i + 2] << 8 | head[4 * i + 3];
    if (words[0] >> 8 == magic >> 8 && words[0] != magic) {
        core_errf(err, "'%s': %u dimensions (expected %d)", path, words[0] & 0xff, ndims);
        goto fail;
    }
    if (words[0] != magic) {
        core_errf(err, "'%s': bad magic 0x%08x (expected 0x%08x)", path, words[0], magic);
        goto fail;
    }
    memcpy(dims, words + 1, (size_t)ndims * sizeof *dims);
    return gz;
fail:
    gzclose(gz);
    return NULL;
}

int core_idx_load(const char *images_path, const char *labels_path, int limit,
                  core_dataset *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint32_t idims[3], nlabels;
    gzFile gi = NULL, gl = NULL;
    int rc = -1;

    /* Both headers first, so a count mismatch shows before 47 MB are read. */
    if (!(gi = idx_open(images_path, IDX_IMAGES_MAGIC, idims, err)) ||
        !(gl = idx_open(labels_path, IDX_LABELS_MAGIC, &nlabels, err)))
        goto done;
    if (nlabels != idims[0]) {
        core_errf(err, "'%s': %u labels but '%s' holds %u images", labels_path,
                  nlabels, images_path, idims[0]);
        goto done;
    }
    if (idims[1] == 0 || idims[2] == 0 ||
        (uint64_t)idims[1] * idims[2] > MAX_EXAMPLE_BYTES) {
        core_errf(err, "'%s': bad image size %ux%u", images_path, idims[1], idims[2]);
        goto done;
    }
    core_shape shape = {1, (int)idims[1], (int)idims[2]};
    size_t n = apply_limit(idims[0], limit);
    if (ds_alloc(out, n, shape, err) < 0 ||
        gz_read_exact(gi, images_path, out->pixels, n * core_shape_size(shape), "pixel", err) < 0 ||
        gz_read_exact(gl, labels_path, out->labels, n, "label", err) < 0 ||
        check_labels(out->labels, n, 10, labels_path, err) < 0)
        goto done;
    out->nclass = 10;
    set_numeric_names(out, 10);
    rc = 0;
done:
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    if (rc < 0)
        core_dataset_free(out);
    return rc;
}

/* DIR/PREFIX-KIND-ubyte.gz if it exists, else the plain name; when neither
 * exists the .gz name is kept so the "cannot open" error shows it. */
static int idx_path(const char *dir, const char *prefix, const char *kind,
                    char *out, char *err)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%s-ubyte.gz", prefix, kind);
    if (join_path(out, dir, name, err) < 0)
        return -1;
    if (file_exists(out))
        return 0;
    char plain[PATH_LEN];
    name[strlen(name) - 3] = '\0';
    if (join_path(plain, dir, name, err) < 0)
        return -1;
    if (file_exists(plain))
        memcpy(out, plain, PATH_LEN);
    return 0;
}

/* The API carries no "this is Fashion-MNIST" flag, so the directory name
 * decides: one containing "fashion" (as CORE_FASHION_MNIST_DIR does) gets the
 * Fashion-MNIST class names, any other IDX directory gets "0".."9". */
static int idx_dataset_load(const char *dir, core_split split, int limit,
                            core_dataset *out, char *err)
{
    const char *prefix = split == CORE_SPLIT_TRAIN ? "train" : "t10k";
    char images[PATH_LEN], labels[PATH_LEN];
    if (idx_path(dir, prefix, "images-idx3", images, err) < 0 ||
        idx_path(dir, prefix, "labels-idx1", labels, err) < 0)
        return -1;
    if (core_idx_load(images, labels, limit, out, err) < 0)
        return -1;
    if (strcasestr(dir, "fashion"))
        set_names(out, fashion_names, 10);
    return 0;
}

/* --------------------------------------------------------------- CIFAR-10 */

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)

/* Path of batch file i (0-based) of a split. */
static int cifar_path(const char *dir, core_split split, int i, char *out, char *err)
{
    char name[32];
    if (split == CORE_SPLIT_TRAIN)
        snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
    else
        snprintf(name, sizeof name, "test_batch.bin");
    return join_path(out, dir, name, err);
}

/* Records in a batch file, from its size. */
static int cifar_count(const char *path, size_t *nrec, char *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return core_errf(err, "'%s': not a regular file", path);
    if (st.st_size % CIFAR_RECORD != 0)
        return core_errf(err, "'%s': size %lld is not a multiple of %d (1 label + %d pixel bytes)",
                         path, (long long)st.st_size, CIFAR_RECORD, CIFAR_PIXELS);
    *nrec = (size_t)st.st_size / CIFAR_RECORD;
    return 0;
}

/* Read the first nrec records of a batch file. A record is a label byte and
 * the R, G, B planes, which is already CHW: no reordering needed. */
static int cifar_read(const char *path, size_t nrec, uint8_t *pixels,
                      uint8_t *labels, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    size_t i = 0;
    for (; i < nrec; i++)
        if (fread(labels + i, 1, 1, f) != 1 ||
            fread(pixels + i * CIFAR_PIXELS, 1, CIFAR_PIXELS, f) != CIFAR_PIXELS)
            break;
    fclose(f);
    if (i < nrec)
        return core_errf(err, "'%s': truncated: expected %zu records, got %zu", path, nrec, i);
    return check_labels(labels, nrec, 10, path, err);
}

/* Class names from the optional batches.meta.txt (the name in the official
 * archive; batches_meta.txt is accepted too), one per line, blank lines
 * skipped. A missing or unreadable file keeps the default names. */
static void cifar_read_names(const char *dir, core_dataset *ds)
{
    static const char *const files[] = {"batches.meta.txt", "batches_meta.txt"};
    char path[PATH_LEN];
    FILE *f = NULL;
    for (int i = 0; i < 2 && !f; i++)
        if (join_path(path, dir, files[i], NULL) == 0)
            f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    int k = 0;
    while (k < ds->nclass && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        line[len] = '\0';
        if (len > 0)
            snprintf(ds->class_names[k++], sizeof ds->class_names[0], "%.31s", line);
    }
    fclose(f);
}

int core_cifar10_load(const char *dir, core_split split, int limit,
                      core_dataset *out, char *err)
{
    memset(out, 0, sizeof *out);
    int nfiles = split == CORE_SPLIT_TRAIN ? 5 : 1;
    size_t nrec[5], total = 0;
    char path[PATH_LEN];

    /* Sizes first (only of the files the limit needs), to allocate once. */
    int used = 0;
    while (used < nfiles && (limit <= 0 || total < (size_t)limit)) {
        if (cifar_path(dir, split, used, path, err) < 0 ||
            cifar_count(path, &nrec[used], err) < 0)
            return -1;
        total += nrec[used++];
    }
    size_t n = apply_limit(total, limit);
    core_shape shape = {3, 32, 32};
    if (ds_alloc(out, n, shape, err) < 0)
        goto fail;
    size_t at = 0;
    for (int i = 0; i < used && at < n; i++) {
        size_t take = nrec[i] < n - at ? nrec[i] : n - at;
        if (cifar_path(dir, split, i, path, err) < 0 ||
            cifar_read(path, take, out->pixels + at * CIFAR_PIXELS, out->labels + at, err) < 0)
            goto fail;
        at += take;
    }
    out->nclass = 10;
    set_names(out, cifar_names, 10);
    cifar_read_names(dir, out);
    return 0;
fail:
    core_dataset_free(out);
    return -1;
}

/* ------------------------------------------------------------- PNG folder */

typedef struct {
    char **v;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

static void strlist_free(strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_png_suffix(const char *name)
{
    size_t len = strlen(name);
    return len > 4 && strcasecmp(name + len - 4, ".png") == 0;
}

/* Names in dir, sorted by strcmp so labels and order never depend on the
 * file system: sub-folders when want_dirs, else *.png files. Hidden entries
 * are skipped. stat() rather than d_type, which some file systems leave
 * unknown (and which does not follow symbolic links). */
static int list_dir(const char *dir, int want_dirs, strlist *out, char *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return core_errf(err, "cannot open '%s': %s", dir, strerror(errno));
    struct dirent *e;
    char path[PATH_LEN];
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (!want_dirs && !has_png_suffix(e->d_name)))
            continue;
        struct stat st;
        if ((rc = join_path(path, dir, e->d_name, err)) < 0 || stat(path, &st) < 0)
            continue;
        if (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode))
            if ((rc = strlist_push(out, e->d_name)) < 0)
                core_errf(err, "out of memory listing '%s'", dir);
    }
    closedir(d);
    if (rc < 0)
        return -1;
    if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return 0;
}

/* Paths of the images in class order (files sorted within a class), at most
 * limit of them; class_end[c] is one past the last image of class c. */
static int list_images(const char *dir, const strlist *classes, int limit,
                       strlist *files, int *class_end, char *err)
{
    char cdir[PATH_LEN], path[PATH_LEN];
    for (int c = 0; c < classes->n; c++) {
        strlist names = {0};
        if (join_path(cdir, dir, classes->v[c], err) < 0 ||
            list_dir(cdir, 0, &names, err) < 0) {
            strlist_free(&names);
            return -1;
        }
        int rc = 0;
        for (int i = 0; rc == 0 && i < names.n && (limit <= 0 || files->n < limit); i++) {
            if ((rc = join_path(path, cdir, names.v[i], err)) == 0 &&
                (rc = strlist_push(files, path)) < 0)
                core_errf(err, "out of memory listing '%s'", cdir);
        }
        strlist_free(&names);
        if (rc < 0)
            return -1;
        class_end[c] = files->n;
    }
    return 0;
}

/* A decoded PNG: 8-bit, 1 or 3 channels, rows of interleaved channels. */
typedef struct {
    int w, h, c;
    uint8_t *hwc;
} png_pixels;

/* libpng reports errors by calling this and expects it not to return: keep
 * the message for our own error and unwind to the setjmp in png_decode. */
#define PNG_MSG_LEN 128

static void png_on_error(png_structp png, png_const_charp msg)
{
    char *buf = png_get_error_ptr(png);
    snprintf(buf, PNG_MSG_LEN, "%s", msg);
    png_longjmp(png, 1);
}

/* Library code never prints: warnings (odd chunks, CRC in ancillary data)
 * do not stop decoding, so they are dropped. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* Ask libpng for 8-bit gray or RGB whatever the file holds. */
static void png_normalise(png_structp png, png_infop info)
{
    int type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_bit_depth(png, info) == 16)
        png_set_strip_16(png);
    /* Alpha channels and tRNS transparency both go: the models see colour. */
    if ((type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

static int png_decode(const char *path, png_pixels *img, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, sizeof sig, f) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig)) {
        fclose(f);
        return core_errf(err, "'%s': not a PNG file", path);
    }
    char msg[PNG_MSG_LEN] = "";
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg,
                                             png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(f);
        return core_errf(err, "out of memory decoding '%s'", path);
    }
    /* Assigned after setjmp and freed after a longjmp: must be volatile. */
    uint8_t *volatile hwc = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(hwc);
        free(rows);
        fclose(f);
        return core_errf(err, "'%s': cannot decode PNG: %s", path, msg);
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, sizeof sig);
    png_set_user_limits(png, 1u << 14, 1u << 14);
    png_read_info(png, info);
    png_normalise(png, info);
    size_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int c = png_get_channels(png, info);
    if ((c != 1 && c != 3) || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != w * (size_t)c)
        png_error(png, "unsupported pixel format");
    if (w * h * (size_t)c > MAX_EXAMPLE_BYTES)
        png_error(png, "image too large");
    hwc = malloc(h * w * (size_t)c);
    rows = malloc(h * sizeof *rows);
    if (!hwc || !rows)
        png_error(png, "out of memory");
    for (size_t y = 0; y < h; y++)
        rows[y] = hwc + y * w * (size_t)c;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* up to IEND, so a cut-off file is caught */
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    fclose(f);
    *img = (png_pixels){(int)w, (int)h, c, hwc};
    return 0;
}

static void hwc_to_chw(const png_pixels *img, uint8_t *chw)
{
    size_t plane = (size_t)img->w * (size_t)img->h;
    for (size_t p = 0; p < plane; p++)
        for (int k = 0; k < img->c; k++)
            chw[(size_t)k * plane + p] = img->hwc[p * (size_t)img->c + (size_t)k];
}

static const char *png_kind(int c)
{
    return c == 1 ? "gray" : "RGB";
}

/* Decode every listed image into out; the first one fixes the shape. */
static int decode_images(const strlist *files, const int *class_end,
                         core_dataset *out, char *err)
{
    core_shape shape = {0, 0, 0};
    int label = 0;
    for (int i = 0; i < files->n; i++) {
        png_pixels img;
        if (png_decode(files->v[i], &img, err) < 0)
            return -1;
        core_shape s = {img.c, img.h, img.w};
        if (i == 0 && ds_alloc(out, (size_t)files->n, s, err) < 0) {
            free(img.hwc);
            return -1;
        }
        if (i == 0)
            shape = s;
        if (s.c != shape.c || s.h != shape.h || s.w != shape.w) {
            free(img.hwc);
            return core_errf(err, "'%s': image is %dx%d %s but '%s' is %dx%d %s",
                             files->v[i], s.w, s.h, png_kind(s.c), files->v[0],
                             shape.w, shape.h, png_kind(shape.c));
        }
        hwc_to_chw(&img, out->pixels + (size_t)i * core_shape_size(shape));
        free(img.hwc);
        while (i >= class_end[label])
            label++;
        out->labels[i] = (uint8_t)label;
    }
    return 0;
}

int core_pngdir_load(const char *dir, int limit, core_dataset *out, char *err)
{
    memset(out, 0, sizeof *out);
    strlist classes = {0}, files = {0};
    int class_end[CORE_MAX_CLASSES];
    int rc = -1;

    if (list_dir(dir, 1, &classes, err) < 0)
        goto done;
    if (classes.n == 0 || classes.n > CORE_MAX_CLASSES) {
        core_errf(err, "'%s': %d class sub-folders (expected 1 to %d)", dir,
                  classes.n, CORE_MAX_CLASSES);
        goto done;
    }
    if (list_images(dir, &classes, limit, &files, class_end, err) < 0)
        goto done;
    if (files.n == 0) {
        core_errf(err, "'%s': no PNG images in the class sub-folders", dir);
        goto done;
    }
    if (decode_images(&files, class_end, out, err) < 0)
        goto done;
    out->nclass = classes.n;
    for (int c = 0; c < classes.n; c++)
        snprintf(out->class_names[c], sizeof out->class_names[c], "%.31s", classes.v[c]);
    rc = 0;
done:
    strlist_free(&classes);
    strlist_free(&files);
    if (rc < 0)
        core_dataset_free(out);
    return rc;
}

/* DIR/train or DIR/test when DIR has a train/ folder, else DIR itself for
 * both splits. */
static int pngdir_dataset_load(const char *dir, core_split split, int limit,
                               core_dataset *out, char *err)
{
    char train[PATH_LEN], sub[PATH_LEN];
    if (join_path(train, dir, "train", err) < 0)
        return -1;
    if (!is_dir(train))
        return core_pngdir_load(dir, limit, out, err);
    if (join_path(sub, dir, split == CORE_SPLIT_TRAIN ? "train" : "test", err) < 0)
        return -1;
    return core_pngdir_load(sub, limit, out, err);
}

/* ------------------------------------------------------------ entry points */

/* ---------------------------------------------------------------- probe */

static int probe_file(const char *path, char *err)
{
    struct stat st;
    if (stat(path, &st) || access(path, R_OK))
        return core_errf(err, "cannot read '%s': %s", path, strerror(errno));
    return S_ISREG(st.st_mode) ? 0 : core_errf(err, "'%s' is not a file", path);
}

static int probe_dir(const char *dir, char *err)
{
    struct stat st;
    if (dir[0] != '/')
        return core_errf(err, "directory '%s' is not an absolute path", dir);
    int there = stat(dir, &st) == 0;
    if (there && !S_ISDIR(st.st_mode))
        return core_errf(err, "'%s' is not a directory", dir);
    if (!there || access(dir, R_OK | X_OK))
        return core_errf(err, "cannot read '%s': %s", dir, strerror(errno));
    return 0;
}

int core_data_probe(core_data_format fmt, const char *dir, char *err)
{
    static const char *const idx[][2] = {{"train", "images-idx3"}, {"train", "labels-idx1"},
                                         {"t10k", "images-idx3"}, {"t10k", "labels-idx1"}};
    char path[PATH_LEN];
    if (probe_dir(dir, err))
        return -1;
    for (int i = 0; fmt == CORE_FORMAT_IDX && i < 4; i++)
        if (idx_path(dir, idx[i][0], idx[i][1], path, err) || probe_file(path, err))
            return -1;
    for (int i = 0; fmt == CORE_FORMAT_CIFAR10 && i < 6; i++)
        if (cifar_path(dir, i < 5 ? CORE_SPLIT_TRAIN : CORE_SPLIT_TEST, i, path, err) ||
            probe_file(path, err))
            return -1;
    return 0;
}

int core_data_resolve(const char *name, core_data_format *fmt, char *dir, char *err)
{
    static const struct {
        const char *prefix;
        core_data_format fmt;
    } kinds[] = {
        {"mnist:", CORE_FORMAT_IDX},
        {"fashion-mnist:", CORE_FORMAT_IDX},
        {"cifar10:", CORE_FORMAT_CIFAR10},
        {"png:", CORE_FORMAT_PNGDIR},
    };
    if (strcmp(name, "fashion-mnist") == 0) {
        *fmt = CORE_FORMAT_IDX;
        snprintf(dir, PATH_LEN, "%s", CORE_FASHION_MNIST_DIR);
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t len = strlen(kinds[i].prefix);
        if (strncmp(name, kinds[i].prefix, len) != 0)
            continue;
        const char *d = name + len;
        if (*d == '\0')
            return core_errf(err, "no directory in data set '%s'", name);
        if (strlen(d) >= PATH_LEN)
            return core_errf(err, "directory too long in data set '%.64s...'", name);
        *fmt = kinds[i].fmt;
        memcpy(dir, d, strlen(d) + 1);
        return 0;
    }
    return core_errf(err, "unknown data set '%s' (expected fashion-mnist, mnist:DIR, "
                          "fashion-mnist:DIR, cifar10:DIR or png:DIR)", name);
}

int core_dataset_load(core_data_format fmt, const char *dir, core_split split,
                      int limit, core_dataset *out, char *err)
{
    switch (fmt) {
    case CORE_FORMAT_IDX:
        return idx_dataset_load(dir, split, limit, out, err);
    case CORE_FORMAT_CIFAR10:
        return core_cifar10_load(dir, split, limit, out, err);
    case CORE_FORMAT_PNGDIR:
        return pngdir_dataset_load(dir, split, limit, out, err);
    }
    memset(out, 0, sizeof *out);
    return core_errf(err, "unknown data format %d", (int)fmt);
}

/* --------------------------------------------------------- batches, split */

void core_dataset_gather(const core_dataset *ds, const int *idx, int n,
                         float *x, int *y)
{
    size_t size = core_shape_size(ds->shape);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const uint8_t *src = ds->pixels + (size_t)idx[i] * size;
        float *dst = x + (size_t)i * size;
        for (size_t j = 0; j < size; j++)
            dst[j] = src[j] / 255.0f;
        if (y)
            y[i] = ds->labels[idx[i]];
    }
}

int core_data_split_make(int n, int val_n, uint64_t seed, core_data_split *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (n <= 0)
        return core_errf(err, "cannot split %d examples", n);
    if (val_n < 0 || val_n >= n)
        return core_errf(err, "validation size %d out of range (expected 0 to %d)",
                         val_n, n - 1);
    int *perm = core_alloc((size_t)n * sizeof *perm);
    uint8_t *is_val = core_alloc((size_t)n);
    out->train = core_alloc((size_t)(n - val_n) * sizeof *out->train);
    out->val = core_alloc((size_t)val_n * sizeof *out->val);
    if (!perm || !is_val || !out->train || !out->val) {
        core_free(perm);
        core_free(is_val);
        core_data_split_free(out);
        return core_errf(err, "out of memory splitting %d examples", n);
    }
    for (int i = 0; i < n; i++)
        perm[i] = i;
    core_rng_shuffle(seed, CORE_STREAM_SPLIT, perm, n);
    for (int i = n - val_n; i < n; i++)
        is_val[perm[i]] = 1;
    /* Sweeping in index order leaves both parts sorted, so the training
     * order does not depend on the split permutation. */
    for (int i = 0; i < n; i++) {
        if (is_val[i])
            out->val[out->nval++] = i;
        else
            out->train[out->ntrain++] = i;
    }
    core_free(perm);
    core_free(is_val);
    return 0;
}

void core_data_split_free(core_data_split *s)
{
    if (!s)
        return;
    core_free(s->train);
    core_free(s->val);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------- loose inputs */

static int png_file_load(const char *path, core_dataset *out, char *err)
{
    png_pixels img;
    if (png_decode(path, &img, err) < 0)
        return -1;
    int rc = ds_alloc(out, 1, (core_shape){img.c, img.h, img.w}, err);
    if (rc == 0)
        hwc_to_chw(&img, out->pixels);
    free(img.hwc);
    return rc;
}

static int idx_images_load(gzFile gz, const char *path, const uint32_t *dims, int limit,
                           core_dataset *out, char *err)
{
    if (dims[1] == 0 || dims[2] == 0 || (uint64_t)dims[1] * dims[2] > MAX_EXAMPLE_BYTES)
        return core_errf(err, "'%s': bad image size %ux%u", path, dims[1], dims[2]);
    core_shape shape = {1, (int)dims[1], (int)dims[2]};
    size_t n = apply_limit(dims[0], limit);
    return ds_alloc(out, n, shape, err) < 0 ||
                   gz_read_exact(gz, path, out->pixels, n * core_shape_size(shape), "pixel",
                                 err) < 0
               ? -1
               : 0;
}

static int cifar_file_load(const char *path, int limit, core_dataset *out, char *err)
{
    size_t nrec;
    if (cifar_count(path, &nrec, err) < 0)
        return -1;
    nrec = apply_limit(nrec, limit);
    if (ds_alloc(out, nrec, (core_shape){3, 32, 32}, err) < 0 ||
        cifar_read(path, nrec, out->pixels, out->labels, err) < 0)
        return -1;
    out->nclass = 10;
    set_names(out, cifar_names, 10);
    return 0;
}

int core_inputs_file_load(const char *path, int limit, core_dataset *out, char *err)
{
    memset(out, 0, sizeof *out);
    uint8_t sig[8];
    FILE *f = fopen(path, "rb");
    if (!f)
        return core_errf(err, "cannot open '%s': %s", path, strerror(errno));
    size_t got = fread(sig, 1, sizeof sig, f);
    fclose(f);
    int rc;
    if (got == sizeof sig && png_sig_cmp(sig, 0, sizeof sig) == 0) {
        rc = png_file_load(path, out, err);
    } else {
        uint32_t dims[3];
        char why[CORE_ERRLEN];
        gzFile gz = idx_open(path, IDX_IMAGES_MAGIC, dims, why);
        if (gz) {
            rc = idx_images_load(gz, path, dims, limit, out, err);
            gzclose(gz);
        } else if ((rc = cifar_file_load(path, limit, out, err)) < 0) {
            /* Neither: IDX's complaint for an IDX-like header, else what it is not. */
            if (got >= 3 && sig[0] == 0 && sig[1] == 0 && sig[2] == 8)
                snprintf(err, CORE_ERRLEN, "%s", why);
            else
                core_errf(err, "'%s': not a PNG image, an IDX images file or a CIFAR-10 batch",
                          path);
        }
    }
    if (rc < 0)
        core_dataset_free(out);
    return rc;
}

int core_png_folder_list(const char *dir, char ***names, int *n, char *err)
{
    strlist l = {0};
    if (list_dir(dir, 0, &l, err) < 0) {
        strlist_free(&l);
        return -1;
    }
    *names = l.v;
    *n = l.n;
    return 0;
}
