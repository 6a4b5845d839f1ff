"""A scripted MilterSession (pymta.milter.api) for smtpd's tests: records each call, answers as told."""

from __future__ import annotations

from typing import Any, Sequence

from twisted.internet import defer

from pymta.milter.api import CONTINUE, ConnectInfo, EndOfMessage, Macros, MessageSource, Modification, Verdict


class FakeMilter:
    """
    C{answers[stage]}: the Verdict (or a Deferred of it) that stage gives
    (C{"eom"}: an EndOfMessage); CONTINUE otherwise.  C{calls}: (stage,
    argument, macros) in order; C{aborts}, C{closed} count the other calls.
    """

    def __init__(self, **answers: Any) -> None:
        self.answers = answers
        self.calls: list[tuple[str, Any, dict[str, str]]] = []
        self.aborts = 0
        self.closed = 0
        self.header: list[tuple[str, str]] = []
        self.body = b""

    def _answer(self, stage: str, argument: Any, macros: Macros) -> defer.Deferred:
        self.calls.append((stage, argument, dict(macros)))
        answer = self.answers.get(stage, CONTINUE if stage != "eom" else EndOfMessage(CONTINUE))
        return answer if isinstance(answer, defer.Deferred) else defer.succeed(answer)

    def stages(self) -> list[str]:
        return [call[0] for call in self.calls]

    def macros(self, stage: str) -> dict[str, str]:
        return [call[2] for call in self.calls if call[0] == stage][-1]

    def connect(self, info: ConnectInfo, macros: Macros) -> defer.Deferred:
        return self._answer("connect", info, macros)

    def helo(self, name: str, macros: Macros) -> defer.Deferred:
        return self._answer("helo", name, macros)

    def mail(self, sender: str, args: Sequence[str], macros: Macros) -> defer.Deferred:
        return self._answer("mail", (sender, tuple(args)), macros)

    def rcpt(self, recipient: str, args: Sequence[str], macros: Macros) -> defer.Deferred:
        return self._answer("rcpt", (recipient, tuple(args)), macros)

    def data(self, macros: Macros) -> defer.Deferred:
        return self._answer("data", None, macros)

    def unknown(self, command: str, macros: Macros) -> defer.Deferred:
        return self._answer("unknown", command, macros)

    def end_of_message(self, message: MessageSource, eoh_macros: Macros, eom_macros: Macros) -> defer.Deferred:
        self.header = list(message.header_fields())
        self.body = b"".join(message.body_chunks(7))
        assert all(len(chunk) <= 7 for chunk in message.body_chunks(7))
        return self._answer("eom", None, eom_macros)

    def abort(self) -> None:
        self.aborts += 1

    def close(self) -> None:
        self.closed += 1


def end(*modifications: Modification, verdict: Verdict = CONTINUE) -> EndOfMessage:
    return EndOfMessage(verdict, tuple(modifications))
