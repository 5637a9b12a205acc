#!/bin/sh
# transfer.sh - what starting from a trained model and augmenting against
# shift buy, measured through advd on a private socket and database (the
# README's "Starting from a trained model" figures):
#
# (a) pre-train cnn-small on Fashion-MNIST (PGD-7, eps 0.1, 1 epoch on the
#     first 50 000 images), then on a 3-class PNG folder grouped from the
#     images it never saw (scripts/make-transfer-set.py: tops / footwear /
#     bags) train the same budget three ways: from scratch, feature
#     extraction (--train-layers last) and full fine-tuning (--init);
#     clean and PGD-20 test accuracy, wall time and images/s of each.
# (b) the same PGD recipe on Fashion-MNIST with and without corruption
#     augmentation (gaussian_noise, brightness, gaussian_blur), evaluated
#     with every corruption: the mean over the six families held out of
#     training, and clean accuracy.
#
#   sh scripts/transfer.sh        (about 10 minutes on two quiet cores)
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/advd-transfer.XXXXXX")
export ADVD_SOCKET="$dir/advd.sock"
/usr/bin/python3 scripts/make-transfer-set.py "$dir/tset" >/dev/null
bin/advd --foreground --socket "$ADVD_SOCKET" --db "$dir/advd.db" 2>"$dir/advd.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 100); do bin/advctl ping >/dev/null 2>&1 && break; sleep 0.1; done

run() { # NAME ARGS...: submit, wait, print one row
    name=$1
    shift
    job=$(bin/advctl submit --name "$name" "$@")
    bin/advctl watch "$job" >/dev/null
    bin/advctl status "$job" --json >"$dir/$job.json"
    bin/advctl metrics "$job" --json >"$dir/$job.m.json"
    /usr/bin/python3 - "$dir/$job.json" "$dir/$job.m.json" "$name" "$job" <<'PY'
import json, sys
st, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["metrics"]
last = {r["key"]: r["value"] for r in m}
ips = [r["value"] for r in m if r["key"] == "images_per_s"]
print(f"{sys.argv[3]:<22} job {sys.argv[4]:>3}  {st['state']:<9} clean {100 * last.get('test_clean_acc', 0):5.1f}%  "
      f"pgd20 {100 * last.get('test_pgd20_acc', 0):5.1f}%  {st['finished'] - st['started']:6.1f} s  "
      f"{sum(ips) / max(len(ips), 1):7.0f} img/s")
PY
    echo "$job" >"$dir/last"
}

echo "== (a) transfer to tops / footwear / bags ($dir/tset)"
run pretrain --model cnn-small --epochs 1 --train-limit 50000 --eps 0.1 --steps 7
parent=$(cat "$dir/last")
set -- --dataset "png:$dir/tset" --model cnn-small --epochs 2 --eps 0.1 --steps 7 \
    --val-size 300 --val-robust-size 100
run scratch "$@"
run feature-extraction "$@" --init "$parent" --train-layers last
run fine-tune "$@" --init "$parent"
echo "== clean training only, to isolate the frozen backward pass's saving"
run clean-all "$@" --init "$parent" --method clean
run clean-last "$@" --init "$parent" --method clean --train-layers last

echo "== (b) corruption augmentation, Fashion-MNIST"
set -- --model cnn-small --epochs 1 --train-limit 20000 --eps 0.1 --steps 7
run plain "$@"
a=$(cat "$dir/last")
run augmented "$@" --augment-corruptions gaussian_noise,brightness,gaussian_blur --augment-prob 0.5
b=$(cat "$dir/last")
for j in "$a" "$b"; do
    e=$(bin/advctl eval "$j" --attack pgd --steps 10 --limit 1000 --corruptions --no-calibration)
    bin/advctl watch "$e" >/dev/null
done
bin/advctl compare "$a" "$b"
bin/advctl results "$b" | sed -n '/^corruptions/,$p'
