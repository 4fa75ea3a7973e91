"""The SSH layer against the real sshd of the local test cluster, as the unprivileged user."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hpc_dl4mic.errors import CommandError, InputError, RemoteError
from hpc_dl4mic.remote.connection import SshHost
from hpc_dl4mic.remote.known_hosts import fingerprint
from hpc_dl4mic.remote.target import SshTarget, ssh_target
from hpc_dl4mic.remote.tunnel import LocalForward

pytestmark = pytest.mark.e2e

NASTY = ["a b", "it's", 'say "hi"', "$HOME", "`id`", "a;b", "x && y", "|", "*", "~",
         "", "new\nline", "ünï", "--flag=$(touch /tmp/pwned)", "\\", "!", "%s"]


@pytest.fixture(autouse=True)
def no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their keys; an ssh-agent of whoever runs them must not interfere."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture(scope="module")
def empty_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty ssh config, so that root's ~/.ssh/config cannot change what is tested."""
    path = tmp_path_factory.mktemp("sshcfg") / "config"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def target(cluster, empty_config: Path) -> SshTarget:
    return ssh_target(cluster.host, user=cluster.user, port=cluster.port,
                      identity=cluster.key, ssh_config=empty_config)


@pytest.fixture(scope="module")
def conn(cluster, target: SshTarget):
    with SshHost.open(target, known_hosts=cluster.known_hosts) as c:
        yield c


@pytest.fixture
def remote_dir(conn: SshHost):
    path = f"{conn.home()}/ssh-test-{secrets.token_hex(4)}"
    yield path
    conn.run(["rm", "-rf", path])


def server_blob(cluster) -> bytes:
    return base64.b64decode(cluster.known_hosts.read_text().split()[2])


# ----------------------------------------------------------------------------- commands


def test_run_exit_code_stdout_stderr(conn: SshHost, cluster) -> None:
    r = conn.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert conn.run(["id", "-un"]).stdout == f"{cluster.user}\n"
    with pytest.raises(CommandError, match="sh exited with status 4:\ngone wrong") as info:
        conn.run(["sh", "-c", "echo gone wrong >&2; exit 4"])
    assert info.value.returncode == 4


def test_argv_arrives_literally(conn: SshHost) -> None:
    r = conn.run(["printf", "%s\\0", *NASTY])
    assert r.stdout.split("\0")[:-1] == NASTY
    assert conn.stat("/tmp/pwned") is None


def test_env_cwd_and_input(conn: SshHost, cluster) -> None:
    r = conn.run(["sh", "-c", 'printf "%s|%s|%s" "$PWD" "$A" "$B"'],
                 env={"A": "x y $z `q`", "B": "it's"}, cwd="/tmp")
    assert r.stdout == "/tmp|x y $z `q`|it's"
    assert conn.run(["pwd"], cwd="~").stdout.strip() == str(cluster.user_home)
    assert conn.run(["cat"], input="hello\nworld\n").stdout == "hello\nworld\n"
    assert conn.run(["cat"]).stdout == ""  # stdin is closed when no input is given


def test_big_input_and_output_do_not_deadlock(conn: SshHost) -> None:
    data = (secrets.token_hex(16) + "\n") * 200_000  # 6.6 MB
    script = "tee /dev/stderr | sha256sum"
    r = conn.run(["sh", "-c", script], input=data, timeout=60)
    assert r.stdout.split()[0] == hashlib.sha256(data.encode()).hexdigest()
    assert r.stderr == data


def test_timeout(conn: SshHost) -> None:
    t0 = time.monotonic()
    with pytest.raises(CommandError, match="timed out after 1 s"):
        conn.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - t0 < 5
    assert conn.run(["true"]).returncode == 0  # the connection is still usable


def test_many_commands_reuse_one_transport(conn: SshHost) -> None:
    transport = conn.transport
    t0 = time.monotonic()
    for i in range(20):
        assert conn.run(["echo", str(i)]).stdout == f"{i}\n"
    assert conn.transport is transport
    assert time.monotonic() - t0 < 10


# ----------------------------------------------------------------------------- SFTP


