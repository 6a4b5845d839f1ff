# -*- test-case-name: tests.remote.test_localaddrs -*-
"""
This machine's own IP addresses, for the MX self check.

IPv4 addresses come from the kernel's interface list (SIOCGIFCONF), IPv6
ones from /proc/net/if_inet6 (Linux): the interfaces' addresses, as qmail
takes them (no name lookup, which could block the reactor).  Loopback and unspecified addresses are always treated as
this machine's by L{pymta.remote.routes.is_self_address}, so a failure here
never lets a remote domain loop into ourselves through 127.0.0.1.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct

__all__ = ["own_addresses"]

_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux


def _ipv4_interface_addresses() -> set[str]:
    found: set[str] = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            size = 128 * _IFREQ_SIZE
            buf = array.array("B", b"\0" * size)
            address, _ = buf.buffer_info()
            ifconf = struct.pack("iL", size, address)
            result = fcntl.ioctl(s.fileno(), _SIOCGIFCONF, ifconf)
            used = struct.unpack("iL", result)[0]
            data = buf.tobytes()[:used]
    except (OSError, struct.error):
        return found
    for offset in range(0, used - _IFREQ_SIZE + 1, _IFREQ_SIZE):
        sockaddr = data[offset + 16 : offset + 24]
        family = struct.unpack("H", sockaddr[:2])[0]
        if family == socket.AF_INET:
            found.add(socket.inet_ntoa(sockaddr[4:8]))
    return found


def _ipv6_interface_addresses(path: str = "/proc/net/if_inet6") -> set[str]:
    found: set[str] = set()
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if fields and len(fields[0]) == 32:
                    found.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    except (OSError, ValueError):
        pass
    return found


def own_addresses() -> frozenset[str]:
    """Every IPv4 and IPv6 address this machine answers on, as normalised text."""
    return frozenset(_ipv4_interface_addresses() | _ipv6_interface_addresses())
