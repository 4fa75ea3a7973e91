#!/usr/bin/env bash
# down.sh -- stop what up.sh started, by PID file only. Idempotent; exits 0 when nothing runs.
#   bash tests/cluster/down.sh           stop the daemons; keep state, configs, user, key, cache
#   PURGE=1 bash tests/cluster/down.sh   also delete the state dir, generated slurm configs,
#                                        the test user (+ home) and the shared image cache
# Packages and the apptainer install (install-apptainer.sh) are left in place.
set -euo pipefail

BASE=${HPC_DL4MIC_CLUSTER:-/tmp/hpc-dl4mic-cluster}
TEST_USER=${TEST_USER:-hpcuser}
SHARED_CACHE=${HPC_DL4MIC_SHARED_CACHE:-/srv/hpc-dl4mic-cache}
CONF=/etc/slurm

T0=${EPOCHREALTIME/./}
stamp() { local n=${EPOCHREALTIME/./}; printf '[%7.2fs] down: %s\n' "$(( (n - T0) / 10000 ))e-2" "$*"; }
alive() {  # running and not a zombie
  local s; s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  case "$s" in ''|*Z*) return 1;; esac
}

[ "$(id -u)" = 0 ] || { echo "FATAL: run as root" >&2; exit 1; }
exec 9>/run/hpc-dl4mic-cluster.lock   # shared with up.sh
flock -w 900 9 || { echo "FATAL: /run/hpc-dl4mic-cluster.lock held for 900 s" >&2; exit 1; }

# stop NAME PIDFILE: TERM, wait up to 10 s, then KILL
stop() {
  local name=$1 f=$2 p
  [ -s "$f" ] || { stamp "$name: no pid file"; return 0; }
  p=$(cat "$f")
  if ! alive "$p"; then stamp "$name: not running"; rm -f "$f"; return 0; fi
  # a stale pid file may name a recycled pid: signal it only if it is that daemon
  case "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null || true)" in
    *"$name"*) ;;
    *) stamp "$name: pid $p is something else now; left alone"; rm -f "$f"; return 0;;
  esac
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 100); do alive "$p" || break; sleep 0.1; done
  if alive "$p"; then
    stamp "$name: pid $p ignored SIGTERM for 10 s -> SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 20); do alive "$p" || break; sleep 0.1; done
  fi
  rm -f "$f"
  stamp "$name: stopped pid $p"
}

# cancel the test user's jobs first so slurmstepd and the job processes go away cleanly
if [ -s "$BASE/ctld/slurmctld.pid" ] && alive "$(cat "$BASE/ctld/slurmctld.pid")" && id "$TEST_USER" >/dev/null 2>&1; then
  timeout 10 scancel --user="$TEST_USER" 2>/dev/null || true
  for _ in $(seq 75); do
    [ -z "$(timeout 5 squeue -h -u "$TEST_USER" -t PD,R,CG,S 2>/dev/null)" ] && break
    sleep 0.2
  done
  stamp "cancelled $TEST_USER's jobs"
fi
stop sshd      "$BASE/sshd/sshd.pid"
stop sshd-2fa  "$BASE/sshd-2fa/sshd.pid"
stop slurmd    "$BASE/slurmd/slurmd.pid"
stop slurmctld "$BASE/ctld/slurmctld.pid"
stop munged    /run/munge/munged.pid

# Whatever still runs as the dedicated test user was started through our sshd or slurmd
# (a login's children, e.g. an `ssh -L` session or a nohup'ed process).
if id "$TEST_USER" >/dev/null 2>&1; then
  left=$( { ps -o pid=,stat= -u "$TEST_USER" 2>/dev/null || true; } | awk '$2 !~ /Z/ {print $1}' | tr '\n' ' ')
  if [ -n "${left// /}" ]; then
    stamp "leftover $TEST_USER processes: $left-> TERM"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    sleep 1
    left=$( { ps -o pid=,stat= -u "$TEST_USER" 2>/dev/null || true; } | awk '$2 !~ /Z/ {print $1}' | tr '\n' ' ')
    # shellcheck disable=SC2086
    [ -n "${left// /}" ] && { stamp "still there: $left-> KILL"; kill -KILL $left 2>/dev/null || true; }
  fi
fi
# empty freezer cgroups slurmd made (proctrack/cgroup); rmdir refuses non-empty ones
cg="/sys/fs/cgroup/freezer/slurm_$(hostname -s)"
[ -d "$cg" ] && { find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true; }
cg="/sys/fs/cgroup/freezer/slurm"
[ -d "$cg" ] && { find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true; }

if [ "${PURGE:-0}" = 1 ]; then
  if id "$TEST_USER" >/dev/null 2>&1; then userdel -r "$TEST_USER" 2>/dev/null || userdel "$TEST_USER" || true; fi
  rm -f "$CONF/slurm.conf" "$CONF/gres.conf" "$CONF/cgroup.conf"
  rm -rf "$BASE" "$SHARED_CACHE"
  stamp "purged $BASE, $SHARED_CACHE, slurm configs and user $TEST_USER"
fi
stamp "done"
exit 0
