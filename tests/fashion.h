/*
 * fashion.h - the Fashion-MNIST fixture of the core tests that train
 * (test_train.c, test_transfer.c): the first FASHION_TRAIN training and
 * FASHION_TEST test images, loaded once per test program. Define both
 * counts before including.
 */
#ifndef ADV_FASHION_H
#define ADV_FASHION_H

#include "core/data.h"
#include "testutil.h"

static core_dataset train_set, test_set;

static void load_data(void)
{
    char err[CORE_ERRLEN], dir[4096];
    core_data_format fmt;
    ck_assert(core_data_resolve("fashion-mnist", &fmt, dir, err) == 0);
    ck_assert_msg(core_dataset_load(fmt, dir, CORE_SPLIT_TRAIN, FASHION_TRAIN, &train_set, err) == 0,
                  "%s", err);
    ck_assert_msg(core_dataset_load(fmt, dir, CORE_SPLIT_TEST, FASHION_TEST, &test_set, err) == 0,
                  "%s", err);
}

static void free_data(void)
{
    core_dataset_free(&train_set);
    core_dataset_free(&test_set);
}

#endif
