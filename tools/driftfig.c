/*
 * driftfig.c - the drift monitor's figures at core level: trains a model
 * (clean or PGD) on Fashion-MNIST, takes the held-out split as the
 * reference (as advctl monitor does) and reports, per condition, the
 * alarm rate over 4 windows of 500 test images and the true accuracy
 * beside ATC, shift-matched ATC and CBPE (means over the windows).
 *   make bin/driftfig && bin/driftfig clean|pgd TRAIN_LIMIT EPOCHS [MODEL]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/attack.h"
#include "core/calib.h"
#include "core/corrupt.h"
#include "core/drift.h"
#include "core/train.h"
#define W 500
#define NW 4
#define EPS 0.1f
static core_model *m;
static int C, Dd;
static core_drift_set ref;
static uint8_t *refok;
static double T;
static core_drift_shift sh[64];
static int nsh;
static float *profs;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static void pgd(const float *x, const int *y, int n, float eps, float *xa) {
    char err[CORE_ERRLEN]; size_t dim = core_shape_size(m->in); core_attack_ws *ws;
    core_attack_cfg a = core_attack_defaults(CORE_ATTACK_PGD, eps); a.steps = 10;
    core_attack_ws_create(m, m->capacity, &ws, err);
    for (int off = 0; off < n; off += m->capacity) { int k = n - off < m->capacity ? n - off : m->capacity;
        core_attack_run(&a, m, ws, x + dim * off, y + off, NULL, k, 77 + off, xa + dim * off, NULL, err); }
    core_attack_ws_free(ws);
}
static void add_shift(const float *x, const int *y, int n) {
    int len = core_drift_profile_len(C); float *lg = malloc(sizeof(float) * n * C);
    core_drift_outputs(m, x, n, lg, NULL);
    sh[nsh].profile = profs + (size_t)nsh * len; core_drift_profile(lg, n, C, T, profs + (size_t)nsh * len);
    core_drift_atc_of(lg, y, n, C, T, &sh[nsh].threshold, &sh[nsh].accuracy); nsh++; free(lg);
}
int main(int argc, char **argv) {
    char err[CORE_ERRLEN], dir[CORE_PATH_MAX]; core_data_format fmt; core_dataset tr, te;
    if (argc < 4) return 2;
    core_data_resolve("fashion-mnist", &fmt, dir, err);
    core_dataset_load(fmt, dir, CORE_SPLIT_TRAIN, atoi(argv[2]), &tr, err);
    core_dataset_load(fmt, dir, CORE_SPLIT_TEST, NW * W, &te, err);
    core_train_cfg c = core_train_defaults();
    c.method = !strcmp(argv[1], "pgd") ? CORE_METHOD_PGD : CORE_METHOD_CLEAN; c.epochs = atoi(argv[3]);
    c.val_size = 2000; c.val_robust_size = 0; c.seed = 5; c.eps = EPS;
    core_trainer *t; double t0 = now();
    if (core_trainer_create(&c, argc > 4 ? argv[4] : "cnn-small", &tr, &t, err) || core_trainer_run(t, NULL, err) < 0) { fprintf(stderr, "%s\n", err); return 1; }
    fprintf(stderr, "trained in %.0f s\n", now() - t0);
    m = t->model; core_model_reserve(m, 250, err); C = m->nclass; Dd = core_drift_feat_dim(m);
    int n = t->split.nval; size_t dim = core_shape_size(m->in);
    float *x = malloc(sizeof(float) * dim * n), *xc = malloc(sizeof(float) * dim * n); int *y = malloc(sizeof(int) * n);
    float *lg = malloc(sizeof(float) * n * C), *ft = malloc(sizeof(float) * n * Dd);
    core_dataset_gather(&tr, t->split.val, n, x, y);
    core_drift_outputs(m, x, n, lg, ft); refok = malloc(n); int pred[2000], k = 0;
    core_drift_summaries(lg, n, C, 1, NULL, NULL, NULL, NULL, NULL, pred);
    for (int i = 0; i < n; i++) { refok[i] = pred[i] == y[i]; k += refok[i]; }
    T = core_temperature_fit(lg, y, n, C); ref = (core_drift_set){n, C, Dd, lg, ft};
    printf("model %s, %s-trained on %d examples x %d epochs; reference: %d held-out, accuracy %.3f, T %.3f\n\n",
           argc > 4 ? argv[4] : "cnn-small", argv[1], tr.n - n, c.epochs, n, (double)k / n, T);
    profs = malloc(sizeof(float) * core_drift_profile_len(C) * 64);
    for (int kk = 0; kk < CORE_NCORRUPTIONS; kk++) for (int s = 1; s <= 5; s++) {
        core_corrupt(kk, s, x, xc, W, m->in, 2, kk * 8 + s, err); add_shift(xc, y, W); }
    pgd(x, y, W, EPS, xc); add_shift(xc, y, W);
    float *tx = malloc(sizeof(float) * dim * NW * W), *tc = malloc(sizeof(float) * dim * NW * W); int ty[NW * W], idx[NW * W];
    for (int i = 0; i < NW * W; i++) idx[i] = i;
    core_dataset_gather(&te, idx, NW * W, tx, ty);
    core_drift_cfg cfg; core_drift_cfg_defaults(&cfg);
    printf("| condition | alarms | true acc | ATC | ATC shift-matched | CBPE |\n|---|---|---|---|---|---|\n");
    float *wl = malloc(sizeof(float) * W * C), *wf = malloc(sizeof(float) * W * Dd);
    for (int cond = -1; cond < CORE_NCORRUPTIONS * 3 + 2; cond++) {
        char name[64];
        if (cond < 0) { memcpy(tc, tx, sizeof(float) * dim * NW * W); snprintf(name, sizeof name, "clean"); }
        else if (cond < CORE_NCORRUPTIONS * 3) { int kk = cond / 3, s = 1 + 2 * (cond % 3);
            core_corrupt(kk, s, tx, tc, NW * W, m->in, 1, 9, err); snprintf(name, sizeof name, "%s %d", core_corruption_name(kk), s); }
        else { float e = cond == CORE_NCORRUPTIONS * 3 ? EPS / 2 : EPS; pgd(tx, ty, NW * W, e, tc); snprintf(name, sizeof name, "PGD eps %.2f", e); }
        int alarms = 0; double acc = 0, atc = 0, atcs = 0, cbpe = 0;
        for (int w = 0; w < NW; w++) {
            core_drift_outputs(m, tc + dim * W * w, W, wl, wf);
            core_drift_set win = {W, C, Dd, wl, wf}; core_drift_result r; double est = 0;
            cfg.seed = 1 + w; core_drift_test(&ref, refok, &win, T, &cfg, &r, err);
            core_drift_matched_atc(sh, nsh, wl, W, C, T, &est);
            core_drift_summaries(wl, W, C, 1, NULL, NULL, NULL, NULL, NULL, pred);
            int ok = 0; for (int i = 0; i < W; i++) ok += pred[i] == ty[w * W + i];
            alarms += r.alarm; acc += ok / (double)W; atc += r.atc; atcs += est; cbpe += r.cbpe;
        }
        printf("| %s | %d/%d | %.3f | %.3f | %.3f | %.3f |\n", name, alarms, NW, acc / NW, atc / NW, atcs / NW, cbpe / NW);
        fflush(stdout);
    }
    double t1 = now(); for (int r = 0; r < 4; r++) core_drift_outputs(m, tx, NW * W, lg, ft);
    printf("\nscoring throughput (core forward + features, batches of 250, 1 process): %.0f images/s\n", 4.0 * NW * W / (now() - t1));
    return 0;
}
