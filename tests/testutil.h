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

/* 1 in a build under AddressSanitizer (make check-asan): tests that
 * measure a trained model's quality skip there (minutes of training, and
 * -O1's rounding trains another model than their tolerances describe);
 * the code they run is run by the other tests under the sanitizers. */
static inline int adv_test_under_asan(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#endif
#endif
    return 0;
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
