# -*- test-case-name: tests.dsn.test_params -*-
"""
Delivery Status Notification requests (RFC 3461): what a client asks for
with MAIL and RCPT, as pymta keeps it and passes it on.

- MAIL C{RET=FULL|HDRS} (return the whole message or its header in a
  failure report) and C{ENVID=xtext} (the sender's id of the transaction,
  at most L{MAX_ENVID} characters): a L{MessageDsn}.
- RCPT C{NOTIFY=NEVER} or a comma list of C{SUCCESS}, C{FAILURE},
  C{DELAY}, and C{ORCPT=addr-type;xtext} (the recipient as first given, at
  most L{MAX_ORCPT} characters): a L{RecipientDsn}.

xtext is printable ASCII with C{+XX} (two upper-case hex digits) for
C{+}, C{=} and anything outside 33..126; values are kept as received
(already xtext, so they hold no blank, NUL or LF) and decoded only where a
report shows them (L{xtext_decode}).

A request is "plain" when it asks for nothing beyond the defaults: no RET,
no ENVID, and per recipient no NOTIFY and no ORCPT other than the RCPT
address itself.  Such a message carries no DSN data through the queue at
all (L{MessageDsn.meaningful} is False), so it is queued byte for byte as
before.

Pure: parsing returns a value or raises L{DsnSyntaxError}, whose text is
the SMTP reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

__all__ = [
    "MAX_ENVID",
    "MAX_ORCPT",
    "NOTIFY_KEYWORDS",
    "DsnSyntaxError",
    "RecipientDsn",
    "MessageDsn",
    "xtext_encode",
    "xtext_decode",
    "is_xtext",
    "check_ret",
    "check_envid",
    "check_notify",
    "check_orcpt",
    "mail_dsn",
    "rcpt_dsn",
    "mail_parameters",
    "rcpt_parameters",
]

MAX_ENVID = 100
MAX_ORCPT = 500
NOTIFY_KEYWORDS = ("SUCCESS", "FAILURE", "DELAY")

_XTEXT = re.compile(r"\A(?:[!-*,-<>-~]|\+[0-9A-F]{2})*\Z")
_ADDR_TYPE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")


class DsnSyntaxError(ValueError):
    """A malformed DSN parameter; C{reply} is the SMTP answer."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.reply = f"501 malformed {what} parameter (#5.5.4)"


def is_xtext(value: str) -> bool:
    """Whether C{value} is xtext (RFC 3461 section 4)."""
    return bool(_XTEXT.match(value))


def xtext_encode(text: str) -> str:
    """C{text} as xtext; characters outside ASCII are encoded from their UTF-8 bytes."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append("+%02X" % byte)
    return "".join(out)


def xtext_decode(value: str) -> str:
    """
    The text of an xtext C{value} (which L{is_xtext} accepts), for a report:
    control characters become C{?} so that a header field stays one line.
    """
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+" and _is_hex(value[i + 1 : i + 3]):
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += value[i].encode("utf-8", "surrogateescape")
            i += 1
    text = raw.decode("utf-8", "replace")
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789ABCDEF" for c in pair)


@dataclass(frozen=True)
class RecipientDsn:
    """
    One recipient's request: C{notify} None (not given: failures are
    reported, as without DSN), C{("NEVER",)}, or some of
    L{NOTIFY_KEYWORDS} in that order; C{orcpt} C{addr-type;xtext} or None.
    """

    notify: tuple[str, ...] | None = None
    orcpt: str | None = None

    @property
    def plain(self) -> bool:
        return self.notify is None and self.orcpt is None

    def wants(self, keyword: str) -> bool:
        """Whether a C{SUCCESS}/C{FAILURE}/C{DELAY} report is wanted (failures are, by default)."""
        if self.notify is None:
            return keyword == "FAILURE"
        return keyword in self.notify

    def original_recipient(self) -> str | None:
        """C{addr-type;address} for a report's C{Original-Recipient:} (decoded), or None."""
        if self.orcpt is None:
            return None
        kind, _, value = self.orcpt.partition(";")
        return f"{kind};{xtext_decode(value)}"


