# -*- test-case-name: tests.smtpd.test_access -*-
"""
SMTP access rules: ROOT/etc/tcp.smtp in tcprules' text format.

One rule per line, C{address:allow} or C{address:deny}, optionally followed
by C{,NAME=<q>value<q>} assignments where C{<q>} is any single quote
character.  Comment lines (C{#}) and blank lines are skipped, trailing blanks
removed, lines without a colon ignored; anything else that does not parse is
an error naming the line (tcprules' C{unable to parse this line}).

Addresses: an exact IP (C{1.2.3.4}, C{::1}), a prefix ending in C{.} (IPv4)
or C{:} (IPv6), a last-component range (C{1.2.3.40-50}), C{=host.name},
C{=.example.com} (any name ending in it), C{=} (any named client),
C{info@ip} / C{info@=host}, and the empty address (the default rule).
Because IPv6 addresses contain colons, the address ends at the first colon
followed by C{allow} or C{deny}.

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

__all__ = ["AccessRule", "AccessRules", "TcpRulesError", "ALLOW_ALL", "normalise_ip"]

_INSTRUCTION = re.compile(r"^(.*?):(allow|deny)(.*)$", re.S)
_RANGE = re.compile(r"^(.*\.)(\d+)-(\d+)$")


class TcpRulesError(ValueError):
    """A line of a rules file that does not parse."""

    def __init__(self, path: str, lineno: int, line: str) -> None:
        self.path = path
        self.lineno = lineno
        self.line = line
        super().__init__(f"{path}:{lineno}: unable to parse this line: {line}")


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


def _expand_address(address: str) -> list[str]:
    """The keys one address stands for (a range becomes one key per number)."""
    if address.startswith("=") or "@=" in address:
        return [address.lower()]
    m = _RANGE.match(address)
    if m and "@" not in address and not address.startswith("="):
        prefix, first, last = m.group(1), int(m.group(2)), min(int(m.group(3)), 255)
        return [f"{prefix}{n}" for n in range(first, last + 1)]
    return [address]


@functools.lru_cache(maxsize=4096)
def normalise_ip(ip: str) -> str:
    """An IPv4-mapped IPv6 address (C{::ffff:1.2.3.4}) as plain IPv4; others unchanged."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


@dataclass
class AccessRules:
    """A parsed rules file, looked up per connection."""

    rules: dict[str, AccessRule] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def parse(cls, text: str, path: str = "tcp.smtp") -> "AccessRules":
        rules: dict[str, AccessRule] = {}
        for lineno, raw in enumerate(text.split("\n"), 1):
            line = raw.rstrip(" \t\r")
            if not line or line.startswith("#"):
                continue
            if ":" not in line:
                continue
            m = _INSTRUCTION.match(line)
            if m is None:
                raise TcpRulesError(path, lineno, line)
            address = m.group(1)
            parsed = _parse_instructions(m.group(2) + m.group(3))
            if parsed is None:
                raise TcpRulesError(path, lineno, line)
            allow, env = parsed
            for key in _expand_address(address):
                rules.setdefault(key, AccessRule(key, allow, env, lineno))
        return cls(rules, path)

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
