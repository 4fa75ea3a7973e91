#!/usr/bin/env bash
# up.sh -- stand up (or check) the project's single-node test cluster on 127.0.0.1:
# munged + slurmctld + slurmd (partitions cpu [default] and gpu, 2 fake GPUs), an OpenSSH
# server on 127.0.0.1:$SSH_PORT for the unprivileged test user, and apptainer usable by that
# user (install-apptainer.sh). Debian bookworm, no systemd, run as root. Idempotent: a rerun
# only starts what is not running (and restarts what changed); with everything up it takes ~1 s.
# Writes $BASE/cluster.env for the tests. Stop it with down.sh.
#
# Knobs: HPC_DL4MIC_CLUSTER (base dir, /tmp/hpc-dl4mic-cluster), SSH_PORT (2222),
#        TEST_USER (hpcuser), FAKE_CPUS (8; CPUs slurm believes the node has, so several
#        1-cpu jobs run at once; 0 = the real count), NGPUS (2),
#        HPC_DL4MIC_SHARED_CACHE (/srv/hpc-dl4mic-cache).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BASE=${HPC_DL4MIC_CLUSTER:-/tmp/hpc-dl4mic-cluster}
SSH_PORT=${SSH_PORT:-2222}
TEST_USER=${TEST_USER:-hpcuser}
FAKE_CPUS=${FAKE_CPUS:-8}
NGPUS=${NGPUS:-2}
SHARED_CACHE=${HPC_DL4MIC_SHARED_CACHE:-/srv/hpc-dl4mic-cache}
NODE=$(hostname -s)
CONF=/etc/slurm            # the default location: sbatch/squeue/... need no SLURM_CONF
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

T0=${EPOCHREALTIME/./}; export HPC_DL4MIC_T0=$T0
stamp() { local n=${EPOCHREALTIME/./}; printf '[%7.2fs] up: %s\n' "$(( (n - T0) / 10000 ))e-2" "$*"; }
die() { echo "FATAL: $*" >&2; exit 1; }
# running and not a zombie (PID 1 here reaps orphans lazily; kill -0 succeeds on zombies)
alive() {
  local p s; [ -s "$1" ] && p=$(cat "$1") && s=$(ps -o stat= -p "$p" 2>/dev/null) || return 1
  case "$s" in ''|*Z*) return 1;; esac
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# start_daemon PIDFILE LOG -- CMD...: run a self-daemonizing CMD unless PIDFILE names a live
# process, then wait for the NEW pid file (a stale one would fool a plain check)
start_daemon() {
  local pf=$1 log=$2; shift 3
  alive "$pf" && return 0
  rm -f "$pf"
  # 9>&-: a daemon must not inherit (and so keep holding) the lock
  "$@" </dev/null >"${log%.log}.out" 2>&1 9>&- || {
    cat "${log%.log}.out"; tail -20 "$log" 2>/dev/null; die "$1 failed to start"; }
  for _ in $(seq 100); do alive "$pf" && return 0; sleep 0.1; done
  cat "${log%.log}.out"; tail -20 "$log" 2>/dev/null; die "$1 did not come up within 10 s (no live pid in $pf)"
}
# stop_pidfile PIDFILE: TERM, wait 10 s, KILL (slurmd ignores TERM while it cannot register)
stop_pidfile() {
  local f=$1 p; alive "$f" || { rm -f "$f"; return 0; }; p=$(cat "$f"); kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do alive "$f" || break; sleep 0.1; done
  if alive "$f"; then kill -9 "$p" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$f"
}
# write_if_changed DEST MODE < content; returns 0 when DEST changed
write_if_changed() {
  local dest=$1 mode=$2 tmp; tmp="$1.tmp.$$"
  cat > "$tmp"; chmod "$mode" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$dest"; return 0
}

[ "$(id -u)" = 0 ] || die "run as root (only cluster set-up runs as root; tests log in as $TEST_USER)"
# one up.sh/down.sh at a time (several test sessions may call up.sh at once)
exec 9>/run/hpc-dl4mic-cluster.lock
flock -w 900 9 || die "another up.sh/down.sh held /run/hpc-dl4mic-cluster.lock for 900 s"

# ------------------------------------------------------------------ 1. packages
PKGS="slurmctld slurmd slurm-client munge openssh-server sudo busybox-static debootstrap"
missing=""
for p in $PKGS; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
  # keep postinst scripts from starting daemons
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  timeout 600 apt-get update -qq || die "apt-get update failed"
  stamp "apt-get update"
  # shellcheck disable=SC2086
  timeout 900 apt-get install -y -qq --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  stamp "apt-get install$missing"
