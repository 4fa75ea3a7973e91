"""Build SIF images with apptainer into a content-addressed cache.

The image key hashes what determines the image's bytes: the rendered definition without
volatile labels (tool version, the key itself), every file copied into the image
(converted notebooks, requirements, CA certificates), the base reference and, for a
``localimage`` base, the base SIF's digest. A release that leaves the templates alone keeps
a shared cache valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..catalogue.config import Base, NotebookConfig
from ..errors import BuildError, CommandError, InputError
from ..fsutil import atomic_write, cache_home
from ..remote.runner import LocalRunner, tail, terminating
from .cache import ImageCache, ImageRecord, file_sha256

KEY_LABEL = "org.hpc-dl4mic.image-key"
BASE_KEY_LABEL = "org.hpc-dl4mic.base-image-key"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildInputs:
    """A definition plus the files of its build context: everything a build needs."""

    name: str
    definition: str  # with the key label
    files: dict[str, bytes]  # context-relative path -> content
    base: Base
    key: str
    inputs: dict[str, str] = field(default_factory=dict)  # what was hashed -> sha256

    @property
    def definition_name(self) -> str:
        return f"{self.name}.def"


@dataclass(frozen=True)
class BuildResult:
    path: Path
    key: str
    name: str
    cached: bool
    seconds: float

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "key": self.key,
                "cached": self.cached, "seconds": round(self.seconds, 3)}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_digest(base: Base) -> str:
    """SHA-256 of a localimage base SIF ('' for other bases).

    Uses the cache record beside the SIF when there is one, else a memo keyed by path,
    size and mtime, so a cache hit does not re-hash a large base.
    """
    if base.kind != "localimage":
        return ""
    path = Path(base.ref)
    try:
        stat = path.stat()
    except OSError:
        raise InputError(f"base localimage:{path}: no such file") from None
    record = path.with_suffix(".json")
    if record.is_file():
        try:
            data = json.loads(record.read_text())
            if data.get("size") == stat.st_size and data.get("sha256"):
                return str(data["sha256"])
        except (OSError, ValueError):
            pass
    memo_path = cache_home() / "digests.json"
    memo_key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if memo_key not in memo:
        memo[memo_key] = file_sha256(path)
        try:
            atomic_write(memo_path, json.dumps(memo, indent=0), mode=0o600)
        except OSError:
            pass  # a read-only home only costs a re-hash next time
    return memo[memo_key]


DigestFn = Callable[[Base], str]


def remote_record(conn, record_path: str, sif: str) -> dict | None:
    """A cache record on the cluster, if it and its SIF exist and the SIF has the recorded
    size; one remote command (one round trip), as a lookup sits on the submit path."""
    found = conn.run(["sh", "-c", 'cat -- "$1" && echo && stat -c %s -- "$2"', "hpc-dl4mic",
                      record_path, sif], check=False, timeout=60)
    if found.returncode != 0:
        return None
    text, _, size = found.stdout.rstrip().rpartition("\n")
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and str(record.get("size")) == size.strip() \
        else None


def remote_base_digest(conn) -> DigestFn:
    """A base digest function that reads a ``localimage`` base SIF on the cluster (its
    cache record when it has one, else ``sha256sum`` there): for ``build --on``."""

    def digest(base: Base) -> str:
        if base.kind != "localimage":
            return ""
        if base.ref.endswith(".sif"):
            record = remote_record(conn, base.ref[:-4] + ".json", base.ref)
            if record and record.get("sha256"):
                return str(record["sha256"])
        result = conn.run(["sha256sum", base.ref], check=False, timeout=900)
        if result.returncode != 0:
            raise InputError(f"base localimage:{base.ref}: no such file on "
                             f"{conn.target.display}")
        return result.stdout.split()[0]

    return digest


def image_key(keyed_definition: str, base: Base, files: dict[str, bytes],
              digest: DigestFn = base_digest) -> tuple[str, dict]:
    """The content hash of an image, and the per-input digests it was made from."""
    inputs = {"definition": _digest(keyed_definition.encode()), "base": str(base),
              "base-sha256": digest(base)}
    inputs.update({f"file:{name}": _digest(data) for name, data in sorted(files.items())})
    key = _digest(json.dumps({"v": 1, **inputs}, sort_keys=True).encode())
    return key, inputs


def _with_key(render: Callable[[tuple[tuple[str, str], ...]], str], base: Base,
              files: dict[str, bytes], label: str = KEY_LABEL,
              digest: DigestFn = base_digest) -> tuple[str, str, dict]:
    from .render import keyed_definition

    key, inputs = image_key(keyed_definition(render(())), base, files, digest)
    return render(((label, key),)), key, inputs


def prepare_notebook_image(config: NotebookConfig, *, notebook: Path | None = None,
                           requirements: Path | None = None, base: str | None = None,
                           gpu: bool = True, ca_certs: Path | None = None,
                           system_python: bool = False,
                           digest: DigestFn = base_digest) -> BuildInputs:
    """Resolve inputs, convert notebooks, render and key the image of ``config``.

    ``digest`` reads a localimage base where it will be used (``remote_base_digest`` for a
    build on the cluster)."""
    from ..catalogue.config import parse_base
    from ..catalogue.sources import notebook_path, requirements_path
    from .context import ca_cert_files, ca_cert_names, image_notebooks
    from .render import make_spec, render_definition

    certs = ca_cert_files(ca_certs)
    base_obj = parse_base(base) if base else None
    nb_files = image_notebooks(config, notebook_path(config, notebook))
    spec = make_spec(config, base=base_obj, gpu=gpu, notebook_files=tuple(nb_files),
                     ca_certs=ca_cert_names(certs), accept_system_python=system_python)
    files = {f"notebooks/{name}": data for name, data in nb_files.items()}
    files["requirements.txt"] = requirements_path(config, requirements).read_bytes()
    for src, name in zip(certs, ca_cert_names(certs)):
        files[f"ca-certs/{name}"] = src.read_bytes()
    definition, key, inputs = _with_key(
        lambda extra: render_definition(replace(spec, labels_extra=extra)), spec.base, files,
        digest=digest)
    return BuildInputs(config.name, definition, files, spec.base, key, inputs)


def prepare_base_image(suite: str = "bookworm", mirror: str | None = None, *,
                       ca_certs: Path | None = None) -> BuildInputs:
    """The small Debian base image (``hpc-dl4mic base``)."""
    from .context import ca_cert_files, ca_cert_names
    from .render import render_base_definition

    base = Base("debootstrap", suite, mirror or Base.mirror)
    certs = ca_cert_files(ca_certs)
    names = ca_cert_names(certs)
    files = {f"ca-certs/{n}": src.read_bytes() for src, n in zip(certs, names)}
    definition, key, inputs = _with_key(
        lambda extra: render_base_definition(suite, base.mirror, ca_certs=names,
                                             labels_extra=extra), base, files, BASE_KEY_LABEL)
    return BuildInputs(f"debian-{suite}-base", definition, files, base, key, inputs)


def write_build_context(inputs: BuildInputs, directory: Path) -> Path:
    """Write the definition and its files into ``directory``; returns the definition path."""
    for rel, data in inputs.files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    definition = directory / inputs.definition_name
    definition.write_text(inputs.definition)
    return definition


def build_image(inputs: BuildInputs, cache: ImageCache, *, runner: LocalRunner | None = None,
                apptainer: str = "apptainer", fakeroot: bool | None = None,
                progress: Progress | None = None, timeout: float | None = None,
                force: bool = False) -> BuildResult:
    """The cached image for ``inputs``, building it with apptainer when it is not there.

    The SIF is built under ``CACHE/.tmp`` and renamed into place only when complete: an
    interrupted or failed build never leaves an image in the cache.
    """
    started = time.monotonic()
    if not force:
        record = cache.lookup(inputs.name, inputs.key)
        if record is not None:
            return BuildResult(cache.sif_path(inputs.name, inputs.key), inputs.key, inputs.name,
                               True, time.monotonic() - started)
    runner = runner or LocalRunner()
    if fakeroot is None:
        fakeroot = os.geteuid() != 0
    say = progress or (lambda _line: None)
    tmp = cache.new_tmp_dir(f"{inputs.name}-{inputs.key[:16]}")
    try:
        with terminating():
            definition = write_build_context(inputs, tmp)
            out = tmp / "image.sif"
            # --force: our labels and %help replace those a localimage base brings along
            argv = [apptainer, "build", "--force", *(["--fakeroot"] if fakeroot else []),
                    str(out), definition.name]
            say(f"building {inputs.name} ({inputs.key[:16]}) with {' '.join(argv[:2])} ...")
            try:
                runner.stream(argv, on_line=say, cwd=str(tmp), timeout=timeout)
            except CommandError as exc:
                raise BuildError(
                    f"apptainer build of {inputs.name} failed (exit {exc.returncode}):\n"
                    f"{tail(exc.stderr, 25)}", argv=exc.argv, returncode=exc.returncode,
                    stderr=exc.stderr) from None
            if not out.is_file() or out.stat().st_size == 0:
                raise BuildError(f"apptainer build of {inputs.name} produced no image",
                                 argv=argv)
            labels = inspect_labels(out, runner=runner, apptainer=apptainer)
            record = ImageRecord(name=inputs.name, key=inputs.key, sha256=file_sha256(out),
                                 size=out.stat().st_size, created=time.time(),
                                 base=str(inputs.base), tool_version=__version__,
                                 labels=labels, inputs=inputs.inputs)
            path = cache.add(out, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(path, inputs.key, inputs.name, False, time.monotonic() - started)


def inspect_labels(sif: Path, *, runner: LocalRunner | None = None,
                   apptainer: str = "apptainer") -> dict[str, str]:
    """``apptainer inspect --json --labels`` as a dict."""
    runner = runner or LocalRunner()
    result = runner.run([apptainer, "inspect", "--json", "--labels", str(sif)], timeout=120)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise CommandError(f"apptainer inspect {sif}: unreadable output") from None
    attrs = data.get("data", {}).get("attributes", {}) if isinstance(data, dict) else {}
    labels = attrs.get("labels", data if isinstance(data, dict) else {})
    return {str(k): str(v) for k, v in (labels or {}).items()}


def _stderr_notice(line: str) -> None:
    print(f"hpc-dl4mic: {line}", file=sys.stderr, flush=True)


def build_image_remote(inputs: BuildInputs, conn, profile, *, mode: str | None = None,
                       fakeroot: bool | None = None, progress: Progress | None = None,
                       timeout: float | None = None, force: bool = False,
                       notice: Progress | None = None) -> BuildResult:
    """Build on the cluster over SSH into the profile's cache dir, or reuse a cached SIF.

    ``mode`` is ``login`` (apptainer on the login node, in its own process group) or
    ``slurm`` (a build job, waited for); the default comes from the profile. On Ctrl-C,
    SIGTERM or a timeout the remote build is stopped (its process group killed, or the job
    cancelled), ``notice`` (default: stderr) gets one line saying so, and the remote build
    folder is removed before the exception propagates.
    """
    with terminating():
        return _build_image_remote(inputs, conn, profile, mode=mode, fakeroot=fakeroot,
                                   progress=progress, timeout=timeout, force=force,
                                   notice=notice or _stderr_notice)


def _build_image_remote(inputs: BuildInputs, conn, profile, *, mode: str | None,
                        fakeroot: bool | None, progress: Progress | None,
                        timeout: float | None, force: bool, notice: Progress) -> BuildResult:
    from ..jobs.slurm import render_template, sbatch_lines, with_modules
    from .cache import image_stem

    started = time.monotonic()
    say = progress or (lambda _line: None)
    mode = mode or profile.build
    home = conn.home()
    cache_dir = profile.remote_cache_dir(home)
    stem = image_stem(inputs.name, inputs.key)
    sif, record_path = f"{cache_dir}/{stem}.sif", f"{cache_dir}/{stem}.json"
    if not force:
        record = remote_record(conn, record_path, sif)
        if record is not None and record.get("key") == inputs.key:
            return BuildResult(Path(sif), inputs.key, inputs.name, True,
                               time.monotonic() - started)
    if fakeroot is None:
        fakeroot = conn.run(["id", "-u"]).stdout.strip() != "0"
    from .cache import tmp_dir_mode

    conn.makedirs(cache_dir, mode=0o2775)
    if not conn.exists(f"{cache_dir}/.tmp"):
        conn.makedirs(f"{cache_dir}/.tmp", mode=0o700)
        conn.sftp().chmod(f"{cache_dir}/.tmp", tmp_dir_mode(conn.sftp().stat(cache_dir).st_mode))
    tmp = f"{cache_dir}/.tmp/{stem}.{os.getpid()}.{time.time_ns()}"
    conn.makedirs(tmp, mode=0o700)
    try:
        say(f"uploading build context to {conn.target.display}:{tmp}")
        for rel, data in inputs.files.items():
            parent = f"{tmp}/{rel}".rsplit("/", 1)[0]
            if parent != tmp:
                conn.makedirs(parent, mode=0o700)
            conn.write_file(f"{tmp}/{rel}", data, mode=0o600)
        conn.write_file(f"{tmp}/{inputs.definition_name}", inputs.definition, mode=0o600)
        build_argv = [profile.apptainer, "build", "--force",
                      *(["--fakeroot"] if fakeroot else []), "image.sif", inputs.definition_name]
        if mode == "login":
            say(f"building {inputs.name} on the login node ({' '.join(build_argv[:2])}) ...")
            pid_file = f"{tmp}/{BUILD_PID_FILE}"
            try:
                result = conn.stream(
                    in_own_process_group(with_modules(build_argv, profile.modules), pid_file),
                    cwd=tmp, check=False, timeout=timeout, on_line=say)
            except BaseException:
                _stop_login_build(conn, pid_file, notice)
                raise
            log = result.stdout
            ok = result.returncode == 0
        elif mode == "slurm":
            script = render_template(
                "build.sbatch.j2", job_name=f"build-{inputs.name}"[:60],
                log_path=f"{tmp}/build.log",
                # a build needs no GPU: keep account/partition/time, drop gres/gpus
                sbatch_lines=[line for line in sbatch_lines(profile)
                              if not line.startswith(("--gres", "--gpus"))],
                image_name=inputs.name, key=inputs.key, context_dir=tmp,
                modules=profile.modules, build_argv=build_argv)
            conn.write_file(f"{tmp}/build.sbatch", script, mode=0o700)
            say(f"submitting a SLURM build job for {inputs.name} ...")
            ok = _wait_for_build_job(conn, f"{tmp}/build.sbatch", f"{tmp}/build.log", say,
                                     timeout, notice)
            log = conn.read_file(f"{tmp}/build.log").decode("utf-8", "replace") \
                if conn.exists(f"{tmp}/build.log") else ""
        else:
            raise InputError(f"--build-on {mode!r}: expected login or slurm")
        if not ok:
            raise BuildError(f"apptainer build of {inputs.name} on {conn.target.display} "
                             f"failed:\n{tail(log, 25)}", stderr=log)
        inspect = conn.run([*with_modules([profile.apptainer, "inspect", "--json", "--labels",
                                           "image.sif"], profile.modules)], cwd=tmp, timeout=120)
        try:
            data = json.loads(inspect.stdout)
            labels = data.get("data", {}).get("attributes", {}).get("labels", {}) or {}
        except (ValueError, AttributeError):
            labels = {}
        digest = conn.run(["sha256sum", "image.sif"], cwd=tmp, timeout=600).stdout.split()[0]
        size = conn.sftp().stat(f"{tmp}/image.sif").st_size
        record = ImageRecord(name=inputs.name, key=inputs.key, sha256=digest, size=size,
                             created=time.time(), base=str(inputs.base),
                             tool_version=__version__, labels=labels, inputs=inputs.inputs)
        conn.run(["chmod", "0664", "image.sif"], cwd=tmp)
        conn.run(["mv", "-f", f"{tmp}/image.sif", sif])
        conn.write_file(record_path, json.dumps(record.to_dict(), indent=2) + "\n", mode=0o664)
    finally:
        conn.run(["rm", "-rf", tmp], check=False, timeout=120)
    return BuildResult(Path(sif), inputs.key, inputs.name, False, time.monotonic() - started)


BUILD_PID_FILE = "build.pid"
ACTIVE_JOB_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                     "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT")


def in_own_process_group(argv: list[str], pid_file: str) -> list[str]:
    """``argv`` run by ``setsid -w`` as the leader of a new process group (and session),
    whose id is written to ``pid_file`` first: :func:`stop_group_argv` can then stop the
    build and everything it started (mksquashfs, %post) even when the SSH channel is gone;
    ``-w`` passes the exit status through."""
    return ["setsid", "-w", "sh", "-c", 'echo "$$" > "$1" && shift && exec "$@"',
            "hpc-dl4mic", pid_file, *argv]


def stop_group_argv(pid_file: str, grace: int = 10) -> list[str]:
    """The remote command that stops the process group named in ``pid_file``: TERM, then
    KILL after ``grace`` seconds while members other than zombies remain (orphans' zombies
    may wait long for init); prints the group id when there was one to stop. Waits a moment
    for the pid file of a build that is only starting."""
    script = ('live() { ps -eo pgid=,stat= 2>/dev/null | '
              'awk -v g="$1" \'$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }\'; }\n'
              'i=0; while [ ! -s "$1" ] && [ "$i" -lt 3 ]; do sleep 1; i=$((i+1)); done\n'
              'pid=$(cat -- "$1" 2>/dev/null) || exit 0\n'
              'case $pid in ""|*[!0-9]*) exit 0;; esac\n'
              'kill -TERM "-$pid" 2>/dev/null || exit 0\n'
              'i=0; while live "$pid"; do\n'
              '  if [ "$i" -ge "$2" ]; then kill -KILL "-$pid" 2>/dev/null; sleep 1; break; fi\n'
              '  sleep 1; i=$((i+1))\n'
              'done\n'
              'echo "$pid"\n')
    return ["sh", "-c", script, "hpc-dl4mic", pid_file, str(int(grace))]


def _stop_login_build(conn, pid_file: str, notice: Progress) -> None:
    """Kill the interrupted login-node build's process group (best effort, one line)."""
    try:
        stopped = conn.run(stop_group_argv(pid_file), check=False, timeout=60).stdout.strip()
    except Exception as exc:  # noqa: BLE001 - the interrupt itself is what gets reported
        notice(f"could not stop the remote apptainer build on {conn.target.display}: "
               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    if stopped:
        notice(f"stopped the apptainer build on {conn.target.display} "
               f"(process group {stopped}); removing its build folder")


def _cancel_build_job(conn, job_id: str, notice: Progress, wait: float = 60.0) -> None:
    """scancel an interrupted build job and wait (bounded) until SLURM says it ended."""
    from ..jobs.slurm import job_info

    try:
        conn.run(["scancel", job_id], check=False, timeout=30)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            info = job_info(conn, job_id)
            if info is None or info.state.split()[0] not in ACTIVE_JOB_STATES:
                break
            time.sleep(1.0)
    except Exception as exc:  # noqa: BLE001 - the interrupt itself is what gets reported
        notice(f"could not cancel SLURM build job {job_id}: "
               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    notice(f"cancelled SLURM build job {job_id} on {conn.target.display}; removing its build "
           "folder")


def _wait_for_build_job(conn, script: str, log_path: str, say: Progress,
                        timeout: float | None, notice: Progress) -> bool:
    """Submit the build job and poll it until it ends, passing the job log's new lines to
    ``say``; True when it COMPLETED. On an interrupt or timeout the job is cancelled."""
    from ..jobs.slurm import job_info, sbatch

    job_id = sbatch(conn, script)
    say(f"build job {job_id} submitted")
    deadline = None if timeout is None else time.monotonic() + timeout
    offset, pending = 0, ""
    try:
        while True:
            info = job_info(conn, job_id)
            try:
                with conn.sftp().open(log_path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                data = b""
            offset += len(data)
            *lines, pending = (pending + data.decode("utf-8", "replace")).split("\n")
            for line in lines:
                say(line)
            if info is None:  # SLURM forgot it already: judge by the result
                return conn.exists(f"{log_path.rsplit('/', 1)[0]}/image.sif")
            state = info.state.split()[0]
            if state not in ACTIVE_JOB_STATES:
                if pending:
                    say(pending)
                return state == "COMPLETED"
            if deadline is not None and time.monotonic() > deadline:
                raise BuildError(f"SLURM build job {job_id} did not finish within "
                                 f"{timeout:g} s")
            time.sleep(2.0)
    except BaseException:
        _cancel_build_job(conn, job_id, notice)
        raise


@dataclass
class VerifyResult:
    name: str
    key: str
    path: Path
    ok: bool
    problems: list[str]

    def to_dict(self) -> dict:
        return {"name": self.name, "key": self.key, "path": str(self.path), "ok": self.ok,
                "problems": self.problems}


def verify_cache(cache: ImageCache, *, runner: LocalRunner | None = None,
                 apptainer: str = "apptainer") -> list[VerifyResult]:
    """Check every image: size and SHA-256 against its record, and the key label that
    ``apptainer inspect`` reads from the image against the key in its name."""
    results = []
    for record in cache.records():
        sif = cache.sif_path(record.name, record.key)
        problems: list[str] = []
        if not sif.is_file():
            problems.append("image file is missing")
        else:
            size = sif.stat().st_size
            if size != record.size:
                problems.append(f"size {size} != recorded {record.size} (truncated?)")
            elif file_sha256(sif) != record.sha256:
                problems.append("sha256 differs from the record (corrupted)")
            if not problems:
                try:
                    labels = inspect_labels(sif, runner=runner, apptainer=apptainer)
                except CommandError as exc:
                    problems.append(f"apptainer inspect failed: {tail(exc.stderr, 1)}")
                else:
                    found = labels.get(KEY_LABEL) or labels.get(BASE_KEY_LABEL)
                    if found != record.key:
                        problems.append(f"key label {found!r} does not match the key")
        results.append(VerifyResult(record.name, record.key, sif, not problems, problems))
    for orphan in cache.orphans():
        results.append(VerifyResult(orphan.stem, "", orphan, False,
                                    ["no record for this image" if orphan.suffix == ".sif"
                                     else "record without an image"]))
    return results


def find_input(directory: Path | None, filename: str) -> Path | None:
    """``filename`` anywhere below ``directory`` (for `cache build --notebook-dir`)."""
    if directory is None:
        return None
    direct = Path(directory) / filename
    if direct.is_file():
        return direct
    return next(iter(sorted(Path(directory).rglob(filename))), None)


@dataclass
class ManyResult:
    built: list[BuildResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # name, one-line reason

    def to_dict(self) -> dict:
        return {"built": [b.to_dict() for b in self.built],
                "failed": [{"name": n, "error": e} for n, e in self.failed]}


def build_many(configs: list[NotebookConfig], cache: ImageCache, *,
               notebook_dir: Path | None = None, requirements_dir: Path | None = None,
               progress: Progress | None = None, **options) -> ManyResult:
    """Build (or find cached) images for many configs; continue past failures."""
    from ..catalogue.sources import folder_hint, notebook_path, requirements_path
    from ..errors import HpcDl4micError

    say = progress or (lambda _line: None)
    outcome = ManyResult()
    for index, config in enumerate(configs, 1):
        say(f"[{index}/{len(configs)}] {config.name}")
        try:
            # resolved here so that a failed download names this command's options
            notebook = find_input(notebook_dir, config.notebook_filename) or notebook_path(
                config, None, folder_hint("--notebook-dir", notebook_dir,
                                          config.notebook_filename))
            requirements = find_input(requirements_dir, config.requirements_filename) or \
                requirements_path(config, None, folder_hint(
                    "--requirements-dir", requirements_dir, config.requirements_filename))
            inputs = prepare_notebook_image(config, notebook=notebook,
                                            requirements=requirements, **options)
            outcome.built.append(build_image(inputs, cache, progress=progress))
        except HpcDl4micError as exc:
            outcome.failed.append((config.name, str(exc).splitlines()[0]))
    return outcome
