/*
 * advbench - throughput and quality side by side with the PyTorch peer.
 *
 *   advbench bench [--model M] [--batch B] [--steps K] [--eps E] [--iters N]
 *                  [--threads T] [--rounds R] [--peer PATH | --no-peer]
 *       Times the three workloads of ../shared/peers/torch_peer.py bench on
 *       the first B Fashion-MNIST test images: train_clean (one SGD step),
 *       train_pgdK (PGD-K with random start, then one step) and eval_pgd20
 *       (PGD-20 at step eps/8, then a forward pass). With the peer present it
 *       alternates ours/peer R times and prints medians and the median of the
 *       per-round ratios (with the peer's and the ratios' ranges), plus
 *       GFLOP/s and peak resident memory of each.
 *   advbench train [--model M] [--epochs N] [--eps E] [--steps K] [--batch B]
 *                  [--train-n N] [--test-n N] [--threads T] [--seed S]
 *                  [--init he|torch]
 *       The peer's train recipe (PGD-AT, SGD momentum 0.9, wd 5e-4,
 *       one-cycle to 0.05) on Fashion-MNIST, then clean and PGD-20 test
 *       accuracy, printed as the peer prints them.
 *   advbench layers [--model M] [--batch B] [--iters N] [--threads T]
 *       Milliseconds per batch of each convolution's forward pass, input
 *       gradient (dx) and weight gradient (dW) alone, on random data: where
 *       the time of a workload goes, layer by layer.
 *   advbench peak [--threads T]
 *       The fp32 FMA rate of T threads on registers only (no memory), the
 *       ceiling that the GFLOP/s figures above are to be read against.
 */
#include "core/eval.h"
#include "core/attack.h"
#include "core/data.h"
#include "core/gemm.h"
#include "core/layers.h"
#include "core/loss.h"
#include "core/rng.h"
#include "core/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 9
#define WORKLOADS 3

typedef struct {
    const char *mode, *model, *peer, *init;
    int batch, steps, iters, threads, rounds, epochs, train_n, test_n;
    float eps;
    uint64_t seed;
} options;

static int usage(void)
{
    fprintf(stderr, "usage: advbench bench [--model M] [--batch B] [--steps K] [--eps E] "
                    "[--iters N] [--threads T] [--rounds R] [--peer PATH | --no-peer]\n"
                    "       advbench train [--model M] [--epochs N] [--eps E] [--steps K] "
                    "[--batch B] [--train-n N] [--test-n N] [--threads T] [--seed S] "
                    "[--init he|torch]\n"
                    "       advbench layers [--model M] [--batch B] [--iters N] [--threads T]\n"
                    "       advbench peak [--threads T]\n");
    return 2;
}

static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.model = "cnn-small", .init = "torch", .peer = "../shared/peers/torch_peer.py", .batch = 128,
                   .steps = 7, .iters = 20, .threads = 2, .rounds = 3, .epochs = 1,
                   .train_n = 60000, .test_n = 10000, .eps = 0.1f};
    if (argc < 2 || (strcmp(argv[1], "bench") && strcmp(argv[1], "train") &&
                     strcmp(argv[1], "layers") && strcmp(argv[1], "peak")))
        return -1;
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--no-peer") == 0) {
            o->peer = NULL;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (!strcmp(k, "--model")) o->model = v;
        else if (!strcmp(k, "--peer")) o->peer = v;
        else if (!strcmp(k, "--init")) o->init = v;
        else if (!strcmp(k, "--batch")) o->batch = atoi(v);
        else if (!strcmp(k, "--steps")) o->steps = atoi(v);
        else if (!strcmp(k, "--iters")) o->iters = atoi(v);
        else if (!strcmp(k, "--threads")) o->threads = atoi(v);
        else if (!strcmp(k, "--rounds")) o->rounds = atoi(v);
        else if (!strcmp(k, "--epochs")) o->epochs = atoi(v);
        else if (!strcmp(k, "--train-n")) o->train_n = atoi(v);
        else if (!strcmp(k, "--test-n")) o->test_n = atoi(v);
        else if (!strcmp(k, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--eps")) o->eps = strtof(v, NULL);
        else return -1;
    }
    if (o->batch < 1 || o->steps < 1 || o->iters < 1 || o->rounds < 1 || o->epochs < 1 ||
        o->rounds > MAX_ROUNDS || o->train_n < 1 || o->test_n < 1)
        return -1;
    return 0;
}

