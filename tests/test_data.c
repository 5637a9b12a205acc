/*
 * test_data.c - data set loaders, gathering and the validation split.
 *
 * Every test writes its own tiny files (IDX plain and gzip, CIFAR batches,
 * PNG folders) into a fresh temporary directory, so the expected pixels and
 * labels are known exactly. Error tests check that the message names the
 * offending file. One test reads the real Fashion-MNIST when installed.
 */
#define _GNU_SOURCE /* nftw */

#include "testutil.h"

#include "data.h"

#include <ftw.h>
#include <png.h>
#include <sys/stat.h>
#include <zlib.h>

/* Remove a test's temporary directory once it passed (a failing test leaves
 * its files behind for a look). */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    ck_assert_int_eq(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* ---------------------------------------------------------------- writers */

/* Test paths: buffers of TPATH bytes, dir/name, never silently cut. */
#define TPATH 1024

static void tpath(char *out, const char *dir, const char *name)
{
    ck_assert_int_lt(snprintf(out, TPATH, "%s/%s", dir, name), TPATH);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    ck_assert_ptr_nonnull(gz);
    ck_assert_int_eq(gzwrite(gz, data, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(gz), Z_OK);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* An IDX images file: header for n images of rows x cols, then the first
 * npix pixel bytes of the pattern (i * 7 + 3) & 255 (npix < full = truncated). */
static void write_idx_images(const char *path, int gz, uint32_t magic, uint32_t n,
                             uint32_t rows, uint32_t cols, size_t npix)
{
    size_t len = 16 + npix;
    uint8_t *buf = malloc(len);
    put_be32(buf, magic);
    put_be32(buf + 4, n);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (size_t i = 0; i < npix; i++)
        buf[16 + i] = (uint8_t)((i * 7 + 3) & 255);
    (gz ? write_gz : write_file)(path, buf, len);
    free(buf);
}

static void write_idx_labels(const char *path, int gz, const uint8_t *labels, uint32_t n)
{
    uint8_t *buf = malloc(8 + n);
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, n);
    memcpy(buf + 8, labels, n);
    (gz ? write_gz : write_file)(path, buf, 8 + n);
    free(buf);
}

static const uint8_t idx_labels[3] = {0, 5, 9};

/* A valid 3-image 2x3 pair named DIR/PREFIX-{images-idx3,labels-idx1}-ubyte[.gz]. */
static void write_idx_pair(const char *dir, const char *prefix, int gz,
                           char *images, char *labels)
{
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    tpath(images, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    tpath(labels, dir, name);
    write_idx_images(images, gz, 0x00000803, 3, 2, 3, 18);
    write_idx_labels(labels, gz, idx_labels, 3);
}

/* An 8-bit PNG of w x h with the given libpng colour type; data holds the
 * rows of interleaved channels (palette indices for a palette image). */
static void write_png(const char *path, int w, int h, int type, const uint8_t *data)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert_ptr_nonnull(info);
    if (setjmp(png_jmpbuf(png)))
        ck_abort_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[3] = {{0, 0, 0}, {255, 0, 0}, {10, 20, 30}};
        png_byte alpha[1] = {0};
        png_set_PLTE(png, info, pal, 3);
        png_set_tRNS(png, info, alpha, 1, NULL); /* transparency, to be dropped */
    }
    png_write_info(png, info);
    int c = png_get_channels(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, data + (size_t)y * (size_t)(w * c));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    ck_assert_int_eq(fclose(f), 0);
}

/* mkdir DIR/SUB; out receives the path. */
static void make_dir(const char *dir, const char *sub, char *out)
{
    tpath(out, dir, sub);
    ck_assert_int_eq(mkdir(out, 0755), 0);
}

#define ck_assert_err_names(err, what) \
    ck_assert_msg(strstr((err), (what)) != NULL, "error '%s' does not name '%s'", (err), (what))

/* -------------------------------------------------------------------- IDX */

static void check_idx_pair(const core_dataset *ds, int n)
{
    ck_assert_int_eq(ds->n, n);
    ck_assert_int_eq(ds->shape.c, 1);
    ck_assert_int_eq(ds->shape.h, 2);
    ck_assert_int_eq(ds->shape.w, 3);
    ck_assert_int_eq(ds->nclass, 10);
    for (int i = 0; i < n * 6; i++)
        ck_assert_uint_eq(ds->pixels[i], (uint8_t)((i * 7 + 3) & 255));
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(ds->labels[i], idx_labels[i]);
}

START_TEST(idx_gzip_and_plain)
{
    for (int gz = 0; gz <= 1; gz++) {
        char dir[256], images[TPATH], labels[TPATH], err[CORE_ERRLEN] = "";
        adv_test_tmpdir(dir, sizeof dir);
        write_idx_pair(dir, "train", gz, images, labels);
        core_dataset ds;
        ck_assert_int_eq(core_idx_load(images, labels, 0, &ds, err), 0);
        check_idx_pair(&ds, 3);
        ck_assert_str_eq(ds.class_names[0], "0");
        ck_assert_str_eq(ds.class_names[9], "9");
        core_dataset_free(&ds);
        ck_assert_ptr_null(ds.pixels);
        rm_tree(dir);
    }
}
END_TEST

START_TEST(idx_limit)
{
    char dir[256], images[TPATH], labels[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    core_dataset ds;
    ck_assert_int_eq(core_idx_load(images, labels, 2, &ds, err), 0);
    check_idx_pair(&ds, 2);
    core_dataset_free(&ds);
    ck_assert_int_eq(core_idx_load(images, labels, 99, &ds, err), 0);
    check_idx_pair(&ds, 3);
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

/* Load and expect failure with a message naming `names` and containing `what`. */
static void expect_idx_error(const char *images, const char *labels, const char *names,
                             const char *what)
{
    char err[CORE_ERRLEN] = "";
    core_dataset ds;
    ck_assert_int_eq(core_idx_load(images, labels, 0, &ds, err), -1);
    ck_assert_err_names(err, names);
    ck_assert_err_names(err, what);
    ck_assert_ptr_null(ds.pixels);
    ck_assert_ptr_null(ds.labels);
}

START_TEST(idx_truncated)
{
    for (int gz = 0; gz <= 1; gz++) {
        char dir[256], images[TPATH], labels[TPATH];
        adv_test_tmpdir(dir, sizeof dir);
        write_idx_pair(dir, "train", gz, images, labels);
        write_idx_images(images, gz, 0x00000803, 3, 2, 3, 10);
        expect_idx_error(images, labels, images, "truncated: expected 18 pixel bytes, got 10");
        rm_tree(dir);
    }
}
END_TEST

START_TEST(idx_truncated_gzip_stream)
{
    /* A gzip file cut in the middle of its deflate stream. */
    char dir[256], images[TPATH], labels[TPATH];
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    write_idx_images(images, 1, 0x00000803, 3, 100, 100, 30000);
    FILE *f = fopen(images, "rb");
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_file(images, buf, len / 2);
    expect_idx_error(images, labels, images, "'");
    rm_tree(dir);
}
END_TEST

START_TEST(idx_bad_magic)
{
    char dir[256], images[TPATH], labels[TPATH];
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    write_idx_images(images, 1, 0x12345678, 3, 2, 3, 18);
    expect_idx_error(images, labels, images, "bad magic 0x12345678");
    /* Images where labels belong: right type, wrong dimension count. */
    expect_idx_error(images, images, images, "magic");
    write_idx_images(images, 1, 0x00000802, 3, 2, 3, 18);
    expect_idx_error(images, labels, images, "2 dimensions (expected 3)");
    rm_tree(dir);
}
END_TEST

START_TEST(idx_count_mismatch)
{
    char dir[256], images[TPATH], labels[TPATH];
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    write_idx_labels(labels, 1, idx_labels, 2);
    expect_idx_error(images, labels, labels, "2 labels");
    rm_tree(dir);
}
END_TEST

START_TEST(idx_label_out_of_range)
{
    char dir[256], images[TPATH], labels[TPATH];
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 0, images, labels);
    const uint8_t bad[3] = {1, 10, 2};
    write_idx_labels(labels, 0, bad, 3);
    expect_idx_error(images, labels, labels, "label 10 of record 1");
    rm_tree(dir);
}
END_TEST

START_TEST(idx_missing_file)
{
    char dir[256], images[TPATH], labels[TPATH];
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    unlink(labels);
    expect_idx_error(images, labels, labels, "cannot open");
    char nowhere[TPATH];
    tpath(nowhere, dir, "nowhere");
    expect_idx_error(nowhere, labels, nowhere, "No such file");
    rm_tree(dir);
}
END_TEST

START_TEST(idx_dataset_load_splits)
{
    /* train as plain files, test as gzip: each name is found; a directory
     * named like Fashion-MNIST gets its class names. */
    char base[256], dir[TPATH], images[TPATH], labels[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(base, sizeof base);
    make_dir(base, "my-fashion-copy", dir);
    write_idx_pair(dir, "train", 0, images, labels);
    write_idx_pair(dir, "t10k", 1, images, labels);
    core_dataset ds;
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_IDX, dir, CORE_SPLIT_TRAIN, 0, &ds, err), 0);
    check_idx_pair(&ds, 3);
    ck_assert_str_eq(ds.class_names[0], "T-shirt/top");
    ck_assert_str_eq(ds.class_names[9], "Ankle boot");
    core_dataset_free(&ds);
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_IDX, dir, CORE_SPLIT_TEST, 1, &ds, err), 0);
    check_idx_pair(&ds, 1);
    core_dataset_free(&ds);

    /* Elsewhere: digits; a missing split names the .gz file it looked for. */
    write_idx_pair(base, "train", 1, images, labels);
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_IDX, base, CORE_SPLIT_TRAIN, 0, &ds, err), 0);
    ck_assert_str_eq(ds.class_names[3], "3");
    core_dataset_free(&ds);
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_IDX, base, CORE_SPLIT_TEST, 0, &ds, err), -1);
    ck_assert_err_names(err, "t10k-images-idx3-ubyte.gz");
    rm_tree(base);
}
END_TEST

