"""
Many sessions (issue 19): Postfix's smtp-source sends 5 KB messages over S
simultaneous sessions (default 200 and 1,000) into C{twistd pymta} (a root
from C{pymta init}, its queue sync left at the default, C{fsync}) and into a
private Postfix, both delivering to one local Maildir, in the same run; then
the memory each server needs per open idle session.

Throughput at S sessions, per round (the servers' order rotating), with the
medians and the ratios pymta/Postfix at the end:

 - accepted/s: messages / smtp-source's run time;
 - delivered/s: messages / time from the first connection until the last
   message is in the Maildir.

The servers are L{end_to_end_bench.PymtaServer} and
L{end_to_end_bench.PostfixServer} (same classes and Maildir delivery as
benchmarks/end_to_end.sh); their session limits are raised alike to S plus
L{SPARE} (see L{raise_session_limits}) and the open-files limit the servers
and smtp-source inherit is raised to L{open_files_needed}.

Memory per open idle session: K sessions (default 200) are opened one
after the other, each greeted and past C{EHLO}, then left idle; each
server's memory is read before (after a few warm-up sessions), with half
of them open and with all of them open:

 - pymta: the RSS of the C{twistd} process (its PSS from
   C{/proc/PID/smaps_rollup} printed beside);
 - Postfix: the sum of the PSS over its smtpd processes (and their
   number), plus its master's.

Bytes per session = the change / K (and, printed beside, the change over
the second half alone, the USS (private pages) of both and the page
tables, which none of them counts); see L{measured_kb} for why pymta's
figure is its RSS.

At the end one line per measure for the one-invocation driver:
C{RESULT <load> <metric> pymta=<v> postfix=<v> ratio=<r> goal=<g or -> met=<yes|no|->},
the ratio oriented so that higher is better for pymta (pymta/Postfix for
rates, Postfix/pymta for bytes); C{-} for what was not measured.

Usage (as root; C{sh benchmarks/sessions.sh} installs Debian's postfix first):
       .venv/bin/python benchmarks/sessions.py [--sessions 200,1000] [--messages N] [--rounds 3]
       [--idle 200] [--only pymta,postfix] [--backlog N] [--settle-us 60]
Smoke: --sessions 50 --messages 500 --rounds 1 --idle 20.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import (  # noqa: E402
    PostfixServer, PymtaServer, _parents, make_run_dir, make_server, measure, proc_stat, wanted_servers,
)
from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from latency import Session  # noqa: E402
from results import print_result  # noqa: E402
from smtpd_bench import SMTP_SOURCE  # noqa: E402

TARGETS = ("pymta", "postfix")
SIZE = 5120
#: messages per session count unless --messages says otherwise: a round of each takes well under 2 minutes
DEFAULT_MESSAGES = {200: 4000, 1000: 10000}
MESSAGES_PER_SESSION = 20
#: bounds on one invocation
MAX_SESSIONS = 5000
MAX_MESSAGES = 100_000
MAX_IDLE = 5000
#: sessions each server allows above S: the start-up probe and stragglers, so neither hits its limit
SPARE = 10
#: issue 19's goal for delivered/s at many sessions (pymta/Postfix)
GOAL_DELIVERED = 1.5
WARM_UP_SESSIONS = 3


# -- limits -------------------------------------------------------------

def open_files_needed(sessions: int) -> int:
    """
    The open-files limit the benchmark sets: each session is a socket in
    smtp-source (or in this process, for idle sessions) and in the server,
    plus its queue and Maildir files; four per session and 1,024 over.
    """
    return 4 * sessions + 1024


def raise_open_files(needed: int) -> tuple[int, int]:
    """Soft and hard RLIMIT_NOFILE to at least C{needed} (root may raise the hard limit); the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(needed, soft)
    if hard != resource.RLIM_INFINITY:
        hard = max(hard, want)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_session_limits(server: "PymtaServer | PostfixServer", limit: int, backlog: int) -> None:
    """
    Allow C{limit} simultaneous sessions, all from 127.0.0.1: pymta's
    control/concurrencyincoming and control/concurrencyperip (pymta sizes
    its listen queue from concurrencyincoming, as Postfix from its process
    limit; C{backlog}, when not 0, sets one in the endpoint instead); Postfix's default_process_limit (smtpd's, and
    cleanup's, one per message being received) with no per-client
    connection count limit.
    """
    if isinstance(server, PymtaServer):
        control = os.path.join(server.root, "control")
        for name in ("concurrencyincoming", "concurrencyperip"):
            with open(os.path.join(control, name), "w") as f:
                f.write(f"{limit}\n")
        if backlog:
            server.listen_options = f":backlog={backlog}"
        return
    server.inst.override({"default_process_limit": str(limit), "smtpd_client_connection_count_limit": "0"})


