/*
 * fuzz.h - what the fuzz harnesses share: a check that aborts (so that
 * libFuzzer and the replay driver both report it), the parts of an input
 * and a scratch folder for the loaders that take paths.
 *
 * One input can stand for several files: its parts are separated by
 * FUZZ_SEP ("ADVFUZZ!"), so a seed is real files joined by that word.
 */
#ifndef ADV_FUZZ_H
#define ADV_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "core/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SEP "ADVFUZZ!"

/* Abort with the condition's text when it is false (any build). */
#define FUZZ_CHECK(cond)                                                                    \
    ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))
void fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

/* Part k of the input (0-based): 1 with *p and *n, 0 when there are fewer. */
int fuzz_part(const uint8_t *data, size_t size, int k, const uint8_t **p, size_t *n);

/* A folder of this process's own, made on first use and removed at exit;
 * fuzz_write puts bytes at a path below it (making the folders on the
 * way) and returns its full path (static storage); fuzz_clear empties it. */
const char *fuzz_dir(void);
const char *fuzz_write(const char *rel, const uint8_t *p, size_t n);
void fuzz_clear(void);

/* The data set loaders' harnesses: part k of the input becomes the file
 * names[k] in the scratch folder, which core_dataset_load reads as fmt's
 * test split, at most FUZZ_DATA_LIMIT examples (as a job's limit does:
 * a header claiming millions of images then costs a bounded allocation,
 * and the fuzzer stays fast); a loaded set must be consistent, a refusal
 * must say why. */
#define FUZZ_DATA_LIMIT 8
void fuzz_dataset(core_data_format fmt, const char *const *names, int nnames,
                  const uint8_t *data, size_t size);

#endif
