"""Throughput and new-connection latency of our LocalForward vs OpenSSH ``ssh -N -L``.

Both forwards go through the local test cluster's sshd (tests/cluster/up.sh) to the same
TCP server on loopback, in the same run. The server and the measuring client run in their
own processes, so only the forward itself shares our interpreter.

    python bench/tunnel.py [--size-mb 200] [--connections 200] [--repeat 3] [--json [PATH]]

--json alone prints JSON instead of the table; --json PATH prints the table and writes JSON.
As root it runs tests/cluster/up.sh first (idempotent); otherwise the cluster must be up.

Targets (issue 5): throughput >= 0.9x OpenSSH, new-connection latency <= 2x OpenSSH.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hpc_dl4mic.remote.connection import SshHost  # noqa: E402
from hpc_dl4mic.remote.target import ssh_target  # noqa: E402
from hpc_dl4mic.remote.tunnel import LocalForward  # noqa: E402

# Server: reads an 8-byte big-endian length, sends that many bytes, closes.
SERVER = r"""
import os, socket, sys, threading
block = memoryview(os.urandom(1 << 20))
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(512)
print(srv.getsockname()[1], flush=True)

def handle(c):
    with c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hdr = b""
        while len(hdr) < 8:
            d = c.recv(8 - len(hdr))
            if not d:
                return
            hdr += d
        left = int.from_bytes(hdr, "big")
        try:
            while left:
                n = c.send(block[:min(left, len(block))])
                left -= n
            c.shutdown(socket.SHUT_WR)
            c.recv(1)
        except OSError:
            pass

while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"""

# Client: "bulk N" reads N bytes once; "latency K" does K sequential connections, each
# sending an 8-byte request and reading a 16-byte answer (timed), then the server's EOF.
CLIENT = r"""
import json, socket, statistics, sys, time
port, mode, arg = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
buf = bytearray(1 << 20)

def connect(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(n.to_bytes(8, "big"))
    return s

def drain(s, want=None):
    got = 0
    while want is None or got < want:
        k = s.recv_into(buf)
        if not k:
            break
        got += k
    return got

if mode == "bulk":
    t0 = time.perf_counter()
    s = connect(arg)
    got = drain(s)
    dt = time.perf_counter() - t0
    s.close()
    print(json.dumps({"bytes": got, "seconds": dt}))
else:
    answer, eof = [], []
    for _ in range(arg):
        t0 = time.perf_counter()
        s = connect(16)
        assert drain(s, 16) == 16
        answer.append((time.perf_counter() - t0) * 1000)
        assert drain(s) == 0
        eof.append((time.perf_counter() - t0) * 1000)
        s.close()
    answer.sort()
    print(json.dumps({"median_ms": statistics.median(answer),
                      "p90_ms": answer[int(len(answer) * 0.9)], "max_ms": answer[-1],
                      "eof_median_ms": statistics.median(eof)}))
"""


def cluster_env() -> dict[str, str]:
    """The local cluster's settings; as root, tests/cluster/up.sh runs first (idempotent)."""
    sys.path.insert(0, str(REPO / "bench"))
    from clusterup import ensure_cluster

    return ensure_cluster()


def client(port: int, mode: str, arg: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CLIENT, str(port), mode, str(arg)],
                         check=True, capture_output=True, text=True, timeout=600).stdout
    return json.loads(out)


def bulk(port: int, size: int) -> float:
    """MB/s of one bulk transfer of ``size`` bytes."""
    r = client(port, "bulk", size)
    if r["bytes"] != size:
        raise SystemExit(f"bulk transfer through port {port} got {r['bytes']} of {size} bytes")
    return size / r["seconds"] / 1e6


