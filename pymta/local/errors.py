"""The failure every local delivery step raises: a qmail status letter and text."""

from __future__ import annotations

from typing import Iterable, Iterator

__all__ = ["DeliveryFailure", "guard_reads", "printed"]


def printed(text: str) -> str:
    """
    C{text} as qmail-local and qmail-lspawn print a message: with its
    newline, which qmail-send's log shows as the final C{/}
    (C{...(#5.1.1)/}).  A text that already ends with one is kept.
    """
    return text if text.endswith("\n") else text + "\n"


class DeliveryFailure(Exception):
    """
    A delivery step failed.  C{status} is C{Z} (temporary, qmail-local exit
    111) or C{D} (permanent, exit 100); C{text} is the line qmail would print,
    without its newline; L{report} is what goes into the delivery report.
    C{verbatim}: C{text} is a program's own output, reported exactly as the
    program wrote it (qmail adds nothing to it).
    """

    def __init__(self, status: str, text: str, verbatim: bool = False) -> None:
        super().__init__(text)
        if status not in ("Z", "D"):
            raise ValueError(status)
        self.status = status
        self.text = text
        self.verbatim = verbatim

    @property
    def report(self) -> str:
        """The report text: C{text} with qmail's newline, or a program's output as it is."""
        return self.text if self.verbatim else printed(self.text)

    @classmethod
    def temporary(cls, text: str, verbatim: bool = False) -> "DeliveryFailure":
        return cls("Z", text, verbatim)

    @classmethod
    def permanent(cls, text: str, verbatim: bool = False) -> "DeliveryFailure":
        return cls("D", text, verbatim)


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