def test_sftp_modes_and_atomic_write(conn: SshHost, remote_dir: str) -> None:
    conn.makedirs(f"{remote_dir}/session/one")
    path = f"{remote_dir}/session/one/connection.json"
    conn.write_file(path, '{"token": "secret"}')
    modes = conn.run(["stat", "-c", "%a", remote_dir, f"{remote_dir}/session/one", path])
    assert modes.stdout.split() == ["700", "700", "600"]
    assert conn.read_file(path) == b'{"token": "secret"}'
    conn.write_file(path, b"second", mode=0o640)
    assert conn.read_file(path) == b"second"
    assert conn.run(["stat", "-c", "%a", path]).stdout.strip() == "640"
    # no temp files are left behind
    assert conn.run(["ls", "-A", f"{remote_dir}/session/one"]).stdout.split() == [
        "connection.json"]
    conn.makedirs(f"{remote_dir}/session/one")  # exists: fine
    assert conn.stat(path) is not None and conn.stat(f"{remote_dir}/nope") is None
    with pytest.raises(RemoteError, match="not a directory"):
        conn.makedirs(path)


def test_sftp_tilde_put_get(conn: SshHost, remote_dir: str, tmp_path: Path) -> None:
    name = remote_dir.rsplit("/", 1)[1]
    conn.makedirs(f"~/{name}", mode=0o750)
    assert conn.run(["stat", "-c", "%a", remote_dir]).stdout.strip() == "750"
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(3_000_000))
    os.utime(local, (1_600_000_000, 1_600_000_000))
    conn.put(local, f"~/{name}/data.bin", mode=0o600)
    out = conn.run(["stat", "-c", "%a %Y %s", f"{remote_dir}/data.bin"]).stdout.split()
    assert out == ["600", "1600000000", "3000000"]
    back = tmp_path / "sub" / "back.bin"
    conn.get(f"{remote_dir}/data.bin", back)
    assert back.read_bytes() == local.read_bytes()
    assert int(back.stat().st_mtime) == 1_600_000_000
    assert [p.name for p in back.parent.iterdir()] == ["back.bin"]


def test_sftp_errors_are_remote_errors(conn: SshHost) -> None:
    with pytest.raises(RemoteError, match="cannot write /root/x: Permission denied"):
        conn.write_file("/root/x", "x")
    with pytest.raises(RemoteError, match="cannot read /nonexistent/file"):
        conn.read_file("/nonexistent/file")


# ----------------------------------------------------------------------------- host keys


