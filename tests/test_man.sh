#!/bin/sh
# test_man.sh - the manual pages against the programs' own help texts.
#
#   ADVCTL_BIN=bin/advctl ADV_BIN=bin/advd tests/test_man.sh
#
# advctl(1): every command of `advctl help` has a subsection under COMMANDS
# (and every subsection is a command); every option in `advctl help
# COMMAND` appears in that command's subsection; the global options of
# `advctl help` appear under OPTIONS. advd(8): every option of
# `advd --help` appears under OPTIONS, with its configuration-file key.
# Both pages render with groff -ww without a warning. The help texts are
# parsed, so a new command or option fails here until the page has it.
set -u
cd "$(dirname "$0")/.." || exit 1
TEST=test_man
. tests/shlib.sh

# Rendered as make install fills it in, one paragraph per line (a line
# length no paragraph reaches, so no option is broken or hyphenated).
render() { # page out
    sed -e 's|@SYSCONFDIR@|/etc|g' -e 's|@VERSION@|0.0|g' "$1" |
        LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -P-cbou -rLL=5000n 2>"$2.warn" |
        sed 's/\xe2\x88\x92/-/g; s/\xe2\x80\x90/-/g' >"$2"
    if [ -s "$2.warn" ]; then
        fail "groff warns on $1: $(head -n 3 "$2.warn" | tr '\n' ' ')"
    else
        pass "groff -ww renders $1 without a warning"
    fi
}

# The lines of section NAME (a line in column 0), up to the next section.
section() { # file NAME
    awk -v s="$2" '/^[^ ]/ { on = ($0 == s); next } on' "$1"
}

# The lines of subsection NAME (indented 3, as .SS) of a section's text.
subsection() { # file NAME
    awk -v s="$2" '/^   [^ ]/ { split(substr($0, 4), w, " "); on = (w[1] == s); next } on' "$1"
}

# Options in a usage text: -x and --long-name, not the dashes inside words.
options_of() {
    grep -oE -- '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' | sed 's/^[^-]*//' | sort -u
}

has_option() { # file option
    grep -qE -- "(^|[^A-Za-z0-9-])$2([^A-Za-z0-9-]|\$)" "$1"
}

for p in "$ADVCTL" "$ADVD"; do
    [ -x "$p" ] || { echo "FAIL no program '$p' (build first)"; exit 1; }
done
render man/advctl.1 "$tmp/advctl.txt"
render man/advd.8 "$tmp/advd.txt"

# ---------------------------------------------------------------- advctl
"$ADVCTL" help >"$tmp/help" || fail "advctl help exits non-zero"
commands=$(awk '/^commands:/ { f = 1; next } f && NF == 0 { exit } f { print $1 }' "$tmp/help")
[ -n "$commands" ] || fail "no commands parsed from 'advctl help'"
section "$tmp/advctl.txt" COMMANDS >"$tmp/commands.txt"
section "$tmp/advctl.txt" OPTIONS >"$tmp/options.txt"

n=0
# Global options: the help without its table of commands (whose summaries
# may name a command's option).
for o in $(awk '/^commands:/ { f = 1; next } f && NF == 0 { f = 0 } !f' "$tmp/help" | options_of); do
    n=$((n + 1))
    has_option "$tmp/options.txt" "$o" || fail "advctl(1) OPTIONS lacks '$o' of 'advctl help'"
done
pass "advctl(1) OPTIONS: $n global options checked"

for c in $commands; do
    subsection "$tmp/commands.txt" "$c" >"$tmp/cmd.txt"
    if [ ! -s "$tmp/cmd.txt" ]; then
        fail "advctl(1) COMMANDS has no subsection '$c'"
        continue
    fi
    "$ADVCTL" help "$c" >"$tmp/cmdhelp" || fail "advctl help $c exits non-zero"
    missing=""
    n=0
    for o in $(options_of <"$tmp/cmdhelp"); do
        n=$((n + 1))
        has_option "$tmp/cmd.txt" "$o" || missing="$missing $o"
    done
    if [ -n "$missing" ]; then
        fail "advctl(1) '$c' lacks:$missing"
    else
        pass "advctl(1) '$c': $n options"
    fi
done

# Every subsection names a real command (a removed one leaves no stale text).
for s in $(awk '/^   [^ ]/ { print $1 }' "$tmp/commands.txt"); do
    echo "$commands" | grep -qx -- "$s" || fail "advctl(1) documents '$s', which 'advctl help' lacks"
done

# ------------------------------------------------------------------ advd
"$ADVD" --help >"$tmp/dhelp" || fail "advd --help exits non-zero"
section "$tmp/advd.txt" OPTIONS >"$tmp/doptions.txt"
missing=""
n=0
for o in $(options_of <"$tmp/dhelp"); do
    n=$((n + 1))
    has_option "$tmp/doptions.txt" "$o" || missing="$missing $o"
    case $o in
    --config | --help | --version) ;;
    *)
        key=$(echo "${o#--}" | tr - _)
        grep -qw -- "$key" "$tmp/doptions.txt" || missing="$missing $key(key)" ;;
    esac
done
[ "$n" -gt 10 ] || fail "only $n options parsed from 'advd --help'"
if [ -n "$missing" ]; then
    fail "advd(8) OPTIONS lacks:$missing"
else
    pass "advd(8) OPTIONS: $n options and their keys"
fi

finish
