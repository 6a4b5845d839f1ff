# -*- test-case-name: tests.test_services -*-
"""
Where the daemons are put together: parts that must not know each other
meet here and nowhere else.

smtpd (L{pymta.smtpd}) imports nothing of local or remote delivery; what
it needs of them it gets through the seams in L{pymta.interfaces}, built
here:

- the queue sink: L{pymta.queue.injectclient.InjectClientSink} in
  C{pymta-smtpd} (L{pymta.qmqpsink.QMQPSink} on a null client), the
  queue manager's own sink in C{twistd pymta}
  (L{pymta.tap});
- the RCPT check's lookup, L{pymta.interfaces.LocalRecipients}:
  L{pymta.local.recipients.LocalRecipientLookup}, a service whose thread
  pool runs with the SMTP service it is attached to.

L{smtpd_daemon} is what C{twistd pymta-smtpd} runs: the twistd plugin and
the C{.tac} files name L{pymta.smtpd.tap}, which parses the command line
and hands its options here.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application import service
from twisted.logger import Logger

from pymta.control import ControlError
from pymta.interfaces import LocalRecipients, MessageSink
from pymta.local.recipients import LocalRecipientLookup, RecentlyDeliverable
from pymta.monitoring import attach_monitoring, daemon_metrics
from pymta.privileges import RootDroppingService
from pymta.sessionevents import NO_EVENTS

__all__ = ["local_recipient_lookup", "smtpd_daemon", "INJECT_CONNECTIONS_KEPT"]

# the namespace pymta-smtpd's reload lines have always carried
_smtpd_log = Logger(namespace="pymta.smtpd.tap")

# about the number of messages committed at once under load (concurrencyincoming is 20 by default)
INJECT_CONNECTIONS_KEPT = 32


def local_recipient_lookup(root: str, reactor: Any) -> tuple[LocalRecipientLookup, LocalRecipients]:
    """
    Local delivery's lookup for smtpd's RCPT check: the service that runs its
    threads (to attach to smtpd's service) and the L{LocalRecipients} smtpd
    asks, which answers a recently found recipient from memory.
    """
    lookup = LocalRecipientLookup(root, reactor)
    return lookup, RecentlyDeliverable(lookup, reactor)


def smtpd_daemon(options: Any, reactor: Any = None) -> service.IService:
    """
    The service of C{twistd pymta-smtpd} for its parsed L{pymta.smtpd.tap.Options}:
    SMTP listeners writing through the inject socket, the RCPT lookup, a
    reload on SIGHUP, all under a L{RootDroppingService}.  A configuration
    error is one line and C{SystemExit}.
    """
    from pymta.configcheck.startup import checked_reader
    from pymta.qmqpd.service import add_qmqp_listeners
    from pymta.qmqpservers import null_client_path, qmqp_servers
    from pymta.qmqpsink import QMQPSink
    from pymta.qmtpd.service import add_qmtp_listeners
    from pymta.queue.framing import inject_socket_path
    from pymta.queue.injectclient import InjectClientSink
    from pymta.signals import reload_on_hangup
    from pymta.smtpd.access import TcpRulesError
    from pymta.smtpd.service import build_smtpd_service
    from pymta.tls import TLSConfigError

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    root = os.path.abspath(options["root"])
    reader = checked_reader(root, "pymta-smtpd")
    metrics = daemon_metrics(options)
    lookup, recipients = local_recipient_lookup(root, reactor)
    try:
        sink: MessageSink
        if os.path.exists(null_client_path(root)):  # a null client: no local queue (docs/qmqp.md)
            sink = QMQPSink(reactor, lambda: qmqp_servers(reader.current))
        else:  # connections to pymta-send are kept for the sessions' next messages
            sink = InjectClientSink(reactor, inject_socket_path(root), keep_connections=INJECT_CONNECTIONS_KEPT)
        svc = build_smtpd_service(
            root,
            reader,
            sink,
            options["listen"],
            options["submission"],
            reactor=reactor,
            auth_without_tls=bool(options["allow-plaintext-auth"]),
            local_recipients=recipients,
            events=NO_EVENTS if metrics is None else metrics.sessions("smtpd"),
        )
        add_qmtp_listeners(svc, options.get("qmtp", ()), reactor)
        add_qmqp_listeners(svc, options.get("qmqp", ()), reactor)
    except (ControlError, TcpRulesError, TLSConfigError, OSError) as e:
        raise SystemExit(f"pymta-smtpd: configuration error, not starting: {e}") from None
    lookup.setServiceParent(svc)
    reload_on_hangup(reader, svc.reload, "smtpd", _smtpd_log, reactor).setServiceParent(svc)
    top = RootDroppingService(root)
    svc.setServiceParent(top)
    attach_monitoring(top, svc, "pymta-smtpd", metrics, options.get("metrics"), reactor)
    top.use_twistd_options(getattr(options, "parent", None))
    return top
