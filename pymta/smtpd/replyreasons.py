# -*- test-case-name: tests.smtpd.test_replyreasons -*-
"""
What an SMTP reply line says happened, for the daemon's metrics: a message
accepted, a sender, recipient or message refused and why, STARTTLS
started, a login refused.  Read from the replies themselves, so the
protocol needs one hook (L{pymta.smtpd.context.SMTPDContext.replied})
and every refusal is counted whatever code path sent it.

Any other C{4xx}/C{5xx} reply (a DNSBL's, SPF's or DMARC's refusal, whose
text comes from their configuration) counts as a refusal of reason
C{other}, so the label set stays bounded; a command's syntax or sequence
error (C{500}-C{504}, C{555}: C{503 MAIL first}) and the AUTH dialogue's
own replies (C{454}, C{535}, C{538}: failed logins are counted on their
own) count as nothing, nor does a positive reply: these are the
dialogue, not a decision about mail.
"""

from __future__ import annotations

import re

from pymta.sessionevents import SessionEvents

__all__ = ["ACCEPTED", "TLS_STARTED", "LOGIN_FAILED", "OTHER", "reply_event", "tell"]

ACCEPTED = "accepted"
TLS_STARTED = "tls"
LOGIN_FAILED = "login failed"

_QUEUED = re.compile(r"^250 ok \d+ qp \d+$")

#: reply starts, most specific first, and the refusal reason each stands for
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("553 sorry, that domain isn't in my list of allowed rcpthosts", "relaying_denied"),
    ("553 sorry, your envelope sender is in my badmailfrom list", "badmailfrom"),
    ("550 sorry, no mailbox here by that name", "unknown_recipient"),
    ("451 temporary failure checking the recipient", "recipient_check_failed"),
    ("452 too many recipients", "too_many_recipients"),
    ("552 sorry, that message size exceeds my databytes limit", "message_too_big"),
    ("554 too many hops", "mail_loop"),
    ("451 See https://cr.yp.to/docs/smtplf.html", "bare_lf"),
    ("530 authentication required", "auth_required"),
    ("421 too many connections", "connection_limit"),
    ("421 too many failed logins", "login_budget"),
    ("421 too many authentication failures", "login_budget"),
    ("451 timeout", "timeout"),
    ("451 qqt failure", "queue_error"),
    ("451 qq ", "queue_error"),
    ("554 qq ", "queue_refused"),
)

_LOGIN_FAILURES = ("535 authorization failed", "421 too many authentication failures")

#: the reason of a 4xx/5xx reply listed nowhere above
OTHER = "other"

#: reply codes of the dialogue (a command's syntax or order, AUTH's exchange): no decision about mail
_DIALOGUE_CODES = frozenset({"500", "501", "502", "503", "504", "555", "454", "535", "538"})


def reply_event(line: str) -> list[str]:
    """
    What C{line} (one reply, or several joined by CRLF) says: C{ACCEPTED},
    C{TLS_STARTED}, C{LOGIN_FAILED} or C{"refused:REASON"}, in order; empty
    for the plain dialogue.
    """
    if _QUEUED.match(line):
        return [ACCEPTED]
    if line.startswith("220 ready to start TLS"):
        return [TLS_STARTED]
    events = []
    if line.startswith(_LOGIN_FAILURES):
        events.append(LOGIN_FAILED)
    for start, reason in _REFUSALS:
        if line.startswith(start):
            events.append(f"refused:{reason}")
            break
    else:
        code = line[:3]
        if line[:1] in ("4", "5") and code.isdigit() and code not in _DIALOGUE_CODES:
            events.append(f"refused:{OTHER}")
    return events


def tell(events: SessionEvents, line: str) -> None:
    """Pass what C{line} says on to C{events}."""
    for event in reply_event(line):
        if event == ACCEPTED:
            events.accepted()
        elif event == TLS_STARTED:
            events.tls_started()
        elif event == LOGIN_FAILED:
            events.login_failed()
        else:
            events.refused(event.split(":", 1)[1])
