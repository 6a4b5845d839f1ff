# -*- test-case-name: tests.queue.test_dsnbook -*-
"""
What pymta keeps of a queued message's DSN data once it is preprocessed
(the content of C{dsn/N/ID}, L{pymta.queue.dsnfile}): the message's
C{RET}/C{ENVID}, each recipient's request by its routed address, and the
successes recorded for a notice.  pymta-send holds one per message with
DSN data in memory (L{pymta.queue.dsnbook}) and hands it to the channels
with each job (L{pymta.interfaces.DeliveryJob.dsn}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymta.dsn.params import RecipientDsn

__all__ = ["DsnFile"]


@dataclass(frozen=True)
class DsnFile:
    """
    A message's data, the requests by routed address, the successes to
    report.  C{successes} grows as they are recorded (the file first, then
    this map: L{pymta.queue.dsnbook.DsnBook.append_success}); nothing else changes.
    """

    ret: str | None = None
    envid: str | None = None
    requests: dict[str, RecipientDsn] = field(default_factory=dict)
    #: routed recipient -> RFC 3464 action, in the order they were recorded
    successes: dict[str, str] = field(default_factory=dict)

    def request(self, address: str) -> RecipientDsn:
        """The request of the recipient C{address} (as routed); the defaults when it has none."""
        return self.requests.get(address, RecipientDsn())
