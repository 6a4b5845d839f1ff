# -*- test-case-name: tests.queue.test_ctlrequest -*-
"""
What C{pymta ctl} sends pymta-send over C{ROOT/run/ctl.sock}: one line,
every field bounded::

    COMMAND\\n
    COMMAND\\tARG\\tARG...\\n

  - C{COMMAND}: a name of L{COMMANDS} (the commands without arguments are
    the same bytes as ever: C{stat\\n});
  - C{ARG}: 1 to L{MAX_ARG} characters of UTF-8, no TAB, CR, LF or NUL; at
    most L{MAX_ARGS} of them; the whole line at most L{MAX_REQUEST} bytes.

The queue actions (C{delete}, C{hold}, C{release}, C{retry}, C{bounce})
take a selection as their arguments, parsed by L{parse_selection} on both
sides - in C{pymta ctl}, so a malformed one is a usage error before anything
is sent, and in pymta-send, which trusts nothing::

    [ID ...] [--domain D] [--sender S] [--recipient R] [--older-than AGE]
    [--reason TEXT] [--dry-run]

AGE is a number with C{s}, C{m}, C{h} or C{d} (C{90m}, C{2h}, C{3d}).  No
Twisted here: the command-line client imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COMMANDS", "QUEUE_ACTIONS", "CtlRequest", "Selector", "Selection", "parse_age", "parse_selection",
    "MAX_REQUEST", "MAX_ARGS", "MAX_ARG",
]

#: every command pymta-send answers on the socket, with C{pymta ctl}'s help line (pymta/queue/ctlserver.py
#: has one handler per name: adding a command is one entry here and one there)
COMMANDS: dict[str, str] = {
    "stat": "the status line and queue counters",
    "doqueue": "retry every queued message now (like SIGALRM to qmail-send)",
    "reload": "reread the control files (like SIGHUP)",
    "pause": "start no new deliveries",
    "cont": "continue after pause",
    "queue": "every queued job, its next attempt and its last error",
    "flush": "the same as doqueue (Postfix's name)",
    "stop": "pymta-send stops as on SIGTERM (what is in flight is recorded)",
    "delete": "remove the selected messages from the queue, without a bounce",
    "hold": "never attempt the selected messages until released",
    "release": "attempt held messages again, at once",
    "retry": "attempt the selected messages now",
    "bounce": "bounce every undelivered recipient of the selected messages (--reason TEXT)",
}

#: the commands whose arguments are a L{Selection}
QUEUE_ACTIONS = ("delete", "hold", "release", "retry", "bounce")

MAX_REQUEST = 16384
MAX_ARGS = 1000
MAX_ARG = 1000
_NAME = re.compile(r"\A[a-z]{1,20}\Z")
_FORBIDDEN = re.compile(r"[\t\r\n\0]")
_AGE = re.compile(r"\A([0-9]{1,9})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ID = re.compile(r"\A[0-9]{1,20}\Z")


@dataclass(frozen=True)
class CtlRequest:
    """One command line: a command name and its arguments."""

    command: str
    args: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise L{ValueError} unless the command is known and every argument within bounds."""
        if not _NAME.match(self.command) or self.command not in COMMANDS:
            raise ValueError(f"unknown command {self.command!r} (known: {', '.join(COMMANDS)})")
        if len(self.args) > MAX_ARGS:
            raise ValueError(f"more than {MAX_ARGS} arguments")
        for arg in self.args:
            if not 1 <= len(arg) <= MAX_ARG or _FORBIDDEN.search(arg):
                raise ValueError(f"bad argument {arg[:40]!r}: 1 to {MAX_ARG} characters, no tab, CR, LF or NUL")

    def encode(self) -> bytes:
        """The request line (L{ValueError} for a request out of bounds)."""
        self.check()
        line = "\t".join((self.command,) + self.args).encode("utf-8", "surrogateescape") + b"\n"
        if len(line) > MAX_REQUEST:
            raise ValueError(f"request longer than {MAX_REQUEST} bytes")
        return line

    @classmethod
    def parse(cls, line: bytes) -> "CtlRequest":
        """The request of a line without its newline; L{ValueError} if anything is off."""
        if len(line) > MAX_REQUEST:
            raise ValueError("request too long")
        text = line.decode("utf-8", "surrogateescape").rstrip("\r")
        words = text.split("\t")
        request = cls(words[0].strip(), tuple(words[1:]))
        request.check()
        return request


