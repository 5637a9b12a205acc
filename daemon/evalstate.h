/*
 * evalstate.h - an evaluation job's progress on disk, so that one
 * interrupted (a stop, SIGTERM, kill -9 of its worker or of the daemon)
 * resumes where it was instead of starting over, as AutoAttack's state
 * file does: the per-example rows of the batches done, and the point to
 * resume from (core/eval.h). Each rank of an MPI evaluation keeps its own
 * file, for its range.
 *
 * One file per job and rank in the checkpoint folder,
 * "j<job>-eval-r<rank>of<size>.evalstate", written whole or not at all
 * (daemon/ckptfile.h). Format (native byte order: the same machine's
 * worker reads it back):
 *   "advd-evalstate1\n"                        16 bytes
 *   u32 spec_crc, ckpt_crc                     the job's spec and checkpoint
 *   i32 n, neps, nclass, batch, a, b           the evaluation and its range
 *   i32 e, s                                   where to resume (core_eval_at)
 *   i32 has_logits
 *   u8 clean_ok[n], u8 survival[neps * n], f32 adv_logits[n * nclass] (has_logits)
 *   u32 crc32 of all the bytes before
 * A file that fails its check, or whose key differs from the job's (its
 * spec, its checkpoint, the rank's range), is not used: the evaluation
 * starts over.
 */
#ifndef ADVD_EVALSTATE_H
#define ADVD_EVALSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/eval.h"

/* What must match for a state to apply. */
typedef struct {
    uint32_t spec_crc, ckpt_crc;
    int32_t n, neps, nclass, batch, a, b;
} adv_evalstate_key;

void adv_evalstate_name(int64_t job, int rank, int size, char *out, size_t len);

int adv_evalstate_save(const char *dir, const char *name, const adv_evalstate_key *k,
                       core_eval_at at, const core_eval_out *o, char *err);

/* 0: *at and o's rows (o allocated for the key's n, neps, nclass) loaded;
 * ADV_STORE_NOT_FOUND: no file; ADV_STORE_CORRUPT: a file that fails its
 * check or belongs to another evaluation (err says which); -1: I/O. */
int adv_evalstate_load(const char *dir, const char *name, const adv_evalstate_key *k,
                       core_eval_at *at, core_eval_out *o, char *err);

/* Remove the state files of job's procs ranks; a missing one is fine. */
int adv_evalstate_remove(const char *dir, int64_t job, int procs, char *err);

/* Whether a checkpoint-folder name is an evaluation state (kept by the
 * start-up sweep of unreferenced checkpoint files). */
int adv_evalstate_is(const char *name);

#endif
