#!/bin/bash
# soak-crash.sh - daemon crash soak (issue 16): a training job while advd is
# killed with SIGKILL at KILLS random moments (0.1 to 1 s apart), restarted
# each time on the same database; meanwhile the same spec uninterrupted on a
# second daemon and database; then the checks:
#   - the final weights are the uninterrupted run's bit for bit (advctl
#     export of both, cmp);
#   - every metric row (job, key, step) appears exactly once, and the rows
#     are the uninterrupted run's, values included (timings aside);
#   - the checkpoint list is consistent: every row's bytes (its file in
#     <db>.ckpt/, or its blob in a database from before schema 4) have the
#     row's size and crc32, and no file lies there that no row names.
# Prints the kills survived; exit status 0 when every check passes.
#   BIN=build/bin scripts/soak-crash.sh [KILLS]     (default 30; about 3 minutes)
# Needs the sqlite3 command-line shell (Debian: sqlite3).
set -u
cd "$(dirname "$0")/.." || exit 1
kills=${1:-30}
bin=${BIN:-bin}
command -v sqlite3 >/dev/null || { echo "soak-crash: needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/advd-soak.XXXXXX") || exit 1
pid='' straight=''
trap 'kill -9 $pid $straight 2>/dev/null; rm -rf "$tmp"' EXIT
# About 30 ms an epoch on one thread: long enough for 30 kills.
cat >"$tmp/job.json" <<'EOF'
{"kind": "train", "name": "soak", "model": "conv4k3p1 relu maxpool2 fc10", "epochs": 1500,
 "train_limit": 256, "val_size": 64, "val_robust_size": 32, "batch": 64, "steps": 2,
 "seed": 11, "keep_checkpoints": 3}
EOF

start() { # DIR: advd on DIR/advd.sock and DIR/advd.db, ready
    "$bin/advd" --foreground --socket "$1/advd.sock" --db "$1/advd.db" --threads 1 \
        --final-eval-limit 100 2>>"$1/advd.log" &
    pid=$!
    for _ in $(seq 400); do
        ADVD_SOCKET=$1/advd.sock "$bin/advctl" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "soak-crash: advd did not start: $(tail -3 "$1/advd.log")" >&2
    exit 1
}
stop() { kill "$pid" && wait "$pid" 2>/dev/null; pid=; }
ctl() { ADVD_SOCKET=$dir/advd.sock "$bin/advctl" "$@"; }
field() { ctl --json status 1 | sed -n "s/.*\"$1\": *\"*\([a-z0-9]*\).*/\1/p"; }

dir=$tmp/straight # the reference, beside the soak
mkdir "$dir"
start "$dir"
straight=$pid
ctl submit "$tmp/job.json" >/dev/null || exit 1

dir=$tmp/soak
mkdir "$dir"
start "$dir"
ctl submit "$tmp/job.json" >/dev/null || exit 1
survived=0
t0=$(date +%s)
while [ "$survived" -lt "$kills" ]; do
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + 0.9 * r / 32768 }')"
    s=$(field state)
    [ "$s" = running ] || [ "$s" = queued ] || break
    kill -9 "$pid" && wait "$pid" 2>/dev/null
    survived=$((survived + 1))
    start "$dir"
done
ctl watch 1 >/dev/null 2>&1
echo "soak-crash: $survived of $kills kills survived in $(($(date +%s) - t0)) s;" \
    "job 1 $(field state) after $(field attempts) attempts"
ctl export 1 -o "$tmp/soak.safetensors" >/dev/null
stop

dir=$tmp/straight
pid=$straight straight=''
ctl watch 1 >/dev/null 2>&1
ctl export 1 -o "$tmp/straight.safetensors" >/dev/null
stop

fails=0
check() { # OK-MESSAGE FAIL-MESSAGE: counts a failure unless the last test passed
    if [ "$ok" = 1 ]; then echo "ok   $1"; else echo "FAIL $2"; fails=$((fails + 1)); fi
}

ok=0
[ -s "$tmp/soak.safetensors" ] && cmp -s "$tmp/soak.safetensors" "$tmp/straight.safetensors" && ok=1
check "final weights equal the uninterrupted run's ($(stat -c %s "$tmp/soak.safetensors") bytes)" \
    "final weights differ from the uninterrupted run's"

metrics() { # DB: job 1's metric rows, timings blanked
    sqlite3 "$1" "SELECT key, step, epoch, CASE WHEN key IN ('seconds', 'images_per_s')
                  THEN NULL ELSE value END FROM metrics WHERE job = 1 ORDER BY key, step"
}
rows=$(metrics "$tmp/soak/advd.db" | wc -l)
dups=$(sqlite3 "$tmp/soak/advd.db" "SELECT count(*) FROM (SELECT 1 FROM metrics
        GROUP BY job, key, step HAVING count(*) > 1)")
ok=0
[ "$dups" = 0 ] && [ "$rows" -gt 0 ] &&
    [ "$(metrics "$tmp/soak/advd.db")" = "$(metrics "$tmp/straight/advd.db")" ] && ok=1
check "$rows metric rows, each (job, key, step) once, equal to the uninterrupted run's" \
    "metric rows: $rows, $dups (job, key, step) more than once, or not the uninterrupted run's"

crc32() { gzip -c <"$1" | tail -c 8 | od -An -tu4 -N4 | tr -d ' '; } # gzip's trailer
db=$tmp/soak/advd.db
folder=$db.ckpt
if sqlite3 "$db" "PRAGMA table_info(checkpoints)" | grep -q '|file|'; then
    list="SELECT id, size, checksum, ifnull(file, '') FROM checkpoints"
else
    list="SELECT id, size, checksum, '' FROM checkpoints"
fi
ok=1 n=0
named=" "
while IFS='|' read -r id size sum file; do
    n=$((n + 1))
    if [ -n "$file" ]; then
        bytes=$folder/$file
        named="$named$file "
    else
        bytes=$tmp/blob
        sqlite3 "$db" "SELECT writefile('$bytes', state) FROM checkpoints WHERE id = $id" >/dev/null
    fi
    if [ ! -f "$bytes" ] || [ "$(stat -c %s "$bytes")" != "$size" ] ||
        [ "$(crc32 "$bytes")" != "$(((sum % 4294967296 + 4294967296) % 4294967296))" ]; then
        echo "     checkpoint $id: its bytes are missing or not its size and crc32"
        ok=0
    fi
done < <(sqlite3 "$db" "$list")
stray='' temps=0
for f in "$folder"/* "$folder"/.[!.]*; do
    [ -e "$f" ] || continue
    b=${f##*/}
    case "$b" in
    .*) temps=$((temps + 1)) ;;
    *) case "$named" in *" $b "*) ;; *) stray="$stray $b" ;; esac ;;
    esac
done
[ -z "$stray" ] || { echo "     files no checkpoint row names:$stray"; ok=0; }
check "$n checkpoints, each with its size and crc32; no stray files ($temps unfinished temporary files)" \
    "the checkpoint list is inconsistent"

[ "$fails" = 0 ] && echo "soak-crash: passed" || echo "soak-crash: $fails checks failed"
[ "$fails" = 0 ]
