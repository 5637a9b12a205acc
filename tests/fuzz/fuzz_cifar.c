/*
 * fuzz_cifar.c - CIFAR-10 binary batches through core/data.c's loader.
 * Input: test_batch.bin, then optionally FUZZ_SEP and batches.meta.txt
 * (the class names).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"test_batch.bin", "batches.meta.txt"};
    fuzz_dataset(CORE_FORMAT_CIFAR10, names, 2, data, size);
    return 0;
}
