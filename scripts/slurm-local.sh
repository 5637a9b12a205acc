#!/bin/sh
# slurm-local.sh - a private one-node Slurm cluster on this machine, for
# testing advd's Slurm launch path without touching the system's Slurm or
# munge setup. Everything (munge key, socket, slurm.conf, state, spool, logs,
# pid files) lives under $SLURM_LOCAL_DIR (default /tmp/advd-slurm).
#
#   scripts/slurm-local.sh start    start munged, slurmctld and slurmd, wait
#                                   until the node is idle, then print
#                                   `export SLURM_CONF=...` on stdout
#                                   (progress goes to stderr), so
#                                   eval "$(scripts/slurm-local.sh start)"
#                                   works
#   scripts/slurm-local.sh stop     kill what start started (by pid file)
#   scripts/slurm-local.sh env      print the export line
#   scripts/slurm-local.sh status   show the daemons and `sinfo`
#
# Environment: SLURM_LOCAL_DIR (the directory), SLURM_LOCAL_CTLD_PORT
# (default 6817), SLURM_LOCAL_SLURMD_PORT (default 6818),
# SLURM_LOCAL_MPI (MpiDefault, default pmix when the plugin exists, else
# none), SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 60).
#
# Needs the Debian packages slurm-wlm (slurmctld, slurmd, slurm-client) and
# munge. Runs best as root (slurmd has to switch to the job's user); as
# another user the daemons run as that user and jobs can only be that user's.
set -eu

dir=${SLURM_LOCAL_DIR:-/tmp/advd-slurm}
case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
ctld_port=${SLURM_LOCAL_CTLD_PORT:-6817}
slurmd_port=${SLURM_LOCAL_SLURMD_PORT:-6818}
timeout=${SLURM_LOCAL_TIMEOUT:-60}
conf=$dir/etc/slurm.conf
sock=$dir/munge/munge.socket.2
host=$(hostname -s 2>/dev/null || hostname)
plugindir=

say() { echo "slurm-local: $*" >&2; }
die() { say "error: $*"; exit 1; }

# pid_alive FILE: the pid in FILE is a live process
pid_alive() {
    [ -s "$1" ] || return 1
    p=$(cat "$1" 2>/dev/null) || return 1
    case $p in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$p" 2>/dev/null
}

# stop_pid NAME FILE: TERM the process in FILE, wait up to 10 s, then KILL
stop_pid() {
    if pid_alive "$2"; then
        p=$(cat "$2")
        say "stopping $1 (pid $p)"
        kill -TERM "$p" 2>/dev/null || true
        n=0
        while kill -0 "$p" 2>/dev/null && [ $n -lt 100 ]; do
            sleep 0.1
            n=$((n + 1))
        done
        if kill -0 "$p" 2>/dev/null; then
            say "$1 (pid $p) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$p" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$2"
}

