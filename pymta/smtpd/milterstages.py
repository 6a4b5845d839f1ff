# -*- test-case-name: tests.smtpd.test_milterstages -*-
"""
smtpd's content filters at each SMTP stage: one L{MilterStages} per
session over the session's L{pymta.milter.api.MilterSession}.

Each stage's call gives the reply that refuses the command (the filter's
own text, else the defaults of L{pymta.milter.api}) or None to go on:

- connect, before the greeting: a refusal becomes a C{554} greeting (the
  session then refuses every command, L{pymta.smtpd.miltercommands}), a
  temporary one C{421} and the connection is closed;
- HELO/EHLO, MAIL FROM, each RCPT TO (a refusal refuses that recipient
  only) and DATA (before the C{354});
- the end of DATA is the transaction's end-of-data step
  (L{pymta.smtpd.milterstep}), made at MAIL FROM;
- a command smtpd does not know (SMFIC_UNKNOWN, to the filters that did
  not opt out), before smtpd's own C{502}: a refusal replaces that reply.

A DISCARD at any stage means: the client is told C{250} to everything,
and the message is not queued (logged).  A DISCARD before MAIL FROM holds
for every message of the session, a later one for the transaction.

The filters forget a transaction (L{MilterSession.abort}) when smtpd does:
at RSET, HELO, STARTTLS, when the next MAIL FROM comes while one was still
open (a sender or message refused), but not for the transaction's own
end: after DATA the end-of-message stage ends it (or, for a message smtpd
refused before asking it, the next transaction's start).
L{MilterStages.close} ends the filters' session with smtpd's.
"""

from __future__ import annotations

from typing import Sequence

from twisted.internet import defer
from twisted.logger import Logger

from pymta.milter.api import Action, ConnectInfo, Macros, MilterSession, Verdict
from pymta.smtpd.miltermacros import (
    ClientFacts, TLSFacts, connect_macros, helo_macros, mail_macros, new_transaction_id, rcpt_macros,
)

__all__ = ["MilterStages", "refusal_of", "greeting_refusal", "REPLY_REJECT", "REPLY_TEMPFAIL"]

log = Logger()

#: api.py's defaults, when a filter gave no text of its own
REPLY_REJECT = "550 5.7.1 Command rejected"
REPLY_TEMPFAIL = "451 4.7.1 Service unavailable - try again later"


def refusal_of(verdict: Verdict) -> str | None:
    """The SMTP reply a verdict gives (None: go on)."""
    if verdict.action is Action.REJECT:
        return verdict.reply or REPLY_REJECT
    if verdict.action is Action.TEMPFAIL:
        return verdict.reply or REPLY_TEMPFAIL
    return None


def with_code(reply: str, code: str) -> str:
    """C{reply} with every line's code made C{code} (a greeting may only be 554 or 421)."""
    return "\r\n".join(code + line[3:] if line[:3].isdigit() else f"{code} {line}" for line in reply.split("\r\n"))


def greeting_refusal(verdict: Verdict) -> str | None:
    """The greeting of a connection the filters refuse: C{554 ...} or C{421 ...}."""
    reply = refusal_of(verdict)
    if reply is None:
        return None
    return with_code(reply, "554" if verdict.action is Action.REJECT else "421")


