"""
The server TLS profile in real handshakes on 127.0.0.1 with Python's ssl
module: smtpd STARTTLS and implicit TLS, pop3d STLS and implicit TLS refuse
TLS 1.2 suites without forward secrecy and accept ECDHE with AES-GCM or
ChaCha20-Poly1305, and TLS 1.3.

The server certificate is RSA (what C{pymta init} makes), so the refused
suites (RSA key exchange) would be possible with it: L{ControlTests} shows
that Twisted's default options accept them from the same client.
"""

from __future__ import annotations

import os
import poplib
import smtplib
import socket
import ssl
from typing import Any, Callable

from twisted.internet import defer, endpoints, reactor, threads
from twisted.internet import ssl as tssl
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pymta.certs import self_signed_pem
from pymta.control import ControlReader
from pymta.passwdfile import set_password
from pymta.pop3d.service import build_pop3_service
from pymta.smtpd.service import build_smtpd_service
from pymta.tls import SERVER_TLS12_SUITES, load_server_options, server_listener
from tests.smtpd.helpers import MemorySink, make_root

#: TLS 1.2 suites without forward secrecy (RSA key exchange, CBC)
WEAK = ("AES128-SHA", "AES256-SHA256")
#: TLS 1.2 suites of the profile a client may ask for alone (the certificate is RSA)
STRONG = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305")

_PEM: list[bytes] = []


def rsa_pem() -> bytes:
    if not _PEM:
        _PEM.append(self_signed_pem("localhost"))
    return _PEM[0]


def tls12_client(cipher: str) -> ssl.SSLContext:
    """A client speaking TLS 1.2 only and offering only C{cipher}."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(cipher)
    return ctx


def tls13_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def implicit(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    """Handshake on an implicit TLS port: (negotiated version, cipher)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            cipher = s.cipher()
            assert cipher is not None
            return str(s.version()), cipher[0]


