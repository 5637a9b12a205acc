/*
 * extras.h - the worker's evaluation beyond adversarial accuracy
 * (extras.c): calibration, corruptions, explanations and the pictures of
 * `advctl images`. worker.c sets up the model and the test examples and
 * calls these; each sends its results to the daemon as one message:
 *
 *   {"type":"report","kind":"calibration"|"corruptions"|"explanations" (ADV_REPORT_KINDS),
 *    "data":{...}}                  (the objects are described in extras.c)
 *   {"type":"image","name":"clean.png","data":"<base64>"}   one per file
 */
#ifndef ADVD_EXTRAS_H
#define ADVD_EXTRAS_H

#include <jansson.h>

#include "core/attack.h"
#include "core/data.h"
#include "core/dist.h"
#include "proto/proto.h"
#include "proto/worker.h"

typedef struct {
    core_model *m;
    core_attack_ws *ws;              /* for m, batch examples */
    const core_dataset *te;          /* the test split (class names) */
    const float *x;                  /* the n evaluated test examples */
    const int *y;
    int n, batch;
    double clean_acc;                /* on the n examples, as the evaluation measured */
    const float *adv_logits;         /* n x classes under the evaluation's attack at
                                        its first eps, or NULL (a suite) */
    const adv_eval_spec *es;
    const adv_jobspec *parent;       /* the training job (its data and split) */
    core_dist *dist;                 /* the MPI worker's ranks (NULL: one process):
                                        calibration and corruptions split the n
                                        examples; rank 0 alone sends */
    void (*send)(void *ctx, const adv_wmsg *msg);   /* a report or an image */
    int (*stop)(void *ctx);          /* 1: the job is asked to stop */
    void *ctx;
    char *err;                       /* CORE_ERRLEN */
} advd_extras;

/* Every rank calls these two (they split the examples and sum) ... */
int advd_extras_calibration(const advd_extras *x);
int advd_extras_corruptions(const advd_extras *x);
/* ... rank 0 alone these. */
int advd_extras_explanations(const advd_extras *x);
int advd_extras_images(const advd_extras *x);

#endif