START_TEST(resolve_names)
{
    char dir[4096], err[CORE_ERRLEN] = "";
    core_data_format fmt;
    ck_assert_int_eq(core_data_resolve("fashion-mnist", &fmt, dir, err), 0);
    ck_assert_int_eq(fmt, CORE_FORMAT_IDX);
    ck_assert_str_eq(dir, CORE_FASHION_MNIST_DIR);
    ck_assert_int_eq(core_data_resolve("mnist:/data/m", &fmt, dir, err), 0);
    ck_assert_int_eq(fmt, CORE_FORMAT_IDX);
    ck_assert_str_eq(dir, "/data/m");
    ck_assert_int_eq(core_data_resolve("fashion-mnist:rel/f", &fmt, dir, err), 0);
    ck_assert_int_eq(fmt, CORE_FORMAT_IDX);
    ck_assert_str_eq(dir, "rel/f");
    ck_assert_int_eq(core_data_resolve("cifar10:/c", &fmt, dir, err), 0);
    ck_assert_int_eq(fmt, CORE_FORMAT_CIFAR10);
    ck_assert_str_eq(dir, "/c");
    ck_assert_int_eq(core_data_resolve("png:/p/q", &fmt, dir, err), 0);
    ck_assert_int_eq(fmt, CORE_FORMAT_PNGDIR);
    ck_assert_str_eq(dir, "/p/q");
    ck_assert_int_eq(core_data_resolve("foo", &fmt, dir, err), -1);
    ck_assert_str_eq(err, "unknown data set 'foo' (expected fashion-mnist, mnist:DIR, "
                          "fashion-mnist:DIR, cifar10:DIR or png:DIR)");
    ck_assert_int_eq(core_data_resolve("cifar10:", &fmt, dir, err), -1);
    ck_assert_err_names(err, "'cifar10:'");
}
END_TEST

