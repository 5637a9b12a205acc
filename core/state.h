/*
 * state.h - the serialised state of a training run (a checkpoint).
 *
 * Format (all integers and floats little-endian; version 1):
 *   "ADVSTATE"                 8-byte magic
 *   u32 version
 *   u32 c, h, w, nclass        input shape and classes
 *   u32 spec_len, spec bytes   the expanded model spec (no terminator)
 *   u64 nparams, f32 params[nparams]
 *   u32 optimizer kind (0 sgd, 1 adam), u64 state bytes, optimizer state
 *                              (core_optim_state_write: t, m, v)
 *   u64 seed, i64 epoch, i64 step, f64 loss_sum, i64 correct, i64 seen
 *   u32 crc32 (zlib) of every byte before it
 * The counter-based RNG has no state beyond (seed, epoch, step), so a state
 * restored into a fresh run continues bit for bit like an uninterrupted one.
 */
#ifndef CORE_STATE_H
#define CORE_STATE_H

#include "model.h"
#include "optim.h"

/* Where training stands: completed epochs, global step (batches done), and
 * the running sums of the current epoch's training loss and accuracy. */
typedef struct {
    uint64_t seed;
    int64_t epoch, step;
    double loss_sum;
    int64_t correct, seen;
} core_progress;

/* Serialise into a new malloc'ed buffer (*buf, *len); free() it. */
int core_state_save(const core_model *m, const core_optim *o, const core_progress *p,
                    uint8_t **buf, size_t *len, char *err);

/* Restore into a model and optimiser built from the same spec and shape;
 * o and p may be NULL to load the weights only. Checks the magic, version,
 * checksum, spec, shape and sizes, naming what does not match. */
int core_state_load(core_model *m, core_optim *o, core_progress *p, const uint8_t *buf,
                    size_t len, char *err);

/* What a state describes, without a model to load it into. */
typedef struct {
    core_shape in;
    int nclass;
    char spec[CORE_SPEC_LEN];
    int64_t epoch, step;
    uint64_t seed;
} core_state_info;

int core_state_inspect(const uint8_t *buf, size_t len, core_state_info *info, char *err);

/* The same from a state's first bytes alone (at least CORE_STATE_HEAD_MAX,
 * or the whole state; no checksum is checked: epoch, step and seed stay
 * 0), and where its parameters start, so that a reader can take them
 * straight from storage. */
#define CORE_STATE_HEAD_MAX (8 + 4 + 16 + 4 + CORE_SPEC_LEN + 8)
int core_state_head(const uint8_t *buf, size_t len, core_state_info *info, size_t *params_off,
                    uint64_t *nparams, char *err);

/* A new model with the weights of a state (for evaluation and export). */
int core_state_model(const uint8_t *buf, size_t len, core_model **out, char *err);

#endif
