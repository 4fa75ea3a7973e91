"""`--tunnel openssh`: the system's ssh -L with the connection's target and known_hosts."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from dataclasses import replace

import pytest

from hpc_dl4mic.errors import HpcDl4micError
from hpc_dl4mic.remote.connection import SshHost
from hpc_dl4mic.remote.target import ssh_target

pytestmark = pytest.mark.e2e


@pytest.fixture
def web_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"hello through ssh -L"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def target(cluster, known_hosts=None):
    base = ssh_target(cluster.host, user=cluster.user, port=cluster.port,
                      identity=cluster.key)
    return replace(base, known_hosts=(known_hosts or cluster.known_hosts,))


def closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def test_openssh_forward_reaches_the_server_and_closes(cluster, web_server):
    with SshHost.open(target(cluster)) as conn:
        with conn.forward("127.0.0.1", web_server, via="openssh") as forward:
            with urllib.request.urlopen(forward.url("/"), timeout=10) as response:
                assert response.read() == b"hello through ssh -L"
            port = forward.local_port
        assert closed(port)


def test_openssh_forward_refuses_an_unknown_host_key(cluster, web_server, tmp_path):
    from hpc_dl4mic.remote.tunnel import OpenSshForward

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HpcDl4micError, match="Host key verification failed"):
        OpenSshForward(target(cluster, empty), "127.0.0.1", web_server)
