"""
Issue 18's deployment on loopback, for tests/test_scaling_end_to_end.py
(and for a benchmark that wants the same set-up).

  - L{FrontEnd}: one C{twistd pymta} with its own root and queue, an SMTP
    listener behind the proxy (C{haproxy:tcp:PORT}, control/trustedproxies
    naming 127.0.0.1), a C{--qmqp} listener for null clients, and
    control/lmtproutes sending C{mail.test} to one Dovecot over LMTP;
    L{FrontEnd.kill} SIGKILLs it, L{FrontEnd.start} (again) restarts it on
    the same root and ports.
  - L{HAProxy}: Debian's haproxy in front of the front-ends (round robin,
    send-proxy-v2, health checks every L{CHECK_MS} ms), with an admin socket
    that L{HAProxy.status} reads (C{UP}, C{DOWN}, ...).
  - L{null_client}: a root with only control/me and control/qmqpservers;
    L{inject} runs C{pymta inject} there.
  - L{SMTPLoad}: parallel smtplib sessions, one message each, bounded in
    count and time, from a chosen loopback address; every message carries
    a unique L{TAG_HEADER}, and what each session was told is recorded.
  - L{delivered_tags}: the tags doveadm finds in a Dovecot mailbox.

Processes are stopped when the test case ends (L{start_listening}).
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from twisted.trial import unittest

from tests.dovecot import DovecotLMTP
from tests.test_end_to_end import SRC, free_port, start_listening, start_twistd

__all__ = ["FrontEnd", "HAProxy", "SMTPLoad", "Session", "null_client", "inject", "delivered_tags",
           "committed_pending", "TAG_HEADER", "MAILBOX_DOMAIN", "CHECK_MS"]

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
#: the domain Dovecot holds the mailboxes of (control/lmtproutes on every front-end)
MAILBOX_DOMAIN = "mail.test"
#: the header that makes each message of L{SMTPLoad} traceable
TAG_HEADER = "X-Scale-Tag"
TAG_RE = re.compile(rf"^{TAG_HEADER}: (\S+)$", re.MULTILINE)
#: HAProxy's health check interval (ms): two failed checks mark a front-end down
CHECK_MS = 300

HAPROXY_CONFIG = """\
global
{user}
    stats socket {socket} mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend smtp
    bind 127.0.0.1:{front}
    default_backend pymta
backend pymta
    balance roundrobin
    default-server send-proxy-v2 check inter {check_ms}ms fall 2 rise 1
{servers}
"""


def pymta(*args: str, **run: object) -> subprocess.CompletedProcess:
    """Run C{pymta ARGS} from the source tree."""
    return subprocess.run([sys.executable, "-m", "pymta.cli.main", *args], cwd=SRC, **run)  # type: ignore[call-overload]


class FrontEnd:
    """One front-end: a pymta root under C{base}/C{name} and its C{twistd pymta}."""

    def __init__(self, base: str, name: str, dovecot: DovecotLMTP, tcp_smtp: str) -> None:
        self.name = name
        self.me = f"{name}.example"
        self.root = os.path.join(base, name)
        self.log = os.path.join(self.root, "twistd.log")
        self.smtp, self.qmqp = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        init = [self.root, "--me", self.me]
        if os.getuid() == 0:
            init += ["--mail-uid", "4242:4242"]
        pymta("init", *init, check=True, stdout=subprocess.DEVNULL)
        files = {
            "control/trustedproxies": "# haproxy on this host\n127.0.0.1\n",
            "control/lmtproutes": f"{MAILBOX_DOMAIN}:127.0.0.1:{dovecot.port}\n",
            "etc/tcp.smtp": tcp_smtp,
            "etc/tcp.qmqp": "127.0.0.1:allow\n",
        }
        for path, text in files.items():
            with open(os.path.join(self.root, path), "w") as f:
                f.write(text)
        with open(os.path.join(self.root, "control", "rcpthosts"), "a") as f:
            f.write(f"{MAILBOX_DOMAIN}\n")

    def start(self, testcase: unittest.SynchronousTestCase) -> None:
        """Run C{twistd pymta} (stopped when C{testcase} ends); returns once both listeners accept."""
        self.proc = start_twistd(
            testcase, [TWISTD],
            ["pymta", "--root", self.root, "--smtp", f"haproxy:tcp:{self.smtp}:interface=127.0.0.1",
             "--qmqp", f"tcp:{self.qmqp}:interface=127.0.0.1"], self.log, [self.smtp, self.qmqp])

    def kill(self) -> None:
        """SIGKILL the running daemon (no shutdown of any kind) and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def flush(self) -> None:
        """Ask the running daemon for a queue run now (pymta ctl flush's signal)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGALRM)

    def logged(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()


class HAProxy:
    """Debian's haproxy in front of C{backends} (name, port on 127.0.0.1), listening on L{port}."""

    def __init__(self, testcase: unittest.SynchronousTestCase, program: str, base: str,
                 backends: list[tuple[str, int]]) -> None:
        self.port = free_port()
        self.socket = os.path.join(base, "haproxy.sock")
        config = os.path.join(base, "haproxy.cfg")
        user = "    user nobody\n    group nogroup" if os.getuid() == 0 else ""
        servers = "\n".join(f"    server {name} 127.0.0.1:{port}" for name, port in backends)
        with open(config, "w") as f:
            f.write(HAPROXY_CONFIG.format(user=user, socket=self.socket, front=self.port, check_ms=CHECK_MS,
                                          servers=servers))
        self.errors = os.path.join(base, "haproxy.log")
        with open(self.errors, "w") as stderr:
            start_listening(testcase, [program, "-db", "-f", config], "haproxy", self.errors, [self.port],
                            timeout=30, stderr=stderr)

    def status(self) -> dict[str, str]:
        """Each server's state as the health checks see it (C{show stat}'s status: UP, DOWN, ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.socket)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        columns = lines[0].lstrip("# ").split(",")
        result = {}
        for line in lines[1:]:
            row = dict(zip(columns, line.split(",")))
            if row.get("pxname") == "pymta" and row.get("svname") not in ("BACKEND", None):
                result[row["svname"]] = row["status"].split(" ")[0]
        return result


def null_client(base: str, name: str, servers: list[int]) -> str:
    """A root that is only a null client: control/me and control/qmqpservers (127.0.0.1:PORT a line)."""
    root = os.path.join(base, name)
    os.makedirs(os.path.join(root, "control"))
    with open(os.path.join(root, "control", "me"), "w") as f:
        f.write(f"{name}.example\n")
    with open(os.path.join(root, "control", "qmqpservers"), "w") as f:
        f.writelines(f"127.0.0.1:{port}\n" for port in servers)
    return root


def inject(root: str, recipient: str, message: bytes) -> subprocess.CompletedProcess:
    """C{pymta inject} on a null client's root, as the user C{app}."""
    return pymta("inject", "--root", root, "-f", "app@app.example", recipient, input=message,
                 capture_output=True, timeout=120, env={**os.environ, "USER": "app"})


