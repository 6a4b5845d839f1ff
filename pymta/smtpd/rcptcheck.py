# -*- test-case-name: tests.smtpd.test_rcptcheck -*-
"""
Opt-in recipient check at RCPT time (a pymta addition; qmail accepts
every local recipient and bounces later).

Enabled when C{control/rcptcheck} exists (empty, or comment lines only:
a value in it is an error, as C{0} or C{off} would turn the check on).  A
recipient that routing (locals, virtualdomains, percenthack) sends to
local delivery is asked about through local delivery's public interface,
L{pymta.interfaces.LocalRecipients} (in the daemons
L{pymta.local.recipients.LocalRecipientLookup}, handed in by
L{pymta.services}): users/assign, the password database, the alias user
and the C{.qmail} files are read there, off the reactor thread.  Other
recipients pass.

Unknown: refused with 550.  Anything that cannot be decided is accepted:
the check never refuses mail that delivery might take.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer

from pymta.control import Controls, entry_error
from pymta.interfaces import LocalRecipients
from pymta.queue.routing import LOCAL, route_recipient

__all__ = ["recipient_check_for", "rcptcheck_enabled", "RecipientCheck"]

#: smtpd's recipient check: C{(controls, address)} -> Deferred[bool] (False: 550)
RecipientCheck = Callable[[Controls, str], "defer.Deferred[bool]"]


def rcptcheck_enabled(controls: Controls) -> bool:
    """
    Whether control/rcptcheck turns the check on: it does by being there.
    A value in it (C{0}, C{off}, ...) is a L{ControlError}: it would turn
    the check on whatever it says.  Comment lines are allowed.
    """
    lines = controls.extra_lines("rcptcheck")
    if lines:
        raise entry_error(lines, 0, f"rcptcheck takes no value ({lines[0]!r}): the file's presence turns the "
                          "check on; remove the file to turn it off", "rcptcheck")
    return lines is not None


def recipient_check_for(controls: Controls, local: LocalRecipients | None) -> RecipientCheck | None:
    """
    The check when control/rcptcheck exists and local delivery's lookup
    C{local} is given, else None; L{ControlError} when the file holds a value.
    """
    if not rcptcheck_enabled(controls) or local is None:
        return None

    def check(current: Controls, address: str) -> "defer.Deferred[bool]":
        route = route_recipient(address, current)
        if route.channel != LOCAL:
            return defer.succeed(True)
        return local.deliverable(route.address[: route.address.rfind("@")])

    return check
