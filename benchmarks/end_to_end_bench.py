"""
End-to-end load: Postfix's smtp-source sends N messages over S sessions into
a mail server on loopback that delivers every one of them to a local
Maildir; measured in the same run for

 - C{twistd pymta} (smtpd, send and pop3d in one process, plus the spawner);
 - C{twistd pymta} signing every message with DKIM (C{pymta-dkim}: an rsa
   2048 and an ed25519 key for the sender's domain, made by C{pymta dkim
   keygen}; 127.0.0.1 is a relay client in the tcp.smtp C{pymta init}
   writes, so the sessions of both runs are trusted), with
   its throughput as a ratio to C{pymta}'s (signing off) in the same run;
 - C{twistd pymta} handing every message to a private Dovecot over LMTP
   (C{pymta-lmtp}: Debian's dovecot-lmtpd run by L{tests.dovecot}, the
   recipient's domain in control/lmtproutes on Dovecot's unix socket; the
   delivered count is Dovecot's Maildir, the memory and CPU include
   Dovecot's processes), with its throughput as a ratio to C{pymta}'s
   (pymta's own Maildir delivery) in the same run;
 - pymta as separate processes (C{twistd pymta-smtpd} + C{twistd pymta-send}:
   two reactors on two cores);
 - tiers (benchmarks/tiers.py): Debian's HAProxy (send-proxy-v2, round
   robin) in front of one C{twistd pymta} (C{pymta-haproxy1}) and of two,
   each with its own root and queue (C{pymta-haproxy2}), with the ratios
   haproxy1/pymta (the proxy hop) and haproxy2/haproxy1 (a second
   front-end on the same machine); a null client's C{twistd pymta-smtpd}
   handing every message over QMQP to C{twistd pymta} (C{pymta-qmqp}), with
   the ratio qmqp/pymta;
 - a throw-away Postfix instance (own config and queue directories under the
   temporary directory, inet on a loopback port, local(8) delivering to a
   Maildir through an alias: the same Maildir code as C{home_mailbox =
   Maildir/}, without needing a system user);
 - C{pymta-milter} and C{postfix-milter}: the same two with one milter that
   accepts everything (benchmarks/accept_milter.py, asking for every stage)
   in control/milters and in Postfix's C{smtpd_milters}, with the ratios to
   the runs without it and pymta's to Postfix's, in the same run (the
   milter's own process is not counted in memory and CPU).

For each: messages accepted per second (N / smtp-source's run time),
messages delivered per second (N / time until the N-th Maildir file
exists, counted from the first connection), peak memory (largest sums of
the RSS and of the PSS of the server's whole process tree, sampled every
0.2 s; RSS counts shared pages once per process, PSS splits them) and the
ratios pymta/Postfix.

Usage: python benchmarks/end_to_end_bench.py [--count 2000] [--sessions 20] [--size 5120] [--rounds 1]
       [--only pymta,pymta-split,postfix,pymta-dkim,pymta-lmtp,pymta-haproxy1,pymta-haproxy2,pymta-qmqp,
               pymta-milter,postfix-milter]
Needs root (Postfix instance, mail uid) and /usr/sbin/smtp-source; run it
through benchmarks/end_to_end.sh, which installs Debian's postfix first.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, PROJECT)
sys.path.insert(0, HERE)

from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from smtpd_bench import SMTP_SOURCE, free_port, port_open, smtp_source, stop_processes, wait_for  # noqa: E402
from tiers import HAProxyFronted, QMQPHop, accepts_connections  # noqa: E402
from accept_milter import AcceptMilter  # noqa: E402
from results import print_result  # noqa: E402

if TYPE_CHECKING:
    from tests.dovecot import DovecotLMTP

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
PYMTA = [sys.executable, "-m", "pymta.cli.main"]
MAIL_UID = 4242
DOMAIN = "bench.example"
SENDER_DOMAIN = "example.org"  # smtp_source's -f sender@example.org, also its From: field
USER = "alice"
LMTP_DOMAIN = "lmtp.bench.example"  # pymta-lmtp: control/lmtproutes sends it to Dovecot
#: every name --only knows
TARGETS = ("pymta", "pymta-split", "postfix", "pymta-dkim", "pymta-lmtp", "pymta-haproxy1", "pymta-haproxy2",
           "pymta-qmqp", "pymta-milter", "postfix-milter")
#: (target, reference, what the ratio of their throughputs measures), printed when both ran
HOP_RATIOS = (
    ("pymta-haproxy1", "pymta", "HAProxy in front of one front-end / pymta direct"),
    ("pymta-haproxy2", "pymta-haproxy1", "two front-ends / one, both behind HAProxy"),
    ("pymta-qmqp", "pymta", "a null client's QMQP hop / pymta direct"),
)


# -- process-tree memory ------------------------------------------------

def _parents() -> dict[int, int]:
    """pid -> ppid of every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(name)] = int(fields[1])
    return out


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; PSS splits shared pages among their users."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def tree_memory_kb(roots: list[int]) -> tuple[int, int]:
    """Sums of the RSS and of the PSS of C{roots} and all their descendants."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    rss = pss = 0
    todo, seen = list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        one_rss, one_pss = _memory_kb(pid)
        rss += one_rss
        pss += one_pss
        todo.extend(children.get(pid, ()))
    return rss, pss


def _tree(roots: list[int]) -> list[int]:
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _label(pid: int, comm: str) -> str:
    """A short name for a process: the twistd plugin or python module it runs, else its command name."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return comm
    for name in ("pymta-send", "pymta-smtpd", "pymta.local.spawner"):
        if name in argv or (name.startswith("pymta.") and any(name in a for a in argv)):
            return name
    if "pymta" in argv:
        return "twistd pymta"
    return comm


