"""Smoke tests of the local test cluster itself (tests/cluster/up.sh): SLURM, the fake GPUs,
OpenSSH as the unprivileged test user, and apptainer through the sudo shim."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from clusterinfo import ClusterInfo

pytestmark = pytest.mark.e2e

BUSYBOX_DEF = """\
Bootstrap: scratch

%files
    busybox /bin/busybox

%labels
    org.hpc-dl4mic.purpose cluster-smoke-test
"""


@pytest.fixture(scope="module")
def busybox_sif(cluster: ClusterInfo) -> Path:
    """The cheapest real image: a static busybox in a scratch SIF (~1 MB, builds in 0.1 s).

    Built as root (like the admins' shared cache) in a directory the test user can read.
    %files sources must lie in a directory the apptainer wrapper binds (/tmp, /srv, ...):
    its mount namespace does not show the host's /bin."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox not installed (up.sh installs busybox-static)", pytrace=False)
    work = cluster.base / "smoke"
    work.mkdir(mode=0o755, exist_ok=True)
    work.chmod(0o755)
    shutil.copy2(busybox, work / "busybox")
    (work / "busybox.def").write_text(BUSYBOX_DEF)
    tmp = work / f"busybox.sif.{os.getpid()}"
    proc = subprocess.run(
        ["apptainer", "build", "-F", tmp.name, "busybox.def"], cwd=work,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"apptainer build failed:\n{proc.stdout}\n{proc.stderr}"
    tmp.chmod(0o644)
    sif = work / "busybox.sif"
    tmp.replace(sif)
    return sif


def test_sinfo_shows_cpu_and_gpu_partitions(cluster: ClusterInfo) -> None:
    out = cluster.ssh(["sinfo", "-h", "-o", shlex.quote("%P %a %t %G")]).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert set(rows) == {"cpu*", "gpu"}, out  # '*' marks the default partition
    for avail, state, gres in rows.values():
        assert avail == "up", out
        assert state in {"idle", "mix", "alloc"}, out
        assert gres.startswith("gpu:"), out


def test_gpu_job_sees_cuda_visible_devices(cluster: ClusterInfo) -> None:
    script = r"""
set -e
d=$(mktemp -d ~/smoke-gpu.XXXXXX)
jid=$(sbatch --parsable --wait -p gpu --gres=gpu:1 -J smoke-gpu -o "$d/out" \
      --wrap 'echo "CVD=$CUDA_VISIBLE_DEVICES"; echo "PART=$SLURM_JOB_PARTITION"
              echo "USER=$(id -un)"')
cat "$d/out"
echo "JOBID=$jid"
scontrol show job -o "$jid" | tr ' ' '\n' | grep '^JobState='
rm -rf "$d"
"""
    out = cluster.ssh(script, timeout=120).stdout
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines.get("CVD", "") in {"0", "1"}, out
    assert lines["PART"] == "gpu", out
    assert lines["USER"] == cluster.user, out
    assert lines["JobState"] == "COMPLETED", out  # MinJobAge keeps finished jobs visible


def test_asking_for_more_gpus_than_exist_is_refused(cluster: ClusterInfo) -> None:
    proc = cluster.ssh("sbatch -p gpu --gres=gpu:3 --wrap true", check=False)
    assert proc.returncode != 0, proc.stdout
    assert "Requested node configuration is not available" in proc.stderr, proc.stderr


def test_apptainer_over_ssh_runs_as_the_calling_user(
    cluster: ClusterInfo, busybox_sif: Path
) -> None:
    sif = shlex.quote(str(busybox_sif))
    script = f"""
set -e
echo "LOGIN=$(id -u)"
echo "PLAIN=$(apptainer -s exec {sif} /bin/busybox id -u)"
# the caller cannot choose the user the container runs as
echo "ASROOT=$(APPTAINER_RUN_AS=root apptainer -s exec {sif} /bin/busybox id -u)"
# the caller's environment reaches the container, as with a native apptainer
echo "ENV=$(SMOKE_VALUE='a b' apptainer -s exec {sif} /bin/busybox sh -c 'echo "$SMOKE_VALUE"')"
echo "HOME=$(apptainer -s exec {sif} /bin/busybox sh -c 'echo "$HOME"')"
set +e; apptainer -s exec {sif} /bin/busybox sh -c 'exit 7'; echo "RC=$?"
"""
    out = cluster.ssh(script, timeout=120).stdout
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines["LOGIN"] != "0", out
    assert lines["PLAIN"] == lines["LOGIN"], out
    assert lines["ASROOT"] == lines["LOGIN"], out
    assert lines["ENV"] == "a b", out
    assert lines["HOME"] == str(cluster.user_home), out
    assert lines["RC"] == "7", out  # exit codes pass through sudo and the wrapper


def test_apptainer_in_a_slurm_job(cluster: ClusterInfo, busybox_sif: Path) -> None:
    sif = shlex.quote(str(busybox_sif))
    script = f"""
set -e
d=$(mktemp -d ~/smoke-app.XXXXXX)
cat > "$d/job.sh" <<'EOF'
#!/bin/bash
set -e
echo "JOBUID=$(apptainer -s exec {sif} /bin/busybox id -u)"
echo "INJOB=$(apptainer -s exec {sif} /bin/busybox sh -c 'echo "$SLURM_JOB_ID"')"
echo "SLURMJOB=$SLURM_JOB_ID"
EOF
sbatch --parsable --wait -J smoke-apptainer -o "$d/out" "$d/job.sh" >/dev/null
cat "$d/out"
echo "LOGIN=$(id -u)"
rm -rf "$d"
"""
    out = cluster.ssh(script, timeout=120).stdout
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines["JOBUID"] == lines["LOGIN"], out
    assert lines["INJOB"] == lines["SLURMJOB"] != "", out


def test_test_user_has_no_other_sudo_rights(cluster: ClusterInfo) -> None:
    for argv in ("sudo -n true", "sudo -n /usr/local/libexec/apptainer-root --version",
                 "/usr/local/libexec/apptainer-shim --version"):
        proc = cluster.ssh(argv, check=False)
        assert proc.returncode != 0, (argv, proc.stdout)


def test_shared_cache_is_writable_by_the_test_user(cluster: ClusterInfo) -> None:
    cache = shlex.quote(str(cluster.shared_cache))
    out = cluster.ssh(
        f"f=$(mktemp {cache}/.smoke.XXXXXX) && stat -c %G \"$f\" && rm -f \"$f\""
    ).stdout.strip()
    assert out == cluster.shared_cache.group(), out


def test_sftp_and_port_forwarding_work(cluster: ClusterInfo) -> None:
    opts = cluster.ssh_argv()[1:-1]  # the -o/-i options; sftp spells the port -P
    opts[opts.index("-p")] = "-P"
    proc = subprocess.run(
        ["sftp", "-b", "-", *opts, f"{cluster.user}@{cluster.host}"],
        input="pwd\n", capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(cluster.user_home) in proc.stdout, proc.stdout
    # a direct-tcpip channel (what tunnels use) to the cluster's own sshd: its banner comes back
    proc = subprocess.run(
        [*cluster.ssh_argv()[:-1], "-W", f"127.0.0.1:{cluster.port}", cluster.ssh_argv()[-1]],
        input="", capture_output=True, text=True, timeout=60,
    )
    assert proc.stdout.startswith("SSH-2.0-"), (proc.stdout, proc.stderr)
