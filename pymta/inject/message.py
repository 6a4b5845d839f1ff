# -*- test-case-name: tests.inject.test_message -*-
"""
qmail-inject's transformation of one message (see docs/internals.md, 'qmail-inject'): from the
options, the environment, the control values and the input, work out the
envelope sender, the recipients and the rewritten header.

L{prepare} reads only the header from the input; the body is streamed
afterwards by L{PreparedMessage.chunks}, so messages of any size pass
without being held in memory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Mapping, Sequence

from pymta.address import qmail_date
from pymta.control import Controls
from pymta.inject.addrlist import (
    AddressListError,
    Item,
    list_tokens,
    mailboxes,
    parse_address_list,
    rewrite_mailboxes,
)
from pymta.inject.headers import HeaderField, encode, lf_chunks, read_header
from pymta.inject.rewrite import Rewriter, RewriteConfigError
from pymta.inject.tokens import (
    ATOM,
    COMMENT,
    LITERAL,
    QUOTE,
    Token,
    TokenError,
    fold,
    quote2,
    quote_need,
    render,
    tokenize,
)

__all__ = [
    "InjectError",
    "InjectSettings",
    "InjectOptions",
    "PreparedMessage",
    "prepare",
    "RECIP_DEFAULT",
    "RECIP_ARGS",
    "RECIP_HEADER",
    "RECIP_BOTH",
    "USAGE",
    "DATA",
    "PERMANENT",
    "TEMPORARY",
    "READ",
    "CONFIG",
]

# kinds of failure; the commands map them to their exit codes
USAGE = "usage"
DATA = "data"  # the message or an address cannot be parsed
PERMANENT = "permanent"  # the queue refused the message for good
TEMPORARY = "temporary"  # try again later
READ = "read"  # reading the input failed
CONFIG = "config"  # control files unusable

RECIP_DEFAULT = "default"  # -A: arguments if any, else the header
RECIP_ARGS = "args"  # -a
RECIP_HEADER = "header"  # -h
RECIP_BOTH = "both"  # -H: arguments and header

# fields whose address lists are rewritten, and where their addresses go
_TO_CC = frozenset(("to", "cc"))
_OTHER_RECIPIENT_FIELDS = frozenset(("bcc", "apparently-to"))
_RESENT_RECIPIENT_FIELDS = frozenset(("resent-to", "resent-cc", "resent-bcc"))
_SENDER_FIELDS = frozenset(
    ("sender", "from", "reply-to", "return-receipt-to", "errors-to", "resent-sender", "resent-from", "resent-reply-to")
)
_RESENT_MARKERS = frozenset(
    ("resent-sender", "resent-from", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc", "resent-date",
     "resent-message-id")
)
_NOT_COPIED = frozenset(("bcc", "resent-bcc", "return-path", "content-length"))


class InjectError(Exception):
    """Injection failed; C{kind} is one of L{USAGE}, L{DATA}, L{PERMANENT}, L{TEMPORARY}, L{READ}, L{CONFIG}."""

    def __init__(self, text: str, kind: str, queue_exit: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.kind = kind
        self.queue_exit = queue_exit  # qmail-queue's exit code when the queue refused


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value is not None:
            return value
    return None


def _read_mft_file(path: str) -> frozenset[str] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InjectError(f"read error: {path}: {e.strerror}", READ) from None
    entries = set()
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        line = line.rstrip(" \t\r")
        if line and not line.startswith("#"):
            entries.add(line.lower())
    return frozenset(entries)


@dataclass(frozen=True)
class InjectSettings:
    """Everything from the environment and the control files that shapes a message."""

    rewriter: Rewriter
    idhost: str
    mailuser: str
    mailhost: str | None
    mailname: str | None
    mailruser: str
    mailrhost: str | None
    name_comment: bool = False  # QMAILINJECT c
    delete_return_path: bool = False  # s
    delete_from: bool = False  # f
    delete_message_id: bool = False  # i
    verp_recipient: bool = False  # r
    verp_message: bool = False  # m
    followup_addresses: frozenset[str] | None = None  # QMAILMFTFILE, lowercased

    @classmethod
    def from_environment(cls, env: Mapping[str, str], controls: Controls) -> "InjectSettings":
        """Settings from C{env} (QMAIL* variables) and the control values."""
        letters = env.get("QMAILINJECT", "")
        mailhost = _first(env, "QMAILHOST", "MAILHOST")
        mailuser = _first(env, "QMAILUSER", "MAILUSER", "USER", "LOGNAME") or "anonymous"
        mft_path = env.get("QMAILMFTFILE")
        try:
            rewriter = Rewriter(
                defaulthost=env.get("QMAILDEFAULTHOST", controls.defaulthost),
                defaultdomain=env.get("QMAILDEFAULTDOMAIN", controls.defaultdomain),
                plusdomain=env.get("QMAILPLUSDOMAIN", controls.plusdomain),
            )
        except RewriteConfigError as e:
            raise InjectError(f"unable to parse this line:\n{e}", DATA) from None
        return cls(
            rewriter=rewriter,
            idhost=env.get("QMAILIDHOST", controls.idhost),
            mailuser=mailuser,
            mailhost=mailhost,
            mailname=_first(env, "QMAILNAME", "MAILNAME", "NAME"),
            mailruser=env.get("QMAILSUSER", mailuser),
            mailrhost=env.get("QMAILSHOST", mailhost),
            name_comment="c" in letters,
            delete_return_path="s" in letters,
            delete_from="f" in letters,
            delete_message_id="i" in letters,
            verp_recipient="r" in letters,
            verp_message="m" in letters,
            followup_addresses=_read_mft_file(mft_path) if mft_path else None,
        )


@dataclass
class InjectOptions:
    """The command line: C{-a/-A/-h/-H}, C{-n/-N}, C{-f}, and the recipient arguments."""

    strategy: str = RECIP_DEFAULT
    queue: bool = True
    sender: str | None = None
    arguments: list[str] = field(default_factory=list)


@dataclass
class PreparedMessage:
    """A message ready to queue or print: envelope, new header, and the body still to be read."""

    sender: str
    recipients: list[str]
    header: bytes
    body_start: bytes
    rest: BinaryIO | None

    def chunks(self) -> Iterator[bytes]:
        """The whole message (header, separator, body) in pieces with LF line ends."""
        yield self.header
        if self.body_start:
            yield self.body_start
        if self.rest is not None and self.body_start:
            try:
                yield from lf_chunks(self.rest)
            except OSError as e:
                raise InjectError(f"read error: {e.strerror}", READ) from None


def _unparsable(text: str) -> InjectError:
    return InjectError("unable to parse this line:\n" + text.rstrip("\n"), DATA)


def _field_tokens(name: str) -> list[Token]:
    return [Token(ATOM, name), Token(":")]


class _HeaderRewrite:
    """The state of one pass over the header fields (qmail-inject's doheaderfield)."""

    def __init__(self, settings: InjectSettings, sender: str | None) -> None:
        self.settings = settings
        self.sender = sender
        self.seen: set[str] = set()
        self.kept: list[str] = []
        self.header_recipients: list[str] = []
        self.resent_recipients: list[str] = []
        self.to_cc: list[str] = []

    def field(self, header_field: HeaderField) -> None:
        settings = self.settings
        known = header_field.known
        if (known == "from" and settings.delete_from) or (known == "message-id" and settings.delete_message_id):
            return
        if known == "return-path" and settings.delete_return_path:
            return
        if known is not None:
            self.seen.add(known)
        text = header_field.text
        rewrite_kind = known if known in _TO_CC | _OTHER_RECIPIENT_FIELDS | _RESENT_RECIPIENT_FIELDS | _SENDER_FIELDS else None
        if known == "return-path":
            rewrite_kind = known
        if rewrite_kind is not None:
            may_fail = rewrite_kind not in _SENDER_FIELDS and rewrite_kind != "return-path"
            try:
                items = parse_address_list(header_field.value)
            except AddressListError:
                if not may_fail:
                    raise _unparsable(text) from None
                items = None
            if items is not None:
                rewrite_mailboxes(items, settings.rewriter.tokens)
                self._collect(rewrite_kind, items)
                text = fold(_field_tokens(header_field.name) + list_tokens(items))
        if known in _NOT_COPIED:
            return
        self.kept.append(text)

    def _collect(self, kind: str, items: list[Item]) -> None:
        addresses = [box.envelope for box in mailboxes(items)]
        if kind == "return-path":
            if self.sender is None and addresses:
                sender = addresses[0]
                if sender and self.settings.verp_recipient:
                    sender += "-@[]"
                self.sender = sender
            return
        addresses = [a for a in addresses if a]
        if kind in _TO_CC:
            self.header_recipients.extend(addresses)
            self.to_cc.extend(addresses)
        elif kind in _OTHER_RECIPIENT_FIELDS:
            self.header_recipients.extend(addresses)
        elif kind in _RESENT_RECIPIENT_FIELDS:
            self.resent_recipients.extend(addresses)


def _rewritten_field(settings: InjectSettings, name: str, value_tokens: list[Token]) -> tuple[str, list[str]]:
    """Render C{value_tokens}, read them back as an address list, rewrite, fold: (field text, addresses)."""
    text = f"{name}: {render(value_tokens)}"
    try:
        items = parse_address_list(render(value_tokens))
    except AddressListError:
        raise _unparsable(text) from None
    rewrite_mailboxes(items, settings.rewriter.tokens)
    return fold(_field_tokens(name) + list_tokens(items)), [box.envelope for box in mailboxes(items)]


def _host_tokens(host: str) -> list[Token]:
    """C{@host} as tokens: a dotted host is atoms and dots, as if it had been typed in an address."""
    try:
        tokens = tokenize(host)
    except TokenError:
        tokens = []
    if not tokens or any(t.kind not in (ATOM, ".", LITERAL) for t in tokens):
        tokens = [Token(ATOM, host)]
    return [Token("@")] + tokens


def default_from(settings: InjectSettings) -> str:
    """The C{From:} field added to a message without one."""
    name = settings.mailname
    user = Token(QUOTE if quote_need(settings.mailuser) else ATOM, settings.mailuser)
    tokens: list[Token] = []
    if name is not None and not settings.name_comment:
        tokens += [Token(QUOTE, name), Token("<")]
    tokens.append(user)
    if settings.mailhost is not None:
        tokens += _host_tokens(settings.mailhost)
    if name is not None and not settings.name_comment:
        tokens.append(Token(">"))
    if name is not None and settings.name_comment:
        tokens.append(Token(COMMENT, name))
    text, _ = _rewritten_field(settings, "From", tokens)
    return text


def default_sender(settings: InjectSettings, now: float, pid: int) -> str:
    """The envelope sender when neither C{-f} nor a C{Return-Path:} gives one (with VERP letters r, m)."""
    user = settings.mailruser
    if settings.verp_message:
        user += f"-{int(now)}.{pid}"
    if settings.verp_recipient:
        user += "-"
    tokens = [Token(QUOTE, user)]
    if settings.mailrhost is not None:
        tokens += _host_tokens(settings.mailrhost)
    _, addresses = _rewritten_field(settings, "Return-Path", tokens)
    sender = addresses[0] if addresses else ""
    if settings.verp_recipient and sender:
        sender += "-@[]"
    return sender


def message_id(idhost: str, now: float, pid: int) -> str:
    """C{<YYYYMMDDHHMMSS.PID.qmail@IDHOST>} (UTC), qmail-inject's Message-ID."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"<{stamp}.{pid}.qmail@{idhost}>"


def _followup_to(addresses: Sequence[str]) -> str:
    return "Mail-Followup-To: " + ",\n  ".join(quote2(a) for a in addresses) + "\n"


def prepare(
    stream: BinaryIO,
    options: InjectOptions,
    settings: InjectSettings,
    now: float | None = None,
    pid: int | None = None,
) -> PreparedMessage:
    """
    Read the header from C{stream} and work out envelope and new header.
    Raises L{InjectError} (C{DATA} for unparsable addresses, C{READ} for
    input errors).
    """
    now = time.time() if now is None else now
    pid = os.getpid() if pid is None else pid
    rewriter = settings.rewriter

    sender: str | None = None
    if options.sender is not None:
        try:
            sender = rewriter.envelope(options.sender)
        except TokenError:
            raise _unparsable(quote2(options.sender)) from None

    strategy = options.strategy
    if strategy == RECIP_DEFAULT:
        strategy = RECIP_ARGS if options.arguments else RECIP_HEADER
    recipients: list[str] = []
    if strategy != RECIP_HEADER:
        for argument in options.arguments:
            try:
                recipients.append(rewriter.envelope(argument))
            except TokenError:
                raise InjectError(f"unable to parse address: {argument}", DATA) from None

    try:
        parsed = read_header(stream)
    except OSError as e:
        raise InjectError(f"read error: {e.strerror}", READ) from None

    state = _HeaderRewrite(settings, sender)
    for header_field in parsed.fields:
        state.field(header_field)
    seen = state.seen
    resent = bool(seen & _RESENT_MARKERS)
    if state.sender is None:
        state.sender = default_sender(settings, now, pid)
    sender = state.sender

    out: list[str] = []
    if not options.queue:
        out.append(f"Return-Path: <{quote2(sender)}>\n")
    prefix = "Resent-" if resent else ""
    if (prefix.lower() + "date") not in seen:
        out.append(f"{prefix}Date: {qmail_date(now)}\n")
    if (prefix.lower() + "message-id") not in seen:
        out.append(f"{prefix}Message-ID: {message_id(settings.idhost, now, pid)}\n")
    if (prefix.lower() + "from") not in seen:
        out.append(prefix + default_from(settings))
    if resent:
        if "resent-to" not in seen and "resent-cc" not in seen:
            out.append("Resent-Cc: recipient list not shown: ;\n")
    else:
        if "to" not in seen and "cc" not in seen:
            out.append("Cc: recipient list not shown: ;\n")
        followup = settings.followup_addresses
        if followup is not None and "mail-followup-to" not in seen:
            if any(a.lower() in followup for a in state.to_cc):
                out.append(_followup_to(state.to_cc))
    out.extend(state.kept)

    if strategy != RECIP_ARGS:
        recipients.extend(state.resent_recipients if resent else state.header_recipients)
    return PreparedMessage(
        sender=sender,
        recipients=recipients,
        header=encode("".join(out)),
        body_start=parsed.body_start,
        rest=stream if parsed.has_body else None,
    )
