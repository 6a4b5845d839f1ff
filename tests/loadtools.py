"""
Crash-under-load machinery shared by L{tests.test_crash_under_load} and
C{benchmarks/crash_load.py}.

A L{CrashRig} owns a fresh pymta root and two real processes,
C{twistd pymta-send} and C{twistd pymta-smtpd} (or one C{twistd pymta}).
L{LoadClients} are
smtplib clients in threads that send numbered messages to one local user
and retry after any failed session.  While they run, L{CrashRig.run_chaos}
SIGKILLs one or both daemons at seeded random moments and restarts them.
L{tally} then reads the user's Maildir and compares it with what the
clients were told.

Every SMTP attempt carries its own tag C{<message>.<attempt>} in a header,
so each delivered file can be traced to one transaction:

 - acknowledged: the client saw 250 after DATA for that attempt;
 - lost: acknowledged but not in the Maildir (qmail's promise broken);
 - duplicates: one attempt delivered more than once (a delivery that
   finished but was not checkpointed before pymta-send died; qmail allows
   it);
 - unacknowledged deliveries: an attempt delivered although its client saw
   no 250 (the crash hit between the durable commit and the reply; SMTP
   allows it, the client retries and the message arrives twice).

Duplicates are explained from pymta-send's log (a delivery started in a
process that was then killed, and again in the next one), deliveries
without a 250 from the kill times; anything unexplained is a bug.  Crash
leftovers (message files of writers killed before their commit) are left
for pymta-send's cleaner, which L{CrashRig.clean_leftovers} lets run (it
dates them back past the cleaner's grace time rather than waiting it out).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
TAG_HEADER = "X-Crash-Load"
TAG_RE = re.compile(rb"^X-Crash-Load: (\d+)\.(\d+)\r?$", re.MULTILINE)
USER = "alice"
DOMAIN = "test.example"
MAIL_UID = 4242

__all__ = ["CrashRig", "LoadClients", "Tally", "tally", "free_port", "DaemonFailed"]


class DaemonFailed(Exception):
    """A daemon did not come up (its log tail is in the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Daemon:
    """One twistd process, restartable, logging to stdout appended to C{log}."""

    def __init__(self, name: str, args: list[str], log: str, ready: Callable[["Daemon"], bool]) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.ready = ready
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.kills = 0

    def start(self, timeout: float) -> None:
        with open(self.log, "ab") as out:
            out.write(f"=== start {self.starts + 1} of {self.name} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", "--logfile=-", *self.args],
                cwd=SRC,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonFailed(f"{self.name} exited with {self.proc.returncode}:\n{_tail(self.log)}")
            if self.ready(self):
                return
            time.sleep(0.05)
        raise DaemonFailed(f"{self.name} did not become ready in {timeout} s:\n{_tail(self.log)}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
            self.proc.wait()
            with open(self.log, "ab") as out:
                out.write(f"=== SIGKILL {self.name} at {time.time():.3f}\n".encode())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ChaosEvent:
    at: float  # seconds since the run started
    victims: tuple[str, ...]
    down_for: float
    killed: float = 0.0  # time.monotonic() of the kill
    restarted: float = 0.0  # time.monotonic() when the victims were back


class CrashRig:
    """
    A pymta root under a short temporary path plus restartable pymta-send
    and pymta-smtpd processes, or with C{all_in_one} one C{twistd pymta}
    process doing both (every crash then kills both).  As root the user
    gets uid L{MAIL_UID} (the spawner drops to it); otherwise everything
    runs as the caller.
    """

    def __init__(self, seed: int, base: str | None = None, start_timeout: float = 30.0,
                 all_in_one: bool = False, queuesync: str = "fsync") -> None:
        self.rng = random.Random(seed)
        self.queuesync = queuesync
        # short (UNIX socket paths are limited to 107 bytes) and traversable by the mail uid
        self.base = base or tempfile.mkdtemp(prefix="pymta-crash-")
        os.chmod(self.base, 0o755)
        self.root = os.path.join(self.base, "r")
        self.start_timeout = start_timeout
        self.port = free_port()
        self.events: list[ChaosEvent] = []
        self._init_root()
        listen = f"tcp:{self.port}:interface=127.0.0.1"
        self.all_in_one = all_in_one
        if all_in_one:
            self.send = self.smtpd = Daemon(
                "twistd pymta", ["pymta", "--root", self.root, "--smtp", listen], os.path.join(self.base, "pymta.log"),
                lambda d: self._send_ready(d) and self._smtpd_ready(d),
            )
        else:
            self.send = Daemon(
                "pymta-send", ["pymta-send", "--root", self.root], os.path.join(self.base, "send.log"), self._send_ready
            )
            self.smtpd = Daemon(
                "pymta-smtpd", ["pymta-smtpd", "--root", self.root, "--listen", listen],
                os.path.join(self.base, "smtpd.log"), self._smtpd_ready,
            )
        self.daemons = {"send": self.send, "smtpd": self.smtpd}

    def _distinct(self) -> list[Daemon]:
        """The daemons, each once (send first)."""
        return [self.send] if self.smtpd is self.send else [self.send, self.smtpd]

    # -- set-up ---------------------------------------------------------

    def pymta(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pymta.cli.main", *args],
            cwd=SRC,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def _init_root(self) -> None:
        args = ["init", self.root, "--me", DOMAIN, "--user", USER]
        if os.getuid() == 0:
            args += ["--mail-uid", f"{MAIL_UID}:{MAIL_UID}"]
        self.pymta(*args)
        # many concurrent sessions from one address during the load
        control = os.path.join(self.root, "control")
        for name, value in (("concurrencyincoming", "200"), ("concurrencyperip", "200"),
                            ("queuesync", self.queuesync)):
            with open(os.path.join(control, name), "w") as f:
                f.write(value + "\n")

    @property
    def maildir(self) -> str:
        return os.path.join(self.root, "home", USER, "Maildir")

    def _send_ready(self, daemon: Daemon) -> bool:
        # the pid file is written by the last child service to start
        try:
            with open(os.path.join(self.root, "run", "pymta-send.pid")) as f:
                return int(f.read().strip() or 0) == daemon.proc.pid  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False

    def _smtpd_ready(self, daemon: Daemon) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.settimeout(2)
                greeting = s.recv(200)
                s.sendall(b"QUIT\r\n")
                return greeting.startswith(b"220")
        except OSError:
            return False

    def start(self) -> None:
        for daemon in self._distinct():
            daemon.start(self.start_timeout)

    def stop(self) -> None:
        for daemon in reversed(self._distinct()):
            daemon.stop()

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def log_troubles(self, limit: int = 20) -> list[str]:
        """Lines of the daemons' logs that report a crash inside them (tracebacks, unhandled errors)."""
        out: list[str] = []
        for daemon in self._distinct():
            try:
                with open(daemon.log, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if "#critical]" in line or "Unhandled error" in line or "Traceback" in line:
                            out.append(f"{daemon.name}: {line.rstrip()}")
            except OSError:
                continue
        return out[:limit]

    # -- chaos ----------------------------------------------------------

    def crash(self, victims: Iterable[str], down_for: float) -> None:
        """SIGKILL the named daemons ('send', 'smtpd'), wait C{down_for}, restart them (send first)."""
        chosen = [d for d in self._distinct() if any(self.daemons[name] is d for name in victims)]
        for daemon in chosen:
            daemon.kill()
        time.sleep(down_for)
        for daemon in chosen:
            daemon.start(self.start_timeout)

    def run_chaos(self, clients: "LoadClients", kills: int, gap: tuple[float, float], down: tuple[float, float],
                  started: float) -> None:
        """
        C{kills} crashes while the clients send: each after a random C{gap}
        seconds of running, kills send, smtpd or both (seeded choice) and
        restarts them after a random C{down} seconds.  The clients keep
        taking new messages until the last crash is over (up to their
        limit); stops early when they have finished.
        """
        try:
            for _ in range(kills):
                victims = self.rng.choice((("send",), ("smtpd",), ("send", "smtpd")))
                if self.all_in_one:
                    victims = ("send", "smtpd")
                wait = self.rng.uniform(*gap)
                down_for = self.rng.uniform(*down)
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and not clients.done():
                    time.sleep(0.01)
                if clients.done():
                    return
                now = time.monotonic()
                event = ChaosEvent(now - started, victims, down_for, killed=now)
                self.events.append(event)
                self.crash(victims, down_for)
                event.restarted = time.monotonic()
        finally:
            clients.keep_going = False

    # -- draining -------------------------------------------------------

    def queue_counts(self) -> tuple[int, int]:
        """(messages in queue, not yet preprocessed) as C{pymta qstat} prints them."""
        out = self.pymta("qstat", "--root", self.root).stdout
        numbers = [int(n) for n in re.findall(r":\s*(\d+)", out)]
        if len(numbers) != 2:
            raise AssertionError(f"unexpected qstat output: {out!r}")
        return numbers[0], numbers[1]

    def _ids(self, directory: str) -> set[str]:
        return {name for _, _, files in os.walk(os.path.join(self.root, "queue", directory)) for name in files}

    def committed_pending(self) -> int:
        """Committed messages not finished yet: those with C{todo/ID} or C{info/ID}."""
        return len(self._ids("todo") | self._ids("info"))

    def crash_leftovers(self) -> int:
        """Message files without C{todo/} or C{info/}: writers killed before their commit (never acknowledged)."""
        return len(self.leftover_paths())

    def leftover_paths(self) -> list[str]:
        leftovers = self._ids("mess") - self._ids("todo") - self._ids("info")
        mess = os.path.join(self.root, "queue", "mess")
        return [os.path.join(top, name) for top, _, files in os.walk(mess) for name in files if name in leftovers]

    def age_leftovers(self, seconds: float) -> list[str]:
        """
        Date the crash leftovers C{seconds} back, as if that much time had
        passed since the crashes: message files without C{todo/} or
        C{info/}, every C{intd/} file without C{todo/} and every C{pid/}
        file (after L{drain} and with the clients done, nothing else writes
        the queue).  The cleaner judges age by modification time, so this
        stands in for waiting; its locks still tell a live writer's file.
        Returns the paths dated back.
        """
        queue = os.path.join(self.root, "queue")
        todo = self._ids("todo")
        paths = self.leftover_paths()
        for top, _, files in os.walk(os.path.join(queue, "intd")):
            paths += [os.path.join(top, name) for name in files if name not in todo]
        for top, _, files in os.walk(os.path.join(queue, "pid")):
            paths += [os.path.join(top, name) for name in files]
        then = time.time() - seconds
        aged = []
        for path in paths:
            try:
                os.utime(path, (then, then), follow_symlinks=False)
            except FileNotFoundError:
                continue
            aged.append(path)
        return aged

    def clean_leftovers(self, grace: float, timeout: float) -> tuple[int, int]:
        """
        Age the crash leftovers past the cleaner's C{grace} seconds
        (L{age_leftovers}, instead of waiting that long), then restart
        pymta-send cleanly (its cleaner runs at start) and wait for
        C{pymta qstat} to show an empty queue; returns the last qstat counts.
        """
        self.age_leftovers(grace + 1)
        self.send.stop()
        self.send.start(self.start_timeout)
        deadline = time.monotonic() + timeout
        counts = self.queue_counts()
        while counts != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = self.queue_counts()
        return counts

    def drain(self, timeout: float) -> int:
        """
        Both daemons up until every committed message is finished (asking
        for a queue run now and then); returns how many are still pending.
        C{pymta qstat} also counts crash leftovers, which pymta-send's
        cleaner removes later (L{pymta.queue.cleaner}), so it is not the
        criterion here.
        """
        for daemon in self._distinct():
            if not daemon.running():
                daemon.start(self.start_timeout)
        deadline = time.monotonic() + timeout
        last_kick = time.monotonic()
        pending = self.committed_pending()
        while pending and time.monotonic() < deadline:
            time.sleep(0.2)
            if time.monotonic() - last_kick > 3:
                self.pymta("ctl", "--root", self.root, "doqueue", check=False)
                last_kick = time.monotonic()
            pending = self.committed_pending()
        return pending


class LoadClients:
    """
    C{threads} smtplib clients sending numbered messages to
    alice@test.example: at least C{count}, and more while C{keep_going} is
    true (the chaos is still running), never more than C{limit}.  A client
    keeps its session between messages; after any error it drops the
    session, waits a little and retries the same message as a new attempt.
    Stops when every message is acknowledged or C{deadline} (monotonic)
    passes.
    """

    def __init__(self, port: int, count: int, threads: int, limit: int | None = None, size: int = 600,
                 io_timeout: float = 15.0) -> None:
        self.port = port
        self.count = count
        self.limit = max(count, limit or count)
        self.keep_going = True
        self.threads = threads
        self.size = size
        self.io_timeout = io_timeout
        self.acked: set[tuple[int, int]] = set()
        self.acked_messages: set[int] = set()
        self.attempts = 0
        self.failures: Counter[str] = Counter()
        #: attempt -> (monotonic start, monotonic end, error) for attempts without a 250
        self.failed: dict[tuple[int, int], tuple[float, float, str]] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self.deadline = 0.0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.limit or (self._next >= self.count and not self.keep_going):
                return None
            n = self._next
            self._next += 1
            return n

    def _body(self, n: int, attempt: int) -> bytes:
        unit = f"message {n} attempt {attempt} "
        filler = (unit * (self.size // len(unit) + 1))[: self.size]
        lines = [filler[i:i + 72] for i in range(0, len(filler), 72)]
        return (
            f"From: load@client.example\r\nTo: {USER}@{DOMAIN}\r\nSubject: crash load {n}.{attempt}\r\n"
            f"{TAG_HEADER}: {n}.{attempt}\r\n\r\n" + "\r\n".join(lines) + "\r\n"
        ).encode()

    def _worker(self) -> None:
        session: smtplib.SMTP | None = None
        n = self._take()
        attempt = 0
        while n is not None and time.monotonic() < self.deadline:
            attempt += 1
            with self._lock:
                self.attempts += 1
            began = time.monotonic()
            try:
                if session is None:
                    session = smtplib.SMTP("127.0.0.1", self.port, timeout=self.io_timeout)
                    session.ehlo("client.example")
                session.sendmail("load@client.example", [f"{USER}@{DOMAIN}"], self._body(n, attempt))
            except (OSError, smtplib.SMTPException) as e:
                with self._lock:
                    self.failures[type(e).__name__] += 1
                    self.failed[(n, attempt)] = (began, time.monotonic(), f"{type(e).__name__}: {e}"[:200])
                if session is not None:
                    try:
                        session.close()
                    except OSError:
                        pass
                    session = None
                time.sleep(0.05)
                continue
            with self._lock:
                self.acked.add((n, attempt))
                self.acked_messages.add(n)
            n = self._take()
            attempt = 0
        if session is not None:
            try:
                session.quit()
            except (OSError, smtplib.SMTPException):
                session.close()

    def start(self, deadline: float) -> None:
        self.deadline = deadline
        for _ in range(self.threads):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._workers.append(t)

    @property
    def taken(self) -> int:
        """How many message numbers were handed out."""
        return self._next

    def done(self) -> bool:
        return not any(t.is_alive() for t in self._workers)

    def join(self) -> None:
        for t in self._workers:
            t.join(max(0.0, self.deadline - time.monotonic()) + self.io_timeout + 5)


@dataclass
class Tally:
    acknowledged: int
    acknowledged_messages: int
    delivered_files: int
    lost: list[tuple[int, int]] = field(default_factory=list)
    #: attempt -> queue ids of its copies, for attempts delivered more than once
    duplicates: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    duplicate_causes: dict[str, int] = field(default_factory=dict)
    unacknowledged_deliveries: list[tuple[int, int]] = field(default_factory=list)
    #: of those: how many failed while a kill happened, and the others (attempt -> client error)
    unacknowledged_in_crash: int = 0
    unacknowledged_without_crash: dict[tuple[int, int], str] = field(default_factory=dict)
    messages_delivered_twice: int = 0
    untagged_files: list[str] = field(default_factory=list)

    @property
    def duplicate_count(self) -> int:
        """Extra copies of attempts delivered more than once."""
        return sum(len(ids) - 1 for ids in self.duplicates.values())

    def summary(self) -> str:
        return (
            f"acknowledged {self.acknowledged} (messages {self.acknowledged_messages}), "
            f"delivered files {self.delivered_files}, lost {len(self.lost)}, "
            f"duplicates {self.duplicate_count} {self.duplicate_causes}, "
            f"delivered without 250 {len(self.unacknowledged_deliveries)} "
            f"(the session broke by a kill: {self.unacknowledged_in_crash}, "
            f"without a kill: {len(self.unacknowledged_without_crash)}), "
            f"messages arriving more than once {self.messages_delivered_twice}, "
            f"untagged files {len(self.untagged_files)}"
        )


QUEUE_ID_RE = re.compile(rb"^Received: \(pymta (\d+) invoked", re.MULTILINE)
SUCCESS_RE = re.compile(r"delivery (\d+): success")
STARTED_NUMBER_RE = re.compile(r"starting delivery (\d+): msg (\d+) to local ")


def maildir_tags(maildir: str) -> tuple[dict[tuple[int, int], list[str]], list[str]]:
    """Attempt tag -> queue ids of its delivered copies (from pymta's Received line), and files without a tag."""
    seen: dict[tuple[int, int], list[str]] = {}
    untagged: list[str] = []
    for sub in ("new", "cur"):
        directory = os.path.join(maildir, sub)
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                head = f.read(8192).split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
            match = TAG_RE.search(head)
            if match is None:
                untagged.append(path)
                continue
            queued = QUEUE_ID_RE.search(head)
            tag = (int(match.group(1)), int(match.group(2)))
            seen.setdefault(tag, []).append(queued.group(1).decode() if queued else "?")
    return seen, untagged


END_RE = re.compile(r"end msg (\d+)$")


@dataclass
class _Start:
    instance: int
    succeeded: bool = False


def delivery_histories(path: str) -> dict[str, list[list[_Start]]]:
    """
    From pymta-send's log (the rig writes C{=== start} before each
    process): queue id -> one list per queue message that had the id (ids
    are inode numbers and come back), each the local deliveries started for
    it, with the pymta-send lifetime they started in and whether their
    success was logged.  C{end msg ID} closes a message.
    """
    histories: dict[str, list[list[_Start]]] = {}
    current: dict[str, list[_Start]] = {}
    numbers: dict[str, _Start] = {}
    instance = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("=== start"):
                    instance += 1
                    numbers = {}
                    continue
                started = STARTED_NUMBER_RE.search(line)
                if started:
                    entry = _Start(instance)
                    numbers[started.group(1)] = entry
                    current.setdefault(started.group(2), []).append(entry)
                    continue
                success = SUCCESS_RE.search(line)
                if success and success.group(1) in numbers:
                    numbers[success.group(1)].succeeded = True
                    continue
                ended = END_RE.search(line.rstrip("\n"))
                if ended:
                    histories.setdefault(ended.group(1), []).append(current.pop(ended.group(1), []))
    except OSError:
        pass
    for queue_id, starts in current.items():
        histories.setdefault(queue_id, []).append(starts)
    return histories


def classify_duplicates(duplicates: dict[tuple[int, int], list[str]], send_log: str) -> dict[str, int]:
    """
    Why each extra copy arrived, from pymta-send's log:
     - C{interrupted}: the message's delivery started in a pymta-send that
       was killed before it logged the success, and again in a later one
       (qmail's allowed duplicate: finished but not checkpointed);
     - C{success logged, not checkpointed}: the killed pymta-send had
       logged the success but died before marking the recipient done (the
       same case at a narrower moment);
     - C{unexplained}: no kill between the deliveries (a bug).
    """
    histories = delivery_histories(send_log)
    counts = {"interrupted": 0, "success logged, not checkpointed": 0, "unexplained": 0}
    for ids in duplicates.values():
        for queue_id in set(ids):
            copies = ids.count(queue_id)
            if copies < 2:
                continue
            # the queue message among those with this id whose deliveries span enough pymta-send lives
            spans = [starts for starts in histories.get(queue_id, [])
                     if len({s.instance for s in starts}) >= copies]
            if not spans:
                counts["unexplained"] += copies - 1
                continue
            starts = spans[0]
            last = max(s.instance for s in starts)
            early_success = any(s.succeeded for s in starts if s.instance != last)
            counts["success logged, not checkpointed" if early_success else "interrupted"] += copies - 1
    return counts


def tally(maildir: str, clients: LoadClients, send_log: str | None = None,
          events: Iterable[ChaosEvent] = ()) -> Tally:
    seen, untagged = maildir_tags(maildir)
    kills = [e.killed for e in events]
    unacknowledged = sorted(t for t in seen if t not in clients.acked)
    in_crash = 0
    without_crash: dict[tuple[int, int], str] = {}
    for tag in unacknowledged:
        began, ended, error = clients.failed.get(tag, (0.0, 0.0, "no answer recorded"))
        if any(began <= k <= ended for k in kills):
            in_crash += 1
        else:
            without_crash[tag] = error
    per_message = Counter(n for (n, _a), ids in seen.items() for _ in ids)
    duplicates = {t: ids for t, ids in sorted(seen.items()) if len(ids) > 1}
    return Tally(
        acknowledged=len(clients.acked),
        acknowledged_messages=len(clients.acked_messages),
        delivered_files=sum(len(ids) for ids in seen.values()),
        lost=sorted(t for t in clients.acked if t not in seen),
        duplicates=duplicates,
        duplicate_causes=classify_duplicates(duplicates, send_log) if send_log else {},
        unacknowledged_deliveries=unacknowledged,
        unacknowledged_in_crash=in_crash,
        unacknowledged_without_crash=without_crash,
        messages_delivered_twice=sum(1 for c in per_message.values() if c > 1),
        untagged_files=untagged,
    )
