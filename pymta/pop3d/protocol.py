# -*- test-case-name: tests.pop3d.test_protocol -*-
"""
The POP3 server protocol: RFC 1939 with qmail-popup/qmail-pop3d replies,
CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and APOP.

Written on C{Protocol} rather than C{twisted.mail.pop3.POP3} (whose APOP,
RETR chunking and plaintext handling are broken; see docs/internals.md, 'Why smtpd
and pop3d do not use twisted.mail').

Choices, documented:

  - Replies are qmail's: C{+OK } (with the space), C{-ERR authorization
    first}, C{-ERR syntax error}, ... ; STAT counts deleted messages in N
    but not in the octets; LAST as qmail-pop3d; C{RETR n k} acts as TOP.
  - The message ends with C{.\\r\\n} right after its last line (RFC 1939);
    qmail-pop3d adds an empty line first, which would make the octets
    differ from the reported size.  CAPA is answered in both states.
  - USER/PASS and AUTH PLAIN are refused before TLS unless the listener
    allows plaintext; APOP is always allowed (no password on the wire).
  - Logins go through the daemon's L{LoginLimiter} (L{pymta.pop3d.login}):
    over budget they are refused before any check; a failed login is
    answered C{-ERR [AUTH] authorization failed} after a growing delay
    (C{failure_delay} per recent failure); the connection is closed after
    C{max_failures_per_connection} failures (qmail-popup closes after one).
  - Commands are processed one at a time; lines pipelined behind a slow one
    (a password check, a RETR) wait in a bounded buffer.  After STLS every
    byte already received is discarded (RFC 2595).  A line over 512 octets
    gets C{-ERR line too long} and is skipped.
  - Each command line must be complete within C{timeout} seconds of the
    server waiting for it (L{LineDeadline}: per line, not per byte as
    qmail); a password check or mailbox child does not count, a RETR gets
    a whole period whenever its output moves on.  At the deadline the
    connection is closed silently (qmail does so).
  - Every close goes through L{ConnectionCloser}: an unfinished TLS
    handshake is aborted, a client that does not read is aborted after a
    grace period - after QUIT only once its output stops moving for
    C{timeout} seconds (the messages are already deleted).
  - Connections are counted at accept, in total and per client address
    (L{ConnectionLimiter}); the excess gets C{-ERR [SYS/TEMP]} and is closed.
  - A dropped connection deletes nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, cast

from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLContextFactory, ISSLTransport, ITLSTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from pymta.address import safe_log
from pymta.authlimit import LoginLimiter
from pymta.connectionclose import CLOSE_GRACE_SECONDS, ConnectionCloser
from pymta.connectionlimit import PER_ADDRESS, TOTAL, ConnectionLimiter, counted_address
from pymta.linedeadline import Hold, LineDeadline
from pymta.pop3d.auth import APOP_DIGEST, Account, Authenticator
from pymta.pop3d.login import LoginAnswer, LoginRules, attempt_login
from pymta.pop3d.logindeadline import LOGIN_WITHIN_SECONDS, REPLY_TOO_SLOW, LoginDeadline
from pymta.pop3d.mailbox import MailboxSession, NoMaildir
from pymta.pop3d.transaction import TransactionCommands
from pymta.sessionevents import NO_EVENTS, SessionEvents
from pymta.streamtransport import IStreamTransport

__all__ = ["POP3Server", "POP3Factory", "ServerSettings", "LoginRefused", "MAX_LINE"]

MAX_LINE = 512
MAX_PIPELINE_BUFFER = 65536
LIMIT_REPLIES = {
    TOTAL: b"[SYS/TEMP] too many connections, try again later",
    PER_ADDRESS: b"[SYS/TEMP] too many connections from your address, try again later",
}

log = Logger(namespace="pymta.pop3d")


class LoginRefused(Exception):
    """The account is valid but cannot be served here; the text goes to the client."""


@dataclass
class ServerSettings:
    """What every connection of one listener shares."""

    hostname: str
    authenticator: Authenticator
    open_mailbox: Callable[[Account], defer.Deferred]
    tls_context: IOpenSSLContextFactory | None = None  # a ServerTLS, for STLS
    allow_plaintext: bool = False
    timeout: float = 600.0
    close_grace: float = CLOSE_GRACE_SECONDS  # pymta.connectionclose: how often a closing connection's output is looked at
    login_within: float = LOGIN_WITHIN_SECONDS  # seconds from the greeting to a login (pymta.pop3d.logindeadline)
    max_connections: int = 40  # control/concurrencypop3
    max_connections_per_address: int = 10  # control/concurrencypop3perip
    connections: ConnectionLimiter = field(default_factory=ConnectionLimiter)
    failure_delay: float = 2.0
    max_failures_per_connection: int = 3
    limiter: LoginLimiter | None = None  # one of its own when None
    clock: object | None = None  # IReactorTime; the global reactor when None
    counter: list[int] = field(default_factory=lambda: [0])
    events: SessionEvents = NO_EVENTS  # what the sessions tell the daemon's metrics (pymta.sessionevents)

    def reactor_time(self):  # type: ignore[no-untyped-def]
        if self.clock is None:
            from twisted.internet import reactor

            return reactor
        return self.clock

    def login_rules(self) -> LoginRules:
        if self.limiter is None:
            self.limiter = LoginLimiter(self.reactor_time())
        return LoginRules(self.limiter, self.reactor_time(), self.failure_delay, self.max_failures_per_connection)


@implementer(IHandshakeListener)
class POP3Server(Protocol, TransactionCommands):
    """One POP3 connection."""
    transport: IStreamTransport  # every method but __init__ runs once connected

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.clock = settings.reactor_time()
        self._deadline = LineDeadline(self.clock, settings.timeout, self._timed_out)
        self._closer = ConnectionCloser(self.clock, grace=settings.close_grace, idle=settings.timeout)  # closes for good, TLS handshake or not
        self._login_deadline = LoginDeadline(self.clock, settings.login_within, self._login_too_slow)
        self._counted = False
        self.state = "AUTHORIZATION"
        self.timestamp = b""
        self.user: bytes | None = None
        self.account: Account | None = None
        self.mailbox: MailboxSession | None = None
        self.deleted: set[int] = set()
        self.last = 0
        self.failures = 0
        self._buffer = b""
        self._skipping = False
        self._busy = False
        self._command_hold: Hold | None = None  # the deadline, held while a command is worked on
        self._processing = False
        self._closed = False
        self._reading_paused = False
        self._sasl_pending = False
        self._tls_started = False
        self._login_pending: defer.Deferred | None = None

    # -- connection -----------------------------------------------------

    def peer_address(self) -> str:
        peer = self.transport.getPeer()
        return getattr(peer, "host", None) or str(peer)

    def connectionMade(self) -> None:
        factory = getattr(self, "factory", None)
        if factory is not None:
            factory.connections.add(self)
        settings = self.settings
        implicit_tls = ISSLTransport.providedBy(self.transport)
        settings.events.session(implicit_tls)
        if implicit_tls:
            self._closer.tls_started()
        refusal = settings.connections.acquire(
            counted_address(self.transport, self.peer_address()),
            settings.max_connections,
            settings.max_connections_per_address,
        )
        if refusal is not None:
            log.info("pop3 refused {peer}: too many connections ({limit})", peer=self.peer_address(), limit=refusal)
            self.err(LIMIT_REPLIES[refusal])
            return self.close()
        self._counted = True
        self._no_delay()
        settings.counter[0] += 1
        self.timestamp = f"<{os.getpid()}.{int(self.clock.seconds())}.{settings.counter[0]}@{settings.hostname}>".encode(
            "ascii", "replace"
        )
        self._deadline.restart()
        self._login_deadline.start()
        self.send(b"+OK " + self.timestamp)

    def _no_delay(self) -> None:
        """Replies are written whole; Nagle would only hold back a reply's last segment."""
        transport: object = self.transport
        for _ in range(3):  # the TCP transport may sit under a TLS wrapper
            set_no_delay = getattr(transport, "setTcpNoDelay", None)
            if set_no_delay is not None:
                try:
                    set_no_delay(True)
                except OSError:
                    pass
                return
            transport = getattr(transport, "transport", None)
            if transport is None:
                return

    def handshakeCompleted(self) -> None:
        self._closer.handshake_completed()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closer.lost()
        factory = getattr(self, "factory", None)
        if factory is not None:
            factory.connections.discard(self)
        self._closed = True
        self._deadline.stop()
        self._login_deadline.stop()
        if self._counted:
            self._counted = False
            self.settings.connections.release(counted_address(self.transport, self.peer_address()))
        if self._login_pending is not None:  # a check waiting for a slot never runs; checkpassword is killed
            self._login_pending.cancel()
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None

    def _timed_out(self, reason: str) -> None:
        log.info("pop3 timeout from {peer}", peer=self.peer_address())
        self.close()

    def _login_too_slow(self) -> None:
        log.info("pop3 no login within {seconds} s from {peer}", seconds=self.settings.login_within, peer=self.peer_address())
        self.err(REPLY_TOO_SLOW)
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._closer.close(self.transport)

    def finish(self) -> None:
        """Close after a complete reply (QUIT): what is buffered drains while the client reads it."""
        if not self._closed:
            self._closed = True
            self._deadline.stop()  # no more input is read: the closer watches the output
            self._login_deadline.stop()
            self._closer.finish(self.transport)

    def send(self, line: bytes) -> None:
        if not self._closed:
            self.transport.write(line + b"\r\n")

    def ok(self, text: bytes = b"") -> None:
        self.send(b"+OK " + text)

    def err(self, text: bytes) -> None:
        self.send(b"-ERR " + text)

    def send_multiline(self, first: bytes, lines: list[bytes]) -> None:
        body = [b"+OK " + first]
        body.extend(b"." + line if line.startswith(b".") else line for line in lines)
        body.append(b".")
        if not self._closed:
            self.transport.write(b"\r\n".join(body) + b"\r\n")

    # -- input ----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._closer.received()  # decrypted bytes: a TLS handshake is over, even behind haproxy:ssl:
        self._deadline.received(data)
        self._buffer += data
        self._process()

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while not self._busy and not self._closed:
                if self._skipping:
                    end = self._buffer.find(b"\n")
                    if end < 0:
                        self._buffer = b""
                        break
                    self._buffer = self._buffer[end + 1 :]
                    self._skipping = False
                    continue
                end = self._buffer.find(b"\n")
                if end < 0:
                    if len(self._buffer) > MAX_LINE:
                        self._buffer = b""
                        self._skipping = True
                        self.err(b"line too long")
                    break
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                if end + 1 > MAX_LINE:
                    self.err(b"line too long")
                    continue
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._run(line)
        finally:
            self._processing = False
        self._flow_control()

    def _flow_control(self) -> None:
        if self._closed:
            return
        waiting = len(self._buffer) > MAX_PIPELINE_BUFFER
        if waiting and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
        elif not waiting and self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def _run(self, line: bytes) -> None:
        self._command_hold = self._deadline.hold()  # the server's own work does not count against the client
        try:
            result = self._dispatch(line)
        except Exception:
            log.failure("pop3 command failed")
            self.err(b"internal error")
            self.close()
            return
        if isinstance(result, defer.Deferred):
            self._busy = True
            self._login_deadline.hold()
            result.addErrback(self._command_crashed)
            result.addBoth(self._command_done)
        else:
            self._command_hold.release()

    def _output_moved_on(self) -> None:
        """The command is answered, or its long reply is being read: the client's time counts again."""
        if self._command_hold is not None:
            self._command_hold.release()
        self._deadline.progress()

    def _command_crashed(self, failure: Failure) -> None:
        log.failure("pop3 command failed", failure)
        self.err(b"internal error")
        self.close()

    def _command_done(self, _: object) -> None:
        self._busy = False
        self._output_moved_on()
        self._login_deadline.release()
        if not self._closed:
            self._process()

    def _dispatch(self, line: bytes) -> Optional[defer.Deferred]:
        if self._sasl_pending:
            self._sasl_pending = False
            return self._sasl_response(line)
        verb, _, arg = line.partition(b" ")
        name = verb.upper().decode("ascii", "replace")
        if self.state == "AUTHORIZATION":
            handler = getattr(self, f"auth_{name}", None)
            if handler is None:
                self.err(b"authorization first")
                return None
        else:
            handler = getattr(self, f"trans_{name}", None)
            if handler is None:
                self.err(b"unimplemented")
                return None
        return handler(arg)

    # -- shared commands -------------------------------------------------

    def tls_active(self) -> bool:
        return self._tls_started or ISSLTransport.providedBy(self.transport)

    def plaintext_allowed(self) -> bool:
        return self.settings.allow_plaintext or self.tls_active()

    def capabilities(self) -> list[bytes]:
        caps = [b"TOP", b"UIDL", b"PIPELINING", b"RESP-CODES"]
        if self.state == "AUTHORIZATION":
            if self.plaintext_allowed():
                caps += [b"USER", b"SASL PLAIN"]
            if self.settings.tls_context is not None and not self.tls_active():
                caps.append(b"STLS")
        caps.append(b"IMPLEMENTATION pymta")
        return caps

    def auth_CAPA(self, arg: bytes) -> None:
        self.send_multiline(b"capability list follows", self.capabilities())

    trans_CAPA = auth_CAPA

    def auth_NOOP(self, arg: bytes) -> None:
        self.ok()

    trans_NOOP = auth_NOOP

    # -- AUTHORIZATION ---------------------------------------------------

    def auth_QUIT(self, arg: bytes) -> None:
        self.ok()
        self.finish()

    def _refuse_plaintext(self) -> bool:
        if self.plaintext_allowed():
            return False
        self.err(b"[AUTH] plaintext login refused: use STLS first")
        return True

    def auth_USER(self, arg: bytes) -> None:
        if self._refuse_plaintext():
            return
        if not arg:
            self.err(b"syntax error")
            return
        self.user = arg
        self.ok()

    def auth_PASS(self, arg: bytes) -> Optional[defer.Deferred]:
        if self._refuse_plaintext():
            return None
        if self.user is None:
            self.err(b"USER first")
            return None
        if not arg:
            self.err(b"syntax error")
            return None
        user, self.user = self.user, None
        return self._login(user, lambda: self.settings.authenticator.check_password(user, arg))

    def auth_APOP(self, arg: bytes) -> Optional[defer.Deferred]:
        user, space, digest = arg.rpartition(b" ")
        if not space or not user:
            self.err(b"syntax error")
            return None
        if not APOP_DIGEST.match(digest):
            self.err(b"syntax error: the APOP digest is 32 hexadecimal digits")
            return None
        return self._login(user, lambda: self.settings.authenticator.check_apop(user, self.timestamp, digest))

    def auth_AUTH(self, arg: bytes) -> Optional[defer.Deferred]:
        if not arg:
            self.send_multiline(b"", [b"PLAIN"])
            return None
        mechanism, _, initial = arg.partition(b" ")
        if mechanism.upper() != b"PLAIN":
            self.err(b"unsupported authentication mechanism")
            return None
        if self._refuse_plaintext():
            return None
        if not initial:
            self._sasl_pending = True
            self.send(b"+ ")
            return None
        return self._sasl_response(initial)

    def _sasl_response(self, response: bytes) -> Optional[defer.Deferred]:
        if response == b"*":
            self.err(b"authentication cancelled")
            return None
        try:
            decoded = b"" if response == b"=" else base64.b64decode(response, validate=True)
        except (binascii.Error, ValueError):
            self.err(b"invalid base64 in AUTH PLAIN response")
            return None
        parts = decoded.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            self.err(b"malformed AUTH PLAIN response")
            return None
        authzid, user, password = parts
        if authzid and authzid != user:
            self.err(b"authorization identity must be empty or the user name")
            return None
        return self._login(user, lambda: self.settings.authenticator.check_password(user, password))

    def auth_STLS(self, arg: bytes) -> None:
        if self.settings.tls_context is None:
            self.err(b"STLS not available")
            return
        if self.tls_active():
            self.err(b"already using TLS")
            return
        self.ok(b"begin TLS negotiation")
        self._buffer = b""  # RFC 2595: nothing received before the handshake counts
        self._skipping = False
        self.user = None
        self._tls_started = True
        self.settings.events.tls_started()
        self._closer.tls_started()
        cast(ITLSTransport, self.transport).startTLS(self.settings.tls_context)  # type: ignore[arg-type]  # takes a context factory too

    def _login(self, user: bytes, check: Callable[[], defer.Deferred]) -> defer.Deferred:
        d = attempt_login(self.settings.login_rules(), self.peer_address(), user, check, self.failures)
        self._login_pending = d
        return d.addCallback(self._login_answered)

    def _login_answered(self, result: Account | LoginAnswer | None) -> defer.Deferred | None:
        self._login_pending = None
        if isinstance(result, Account):
            return self._logged_in(result)
        if result is not None and not self._closed:
            self.failures += result.failed
            if result.failed:
                self.settings.events.login_failed()
            self.err(result.text)
            if result.close:
                self.close()
        return None

    def _logged_in(self, account: Account) -> defer.Deferred:
        if self._closed:
            return defer.succeed(None)
        d = defer.maybeDeferred(self.settings.open_mailbox, account)

        def opened(mailbox: MailboxSession) -> None:
            if self._closed:
                mailbox.close()
                return
            self.account = account
            self.mailbox = mailbox
            if hasattr(mailbox, "on_progress"):
                mailbox.on_progress = self._output_moved_on  # type: ignore[attr-defined]
            self.state = "TRANSACTION"
            self._login_deadline.stop()
            log.info(
                "pop3 login {user} from {peer}: {count} messages",
                user=safe_log(account.name), peer=self.peer_address(), count=len(mailbox.messages),
            )
            self.ok()

        def failed(failure: Failure) -> None:
            if failure.check(LoginRefused):
                self.err(str(failure.value).encode("utf-8", "replace"))
            elif failure.check(NoMaildir):
                self.err(b"this user has no $HOME/Maildir")
            else:
                log.failure("pop3 cannot open the mailbox of {user}", failure, user=safe_log(account.name))
                self.err(b"unable to scan $HOME/Maildir")
            self.close()

        return d.addCallbacks(opened, failed)


class POP3Factory(Factory):
    """Builds L{POP3Server}s sharing one L{ServerSettings}; C{connections} are the open ones."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.connections: set[POP3Server] = set()

    def buildProtocol(self, addr: object) -> POP3Server:
        protocol = POP3Server(self.settings)
        protocol.factory = self
        return protocol
