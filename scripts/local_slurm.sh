#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for testing the SLURM profile (CI, laptops).
#
#   scripts/local_slurm.sh start    install (if missing) and start munge + slurmctld + slurmd
#   scripts/local_slurm.sh status   print the daemons this script started and the node state
#   scripts/local_slurm.sh stop     stop exactly the daemons this script started (by pid)
#
# Needs root and apt-get (Debian/Ubuntu); no systemd. The node has two partitions, `cpu`
# (default) and `gpu`, and one fake GPU (GRES gpu:1 backed by a device node made with mknod), so
# `--gres=gpu:1` jobs schedule and see CUDA_VISIBLE_DEVICES=0. No accounting database:
# `squeue --states=all` keeps finished jobs for MinJobAge=300 s and every finished job is
# appended to the jobcomp log ($LOCAL_SLURM_DIR/log/jobcomp.log).
#
# It refuses to overwrite an /etc/slurm/slurm.conf it did not write (a real cluster's config).
# Settings and their reasons: docs/cluster.md and the measured notes in the design docs.
set -euo pipefail

STATE_DIR="${LOCAL_SLURM_DIR:-/var/lib/perovs-local-slurm}"
CONF_DIR=/etc/slurm
SLURM_CONF_FILE="$CONF_DIR/slurm.conf"
GRES_CONF_FILE="$CONF_DIR/gres.conf"
MARKER="# written by perovs-dopants scripts/local_slurm.sh"
PID_DIR="$STATE_DIR/pids"       # pid files of the daemons THIS script started
LOG_DIR="$STATE_DIR/log"
FAKE_GPU="$STATE_DIR/fake_gpu0"
MUNGE_RUN_DIR=/run/munge
MUNGE_PID_FILE="$MUNGE_RUN_DIR/munged.pid"
# libpmix-dev: Debian's slurm pmix plugin dlopen()s the unversioned libpmix.so that only the
# -dev package ships; without it `srun -n 2 cp2k.psmp` starts 2 serial copies (OpenMPI aborts).
PACKAGES=(slurmctld slurmd slurm-client munge libpmix-dev)
IDLE_TIMEOUT_S=90

log() { echo "local_slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it starts slurmctld/slurmd/munged)"
}

# True when the pid in file $1 is alive and its command name is $2.
pid_file_alive() {
    local pid_file=$1 name=$2 pid
    [[ -s $pid_file ]] || return 1
    pid=$(<"$pid_file")
    [[ -r /proc/$pid/comm ]] && [[ $(<"/proc/$pid/comm") == "$name" ]]
}

install_packages() {
    local missing=()
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} yourself"
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" \
            >"$LOG_DIR/apt.log" 2>&1 \
            || { apt-get -o DPkg::Lock::Timeout=600 update >>"$LOG_DIR/apt.log" 2>&1 \
                && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
                    "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1; } \
            || die "apt-get install failed, see $LOG_DIR/apt.log"
    fi
}

# The fake GPU: slurmd drops a GRES without File= (node INVAL); a character device is the clean
# choice (c 1 3 = /dev/null's numbers), a plain file works with a warning where mknod is denied.
make_fake_gpu() {
    [[ -e $FAKE_GPU ]] && return 0
    mknod "$FAKE_GPU" c 1 3 2>/dev/null || touch "$FAKE_GPU"
}

write_config() {
    if [[ -e $SLURM_CONF_FILE ]] && ! grep -qF "$MARKER" "$SLURM_CONF_FILE"; then
        die "$SLURM_CONF_FILE exists and was not written by this script; not touching it"
    fi
    local node_line node_name real_memory
    node_line=$(slurmd -C | head -n 1)
    node_name=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node_line")
    real_memory=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$node_line")
    # RealMemory must stay below what slurmd measures, else the node goes INVALID.
    node_line=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((real_memory * 95 / 100))/" <<<"$node_line")
    mkdir -p "$CONF_DIR"
    cat >"$SLURM_CONF_FILE" <<EOF
$MARKER
ClusterName=perovs-local
SlurmctldHost=$node_name
SlurmUser=root
AuthType=auth/munge
# pmix: "srun -n N cp2k.psmp" starts one N-rank OpenMPI job (Debian's OpenMPI uses PMIx).
MpiDefault=pmix
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
ReturnToService=2
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job without --mem takes the whole node's memory and the rest queue.
DefMemPerCPU=1000
# Finished jobs stay visible to squeue for 300 s: the executor plugin's squeue status query
# needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks.
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log
GresTypes=gpu
$node_line Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$node_name Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node_name Default=NO MaxTime=INFINITE State=UP
EOF
    cat >"$GRES_CONF_FILE" <<EOF
$MARKER
NodeName=$node_name Name=gpu File=$FAKE_GPU
EOF
}

