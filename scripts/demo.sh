#!/usr/bin/env bash
# demo.sh -- `make demo`: from a fresh Debian bookworm machine (as root) to a notebook served
# from a SLURM job through an SSH tunnel, and a 3-task batch sweep, on the local test cluster.
# Idempotent: a rerun reuses the venv, the cluster, the base SIF and the images (by key).
#
# Knobs: HPC_DL4MIC_DEMO_VENV (.venv-demo), HPC_DL4MIC_DEMO_DIR (.demo: profiles, sessions,
#        fetched runs, env file), HPC_DL4MIC_DEMO_CACHE (/var/tmp/hpc-dl4mic-demo-cache: the
#        image cache, shared by this machine and the cluster user), HPC_DL4MIC_SHARED (../shared),
#        DEMO_KEEP_SESSION=1 (leave the demo's Jupyter job running), PYTHON (python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd -P)
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1

VENV=${HPC_DL4MIC_DEMO_VENV:-$REPO/.venv-demo}
DEMO=${HPC_DL4MIC_DEMO_DIR:-$REPO/.demo}
CACHE=${HPC_DL4MIC_DEMO_CACHE:-/var/tmp/hpc-dl4mic-demo-cache}
SHARED=$(realpath -m "${HPC_DL4MIC_SHARED:-$REPO/../shared}")
NOTEBOOK=$SHARED/seed-data/zerocostdl4mic/Colab_notebooks/StarDist_2D_ZeroCostDL4Mic.ipynb
TARGET=StarDist_2D_DL4Mic
SMALL_REQ=$REPO/tests/data/requirements-small.txt
SWEEP_CONFIG=$REPO/tests/data/mini_sweep/configuration.yaml
SWEEP_NOTEBOOK=$REPO/tests/data/mini_sweep.ipynb
CLUSTER_ENV=${HPC_DL4MIC_CLUSTER:-/tmp/hpc-dl4mic-cluster}/cluster.env
CA_DIR=/usr/local/share/ca-certificates
PROFILE=demo
STARTED=$SECONDS

step() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[demo %s] FAILED: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }
indent() { sed 's/^/    /'; }

[ "$(id -u)" = 0 ] || die "run as root (apt packages and the local cluster need it): sudo make demo"
[ -f "$NOTEBOOK" ] || die "$NOTEBOOK not found: set HPC_DL4MIC_SHARED to the folder holding seed-data/"

SUBMIT_PID="" SESSION=""
cleanup() {
  local rc=$?
  if [ -n "$SUBMIT_PID" ] && kill -0 "$SUBMIT_PID" 2>/dev/null; then
    kill -TERM "$SUBMIT_PID" 2>/dev/null || true   # closes the tunnel; the job is kept
    wait "$SUBMIT_PID" 2>/dev/null || true
  fi
  if [ "$rc" != 0 ] && [ -n "$SESSION" ]; then
    step "demo failed: cancelling its Jupyter job (session $SESSION)"
    hpc-dl4mic cancel "$SESSION" 2>&1 | indent || true
  fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ 1. apt packages
step "1/9 apt packages (python3, python3-venv, openssh-client, ca-certificates)"
missing=""
for p in python3 python3-venv openssh-client ca-certificates; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] \
    || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  step "    installed:$missing"
else
  step "    already installed"
fi

# ------------------------------------------------------------------ 2. venv + pip install .
step "2/9 virtualenv $VENV and pip install ."
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# reinstall only when the package's sources changed since the last install
src_hash=$(find hpc_dl4mic definitions slurm_templates configs setup.cfg pyproject.toml \
             -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.demo-installed" 2>/dev/null || true)" != "$src_hash" ]; then
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q .
  echo "$src_hash" > "$VENV/.demo-installed"
  step "    installed hpc-dl4mic $("$VENV/bin/hpc-dl4mic" --version | awk '{print $NF}') ($src_hash)"
else
  step "    up to date ($src_hash)"