find_plugindir() {
    for d in /usr/lib/x86_64-linux-gnu/slurm-wlm /usr/lib/*/slurm-wlm \
             /usr/lib64/slurm /usr/lib/slurm /usr/local/lib/slurm; do
        if [ -f "$d/select_cons_tres.so" ]; then
            plugindir=$d
            return 0
        fi
    done
    return 1
}

print_env() {
    echo "export SLURM_CONF=$conf"
}

running() {
    pid_alive "$dir/run/munged.pid" || pid_alive "$dir/run/slurmctld.pid" ||
        pid_alive "$dir/run/slurmd.pid"
}

do_stop() {
    # cancel jobs while the controller is still up, so slurmd kills their
    # steps and salloc/srun callers see the end of their allocation
    if pid_alive "$dir/run/slurmctld.pid" && [ -f "$conf" ]; then
        jobs=$(SLURM_CONF=$conf timeout 5 squeue -h -o %i 2>/dev/null) || jobs=
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            say "cancelling jobs:" $jobs
            # shellcheck disable=SC2086
            SLURM_CONF=$conf timeout 5 scancel $jobs 2>/dev/null || true
            sleep 1
        fi
    fi
    stop_pid slurmd "$dir/run/slurmd.pid"
    stop_pid slurmctld "$dir/run/slurmctld.pid"
    # slurmstepd processes of this cluster that outlived slurmd
    for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
            grep -qx "SLURM_CONF=$conf"; then
            say "killing leftover slurmstepd $p"
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    if pid_alive "$dir/run/munged.pid"; then
        say "stopping munged (pid $(cat "$dir/run/munged.pid"))"
        munged --stop --socket="$sock" >/dev/null 2>&1 || true
        n=0
        while pid_alive "$dir/run/munged.pid" && [ $n -lt 50 ]; do
            sleep 0.1
            n=$((n + 1))
        done
    fi
    stop_pid munged "$dir/run/munged.pid"
}

write_conf() {
    # CPUs and memory as slurmd itself sees them, so the node is not
    # drained for "Low RealMemory" or a CPU count mismatch
    cpus=$(nproc 2>/dev/null || echo 1)
    mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    topo=
    hw=$(slurmd -C 2>/dev/null | head -n 1) || hw=
    for kv in $hw; do
        case $kv in
            CPUs=*) cpus=${kv#CPUs=} ;;
            RealMemory=*) mem=${kv#RealMemory=} ;;
            SocketsPerBoard=*|CoresPerSocket=*|ThreadsPerCore=*) topo="$topo $kv" ;;
        esac
    done
    if [ "$(id -u)" -eq 0 ]; then
        user=root
    else
        user=$(id -un)
    fi
    if [ -n "${SLURM_LOCAL_MPI:-}" ]; then
        mpi=$SLURM_LOCAL_MPI
    elif [ -f "$plugindir/mpi_pmix.so" ]; then
        mpi=pmix
    else
        mpi=none
    fi
    cat >"$conf" <<EOF
# generated by scripts/slurm-local.sh; private one-node cluster in $dir
ClusterName=advd
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$(id -un)
PluginDir=$plugindir
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
MpiDefault=$mpi
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus$topo RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munged() {
    key=$dir/munge/munge.key
    dd if=/dev/urandom of="$key" bs=1 count=1024 2>/dev/null
    chmod 400 "$key"
    # munged runs as the user starting it; its key must belong to that user
    # (root here, or the invoking user). --force: run as root and accept the
    # directories under /tmp, which munged calls insecure.
    munged --force \
        --key-file="$key" \
        --socket="$sock" \
        --pid-file="$dir/run/munged.pid" \
        --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed" \
        >"$dir/log/munged.out" 2>&1 ||
        { cat "$dir/log/munged.out" >&2; die "munged failed to start (see $dir/log/munged.log)"; }
    n=0
    until [ -S "$sock" ] && pid_alive "$dir/run/munged.pid"; do
        n=$((n + 1))
        [ $n -lt 100 ] || die "munged did not come up (see $dir/log/munged.log)"
        sleep 0.1
    done
    munge -n --socket="$sock" | unmunge --socket="$sock" >/dev/null 2>&1 ||
        die "munge round trip through $sock failed"
}

# start_daemon NAME PIDFILE CMD...: run CMD in the foreground (-D) in the
# background, detached from the caller's session, and record its pid
start_daemon() {
    name=$1 pidfile=$2
    shift 2
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
    else
        "$@" </dev/null >"$dir/log/$name.out" 2>&1 &
    fi
    echo $! >"$pidfile"
    sleep 0.5
    pid_alive "$pidfile" || {
        grep -E 'error|fatal' "$dir/log/$name.out" | grep -v ' state ' | tail -n 10 >&2
        die "$name exited at once (see $dir/log/$name.out and $dir/log/$name.log)"
    }
}

do_start() {
    t0=$(date +%s)
    for b in munged munge unmunge slurmctld slurmd sinfo; do
        command -v $b >/dev/null 2>&1 || die "$b not found (apt-get install slurm-wlm munge)"
    done
    find_plugindir || die "cannot find Slurm's plugin directory"
    if running; then
        die "already running in $dir (run: $0 stop)"
    fi
    if command -v ss >/dev/null 2>&1; then
        for port in "$ctld_port" "$slurmd_port"; do
            if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
                die "TCP port $port is in use (another slurmctld/slurmd?); set SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT"
            fi
        done
    fi
    mkdir -p "$dir"
    chmod 755 "$dir"
    # fresh state every start; keep nothing from a previous cluster
    rm -rf "$dir/state" "$dir/spool" "$dir/run" "$dir/munge"
    mkdir -p "$dir/etc" "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/munge"
    # munge.socket.2 must be reachable by every user (the key itself is 0400)
    chmod 755 "$dir/munge" "$dir/run" "$dir/log" "$dir/spool"
    chmod 700 "$dir/state"
    : >"$dir/log/slurmctld.log"
    : >"$dir/log/slurmd.log"
    : >"$dir/log/munged.log"

    # if anything below fails, take down what was started
    # shellcheck disable=SC2154
    trap 'rc=$?; if [ $rc -ne 0 ]; then say "start failed; cleaning up"; do_stop; fi' EXIT

    say "starting munged on $sock"
    start_munged
    write_conf
    say "wrote $conf (node $host, CPUs=$cpus, RealMemory=$mem, MpiDefault=$mpi)"

    # in the daemons' environment too, which marks their slurmstepds as ours
    export SLURM_CONF="$conf"
    say "starting slurmctld"
    # -i: ignore (and do not recover) any saved state
    start_daemon slurmctld "$dir/run/slurmctld.pid" slurmctld -D -i -f "$conf"
    say "starting slurmd"
    start_daemon slurmd "$dir/run/slurmd.pid" slurmd -D -f "$conf"

    n=0 state=
    while :; do
        state=$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -n 1) || state=
        case $state in idle|mix|alloc) break ;; esac
        pid_alive "$dir/run/slurmctld.pid" || {
            tail -n 20 "$dir/log/slurmctld.log" >&2
            die "slurmctld died (see $dir/log/slurmctld.log)"
        }
        pid_alive "$dir/run/slurmd.pid" || {
            tail -n 20 "$dir/log/slurmd.log" >&2
            die "slurmd died (see $dir/log/slurmd.log)"
        }
        n=$((n + 1))
        if [ $n -ge $((timeout * 2)) ]; then
            sinfo -N -l >&2 2>&1 || true
            scontrol show node "$host" >&2 2>&1 || true
            tail -n 20 "$dir/log/slurmctld.log" >&2
            tail -n 20 "$dir/log/slurmd.log" >&2
            die "node $host is not idle after ${timeout}s (state: ${state:-none})"
        fi
        sleep 0.5
    done
    trap - EXIT
    say "node $host is $state; cluster up in $(( $(date +%s) - t0 ))s"
    print_env
}

do_status() {
    for d in munged slurmctld slurmd; do
        if pid_alive "$dir/run/$d.pid"; then
            echo "$d: running (pid $(cat "$dir/run/$d.pid"))"
        else
            echo "$d: not running"
        fi
    done
    if pid_alive "$dir/run/slurmctld.pid"; then
        SLURM_CONF=$conf sinfo -N -l
    fi
}

case ${1:-} in
    start) do_start ;;
    stop) do_stop ;;
    env) print_env ;;
    status) do_status ;;
    *)
        echo "usage: $0 start|stop|env|status" >&2
        exit 2
        ;;
esac
