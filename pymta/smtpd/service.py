# -*- test-case-name: tests.smtpd.test_service -*-
"""
The SMTP daemon as a Twisted service: listeners for port 25 and submission
around one shared L{SMTPDContext}.

Endpoint strings are Twisted's (C{tcp:25}, C{tcp6:...}, C{unix:...},
C{systemd:...}).  C{ssl:PORT[:interface=...]} without C{privateKey} means
implicit TLS with ROOT/control/servercert.pem: the listener is a TCP one
wrapped in C{TLSMemoryBIOFactory}, so the certificate follows
L{SMTPDService.reload}.  An C{ssl:} string with its own C{privateKey} is
used as Twisted parses it (files read once).

A DNS resolver (L{pymta.dns.DNSResolver}) is made only when it is
needed: control/rbls lists zones, or tcp.smtp has C{=host} rules (then each
client's address is looked up in reverse, as tcpserver -h does, at most
5 seconds).

The opt-in RCPT check (control/rcptcheck, L{pymta.smtpd.rcptcheck}) asks
local delivery through L{pymta.interfaces.LocalRecipients}; whoever builds
the daemon (L{pymta.services}) hands one in, so smtpd itself never reads
the password database or home directories.

L{SMTPDService.reload} re-reads ROOT/etc/tcp.smtp, the certificate and
control/rbls, and applies the AUTH budgets of the control files (the caller
reloads the control files themselves through the L{ControlReader}); a
broken file keeps the old values and is logged.  The extra control files
smtpd reads are parsed by L{check_controls}, which the reader runs at
start and on every reload.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

from twisted.application import service
from twisted.cred.checkers import ICredentialsChecker
from twisted.logger import Logger

from pymta.authlimit import LoginLimiter
from pymta.control import ControlReader, Controls
from pymta.dkim.signing import DKIMSigning
from pymta.interfaces import LocalRecipients, MessageSink
from pymta.listenbacklog import listen_backlog
from pymta.qmailqueue.hook import QmailQueueHook
from pymta.milter.sessions import milters_from_control
from pymta.milter.settings import milter_specs
from pymta.sessionevents import NO_EVENTS, SessionEvents
from pymta.smtpd.access import AccessRules, TcpRulesError
from pymta.smtpd.auth import build_portal
from pymta.smtpd.context import ListenerSettings, SMTPDContext, per_ip_limit
from pymta.resolvers import configured_nameservers
from pymta.senderauth.settings import sender_auth_settings
from pymta.smtpd.dnsbl import DNSBL, rbl_zones
from pymta.smtpd.dkimsignstep import DKIMSignStep
from pymta.smtpd.endofdata import EndOfDataStage
from pymta.smtpd.factory import SMTPFactory
from pymta.smtpd.rcptcheck import RecipientCheck, rcptcheck_enabled, recipient_check_for
from pymta.smtpd.senderauthstep import SenderAuthStep, sender_auth_step
from pymta.tls import ServerTLS, TLSConfigError, cert_path, server_listener
from pymta.proxylistener import split_proxy_prefix
from pymta.trustedproxies import TrustedProxies, current_trusted_proxies

__all__ = ["SMTPDService", "build_smtpd_service", "check_controls", "rules_path", "cert_path"]

log = Logger()


def rules_path(root: str) -> str:
    return os.path.join(root, "etc", "tcp.smtp")


class SMTPDService(service.MultiService):
    """The listeners plus the shared context; C{reload()} re-reads rules, certificate and zones."""

    def __init__(
        self,
        root: str,
        context: SMTPDContext,
        resolver: Any = None,
        passwd_checkers: bool = False,
        local_recipients: LocalRecipients | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.context = context
        self.resolver = resolver
        self.passwd_checkers = passwd_checkers
        self.local_recipients = local_recipients
        self.sender_auth: SenderAuthStep | None = None
        self.dkim_sign: DKIMSignStep | None = None  # control/dkimkeys: signing of trusted sessions' mail
        self.trusted_proxies: Callable[[], TrustedProxies] = TrustedProxies  # haproxy: listeners (control/trustedproxies)

    def reload(self) -> None:
        """Re-read tcp.smtp, servercert.pem and control/rbls; keep old values on errors."""
        try:
            self.context.rules = AccessRules.load(rules_path(self.root))
        except (TcpRulesError, OSError) as e:
            log.error("smtpd: keeping old access rules: {path}: {error}", path=rules_path(self.root), error=str(e))
        tls = self.context.tls
        if tls is not None:
            try:
                tls.reload()
            except TLSConfigError as e:
                if tls.available:
                    log.error("smtpd: keeping old certificate: {error}", error=str(e))
        if self.resolver is None and (self.context.reader.current.extra_lines("rbls") or self.context.rules.uses_host_names):
            self.resolver = _default_resolver(self.context.clock, self.context.reader.current)
        self.context.resolver = self.resolver
        self.context.dnsbl = make_dnsbl(self.context.reader, self.resolver, self.context.clock)
        self.context.recipient_check = recipient_check_for(self.context.reader.current, self.local_recipients)
        if self.passwd_checkers:
            self.context.cram_md5 = passwd_allows_cram_md5(self.root)
        self.set_sender_auth(sender_auth_step(self.context.reader.current, self.context.clock, self.sender_auth))

    def set_sender_auth(self, step: SenderAuthStep | None) -> None:
        """Use C{step} (control/senderauth's checks; None: off) for the transactions that start from now on."""
        self.sender_auth = step
        # the sender checks see the message as received, a session's filters come next, signing last
        self.context.end_of_data = EndOfDataStage([step] if step is not None else [],
                                                  late=[self.dkim_sign] if self.dkim_sign is not None else [])

    def stopService(self):  # type: ignore[no-untyped-def]
        d = super().stopService()
        stop = getattr(self.resolver, "stop", None)
        if stop is not None:
            stop()
        if self.sender_auth is not None:
            self.sender_auth.verifier.stop()
        return d


def make_dnsbl(reader: ControlReader, resolver: Any, clock: Any) -> DNSBL | None:
    """A DNSBL over control/rbls, or None when the file is absent/empty or there is no resolver."""
    zones = rbl_zones(reader.current)
    if not zones or resolver is None:
        return None
    return DNSBL(resolver, zones, clock)


def _recipient_check(controls: Controls, local_recipients: LocalRecipients | None) -> RecipientCheck | None:
    check = recipient_check_for(controls, local_recipients)
    if check is None and local_recipients is None and rcptcheck_enabled(controls):
        log.warn("smtpd: control/rcptcheck is ignored: no local recipient lookup was given to this daemon")
    return check


def check_controls(controls: Controls) -> None:
    """
    Parse the extra control files smtpd reads (concurrencyperip, rbls,
    rcptcheck, senderauth, resolvers, milters): a L{ControlError} names the file and line.  Registered
    with the reader, so smtpd does not start on such a file and a reload
    that finds one keeps the old values.
    """
    per_ip_limit(controls)
    rbl_zones(controls)
    rcptcheck_enabled(controls)
    sender_auth_settings(controls)
    configured_nameservers(controls)
    milter_specs(controls)


def passwd_allows_cram_md5(root: str) -> bool:
    """True when every entry of ROOT/users/passwd keeps a plaintext secret (CRAM-MD5 can be checked)."""
    try:
        from pymta.passwdfile import read_passwd

        entries = read_passwd(os.path.join(root, "users", "passwd"), strict=False)
    except (ImportError, OSError, ValueError):
        return False
    return bool(entries) and all(e.plaintext_secret() is not None for e in entries.values())


def _default_checkers(root: str) -> list[ICredentialsChecker]:
    path = os.path.join(root, "users", "passwd")
    try:
        from pymta.passwdfile import PasswdFileChecker
    except ImportError:  # pragma: no cover - the module ships with pymta
        return []
    return [PasswdFileChecker(path)]


def _default_resolver(reactor: Any, controls: Controls) -> Any:
    try:
        from pymta.dns import DNSResolver
    except ImportError:  # pragma: no cover
        return None
    return DNSResolver(reactor=reactor, lifetime=10.0, nameservers=configured_nameservers(controls))


def build_smtpd_service(
    root: str,
    reader: ControlReader,
    sink: MessageSink,
    listen: Sequence[str],
    submission: Sequence[str],
    reactor: Any = None,
    portal_checkers: Iterable[ICredentialsChecker] | None = None,
    *,
    auth_without_tls: bool = False,
    resolver: Any = None,
    login_limiter: LoginLimiter | None = None,
    local_recipients: LocalRecipients | None = None,
    events: SessionEvents = NO_EVENTS,
) -> SMTPDService:
    """
    The SMTP service of a root: C{listen} endpoints speak port-25 SMTP,
    C{submission} endpoints require AUTH (offered after STARTTLS unless
    C{auth_without_tls}).  C{portal_checkers} default to a
    L{pymta.passwdfile.PasswdFileChecker} over ROOT/users/passwd; C{resolver}
    (for DNSBL) to L{pymta.dns.DNSResolver}, created only when
    control/rbls lists zones; C{login_limiter} (shared with pop3d in one
    process) to one of smtpd's own with the budgets of the control files.
    C{local_recipients} is local delivery's lookup for control/rcptcheck
    (L{pymta.local.recipients.LocalRecipientLookup} in the daemons); without
    one that check is off.  C{events} hears what the sessions do, for
    the daemon's metrics.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    own_checkers = portal_checkers is None
    checkers = list(portal_checkers) if portal_checkers is not None else _default_checkers(root)
    reader.add_check(check_controls)
    rules = AccessRules.load(rules_path(root))
    tls = ServerTLS(cert_path(root))
    if tls.error and os.path.exists(cert_path(root)):
        log.error("smtpd: no TLS: {error}", error=tls.error)
    if resolver is None and (reader.current.extra_lines("rbls") or rules.uses_host_names):
        resolver = _default_resolver(reactor, reader.current)
    context = SMTPDContext(
        reader=reader,
        sink=sink,
        clock=reactor,
        rules=rules,
        tls=tls,
        portal=build_portal(checkers) if checkers else None,
        auth_without_tls=auth_without_tls,
        local_ips=frozenset({"127.0.0.1", "::1"}),
        cram_md5=passwd_allows_cram_md5(root) if own_checkers else None,
        resolver=resolver,
        auth_limiter=login_limiter,
        events=events,
    )
    context.dnsbl = make_dnsbl(reader, resolver, reactor)
    context.qmailqueue = QmailQueueHook(root, reactor, lambda: reader.current.timeoutqmailqueue)
    context.recipient_check = _recipient_check(reader.current, local_recipients)
    # control/milters' filters for each new session (none listed: a None session, nothing asked)
    context.milters = milters_from_control(reader, reactor).session
    svc = SMTPDService(root, context, resolver, own_checkers, local_recipients)
    svc.dkim_sign = DKIMSignStep(DKIMSigning.for_reader(reader, reactor))
    svc.set_sender_auth(sender_auth_step(reader.current, reactor))
    svc.trusted_proxies = current_trusted_proxies(reader)
    for descriptions, is_submission in ((listen, False), (submission, True)):
        for description in descriptions:
            implicit_tls = split_proxy_prefix(description)[1].startswith("ssl:")
            settings = ListenerSettings(submission=is_submission, implicit_tls=implicit_tls)
            factory = SMTPFactory(context, settings)
            backlog = listen_backlog(reader.current.concurrencyincoming)
            listener = server_listener(reactor, description, factory, tls, svc.trusted_proxies, backlog=backlog)
            listener.setServiceParent(svc)
    return svc
