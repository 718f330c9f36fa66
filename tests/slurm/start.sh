#!/usr/bin/env bash
# Start a single-node Slurm (Debian's slurm-wlm + munge) on localhost for the tests.
#
#   tests/slurm/start.sh DIR     -> writes DIR/slurm.conf, starts munged, slurmctld, slurmd;
#                                   prints "SLURM_CONF=DIR/slurm.conf" when the node is idle.
#   tests/slurm/stop.sh DIR      -> stops the daemons again.
#
# Needs root (daemons, apt-get). Installs slurm-wlm and munge with apt-get if missing.
# Exit codes: 0 ready; 2 cannot run here (the reason is printed on stderr); 1 a daemon failed
# (its log is printed).
set -u
DIR=${1:?usage: start.sh DIR}
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
skip() { echo "SKIP: $*" >&2; exit 2; }
fail() { echo "FAIL: $*" >&2; for f in "$DIR"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done; exit 1; }

[ "$(id -u)" = 0 ] || skip "not root: single-node Slurm needs root to install slurm-wlm/munge and run slurmd"
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || skip "slurm-wlm/munge are not installed and there is no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  (apt-get install -y -qq slurm-wlm munge >"$DIR/apt.log" 2>&1 ||
     { apt-get update -qq >>"$DIR/apt.log" 2>&1 && apt-get install -y -qq slurm-wlm munge >>"$DIR/apt.log" 2>&1; }) ||
     skip "apt-get install slurm-wlm munge failed (see $DIR/apt.log): $(tail -n 3 "$DIR/apt.log" | tr '\n' ' ')"
fi
for exe in slurmctld slurmd munged sbatch squeue scancel; do
  command -v $exe >/dev/null 2>&1 || skip "$exe is missing after installing slurm-wlm and munge"
done

# --- munge: a key and a running munged (its socket is what slurm talks to)
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    (command -v mungekey >/dev/null && mungekey --create --keyfile=/etc/munge/munge.key) ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
  fi
  id munge >/dev/null 2>&1 && chown munge:munge /etc/munge/munge.key /etc/munge
  chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  id munge >/dev/null 2>&1 && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged >"$DIR/munged.log" 2>&1 || munged --force >"$DIR/munged.log" 2>&1
  else
    munged --force >"$DIR/munged.log" 2>&1
  fi
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || fail "munged did not start"
  touch "$DIR/munged.ours"
fi

# --- slurm.conf: one node (this machine) named localhost, one partition, no accounting
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
mkdir -p "$DIR/state" "$DIR/spool"
cat >"$DIR/slurm.conf" <<CONF
ClusterName=cmlibtest
SlurmctldHost=localhost
SlurmctldPort=${CMLIB_SLURMCTLD_PORT:-16817}
SlurmdPort=${CMLIB_SLURMD_PORT:-16818}
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=10
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeHostname=$(hostname) NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF="$DIR/slurm.conf"

slurmctld -f "$SLURM_CONF" -i >>"$DIR/slurmctld.log" 2>&1 || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N localhost >>"$DIR/slurmd.log" 2>&1 || fail "slurmd did not start"
for _ in $(seq 60); do
  state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -n 1)
  case "$state" in idle|mixed|allocated) echo "SLURM_CONF=$SLURM_CONF"; exit 0;; esac
  sleep 0.5
done
fail "the node did not become idle (sinfo says '${state:-nothing}')"
