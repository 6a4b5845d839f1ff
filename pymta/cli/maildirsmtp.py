# -*- test-case-name: tests.serialmail.test_end_to_end -*-
"""
C{pymta maildirsmtp [--root DIR] [--port N] [-t LIFETIME] [-B] MAILDIR
PREFIX HOST [HELOHOST]}: serialmail's maildirsmtp.

Hands the mail MAILDIR holds for PREFIX to the SMTP server HOST (port 25,
or C{--port}); see L{pymta.serialmail.run} and docs/serialmail.md.
"""

from __future__ import annotations

from typing import Any

from pymta.control import Controls
from pymta.serialmail.courier import Courier
from pymta.serialmail.run import run_serial
from pymta.serialmail.smtpcourier import SMTPCourier

__all__ = ["main"]


def smtp_courier(reactor: Any, controls: Controls, host: str, port: int, helohost: str) -> Courier:
    return SMTPCourier(reactor, host, port, helohost, controls.timeoutremote, controls.timeoutconnect)


def main(argv: list[str]) -> int:
    return run_serial("maildirsmtp", argv, smtp_courier, 25)
