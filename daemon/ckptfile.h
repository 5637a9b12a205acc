/*
 * ckptfile.h - checkpoint files: the bytes of each stored checkpoint live
 * in a file of the checkpoint folder beside the database (DB + ".ckpt"),
 * one file per checkpoint row, which keeps its name, size and crc32. The
 * worker writes them (so no checkpoint crosses the daemon's event loop);
 * the store reads, serves and deletes them.
 *
 * A file appears whole or not at all: written to a hidden temporary name,
 * fsync'd, renamed, and the folder fsync'd. Names are the caller's and
 * never paths (adv_ckpt_file_valid).
 */
#ifndef ADVD_CKPTFILE_H
#define ADVD_CKPTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

/* "<db>.ckpt" into out (size bytes); -1 when it does not fit. */
int adv_ckptfile_dir(const char *db_path, char *out, size_t size, char *err);

/* Create the folder (mode 0700) when missing. */
int adv_ckptfile_mkdir(const char *dir, char *err);

/* "j<job>-s<step>-<tag>.state": tag tells two writers of one step apart. */
void adv_ckptfile_name(int64_t job, int64_t step, const char *tag, char *out, size_t size);

/* Write n bytes as dir/name, durably; *crc gets their crc32. */
int adv_ckptfile_write(const char *dir, const char *name, const void *p, size_t n, uint32_t *crc,
                       char *err);

/* The whole file, checked against size and crc32: ADV_STORE_CORRUPT
 * (store.h) when it differs or is missing, -1 when it cannot be read.
 * *out is malloc'd. */
int adv_ckptfile_load(const char *dir, const char *name, uint64_t size, uint32_t crc,
                      uint8_t **out, char *err);

/* n bytes from offset, for serving a checkpoint piece by piece. */
int adv_ckptfile_pread(const char *dir, const char *name, size_t offset, void *buf, size_t n,
                       char *err);

/* Remove dir/name; a missing file is not an error. */
int adv_ckptfile_remove(const char *dir, const char *name, char *err);

#endif