def test_unknown_host_key_refused_with_fingerprint(target: SshTarget, cluster,
                                                   tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with pytest.raises(RemoteError) as info:
        SshHost.open(target, known_hosts=kh)
    msg = str(info.value)
    assert "unknown host key for [127.0.0.1]:2222" in msg
    assert f"ssh-ed25519 {fingerprint(server_blob(cluster))}" in msg
    assert "--accept-new-host-key" in msg and "\n" not in msg
    assert kh.read_text() == ""


def test_accept_new_host_key_writes_it(target: SshTarget, cluster, tmp_path: Path) -> None:
    kh = tmp_path / "new" / "known_hosts"
    with SshHost.open(target, known_hosts=kh, accept_new_host_key=True) as c:
        assert c.run(["true"]).returncode == 0
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    line = kh.read_text().split()
    assert line[:2] == [f"[{cluster.host}]:{cluster.port}", "ssh-ed25519"]
    assert base64.b64decode(line[2]) == server_blob(cluster)
    with SshHost.open(target, known_hosts=kh) as c:  # now known: no flag needed
        assert c.run(["true"]).returncode == 0
    assert len(kh.read_text().splitlines()) == 1


def test_changed_host_key_always_refused(target: SshTarget, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kh = tmp_path / "known_hosts"
    kh.write_text("# an old key\n[127.0.0.1]:2222 " + " ".join(
        (tmp_path / "other.pub").read_text().split()[:2]) + "\n")
    before = kh.read_text()
    for accept in (False, True):
        with pytest.raises(RemoteError) as info:
            SshHost.open(target, known_hosts=kh, accept_new_host_key=accept)
        msg = str(info.value)
        assert "HOST KEY CHANGED" in msg and f"{kh} line 2" in msg and "\n" not in msg
    assert kh.read_text() == before


def test_known_hosts_from_ssh_config(cluster, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit file: UserKnownHostsFile from ~/.ssh/config, then ~/.ssh/known_hosts."""
    monkeypatch.setenv("HOME", str(tmp_path))
    kh = tmp_path / "site_known_hosts"
    cfg = tmp_path / "config"
    cfg.write_text(f"Host c\n    HostName {cluster.host}\n    Port {cluster.port}\n"
                   f"    User {cluster.user}\n    IdentityFile {cluster.key}\n"
                   f"    UserKnownHostsFile {kh}\n")
    t = ssh_target("c", ssh_config=cfg)
    with pytest.raises(RemoteError, match=f"saved in {kh}"):
        SshHost.open(t)
    with SshHost.open(t, accept_new_host_key=True) as c:
        assert c.run(["true"]).returncode == 0
    assert kh.read_text().startswith("[127.0.0.1]:2222 ssh-ed25519 ")
    assert not (tmp_path / ".ssh" / "known_hosts").exists()
    # ~/.ssh/known_hosts is read too: a stale key there (and no good one anywhere) is a
    # changed key
    kh.write_text("")
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(
        "[127.0.0.1]:2222 ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIIo3o/ovz97VR2RXdSQaHr0KL6tyq5R8htY42+QEYBfb\n")
    with pytest.raises(RemoteError, match="HOST KEY CHANGED"):
        SshHost.open(t, accept_new_host_key=True)
    assert kh.read_text() == ""


# ----------------------------------------------------------------------------- auth errors


def test_wrong_user(cluster, empty_config: Path) -> None:
    t = ssh_target(cluster.host, user="nosuchuser", port=cluster.port, identity=cluster.key,
                   ssh_config=empty_config)
    with pytest.raises(RemoteError) as info:
        SshHost.open(t, known_hosts=cluster.known_hosts)
    msg = str(info.value)
    assert msg.startswith("ssh nosuchuser@127.0.0.1:2222: authentication failed (tried: "
                          f"publickey {cluster.key}")
    assert "\n" not in msg


def test_wrong_key(cluster, empty_config: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    t = ssh_target(cluster.host, user=cluster.user, port=cluster.port, identity=key,
                   ssh_config=empty_config)
    with pytest.raises(RemoteError, match=rf"authentication failed \(tried: publickey {key}"):
        SshHost.open(t, known_hosts=cluster.known_hosts)


def test_encrypted_key_without_terminal(cluster, empty_config: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(key)],
                   check=True)
    t = ssh_target(cluster.host, user=cluster.user, port=cluster.port, identity=key,
                   ssh_config=empty_config)
    with pytest.raises(RemoteError, match="passphrase-protected and there is no terminal"):
        SshHost.open(t, known_hosts=cluster.known_hosts)


def test_connection_refused_and_missing_key(cluster, empty_config: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    t = ssh_target("127.0.0.1", user=cluster.user, port=free, ssh_config=empty_config)
    with pytest.raises(RemoteError, match=f"127.0.0.1:{free}: connection refused"):
        SshHost.open(t, known_hosts=cluster.known_hosts, connect_timeout=5)
    with pytest.raises(InputError, match="not found"):
        ssh_target(cluster.host, identity="/nonexistent/key", ssh_config=empty_config)


# ----------------------------------------------------------------------------- ProxyJump


def test_proxy_jump_through_the_same_sshd(cluster, tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(f"""
Host jump
    HostName {cluster.host}
    Port {cluster.port}
    User {cluster.user}
    IdentityFile {cluster.key}
Host behind
    HostName {cluster.host}
    Port {cluster.port}
    User {cluster.user}
    IdentityFile {cluster.key}
    ProxyJump jump,jump
""")
    t = ssh_target("behind", ssh_config=cfg)
    assert [h.alias for h in t.proxy_jump] == ["jump", "jump"]
    with SshHost.open(t, known_hosts=cluster.known_hosts) as c:
        assert len(c._transports) == 3
        # every hop after the first runs over a direct-tcpip channel of the previous one
        import paramiko

        assert isinstance(c._transports[0].sock, socket.socket)
        assert all(isinstance(x.sock, paramiko.Channel) for x in c._transports[1:])
        assert c.run(["id", "-un"]).stdout.strip() == cluster.user
        c.write_file("~/.jump-test", "via jump")
        assert c.read_file("~/.jump-test") == b"via jump"
        c.run(["rm", "-f", ".jump-test"])
    assert not any(x.is_active() for x in c._transports)


def test_proxy_jump_host_key_checked_for_every_hop(target: SshTarget, cluster,
                                                   empty_config: Path, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    jumping = ssh_target(cluster.host, user=cluster.user, port=cluster.port,
                         identity=cluster.key, proxy_jump=[target],
                         ssh_config=empty_config)
    with pytest.raises(RemoteError, match=r"ssh jump host .*unknown host key"):
        SshHost.open(jumping, known_hosts=kh)


def test_proxy_command(cluster, tmp_path: Path) -> None:
    proxy = (f"ssh -F /dev/null -o BatchMode=yes -o UserKnownHostsFile={cluster.known_hosts} "
             f"-i {cluster.key} -p {cluster.port} -W %h:%p {cluster.user}@{cluster.host}")
    cfg = tmp_path / "config"
    cfg.write_text(f"""
Host viacmd
    HostName {cluster.host}
    Port {cluster.port}
    User {cluster.user}
    IdentityFile {cluster.key}
    ProxyCommand {proxy}
""")
    t = ssh_target("viacmd", ssh_config=cfg)
    assert t.proxy_command and "-W 127.0.0.1:2222" in t.proxy_command
    with SshHost.open(t, known_hosts=cluster.known_hosts) as c:
        assert c.run(["echo", "ok"]).stdout == "ok\n"


def test_agent_keys(cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(cluster.key)], env=env, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh/id_* keys
        t = SshTarget(alias="a", hostname=cluster.host, port=cluster.port, user=cluster.user)
        with SshHost.open(t, known_hosts=cluster.known_hosts) as c:
            assert c.run(["id", "-un"]).stdout.strip() == cluster.user
    finally:
        agent.terminate()
        agent.wait(10)


# ----------------------------------------------------------------------------- LocalForward


class _Quiet(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(tmp_path: Path):
    (tmp_path / "hello.txt").write_text("hello through the tunnel\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(20_000_000))

    def handler(*args, **kwargs):
        return _Quiet(*args, directory=str(tmp_path), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], tmp_path
    server.shutdown()
    server.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def test_local_forward_http(conn: SshHost, http_server) -> None:
    port, root = http_server
    with conn.forward("127.0.0.1", port) as fwd:
        url = fwd.url("/hello.txt")
        for _ in range(100):
            assert _get(url) == b"hello through the tunnel\n"
        with ThreadPoolExecutor(64) as pool:
            bodies = list(pool.map(_get, [url] * 300))
        assert bodies == [b"hello through the tunnel\n"] * 300
        big = _get(fwd.url("big.bin"))
        assert hashlib.sha256(big).digest() == hashlib.sha256(
            (root / "big.bin").read_bytes()).digest()
        assert fwd.accepted >= 401 and fwd.failed == 0 and fwd.is_up
        local_port = fwd.local_port
    assert fwd.active_connections == 0 and not fwd.is_up
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", local_port), timeout=2)
    assert conn.run(["true"]).returncode == 0


def test_local_forward_half_close(conn: SshHost) -> None:
    """The client half-closes; the server answers after EOF (like `nc -q`)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve() -> None:
        c, _ = srv.accept()
        with c:
            got = b""
            while chunk := c.recv(65536):
                got += chunk
            c.sendall(hashlib.sha256(got).hexdigest().encode())

    threading.Thread(target=serve, daemon=True).start()
    payload = os.urandom(5_000_000)
    with LocalForward(conn, "127.0.0.1", srv.getsockname()[1]) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=30) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(1024):
                answer += chunk
    srv.close()
    assert answer.decode() == hashlib.sha256(payload).hexdigest()


def test_local_forward_to_closed_port_and_given_port(conn: SshHost) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with LocalForward(conn, "127.0.0.1", dead) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=10) as c:
            c.settimeout(10)
            assert c.recv(10) == b""  # closed at once, not hanging
        deadline = time.monotonic() + 5
        while fwd.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fwd.failed == 1 and "connect failed" in (fwd.last_error or "")
        with pytest.raises(InputError, match="already in use"):
            LocalForward(conn, "127.0.0.1", dead, local_port=fwd.local_port)
        # a chosen free port works
    with LocalForward(conn, "127.0.0.1", dead, local_port=fwd.local_port) as again:
        assert again.local_port == fwd.local_port


# ----------------------------------------------------------------------------- 2FA
# The test sshd has no keyboard-interactive (no PAM); a paramiko server in this process
# plays a site that wants a key AND a one-time code, over a real TCP connection.


class _TwoFactorServer:
    def __init__(self, user_key) -> None:
        import paramiko

        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(user_key))
        self.user_blob = self.host_key.asbytes()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.transports: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import paramiko

        outer = self

        class Iface(paramiko.ServerInterface):
            key_ok = False

            def get_allowed_auths(self, username):
                return "keyboard-interactive" if self.key_ok else "publickey"

            def check_auth_publickey(self, username, key):
                if key.asbytes() == outer.user_blob:
                    self.key_ok = True
                    return paramiko.AUTH_PARTIALLY_SUCCESSFUL
                return paramiko.AUTH_FAILED

            def check_auth_interactive(self, username, submethods):
                if not self.key_ok:
                    return paramiko.AUTH_FAILED
                return paramiko.server.InteractiveQuery("", "", ("Verification code: ", False))

            def check_auth_interactive_response(self, responses):
                ok = list(responses) == ["123456"]
                return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(sock)
            t.add_server_key(self.host_key)
            t.start_server(server=Iface())
            self.transports.append(t)

    def close(self) -> None:
        self.listener.close()
        for t in self.transports:
            t.close()