def smtp_starttls(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.example")
        c.starttls(context=ctx)
        code, _ = c.ehlo("client.example")
        assert code == 250
        assert isinstance(c.sock, ssl.SSLSocket)
        cipher = c.sock.cipher()
        assert cipher is not None
        return str(c.sock.version()), cipher[0]


def pop3_stls(port: int, ctx: ssl.SSLContext) -> tuple[str, str]:
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    try:
        pop.stls(ctx)
        pop.user("alice")
        pop.pass_("secret")
        assert isinstance(pop.sock, ssl.SSLSocket)
        cipher = pop.sock.cipher()
        assert cipher is not None
        return str(pop.sock.version()), cipher[0]
    finally:
        try:
            pop.close()
        except OSError:
            pass  # after a failed handshake the socket is already gone


class ProfileCases:
    """The same cases for every TLS entry point; C{handshake(ctx)} runs in a thread."""

    handshake: Callable[[ssl.SSLContext], tuple[str, str]]
    assertEqual: Any
    assertIn: Any
    assertFailure: Any

    @defer.inlineCallbacks
    def test_tls12_without_forward_secrecy_refused(self):  # type: ignore[no-untyped-def]
        for cipher in WEAK:
            d = threads.deferToThread(self.handshake, tls12_client(cipher))
            yield self.assertFailure(d, ssl.SSLError)

    @defer.inlineCallbacks
    def test_tls12_ecdhe_aead_accepted(self):  # type: ignore[no-untyped-def]
        for cipher in STRONG:
            version, used = yield threads.deferToThread(self.handshake, tls12_client(cipher))
            self.assertEqual((version, used), ("TLSv1.2", cipher))

    @defer.inlineCallbacks
    def test_tls13_accepted(self):  # type: ignore[no-untyped-def]
        version, used = yield threads.deferToThread(self.handshake, tls13_client())
        self.assertEqual(version, "TLSv1.3")
        self.assertIn(used, ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"))


class SmtpdBase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root = make_root(self.mktemp(), rcpthosts="mx.example.org")
        os.makedirs(os.path.join(self.root, "etc"))
        with open(os.path.join(self.root, "etc", "tcp.smtp"), "w") as f:
            f.write(":allow\n")
        with open(os.path.join(self.root, "control", "servercert.pem"), "wb") as f:
            f.write(rsa_pem())
        self.svc = build_smtpd_service(
            self.root, ControlReader(self.root), MemorySink(),
            ["tcp:0:interface=127.0.0.1"], ["ssl:0:interface=127.0.0.1"], reactor=reactor,
        )
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.smtp_port, self.submission_port = [
            child._waitingForPort.result.getHost().port for child in self.svc if hasattr(child, "_waitingForPort")
        ]


class SmtpdStartTLSTests(ProfileCases, SmtpdBase):
    def handshake(self, ctx: ssl.SSLContext) -> tuple[str, str]:
        return smtp_starttls(self.smtp_port, ctx)


class SmtpdImplicitTLSTests(ProfileCases, SmtpdBase):
    def handshake(self, ctx: ssl.SSLContext) -> tuple[str, str]:
        return implicit(self.submission_port, ctx)


class Pop3dBase(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        make_root(self.root, me="pop.test")
        with open(os.path.join(self.root, "control", "servercert.pem"), "wb") as f:
            f.write(rsa_pem())
        home = os.path.join(self.root, "home", "alice")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(home, "Maildir", sub))
        uid = os.getuid() or 4242
        if os.getuid() == 0:
            for dirpath, _, _ in os.walk(home):
                os.chown(dirpath, uid, uid)
        set_password(os.path.join(self.root, "users", "passwd"), "alice", "secret", uid, uid, home, scheme="PLAIN")
        from pymta.pop3d.opener import MailboxOpener

        self.svc = build_pop3_service(
            self.root, ControlReader(self.root), ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"],
            reactor=reactor, allow_plaintext=False, failure_delay=0.05,
            open_mailbox=MailboxOpener(reactor, euid=lambda: os.getuid() or 4242),
        )
        self.svc.privilegedStartService()
        self.svc.startService()
        self.addCleanup(self.svc.stopService)
        self.plain_port, self.tls_port = [
            child._waitingForPort.result.getHost().port for child in self.svc if hasattr(child, "_waitingForPort")
        ]


class Pop3dSTLSTests(ProfileCases, Pop3dBase):
    def handshake(self, ctx: ssl.SSLContext) -> tuple[str, str]:
        return pop3_stls(self.plain_port, ctx)


class Pop3dImplicitTLSTests(ProfileCases, Pop3dBase):
    def handshake(self, ctx: ssl.SSLContext) -> tuple[str, str]:
        return implicit(self.tls_port, ctx)


class _Hello(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello\r\n")  # type: ignore[union-attr]


class ControlTests(TestCase):
    """The refused suites are refused because of the profile, not because the client cannot offer them."""

    timeout = 60

    @defer.inlineCallbacks
    def test_twisted_defaults_accept_what_the_profile_refuses(self):  # type: ignore[no-untyped-def]
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(rsa_pem())
        ours = load_server_options(path)
        defaults = tssl.CertificateOptions(privateKey=ours.privateKey, certificate=ours.certificate)
        endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, defaults, interface="127.0.0.1")
        port = yield endpoint.listen(Factory.forProtocol(_Hello))
        self.addCleanup(port.stopListening)
        for cipher in WEAK:
            version, used = yield threads.deferToThread(implicit, port.getHost().port, tls12_client(cipher))
            self.assertEqual((version, used), ("TLSv1.2", cipher))


class ExplicitKeyFileTests(SynchronousTestCase):
    """An ssl: endpoint with its own key files gets the profile as well."""

    def test_ssl_endpoint_with_key_files(self) -> None:
        key_file = self.mktemp()
        with open(key_file, "wb") as f:
            f.write(rsa_pem())
        from twisted.internet.testing import MemoryReactor

        from pymta.tls import ServerTLS

        memory = MemoryReactor()
        listener = server_listener(memory, f"ssl:4650:privateKey={key_file}", Factory(), ServerTLS("/nonexistent"))
        listener.privilegedStartService()
        self.addCleanup(listener.stopService)
        context_factory = memory.sslServers[0][2]
        from OpenSSL import SSL

        offered = SSL.Connection(context_factory.getContext()).get_cipher_list()
        self.assertEqual([c for c in offered if not c.startswith("TLS_")], list(SERVER_TLS12_SUITES))

    def test_ssl_endpoint_inside_a_wrapping_endpoint(self) -> None:
        """haproxy:ssl:... (the PROXY protocol in front of TLS) gets the profile on its inner ssl: endpoint."""
        key_file = self.mktemp()
        with open(key_file, "wb") as f:
            f.write(rsa_pem())
        from OpenSSL import SSL
        from twisted.internet.testing import MemoryReactor

        from pymta.tls import ServerTLS

        memory = MemoryReactor()
        listener = server_listener(memory, f"haproxy:ssl:4651:privateKey={key_file}", Factory(), ServerTLS("/nonexistent"))
        listener.privilegedStartService()
        self.addCleanup(listener.stopService)
        offered = SSL.Connection(memory.sslServers[0][2].getContext()).get_cipher_list()
        self.assertEqual([c for c in offered if not c.startswith("TLS_")], list(SERVER_TLS12_SUITES))

