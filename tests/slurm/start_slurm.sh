#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine (slurmctld + slurmd + munge), for the
# slurm backend's test (tests/test_slurm_backend.py) and for trying utils/slurm.py by hand.
#
#   tests/slurm/start_slurm.sh            # install (apt) if missing, configure, start; idempotent
#   tests/slurm/start_slurm.sh --no-install   # fail instead of calling apt-get
#
# Needs root (apt, daemons, /etc/slurm).  The node is "localhost" with this machine's CPUs
# and memory, one partition "debug"; no cgroups (proctrack/linuxproc, task/none) so it also
# runs in containers.  The config is written only if /etc/slurm/slurm.conf is absent or was
# written by this script (it carries a marker line), so a real site config is never touched.
set -euo pipefail

install=true
[ "${1:-}" = "--no-install" ] && install=false

log() { echo "$(date '+%F %T') [start_slurm.sh] $*" >&2; }
marker="# written by udistil tests/slurm/start_slurm.sh"
conf=/etc/slurm/slurm.conf

if [ "$(id -u)" -ne 0 ]; then
  log "ERROR: needs root (starts munged, slurmctld and slurmd)"; exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  if [ "$install" != true ]; then
    log "ERROR: slurmctld/slurmd/munged not installed (apt-get install slurm-wlm munge)"; exit 1
  fi
  log "installing slurm-wlm and munge from apt (about a minute)"
  apt-get update -qq >/dev/null || log "apt-get update failed; trying install anyway"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# --- munge: the authentication daemon every Slurm RPC goes through -------------------
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- munged 2>/dev/null || munged --force
  for _ in $(seq 20); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
  munge -n </dev/null | unmunge >/dev/null || { log "ERROR: munged does not answer"; exit 1; }
fi

# --- slurm.conf: one node, one partition ------------------------------------------------
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  log "$conf exists and was not written by this script; using it as it is"
else
  cpus=$(nproc)
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  mkdir -p /etc/slurm
  cat > "$conf.tmp" <<CONF
$marker
ClusterName=udistil-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$conf.tmp" "$conf" 2>/dev/null; then
    mv "$conf.tmp" "$conf"
    log "wrote $conf (localhost: $cpus CPUs, $mem_mb MB)"
  else
    rm -f "$conf.tmp"
  fi
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

# --- daemons ----------------------------------------------------------------------------
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  log "starting slurmctld"
  slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
  log "starting slurmd"
  slurmd -N localhost
fi

# Wait until the node accepts jobs (idle or mixed), resuming it if a previous run left it down.
for i in $(seq 60); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle*|mixed*|allocated*|completing*) log "slurm is up: node localhost $state"; exit 0 ;;
    down*|drain*) scontrol update NodeName=localhost State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
log "ERROR: node localhost did not become idle (state '${state:-none}'); see /var/log/slurm/slurmd.log and slurmctld.log"
exit 1
