# -*- test-case-name: tests.smtpd.test_milteredits -*-
"""
The filters' end-of-message modifications (L{pymta.milter.api.Modification})
applied to a message and its envelope: pure functions, no I/O.

The header is a list of whole fields as the queue stores them (LF line
ends, continuation lines included, each ending in LF); smtpd's own
C{Received:} line is the first field, as the filters saw it.  The rules,
in the order the modifications come:

- L{AddHeader} appends a field at the end of the header; L{InsertHeader}
  puts it before the field at C{index} (0: at the top; past the end: at the
  end).
- L{ChangeHeader} changes the C{index}-th (1-based) field of that name
  (case-insensitive); an empty value deletes it; when there is no such
  field a non-empty value is added at the end (as Sendmail and Postfix do).
- A new field is C{Name: value} (no extra space when the value starts with
  white space); a filter's CRLF line ends become LF, and a bare CR or LF
  not followed by white space (which would end the field) gets a tab after
  it, so a filter can never add a second field through a value.
- L{ReplaceBody}: a run of chunks one after the other is one new body
  (the last run wins); CRLF becomes LF (joined once: a body may be large).
- L{ChangeSender}, L{AddRecipient}, L{DeleteRecipient} change the
  envelope (addresses without angle brackets, recipients compared
  case-insensitively; an added recipient already there is not added twice).
- L{Quarantine}: the message is queued held, with the reason (the first
  given is kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence

from pymta.milter.api import (
    AddHeader, AddRecipient, ChangeHeader, ChangeSender, DeleteRecipient, InsertHeader, Modification,
    Quarantine, ReplaceBody,
)

__all__ = ["Envelope", "EditedMessage", "apply_modifications", "field_bytes", "field_name", "strip_brackets"]


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class EditedMessage:
    """
    The result: C{header} is None when no header modification came (the
    stored header stands), C{body} None when no new body came; the final
    envelope; C{quarantine} the reason when a filter asked to hold the message.
    """

    envelope: Envelope
    header: tuple[bytes, ...] | None = None
    body: bytes | None = None
    quarantine: str | None = None

    @property
    def rewrites_message(self) -> bool:
        return self.header is not None or self.body is not None


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BREAK_WITHOUT_FOLD = re.compile(rb"\n(?![ \t])")


def strip_brackets(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address


def field_name(field: bytes) -> bytes:
    """The name of a stored field (before its colon, trailing white space removed), lowercased."""
    return field.partition(b":")[0].rstrip(b" \t").lower()


def field_bytes(name: str, value: str) -> bytes:
    """
    A new header field as stored: C{Name: value\\n}, every line break LF and
    followed by white space; a blank line of the value (which would end the
    header for some readers) is left out.
    """
    first, *rest = _LINE_BREAK.split(value.encode("utf-8", "surrogateescape"))
    raw = _BREAK_WITHOUT_FOLD.sub(b"\n\t", b"\n".join([first, *(line for line in rest if line.strip(b" \t"))]))
    separator = b":" if raw[:1] in (b" ", b"\t") else b": "
    return name.encode("utf-8", "surrogateescape").strip() + separator + raw.rstrip(b"\n") + b"\n"


def _change(header: list[bytes], change: ChangeHeader) -> None:
    wanted = change.name.encode("utf-8", "surrogateescape").strip().lower()
    seen = 0
    for position, field in enumerate(header):
        if field_name(field) == wanted:
            seen += 1
            if seen == max(change.index, 1):
                if change.value:
                    header[position] = field_bytes(change.name, change.value)
                else:
                    del header[position]
                return
    if change.value:
        header.append(field_bytes(change.name, change.value))


def _lf_body(chunks: Sequence[bytes]) -> bytes:
    """The chunks as one body with LF line ends, a chunk at a time (a CRLF may span two chunks)."""
    def pieces() -> Iterator[bytes]:
        carry = b""
        for chunk in chunks:
            chunk, carry = carry + chunk, b""
            if chunk.endswith(b"\r"):
                chunk, carry = chunk[:-1], b"\r"
            yield chunk.replace(b"\r\n", b"\n")
        yield carry
    return b"".join(pieces())


def apply_modifications(header: Sequence[bytes], envelope: Envelope,
                        modifications: Sequence[Modification]) -> EditedMessage:
    """The message and envelope after C{modifications}; see the module's description."""
    fields = list(header)
    header_changed = False
    sender = envelope.sender
    recipients = list(envelope.recipients)
    body: bytes | None = None
    chunks: list[bytes] | None = None
    quarantine: str | None = None
    for modification in modifications:
        if not isinstance(modification, ReplaceBody) and chunks is not None:
            body, chunks = _lf_body(chunks), None
        if isinstance(modification, AddHeader):
            fields.append(field_bytes(modification.name, modification.value))
        elif isinstance(modification, InsertHeader):
            fields.insert(max(modification.index, 0), field_bytes(modification.name, modification.value))
        elif isinstance(modification, ChangeHeader):
            _change(fields, modification)
        elif isinstance(modification, ReplaceBody):
            if chunks is None:
                chunks = []
            chunks.append(modification.chunk)
            continue
        elif isinstance(modification, ChangeSender):
            sender = strip_brackets(modification.address)
            continue
        elif isinstance(modification, AddRecipient):
            added = strip_brackets(modification.address)
            if added.lower() not in {r.lower() for r in recipients}:
                recipients.append(added)
            continue
        elif isinstance(modification, DeleteRecipient):
            gone = strip_brackets(modification.address).lower()
            recipients = [r for r in recipients if r.lower() != gone]
            continue
        elif isinstance(modification, Quarantine):
            quarantine = quarantine if quarantine is not None else modification.reason
            continue
        header_changed = True
    if chunks is not None:
        body = _lf_body(chunks)
    return EditedMessage(Envelope(sender, tuple(recipients)), tuple(fields) if header_changed else None, body,
                         quarantine)
