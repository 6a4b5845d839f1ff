"""
DNSSEC for tests: zones signed with ldns (Debian's C{ldnsutils}) and a real
validating resolver, Unbound (Debian's C{unbound}), on 127.0.0.1 and a free
port, trusting the test zones' keys and asking NSD (L{tests.authdns}) for
them.  Unbound sets the AD bit on what it validated and answers SERVFAIL
for what is bogus, as a production validating resolver does.

L{sign_zone} returns None and L{start_unbound} returns None when the
programs cannot be had (the test skips).  Unbound is stopped by the test's
cleanup; as root it drops to C{nobody}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping

import dns.exception
import dns.flags
import dns.message
import dns.query
from twisted.trial.unittest import SynchronousTestCase

from tests.authdns import _free_udp_port, _stop
from tests.packages import ensure_program

__all__ = ["SignedZone", "sign_zone", "start_unbound", "UNBOUND_START_TIMEOUT"]

UNBOUND_START_TIMEOUT = 20.0


class SignedZone:
    """A zone's signed text and the DS record (its trust anchor)."""

    def __init__(self, origin: str, text: str, ds: str) -> None:
        self.origin, self.text, self.ds = origin, text, ds


def _program(name: str, package: str) -> str | None:
    return ensure_program(name, package) or ensure_program(f"/usr/sbin/{name}", package)


def sign_zone(test: SynchronousTestCase, origin: str, text: str) -> SignedZone | None:
    """C{text} (the zone of C{origin}, without DNSKEY) signed with a new ECDSA P-256 key."""
    keygen, signzone = _program("ldns-keygen", "ldnsutils"), _program("ldns-signzone", "ldnsutils")
    if keygen is None or signzone is None:
        return None
    directory = tempfile.mkdtemp(prefix="pymta-sign-")
    test.addCleanup(shutil.rmtree, directory, True)
    made = subprocess.run([keygen, "-a", "ECDSAP256SHA256", "-k", origin], cwd=directory, capture_output=True,
                          text=True, timeout=60, check=True)
    key = made.stdout.strip()
    with open(os.path.join(directory, "zone"), "w", encoding="ascii") as f:
        f.write(text)
    subprocess.run([signzone, "-o", origin, "-f", "zone.signed", "zone", key], cwd=directory, capture_output=True,
                   timeout=60, check=True)
    with open(os.path.join(directory, "zone.signed"), encoding="ascii") as f:
        signed = f.read()
    with open(os.path.join(directory, key + ".ds"), encoding="ascii") as f:
        ds = f.read().strip()
    return SignedZone(origin, signed, ds)


def _config(directory: str, port: int, nsd_port: int, anchors: list[str], zones: list[str]) -> str:
    lines = [
        "server:",
        f"  interface: 127.0.0.1@{port}",
        f"  port: {port}",
        f"  username: {'nobody' if os.getuid() == 0 else chr(34) * 2}",
        '  chroot: ""',
        f'  directory: "{directory}"',
        f'  pidfile: "{directory}/unbound.pid"',
        "  do-daemonize: no",
        "  use-syslog: no",
        '  logfile: ""',
        "  verbosity: 1",
        "  do-ip6: no",
        "  do-not-query-localhost: no",
        "  num-threads: 1",
        '  module-config: "validator iterator"',
        "  val-log-level: 2",
        '  local-zone: "test." nodefault',
        "remote-control:",
        "  control-enable: no",
    ]
    lines[1:1] = [f'  trust-anchor: "{anchor}"' for anchor in anchors]
    for origin in zones:
        lines += ["stub-zone:", f'  name: "{origin}"', f"  stub-addr: 127.0.0.1@{nsd_port}"]
    return "\n".join(lines) + "\n"


def _validates(port: int, name: str) -> bool:
    query = dns.message.make_query(name, "SOA", want_dnssec=True)
    try:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.DNSException, OSError):
        return False
    return bool(reply.answer) and bool(reply.flags & dns.flags.AD)


def start_unbound(test: SynchronousTestCase, nsd_port: int, signed: list[SignedZone],
                  insecure: Mapping[str, object] = {}) -> int | None:
    """
    A validating Unbound asking NSD on C{nsd_port} for the C{signed} zones
    (their DS records its trust anchors) and the C{insecure} ones; its
    port, or None when Unbound is not available.
    """
    unbound = _program("unbound", "unbound")
    if unbound is None:
        return None
    directory = tempfile.mkdtemp(prefix="pymta-unbound-")
    test.addCleanup(shutil.rmtree, directory, True)
    os.chmod(directory, 0o755)
    zones = [z.origin for z in signed] + list(insecure)
    log = ""
    for _ in range(3):
        port = _free_udp_port()
        config = os.path.join(directory, "unbound.conf")
        with open(config, "w", encoding="ascii") as f:
            f.write(_config(directory, port, nsd_port, [z.ds for z in signed], zones))
        child = subprocess.Popen([unbound, "-d", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        test.addCleanup(_stop, child)
        deadline = time.monotonic() + UNBOUND_START_TIMEOUT
        while time.monotonic() < deadline and child.poll() is None:
            if all(_validates(port, z.origin) for z in signed):
                return port
            time.sleep(0.1)
        log = _stop(child)
    test.fail(f"unbound did not validate the test zones: {log}")
    return None
