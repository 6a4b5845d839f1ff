# -*- test-case-name: tests.smtpd.test_access -*-
"""
SMTP access rules: ROOT/etc/tcp.smtp in tcprules' text format.

One rule per line, C{address:allow} or C{address:deny}, optionally followed
by C{,NAME=<q>value<q>} assignments where C{<q>} is any single quote
character.  Comment lines (C{#}) and blank lines are skipped, trailing blanks
removed; anything else that does not parse is an error naming the line
(tcprules' C{unable to parse this line}).

Addresses: an exact IP (C{1.2.3.4}, C{::1}), a prefix ending in C{.} (IPv4)
or C{:} (IPv6), a last-component range (C{1.2.3.40-50}), C{=host.name},
C{=.example.com} (any name ending in it), C{=} (any named client),
C{info@ip} / C{info@=host}, and the empty address (the default rule).
Because IPv6 addresses contain colons, the address ends at the first colon
followed by C{allow} or C{deny}.

Where tcprules silently accepts a line that can never apply, pymta refuses
it with the file, the line and the reason (L{TcpRulesError}, a
L{ControlError}): a line without a colon (tcprules skips it); an address
with a blank (C{127.0.0.1 :deny}) or one that is none of the forms above
(C{192.168.1.0/24}, C{192.168.1} without its final dot, C{mail.example}
without C{=}, C{1.2.3.9-4}); an address that an earlier line already has
(the first line wins in tcprules, so the later one never applies; ranges
count: a range is refused only when every address in it is taken, and
otherwise applies to the others, with L{AccessRules.overlaps} saying which
were taken); a variable name with a blank; a C{DATABYTES} that is not a decimal
number.  An exact IPv6 address or prefix is written as clients' addresses
are looked up (lowercase, no leading zeros, C{::ffff:1.2.3.4} as
C{1.2.3.4}), so C{2001:DB8::0001} matches C{2001:db8::1}.

Lookup is by specificity, not file order (ucspi-tcp's order): info@ip,
info@=host, ip, =host, IP prefixes longest first, =.suffixes longest first,
C{=}, the empty key.  The first line with a given key wins.  No match:
allow.  A missing file allows every client (like C{tcpserver -X}).

pymta has no ident lookups, so info keys only match when a caller supplies
the info; C{=host} keys match when the caller did a reverse lookup
(pymta-smtpd does one, bounded in time, when the file has C{=} rules).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field

from pymta.clientaddress import normalise_ip
from pymta.control import ControlError
from pymta.hostnames import host_name_problem

__all__ = ["AccessRule", "AccessRules", "TcpRulesError", "ALLOW_ALL", "normalise_ip"]

_INSTRUCTION = re.compile(r"^(.*?):(allow|deny)(.*)$", re.S)
_RANGE = re.compile(r"^(.*\.)(\d+)-(\d+)$")


class TcpRulesError(ControlError, ValueError):
    """
    A line of a rules file that cannot be used: C{why} says what is wrong
    (tcprules' "unable to parse this line" unless a more precise reason is
    known), C{line} is the line.
    """

    def __init__(self, path: str, lineno: int, line: str, why: str = "unable to parse this line") -> None:
        self.line = line
        self.why = why
        super().__init__(path, lineno, f"{why}: {line}")


class _BadAddress(ValueError):
    """Why an address of a rule cannot be used."""


#: variables whose value pymta-smtpd reads as a number
_NUMERIC_VARIABLES = ("DATABYTES",)


@dataclass(frozen=True)
class AccessRule:
    """One rule: allow or deny, the variables it sets, and where it came from."""

    key: str
    allow: bool
    env: tuple[tuple[str, str], ...] = ()
    lineno: int = 0

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.env)


def _parse_instructions(text: str) -> tuple[bool, tuple[tuple[str, str], ...]] | None:
    if text.startswith("allow"):
        allow, rest = True, text[5:]
    elif text.startswith("deny"):
        allow, rest = False, text[4:]
    else:
        return None
    env: list[tuple[str, str]] = []
    while rest:
        if rest[0] != ",":
            return None
        eq = rest.find("=")
        if eq == -1:
            return None
        name = rest[1:eq]
        rest = rest[eq + 1 :]
        if not rest:
            return None
        quote, rest = rest[0], rest[1:]
        end = rest.find(quote)
        if end == -1:
            return None
        env.append((name, rest[:end]))
        rest = rest[end + 1 :]
    return allow, tuple(env)


def _variables_problem(env: tuple[tuple[str, str], ...]) -> str | None:
    for name, value in env:
        if not name or any(c.isspace() for c in name):
            return f"bad variable name {name!r}"
        if name in _NUMERIC_VARIABLES and not (value.strip().isascii() and value.strip().isdigit()):
            return f"{name} must be a decimal number, not {value!r}"
    return None


def _ipv4_prefix(prefix: str) -> str:
    """C{prefix} (ending in a dot) when it can begin an IPv4 address as clients' addresses are written."""
    octets = prefix[:-1].split(".")
    if len(octets) > 3 or not all(o.isascii() and o.isdigit() and int(o) < 256 and str(int(o)) == o for o in octets):
        raise _BadAddress(f"not an IPv4 prefix: {prefix!r}")
    return prefix


