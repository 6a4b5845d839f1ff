# -*- test-case-name: tests.test_control -*-
"""
qmail control files: ROOT/control/NAME, typed, with qmail's defaults.

Parsing follows qmail: single-value files use their first line with trailing
blanks removed; list files have one entry per line, blank lines and lines
starting with ``#`` skipped; colon-keyed tables (virtualdomains, smtproutes)
split at the first colon.  Host-name files fall back to ``me``.

Where qmail silently ignores or misreads a line, pymta refuses it with a
L{ControlError} that names the file and the line, so an administrator's typo
never turns into an unnoticed default or an entry that never matches: a
malformed number; a further line in a single-value file (other than blank
and ``#`` lines); a value on line 2 under an empty line 1; a blank at the
start of or inside an entry (except in smtpgreeting); a host name, domain or
address literal that cannot be one; a ``.suffix`` where only whole domains
match (locals, percenthack); a key repeated in a table (one line of the two
would never apply); every smtproutes line that
L{pymta.remote.smtproutes.parse_route} refuses.

Entries remember where they came from: L{ControlLines} (pymta's extra
files, L{Controls.extra_lines}) and L{ControlTable} (the colon tables) carry
the file and each entry's line, so the parsers of the extra files and the
delivery-time use of smtproutes name file and line as well.

A L{Controls} object is an immutable snapshot; L{ControlReader} holds the
current one and replaces it on L{ControlReader.reload}, keeping the old
snapshot when the new files are malformed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from pymta.hostnames import blank_problem, domain_problem, ip_address_problem, literal_address
from pymta.remote.smtproutes import RouteError, key_problem, parse_route

__all__ = [
    "ControlError",
    "ControlLines",
    "ControlTable",
    "ControlSpec",
    "Controls",
    "ControlReader",
    "SPECS",
    "load_controls",
    "entry_error",
]


class ControlError(Exception):
    """A control file exists but cannot be used; the message names file and line."""

    def __init__(self, path: str, lineno: int, reason: str) -> None:
        self.path = path
        self.lineno = lineno
        self.reason = reason
        super().__init__(f"{path}:{lineno}: {reason}")


class ControlLines(list[str]):
    """The entries of a control file, each remembering its line (L{error} names both)."""

    def __init__(self, path: str, numbered: Iterable[tuple[int, str]] = ()) -> None:
        pairs = list(numbered)
        super().__init__(entry for _, entry in pairs)
        self.path = path
        self.linenos = [lineno for lineno, _ in pairs]

    def error(self, index: int, reason: str) -> ControlError:
        """The L{ControlError} for entry C{index}."""
        return ControlError(self.path, self.linenos[index], reason)


class ControlTable(dict[str, str]):
    """A colon table (key to value) remembering the file and each key's line."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.linenos: dict[str, int] = {}

    def error(self, key: str, reason: str) -> ControlError:
        """The L{ControlError} for the line of C{key}."""
        return ControlError(self.path, self.linenos.get(key, 0), reason)


def entry_error(lines: Sequence[str], index: int, reason: str, name: str) -> ControlError:
    """
    The L{ControlError} for entry C{index} of C{lines}: its file and line
    when C{lines} is a L{ControlLines}, else C{name} and the entry's
    position (1 for the first).
    """
    if isinstance(lines, ControlLines) and index < len(lines.linenos):
        return lines.error(index, reason)
    return ControlError(name, index + 1, reason)


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
    ControlSpec("concurrencypop3", INT, 40, "simultaneous POP3 sessions accepted", "pop3d", 1),
    ControlSpec("concurrencypop3perip", INT, 10, "simultaneous POP3 sessions from one client address (IPv6: /64)", "pop3d", 1),
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
    ControlSpec("mindatarate", INT, 100, "bytes per second DATA must average after its first timeoutsmtpd seconds (0 = off)", "smtpd", 0),
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
    ControlSpec("timeoutsmtpd", INT, 1200, "seconds smtpd gives a client for each line", "smtpd", 1),
    ControlSpec("virtualdomains", MAP, (), "virtual users and domains: key:prepend", "send"),
    ControlSpec("authfailuresperip", INT, 10, "failed logins (SMTP AUTH, POP3) per client address per authfailurewindow", "smtpd, pop3d", 1),
    ControlSpec("authfailuresperaccount", INT, 30, "failed logins per account per authfailurewindow, from addresses new to it (0 = no limit)", "smtpd, pop3d", 0),
    ControlSpec("authfailurewindow", INT, 600, "seconds a failed login counts against its address and account", "smtpd, pop3d", 1),
    ControlSpec("authconcurrency", INT, 4, "password checks running at once (8 times as many may wait)", "smtpd, pop3d", 1),
    ControlSpec("timeoutqmailqueue", INT, 300, "seconds a QMAILQUEUE program may run for one message", "smtpd, inject, send", 1),
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