def test_two_factor_asks_once_and_refuses_without_terminal(cluster, tmp_path: Path) -> None:
    server = _TwoFactorServer(cluster.key)
    try:
        kh = tmp_path / "known_hosts"
        kh.write_text(f"[127.0.0.1]:{server.port} ssh-ed25519 "
                      f"{base64.b64encode(server.host_key.asbytes()).decode()}\n")
        t = SshTarget(alias="mfa", hostname="127.0.0.1", port=server.port, user="u",
                      identity_files=(cluster.key,))
        asked: list = []

        def handler(title, instructions, prompts):
            asked.append(list(prompts))
            return ["123456"]

        with SshHost.open(t, known_hosts=kh, kbd_handler=handler) as c:
            assert c.transport.is_authenticated()
        assert asked == [[("Verification code: ", False)]]
        # pytest's stdin is not a terminal: no prompt, a clear error instead
        with pytest.raises(RemoteError, match="second factor .* stdin is not a terminal"):
            SshHost.open(t, known_hosts=kh)
        with pytest.raises(RemoteError, match="authentication failed"):
            SshHost.open(t, known_hosts=kh, kbd_handler=lambda *a: ["000000"])
    finally:
        server.close()


# ----------------------------------------------------------------------------- Host interface


def test_stat_listdir_kinds(conn: SshHost, remote_dir: str) -> None:
    conn.makedirs(f"{remote_dir}/d")
    conn.write_file(f"{remote_dir}/f", b"12345", mode=0o640)
    conn.run(["ln", "-s", "f", f"{remote_dir}/l"])
    conn.run(["touch", "-d", "@1600000000", f"{remote_dir}/f"])
    f = conn.stat(f"{remote_dir}/f")
    assert f is not None and (f.kind, f.size, int(f.mtime), f.mode) == (
        "file", 5, 1_600_000_000, 0o640)
    assert conn.stat(f"{remote_dir}/d").kind == "dir"
    assert conn.stat(f"{remote_dir}/l").kind == "link"  # lstat: not followed
    assert conn.stat(f"{remote_dir}/nope") is None
    name = remote_dir.rsplit("/", 1)[1]
    assert conn.stat(name).path == remote_dir == conn.stat(f"~/{name}").path  # relative: home
    assert [(e.name, e.kind) for e in conn.listdir(remote_dir)] == [
        ("d", "dir"), ("f", "file"), ("l", "link")]
    with pytest.raises(RemoteError, match=f"cannot list {remote_dir}/nope"):
        conn.listdir(f"{remote_dir}/nope")


