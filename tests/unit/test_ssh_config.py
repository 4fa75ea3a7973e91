"""SSH layer without a network: ~/.ssh/config resolution, known_hosts, fingerprints, quoting."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.remote.commands import remote_command
from hpc_dl4mic.remote.known_hosts import (
    KnownHostEntry,
    append_known_host,
    check_host_key,
    fingerprint,
    preferred_key_types,
    read_known_hosts,
)
from hpc_dl4mic.remote.target import SshTarget, chain, parse_destination, ssh_target
from hpc_dl4mic.remote.tunnel import LocalForward

# A fixed ed25519 public key and the fingerprint `ssh-keygen -lf` printed for it.
PUB = "AAAAC3NzaC1lZDI1NTE5AAAAIIo3o/ovz97VR2RXdSQaHr0KL6tyq5R8htY42+QEYBfb"
PUB_FP = "SHA256:8rSc9SAjjLTxc8kPVC/4aNec7R+Px/h4I10TWZK4hE4"
BLOB = base64.b64decode(PUB)


@pytest.fixture
def ssh_config(tmp_path: Path) -> Path:
    key = tmp_path / "id_cluster"
    key.write_text("not really a key\n")
    cfg = tmp_path / "config"
    cfg.write_text(f"""
Host cluster
    HostName login.example.org
    User alice
    Port 2200
    IdentityFile {key}
    ProxyJump bastion,inner

Host bastion
    HostName bastion.example.org
    User bob
    Port 2022
    ProxyJump outer

Host inner
    HostName 10.0.0.5
    ProxyJump never-used

Host outer
    HostName outer.example.org
    User carol

Host chain
    HostName chain.example.org
    ProxyJump jim@hop1:2201,hop2

Host aliased
    HostName aliased.example.org
    HostKeyAlias the-alias
    IdentitiesOnly yes

Host *
    UserKnownHostsFile {tmp_path}/kh1 {tmp_path}/kh2
