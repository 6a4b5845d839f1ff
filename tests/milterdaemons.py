"""
Real content filters from Debian's packages, run privately for one test
class: rspamd's milter proxy, SpamAssassin's spamd behind spamass-milter,
clamd behind clamav-milter, and OpenDKIM as a verifier.

Each C{start_*} helper writes a configuration of its own under a directory
it is given (state, logs, sockets, pid files all there), starts the
daemons on 127.0.0.1 (free ports) or unix sockets in that directory, waits
until the filter's milter socket answers, and returns a L{RunningFilter}:
its C{socket} is the filter's address as C{control/milters} writes it.
Nothing reaches the network: rspamd's modules that look things up (DNS
lists, SPF, DKIM, DMARC, fuzzy hashes) are off and its resolver points at
a closed local port; spamd runs with C{-L} (local tests only: GTUBE is one
of SpamAssassin's own rules); clamd loads only a signature the helper
writes (L{CLAMAV_MARKER}), no downloaded database.

When the tests run as root every daemon runs as its package's own account
(C{_rspamd}, C{debian-spamd}, C{clamav}, C{opendkim}; C{nobody} where one is missing),
never as root; otherwise as the caller.  A missing package is installed
through L{tests.packages.ensure_program} (as root on Debian), else the
test is skipped with the reason.

L{shared_filter} starts one daemon for all the tests of a class (trial has
no C{setUpClass}): the first test that asks starts it, and it is stopped
when a test of another class asks for a daemon, or when the test process
exits.  Each daemon is also ended if the test process dies first.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from twisted.trial.unittest import SkipTest

from tests.packages import ensure_program
from tests.test_end_to_end import free_port

__all__ = [
    "RunningFilter", "start_rspamd", "start_spamd_milter", "start_clamav_milter", "start_opendkim", "shared_filter",
    "GTUBE", "CLAMAV_MARKER", "CLAMAV_SIGNATURE", "RSPAMD_GTUBE_REPLY",
]

#: SpamAssassin's (and rspamd's) Generic Test for Unsolicited Bulk Email
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
#: what rspamd's milter proxy answers to GTUBE at the end of the message
RSPAMD_GTUBE_REPLY = "554 5.7.1 Gtube pattern"
#: the test "virus": a message body holding it is infected for L{start_clamav_milter}'s clamd
CLAMAV_MARKER = "PYMTA-CLAMAV-TEST-SIGNATURE-7f3e"
#: the name clamd reports for it (clamd marks signatures outside its official databases)
CLAMAV_SIGNATURE = "PyMTA.Test.Signature.UNOFFICIAL"

STARTUP_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1


@dataclass
class RunningFilter:
    """A started filter: C{socket} as control/milters writes it; L{stop} ends its daemons."""

    name: str
    socket: str
    base: str
    log: str
    processes: list[subprocess.Popen] = field(default_factory=list)
    #: seconds from the first daemon's start until the milter socket answered
    startup_seconds: float = 0.0
    #: processes killed outright at L{stop} (libmilter's front ends wait 5 s for sessions on SIGTERM)
    killed: list[subprocess.Popen] = field(default_factory=list)

    def address(self) -> str | tuple[str, int]:
        """The socket as L{socket.socket.connect} takes it (a path, or (host, port))."""
        kind, _, rest = self.socket.partition(":")
        if kind == "unix":
            return rest
        host, _, port = rest.rpartition(":")
        return host, int(port)

    def milters_line(self, options: str = "") -> str:
        """A line of control/milters naming this filter."""
        return f"{self.name} {self.socket}" + (f" {options}" if options else "") + "\n"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is not None:
                continue
            if proc in self.killed:
                proc.kill()
            else:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        self.killed.clear()


def _need(program: str, package: str) -> str:
    path = ensure_program(program, package)
    if path is None:
        raise SkipTest(f"needs {program} from Debian's {package} (installed when the tests run as root on Debian)")
    return path


def _account(name: str) -> tuple[int, int] | None:
    """(uid, gid) a daemon runs as: the package's account (else nobody) for root, None (the caller) otherwise."""
    if os.getuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _give(base: str, account: tuple[int, int] | None) -> None:
    if account is None:
        return
    for directory, _, files in os.walk(base):
        for path in [directory, *(os.path.join(directory, f) for f in files)]:
            os.chown(path, *account)


