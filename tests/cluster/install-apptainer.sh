#!/usr/bin/env bash
# install-apptainer.sh -- idempotent installer of a REAL Apptainer (Debian sid's apptainer
# package, 1.4.x) on Debian bookworm, for the local test cluster. Run as root.
#
# bookworm has no apptainer and sid's needs glibc >= 2.38, so apptainer lives in a minimal
# debootstrapped sid rootfs. A root-only wrapper runs it in a private mount namespace that is
# pivot_root'ed (NOT chroot'ed: apptainer's starter aborts in a "weak chrooted environment")
# into that rootfs, with /proc /sys /dev and host dirs bind-mounted at the same paths.
# Nothing is mounted in the host's namespace; mounts vanish when the command exits.
#
# Installed commands:
#   $ROOT_WRAPPER  (/usr/local/libexec/apptainer-root)  root only: the wrapper itself
#   $SHIM          (/usr/local/libexec/apptainer-shim)  run through sudo by the test user(s);
#                  runs the wrapper with APPTAINER_RUN_AS=$SUDO_USER (never a caller's choice)
#   $FRONT         (/usr/local/bin/apptainer)           on PATH for everyone: root -> wrapper,
#                  anyone else -> sudo -n shim
#   /etc/sudoers.d/hpc-dl4mic-apptainer                 NOPASSWD on the shim only
#
# Knobs: APPTAINER_ROOTFS (/var/lib/apptainer-sid), DEBIAN_MIRROR (http://deb.debian.org/debian),
#        APPTAINER_SUITE (sid: the only suite carrying apptainer),
#        APPTAINER_SUDO_USERS (space-separated; default "${TEST_USER:-hpcuser}").
set -euo pipefail

ROOTFS=${APPTAINER_ROOTFS:-/var/lib/apptainer-sid}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${APPTAINER_SUITE:-sid}
SUDO_USERS=${APPTAINER_SUDO_USERS:-${TEST_USER:-hpcuser}}
ROOT_WRAPPER=/usr/local/libexec/apptainer-root
SHIM=/usr/local/libexec/apptainer-shim
FRONT=/usr/local/bin/apptainer
SUDOERS=/etc/sudoers.d/hpc-dl4mic-apptainer
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

T0=${HPC_DL4MIC_T0:-${EPOCHREALTIME/./}}   # up.sh passes its start: one time axis
LOG=/var/tmp/hpc-dl4mic-install-apptainer.log
stamp() { local n=${EPOCHREALTIME/./}; printf '[%7.2fs] apptainer: %s\n' "$(( (n - T0) / 10000 ))e-2" "$*"; }
die() { echo "FATAL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
if grep -q " ${ROOTFS}[/ ]" /proc/self/mounts; then
  die "something is mounted under $ROOTFS in the host namespace; refusing"
fi

# install_file MODE SRC DEST: replace DEST only when the content or mode differs
install_file() {
  local mode=$1 src=$2 dest=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ] &&
     [ "$(stat -c %u:%g "$dest")" = 0:0 ]; then
    rm -f "$src"; return 0
  fi
  chown 0:0 "$src"; chmod "$mode" "$src"; mv -f "$src" "$dest"
}

# ------------------------------------------------------------------ 1. host packages
need=""
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
command -v sudo >/dev/null 2>&1 || need="$need sudo"
if [ -n "$need" ]; then
  apt-get update -qq >"$LOG" 2>&1 || { tail -20 "$LOG"; die "apt-get update failed"; }
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >>"$LOG" 2>&1 ||
    { tail -20 "$LOG"; die "apt-get install$need failed"; }
  stamp "installed:$need"
fi

# run a command chrooted into the rootfs, with /proc, in a throw-away mount namespace
in_root() {
  # shellcheck disable=SC2016  # expanded by the inner sh
  unshare --mount --propagation private -- /bin/sh -c \
    'mount -t proc proc "$0/proc" && exec chroot "$0" /usr/bin/env \
       PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"' \
    "$ROOTFS" "$@"
}