""")
    return cfg


def test_alias_resolves_hostname_user_port_identity(ssh_config: Path, tmp_path: Path) -> None:
    t = ssh_target("cluster", ssh_config=ssh_config)
    assert (t.alias, t.hostname, t.user, t.port) == ("cluster", "login.example.org", "alice",
                                                     2200)
    assert t.identity_files == (tmp_path / "id_cluster",)
    assert t.known_hosts == (tmp_path / "kh1", tmp_path / "kh2")
    assert t.display == "alice@login.example.org:2200"
    assert t.known_hosts_name == "[login.example.org]:2200"


def test_proxy_jump_chain_each_hop_resolved(ssh_config: Path) -> None:
    t = ssh_target("cluster", ssh_config=ssh_config)
    bastion, inner = t.proxy_jump
    assert (bastion.hostname, bastion.user, bastion.port) == ("bastion.example.org", "bob", 2022)
    # The first hop follows its own ProxyJump ...
    assert [h.hostname for h in bastion.proxy_jump] == ["outer.example.org"]
    assert bastion.proxy_jump[0].user == "carol"
    # ... later hops are reached through the previous one (as OpenSSH does).
    assert inner.hostname == "10.0.0.5" and inner.proxy_jump == ()
    assert [h.hostname for h in chain(t)] == [
        "outer.example.org", "bastion.example.org", "10.0.0.5", "login.example.org"]
    assert all(h.proxy_jump == () for h in chain(t))


def test_proxy_jump_user_host_port_forms(ssh_config: Path) -> None:
    t = ssh_target("chain", ssh_config=ssh_config)
    hop1, hop2 = t.proxy_jump
    assert (hop1.user, hop1.hostname, hop1.port) == ("jim", "hop1", 2201)
    assert (hop2.hostname, hop2.port) == ("hop2", 22)


def test_explicit_arguments_win(ssh_config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    other.write_text("x")
    t = ssh_target("cluster", user="zoe", port=2222, identity=other,
                   proxy_jump="none", ssh_config=ssh_config)
    assert (t.user, t.port, t.proxy_jump) == ("zoe", 2222, ())
    assert t.identity_files == (other, tmp_path / "id_cluster")
    t = ssh_target("dave@cluster:2323", ssh_config=ssh_config)
    assert (t.user, t.hostname, t.port) == ("dave", "login.example.org", 2323)
    t = ssh_target("cluster", proxy_jump="eve@gate.example.org:2022", ssh_config=ssh_config)
    assert [(h.user, h.hostname, h.port) for h in t.proxy_jump] == [
        ("eve", "gate.example.org", 2022)]
    hop = SshTarget(alias="x", hostname="x.example.org", user="u")
    assert ssh_target("cluster", proxy_jump=[hop], ssh_config=ssh_config).proxy_jump == (hop,)


def test_host_key_alias_identities_only_and_unknown_host(ssh_config: Path) -> None:
    t = ssh_target("aliased", ssh_config=ssh_config)
    assert t.known_hosts_name == "the-alias" and t.identities_only
    t = ssh_target("plain.example.org", user="u", ssh_config=ssh_config)
    assert (t.hostname, t.port, t.user, t.identity_files) == ("plain.example.org", 22, "u", ())
    assert t.known_hosts_name == "plain.example.org"


def test_missing_files_are_input_errors(ssh_config: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="key file .*nope not found"):
        ssh_target("cluster", identity=tmp_path / "nope", ssh_config=ssh_config)
    with pytest.raises(InputError, match="SSH config file"):
        ssh_target("cluster", ssh_config=tmp_path / "no-config")


def test_jump_loop_is_bounded(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("Host a\n    ProxyJump b\nHost b\n    ProxyJump a\n")
    with pytest.raises(InputError, match="loop"):
        ssh_target("a", user="u", ssh_config=cfg)


@pytest.mark.parametrize("text, expected", [
    ("host", (None, "host", None)),
    ("u@host", ("u", "host", None)),
    ("u@host:2222", ("u", "host", 2222)),
    ("ssh://u@host:2222/", ("u", "host", 2222)),
    ("[::1]:2200", (None, "::1", 2200)),
    ("u@[fe80::1]", ("u", "fe80::1", None)),
    ("fe80::1", (None, "fe80::1", None)),
    ("first.last@host", ("first.last", "host", None)),
])
def test_parse_destination(text: str, expected: tuple) -> None:
    assert parse_destination(text) == expected


@pytest.mark.parametrize("bad", ["host:port", "host:0", "host:70000", "@host", "u@"])
def test_parse_destination_rejects(bad: str) -> None:
    with pytest.raises(InputError):
        parse_destination(bad)


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    assert fingerprint(BLOB) == PUB_FP
    if shutil.which("ssh-keygen") is None:
        pytest.skip("no ssh-keygen")
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(key)], check=True)
    expected = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], check=True,
                              capture_output=True, text=True).stdout.split()[1]
    blob = base64.b64decode((tmp_path / "k.pub").read_text().split()[1])
    assert fingerprint(blob) == expected


def test_known_hosts_lookup(tmp_path: Path) -> None:
    from paramiko import HostKeys

    other = base64.b64decode(
        "AAAAC3NzaC1lZDI1NTE5AAAAIGq3dOBGmDNOX5lTLxV2sC0lDH6nEYiS8dQ0mpc9Es5k")
    hashed = HostKeys.hash_host("[hashed.example.org]:2222")
    kh = tmp_path / "known_hosts"
    kh.write_text("\n".join([
        "# comment",
        f"[127.0.0.1]:2222 ssh-ed25519 {PUB}",
        f"plain.example.org,10.1.1.1 ssh-ed25519 {PUB}",
        f"{hashed} ssh-ed25519 {PUB}",
        f"*.wild.example.org,!bad.wild.example.org ssh-ed25519 {PUB}",
        f"changed.example.org ssh-ed25519 {base64.b64encode(other).decode()}",
        f"@revoked * ssh-ed25519 {base64.b64encode(other).decode()}",
        "garbage line",
    ]) + "\n")
    entries = read_known_hosts([kh, tmp_path / "missing"])
    kt = "ssh-ed25519"
    assert check_host_key("[127.0.0.1]:2222", kt, BLOB, entries)[0] == "ok"
    assert check_host_key("127.0.0.1", kt, BLOB, entries)[0] == "unknown"  # port 22 differs
    assert check_host_key("10.1.1.1", kt, BLOB, entries)[0] == "ok"
    assert check_host_key("[hashed.example.org]:2222", kt, BLOB, entries)[0] == "ok"
    assert check_host_key("hashed.example.org", kt, BLOB, entries)[0] == "unknown"
    assert check_host_key("a.wild.example.org", kt, BLOB, entries)[0] == "ok"
    assert check_host_key("bad.wild.example.org", kt, BLOB, entries)[0] == "unknown"
    status, entry = check_host_key("changed.example.org", kt, BLOB, entries)
    assert status == "changed" and entry is not None and (entry.path, entry.lineno) == (kh, 6)
    assert check_host_key("any.example.org", kt, other, entries)[0] == "revoked"


def test_append_known_host_creates_private_file(tmp_path: Path) -> None:
    kh = tmp_path / "sub" / "known_hosts"
    append_known_host(kh, "[h]:2222", "ssh-ed25519", BLOB)
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600
    assert stat.S_IMODE(kh.parent.stat().st_mode) == 0o700
    kh.write_text(kh.read_text().rstrip("\n"))  # a file without a final newline
    append_known_host(kh, "other", "ssh-ed25519", BLOB)
    assert kh.read_text().splitlines() == [f"[h]:2222 ssh-ed25519 {PUB}",
                                           f"other ssh-ed25519 {PUB}"]
    assert check_host_key("other", "ssh-ed25519", BLOB, read_known_hosts([kh]))[0] == "ok"


def test_known_key_types_are_preferred() -> None:
    current = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    rsa = KnownHostEntry(Path("k"), 1, ("h",), "ssh-rsa", b"")
    assert preferred_key_types(current, [rsa]) == [
        "rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519", "ecdsa-sha2-nistp256"]
    assert preferred_key_types(current, []) == current


NASTY = ["a b", "it's", 'say "hi"', "$HOME", "`id`", "a;b", "x && y", "|", "*", "~",
         "", "new\nline", "tab\there", "ünï", "--flag=$(rm -rf /)", "\\", "!"]


def _run_line(line: str) -> list[str]:
    proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_remote_command_keeps_argv_intact() -> None:
    prog = "import json, sys; print(json.dumps(sys.argv[1:]))"
    line = remote_command([sys.executable, "-c", prog, *NASTY])
    assert _run_line(line) == NASTY


def test_remote_command_env_and_cwd(tmp_path: Path) -> None:
    work = tmp_path / "dir with 'quote' and $x"
    work.mkdir()
    prog = ("import json, os; print(json.dumps([os.getcwd(), os.environ['A'], "
            "os.environ['B_2']]))")
    line = remote_command([sys.executable, "-c", prog], env={"A": "1 $HOME; `x`",
                                                               "B_2": "it's"}, cwd=str(work))
    assert _run_line(line) == [str(work), "1 $HOME; `x`", "it's"]
    assert remote_command(["pwd"], cwd="~/a b").startswith("cd ~/'a b' && ")
    with pytest.raises(ValueError):
        remote_command(["true"], env={"A;B": "x"})


def test_modules_do_not_import_paramiko() -> None:
    code = ("import sys, hpc_dl4mic.remote.target, hpc_dl4mic.remote.known_hosts, "
            "hpc_dl4mic.remote.auth, hpc_dl4mic.remote.connection, "
            "hpc_dl4mic.remote.tunnel; "
            "print('paramiko' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "False"


def test_local_forward_port_in_use_and_closing() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        with pytest.raises(InputError, match="already in use"):
            LocalForward(object(), "localhost", 80, local_port=busy.getsockname()[1])
    finally:
        busy.close()
    fwd = LocalForward(object(), "localhost", 80)
    with fwd:
        assert fwd.local_port > 0
        assert fwd.url("api") == f"http://127.0.0.1:{fwd.local_port}/api"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", fwd.local_port), timeout=2)


def test_unreadable_key_is_input_error(tmp_path: Path) -> None:
    from hpc_dl4mic.remote.auth import load_key

    with pytest.raises(InputError, match="cannot read SSH key file"):
        load_key(tmp_path, "x", None, [])  # a directory: unreadable even for root
