#!/bin/sh
# deb-test.sh - the advd .deb on this machine, as an administrator would
# use it: install, start the service, use it as a member of group advd,
# refuse an outsider, purge. Needs root; prints PASS or FAIL per step.
#
#   make deb && sh scripts/deb-test.sh [DIR]     (DIR: where the .deb is, build/deb)
#
# The machine need not run systemd: the script does what the unit would
# (/run/advd for RuntimeDirectory=, the ExecStart line as User=advd with an
# empty environment, umask 0027) with setpriv, adding --final-eval-limit 256
# as an administrator's drop-in could, to keep the job short. Test users
# advd-member (in group advd) and advd-outsider are created and removed; so
# are the packages (apt-get purge; python3-advd too when it is in DIR, with
# a check that it talks to the service) and the system user advd.
set -u
DIR=${1:-build/deb}
UNIT=/lib/systemd/system/advd.service
SOCK=/run/advd/advd.sock
MEMBER=advd-member
OUTSIDER=advd-outsider
fails=0
daemon=""
log=$(mktemp)

step() { # status description
    if [ "$1" = 0 ]; then echo "PASS $2"; else echo "FAIL $2"; fails=$((fails + 1)); fi
}
# Run a command as USER, with group memberships from /etc/group and the
# bare environment of a login.
as() { # user command...
    u=$1
    shift
    (cd / && setpriv --reuid "$u" --regid "$u" --init-groups \
        env -i PATH=/usr/bin:/bin HOME="$(getent passwd "$u" | cut -d: -f6)" "$@")
}
drop_user() { getent passwd "$1" >/dev/null && userdel -r "$1" >/dev/null 2>&1; true; }
cleanup() {
    if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon" 2>/dev/null
        wait "$daemon" 2>/dev/null
    fi
    drop_user "$MEMBER"
    drop_user "$OUTSIDER"
    for p in python3-advd advd; do
        dpkg -s $p >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $p >/dev/null 2>&1
    done
    # The package leaves its system user (Debian's custom); the test does not.
    drop_user advd
    getent group advd >/dev/null && groupdel advd
    rm -f "$log"
}