start_munge() {
    if pid_file_alive "$MUNGE_PID_FILE" munged; then
        return 0   # someone's munged is running: use it, do not claim it
    fi
    [[ -s /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || create-munge-key; }
    install -d -o munge -g munge -m 0755 "$MUNGE_RUN_DIR"
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for_pid_file "$MUNGE_PID_FILE" munged
    cp "$MUNGE_PID_FILE" "$PID_DIR/munged.pid"
}

wait_for_pid_file() {
    local pid_file=$1 name=$2
    for _ in $(seq 100); do
        pid_file_alive "$pid_file" "$name" && return 0
        sleep 0.1
    done
    die "$name did not start (no live pid in $pid_file); see $LOG_DIR"
}

# Start daemon $1 with arguments ${@:2} unless the one we started earlier is still alive.
start_slurm_daemon() {
    local name=$1
    shift
    if pid_file_alive "$PID_DIR/$name.pid" "$name"; then
        return 0
    fi
    "/usr/sbin/$name" "$@"
    wait_for_pid_file "$STATE_DIR/run/$name.pid" "$name"
    cp "$STATE_DIR/run/$name.pid" "$PID_DIR/$name.pid"
}

wait_for_idle() {
    local states=""
    for _ in $(seq "$IDLE_TIMEOUT_S"); do
        states=$(sinfo -h -o %T 2>/dev/null | sort -u) || states=""
        # Ready when every partition reports a usable node (a busy one counts: jobs may run).
        if [[ -n $states ]] && ! grep -qvxE 'idle|mixed|allocated|completing' <<<"$states"; then
            return 0
        fi
        if [[ $states == *drain* || $states == *down* ]]; then
            scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
        fi
        sleep 1
    done
    die "node not idle after ${IDLE_TIMEOUT_S} s (sinfo: ${states:-none}); see $LOG_DIR"
}

cmd_start() {
    require_root
    mkdir -p "$PID_DIR" "$LOG_DIR" "$STATE_DIR/run" "$STATE_DIR/ctld" "$STATE_DIR/spool"
    install_packages
    make_fake_gpu
    if ! pid_file_alive "$PID_DIR/slurmctld.pid" slurmctld; then
        write_config
    fi
    start_munge
    start_slurm_daemon slurmctld -c   # -c: clear job state left from an earlier run
    start_slurm_daemon slurmd
    wait_for_idle
    log "cluster up: $(sinfo -h -o '%P %T %G' | tr '\n' ';')"
}

# Jobs of OUR cluster would outlive slurmd (slurmstepd keeps them): cancel them first.
cancel_all_jobs() {
    pid_file_alive "$PID_DIR/slurmctld.pid" slurmctld || return 0
    local job_ids
    job_ids=$(squeue -h -o %i 2>/dev/null) || return 0
    [[ -n $job_ids ]] || return 0
    # shellcheck disable=SC2086  # one argument per job id
    scancel $job_ids 2>/dev/null || true
    for _ in $(seq 30); do
        [[ -z $(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null) ]] && return 0
        sleep 1
    done
    log "warning: jobs still listed after scancel: $(squeue -h -o %i | tr '\n' ' ')"
}

cmd_stop() {
    require_root
    local name pid
    cancel_all_jobs
    for name in slurmd slurmctld munged; do
        if pid_file_alive "$PID_DIR/$name.pid" "$name"; then
            pid=$(<"$PID_DIR/$name.pid")
            kill "$pid"
            for _ in $(seq 100); do
                [[ -d /proc/$pid ]] || break
                sleep 0.1
            done
            [[ -d /proc/$pid ]] && kill -9 "$pid"
            log "stopped $name ($pid)"
        fi
        rm -f "$PID_DIR/$name.pid"
    done
    # With no controller left, a slurm.conf naming one makes every SLURM client wait ~9 s for
    # it, and Snakemake's SLURM plugin calls scontrol at import: every later `snakemake` took
    # 11 s instead of 2 s here. Remove the files this script wrote (start writes them again).
    local file
    for file in "$SLURM_CONF_FILE" "$GRES_CONF_FILE"; do
        if [[ -f $file ]] && grep -qF "$MARKER" "$file"; then
            rm -f "$file"
        fi
    done
}

cmd_status() {
    local name running=0
    for name in munged slurmctld slurmd; do
        if pid_file_alive "$PID_DIR/$name.pid" "$name"; then
            echo "$name running (pid $(<"$PID_DIR/$name.pid"))"
            running=$((running + 1))
        else
            echo "$name not started by this script"
        fi
    done
    if command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1; then
        sinfo -o '%P %a %T %D %G %N'
    fi
    # Exit 0 only when slurmctld and slurmd are ours and alive.
    pid_file_alive "$PID_DIR/slurmctld.pid" slurmctld && pid_file_alive "$PID_DIR/slurmd.pid" slurmd
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
