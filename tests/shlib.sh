# shlib.sh - what the shell tests (tests/test_*.sh) share, sourced from
# the tree's root after setting TEST to the test's name:
#   TEST=test_man; . tests/shlib.sh
# gives $ADVD and $ADVCTL (the programs under test: ADV_BIN, ADVCTL_BIN,
# else bin/), $tmp, a private folder removed at exit (after running $at_exit, a
# test's own clean-up), pass/fail lines counted in $fails, and finish,
# the summary line and the exit status.
ADVD=${ADV_BIN:-bin/advd}
ADVCTL=${ADVCTL_BIN:-bin/advctl}
tmp=$(mktemp -d "${ADV_TEST_TMP:-${TMPDIR:-/tmp}}/$TEST.XXXXXX") || exit 1
at_exit=:
trap 'eval "$at_exit"; rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
finish() {
    [ "$fails" = 0 ] && echo "$TEST: all passed" || echo "$TEST: $fails failed"
    [ "$fails" = 0 ]
}