def check_single_value(path: str, lines: list[str]) -> None:
    """
    Refuse what qmail would silently ignore in a single-value file: a
    further line (blank and C{#} lines may follow the value), or a value
    under an empty first line.
    """
    for lineno, entry in _entries(lines[1:]):
        if _first_line(lines) is None:
            raise ControlError(path, lineno + 1, "the value must be on the first line, which is empty")
        raise ControlError(path, lineno + 1, f"only the first line is read: this line would be ignored: {entry!r}")


def parse_int(path: str, lines: list[str], minimum: int | None) -> int | None:
    """The decimal number on the first line of a control file."""
    check_single_value(path, lines)
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


def parse_list(lines: list[str], path: str = "list") -> frozenset[str]:
    """The lowercased entries of a list file; a blank at the start of or inside an entry is refused."""
    for lineno, entry in _entries(lines):
        problem = blank_problem(entry)
        if problem is not None:
            raise ControlError(path, lineno, f"{problem}: such an entry never matches")
    return frozenset(entry.lower() for _, entry in _entries(lines))


def parse_map(path: str, lines: list[str]) -> dict[str, str]:
    """
    A colon-keyed table: key up to the first colon (lowercased).  A line
    without a colon, a blank in a key and a key given twice are refused.
    The result is a L{ControlTable}.
    """
    table = ControlTable(path)
    for lineno, entry in _entries(lines):
        if ":" not in entry:
            raise ControlError(path, lineno, f"line has no colon: {entry!r}")
        key, value = entry.split(":", 1)
        problem = blank_problem(key) if key else None
        if problem is not None:
            raise ControlError(path, lineno, f"{problem} in the key: such a key never matches")
        key = key.lower()
        if key in table:
            raise ControlError(path, lineno, f"key {key!r} repeats line {table.linenos[key]}: one of the two would never apply")
        table[key] = value
        table.linenos[key] = lineno
    return table


def _local_part_problem(value: str) -> str | None:
    """bouncefrom, doublebounceto: a local part (one with blanks inside is quoted where used)."""
    if "@" in value:
        return f"'@' in the local part {value!r} (the host part is a file of its own)"
    if value[:1].isspace():
        return f"blank at the start of {value!r}"
    return None


def _address_entry_problem(entry: str) -> str | None:
    """badmailfrom: an address, or @domain; an address without @ is allowed (qmail matches it as it is)."""
    if "@" not in entry:
        return None
    domain = entry[entry.rfind("@") + 1 :]
    if not domain:
        return f"nothing after the @ in {entry!r}"
    return domain_problem(domain, suffix=False)


def _qmqp_server_problem(entry: str) -> str | None:
    """qmqpservers: an IP address, optionally with :PORT (an IPv6 address in brackets then)."""
    port: str | None = None
    if entry.startswith("["):
        end = entry.find("]")
        literal = literal_address(entry[: end + 1]) if end != -1 else None
        if literal is None:
            return f"not an IP address: {entry!r}"
        address, rest = literal, entry[end + 1 :]
        if rest and not rest.startswith(":"):
            return f"unexpected text after the address in {entry!r}"
        port = rest[1:] if rest else None
    elif entry.count(":") == 1:
        address, port = entry.split(":")
    else:
        address = entry
    problem = ip_address_problem(address)
    if problem is not None:
        return problem
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"empty port in {entry!r}" if not port else f"bad port {port!r} (expected 1 to 65535)"
    return None


def _virtual_key_problem(key: str) -> str | None:
    if key == "":
        return None
    if "@" in key:
        local, domain = key[: key.rfind("@")], key[key.rfind("@") + 1 :]
        if not local:
            return f"empty local part in the key {key!r}"
        return domain_problem(domain, suffix=False)
    return domain_problem(key)


def _virtual_value_problem(value: str) -> str | None:
    if "@" in value:
        return f"'@' in the prepend {value!r}: the prepend is a local-part prefix, not an address"
    return blank_problem(value)


#: what a single-value file's value must be (files not listed: anything)
_VALUE_CHECKS: Mapping[str, Callable[[str], str | None]] = {
    **{name: (lambda v: domain_problem(v, suffix=False))
       for name in ("me", "bouncehost", "defaultdomain", "defaulthost", "doublebouncehost", "envnoathost",
                    "helohost", "idhost", "localiphost", "plusdomain")},
    "bouncefrom": _local_part_problem,
    "doublebounceto": _local_part_problem,
}