@dataclass(frozen=True)
class MessageDsn:
    """
    A message's DSN data: C{ret} (C{FULL}, C{HDRS} or None), C{envid}
    (xtext or None), and one L{RecipientDsn} per envelope recipient, in order.
    """

    ret: str | None = None
    envid: str | None = None
    recipients: tuple[RecipientDsn, ...] = field(default=())

    @property
    def meaningful(self) -> bool:
        """Anything beyond the defaults (see the module docstring)."""
        return self.ret is not None or self.envid is not None or not all(r.plain for r in self.recipients)

    def for_recipient(self, index: int) -> RecipientDsn:
        return self.recipients[index] if index < len(self.recipients) else RecipientDsn()


def check_ret(value: str) -> str:
    ret = value.upper()
    if ret not in ("FULL", "HDRS"):
        raise DsnSyntaxError("RET")
    return ret


def check_envid(value: str) -> str:
    if not value or len(value) > MAX_ENVID or not is_xtext(value):
        raise DsnSyntaxError("ENVID")
    return value


def check_notify(value: str) -> tuple[str, ...]:
    words = [w.strip().upper() for w in value.split(",")]
    if words == ["NEVER"]:
        return ("NEVER",)
    if not words or any(w not in NOTIFY_KEYWORDS for w in words) or len(set(words)) != len(words):
        raise DsnSyntaxError("NOTIFY")
    return tuple(k for k in NOTIFY_KEYWORDS if k in words)


def check_orcpt(value: str) -> str:
    kind, semi, address = value.partition(";")
    if not semi or not _ADDR_TYPE.match(kind) or not address or len(value) > MAX_ORCPT or not is_xtext(address):
        raise DsnSyntaxError("ORCPT")
    return kind.lower() + ";" + address


def _once(parameters: Sequence[str], names: tuple[str, ...]) -> dict[str, str]:
    """The values of C{names} among C{KEY=value} parameters; a repeated one is a syntax error."""
    found: dict[str, str] = {}
    for p in parameters:
        key, _, value = p.partition("=")
        key = key.upper()
        if key in names:
            if key in found:
                raise DsnSyntaxError(key)
            found[key] = value
    return found


def mail_dsn(parameters: Sequence[str]) -> tuple[str | None, str | None]:
    """C{(ret, envid)} from MAIL's ESMTP parameters (others are ignored); L{DsnSyntaxError}."""
    found = _once(parameters, ("RET", "ENVID"))
    ret = check_ret(found["RET"]) if "RET" in found else None
    envid = check_envid(found["ENVID"]) if "ENVID" in found else None
    return ret, envid


def rcpt_dsn(parameters: Sequence[str], recipient: str) -> RecipientDsn:
    """
    The request of RCPT's ESMTP parameters (others are ignored);
    L{DsnSyntaxError}.  An ORCPT naming C{recipient} itself as C{rfc822}
    is dropped: it says nothing the recipient does not.
    """
    found = _once(parameters, ("NOTIFY", "ORCPT"))
    notify = check_notify(found["NOTIFY"]) if "NOTIFY" in found else None
    orcpt = check_orcpt(found["ORCPT"]) if "ORCPT" in found else None
    if orcpt is not None and orcpt.lower() == "rfc822;" + xtext_encode(recipient).lower():
        orcpt = None
    return RecipientDsn(notify, orcpt)


def mail_parameters(dsn: MessageDsn | None) -> str:
    """What to add to a MAIL command for a peer that offers DSN (C{""} for nothing)."""
    if dsn is None:
        return ""
    out = ""
    if dsn.ret is not None:
        out += " RET=" + dsn.ret
    if dsn.envid is not None:
        out += " ENVID=" + dsn.envid
    return out


def rcpt_parameters(request: RecipientDsn | None) -> str:
    """What to add to a RCPT command for a peer that offers DSN (C{""} for nothing)."""
    if request is None:
        return ""
    out = ""
    if request.notify is not None:
        out += " NOTIFY=" + ",".join(request.notify)
    if request.orcpt is not None:
        out += " ORCPT=" + request.orcpt
    return out