[ "$(id -u)" = 0 ] || { echo "deb-test: run as root" >&2; exit 2; }
deb=$(ls "$DIR"/advd_*.deb 2>/dev/null | tail -n 1)
[ -n "$deb" ] || { echo "deb-test: no advd_*.deb in '$DIR' (make deb first)" >&2; exit 2; }
case $deb in /*) ;; *) deb=$PWD/$deb ;; esac
# The Python client's package, when it was built beside it.
py=$(ls "$(dirname "$deb")"/python3-advd_*.deb 2>/dev/null | tail -n 1)
trap cleanup EXIT
trap 'exit 1' INT TERM
drop_user "$MEMBER"
drop_user "$OUTSIDER"

# ------------------------------------------------------------- install
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" $py >"$log" 2>&1
step $? "apt-get install $deb $py"
getent passwd advd >/dev/null && getent group advd >/dev/null
step $? "the system user and group advd exist"
[ "$(stat -c '%U:%G %a' /var/lib/advd 2>/dev/null)" = "advd:advd 750" ]
step $? "/var/lib/advd belongs to advd, mode 750 ($(stat -c '%U:%G %a' /var/lib/advd 2>&1))"
dpkg-query -W -f='${Conffiles}\n' advd | grep -q ' /etc/advd/advd.conf '
step $? "/etc/advd/advd.conf is a conffile"
for f in /usr/sbin/advd /usr/bin/advctl /usr/share/man/man8/advd.8.gz /usr/share/man/man1/advctl.1.gz \
         /usr/share/bash-completion/completions/advctl "$UNIT"; do
    [ -e "$f" ] || { echo "  missing $f"; false; } || break
done
step $? "programs, man pages, completion and unit in place"

# --------------------------------------------- start it as the unit does
# Plus one setting an administrator's drop-in could add: the final
# evaluation of a training job on 256 test images instead of all 10 000,
# which keeps the job to about a minute on two cores.
exec_line="$(sed -n 's/^ExecStart=//p' "$UNIT") --final-eval-limit 256"
install -d -o advd -g advd -m 0755 /run/advd
(cd / && umask 0027 && exec setpriv --reuid advd --regid advd --init-groups \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/lib/advd USER=advd LOGNAME=advd \
    $exec_line) >"$log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
    [ -S "$SOCK" ] && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
[ -S "$SOCK" ]
step $? "advd started as user advd: $exec_line"
[ -S "$SOCK" ] || { echo "  advd said: $(cat "$log")"; exit 1; }
[ "$(stat -c '%U:%G %a' "$SOCK")" = "advd:advd 660" ]
step $? "socket $SOCK is advd:advd 660 ($(stat -c '%U:%G %a' "$SOCK"))"
[ "$(ps -o user= -p "$daemon" | tr -d ' ')" = advd ] || [ "$(stat -c %U /proc/"$daemon")" = advd ]
step $? "the daemon runs as advd"

# --------------------------------------------------- a member submits
useradd --create-home --shell /bin/sh --groups advd "$MEMBER" &&
    useradd --create-home --shell /bin/sh "$OUTSIDER"
step $? "users $MEMBER (group advd) and $OUTSIDER created"
job=$(as "$MEMBER" advctl submit --name deb-test --epochs 1 --train-limit 512 --val-size 256 \
    --val-robust-size 64 2>&1)
case $job in
'' | *[!0-9]*) step 1 "$MEMBER submits a job through $SOCK (found without --socket): $job" ;;
*) step 0 "$MEMBER submits job $job through $SOCK (found without --socket)" ;;
esac
if [ -n "$job" ] && [ "$job" -eq "$job" ] 2>/dev/null; then
    start=$(date +%s)
    as "$MEMBER" advctl watch "$job" >/dev/null 2>&1
    rc=$?
    step $rc "job $job done after $(($(date +%s) - start)) s (advctl watch exit $rc)"
    as "$MEMBER" advctl --json status "$job" 2>&1 | grep -q "\"user\":\"$MEMBER\""
    step $? "the job belongs to $MEMBER (status shows the user)"
    as "$MEMBER" advctl results "$job" >/dev/null 2>&1
    step $? "$MEMBER reads the job's results"
    if [ -n "$py" ]; then
        out=$(as "$MEMBER" python3 -c 'import advd, sys
with advd.connect() as c:
    print(c.job(int(sys.argv[1])).status()["state"])' "$job" 2>&1)
        [ "$out" = succeeded ]
        step $? "python3-advd: import advd, connect, the job's state: $out"
    fi
fi

# ------------------------------------------------- an outsider is refused
out=$(as "$OUTSIDER" advctl ping 2>&1)
rc=$?
[ "$rc" != 0 ] && printf '%s' "$out" | grep -q "Permission denied"
step $? "$OUTSIDER is refused by the socket's mode (exit $rc: $(echo "$out" | head -n 1))"
# The daemon's own check, behind the file mode: opened to everyone, the
# socket still admits only root, advd and group advd.
# advctl prints the message; the daemon's first line carries the code.
chmod 0666 "$SOCK"
out=$(as "$OUTSIDER" advctl ping 2>&1)
rc=$?
line=$(as "$OUTSIDER" python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print(s.makefile().readline().strip())' "$SOCK" 2>&1)
chmod 0660 "$SOCK"
[ "$rc" != 0 ] && printf '%s' "$line" | grep -q '"code":"forbidden"'
step $? "$OUTSIDER is refused by advd's peer check when the socket is 0666: advctl exit $rc ($(echo "$out" | head -n 1)); the daemon's line: $line"
as "$MEMBER" advctl ping >/dev/null 2>&1
step $? "$MEMBER is still served"

# ----------------------------------------------------------- stop, purge
kill -TERM "$daemon"
wait "$daemon"
step $? "advd stops on SIGTERM with status 0"
daemon=""
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q advd ${py:+python3-advd} >"$log" 2>&1
step $? "apt-get purge advd ${py:+python3-advd}"
[ ! -e /var/lib/advd ] && [ ! -e /etc/advd ] && [ ! -e /usr/sbin/advd ]
step $? "purge removed /var/lib/advd, /etc/advd and the programs"

echo "deb-test: $([ "$fails" = 0 ] && echo "all passed" || echo "$fails failed")"
[ "$fails" = 0 ]