class MilterStages:
    """The filters of one SMTP session, asked at each stage; see the module's description."""

    def __init__(self, session: MilterSession, client: ClientFacts, locals_: frozenset[str] = frozenset()) -> None:
        self.session = session
        self.client = client
        self.locals = locals_
        self.base: dict[str, str] = connect_macros(client)
        self.helo_macros: dict[str, str] = {}
        self.mail_macros: dict[str, str] = {}
        #: the transaction's C{i}, while one is open
        self.transaction_id: str | None = None
        self.discard_session = False
        self.discard_message = False
        #: the client has been told 354: the end-of-message stage (or the next transaction) ends it
        self.data_sent = False
        self.closed = False

    @property
    def discarding(self) -> bool:
        return self.discard_session or self.discard_message

    def _macros(self, *extra: Macros) -> dict[str, str]:
        found = dict(self.base)
        for more in extra:
            found.update(more)
        return found

    def _reply(self, d: "defer.Deferred[Verdict]", stage: str, what: str = "") -> "defer.Deferred[str | None]":
        def decided(verdict: Verdict) -> str | None:
            if verdict.action is Action.DISCARD:
                log.info("milter: {ip}: {filter} discards at {stage}{what}", ip=self.client.client_addr,
                         filter=verdict.filter_name or "a filter", stage=stage, what=what)
                if stage in ("connect", "helo"):
                    self.discard_session = True
                else:
                    self.discard_message = True
            reply = refusal_of(verdict)
            if reply is not None:
                log.info("milter: {ip}: {filter} refuses {stage}{what}: {reply}", ip=self.client.client_addr,
                         filter=verdict.filter_name or "a filter", stage=stage, what=what,
                         reply=reply.replace("\r\n", " / "))
            return reply

        return d.addCallback(decided)

    def connect(self) -> "defer.Deferred[Verdict]":
        """The connect stage's verdict (its greeting: L{greeting_refusal})."""
        family = "6" if ":" in self.client.client_addr else "4"
        info = ConnectInfo(self.base["{client_name}"], family, self.client.client_addr, self.client.client_port)

        def decided(verdict: Verdict) -> Verdict:
            if verdict.action is Action.DISCARD:
                log.info("milter: {ip}: {filter} discards the session's messages", ip=self.client.client_addr,
                         filter=verdict.filter_name or "a filter")
                self.discard_session = True
            return verdict

        return self.session.connect(info, self._macros()).addCallback(decided)

    def helo(self, name: str, tls: TLSFacts | None) -> "defer.Deferred[str | None]":
        self.reset()
        self.helo_macros = helo_macros(tls)
        return self._reply(self.session.helo(name, self._macros(self.helo_macros)), "helo")

    def mail(self, sender: str, args: Sequence[str], auth_type: str | None,
             auth_user: str | None) -> "defer.Deferred[str | None]":
        """A new transaction: the one still open (refused before its end) is aborted first."""
        self._abort()
        self.transaction_id = new_transaction_id()
        self.mail_macros = mail_macros(self.transaction_id, sender, auth_type, auth_user)
        d = self.session.mail(sender, args, self._macros(self.helo_macros, self.mail_macros))
        return self._reply(d, "mail", f" from <{sender}>")

    def rcpt(self, recipient: str, args: Sequence[str]) -> "defer.Deferred[str | None]":
        macros = self._macros(self.helo_macros, self.mail_macros,
                              rcpt_macros(self.transaction_id or "", recipient, self.locals))
        return self._reply(self.session.rcpt(recipient, args, macros), "rcpt", f" to <{recipient}>")

    def data(self) -> "defer.Deferred[str | None]":
        return self._reply(self.session.data(self._macros(self.helo_macros, self.mail_macros)), "data")

    def unknown(self, command: str) -> "defer.Deferred[str | None]":
        """A command smtpd does not know (the whole line): the filters' refusal, or None for smtpd's own reply."""
        d = self.session.unknown(command, self._macros(self.helo_macros, self.mail_macros))
        return self._reply(d, "unknown command", f" {command.partition(' ')[0][:64]}")

    def message_macros(self) -> dict[str, str]:
        """The end-of-header and end-of-message stages' macros."""
        return self._macros(self.helo_macros, self.mail_macros)

    def reset_after_message(self, abort: bool) -> None:
        """The end-of-message stage ended the transaction (C{abort}: without asking the filters)."""
        if abort:
            self._abort()
        self.transaction_id, self.data_sent, self.discard_message = None, False, False

    def reset(self) -> None:
        """smtpd forgot the transaction (RSET, HELO, STARTTLS): so do the filters, unless DATA ended it."""
        if not self.data_sent:
            self._abort()

    def _abort(self) -> None:
        if self.transaction_id is not None and not self.closed:
            self.session.abort()
        self.transaction_id, self.data_sent, self.discard_message = None, False, False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session.close()
