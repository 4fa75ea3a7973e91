"""Site overrides of the job-script templates: a profile's job_template, batch_template,
command_template and build_template, rendered by the same Jinja environment as the built-ins
(which they may extend); every problem is one line naming FILE:LINE, exit 2, before
anything is sent to a cluster; profile add/show round trip."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from badinput import Case, check
from click.testing import CliRunner

from hpc_dl4mic.batch.launch import render_array_script
from hpc_dl4mic.batch.runs import BatchRun
from hpc_dl4mic.cli import main
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.jobs import site_templates as st
from hpc_dl4mic.remote.profiles import Profile, get_profile, save_profile
from hpc_dl4mic.sessions.command import render_command_script
from hpc_dl4mic.sessions.launch import render_job_script
from hpc_dl4mic.sessions.records import Session

T = "StarDist_2D_DL4Mic"

SITE_JOB = """{% extends "slurm_templates/jupyter.sbatch.j2" %}
{% block sbatch_options %}{{ super() }}#SBATCH --constraint=a100
{% endblock %}
{% block setup %}module purge
{{ super() }}export TMPDIR=/scratch/$SLURM_JOB_ID
{% endblock %}
{% block launch %}srun --kill-on-bad-exit=1 {% endblock %}
"""


def session(tmp_path: Path) -> Session:
    return Session(id="S-1", profile="p", job_id="", config="X", image="/i.sif",
                   session_dir=str(tmp_path / "s"), results_dir="/r", data_dir="/d",
                   created=time.time(), notebook="n.ipynb")


def batch_run(tmp_path: Path) -> BatchRun:
    return BatchRun(id="R-1", profile="p", config="mini", image="/i.sif",
                    run_dir=str(tmp_path / "run"), data_dir="/d", notebook="/nb.ipynb",
                    tasks=[], varying=[], created=0, task_timeout=30, retries=0)


def profile_with(tmp_path: Path, **templates: str) -> Profile:
    """A profile read from a profiles file in tmp_path/cfg (relative paths from there)."""
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    body = "".join(f"    {k}: {v}\n" for k, v in templates.items())
    (cfg / "profiles.yaml").write_text(f"profiles:\n  p:\n    host: h\n    modules: [apptainer]\n"
                                       f"{body}")
    return get_profile("p", cfg / "profiles.yaml")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def scripts(tmp_path: Path, profile: Profile) -> dict[str, str]:
    """Every job script of ``profile`` (site templates where it names them)."""
    from hpc_dl4mic.images.builders import profile_builder

    lines = ["--time=01:00:00", "--partition=gpu"]
    builder = profile_builder(replace(profile, build="slurm"))
    return {
        "job_template": render_job_script(session(tmp_path), profile, image_name="X",
                                          sbatch_lines=lines),
        "command_template": render_command_script(session(tmp_path), profile, image_name="X",
                                                  command=["echo", "a b"], sbatch_lines=lines),
        "batch_template": render_array_script(batch_run(tmp_path), profile, image_name="X",
                                              sbatch_lines=lines, offset=0, indices=[0, 1],
                                              array="0-1", time_limit="01:00:00"),
        "build_template": st.render_job(builder.template, dict(
            job_name="b", log_path="/l", sbatch_lines=lines, image_name="X", key="k" * 64,
            context_dir="/c", modules=["apptainer"], build_argv=["apptainer", "build"])),
    }


def test_a_site_template_extending_the_builtin_adds_options_setup_and_a_launch_wrapper(
        tmp_path):
    write(tmp_path / "cfg" / "site" / "job.j2", SITE_JOB)
    profile = profile_with(tmp_path, job_template="site/job.j2")
    text = render_job_script(session(tmp_path), profile, image_name="X",
                             sbatch_lines=["--time=01:00:00"])
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines.index("#SBATCH --constraint=a100") == lines.index("#SBATCH --time=01:00:00") + 1
    purge = lines.index("module purge")
    assert lines[purge + 1] == "module load apptainer"
    assert lines[purge + 2] == "export TMPDIR=/scratch/$SLURM_JOB_ID"
    assert any(ln.startswith("srun --kill-on-bad-exit=1 apptainer exec --nv") for ln in lines)
    builtin = render_job_script(session(tmp_path), Profile(name="p", host="h",
                                                            modules=("apptainer",)),
                                image_name="X", sbatch_lines=["--time=01:00:00"])
    added = {"#SBATCH --constraint=a100", "module purge", "export TMPDIR=/scratch/$SLURM_JOB_ID"}
    assert [ln for ln in lines if ln not in added] == [
        ln.replace("apptainer exec --nv", "srun --kill-on-bad-exit=1 apptainer exec --nv", 1)
        if ln.startswith("apptainer exec --nv") else ln for ln in builtin.splitlines()]


def test_a_site_template_that_only_extends_renders_the_builtin_bytes(tmp_path):
    templates = {key: write(tmp_path / "cfg" / f"{key}.j2",
                            f'{{% extends "slurm_templates/{name}" %}}\n')
                 for key, name in st.TEMPLATE_KEYS.items()}
    site = scripts(tmp_path, profile_with(tmp_path, **{k: v.name for k, v in templates.items()}))
    builtin = scripts(tmp_path, profile_with(tmp_path))
    assert site == builtin
    for key, text in site.items():
        assert text.startswith("#!/bin/bash\n"), key


def test_each_job_script_uses_its_own_template_key(tmp_path):
    for key in st.TEMPLATE_KEYS:
        write(tmp_path / "cfg" / f"{key}.j2", f"#!/bin/sh\n# site {key}\n")
    profile = profile_with(tmp_path, **{k: f"{k}.j2" for k in st.TEMPLATE_KEYS})
    assert {k: v.splitlines()[1] for k, v in scripts(tmp_path, profile).items()} == {
        k: f"# site {k}" for k in st.TEMPLATE_KEYS}


def test_every_job_script_gets_the_documented_variables(tmp_path, monkeypatch):
    seen: dict[str, set[str]] = {}
    real = st.render_job

    def spy(template, context):
        seen[template.key] = set(context)
        return real(template, context)

    monkeypatch.setattr(st, "render_job", spy)
    scripts(tmp_path, profile_with(tmp_path))
    assert seen == {k: set(v) for k, v in st.VARIABLES.items()}


def test_template_paths_expand_home_and_are_relative_to_the_profiles_file(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    profile = profile_with(tmp_path, job_template="site/job.j2",
                           batch_template="~/t/batch.j2", command_template="/abs/c.j2")
    assert st.template_path(profile, "job_template") == tmp_path / "cfg" / "site" / "job.j2"
    assert st.template_path(profile, "batch_template") == tmp_path / "home" / "t" / "batch.j2"
    assert st.template_path(profile, "command_template") == Path("/abs/c.j2")
    assert st.template_path(profile, "build_template") is None


@pytest.mark.parametrize("text, line, names", [
    ("#!/bin/bash\n{% if %}\n", 2, ["Expected an expression"]),
    ("#!/bin/bash\n# ok\n{{ scratch_dir | q }}\n", 3, ["'scratch_dir' is undefined",
                                                      "session_dir", "bind_host"]),
    ('{% extends "slurm_templates/jupyter.sbatch.j2" %}\n{% block setup %}\n'
     "{{ super() }}{{ nope }}\n{% endblock %}\n", 3, ["'nope' is undefined"]),
    ("#!/bin/bash\n{{ image | nosuchfilter }}\n", 2, ["nosuchfilter"]),
    ('{% extends "jupyter.sbatch.j2" %}\n', 1, ["'jupyter.sbatch.j2' not found",
                                                "slurm_templates/NAME"]),
])
def test_a_broken_site_template_is_one_error_naming_file_and_line(tmp_path, text, line, names):
    path = write(tmp_path / "cfg" / "job.j2", text)
    profile = profile_with(tmp_path, job_template="job.j2")
    with pytest.raises(InputError) as err:
        st.check_template(st.job_template(profile, "job_template"))
        render_job_script(session(tmp_path), profile, image_name="X", sbatch_lines=[])
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message, message
    assert "profile p: job_template" in message
    for name in names:
        assert name in message, message


def test_undefined_values_found_only_while_rendering_name_file_and_line(tmp_path):
    path = write(tmp_path / "cfg" / "cmd.j2", "#!/bin/bash\n\n{{ modules.nope | q }}\n")
    profile = profile_with(tmp_path, command_template="cmd.j2")
    st.check_template(st.job_template(profile, "command_template"))  # no unknown names
    with pytest.raises(InputError, match=rf"^{path}:3: 'tuple object' has no attribute 'nope' \("
                                         r"profile p: command_template; a command_template "
                                         r"gets: job_name"):
        render_command_script(session(tmp_path), profile, image_name="X", command=["x"],
                              sbatch_lines=[])


def test_a_missing_file_or_a_script_without_shebang_is_refused(tmp_path):
    profile = profile_with(tmp_path, batch_template="nope.j2")
    with pytest.raises(InputError, match=rf"^{tmp_path / 'cfg' / 'nope.j2'}: no such template "
                                         r"file \(profile p: batch_template\)$"):
        st.check_job_templates(profile, "batch_template")
    write(tmp_path / "cfg" / "plain.j2", "echo {{ image | q }}\n")
    profile = profile_with(tmp_path, batch_template="plain.j2")
    with pytest.raises(InputError, match="must start with '#!'"):
        render_array_script(batch_run(tmp_path), profile, image_name="X", sbatch_lines=[],
                            offset=0, indices=[0], array="0", time_limit=None)


def test_job_commands_check_the_build_template_only_for_slurm_builds(tmp_path):
    profile = profile_with(tmp_path, build_template="missing.j2")
    with pytest.raises(InputError, match="build_template"):
        st.check_job_templates(profile, "job_template")
    st.check_job_templates(replace(profile, build="login"), "job_template")


def test_profile_add_saves_template_paths_and_show_lists_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "here" / "job.j2", SITE_JOB)
    write(tmp_path / "home" / "b.j2", "#!/bin/bash\n{{ build_argv | map('q') | join(' ') }}\n")
    path = tmp_path / "profiles.yaml"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c")}
    invoke = lambda *a: CliRunner().invoke(main, list(a), env=env,  # noqa: E731
                                           catch_exceptions=False)
    result = invoke("profile", "add", "p", "--host", "h", "--job-template", "here/job.j2",
                    "--build-template", "~/b.j2", "--profile-file", str(path))
    assert result.exit_code == 0, result.stderr
    shown = json.loads(invoke("profile", "show", "p", "--json", "--profile-file",
                              str(path)).stdout)
    assert shown["job_template"] == str(tmp_path / "here" / "job.j2")  # saved absolute
    assert shown["build_template"] == "~/b.j2"  # kept as written
    text = invoke("profile", "show", "p", "--profile-file", str(path)).stdout
    assert f"build_template: ~/b.j2 ({tmp_path / 'home' / 'b.j2'})" in text
    assert f"job_template:  {tmp_path / 'here' / 'job.j2'}\n" in text
    profile = get_profile("p", path)
    assert st.template_path(profile, "build_template") == tmp_path / "home" / "b.j2"
    again = save_profile(replace(profile, name="q"), path)
    assert get_profile("q", again).to_dict() == {**profile.to_dict(), "name": "q"}


def test_profile_add_refuses_a_broken_template_and_saves_nothing(tmp_path):
    bad = write(tmp_path / "bad.j2", "#!/bin/bash\n\n{% for x in %}\n")
    path = tmp_path / "profiles.yaml"
    check(Case("bad-template", ["profile", "add", "p", "--host", "h", "--command-template",
                                str(bad), "--profile-file", str(path)],
               [f"{bad}:3:", "command_template"],
               env={"XDG_CONFIG_HOME": str(tmp_path / "c")}, absent=[path]))


@pytest.mark.parametrize("argv, key", [
    (["run", T, "--profile", "p", "--", "true"], "command_template"),
    (["submit", T, "--profile", "p"], "job_template"),
    (["batch", T, "--profile", "p"], "batch_template"),
    (["check-gpu", T, "--profile", "p"], "command_template"),
    (["build", T, "--on", "p", "--build-on", "slurm"], "build_template"),
])
def test_job_commands_refuse_a_broken_template_before_connecting(tmp_path, monkeypatch, argv,
                                                                 key):
    import hpc_dl4mic.remote.hosts as hosts
    import hpc_dl4mic.sessions.command as command
    import hpc_dl4mic.sessions.launch as launch

    def no_connection(*_a, **_kw):
        raise AssertionError("connected before refusing a broken template")

    for module in (hosts, command, launch):
        monkeypatch.setattr(module, "open_host", no_connection)
    cfg = tmp_path / "cfg" / "hpc-dl4mic"
    write(cfg / "t.j2", "#!/bin/bash\n{{ not_a_variable }}\n")
    write(cfg / "profiles.yaml", f"profiles:\n  p:\n    host: h\n    build: login\n"
                                 f"    {key}: t.j2\n")
    check(Case(key, argv, [f"{cfg / 't.j2'}:2:", "'not_a_variable' is undefined", key],
               env={"XDG_CONFIG_HOME": str(tmp_path / "cfg"),
                    "XDG_STATE_HOME": str(tmp_path / "state"),
                    "XDG_CACHE_HOME": str(tmp_path / "cache")}), cwd=tmp_path)


def test_the_readme_example_renders_a_command_job_with_its_additions(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```jinja\n", 1)[1].split("```", 1)[0]
    write(tmp_path / "cfg" / "command.j2", example)
    profile = profile_with(tmp_path, command_template="command.j2")
    st.check_job_templates(profile, "command_template")
    lines = render_command_script(session(tmp_path), profile, image_name="X", command=["true"],
                                  sbatch_lines=["--time=01:00:00"]).splitlines()
    assert lines[lines.index("#SBATCH --time=01:00:00") + 1] == "#SBATCH --constraint=a100"
    assert lines[lines.index("module purge") + 1] == "module load apptainer"
    assert any(ln.startswith("srun --kill-on-bad-exit=1 apptainer exec --nv") for ln in lines)


def test_a_site_template_includes_a_file_beside_it_and_a_builtin(tmp_path):
    write(tmp_path / "cfg" / "common.j2", "module purge\n")
    write(tmp_path / "cfg" / "job.j2", '{% extends "slurm_templates/jupyter.sbatch.j2" %}\n'
          '{% block setup %}{% include "common.j2" %}{{ super() }}{% endblock %}\n')
    profile = profile_with(tmp_path, job_template="job.j2")
    lines = render_job_script(session(tmp_path), profile, image_name="X",
                              sbatch_lines=[]).splitlines()
    assert lines[lines.index("module purge") + 1] == "module load apptainer"