/* --------------------------------------------------------------- CIFAR-10 */

/* Record r of a batch: label (r + base) % 10, plane k filled with
 * 10*k + base + r, except a marker at pixel 5 of each plane. */
static void cifar_record(uint8_t *rec, int base, int r)
{
    rec[0] = (uint8_t)((base + r) % 10);
    for (int k = 0; k < 3; k++) {
        memset(rec + 1 + k * 1024, 10 * k + base + r, 1024);
        rec[1 + k * 1024 + 5] = (uint8_t)(200 + k);
    }
}

static void write_cifar_batch(const char *dir, const char *name, int base, int nrec)
{
    char path[TPATH];
    tpath(path, dir, name);
    uint8_t *buf = malloc((size_t)nrec * 3073);
    for (int r = 0; r < nrec; r++)
        cifar_record(buf + (size_t)r * 3073, base, r);
    write_file(path, buf, (size_t)nrec * 3073);
    free(buf);
}

/* Five train batches of 2 records (base 10*b) and a test batch of 3. */
static void write_cifar(const char *dir)
{
    for (int b = 1; b <= 5; b++) {
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", b);
        write_cifar_batch(dir, name, 10 * b, 2);
    }
    write_cifar_batch(dir, "test_batch.bin", 100, 3);
}

static void check_cifar_example(const core_dataset *ds, int i, int base, int r)
{
    const uint8_t *px = ds->pixels + (size_t)i * 3072;
    ck_assert_uint_eq(ds->labels[i], (base + r) % 10);
    for (int k = 0; k < 3; k++) {
        ck_assert_uint_eq(px[k * 1024], 10 * k + base + r);
        ck_assert_uint_eq(px[k * 1024 + 1023], 10 * k + base + r);
        ck_assert_uint_eq(px[k * 1024 + 5], 200 + k);
    }
}

