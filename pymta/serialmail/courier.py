# -*- test-case-name: tests.serialmail.test_handover -*-
"""
The seam between handing over a Maildir and the protocol that carries it.

A L{Courier} takes one held message at a time and says what the server did
with it (a L{Handover}).  L{pymta.serialmail.smtpcourier} carries messages
over SMTP (C{pymta maildirsmtp}); a QMTP courier plugs in the same way
(C{maildirqmtp}).  The handover loop (L{pymta.serialmail.handover}) decides
what happens to the file; a courier never touches the Maildir.

Durability promise: a courier reports C{K} only once the server has
accepted the message (for SMTP, a 2xx reply to the final dot); anything
else it reports is C{Z} or C{D}, and the file stays until it is handed
over, bounced or too old.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Protocol

from twisted.internet.defer import Deferred

from pymta.serialmail.held import HeldMessage

__all__ = ["Handover", "Courier", "ACCEPTED", "DEFERRED", "REJECTED"]

ACCEPTED = "K"
DEFERRED = "Z"
REJECTED = "D"


@dataclass(frozen=True)
class Handover:
    """
    What became of one message: C{status} C{K} (the server took it), C{Z}
    (try again later) or C{D} (refused for good); C{text} in qmail-remote's
    wording; C{stop}: the server cannot be reached or refuses to talk, so no
    further message is tried in this run.
    """

    status: str
    text: str
    stop: bool = False


class Courier(Protocol):
    """Hands held messages to one server, one after the other, on as few connections as it can."""

    def send(self, message: HeldMessage, body: IO[bytes]) -> "Deferred[Handover]":
        """Hand over C{message}; C{body} is its file positioned at L{HeldMessage.body_offset}."""

    def close(self) -> "Deferred[None]":
        """End the session politely; fires once the connection is gone."""