/* ---- bench -------------------------------------------------------------- */

typedef struct {
    core_model *m;
    core_attack_ws *ws;
    core_optim opt;
    float *x, *xa, *dlogits;
    int *y, n;
    float eps;
    int steps;
} bench_ctx;

static void train_step(bench_ctx *b, const float *xin)
{
    core_model_zero_grad(b->m);
    const float *z = core_model_forward(b->m, xin, b->n);
    core_loss_ce(z, b->y, b->n, b->m->nclass, b->dlogits, NULL);
    core_model_backward(b->m, b->dlogits, b->n, NULL, 1);
    core_optim_step(&b->opt, b->m->params, b->m->grads, 0.05f, 0.9f);
}

static void pgd(bench_ctx *b, int steps, float alpha)
{
    core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, b->eps);
    a.steps = steps;
    a.alpha = alpha;
    core_attack_run(&a, b->m, b->ws, b->x, b->y, NULL, b->n, 0, b->xa, NULL, NULL);
}

static void step_clean(bench_ctx *b) { train_step(b, b->x); }
static void step_adv(bench_ctx *b)
{
    pgd(b, b->steps, core_pgd_step(b->eps, b->steps));
    train_step(b, b->xa);
}
static void step_eval(bench_ctx *b)
{
    pgd(b, 20, b->eps / 8.0f);
    core_model_forward(b->m, b->xa, b->n);
}

static int bench_setup(const options *o, bench_ctx *b, char *err)
{
    core_dataset ds;
    core_data_format fmt;
    char dir[CORE_PATH_MAX];
    if (core_data_resolve("fashion-mnist", &fmt, dir, err) ||
        core_dataset_load(fmt, dir, CORE_SPLIT_TEST, o->batch, &ds, err))
        return -1;
    memset(b, 0, sizeof *b);
    b->n = ds.n;
    b->eps = o->eps;
    b->steps = o->steps;
    size_t dim = core_shape_size(ds.shape);
    b->x = core_alloc(sizeof(float) * b->n * dim);
    b->xa = core_alloc(sizeof(float) * b->n * dim);
    b->y = core_alloc(sizeof(int) * b->n);
    b->dlogits = core_alloc(sizeof(float) * b->n * ds.nclass);
    int *idx = core_alloc(sizeof(int) * b->n);
    for (int i = 0; i < b->n; i++)
        idx[i] = i;
    core_dataset_gather(&ds, idx, b->n, b->x, b->y);
    core_free(idx);
    core_opt_cfg oc = core_opt_defaults(CORE_OPT_SGD);
    int rc = core_model_create(o->model, ds.shape, ds.nclass, 0, &b->m, err) ||
             core_model_reserve(b->m, b->n, err) ||
             core_attack_ws_create(b->m, b->n, &b->ws, err) ||
             core_optim_init(&b->opt, &oc, b->m->nparams, err);
    core_dataset_free(&ds);
    return rc ? -1 : 0;
}

static void bench_free(bench_ctx *b)
{
    core_model_free(b->m);
    core_attack_ws_free(b->ws);
    core_optim_free(&b->opt);
    core_free(b->x);
    core_free(b->xa);
    core_free(b->y);
    core_free(b->dlogits);
}

/* FLOPs of one image per workload: a forward pass F, a backward pass to
 * the input about F, the weight gradient about F. */
static void workload_flops(const bench_ctx *b, double out[WORKLOADS])
{
    double f = core_model_flops(b->m);
    out[0] = 3 * f;
    out[1] = b->steps * 2 * f + 3 * f;
    out[2] = 20 * 2 * f + f;
}

