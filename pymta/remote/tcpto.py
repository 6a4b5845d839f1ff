# -*- test-case-name: tests.remote.test_tcpto -*-
"""
Dead-host memory (qmail's tcpto), in C{ROOT/queue/lock/tcpto}.

Semantics follow qmail (docs/internals.md, 'Dead hosts'): only connect B{timeouts} count,
refusals do not; an address is skipped while it has at least 2 recent
timeouts and the last one is less than C{(60 + (pid & 31)) * 64} seconds
old (about 64 to 97 minutes); a timeout within 120 s of the previous one
does not raise the count; a successful connection forgets the address;
a new address takes a free slot, else the slot with the smallest
C{last + count * 1024}.

File format (pymta's own, so that IPv6 fits): 64 records of 32 bytes,
2048 bytes in all.  A record is the 16-byte address (IPv4 as an
IPv4-mapped IPv6 address), the count as a little-endian 32-bit number, the
time of the last timeout in whole seconds as a little-endian 64-bit number
and 4 reserved zero bytes.  A record with count 0 is free.  Every update
holds an exclusive C{flock} on the file; a file of another size is treated
as empty (and rewritten on the next update).

Reading: L{DeadHostMemory.is_dead} runs for every delivery, so the dead
addresses are kept in memory and the file is read again only when its
C{stat} (inode, size, modification and change times) differs or the copy
is older than C{reread_after} seconds (1 by default; 0 reads the file every
time, as qmail-remote does).  The age bound covers a write within the file
system's timestamp granularity that leaves the C{stat} unchanged: another
process's update (C{pymta ctl tcpok}) is seen within that second at worst.
"""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import os
import struct
import time
from dataclasses import dataclass
from typing import Callable

__all__ = ["TCPTO_NAME", "DeadHostEntry", "DeadHostMemory", "clear", "tcpto_path"]

TCPTO_NAME = "tcpto"
RECORDS = 64
_RECORD = struct.Struct("<16sIQ4x")
FILE_SIZE = RECORDS * _RECORD.size
_MAX_COUNT = 10


def tcpto_path(root: str) -> str:
    """C{ROOT/queue/lock/tcpto}."""
    return os.path.join(root, "queue", "lock", TCPTO_NAME)


@dataclass(frozen=True)
class DeadHostEntry:
    address: str
    count: int
    last: int


@functools.lru_cache(maxsize=1024)  # pure, and asked again for every delivery to an address
def _packed(address: str) -> bytes:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    return ip.packed


def _unpacked(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


class DeadHostMemory:
    """
    The tcpto file of one queue.

    @param path: the file (see L{tcpto_path}); created on first update.
    @param clock: seconds since the epoch.
    @param pid: spreads the skip period as qmail does with its pid.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time, pid: int | None = None,
                 reread_after: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.pid = os.getpid() if pid is None else pid
        self.reread_after = reread_after
        self._monotonic = monotonic
        #: (the file's stat, when read, address -> (count, last) of records with count >= 2)
        self._view: tuple[tuple[int, ...] | None, float, dict[bytes, tuple[int, int]]] | None = None

    # -- reading -------------------------------------------------------------

    def _read(self, fd: int | None = None) -> list[tuple[bytes, int, int]]:
        try:
            if fd is None:
                with open(self.path, "rb") as f:
                    data = f.read(FILE_SIZE + 1)
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                data = os.read(fd, FILE_SIZE + 1)
        except FileNotFoundError:
            data = b""
        if len(data) != FILE_SIZE:
            return [(b"\0" * 16, 0, 0)] * RECORDS
        return [_RECORD.unpack_from(data, i * _RECORD.size) for i in range(RECORDS)]

    def entries(self) -> list[DeadHostEntry]:
        """Addresses with at least one recent timeout (for listing, like qmail-tcpto)."""
        return [DeadHostEntry(_unpacked(a), c, t) for a, c, t in self._read() if c > 0]

    def is_dead(self, address: str) -> bool:
        """True when connecting to C{address} should be skipped for now."""
        found = self._dead_view().get(_packed(address))
        if found is None:
            return False
        return int(self.clock()) - found[1] < (60 + (self.pid & 31)) * 64

    def _dead_view(self) -> dict[bytes, tuple[int, int]]:
        """The records with at least 2 timeouts, by address: from memory while the file is unchanged."""
        try:
            st = os.stat(self.path)
            stamp: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = None
        now = self._monotonic()
        view = self._view
        if view is not None and view[0] == stamp and now - view[1] < self.reread_after:
            return view[2]
        dead = {raw: (count, last) for raw, count, last in reversed(self._read()) if count >= 2}  # the first record wins
        self._view = (stamp, now, dead)
        return dead

    # -- updating --------------------------------------------------------------

    def _update(self, change: Callable[[list[tuple[bytes, int, int]]], bool]) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.geteuid() == 0:
                # root (pymta-send before its privilege drop, pymta ctl tcpok) must leave
                # the file to the queue's owner, who updates it afterwards
                owner = os.stat(os.path.dirname(self.path))
                os.fchown(fd, owner.st_uid, owner.st_gid)
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read(fd)
            if change(records):
                data = b"".join(_RECORD.pack(*r) for r in records)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, data)
                os.ftruncate(fd, FILE_SIZE)
        finally:
            self._view = None  # read the file again at the next check
            os.close(fd)

    def record_timeout(self, address: str) -> None:
        """A connection attempt to C{address} timed out."""
        key = _packed(address)
        now = int(self.clock())

        def change(records: list[tuple[bytes, int, int]]) -> bool:
            for i, (raw, count, last) in enumerate(records):
                if raw == key and count > 0:
                    if now - last >= 120:
                        records[i] = (key, min(count + 1, _MAX_COUNT), now)
                    return True
            free = [i for i, (_, count, _) in enumerate(records) if count == 0]
            if free:
                slot = free[0]
            else:
                slot = min(range(RECORDS), key=lambda i: records[i][2] + records[i][1] * 1024)
            records[slot] = (key, 1, now)
            return True

        self._update(change)

    def record_success(self, address: str) -> None:
        """A connection to C{address} was made: forget its timeouts."""
        key = _packed(address)
        if not any(raw == key and count > 0 for raw, count, _ in self._read()):
            return

        def change(records: list[tuple[bytes, int, int]]) -> bool:
            for i, (raw, count, last) in enumerate(records):
                if raw == key and count > 0:
                    records[i] = (b"\0" * 16, 0, 0)
                    return True
            return False

        self._update(change)

    def clear(self) -> None:
        """Forget every address (qmail-tcpok)."""
        if not os.path.isdir(os.path.dirname(self.path)):
            return

        def change(records: list[tuple[bytes, int, int]]) -> bool:
            records[:] = [(b"\0" * 16, 0, 0)] * RECORDS
            return True

        self._update(change)


def clear(root: str) -> None:
    """Forget every dead host of the queue under C{root} (C{pymta ctl tcpok})."""
    DeadHostMemory(tcpto_path(root)).clear()
