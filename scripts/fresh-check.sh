#!/bin/sh
# fresh-check.sh - the README's first two commands as a new user meets them:
# on a machine without the build-time packages, in a fresh clone.
#
#   sh scripts/fresh-check.sh [--dataset] [REPO]
#
# As root: removes libuv1-dev, libjansson-dev and check (with --dataset also
# dataset-fashion-mnist, a download of about 30 MB to get back), clones REPO
# (default: this checkout's HEAD) into a temporary directory, then runs
# `make demo` and `make check` there exactly as the README writes them, each
# once, and prints each one's exit status and wall time. Exits non-zero when
# either failed. The packages end up installed again by the commands
# themselves (that is the point); the clone is removed unless one failed.
#
# Not part of .ci/run: it changes the machine's packages and takes minutes.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
remove="libuv1-dev libjansson-dev check"
repo=$here
for a in "$@"; do
    case $a in
    --dataset) remove="$remove dataset-fashion-mnist" ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) repo=$a ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-check: run as root (it removes packages)" >&2; exit 2; }

echo "== removing:$remove" | sed 's/:/: /'
DEBIAN_FRONTEND=noninteractive apt-get remove -y -q $remove >/dev/null ||
    { echo "fresh-check: cannot remove the packages" >&2; exit 2; }
for p in $remove; do
    dpkg -s "$p" >/dev/null 2>&1 && { echo "fresh-check: '$p' is still installed" >&2; exit 2; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/advd-fresh.XXXXXX")
git clone -q "$repo" "$dir/advd" || { echo "fresh-check: cannot clone '$repo'" >&2; exit 2; }
cd "$dir/advd" || exit 2
echo "== fresh clone of $(git rev-parse --short HEAD) in $dir/advd"

fail=0
for cmd in "make demo" "make check"; do
    log="$dir/$(echo "$cmd" | tr ' ' '-').log"
    t0=$(date +%s)
    $cmd >"$log" 2>&1
    rc=$?
    t1=$(date +%s)
    printf '== %-10s exit %d in %dm%02ds (log %s)\n' "$cmd" "$rc" $(((t1 - t0) / 60)) \
        $(((t1 - t0) % 60)) "$log"
    if [ "$rc" != 0 ]; then
        fail=1
        tail -20 "$log"
    fi
done
if [ "$fail" = 0 ]; then
    rm -rf "$dir"
    echo "fresh-check: passed"
else
    echo "fresh-check: FAILED (kept $dir)"
fi
exit $fail