def listen_backlog(port: int) -> str:
    """The listen queue of the socket listening on 127.0.0.1:C{port} (C{ss}'s Send-Q), or C{?}."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def noting_backlog(server: "PymtaServer | PostfixServer", seen: dict[str, str]) -> None:
    """Make C{server.start} also read its listen queue into C{seen["backlog"]} (what the kernel applies)."""
    start = server.start

    def start_and_read() -> None:
        start()
        seen["backlog"] = listen_backlog(server.port)

    server.start = start_and_read  # type: ignore[method-assign]  # one instance's start, for this run only


def listen_drops() -> tuple[int, int]:
    """
    The kernel's counts (system-wide, since boot) of connections refused at
    a listening socket: (TcpExt ListenOverflows: its accept queue was full,
    ListenDrops: those and any other drop).  A dropped SYN or handshake is
    retried by the client after 1 s, then 3 s, ...: a stalled session.
    """
    try:
        with open("/proc/net/netstat") as f:
            counters = tcp_ext(f.read().splitlines())
    except OSError:
        return 0, 0
    return counters.get("ListenOverflows", 0), counters.get("ListenDrops", 0)


def tcp_ext(lines: list[str]) -> dict[str, int]:
    """The C{TcpExt} counters of C{/proc/net/netstat}'s lines (a names line, then a values line)."""
    for names, values in zip(lines, lines[1:]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], (int(v) for v in values.split()[1:])))
    return {}


# -- memory per idle session --------------------------------------------

@dataclass(frozen=True)
class Footprint:
    """
    One reading of a server's memory in kB, summed over its measured
    processes: RSS, PSS, USS (private pages: C{Private_Clean} +
    C{Private_Dirty}), page tables (C{VmPTE}, in none of the others); and
    how many smtpd processes it has (0 for pymta).
    """

    rss_kb: int
    pss_kb: int
    uss_kb: int
    pte_kb: int
    processes: int

    def __add__(self, other: "Footprint") -> "Footprint":
        return Footprint(self.rss_kb + other.rss_kb, self.pss_kb + other.pss_kb, self.uss_kb + other.uss_kb,
                         self.pte_kb + other.pte_kb, self.processes + other.processes)


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """The kB fields of C{/proc/PID/smaps_rollup} (C{"Rss:  1234 kB"} -> C{{"Rss": 1234}}); the header line skipped."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if len(fields) == 2 and fields[1] == "kB" and fields[0].isdigit():
            out[name.strip()] = int(fields[0])
    return out


def page_tables_kb(pid: int) -> int:
    """C{VmPTE} of C{/proc/PID/status} (kB), 0 when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmPTE:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_process(pid: int, smtpd: bool) -> Footprint:
    """One process's L{Footprint} (zeros when it is gone); C{smtpd} counts it as one of Postfix's smtpd processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            kb = parse_smaps_rollup(f.read())
    except OSError:
        kb = {}
    return Footprint(kb.get("Rss", 0), kb.get("Pss", 0), kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0),
                     page_tables_kb(pid), int(smtpd))


def postfix_smtpds(master: int) -> list[int]:
    """The smtpd processes Postfix's master has running."""
    out = []
    for pid, ppid in _parents().items():
        stat = proc_stat(pid)
        if ppid == master and stat is not None and stat[0] == "smtpd":
            out.append(pid)
    return out


def footprint(server: "PymtaServer | PostfixServer") -> Footprint:
    """pymta: its twistd process; Postfix: the sum over its smtpd processes plus its master."""
    if isinstance(server, PymtaServer):
        return one_process(server.procs[0].pid, smtpd=False)
    master = server.pids()[0]
    total = one_process(master, smtpd=False)
    for pid in postfix_smtpds(master):
        total += one_process(pid, smtpd=True)
    return total


def measured_kb(server: "PymtaServer | PostfixServer", reading: Footprint) -> int:
    """
    The memory the per-session figure is taken from: pymta's RSS (one
    process: what it adds per session is its own heap, which RSS counts
    whole, while its PSS moves with whatever other process on the machine
    maps the same Python and libraries); Postfix's PSS summed over the
    smtpd processes and the master (RSS would count the smtpd program and
    libraries once per process).
    """
    return reading.rss_kb if isinstance(server, PymtaServer) else reading.pss_kb


