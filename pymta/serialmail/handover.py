# -*- test-case-name: tests.serialmail.test_handover -*-
"""
Handing over a Maildir's held mail: serialmail's maildirserial.

L{hand_over} gives every message held for the prefix (oldest first) to a
L{pymta.serialmail.courier.Courier} and then decides what becomes of the
file:

- C{K} (the server accepted it): the file is removed.  Only then: a crash
  or a lost connection before that leaves the file, and the next run hands
  it over again (a duplicate, never a loss).
- C{Z}: the file stays for the next run, unless it has been held longer
  than C{lifetime}: then it counts as C{D}, with a note in the bounce.
- C{D}: with a C{bounce}r, a failure notice goes to the sender and then
  the file is removed (if the notice cannot be queued, the file stays);
  without one, the file stays (for a POP3 client to pick up, say).

A report with C{stop} (the server cannot be reached) ends the run; the
messages not tried stay.  Each outcome is one line through C{say},
C{info: NAME succeeded: TEXT} and the like, as maildirserial prints them.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Callable

from pymta.interfaces import QueueRefused
from pymta.serialmail.courier import ACCEPTED, DEFERRED, REJECTED, Courier
from pymta.serialmail.held import HeldMessage, scan

__all__ = ["RunResult", "hand_over", "remove_held", "Bounce"]

#: bounce(message, report, too_old) -> qp of the notice, or None when the held message was a double bounce
Bounce = Callable[[HeldMessage, str, bool], "int | None"]


@dataclass
class RunResult:
    """How a run went: messages handed over, bounced, and left in the Maildir."""

    handed_over: int = 0
    bounced: int = 0
    left: int = 0


def _oneline(text: str) -> str:
    return text.rstrip("\n").replace("\n", "/")


def remove_held(maildir: str, message: HeldMessage) -> None:
    """
    Unlink C{message}'s file.  When a POP3 session moved it from new/ to
    cur/ meanwhile (C{cur/NAME:2,...}), that file is the one removed.
    """
    try:
        os.unlink(message.path)
        return
    except FileNotFoundError:
        if not message.name.startswith("new/"):
            raise
    unique = message.name[len("new/"):].split(":", 1)[0]
    cur = os.path.join(maildir, "cur")
    for entry in os.listdir(cur):
        if entry.split(":", 1)[0] == unique:
            os.unlink(os.path.join(cur, entry))
            return
    raise FileNotFoundError(errno.ENOENT, "gone from new/ and cur/", message.path)


async def hand_over(maildir: str, prefix: str, courier: Courier, say: Callable[[str], None],
                    now: Callable[[], float], lifetime: float | None = None,
                    bounce: Bounce | None = None) -> RunResult:
    """Hand over what C{maildir} holds for C{prefix}; see the module docstring."""
    result = RunResult()
    held = scan(maildir, prefix)
    try:
        for position, message in enumerate(held):
            try:
                body = open(message.path, "rb")
            except FileNotFoundError:
                continue  # taken meanwhile
            with body:
                body.seek(message.body_offset)
                handover = await courier.send(message, body)
            _dispose(maildir, message, handover.status, handover.text, say, now, lifetime, bounce, result)
            if handover.stop:
                result.left += len(held) - position - 1
                break
    finally:
        await courier.close()
    return result


def _dispose(maildir: str, message: HeldMessage, status: str, text: str, say: Callable[[str], None],
             now: Callable[[], float], lifetime: float | None, bounce: Bounce | None, result: RunResult) -> None:
    name = message.name
    if status == ACCEPTED:
        try:
            remove_held(maildir, message)
        except OSError as e:
            say(f"warning: message will be delivered twice! unable to unlink {name}: {e.strerror}")
            result.left += 1
            return
        say(f"info: {name} succeeded: {_oneline(text)}")
        result.handed_over += 1
        return
    too_old = status == DEFERRED and lifetime is not None and now() > message.mtime + lifetime
    if too_old:
        status = REJECTED
    if status != REJECTED or bounce is None:
        say(f"info: {name} failed{'' if status == REJECTED else ' temporarily'}: {_oneline(text)}")
        result.left += 1
        return
    try:
        qp = bounce(message, text, too_old)
    except (QueueRefused, OSError) as e:
        reason = e.text if isinstance(e, QueueRefused) else str(e.strerror)
        say(f"warning: unable to bounce {name}: {reason}")
        result.left += 1
        return
    if qp is None:
        say(f"info: {name} bounced: {_oneline(text)}; discarding it: triple bounce")
    else:
        say(f"info: {name} bounced: {_oneline(text)}; returned to the sender: qp {qp}")
    try:
        remove_held(maildir, message)
    except OSError as e:
        say(f"warning: message has been bounced but not removed! unable to unlink {name}: {e.strerror}")
        result.left += 1
        return
    result.bounced += 1
