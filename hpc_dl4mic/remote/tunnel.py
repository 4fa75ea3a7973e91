"""Local port forwards over an SSH connection (``ssh -L`` done with direct-tcpip channels)."""

from __future__ import annotations

import errno
import queue
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import HpcDl4micError, InputError
from .messages import channel_open_error

if TYPE_CHECKING:
    from .connection import SshHost

BUFSIZE = 256 * 1024
IDLE_WORKER_SECONDS = 30.0


class _Workers:
    """Unbounded thread pool that reuses idle threads.

    Starting a thread costs 0.5-1 ms here, as much as the whole SSH round trip of a new
    forwarded connection; each connection holds two threads for its lifetime (websockets
    live long), so the pool must not be bounded.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: queue.SimpleQueue[tuple[Callable[..., None], tuple] | None] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._tasks.put((fn, args))
                return
        threading.Thread(target=self._work, args=((fn, args),), daemon=True,
                         name=self._name).start()

    def stop_idle(self) -> None:
        with self._lock:
            for _ in range(self._idle):
                self._tasks.put(None)
            self._idle = 0

    def _work(self, task: tuple[Callable[..., None], tuple] | None) -> None:
        while task is not None:
            fn, args = task
            try:
                fn(*args)
            except Exception:
                pass  # a pump's failure ends its connection, never the pool
            with self._lock:
                self._idle += 1
            try:
                task = self._tasks.get(timeout=IDLE_WORKER_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody handed us work: retire
                        self._idle -= 1
                        return
                task = self._tasks.get()  # a task was promised to an idle worker


class LocalForward:
    """Listen on ``local_host:local_port`` and forward each connection to
    ``remote_host:remote_port`` as seen from the SSH server.

    Listening starts at construction (a port in use raises InputError at once); use it
    as a context manager, or call :meth:`close`. ``local_port=0`` picks a free port.
    """

    def __init__(self, connection: SshHost | Any, remote_host: str, remote_port: int, *,
                 local_port: int = 0, local_host: str = "127.0.0.1",
                 open_timeout: float = 15.0, bufsize: int = BUFSIZE) -> None:
        self.remote_host = remote_host
        self.remote_port = int(remote_port)
        self.local_host = local_host
        self.open_timeout = open_timeout
        self.bufsize = bufsize
        self.accepted = 0
        self.failed = 0
        self.last_error: str | None = None
        self._transport = getattr(connection, "transport", connection)
        self._lock = threading.Lock()
        self._conns: set[_Pair] = set()
        self._closed = False
        self._listener = _listen(local_host, local_port)
        self.local_port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._workers = _Workers(f"hpc-dl4mic-forward-{self.local_port}-pump")
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name=f"hpc-dl4mic-forward-{self.local_port}")
        self._acceptor.start()

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path`` for this forward."""
        return _url(self.local_host, self.local_port, path)

    @property
    def is_up(self) -> bool:
        """Whether the forward still listens and its SSH connection is alive."""
        return not self._closed and bool(self._transport.is_active())

    @property
    def active_connections(self) -> int:
        """How many forwarded connections are open right now."""
        with self._lock:
            return len(self._conns)

    def __enter__(self) -> LocalForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and close every forwarded connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._acceptor.join(5.0)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        for pair in conns:
            pair.abort()
        for pair in conns:
            pair.join(2.0)
        self._workers.stop_idle()

    # ---- internals

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept_pending()
        finally:
            sel.close()

    def _accept_pending(self) -> None:
        while True:  # drain the backlog: bursts arrive together
            try:
                client, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: back off, not spin
                self.last_error = f"cannot accept a local connection: {exc.strerror or exc}"
                time.sleep(0.1)
                return
            client.setblocking(True)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.accepted += 1
            self._workers.submit(self._serve, client, addr)

    def _serve(self, client: socket.socket, addr: tuple[str, int]) -> None:
        try:
            chan = self._transport.open_channel(
                "direct-tcpip", (self.remote_host, self.remote_port), addr,
                timeout=self.open_timeout)
        except Exception as exc:  # ChannelException, SSHException, EOFError, ...
            with self._lock:
                self.failed += 1
            self.last_error = (f"cannot open {self.remote_host}:{self.remote_port} over SSH: "
                               f"{channel_open_error(exc)}")
            _close(client)
            return
        pair = _Pair(client, chan, self.bufsize, self._workers)
        with self._lock:
            if self._closed:
                pair.abort()
                pair.close()
                return
            self._conns.add(pair)
        try:
            pair.run()
        finally:
            with self._lock:
                self._conns.discard(pair)


