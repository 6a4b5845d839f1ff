# -*- test-case-name: tests.serialmail.test_end_to_end -*-
"""
C{pymta maildirqmtp [--root DIR] [--port N] [-t LIFETIME] [-B] MAILDIR
PREFIX HOST}: serialmail's maildirqmtp.

Hands the mail MAILDIR holds for PREFIX to the QMTP server HOST (port 209,
or C{--port}); see L{pymta.serialmail.run} and docs/serialmail.md.  A
HELOHOST argument is accepted as maildirsmtp's and not used (QMTP has no
greeting).
"""

from __future__ import annotations

from typing import Any

from pymta.control import Controls
from pymta.serialmail.courier import Courier
from pymta.serialmail.qmtpcourier import QMTPCourier
from pymta.serialmail.run import run_serial

__all__ = ["main"]


def qmtp_courier(reactor: Any, controls: Controls, host: str, port: int, helohost: str) -> Courier:
    return QMTPCourier(reactor, host, port, controls.timeoutremote, controls.timeoutconnect)


def main(argv: list[str]) -> int:
    return run_serial("maildirqmtp", argv, qmtp_courier, 209)
