# -*- test-case-name: tests.cli.test_initcontrols -*-
"""
The settings C{pymta init} writes into the C{control/} of a new root,
beyond qmail's own (C{me}, C{locals}, C{rcpthosts}, C{defaultdelivery}),
and why: what an Internet-facing MTA should ship with where qmail's
default (an absent file) is unsafe or out of date.  docs/control.md
("What pymta init writes, and why") gives the same list for the reader.

They are written only into a new root (one without C{control/me}): a root
that exists, and a qmail C{control/} copied into one, keep their behaviour,
and how an absent file is read does not change.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["InitControl", "NEW_ROOT_CONTROLS", "MESSAGE_SIZE_LIMIT", "SMTPD_LINE_TIMEOUT"]

#: largest message accepted over SMTP, in bytes (35 MiB, OpenSMTPD's default): a 25 MB attachment,
#: the largest the big mailbox providers send, grows by a third in base64
MESSAGE_SIZE_LIMIT = 35 * 1024 * 1024

#: seconds a client has for each line: RFC 5321 4.5.3.2.7's server timeout, Postfix's smtpd_timeout
SMTPD_LINE_TIMEOUT = 300

RCPTCHECK_TEXT = """\
# Written by pymta init.  This file being here makes pymta-smtpd refuse mail
# for unknown local users at RCPT time (550) instead of accepting it and
# bouncing it later to a sender address that is usually forged.  It takes no
# value.  To accept every local recipient and bounce later, as qmail does,
# remove this file and run: pymta ctl reload
"""


@dataclass(frozen=True)
class InitControl:
    """One control file C{pymta init} writes into a new root."""

    name: str
    text: str
    reason: str

    @property
    def data(self) -> bytes:
        return self.text.encode("ascii")


NEW_ROOT_CONTROLS: tuple[InitControl, ...] = (
    InitControl(
        "rcptcheck", RCPTCHECK_TEXT,
        "refuse unknown local recipients at RCPT: no backscatter to forged senders",
    ),
    InitControl(
        "databytes", f"{MESSAGE_SIZE_LIMIT}\n",
        "a size limit (qmail's default is none): one message cannot fill the queue's disk",
    ),
    InitControl(
        "timeoutsmtpd", f"{SMTPD_LINE_TIMEOUT}\n",
        "a stalled client frees its session slot after 5 minutes, not 20",
    ),
)
