"""The failure every local delivery step raises: a qmail status letter and text."""

from __future__ import annotations

from typing import Iterable, Iterator

__all__ = ["DeliveryFailure", "guard_reads"]


class DeliveryFailure(Exception):
    """
    A delivery step failed.  C{status} is C{Z} (temporary, qmail-local exit
    111) or C{D} (permanent, exit 100); C{text} is the line qmail would print.
    """

    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        if status not in ("Z", "D"):
            raise ValueError(status)
        self.status = status
        self.text = text

    @classmethod
    def temporary(cls, text: str) -> "DeliveryFailure":
        return cls("Z", text)

    @classmethod
    def permanent(cls, text: str) -> "DeliveryFailure":
        return cls("D", text)


def guard_reads(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """C{pieces} of the message, an C{OSError} while reading them turned into a deferral."""
    iterator = iter(pieces)
    while True:
        try:
            piece = next(iterator)
        except StopIteration:
            return
        except OSError as e:
            raise DeliveryFailure.temporary(f"Unable to read message: {e.strerror}. (#4.3.0)") from None
        yield piece