else
  stamp "packages already installed"
fi

# ------------------------------------------------------------------ 2. test user
if ! id "$TEST_USER" >/dev/null 2>&1; then
  useradd -m -s /bin/bash "$TEST_USER"
  stamp "created user $TEST_USER"
fi
# A password that serves as the second factor of the 2FA login node (section 9b); it also
# unlocks the account, which useradd leaves locked ('!') and sshd then refuses.
SECOND_FACTOR=$BASE/client/second_factor
install -d -m 755 "$BASE" "$BASE/client"
[ -s "$SECOND_FACTOR" ] || (umask 077; od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$SECOND_FACTOR")
chmod 600 "$SECOND_FACTOR"
printf '%s:%s\n' "$TEST_USER" "$(cat "$SECOND_FACTOR")" | chpasswd
USER_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
USER_GROUP=$(id -gn "$TEST_USER")

# ------------------------------------------------------------------ 3. apptainer (+ sudo shim)
TEST_USER=$TEST_USER bash "$HERE/install-apptainer.sh" || die "install-apptainer.sh failed"

# shared image cache: root and the test user's group may both write; setgid keeps the group
install -d -o root -g "$USER_GROUP" -m 2775 "$SHARED_CACHE"
chown root:"$USER_GROUP" "$SHARED_CACHE"; chmod 2775 "$SHARED_CACHE"

# ------------------------------------------------------------------ 4. dirs, fake GPUs, name
# one dir per daemon user: munged/slurmctld must be able to write their own dir
install -d -m 755 "$BASE" "$BASE/dev" "$BASE/client" "$BASE/slurmd" "$BASE/slurmd/spool" "$BASE/sshd"
chmod 700 "$BASE/client"
install -d -o munge -g munge -m 700 "$BASE/munge"
install -d -o slurm -g slurm -m 755 "$BASE/ctld" "$BASE/ctld/state"
# gres/gpu ignores plain files ("... is not a valid character or block device") and then sets
# no CUDA_VISIBLE_DEVICES; char devices work (NVIDIA major 195, no driver behind them)
for i in $(seq 0 $((NGPUS-1))); do
  [ -c "$BASE/dev/nvidia$i" ] || { rm -f "$BASE/dev/nvidia$i"; mknod -m 666 "$BASE/dev/nvidia$i" c 195 "$i"; }
done
getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >> /etc/hosts

# ------------------------------------------------------------------ 5. munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
start_daemon /run/munge/munged.pid "$BASE/munge/munged.log" -- \
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid \
    --log-file="$BASE/munge/munged.log" --seed-file="$BASE/munge/munged.seed"
ok=0
for _ in $(seq 50); do
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ "$ok" = 1 ] || { tail -20 "$BASE/munge/munged.log"; die "munge round-trip failed"; }
stamp "munged up (pid $(cat /run/munge/munged.pid))"

# ------------------------------------------------------------------ 6. slurm config
CPUS=$(nproc); [ "$FAKE_CPUS" -gt 0 ] && CPUS=$FAKE_CPUS
MEM=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' || true); MEM=$(( ${MEM:-2048} - 512 ))
# cgroup v1 freezer (mounted on this machine kind, no systemd needed) catches processes a job
# daemonizes; linuxproc (parent-pid walk) leaks those on scancel
if grep -qs ' /sys/fs/cgroup/freezer cgroup .*freezer' /proc/mounts; then
  PROCTRACK_LINE="ProctrackType=proctrack/cgroup"
  CGROUP_CONF="CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no"
else
  PROCTRACK_LINE="ProctrackType=proctrack/linuxproc"; CGROUP_CONF=""
