# -*- test-case-name: tests.smtpd.test_senderauthstep -*-
"""
The sender checks as an end-of-data step (L{pymta.smtpd.endofdata}):
SPF at MAIL FROM, DKIM and DMARC at the end of DATA, the verdicts in an
C{Authentication-Results:} field with authserv-id C{control/me}
(L{pymta.senderauth}).

- A client that is not trusted: SPF of HELO and MAIL FROM is asked at
  MAIL FROM (so C{reject-spf-fail} can answer there, as other MTAs do:
  C{550 ... (#5.7.23)}, RFC 7372); DKIM and DMARC when the message is in
  (C{reject-dmarc}: C{550 ... (#5.7.1)} for a DMARC fail under
  C{p=reject}; C{451 ... (#4.7.5)} when the DMARC verdict is
  C{temperror} and the policy is C{p=reject} or could not be read, so
  a slow DNS cannot let a forgery through).  Otherwise the message is
  taken whatever the verdicts, also when DNS does not answer
  (C{temperror}).
- A relay client or a logged-in user is not checked and gets no new
  field.
- For every client, incoming C{Authentication-Results} fields carrying
  our authserv-id are removed (forgeries: ours is written after the
  message has arrived); those of other authserv-ids are kept.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from pymta.control import Controls
from pymta.resolvers import configured_nameservers, make_resolver
from pymta.senderauth.header import authentication_results, is_ours
from pymta.senderauth.settings import SenderAuthSettings, sender_auth_settings
from pymta.senderauth.spfcheck import SPFVerdicts
from pymta.senderauth.verdict import FAIL, TEMPERROR
from pymta.senderauth.verifier import MAX_VERIFIED_BYTES, SenderVerifier
from pymta.smtpd.endofdata import SessionFacts, StepVerdict
from pymta.smtpd.spool import SpooledMessage

__all__ = ["SenderAuthStep", "TrustedTransaction", "CheckedTransaction", "sender_auth_step"]

log = Logger()


class TrustedTransaction:
    """A trusted client's transaction: only our forged fields are removed."""

    def __init__(self, authserv_id: str) -> None:
        self.drop = partial(_is_ours, authserv_id)

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.succeed(None)

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        return defer.succeed(StepVerdict(drop=self.drop))


def _is_ours(authserv_id: str, name: bytes, value: bytes) -> bool:
    return is_ours(name, value, authserv_id)


class CheckedTransaction:
    """An untrusted client's transaction: SPF at MAIL FROM, the rest at the end of DATA."""

    def __init__(self, step: "SenderAuthStep", facts: SessionFacts) -> None:
        self.step = step
        self.facts = facts
        self.spf: SPFVerdicts | None = None

    async def _at_mail(self) -> str | None:
        facts, settings = self.facts, self.step.settings
        spf = self.spf = await self.step.verifier.check_sender(facts.client_ip, facts.sender, facts.helo)
        if settings.reject_spf_fail and spf.mailfrom is not None and spf.mailfrom.result == FAIL:
            log.info("smtpd: {ip}: SPF fail for {sender}: refused", ip=facts.client_ip, sender=facts.sender)
            return f"550 the SPF record of {spf.domain} does not allow {facts.client_ip} to send its mail (#5.7.23)"
        return None

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.Deferred.fromCoroutine(self._at_mail())

    async def _at_end_of_data(self, message: SpooledMessage) -> StepVerdict:
        spf = self.spf
        assert spf is not None, "at_mail comes first"
        content = message.read() if message.size <= MAX_VERIFIED_BYTES else message.header()
        found = await self.step.verifier.check_message(content, message.size, spf)
        step, dmarc = self.step, found.dmarc
        if step.settings.reject_dmarc and dmarc.verdict.result == FAIL and dmarc.policy == "reject":
            domain = dmarc.verdict.value("header.from")
            log.info("smtpd: {ip}: DMARC fail for {domain} (p=reject): refused", ip=self.facts.client_ip, domain=domain)
            return StepVerdict(refusal=f"550 DMARC policy of {domain} rejects this message: neither SPF nor DKIM "
                                      "aligns with the From domain (#5.7.1)")
        if step.settings.reject_dmarc and dmarc.verdict.result == TEMPERROR and dmarc.policy in ("reject", ""):
            domain = dmarc.verdict.value("header.from") or "the From domain"
            log.info("smtpd: {ip}: DMARC temperror for {domain} under reject-dmarc: deferred", ip=self.facts.client_ip,
                     domain=domain)
            return StepVerdict(refusal=f"451 DMARC of {domain} cannot be checked now: try again later (#4.7.5)")
        header = authentication_results(step.authserv_id, spf.all() + found.dkim + (dmarc.verdict,))
        return StepVerdict(add=(header,), drop=partial(_is_ours, step.authserv_id))

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        return defer.Deferred.fromCoroutine(self._at_end_of_data(message))


class SenderAuthStep:
    """The step of a daemon: its settings (control/senderauth), verifier and authserv-id (control/me)."""

    def __init__(self, settings: SenderAuthSettings, verifier: SenderVerifier, authserv_id: str) -> None:
        self.settings = settings
        self.verifier = verifier
        self.authserv_id = authserv_id

    def for_transaction(self, facts: SessionFacts) -> TrustedTransaction | CheckedTransaction:
        if facts.trusted:
            return TrustedTransaction(self.authserv_id)
        return CheckedTransaction(self, facts)


def sender_auth_step(controls: Controls, reactor: Any, previous: SenderAuthStep | None = None) -> SenderAuthStep | None:
    """
    The step control/senderauth asks for (None: checks off), its
    verifier asking the servers of control/resolvers.  A step of an
    earlier reload keeps its verifier (threads, answer cache) when the
    timeout is the same.  L{ControlError} for a bad file.
    """
    settings = sender_auth_settings(controls)
    nameservers = configured_nameservers(controls)
    if not settings.check:
        if previous is not None:
            previous.verifier.stop()
        return None
    authserv_id = controls.me or "localhost"
    verifier = previous.verifier if previous is not None else None
    if verifier is None or verifier.stopped or verifier.timeout != settings.timeout or verifier.nameservers != nameservers:
        if verifier is not None:
            verifier.stop()
        verifier = SenderVerifier(make_resolver(nameservers), authserv_id, settings.timeout, reactor, nameservers=nameservers)
    return SenderAuthStep(settings, verifier, authserv_id)
