#!/bin/sh
# bench.sh - `make bench`: advbench against the PyTorch peer, every preset,
# batch 128, 2 threads, alternating runs (ours, peer, ...) with medians.
#   ITERS=5 ROUNDS=3 MODELS="cnn-small madry resnet-tiny" sh scripts/bench.sh
set -eu
cd "$(dirname "$0")/.."
peer=${PEER:-../shared/peers/torch_peer.py}
# The machine's FMA ceiling, for reading the GFLOP/s figures below.
bin/advbench peak --threads 2
for m in ${MODELS:-cnn-small madry resnet-tiny}; do
    bin/advbench bench --model "$m" --batch 128 --threads 2 --steps 7 --eps 0.1 \
        --iters "${ITERS:-5}" --rounds "${ROUNDS:-3}" --peer "$peer"
done