fi
export PATH="$VENV/bin:$PATH"
# the demo's profiles, sessions and downloads stay in $DEMO (see $DEMO/env)
mkdir -p "$DEMO"
export XDG_CONFIG_HOME=$DEMO/config XDG_STATE_HOME=$DEMO/state XDG_CACHE_HOME=$DEMO/cache
export HPC_DL4MIC_CACHE=$CACHE HPC_DL4MIC_PROFILE=$PROFILE

# ------------------------------------------------------------------ 3. local cluster
step "3/9 local cluster: sshd 127.0.0.1:2222 + SLURM + apptainer (tests/cluster/up.sh)"
bash tests/cluster/up.sh 2>&1 | indent
while IFS='=' read -r key value; do
  case "$key" in SSH_HOST|SSH_PORT|SSH_USER|SSH_KEY|KNOWN_HOSTS) printf -v "$key" '%s' "$value";; esac
done < "$CLUSTER_ENV"
CERTS=()
compgen -G "$CA_DIR/*.crt" >/dev/null && CERTS=(--ca-certs "$CA_DIR")

# ------------------------------------------------------------------ 4. base + images
step "4/9 offline Debian base into $CACHE (built once, then found by key)"
# group-writable for the cluster user: it finds (or builds) the same images there
install -d -o root -g "$(id -gn "$SSH_USER")" -m 2775 "$CACHE"
BASE_SIF=$(hpc-dl4mic base --cache "$CACHE" "${CERTS[@]}")
step "    $BASE_SIF"
IMAGE_ARGS=(--base "localimage:$BASE_SIF" --requirements "$SMALL_REQ" "${CERTS[@]}")

step "5/9 images: $TARGET (real config + notebook, small requirements) and the mini sweep"
hpc-dl4mic build "$TARGET" --notebook "$NOTEBOOK" "${IMAGE_ARGS[@]}" --cache "$CACHE" \
  2>&1 | indent
hpc-dl4mic build "$SWEEP_CONFIG" --notebook "$SWEEP_NOTEBOOK" "${IMAGE_ARGS[@]}" \
  --cache "$CACHE" 2>&1 | indent

# ------------------------------------------------------------------ 6. profile
step "6/9 profile '$PROFILE' for $SSH_USER@$SSH_HOST:$SSH_PORT ($XDG_CONFIG_HOME/hpc-dl4mic/profiles.yaml)"
hpc-dl4mic profile add "$PROFILE" --host "$SSH_HOST" --port "$SSH_PORT" --user "$SSH_USER" \
  --identity "$SSH_KEY" --known-hosts "$KNOWN_HOSTS" --cache-dir "$CACHE" --build login \
  --partition cpu --time 00:30:00 2>&1 | indent
hpc-dl4mic profile test "$PROFILE" 2>&1 | indent
cat > "$DEMO/env" <<EOF
# source me: . $DEMO/env   (the demo's hpc-dl4mic, profile, sessions and image cache)
export PATH="$VENV/bin:\$PATH" XDG_CONFIG_HOME="$XDG_CONFIG_HOME" XDG_STATE_HOME="$XDG_STATE_HOME"
export XDG_CACHE_HOME="$XDG_CACHE_HOME" HPC_DL4MIC_CACHE="$CACHE" HPC_DL4MIC_PROFILE=$PROFILE
EOF

# ------------------------------------------------------------------ 7. submit + tunnel
step "7/9 submit $TARGET to SLURM; waiting for Jupyter behind the tunnel"
OUT=$DEMO/submit.out ERR=$DEMO/submit.err
: > "$OUT"; : > "$ERR"
hpc-dl4mic submit "$TARGET" --notebook "$NOTEBOOK" "${IMAGE_ARGS[@]}" --no-browser \
  --timeout 600 </dev/null >"$OUT" 2>"$ERR" &