static void run_ours(const options *o, bench_ctx *b, double ips[WORKLOADS])
{
    void (*fn[WORKLOADS])(bench_ctx *) = {step_clean, step_adv, step_eval};
    for (int w = 0; w < WORKLOADS; w++) {
        fn[w](b);
        fn[w](b);
        double t0 = core_now_s();
        for (int i = 0; i < o->iters; i++)
            fn[w](b);
        ips[w] = o->iters * b->n / (core_now_s() - t0);
    }
}

/* Runs the peer once; fills its images/s and peak RSS (KiB). */
static int run_peer(const options *o, double ips[WORKLOADS], long *rss_kb)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/time -f 'peak_rss_kb %%M' /usr/bin/python3 %s bench --model %s --batch %d "
             "--steps %d --eps %g --iters %d --threads %d 2>&1",
             o->peer, o->model, o->batch, o->steps, o->eps, o->iters, o->threads);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        char name[64];
        double v;
        if (sscanf(line, "%63s %lf images/s", name, &v) == 2 && strstr(line, "images/s")) {
            int w = !strcmp(name, "train_clean") ? 0 : !strncmp(name, "train_pgd", 9) ? 1
                    : !strcmp(name, "eval_pgd20") ? 2 : -1;
            if (w >= 0) {
                ips[w] = v;
                got++;
            }
        }
        sscanf(line, "peak_rss_kb %ld", rss_kb);
    }
    return pclose(p) == 0 && got == WORKLOADS ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int bench(const options *o)
{
    char err[CORE_ERRLEN];
    bench_ctx b;
    if (bench_setup(o, &b, err)) {
        fprintf(stderr, "advbench: %s\n", err);
        return 1;
    }
    int peer = o->peer && access(o->peer, R_OK) == 0 &&
               system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
    double ours[MAX_ROUNDS][WORKLOADS], theirs[MAX_ROUNDS][WORKLOADS], flops[WORKLOADS];
    long peer_rss = 0;
    workload_flops(&b, flops);
    for (int r = 0; r < o->rounds; r++) {
        run_ours(o, &b, ours[r]);
        if (peer && run_peer(o, theirs[r], &peer_rss)) {
            fprintf(stderr, "advbench: the peer '%s' failed; comparing nothing\n", o->peer);
            peer = 0;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *names[WORKLOADS] = {"train_clean", "train_pgd", "eval_pgd20"};
    printf("# model %s, batch %d, %d threads, %d rounds (median)%s\n", o->model, b.n, o->threads,
           o->rounds, peer ? ", peer alternating" : ", no peer");
    for (int w = 0; w < WORKLOADS; w++) {
        double a[MAX_ROUNDS], p[MAX_ROUNDS], ratio[MAX_ROUNDS];
        for (int r = 0; r < o->rounds; r++) {
            a[r] = ours[r][w];
            p[r] = peer ? theirs[r][w] : 0;
            ratio[r] = peer ? ours[r][w] / theirs[r][w] : 0;
        }
        double mo = median(a, o->rounds);
        char label[32];
        snprintf(label, sizeof label, w == 1 ? "%s%d" : "%s", names[w], o->steps);
        printf("%s\t%.1f images/s\t%.1f GFLOP/s", label, mo, mo * flops[w] * 1e-9);
        if (peer) {
            /* median() sorts: after it, [0] and [rounds - 1] are the range. */
            const int last = o->rounds - 1;
            double mp = median(p, o->rounds), mr = median(ratio, o->rounds);
            printf("\tpeer %.1f images/s\t%.1f GFLOP/s\tratio %.2fx\t(peer %.1f-%.1f, ratio "
                   "%.2f-%.2f)",
                   mp, mp * flops[w] * 1e-9, mr, p[0], p[last], ratio[0], ratio[last]);
        }
        printf("\n");
    }
    printf("peak_rss\t%.1f MiB", ru.ru_maxrss / 1024.0);
    if (peer)
        printf("\tpeer %.1f MiB", peer_rss / 1024.0);
    printf("\n");
    bench_free(&b);
    return 0;
}

/* ---- layers ------------------------------------------------------------- */

/* Milliseconds per call of pass (0 forward, 1 dx, 2 dW), best of iters. */
static double time_pass(core_model *m, const core_conv *c, int pass, const float *x, float *y,
                        float *dx, int n, int iters)
{
    double best = 1e30;
    for (int i = 0; i < iters + 1; i++) {
        double t0 = core_now_s();
        if (pass == 0)
            core_conv_forward(c, m->params, x, y, n, &m->scratch, 0);
        else
            core_conv_backward(c, m->params, m->grads, x, y, pass == 1 ? dx : NULL, n, pass == 2,
                               &m->scratch);
        double ms = (core_now_s() - t0) * 1e3;
        if (i > 0 && ms < best) /* the first call warms up */
            best = ms;
    }
    return best;
}

static int layers(const options *o)
{
    char err[CORE_ERRLEN];
    core_model *m;
    if (core_model_create(o->model, (core_shape){1, 28, 28}, 10, 0, &m, err) ||
        core_model_reserve(m, o->batch, err)) {
        fprintf(stderr, "advbench: %s\n", err);
        return 1;
    }
    size_t most = 1;
    for (int i = 0; i < m->nlayers; i++)
        most = core_shape_size(m->layers[i].in) > most ? core_shape_size(m->layers[i].in) : most;
    most *= (size_t)o->batch;
    float *x = core_alloc(sizeof(float) * most), *y = core_alloc(sizeof(float) * most),
          *dx = core_alloc(sizeof(float) * most);
    for (size_t i = 0; i < most; i++)
        x[i] = core_rng_normal(1, 0, i);
    printf("# model %s, batch %d, %d threads: ms per batch (best of %d)\n", o->model, o->batch,
           o->threads, o->iters);
    printf("layer\tshape\tforward\tdx\tdW\n");
    double total[3] = {0, 0, 0};
    for (int i = 0; i < m->nlayers; i++) {
        const core_layer *l = &m->layers[i];
        int nconv = l->kind == CORE_LAYER_CONV ? 1 : l->kind == CORE_LAYER_RES ? 2 : 0;
        for (int k = 0; k < nconv; k++) {
            const core_conv *c = &l->conv[k];
            double ms[3];
            for (int p = 0; p < 3; p++) {
                ms[p] = time_pass(m, c, p, x, y, dx, o->batch, o->iters);
                total[p] += ms[p];
            }
            printf("%s%s\t%dx%dx%d->%dx%dx%d k%d s%d\t%.3f\t%.3f\t%.3f\n", l->name,
                   nconv > 1 ? (k ? ".b" : ".a") : "", c->cin, c->in.h, c->in.w, c->cout,
                   c->out.h, c->out.w, c->k, c->stride, ms[0], ms[1], ms[2]);
        }
    }
    printf("total\t\t%.3f\t%.3f\t%.3f\n", total[0], total[1], total[2]);
    core_free(x);
    core_free(y);
    core_free(dx);
    core_model_free(m);
    return 0;
}

/* ---- train -------------------------------------------------------------- */

static int epoch_done(void *ctx, const core_epoch_info *e)
{
    printf("epoch %d done at %.1fs (loss %.4f, acc %.4f)\n", e->epoch + 1,
           core_now_s() - *(double *)ctx, e->train_loss, e->train_acc);
    fflush(stdout);
    return 0;
}

static int train(const options *o)
{
    char err[CORE_ERRLEN], dir[CORE_PATH_MAX];
    core_data_format fmt;
    core_dataset tr = {0}, te = {0};
    core_trainer *t = NULL;
    int rc = 1;
    core_train_cfg cfg = core_train_defaults();
    cfg.epochs = o->epochs;
    cfg.batch = o->batch;
    cfg.eps = o->eps;
    cfg.steps = o->steps;
    cfg.seed = o->seed;
    cfg.val_size = 0;
    if (core_init_parse(o->init, &cfg.init, err) || core_data_resolve("fashion-mnist", &fmt, dir, err) ||
        core_dataset_load(fmt, dir, CORE_SPLIT_TRAIN, o->train_n, &tr, err) ||
        core_dataset_load(fmt, dir, CORE_SPLIT_TEST, o->test_n, &te, err) ||
        core_trainer_create(&cfg, o->model, &tr, &t, err))
        goto out;
    double t0 = core_now_s();
    core_train_hooks hooks = {.on_epoch = epoch_done, .ctx = &t0};
    if (core_trainer_run(t, &hooks, err) < 0)
        goto out;
    double train_s = core_now_s() - t0;
    /* The daemon's final evaluation: PGD-20 at step 2.5 eps / 20 = eps / 8,
     * the peer's. */
    core_eval_out rows = {0};
    core_attack_ws *ws = NULL;
    if (core_model_reserve(t->model, 500, err) == 0 &&
        core_attack_ws_create(t->model, 500, &ws, err) == 0 &&
        core_eval_final(&(core_final_cfg){.eps = o->eps, .norm = CORE_NORM_LINF, .batch = 500},
                        t->model, ws, &te, &rows, err) == 0) {
        printf("train_seconds\t%.1f\nclean_acc\t%.4f\npgd20_acc\t%.4f\n", train_s,
               core_eval_clean_acc(&rows), core_eval_robust_acc(&rows, 0));
        rc = 0;
    }
    core_eval_out_free(&rows);
    core_attack_ws_free(ws);
out:
    if (rc)
        fprintf(stderr, "advbench: %s\n", err);
    core_trainer_free(t);
    core_dataset_free(&tr);
    core_dataset_free(&te);
    return rc;
}

/* ---- peak ---------------------------------------------------------------- */

/* PEAK_CHAINS independent FMA chains (enough to cover the FMA latency of 2
 * pipes) of one vector type, iters times; returns a sum so the work is
 * kept. GCC's vector types make a * b + c one FMA (GNU C contracts it). */
#define PEAK_CHAINS 12
typedef float peak_v16 __attribute__((vector_size(64)));
typedef float peak_v8 __attribute__((vector_size(32)));
#define FMA_CHAINS(NAME, TYPE, TARGET)                                                        \
    static __attribute__((target(TARGET))) float NAME(long iters)                             \
    {                                                                                         \
        TYPE a[PEAK_CHAINS], b, c;                                                            \
        const int lanes = (int)(sizeof(TYPE) / sizeof(float));                                \
        for (int j = 0; j < lanes; j++)                                                       \
            b[j] = 0.999f, c[j] = 1e-4f;                                                      \
        for (int i = 0; i < PEAK_CHAINS; i++)                                                 \
            for (int j = 0; j < lanes; j++)                                                   \
                a[i][j] = 0.001f * (float)i;                                                  \
        for (long k = 0; k < iters; k++)                                                      \
            _Pragma("GCC unroll 12") for (int i = 0; i < PEAK_CHAINS; i++) a[i] =             \
                a[i] * b + c;                                                                 \
        float sum = 0.0f;                                                                     \
        for (int i = 0; i < PEAK_CHAINS; i++)                                                 \
            for (int j = 0; j < lanes; j++)                                                   \
                sum += a[i][j];                                                               \
        return sum;                                                                           \
    }
FMA_CHAINS(fma_chains_512, peak_v16, "avx512f")
FMA_CHAINS(fma_chains_256, peak_v8, "avx2,fma")

static int peak(const options *o)
{
    const int wide = __builtin_cpu_supports("avx512f"), lanes = wide ? 16 : 8;
    const long iters = 100000000;
    float keep = 0.0f;
    const double t0 = core_now_s();
#pragma omp parallel num_threads(o->threads) reduction(+ : keep)
    keep += wide ? fma_chains_512(iters) : fma_chains_256(iters);
    const double s = core_now_s() - t0;
    const double flops = 2.0 * lanes * PEAK_CHAINS * (double)iters * o->threads;
    printf("# %d threads, %s FMA on registers (checksum %g)\n", o->threads,
           wide ? "AVX-512" : "AVX2", (double)keep);
    printf("peak\t%.1f GFLOP/s\n", flops / s / 1e9);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o))
        return usage();
    core_set_threads(o.threads);
    if (strcmp(o.mode, "layers") == 0)
        return layers(&o);
    if (strcmp(o.mode, "peak") == 0)
        return peak(&o);
    return strcmp(o.mode, "bench") == 0 ? bench(&o) : train(&o);
}