class _Pair:
    """One forwarded connection: two pumps, half-close passed on in both directions."""

    def __init__(self, client: socket.socket, chan: Any, bufsize: int,
                 workers: _Workers) -> None:
        self.client, self.chan, self.bufsize = client, chan, bufsize
        self._workers = workers
        self._down_done = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        try:
            self._workers.submit(self._run_down)
        except RuntimeError:  # cannot start a thread: give this connection up
            self._down_done.set()
            self.abort()
        try:
            self._pump_up()
        finally:
            self._down_done.wait()
            self.close()
            self._done.set()

    def _run_down(self) -> None:
        try:
            self._pump_down()
        finally:
            self._down_done.set()

    def _pump(self, recv: Callable[[int], bytes], send: Callable[[bytes], Any],
              finish: Callable[[], Any]) -> bool:
        """Copy until EOF, then half-close the other side; False when it broke instead."""
        n = self.bufsize
        try:
            while data := recv(n):
                send(data)
        except Exception:  # OSError, EOFError, paramiko's SSHException: end this connection
            self.abort()
            return False
        try:
            finish()
        except Exception:
            self.abort()
            return False
        return True

    def _pump_up(self) -> None:
        """Local client → SSH channel."""
        self._pump(self.client.recv, self.chan.sendall, self.chan.shutdown_write)

    def _pump_down(self) -> None:
        """SSH channel → local client."""
        client = self.client
        if self._pump(self.chan.recv, client.sendall, lambda: client.shutdown(socket.SHUT_WR)) \
                and self.chan.closed:
            # The far side is gone entirely: nothing more can be sent, so let the
            # local client see the end instead of waiting on its next request.
            _shutdown(client)

    def abort(self) -> None:
        """Wake both pumps (they then finish and close)."""
        try:
            self.chan.close()
        except Exception:
            pass
        _shutdown(self.client)

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:
            pass
        _close(self.client)

    def join(self, timeout: float) -> None:
        self._done.wait(timeout)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _url(host: str, port: int, path: str) -> str:
    return f"http://{host}:{port}{path if path.startswith('/') else '/' + path}"


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"local port {port} on {host} is already in use: choose another "
                             "with --port, or leave --port out to pick a free one") from exc
        if exc.errno == errno.EACCES:
            raise InputError(f"no permission to listen on {host}:{port}: choose a port "
                             "above 1023 with --port") from exc
        raise HpcDl4micError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


class OpenSshForward:
    """The same forward done by the system's OpenSSH client (``ssh -N -L``): about twice
    paramiko's bulk throughput here. It logs in on its own, non-interactively (keys or an
    agent; BatchMode), with the same host, user, port, identity, jump hosts and known_hosts
    as the paramiko connection, and strict host key checking."""

    def __init__(self, target: Any, remote_host: str, remote_port: int, *, local_port: int = 0,
                 local_host: str = "127.0.0.1", ready_timeout: float = 20.0,
                 ssh: str = "ssh") -> None:
        import shutil
        import subprocess

        exe = shutil.which(ssh)
        if exe is None:
            raise InputError("--tunnel openssh: no `ssh` client on PATH; use --tunnel paramiko")
        self.local_host = local_host
        if not local_port:
            probe = _listen(local_host, 0)
            local_port = probe.getsockname()[1]
            probe.close()
        else:
            _listen(local_host, local_port).close()  # a clear error when it is taken
        self.local_port = int(local_port)
        argv = [exe, "-N", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=30",
                "-L", f"{local_host}:{self.local_port}:{remote_host}:{int(remote_port)}",
                *openssh_target_args(target)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else "").strip()
                raise HpcDl4micError(f"ssh -L to {target.display} failed: "
                                     f"{err.splitlines()[-1] if err else 'exited'}; "
                                     "use --tunnel paramiko")
            try:
                socket.create_connection((local_host, self.local_port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise HpcDl4micError(f"ssh -L to {target.display} did not listen within "
                             f"{ready_timeout:.0f} s; use --tunnel paramiko")

    def url(self, path: str = "/") -> str:
        return _url(self.local_host, self.local_port, path)

    @property
    def is_up(self) -> bool:
        return self._proc.poll() is None

    def __enter__(self) -> OpenSshForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the ssh client. Idempotent."""
        import subprocess

        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()


def openssh_target_args(target: Any) -> list[str]:
    """OpenSSH options that reach ``target`` exactly as the paramiko connection does."""
    args: list[str] = []
    if target.known_hosts:
        args += ["-o", "UserKnownHostsFile=" + " ".join(str(p) for p in target.known_hosts)]
    for identity in target.identity_files:
        args += ["-i", str(identity)]
    if getattr(target, "identities_only", False):
        args += ["-o", "IdentitiesOnly=yes"]
    if getattr(target, "host_key_alias", None):
        args += ["-o", f"HostKeyAlias={target.host_key_alias}"]
    jumps = [j for j in target.proxy_jump]
    if jumps:
        args += ["-J", ",".join(j if isinstance(j, str) else
                                f"{j.user + '@' if j.user else ''}{j.hostname}:{j.port}"
                                for j in jumps)]
    args += ["-p", str(target.port)]
    if target.user:
        args += ["-l", target.user]
    args += ["--", target.hostname]
    return args


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Raise the one-line error ``--port`` deserves when ``host:port`` cannot be listened on
    (checked before a job is submitted; the forward binds it again later)."""
    _listen(host, port).close()
