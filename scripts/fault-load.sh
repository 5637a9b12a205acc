#!/bin/sh
# fault-load.sh - issue 16's load against a daemon that trains (bin/advload
# starts its own advd on a temporary socket and database):
#   1. 200 clients for LOAD_S seconds (default 60), each looping over connect,
#      submit, status and ping polls, cancel, watch and an abrupt hang-up,
#      while 800 idle connections are held (1000 at once): requests/s,
#      p50/p99 of status and ping, refusals, advd's RSS before, during and
#      after;
#   2. 1000 idle connections held while 20 clients keep connecting: none
#      refused, none of the idle ones dropped.
#   BIN=build/bin LOAD_S=60 sh scripts/fault-load.sh
set -eu
cd "$(dirname "$0")/.."
bin=${BIN:-bin}
"$bin/advload" --advd "$bin/advd" --mix 200 --idle 800 --seconds "${LOAD_S:-60}"
"$bin/advload" --advd "$bin/advd" --mix 20 --idle 1000 --seconds 20
