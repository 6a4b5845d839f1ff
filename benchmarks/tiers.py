"""
Tiers in front of pymta for benchmarks/end_to_end_bench.py (issue 18: the
cost of each hop when mail is built from tiers):

 - L{HAProxyFronted}: Debian's C{haproxy} in TCP mode, C{send-proxy-v2} and
   health checks on every server line, round robin over N C{twistd pymta}
   front-ends, each with its own root and queue, a C{haproxy:} SMTP listener
   and C{control/trustedproxies} naming 127.0.0.1 (C{pymta-haproxy1},
   C{pymta-haproxy2}); the delivered count is the sum over the front-ends'
   Maildirs;
 - L{QMQPHop}: a null client's C{twistd pymta-smtpd} (a root made by
   C{pymta init --null-client}, no queue) that hands each message over QMQP
   to a C{twistd pymta} queue server (C{pymta-qmqp}).

The servers behind them are end_to_end_bench's C{PymtaServer}s; these
classes have its interface (C{name}, C{port}, C{rcpt}, C{start},
C{pids}, C{stop}, C{delivered}).
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Callable, Protocol

from smtpd_bench import free_port, port_open, stop_processes, wait_for

HAPROXY_CONFIG = """\
global
    user nobody
    group nogroup
defaults
    mode tcp
    timeout connect 5s
    timeout client 1200s
    timeout server 1200s
frontend smtp
    bind 127.0.0.1:{port}
    default_backend pymta_smtp
backend pymta_smtp
    balance roundrobin
{servers}
"""


class Backend(Protocol):
    name: str
    port: int
    rcpt: str
    root: str

    def start(self) -> None: ...
    def pids(self) -> list[int]: ...
    def stop(self) -> None: ...
    def delivered(self) -> int: ...


def accepts_connections(port: int) -> bool:
    """A connection to 127.0.0.1:PORT is accepted (a C{haproxy:} listener says nothing before a header)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class HAProxyFronted:
    """HAProxy (send-proxy-v2, check, round robin) in front of C{backends}, each a C{twistd pymta} behind C{haproxy:}."""

    def __init__(self, base: str, haproxy: str, backends: list[Backend]) -> None:
        self.name = f"pymta-haproxy{len(backends)}"
        self.base = base
        self.haproxy = haproxy
        self.backends = backends
        self.port = free_port()
        self.rcpt = backends[0].rcpt
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        for backend in self.backends:
            backend.start()
        servers = "\n".join(f"    server front{i} 127.0.0.1:{b.port} send-proxy-v2 check inter 2s"
                            for i, b in enumerate(self.backends))
        config = os.path.join(self.base, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(HAPROXY_CONFIG.format(port=self.port, servers=servers))
        with open(os.path.join(self.base, "haproxy.log"), "w") as log:
            self.proc = subprocess.Popen([self.haproxy, "-db", "-f", config], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        wait_for(lambda: self.proc is not None and self.proc.poll() is None and port_open(self.port), 60, self.name)

    def pids(self) -> list[int]:
        own = [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []
        return own + [pid for b in self.backends for pid in b.pids()]

    def stop(self) -> None:
        if self.proc is not None:
            stop_processes([self.proc], 30)
        for backend in self.backends:
            backend.stop()

    def delivered(self) -> int:
        return sum(b.delivered() for b in self.backends)


class QMQPHop:
    """
    smtp-source -> a null client's C{twistd pymta-smtpd} -> QMQP -> C{server}
    (a C{twistd pymta} with a C{--qmqp} listener that etc/tcp.qmqp opens to 127.0.0.1).
    """

    def __init__(self, base: str, server: Backend, qmqp_port: int, pymta: list[str], twistd: Callable[..., subprocess.Popen],
                 mail_uid: int, project: str) -> None:
        self.name = "pymta-qmqp"
        self.base = base
        self.server = server
        self.twistd = twistd
        self.port = free_port()
        self.rcpt = server.rcpt
        self.client = os.path.join(base, "app")
        subprocess.run([*pymta, "init", self.client, "--me", "app.bench.example", "--null-client",
                        f"127.0.0.1:{qmqp_port}"], check=True, capture_output=True, cwd=project)
        for name in ("concurrencyincoming", "concurrencyperip"):
            with open(os.path.join(self.client, "control", name), "w") as f:
                f.write("200\n")
        run = os.path.join(self.client, "run")
        os.mkdir(run)
        os.chown(run, mail_uid, mail_uid)  # the account the null client's pymta-smtpd runs as
        os.chmod(self.client, 0o755)
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        self.server.start()
        self.procs.append(self.twistd(["pymta-smtpd", "--root", self.client,
                                       "--listen", f"tcp:{self.port}:interface=127.0.0.1"],
                                      os.path.join(self.base, "nullclient.log")))
        wait_for(lambda: port_open(self.port), 60, self.name)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None] + self.server.pids()

    def stop(self) -> None:
        stop_processes(self.procs, 60)
        self.server.stop()

    def delivered(self) -> int:
        return self.server.delivered()
