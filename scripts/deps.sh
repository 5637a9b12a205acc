#!/bin/sh
# deps.sh - install the Debian packages advd needs, only when one is missing.
#
#   scripts/deps.sh              build and test dependencies
#   scripts/deps.sh SET...       the same plus each named set:
#                                bench  python3-torch for the PyTorch peer
#                                python the Python client's optional helpers
#                                       (numpy, torch, pandas, tqdm, Pillow)
#                                deb    dpkg-buildpackage, debhelper, lintian
#                                       (make deb, scripts/deb-test.sh)
#                                report tidy and chromium: advctl report's test
#                                       checks its HTML and renders it (make
#                                       check, make check-browser)
#                                fuzz   clang, its libFuzzer and OpenMP runtimes
#                                       (make fuzz)
#                                mpi    Open MPI (bin/advd-worker-mpi, jobs
#                                       with procs > 1, test_mpi)
#                                slurm  Slurm and munge (scripts/slurm-local.sh)
#
# Checks are local (pkg-config, dpkg, file tests), so this costs milliseconds
# when everything is there. As root it runs apt-get; otherwise it prints the
# exact command to run and fails.
set -u

missing=""
need_pc() { pkg-config --exists "$1" 2>/dev/null || missing="$missing $2"; }
need_file() { [ -e "$1" ] || missing="$missing $2"; }
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }

command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
need_pc libuv libuv1-dev
need_pc sqlite3 libsqlite3-dev
need_pc libpng libpng-dev
need_pc zlib zlib1g-dev
need_pc check check
need_pc jansson libjansson-dev
need_file /usr/include/x86_64-linux-gnu/cblas.h libopenblas-dev
[ -e /usr/include/cblas.h ] || [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || missing="$missing libopenblas-dev"
need_file /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz dataset-fashion-mnist
# make check runs the Python client's tests (tests/python) with Debian's python3.
/usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || missing="$missing python3-pytest"
# make check's shell tests: systemd-analyze verify (tests/test_systemd.sh),
# groff for the man pages (tests/test_man.sh).
need_cmd systemd-analyze systemd
need_cmd groff groff-base
for set in "$@"; do
    case $set in
    bench)
        /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1 || missing="$missing python3-torch python3-numpy"
        command -v /usr/bin/time >/dev/null 2>&1 || missing="$missing time" ;;
    python)
        for m in numpy:python3-numpy torch:python3-torch pandas:python3-pandas \
                 tqdm:python3-tqdm PIL:python3-pil; do
            /usr/bin/python3 -c "import ${m%%:*}" >/dev/null 2>&1 || missing="$missing ${m#*:}"
        done ;;
    report)
        need_cmd tidy tidy
        need_cmd chromium chromium ;;
    fuzz)
        need_cmd clang clang
        need_file "$(echo /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a)" \
            libclang-rt-14-dev
        need_file /usr/lib/llvm-14/lib/libomp.so libomp-14-dev ;;
    mpi)
        need_cmd mpirun openmpi-bin
        need_pc ompi-c libopenmpi-dev ;;
    slurm)
        need_cmd slurmctld slurm-wlm
        need_cmd munged munge ;;
    deb)
        need_cmd dpkg-buildpackage dpkg-dev
        need_cmd dh debhelper
        need_cmd dh_python3 dh-python
        need_cmd fakeroot fakeroot
        need_cmd lintian lintian
        dpkg -s build-essential >/dev/null 2>&1 || missing="$missing build-essential" ;;
    *) ;;
    esac
done

# Remove duplicates, keep order.
missing=$(printf '%s\n' $missing | awk 'NF && !seen[$0]++' | tr '\n' ' ')
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends $missing"
if [ "$(id -u)" != 0 ]; then
    echo "advd: missing packages:$missing" >&2
    echo "advd: run as root: apt-get update && $cmd" >&2
    exit 1
fi
echo "advd: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    apt-get install -y --no-install-recommends $missing
}