def parse_age(text: str) -> int:
    """Seconds in C{30m}, C{2h}, C{3d}, C{45s}; L{ValueError} otherwise."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"bad age {text!r}: a number and s, m, h or d (30m, 2h, 3d)")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class Selector:
    """
    Which messages an action is for: any of C{ids}, and every other field
    given (several combine with AND).  C{domain} and C{recipient} match a
    message one of whose undelivered recipients has that domain or is that
    address (domains case-insensitively); C{sender} is the envelope sender
    (C{<>} or an empty string for the null sender).
    """

    ids: tuple[int, ...] = ()
    domain: str | None = None
    sender: str | None = None
    recipient: str | None = None
    older_than: int | None = None

    @property
    def by_id_only(self) -> bool:
        """Only message ids are given."""
        return self == Selector(self.ids)

    @property
    def empty(self) -> bool:
        return not self.ids and self.domain is None and self.sender is None and self.recipient is None \
            and self.older_than is None

    def matches(self, message_id: int, sender: str, undelivered: list[str], age: int) -> bool:
        """True when a message with these properties is selected."""
        if self.ids and message_id not in self.ids:
            return False
        if self.older_than is not None and age <= self.older_than:
            return False
        if self.sender is not None and _fold(sender) != _fold("" if self.sender == "<>" else self.sender):
            return False
        if self.domain is not None and not any(_domain(r) == self.domain.lower() for r in undelivered):
            return False
        if self.recipient is not None and not any(_fold(r) == _fold(self.recipient) for r in undelivered):
            return False
        return True


def _domain(address: str) -> str:
    return address[address.rfind("@") + 1:].lower() if "@" in address else ""


def _fold(address: str) -> str:
    """The local part as it is, the domain in lower case."""
    at = address.rfind("@")
    return address if at == -1 else address[:at] + address[at:].lower()


@dataclass(frozen=True)
class Selection:
    """A queue action's arguments: the L{Selector}, C{--dry-run} and C{--reason} (bounce only)."""

    selector: Selector
    dry_run: bool = False
    reason: str | None = None


_VALUED = {"--domain", "--sender", "--recipient", "--older-than", "--reason"}


def parse_selection(command: str, args: tuple[str, ...] | list[str]) -> Selection:
    """The L{Selection} of a queue action's arguments; L{ValueError} with a clear text when malformed."""
    ids: list[int] = []
    values: dict[str, str] = {}
    dry_run = False
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--dry-run":
            dry_run = True
        elif word in _VALUED:
            if not words:
                raise ValueError(f"{word} needs a value")
            if word in values:
                raise ValueError(f"{word} given twice")
            values[word] = words.pop(0)
        elif word.startswith("-"):
            raise ValueError(f"unknown option {word!r} (known: --dry-run, {', '.join(sorted(_VALUED))})")
        elif _ID.match(word):
            ids.append(int(word))
        else:
            raise ValueError(f"bad message id {word!r}: a number, as in `pymta qread`")
    if "--reason" in values and command != "bounce":
        raise ValueError("--reason is for bounce only")
    older = values.get("--older-than")
    selector = Selector(tuple(ids), values.get("--domain"), values.get("--sender"), values.get("--recipient"),
                        None if older is None else parse_age(older))
    if selector.empty:
        raise ValueError("select messages: message ids and/or --domain, --sender, --recipient, --older-than")
    reason = values.get("--reason")
    if reason is not None and not reason.strip():
        raise ValueError("--reason needs a text")
    return Selection(selector, dry_run, reason)
