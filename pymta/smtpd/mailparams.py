# -*- test-case-name: tests.smtpd.test_mailparams -*-
"""
The ESMTP parameters of one SMTP transaction that pymta acts on: MAIL's
C{SIZE} (checked against databytes, as before) and the DSN requests of
RFC 3461 (MAIL C{RET}, C{ENVID}; RCPT C{NOTIFY}, C{ORCPT}), parsed by
L{pymta.dsn.params}.  Other parameters are ignored, as qmail-smtpd does.

Pure: each check returns the SMTP reply of a refusal, or None.
"""

from __future__ import annotations

from typing import Sequence

from pymta.dsn.params import DsnSyntaxError, MessageDsn, RecipientDsn, mail_dsn, rcpt_dsn
from pymta.smtpd.policy import REPLY_DATABYTES, parse_mail_parameters

__all__ = ["TransactionParameters"]


class TransactionParameters:
    """
    What MAIL and the accepted RCPTs of a transaction asked for.  A
    recipient's request is kept under the index it gets when accepted (RCPT
    commands run one at a time, so a refused one's is replaced by the next).
    """

    def __init__(self, ret: str | None = None, envid: str | None = None) -> None:
        self.ret = ret
        self.envid = envid
        self._requests: dict[int, RecipientDsn] = {}

    @classmethod
    def at_mail(cls, parameters: Sequence[str], databytes: int) -> "TransactionParameters | str":
        """MAIL's parameters, or the reply refusing them (a malformed or too large SIZE, a bad DSN parameter)."""
        params = parse_mail_parameters(parameters)
        if "SIZE" in params:
            size = params["SIZE"]
            if not size.isdigit():
                return "501 malformed SIZE parameter (#5.5.4)"
            if databytes and int(size) > databytes:
                return REPLY_DATABYTES
        try:
            ret, envid = mail_dsn(parameters)
        except DsnSyntaxError as e:
            return e.reply
        return cls(ret, envid)

    def at_rcpt(self, parameters: Sequence[str], recipient: str, index: int) -> str | None:
        """Keep RCPT's request for the recipient that would be number C{index}; the reply refusing it, or None."""
        try:
            request = rcpt_dsn(parameters, recipient)
        except DsnSyntaxError as e:
            return e.reply
        self._requests[index] = request
        return None

    def message_dsn(self, count: int) -> MessageDsn | None:
        """The DSN data of a message with C{count} recipients, or None when nothing beyond the defaults was asked."""
        dsn = MessageDsn(self.ret, self.envid, tuple(self._requests.get(i, RecipientDsn()) for i in range(count)))
        return dsn if dsn.meaningful else None
