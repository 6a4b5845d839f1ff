# -*- test-case-name: tests.test_tap -*-
"""
C{twistd pymta}: smtpd, send and pop3d in one process sharing one root.

::

    twistd -n pymta --root DIR --smtp ENDPOINT --submission ENDPOINT --pop3 ENDPOINT

One L{ControlReader} serves all three, so C{SIGHUP} (or C{pymta ctl
reload}) re-reads the control files once and then lets smtpd and pop3d
refresh what they derive from them (access rules, certificate, DNSBL
zones).  smtpd writes accepted mail through the queue manager's in-process
sink: the C{250} comes after the fsync and the scheduler picks the message
up at once, without a trip through the inject socket.  The local delivery
spawner and the POP3 mailbox spawner start in C{privilegedStartService},
so they are the only parts that keep root: started as root, the process
then becomes the owner of ROOT/queue (L{pymta.privileges}), or whatever
C{--uid}/C{--gid} told twistd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from twisted.application.service import IService
from twisted.logger import Logger
from twisted.python import usage

from pymta.authlimit import limiter_for
from pymta.configcheck.startup import checked_reader
from pymta.control import ControlError
from pymta.monitoring import METRICS_OPTION, attach_monitoring, check_metrics_option, daemon_metrics
from pymta.pidfilecheck import refuse_unsafe_pid_file
from pymta.privileges import RootDroppingService
from pymta.sessionevents import NO_EVENTS, SessionEvents
from pymta.smtpd.access import TcpRulesError
from pymta.tls import TLSConfigError

if TYPE_CHECKING:
    from pymta.metrics.daemon import DaemonMetrics

__all__ = ["Options", "makeService"]

log = Logger(namespace="pymta")


class Options(usage.Options):
    synopsis = "--root DIR [--smtp ENDPOINT]... [--submission ENDPOINT]... [--pop3 ENDPOINT]... [--qmtp ENDPOINT]... [--qmqp ENDPOINT]..."
    longdesc = (
        "pymta's SMTP server, queue manager and POP3 server in one process. "
        "ENDPOINT is a Twisted endpoint string such as tcp:25 or "
        "ssl:465:privateKey=key.pem:certKey=cert.pem."
    )
    optParameters = [
        ["root", "r", None, "pymta root directory (default $PYMTA_ROOT, else /var/pymta)"],
        ["stop-timeout", None, "60", "seconds to wait for deliveries in flight when stopping"],
        METRICS_OPTION,
    ]
    optFlags = [
        ["allow-plaintext-auth", None,
         "allow AUTH (submission) and USER/PASS (POP3) without TLS; for loopback test setups only"],
        ["no-delivery", None, "defer every delivery instead of using the local and remote channels"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["smtp"] = []
        self["submission"] = []
        self["pop3"] = []
        self["qmtp"] = []
        self["qmqp"] = []

    def _endpoint(self, kind: str, endpoint: str) -> None:
        from twisted.internet import reactor

        from pymta.tls import check_server_endpoint

        check_server_endpoint(reactor, endpoint)  # a usage error naming it, not a traceback later
        self[kind].append(endpoint)

    def opt_smtp(self, endpoint: str) -> None:
        """Listen for SMTP (port 25 rules) on ENDPOINT (repeatable)."""
        self._endpoint("smtp", endpoint)

    def opt_submission(self, endpoint: str) -> None:
        """Listen for message submission (AUTH required) on ENDPOINT (repeatable)."""
        self._endpoint("submission", endpoint)

    def opt_pop3(self, endpoint: str) -> None:
        """Listen for POP3 on ENDPOINT (repeatable; ssl: endpoints for POP3S)."""
        self._endpoint("pop3", endpoint)

    def opt_qmtp(self, endpoint: str) -> None:
        """Listen for QMTP (qmail-qmtpd, tcp.smtp's rules) on ENDPOINT (repeatable)."""
        self._endpoint("qmtp", endpoint)

    def opt_qmqp(self, endpoint: str) -> None:
        """Listen for QMQP (qmail-qmqpd, etc/tcp.qmqp's rules) on ENDPOINT (repeatable)."""
        self._endpoint("qmqp", endpoint)

    def postOptions(self) -> None:
        from pymta.queue.tap import check_queue_root, parse_stop_timeout

        refuse_unsafe_pid_file(self, "pymta")
        check_metrics_option(self)
        check_queue_root(self)
        if not (self["smtp"] or self["submission"] or self["pop3"] or self["qmtp"] or self["qmqp"]):
            raise usage.UsageError("give at least one of --smtp, --submission, --pop3, --qmtp, --qmqp")
        parse_stop_timeout(self)


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from pymta.pop3d.service import build_pop3_service
    from pymta.qmqpd.service import add_qmqp_listeners
    from pymta.qmtpd.service import add_qmtp_listeners
    from pymta.queue.service import build_send_service
    from pymta.queue.tap import installed_channels
    from pymta.services import local_recipient_lookup
    from pymta.smtpd.service import build_smtpd_service

    root = options["root"]
    reader = checked_reader(root, "pymta")
    top = RootDroppingService(root)
    top.setName("pymta")
    channels = None if options["no-delivery"] else installed_channels(root, reader, reactor)
    metrics = daemon_metrics(options)
    try:
        send, sink = build_send_service(root, reader, channels, reactor, stop_timeout=options["stop-timeout"],
                                        metrics=metrics)
    except (ValueError, OSError, ControlError) as e:
        raise SystemExit(f"pymta: configuration error, not starting: {e}") from None
    send.setServiceParent(top)
    plaintext = bool(options["allow-plaintext-auth"])
    # one budget of failed logins and one bound on password checks for SMTP AUTH and POP3
    logins = limiter_for(reader, reactor)
    try:
        if options["smtp"] or options["submission"] or options["qmtp"] or options["qmqp"]:
            lookup, recipients = local_recipient_lookup(root, reactor)
            smtpd = build_smtpd_service(
                root, reader, sink, options["smtp"], options["submission"], reactor, auth_without_tls=plaintext,
                login_limiter=logins, local_recipients=recipients, events=_events(metrics, "smtpd"),
            )
            lookup.setServiceParent(smtpd)
            add_qmtp_listeners(smtpd, options["qmtp"], reactor)
            add_qmqp_listeners(smtpd, options["qmqp"], reactor)
        if options["pop3"]:
            pop3 = build_pop3_service(
                root, reader, options["pop3"], reactor, allow_plaintext=plaintext, login_limiter=logins,
                events=_events(metrics, "pop3d"),
            )
    except (ControlError, TcpRulesError, TLSConfigError, OSError) as e:
        raise SystemExit(f"pymta: configuration error, not starting: {e}") from None
    if options["smtp"] or options["submission"] or options["qmtp"] or options["qmqp"]:
        smtpd.setServiceParent(top)
        reader.on_reload(lambda controls: _refresh("smtpd", smtpd.reload))
    if options["pop3"]:
        pop3.setServiceParent(top)
        reader.on_reload(lambda controls: _refresh("pop3d", pop3.reload))
    attach_monitoring(top, top, "pymta", metrics, options["metrics"], reactor)
    top.use_twistd_options(getattr(options, "parent", None))
    return top


def _events(metrics: "DaemonMetrics | None", service: str) -> SessionEvents:
    return NO_EVENTS if metrics is None else metrics.sessions(service)


def _refresh(name: str, reload: Callable[[], None]) -> None:
    try:
        reload()
    except Exception:
        log.failure("{name}: reload failed; old settings kept", name=name)
