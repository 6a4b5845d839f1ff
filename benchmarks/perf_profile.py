"""
Where the time goes in pymta's accept -> queue -> deliver pipeline.

Starts pymta as separate processes (C{pymta-split}: pymta-smtpd +
pymta-send + the local spawner) or as C{twistd pymta}, attaches
C{py-spy record} to every process of the tree, drives C{smtp-source} into
it and waits for every message in the Maildir; then prints, per process,
the functions with the most samples (self and inclusive), read from
py-spy's collapsed-stack output.

Usage: python benchmarks/perf_profile.py [--mode pymta-split|pymta] [--count 2000] [--sessions 20]
       [--size 5120] [--top 25] [--keep] [--idle] [--accept-only] [--no-spy | --perf | --strace]
Needs root, /usr/sbin/smtp-source and py-spy in the venv (pip install py-spy).
C{--idle} includes samples of idle threads (time spent waiting);
C{--accept-only} sets concurrencylocal to 0 (the accept path alone);
C{--no-spy} only prints each process's user and system CPU seconds (the
least disturbed figure); C{--perf} records with C{perf record -g} and
prints the kernel's share per symbol and per system call; C{--strace}
prints the count and time of each file-system call (slows everything;
the environment variable C{PYMTA_STRACE_CALLS} replaces the traced calls,
e.g. C{trace=write,sendmsg}).  Under a saturated CPU the times include
waits for a core (a system call is where a thread is preempted), so
compare counts, and CPU seconds, rather than these times.
Every mode prints the user/system CPU split per process.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import PymtaServer, _label, _tree, count_new, proc_stat, tree_cpu_times  # noqa: E402
from fsnoise import spread_tree  # noqa: E402
from smtpd_bench import smtp_source  # noqa: E402

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def summarise(path: str, top: int) -> str:
    """The C{top} frames by self samples and by inclusive samples in one collapsed-stack file."""
    selfs: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            selfs[frames[-1]] += n
            for frame in set(frames):
                incl[frame] += n
    out = [f"  {total} samples"]
    out.append("  self:")
    out += [f"    {n / total:6.1%}  {frame}" for frame, n in selfs.most_common(top)]
    out.append("  inclusive:")
    out += [f"    {n / total:6.1%}  {frame}" for frame, n in incl.most_common(top)]
    return "\n".join(out)


def summarise_strace(path: str) -> str:
    """Calls, total and mean time per system call (and per directory for openat with O_CREAT) in an strace -T file."""
    import re

    totals: dict[str, list[float]] = {}
    pattern = re.compile(r'^\d+\s+(\w+)\((.*)\)\s+=.*<([0-9.]+)>$')
    for line in open(path):
        m = pattern.match(line.strip())
        if not m:
            continue
        name, call_args, seconds = m.group(1), m.group(2), float(m.group(3))
        if name == "openat" and "O_CREAT" in call_args:
            where = call_args.split('"')[1] if '"' in call_args else "?"
            name = "openat(O_CREAT) " + os.path.basename(os.path.dirname(where))
        entry = totals.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    rows = sorted(totals.items(), key=lambda kv: -kv[1][1])
    return "\n".join(f"  {name:40s} {n:7d} calls {t:8.3f} s {1e6 * t / n:8.0f} us each" for name, (n, t) in rows)


def machine_cpu() -> list[int]:
    """The machine's CPU time so far (/proc/stat's first line: user, nice, system, idle, iowait, irq, softirq, ...), in ticks."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def machine_busy(before: list[int], after: list[int], seconds: float) -> str:
    """How busy every CPU of the machine was between two L{machine_cpu} readings, and on what."""
    ticks = [b - a for a, b in zip(before, after)]
    total = sum(ticks) or 1
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    parts = ", ".join(f"{name} {100 * t / total:.0f}%" for name, t in zip(names, ticks) if t)
    return f"  machine during the load ({seconds:.2f} s, {os.cpu_count()} CPUs): {parts}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="pymta-split", choices=["pymta-split", "pymta"])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=5120)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--idle", action="store_true")
    parser.add_argument("--gil", action="store_true",
                        help="py-spy samples only the thread holding the GIL (Python CPU time, not waits or preemption)")
    parser.add_argument("--perf", action="store_true", help="perf record -g the processes (kernel time) instead of py-spy")
    parser.add_argument("--strace", action="store_true", help="strace -f -T the file system calls instead of py-spy")
    parser.add_argument("--accept-only", action="store_true", help="no deliveries (concurrencylocal 0): the accept path alone")
    parser.add_argument("--no-spy", action="store_true", help="only the CPU split (user/system per process), no sampling")
    parser.add_argument("--control", action="append", default=[], metavar="NAME=VALUE",
                        help="write control/NAME with VALUE before starting (repeatable), e.g. queuesync=syncfs")
    args = parser.parse_args()
    base = spread_tree("pymta-perf-")
    server = PymtaServer(base, split=args.mode == "pymta-split")
    controls = dict(item.split("=", 1) for item in args.control)
    if args.accept_only:
        controls["concurrencylocal"] = "0"
    for name, value in controls.items():
        with open(os.path.join(server.root, "control", name), "w") as f:
            f.write(value + "\n")
    spies: list[tuple[str, str, subprocess.Popen]] = []
    try:
        server.start()
        time.sleep(1.0)  # the spawner starts with the first delivery channel use; give it a moment
        for pid in _tree(server.pids()):
            stat = proc_stat(pid)
            if stat is None:
                continue
            comm = stat[0]
            if args.no_spy or ("python" not in comm and "twistd" not in comm):
                continue
            label = _label(pid, comm)
            out = os.path.join(base, f"{label}.{pid}.txt")
            cmd = [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--output", out, "--rate", "200", "--nonblocking", "--threads"]
            if args.gil:
                cmd.append("--gil")
            if args.idle:
                cmd.append("--idle")
            if "spawner" in label:
                cmd.append("--subprocesses")  # the delivery children are forked after the spy attaches
            if args.strace:
                out = os.path.join(base, f"{label}.{pid}.strace")
                cmd = ["strace", "-f", "-T", "-qq", "-y", "-e", os.environ.get("PYMTA_STRACE_CALLS", "trace=openat,fsync,unlink,link,rename,ftruncate"), "-o", out, "-p", str(pid)]
            if args.perf:
                out = os.path.join(base, f"{label}.{pid}.perf")
                cmd = ["perf", "record", "-q", "-g", "-p", str(pid), "-o", out]
            spies.append((label, out, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(1.0)
        start = time.monotonic()
        machine_before = machine_cpu()
        accepted = smtp_source(server.port, args.count, args.sessions, args.size, server.rcpt)
        print(machine_busy(machine_before, machine_cpu(), accepted))
        deadline = time.monotonic() + 300
        while not args.accept_only and count_new(server.maildir) < args.count and time.monotonic() < deadline:
            time.sleep(0.02)
        delivered = time.monotonic() - start
        for label, user, system in tree_cpu_times(server.pids()):
            print(f"  {label:22s} user {user:6.2f} s  system {system:6.2f} s")
        print(f"{args.mode}: accepted {args.count / accepted:.0f} msg/s, delivered {count_new(server.maildir)}"
              f" at {args.count / delivered:.0f} msg/s")
    finally:
        for _, _, spy in spies:
            spy.send_signal(2)
        for _, _, spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        server.stop()
    for label, out, _ in spies:
        if out.endswith(".strace") and os.path.exists(out):
            print(f"== {label} ({os.path.basename(out)})")
            print(summarise_strace(out))
        elif out.endswith(".perf") and os.path.exists(out):
            report = subprocess.run(["perf", "report", "-i", out, "--no-children", "--stdio", "-g", "none",
                                     "--percent-limit", "0.7"], capture_output=True, text=True).stdout
            print(f"== {label} ({os.path.basename(out)})")
            print("\n".join(line for line in report.splitlines() if line and not line.startswith("#")))
            # which system calls the kernel time is spent in (inclusive)
            report = subprocess.run(["perf", "report", "-i", out, "--children", "--stdio", "-g", "none",
                                     "--percent-limit", "0.5"], capture_output=True, text=True).stdout
            print("  system calls (inclusive):")
            print("\n".join(line for line in report.splitlines() if "__x64_sys_" in line or "__do_sys_" in line))
        elif os.path.exists(out):
            print(f"== {label} ({os.path.basename(out)})")
            print(summarise(out, args.top))
    if args.keep:
        print(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
