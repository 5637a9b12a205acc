/*
 * testutil.h - shared helpers for the Check test programs.
 *
 * Every tests/test_*.c is a program of its own: it defines one suite
 * function and ends with ADV_TEST_MAIN(that_function).
 */
#ifndef ADV_TESTUTIL_H
#define ADV_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary directory for this test (mkdtemp under $TMPDIR). */
static inline void adv_test_tmpdir(char *out, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, len, "%s/advd-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(out));
}

#define ADV_TEST_MAIN(suite_fn)                                   \
    int main(void)                                                \
    {                                                             \
        SRunner *sr = srunner_create(suite_fn());                 \
        srunner_run_all(sr, CK_NORMAL);                           \
        int failed = srunner_ntests_failed(sr);                   \
        srunner_free(sr);                                         \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;         \
    }

#endif
