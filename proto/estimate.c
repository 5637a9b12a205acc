/*
 * estimate.c - what a job will cost, from its spec alone: arithmetic on
 * the model's layer shapes (core_model_estimate), the batch, the optimiser
 * and the data set's size. Nothing is allocated or loaded in proportion to
 * the model or the data, so a daemon can judge any spec the grammar allows
 * in microseconds, before it queues the job.
 *
 * The memory figure counts what the worker allocates and keeps:
 *   parameters   floats x (weights, gradients, optimiser moments, the
 *                checkpoint being serialised, FGSM-RS's guard snapshot)
 *   batch        the model's batch buffers (activations, gradients,
 *                convolution scratch per thread), the attack workspace,
 *                the trainer's input copies
 *   data         the data set's pixels (one byte a value); PNG folders
 *                are not counted (their size is known only once read)
 * It leaves out the allocator's slack and the program itself (a few MB).
 */
#include "internal.h"

#include <stdio.h>
#include <unistd.h>

#include "core/attack.h"

/* Examples a data set of each format holds (train + test split). */
static double dataset_examples(core_data_format f)
{
    return f == CORE_FORMAT_IDX ? 70000.0 : f == CORE_FORMAT_CIFAR10 ? 60000.0 : 0.0;
}

static int threads_or_cores(int threads)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return threads > 0 ? threads : n > 0 ? (int)n : 1;
}

int adv_train_cost(const adv_train_spec *t, int batch, int threads, adv_job_cost *out,
                   adv_error *e)
{
    char err[CORE_ERRLEN];
    core_model_cost mc;
    *out = (adv_job_cost){0};
    if (t->nclass == 0)
        return 0; /* a PNG folder: shape and classes known only in the worker */
    threads = threads_or_cores(threads);
    if (core_model_estimate(t->model, t->shape, t->nclass, batch, threads, &mc, err))
        return adv_errorf(e, ADV_E_INVALID_ARGUMENT, "invalid 'model': %s", err);
    const core_train_cfg *c = &t->cfg;
    double copies = 2 + (c->opt.kind == CORE_OPT_ADAM ? 2 : 1) + 1;
    if (c->method == CORE_METHOD_FGSM_RS && c->co_guard)
        copies += 3;
    size_t dim = core_shape_size(t->shape);
    out->params = mc.params;
    out->flops = mc.flops;
    out->params_bytes = mc.params * sizeof(float) * copies;
    out->batch_bytes = mc.batch_bytes + core_attack_ws_bytes(dim, t->nclass, batch) +
                       2.0 * batch * dim * sizeof(float);
    out->data_bytes = dataset_examples(t->fmt) * (double)dim;
    out->total = out->params_bytes + out->batch_bytes + out->data_bytes;
    return 0;
}

static void human(double bytes, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 6) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

void adv_job_cost_describe(const adv_job_cost *c, int batch, char *out, size_t len)
{
    char total[32], p[32], b[32], d[32];
    human(c->total, total, sizeof total);
    human(c->params_bytes, p, sizeof p);
    human(c->batch_bytes, b, sizeof b);
    human(c->data_bytes, d, sizeof d);
    snprintf(out, len, "%s (parameters %s, batch of %d %s, data %s)", total, p, batch, b, d);
}

void adv_bytes_describe(double bytes, char *out, size_t len)
{
    human(bytes, out, len);
}
