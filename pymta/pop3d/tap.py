# -*- test-case-name: tests.pop3d.test_tap -*-
"""
C{twistd -n pymta-pop3d --root DIR --listen ENDPOINT [--listen ...] [--allow-plaintext-auth]
[--checkpassword PROGRAM [ARG...]]}

The POP3 server as its own process.  SIGHUP re-reads the control files and
control/servercert.pem; users/passwd is re-read whenever it changes.
"""

from __future__ import annotations

import os
import shlex

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage

from pymta.configcheck.startup import checked_reader
from pymta.control import ControlError, default_root
from pymta.monitoring import METRICS_OPTION, attach_monitoring, check_metrics_option, daemon_metrics
from pymta.pidfilecheck import refuse_unsafe_pid_file
from pymta.privileges import RootDroppingService
from pymta.sessionevents import NO_EVENTS
from pymta.signals import reload_on_hangup
from pymta.tls import TLSConfigError

__all__ = ["Options", "makeService"]

log = Logger(namespace="pymta.pop3d")


class Options(usage.Options):
    synopsis = "--root DIR --listen ENDPOINT [--listen ENDPOINT ...] [--allow-plaintext-auth]"
    longdesc = (
        "pymta's POP3 server (qmail-popup + qmail-pop3d with CAPA, STLS, AUTH PLAIN, APOP, UIDL, TOP). "
        "ENDPOINT is a Twisted endpoint string; ssl:PORT without key files means implicit TLS with "
        "control/servercert.pem."
    )
    optParameters = [
        ["root", "r", None, "pymta root directory (default $PYMTA_ROOT or /var/pymta)"],
        ["checkpassword", None, None, "authenticate with this checkpassword program (a command line, split like a shell would, no shell run)"],
        ["timeout", None, 600.0, "seconds a client has to send each command line", float],
        ["failure-delay", None, 2.0, "seconds before answering a failed login", float],
        METRICS_OPTION,
    ]
    optFlags = [["allow-plaintext-auth", None, "accept USER/PASS and AUTH PLAIN without TLS"]]

    def opt_allow_plaintext(self) -> None:
        """Old name of --allow-plaintext-auth."""
        self["allow-plaintext-auth"] = 1

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """POP3 endpoint, e.g. tcp:110 or ssl:995 (repeatable)"""
        from twisted.internet import reactor

        from pymta.tls import check_server_endpoint

        check_server_endpoint(reactor, description)
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        refuse_unsafe_pid_file(self, "pymta-pop3d")
        check_metrics_option(self)
        if not self["root"]:
            self["root"] = default_root()
        if not self["listen"]:
            raise usage.UsageError("give at least one --listen endpoint")
        if self["checkpassword"]:
            argv = shlex.split(self["checkpassword"])
            if not argv or not os.path.isabs(argv[0]) or not os.access(argv[0], os.X_OK):
                raise usage.UsageError(f"checkpassword program {self['checkpassword']!r} is not an executable absolute path")
            self["checkpassword"] = argv
        if self["timeout"] <= 0 or self["failure-delay"] < 0:
            raise usage.UsageError("--timeout must be positive and --failure-delay not negative")


def makeService(options: Options) -> service.IService:
    from twisted.internet import reactor

    from pymta.pop3d.service import build_pop3_service

    root = os.path.abspath(options["root"])
    reader = checked_reader(root, "pymta-pop3d")
    metrics = daemon_metrics(options)
    try:
        svc = build_pop3_service(
            root,
            reader,
            options["listen"],
            reactor=reactor,
            allow_plaintext=bool(options["allow-plaintext-auth"]),
            checkpassword=options["checkpassword"] or None,
            timeout=options["timeout"],
            failure_delay=options["failure-delay"],
            events=NO_EVENTS if metrics is None else metrics.sessions("pop3d"),
        )
    except (ControlError, TLSConfigError, OSError) as e:
        raise SystemExit(f"pymta-pop3d: configuration error, not starting: {e}") from None

    reload_on_hangup(reader, svc.reload, "pop3d", log, reactor).setServiceParent(svc)
    top = RootDroppingService(root)
    svc.setServiceParent(top)
    attach_monitoring(top, svc, "pymta-pop3d", metrics, options["metrics"], reactor)
    top.use_twistd_options(getattr(options, "parent", None))
    return top
