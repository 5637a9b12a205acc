/*
 * fuzz_idx.c - IDX files (MNIST, Fashion-MNIST), plain or gzip, through
 * core/data.c's loader. Input: the images file, FUZZ_SEP, the labels file.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    fuzz_dataset(CORE_FORMAT_IDX, names, 2, data, size);
    return 0;
}