#: what an entry of a list file must be
_ENTRY_CHECKS: Mapping[str, Callable[[str], str | None]] = {
    "rcpthosts": domain_problem,
    "morercpthosts": domain_problem,
    "locals": lambda e: domain_problem(e, suffix=False),
    "percenthack": lambda e: domain_problem(e, suffix=False),
    "badmailfrom": _address_entry_problem,
    "qmqpservers": _qmqp_server_problem,
}


def _check_value(path: str, name: str, lines: list[str]) -> None:
    check_single_value(path, lines)
    value = _first_line(lines)
    check = _VALUE_CHECKS.get(name)
    if value is None or check is None:
        return
    problem = check(value)
    if problem is not None:
        raise ControlError(path, 1, problem)


def _check_entries(path: str, name: str, lines: list[str]) -> None:
    check = _ENTRY_CHECKS.get(name)
    for lineno, entry in _entries(lines):
        problem = blank_problem(entry) or (check(entry) if check is not None else None)
        if problem is not None:
            raise ControlError(path, lineno, problem)


def _check_table(name: str, table: ControlTable) -> None:
    for key, value in table.items():
        if name == "smtproutes":
            problem = key_problem(key)
            try:
                parse_route(value)
            except RouteError as e:
                problem = problem or str(e)
        else:
            problem = _virtual_key_problem(key) or _virtual_value_problem(value)
        if problem is not None:
            raise table.error(key, problem)


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
    concurrencypop3: int
    concurrencypop3perip: int
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
    mindatarate: int
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
    authfailuresperip: int = 10
    authfailuresperaccount: int = 30
    authfailurewindow: int = 600
    authconcurrency: int = 4
    timeoutqmailqueue: int = 300
    sources: Mapping[str, str] = field(default_factory=dict)
    _extras: dict[str, tuple[tuple[int, str], ...] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def path(self, name: str) -> str:
        """The path of control file C{name}."""
        return os.path.join(self.controldir, name)

    def extra_lines(self, name: str) -> list[str] | None:
        """
        Entries of a control file pymta adds to qmail's set (rbls,
        tlsdestinations, ...): comments and blank lines skipped, None when
        the file is absent.  The file is read once per snapshot (at its
        first use; a daemon's checks, L{ControlReader.add_check}, use it
        when the snapshot is made), so a change applies from the next
        reload on, as for qmail's files.  The list is a L{ControlLines}.
        """
        if name not in self._extras:
            lines = _read_file(self.path(name))
            self._extras[name] = None if lines is None else tuple(_entries(lines))
        entries = self._extras[name]
        if entries is None:
            return None
        return ControlLines(self.path(name), entries)

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
                _check_value(path, spec.name, lines)
                value = _first_line(lines)
            elif spec.kind == INT:
                value = parse_int(path, lines, spec.minimum)
            elif spec.kind == LIST:
                _check_entries(path, spec.name, lines)
                value = parse_list(lines, path)
            elif spec.kind == MAP:
                table = parse_map(path, lines)
                assert isinstance(table, ControlTable)
                _check_table(spec.name, table)
                value = table
            elif spec.kind == ORDERED:
                _check_entries(path, spec.name, lines)
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

    Two hooks can refuse a configuration; they judge different things.
    L{add_check}: the parser of a file L{load_controls} does not know (rbls,
    tlsdestinations, ...), added by the component that reads the file (so
    for every reader, C{sendmail -bs} and tests too) and run on each
    snapshot, so the lines used are the lines checked.  C{precheck}: the
    whole root (etc/tcp.smtp, users/, the certificate too) with every error
    counted, set by the daemons (L{pymta.configcheck.startup}); it is no
    function of a snapshot and runs before L{load_controls}, whose first
    error would hide the others.  Both use the same parsers
    (L{pymta.extracontrols}), so they cannot disagree.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.current: Controls = load_controls(root)
        self._listeners: list[Callable[[Controls], None]] = []
        self._checks: list[Callable[[Controls], object]] = []
        #: run before every reload; raises ControlError to refuse it (see the class docstring)
        self.precheck: Callable[[], None] | None = None

    def add_check(self, check: Callable[[Controls], object]) -> None:
        """
        Have C{check(controls)} approve every snapshot: the current one now
        (its L{ControlError} propagates, so a daemon does not start) and
        each new one at L{reload}, before it replaces the current one.  A
        daemon adds the parsers of the extra files it reads (rbls,
        tlsdestinations, ...), which L{load_controls} does not know.
        """
        check(self.current)
        self._checks.append(check)

    def reload(self) -> Controls:
        """
        Re-read all control files.  On a L{ControlError} (from C{precheck},
        a file or a check) the old values stay in force and the error
        propagates for the caller to log.
        """
        if self.precheck is not None:
            self.precheck()
        new = load_controls(self.root)
        for check in self._checks:
            check(new)
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
