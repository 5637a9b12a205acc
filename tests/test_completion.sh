#!/bin/bash
# test_completion.sh - the bash completion of advctl
# (etc/bash-completion/advctl) against the real advctl and a real advd on
# a temporary socket: commands, a command's options, an option's choices,
# file values, and job numbers from the daemon.
#
#   ADV_BIN=bin/advd ADVCTL_BIN=bin/advctl tests/test_completion.sh
set -u
cd "$(dirname "$0")/.." || exit 1
TEST=test_completion
. tests/shlib.sh
daemon=""
at_exit='[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null'

. etc/bash-completion/advctl
complete -p advctl >/dev/null || fail "the file registers no completion for advctl"

# complete WORD... : the candidates for the last word, sorted, one line.
complete_line() {
    COMP_WORDS=("$ADVCTL" "$@")
    COMP_CWORD=$#
    COMPREPLY=()
    _advctl 2>/dev/null
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
expect() { # label expected words...
    local label=$1 want=$2
    shift 2
    local got
    got=$(complete_line "$@")
    [ "$got" = "$want" ] && pass "$label" || fail "$label: got '$got', want '$want'"
}
contains() { # label word words...
    local label=$1 word=$2
    shift 2
    local got
    got=" $(complete_line "$@") "
    [[ $got == *" $word "* ]] && pass "$label" || fail "$label: '$word' not in '$got'"
}

commands=$("$ADVCTL" help | awk '/^commands:/ { f = 1; next } f && NF == 0 { exit } f { print $1 }' |
    sort | tr '\n' ' ' | sed 's/ $//')
expect "every command of 'advctl help'" "$commands" ""
starting() { tr ' ' '\n' <<<"$commands" | grep "^$1" | tr '\n' ' ' | sed 's/ $//'; }
expect "commands by prefix" "$(starting s)" s
expect "global options" "--json" --js
expect "help COMMAND" "$(starting c)" help c
expect "options of submit" "--epochs --eps" submit --ep
expect "an option's choices" "adam sgd" submit --optimizer ""
expect "choices without the placeholder" "best latest" eval 1 --checkpoint ""
contains "options after the job" "--explain-limit" eval 1 --explain-
contains "a file value" "Makefile" export 1 -o Ma

"$ADVD" --socket "$tmp/s" --db "$tmp/db" --foreground 2>"$tmp/log" &
daemon=$!
for _ in $(seq 100); do
    "$ADVCTL" --socket "$tmp/s" ping >/dev/null 2>&1 && break
    sleep 0.1
done
for _ in 1 2; do
    "$ADVCTL" --socket "$tmp/s" submit --epochs 1 --train-limit 512 --val-size 256 \
        --val-robust-size 64 >/dev/null || fail "submit"
done
"$ADVCTL" --socket "$tmp/s" cancel 2 >/dev/null
"$ADVCTL" --socket "$tmp/s" cancel 1 >/dev/null
expect "job numbers from the daemon (--socket on the line)" "1 2" --socket "$tmp/s" status ""
expect "job numbers with --socket=PATH" "1 2" "--socket=$tmp/s" cancel ""
ADVD_SOCKET=$tmp/s expect "job numbers from ADVD_SOCKET" "1 2" compare 1 ""
expect "job numbers as an option's value (--init JOB)" "1 2" --socket "$tmp/s" submit --init ""
expect "no job numbers from a dead socket" "" --socket "$tmp/none" status ""

finish
