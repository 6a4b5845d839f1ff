# -*- test-case-name: tests.remote.test_mtastscache -*-
"""
The MTA-STS policy cache: in memory, and in C{ROOT/queue/lock/mtasts} so
that a restart of pymta-send keeps what it learnt (RFC 8461 section 5:
a policy holds for its C{max_age} from when it was fetched, even when its
TXT record is gone meanwhile, which is what protects a domain against
an attacker who removes the record).

The file is pymta's own JSON text, written whole to a temporary file,
fsynced and renamed over the old one: the cached policies are what keeps
an enforced policy in force while an attacker hides its TXT record, so a
crash must not leave an empty or partial file behind.  By default the file
is written at each change; the channel passes the reactor's C{callLater}
so that changes are written together at most once per C{write_delay}
seconds (the file holds up to L{MAX_ENTRIES} domains), and at L{flush}
(stop).  A file that cannot be read or parsed counts as empty, an entry
that does not parse is skipped; each is logged once.  Entries read back
are not trusted further than fresh ones: C{max_age} is clamped to the
RFC's L{MAX_AGE}, and an entry fetched in the future (which would stretch
its life) is skipped.  At most L{MAX_ENTRIES} domains are kept: expired
entries go first, then those that expire soonest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable

from twisted.logger import Logger

from pymta.remote.mtastspolicy import MAX_AGE, MODES, Policy

__all__ = ["CACHE_NAME", "MAX_ENTRIES", "WRITE_DELAY", "CachedPolicy", "PolicyCache", "cache_path"]

CACHE_NAME = "mtasts"
MAX_ENTRIES = 10000
WRITE_DELAY = 30.0

log = Logger(namespace="pymta.remote")


def cache_path(root: str) -> str:
    """C{ROOT/queue/lock/mtasts}."""
    return os.path.join(root, "queue", "lock", CACHE_NAME)


@dataclass(frozen=True)
class CachedPolicy:
    """A domain's policy, the TXT C{record_id} it was fetched for, and when (seconds since the epoch)."""

    record_id: str
    fetched: float
    policy: Policy

    @property
    def expires(self) -> float:
        return self.fetched + self.policy.max_age

    def fresh(self, now: float) -> bool:
        """True while the policy applies (less than C{max_age} since it was fetched)."""
        return now < self.expires

    def encode(self) -> dict[str, Any]:
        return {"id": self.record_id, "fetched": self.fetched, "mode": self.policy.mode,
                "max_age": self.policy.max_age, "mx": list(self.policy.mx)}

    @classmethod
    def parse(cls, value: Any) -> "CachedPolicy":
        """The entry of the JSON value C{value}; ValueError when it is not one."""
        if not isinstance(value, dict):
            raise ValueError("not an object")
        record_id, fetched, mode = value.get("id"), value.get("fetched"), value.get("mode")
        max_age, mx = value.get("max_age"), value.get("mx")
        if not isinstance(record_id, str) or not isinstance(fetched, (int, float)) or mode not in MODES:
            raise ValueError("bad id, fetched or mode")
        if not isinstance(max_age, int) or max_age < 0 or not isinstance(mx, list):
            raise ValueError("bad max_age or mx")
        if not all(isinstance(m, str) for m in mx):
            raise ValueError("bad mx")
        return cls(record_id, float(fetched), Policy(mode, min(max_age, MAX_AGE), tuple(mx)))


class PolicyCache:
    """
    Policies by domain (see the module docstring).

    @param path: the file, or None to keep the cache in memory only.
    @param clock: seconds since the epoch (the reactor's C{seconds}).
    @param call_later: the reactor's C{callLater} to write changes together
        C{write_delay} seconds after the first; None: at each change.
    """

    def __init__(self, path: str | None, clock: Callable[[], float], max_entries: int = MAX_ENTRIES,
                 call_later: Callable[..., Any] | None = None, write_delay: float = WRITE_DELAY) -> None:
        self.path = path
        self.clock = clock
        self.max_entries = max_entries
        self.call_later = call_later
        self.write_delay = write_delay
        self._entries: dict[str, CachedPolicy] | None = None
        self._dirty = False
        self._timer: Any = None

    def get(self, domain: str) -> CachedPolicy | None:
        return self._loaded().get(domain)

    def put(self, domain: str, entry: CachedPolicy) -> None:
        """Keep C{entry} for C{domain} and write the file (now, or with the next batch)."""
        entries = self._loaded()
        entries[domain] = entry
        if len(entries) > self.max_entries:
            now = self.clock()
            for gone in [d for d, e in entries.items() if not e.fresh(now)]:
                del entries[gone]
            for gone in sorted(entries, key=lambda d: entries[d].expires)[: max(0, len(entries) - self.max_entries)]:
                del entries[gone]
        self._dirty = True
        if self.call_later is None:
            self.flush()
        elif self._timer is None:
            self._timer = self.call_later(self.write_delay, self._written_later)

    def flush(self) -> None:
        """Write the changes not written yet, now (at stop)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._dirty and self._entries is not None:
            self._dirty = False
            self._save(self._entries)

    def _written_later(self) -> None:
        self._timer = None
        self.flush()

    def _loaded(self) -> dict[str, CachedPolicy]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, CachedPolicy]:
        if self.path is None:
            return {}
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warn("MTA-STS cache {path} unusable, starting empty: {error}", path=self.path, error=e)
            return {}
        domains = data.get("domains") if isinstance(data, dict) else None
        if not isinstance(domains, dict):
            log.warn("MTA-STS cache {path} unusable, starting empty: no domains", path=self.path)
            return {}
        entries: dict[str, CachedPolicy] = {}
        now = self.clock()
        for domain, value in domains.items():
            try:
                entry = CachedPolicy.parse(value)
                if entry.fetched > now:
                    raise ValueError("fetched in the future")
                entries[str(domain)] = entry
            except ValueError as e:
                log.warn("MTA-STS cache {path}: entry for {domain} skipped: {error}", path=self.path,
                         domain=domain, error=e)
        return entries

    def _save(self, entries: dict[str, CachedPolicy]) -> None:
        if self.path is None:
            return
        text = json.dumps({"version": 1, "domains": {d: e.encode() for d, e in sorted(entries.items())}},
                          indent=1, sort_keys=True)
        temporary = self.path + ".tmp"
        try:
            with open(temporary, "w", encoding="ascii") as f:
                f.write(text + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as e:
            log.warn("cannot write the MTA-STS cache {path}: {error}", path=self.path, error=e)
