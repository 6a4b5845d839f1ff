# -*- test-case-name: tests.test_control -*-
"""
qmail control files: ROOT/control/NAME, typed, with qmail's defaults.

Parsing follows qmail: single-value files use their first line with trailing
blanks removed; list files have one entry per line, blank lines and lines
starting with ``#`` skipped; colon-keyed tables (virtualdomains, smtproutes)
split at the first colon and the last duplicate key wins.  Host-name files
fall back to ``me``.  Where qmail silently treats a malformed value as absent,
pymta refuses it with a L{ControlError} that names the file and the line, so
an administrator's typo never turns into an unnoticed default.

A L{Controls} object is an immutable snapshot; L{ControlReader} holds the
current one and replaces it on L{ControlReader.reload}, keeping the old
snapshot when the new files are malformed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

__all__ = [
    "ControlError",
    "ControlSpec",
    "Controls",
    "ControlReader",
    "SPECS",
    "load_controls",
]


class ControlError(Exception):
    """A control file exists but cannot be used; the message names file and line."""

    def __init__(self, path: str, lineno: int, reason: str) -> None:
        self.path = path
        self.lineno = lineno
        self.reason = reason
        super().__init__(f"{path}:{lineno}: {reason}")


# kinds of control files
HOST = "host"  # single line, falls back to me, then to a literal
TEXT = "text"  # single line, literal default
INT = "int"  # single line, decimal number
LIST = "list"  # one lowercased entry per line
MAP = "map"  # key:value per line, key lowercased
LINES = "lines"  # the whole file as instruction lines (defaultdelivery)
ORDERED = "ordered"  # one entry per line, order kept, case kept

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class ControlSpec:
    """How one control file is read and what it means."""

    name: str
    kind: str
    default: object
    description: str
    users: str
    minimum: int | None = None


SPECS: tuple[ControlSpec, ...] = (
    ControlSpec("me", TEXT, None, "this host's name; the default for every host name file", "all"),
    ControlSpec("badmailfrom", LIST, (), "envelope senders (and @domain entries) refused at RCPT", "smtpd"),
    ControlSpec("bouncefrom", TEXT, "MAILER-DAEMON", "local part of the bounce sender", "send"),
    ControlSpec("bouncehost", HOST, "bouncehost", "host part of the bounce sender", "send"),
    ControlSpec("concurrencyincoming", INT, 40, "simultaneous SMTP sessions accepted", "smtpd", 1),
    ControlSpec("concurrencylocal", INT, 10, "simultaneous local deliveries (0 = hold)", "send", 0),
    ControlSpec("concurrencyremote", INT, 20, "simultaneous remote deliveries (0 = hold)", "send", 0),
    ControlSpec("databytes", INT, 0, "largest message accepted by SMTP in bytes (0 = no limit)", "smtpd", 0),
    ControlSpec("defaultdelivery", LINES, ("./Maildir/",), "delivery instructions when a user has no .qmail", "send"),
    ControlSpec("defaultdomain", HOST, "defaultdomain", "domain appended to dotless hosts by inject", "inject"),
    ControlSpec("defaulthost", HOST, "defaulthost", "host appended to addresses without @ by inject", "inject"),
    ControlSpec("doublebouncehost", HOST, "doublebouncehost", "host part of the double bounce recipient", "send"),
    ControlSpec("doublebounceto", TEXT, "postmaster", "local part of the double bounce recipient", "send"),
    ControlSpec("envnoathost", HOST, "envnoathost", "domain appended to envelope recipients without @", "send"),
    ControlSpec("helohost", HOST, "helohost", "name sent in HELO/EHLO by remote delivery", "remote"),
    ControlSpec("idhost", HOST, "idhost", "host name used in Message-ID by inject", "inject"),
    ControlSpec("localiphost", HOST, "localiphost", "name substituted for this host's [IP] literals", "smtpd"),
    ControlSpec("locals", LIST, None, "domains delivered locally (default: me)", "send"),
    ControlSpec("morercpthosts", LIST, (), "more domains accepted for relaying (used when rcpthosts exists)", "smtpd"),
    ControlSpec("percenthack", LIST, (), "domains where user%host@domain is rewritten to user@host", "send"),
    ControlSpec("plusdomain", HOST, "plusdomain", "domain added to hosts ending in + by inject", "inject"),
    ControlSpec("qmqpservers", ORDERED, (), "QMQP servers (IP addresses) for mini-qmail style injection", "inject"),
    ControlSpec("queuelifetime", INT, 604800, "seconds a message may stay in the queue", "send", 0),
    ControlSpec("rcpthosts", LIST, None, "domains accepted from unauthorised SMTP clients (absent: all!)", "smtpd"),
    ControlSpec("smtpgreeting", HOST, "smtpgreeting", "text of the SMTP greeting and HELO reply", "smtpd"),
    ControlSpec("smtproutes", MAP, (), "artificial SMTP routes domain:relay:port", "remote"),
    ControlSpec("timeoutconnect", INT, 60, "seconds to wait for a remote connection", "remote", 1),
    ControlSpec("timeoutremote", INT, 1200, "seconds to wait for a remote server's reply", "remote", 1),
    ControlSpec("timeoutsmtpd", INT, 1200, "seconds smtpd waits for a client's next line", "smtpd", 1),
    ControlSpec("virtualdomains", MAP, (), "virtual users and domains: key:prepend", "send"),
)

SPEC_BY_NAME: Mapping[str, ControlSpec] = {s.name: s for s in SPECS}


def _read_file(path: str) -> list[str] | None:
    """Lines of a control file without line ends, or None when it is absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    if b"\0" in data:
        raise ControlError(path, data[: data.index(b"\0")].count(b"\n") + 1, "NUL byte in control file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ControlError(path, data[: e.start].count(b"\n") + 1, "not valid UTF-8") from None
    return text.split("\n") if text else []


def _entries(lines: Iterable[str]) -> Iterable[tuple[int, str]]:
    """(line number, entry) for list-style files: trailing blanks gone, comments and blanks skipped."""
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip(" \t\r")
        if not line or line.startswith("#"):
            continue
        yield lineno, line


def _first_line(lines: list[str]) -> str | None:
    if not lines:
        return None
    value = lines[0].rstrip(" \t\r")
    return value if value else None


def parse_int(path: str, lines: list[str], minimum: int | None) -> int | None:
    """The decimal number on the first line of a control file."""
    value = _first_line(lines)
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise ControlError(path, 1, f"expected a non-negative decimal number, found {value!r}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ControlError(path, 1, f"value {number} is below the minimum {minimum}")
    return number


def parse_list(lines: list[str]) -> frozenset[str]:
    return frozenset(entry.lower() for _, entry in _entries(lines))


def parse_map(path: str, lines: list[str]) -> dict[str, str]:
    """A colon-keyed table: key up to the first colon (lowercased), last duplicate wins."""
    table: dict[str, str] = {}
    for lineno, entry in _entries(lines):
        if ":" not in entry:
            raise ControlError(path, lineno, f"line has no colon: {entry!r}")
        key, value = entry.split(":", 1)
        table[key.lower()] = value
    return table


@dataclass(frozen=True)
class Controls:
    """One consistent snapshot of every control file."""

    controldir: str
    me: str | None
    badmailfrom: frozenset[str]
    bouncefrom: str
    bouncehost: str
    concurrencyincoming: int
    concurrencylocal: int
    concurrencyremote: int
    databytes: int
    defaultdelivery: str
    defaultdomain: str
    defaulthost: str
    doublebouncehost: str
    doublebounceto: str
    envnoathost: str
    helohost: str
    idhost: str
    localiphost: str
    locals: frozenset[str]
    morercpthosts: frozenset[str]
    percenthack: frozenset[str]
    plusdomain: str
    qmqpservers: tuple[str, ...]
    queuelifetime: int
    rcpthosts: frozenset[str] | None
    smtpgreeting: str
    smtproutes: Mapping[str, str]
    timeoutconnect: int
    timeoutremote: int
    timeoutsmtpd: int
    virtualdomains: Mapping[str, str]
    sources: Mapping[str, str] = field(default_factory=dict)

    def path(self, name: str) -> str:
        """The path of control file C{name}."""
        return os.path.join(self.controldir, name)

    def extra_lines(self, name: str) -> list[str] | None:
        """
        Entries of a control file pymta adds to qmail's set (rbls,
        tlsdestinations, ...), read now: comments and blank lines skipped,
        None when the file is absent.
        """
        lines = _read_file(self.path(name))
        if lines is None:
            return None
        return [entry for _, entry in _entries(lines)]

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.locals

    def accepts_rcpthost(self, domain: str) -> bool:
        """qmail-smtpd's rcpthosts test for one (already lowercased or not) domain."""
        if self.rcpthosts is None:
            return True
        # ASCII letters only, as qmail's case_lowerb: str.lower() maps U+212A (Kelvin) to "k"
        domain = domain.translate(_ASCII_LOWER)
        tables = (self.rcpthosts, self.morercpthosts)
        if any(domain in t for t in tables):
            return True
        i = domain.find(".")
        while i != -1:
            suffix = domain[i:]
            if any(suffix in t for t in tables):
                return True
            i = domain.find(".", i + 1)
        return False


def load_controls(root: str) -> Controls:
    """Read every control file under C{root}/control into a L{Controls}."""
    controldir = os.path.join(root, "control")
    raw: dict[str, list[str] | None] = {}
    for spec in SPECS:
        raw[spec.name] = _read_file(os.path.join(controldir, spec.name))
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    me = _first_line(raw["me"] or [])
    for spec in SPECS:
        path = os.path.join(controldir, spec.name)
        lines = raw[spec.name]
        present = lines is not None
        value: object = None
        if present:
            assert lines is not None
            if spec.kind in (HOST, TEXT):
                value = _first_line(lines)
            elif spec.kind == INT:
                value = parse_int(path, lines, spec.minimum)
            elif spec.kind == LIST:
                value = parse_list(lines)
            elif spec.kind == MAP:
                value = parse_map(path, lines)
            elif spec.kind == ORDERED:
                value = tuple(entry for _, entry in _entries(lines))
            elif spec.kind == LINES:
                kept = [line.rstrip(" \t\r") for line in lines]
                while kept and not kept[-1]:
                    kept.pop()
                value = "\n".join(kept) + "\n" if kept else None
        if value is None:
            sources[spec.name] = "default"
            if spec.kind == HOST:
                value = me if me is not None else spec.default
                if me is not None:
                    sources[spec.name] = "me"
            elif spec.kind == LIST:
                if spec.name == "locals":
                    value = frozenset([me.lower()]) if me else frozenset()
                elif spec.name == "rcpthosts":
                    value = None
                else:
                    value = frozenset()
            elif spec.kind == MAP:
                value = {}
            elif spec.kind == ORDERED:
                value = ()
            elif spec.kind == LINES:
                value = "\n".join(spec.default) + "\n"  # type: ignore[arg-type]
            else:
                value = spec.default
        else:
            sources[spec.name] = "file"
        values[spec.name] = value
    return Controls(controldir=controldir, sources=sources, **values)  # type: ignore[arg-type]


class ControlReader:
    """
    Holds the current L{Controls} of a root and re-reads them on demand.

    Services keep a reader, not a snapshot, and take C{reader.current} once per
    session or per delivery, so a reload never changes values under a running
    transaction.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.current: Controls = load_controls(root)
        self._listeners: list[Callable[[Controls], None]] = []
        #: run before every reload; raises ControlError to refuse it (see pymta.configcheck.startup)
        self.precheck: Callable[[], None] | None = None

    def reload(self) -> Controls:
        """
        Re-read all control files.  On a L{ControlError} (from the files or
        from C{precheck}) the old values stay in force and the error
        propagates for the caller to log.
        """
        if self.precheck is not None:
            self.precheck()
        new = load_controls(self.root)
        self.current = new
        for listener in list(self._listeners):
            listener(new)
        return new

    def on_reload(self, listener: Callable[[Controls], None]) -> None:
        """Call C{listener(controls)} after every successful reload."""
        self._listeners.append(listener)


def default_root(env: Mapping[str, str] | None = None) -> str:
    """C{$PYMTA_ROOT} of C{env} (default: this process's environment), else /var/pymta."""
    return (os.environ if env is None else env).get("PYMTA_ROOT") or "/var/pymta"