def tree_cpu_times(roots: list[int]) -> list[tuple[str, float, float]]:
    """
    (label, user s, system s) of every process in the trees of C{roots},
    reaped children included (see L{_label}).
    """
    tick = os.sysconf("SC_CLK_TCK")
    out = []
    for pid in _tree(roots):
        stat = proc_stat(pid)
        if stat is None:
            continue
        comm, fields = stat
        # utime, stime, cutime, cstime are fields 14-17 of proc(5)'s stat; C{fields} starts at field 3
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        out.append((_label(pid, comm), (utime + cutime) / tick, (stime + cstime) / tick))
    return out


def proc_stat(pid: int) -> tuple[str, list[str]] | None:
    """C{(comm, fields from the third on)} of C{/proc/PID/stat}; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def tree_cpu_seconds(roots: list[int]) -> dict[str, float]:
    """CPU time (user + system) of C{roots} and their descendants, summed per L{_label}."""
    out: dict[str, float] = {}
    for label, user, system in tree_cpu_times(roots):
        out[label] = out.get(label, 0.0) + user + system
    return out


class PeakMemory:
    """
    Samples the process trees of C{roots()} every C{interval} s in a thread;
    C{peak_rss_kb} and C{peak_pss_kb} are the largest sums seen.
    """

    def __init__(self, roots: Callable[[], list[int]], interval: float = 0.2) -> None:
        self.roots = roots
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss, pss = tree_memory_kb(self.roots())
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


# -- servers under test -------------------------------------------------

def count_new(maildir: str) -> int:
    try:
        return len(os.listdir(os.path.join(maildir, "new"))) + len(os.listdir(os.path.join(maildir, "cur")))
    except FileNotFoundError:
        return 0


def twistd(args: list[str], log: str) -> subprocess.Popen:
    return subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", f"--logfile={log}", *args], cwd=PROJECT, stdin=subprocess.DEVNULL,
    )


class PymtaServer:
    """A fresh pymta root; C{split} runs pymta-smtpd and pymta-send as two processes, else C{twistd pymta}."""

    def __init__(self, base: str, split: bool, queuesync: str = "syncfs", dkim: bool = False,
                 lmtp: bool = False, proxied: bool = False, qmqp: bool = False, milter: bool = False) -> None:
        self.name = "pymta-split" if split else "pymta-dkim" if dkim else "pymta-lmtp" if lmtp else "pymta"
        self.name = "pymta-milter" if milter else self.name
        #: proxied: the SMTP listener is haproxy: (control/trustedproxies: 127.0.0.1); qmqp: a --qmqp listener too
        self.proxied = proxied
        #: appended to the SMTP listener's endpoint, e.g. ":backlog=1000" (benchmarks/sessions.py)
        self.listen_options = ""
        self.qmqp_port = free_port() if qmqp else None
        self.split = split
        self.base = base
        self.root = os.path.join(base, "root")
        self.port = free_port()
        self.rcpt = f"{USER}@{DOMAIN}"
        self.procs: list[subprocess.Popen] = []
        subprocess.run([*PYMTA, "init", self.root, "--me", DOMAIN, "--user", USER,
                        "--mail-uid", f"{MAIL_UID}:{MAIL_UID}"], check=True, capture_output=True, cwd=PROJECT)
        control = os.path.join(self.root, "control")
        # smtp-source's sessions all come from 127.0.0.1
        for name, value in (("concurrencyincoming", "200"), ("concurrencyperip", "200"), ("queuesync", queuesync)):
            with open(os.path.join(control, name), "w") as f:
                f.write(value + "\n")
        self.maildir = os.path.join(self.root, "home", USER, "Maildir")
        if dkim:
            self.sign_with_dkim()
        self.dovecot = self.deliver_over_lmtp() if lmtp else None
        if proxied:
            with open(os.path.join(control, "trustedproxies"), "w") as f:
                f.write("127.0.0.1\n")
        if qmqp:
            with open(os.path.join(self.root, "etc", "tcp.qmqp"), "w") as f:
                f.write("127.0.0.1:allow\n")
        self.milter = AcceptMilter(free_port()) if milter else None
        if self.milter is not None:
            with open(os.path.join(control, "milters"), "w") as f:
                f.write(f"accept {self.milter.socket}\n")

    def deliver_over_lmtp(self) -> "DovecotLMTP":
        """A private Dovecot LMTP with USER's mailbox; LMTP_DOMAIN's mail goes to its unix socket."""
        from tests.dovecot import DovecotLMTP

        where = os.path.join(self.base, "dovecot")
        os.mkdir(where)
        dovecot = DovecotLMTP(where, [USER], free_port())
        control = os.path.join(self.root, "control")
        with open(os.path.join(control, "rcpthosts"), "a") as f:
            f.write(LMTP_DOMAIN + "\n")
        with open(os.path.join(control, "lmtproutes"), "w") as f:
            f.write(f"{LMTP_DOMAIN}:unix:{dovecot.socket}\n")
        self.rcpt = f"{USER}@{LMTP_DOMAIN}"
        self.maildir = os.path.join(where, "mail", USER, "Maildir")
        return dovecot

    def sign_with_dkim(self) -> None:
        """Keys for smtp-source's sender domain in control/dkimkeys (127.0.0.1 is a relay client already: signed)."""
        lines = []
        for selector, kind in (("bench-rsa", "rsa"), ("bench-ed", "ed25519")):
            out = subprocess.run([*PYMTA, "dkim", "keygen", SENDER_DOMAIN, selector, "--type", kind, "--root", self.root],
                                 check=True, capture_output=True, text=True, cwd=PROJECT).stdout
            lines += [line[2:] for line in out.splitlines() if line.startswith(f"# {SENDER_DOMAIN}:")]
        with open(os.path.join(self.root, "control", "dkimkeys"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self) -> None:
        if self.dovecot is not None:
            self.dovecot.start()
        if self.milter is not None:
            self.milter.start()
        listen = f"{'haproxy:' if self.proxied else ''}tcp:{self.port}:interface=127.0.0.1{self.listen_options}"
        if self.split:
            self.procs.append(twistd(["pymta-send", "--root", self.root], os.path.join(self.base, "send.log")))
            wait_for(lambda: os.path.exists(os.path.join(self.root, "run", "pymta-send.pid")), 60, "pymta-send")
            self.procs.append(twistd(["pymta-smtpd", "--root", self.root, "--listen", listen],
                                     os.path.join(self.base, "smtpd.log")))
        else:
            qmqp = ["--qmqp", f"tcp:{self.qmqp_port}:interface=127.0.0.1"] if self.qmqp_port else []
            self.procs.append(twistd(["pymta", "--root", self.root, "--smtp", listen, *qmqp],
                                     os.path.join(self.base, "pymta.log")))
        # a haproxy: listener greets nobody before a PROXY header
        wait_for(lambda: (accepts_connections if self.proxied else port_open)(self.port), 60, self.name)

    def delivered(self) -> int:
        return count_new(self.maildir)

    def pids(self) -> list[int]:
        dovecot = [self.dovecot.proc] if self.dovecot is not None and self.dovecot.proc is not None else []
        return [p.pid for p in self.procs + dovecot if p.poll() is None]

    def stop(self) -> None:
        stop_processes(self.procs, 60)
        if self.dovecot is not None:
            self.dovecot.stop()
        if self.milter is not None:
            self.milter.stop()


class PostfixServer:
    """A private Postfix (tests/remote/postfix.py) whose local(8) delivers bob@local.test to a Maildir."""

    def __init__(self, base: str, milter: bool = False) -> None:
        from tests.remote.postfix import PostfixInstance
        from tests.smtpd.tlsutil import cert_pem

        self.name = "postfix-milter" if milter else "postfix"
        self.milter = AcceptMilter(free_port()) if milter else None
        self.port = free_port()
        self.rcpt = "bob@local.test"
        pem = cert_pem("sink.example.test")
        key, cert = pem.split(b"-----BEGIN CERTIFICATE-----")
        self.inst = PostfixInstance(base, self.port, b"-----BEGIN CERTIFICATE-----" + cert, key)
        nobody = pwd.getpwnam("nobody")
        self.maildir = os.path.join(self.inst.base, "local", "bob", "Maildir")
        os.makedirs(os.path.dirname(self.maildir))
        os.chown(os.path.dirname(self.maildir), nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.inst.base, "aliases"), "w") as f:
            f.write(f"bob {self.maildir}/\n")  # texthash: postmap's "key value" format
        overrides = {
            "mydestination": "local.test",
            "alias_maps": f"texthash:{self.inst.base}/aliases",
            "local_recipient_maps": "$alias_maps",
            "home_mailbox": "Maildir/",
            "default_privs": "nobody",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "200",
        }
        if self.milter is not None:
            overrides.update(smtpd_milters=self.milter.socket, milter_default_action="tempfail")
        self.inst.override(overrides)

    def start(self) -> None:
        if self.milter is not None:
            self.milter.start()
        self.inst.start()
        try:
            wait_for(lambda: port_open(self.port), 60, "postfix")
        except SystemExit:
            self.stop()
            raise

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.inst.base, "queue", "pid", "master.pid")) as f:
                return [int(f.read().strip())]
        except (OSError, ValueError):
            return []

    def stop(self) -> None:
        self.inst.stop()
        if self.milter is not None:
            self.milter.stop()

    def delivered(self) -> int:
        return count_new(self.maildir)


