#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian/Ubuntu, as root), to run the workflow's
# SLURM profile (workflow/profiles/slurm) through real sbatch jobs. Not for production.
#
#   scripts/slurm-cluster.sh start    # install slurm-wlm + munge if missing, configure, start,
#                                     # wait until the node is idle
#   scripts/slurm-cluster.sh status   # sinfo and the queue
#   scripts/slurm-cluster.sh stop     # cancel jobs, stop the daemons this script started
#
# The node offers all CPUs and the memory of the machine (as `slurmd -C` sees them, less 1 GiB).
# GPUs: RGMORPH_SLURM_GPUS=N (default 1) advertises N generic "gpu" resources, so that jobs that
# ask for a GPU (`--gpus=1`, the training jobs of the profile) are scheduled as on a GPU
# cluster. Unless the machine has NVIDIA devices (/dev/nvidia0...), these are count-only: Slurm
# binds no device, CUDA_VISIBLE_DEVICES stays unset, and training falls back to the CPU.
# RGMORPH_SLURM_GPUS=0 advertises none (then override the profile: --set-resources train:gpu=0).
#
# Slurm 22.05 (Debian 12) has no accounting database here: use `--slurm-status-command squeue`
# with the executor plugin (MinJobAge below keeps finished jobs visible to squeue and scontrol for an hour).
# Files: /etc/slurm/{slurm,gres}.conf (only if absent or written by this script), state and
# logs under /var/spool/rgmorph-slurm and /var/log/slurm.
set -euo pipefail

STATE=/var/spool/rgmorph-slurm
CONF_DIR=/etc/slurm
MARKER="# written by rgmorph scripts/slurm-cluster.sh"
GPUS=${RGMORPH_SLURM_GPUS:-1}
NODE=$(hostname -s)

log() { echo "slurm-cluster: $*" >&2; }

need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        log "run as root (it installs packages, writes $CONF_DIR and starts daemons)"
        exit 1
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
    for file in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
        if [[ -e $file ]] && ! grep -qF "$MARKER" "$file"; then
            log "$file exists and was not written by this script: refusing to overwrite it"
            exit 1
        fi
    done
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" /var/log/slurm
    # `slurmd -C` prints this node as slurmd sees it: NodeName=... CPUs=... RealMemory=...
    local detected memory
    detected=$(slurmd -C | head -n 1)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    detected=$(sed -e "s/^NodeName=[^ ]*/NodeName=$NODE/" -e "s/RealMemory=[0-9]*/RealMemory=$((memory - 1024))/" <<<"$detected")
    local gres_node="" gres_types=""
    if [[ $GPUS -gt 0 ]]; then
        gres_node=" Gres=gpu:$GPUS"
        gres_types="GresTypes=gpu"
        local devices=(/dev/nvidia[0-9]*)
        if [[ -e ${devices[0]} ]]; then
            local count=$(( ${#devices[@]} < GPUS ? ${#devices[@]} : GPUS ))
            printf '%s\nNodeName=%s Name=gpu File=/dev/nvidia[0-%d]\n' "$MARKER" "$NODE" $((count - 1)) >"$CONF_DIR/gres.conf"
            gres_node=" Gres=gpu:$count"
        else
            # No NVIDIA device: a stand-in device file, so that slurmd counts GPUs and binds them
            # to jobs (CUDA_VISIBLE_DEVICES) as on a GPU node; torch then finds no CUDA and uses the CPU.
            printf '%s\n# stand-in GPU: no NVIDIA device on this machine\nNodeName=%s Name=gpu File=/dev/null Count=1\n' \
                "$MARKER" "$NODE" >"$CONF_DIR/gres.conf"
            gres_node=" Gres=gpu:1"
        fi
    else
        printf '%s\n' "$MARKER" >"$CONF_DIR/gres.conf"
    fi
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=rgmorph
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$gres_types
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=3600
SlurmdTimeout=120
$detected State=UNKNOWN$gres_node
PartitionName=main Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    log "configured: $detected$gres_node"
}

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already answering
    fi
    [[ -s /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE/started-munge"
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.5
    done
    log "munged did not start"; exit 1
}

wait_idle() {
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
        case "$state" in
            idle*|mixed*|allocated*) log "node $NODE is $state"; return ;;
            drain*|inval*|fail*) break ;;
        esac
        sleep 1
    done
    log "node $NODE is '${state:-unknown}' after 60 s; reason:"
    scontrol show node "$NODE" | grep -i reason >&2 || true
    tail -n 20 /var/log/slurm/slurmd.log /var/log/slurm/slurmctld.log >&2 || true
    exit 1
}

start() {
    need_root
    install_packages
    mkdir -p "$STATE"
    if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid"; then
        log "already running"; wait_idle; return
    fi
    write_config
    start_munge
    pid_alive "$STATE/slurmctld.pid" || slurmctld -c   # -c: a fresh start, no jobs or node states from an earlier run
    pid_alive "$STATE/slurmd.pid" || slurmd
    wait_idle
    sinfo
}

stop_daemon() {  # by the pid it wrote, never by name
    local pidfile=$1
    if pid_alive "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid"
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$pidfile"
}

stop() {
    need_root
    if pid_alive "$STATE/slurmctld.pid"; then
        scancel --full --state=PENDING,RUNNING --user="$(id -un)" 2>/dev/null || true
    fi
    stop_daemon "$STATE/slurmd.pid"
    stop_daemon "$STATE/slurmctld.pid"
    if [[ -e $STATE/started-munge ]]; then
        stop_daemon /run/munge/munged.pid
        rm -f "$STATE/started-munge"
    fi
    log "stopped"
}

status() {
    sinfo -N -l
    squeue -o '%.10i %.30j %.9T %.10M %.6C %.8m %.12b %R'
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
