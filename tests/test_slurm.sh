#!/bin/sh
# test_slurm.sh - advd's Slurm launcher against a real one-node Slurm
# cluster (scripts/slurm-local.sh: munged, slurmctld and slurmd from
# Debian's slurm-wlm and munge, started here under $tmp): a procs = 2 job
# runs to the end through salloc + srun, squeue shows it while it runs,
# and `advctl cancel` of another ends its Slurm job (squeue empty) and
# every rank. Skips, saying why, without Slurm, Open MPI's worker or root.
TEST=test_slurm; . tests/shlib.sh
worker=$(dirname "$ADVD")/advd-worker-mpi
skip() { echo "$TEST: skipped: $*"; exit 0; }
command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 ||
    skip "no slurm-wlm or munge (scripts/deps.sh slurm installs them)"
[ -x "$worker" ] || skip "no $worker (built where Open MPI is installed)"
[ "$(id -u)" = 0 ] || skip "slurmd needs root to start jobs"
[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || skip "no Fashion-MNIST"

export SLURM_LOCAL_DIR=$tmp/slurm
slurm_env=$(sh scripts/slurm-local.sh start 2>"$tmp/slurm-start.log") || {
    cat "$tmp/slurm-start.log"
    fail "the one-node cluster did not start"
    finish
    exit
}
eval "$slurm_env"
at_exit='kill $daemon 2>/dev/null; sh scripts/slurm-local.sh stop 2>/dev/null'

sock=$tmp/advd.sock
"$ADVD" --foreground --socket "$sock" --db "$tmp/advd.db" --threads 1 --final-eval-limit 100 \
    --grace 5 --launcher slurm --worker-mpi "$(cd "$(dirname "$worker")" && pwd)/advd-worker-mpi" \
    >"$tmp/advd.log" 2>&1 &
daemon=$!
i=0
until grep -q "listening on" "$tmp/advd.log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
done
ctl() { "$ADVCTL" --socket "$sock" "$@"; }
state() { ctl --json status "$1" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }
# wait_state JOB STATE SECONDS
wait_state() {
    n=0
    while [ "$(state "$1")" != "$2" ] && [ $n -lt $(($3 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
    [ "$(state "$1")" = "$2" ]
}
spec() {
    echo "{\"kind\":\"train\",\"model\":\"conv8k3p1 relu maxpool2 fc10\",\"epochs\":$1," \
         "\"train_limit\":512,\"val_size\":0,\"val_robust_size\":0,\"batch\":64,\"steps\":3," \
         "\"procs\":2}" > "$tmp/job.json"
    ctl submit "$tmp/job.json"
}

job=$(spec 30)
seen=
n=0
while [ $n -lt 600 ] && [ "$(state "$job")" != succeeded ] && [ "$(state "$job")" != failed ]; do
    squeue -h -n "advd-$job" -o %j 2>/dev/null | grep -q "advd-$job" && seen=1
    sleep 0.1; n=$((n + 1))
done
[ "$(state "$job")" = succeeded ] && pass "a procs = 2 job ran to the end through Slurm" ||
    fail "job $job: $(ctl status "$job" | grep error) $(tail -5 "$tmp/advd.log")"
[ -n "$seen" ] && pass "squeue showed advd-$job while it ran" || fail "squeue never showed advd-$job"
grep -q "processes: salloc -n 2 -J advd-$job .*srun -n 2 --input=0 --mpi=pmix" "$tmp/advd.log" &&
    pass "the daemon logged the salloc + srun command line" || fail "no launcher line in the log"
grep -q "rank 1: advd worker: parameters' crc32" "$tmp/advd.log" &&
    pass "rank 1's stderr reached the log, tagged" || fail "no tagged line of rank 1 in the log"

job=$(spec 10000)
n=0
until squeue -h -n "advd-$job" -o %T 2>/dev/null | grep -q RUNNING || [ $n -gt 300 ]; do
    sleep 0.1; n=$((n + 1))
done
sleep 2
ctl cancel "$job" >/dev/null
wait_state "$job" cancelled 60 && pass "advctl cancel ended the Slurm job" ||
    fail "job $job is $(state "$job") after cancel"
n=0
while squeue -h -n "advd-$job" 2>/dev/null | grep -q . && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
squeue -h -n "advd-$job" 2>/dev/null | grep -q . && fail "squeue still shows advd-$job" ||
    pass "squeue no longer shows advd-$job"
pgrep -f "advd-worker-mpi --worker" >/dev/null && fail "a rank still runs: $(pgrep -af "advd-worker-mpi --worker")" ||
    pass "no rank left"
finish
