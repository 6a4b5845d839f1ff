# -*- test-case-name: tests.pop3d.test_protocol -*-
"""
The TRANSACTION and UPDATE states of a POP3 session (RFC 1939): STAT,
LIST, UIDL, RETR, TOP, DELE, LAST, RSET and QUIT, as qmail-pop3d answers
them.  Mixed into L{pymta.pop3d.protocol.POP3Server}, which provides the
session state and the reply methods declared below.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pymta.address import safe_log
from pymta.pop3d.auth import Account
from pymta.pop3d.mailbox import MailboxSession, MessageUnavailable

__all__ = ["TransactionCommands"]

log = Logger(namespace="pymta.pop3d")


class TransactionCommands:
    """The commands of a logged-in session (C{trans_VERB} methods)."""

    # provided by POP3Server
    state: str
    account: Account | None
    mailbox: MailboxSession | None
    deleted: set[int]
    last: int
    transport: Any
    _closed: bool
    ok: Callable[..., None]
    err: Callable[[bytes], None]
    send_multiline: Callable[[bytes, list[bytes]], None]
    close: Callable[[], None]
    finish: Callable[[], None]

    def _message_number(self, arg: bytes) -> int | None:
        """0-based index of a live message, or None after replying -ERR."""
        assert self.mailbox is not None
        if not arg.isdigit():
            self.err(b"syntax error")
            return None
        n = int(arg)
        if n == 0:
            self.err(b"messages are counted from 1")
            return None
        if n > len(self.mailbox.messages):
            self.err(b"not that many messages")
            return None
        if n - 1 in self.deleted:
            self.err(b"already deleted")
            return None
        return n - 1

    def trans_STAT(self, arg: bytes) -> None:
        assert self.mailbox is not None
        messages = self.mailbox.messages
        octets = sum(m.size for i, m in enumerate(messages) if i not in self.deleted)
        self.ok(b"%d %d" % (len(messages), octets))

    def _listing(self, arg: bytes, value: Callable[[int], bytes]) -> None:
        assert self.mailbox is not None
        if arg:
            index = self._message_number(arg.split(b" ")[0])
            if index is not None:
                self.ok(b"%d %s" % (index + 1, value(index)))
            return
        lines = [b"%d %s" % (i + 1, value(i)) for i in range(len(self.mailbox.messages)) if i not in self.deleted]
        self.send_multiline(b"", lines)

    def trans_LIST(self, arg: bytes) -> None:
        assert self.mailbox is not None
        messages = self.mailbox.messages
        self._listing(arg, lambda i: b"%d" % messages[i].size)

    def trans_UIDL(self, arg: bytes) -> None:
        assert self.mailbox is not None
        messages = self.mailbox.messages
        self._listing(arg, lambda i: messages[i].uid.encode("ascii"))

    def _send_message(self, index: int, top: int | None) -> defer.Deferred:
        assert self.mailbox is not None
        d = self.mailbox.send_message(index, top, self.ok, self.transport)

        def unavailable(failure: Failure) -> None:
            if failure.check(MessageUnavailable):
                self.err(b"unable to open that message")
                return None
            if not self._closed:  # the stream broke after +OK: the reply cannot be completed
                log.failure("pop3 message transfer failed", failure)
                self.close()
            return None

        return d.addErrback(unavailable)

    def trans_RETR(self, arg: bytes) -> Optional[defer.Deferred]:
        words = arg.split(b" ")
        index = self._message_number(words[0])
        if index is None:
            return None
        top = None
        if len(words) > 1 and words[1]:
            if not words[1].isdigit():
                self.err(b"syntax error")
                return None
            top = int(words[1])
        return self._send_message(index, top)

    def trans_TOP(self, arg: bytes) -> Optional[defer.Deferred]:
        words = arg.split(b" ")
        if len(words) < 2 or not words[1].isdigit():
            self.err(b"syntax error")
            return None
        index = self._message_number(words[0])
        if index is None:
            return None
        return self._send_message(index, int(words[1]))

    def trans_DELE(self, arg: bytes) -> None:
        index = self._message_number(arg.split(b" ")[0])
        if index is None:
            return
        self.deleted.add(index)
        self.last = max(self.last, index + 1)
        self.ok()

    def trans_LAST(self, arg: bytes) -> None:
        self.ok(b"%d" % self.last)

    def trans_RSET(self, arg: bytes) -> None:
        self.deleted.clear()
        self.last = 0
        self.ok()

    def trans_QUIT(self, arg: bytes) -> defer.Deferred:
        assert self.mailbox is not None
        self.state = "UPDATE"
        mailbox = self.mailbox
        d = mailbox.commit(sorted(self.deleted))

        def committed(all_gone: bool) -> None:
            if not all_gone:
                self.err(b"unable to unlink all deleted messages")
            self.ok()
            log.info(
                "pop3 logout {user}: {deleted} deleted",
                user=safe_log(self.account.name if self.account else ""), deleted=len(self.deleted),
            )
            self.finish()

        def failed(failure: Failure) -> None:
            log.failure("pop3 update failed", failure)
            self.err(b"unable to unlink all deleted messages")
            self.ok()
            self.finish()

        return d.addCallbacks(committed, failed)
