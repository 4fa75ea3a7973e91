"""Hostile values end to end on the local cluster (real sshd, SLURM, apptainer): `hpc-dl4mic
run` with command words and a --results folder full of quotes, $(...), backticks, ;, &&,
Jinja markup, $VAR and unicode. No canary file may appear on the cluster side, and the
command must see its arguments (and its results folder) exactly as given."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
from pathlib import Path

import pytest
from clitools import ca_args, cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CONFIG = DATA / "mini_sweep" / "configuration.yaml"
SMALL_REQUIREMENTS = DATA / "requirements-small.txt"
# the command: its arguments and working directory as JSON, in /results and on stdout
SCRIPT = ("import json, os, sys; text = json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd()}); "
          "open('/results/seen.json', 'w').write(text); print('SEEN', text)")


def hostile_values(canary: str) -> list[str]:
    touch = f"touch /tmp/{canary}"
    return [f"$({touch})", f"`{touch}`", f"'; {touch}; '", f"\"; {touch}; \"",
            f"a && {touch}", f"x\n{touch}\n", f"x\n#SBATCH --output=/tmp/{canary}\n",
            "{{ 7*7 }}", "{% if 1 %}x{% endif %}", "$HOME", "${PATH}", "back\\slash",
            "ünïcödé €", "%j %A", "-" + "x" * 2000, "", " spaced  out "]


def image_args(base_sif: Path) -> list[str]:
    args = ["--notebook", str(DATA / "mini_sweep.ipynb"), "--requirements",
            str(SMALL_REQUIREMENTS), "--base", f"localimage:{base_sif}"]
    return args + ca_args()


def cluster_canaries(cluster, canary: str) -> str:
    """Every file named ``canary`` the test user can see in /tmp and its home."""
    out = subprocess.run(cluster.ssh_argv(f"find /tmp ~ -name {canary} 2>/dev/null; true"),
                         capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


def test_hostile_arguments_and_folders_reach_the_job_literally(cluster, base_sif,
                                                               cluster_profile, state_env,
                                                               tmp_path):
    canary = f"CANARY-e2e-{secrets.token_hex(4)}"
    values = hostile_values(canary)
    results = f"~/.hpc-dl4mic/inj res $(touch {canary}) `touch {canary}` ' ; && {{{{x}}}} $HOME ü"
    out = cli(state_env, "run", str(CONFIG), "--profile", "testcluster", "--profile-file",
              str(cluster_profile), *image_args(base_sif), "--results", results,
              "--time", "00:10:00", "--", "python3", "-c", SCRIPT, *values)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    run_id = re.search(r"\(run (\S+)\)", out.stderr).group(1)
    dest = tmp_path / "fetched"
    fetched = cli(state_env, "fetch", run_id, "--dest", str(dest))
    assert fetched.returncode == 0, fetched.stderr
    seen = json.loads((dest / "seen.json").read_text())
    assert seen == {"argv": values, "cwd": "/results"}
    folder = Path(results.replace("~", str(cluster.user_home), 1)) / run_id
    try:
        assert json.loads((folder / "seen.json").read_text())["argv"] == values  # the folder
        assert not cluster_canaries(cluster, canary)
    finally:
        subprocess.run(cluster.ssh_argv(shlex.join(["rm", "-rf", "--", str(folder.parent)])),
                       timeout=120)


def test_a_hostile_results_folder_that_cannot_be_named_is_refused_before_anything_runs(
        cluster, cluster_profile, state_env):
    canary = f"CANARY-e2e-{secrets.token_hex(4)}"
    out = cli(state_env, "run", str(CONFIG), "--profile", "testcluster", "--profile-file",
              str(cluster_profile), "--results", f"~/x\n$(touch /tmp/{canary})",
              "--", "true", timeout=300)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--results" in lines[0] and "Traceback" not in out.stderr
    assert not cluster_canaries(cluster, canary)