def test_chmod_and_remove(conn: SshHost, remote_dir: str) -> None:
    conn.makedirs(remote_dir)
    path = f"{remote_dir}/f"
    conn.write_file(path, "x")
    conn.chmod(path, 0o604)
    assert conn.run(["stat", "-c", "%a", path]).stdout.strip() == "604"
    with pytest.raises(RemoteError, match=f"cannot chmod {remote_dir}/nope"):
        conn.chmod(f"{remote_dir}/nope", 0o600)
    conn.remove(path)
    assert conn.stat(path) is None
    conn.remove(path)  # missing: fine


def test_get_resumes_a_partial_download(conn: SshHost, remote_dir: str,
                                        tmp_path: Path) -> None:
    conn.makedirs(remote_dir)
    data = os.urandom(5_000_003)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    conn.put(src, f"{remote_dir}/big.bin")
    local = tmp_path / "got" / "big.bin"
    local.parent.mkdir()
    part = local.parent / ".big.bin.part"
    part.write_bytes(data[:2_000_000])
    conn.get(f"{remote_dir}/big.bin", local, resume=True)
    assert local.read_bytes() == data and not part.exists()
    assert int(local.stat().st_mtime) == int(src.stat().st_mtime)
    part.write_bytes(b"stale, not a prefix")  # without resume: started again
    conn.get(f"{remote_dir}/big.bin", local)
    assert local.read_bytes() == data and not part.exists()


