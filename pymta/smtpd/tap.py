# -*- test-case-name: tests.smtpd.test_tap -*-
"""
C{twistd pymta-smtpd --root DIR --listen ENDPOINT [--listen ...] [--submission ENDPOINT ...]}

The SMTP server as its own process: accepted mail goes to the queue manager
through the inject socket (ROOT/run/inject.sock).  SIGHUP re-reads the
control files, ROOT/etc/tcp.smtp, the certificate and control/rbls.

This module is the daemon's command line (the twistd plugin and the
C{.tac} files name it); the daemon itself is put together in
L{pymta.services}, where smtpd meets local delivery.
"""

from __future__ import annotations

from twisted.application import service
from twisted.python import usage

from pymta.control import default_root
from pymta.monitoring import METRICS_OPTION, check_metrics_option
from pymta.pidfilecheck import refuse_unsafe_pid_file

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "--root DIR --listen ENDPOINT [--listen ENDPOINT ...] [--submission ENDPOINT ...] [--qmtp ENDPOINT ...] [--qmqp ENDPOINT ...]"
    longdesc = (
        "pymta's ESMTP server (qmail-smtpd with ESMTP, STARTTLS, submission AUTH, "
        "tcp.smtp access rules and DNSBL).  ENDPOINT is a Twisted endpoint string; "
        "ssl:PORT without key files means implicit TLS with control/servercert.pem."
    )
    optParameters = [["root", "r", None, "pymta root directory (default $PYMTA_ROOT or /var/pymta)"], METRICS_OPTION]
    optFlags = [["allow-plaintext-auth", None, "offer AUTH on submission without TLS too"]]

    def opt_allow_plain_auth(self) -> None:
        """Old name of --allow-plaintext-auth."""
        self["allow-plaintext-auth"] = 1

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["submission"] = []
        self["qmtp"] = []
        self["qmqp"] = []

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

    def opt_qmtp(self, description: str) -> None:
        """QMTP endpoint (qmail-qmtpd, tcp.smtp's rules), e.g. tcp:209 (repeatable)"""
        self._check_endpoint(description)
        self["qmtp"].append(description)

    def opt_qmqp(self, description: str) -> None:
        """QMQP endpoint (qmail-qmqpd, etc/tcp.qmqp's rules), e.g. tcp:628 (repeatable)"""
        self._check_endpoint(description)
        self["qmqp"].append(description)

    def postOptions(self) -> None:
        refuse_unsafe_pid_file(self, "pymta-smtpd")
        check_metrics_option(self)
        if not self["root"]:
            self["root"] = default_root()
        if not self["listen"] and not self["submission"] and not self["qmtp"] and not self["qmqp"]:
            raise usage.UsageError("give at least one --listen, --submission, --qmtp or --qmqp endpoint")


def makeService(options: Options) -> service.IService:
    """The daemon, composed where smtpd meets local delivery: L{pymta.services.smtpd_daemon}."""
    from pymta.services import smtpd_daemon

    return smtpd_daemon(options)
