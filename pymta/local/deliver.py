# -*- test-case-name: tests.local.test_deliver -*-
"""
qmail-local's logic: deliver one message to one local recipient according to
the recipient's C{.qmail} file.  This runs in the spawner's delivery child
B{after} it has become the recipient's uid; it never forwards by itself:
forward targets are returned in the L{LocalOutcome} and injected by the
parent (L{pymta.local.channel.LocalChannel}) through the queue, after every
other line succeeded, exactly when qmail-local would run qmail-queue.

Steps (docs/internals.md, '.qmail files' and the headings after it): home checks; loop check against the
Delivered-To line; .qmail lookup (empty file or none for the bare user =
defaultdelivery); NEWSENDER; the lines top to bottom, stopping at the first
failure or after a program exits 99.  Identical mbox or Maildir lines in one
file deliver once.  Success prints C{did F+W+P}.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from pymta.address import MAX_ADDRESS_BYTES
from pymta.local import dotqmail
from pymta.local.envelope import dtline, has_delivered_to, read_chunks, read_lines, rpline, ufline
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import LocalUser
from pymta.local.maildir import deliver_maildir
from pymta.local.messagecopy import message_copy
from pymta.local.mbox import LOCK_TIMEOUT, deliver_mbox
from pymta.local.program import ProgramContext, program_environment, run_program
from pymta.local.spawnrecords import DeliveryCounts

__all__ = ["LocalDelivery", "LocalOutcome", "deliver_local", "LOOP_TEXT", "NO_MAILBOX_TEXT"]

LOOP_TEXT = "This message is looping: it already has my Delivered-To line. (#5.4.6)"
NO_MAILBOX_TEXT = "Sorry, no mailbox here by that name. (#5.1.1)"


@dataclass(frozen=True)
class LocalDelivery:
    """One recipient's delivery, as qmail-local's arguments describe it."""

    sender: str
    local: str
    domain: str
    user: LocalUser
    defaultdelivery: str


@dataclass
class LocalOutcome:
    """
    C{status} C{K}/C{Z}/C{D}; C{output} the text printed so far (program
    output, then the failure text); C{did} the (files, forwards, programs)
    counts on success; C{forwards} the addresses still to be queued with
    sender C{newsender}.
    """

    status: str
    output: str
    did: DeliveryCounts | None = None
    forwards: list[str] = field(default_factory=list)
    newsender: str = ""

    def report_text(self) -> str:
        """The report text when there is nothing to forward (or forwarding is done elsewhere)."""
        return self.output + (self.did.text() if self.did is not None else "")


def _check_forward(address: str, lineno: int) -> str:
    if not address:
        raise DeliveryFailure.temporary(f"Uh-oh: empty forward address on line {lineno} of .qmail file. (#4.7.0)")
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise DeliveryFailure.temporary(
            f"Uh-oh: forward address on line {lineno} of .qmail file contains a control character. (#4.7.0)"
        )
    try:
        encoded = address.encode("utf-8")
    except UnicodeEncodeError:
        raise DeliveryFailure.temporary(
            f"Uh-oh: forward address on line {lineno} of .qmail file is not valid UTF-8. (#4.7.0)"
        ) from None
    if len(encoded) > MAX_ADDRESS_BYTES:
        raise DeliveryFailure.temporary(
            f"Uh-oh: forward address on line {lineno} of .qmail file is too long. (#4.7.0)"
        )
    return address


def deliver_local(
    request: LocalDelivery,
    message_fd: int,
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    now: float | None = None,
) -> LocalOutcome:
    """Run qmail-local's steps for C{request}; never raises for delivery trouble."""
    output: list[str] = []
    try:
        return _deliver(request, message_fd, output, lock_timeout, time.time() if now is None else now)
    except DeliveryFailure as failure:
        return LocalOutcome(failure.status, "".join(output) + failure.report)


def _deliver(request: LocalDelivery, fd: int, output: list[str], lock_timeout: float, now: float) -> LocalOutcome:
    user = request.user
    home = user.home
    dotqmail.check_home(home)
    dt = dtline(request.local, request.domain)
    rp = rpline(request.sender)
    uf = ufline(request.sender, now)
    try:
        if has_delivered_to(fd, dt):
            raise DeliveryFailure.permanent(LOOP_TEXT)
    except OSError as e:
        raise DeliveryFailure.temporary(f"Unable to read message: {e.strerror}. (#4.3.0)") from None

    found = dotqmail.find_dotqmail(home, user.dash, user.ext)
    default: str | None = None
    forward_only = False
    if found is None:
        if user.dash:
            raise DeliveryFailure.permanent(NO_MAILBOX_TEXT)
        instructions = dotqmail.parse_instructions(request.defaultdelivery.encode("utf-8", "surrogateescape"), "defaultdelivery")
    else:
        default = found.default
        forward_only = found.executable
        if found.data:
            instructions = dotqmail.parse_instructions(found.data, os.path.basename(found.path))
        else:
            instructions = dotqmail.parse_instructions(
                request.defaultdelivery.encode("utf-8", "surrogateescape"), "defaultdelivery"
            )

    newsender = dotqmail.newsender(home, user.dash, user.ext, request.local, request.domain, request.sender)
    context = ProgramContext(
        sender=request.sender,
        newsender=newsender,
        local=request.local,
        domain=request.domain,
        user=user.user,
        home=home,
        ext=user.ext,
        default=default,
        dtline=dt.decode("utf-8", "surrogateescape"),
        rpline=rp.decode("utf-8", "surrogateescape"),
        ufline=uf.decode("utf-8", "surrogateescape"),
    )
    env: dict[str, str] | None = None
    files = programs = 0
    forwards: list[str] = []
    delivered: set[tuple[str, str]] = set()
    for instruction in instructions:
        kind = instruction.kind
        if kind == "forwardonly":
            forward_only = True
        elif kind == "forward":
            forwards.append(_check_forward(instruction.value, instruction.lineno))
        elif kind == "program":
            if forward_only:
                raise DeliveryFailure.temporary("Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
            if env is None:
                env = program_environment(context)
            result = run_program(instruction.value, home, fd, env)
            output.append(result.output.decode("utf-8", "replace"))
            programs += 1
            if result.stop:
                break
        else:
            if forward_only:
                raise DeliveryFailure.temporary("Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")
            path = os.path.normpath(os.path.join(home, instruction.value))
            if (kind, path) in delivered:
                continue
            if kind == "maildir":
                deliver_maildir(path, rp + dt, message_copy(fd))
            else:
                deliver_mbox(path, instruction.value, uf + rp + dt, read_lines(fd), lock_timeout=lock_timeout)
            delivered.add((kind, path))
            files += 1
    return LocalOutcome("K", "".join(output), DeliveryCounts(files, len(forwards), programs), forwards, newsender)
