"""
pymta.listenbacklog and its use: each listener's listen queue is its
connection limit (at least 50) unless the endpoint string sets C{backlog=}; checked on
strings, on Twisted's endpoints (MemoryReactor) and on the kernel's own
listening sockets of the SMTP, QMTP, QMQP and POP3 services.
"""

from __future__ import annotations

import os
import socket
import struct
import sys

from twisted.internet import defer, endpoints, reactor
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.control import ControlReader
from pymta.listenbacklog import DEFAULT_BACKLOG, listen_backlog, with_backlog
from pymta.pop3d.service import build_pop3_service
from pymta.qmqpd.service import QMQPFactory, add_qmqp_listeners
from pymta.qmtpd.service import QMTPFactory, add_qmtp_listeners
from pymta.smtpd.service import build_smtpd_service
from pymta.tls import ServerTLS, server_listener
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert


class WithBacklogTests(SynchronousTestCase):
    def test_added_to_each_type_that_takes_one(self) -> None:
        for description in (
            "tcp:25",
            "tcp:25:interface=127.0.0.1",
            "tcp6:25:interface=\\:\\:1",
            "ssl:465",
            "ssl:465:privateKey=/etc/key.pem:certKey=/etc/cert.pem",
            "unix:/run/pymta/smtp.sock",
            "unix:/run/pymta/smtp.sock:mode=660",
        ):
            self.assertEqual(with_backlog(description, 40), description + ":backlog=40")

    def test_behind_haproxy(self) -> None:
        self.assertEqual(with_backlog("haproxy:tcp:25", 40), "haproxy:tcp:25:backlog=40")
        self.assertEqual(with_backlog("haproxy:ssl:465:interface=10.0.0.1", 9), "haproxy:ssl:465:interface=10.0.0.1:backlog=9")
        self.assertEqual(with_backlog("haproxy:tcp:25:backlog=5", 40), "haproxy:tcp:25:backlog=5")

    def test_an_explicit_backlog_wins(self) -> None:
        for description in (
            "tcp:25:backlog=5",
            "tcp:25:backlog=5:interface=127.0.0.1",
            "ssl:465:backlog=5",
            "unix:/run/s.sock:backlog=5",
            "tcp6:25:backlog=5",
            # by position: tcp:PORT:INTERFACE:BACKLOG, tcp6:PORT:BACKLOG, unix:ADDRESS:MODE:BACKLOG
            "tcp:25:127.0.0.1:5",
            "tcp6:25:5",
            "unix:/run/s.sock:660:5",
            "ssl:465:key.pem:cert.pem:SSLv23_METHOD:127.0.0.1:5",
        ):
            self.assertEqual(with_backlog(description, 40), description)

    def test_escapes_are_read_as_twisted_reads_them(self) -> None:
        # an escaped colon does not start a field, an escaped = does not name one
        self.assertEqual(with_backlog("unix:/run/a\\:b:660", 40), "unix:/run/a\\:b:660:backlog=40")
        self.assertEqual(with_backlog("unix:/run/a\\:b:660:5", 40), "unix:/run/a\\:b:660:5")
        self.assertEqual(with_backlog("unix:/run/a\\=b:660", 40), "unix:/run/a\\=b:660:backlog=40")
        self.assertEqual(with_backlog("unix:/run/backlog\\=3", 40), "unix:/run/backlog\\=3:backlog=40")

    def test_others_unchanged(self) -> None:
        for description in ("systemd:domain=INET:index=0", "stdio:", "nonsense:1", "25", "", "tcp:25\\"):
            self.assertEqual(with_backlog(description, 40), description)
        self.assertEqual(with_backlog("tcp:25", None), "tcp:25")

    def test_twisted_listens_with_it(self) -> None:
        memory = MemoryReactor()
        factory = ServerFactory()
        for description in ("tcp:2525", "tcp6:2525", "unix:/nonexistent/s.sock:lockfile=0"):
            endpoints.serverFromString(memory, with_backlog(description, 17)).listen(factory)
        self.assertEqual([server[2] for server in memory.tcpServers], [17, 17])
        self.assertEqual(memory.unixServers[0][2], 17)


class ListenBacklogTests(SynchronousTestCase):
    def test_the_limit_but_never_below_twisteds_default(self) -> None:
        self.assertEqual(DEFAULT_BACKLOG, 50)
        self.assertEqual([listen_backlog(n) for n in (1, 40, 50, 51, 1000)], [50, 50, 50, 51, 1000])


