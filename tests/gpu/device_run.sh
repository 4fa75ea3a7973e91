#!/bin/bash
# The GPU tier on a bare GPU machine (the project's GPU device, or any machine with an
# NVIDIA GPU and its driver but without apptainer or network). Run from the repo root:
#
#   bash tests/gpu/device_run.sh stash   # keep what this call carried in /var/tmp/gpuparts
#   bash tests/gpu/device_run.sh probe   # what the machine has; the probe kernel, bare
#   bash tests/gpu/device_run.sh full    # + apptainer, the GPU tier (pytest -m gpu), bench/gpu.py
#
# Brought along (git-ignored folders, made on a machine with apt and pip):
#   .dev1/debs/*.deb      apptainer, squashfs-tools, liblzo2-2 (Debian sid; unpacked into /)
#   .dev1/wheels/*.whl    what hpc-dl4mic and pytest need that the machine lacks (cp312)
#   .dev1/base.part-00, .dev2/base.part-01, .dev3/base.part-0[23], .dev1/base.sha256
#                         the offline Debian base SIF (`hpc-dl4mic base`), split to fit
# Results go to $OUT (default /tmp/gpu-out).
set -uo pipefail
MODE=${1:-full}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
REPO=$(pwd)
log() { echo "[$(date +%T)] $*"; }

# a call carries only part of what is needed (64 MiB a call): keep each part outside the
# repo, where it survives the next call on the same machine
PARTS=/var/tmp/gpuparts
mkdir -p "$PARTS/debs" "$PARTS/wheels"
for dir in .dev1 .dev2 .dev3; do
    [ -d "$dir" ] || continue
    cp -r "$dir"/. "$PARTS"/
done
ls -la "$PARTS"
[ "$MODE" = stash ] && exit 0

log "machine"
nvidia-smi -L
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader
ldd --version | head -1
python3 --version
uname -r
nproc

if ! command -v apptainer >/dev/null 2>&1; then
    log "apptainer from .dev1/debs"
    for deb in "$PARTS"/debs/*.deb; do dpkg-deb -x "$deb" /; done
    ldconfig
fi
apptainer --version
# root's capability bounding set may lack some (a VM): apptainer must not ask for those
CAPS="CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
  CHECKPOINT_RESTORE"
bnd=$((0x$(awk '/^CapBnd/{print $2}' /proc/self/status))); i=0; have= drop=
for c in $CAPS; do
  if [ $(( (bnd >> i) & 1 )) -eq 1 ]; then have="${have:+$have, }\"CAP_$c\""
  else drop="${drop:+$drop,}CAP_$c"; fi
  i=$((i+1))
done
if [ -n "$drop" ]; then
  echo "capabilities missing from the bounding set: $drop"
  printf '{\n\t"users": {\n\t\t"root": [%s]\n\t}\n}\n' "$have" > /etc/apptainer/capability.json
  sed -i 's/^root default capabilities = .*/root default capabilities = file/' \
      /etc/apptainer/apptainer.conf
  export APPTAINER_DROP_CAPS=$drop
fi
for exe in /usr/bin/mksquashfs /usr/libexec/apptainer/bin/starter; do
    [ -e "$exe" ] && ldd "$exe" | grep "not found" && echo "MISSING libraries for $exe"
done

log "python packages from .dev1/wheels"
if [ ! -d /tmp/site/nbformat ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$PARTS"/wheels/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$REPO
python3 -c 'import hpc_dl4mic.cli, nbformat, pytest; print("hpc-dl4mic imports")' || exit 1

log "the probe on the bare machine (PTX saxpy through the driver API)"
python3 hpc_dl4mic/gpu/probe.py | tee "$OUT/probe-bare.txt" | cut -c1-600

log "CLI start-up (bench/cli_startup.py, an idle machine)"
python3 bench/cli_startup.py --runs 31 2>&1 | tee "$OUT/cli_startup.txt"

[ "$MODE" = probe ] && exit 0

log "base SIF from its parts"
BASE_DIR=/tmp/gpu-base
mkdir -p "$BASE_DIR"
NAME=$(awk '{print $2}' "$PARTS/base.sha256" | xargs basename)
cat "$PARTS"/base.part-0[0-3] > "$BASE_DIR/$NAME"
(cd "$BASE_DIR" && sed "s#  .*/#  #" "$PARTS/base.sha256" | sha256sum -c) || exit 1
cp "$PARTS/${NAME%.sif}".json "$BASE_DIR/" 2>/dev/null || true
export HPC_DL4MIC_GPU_BASE=$BASE_DIR/$NAME
export HPC_DL4MIC_GPU_IMAGES=/tmp/gpu-images

log "apptainer --nv smoke test"
apptainer exec --nv "$HPC_DL4MIC_GPU_BASE" nvidia-smi -L

log "GPU tier: pytest -m gpu"
python3 -m pytest tests/gpu -m gpu -v -s -p no:cacheprovider 2>&1 | tee "$OUT/pytest-gpu.txt"
rc=${PIPESTATUS[0]}

log "bench/gpu.py"
IMAGE=$(ls -t "$HPC_DL4MIC_GPU_IMAGES"/gpu_saxpy-*.sif 2>/dev/null | head -1)
if [ -n "$IMAGE" ]; then
    python3 bench/gpu.py --image "$IMAGE" --json "$OUT/bench-gpu.json" 2>&1 \
        | tee "$OUT/bench-gpu.txt"
fi
log "done (pytest exit code $rc)"
exit "$rc"
