# -*- test-case-name: tests.test_authlimit -*-
"""
The one limiter of password guessing, shared by SMTP AUTH and POP3 logins.

Every login attempt (SMTP AUTH PLAIN, LOGIN, CRAM-MD5; POP3 USER/PASS,
APOP, AUTH PLAIN) asks L{LoginLimiter.begin} before any password is
checked.  Two budgets of failed logins apply, each over a sliding window of
C{window} seconds:

  - per client address (C{per_address}): an IPv4 address, an IPv4-mapped
    IPv6 address as its IPv4 address, an IPv6 address by its /64 network
    (one customer's whole allocation);
  - per account (C{per_account}, 0 = none): the user name as the client
    typed it, case-folded.  This budget does not hold back an address from
    which that account logged in successfully within L{KNOWN_GOOD_SECONDS}:
    an attack on an account from elsewhere does not lock its owner out at
    home, but a new address has to wait until the attack stops.

An attempt is counted when it starts (a reservation), so parallel attempts
share one budget: with a budget of 10, ten attempts in flight leave none
for an eleventh.  A success gives its reservation back; so does an attempt
that never reached a password check (it waited for a slot and its client
went away, or the wait queue was full) or whose check failed for a
temporary reason; any other outcome, a check abandoned while running
included, counts as a failure at the time it ends.  An attempt over budget
raises L{OverBudget}; nothing is checked.

The checks themselves then run through one L{CheckGate}
(C{concurrency} at once, L{WAITING_PER_SLOT} times as many waiting).

Memory stays bounded under a spray of addresses or user names: each table
keeps at most C{table_size} keys and forgets the least recently used one
first.  Everything runs on a clock (C{seconds()}), so tests drive it with
C{task.Clock}.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.python.failure import Failure

from pymta.checkgate import CheckGate, GateFull
from pymta.clientaddress import client_group
from pymta.control import ControlReader

__all__ = [
    "AuthLimits",
    "LoginLimiter",
    "limiter_for",
    "Attempt",
    "OverBudget",
    "GateFull",
    "account_key",
    "failure_delay",
    "KNOWN_GOOD_SECONDS",
    "WAITING_PER_SLOT",
]

#: how long a successful login keeps its address exempt from the account budget
KNOWN_GOOD_SECONDS = 30 * 86400.0
#: checks that may wait for a slot, per slot (C{authconcurrency})
WAITING_PER_SLOT = 8
#: keys kept per table (addresses, accounts, known-good pairs)
TABLE_SIZE = 50_000
#: failure times kept per key; more than any budget needs
MAX_TIMES_PER_KEY = 1000
#: longest account key kept (longer user names share the prefix's budget)
MAX_ACCOUNT_KEY = 256


def account_key(user: bytes | str) -> str:
    """The account a budget is kept for: the user name, blanks around it dropped, case-folded."""
    if isinstance(user, bytes):
        user = user.decode("utf-8", "surrogateescape")
    return user.strip().casefold()[:MAX_ACCOUNT_KEY]


def failure_delay(failures: int, base: float, cap: float) -> float:
    """Seconds to wait before answering a failed login: C{base} per recent failure of the address, at most C{cap}."""
    return max(0.0, min(base * failures, cap))


@dataclass(frozen=True)
class AuthLimits:
    """The budgets; L{from_controls} reads them from control files."""

    per_address: int = 10
    per_account: int = 30
    window: float = 600.0
    concurrency: int = 4

    @classmethod
    def from_controls(cls, controls: Any) -> AuthLimits:
        """C{control/authfailuresperip}, C{authfailuresperaccount}, C{authfailurewindow}, C{authconcurrency}."""
        return cls(
            per_address=controls.authfailuresperip,
            per_account=controls.authfailuresperaccount,
            window=float(controls.authfailurewindow),
            concurrency=controls.authconcurrency,
        )


class OverBudget(Exception):
    """An attempt refused before any check: too many recent failures of its address or account."""

    def __init__(self, kind: str, key: str, count: int, window: float) -> None:
        self.kind = kind  # "address" or "account"
        self.key = key
        self.count = count
        self.window = window
        where = f"from {key}" if kind == "address" else f"for account {key}"
        super().__init__(f"{count} failed or running logins {where} within {window:g} seconds")


class _Budget:
    __slots__ = ("times", "pending")

    def __init__(self) -> None:
        self.times: list[float] = []  # failure times, oldest first
        self.pending = 0  # attempts started and not yet decided


class _Table:
    """Budgets by key; beyond C{size} keys the least recently used idle one is forgotten."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Budget] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def used(self, key: str, since: float) -> int:
        """Failures after C{since} plus attempts in flight."""
        entry = self._entries.get(key)
        if entry is None:
            return 0
        times = entry.times
        drop = 0
        while drop < len(times) and times[drop] <= since:
            drop += 1
        if drop:
            del times[:drop]
        if not times and not entry.pending:
            del self._entries[key]
            return 0
        return len(times) + entry.pending

    def reserve(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Budget()
            self._evict()
        else:
            self._entries.move_to_end(key)
        entry.pending += 1

    def settle(self, key: str, failed_at: float | None) -> None:
        """End a reservation: give it back (C{failed_at} None) or turn it into a failure."""
        entry = self._entries.get(key)
        if entry is None:  # forgotten under a spray of keys
            if failed_at is None:
                return
            entry = self._entries[key] = _Budget()
            self._evict()
        else:
            entry.pending = max(0, entry.pending - 1)
            self._entries.move_to_end(key)
        if failed_at is not None:
            entry.times.append(failed_at)
            if len(entry.times) > MAX_TIMES_PER_KEY:
                del entry.times[: len(entry.times) - MAX_TIMES_PER_KEY]
        elif not entry.times and not entry.pending:
            del self._entries[key]

    def _evict(self) -> None:
        # entries with attempts in flight are kept; there are few (bounded by the check gate)
        for _ in range(len(self._entries)):
            if len(self._entries) <= self.size:
                return
            key, entry = next(iter(self._entries.items()))
            if entry.pending:
                self._entries.move_to_end(key)
            else:
                del self._entries[key]


class LoginLimiter:
    """Budgets per address and per account, the known-good addresses, and the check gate."""

    def __init__(self, clock: Any, limits: AuthLimits | None = None, table_size: int = TABLE_SIZE) -> None:
        self.clock = clock
        self.limits = limits or AuthLimits()
        self.addresses = _Table(table_size)
        self.accounts = _Table(table_size)
        self._known_good: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._table_size = table_size
        self.gate = CheckGate(self.limits.concurrency, self.limits.concurrency * WAITING_PER_SLOT)

    def configure(self, limits: AuthLimits) -> None:
        """New budgets (at reload); failures already counted stay counted."""
        self.limits = limits
        self.gate.resize(limits.concurrency, limits.concurrency * WAITING_PER_SLOT)

    def known_good(self, account: str, address: str) -> bool:
        """True when C{account} logged in from C{address} (a budget key) within L{KNOWN_GOOD_SECONDS}."""
        when = self._known_good.get((account, address))
        if when is None:
            return False
        if when <= self.clock.seconds() - KNOWN_GOOD_SECONDS:
            del self._known_good[(account, address)]
            return False
        return True

    def begin(self, ip: str, user: bytes | str) -> Attempt:
        """Reserve one attempt for C{ip} and C{user}, or raise L{OverBudget}."""
        limits = self.limits
        address, account = client_group(ip), account_key(user)
        since = self.clock.seconds() - limits.window
        used = self.addresses.used(address, since)
        if used >= limits.per_address:
            raise OverBudget("address", address, used, limits.window)
        if limits.per_account and not self.known_good(account, address):
            used = self.accounts.used(account, since)
            if used >= limits.per_account:
                raise OverBudget("account", account, used, limits.window)
        self.addresses.reserve(address)
        self.accounts.reserve(account)
        return Attempt(self, address, account)

    def failures(self, ip: str) -> int:
        """Failures (and attempts in flight) of an address (or its budget key) within the window."""
        return self.addresses.used(client_group(ip), self.clock.seconds() - self.limits.window)

    def _settle(self, attempt: Attempt, failed: bool, succeeded: bool) -> None:
        now = self.clock.seconds() if failed else None
        self.addresses.settle(attempt.address, now)
        self.accounts.settle(attempt.account, now)
        if succeeded:
            pair = (attempt.account, attempt.address)
            self._known_good[pair] = self.clock.seconds()
            self._known_good.move_to_end(pair)
            while len(self._known_good) > self._table_size:
                self._known_good.popitem(last=False)


class Attempt:
    """
    One reserved login attempt.  L{run} checks the password through the
    gate and settles the reservation by the outcome; C{failures} is then the
    address's count within the window (for the delay before the answer).
    """

    def __init__(self, limiter: LoginLimiter, address: str, account: str) -> None:
        self.limiter = limiter
        self.address = address
        self.account = account
        self.failures = 0
        self._started = False
        self._settled = False

    def run(
        self, check: Callable[[], defer.Deferred], is_temporary: Callable[[Failure], bool] = lambda f: False
    ) -> defer.Deferred:
        """
        C{check()}'s result once a slot is free.  Fails with L{GateFull}
        when too many checks wait; cancel it when the client goes away.
        C{is_temporary(failure)} tells a check that could not decide (its
        reservation is given back) from a refused login.
        """

        def start() -> defer.Deferred:
            self._started = True
            return defer.maybeDeferred(check).addBoth(self._checked, is_temporary)

        d = self.limiter.gate.run(start)
        d.addErrback(self._not_started)
        return d

    def _checked(self, result: Any, is_temporary: Callable[[Failure], bool]) -> Any:
        if not isinstance(result, Failure):
            self._settle(failed=False, succeeded=True)
        elif is_temporary(result) and not result.check(defer.CancelledError):
            self._settle(failed=False, succeeded=False)
        else:  # a refused login, or a check abandoned while it ran
            self._settle(failed=True, succeeded=False)
            self.failures = self.limiter.failures(self.address)
        return result

    def _not_started(self, failure: Failure) -> Failure:
        if not self._started:
            self._settle(failed=False, succeeded=False)
        return failure

    def _settle(self, failed: bool, succeeded: bool) -> None:
        if not self._settled:
            self._settled = True
            self.limiter._settle(self, failed, succeeded)


def limiter_for(reader: ControlReader, clock: Any) -> LoginLimiter:
    """
    A L{LoginLimiter} with the budgets of C{reader}'s control files, which
    takes the new budgets at every successful reload of C{reader}.
    """
    limiter = LoginLimiter(clock, AuthLimits.from_controls(reader.current))
    reader.on_reload(lambda controls: limiter.configure(AuthLimits.from_controls(controls)))
    return limiter
