/*
 * fuzz_png.c - a folder of PNG images, one sub-folder per class, through
 * core/data.c's loader (libpng underneath). Input: up to six PNG files
 * joined by FUZZ_SEP, spread over three classes.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"a/0.png", "b/1.png", "c/2.png",
                                        "a/3.png", "b/4.png", "c/5.png"};
    fuzz_dataset(CORE_FORMAT_PNGDIR, names, 6, data, size);
    return 0;
}
