"""GPU commands: check-gpu."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..jobs.resources import JobResources
from .common import (
    accept_host_key_option,
    build_options,
    print_json,
    profile_file_option,
    progress,
    resource_options,
)


@click.command("check-gpu")
@click.argument("target")
@click.option("--profile", "profile_name", envvar="HPC_DL4MIC_PROFILE",
              help="Cluster profile (default $HPC_DL4MIC_PROFILE).")
@click.option("--local", "run_local", is_flag=True, help="Check this machine's GPU.")
@build_options
@resource_options
@accept_host_key_option
@profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show build output.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks and the raw report.")
def check_gpu(target: str, profile_name: str | None, run_local: bool, base: str | None,
              cpu: bool, notebook: Path | None, requirements: Path | None,
              ca_certs: Path | None, system_python: bool, resources: JobResources,
              accept_new_host_key: bool, profile_file: Path | None, verbose: bool,
              as_json: bool) -> None:
    """Check the GPU that TARGET's jobs get: in a short job with the profile's GPU request
    (5 min unless --time), the image runs with --nv and reports the allocation, nvidia-smi,
    the driver's CUDA against the image's, a kernel checked against the CPU, and whether
    PyTorch / TensorFlow see the GPU. Exit 1 if a check fails."""
    from ..gpu.check import check_gpu as run
    from ..gpu.verdicts import passed
    from ..table import format_table

    checks, report = run(
        target, profile_name=profile_name, run_local=run_local, profile_file=profile_file,
        build=dict(notebook=notebook, requirements=requirements, base=base, gpu=not cpu,
                   ca_certs=ca_certs, system_python=system_python),
        resources=resources, accept_new_host_key=accept_new_host_key, say=progress(True),
        build_progress=progress(verbose))
    if as_json:
        print_json({"ok": passed(checks), "checks": [c.to_dict() for c in checks],
                    "report": report})
    else:
        for line in format_table(("CHECK", "RESULT", "DETAIL"),
                                 [(c.what, c.status, c.detail) for c in checks]):
            click.echo(line)
    if not passed(checks):
        sys.exit(1)


COMMANDS = (check_gpu,)
