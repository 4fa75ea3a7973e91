"""A site job-script template on the local cluster: a profile whose command_template
extends the built-in (an extra #SBATCH option, a setup line, an srun wrapper) and
`hpc-dl4mic run` through it: real sshd, SLURM, apptainer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from clitools import ca_args, cli

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CONFIG = DATA / "mini_sweep" / "configuration.yaml"
SMALL_REQUIREMENTS = DATA / "requirements-small.txt"

SITE_TEMPLATE = """{% extends "slurm_templates/command.sbatch.j2" %}
{% block sbatch_options %}{{ super() }}#SBATCH --comment=site-template
{% endblock %}
{% block setup %}{{ super() }}mkdir -p "$RESULTS/$WORK_NAME"
echo "written by the site setup in job $SLURM_JOB_ID" > "$RESULTS/$WORK_NAME/site-marker.txt"
{% endblock %}
{% block launch %}srun --kill-on-bad-exit=1 {% endblock %}
"""


def image_args(base_sif: Path) -> list[str]:
    args = ["--notebook", str(DATA / "mini_sweep.ipynb"), "--requirements",
            str(SMALL_REQUIREMENTS), "--base", f"localimage:{base_sif}"]
    return args + ca_args()


def test_run_goes_through_a_site_template_that_extends_the_builtin(
        cluster, base_sif, cluster_profile, state_env, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "command.j2").write_text(SITE_TEMPLATE)
    profiles = tmp_path / "profiles.yaml"  # the shared profile plus a relative template path
    profiles.write_text(cluster_profile.read_text() + "    command_template: site/command.j2\n")
    out = cli(state_env, "run", str(CONFIG), "--profile", "testcluster", "--profile-file",
              str(profiles), *image_args(base_sif), "--",
              "sh", "-c", "cat /results/site-marker.txt; echo in-container-$SLURM_STEP_ID")
    assert out.returncode == 0, out.stderr
    job_id = re.search(r"submitted job (\d+)", out.stderr).group(1)
    assert f"written by the site setup in job {job_id}" in out.stdout  # setup, before apptainer
    step = re.search(r"in-container-(\S*)", out.stdout).group(1)
    assert step.isdigit(), out.stdout  # apptainer ran as a step of the srun wrapper
    job = cluster.ssh(f"scontrol show job -o {job_id} || sacct -n -X -j {job_id} -o Comment%40",
                      check=False).stdout
    assert "site-template" in job, job
    run_id = re.search(r"\(run (\S+)\)", out.stderr).group(1)
    dest = tmp_path / "fetched"
    assert cli(state_env, "fetch", run_id, "--dest", str(dest)).returncode == 0
    assert (dest / "site-marker.txt").read_text().startswith("written by the site setup")


def test_a_site_template_with_an_unknown_variable_is_refused_before_submitting(
        cluster, cluster_profile, state_env, tmp_path):
    (tmp_path / "bad.j2").write_text("#!/bin/bash\n#SBATCH --comment=x\n{{ scratch | q }}\n")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(cluster_profile.read_text() + "    command_template: bad.j2\n")
    before = cluster.ssh("squeue -h -u $USER -o %i | wc -l").stdout
    out = cli(state_env, "run", str(CONFIG), "--profile", "testcluster", "--profile-file",
              str(profiles), "--", "true")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"hpc-dl4mic: error: {tmp_path / 'bad.j2'}:3: 'scratch' is "
                                  "undefined (profile testcluster: command_template; a "
                                  "command_template gets: job_name, session_dir, sbatch_lines, "
                                  "session_id, image_name, tool_version, image, data_dir, "
                                  "results_dir, modules, apptainer, offline, command, "
                                  "signal_seconds)")
    assert cluster.ssh("squeue -h -u $USER -o %i | wc -l").stdout == before
