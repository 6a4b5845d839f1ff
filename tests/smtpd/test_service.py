"""The SMTP service over real sockets on 127.0.0.1 with Python's smtplib: plain, STARTTLS, implicit TLS, AUTH, reload."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from pymta.control import ControlError, ControlReader
from pymta.smtpd.service import build_smtpd_service
from tests.smtpd.helpers import MemorySink, make_root
from tests.smtpd.tlsutil import write_cert


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ServiceTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), rcpthosts="mx.example.org")
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(":allow\n")
        self.cert = write_cert(os.path.join(self.root, "control", "servercert.pem"))
        self.sink = MemorySink()
        db = InMemoryUsernamePasswordDatabaseDontUse()
        db.addUser(b"alice", b"secret")
        self.svc = build_smtpd_service(
            self.root,
            ControlReader(self.root),
            self.sink,
            ["tcp:0:interface=127.0.0.1"],
            ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"],
            reactor=reactor,
            portal_checkers=[db],
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)

    def ports(self) -> defer.Deferred:
        """The bound ports (TCP listening is synchronous, so the results are there)."""
        return defer.succeed(
            [child._waitingForPort.result.getHost().port for child in self.svc if hasattr(child, "_waitingForPort")]
        )

    @defer.inlineCallbacks
    def test_plain_smtp(self):  # type: ignore[no-untyped-def]
        smtp_port, _, _ = yield self.ports()

        def send() -> dict:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as c:
                code, text = c.ehlo("client.example")
                assert code == 250 and b"PIPELINING" in text and b"STARTTLS" in text, text
                refused = c.sendmail("a@x.example", ["u@mx.example.org"], b"Subject: t\r\n\r\nhello\r\n.dot\r\n")
                try:
                    c.sendmail("a@x.example", ["u@elsewhere.example"], b"x\r\n")
                except smtplib.SMTPRecipientsRefused as e:
                    refused = e.recipients
                return refused

        refused = yield threads.deferToThread(send)
        self.assertEqual(refused["u@elsewhere.example"][0], 553)
        self.assertEqual(len(self.sink.queued), 1)
        self.assertTrue(self.sink.queued[0].data.endswith(b"Subject: t\n\nhello\n.dot\n"))

    @defer.inlineCallbacks
    def test_real_pipelining_with_slow_checks(self):  # type: ignore[no-untyped-def]
        """200 recipients and a message in one write, each RCPT check answered later: replies in order."""
        from twisted.internet import task

        smtp_port, _, _ = yield self.ports()
        self.svc.context.recipient_check = lambda controls, address: task.deferLater(reactor, 0.001, lambda: True)
        lines = [b"EHLO c", b"MAIL FROM:<a@x>"] + [b"RCPT TO:<u%d@mx.example.org>" % i for i in range(200)]
        lines += [b"DATA", b"Subject: pipelined", b"", b"body", b".", b"QUIT"]

        def talk() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", smtp_port), timeout=20) as s:
                s.sendall(b"\r\n".join(lines) + b"\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return data.split(b"\r\n")

        replies = yield threads.deferToThread(talk)
        codes = [r[:4] for r in replies if r and r[3:4] == b" "]
        self.assertEqual(codes[0], b"220 ")
        self.assertEqual(codes[1:], [b"250 "] * 202 + [b"354 ", b"250 ", b"221 "])
        self.assertEqual(len(self.sink.queued[0].recipients), 200)

    @defer.inlineCallbacks
    def test_starttls_then_mail(self):  # type: ignore[no-untyped-def]
        smtp_port, _, _ = yield self.ports()

        def send() -> str:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as c:
                c.starttls(context=client_tls())
                c.ehlo("client.example")
                assert not c.has_extn("starttls")
                c.sendmail("a@x.example", ["u@mx.example.org"], b"Subject: tls\r\n\r\nsecret\r\n")
                return c.sock.version()

        version = yield threads.deferToThread(send)
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        self.assertIn(b"with ESMTPS;", self.sink.queued[0].data)

    @defer.inlineCallbacks
    def test_submission_auth_after_starttls(self):  # type: ignore[no-untyped-def]
        _, sub_port, _ = yield self.ports()

        def send() -> tuple:
            with smtplib.SMTP("127.0.0.1", sub_port, timeout=10) as c:
                c.ehlo("client.example")
                before = c.has_extn("auth")
                c.starttls(context=client_tls())
                c.ehlo("client.example")
                c.user, c.password = "alice", "wrong"
                try:
                    c.auth("PLAIN", c.auth_plain)
                    bad = None
                except smtplib.SMTPAuthenticationError as e:
                    bad = e.smtp_code
                c.login("alice", "secret")
                c.sendmail("alice@mx.example.org", ["far@elsewhere.example"], b"Subject: relay\r\n\r\nok\r\n")
                return before, bad

        before, bad = yield threads.deferToThread(send)
        self.assertFalse(before)
        self.assertEqual(bad, 535)
        self.assertEqual(self.sink.queued[0].recipients, ["far@elsewhere.example"])
        self.assertIn(b"(AUTH alice)", self.sink.queued[0].data)

    @defer.inlineCallbacks
    def test_implicit_tls_submission_login(self):  # type: ignore[no-untyped-def]
        _, _, tls_port = yield self.ports()

        def send() -> None:
            with smtplib.SMTP_SSL("127.0.0.1", tls_port, timeout=10, context=client_tls()) as c:
                c.ehlo("client.example")
                assert not c.has_extn("starttls")
                c.login("alice", "secret")  # smtplib picks CRAM-MD5, PLAIN or LOGIN
                c.sendmail("alice@mx.example.org", ["far@elsewhere.example"], b"x\r\n")
            with smtplib.SMTP_SSL("127.0.0.1", tls_port, timeout=10, context=client_tls()) as c:
                c.ehlo("client.example")
                c.user, c.password = "alice", "secret"
                code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
                assert code == 235, code

        yield threads.deferToThread(send)
        self.assertEqual(len(self.sink.queued), 1)
        self.assertIn(b"with ESMTPSA;", self.sink.queued[0].data)

    @defer.inlineCallbacks
    def test_failed_handshake_leaves_daemon_running(self):  # type: ignore[no-untyped-def]
        smtp_port, _, tls_port = yield self.ports()

        def abuse() -> None:
            s = socket.create_connection(("127.0.0.1", tls_port), timeout=10)
            s.sendall(b"EHLO this is not tls\r\n" * 10)
            s.recv(100)
            s.close()
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as c:
                c.ehlo()
                c.docmd("STARTTLS")
                c.sock.sendall(b"\x16\x03\x01garbage that is no client hello\r\n")
                c.sock.settimeout(10)
                try:
                    c.sock.recv(100)
                except OSError:
                    pass
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as c:
                c.sendmail("a@x", ["u@mx.example.org"], b"after\r\n")

        yield threads.deferToThread(abuse)
        self.assertEqual(len(self.sink.queued), 1)

    @defer.inlineCallbacks
    def test_reload_certificate_and_rules(self):  # type: ignore[no-untyped-def]
        smtp_port, _, tls_port = yield self.ports()

        def served_cert() -> bytes:
            with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
                with client_tls().wrap_socket(raw) as s:
                    return s.getpeercert(binary_form=True)

        first = yield threads.deferToThread(served_cert)
        write_cert(os.path.join(self.root, "control", "servercert.pem"), "other.example")
        self.svc.reload()
        second = yield threads.deferToThread(served_cert)
        self.assertNotEqual(first, second)
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write("127.0.0.1:deny\n:allow\n")
        self.svc.reload()

        def denied() -> bytes:
            with socket.create_connection(("127.0.0.1", smtp_port), timeout=10) as s:
                return s.recv(100)

        self.assertEqual((yield threads.deferToThread(denied)), b"")
        # a broken file keeps the old rules
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write("127.0.0.1:maybe\n")
        self.svc.reload()
        self.assertFalse(self.svc.context.rules.lookup("127.0.0.1").allow)


class ExtraControlFiles(TestCase):
    """smtpd's extra control files are parsed at start and at reload: a bad line names file and line."""

    def build(self, root: str, reader: ControlReader | None = None):  # type: ignore[no-untyped-def]
        return build_smtpd_service(root, reader or ControlReader(root), MemorySink(), [], [], reactor=reactor,
                                   resolver=object())

    def test_bad_files_refuse_the_start(self) -> None:
        for name, text, lineno, reason in (
            ("concurrencyperip", "five", 1, "found 'five'"),
            ("rbls", "# zones\nzen.example:perm", 2, "expected zone, zone:permanent or +zone"),
            ("rcptcheck", "off", 1, "rcptcheck takes no value"),
            ("milters", "rspamd inet:127.0.0.1:11332 default=maybe", 1, "bad default action 'maybe'"),
        ):
            root = make_root(self.mktemp(), **{name: text})
            with self.assertRaises(ControlError) as cm:
                self.build(root)
            self.assertTrue(str(cm.exception).startswith(f"{root}/control/{name}:{lineno}: "), str(cm.exception))
            self.assertIn(reason, str(cm.exception))

    def test_filters_of_control_milters(self) -> None:
        """Each session asks control/milters' current list: none listed, no filters; one listed, a chain."""
        root = make_root(self.mktemp())
        reader = ControlReader(root)
        svc = self.build(root, reader)
        assert svc.context.milters is not None
        self.assertIsNone(svc.context.milters())
        with open(os.path.join(root, "control", "milters"), "w") as f:
            f.write("rspamd inet:127.0.0.1:11332\n")
        reader.reload()
        session = svc.context.milters()
        self.assertIsNotNone(session)
        session.close()

    def test_reload_keeps_old_values(self) -> None:
        root = make_root(self.mktemp(), rbls="zen.example", concurrencyperip="3")
        reader = ControlReader(root)
        svc = self.build(root, reader)
        self.assertEqual([z.name for z in svc.context.dnsbl.zones], ["zen.example"])
        with open(os.path.join(root, "control", "concurrencyperip"), "w") as f:
            f.write("3 per client\n")
        with open(os.path.join(root, "control", "rbls"), "w") as f:
            f.write("other.example\n")
        with self.assertRaises(ControlError) as cm:
            reader.reload()
        self.assertIn("concurrencyperip:1: expected a number of sessions", str(cm.exception))
        svc.reload()
        self.assertEqual([z.name for z in svc.context.dnsbl.zones], ["zen.example"])
        self.assertEqual(svc.context.per_ip_limit(reader.current), 3)
        with open(os.path.join(root, "control", "concurrencyperip"), "w") as f:
            f.write("4\n")
        reader.reload()
        svc.reload()
        self.assertEqual([z.name for z in svc.context.dnsbl.zones], ["other.example"])
        self.assertEqual(svc.context.per_ip_limit(reader.current), 4)

    def test_tap_refuses_in_one_line(self) -> None:
        from pymta.smtpd.tap import Options, makeService

        root = os.path.abspath(make_root(self.mktemp(), rbls="zen example"))
        o = Options()
        o.parseOptions(["--root", root, "--listen", "tcp:0:interface=127.0.0.1"])
        with self.assertRaises(SystemExit) as cm:
            makeService(o)
        self.assertEqual(str(cm.exception), f"pymta-smtpd: configuration error, not starting: {root}/control/rbls:1: "
                                            "bad zone: blank inside 'zen example'")


