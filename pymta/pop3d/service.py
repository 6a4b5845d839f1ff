# -*- test-case-name: tests.pop3d.test_service -*-
"""
The POP3 daemon as a Twisted service.

L{build_pop3_service} creates one listener per endpoint string around one
shared L{ServerSettings}:

  - C{tcp:110}, C{tcp6:...}, C{unix:...}, C{systemd:...} as Twisted parses
    them; STLS is offered when ROOT/control/servercert.pem holds a key and
    certificate (L{pymta.tls.ServerTLS}, reloadable);
  - C{ssl:995[:interface=...]} without key files: implicit TLS with that same
    certificate (a TCP listener wrapped in C{TLSMemoryBIOFactory}); an
    C{ssl:} string with its own C{privateKey=} is used as Twisted parses it.

Started as root, the service spawns the root mailbox spawner in
C{privilegedStartService} (before twistd drops to C{--uid}), so system users
are served by children running as themselves for the daemon's whole life;
the spawner checks each login again itself (same users/passwd or
checkpassword program) and never takes a uid or path from pop3d.

Accounts come from ROOT/users/passwd (L{pymta.passwdfile.PasswdFileChecker})
or, given C{checkpassword}, from that external program.  Mailboxes are
opened by L{pymta.pop3d.opener.MailboxOpener} (in-process for the daemon's
own uid, a per-user child when the daemon is root).  USER/PASS and AUTH
PLAIN need TLS unless C{allow_plaintext}.  The APOP banner host is
control/me.  control/concurrencypop3 and control/concurrencypop3perip limit
the sessions, in total and per client address (IPv6: per /64); both are
read at start and on every reload.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Sequence

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from pymta.connectionclose import CLOSE_GRACE_SECONDS
from pymta.control import ControlReader, Controls
from pymta.listenbacklog import listen_backlog
from pymta.passwdfile import PasswdFileChecker
from pymta.authlimit import LoginLimiter, limiter_for
from pymta.pop3d.auth import Account, LoginKeepingAuthenticator, PasswdFileAuthenticator
from pymta.pop3d.checkpassword import CheckpasswordAuthenticator
from pymta.pop3d.opener import MailboxOpener
from pymta.pop3d.protocol import POP3Factory, ServerSettings
from pymta.pop3d.spawnerclient import MailboxSpawner
from pymta.sessionevents import NO_EVENTS, SessionEvents
from pymta.tls import ServerTLS, TLSConfigError, cert_path, implicit_tls_port, server_listener
from pymta.trustedproxies import current_trusted_proxies

__all__ = ["POP3Service", "build_pop3_service", "implicit_tls_port"]

log = Logger(namespace="pymta.pop3d")


class POP3Service(service.MultiService):
    """The listeners plus what C{reload} refreshes (certificate, APOP host name)."""

    def __init__(
        self, reader: ControlReader, settings: ServerSettings, tls: ServerTLS, spawner: MailboxSpawner | None = None
    ) -> None:
        super().__init__()
        self.reader = reader
        self.settings = settings
        self.tls = tls
        self.spawner = spawner
        self.factories: list[POP3Factory] = []

    def privilegedStartService(self) -> None:
        """As root (before twistd's uid drop): start the mailbox spawner, then bind."""
        if self.spawner is not None and not self.spawner.running and os.geteuid() == 0:
            self.spawner.start()
        super().privilegedStartService()

    def stopService(self) -> defer.Deferred:
        d = defer.maybeDeferred(super().stopService)
        if self.spawner is not None:
            spawner = self.spawner
            d.addCallback(lambda _: spawner.stop())
        return d

    def reload(self) -> None:
        """Re-read the certificate, control/me, the connection limits and the login budgets (the caller reloads the ControlReader)."""
        try:
            self.tls.reload()
            self.settings.tls_context = self.tls
        except TLSConfigError as e:
            if os.path.exists(self.tls.path):
                log.error("pop3d: keeping the old certificate: {error}", error=str(e))
        self.settings.hostname = self.reader.current.me or socket.getfqdn()
        apply_connection_limits(self.settings, self.reader.current)


def apply_connection_limits(settings: ServerSettings, controls: Controls) -> None:
    """control/concurrencypop3 and control/concurrencypop3perip into C{settings}, for new connections."""
    settings.max_connections = controls.concurrencypop3
    settings.max_connections_per_address = controls.concurrencypop3perip


def build_pop3_service(
    root: str,
    reader: ControlReader,
    listen: list[str] | Sequence[str],
    reactor: Any = None,
    allow_plaintext: bool = False,
    *,
    checkpassword: Sequence[str] | None = None,
    timeout: float = 600.0,
    failure_delay: float = 2.0,
    open_mailbox: Callable[[Account], defer.Deferred] | None = None,
    login_limiter: LoginLimiter | None = None,
    close_grace: float = CLOSE_GRACE_SECONDS,
    events: SessionEvents = NO_EVENTS,
) -> POP3Service:
    """
    The POP3 service of C{root} listening on every endpoint in C{listen}.
    C{open_mailbox} replaces the L{MailboxOpener} (tests use it to act as a
    mail uid while running as root).  C{login_limiter} is shared with
    smtpd in one process (C{twistd pymta}); by default pop3d has its own,
    with the budgets of the control files.  C{close_grace}: see
    L{pymta.connectionclose} (tests shorten it).  C{events} hears what
    the sessions do, for the daemon's metrics.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    cert = cert_path(root)
    tls = ServerTLS(cert)
    if tls.error and os.path.exists(cert):
        log.error("pop3d: no TLS: {error}", error=tls.error)
    passwd = os.path.join(root, "users", "passwd")
    if checkpassword:
        authenticator: Any = CheckpasswordAuthenticator(reactor, list(checkpassword))
        source_args = ["--checkpassword", *checkpassword]
    else:
        authenticator = PasswdFileAuthenticator(PasswdFileChecker(passwd, reactor=reactor))
        source_args = ["--passwd", passwd]
    spawner = MailboxSpawner(reactor, source_args) if open_mailbox is None else None
    settings = ServerSettings(
        hostname=reader.current.me or socket.getfqdn(),
        authenticator=LoginKeepingAuthenticator(authenticator),
        open_mailbox=open_mailbox or MailboxOpener(reactor, spawner=spawner),
        tls_context=tls if tls.available else None,
        allow_plaintext=allow_plaintext,
        timeout=timeout,
        close_grace=close_grace,
        failure_delay=failure_delay,
        limiter=login_limiter or limiter_for(reader, reactor),
        clock=reactor,
        events=events,
    )
    apply_connection_limits(settings, reader.current)
    svc = POP3Service(reader, settings, tls, spawner)
    proxies = current_trusted_proxies(reader)  # haproxy: listeners (control/trustedproxies)
    for description in listen:
        pop3_factory = POP3Factory(settings)
        svc.factories.append(pop3_factory)
        backlog = listen_backlog(settings.max_connections)
        listener = server_listener(reactor, description, pop3_factory, tls, proxies, backlog=backlog)
        listener.setServiceParent(svc)
    return svc