# ------------------------------------------------------------------ 2. sid rootfs + apptainer
if [ ! -x "$ROOTFS/usr/bin/apptainer" ] || [ ! -x "$ROOTFS/usr/sbin/debootstrap" ] ||
   [ ! -x "$ROOTFS/usr/sbin/mkfs.ext3" ] || [ ! -x "$ROOTFS/usr/bin/squashfuse_ll" ]; then
  # a leftover debootstrap/ dir means a previous debootstrap was interrupted
  if [ -d "$ROOTFS/debootstrap" ] || [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$LOG" 2>&1 ||
      { tail -20 "$LOG"; die "debootstrap $SUITE failed (log: $LOG)"; }
    stamp "debootstrapped $SUITE into $ROOTFS"
  fi
  # the mirror may serve an expired Release (Valid-Until in the past)
  printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
    > "$ROOTFS/etc/apt/apt.conf.d/99no-check-valid-until"
  # + debootstrap for "Bootstrap: debootstrap" definitions, + e2fsprogs for "overlay create",
  # + squashfuse/fuse2fs/fuse3: unprivileged users mount the SIF instead of unpacking it
  #   into a temporary sandbox (exec of an 83 MB SIF: 0.24 s instead of 3-4 s)
  { in_root apt-get update -qq &&
    in_root apt-get install -y -qq --no-install-recommends apptainer debootstrap e2fsprogs \
      squashfuse fuse2fs fuse3 &&
    in_root apt-get clean; } >>"$LOG" 2>&1 ||
    { tail -20 "$LOG"; die "installing apptainer into $ROOTFS failed (log: $LOG)"; }
  rm -rf "$ROOTFS"/var/lib/apt/lists/*
  stamp "apptainer installed in $ROOTFS"
fi

# ------------------------------------------------------------------ 3. bind targets, caps
for f in /etc/hosts /etc/resolv.conf /etc/subuid /etc/subgid; do
  [ -e "$ROOTFS$f" ] || : > "$ROOTFS$f"
done
mkdir -p "$ROOTFS/usr/local/share/ca-certificates"

# This machine's bounding set lacks some caps (CAP_SYS_RESOURCE); with "root default
# capabilities = full" every root container fails ("Requesting capability set ... while
# permitted capability set is ..."). Grant root only what it has.
CAPS="CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
  CHECKPOINT_RESTORE"
bnd=$((0x$(awk '/^CapBnd/{print $2}' /proc/self/status))); i=0; have=
for c in $CAPS; do
  [ $(( (bnd >> i) & 1 )) -eq 1 ] && have="${have:+$have, }\"CAP_$c\""
  i=$((i+1))
done
printf '{\n\t"users": {\n\t\t"root": [%s]\n\t}\n}\n' "$have" > "$ROOTFS/etc/apptainer/capability.json.tmp"
if cmp -s "$ROOTFS/etc/apptainer/capability.json.tmp" "$ROOTFS/etc/apptainer/capability.json"; then
  rm -f "$ROOTFS/etc/apptainer/capability.json.tmp"
else
  mv -f "$ROOTFS/etc/apptainer/capability.json.tmp" "$ROOTFS/etc/apptainer/capability.json"
fi
grep -qx 'root default capabilities = file' "$ROOTFS/etc/apptainer/apptainer.conf" ||
  sed -i 's/^root default capabilities = .*/root default capabilities = file/' \
    "$ROOTFS/etc/apptainer/apptainer.conf"

# unprivileged FUSE mounts (squashfuse_ll) need /dev/fuse open to all, as udev makes it on a
# normal Debian; here it is 0600 (devtmpfs default). Without it apptainer unpacks instead.
if [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
  chmod 666 /dev/fuse
fi

# ------------------------------------------------------------------ 4. root wrapper
mkdir -p "$(dirname "$ROOT_WRAPPER")" "$(dirname "$FRONT")"
cat > "$ROOT_WRAPPER.tmp" <<EOF
#!/bin/sh
# apptainer-root, generated by hpc-dl4mic tests/cluster/install-apptainer.sh: runs Debian
# sid's apptainer from $ROOTFS in a private, pivot_root'ed mount namespace. Root only.
# APPTAINER_RUN_AS=<user> runs apptainer itself as that user (set by apptainer-shim).
ROOTFS=\${APPTAINER_ROOTFS:-$ROOTFS}
EOF
cat >> "$ROOT_WRAPPER.tmp" <<'EOF'
# host dirs visible at the same path inside (plus the current directory)
BINDS=${APPTAINER_HOST_BINDS:-"/tmp /home /root /work /srv /mnt /media /opt /var/tmp"}
[ -x "$ROOTFS/usr/bin/apptainer" ] || { echo "apptainer rootfs missing: $ROOTFS" >&2; exit 127; }
[ "$(id -u)" = 0 ] || { echo "apptainer-root: must run as root (uses unshare -m + pivot_root); non-root users run 'apptainer' (sudo shim)" >&2; exit 126; }

# root apptainer asks for ALL capabilities when building (%post) and for --keep-privs;
# drop those missing from our bounding set (e.g. CAP_SYS_RESOURCE)
if [ -z "${APPTAINER_DROP_CAPS+x}" ]; then
  set -- CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP \
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER \
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE \
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP \
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF \
    CHECKPOINT_RESTORE -- "$@"
  bnd=$((0x$(awk '/^CapBnd/{print $2}' /proc/self/status))); i=0; drop=
  while [ "$1" != -- ]; do
    [ $(( (bnd >> i) & 1 )) -eq 0 ] && drop="${drop:+$drop,}CAP_$1"
    i=$((i+1)); shift
  done; shift
  [ -n "$drop" ] && export APPTAINER_DROP_CAPS="$drop"
fi
RUN_AS=${APPTAINER_RUN_AS:-}; export RUN_AS; unset APPTAINER_RUN_AS

exec unshare --mount --propagation private -- /bin/sh -c '
  set -e
  R=$1; BINDS=$2; WD=$3; shift 3
  mount --bind "$R" "$R"                       # new root must be a mount point
  mount -t proc proc "$R/proc"
  mount --rbind /sys "$R/sys"
  mount --rbind /dev "$R/dev"
  for f in /etc/hosts /etc/resolv.conf /etc/passwd /etc/group /etc/subuid /etc/subgid \
           /etc/ssl/certs/ca-certificates.crt; do
    if [ -f "$f" ] && [ -f "$R$f" ]; then mount --bind "$f" "$R$f"; fi
  done
  if [ -d /usr/local/share/ca-certificates ]; then   # host-local CAs, read-only
    mount --bind /usr/local/share/ca-certificates "$R/usr/local/share/ca-certificates"
    mount -o remount,bind,ro "$R/usr/local/share/ca-certificates"
  fi
  covered=
  for d in $BINDS; do
    [ -d "$d" ] || continue
    [ -d "$R$d" ] || mkdir -p "$R$d"
    mount --rbind "$d" "$R$d"
    case "$WD/" in "$d"/*) covered=1;; esac
  done
  if [ -z "$covered" ] && [ "$WD" != / ]; then
    mkdir -p "$R$WD" && mount --rbind "$WD" "$R$WD"
  fi
  cd "$R"
  pivot_root . .
  umount -l .                                  # detach the old (host) root
  cd "$WD" 2>/dev/null || cd /
  unset OLDPWD
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
  if [ -n "$RUN_AS" ]; then                    # unprivileged use (the sudo shim)
    HOME=$(getent passwd "$RUN_AS" | cut -d: -f6); USER=$RUN_AS; LOGNAME=$RUN_AS
    export HOME USER LOGNAME; unset APPTAINER_DROP_CAPS RUN_AS
    exec setpriv --reuid="$USER" --regid="$(id -g "$USER")" --init-groups \
         --inh-caps=-all apptainer "$@"
  fi
  unset RUN_AS
  exec apptainer "$@"
' apptainer-wrapper "$ROOTFS" "$BINDS" "$(pwd -P)" "$@"
EOF
install_file 700 "$ROOT_WRAPPER.tmp" "$ROOT_WRAPPER"

# ------------------------------------------------------------------ 5. sudo shim + front end
cat > "$SHIM.tmp" <<EOF
#!/bin/sh
# apptainer-shim, generated by hpc-dl4mic tests/cluster/install-apptainer.sh. The only
# command the test user may run through sudo: apptainer runs as the user who called sudo.
# sudoers keeps the caller's environment for this command (!env_reset; sudo still strips
# LD_*, IFS, BASH_ENV, ...) so the container sees it as with a native apptainer.
set -eu
if [ "\$(id -u)" != 0 ] || [ -z "\${SUDO_USER:-}" ]; then
  echo "apptainer-shim: run through 'sudo -n $SHIM ...' (use 'apptainer')" >&2
  exit 126
fi
APPTAINER_RUN_AS=\$SUDO_USER
# nothing the caller sets may steer the root side: our own knobs, and what glibc ignores
# for setuid programs (loadable modules, locale/tz/resolver files, tunables)
unset SUDO_USER SUDO_UID SUDO_GID SUDO_COMMAND SUDO_PS1 MAIL \\
  APPTAINER_ROOTFS APPTAINER_HOST_BINDS APPTAINER_DROP_CAPS \\
  GCONV_PATH GETCONF_DIR GLIBC_TUNABLES HOSTALIASES LOCALDOMAIN LOCPATH MALLOC_TRACE \\
  NIS_PATH NLSPATH RESOLV_HOST_CONF RES_OPTIONS TZDIR
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH APPTAINER_RUN_AS
exec $ROOT_WRAPPER "\$@"
EOF
install_file 755 "$SHIM.tmp" "$SHIM"

cat > "$FRONT.tmp" <<EOF
#!/bin/sh
# apptainer, generated by hpc-dl4mic tests/cluster/install-apptainer.sh (test cluster only;
# real clusters install apptainer natively). root runs it directly; other users through
# sudo + a shim that runs the container as the calling user.
if [ "\$(id -u)" = 0 ]; then exec $ROOT_WRAPPER "\$@"; fi
exec sudo -n $SHIM "\$@"
EOF
install_file 755 "$FRONT.tmp" "$FRONT"

# ------------------------------------------------------------------ 6. sudoers rule
{
  echo "# generated by hpc-dl4mic tests/cluster/install-apptainer.sh"
  echo "Defaults!$SHIM !env_reset, !use_pty"
  for u in $SUDO_USERS; do
    echo "$u ALL=(root) NOPASSWD: $SHIM"
  done
} > "$SUDOERS.tmp"
visudo -qcf "$SUDOERS.tmp" >/dev/null || { rm -f "$SUDOERS.tmp"; die "visudo rejected the sudoers rule"; }
install_file 440 "$SUDOERS.tmp" "$SUDOERS"

# ------------------------------------------------------------------ 7. smoke test
v=$("$FRONT" --version) || die "apptainer --version failed"
stamp "$v ready ($FRONT; sudo rule for: $SUDO_USERS)"