def _ipv6_prefix(prefix: str) -> str:
    """C{prefix} (ending in a colon) lowercased, without leading zeros, as clients' addresses are written."""
    body = prefix[:-1]
    groups = body.split(":")
    if body.count("::") > 1 or len(groups) > 8 or not all(
        len(g) <= 4 and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups
    ):
        raise _BadAddress(f"not an IPv6 prefix: {prefix!r}")
    return ":".join(g.lower().lstrip("0") or ("0" if g else "") for g in groups) + ":"


def _exact_ip(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if "/" in text:
            raise _BadAddress(f"{text!r}: no /bits networks; write a prefix ending in '.' or a range") from None
        if any(c.isalpha() for c in text) and ":" not in text:
            raise _BadAddress(f"{text!r} is not an IP address; a host name rule starts with '=' (={text})") from None
        if text.count(".") < 3 and all(c.isdigit() or c == "." for c in text):
            raise _BadAddress(f"{text!r} is not an IP address; a prefix ends with '.' ({text}.)") from None
        raise _BadAddress(f"not an IP address, prefix, range or =host: {text!r}") from None
    return normalise_ip(text)


def _host_key(host: str) -> str:
    """C{=}, C{=name} or C{=.suffix}, lowercased."""
    name = host[1:]
    if name:
        problem = host_name_problem(name[1:] if name.startswith(".") else name)
        if problem is not None:
            raise _BadAddress(problem)
    return host.lower()


def _expand_address(address: str) -> list[str]:
    """The keys one address stands for (a range becomes one key per number); L{_BadAddress} when none."""
    if address == "":
        return [""]
    if any(c.isspace() for c in address):
        raise _BadAddress(f"blank in the address {address!r}")
    if "@" in address:
        info, _, rest = address.rpartition("@")
        if not info:
            raise _BadAddress(f"empty ident information in {address!r}")
        return [f"{info}@{_host_key(rest) if rest.startswith('=') else _exact_ip(rest)}"]
    if address.startswith("="):
        return [_host_key(address)]
    m = _RANGE.match(address)
    if m:
        prefix, first, last = _ipv4_prefix(m.group(1)), int(m.group(2)), min(int(m.group(3)), 255)
        if prefix.count(".") != 3 or first > last:
            raise _BadAddress(f"not a range of IPv4 addresses: {address!r}")
        return [f"{prefix}{n}" for n in range(first, last + 1)]
    if address.endswith(".") and ":" not in address:
        return [_ipv4_prefix(address)]
    if address.endswith(":"):
        return [_ipv6_prefix(address)]
    return [_exact_ip(address)]


def _key_name(key: str) -> str:
    return repr(key) if key else "the default"


def _never_applies(taken: list[str], rules: dict[str, AccessRule]) -> str:
    """Why a line whose every key an earlier line has is refused."""
    if len(taken) == 1:
        return f"line {rules[taken[0]].lineno} already has a rule for {_key_name(taken[0])} (the first line would win, this one never apply)"
    lines = ", ".join(str(n) for n in sorted({rules[key].lineno for key in taken}))
    return f"every address of this line already has a rule (lines {lines}; the first line would win, this one never apply)"


def _partly_taken(taken: list[str], count: int, rules: dict[str, AccessRule]) -> str:
    """What earlier lines take from a line that still applies to its other keys (first wins, as in tcprules)."""
    shown = ", ".join(f"{_key_name(key)} (line {rules[key].lineno})" for key in taken[:3])
    more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
    return f"earlier lines already have a rule for {shown}{more}; this line applies to its other {count - len(taken)} addresses"


@dataclass
class AccessRules:
    """A parsed rules file, looked up per connection."""

    rules: dict[str, AccessRule] = field(default_factory=dict)
    path: str = ""
    #: (line number, what earlier lines take from it) for each line that applies only in part (worth a warning)
    overlaps: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, path: str = "tcp.smtp") -> "AccessRules":
        rules: dict[str, AccessRule] = {}
        overlaps: list[tuple[int, str]] = []
        for lineno, raw in enumerate(text.split("\n"), 1):
            line = raw.rstrip(" \t\r")
            if not line or line.startswith("#"):
                continue
            if ":" not in line:
                raise TcpRulesError(path, lineno, line, "no colon (a rule is address:allow or address:deny)")
            m = _INSTRUCTION.match(line)
            if m is None:
                raise TcpRulesError(path, lineno, line)
            parsed = _parse_instructions(m.group(2) + m.group(3))
            if parsed is None:
                raise TcpRulesError(path, lineno, line)
            allow, env = parsed
            problem = _variables_problem(env)
            if problem is not None:
                raise TcpRulesError(path, lineno, line, problem)
            try:
                keys = _expand_address(m.group(1))
            except _BadAddress as e:
                raise TcpRulesError(path, lineno, line, str(e)) from None
            taken = [key for key in keys if key in rules]
            if len(taken) == len(keys):
                raise TcpRulesError(path, lineno, line, _never_applies(taken, rules))
            if taken:
                overlaps.append((lineno, _partly_taken(taken, len(keys), rules)))
            for key in keys:
                if key not in rules:
                    rules[key] = AccessRule(key, allow, env, lineno)
        return cls(rules, path, overlaps)

    @classmethod
    def load(cls, path: str) -> "AccessRules":
        """Parse the file at C{path}; a missing file is an empty rule set (allow all)."""
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except FileNotFoundError:
            return cls({}, path)
        return cls.parse(text, path)

    def __len__(self) -> int:
        return len(self.rules)

    @functools.cached_property
    def uses_host_names(self) -> bool:
        """
        True when some rule is keyed by a host name (C{=...}): a reverse
        lookup is worth doing.  Worked out once (asked per connection; the
        rules do not change after parsing, a reload makes new ones).
        """
        return any(key.startswith("=") or "@=" in key for key in self.rules)

    def lookup(self, ip: str, host: str | None = None, info: str | None = None) -> AccessRule:
        """The rule for a client, by tcprules' specificity order."""
        ip = normalise_ip(ip)
        if host is not None:
            host = host.lower()
        rules = self.rules
        candidates: list[str] = []
        if info is not None:
            candidates.append(f"{info}@{ip}")
            if host is not None:
                candidates.append(f"{info}@={host}")
        candidates.append(ip)
        if host is not None:
            candidates.append(f"={host}")
        for key in candidates:
            rule = rules.get(key)
            if rule is not None:
                return rule
        sep = ":" if ":" in ip else "."
        i = len(ip)
        while True:
            i = ip.rfind(sep, 0, i)
            if i == -1:
                break
            rule = rules.get(ip[: i + 1])
            if rule is not None:
                return rule
        if host is not None:
            i = 0
            while True:
                i = host.find(".", i)
                if i == -1:
                    break
                rule = rules.get("=" + host[i:])
                if rule is not None:
                    return rule
                i += 1
            rule = rules.get("=")
            if rule is not None:
                return rule
        rule = rules.get("")
        if rule is not None:
            return rule
        return ALLOW_ALL


ALLOW_ALL = AccessRule("", True, (), 0)