def committed_pending(root: str) -> int:
    """Committed messages a front-end has not finished: those with C{queue/todo/ID} or C{queue/info/ID}."""
    ids: set[str] = set()
    for directory in ("todo", "info"):
        ids |= {name for _, _, files in os.walk(os.path.join(root, "queue", directory)) for name in files}
    return len(ids)


def delivered_tags(dovecot: DovecotLMTP, user: str) -> Counter[str]:
    """How many copies of each L{TAG_HEADER} value C{user}'s Dovecot INBOX holds (read by doveadm)."""
    return Counter(TAG_RE.findall(dovecot.fetch(user, "hdr")))


@dataclass
class Session:
    """One SMTP session of L{SMTPLoad}: one message, what the client was told."""

    tag: str
    began: float  # monotonic
    ended: float = 0.0
    acknowledged: bool = False  # 250 after DATA
    error: str = ""


@dataclass
class SMTPLoad:
    """
    C{threads} smtplib clients from C{source} sending to C{recipient}
    through C{port}, one message a session, until C{stop} is called, C{limit}
    sessions have started or C{seconds} have passed (the bounds of the load).
    """

    port: int
    recipient: str
    source: str = "127.0.0.2"
    threads: int = 4
    limit: int = 200
    seconds: float = 30.0
    io_timeout: float = 10.0
    sessions: list[Session] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        deadline = time.monotonic() + self.seconds
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, args=(deadline,), daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        """Start no more sessions; returns once every running one has ended."""
        self._stop.set()
        for worker in self._workers:
            worker.join(self.io_timeout * 6)

    def acknowledged(self) -> list[Session]:
        with self._lock:
            return [s for s in self.sessions if s.acknowledged]

    def _next(self, deadline: float) -> Session | None:
        with self._lock:
            if self._stop.is_set() or len(self.sessions) >= self.limit or time.monotonic() >= deadline:
                return None
            session = Session(f"load-{len(self.sessions)}", time.monotonic())
            self.sessions.append(session)
            return session

    def _work(self, deadline: float) -> None:
        while (session := self._next(deadline)) is not None:
            message = (f"From: load@client.example\r\nTo: {self.recipient}\r\nSubject: load {session.tag}\r\n"
                       f"Message-ID: <{session.tag}@client.example>\r\n{TAG_HEADER}: {session.tag}\r\n\r\n"
                       f"one of many\r\n").encode()
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=self.io_timeout,
                                  source_address=(self.source, 0)) as client:
                    client.ehlo("client.example")
                    client.sendmail("load@client.example", [self.recipient], message)
                    session.acknowledged = True
            except (OSError, smtplib.SMTPException) as e:
                session.error = f"{type(e).__name__}: {e}"[:200]
                if not session.acknowledged:
                    time.sleep(0.05)  # a refused session: do not spin
            session.ended = time.monotonic()
