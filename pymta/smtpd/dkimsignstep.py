# -*- test-case-name: tests.smtpd.test_dkimsignstep -*-
"""
DKIM signing as an end-of-data step (L{pymta.smtpd.endofdata}).

A trusted session (a logged-in user, or a client the access rules give
C{RELAYCLIENT}) has each message signed when its From domain has keys in
control/dkimkeys (L{pymta.dkim}): the C{DKIM-Signature:} fields go at the
top of the message before it is queued, so the queue holds the final
bytes and every delivery attempt sends the same signed message.  Other
sessions get no step (their messages are not ours to sign), and so does
every session while there is no key.

Like OpenDKIM behind Postfix, the step signs every such message, also one
for a local recipient: only mail leaving for remote domains needs the
signature, but at acceptance the recipients' routing is not final
(virtualdomains, .qmail forwarding).  The step comes after the sender
checks (L{pymta.smtpd.senderauthstep}), which skip a trusted session.
"""

from __future__ import annotations

from twisted.internet import defer

from pymta.dkim.signing import DKIMSigning
from pymta.smtpd.endofdata import SessionFacts, StepVerdict
from pymta.smtpd.spool import SpooledMessage

__all__ = ["DKIMSignStep", "SigningTransaction"]


class SigningTransaction:
    """One trusted transaction: nothing at MAIL FROM, the signatures at the end of DATA."""

    def __init__(self, signing: DKIMSigning) -> None:
        self.signing = signing

    def at_mail(self) -> "defer.Deferred[str | None]":
        return defer.succeed(None)

    def at_end_of_data(self, message: SpooledMessage) -> "defer.Deferred[StepVerdict]":
        return self.signing.sign_spooled(message).addCallback(lambda fields: StepVerdict(add=fields))


class DKIMSignStep:
    """The step of a daemon, over its L{DKIMSigning} (which follows the reloads)."""

    def __init__(self, signing: DKIMSigning) -> None:
        self.signing = signing

    def for_transaction(self, facts: SessionFacts) -> SigningTransaction | None:
        if not facts.trusted or not self.signing.active:
            return None
        return SigningTransaction(self.signing)
