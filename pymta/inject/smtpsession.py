# -*- test-case-name: tests.cli.test_sendmail -*-
"""
C{sendmail -bs}: one SMTP session on standard input and output, run by
pymta's own SMTP server protocol (L{pymta.smtpd.protocol}).

As qmail's sendmail does for C{-bs}, the session is trusted like a local
client: it may relay (C{RELAYCLIENT=""}) and has no size limit
(C{DATABYTES=0}).  Messages go through the inject socket when the queue
manager runs, else straight into the queue when this process may write it
(root or the queue's owner); otherwise the session cannot start.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from zope.interface import implementer

from pymta.control import ControlError, ControlReader

__all__ = ["run_smtp_session", "SessionUnavailable", "TRUSTED_RULES"]

#: the access rule of a -bs session: allowed, may relay, no size limit
TRUSTED_RULES = ':allow,RELAYCLIENT="",DATABYTES="0",TCPREMOTEHOST="localhost"\n'


class SessionUnavailable(Exception):
    """The session cannot start (no usable queue, unreadable controls)."""


def _socket_accepts(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _sink(root: str, reactor: Any) -> Any:
    from pymta.queue.client import may_write_queue
    from pymta.queue.framing import inject_socket_path
    from pymta.queue.injectclient import InjectClientSink
    from pymta.queue.disk import QueueDisk
    from pymta.queue.layout import QueueLayout
    from pymta.queue.sink import QueueSink
    from pymta.queue.store import Queue

    path = inject_socket_path(root)
    if _socket_accepts(path):
        return InjectClientSink(reactor, path)
    queuedir = os.path.join(root, "queue")
    if not os.path.isdir(queuedir):
        raise SessionUnavailable(f"no queue manager on {path}, and {queuedir} is not a queue directory")
    if not may_write_queue(queuedir):
        raise SessionUnavailable(
            f"no queue manager on {path}; only root or the owner of {queuedir} may write the queue directly"
        )
    try:
        layout = QueueLayout(queuedir)
    except (OSError, ValueError) as e:
        raise SessionUnavailable(str(e)) from None
    return QueueSink(Queue(QueueDisk.plain(layout)), reactor)


def run_smtp_session(root: str, reactor: Any = None, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """
    Serve one SMTP session on the given descriptors and return when it
    ends.  Raises L{SessionUnavailable} before anything is said on the
    session when it cannot be served.
    """
    from twisted.internet import stdio

    from pymta.smtpd.access import AccessRules
    from pymta.smtpd.context import ListenerSettings, SMTPDContext, per_ip_limit
    from pymta.smtpd.protocol import SMTPServerProtocol

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    try:
        reader = ControlReader(root)
        reader.add_check(per_ip_limit)  # the session asks for it when it starts
    except ControlError as e:
        raise SessionUnavailable(f"unable to read controls: {e}") from None
    context = SMTPDContext(
        reader=reader,
        sink=_sink(root, reactor),
        clock=reactor,
        rules=AccessRules.parse(TRUSTED_RULES, "sendmail -bs"),
    )

    @implementer(IHalfCloseableProtocol)
    class StdioSession(SMTPServerProtocol):
        """Ends the process with the session; input ending early still gets its replies."""

        def readConnectionLost(self) -> None:
            # stdin is at its end (a script piping a whole session): answer
            # everything already read, then close, as qmail-smtpd does
            self.when_idle().addCallback(self._close)

        def writeConnectionLost(self) -> None:
            self.transport.loseConnection()

        def _close(self, _: None) -> None:
            if not self.transport.disconnecting:
                self.transport.loseConnection()

        def connectionLost(self, reason: Any = None) -> None:
            super().connectionLost(reason)
            # a queue commit in flight finishes before the process ends
            self.when_idle().addCallback(lambda _: reactor.callLater(0, reactor.stop))

    # mypy takes stdio's Windows StandardIO, which has no stdin and stdout; the POSIX one runs here
    stdio.StandardIO(  # type: ignore[call-arg]
        StdioSession(context, ListenerSettings()), stdin=stdin_fd, stdout=stdout_fd, reactor=reactor
    )
    reactor.run(installSignalHandlers=False)
