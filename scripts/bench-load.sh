#!/bin/sh
# bench-load.sh - `make bench`, second part: advd's event loop under load
# (bin/advload starts its own daemon on a temporary socket and database):
# pipelined pings/s, submits/s, and an innocent client's ping latency under
# idle, slow-line, submit-burst and never-reading clients; medians of
# ROUNDS runs.
#   ROUNDS=5 sh scripts/bench-load.sh
set -eu
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
"$bin/advload" --advd "$bin/advd" --rounds "${ROUNDS:-3}"
