# -*- test-case-name: tests.dkim.test_signing -*-
"""
The signing work of a daemon: the keys of its current configuration and
a way to sign off the reactor thread.

L{DKIMSigning.for_reader} reads control/dkimkeys and its key files when
the daemon starts and at every reload, as one of the reader's checks
(L{pymta.control.ControlReader.add_check}): a bad line or an unusable key
file stops the start, and a reload that finds one keeps the keys in use
(and the rest of the old configuration) and is logged by the caller.

L{DKIMSigning.sign} runs L{pymta.dkim.signer.sign_message} in the
reactor's thread pool (a large body is hashed in Python; RSA signing is
a few milliseconds), or in the calling thread for a clock without one
(the unit tests' C{task.Clock}).  Signing never refuses a message: an
unexpected failure is logged and the message goes unsigned.

L{DKIMSigning.sign_spooled} signs a spooled message (smtpd's end-of-data
step, the inject socket's L{pymta.dkim.localsigning}) without holding
more than needed in memory: the signing domain is read from the header
first, and the body is read only when that domain has keys and the
message is at most L{MAX_SIGNED_BYTES} long.  A longer message is queued
unsigned, with the log line C{dkim: message of N bytes is over the signing
limit of M bytes: queued unsigned}; smtpd's C{databytes}, when set lower,
keeps network messages under the cap, and local injection has no limit.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from twisted.internet import defer, threads
from twisted.logger import Logger

from pymta.control import ControlReader, Controls
from pymta.dkim.keys import SigningKeys, load_signing_keys
from pymta.dkim.signer import header_domain, sign_message

__all__ = ["DKIMSigning", "MAX_SIGNED_BYTES", "SpooledText"]

log = Logger()

#: a longer message is queued unsigned (dkimpy signs a message held whole in memory, several times over)
MAX_SIGNED_BYTES = 64 * 1024 * 1024


class SpooledText(Protocol):
    """A message held on disk or in memory (L{pymta.smtpd.spool.SpooledMessage})."""

    size: int

    def header(self, limit: int = ...) -> bytes:
        """The header, bounded."""

    def read(self) -> bytes:
        """The whole message."""


class DKIMSigning:
    """The keys in force (L{keys}; empty: no signing) and the signing of one message."""

    def __init__(self, keys: SigningKeys, reactor: Any = None,
                 load: Callable[[Controls], SigningKeys] = load_signing_keys) -> None:
        self.keys = keys
        self.reactor = reactor
        self._load = load
        self._checked: tuple[Controls, SigningKeys] | None = None

    @classmethod
    def for_reader(cls, reader: ControlReader, reactor: Any = None,
                   load: Callable[[Controls], SigningKeys] = load_signing_keys) -> "DKIMSigning":
        """The signing of C{reader}'s configuration, following its reloads (see the module docstring)."""
        signing = cls({}, reactor, load)
        reader.add_check(signing._check)
        signing._use(reader.current)
        reader.on_reload(signing._use)
        return signing

    def _check(self, controls: Controls) -> None:
        self._checked = (controls, self._load(controls))

    def _use(self, controls: Controls) -> None:
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] is controls:
            self.keys = checked[1]
        else:
            self.keys = self._load(controls)

    @property
    def active(self) -> bool:
        """True when there is a key to sign with."""
        return bool(self.keys)

    def sign_spooled(self, message: SpooledText) -> "defer.Deferred[tuple[bytes, ...]]":
        """L{sign} for a spooled message, its body read only when it will be signed (see the module docstring)."""
        domain = header_domain(message.header())
        if domain is None or domain not in self.keys:
            return defer.succeed(())
        if message.size > MAX_SIGNED_BYTES:
            log.info("dkim: message of {size} bytes is over the signing limit of {limit} bytes: queued unsigned",
                     size=message.size, limit=MAX_SIGNED_BYTES)
            return defer.succeed(())
        return self.sign(message.read())

    def sign(self, message: bytes) -> "defer.Deferred[tuple[bytes, ...]]":
        """The C{DKIM-Signature:} fields for C{message} (as stored), () when none applies or signing failed."""
        keys = self.keys
        pool = getattr(self.reactor, "getThreadPool", None)
        if pool is not None:
            d = threads.deferToThreadPool(self.reactor, pool(), sign_message, message, keys)
        else:
            d = defer.maybeDeferred(sign_message, message, keys)

        def failed(failure: Any) -> tuple[bytes, ...]:
            log.failure("dkim: signing failed; the message goes unsigned", failure)
            return ()

        return d.addErrback(failed)