def open_idle(port: int, count: int, deadline: float) -> list[Session]:
    """C{count} sessions, each greeted and answered C{250} to EHLO, left open."""
    sessions = []
    try:
        for _ in range(count):
            session = Session(port, deadline)
            sessions.append(session)
            session.command("EHLO idle.example.org", "250")
    except BaseException:
        close_all(sessions)
        raise
    return sessions


def close_all(sessions: list[Session]) -> None:
    for session in sessions:
        session.sock.close()


def idle_memory(server: "PymtaServer | PostfixServer", count: int, seconds: float) -> dict:
    """
    The server's L{Footprint} before and with C{count} idle sessions open,
    and bytes per session; also the bytes per session of the second half
    alone (a heap's free space left from start-up absorbs the first ones).
    """
    server.start()
    try:
        deadline = time.monotonic() + seconds
        for _ in range(WARM_UP_SESSIONS):  # first-session imports and allocations are not per session
            close_all(open_idle(server.port, 1, deadline))
        before = footprint(server)
        sessions = open_idle(server.port, count // 2, deadline)
        try:
            half = footprint(server)
            sessions += open_idle(server.port, count - count // 2, deadline)
            during = footprint(server)
        finally:
            close_all(sessions)
    finally:
        server.stop()
    second = count - count // 2
    return {"before": before, "during": during,
            "bytes_per_session": 1024 * (measured_kb(server, during) - measured_kb(server, before)) / count,
            "second_half_bytes_per_session": 1024 * (measured_kb(server, during) - measured_kb(server, half)) / second,
            "rss_bytes_per_session": 1024 * (during.rss_kb - before.rss_kb) / count,
            "pss_bytes_per_session": 1024 * (during.pss_kb - before.pss_kb) / count,
            "uss_bytes_per_session": 1024 * (during.uss_kb - before.uss_kb) / count,
            "pte_bytes_per_session": 1024 * (during.pte_kb - before.pte_kb) / count}


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the run ------------------------------------------------------------

def messages_for(sessions: int, override: int | None) -> int:
    count = override or DEFAULT_MESSAGES.get(sessions, MESSAGES_PER_SESSION * sessions)
    return max(1, min(count, MAX_MESSAGES))


def parse_sessions(text: str) -> list[int]:
    out = [int(part) for part in text.split(",") if part]
    if any(not 1 <= s <= MAX_SESSIONS for s in out):
        raise SystemExit(f"sessions: --sessions takes counts from 1 to {MAX_SESSIONS}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", default="200,1000",
                        help="comma-separated session counts (smtp-source -s); empty: the memory measure alone")
    parser.add_argument("--messages", type=int, default=None,
                        help="messages at every session count (default 4,000 at 200, 10,000 at 1,000, else 20 a session)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=200, help="idle sessions for the memory measure (0: skip it)")
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--queuesync", choices=("fsync", "syncfs"), default="fsync",
                        help="pymta's control/queuesync (default fsync, what pymta init writes)")
    parser.add_argument("--backlog", type=int, default=0,
                        help="pymta's listen queue as backlog=N in its endpoint (default 0: pymta's own, its session limit)")
    parser.add_argument("--deliver-timeout", type=float, default=120)
    parser.add_argument("--settle-us", type=float, default=0,
                        help="before each run, wait (up to 3 min) until a file creation costs at most this many us")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, Maildirs)")
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("sessions: needs root (pymta's mail uid, the Postfix instance)")
    if not os.path.exists(SMTP_SOURCE) or not os.path.exists("/usr/sbin/postfix"):
        subprocess.run(["sh", os.path.join(HERE, "remote_install_postfix.sh")], check=True)
    counts = parse_sessions(args.sessions)
    if not 0 <= args.idle <= MAX_IDLE:
        raise SystemExit(f"sessions: --idle takes 0 to {MAX_IDLE}")
    wanted = wanted_servers("sessions", args.only, TARGETS)
    if not counts and not args.idle:
        raise SystemExit("sessions: nothing to measure (no --sessions and --idle 0)")
    biggest = max([*counts, args.idle])
    soft, hard = raise_open_files(open_files_needed(biggest))

    base = spread_tree("pymta-sessions-bench-")
    rates: dict[tuple[str, int], list[dict]] = {(name, s): [] for name in wanted for s in counts}
    memory: dict[str, list[dict]] = {name: [] for name in wanted}
    print(f"smtp-source -s {args.sessions or '-'} -l {SIZE}, delivery to one local Maildir, idle sessions {args.idle}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; pymta's queuesync {args.queuesync}; "
          f"RLIMIT_NOFILE {soft}/{hard}", flush=True)
    try:
        for rnd in range(args.rounds):
            for sessions in counts:
                count = messages_for(sessions, args.messages)
                limit = sessions + SPARE
                for name in rotated(wanted, rnd):
                    where = os.path.join(base, f"{name}-{sessions}-{rnd}")
                    make_run_dir(where)
                    server = make_server(name, where, args.queuesync, None)
                    assert isinstance(server, (PymtaServer, PostfixServer))
                    raise_session_limits(server, limit, args.backlog)
                    if args.settle_us:
                        create_us, _ = wait_for_cheap_creates(where, args.settle_us)
                    else:
                        create_us = create_cost_us(where)
                    overflows, drops = listen_drops()
                    seen = {"backlog": "?"}
                    noting_backlog(server, seen)
                    try:
                        r = measure(server, count, sessions, SIZE, args.deliver_timeout)
                    except (SystemExit, subprocess.TimeoutExpired) as failed:  # a finding, not the end
                        print(f"round {rnd + 1} {name:8s} {sessions} sessions, {count} messages: FAILED: {failed}",
                              flush=True)
                        continue
                    rates[(name, sessions)].append(r)
                    overflows_after, drops_after = listen_drops()
                    print(f"round {rnd + 1} {name:8s} {sessions} sessions, {count} messages: accepted "
                          f"{r['accepted']:6.0f} msg/s  delivered {r['delivered']:6.0f} msg/s ({r['seconds']:.1f} s)"
                          f"  peak RSS {r['peak_mb']:6.1f} MB  PSS {r['peak_pss_mb']:6.1f} MB"
                          f"  CPU {r['cpu_ms_per_msg']:.2f} ms/msg  listen queue {seen['backlog']}: overflows"
                          f" {overflows_after - overflows}, drops {drops_after - drops}"
                          f"  file create {create_us:.0f} us", flush=True)
                    if not args.keep:
                        shutil.rmtree(where, ignore_errors=True)
            if not args.idle:
                continue
            for name in rotated(wanted, rnd):
                where = os.path.join(base, f"{name}-idle-{rnd}")
                make_run_dir(where)
                server = make_server(name, where, args.queuesync, None)
                assert isinstance(server, (PymtaServer, PostfixServer))
                raise_session_limits(server, args.idle + SPARE, args.backlog)
                try:
                    m = idle_memory(server, args.idle, args.deliver_timeout)
                except (SystemExit, OSError) as failed:
                    print(f"round {rnd + 1} {name:8s} {args.idle} idle sessions: FAILED: {failed}", flush=True)
                    continue
                memory[name].append(m)
                before, during = m["before"], m["during"]
                print(f"round {rnd + 1} {name:8s} {args.idle} idle sessions: RSS {before.rss_kb} -> {during.rss_kb} kB,"
                      f" PSS {before.pss_kb} -> {during.pss_kb}, USS {before.uss_kb} -> {during.uss_kb},"
                      f" smtpd processes {before.processes} -> {during.processes}:"
                      f" {m['bytes_per_session']:.0f} bytes/session ({'RSS' if name == 'pymta' else 'PSS'};"
                      f" second half alone {m['second_half_bytes_per_session']:.0f}); per session RSS"
                      f" {m['rss_bytes_per_session']:.0f}, PSS {m['pss_bytes_per_session']:.0f},"
                      f" USS {m['uss_bytes_per_session']:.0f}, page tables {m['pte_bytes_per_session']:.0f}", flush=True)
                if not args.keep:
                    shutil.rmtree(where, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    def rate(name: str, sessions: int, key: str) -> float | None:
        return median_or_none([r[key] for r in rates.get((name, sessions), [])])

    def per_session(name: str, key: str = "bytes_per_session") -> float | None:
        return median_or_none([m[key] for m in memory.get(name, [])])

    print(f"\nmedian of {args.rounds} round(s):")
    for sessions in counts:
        for metric, key in (("accepted/s", "accepted"), ("delivered/s", "delivered")):
            goal = f"{GOAL_DELIVERED:g}" if key == "delivered" else "-"
            print_result(f"sessions-{sessions}", metric, rate("pymta", sessions, key),
                         rate("postfix", sessions, key), True, goal)
    if args.idle:
        for key, what in (("second_half_bytes_per_session", "as RESULT, the second half of the sessions alone"),
                          ("uss_bytes_per_session", "USS: private pages, both alike"),
                          ("pte_bytes_per_session", "page tables, which none of these counts")):
            print(f"  idle sessions, bytes per session ({what}): "
                  + ", ".join(f"{name} {per_session(name, key) or 0:.0f}" for name in wanted))
        print_result(f"idle-sessions-{args.idle}", "bytes/session", per_session("pymta"),
                     per_session("postfix"), False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
