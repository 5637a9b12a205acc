#!/bin/sh
# fuzz.sh - run every libFuzzer harness in DIR (make fuzz builds them into
# build-fuzz/fuzz) and print one line of figures per harness.
#
#   scripts/fuzz.sh DIR            run them all, then the table
#   scripts/fuzz.sh --report DIR   only the table, from the logs (also of
#                                  runs still going: their figures so far)
#   FUZZ_S      seconds per harness (60)
#   FUZZ_JOBS   harnesses at once (1)
#   FUZZ_WORK   where each harness's growing corpus, logs and crash inputs
#               go (build-fuzz/run): WORK/NAME/{corpus/,log,runs,crash-*}
#
# Each harness starts from its seed corpus (tests/fuzz/corpus/NAME) plus
# what earlier runs in WORK found, so runs of the same WORK add up to one
# campaign. Columns, from the last run's log (libFuzzer's last status line
# and final stats): executions, executions per second, corpus inputs and
# coverage (edges); crashes: inputs saved as WORK/NAME/crash-*, leak-*,
# timeout-* or oom-* by any run (libFuzzer stops at the first; move one
# away once fixed and kept in tests/fuzz/regress/NAME); then the totals of
# every run in WORK (WORK/NAME/runs, a line "executions seconds" each).
# Exits 1 when any harness has a crash input.
set -u
work=${FUZZ_WORK:-build-fuzz/run}

# The last run's figures from its log: executions rate corpus edges.
figures() {
    awk '
        /^#[0-9]+/ && / cov: / {
            execs = substr($1, 2)
            for (i = 1; i < NF; i++) {
                if ($i == "cov:") cov = $(i + 1)
                if ($i == "corp:") { corp = $(i + 1); sub(/\/.*/, "", corp) }
                if ($i == "exec/s:") rate = $(i + 1)
            }
        }
        /^stat::number_of_executed_units:/ { execs = $2 }
        /^stat::average_exec_per_sec:/ { rate = $2 }
        END { print (execs == "" ? 0 : execs), (rate == "" ? 0 : rate), corp, cov }
    ' "$1" 2>/dev/null
}

run_one() {
    name=$(basename "$1")
    mkdir -p "$work/$name/corpus"
    start=$(date +%s)
    "$1" -max_total_time="${FUZZ_S:-60}" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$work/$name/" "$work/$name/corpus" "tests/fuzz/corpus/$name" \
        >"$work/$name/log" 2>&1
    set -- $(figures "$work/$name/log")
    echo "$1 $(($(date +%s) - start))" >>"$work/$name/runs"
}

report() {
    name=$(basename "$1")
    crashes=$(find "$work/$name" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' \
                -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null | wc -l)
    set -- $(figures "$work/$name/log") - - - -
    total=$(awk '{ e += $1; s += $2 } END { printf "%d %.3f", e, s / 3600 }' \
                "$work/$name/runs" 2>/dev/null)
    printf '%-17s %12s %9s %7s %7s %8d %14s %6s\n' "$name" "$1" "$2" "$3" "$4" "$crashes" \
        ${total:-0 0}
    [ "$crashes" -eq 0 ]
}

case ${1:-} in
--one) run_one "$2"; exit 0 ;;
--report) dir=${2:?usage: fuzz.sh --report DIR} ;;
*)
    dir=${1:?usage: fuzz.sh DIR}
    ls "$dir"/fuzz_* | xargs -P "${FUZZ_JOBS:-1}" -n 1 sh "$0" --one ;;
esac
printf '%-17s %12s %9s %7s %7s %8s %14s %6s\n' harness executions execs/s corpus edges crashes \
    total_execs hours
status=0
for bin in "$dir"/fuzz_*; do
    report "$bin" || status=1
done
exit $status