START_TEST(cifar_load)
{
    char dir[256], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_cifar(dir);
    core_dataset ds;
    ck_assert_int_eq(core_cifar10_load(dir, CORE_SPLIT_TRAIN, 0, &ds, err), 0);
    ck_assert_int_eq(ds.n, 10);
    ck_assert_int_eq(ds.shape.c, 3);
    ck_assert_int_eq(ds.shape.h, 32);
    ck_assert_int_eq(ds.shape.w, 32);
    ck_assert_int_eq(ds.nclass, 10);
    ck_assert_str_eq(ds.class_names[0], "airplane");
    ck_assert_str_eq(ds.class_names[9], "truck");
    for (int b = 1; b <= 5; b++)
        for (int r = 0; r < 2; r++)
            check_cifar_example(&ds, 2 * (b - 1) + r, 10 * b, r);
    core_dataset_free(&ds);

    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_CIFAR10, dir, CORE_SPLIT_TEST, 0, &ds, err), 0);
    ck_assert_int_eq(ds.n, 3);
    for (int r = 0; r < 3; r++)
        check_cifar_example(&ds, r, 100, r);
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

START_TEST(cifar_limit_and_names)
{
    char dir[256], path[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_cifar(dir);
    /* With a limit only the batches needed are looked at. */
    tpath(path, dir, "data_batch_5.bin");
    unlink(path);
    tpath(path, dir, "batches.meta.txt");
    const char *meta = "zero\none\r\n\ntwo\nthis-name-is-far-longer-than-thirty-one-chars\n";
    write_file(path, meta, strlen(meta));
    core_dataset ds;
    ck_assert_int_eq(core_cifar10_load(dir, CORE_SPLIT_TRAIN, 3, &ds, err), 0);
    ck_assert_int_eq(ds.n, 3);
    check_cifar_example(&ds, 0, 10, 0);
    check_cifar_example(&ds, 1, 10, 1);
    check_cifar_example(&ds, 2, 20, 0);
    ck_assert_str_eq(ds.class_names[0], "zero");
    ck_assert_str_eq(ds.class_names[1], "one");
    ck_assert_str_eq(ds.class_names[2], "two");
    ck_assert_str_eq(ds.class_names[3], "this-name-is-far-longer-than-th");
    ck_assert_str_eq(ds.class_names[4], "deer");
    core_dataset_free(&ds);

    ck_assert_int_eq(core_cifar10_load(dir, CORE_SPLIT_TRAIN, 0, &ds, err), -1);
    ck_assert_err_names(err, "data_batch_5.bin");
    ck_assert_ptr_null(ds.pixels);
    rm_tree(dir);
}
END_TEST

START_TEST(cifar_bad_files)
{
    char dir[256], path[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_cifar(dir);
    tpath(path, dir, "data_batch_3.bin");
    uint8_t junk[2 * 3073] = {0};
    write_file(path, junk, 3073 + 5);
    core_dataset ds;
    ck_assert_int_eq(core_cifar10_load(dir, CORE_SPLIT_TRAIN, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    ck_assert_err_names(err, "not a multiple of 3073");

    tpath(path, dir, "test_batch.bin");
    junk[3073] = 10; /* second record's label */
    write_file(path, junk, sizeof junk);
    ck_assert_int_eq(core_cifar10_load(dir, CORE_SPLIT_TEST, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    ck_assert_err_names(err, "label 10 of record 1");
    ck_assert_ptr_null(ds.pixels);
    rm_tree(dir);
}
END_TEST

/* ------------------------------------------------------------- PNG folder */

/* Gray 4x3 image whose pixels are v + index. */
static void write_gray(const char *dir, const char *name, int v)
{
    uint8_t px[12];
    for (int i = 0; i < 12; i++)
        px[i] = (uint8_t)(v + i);
    char path[TPATH];
    tpath(path, dir, name);
    write_png(path, 4, 3, PNG_COLOR_TYPE_GRAY, px);
}

static void check_gray(const core_dataset *ds, int i, int label, int v)
{
    ck_assert_uint_eq(ds->labels[i], label);
    for (int j = 0; j < 12; j++)
        ck_assert_uint_eq(ds->pixels[i * 12 + j], v + j);
}

/* Classes b_cls (files 2, 1) and a_cls (files z, a, and a gray+alpha one). */
static void write_gray_set(const char *dir)
{
    char a[TPATH], b[TPATH], path[TPATH];
    make_dir(dir, "b_cls", b);
    make_dir(dir, "a_cls", a);
    write_gray(b, "2.png", 40);
    write_gray(b, "1.png", 30);
    write_gray(a, "z.png", 20);
    write_gray(a, "a.png", 10);
    uint8_t ga[24];
    for (int i = 0; i < 12; i++) {
        ga[2 * i] = (uint8_t)(15 + i);
        ga[2 * i + 1] = 77; /* alpha, dropped */
    }
    tpath(path, a, "m.png");
    write_png(path, 4, 3, PNG_COLOR_TYPE_GRAY_ALPHA, ga);
    tpath(path, a, "notes.txt"); /* ignored */
    write_file(path, "x", 1);
}

START_TEST(png_gray_classes)
{
    char dir[256], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_gray_set(dir);
    core_dataset ds;
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), 0);
    ck_assert_int_eq(ds.n, 5);
    ck_assert_int_eq(ds.shape.c, 1);
    ck_assert_int_eq(ds.shape.h, 3);
    ck_assert_int_eq(ds.shape.w, 4);
    ck_assert_int_eq(ds.nclass, 2);
    ck_assert_str_eq(ds.class_names[0], "a_cls");
    ck_assert_str_eq(ds.class_names[1], "b_cls");
    check_gray(&ds, 0, 0, 10); /* a_cls/a.png */
    check_gray(&ds, 1, 0, 15); /* a_cls/m.png, alpha stripped */
    check_gray(&ds, 2, 0, 20); /* a_cls/z.png */
    check_gray(&ds, 3, 1, 30); /* b_cls/1.png */
    check_gray(&ds, 4, 1, 40); /* b_cls/2.png */
    core_dataset_free(&ds);

    /* No train/ folder: the same images serve the test split too. */
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_PNGDIR, dir, CORE_SPLIT_TEST, 4, &ds, err), 0);
    ck_assert_int_eq(ds.n, 4);
    check_gray(&ds, 3, 1, 30);
    ck_assert_int_eq(ds.nclass, 2);
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

/* RGB 2x2 image: pixel p channel k = v + 10 * k + p. */
static void write_rgb(const char *dir, const char *name, int v, int alpha)
{
    int c = alpha ? 4 : 3;
    uint8_t px[16];
    for (int p = 0; p < 4; p++) {
        for (int k = 0; k < 3; k++)
            px[p * c + k] = (uint8_t)(v + 10 * k + p);
        if (alpha)
            px[p * c + 3] = 128;
    }
    char path[TPATH];
    tpath(path, dir, name);
    write_png(path, 2, 2, alpha ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, px);
}

static void check_rgb(const core_dataset *ds, int i, int label, int v)
{
    ck_assert_uint_eq(ds->labels[i], label);
    for (int k = 0; k < 3; k++)
        for (int p = 0; p < 4; p++)
            ck_assert_uint_eq(ds->pixels[i * 12 + k * 4 + p], v + 10 * k + p);
}

START_TEST(png_rgb_train_test)
{
    char dir[256], train[TPATH], test[TPATH], cat[TPATH], dog[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    make_dir(dir, "train", train);
    make_dir(dir, "test", test);
    make_dir(train, "cat", cat);
    make_dir(train, "dog", dog);
    write_rgb(cat, "c1.png", 100, 0);
    write_rgb(dog, "d1.png", 150, 1); /* RGBA: alpha stripped */
    make_dir(test, "cat", cat);
    make_dir(test, "dog", dog);
    write_rgb(dog, "t1.png", 50, 0);
    core_dataset ds;
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_PNGDIR, dir, CORE_SPLIT_TRAIN, 0, &ds, err), 0);
    ck_assert_int_eq(ds.n, 2);
    ck_assert_int_eq(ds.shape.c, 3);
    ck_assert_int_eq(ds.shape.h, 2);
    ck_assert_int_eq(ds.shape.w, 2);
    check_rgb(&ds, 0, 0, 100);
    check_rgb(&ds, 1, 1, 150);
    core_dataset_free(&ds);
    /* The empty test/cat class still takes label 0. */
    ck_assert_int_eq(core_dataset_load(CORE_FORMAT_PNGDIR, dir, CORE_SPLIT_TEST, 0, &ds, err), 0);
    ck_assert_int_eq(ds.n, 1);
    ck_assert_int_eq(ds.nclass, 2);
    ck_assert_str_eq(ds.class_names[1], "dog");
    check_rgb(&ds, 0, 1, 50);
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

START_TEST(png_palette_expanded)
{
    char dir[256], cls[TPATH], path[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    make_dir(dir, "only", cls);
    tpath(path, cls, "p.png");
    const uint8_t idx[4] = {0, 1, 2, 1};
    write_png(path, 2, 2, PNG_COLOR_TYPE_PALETTE, idx);
    core_dataset ds;
    ck_assert_msg(core_pngdir_load(dir, 0, &ds, err) == 0, "%s", err);
    ck_assert_int_eq(ds.shape.c, 3);
    const uint8_t want[12] = {0, 255, 10, 255, 0, 0, 20, 0, 0, 0, 30, 0};
    ck_assert_mem_eq(ds.pixels, want, 12);
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

START_TEST(png_errors)
{
    char dir[256], path[TPATH], err[CORE_ERRLEN] = "";
    core_dataset ds;

    /* A different size in a later file. */
    adv_test_tmpdir(dir, sizeof dir);
    write_gray_set(dir);
    tpath(path, dir, "b_cls/3.png");
    uint8_t px[64] = {0};
    write_png(path, 8, 8, PNG_COLOR_TYPE_GRAY, px);
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    ck_assert_err_names(err, "8x8 gray");
    ck_assert_err_names(err, "4x3 gray");
    ck_assert_ptr_null(ds.pixels);
    /* ... or a different channel count. */
    write_png(path, 4, 3, PNG_COLOR_TYPE_RGB, px);
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    ck_assert_err_names(err, "4x3 RGB");
    /* The limit stops before the odd file is read. */
    ck_assert_int_eq(core_pngdir_load(dir, 5, &ds, err), 0);
    core_dataset_free(&ds);

    /* Not a PNG at all. */
    write_file(path, "hello, world", 12);
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    ck_assert_err_names(err, "not a PNG");

    /* A real PNG cut short: libpng fails mid-read and must unwind cleanly. */
    char good[TPATH];
    tpath(good, dir, "b_cls/1.png");
    FILE *f = fopen(good, "rb");
    uint8_t buf[1024];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 8; cut < len; cut += 9) {
        write_file(path, buf, cut);
        ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
        ck_assert_err_names(err, path);
    }
    /* Corrupt bytes in the middle (header CRC / data). */
    memcpy(buf + len / 2, "garbage!", 8);
    write_file(path, buf, len);
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
    ck_assert_err_names(err, path);

    /* No class folders. */
    rm_tree(dir);
    adv_test_tmpdir(dir, sizeof dir);
    ck_assert_int_eq(core_pngdir_load(dir, 0, &ds, err), -1);
    ck_assert_err_names(err, dir);
    /* Missing folder. */
    tpath(path, dir, "absent");
    ck_assert_int_eq(core_pngdir_load(path, 0, &ds, err), -1);
    ck_assert_err_names(err, path);
    rm_tree(dir);
}
END_TEST

/* -------------------------------------------------------- gather and split */

START_TEST(gather_scales)
{
    char dir[256], images[TPATH], labels[TPATH], err[CORE_ERRLEN] = "";
    adv_test_tmpdir(dir, sizeof dir);
    write_idx_pair(dir, "train", 1, images, labels);
    core_dataset ds;
    ck_assert_int_eq(core_idx_load(images, labels, 0, &ds, err), 0);
    const int idx[4] = {2, 0, 2, 1};
    float x[4 * 6];
    int y[4];
    core_dataset_gather(&ds, idx, 4, x, y);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(y[i], idx_labels[idx[i]]);
        for (int j = 0; j < 6; j++) {
            float want = ds.pixels[idx[i] * 6 + j] / 255.0f;
            ck_assert_float_eq(x[i * 6 + j], want);
            ck_assert(x[i * 6 + j] >= 0.0f && x[i * 6 + j] <= 1.0f);
        }
    }
    core_dataset_free(&ds);
    rm_tree(dir);
}
END_TEST

START_TEST(split_partition)
{
    char err[CORE_ERRLEN] = "";
    const int n = 1000, val_n = 137;
    core_data_split s, t, u;
    ck_assert_int_eq(core_data_split_make(n, val_n, 42, &s, err), 0);
    ck_assert_int_eq(s.ntrain, n - val_n);
    ck_assert_int_eq(s.nval, val_n);
    int *seen = calloc(n, sizeof *seen);
    for (int i = 0; i < s.ntrain; i++) {
        ck_assert(i == 0 || s.train[i] > s.train[i - 1]);
        seen[s.train[i]]++;
    }
    for (int i = 0; i < s.nval; i++) {
        ck_assert(i == 0 || s.val[i] > s.val[i - 1]);
        seen[s.val[i]]++;
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], 1); /* disjoint, and the union is everything */
    free(seen);
    /* Not simply the last val_n indices. */
    ck_assert_int_lt(s.val[0], n - val_n);

    ck_assert_int_eq(core_data_split_make(n, val_n, 42, &t, err), 0);
    ck_assert_mem_eq(s.val, t.val, (size_t)val_n * sizeof *s.val);
    ck_assert_mem_eq(s.train, t.train, (size_t)(n - val_n) * sizeof *s.train);
    ck_assert_int_eq(core_data_split_make(n, val_n, 43, &u, err), 0);
    ck_assert(memcmp(s.val, u.val, (size_t)val_n * sizeof *s.val) != 0);
    core_data_split_free(&s);
    core_data_split_free(&t);
    core_data_split_free(&u);

    ck_assert_int_eq(core_data_split_make(5, 0, 1, &s, err), 0);
    ck_assert_int_eq(s.ntrain, 5);
    ck_assert_int_eq(s.nval, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(s.train[i], i);
    core_data_split_free(&s);
    ck_assert_ptr_null(s.train);
}
END_TEST

START_TEST(split_bad_val_n)
{
    char err[CORE_ERRLEN] = "";
    core_data_split s;
    ck_assert_int_eq(core_data_split_make(10, -1, 1, &s, err), -1);
    ck_assert_err_names(err, "-1");
    ck_assert_ptr_null(s.train);
    ck_assert_int_eq(core_data_split_make(10, 10, 1, &s, err), -1);
    ck_assert_err_names(err, "10");
    ck_assert_int_eq(core_data_split_make(0, 0, 1, &s, err), -1);
}
END_TEST

/* ------------------------------------------------------ real Fashion-MNIST */

START_TEST(real_fashion_mnist)
{
    if (access(CORE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0 &&
        access(CORE_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte", R_OK) != 0)
        return; /* not installed: nothing to check */
    char dir[4096], err[CORE_ERRLEN] = "";
    core_data_format fmt;
    ck_assert_int_eq(core_data_resolve("fashion-mnist", &fmt, dir, err), 0);
    core_dataset ds;
    ck_assert_msg(core_dataset_load(fmt, dir, CORE_SPLIT_TEST, 100, &ds, err) == 0, "%s", err);
    ck_assert_int_eq(ds.n, 100);
    ck_assert_int_eq(ds.shape.c, 1);
    ck_assert_int_eq(ds.shape.h, 28);
    ck_assert_int_eq(ds.shape.w, 28);
    ck_assert_int_eq(ds.nclass, 10);
    ck_assert_str_eq(ds.class_names[9], "Ankle boot");
    int nonzero = 0;
    for (size_t i = 0; i < 100 * 784; i++)
        nonzero += ds.pixels[i] != 0;
    ck_assert_int_gt(nonzero, 1000);
    core_dataset_free(&ds);
}
END_TEST

static Suite *suite_data(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("idx");
    tcase_add_test(tc, idx_gzip_and_plain);
    tcase_add_test(tc, idx_limit);
    tcase_add_test(tc, idx_truncated);
    tcase_add_test(tc, idx_truncated_gzip_stream);
    tcase_add_test(tc, idx_bad_magic);
    tcase_add_test(tc, idx_count_mismatch);
    tcase_add_test(tc, idx_label_out_of_range);
    tcase_add_test(tc, idx_missing_file);
    tcase_add_test(tc, idx_dataset_load_splits);
    tcase_add_test(tc, resolve_names);
    tcase_add_test(tc, real_fashion_mnist);
    suite_add_tcase(s, tc);

    tc = tcase_create("cifar10");
    tcase_add_test(tc, cifar_load);
    tcase_add_test(tc, cifar_limit_and_names);
    tcase_add_test(tc, cifar_bad_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("png");
    tcase_add_test(tc, png_gray_classes);
    tcase_add_test(tc, png_rgb_train_test);
    tcase_add_test(tc, png_palette_expanded);
    tcase_add_test(tc, png_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("batches");
    tcase_add_test(tc, gather_scales);
    tcase_add_test(tc, split_partition);
    tcase_add_test(tc, split_bad_val_n);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(suite_data)
