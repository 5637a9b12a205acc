#!/bin/sh
# test_install.sh - make install and make uninstall (scripts/install.sh and
# the Makefile's folders): an install into a DESTDIR puts every file in its
# place, a second install changes nothing, uninstall leaves the DESTDIR
# empty; an existing system config is kept on install, an edited one on
# uninstall; PREFIX=/usr puts the config in /etc.
#
#   ADV_BIN=bin/advd ADVCTL_BIN=bin/advctl tests/test_install.sh
set -u
cd "$(dirname "$0")/.." || exit 1
TEST=test_install
. tests/shlib.sh
BIN=$(dirname "$ADVD")

# scripts/install.sh with make's default folders under PREFIX ($1), into
# DESTDIR $2; the rest of the arguments: install or uninstall.
run_install() { # prefix destdir action
    ADV_NO_USER=1 VERSION=0.0-test DESTDIR=$2 PREFIX=$1 BINDIR=$1/bin SBINDIR=$1/sbin SYSCONFDIR=$1/etc \
        DATADIR=$1/share MANDIR=$1/share/man COMPLETIONDIR=$1/share/bash-completion/completions \
        SYSTEMDSYSTEMUNITDIR=$1/lib/systemd/system SYSTEMDUSERUNITDIR=$1/lib/systemd/user \
        SYSUSERSDIR=$1/lib/sysusers.d BIN=$BIN sh scripts/install.sh "$3" >"$tmp/log" 2>&1 ||
        { fail "install.sh $3 (PREFIX $1, DESTDIR $2): $(tail -n 3 "$tmp/log")"; return 1; }
}

# ------------------------------------------------- DESTDIR: all, then none
d=$tmp/root
L=$d/usr/local
run_install /usr/local "$d" install
missing=""
for f in bin/advctl sbin/advd share/man/man1/advctl.1.gz share/man/man8/advd.8.gz \
         share/bash-completion/completions/advctl lib/systemd/system/advd.service \
         lib/systemd/user/advd.service lib/sysusers.d/advd.conf etc/advd/advd.conf \
         share/advd/install-manifest; do
    [ -f "$L/$f" ] || missing="$missing $f"
done
[ -z "$missing" ] && pass "install into DESTDIR: every file in place" || fail "install lacks:$missing"
[ -x "$L/sbin/advd" ] && [ -x "$L/bin/advctl" ] && "$L/bin/advctl" help >/dev/null &&
    pass "installed programs run" || fail "installed programs do not run"
gzip -dc "$L/share/man/man8/advd.8.gz" | grep -q '^\.TH ADVD 8' &&
    ! gzip -dc "$L/share/man/man8/advd.8.gz" | grep -q '@[A-Z]*@' &&
    pass "man pages gzipped, placeholders filled" || fail "advd.8.gz is wrong"
grep -qx 'ExecStart=/usr/local/sbin/advd --foreground --config /usr/local/etc/advd/advd.conf' \
    "$L/lib/systemd/system/advd.service" && grep -qx 'ExecStart=/usr/local/sbin/advd --foreground' \
    "$L/lib/systemd/user/advd.service" && pass "units name the installed advd (not the DESTDIR)" ||
    fail "units' ExecStart: $(grep -h ExecStart "$L"/lib/systemd/*/advd.service)"

find "$d" | sort >"$tmp/first"
sort "$L/share/advd/install-manifest" >"$tmp/manifest1"
run_install /usr/local "$d" install
find "$d" | sort >"$tmp/second"
sort "$L/share/advd/install-manifest" >"$tmp/manifest2"
cmp -s "$tmp/first" "$tmp/second" && cmp -s "$tmp/manifest1" "$tmp/manifest2" &&
    pass "a second install changes no file list and no manifest" || fail "a second install differs"

run_install /usr/local "$d" uninstall
left=$(find "$d" -mindepth 1)
[ -z "$left" ] && pass "uninstall leaves the DESTDIR empty" || fail "uninstall leaves: $left"

# Folders that existed before stay, with their other files.
mkdir -p "$L/bin" && touch "$L/bin/other"
run_install /usr/local "$d" install && run_install /usr/local "$d" uninstall
[ -f "$L/bin/other" ] && [ -z "$(find "$d" -mindepth 1 ! -path "$L/bin/other" ! -path "$L/bin" \
    ! -path "$L" ! -path "$d/usr")" ] && pass "uninstall keeps folders and files it did not create" ||
    fail "uninstall removed too much or too little: $(find "$d")"

# ------------------------------------------- the config is the admin's
p=$tmp/prefix
mkdir -p "$p/etc/advd" && echo "workers = 3" >"$p/etc/advd/advd.conf"
run_install "$p" "" install
[ "$(cat "$p/etc/advd/advd.conf")" = "workers = 3" ] && grep -q "keeping the existing" "$tmp/log" &&
    pass "install keeps an existing config" || fail "install replaced an existing config"
run_install "$p" "" uninstall
[ -f "$p/etc/advd/advd.conf" ] && [ ! -e "$p/sbin/advd" ] &&
    pass "uninstall leaves a config it did not install" || fail "uninstall and a prior config"
rm -rf "$p"
run_install "$p" "" install
echo "workers = 2" >>"$p/etc/advd/advd.conf"
run_install "$p" "" uninstall
[ -f "$p/etc/advd/advd.conf" ] && grep -q "it was changed" "$tmp/log" &&
    [ -z "$(find "$p" -type f ! -path "$p/etc/advd/advd.conf")" ] &&
    pass "uninstall keeps an edited config, removes the rest" || fail "uninstall and an edited config"

# ------------------------------------------------ the Makefile's folders
folders() { # make arguments...
    make -n --no-print-directory ADV_INNER=1 BIN="$BIN" BUILD="$tmp/nobuild" "$@" install 2>/dev/null |
        grep -o "SYSCONFDIR='[^']*'\|SBINDIR='[^']*'\|SYSTEMDSYSTEMUNITDIR='[^']*'" | tr '\n' ' '
}
got=$(folders)
case $got in
*"SBINDIR='/usr/local/sbin'"*"SYSCONFDIR='/usr/local/etc'"*"SYSTEMDSYSTEMUNITDIR='/usr/local/lib/systemd/system'"*)
    pass "make install: /usr/local by default" ;;
*) fail "make install's default folders: $got" ;;
esac
got=$(folders PREFIX=/usr)
case $got in
*"SBINDIR='/usr/sbin'"*"SYSCONFDIR='/etc'"*) pass "make install PREFIX=/usr: config in /etc" ;;
*) fail "make install PREFIX=/usr folders: $got" ;;
esac

finish
