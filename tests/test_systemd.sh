#!/bin/sh
# test_systemd.sh - the systemd units as make install writes them pass
# `systemd-analyze verify` (Debian's systemd package; no running systemd
# is needed), and the system config they name is one advd accepts.
#
#   ADV_BIN=bin/advd ADVCTL_BIN=bin/advctl tests/test_systemd.sh
#
# verify checks that ExecStart's program exists on the real root (with
# --root it would want a whole systemd tree there), so the units are
# installed with a temporary PREFIX, not a DESTDIR: their ExecStart then
# names a real file, the installed advd; MANPATH points at the installed
# man pages, which verify looks up for Documentation=. The user unit is
# verified by a user manager pointed at a private XDG_RUNTIME_DIR.
set -u
cd "$(dirname "$0")/.." || exit 1
TEST=test_systemd
. tests/shlib.sh

command -v systemd-analyze >/dev/null 2>&1 || {
    echo "FAIL no systemd-analyze: run scripts/deps.sh (Debian package systemd)"
    exit 1
}
p=$tmp/prefix
ADV_NO_USER=1 VERSION=0.0-test DESTDIR= PREFIX=$p BINDIR=$p/bin SBINDIR=$p/sbin SYSCONFDIR=$p/etc \
    DATADIR=$p/share MANDIR=$p/share/man COMPLETIONDIR=$p/share/bash-completion/completions \
    SYSTEMDSYSTEMUNITDIR=$p/lib/systemd/system SYSTEMDUSERUNITDIR=$p/lib/systemd/user \
    SYSUSERSDIR=$p/lib/sysusers.d BIN=$(dirname "$ADVD") \
    sh scripts/install.sh install >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; echo "FAIL scripts/install.sh install"; exit 1; }

verify() { # label unit [systemd-analyze options]
    label=$1 unit=$2
    shift 2
    # verify reports problems (unknown keys, bad values) on stderr and may
    # still exit 0: any output is a failure.
    if MANPATH=$p/share/man XDG_RUNTIME_DIR=$tmp/xdg systemd-analyze "$@" verify "$unit" >"$tmp/out" 2>&1 &&
        [ ! -s "$tmp/out" ]; then
        pass "systemd-analyze verify: the $label unit"
    else
        fail "systemd-analyze verify: the $label unit: $(cat "$tmp/out")"
    fi
}
mkdir -m 0700 "$tmp/xdg"
verify system "$p/lib/systemd/system/advd.service"
verify user "$p/lib/systemd/user/advd.service" --user

sys=$p/lib/systemd/system/advd.service
exec_line=$(sed -n 's/^ExecStart=//p' "$sys")
if [ "$exec_line" = "$p/sbin/advd --foreground --config $p/etc/advd/advd.conf" ]; then
    pass "system unit: ExecStart runs the installed advd with the installed config"
else
    fail "system unit: ExecStart is '$exec_line'"
fi
if grep -q '@[A-Z]*@' "$sys" "$p/lib/systemd/user/advd.service"; then
    fail "a unit keeps a @PLACEHOLDER@"
else
    pass "units: every @PLACEHOLDER@ filled in"
fi
missing=""
for key in User=advd StateDirectory=advd RuntimeDirectory=advd ProtectSystem=strict \
           ProtectHome=read-only NoNewPrivileges=yes PrivateTmp=yes; do
    grep -qx "$key" "$sys" || missing="$missing $key"
done
[ -z "$missing" ] && pass "system unit: user, state and runtime folders, hardening" ||
    fail "system unit lacks:$missing"

# The system config: every key one advd knows (--help runs after the file
# is read, so a bad key or value fails here), and the paths the unit's
# folders give.
if "$p/sbin/advd" --config "$p/etc/advd/advd.conf" --help >/dev/null 2>"$tmp/err"; then
    pass "advd accepts the installed system config"
else
    fail "advd rejects the installed system config: $(cat "$tmp/err")"
fi
missing=""
for kv in "socket = /run/advd/advd.sock" "socket_group = advd" "socket_mode = 0660" \
          "db = /var/lib/advd/advd.db"; do
    grep -qx "$kv" "$p/etc/advd/advd.conf" || missing="$missing '$kv'"
done
[ -z "$missing" ] && pass "system config: socket /run/advd/advd.sock 0660 group advd, db in /var/lib/advd" ||
    fail "system config lacks:$missing"

# For the record, not a pass/fail: systemd's own exposure score.
score=$(systemd-analyze security --offline=yes "$sys" 2>/dev/null | tail -n 1)
[ -n "$score" ] && echo "info $score"

finish