def _die_with_parent(signum: int) -> Callable[[], None]:
    def in_child() -> None:
        # run after the uid change (which would clear it): the daemon gets signum when the test process dies
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    return in_child


def _spawn(running: RunningFilter, command: list[str], account: tuple[int, int] | None, output: str,
           umask: int = 0o022, kill: bool = False) -> None:
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            command, cwd=running.base, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            user=account[0] if account else None, group=account[1] if account else None,
            extra_groups=[] if account else None, umask=umask,
            preexec_fn=_die_with_parent(signal.SIGKILL if kill else signal.SIGTERM))
    running.processes.append(proc)
    if kill:
        running.killed.append(proc)


def answers(address: str | tuple[str, int]) -> bool:
    """Whether something accepts a connection at C{address} (a unix socket path, or host and port)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(address)
        except OSError:
            return False
    return True


def _wait_listening(running: RunningFilter, address: str | tuple[str, int], what: str, started: float) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not answers(address):
        dead = [proc.args for proc in running.processes if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            running.stop()
            tail = ""
            if os.path.exists(running.log):
                with open(running.log, errors="replace") as f:
                    tail = "".join(f.readlines()[-15:])
            raise AssertionError(f"{what} did not start ({'exited: ' + str(dead[0]) if dead else 'timed out'});"
                                 f" {running.log}:\n{tail}")
        time.sleep(0.05)
    running.startup_seconds = time.monotonic() - started


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


# -- rspamd -------------------------------------------------------------

_RSPAMD_CONF = """\
.include "$CONFDIR/common.conf"
options {{
    pidfile = "{base}/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(priority=1,duplicate=merge) "{base}/local.d/options.inc"
}}
logging {{
    type = "file";
    filename = "{base}/rspamd.log";
    level = "info";
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 120s;
    upstream "local" {{
        default = yes;
        self_scan = yes;
    }}
    count = 1;
    discard_on_reject = false;
    quarantine_on_reject = false;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}}
