#!/bin/sh
# demo.sh - `make demo`: the whole service end to end on a private socket and
# database: start advd, PGD-train cnn-small on Fashion-MNIST (1 epoch, eps
# 0.1, PGD-7), then evaluate the checkpoint against a stronger attack
# (APGD-CE, 100 iterations, with the false-robustness sanity probes, and
# calibration, corruptions and explanations), print the results and draw
# adversarial examples and saliency maps as PNG files. The daemon stops
# when the script ends.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/advd-demo.XXXXXX")
export ADVD_SOCKET="$dir/advd.sock"
bin/advd --foreground --socket "$ADVD_SOCKET" --db "$dir/advd.db" 2>"$dir/advd.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; echo "daemon log: $dir/advd.log"' EXIT
for _ in $(seq 100); do
    bin/advctl ping >/dev/null 2>&1 && break
    sleep 0.1
done
echo "== advd is up on $ADVD_SOCKET"
job=$(bin/advctl submit --name demo --model cnn-small --method pgd --eps 0.1 --steps 7 --epochs 1)
echo "== training job $job: cnn-small, PGD-7 adversarial training, eps 0.1"
bin/advctl watch "$job"
ev=$(bin/advctl eval "$job" --attack apgd-ce --eps 0.1 --limit 1000 --corruptions --explain)
echo "== evaluation job $ev: APGD-CE at eps 0.1 on 1000 test images, with sanity probes,"
echo "   calibration, corruptions and explanations"
bin/advctl watch "$ev"
echo "== results of job $job"
bin/advctl results "$job"
echo "== pictures in $dir/pictures"
bin/advctl images "$job" --adversarial -n 16 -o "$dir/pictures/adversarial"
bin/advctl images "$job" --saliency -n 16 -o "$dir/pictures/saliency"
