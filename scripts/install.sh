#!/bin/sh
# install.sh - `make install` and `make uninstall`: what advd installs, in
# one table, and a manifest of what an install put there.
#
#   scripts/install.sh install | uninstall
#
# The Makefile passes the folders in the environment: DESTDIR, PREFIX,
# BINDIR, SBINDIR, SYSCONFDIR, MANDIR, DATADIR, COMPLETIONDIR,
# SYSTEMDSYSTEMUNITDIR, SYSTEMDUSERUNITDIR, SYSUSERSDIR, BIN (the build's
# programs) and VERSION. Paths hold no blanks.
#
# install copies the table's files, filling in @BINDIR@, @SBINDIR@,
# @SYSCONFDIR@ and @VERSION@ in units and man pages
# (gzipped). The system config is not
# replaced when it exists (except under DESTDIR, for packaging). Installing
# for real as root also creates the system user advd (sysusers.d file,
# else adduser or useradd), which uninstall leaves, as Debian does;
# ADV_NO_USER=1 skips that (the tests install into temporary prefixes).
#
# Manifest format, DATADIR/advd/install-manifest: one line per thing an
# install created, paths without DESTDIR, in creation order:
#   d PATH          a folder that did not exist before
#   f PATH          a file
#   c PATH SHA256   the config file as installed
# A second install keeps the first one's lines. uninstall removes every
# file, the config only while unchanged (an edited one is kept and named),
# then the manifest, then the folders, deepest first, while empty.
set -eu

die() { echo "advd: $*" >&2; exit 1; }

VERSION=${VERSION:?is not set (the version the man pages name)}
for v in PREFIX BINDIR SBINDIR SYSCONFDIR MANDIR DATADIR COMPLETIONDIR \
         SYSTEMDSYSTEMUNITDIR SYSTEMDUSERUNITDIR SYSUSERSDIR; do
    eval "val=\${$v:-}"
    case $val in
    /*) ;;
    *) die "$v must be an absolute path, got '$val'" ;;
    esac
done
DESTDIR=${DESTDIR:-}
BIN=${BIN:-bin}
MANIFEST=$DATADIR/advd/install-manifest

# kind source folder name: prog (mode 0755), file (0644), unit (0644,
# @...@ filled in), man (filled in, gzipped), conf (filled in, kept).
table() {
    cat <<EOF
prog $BIN/advctl $BINDIR advctl
prog $BIN/advd $SBINDIR advd
man man/advctl.1 $MANDIR/man1 advctl.1.gz
man man/advd.8 $MANDIR/man8 advd.8.gz
file etc/bash-completion/advctl $COMPLETIONDIR advctl
unit etc/advd.service $SYSTEMDSYSTEMUNITDIR advd.service
unit etc/user/advd.service $SYSTEMDUSERUNITDIR advd.service
file etc/sysusers.d/advd.conf $SYSUSERSDIR advd.conf
conf etc/advd-system.conf $SYSCONFDIR/advd advd.conf
EOF
}

fill() {
    sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SBINDIR@|$SBINDIR|g" \
        -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" -e "s|@VERSION@|$VERSION|g" "$1"
}

# mkdir -p that records, outermost first, each folder it creates.
make_dir() {
    [ -d "$DESTDIR$1" ] && return 0
    [ "$1" = / ] && { mkdir -p "$DESTDIR"; return 0; }
    make_dir "$(dirname "$1")"
    mkdir -m 0755 "$DESTDIR$1"
    echo "d $1" >>"$new"
}

install_one() { # kind source folder name
    dest=$3/$4
    make_dir "$3"
    case $1 in
    prog) install -m 0755 "$2" "$DESTDIR$dest" ;;
    file) install -m 0644 "$2" "$DESTDIR$dest" ;;
    unit) fill "$2" >"$DESTDIR$dest" && chmod 0644 "$DESTDIR$dest" ;;
    man) fill "$2" | gzip -9n >"$DESTDIR$dest" && chmod 0644 "$DESTDIR$dest" ;;
    conf)
        if [ -z "$DESTDIR" ] && [ -e "$dest" ]; then
            echo "advd: keeping the existing '$dest' (the new one is $2)"
            return 0
        fi
        fill "$2" >"$DESTDIR$dest" && chmod 0644 "$DESTDIR$dest"
        echo "c $dest $(sha256sum <"$DESTDIR$dest" | cut -d' ' -f1)" >>"$new"
        echo "  $DESTDIR$dest"
        return 0 ;;
    esac
    echo "f $dest" >>"$new"
    echo "  $DESTDIR$dest"
}

make_user() {
    getent passwd advd >/dev/null && return 0
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers "$SYSUSERSDIR/advd.conf"
    elif command -v adduser >/dev/null 2>&1; then
        adduser --quiet --system --group --home /var/lib/advd --no-create-home advd
    else
        useradd --system --user-group --home-dir /var/lib/advd --no-create-home \
            --shell /usr/sbin/nologin advd
    fi
    echo "advd: created the system user advd"
}

do_install() {
    for p in "$BIN/advd" "$BIN/advctl"; do
        [ -x "$p" ] || die "no '$p': build it first (make)"
    done
    new=$(mktemp)
    trap 'rm -f "$new"' EXIT
    table | while read -r kind src dir name; do
        install_one "$kind" "$src" "$dir" "$name"
    done
    make_dir "$(dirname "$MANIFEST")"
    # Lines of an earlier install that this one did not repeat come first:
    # folders it created, and a config file it kept.
    if [ -f "$DESTDIR$MANIFEST" ]; then
        awk 'NR == FNR { seen[$2] = 1; next } !($2 in seen)' "$new" "$DESTDIR$MANIFEST" >"$new.old"
        cat "$new.old" "$new" >"$DESTDIR$MANIFEST"
        rm -f "$new.old"
    else
        cp "$new" "$DESTDIR$MANIFEST"
    fi
    chmod 0644 "$DESTDIR$MANIFEST"
    echo "advd: installed under ${DESTDIR}$PREFIX (manifest '$DESTDIR$MANIFEST')"
    if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] && [ -z "${ADV_NO_USER:-}" ]; then
        make_user
        echo "advd: start the system service with: systemctl daemon-reload && systemctl enable --now advd"
    fi
}

do_uninstall() {
    m=$DESTDIR$MANIFEST
    if [ ! -f "$m" ]; then
        echo "advd: nothing to uninstall: no '$m'"
        return 0
    fi
    while read -r kind path sum; do
        case $kind in
        f) rm -f "$DESTDIR$path" ;;
        c)
            [ -e "$DESTDIR$path" ] || continue
            if [ "$(sha256sum <"$DESTDIR$path" | cut -d' ' -f1)" = "$sum" ]; then
                rm -f "$DESTDIR$path"
            else
                echo "advd: keeping '$DESTDIR$path': it was changed since the install"
            fi ;;
        esac
    done <"$m"
    # Folders deepest first, each only while empty.
    dirs=$(awk '$1 == "d" { print length($2), $2 }' "$m" | sort -rn | cut -d' ' -f2)
    rm -f "$m"
    for d in $dirs; do
        rmdir "$DESTDIR$d" 2>/dev/null || true
    done
    echo "advd: uninstalled from ${DESTDIR}$PREFIX"
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
*) die "usage: scripts/install.sh install|uninstall" ;;
esac