def test_checksums(conn: SshHost, remote_dir: str) -> None:
    conn.makedirs(remote_dir)
    names = ["plain", "with space", "back\\slash", "new\nline", "-dash", "ünï"]
    for i, name in enumerate(names):
        conn.write_file(f"{remote_dir}/{name}", f"data {i}")
    paths = [f"{remote_dir}/{n}" for n in names]
    assert conn.checksums(paths) == {
        p: hashlib.sha256(f"data {i}".encode()).hexdigest() for i, p in enumerate(paths)}
    with pytest.raises(RemoteError, match=f"cannot checksum {remote_dir}/gone"):
        conn.checksums([paths[0], f"{remote_dir}/gone"])


def test_put_tree_get_tree_round_trip(conn: SshHost, remote_dir: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.bin").write_bytes(os.urandom(1_000_000))
    (src / "sub" / "deeper" / "c").write_text("c")
    (src / "link").symlink_to("/etc")
    os.utime(src / "a.txt", (1_600_000_000, 1_600_000_000))
    report = conn.put_tree(src, remote_dir)
    assert sorted(report.copied) == ["a.txt", "sub/b.bin", "sub/deeper/c"]
    assert report.links == 1 and conn.stat(f"{remote_dir}/link") is None
    assert int(conn.stat(f"{remote_dir}/a.txt").mtime) == 1_600_000_000
    again = conn.put_tree(src, remote_dir)
    assert (again.copied, again.skipped) == ((), 3)
    conn.run(["ln", "-s", "/etc", f"{remote_dir}/sub/remote-link"])
    dest = tmp_path / "dest"
    back = conn.get_tree(remote_dir, dest)
    assert sorted(back.copied) == ["a.txt", "sub/b.bin", "sub/deeper/c"] and back.links == 1
    for rel in back.copied:
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert int((dest / "a.txt").stat().st_mtime) == 1_600_000_000
    assert not (dest / "sub" / "remote-link").exists()
    twice = conn.get_tree(remote_dir, dest)
    assert (twice.copied, twice.skipped) == ((), 3)


def test_scheduler_is_slurm_over_this_connection(conn: SshHost) -> None:
    from hpc_dl4mic.jobs.slurm import SlurmScheduler

    sched = conn.scheduler()
    assert isinstance(sched, SlurmScheduler) and sched.runner is conn
