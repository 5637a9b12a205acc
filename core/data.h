/*
 * data.h - image classification data sets held in memory.
 *
 * A data set is N examples of one shape (c, h, w) stored as 8-bit pixels
 * (CHW order per example, like the tensors) plus one label byte each. Pixels
 * become floats in [0, 1] only when a batch is gathered, so CIFAR-10 costs
 * 150 MB rather than 600.
 *
 * Sources:
 *   - IDX files (MNIST, Fashion-MNIST), plain or gzip (read with zlib):
 *     DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   - CIFAR-10 binary batches: DIR/data_batch_{1..5}.bin, DIR/test_batch.bin
 *     (each record: 1 label byte + 3072 pixel bytes, R then G then B planes)
 *   - a folder of PNG images, one sub-folder per class (sorted by name gives
 *     the label): DIR/train/<class>/NAME.png and DIR/test/<class>/NAME.png, or
 *     DIR/<class>/NAME.png used for both splits when there is no train/ folder.
 *     Grayscale or RGB (alpha dropped), 8-bit, all of one size.
 *
 * Every loading error names the file and what is wrong with it (truncated,
 * bad magic, count mismatch, label out of range, size differs...).
 */
#ifndef CORE_DATA_H
#define CORE_DATA_H

#include "common.h"

#define CORE_MAX_CLASSES 256

typedef struct {
    int n;              /* examples */
    core_shape shape;   /* of one example */
    int nclass;         /* labels are in [0, nclass) */
    uint8_t *pixels;    /* n * core_shape_size(shape) bytes */
    uint8_t *labels;    /* n bytes */
    char class_names[CORE_MAX_CLASSES][32]; /* "0".."9" for IDX/CIFAR unless known */
} core_dataset;

typedef enum { CORE_SPLIT_TRAIN, CORE_SPLIT_TEST } core_split;

typedef enum {
    CORE_FORMAT_IDX,     /* MNIST / Fashion-MNIST layout */
    CORE_FORMAT_CIFAR10, /* CIFAR-10 binary batches */
    CORE_FORMAT_PNGDIR   /* folder of PNG images, one sub-folder per class */
} core_data_format;

#define CORE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Resolve a data set name to (format, directory): "fashion-mnist" (Debian's
 * package), "mnist:DIR", "fashion-mnist:DIR", "cifar10:DIR", "png:DIR".
 * dir must hold 4096 bytes. */
int core_data_resolve(const char *name, core_data_format *fmt, char *dir, char *err);

/* Whether every file the loader of fmt opens in dir (both splits) is
 * there and readable, without reading it: the folder absolute and
 * readable; IDX: the four files, .gz or plain; CIFAR-10: the six batches;
 * a PNG folder: the folder alone (its classes are read at load). 0, or
 * -1 with "cannot read 'PATH': why" and the like in err. */
int core_data_probe(core_data_format fmt, const char *dir, char *err);

/* Load one split. limit > 0 keeps only the first limit examples. The result
 * owns its buffers; release with core_dataset_free. */
int core_dataset_load(core_data_format fmt, const char *dir, core_split split,
                      int limit, core_dataset *out, char *err);
void core_dataset_free(core_dataset *ds);

/* Lower-level loaders, exposed for tests. */
int core_idx_load(const char *images_path, const char *labels_path, int limit,
                  core_dataset *out, char *err);
int core_cifar10_load(const char *dir, core_split split, int limit,
                      core_dataset *out, char *err);
int core_pngdir_load(const char *dir, int limit, core_dataset *out, char *err);

/* Loose inputs to score (advctl predict): one file holding a PNG image,
 * an IDX images file (plain or gzip; no labels needed) or a CIFAR-10
 * batch, told apart by its first bytes; limit > 0 keeps the first limit
 * examples. Labels are 0 unless the file has them (CIFAR). */
int core_inputs_file_load(const char *path, int limit, core_dataset *out, char *err);
/* The *.png file names in dir (not paths), sorted by strcmp: *names is a
 * malloc'ed array of n malloc'ed strings. */
int core_png_folder_list(const char *dir, char ***names, int *n, char *err);

/* Gather examples idx[0..n) into x (n * shape floats in [0,1]) and y. */
void core_dataset_gather(const core_dataset *ds, const int *idx, int n,
                         float *x, int *y);

/* A seeded split of [0, ds->n) into a training part and a validation part of
 * val_n examples (val_n may be 0). Both arrays are core_alloc'ed index lists. */
typedef struct {
    int *train, *val;
    int ntrain, nval;
} core_data_split;

int core_data_split_make(int n, int val_n, uint64_t seed, core_data_split *out, char *err);
void core_data_split_free(core_data_split *s);

#endif