def available_postfix() -> str | None:
    from tests.remote.postfix import available

    return available()


def wanted_servers(program: str, only: str, known: Sequence[str]) -> list[str]:
    """
    The servers C{--only} lists, each one of C{known} (else C{program} exits
    naming them); Postfix left out, with the reason printed, when it cannot run.
    """
    wanted = [name for name in only.split(",") if name]
    if any(name not in known for name in wanted):
        raise SystemExit(f"{program}: --only takes {', '.join(known)}")
    if "postfix" in wanted and (reason := available_postfix()):
        print(f"postfix: not run ({reason})")
        wanted.remove("postfix")
    return wanted


def make_run_dir(where: str) -> None:
    """Create one run's directory, open to the servers' own users (their roots and homes live under it)."""
    os.makedirs(where)
    os.chmod(where, 0o755)


# -- one measurement ----------------------------------------------------

def measure(server: "PymtaServer | PostfixServer | HAProxyFronted | QMQPHop", count: int, sessions: int, size: int,
            deliver_timeout: float) -> dict:
    server.start()
    try:
        cpu_before = tree_cpu_seconds(server.pids())
        with PeakMemory(server.pids) as memory:
            start = time.monotonic()
            accept_elapsed = smtp_source(server.port, count, sessions, size, server.rcpt)
            deadline = time.monotonic() + deliver_timeout
            while server.delivered() < count and time.monotonic() < deadline:
                time.sleep(0.02)
            delivered_at = time.monotonic()
            delivered = server.delivered()
            cpu_after = tree_cpu_seconds(server.pids())
    finally:
        server.stop()
    spent = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    if delivered < count:
        raise SystemExit(f"{server.name}: only {delivered} of {count} messages delivered in {deliver_timeout} s")
    return {
        "accepted": count / accept_elapsed,
        "delivered": count / (delivered_at - start),
        "peak_mb": memory.peak_rss_kb / 1024,
        "peak_pss_mb": memory.peak_pss_kb / 1024,
        "seconds": delivered_at - start,
        "cpu_ms_per_msg": 1000 * sum(spent.values()) / count,
        "cpu_split": {name: round(used, 2) for name, used in sorted(spent.items(), key=lambda kv: -kv[1])
                      if used >= 0.05},
    }


