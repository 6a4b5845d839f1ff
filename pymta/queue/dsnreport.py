# -*- test-case-name: tests.queue.test_dsnreport -*-
"""
The report finishing sends for a message, when it is RFC 3464's
(L{pymta.dsn.report}) rather than QSBMF (L{pymta.queue.bounce}): which form
applies (L{wants_report}) and the report built from the message's queue
files - the failures gathered in C{bounce/ID}, the successes and requests
of C{dsn/N/ID} (L{pymta.queue.dsnfile}), the birth in C{info/N/ID}.
"""

from __future__ import annotations

from typing import Callable

from pymta.address import quote_address, quote_local
from pymta.control import ControlError, Controls
from pymta.dsn.bounceformat import bounce_format
from pymta.dsn.params import RecipientDsn
from pymta.dsn.report import RecipientReport, ReportHeader, compose_report, failure_report, parse_bounce_blocks, success_report
from pymta.queue.bounce import BounceEnvelope
from pymta.queue.dsnfile import DsnFile
from pymta.queue.layout import QueueLayout
from pymta.queue.routing import strip_virtual_prepend

__all__ = ["wants_report", "notices_due", "write_report"]


def wants_report(controls: Controls, envelope: BounceEnvelope, dsn: DsnFile | None, warn: Callable[[str], None]) -> bool:
    """
    Whether the report goes out in RFC 3464's form: never for a double
    bounce; always for a message with DSN data or success notices; else
    as control/bounceformat says (a broken file: QSBMF, with a warning).
    """
    if envelope.double:
        return False
    if dsn is not None:
        return True
    try:
        return bounce_format(controls) == "dsn"
    except ControlError as e:
        warn(f"{e}; bouncing in QSBMF")
        return False


def notices_due(sender: str, dsn: DsnFile | None) -> bool:
    """Success notices to send: recorded ones, and a sender to send them to (never the null sender)."""
    return dsn is not None and bool(dsn.successes) and sender not in ("", "#@[]")


def _requests_by_shown_address(dsn: DsnFile | None, controls: Controls) -> dict[str, RecipientDsn]:
    """The requests by routed address and by the address a bounce block shows (virtual prepend removed)."""
    found: dict[str, RecipientDsn] = {}
    if dsn is None:
        return found
    for address, request in dsn.requests.items():
        found.setdefault(address, request)
        found.setdefault(strip_virtual_prepend(address, controls), request)
    return found


def write_report(
    write: Callable[[bytes], None],
    layout: QueueLayout,
    message_id: int,
    controls: Controls,
    envelope: BounceEnvelope,
    dsn: DsnFile | None,
    birth: float,
    now: float,
) -> None:
    """The report on C{message_id} through C{write}: its failures, then its success notices."""
    requests = _requests_by_shown_address(dsn, controls)
    recipients: list[RecipientReport] = []
    try:
        with open(layout.bounce(message_id), "rb") as f:
            blocks = parse_bounce_blocks(f.read())
    except FileNotFoundError:
        blocks = []
    for address, text in blocks:
        recipients.append(failure_report(address, text, requests.get(address, RecipientDsn()).original_recipient()))
    if notices_due(envelope.recipient, dsn):
        assert dsn is not None
        for address, action in dsn.successes.items():
            recipients.append(success_report(strip_virtual_prepend(address, controls), action,
                                             dsn.request(address).original_recipient()))
    header = ReportHeader(
        reporting_mta=controls.me or controls.bouncehost,
        bounce_from=f"{quote_local(controls.bouncefrom)}@{controls.bouncehost}",
        to=quote_address(envelope.recipient),
        return_path=f"<{quote_address(envelope.original_sender)}>",
        arrival=birth,
        envid=dsn.envid if dsn is not None else None,
        ret=dsn.ret if dsn is not None else None,
    )
    with open(layout.mess(message_id), "rb") as message:
        compose_report(write, header, recipients, message, now, controls.bouncehost)