SUBMIT_PID=$!
shown=0 URL=""
for _ in $(seq 900); do
  n=$(wc -l < "$ERR")
  [ "$n" -gt "$shown" ] && { sed -n "$((shown + 1)),${n}p" "$ERR" | indent; shown=$n; }
  [ -z "$SESSION" ] && SESSION=$(sed -n 's/.*submitted job .* (session \(.*\))$/\1/p' "$ERR" | head -1)
  URL=$(grep -m1 '^http://127.0.0.1:' "$OUT" || true)
  [ -n "$URL" ] && break
  kill -0 "$SUBMIT_PID" 2>/dev/null || { wait "$SUBMIT_PID" || true; SUBMIT_PID="";
    tail -20 "$ERR" | indent; die "hpc-dl4mic submit ended before printing the URL"; }
  sleep 1
done
[ -n "$URL" ] || die "no Jupyter URL after 900 s (see $ERR)"
python "$REPO/scripts/demo_check.py" jupyter "$URL" 2>&1 | indent
step "    Jupyter is served through the tunnel: $URL"

# ------------------------------------------------------------------ 8. batch sweep
step "8/9 batch: a 3-combination sweep of the mini-sweep notebook as one SLURM job array"
SWEEP=$DEMO/sweep.yaml
printf 'grid:\n  number_of_epochs: [2, 3, 4]\n' > "$SWEEP"
RUN=$(hpc-dl4mic batch "$SWEEP_CONFIG" --notebook "$SWEEP_NOTEBOOK" "${IMAGE_ARGS[@]}" \
        --sweep "$SWEEP" -p model_name demo_model --max-parallel 3 2> "$DEMO/batch.err" \
      | tail -1) || { indent < "$DEMO/batch.err"; die "hpc-dl4mic batch failed"; }
indent < "$DEMO/batch.err"
step "    run $RUN; waiting for its tasks"
ended=0
for _ in $(seq 300); do
  if hpc-dl4mic batch status "$RUN" --json > "$DEMO/batch-status.json" 2>/dev/null \
     && python "$REPO/scripts/demo_check.py" batch-ended "$DEMO/batch-status.json" >/dev/null; then
    ended=1; break
  fi
  sleep 2
done
[ "$ended" = 1 ] || die "batch run $RUN not finished after 600 s: hpc-dl4mic batch status $RUN"
hpc-dl4mic batch status "$RUN" 2>&1 | indent
hpc-dl4mic batch fetch "$RUN" --dest "$DEMO/runs/$RUN" 2>&1 | tail -1 | indent
REPORT=$(hpc-dl4mic batch report "$RUN" --dest "$DEMO/runs/$RUN")
step "    report: $REPORT"

# ------------------------------------------------------------------ 9. end the session
kill -TERM "$SUBMIT_PID" 2>/dev/null || true     # closes the tunnel; no TTY: the job is kept
wait "$SUBMIT_PID" 2>/dev/null || true
SUBMIT_PID=""
if [ "${DEMO_KEEP_SESSION:-0}" = 1 ]; then
  step "9/9 the Jupyter job keeps running (DEMO_KEEP_SESSION=1): session $SESSION"
else
  step "9/9 cancelling the demo's Jupyter job (session $SESSION)"
  hpc-dl4mic cancel "$SESSION" 2>&1 | indent
fi

step "done in $((SECONDS - STARTED)) s. Explore further:"
cat <<EOF
    . $DEMO/env
                                             # the demo's hpc-dl4mic, profile 'demo', sessions
    hpc-dl4mic status --all                  # sessions and their jobs
    hpc-dl4mic logs $SESSION
    hpc-dl4mic submit $TARGET --notebook $NOTEBOOK \\
        --base localimage:$BASE_SIF --requirements $SMALL_REQ ${CERTS[*]}
                                             # a new Jupyter session (Ctrl-C keeps the job;
                                             # then: hpc-dl4mic connect / cancel SESSION)
    hpc-dl4mic batch list; hpc-dl4mic batch status $RUN
    xdg-open $REPORT
    hpc-dl4mic cache list                    # the images in $CACHE
    make test                                # the full test suite (as CI: bash .ci/run)
    make down                                # tear the local cluster down
EOF
