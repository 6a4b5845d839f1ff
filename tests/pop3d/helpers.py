"""Shared helpers for the pop3d tests: Maildirs, a fake authenticator, a TLS-capable StringTransport."""

from __future__ import annotations

import os
import time

from twisted.internet import defer
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from pymta.pop3d.auth import Account, LoginFailed


def make_maildir(path: str) -> str:
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    return path


def put_message(maildir: str, name: str, data: bytes, sub: str = "new", mtime: float | None = None) -> str:
    path = os.path.join(maildir, sub, name)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def sample_maildir(path: str) -> str:
    """Three messages in new/, oldest first: m1 (2 lines), m2 (dot line), m3 (no final newline)."""
    make_maildir(path)
    base = time.time() - 100
    put_message(path, "1000.A.host", b"Subject: one\n\nbody1\n", mtime=base)
    put_message(path, "1001.B.host", b"Subject: two\n\n.dot\nline2\nline3\n", mtime=base + 1)
    put_message(path, "1002.C.host", b"Subject: three\n\nlast", mtime=base + 2)
    return path


class FakeAuthenticator:
    """user 'alice' / password 'secret'; APOP secret 'secret'."""

    def __init__(self, home: str, uid: int | None = None) -> None:
        self.account = Account("alice", uid, uid, home)
        self.calls: list[tuple] = []
        self.result: defer.Deferred | None = None

    def check_password(self, user: bytes, password: bytes) -> defer.Deferred:
        self.calls.append(("pass", user, password))
        if self.result is not None:
            return self.result
        if user == b"alice" and password == b"secret":
            return defer.succeed(self.account)
        return defer.fail(LoginFailed("authorization failed"))

    def check_apop(self, user: bytes, timestamp: bytes, digest: bytes) -> defer.Deferred:
        import hashlib

        self.calls.append(("apop", user, timestamp, digest))
        if user == b"alice" and hashlib.md5(timestamp + b"secret").hexdigest().encode() == digest.lower():
            return defer.succeed(self.account)
        return defer.fail(LoginFailed("authorization failed"))


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):
    tls_context = None

    def startTLS(self, contextFactory: object) -> None:
        self.tls_context = contextFactory


def drain(transport: StringTransport) -> None:
    """Drive a registered pull producer to completion (StringTransport never does)."""
    for _ in range(100000):
        producer = transport.producer
        if producer is None:
            return
        producer.resumeProducing()
    raise AssertionError("producer never finished")
