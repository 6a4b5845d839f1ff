# -*- test-case-name: tests.smtpd.test_rcptcheck -*-
"""
Opt-in recipient check at RCPT time (a pymta addition; qmail accepts
every local recipient and bounces later).

Enabled when C{control/rcptcheck} exists (empty, or comment lines only:
a value in it is an error, as C{0} or C{off} would turn the check on).  A recipient that routing
(locals, virtualdomains, percenthack) sends to local delivery is looked up
the way local delivery does it: users/assign, the password database, else
the alias user; then, when the match leaves an extension (C{user-ext}, or
any alias address), a C{.qmail-ext} or C{.qmail-default} file must exist.
An exact user is always deliverable (defaultdelivery).

Unknown: refused with 550.  Anything that cannot be decided here (an
unreadable home directory, a broken assign file) is accepted: the check
never refuses mail that delivery might take.
"""

from __future__ import annotations

from typing import Callable

from pymta.control import Controls, entry_error
from pymta.local.assign import AssignCache
from pymta.local.dotqmail import find_dotqmail
from pymta.local.errors import DeliveryFailure
from pymta.local.getpw import find_user, load_assign
from pymta.queue.routing import LOCAL, route_recipient

__all__ = ["recipient_check_for", "rcptcheck_enabled", "local_recipient_known"]


def local_recipient_known(root: str, controls: Controls, address: str, assign: AssignCache) -> bool:
    """False only when local delivery would certainly find no mailbox for C{address}."""
    route = route_recipient(address, controls)
    if route.channel != LOCAL:
        return True
    local = route.address[: route.address.rfind("@")]
    try:
        user = find_user(root, local, load_assign(assign))
    except DeliveryFailure:
        return True
    if user.source != "alias" and not user.ext:
        return True
    try:
        found = find_dotqmail(user.home, user.dash, user.ext)
    except (DeliveryFailure, OSError):
        return True
    return found is not None


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


def recipient_check_for(root: str, controls: Controls) -> Callable[[Controls, str], bool] | None:
    """The check when control/rcptcheck exists, else None; L{ControlError} when it holds a value."""
    if not rcptcheck_enabled(controls):
        return None
    assign = AssignCache(root)

    def check(current: Controls, address: str) -> bool:
        return local_recipient_known(root, current, address, assign)

    return check