fi
mkdir -p "$CONF"
changed=0
write_if_changed "$CONF/slurm.conf" 644 <<EOF && changed=1
# single-node test cluster, generated by hpc-dl4mic tests/cluster/up.sh
ClusterName=hpcdl4mic
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$BASE/ctld/state
SlurmdSpoolDir=$BASE/slurmd/spool
SlurmctldPidFile=$BASE/ctld/slurmctld.pid
SlurmdPidFile=$BASE/slurmd/slurmd.pid
SlurmctldLogFile=$BASE/ctld/slurmctld.log
SlurmdLogFile=$BASE/slurmd/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd; no task binding/confinement
$PROCTRACK_LINE
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# no sacct: one line per finished job (state, exit code, times) in a text file instead
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/ctld/jobcomp.txt
# finished jobs stay visible to squeue -t all / scontrol show job for 10 min
MinJobAge=600
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MessageTimeout=10
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
GresTypes=gpu
# lets NodeName CPUs= exceed the real core count (FAKE_CPUS)
SlurmdParameters=config_overrides
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:$NGPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
write_if_changed "$CONF/gres.conf" 644 <<EOF && changed=1
AutoDetect=off
NodeName=$NODE Name=gpu File=$BASE/dev/nvidia[0-$((NGPUS-1))]
EOF
if [ -n "$CGROUP_CONF" ]; then
  write_if_changed "$CONF/cgroup.conf" 644 <<<"$CGROUP_CONF" && changed=1
elif [ -f "$CONF/cgroup.conf" ]; then
  rm -f "$CONF/cgroup.conf"; changed=1
fi
if [ "$changed" = 1 ] && { alive "$BASE/ctld/slurmctld.pid" || alive "$BASE/slurmd/slurmd.pid"; }; then
  stamp "slurm config changed: restarting slurmctld/slurmd"
  stop_pidfile "$BASE/slurmd/slurmd.pid"; stop_pidfile "$BASE/ctld/slurmctld.pid"
fi

# ------------------------------------------------------------------ 7. slurmctld + slurmd
start_daemon "$BASE/ctld/slurmctld.pid" "$BASE/ctld/slurmctld.log" -- /usr/sbin/slurmctld -f "$CONF/slurm.conf"
ok=0
for _ in $(seq 100); do
  case "$(timeout 5 scontrol ping 2>/dev/null || true)" in *"is UP"*) ok=1; break;; esac
  alive "$BASE/ctld/slurmctld.pid" || { tail -20 "$BASE/ctld/slurmctld.log"; die "slurmctld died"; }
  sleep 0.1
done
[ "$ok" = 1 ] || { tail -20 "$BASE/ctld/slurmctld.log"; die "slurmctld does not answer scontrol ping"; }
start_daemon "$BASE/slurmd/slurmd.pid" "$BASE/slurmd/slurmd.log" -- /usr/sbin/slurmd -f "$CONF/slurm.conf"
st="" resumed=0
for _ in $(seq 150); do
  st=$(timeout 5 sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1 || true)
  case "$st" in
    idle*|mix*|alloc*|comp*) break;;
    drain*|drng*|down*)       # e.g. left drained by an earlier unclean stop
      if [ "$resumed" = 0 ]; then timeout 5 scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true; resumed=1; fi;;
  esac
  alive "$BASE/slurmd/slurmd.pid" || { tail -20 "$BASE/slurmd/slurmd.log"; die "slurmd died"; }
  sleep 0.1
done
case "$st" in
  idle*|mix*|alloc*|comp*) ;;
  *) tail -20 "$BASE/slurmd/slurmd.log"; tail -5 "$BASE/ctld/slurmctld.log"; die "node $NODE not usable after 15 s: '$st'";;
esac
stamp "slurmctld (pid $(cat "$BASE/ctld/slurmctld.pid")) + slurmd (pid $(cat "$BASE/slurmd/slurmd.pid")) up, node $NODE $st"

# ------------------------------------------------------------------ 8. client key
KEY=$BASE/client/id_ed25519
if [ ! -s "$KEY" ] || [ ! -s "$KEY.pub" ]; then
  rm -f "$KEY" "$KEY.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$TEST_USER@hpc-dl4mic-test-cluster" -f "$KEY"
  stamp "generated client key $KEY"
fi
install -d -o "$TEST_USER" -g "$USER_GROUP" -m 700 "$USER_HOME/.ssh"
if ! cmp -s "$KEY.pub" "$USER_HOME/.ssh/authorized_keys"; then
  install -o "$TEST_USER" -g "$USER_GROUP" -m 600 "$KEY.pub" "$USER_HOME/.ssh/authorized_keys"
fi

