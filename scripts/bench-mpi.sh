#!/bin/sh
# bench-mpi.sh - images/s of PGD-7 training on 1 process x 2 threads
# against 2 MPI ranks x 1 thread (issue 13), for cnn-small and resnet-tiny,
# and the time each rank spent in MPI_Allreduce per step. Runs the workers
# as the daemon would (a job line on stdin, checkpoints into a scratch
# folder); rounds alternate the two layouts and the median is reported.
#
#   sh scripts/bench-mpi.sh [ROUNDS]      (make bench-mpi; BIN=build/bin)
#
# Not a test: timings, on a quiet machine only.
set -eu
BIN=${BIN:-bin}
rounds=${1:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d /tmp/bench-mpi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -x "$BIN/advd-worker-mpi" ] || { echo "bench-mpi: no $BIN/advd-worker-mpi (needs Open MPI)" >&2; exit 1; }

# job MODEL LIMIT THREADS: the job line of one epoch of PGD-7, batch 128
job() {
    printf '{"type":"job","v":1,"job":1,"attempt":1,"threads":1,"final_eval_limit":1,'
    printf '"ckpt_dir":"%s","spec":{"kind":"train","model":"%s","method":"pgd","steps":7,' "$tmp" "$1"
    printf '"epochs":1,"batch":128,"train_limit":%d,"val_size":0,"val_robust_size":0,' "$2"
    printf '"seed":1,"threads":%d}}\n' "$3"
}

# feed JOBLINE CMD...: CMD with JOBLINE on stdin, kept open until CMD
# ends (a worker reads EOF on stdin as its daemon gone)
feed() {
    line=$1; shift
    rm -f "$tmp/in"; mkfifo "$tmp/in"
    "$@" <"$tmp/in" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    exec 3>"$tmp/in"
    echo "$line" >&3
    wait $pid || true
    exec 3>&-
}

# run MODEL LIMIT LAYOUT: prints "images/s allreduce-seconds-per-step"
run() {
    if [ "$3" = 1x2 ]; then
        feed "$(job "$1" "$2" 2)" "$BIN/advd" --worker
    else
        feed "$(job "$1" "$2" 1)" mpirun -np 2 --bind-to none "$BIN/advd-worker-mpi" --worker
    fi
    ips=$(sed -n 's/.*"images_per_s":\([0-9.e+]*\).*"type":"metrics".*/\1/p' "$tmp/out" | head -1)
    [ -n "$ips" ] || ips=$(grep -o '"images_per_s":[0-9.e+]*' "$tmp/out" | tail -1 | cut -d: -f2)
    ar=$(sed -n 's/^rank 0: advd worker: \([0-9]*\) all-reduces took \([0-9.]*\) s.*/\2 \1/p' "$tmp/err")
    size=$(sed -n 's/^rank 0: .*(\([0-9]*\) parameters, \([0-9.e+]*\) forward FLOPs.*/\1 \2/p' "$tmp/err")
    [ -n "$size" ] && echo "$size" >"$tmp/size"
    steps=$(($2 / 128))
    if [ -n "$ar" ]; then
        set -- $ar
        echo "$ips $(echo "$1 $steps" | awk '{printf "%.4f", $1 / $2}')"
    else
        echo "$ips -"
    fi
    rm -f "$tmp"/*.state
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

printf 'model\tlayout\timages/s (median of %d)\tGFLOP/s\tallreduce ms/step\n' "$rounds"
: >"$tmp/paper"
for spec in "cnn-small 2560" "resnet-tiny 640"; do
    set -- $spec
    model=$1 limit=$2
    : >"$tmp/1x2"; : >"$tmp/2x1"
    r=0
    while [ $r -lt "$rounds" ]; do
        run "$model" "$limit" 1x2 >>"$tmp/1x2"
        run "$model" "$limit" 2x1 >>"$tmp/2x1"
        r=$((r + 1))
    done
    a=$(cut -d' ' -f1 "$tmp/1x2" | median); b=$(cut -d' ' -f1 "$tmp/2x1" | median)
    ar=$(cut -d' ' -f2 "$tmp/2x1" | median)
    set -- $(cat "$tmp/size")  # parameters, forward FLOPs of an image
    # PGD-7 training of an image: 7 x (forward + input gradient) + forward,
    # backward and weight gradient = 17 forward passes (advbench's count)
    echo "$model $a $b $ar $1 $2" | awk '{f = 17 * $6
        printf "%s\t1x2\t%.0f\t%.0f\t-\n%s\t2x1\t%.0f\t%.0f\t%.1f\n", $1, $2, $2 * f / 1e9,
            $1, $3, $3 * f / 1e9, $4 * 1000
        printf "%s: 2x1 / 1x2 = %.3f\n", $1, $3 / $2}'
    echo "$model $1 $2 $b" >>"$tmp/paper"
done

# On paper: N nodes like this one (each at the 2x1 rate measured above),
# a ring all-reduce of S = 4 x parameters bytes per step: 2 (N - 1) / N x S
# bytes through each node's link, 2 (N - 1) latencies. The global batch B
# at which the all-reduce is at most 10 % of a step (no overlap):
# B / (N R) >= 9 t_ar.
echo
printf 'model\tnodes\tbytes/step/node\tFLOP/step/node (B=1024)\tt_ar 10GbE\tB for <=10%%\tt_ar IB100\tB for <=10%%\n'
while read -r model params flops rate; do
    for n in 8 64; do
        echo "$model $params $flops $rate $n" | awk '{
            S = 4 * $2; N = $5; R = $4; f = 17 * $3
            bytes = 2 * (N - 1) / N * S
            te = bytes / 1.25e9 + 2 * (N - 1) * 30e-6   # 10 GbE: 1.25 GB/s, 30 us
            ti = bytes / 12.5e9 + 2 * (N - 1) * 2e-6    # InfiniBand 100 Gb/s: 12.5 GB/s, 2 us
            printf "%s\t%d\t%.2f MB\t%.3g\t%.2f ms\t%d\t%.3f ms\t%d\n", $1, N, bytes / 1e6,
                f * 1024 / N, te * 1e3, int(9 * te * N * R + 0.999), ti * 1e3,
                int(9 * ti * N * R + 0.999)}'
    done
done <"$tmp/paper"
