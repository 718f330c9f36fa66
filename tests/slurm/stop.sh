#!/usr/bin/env bash
# Stop the daemons tests/slurm/start.sh DIR started (by their pid files), and munged if it started it.
set -u
DIR=${1:?usage: stop.sh DIR}
for d in slurmd slurmctld; do
  pidfile="$DIR/$d.pid"
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
done
if [ -f "$DIR/munged.ours" ]; then
  pid=$(cat /run/munge/munged.pid 2>/dev/null)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -f "$DIR/munged.ours"
fi
exit 0
