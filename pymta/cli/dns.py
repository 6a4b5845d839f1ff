# -*- test-case-name: tests.cli.test_dns -*-
"""
C{pymta dns records|check|mta-sts [--root DIR] [--ipv4 ADDR]... [--ipv6 ADDR]... [--nameserver IP[:PORT]]}:
the DNS records a domain needs to receive and send mail with this root,
and a check of what DNS publishes (L{pymta.dnsrecords} says what they are).

- C{records}: zone-file lines (MX, A/AAAA, SPF, DMARC, MTA-STS, TLS-RPT),
  the PTR records to ask the addresses' owner for, and the MTA-STS policy
  text, as comments.  The host's addresses are the C{--ipv4}/C{--ipv6}
  ones, else those DNS has for C{control/me}.
- C{check}: asks DNS (the system's resolver, or C{--nameserver}) for each
  record and prints one line per record: C{ok}, C{missing} or
  C{different} with what was found (also for an MX host that is an
  alias, which RFC 2181 §10.3 forbids).
- C{mta-sts}: the MTA-STS policy file alone.

C{--dmarc-policy} (none, quarantine, reject) and C{--mta-sts-mode}
(testing, enforce) say which stage the domain is at.

Exit status: 0 (for C{check}: every record ok), 1 a record missing or
different, 100 usage error, 111 the root cannot be read or DNS did not
answer.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys
from collections.abc import Sequence
from typing import TextIO

import dns.exception
import dns.resolver

from pymta.control import ControlError, default_root, load_controls
from pymta.dnsrecords import (
    DMARC_POLICIES,
    MTA_STS_MODES,
    MailSite,
    Verdict,
    compare,
    mta_sts_policy,
    records_for,
    zone_text,
)
from pymta.resolvers import parse_nameserver

__all__ = ["main", "parse_nameserver", "Lookup", "LookupFailed"]

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 100
EXIT_TEMPORARY = 111
LOOKUP_TIMEOUT = 5.0


class LookupFailed(Exception):
    """DNS gave no answer (time-out, no server reachable, a server failure)."""


class Lookup:
    """Answers from one resolver, in zone-file form (TXT strings joined, unquoted)."""

    def __init__(self, nameserver: tuple[str, int] | None = None, timeout: float | None = None) -> None:
        self.nameserver = nameserver
        self.timeout = LOOKUP_TIMEOUT if timeout is None else timeout
        self._resolver: dns.resolver.Resolver | None = None
        #: names that turned out to be aliases (CNAME), and the name each one leads to
        self.aliases: dict[str, str] = {}

    @property
    def resolver(self) -> dns.resolver.Resolver:
        """Made at the first question, so a machine without /etc/resolv.conf fails only when DNS is needed."""
        if self._resolver is None:
            if self.nameserver is None:
                try:
                    resolver = dns.resolver.Resolver()
                except dns.exception.DNSException as e:
                    raise LookupFailed(f"no resolver configured ({e}): give --nameserver") from None
            else:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [self.nameserver[0]]
                resolver.port = self.nameserver[1]
            resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    def values(self, name: str, rtype: str) -> tuple[str, ...]:
        try:
            answer = self.resolver.resolve(name, rtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return ()
        except dns.exception.DNSException as e:
            raise LookupFailed(f"{name} {rtype}: {e}") from None
        if answer.canonical_name != answer.qname:
            self.aliases[name] = answer.canonical_name.to_text()
        if rtype == "TXT":
            return tuple(b"".join(r.strings).decode("utf-8", "replace") for r in answer)
        return tuple(r.to_text() for r in answer)

    def addresses(self, name: str) -> tuple[str, ...]:
        return self.values(name, "A") + self.values(name, "AAAA")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymta dns",
        description="the DNS records this root's mail domains need (records), a check of what DNS "
                    "publishes (check), the MTA-STS policy file (mta-sts)",
        epilog="exit status: 0 ok, 1 a record missing or different, 100 usage, 111 no DNS answer or unreadable root",
    )
    parser.add_argument("action", choices=("records", "check", "mta-sts"))
    parser.add_argument("--root", default=None, help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    parser.add_argument("--ipv4", action="append", default=[], metavar="ADDR", help="an IPv4 address of the MX host")
    parser.add_argument("--ipv6", action="append", default=[], metavar="ADDR", help="an IPv6 address of the MX host")
    parser.add_argument("--nameserver", default=None, metavar="IP[:PORT]",
                        help="the DNS server to ask (default: the system's resolver)")
    parser.add_argument("--dmarc-policy", choices=DMARC_POLICIES, default="none")
    parser.add_argument("--mta-sts-mode", choices=MTA_STS_MODES, default="testing")
    return parser


def _given_addresses(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    addresses = []
    for version, texts in ((4, args.ipv4), (6, args.ipv6)):
        for text in texts:
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                ip = None
            if ip is None or ip.version != version:
                parser.error(f"--ipv{version}: not an IPv{version} address: {text!r}")
            addresses.append(str(ip))
    return addresses


def main(argv: Sequence[str], stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = _parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(list(argv))
            addresses = _given_addresses(parser, args)
        nameserver = parse_nameserver(args.nameserver) if args.nameserver else None
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    except ValueError as e:
        err.write(f"pymta dns: {e}\n")
        return EXIT_USAGE
    root = os.path.abspath(args.root or default_root())
    try:
        controls = load_controls(root)
    except (ControlError, OSError) as e:
        err.write(f"pymta dns: {e}\n")
        return EXIT_TEMPORARY
    if not controls.me:
        err.write(f"pymta dns: {controls.path('me')}: missing: the MX host's name comes from it\n")
        return EXIT_TEMPORARY
    lookup = Lookup(nameserver)
    try:
        if not addresses and args.action == "records":
            addresses = _addresses_or_warning(lookup, controls.me, err)
        elif not addresses and args.action == "check":
            addresses = list(lookup.addresses(controls.me))
        site = MailSite.from_controls(controls.me, controls.helohost, controls.locals, controls.rcpthosts,
                                      controls.virtualdomains, addresses, args.dmarc_policy, args.mta_sts_mode)
        if args.action == "records":
            out.write(zone_text(site))
            return EXIT_OK
        if args.action == "mta-sts":
            out.write(mta_sts_policy(site))
            return EXIT_OK
        return check(site, lookup, out)
    except LookupFailed as e:
        err.write(f"pymta dns: no answer from DNS: {e}\n")
        return EXIT_TEMPORARY


def _addresses_or_warning(lookup: Lookup, name: str, err: TextIO) -> list[str]:
    """The addresses DNS has for C{name}; none (after a warning) when DNS does not answer."""
    try:
        return list(lookup.addresses(name))
    except LookupFailed as e:
        err.write(f"pymta dns: warning: no addresses of {name} from DNS ({e}); give --ipv4 / --ipv6\n")
        return []


def check(site: MailSite, lookup: Lookup, out: TextIO) -> int:
    """
    One line per record; L{EXIT_OK} when every one is ok, L{EXIT_MISMATCH}
    when one is missing or different, else L{EXIT_TEMPORARY} when DNS did
    not answer for one (its line says C{no answer}).
    """
    mismatch = unanswered = False
    if not site.addresses:
        out.write(f"missing   {site.mx_host} A/AAAA (no address: the MX host cannot be reached)\n")
        mismatch = True
    for record in records_for(site):
        try:
            found = lookup.values(record.owner, record.rtype)
        except LookupFailed as e:
            out.write(f"no answer {record.describe()} ({e})\n")
            unanswered = True
            continue
        verdict = compare(record, found)
        if record.rtype in ("A", "AAAA") and record.owner in lookup.aliases:
            # RFC 2181 §10.3: an MX names a host, not an alias; strict senders refuse to follow one
            verdict = Verdict(record, "different", (f"an alias (CNAME) of {lookup.aliases[record.owner]}",))
        line = verdict.line()
        if verdict.status != "ok" and record.asked_of_address_owner:
            line += " (ask the address's owner)"
        out.write(line + "\n")
        mismatch = mismatch or verdict.status != "ok"
    return EXIT_MISMATCH if mismatch else EXIT_TEMPORARY if unanswered else EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
