# -*- test-case-name: tests.milter.test_negotiation -*-
"""
Option negotiation (SMFIC_OPTNEG), pure.

The MTA offers a protocol version (6), the modifications it can make
(C{SMFIF_*} action bits) and the steps a filter may leave out or leave
unanswered (C{SMFIP_*} protocol bits).  The filter answers with the
version it speaks, the actions it wants, the steps it does not want
(C{NO*}: the MTA does not send them; C{NR_*}: the MTA sends them and does
not wait for an answer) and, optionally, the macros it wants at each
stage (SETSYMLIST).  Bits the MTA did not offer are dropped (and named
in L{Negotiated.dropped}, for the log) rather than trusted.

pymta does not offer C{SMFIP_RCPT_REJ} (smtpd does not show filters the
recipients it refused itself) nor larger body chunks (C{SMFIP_MDS_*}).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Mapping

from pymta.milter.wire import SMFIC_OPTNEG, SMFIR_OPTNEG, ProtocolError, encode_packet

__all__ = ["Negotiated", "offer_packet", "parse_negotiation", "PROTOCOL_VERSION", "OFFERED_ACTIONS",
           "OFFERED_STEPS", "STAGES"]

PROTOCOL_VERSION = 6
OLDEST_VERSION = 2

# actions (what a filter may change)
SMFIF_ADDHDRS = 0x01
SMFIF_CHGBODY = 0x02
SMFIF_ADDRCPT = 0x04
SMFIF_DELRCPT = 0x08
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20
SMFIF_CHGFROM = 0x40
SMFIF_ADDRCPT_PAR = 0x80
SMFIF_SETSYMLIST = 0x100
OFFERED_ACTIONS = 0x1FF

# protocol steps
SMFIP_NOCONNECT = 0x01
SMFIP_NOHELO = 0x02
SMFIP_NOMAIL = 0x04
SMFIP_NORCPT = 0x08
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_RCPT_REJ = 0x800
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_UNKN = 0x20000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000
SMFIP_HDR_LEADSPC = 0x100000
OFFERED_STEPS = 0x1FFFFF & ~SMFIP_RCPT_REJ

#: SETSYMLIST's stage numbers (SMFIM_*) to pymta's stage names
STAGES = {0: "connect", 1: "helo", 2: "mail", 3: "rcpt", 4: "data", 5: "eom", 6: "eoh"}

#: per stage: the step bit that leaves it out, the bit that leaves its answer out
STAGE_BITS: Mapping[str, tuple[int, int]] = {
    "connect": (SMFIP_NOCONNECT, SMFIP_NR_CONN),
    "helo": (SMFIP_NOHELO, SMFIP_NR_HELO),
    "mail": (SMFIP_NOMAIL, SMFIP_NR_MAIL),
    "rcpt": (SMFIP_NORCPT, SMFIP_NR_RCPT),
    "data": (SMFIP_NODATA, SMFIP_NR_DATA),
    "header": (SMFIP_NOHDRS, SMFIP_NR_HDR),
    "eoh": (SMFIP_NOEOH, SMFIP_NR_EOH),
    "body": (SMFIP_NOBODY, SMFIP_NR_BODY),
    "unknown": (SMFIP_NOUNKNOWN, SMFIP_NR_UNKN),
    "eom": (0, 0),
}

_WORDS = struct.Struct(">III")
_STAGE = struct.Struct(">I")


def offer_packet() -> bytes:
    """The MTA's SMFIC_OPTNEG packet."""
    return encode_packet(SMFIC_OPTNEG, _WORDS.pack(PROTOCOL_VERSION, OFFERED_ACTIONS, OFFERED_STEPS))


@dataclass(frozen=True)
class Negotiated:
    """What a filter asked for, within what was offered."""

    version: int = PROTOCOL_VERSION
    actions: int = 0
    steps: int = 0
    #: stage name -> the macro names the filter wants there (SETSYMLIST)
    symlists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: bits the filter asked for that were not offered (actions, steps)
    dropped: tuple[int, int] = (0, 0)

    def sends(self, stage: str) -> bool:
        """Whether the MTA sends stage C{stage} at all."""
        return not self.steps & STAGE_BITS[stage][0]

    def answers(self, stage: str) -> bool:
        """Whether the filter answers stage C{stage} (it is sent)."""
        return not self.steps & STAGE_BITS[stage][1]

    def may(self, action: int) -> bool:
        """Whether the filter negotiated modification C{action} (an C{SMFIF_*} bit)."""
        return bool(self.actions & action)


def macro_name(name: str) -> str:
    """A macro name as the protocol writes it: one character bare, longer ones in braces."""
    if len(name) > 1 and not name.startswith("{"):
        return "{" + name + "}"
    return name


def parse_negotiation(command: bytes, data: bytes) -> Negotiated:
    """The filter's answer to SMFIC_OPTNEG; L{ProtocolError} unless it is one, well formed."""
    if command != SMFIR_OPTNEG:
        raise ProtocolError(f"expected the option negotiation, got {command!r}")
    if len(data) < _WORDS.size:
        raise ProtocolError("short option negotiation")
    version, actions, steps = _WORDS.unpack_from(data)
    if not OLDEST_VERSION <= version <= PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version}")
    symlists: dict[str, tuple[str, ...]] = {}
    rest = data[_WORDS.size:]
    while rest:
        if len(rest) < _STAGE.size + 1:
            raise ProtocolError("truncated macro list")
        (stage,) = _STAGE.unpack_from(rest)
        text, nul, rest = rest[_STAGE.size:].partition(b"\0")
        if not nul or stage not in STAGES:
            raise ProtocolError(f"bad macro list for stage {stage}")
        symlists[STAGES[stage]] = tuple(macro_name(n) for n in text.decode("ascii", "replace").split())
    if version < 4:
        steps |= SMFIP_NODATA | SMFIP_NOUNKNOWN  # no DATA or unknown-command steps before version 4
    if version < 6:
        steps &= ~(SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | SMFIP_NR_DATA
                   | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | SMFIP_SKIP | SMFIP_HDR_LEADSPC)
    if not actions & SMFIF_SETSYMLIST:
        symlists = {}
    return Negotiated(version, actions & OFFERED_ACTIONS, steps & OFFERED_STEPS, symlists,
                      (actions & ~OFFERED_ACTIONS, steps & ~OFFERED_STEPS))
