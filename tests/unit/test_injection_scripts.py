"""Injection, property-based: hostile strings (quotes, $(), backticks, line breaks, ;, &&,
Jinja markup, $VAR, backslashes, unicode, very long strings) in every value that reaches a
job script (Jupyter, command, batch array, build job) or a command sent over SSH.

Properties: a value is refused with one InputError line before anything is rendered, or
the rendered script passes ``bash -n``, its ``#SBATCH`` header reads back (as sbatch reads
quotes) to exactly the values given, and, run by bash with ``apptainer``/``module``/... as
stubs, no canary file appears and each stub receives the values unchanged."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from hostile import CANARY, bash_syntax_ok, calls, canaries, hostile, install_stubs, word
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hpc_dl4mic.batch.launch import render_array_script
from hpc_dl4mic.batch.runs import BatchRun, new_run_id
from hpc_dl4mic.cli.main import one_line
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.fsutil import safe_name
from hpc_dl4mic.images.builders import render_build_script
from hpc_dl4mic.jobs.slurm import sbatch_lines, with_modules
from hpc_dl4mic.remote.commands import remote_command
from hpc_dl4mic.remote.profiles import Profile, get_profile
from hpc_dl4mic.sessions.command import render_command_script
from hpc_dl4mic.sessions.launch import render_job_script
from hpc_dl4mic.sessions.prepare import check_job_paths
from hpc_dl4mic.sessions.records import Session, new_session_id

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.filter_too_much])
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
printable = hostile().map(lambda s: CONTROL.sub("", s))  # what a config folder name can be
config_name = printable.filter(lambda s: s.strip() and "/" not in s)
# values a check may refuse: mostly what it accepts (so that most cases get rendered), now
# and then anything
folder = st.one_of(word().map(lambda s: re.sub(r'[\x00-\x1f\x7f",:%\\]', "", s) or "_"),
                   word().map(lambda s: re.sub(r'[\x00-\x1f\x7f",:%\\]', "", s) or "_"),
                   word())
module = st.one_of(printable, printable, hostile())
partition = st.one_of(st.sampled_from(["gpu", "cpu", "a100:x,y", ""]), hostile())


def refused(exc: InputError) -> None:
    """A refusal is one line naming what was refused (after the CLI's escaping)."""
    line = one_line(str(exc))
    assert line and "\n" not in line and "Traceback" not in line
    event("refused")


def profile_from(tmp: Path, **body: object):
    """A profile through the real loader (YAML file, checks)."""
    path = tmp / "profiles.yaml"
    path.write_text(yaml.safe_dump({"profiles": {"p": {"host": "h", **body}}}))
    return get_profile("p", path)


def sbatch_header(script: str) -> list[tuple[str, str]]:
    """(option, value) of each #SBATCH line before the first other line, read as sbatch
    reads them (shell-like quotes); each line must be exactly one word."""
    out = []
    for line in script.split("\n")[1:]:  # bash and sbatch break lines at \n only
        if not line.startswith("#SBATCH"):
            break
        words = shlex.split(line[len("#SBATCH"):])
        assert len(words) == 1, line
        key, _, value = words[0].partition("=")
        out.append((key, value))
    return out


def job_inputs(tmp: Path, work: str, data: str, results: str, modules, partition):
    """Profile, checked folders and #SBATCH lines, or None when the inputs were refused."""
    try:
        profile = profile_from(tmp, modules=list(modules), partition=partition,
                               work_dir=f"{tmp}/{work}")
        lines = sbatch_lines(profile)
        folders = (f"{tmp}/{work}", f"{tmp}/{data}", f"{tmp}/{results}")
        check_job_paths(*folders)
    except InputError as exc:
        refused(exc)
        return None
    event("accepted")
    return profile, lines, folders


def session_for(name: str, folders, image: str, notebook: str) -> Session:
    work, data, results = folders
    sid = new_session_id(name)
    return Session(id=sid, profile="p", job_id="", config=name, image=image,
                   session_dir=f"{work}/sessions/{sid}", results_dir=results, data_dir=data,
                   created=time.time(), notebook=notebook)


@settings(max_examples=200, **SETTINGS)
@given(name=config_name, work=folder, data=folder, results=folder, image=hostile(),
       notebook=hostile(), modules=st.lists(module, max_size=3), partition=partition,
       command=st.lists(hostile(), min_size=1, max_size=4))
def test_session_and_command_scripts_are_valid_bash_with_a_literal_header(
        name, work, data, results, image, notebook, modules, partition, command):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        got = job_inputs(tmp, work, data, results, modules, partition)
        if got is None:
            return
        profile, lines, folders = got
        session = session_for(name, folders, image, notebook)
        assert re.fullmatch(r"[A-Za-z0-9_.+-]+-\d{8}-\d{6}-[0-9a-f]{4}", session.id)
        jupyter = render_job_script(session, profile, image_name=name, sbatch_lines=lines)
        run = render_command_script(session, profile, image_name=name, command=command,
                                    sbatch_lines=lines)
        for script, prefix in ((jupyter, "hpc-dl4mic-"), (run, "hpc-dl4mic-run-")):
            bash_syntax_ok(script, tmp)
            header = dict(sbatch_header(script))
            assert header["--job-name"] == safe_name(prefix + name)
            assert header["--output"] == f"{session.session_dir}/job.log"
            if profile.resources.partition:
                assert header["--partition"] == partition


@settings(max_examples=150, **SETTINGS)
@given(name=config_name, work=folder, data=folder, results=folder, image=hostile(),
       notebook=hostile(), modules=st.lists(module, max_size=3), partition=partition,
       indices=st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_batch_array_scripts_are_valid_bash_with_a_literal_header(
        name, work, data, results, image, notebook, modules, partition, indices):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        got = job_inputs(tmp, work, data, results, modules, partition)
        if got is None:
            return
        profile, lines, (_, data_dir, results_dir) = got
        run = batch_run(name, data_dir, results_dir, image, notebook)
        script = render_array_script(run, profile, image_name=name, sbatch_lines=lines,
                                     offset=0, indices=indices, array="0-4%2",
                                     time_limit="01:00:00")
        bash_syntax_ok(script, tmp)
        header = dict(sbatch_header(script))
        assert header["--job-name"] == safe_name("hpc-dl4mic-batch-" + name)
        assert header["--output"] == f"{run.run_dir}/logs/%A_%a.log"
        assert header["--array"] == "0-4%2"


def batch_run(name: str, data_dir: str, results_dir: str, image: str, notebook: str):
    run_id = new_run_id(name)
    return BatchRun(id=run_id, profile="p", config=name, image=image,
                    run_dir=f"{results_dir}/batch/{run_id}", data_dir=data_dir,
                    notebook=notebook, tasks=[], varying=[], created=0, task_timeout=30)


@settings(max_examples=100, **SETTINGS)
@given(name=config_name, folder=folder, argv=st.lists(hostile(), max_size=5),
       modules=st.lists(module, max_size=3), extra=st.lists(hostile(), max_size=2))
def test_build_job_scripts_are_valid_bash_with_a_literal_header(name, folder, argv, modules,
                                                                extra):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            profile = profile_from(tmp, modules=list(modules), cache_dir=f"{tmp}/{folder}",
                                   sbatch_extra=[f"--comment={e}" for e in extra])
            lines = sbatch_lines(profile)
        except InputError as exc:
            return refused(exc)
        context = f"{profile.cache_dir}/.tmp/{safe_name(name)}-0123"
        script = render_build_script(name, "ab" * 32, context, ["apptainer", "build", *argv],
                                     sbatch_lines=lines, modules=profile.modules)
        bash_syntax_ok(script, tmp)
        header = sbatch_header(script)
        assert header[:2] == [("--job-name", safe_name("build-" + name)),
                              ("--output", f"{context}/build.log")]
        assert [f"{k}={v}" for k, v in header[2:]] == [shlex.split(f"--comment={e}")[0]
                                                       for e in extra]


# -- run for real, with stubs ---------------------------------------------------------------

STUBS = {"apptainer": "exit 0", "module": "exit 0"}


def run_script(tmp: Path, script: str) -> tuple[Path, subprocess.CompletedProcess]:
    """Run ``script`` with bash in ``tmp/cwd``, the stubs first on PATH; the stub folder."""
    stub_dir = tmp / "stub-calls"
    env = install_stubs(tmp / "bin", stub_dir, STUBS)
    cwd = tmp / "cwd"
    cwd.mkdir(exist_ok=True)
    (tmp / "job.sh").write_text(script)
    result = subprocess.run(["bash", str(tmp / "job.sh")], cwd=cwd, env=env, timeout=60,
                            capture_output=True, text=True, errors="replace")
    assert not canaries(tmp), result.stdout + result.stderr
    return stub_dir, result


def modules_loaded(stub_dir: Path) -> list[list[str]]:
    return sorted(calls(stub_dir, "module"))


@settings(max_examples=25, **SETTINGS)
@given(name=config_name, work=folder, data=folder, results=folder, image=hostile(),
       modules=st.lists(module, max_size=2),
       command=st.lists(hostile(), min_size=1, max_size=4))
def test_a_command_job_run_by_bash_passes_every_value_literally(name, work, data, results,
                                                                image, modules, command):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        got = job_inputs(tmp, work, data, results, modules, "cpu")
        if got is None:
            return
        profile, lines, folders = got
        session = session_for(name, folders, image, "")
        Path(session.session_dir).mkdir(parents=True)
        stub_dir, result = run_script(tmp, render_command_script(
            session, profile, image_name=name, command=command, sbatch_lines=lines))
        assert calls(stub_dir, "apptainer") == [[
            "exec", "--nv", "--bind", f"{session.data_dir}:/data,{session.work_results}:/results",
            "--pwd", "/results", image, *command]], result.stderr
        assert modules_loaded(stub_dir) == sorted(["load", m] for m in modules)
        assert Path(session.work_results).is_dir() and Path(session.data_dir).is_dir()


@settings(max_examples=25, **SETTINGS)
@given(name=config_name, work=folder, data=folder, results=folder, image=hostile(),
       notebook=hostile(), modules=st.lists(module, max_size=2))
def test_a_jupyter_job_run_by_bash_passes_every_value_literally(name, work, data, results,
                                                                image, notebook, modules):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        got = job_inputs(tmp, work, data, results, modules, "gpu")
        if got is None:
            return
        profile, lines, folders = got
        session = session_for(name, folders, image, notebook)
        Path(session.session_dir).mkdir(parents=True)
        script = render_job_script(session, profile, image_name=name, sbatch_lines=lines,
                                   ready_timeout=5, bind_host="127.0.0.1")
        stub_dir, result = run_script(tmp, script)
        (argv,) = calls(stub_dir, "apptainer")
        assert argv[:6] == ["exec", "--nv", "--bind",
                            f"{session.data_dir}:/data,{session.work_results}:/results",
                            "--pwd", "/results"], result.stderr
        assert argv[6:9] == [image, "/bin/sh", "-c"]
        assert argv[10:13] == ["hpc-dl4mic-job", notebook, "jupyter"]
        assert modules_loaded(stub_dir) == sorted(["load", m] for m in modules)


@settings(max_examples=25, **SETTINGS)
@given(name=config_name, data=folder, results=folder, image=hostile(), notebook=hostile(),
       modules=st.lists(module, max_size=2))
def test_a_batch_job_run_by_bash_passes_every_value_literally(name, data, results, image,
                                                              notebook, modules):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        got = job_inputs(tmp, "work", data, results, modules, "cpu")
        if got is None:
            return
        profile, lines, (_, data_dir, results_dir) = got
        run = batch_run(name, data_dir, results_dir, image, notebook)
        Path(run.run_dir, "tasks").mkdir(parents=True)
        stub_dir, result = run_script(tmp, render_array_script(
            run, profile, image_name=name, sbatch_lines=lines, offset=0, indices=[7],
            array="7", time_limit=None))
        task = f"{run.run_dir}/tasks/7"
        assert calls(stub_dir, "apptainer") == [[
            "exec", "--nv", "--bind", f"{data_dir}:/data,{task}:/results,"
            f"{run.run_dir}:/hpc-dl4mic-run:ro", "--pwd", "/results", image, "python3",
            "/hpc-dl4mic-run/batch_task.py", "--notebook", notebook, "--params",
            "/hpc-dl4mic-run/params.jsonl", "--index", "7", "--task-dir", "/results",
            "--timeout", "30"]], result.stderr
        assert modules_loaded(stub_dir) == sorted(["load", m] for m in modules)


@settings(max_examples=25, **SETTINGS)
@given(name=config_name, folder=folder, argv=st.lists(hostile(), max_size=5),
       modules=st.lists(module, max_size=2))
def test_a_build_job_run_by_bash_passes_every_value_literally(name, folder, argv, modules):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            profile_from(tmp, cache_dir=f"{tmp}/{folder}")
        except InputError as exc:
            return refused(exc)
        context = tmp / folder / ".tmp" / "ctx"
        context.mkdir(parents=True)
        stub_dir, result = run_script(tmp, render_build_script(
            name, "ab" * 32, str(context), ["apptainer", "build", *argv], modules=modules))
        assert calls(stub_dir, "apptainer") == [["build", *argv]], result.stderr
        assert modules_loaded(stub_dir) == sorted(["load", m] for m in modules)


# -- commands over SSH -----------------------------------------------------------------------

ENV_NAME = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z").filter(
    lambda n: n not in ("PATH", "STUB_DIR", "PWD", "OLDPWD", "SHLVL", "_", "HOME", "IFS", "f"))
RECORD_ENV = 'env -0 > "$STUB_DIR/env-${f##*/}"; printf %s "$PWD" > "$STUB_DIR/pwd-${f##*/}"'


@settings(max_examples=150, **SETTINGS)
@given(argv=st.lists(hostile(), max_size=5), env=st.dictionaries(ENV_NAME, hostile(),
                                                                  max_size=3),
       cwd=st.one_of(st.none(), word(), word().map(lambda w: "~/" + w)),
       shell=st.sampled_from(["bash", "sh"]))
def test_a_remote_command_line_runs_its_argv_literally(argv, env, cwd, shell):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stub_dir = tmp / "calls"
        run_env = install_stubs(tmp / "bin", stub_dir, {"tool": RECORD_ENV})
        run_env["HOME"] = str(tmp / "home")
        where = None
        if cwd is not None:
            where = cwd if cwd.startswith("~/") else str(tmp / cwd)
            real = (tmp / "home" / cwd[2:]) if cwd.startswith("~/") else tmp / cwd
            real.mkdir(parents=True)
        line = remote_command(["tool", *argv], env=env, cwd=where)
        result = subprocess.run([shell, "-c", line], cwd=tmp, env=run_env, timeout=30,
                                capture_output=True, text=True, errors="replace")
        assert result.returncode == 0, result.stderr
        assert not canaries(tmp)
        assert calls(stub_dir, "tool") == [argv]
        (env_file,) = stub_dir.glob("env-tool.*")
        seen = dict(e.split("=", 1) for e in env_file.read_bytes().decode(
            "utf-8", "surrogateescape").split("\0")[:-1])
        assert {k: seen.get(k) for k in env} == env
        if cwd is not None:
            (pwd,) = stub_dir.glob("pwd-tool.*")
            assert Path(os.fsdecode(pwd.read_bytes())).resolve() == real.resolve()


@settings(max_examples=60, **SETTINGS)
@given(argv=st.lists(hostile(), max_size=4), modules=st.lists(hostile(), min_size=1,
                                                               max_size=3))
def test_module_loads_before_a_remote_command_keep_every_word(argv, modules):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stub_dir = tmp / "calls"
        run_env = install_stubs(tmp / "bin", stub_dir, {"tool": "", "module": ""})
        wrapped = with_modules(["tool", *argv], modules)
        assert wrapped[:2] == ["bash", "-lc"]
        # run without -l: a login shell's /etc/profile would reset PATH (and the stubs)
        line = remote_command(["bash", "-c", *wrapped[2:]])
        result = subprocess.run(["sh", "-c", line], cwd=tmp, env=run_env, timeout=30,
                                capture_output=True, text=True, errors="replace")
        assert result.returncode == 0, result.stderr
        assert not canaries(tmp)
        assert calls(stub_dir, "tool") == [argv]
        assert modules_loaded(stub_dir) == sorted(["load", m] for m in modules)


def test_the_canary_would_be_seen_if_a_value_were_interpreted(tmp_path):
    # the harness itself: an unquoted value does create the canary the tests look for
    script = tmp_path / "bad.sh"
    script.write_text(f"#!/bin/bash\necho $(touch {CANARY})\n")
    (tmp_path / "cwd").mkdir()
    subprocess.run(["bash", str(script)], cwd=tmp_path / "cwd", check=True)
    assert canaries(tmp_path)


def test_the_profiles_apptainer_command_runs_the_container_in_every_job_script():
    profile = Profile(name="p", host="h", apptainer="/opt/site apps/bin/apptainer")
    session = session_for("cfg", ("/w", "/d", "/r"), "/c/img.sif", "nb.ipynb")
    run = batch_run("cfg", "/d", "/r", "/c/img.sif", "nb.ipynb")
    scripts = [render_job_script(session, profile, image_name="cfg", sbatch_lines=[]),
               render_command_script(session, profile, image_name="cfg", command=["true"],
                                     sbatch_lines=[]),
               render_array_script(run, profile, image_name="cfg", sbatch_lines=[], offset=0,
                                   indices=[0], array="0", time_limit=None)]
    for script in scripts:
        assert "'/opt/site apps/bin/apptainer' exec --nv" in script
        assert not re.search(r"^\s*apptainer exec", script, re.M)