# ------------------------------------------------------------------ 9. sshd on 127.0.0.1:$SSH_PORT
[ -s "$BASE/sshd/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$BASE/sshd/ssh_host_ed25519_key"
sshd_changed=0
write_if_changed "$BASE/sshd/sshd_config" 644 <<EOF && sshd_changed=1
# generated by hpc-dl4mic tests/cluster/up.sh
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $BASE/sshd/ssh_host_ed25519_key
PidFile $BASE/sshd/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $TEST_USER
UsePAM no
AllowTcpForwarding yes
PermitOpen any
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 50:30:100
MaxSessions 50
LogLevel INFO
EOF
install -d -m 755 /run/sshd        # privilege-separation dir, normally made by systemd
# start_sshd DIR PORT CHANGED: check DIR/sshd_config, restart if it changed, start, wait for PORT
start_sshd() {
  local dir=$1 port=$2 changed=$3 ok=0
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejects $dir/sshd_config"
  if [ "$changed" = 1 ] && alive "$dir/sshd.pid"; then
    stamp "$dir/sshd_config changed: restarting that sshd"
    stop_pidfile "$dir/sshd.pid"
  fi
  # the config path must be absolute: sshd chdir()s to / and re-execs itself per connection
  start_daemon "$dir/sshd.pid" "$dir/sshd.log" -- \
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  for _ in $(seq 50); do if port_open "$port"; then ok=1; break; fi; sleep 0.1; done
  [ "$ok" = 1 ] || { tail -20 "$dir/sshd.log"; die "sshd ($dir) does not listen on 127.0.0.1:$port"; }
}
start_sshd "$BASE/sshd" "$SSH_PORT" "$sshd_changed"
KNOWN_HOSTS=$BASE/client/known_hosts
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$BASE/sshd/ssh_host_ed25519_key.pub")" \
  | write_if_changed "$KNOWN_HOSTS" 644 || true
if ! out=$(timeout 20 ssh -p "$SSH_PORT" -i "$KEY" -o UserKnownHostsFile="$KNOWN_HOSTS" \
      -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 \
      "$TEST_USER@127.0.0.1" 'id -un' </dev/null 2>&1) || [ "$out" != "$TEST_USER" ]; then
  echo "$out" >&2; tail -20 "$BASE/sshd/sshd.log"; die "ssh login as $TEST_USER failed"
fi
stamp "sshd up (pid $(cat "$BASE/sshd/sshd.pid")) on 127.0.0.1:$SSH_PORT, login as $TEST_USER ok"

# ------------------------------------------------------------------ 9b. a 2FA login node
# A second sshd on 127.0.0.1:$TWOFA_PORT that wants the key AND a keyboard-interactive answer
# through PAM (the password in $SECOND_FACTOR), like a site with 2FA.
TWOFA_PORT=${TWOFA_PORT:-2223}
install -d -m 755 "$BASE/sshd-2fa"
twofa_changed=0
write_if_changed "$BASE/sshd-2fa/sshd_config" 644 <<EOF && twofa_changed=1
# generated by hpc-dl4mic tests/cluster/up.sh: key + keyboard-interactive (PAM)
ListenAddress 127.0.0.1
Port $TWOFA_PORT
HostKey $BASE/sshd/ssh_host_ed25519_key
PidFile $BASE/sshd-2fa/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication yes
UsePAM yes
AuthenticationMethods publickey,keyboard-interactive
PermitRootLogin no
AllowUsers $TEST_USER
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel INFO
EOF
start_sshd "$BASE/sshd-2fa" "$TWOFA_PORT" "$twofa_changed"
echo "[127.0.0.1]:$TWOFA_PORT $(cut -d' ' -f1,2 "$BASE/sshd/ssh_host_ed25519_key.pub")" \
  | write_if_changed "$BASE/client/known_hosts_2fa" 644 || true
stamp "2FA sshd up (pid $(cat "$BASE/sshd-2fa/sshd.pid")) on 127.0.0.1:$TWOFA_PORT (key + keyboard-interactive)"

# ------------------------------------------------------------------ 10. cluster.env
write_if_changed "$BASE/cluster.env" 644 <<EOF || true
BASE=$BASE
SSH_HOST=127.0.0.1
SSH_PORT=$SSH_PORT
SSH_USER=$TEST_USER
SSH_KEY=$KEY
KNOWN_HOSTS=$KNOWN_HOSTS
NODE=$NODE
USER_HOME=$USER_HOME
SHARED_CACHE=$SHARED_CACHE
PARTITIONS=cpu,gpu
DEFAULT_PARTITION=cpu
GPU_PARTITION=gpu
NGPUS=$NGPUS
CPUS=$CPUS
TWOFA_PORT=$TWOFA_PORT
TWOFA_KNOWN_HOSTS=$BASE/client/known_hosts_2fa
TWOFA_SECRET_FILE=$SECOND_FACTOR
EOF
stamp "cluster up; settings in $BASE/cluster.env"