"""
# a key given twice in one section keeps its first value: these override Debian's options.inc
_RSPAMD_OPTIONS = """\
dns {{ nameserver = ["127.0.0.1:1"]; timeout = 0.5s; retransmits = 1; }}
disable_hyperscan = true;
url_tld = "{base}/tld.dat";
tempdir = "{base}/tmp";
"""
# modules that look things up on the network or need redis
_RSPAMD_OFF = ("rbl", "spf", "dkim", "dmarc", "arc", "asn", "fuzzy_check", "phishing", "hfilter", "mx_check",
               "url_redirector", "neural", "ratelimit", "greylist", "history_redis", "reputation", "replies")
_RSPAMD_HEADERS = """\
extended_spam_headers = true;
use = ["authentication-results"];
skip_local = false;
skip_authenticated = false;
"""


def start_rspamd(base: str) -> RunningFilter:
    """
    rspamd's proxy worker alone, in milter mode and scanning itself
    (C{self_scan}: no separate normal worker), on 127.0.0.1.  GTUBE is
    rejected with L{RSPAMD_GTUBE_REPLY}; every other message is accepted
    with the milter_headers module's extended headers (C{X-Spamd-Result},
    C{X-Rspamd-Server}, C{X-Rspamd-Queue-Id}, C{X-Rspamd-Action}) and an
    C{Authentication-Results} field, also for mail from 127.0.0.1 (rspamd
    skips local clients by default).  Startup is kept short: no hyperscan
    compilation (plain PCRE) and a five-line public suffix list instead of
    Debian's full one, which rspamd would otherwise compile for ten seconds.
    """
    rspamd = _need("rspamd", "rspamd")
    port = free_port()
    running = RunningFilter("rspamd", f"inet:127.0.0.1:{port}", base, os.path.join(base, "rspamd.log"))
    for directory in ("local.d", "db", "tmp"):
        os.makedirs(os.path.join(base, directory), exist_ok=True)
    _write(os.path.join(base, "rspamd.conf"), _RSPAMD_CONF.format(base=base, port=port))
    _write(os.path.join(base, "local.d", "options.inc"), _RSPAMD_OPTIONS.format(base=base))
    _write(os.path.join(base, "tld.dat"), "com\norg\nnet\nexample\ntest\n")
    for module in _RSPAMD_OFF:
        _write(os.path.join(base, "local.d", f"{module}.conf"), "enabled = false;\n")
    _write(os.path.join(base, "local.d", "milter_headers.conf"), _RSPAMD_HEADERS)
    account = _account("_rspamd")
    _give(base, account)
    started = time.monotonic()
    _spawn(running, [rspamd, "-f", "-c", os.path.join(base, "rspamd.conf"), f"--var=LOCAL_CONFDIR={base}",
                     f"--var=DBDIR={base}/db", f"--var=RUNDIR={base}", f"--var=LOGDIR={base}"],
           account, os.path.join(base, "rspamd.out"))
    _wait_listening(running, ("127.0.0.1", port), "rspamd", started)
    return running


# -- SpamAssassin: spamd + spamass-milter --------------------------------

def start_spamd_milter(base: str, reject_score: int | None = 5) -> RunningFilter:
    """
    spamd (C{-L}: local tests only, no user configuration) on 127.0.0.1 with
    the site configuration of its own (Debian's plugin C{.pre} files only),
    and spamass-milter on the unix socket C{BASE/spamass.sock} (mode 0777 in
    a traversable directory, so pymta's smtpd account reaches it) asking it
    through spamc.  C{reject_score}: messages scoring at least this are
    refused (C{550 5.7.1 Blocked by SpamAssassin}); None tags instead
    (C{X-Spam-Flag}, C{X-Spam-Status}; body, Subject and Content-Type left
    alone: C{-m}).  GTUBE scores 1000.
    """
    spamd = _need("/usr/sbin/spamd", "spamd")
    _need("spamc", "spamc")
    milter = _need("/usr/sbin/spamass-milter", "spamass-milter")
    port = free_port()
    sock = os.path.join(base, "spamass.sock")
    running = RunningFilter("spamassassin", f"unix:{sock}", base, os.path.join(base, "spamd.log"))
    site = os.path.join(base, "site")
    os.makedirs(site, exist_ok=True)
    for name in os.listdir("/etc/spamassassin"):
        if name.endswith(".pre"):
            shutil.copy(os.path.join("/etc/spamassassin", name), site)
    _write(os.path.join(site, "local.cf"), "# pymta tests: SpamAssassin's defaults\n")
    account = _account("debian-spamd")
    _give(base, account)
    started = time.monotonic()
    _spawn(running, [spamd, "-L", "-x", f"--listen=127.0.0.1:{port}", f"--siteconfigpath={site}",
                     "--max-children=2", f"--syslog={running.log}", f"--helper-home-dir={base}",
                     f"--pidfile={base}/spamd.pid"], account, os.path.join(base, "spamd.out"))
    _wait_listening(running, ("127.0.0.1", port), "spamd", started)
    flags = ["-r", str(reject_score)] if reject_score is not None else ["-m"]
    # spamass-milter runs spamc (by name) with the arguments after "--"; libmilter makes the
    # socket with the process's umask
    _spawn(running, [milter, "-p", sock, *flags, "--", "-d", "127.0.0.1", "-p", str(port)], account,
           os.path.join(base, "spamass.out"), umask=0, kill=True)
    _wait_listening(running, sock, "spamass-milter", started)
    return running


# -- ClamAV: clamd + clamav-milter ----------------------------------------

_CLAMD_CONF = """\
LocalSocket {base}/clamd.sock
LocalSocketMode 660
DatabaseDirectory {base}/db
Foreground yes
LogFile {base}/clamd.log
PidFile {base}/clamd.pid
TemporaryDirectory {base}/tmp
"""
_CLAMAV_MILTER_CONF = """\
MilterSocket inet:{port}@127.0.0.1
ClamdSocket unix:{base}/clamd.sock
OnInfected {on_infected}
OnFail Defer
Foreground yes
LogFile {base}/clamav-milter.log
PidFile {base}/clamav-milter.pid
AddHeader Replace
TemporaryDirectory {base}/tmp
"""


def start_clamav_milter(base: str, reject_message: str | None = None, on_infected: str = "Reject") -> RunningFilter:
    """
    clamd on the unix socket C{BASE/clamd.sock} with one database, written
    here: an C{.ndb} signature matching L{CLAMAV_MARKER} anywhere (so no
    download and no official database: clamd starts with this one alone),
    and clamav-milter on 127.0.0.1 refusing infected messages (C{OnInfected
    Reject}; C{reject_message} is its C{RejectMsg}, C{%v} the virus's name,
    else libmilter's default reply; C{on_infected="Quarantine"}, Debian's
    default, asks the MTA to hold them instead) and marking every message
    it scanned (C{X-Virus-Scanned}, C{X-Virus-Status}).
    """
    clamd = _need("/usr/sbin/clamd", "clamav-daemon")
    milter = _need("/usr/sbin/clamav-milter", "clamav-milter")
    port = free_port()
    running = RunningFilter("clamav", f"inet:127.0.0.1:{port}", base, os.path.join(base, "clamav-milter.log"))
    for directory in ("db", "tmp"):
        os.makedirs(os.path.join(base, directory), exist_ok=True)
    _write(os.path.join(base, "db", "pymta-test.ndb"),
           f"{CLAMAV_SIGNATURE.rsplit('.', 1)[0]}:0:*:{CLAMAV_MARKER.encode().hex()}\n")
    _write(os.path.join(base, "clamd.conf"), _CLAMD_CONF.format(base=base))
    milter_conf = _CLAMAV_MILTER_CONF.format(base=base, port=port, on_infected=on_infected)
    if reject_message:
        milter_conf += f"RejectMsg {reject_message}\n"
    _write(os.path.join(base, "clamav-milter.conf"), milter_conf)
    account = _account("clamav")
    _give(base, account)
    started = time.monotonic()
    _spawn(running, [clamd, "-c", os.path.join(base, "clamd.conf")], account, os.path.join(base, "clamd.out"))
    _wait_listening(running, os.path.join(base, "clamd.sock"), "clamd", started)
    _spawn(running, [milter, "-c", os.path.join(base, "clamav-milter.conf")], account,
           os.path.join(base, "clamav-milter.out"), kill=True)
    _wait_listening(running, ("127.0.0.1", port), "clamav-milter", started)
    return running


# -- OpenDKIM ---------------------------------------------------------------

_OPENDKIM_CONF = """\
Mode v
Socket inet:{port}@127.0.0.1
AuthservID {authserv_id}
AlwaysAddARHeader yes
Syslog no
Background no
PidFile {base}/opendkim.pid
"""


def start_opendkim(base: str, authserv_id: str = "filter.example") -> RunningFilter:
    """
    OpenDKIM verifying only (C{Mode v}) on 127.0.0.1: every message gets an
    C{Authentication-Results: AUTHSERV_ID; dkim=...} field (C{dkim=none}
    for an unsigned one, with no DNS lookup).  It logs nothing (no syslog).
    """
    opendkim = _need("/usr/sbin/opendkim", "opendkim")
    port = free_port()
    running = RunningFilter("opendkim", f"inet:127.0.0.1:{port}", base, os.path.join(base, "opendkim.out"))
    _write(os.path.join(base, "opendkim.conf"), _OPENDKIM_CONF.format(base=base, port=port, authserv_id=authserv_id))
    account = _account("opendkim")
    _give(base, account)
    started = time.monotonic()
    _spawn(running, [opendkim, "-f", "-x", os.path.join(base, "opendkim.conf")], account, running.log, kill=True)
    _wait_listening(running, ("127.0.0.1", port), "opendkim", started)
    return running


# -- one daemon per test class --------------------------------------------

_shared: dict[tuple[type, Callable[..., RunningFilter], str], RunningFilter] = {}


def _stop_and_remove(running: RunningFilter) -> None:
    running.stop()
    shutil.rmtree(running.base, ignore_errors=True)


def _stop_all(keep: type | None = None) -> None:
    for key in [key for key in _shared if key[0] is not keep]:
        _stop_and_remove(_shared.pop(key))


atexit.register(_stop_all)


def shared_filter(testcase: object, start: Callable[..., RunningFilter], **options: object) -> RunningFilter:
    """
    The filter C{start} makes (one of the C{start_*} above, with C{options}),
    started once for C{testcase}'s class in a fresh directory: the first
    test of the class starts it, the first test of another class that asks
    for a filter stops it (the test process's exit otherwise).
    """
    cls = type(testcase)
    _stop_all(keep=cls)
    key = (cls, start, repr(sorted(options.items())))
    if key not in _shared:
        base = tempfile.mkdtemp(prefix="pymta-filter-")  # short: unix socket paths are limited to 107 bytes
        os.chmod(base, 0o755)
        try:
            _shared[key] = start(base, **options)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
    return _shared[key]
