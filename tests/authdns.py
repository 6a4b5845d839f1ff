"""
A real authoritative DNS server for tests: NSD (Debian's C{nsd}) on
127.0.0.1 and a free port, serving zone files the test writes.

L{start_nsd} installs the package when it is missing (L{tests.packages});
it returns None when NSD cannot be had, so the test can skip.  The server
is stopped by the test's cleanup.  As root NSD drops to C{nobody}.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping

import dns.exception
import dns.message
import dns.query
from twisted.trial.unittest import SynchronousTestCase

from tests.packages import ensure_program

__all__ = ["start_nsd", "NSD_START_TIMEOUT"]

NSD_START_TIMEOUT = 15.0
_ATTEMPTS = 3


def _free_udp_port() -> int:
    """A port free for UDP (and, checked, for TCP) on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def _config(directory: str, port: int, zones: Mapping[str, str], address: str = "127.0.0.1") -> str:
    lines = [
        "server:",
        f"  ip-address: {address}@{port}",
        f"  port: {port}",
        f"  username: {'nobody' if os.getuid() == 0 else chr(34) * 2}",
        f'  zonesdir: "{directory}"',
        '  database: ""',
        f'  pidfile: "{directory}/nsd.pid"',
        f'  xfrdfile: "{directory}/xfrd.state"',
        f'  zonelistfile: "{directory}/zone.list"',
        "  server-count: 1",
        "remote-control:",
        "  control-enable: no",
    ]
    for origin in zones:
        lines += ["zone:", f"  name: {origin}", f"  zonefile: {origin}.zone"]
    return "\n".join(lines) + "\n"


def _answers(port: int, origin: str, address: str = "127.0.0.1") -> bool:
    query = dns.message.make_query(origin, "SOA")
    try:
        reply = dns.query.udp(query, address, port=port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return bool(reply.answer)


def start_nsd(test: SynchronousTestCase, zones: Mapping[str, str], address: str = "127.0.0.1",
              port: int | None = None) -> int | None:
    """
    Serve C{zones} (origin -> zone-file text, each with its SOA and NS)
    and return the port, or None when NSD is not available.  Fails the
    test when NSD is installed but does not answer in time.  C{address}
    and C{port} (default: a free one) are where it listens (port 53 on
    an address of 127/8 for a client that reads /etc/resolv.conf).
    """
    fixed = port
    nsd = ensure_program("nsd", "nsd") or ensure_program("/usr/sbin/nsd", "nsd")
    if nsd is None:
        return None
    directory = tempfile.mkdtemp(prefix="pymta-nsd-")
    test.addCleanup(shutil.rmtree, directory, True)
    os.chmod(directory, 0o755)
    for origin, text in zones.items():
        with open(os.path.join(directory, f"{origin}.zone"), "w", encoding="ascii") as f:
            f.write(text)
        os.chmod(os.path.join(directory, f"{origin}.zone"), 0o644)
    log = ""
    for _ in range(_ATTEMPTS):
        port = fixed if fixed is not None else _free_udp_port()
        config = os.path.join(directory, "nsd.conf")
        with open(config, "w", encoding="ascii") as f:
            f.write(_config(directory, port, zones, address))
        child = subprocess.Popen([nsd, "-d", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        test.addCleanup(_stop, child)
        deadline = time.monotonic() + NSD_START_TIMEOUT
        while time.monotonic() < deadline and child.poll() is None:
            if all(_answers(port, origin, address) for origin in zones):
                return port
            time.sleep(0.1)
        log = _stop(child)
    test.fail(f"nsd did not serve the test zones on {address}: {log}")
    return None


def _stop(child: subprocess.Popen[bytes]) -> str:
    """Stop NSD (once: a second call finds it stopped) and return what it printed."""
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    output = ""
    if child.stdout and not child.stdout.closed:
        output = child.stdout.read().decode(errors="replace")
        child.stdout.close()
    return output
