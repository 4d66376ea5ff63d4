#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the Slurm executor's tests and for
# trying `pipeline run --executor slurm` by hand. Needs root and Debian's packages:
#   apt-get install --no-install-recommends slurmctld slurmd slurm-client munge
#
#   scripts/slurm-cluster.sh install   apt-get the packages (if missing)
#   scripts/slurm-cluster.sh start     write the config, start munged, slurmctld, slurmd; wait for the node
#   scripts/slurm-cluster.sh stop      stop the daemons (running jobs are lost)
#   scripts/slurm-cluster.sh status    exit 0 when the node answers and is usable
#
# Every command can be repeated (start on a started cluster does nothing). The node has two
# fake GPUs (gres files that are links to /dev/null): jobs asking for --gres=gpu:N get
# CUDA_VISIBLE_DEVICES, nothing else. Partitions: `debug` (default, no time limit) and
# `short` (1 minute at most: a job asking for more pends forever with PartitionTimeLimit),
# `low` and `high` (a job of `high` preempts the jobs of `low` it needs the resources of).
# No slurmdbd: `sacct -c` reads the job completion file (the end state of finished jobs).
set -euo pipefail

CONF_DIR=/etc/slurm
STATE_DIR=/var/lib/slurm-test-cluster
MARK='# written by scripts/slurm-cluster.sh'

MUNGE_PID=/run/munge/munged.pid

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

die() { echo "slurm-cluster: $*" >&2; exit 1; }

node_ready() {
  local state
  state=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -1) || return 1
  [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]
}

# The configuration files' text, from this machine's CPUs and memory.
slurm_conf() {
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ { print int($2 / 1024) - 512 }' /proc/meminfo)
  cat <<CONF
$MARK
ClusterName=testcluster
SlurmctldHost=localhost
SlurmUser=root
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/d
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
SchedulerParameters=batch_sched_delay=0
MinJobAge=600
AccountingStorageType=accounting_storage/none
# No slurmdbd: \`sacct -c\` answers from this file (the end state of every finished job).
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.txt
SlurmdTimeout=30
ReturnToService=2
KillWait=5
# Only jobs of partition low can be preempted, by jobs of partition high (REQUEUE cancels a
# job submitted with --no-requeue: it ends PREEMPTED); the other partitions are never touched.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PreemptMode=OFF
PartitionName=short Nodes=localhost MaxTime=1 State=UP PreemptMode=OFF
PartitionName=low Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=high Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
CONF
}

gres_conf() {
  cat <<CONF
$MARK
AutoDetect=off
NodeName=localhost Name=gpu File=$STATE_DIR/gpus/gpu[0-1]
CONF
}

# Writes the configuration; exit status 0 when a file changed.
write_config() {
  if [[ -f $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
    die "$CONF_DIR/slurm.conf exists and is not ours: not touching a real cluster's configuration"
  fi
  mkdir -p "$CONF_DIR" "$STATE_DIR/ctld" "$STATE_DIR/d" "$STATE_DIR/gpus" "$STATE_DIR/log"
  for g in 0 1; do ln -sfn /dev/null "$STATE_DIR/gpus/gpu$g"; done
  local changed=1 text
  text=$(slurm_conf)
  if [[ "$text" != "$(cat "$CONF_DIR/slurm.conf" 2>/dev/null)" ]]; then echo "$text" > "$CONF_DIR/slurm.conf"; changed=0; fi
  text=$(gres_conf)
  if [[ "$text" != "$(cat "$CONF_DIR/gres.conf" 2>/dev/null)" ]]; then echo "$text" > "$CONF_DIR/gres.conf"; changed=0; fi
  return $changed
}

start() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    || die "Slurm is not installed (scripts/slurm-cluster.sh install, as root)"
  [[ $(id -u) == 0 ]] || die "start needs root (the daemons run as root here)"
  if node_ready; then
    # A cluster started by an older version of this script gets the current configuration.
    if write_config; then scontrol reconfigure && echo "slurm-cluster: configuration updated"; fi
    echo "slurm-cluster: already running"
    return 0
  fi
  write_config || true
  mkdir -p /run/munge && chown munge:munge /run/munge
  alive "$MUNGE_PID" || runuser -u munge -- munged
  alive "$STATE_DIR/slurmctld.pid" || slurmctld -c
  alive "$STATE_DIR/slurmd.pid" || slurmd -N localhost
  for _ in $(seq 100); do
    if node_ready; then echo "slurm-cluster: node localhost idle (2 fake GPUs)"; return 0; fi
    sleep 0.2
  done
  # A node left DOWN by an earlier slurmd kill comes back with an explicit resume.
  scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
  for _ in $(seq 50); do node_ready && { echo "slurm-cluster: node localhost idle (2 fake GPUs)"; return 0; }; sleep 0.2; done
  die "the node did not become idle; logs in $STATE_DIR/log/"
}

# Daemons are found by their pid files only: never by name, which could end someone else's.
stop_daemon() {
  local pidfile=$1 pid
  alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop() {
  stop_daemon "$STATE_DIR/slurmd.pid"
  stop_daemon "$STATE_DIR/slurmctld.pid"
  stop_daemon "$MUNGE_PID"
  echo "slurm-cluster: stopped"
}

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) node_ready && echo "slurm-cluster: up" || { echo "slurm-cluster: down"; exit 1; } ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
