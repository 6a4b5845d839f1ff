# -*- test-case-name: tests.milter.test_answers -*-
"""
What a filter's answers mean for pymta, pure: the stage's L{Action} (with
a custom SMTP reply for SMFIR_REPLYCODE), and the end of message's
requests as L{pymta.milter.api} modifications.

A custom reply must be a valid SMTP reply: every line a 4xx or 5xx code
(the same in each), C{-} after the code on every line but the last, no
control characters; 4xx means TEMPFAIL and 5xx REJECT.  Anything else is
a protocol error.  A modification the filter did not negotiate is not a
protocol error: it is left out (and named in the log by the caller).
"""

from __future__ import annotations

import re

from pymta.milter.api import Action, AddHeader, AddRecipient, ChangeHeader, ChangeSender, DeleteRecipient, \
    InsertHeader, Modification, Quarantine, ReplaceBody
from pymta.milter.negotiation import SMFIF_ADDHDRS, SMFIF_ADDRCPT, SMFIF_ADDRCPT_PAR, SMFIF_CHGBODY, \
    SMFIF_CHGFROM, SMFIF_CHGHDRS, SMFIF_DELRCPT, SMFIF_QUARANTINE, SMFIP_HDR_LEADSPC, Negotiated
from pymta.milter.wire import SMFIR_ACCEPT, SMFIR_ADDHEADER, SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR, SMFIR_CHGFROM, \
    SMFIR_CHGHEADER, SMFIR_CONTINUE, SMFIR_DELRCPT, SMFIR_DISCARD, SMFIR_INSHEADER, SMFIR_QUARANTINE, \
    SMFIR_REJECT, SMFIR_REPLBODY, SMFIR_REPLYCODE, SMFIR_TEMPFAIL, ProtocolError, Response

__all__ = ["stage_action", "parse_reply", "modification", "ACTION_BITS", "MAX_REPLY"]

MAX_REPLY = 4096
_LINE = re.compile(r"\A([45][0-9][0-9])([ -][\x20-\x7e\x80-\U0010ffff]*)?\Z")
_HEADER_NAME = re.compile(r"\A[\x21-\x39\x3b-\x7e]{1,998}\Z")
_SIMPLE = {SMFIR_CONTINUE: Action.CONTINUE, SMFIR_ACCEPT: Action.ACCEPT, SMFIR_REJECT: Action.REJECT,
           SMFIR_TEMPFAIL: Action.TEMPFAIL, SMFIR_DISCARD: Action.DISCARD}

#: the negotiated action each modification needs
ACTION_BITS = {SMFIR_ADDHEADER: SMFIF_ADDHDRS, SMFIR_INSHEADER: SMFIF_ADDHDRS, SMFIR_CHGHEADER: SMFIF_CHGHDRS,
               SMFIR_CHGFROM: SMFIF_CHGFROM, SMFIR_ADDRCPT: SMFIF_ADDRCPT, SMFIR_ADDRCPT_PAR: SMFIF_ADDRCPT_PAR,
               SMFIR_DELRCPT: SMFIF_DELRCPT, SMFIR_REPLBODY: SMFIF_CHGBODY, SMFIR_QUARANTINE: SMFIF_QUARANTINE}


def parse_reply(text: str) -> tuple[Action, str]:
    """C{(TEMPFAIL or REJECT, reply)} of SMFIR_REPLYCODE's text; L{ProtocolError} unless a valid reply."""
    if len(text) > MAX_REPLY:
        raise ProtocolError("reply text too long")
    lines = text.replace("\r\n", "\n").split("\n")
    codes = set()
    for number, line in enumerate(lines, 1):
        match = _LINE.match(line)
        if match is None:
            raise ProtocolError(f"bad reply line {line[:80]!r}")
        codes.add(match.group(1))
        more = (match.group(2) or " ").startswith("-")
        if more != (number < len(lines)):
            raise ProtocolError(f"bad continuation in reply line {line[:80]!r}")
    if len(codes) != 1:
        raise ProtocolError("reply lines with different codes")
    lines[-1] = lines[-1] if len(lines[-1]) > 3 else lines[-1] + " "
    action = Action.TEMPFAIL if text.startswith("4") else Action.REJECT
    return action, "\r\n".join(lines)


def stage_action(response: Response) -> tuple[Action, str | None]:
    """The action (and custom reply) of a final answer other than SKIP; L{ProtocolError} for others."""
    if response.command in _SIMPLE:
        return _SIMPLE[response.command], None
    if response.command == SMFIR_REPLYCODE:
        return parse_reply(response.strings[0])
    raise ProtocolError(f"answer {response.command!r} where a verdict was expected")


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text.isprintable() or " " in text:
        raise ProtocolError(f"bad address {text[:80]!r}")
    return text


def _header(name: str, value: str, negotiated: Negotiated) -> tuple[str, str]:
    if not _HEADER_NAME.match(name):
        raise ProtocolError(f"bad header name {name[:80]!r}")
    value = value.replace("\r\n", "\n")  # a folded value: its line breaks as LF, whatever the filter sent
    if "\0" in value or "\r" in value:
        raise ProtocolError(f"bad header value for {name}")
    if negotiated.steps & SMFIP_HDR_LEADSPC and value.startswith(" "):
        value = value[1:]  # the filter writes the blank after the colon itself
    return name, value


def modification(response: Response, negotiated: Negotiated) -> Modification | None:
    """
    The modification an end-of-message answer asks for, None when the
    filter did not negotiate it; L{ProtocolError} when it is malformed.
    """
    if not negotiated.may(ACTION_BITS[response.command]):
        return None
    command, strings = response.command, response.strings
    if command == SMFIR_ADDHEADER:
        return AddHeader(*_header(strings[0], strings[1], negotiated))
    if command == SMFIR_INSHEADER:
        return InsertHeader(response.index, *_header(strings[0], strings[1], negotiated))
    if command == SMFIR_CHGHEADER:
        return ChangeHeader(response.index, *_header(strings[0], strings[1], negotiated))
    if command == SMFIR_CHGFROM:
        return ChangeSender(_address(strings[0]), strings[1])
    if command in (SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR):
        return AddRecipient(_address(strings[0]), strings[1] if len(strings) > 1 else "")
    if command == SMFIR_DELRCPT:
        return DeleteRecipient(_address(strings[0]))
    if command == SMFIR_REPLBODY:
        return ReplaceBody(response.body)
    return Quarantine(strings[0])
