# -*- test-case-name: tests.local.test_spawner -*-
"""
A delivery child of the local spawner (qmail-local's process): forked by
L{pymta.local.childpool}, it becomes the recipient's uid and gid
(L{become_recipient}) before any delivery code runs, then delivers each
request that arrives on its socket (L{pymta.local.childrecords}, the
message file attached) with L{pymta.local.deliver.deliver_local} and
answers with the outcome, until end of input.  It never changes uid again
and never serves another uid.

Which uids a process may deliver as (L{uid_refusal}) is decided here, for
the spawner (before it queues a job) and the child alike: never uid 0;
another uid than its own only when root.
"""

from __future__ import annotations

import os
import socket

from pymta.local.childrecords import encode_outcome, parse_delivery
from pymta.local.deliver import LocalOutcome, deliver_local
from pymta.local.errors import DeliveryFailure
from pymta.privsep import PrivilegeDropError, become, is_root

__all__ = ["child_main", "become_recipient", "uid_refusal", "ROOT_REFUSED", "not_root_text"]

ROOT_REFUSED = "Not allowed to perform deliveries as root."


def not_root_text(uid: int) -> str:
    return f"Not running as root, cannot deliver as uid {uid}. (#4.3.0)"


def uid_refusal(uid: int) -> DeliveryFailure | None:
    """Why this process may not deliver as C{uid} (a deferral), or None."""
    if uid == 0:
        return DeliveryFailure.temporary(ROOT_REFUSED)
    if not is_root() and uid != os.getuid():
        return DeliveryFailure.temporary(not_root_text(uid))
    return None


def become_recipient(uid: int, gid: int) -> None:
    """
    Become the recipient (L{pymta.privsep.become}); without root, stay this
    process's uid (and group), which must be C{uid}.  L{DeliveryFailure} when
    the delivery may not or cannot run as C{uid}.
    """
    refusal = uid_refusal(uid)
    if refusal is not None:
        raise refusal
    if not is_root():
        return
    try:
        # qmail-lspawn refuses uid 0 only: an account whose group is 0 still gets its mail
        become(uid, gid, allow_root_group=True)
    except PrivilegeDropError as e:
        raise DeliveryFailure.temporary(f"Unable to switch to uid {uid} gid {gid}: {e}. (#4.3.0)") from None


def _receive(sock: socket.socket, pending: bytearray) -> tuple[bytes, list[int]] | None:
    """The next request line and the descriptors that came with it; None at end of input."""
    fds: list[int] = []
    while b"\n" not in pending:
        data, received, _, _ = socket.recv_fds(sock, 65536, 4)
        fds.extend(received)
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        pending += data
    end = pending.index(b"\n")
    line = bytes(pending[:end])
    del pending[: end + 1]
    return line, fds


def child_main(sock: socket.socket, uid: int, gid: int, lock_timeout: float) -> int:
    """Become C{uid}/C{gid}, then deliver each request that arrives; the exit status."""
    refusal: DeliveryFailure | None = None
    try:
        become_recipient(uid, gid)
        os.umask(0o077)
    except DeliveryFailure as failure:
        refusal = failure  # every request gets it: the spawner reports it, the child is retired as usual
    pending = bytearray()
    while True:
        try:
            received = _receive(sock, pending)
        except OSError:
            return 111
        if received is None:
            return 0
        line, fds = received
        try:
            outcome = _deliver_request(line, fds, (uid, gid), refusal, lock_timeout)
        except Exception as e:  # never run on into anything else: report and stop
            outcome = LocalOutcome("Z", f"Internal error in local delivery: {type(e).__name__}: {e}. (#4.3.0)")
        finally:
            for fd in fds:
                os.close(fd)
        sock.sendall(encode_outcome(outcome))


def _deliver_request(
    line: bytes, fds: list[int], key: tuple[int, int], refusal: DeliveryFailure | None, lock_timeout: float
) -> LocalOutcome:
    if refusal is not None:
        return LocalOutcome(refusal.status, refusal.report)
    if len(fds) != 1:
        raise ValueError(f"expected one message descriptor, got {len(fds)}")
    delivery = parse_delivery(line)
    if (delivery.user.uid, delivery.user.gid) != key:
        raise ValueError(f"a delivery for uid {delivery.user.uid} gid {delivery.user.gid} in a child of {key}")
    return deliver_local(delivery, fds[0], lock_timeout=lock_timeout)