class PasswdFileAuth(TestCase):
    """The default checkers: ROOT/users/passwd through pymta.passwdfile; CRAM-MD5 only for plaintext stores."""

    timeout = 60

    def build(self, root: str):  # type: ignore[no-untyped-def]
        svc = build_smtpd_service(root, ControlReader(root), MemorySink(), [], ["tcp:0:interface=127.0.0.1"], reactor=reactor)
        return svc

    def test_mechanisms_follow_the_store(self) -> None:
        from pymta.passwdfile import set_password

        root = make_root(self.mktemp())
        passwd = os.path.join(root, "users", "passwd")
        set_password(passwd, "alice", "secret", 1000, 1000, "/home/alice")
        svc = self.build(root)
        self.assertEqual(svc.context.auth_mechanisms(), ["PLAIN", "LOGIN"])
        set_password(passwd, "alice", "secret", 1000, 1000, "/home/alice", scheme="PLAIN")
        svc.reload()
        self.assertEqual(svc.context.auth_mechanisms(), ["PLAIN", "LOGIN", "CRAM-MD5"])

    @defer.inlineCallbacks
    def test_login_against_passwd_file(self):  # type: ignore[no-untyped-def]
        from pymta.passwdfile import set_password

        root = make_root(self.mktemp())
        set_password(os.path.join(root, "users", "passwd"), "alice", "s3cret", 1000, 1000, "/home/alice")
        write_cert(os.path.join(root, "control", "servercert.pem"))
        sink = MemorySink()
        svc = build_smtpd_service(root, ControlReader(root), sink, [], ["tcp:0:interface=127.0.0.1"], reactor=reactor)
        svc.startService()
        self.addCleanup(svc.stopService)
        port = next(iter(svc))._waitingForPort.result.getHost().port

        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
                c.starttls(context=client_tls())
                c.login("alice", "s3cret")
                c.sendmail("alice@x", ["far@elsewhere.example"], b"x\r\n")

        yield threads.deferToThread(send)
        self.assertEqual(sink.queued[0].recipients, ["far@elsewhere.example"])


class ExplicitSSLEndpoint(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_ssl_endpoint_with_own_key(self):  # type: ignore[no-untyped-def]
        root = make_root(self.mktemp())
        pem = os.path.abspath(os.path.join(root, "own.pem"))
        write_cert(pem)
        sink = MemorySink()
        svc = build_smtpd_service(
            root, ControlReader(root), sink, [f"ssl:0:interface=127.0.0.1:privateKey={pem}"], [], reactor=reactor,
            portal_checkers=[],
        )
        svc.startService()
        self.addCleanup(svc.stopService)
        port = next(iter(svc))._waitingForPort.result.getHost().port

        def send() -> bool:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=20, context=client_tls()) as c:
                c.ehlo("x")
                offered = c.has_extn("starttls")
                c.sendmail("a@x", ["b@y"], b"over implicit tls\r\n")
                return offered

        offered = yield threads.deferToThread(send)
        self.assertFalse(offered)
        self.assertIn(b"with ESMTPS;", sink.queued[0].data)
