# -*- test-case-name: tests.smtpd.test_tap -*-
"""
C{twistd pymta-smtpd --root DIR --listen ENDPOINT [--listen ...] [--submission ENDPOINT ...]}

The SMTP server as its own process: accepted mail goes to the queue manager
through the inject socket (ROOT/run/inject.sock).  SIGHUP re-reads the
control files, ROOT/etc/tcp.smtp, the certificate and control/rbls.
"""

from __future__ import annotations

import os

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from pymta.configcheck.startup import checked_reader
from pymta.control import ControlError, default_root
from pymta.pidfilecheck import refuse_unsafe_pid_file
from pymta.privileges import RootDroppingService
from pymta.signals import reload_on_hangup

__all__ = ["Options", "makeService"]

log = Logger()


class Options(usage.Options):
    synopsis = "--root DIR --listen ENDPOINT [--listen ENDPOINT ...] [--submission ENDPOINT ...]"
    longdesc = (
        "pymta's ESMTP server (qmail-smtpd with ESMTP, STARTTLS, submission AUTH, "
        "tcp.smtp access rules and DNSBL).  ENDPOINT is a Twisted endpoint string; "
        "ssl:PORT without key files means implicit TLS with control/servercert.pem."
    )
    optParameters = [["root", "r", None, "pymta root directory (default $PYMTA_ROOT or /var/pymta)"]]
    optFlags = [["allow-plaintext-auth", None, "offer AUTH on submission without TLS too"]]

    def opt_allow_plain_auth(self) -> None:
        """Old name of --allow-plaintext-auth."""
        self["allow-plaintext-auth"] = 1

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["submission"] = []

    def _check_endpoint(self, description: str) -> None:
        from twisted.internet import reactor

        from pymta.tls import check_server_endpoint

        check_server_endpoint(reactor, description)

    def opt_listen(self, description: str) -> None:
        """SMTP (port 25 style) endpoint, e.g. tcp:25 (repeatable)"""
        self._check_endpoint(description)
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_submission(self, description: str) -> None:
        """submission endpoint (AUTH required), e.g. tcp:587 or ssl:465 (repeatable)"""
        self._check_endpoint(description)
        self["submission"].append(description)

    def postOptions(self) -> None:
        refuse_unsafe_pid_file(self, "pymta-smtpd")
        if not self["root"]:
            self["root"] = default_root()
        if not self["listen"] and not self["submission"]:
            raise usage.UsageError("give at least one --listen or --submission endpoint")


# about the number of messages committed at once under load (concurrencyincoming is 20 by default)
INJECT_CONNECTIONS_KEPT = 32


def makeService(options: Options) -> service.IService:
    from twisted.internet import reactor

    from pymta.queue.framing import inject_socket_path
    from pymta.queue.injectclient import InjectClientSink
    from pymta.smtpd.service import build_smtpd_service

    from pymta.smtpd.access import TcpRulesError
    from pymta.tls import TLSConfigError

    root = os.path.abspath(options["root"])
    reader = checked_reader(root, "pymta-smtpd")
    try:
        # connections to pymta-send are kept for the sessions' next messages
        sink = InjectClientSink(reactor, inject_socket_path(root), keep_connections=INJECT_CONNECTIONS_KEPT)
        svc = build_smtpd_service(
            root,
            reader,
            sink,
            options["listen"],
            options["submission"],
            reactor=reactor,
            auth_without_tls=bool(options["allow-plaintext-auth"]),
        )
    except (ControlError, TcpRulesError, TLSConfigError, OSError) as e:
        raise SystemExit(f"pymta-smtpd: configuration error, not starting: {e}") from None

    reload_on_hangup(reader, svc.reload, "smtpd", log, reactor).setServiceParent(svc)
    top = RootDroppingService(root)
    svc.setServiceParent(top)
    top.use_twistd_options(getattr(options, "parent", None))
    return top