def summary(rates: list[float], lats: list[dict]) -> dict:
    return {"mb_s": statistics.median(rates), "mb_s_best": max(rates),
            "mb_s_all": [round(x) for x in rates],
            **{k: statistics.median(d[k] for d in lats) for k in lats[0]}}


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ssh -N -L exited with {proc.returncode}: "
                             f"{proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"ssh -N -L did not listen on {port} within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=200)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="print the results as JSON instead of the table (no PATH), or also "
                         "write them to PATH")
    args = ap.parse_args()
    env = cluster_env()
    size = args.size_mb * 1_000_000
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    results: dict[str, dict] = {}
    ssh = None
    try:
        sport = int(server.stdout.readline())
        results["direct"] = summary([bulk(sport, size)],
                                    [client(sport, "latency", args.connections)])
        empty_cfg = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-tunnel-{os.getpid()}.cfg"
        empty_cfg.write_text("")
        try:
            target = ssh_target(env["SSH_HOST"], user=env["SSH_USER"],
                                port=int(env["SSH_PORT"]), identity=env["SSH_KEY"],
                                ssh_config=empty_cfg)
        finally:
            empty_cfg.unlink()
        lport = free_port()
        ssh = subprocess.Popen(
            ["ssh", "-N", "-L", f"127.0.0.1:{lport}:127.0.0.1:{sport}",
             "-o", "Ciphers=aes128-gcm@openssh.com", "-o", "BatchMode=yes",
             "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={env['KNOWN_HOSTS']}", "-F", "/dev/null",
             "-i", env["SSH_KEY"], "-p", env["SSH_PORT"], f"{env['SSH_USER']}@{env['SSH_HOST']}"],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_port(lport, ssh)
        with SshHost.open(target, known_hosts=Path(env["KNOWN_HOSTS"])) as conn, \
                LocalForward(conn, "127.0.0.1", sport) as fwd:
            cipher = conn.transport.remote_cipher
            ports = {"ours": fwd.local_port, "openssh": lport}
            rates: dict[str, list[float]] = {k: [] for k in ports}
            lats: dict[str, list[dict]] = {k: [] for k in ports}
            # Interleaved rounds, so that load from elsewhere hits both alike; latency
            # is measured right after bulk traffic, on purpose.
            for _ in range(args.repeat):
                for name, port in ports.items():
                    rates[name].append(bulk(port, size))
                for name, port in ports.items():
                    lats[name].append(client(port, "latency", args.connections))
            if fwd.failed:
                raise SystemExit(f"our forward failed {fwd.failed} times: {fwd.last_error}")
        for name in ports:
            results[name] = summary(rates[name], lats[name])
        results["ours"]["cipher"] = cipher
        results["openssh"]["cipher"] = "aes128-gcm@openssh.com"
    finally:
        if ssh is not None:
            ssh.terminate()
            ssh.wait(10)
        server.kill()
        server.wait()

    ours, ssh_ = results["ours"], results["openssh"]
    ratios = {"throughput_ours_over_openssh": ours["mb_s"] / ssh_["mb_s"],
              "latency_ours_over_openssh": ours["median_ms"] / ssh_["median_ms"]}
    data = {"size_mb": args.size_mb, "connections": args.connections, "results": results,
            "ratios": ratios}
    if args.json == "-":
        print(json.dumps(data, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    print(f"tunnel bench: {args.size_mb} MB bulk (median of {args.repeat} interleaved rounds), "
          f"{args.connections} sequential new connections after bulk traffic "
          "(ms: connect + 8-byte request + 16-byte answer; 'to EOF' also waits for the close)")
    print(f"{'path':<9} {'MB/s':>8} {'runs':<20} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} "
          f"{'to EOF ms':>10}")
    for name, r in results.items():
        print(f"{name:<9} {r['mb_s']:8.1f} {str(r['mb_s_all']):<20} {r['median_ms']:10.2f} "
              f"{r['p90_ms']:8.2f} {r['max_ms']:8.2f} {r['eof_median_ms']:10.2f}")
    print(f"our cipher: {ours['cipher']}; OpenSSH: -o Ciphers=aes128-gcm@openssh.com")
    tput, lat = ratios["throughput_ours_over_openssh"], ratios["latency_ours_over_openssh"]
    print(f"throughput ours/openssh = {tput:.2f}x (target >= 0.90x: "
          f"{'met' if tput >= 0.9 else 'NOT met'})")
    print(f"latency    ours/openssh = {lat:.2f}x (target <= 2.00x: "
          f"{'met' if lat <= 2.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