class ServerListenerTests(SynchronousTestCase):
    """pymta.tls.server_listener passes the backlog through every kind of endpoint."""

    def listen(self, description: str, backlog: int | None, tls: ServerTLS | None = None) -> MemoryReactor:
        memory = MemoryReactor()
        tls = tls or ServerTLS("/nonexistent/servercert.pem")
        listener = server_listener(memory, description, ServerFactory(), tls, backlog=backlog)
        listener.privilegedStartService()
        self.addCleanup(listener.stopService)
        return memory

    def test_plain_and_proxied(self) -> None:
        for description in ("tcp:2525", "haproxy:tcp:2525", "tcp6:2525:interface=\\:\\:1"):
            self.assertEqual(self.listen(description, 23).tcpServers[0][2], 23)

    def test_implicit_tls(self) -> None:
        path = self.mktemp()
        write_cert(path)
        tls = ServerTLS(path)
        for description in ("ssl:4650", "haproxy:ssl:4650"):
            self.assertEqual(self.listen(description, 23, tls).tcpServers[0][2], 23)
        self.assertEqual(self.listen("ssl:4650:backlog=3", 23, tls).tcpServers[0][2], 3)

    def test_explicit_and_default(self) -> None:
        self.assertEqual(self.listen("tcp:2525:backlog=3", 23).tcpServers[0][2], 3)
        self.assertEqual(self.listen("tcp:2525", None).tcpServers[0][2], 50)  # Twisted's default


def listen_queue_length(sock: socket.socket) -> int:
    """
    The length of a listening socket's accept queue as the kernel keeps it
    (what C{ss -ltn} shows as Send-Q): Linux reports it in the C{tcp_info}
    of a listening socket as C{tcpi_sacked}, the 32-bit field at offset 28.
    """
    return int(struct.unpack_from("=I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 28)[0])


class RealSocketTests(TestCase):
    """The daemons' listening sockets on 127.0.0.1 port 0 have their limit (at least 50) as listen queue."""

    timeout = 60

    def setUp(self) -> None:
        if not sys.platform.startswith("linux"):
            self.skipTest("reads the listen queue from Linux's tcp_info")

    def queues(self, svc: object, kind: type | None = None) -> list[int]:
        lengths = []
        for child in svc:  # type: ignore[attr-defined]
            port = getattr(child, "_waitingForPort", None)
            if port is not None and (kind is None or isinstance(child.factory, kind)):
                lengths.append(listen_queue_length(port.result.socket))
        return lengths

    def test_smtp_qmtp_qmqp_follow_concurrencyincoming(self) -> None:
        root = make_root(self.mktemp(), concurrencyincoming="123")
        write_cert(os.path.join(root, "control", "servercert.pem"))
        svc = build_smtpd_service(
            root,
            ControlReader(root),
            MemorySink(),
            ["tcp:0:interface=127.0.0.1", "haproxy:tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1:backlog=7"],
            ["ssl:0:interface=127.0.0.1"],
            reactor=reactor,
            resolver=object(),
        )
        add_qmtp_listeners(svc, ["tcp:0:interface=127.0.0.1"], reactor)
        add_qmqp_listeners(svc, ["tcp:0:interface=127.0.0.1"], reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(self.queues(svc), [123, 123, 7, 123, 123, 123])
        self.assertEqual(self.queues(svc, QMTPFactory), [123])
        self.assertEqual(self.queues(svc, QMQPFactory), [123])

    def test_pop3_follows_concurrencypop3(self) -> None:
        root = make_root(self.mktemp(), concurrencypop3="77")
        svc = build_pop3_service(
            root, ControlReader(root), ["tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1:backlog=4"],
            reactor=reactor, open_mailbox=lambda account: defer.Deferred(),  # no mailbox is opened here
        )
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(self.queues(svc), [77, 4])

    def test_a_small_limit_keeps_twisteds_queue(self) -> None:
        """Refusals over a limit of 6 pass through the queue too: it stays at 50."""
        root = make_root(self.mktemp(), concurrencyincoming="6")
        svc = build_smtpd_service(
            root, ControlReader(root), MemorySink(), ["tcp:0:interface=127.0.0.1"], [], reactor=reactor, resolver=object()
        )
        svc.startService()
        self.addCleanup(svc.stopService)
        self.assertEqual(self.queues(svc), [50])
