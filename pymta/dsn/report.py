# -*- test-case-name: tests.dsn.test_report -*-
"""
Delivery status reports in RFC 3464's form: a C{multipart/report;
report-type=delivery-status} message with three parts -

1. C{text/plain}: for people, in the words of pymta's QSBMF bounce (the
   C{Hi. This is the ...} line and one C{<address>:} block per recipient);
2. C{message/delivery-status}: C{Reporting-MTA}, C{Original-Envelope-Id},
   C{Arrival-Date}, then per recipient C{Final-Recipient},
   C{Original-Recipient}, C{Action}, C{Status}, C{Remote-MTA} and
   C{Diagnostic-Code};
3. the message (C{message/rfc822}) or only its header
   (C{text/rfc822-headers}): the whole message for failures unless the
   sender asked C{RET=HDRS}, the header only in a report of successes alone.

What a recipient's fields say is worked out from the report text a channel
gave (L{failure_report}): the enhanced status code from qmail's C{(#x.y.z)}
or the remote server's reply, the remote server from C{Connected to ...}.

Pure apart from reading the message it returns: L{compose_report} streams
the report through a C{write} callable, as the QSBMF composer does.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence

from pymta.address import qmail_date
from pymta.dsn.params import xtext_decode

__all__ = ["RecipientReport", "ReportHeader", "parse_bounce_blocks", "failure_report", "success_report", "compose_report"]

_QMAIL_STATUS = re.compile(r"\(#([245]\.\d{1,3}\.\d{1,3})\)")
_SAID = re.compile(r"Remote host said: ([2-5]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?([^\n]*)")
_REMOTE = re.compile(r"\A(?:Connected to )?([0-9A-Fa-f.:]+) (?:but |does not like |accepted |failed )")
_CHUNK = 65536


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's fields of the report, and its block of the human part."""

    final_recipient: str
    action: str
    status: str
    text: str
    original_recipient: str | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None


@dataclass(frozen=True)
class ReportHeader:
    """Who the report is from and to and what it is about."""

    reporting_mta: str
    bounce_from: str
    to: str
    return_path: str
    arrival: float
    envid: str | None = None
    ret: str | None = None


def _one_line(text: str, limit: int = 900) -> str:
    return " ".join("".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in part) for part in text.split())[:limit]


def parse_bounce_blocks(data: bytes) -> list[tuple[str, str]]:
    """The C{(recipient, report text)} pairs of a C{bounce/ID} file (L{pymta.queue.bounce.bounce_entry}'s blocks)."""
    out = []
    for block in data.decode("utf-8", "surrogateescape").split("\n\n"):
        head, _, text = block.partition("\n")
        if head.startswith("<") and head.endswith(">:"):
            out.append((head[1:-2], text))
    return out


def failure_report(recipient: str, text: str, original: str | None = None) -> RecipientReport:
    """A failed recipient's fields, from the channel's report C{text}."""
    said = _SAID.search(text)
    status = None
    found = _QMAIL_STATUS.search(text)
    if said is not None and said.group(2):
        status = said.group(2)
    elif found is not None:
        status = found.group(1)
    if status is None or not status.startswith("5"):
        status = "5.0.0"
    remote = _REMOTE.match(text)
    if said is not None:
        code, enhanced, rest = said.group(1), said.group(2), said.group(3).lstrip(" -")
        diagnostic = "smtp; " + _one_line(" ".join(p for p in (code, enhanced, rest) if p))
    else:
        diagnostic = "X-pymta; " + _one_line(text.replace("/", " "))
    return RecipientReport(recipient, "failed", status, text, original,
                           f"dns; {remote.group(1)}" if remote is not None else None, diagnostic)


def success_report(recipient: str, action: str, original: str | None = None) -> RecipientReport:
    """A delivered (local) or relayed (to a server without DSN) recipient's fields."""
    if action == "delivered":
        text = "Your message was delivered to this mailbox.\n"
    else:
        text = "Your message was relayed to a server that sends no delivery notices; this is the last you will hear.\n"
    return RecipientReport(recipient, action, "2.0.0", text, original)


def _subject(recipients: Sequence[RecipientReport]) -> str:
    if any(r.action == "failed" for r in recipients):
        return "failure notice"
    if all(r.action == "delivered" for r in recipients):
        return "Delivery Status Notification (delivered)"
    return "Delivery Status Notification (relayed)"


def _copy(source: BinaryIO, write: Callable[[bytes], None], header_only: bool) -> None:
    if not header_only:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                return
            write(chunk)
    for line in iter(source.readline, b""):
        if line in (b"\n", b"\r\n"):
            return
        write(line)


def compose_report(
    write: Callable[[bytes], None],
    header: ReportHeader,
    recipients: Sequence[RecipientReport],
    message: BinaryIO,
    now: float,
    bouncehost: str,
) -> None:
    """Write the whole report through C{write}; C{message} is the queued message (its first line is Received)."""
    boundary = f"pymta-{uuid.uuid4().hex}"
    failed = any(r.action == "failed" for r in recipients)
    header_only = header.ret == "HDRS" or not failed
    intro = ("I could not deliver your message to the addresses listed below.\n"
             "The failure is permanent, so I have stopped trying; sorry it did not work out.\n" if failed else
             "This is the notice of delivery you asked for.\n")
    head = (
        f"Date: {qmail_date(now)}\n"
        f"From: {header.bounce_from}\n"
        f"To: {header.to}\n"
        f"Subject: {_subject(recipients)}\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"\n'
        "\n"
        "This is a delivery status report in MIME format (RFC 3464).\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n"
        "\n"
        f"Hi. This is the pymta-send program at {bouncehost}.\n{intro}\n"
    )
    for r in recipients:
        head += f"<{r.final_recipient}>:\n{r.text.rstrip(chr(10))}\n\n"
    head += f"--{boundary}\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; {_one_line(header.reporting_mta)}\n"
    if header.envid is not None:
        head += f"Original-Envelope-Id: {_one_line(xtext_decode(header.envid))}\n"  # kept as xtext
    head += f"Arrival-Date: {qmail_date(header.arrival)}\n"
    for r in recipients:
        head += f"\nFinal-Recipient: rfc822; {_one_line(r.final_recipient)}\n"
        if r.original_recipient is not None:
            head += f"Original-Recipient: {_one_line(r.original_recipient)}\n"
        head += f"Action: {r.action}\nStatus: {r.status}\n"
        if r.remote_mta is not None:
            head += f"Remote-MTA: {r.remote_mta}\n"
        if r.diagnostic is not None:
            head += f"Diagnostic-Code: {r.diagnostic}\n"
    kind = "text/rfc822-headers" if header_only else "message/rfc822"
    # the message is returned as it came, 8-bit bytes and all
    head += (f"\n--{boundary}\nContent-Type: {kind}\nContent-Transfer-Encoding: 8bit\n\n"
             f"Return-Path: {header.return_path}\n")
    write(head.encode("utf-8", "surrogateescape"))
    _copy(message, write, header_only)
    write(f"\n--{boundary}--\n".encode("ascii"))
