"""SshHost without a server: its file methods over a fake SFTP client that maps remote paths
into a local folder, its checksums over the local sha256sum, and the pure helpers
(sha256sum output, resume offsets, FileInfo from SFTP attributes). The e2e tier runs the
same methods against the real sshd."""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hpc_dl4mic.errors import RemoteError
from hpc_dl4mic.remote.connection import SshHost
from hpc_dl4mic.remote.host import Host
from hpc_dl4mic.remote.runner import Result
from hpc_dl4mic.remote.sftpops import (
    checksum_failure,
    file_info,
    parse_sha256sum,
    part_path,
    resume_offset,
)
from hpc_dl4mic.remote.target import SshTarget

HOME = "/home/u"


class _Transport:
    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _Sftp:
    """The slice of paramiko's SFTPClient that SshHost uses, over ``root`` (remote ``/x``
    is ``root/x``); records which remote paths it was given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: list[str] = []
        self.opened: list[tuple[str, int]] = []  # (path, offset of the first read)

    def _local(self, path: str) -> Path:
        assert path.startswith("/"), f"SshHost passed a relative path: {path!r}"
        self.seen.append(path)
        return self.root / path.lstrip("/")

    def normalize(self, path: str) -> str:
        return HOME

    def stat(self, path: str):
        import paramiko

        return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))

    def lstat(self, path: str):
        import paramiko

        return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path)))

    def listdir_attr(self, path: str):
        import paramiko

        local = self._local(path)
        return [paramiko.SFTPAttributes.from_stat(os.lstat(local / n), n)
                for n in os.listdir(local)]

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self._local(path), mode)

    def remove(self, path: str) -> None:
        os.unlink(self._local(path))

    def open(self, path: str, mode: str):
        assert mode == "rb"
        return _File(self, path, open(self._local(path), "rb"))


class _File:
    def __init__(self, sftp: _Sftp, path: str, handle) -> None:
        self.sftp, self.path, self.handle, self.offset = sftp, path, handle, 0

    def __enter__(self) -> _File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sftp.opened.append((self.path, self.offset))
        self.handle.close()

    def seek(self, offset: int) -> None:
        self.offset = offset
        self.handle.seek(offset)

    def prefetch(self, size: int | None = None) -> None:
        pass

    def read(self, n: int = -1) -> bytes:
        return self.handle.read(n)


@pytest.fixture
def remote_root(tmp_path: Path) -> Path:
    root = tmp_path / "remote"
    (root / HOME.lstrip("/")).mkdir(parents=True)
    return root


@pytest.fixture
def host(remote_root: Path) -> SshHost:
    h = SshHost(SshTarget(alias="c", hostname="login.example.org", user="u"), [_Transport()])
    h._sftp = _Sftp(remote_root)
    return h


def _home(root: Path) -> Path:
    return root / HOME.lstrip("/")


def test_ssh_host_has_every_method_of_the_host_interface() -> None:
    wanted = [n for n, v in vars(Host).items() if callable(v) and not n.startswith("_")]
    assert {"stat", "get", "checksums", "put_tree", "scheduler", "forward"} <= set(wanted)
    for name in wanted:
        ours = inspect.signature(getattr(SshHost, name)).parameters
        for pname, param in inspect.signature(getattr(Host, name)).parameters.items():
            assert pname in ours, f"SshHost.{name} lacks {pname}"
            assert ours[pname].kind == param.kind, f"SshHost.{name}({pname}) differs"
            assert ours[pname].default == param.default, f"SshHost.{name}({pname}) default"


def test_display_home_cwd_and_paths(host: SshHost, remote_root: Path) -> None:
    assert host.display == "u@login.example.org:22"
    assert host.home() == HOME and host.cwd() == HOME
    (_home(remote_root) / "d").mkdir()
    (_home(remote_root) / "d" / "f").write_text("x")
    for path in ("d/f", "~/d/f", "./d/../d/f", f"{HOME}/d/f"):
        info = host.stat(path)
        assert info is not None and info.path == f"{HOME}/d/f"
    assert all(p.startswith("/") for p in host._sftp.seen)


def test_stat_kinds_and_missing(host: SshHost, remote_root: Path) -> None:
    home = _home(remote_root)
    (home / "f").write_bytes(b"12345")
    os.chmod(home / "f", 0o640)
    os.utime(home / "f", (1_600_000_000, 1_600_000_000))
    (home / "d").mkdir(mode=0o750)
    (home / "l").symlink_to("f")
    os.mkfifo(home / "p")
    f = host.stat("f")
    assert (f.kind, f.size, f.mtime, f.mode, f.name) == ("file", 5, 1_600_000_000.0, 0o640, "f")
    assert host.stat("d").kind == "dir" and host.stat("d").mode == 0o750
    assert host.stat("l").kind == "link"  # not followed
    assert host.stat("p").kind == "other"
    assert host.stat("nope") is None


def test_listdir_does_not_follow_links_and_names_a_missing_folder(host: SshHost,
                                                                  remote_root: Path) -> None:
    home = _home(remote_root)
    (home / "b").write_text("b")
    (home / "a").mkdir()
    (home / "c").symlink_to("/etc")
    assert [(e.name, e.kind, e.path) for e in host.listdir("~")] == [
        ("a", "dir", f"{HOME}/a"), ("b", "file", f"{HOME}/b"), ("c", "link", f"{HOME}/c")]
    with pytest.raises(RemoteError, match=f"cannot list {HOME}/nope: "):
        host.listdir("nope")


def test_chmod_and_remove(host: SshHost, remote_root: Path) -> None:
    home = _home(remote_root)
    (home / "f").write_text("x")
    host.chmod("f", 0o604)
    assert (home / "f").stat().st_mode & 0o777 == 0o604
    with pytest.raises(RemoteError, match=f"cannot chmod {HOME}/nope"):
        host.chmod("nope", 0o600)
    host.remove("~/f")
    assert not (home / "f").exists()
    host.remove("f")  # missing: fine


def _remote_file(remote_root: Path, size: int = 3_000_001) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = _home(remote_root) / "big.bin"
    path.write_bytes(data)
    os.utime(path, (1_500_000_000, 1_500_000_000))
    return path, data


def test_get_is_atomic_and_keeps_mtime(host: SshHost, remote_root: Path,
                                       tmp_path: Path) -> None:
    _, data = _remote_file(remote_root)
    local = tmp_path / "here" / "big.bin"
    host.get("big.bin", local)
    assert local.read_bytes() == data and int(local.stat().st_mtime) == 1_500_000_000
    assert sorted(p.name for p in local.parent.iterdir()) == ["big.bin"]
    assert host._sftp.opened[-1] == (f"{HOME}/big.bin", 0)


def test_get_resume_continues_a_part(host: SshHost, remote_root: Path, tmp_path: Path) -> None:
    _, data = _remote_file(remote_root)
    local = tmp_path / "big.bin"
    part_path(local).write_bytes(data[:1_000_000])
    host.get("big.bin", local, resume=True)
    assert local.read_bytes() == data and not part_path(local).exists()
    assert host._sftp.opened[-1] == (f"{HOME}/big.bin", 1_000_000)


def test_get_without_resume_restarts_and_a_too_long_part_restarts(
        host: SshHost, remote_root: Path, tmp_path: Path) -> None:
    _, data = _remote_file(remote_root, 1000)
    local = tmp_path / "big.bin"
    part_path(local).write_bytes(b"garbage")
    host.get("big.bin", local)
    assert local.read_bytes() == data and host._sftp.opened[-1][1] == 0
    part_path(local).write_bytes(b"x" * 5000)  # longer than the file: not a part of it
    host.get("big.bin", local, resume=True)
    assert local.read_bytes() == data and host._sftp.opened[-1][1] == 0


def test_failed_get_keeps_the_part_only_when_resuming(host: SshHost, tmp_path: Path) -> None:
    local = tmp_path / "x"
    part_path(local).write_bytes(b"abc")
    with pytest.raises(RemoteError, match=f"cannot download {HOME}/missing"):
        host.get("missing", local, resume=True)
    assert part_path(local).read_bytes() == b"abc"
    with pytest.raises(RemoteError, match="cannot download"):
        host.get("missing", local)
    assert not part_path(local).exists() and not local.exists()


def _local_sha256sum(remote_root: Path, monkeypatch: pytest.MonkeyPatch, host: SshHost) -> list:
    calls: list = []

    def run(argv, *, check=True, **kw):
        calls.append(list(argv))
        assert argv[:2] == ["sha256sum", "--"] and not check
        local = [str(remote_root / a.lstrip("/")) for a in argv[2:]]
        proc = subprocess.run(["sha256sum", "--", *local], capture_output=True, text=True)
        strip = str(remote_root)
        return Result(list(argv), proc.returncode, proc.stdout.replace(strip, ""),
                      proc.stderr.replace(strip, ""))

    monkeypatch.setattr(host, "run", run)
    return calls


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_checksums_one_command_for_the_batch(host: SshHost, remote_root: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _local_sha256sum(remote_root, monkeypatch, host)
    home = _home(remote_root)
    names = ["plain", "with space", "back\\slash", "new\nline", "-dash"]
    for i, name in enumerate(names):
        (home / name).write_bytes(f"data {i}".encode())
    asked = [f"~/{n}" for n in names[:2]] + names[2:]
    sums = host.checksums(asked)
    assert sums == {a: hashlib.sha256(f"data {i}".encode()).hexdigest()
                    for i, a in enumerate(asked)}
    assert calls == [["sha256sum", "--", *[f"{HOME}/{n}" for n in names]]]
    assert host.checksums([]) == {} and len(calls) == 1
    with pytest.raises(RemoteError, match=f"cannot checksum {HOME}/gone: No such file"):
        host.checksums(["plain", "gone"])


DIGEST = "a" * 64


def test_parse_sha256sum() -> None:
    out = f"{DIGEST}  /a\n\\{'b' * 64}  /x\\\\y\\nz\n{'c' * 64} */bin\n"
    assert parse_sha256sum(out, ["/a", "/x\\y\nz", "/bin"]) == [DIGEST, "b" * 64, "c" * 64]
    assert parse_sha256sum(f"{DIGEST}  /c\rr\n", ["/c\rr"]) == [DIGEST]  # \r: not a line end
    assert parse_sha256sum(f"{DIGEST}  /\ufffd\n", ["/\udcff"]) == [DIGEST]  # not UTF-8
    for bad, paths in [(f"{DIGEST}  /a\n", ["/a", "/b"]), (f"{DIGEST}  /b\n", ["/a"]),
                       ("xyz  /a\n", ["/a"]), (f"{DIGEST}\t/a\n", ["/a"])]:
        with pytest.raises(ValueError):
            parse_sha256sum(bad, paths)


def test_checksum_failure_names_the_path() -> None:
    err = "sha256sum: /h/a: Is a directory\n"
    assert checksum_failure(err, ["/h/b", "/h/a"]) == ("/h/a", "Is a directory")
    assert checksum_failure("boom\n", ["/h/a"]) == ("/h/a", "boom")
    assert checksum_failure("", ["/a", "/b"])[0] == "/a (or one of 1 more)"


def test_resume_offset_and_part_path() -> None:
    assert resume_offset(None, 10) == 0
    assert resume_offset(4, 10) == 4
    assert resume_offset(10, 10) == 10
    assert resume_offset(11, 10) == 0
    assert part_path(Path("/d/f.txt")) == Path("/d/.f.txt.part")


def test_file_info_from_attributes(tmp_path: Path) -> None:
    import paramiko

    (tmp_path / "f").write_text("abc")
    os.chmod(tmp_path / "f", 0o4755)
    info = file_info("/r/f", paramiko.SFTPAttributes.from_stat(os.lstat(tmp_path / "f")))
    assert (info.kind, info.size, info.mode) == ("file", 3, 0o755)  # permission bits only
    empty = paramiko.SFTPAttributes()
    assert file_info("/r/x", empty).kind == "other"
