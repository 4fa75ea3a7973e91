"""Bad-input catalogue, across areas: configs, profiles, -p values, sweep files, notebooks,
paths and options. Each case runs the real CLI (no network, no cluster) and must give the
documented exit code (2), ONE line on stderr naming the culprit (file, key or value), no
traceback, and no half-written output (:func:`badinput.check`). The per-area catalogues
(test_bad_input_convert, _profiles_cache, _submit) keep their own cases; none is repeated
here."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from badinput import Case, check
from seeddata import REPO

DATA = REPO / "tests" / "data"
MINI = DATA / "mini_sweep" / "configuration.yaml"
NB = DATA / "mini_sweep.ipynb"
REQ = DATA / "requirements-small.txt"
GOOD = MINI.read_text()


def config_with(tmp: Path, name: str, old: str, new: str) -> str:
    """The mini config with ``old`` replaced by ``new``, in folder ``name``."""
    assert old in GOOD, old
    path = tmp / name / "configuration.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GOOD.replace(old, new))
    return str(path)


def profiles_with(tmp: Path, name: str, body: str) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(body)
    return str(path)


def sweep(tmp: Path, name: str, text: str) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def cases(tmp: Path) -> list[Case]:
    out = tmp / "out"
    afile = tmp / "afile"
    afile.write_text("x")
    (tmp / "not_json.ipynb").write_text("{ not json")
    (tmp / "a_list.ipynb").write_text(json.dumps([1, 2]))
    (tmp / "nbdir.ipynb").mkdir()
    shutil.copy(NB, tmp / "mini.ipynb")
    (tmp / "empty").mkdir()
    prof = "profiles:\n  p:\n    host: h\n"
    render = ["render"]
    batch_local = ["batch", "submit", str(MINI), "--local", "--notebook", str(NB)]
    params = ["params", str(MINI), "--notebook", str(NB)]
    run_lc = ["run", str(MINI), "--profile", "local-cluster"]

    def cfg(name: str, old: str, new: str, *names: str) -> Case:
        path = config_with(tmp, name, old, new)
        return Case(f"config-{name}", [*render, path, "-o", str(out)], [path, *names],
                    absent=[out])

    return [
        # -- configs (render writes nothing for a bad config) --
        cfg("bad-yaml", "config:\n", "config: [\n"),
        cfg("top-level-list", GOOD, "- a\n- b\n", "top level"),
        cfg("cuda-as-list", "cuda_version: 11.8.0", "cuda_version: [11, 8]", "cuda_version"),
        cfg("misspelt-key", "notebook_url:", "notebook_ulr:", "notebook_ulr"),
        cfg("missing-python", "    python_version: '3.11'\n", "", "python_version"),
        cfg("unknown-hpc-key", "config:\n", "config:\n  hpc_dl4mic: {bass: x}\n",
            "config.hpc_dl4mic.bass"),
        cfg("unknown-base", "config:\n", "config:\n  hpc_dl4mic: {base: 'podman://x'}\n",
            "config.hpc_dl4mic.base", "podman://x"),
        cfg("base-with-space", "config:\n",
            "config:\n  hpc_dl4mic: {base: 'docker://ubuntu:22.04 AS x'}\n",
            "config.hpc_dl4mic.base"),
        cfg("title-with-newline", "name: Mini sweep", "name: \"Mini\\n%post\\ntouch X\"",
            "name", "Mini\\n%post"),
        cfg("notebook-file-runs-a-command", "https://example.org/mini_sweep.ipynb",
            "https://example.org/a$(id>x).ipynb", "notebook_url"),
        cfg("extra-pip-newline", "config:\n",
            "config:\n  hpc_dl4mic: {extra_pip: [\"numpy\\nRUN x\"]}\n",
            "config.hpc_dl4mic.extra_pip"),
        cfg("mirror-with-quote", "config:\n",
            "config:\n  hpc_dl4mic: {base: \"debootstrap:bookworm@http://m/'x\"}\n",
            "mirror"),
        Case("config-unknown-name", [*render, "NoSuchNotebook_DL4Mic", "-o", str(out)],
             ["NoSuchNotebook_DL4Mic"], absent=[out]),
        Case("config-folder-without-yaml", [*render, f"{tmp / 'empty'}/", "-o", str(out)],
             [str(tmp / "empty")], absent=[out]),
        Case("config-base-option-bogus", [*render, str(MINI), "--base", "bogus:x", "-o",
                                          str(out)], ["--base", "bogus:x"], absent=[out]),
        # -- profiles --
        Case("profile-unknown-name", [*run_lc[:2], "--profile", "nosuch", "--", "true"],
             ["nosuch"]),
        Case("profile-file-is-a-list", ["profile", "list", "--profile-file",
                                        profiles_with(tmp, "list", "- a\n- b\n")],
             ["list.yaml", "profiles"]),
        Case("profile-port-not-a-number", ["profile", "show", "p", "--profile-file",
              profiles_with(tmp, "port", prof + "    port: abc\n")], ["profiles.p.port", "abc"]),
        Case("profile-host-newline", ["profile", "show", "p", "--profile-file",
              profiles_with(tmp, "host", "profiles:\n  p:\n    host: \"h\\nx\"\n")],
             ["profiles.p.host"]),
        Case("profile-walltime-zero", ["profile", "add", "z", "--host", "h", "--time", "0",
                                       "--profile-file", str(tmp / "new.yaml")],
             ["profiles.z.time", "'0'"], absent=[tmp / "new.yaml"]),
        Case("profile-unknown-key", ["profile", "show", "p", "--profile-file",
              profiles_with(tmp, "key", prof + "    partitoin: gpu\n")], ["partitoin"]),
        Case("profile-modules-not-strings", ["profile", "show", "p", "--profile-file",
              profiles_with(tmp, "mods", prof + "    modules: {a: 1}\n")], ["modules"]),
        Case("profile-work-dir-with-quote", ["profile", "show", "p", "--profile-file",
              profiles_with(tmp, "work", prof + "    work_dir: '/scratch/a\"b'\n")],
             ["work_dir"]),
        Case("profile-sbatch-extra-unbalanced", [*run_lc[:2], "--profile", "p",
              "--profile-file", profiles_with(tmp, "extra", prof +
                                              "    sbatch_extra: [\"--comment='x\"]\n"),
              "--", "true"], ["sbatch_extra", "--comment='x"]),
        # -- -p values --
        Case("param-unknown-name", [*params, "-p", "nmber_of_epochs", "3"],
             ["nmber_of_epochs"]),
        Case("param-not-a-number", [*params, "-p", "number_of_epochs", "many"],
             ["number_of_epochs", "many"]),
        Case("param-bad-choice", [*params, "-p", "Weights_choice", "worst"],
             ["Weights_choice", "worst"]),
        Case("param-slider-out-of-range", [*params, "-p", "Multiply_dataset_by", "99"],
             ["Multiply_dataset_by", "99"]),
        Case("param-bad-boolean", [*params, "-p", "Use_Default_Advanced_Parameters", "maybe"],
             ["Use_Default_Advanced_Parameters", "maybe"]),
        Case("param-bad-date", [*params, "-p", "Acquisition_date", "31/01/2024"],
             ["Acquisition_date", "31/01/2024"]),
        # -- sweep files (checked here, before anything runs) --
        Case("sweep-bad-yaml", [*batch_local, "--sweep", sweep(tmp, "s1", "grid: [\n")],
             ["s1.yaml"]),
        Case("sweep-unknown-parameter", [*batch_local, "--sweep",
              sweep(tmp, "s2", "grid:\n  epochs: [1, 2]\n")], ["s2.yaml", "epochs"]),
        Case("sweep-empty-grid-list", [*batch_local, "--sweep",
              sweep(tmp, "s3", "grid:\n  number_of_epochs: []\n")],
             ["s3.yaml", "grid.number_of_epochs"]),
        Case("sweep-wrong-type", [*batch_local, "--sweep",
              sweep(tmp, "s4", "grid:\n  batch_size: [2, two]\n")],
             ["s4.yaml", "batch_size", "two"]),
        Case("sweep-no-tasks", [*batch_local, "--sweep", sweep(tmp, "s5", "{}\n")],
             ["s5.yaml", "no tasks"]),
        Case("sweep-name-also-given-with-p", [*batch_local, "-p", "batch_size", "2", "--sweep",
              sweep(tmp, "s6", "rows:\n  - {batch_size: 4}\n")], ["s6.yaml", "batch_size"]),
        Case("sweep-rows-not-a-list", [*batch_local, "--sweep",
              sweep(tmp, "s7", "rows: {batch_size: 4}\n")], ["s7.yaml", "rows"]),
        Case("sweep-unknown-top-key", [*batch_local, "--sweep",
              sweep(tmp, "s8", "grids:\n  batch_size: [1]\n")], ["s8.yaml", "grids"]),
        # -- notebooks --
        Case("notebook-not-json", ["convert", str(tmp / "not_json.ipynb"), "-o", str(out)],
             ["not_json.ipynb"], absent=[out]),
        Case("notebook-not-a-notebook", ["convert", str(tmp / "a_list.ipynb"), "-o",
                                         str(out)], ["a_list.ipynb"], absent=[out]),
        Case("notebook-missing-section", ["convert", str(tmp / "mini.ipynb"), "--sections",
                                          "9.", "-o", str(out)], ["9."], absent=[out]),
        Case("notebook-bad-section-token", ["params", str(tmp / "mini.ipynb"), "--sections",
                                            "two"], ["two"]),
        # -- paths --
        Case("path-notebook-missing", [*batch_local[:-1], str(tmp / "gone.ipynb")],
             ["gone.ipynb"]),
        Case("path-notebook-is-a-folder", [*params[:-1], str(tmp / "nbdir.ipynb")],
             ["nbdir.ipynb"]),
        Case("path-requirements-missing", [*render, str(MINI), "--notebook", str(NB),
                                           "--requirements", str(tmp / "gone.txt"), "-o",
                                           str(out)], ["gone.txt"], absent=[out]),
        Case("path-output-is-a-file", [*render, str(MINI), "--notebook", str(NB),
                                       "--requirements", str(REQ), "-o", str(afile)],
             [str(afile)]),
        Case("path-batch-data-is-a-file", [*batch_local, "--data", str(afile)],
             ["--data", str(afile)]),
        Case("path-sweep-missing", [*batch_local, "--sweep", str(tmp / "gone.yaml")],
             ["gone.yaml"]),
        Case("path-results-with-newline", [*batch_local, "--results", "/tmp/a\nb"],
             ["--results", "a\\nb"]),
        # -- options --
        Case("option-bad-time", [*run_lc, "--time", "25:99", "--", "true"], ["--time", "25:99"]),
        Case("option-bad-gres", [*run_lc, "--gres", "gpu:1;reboot", "--", "true"],
             ["--gres", "gpu:1;reboot"]),
        Case("option-bad-task-timeout", [*batch_local, "--task-timeout", "later"],
             ["--task-timeout", "later"]),
        Case("option-negative-retries", [*batch_local, "--retries", "-1"], ["--retries"]),
        Case("option-local-with-max-parallel", [*batch_local, "--max-parallel", "3"],
             ["--max-parallel", "--local"]),
        Case("option-local-with-profile", [*batch_local, "--profile", "local-cluster"],
             ["--profile", "--local"]),
        Case("option-run-without-command", [*run_lc], ["no command"]),
    ]


with tempfile.TemporaryDirectory() as _tmp:
    CASE_IDS = [c.id for c in cases(Path(_tmp))]


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var, sub in (("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "cfg"),
                     ("XDG_CACHE_HOME", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")


def test_the_catalogue_has_at_least_forty_distinct_cases():
    assert len(CASE_IDS) >= 40 and len(set(CASE_IDS)) == len(CASE_IDS)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_input_is_one_line_naming_the_culprit_with_exit_2(case_id, tmp_path, env):
    (case,) = [c for c in cases(tmp_path) if c.id == case_id]
    check(case, cwd=tmp_path)