def make_server(name: str, where: str, queuesync: str,
                haproxy: str | None) -> "PymtaServer | PostfixServer | HAProxyFronted | QMQPHop":
    """The server under test called C{name} (see C{--only}), its files under C{where}."""
    if name in ("postfix", "postfix-milter"):
        return PostfixServer(where, milter=(name == "postfix-milter"))
    if name in ("pymta-haproxy1", "pymta-haproxy2") and haproxy is not None:
        fronts: list = []
        for i in range(int(name[-1])):
            os.makedirs(os.path.join(where, f"front{i}"))
            fronts.append(PymtaServer(os.path.join(where, f"front{i}"), split=False, queuesync=queuesync, proxied=True))
        return HAProxyFronted(where, haproxy, fronts)
    if name == "pymta-qmqp":
        os.makedirs(os.path.join(where, "server"))
        server = PymtaServer(os.path.join(where, "server"), split=False, queuesync=queuesync, qmqp=True)
        assert server.qmqp_port is not None
        return QMQPHop(where, server, server.qmqp_port, PYMTA, twistd, MAIL_UID, PROJECT)
    return PymtaServer(where, split=(name == "pymta-split"), queuesync=queuesync,
                       dkim=(name == "pymta-dkim"), lmtp=(name == "pymta-lmtp"), milter=(name == "pymta-milter"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="pymta,pymta-split,postfix", help="comma-separated subset to run")
    parser.add_argument("--queuesync", choices=("syncfs", "fsync"), default="syncfs",
                        help="pymta's control/queuesync (default syncfs: one syncfs per batch instead of an fsync per file and directory)")
    parser.add_argument("--deliver-timeout", type=float, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, Maildirs)")
    parser.add_argument("--settle-us", type=float, default=0,
                        help="before each run, wait (up to 3 min) until a file creation costs at most this many us")
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("end_to_end_bench: needs root (pymta's mail uid, the Postfix instance)")
    if not os.path.exists(SMTP_SOURCE):
        raise SystemExit("smtp-source is missing (benchmarks/end_to_end.sh installs postfix)")
    wanted = [name for name in args.only.split(",") if name]
    unknown = [name for name in wanted if name not in TARGETS]
    if unknown:
        raise SystemExit(f"end_to_end_bench: no target {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    if "pymta-lmtp" in wanted:
        from tests.dovecot import missing

        reason = missing()
        if reason:
            print(f"pymta-lmtp: not run ({reason})")
            wanted.remove("pymta-lmtp")
    haproxy = None
    if any(name.startswith("pymta-haproxy") for name in wanted):
        from tests.packages import ensure_program

        haproxy = ensure_program("haproxy", "haproxy")
        if haproxy is None:
            print("pymta-haproxy1, pymta-haproxy2: not run (needs haproxy from Debian)")
            wanted = [name for name in wanted if not name.startswith("pymta-haproxy")]
    for name in [name for name in wanted if name.startswith("postfix")]:
        reason = available_postfix()
        if reason:
            print(f"{name}: not run ({reason})")
            wanted.remove(name)

    base = spread_tree("pymta-e2e-bench-")
    results: dict[str, list[dict]] = {name: [] for name in wanted}
    print(f"smtp-source -s {args.sessions} -m {args.count} -l {args.size}, delivery to one local Maildir; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; pymta's queuesync {args.queuesync}",
          flush=True)
    try:
        for rnd in range(args.rounds):
            for name in rotated(wanted, rnd):
                where = os.path.join(base, f"{name}-{rnd}")
                make_run_dir(where)
                server = make_server(name, where, args.queuesync, haproxy)
                # probed beside the server's files (the block group they start in)
                if args.settle_us:
                    create_us, waited = wait_for_cheap_creates(where, args.settle_us)
                    if waited >= 1:
                        print(f"  (waited {waited:.0f} s for cheap file creation)", flush=True)
                else:
                    create_us = create_cost_us(where)
                r = measure(server, args.count, args.sessions, args.size, args.deliver_timeout)
                results[name].append(r)
                print(f"round {rnd + 1} {name:12s} accepted {r['accepted']:6.0f} msg/s"
                      f"  delivered {r['delivered']:6.0f} msg/s"
                      f"  ({r['seconds']:.1f} s)  peak RSS {r['peak_mb']:6.1f} MB  PSS {r['peak_pss_mb']:6.1f} MB"
                      f"  CPU {r['cpu_ms_per_msg']:.2f} ms/msg {r['cpu_split']} s  file create {create_us:.0f} us",
                      flush=True)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(f"\nmedian of {args.rounds} round(s):")
    print(f"  {'server':12s} {'accepted/s':>10s} {'delivered/s':>11s} {'peak RSS MB':>11s} {'peak PSS MB':>11s}")
    for name in wanted:
        print(f"  {name:12s} {median(name, 'accepted'):10.0f} {median(name, 'delivered'):11.0f}"
              f" {median(name, 'peak_mb'):11.1f} {median(name, 'peak_pss_mb'):11.1f}")
    if "pymta-dkim" in wanted and "pymta" in wanted:
        print(f"  ratio signing on/off (pymta-dkim/pymta): "
              f"accepted {median('pymta-dkim', 'accepted') / median('pymta', 'accepted'):.2f}, "
              f"delivered {median('pymta-dkim', 'delivered') / median('pymta', 'delivered'):.2f}")
    if "pymta-lmtp" in wanted and "pymta" in wanted:
        print(f"  ratio LMTP to Dovecot / pymta's Maildir delivery (pymta-lmtp/pymta): "
              f"accepted {median('pymta-lmtp', 'accepted') / median('pymta', 'accepted'):.2f}, "
              f"delivered {median('pymta-lmtp', 'delivered') / median('pymta', 'delivered'):.2f}")
    for over, under, what in HOP_RATIOS:
        if over in wanted and under in wanted:
            print(f"  ratio {what} ({over}/{under}): "
                  f"accepted {median(over, 'accepted') / median(under, 'accepted'):.2f}, "
                  f"delivered {median(over, 'delivered') / median(under, 'delivered'):.2f}")
    for with_milter, without in (("pymta-milter", "pymta"), ("postfix-milter", "postfix"),
                                 ("pymta-milter", "postfix-milter")):
        if with_milter in wanted and without in wanted:
            print(f"  ratio {with_milter}/{without}: "
                  f"accepted {median(with_milter, 'accepted') / median(without, 'accepted'):.2f}, "
                  f"delivered {median(with_milter, 'delivered') / median(without, 'delivered'):.2f}")
    if "postfix" in wanted:
        for name in wanted:
            if name.startswith("postfix"):
                continue
            print(f"  ratio {name}/postfix: accepted {median(name, 'accepted') / median('postfix', 'accepted'):.2f}, "
                  f"delivered {median(name, 'delivered') / median('postfix', 'delivered'):.2f}, "
                  f"peak RSS {median(name, 'peak_mb') / median('postfix', 'peak_mb'):.2f}, "
                  f"peak PSS {median(name, 'peak_pss_mb') / median('postfix', 'peak_pss_mb'):.2f}")
        for name in [name for name in wanted if not name.startswith("postfix")]:
            load = f"{args.sessions}sessions" + ("" if name == "pymta" else f"-{name}")  # issue 19's goals: pymta
            for key, goal in (("delivered", "1.3"), ("accepted", "1.0")):
                print_result(load, f"{key}_per_s", median(name, key), median("postfix", key),
                             goal=goal if name == "pymta" and args.sessions == 20 else "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
