"""
Big messages (issue 19): Postfix's smtp-source sends a few 10 MB and 50 MB
messages over one session into C{twistd pymta} (a root from C{pymta init},
its queue sync left at the default, C{fsync}) and into a private Postfix,
both delivering to a local Maildir, in the same run:

 - MB/s accepted: megabytes sent / smtp-source's run time (the last C{250}
   after the last DATA);
 - MB/s delivered: megabytes / time from the first connection until the
   last message is in the Maildir's new/;
 - peak RSS and PSS of each server's whole process tree (sampled every
   0.2 s): flat in the message size when the server streams.

Each load is bounded (count x size, default 20 x 10 MB and 5 x 50 MB); both
servers' size limits are raised above the size (pymta's control/databytes,
Postfix's message_size_limit: pymta init's 35 MB
refuses 50 MB, Postfix's 10,240,000 bytes refuses 10 MB).  The
servers are the ones benchmarks/end_to_end_bench.py runs (same classes,
same Maildir delivery); the ratios pymta/Postfix are printed per load.

Usage (as root; installs Debian's postfix when smtp-source or Postfix is missing):
       .venv/bin/python benchmarks/bigmsg.py [--loads 20x10,5x50] [--sessions 1] [--rounds 1]
       [--only pymta,postfix] [--settle-us 60]
A load is COUNTxMB (MB = 2**20 bytes); smoke it with --loads 3x1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from end_to_end_bench import PostfixServer, PymtaServer, make_run_dir, make_server, measure, wanted_servers  # noqa: E402
from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from results import print_result  # noqa: E402
from smtpd_bench import SMTP_SOURCE  # noqa: E402

MB = 1 << 20
TARGETS = ("pymta", "postfix")
#: the biggest load one invocation accepts (count x size): bounded disk and time
MAX_BYTES = 2 * 1024 * MB


def parse_load(text: str) -> tuple[int, int]:
    """C{"20x10"} -> (20 messages, 10 MB each in bytes)."""
    count, _, mb = text.lower().partition("x")
    load = int(count), int(float(mb) * MB)
    if load[0] < 1 or load[1] < 1 or load[0] * load[1] > MAX_BYTES:
        raise SystemExit(f"bigmsg: load {text!r} out of bounds (1 .. {MAX_BYTES // MB} MB in all)")
    return load


def raise_size_limit(server: object, size: int) -> None:
    """Raise the server's size limit (pymta init's databytes, Postfix's message_size_limit) above C{size}."""
    limit = 2 * size + MB  # smtp-source's lines and the headers on top of -l
    if isinstance(server, PymtaServer):
        with open(os.path.join(server.root, "control", "databytes"), "w") as f:
            f.write(f"{limit}\n")
        return
    assert isinstance(server, PostfixServer)
    main_cf = os.path.join(server.inst.base, "main.cf")
    with open(main_cf) as f:
        kept = [line for line in f if line.split("=", 1)[0].strip() not in ("message_size_limit", "mailbox_size_limit")]
    with open(main_cf, "w") as f:
        f.writelines(kept)
        # local(8) refuses to start when its mailbox limit (default 51,200,000) is below the message limit
        f.write(f"message_size_limit = {limit}\nmailbox_size_limit = {limit}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", default="20x10,5x50", help="comma-separated COUNTxMB")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default="pymta,postfix")
    parser.add_argument("--queuesync", choices=("syncfs", "fsync"), default="fsync",
                        help="pymta's control/queuesync (default fsync: what pymta init configures)")
    parser.add_argument("--deliver-timeout", type=float, default=600)
    parser.add_argument("--settle-us", type=float, default=0)
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("bigmsg: needs root (pymta's mail uid, the Postfix instance)")
    if not os.path.exists(SMTP_SOURCE) or not os.path.exists("/usr/sbin/postfix"):
        subprocess.run(["sh", os.path.join(HERE, "remote_install_postfix.sh")], check=True)
    loads = [parse_load(text) for text in args.loads.split(",") if text]
    wanted = wanted_servers("bigmsg", args.only, TARGETS)

    base = spread_tree("pymta-bigmsg-bench-")
    results: dict[tuple[str, int, int], list[dict]] = {}
    print(f"smtp-source -s {args.sessions}, loads {args.loads} (count x MB), delivery to one local Maildir; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; pymta's queuesync {args.queuesync}",
          flush=True)
    try:
        for rnd in range(args.rounds):
            for count, size in loads:
                for name in rotated(wanted, rnd):
                    where = os.path.join(base, f"{name}-{count}x{size}-{rnd}")
                    make_run_dir(where)
                    server = make_server(name, where, args.queuesync, None)
                    raise_size_limit(server, size)
                    if args.settle_us:
                        create_us, _ = wait_for_cheap_creates(where, args.settle_us)
                    else:
                        create_us = create_cost_us(where)
                    r = measure(server, count, args.sessions, size, args.deliver_timeout)
                    mb = count * size / MB
                    r["accepted_mbs"] = r["accepted"] * size / MB
                    r["delivered_mbs"] = mb / r["seconds"]
                    results.setdefault((name, count, size), []).append(r)
                    print(f"round {rnd + 1} {name:8s} {count} x {size / MB:g} MB: accepted {r['accepted_mbs']:6.1f} MB/s"
                          f"  delivered {r['delivered_mbs']:6.1f} MB/s  peak RSS {r['peak_mb']:6.1f} MB"
                          f"  PSS {r['peak_pss_mb']:6.1f} MB  CPU {r['cpu_split']} s  file create {create_us:.0f} us",
                          flush=True)
                    shutil.rmtree(where, ignore_errors=True)  # a load's Maildir can be a GB
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def median(name: str, count: int, size: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, count, size)])

    print(f"\nmedian of {args.rounds} round(s):")
    print(f"  {'load':10s} {'server':8s} {'accepted MB/s':>13s} {'delivered MB/s':>14s} {'peak RSS MB':>11s}")
    for count, size in loads:
        load = f"{count}x{size / MB:g}MB"
        for name in wanted:
            print(f"  {load:10s} {name:8s} {median(name, count, size, 'accepted_mbs'):13.1f}"
                  f" {median(name, count, size, 'delivered_mbs'):14.1f} {median(name, count, size, 'peak_mb'):11.1f}")
        if "pymta" in wanted and "postfix" in wanted:
            ratio = {key: median("pymta", count, size, key) / median("postfix", count, size, key)
                     for key in ("accepted_mbs", "delivered_mbs", "peak_mb")}
            print(f"  {load:10s} ratio pymta/postfix: accepted {ratio['accepted_mbs']:.2f}, "
                  f"delivered {ratio['delivered_mbs']:.2f}, peak RSS {ratio['peak_mb']:.2f}")
            for key, metric, better, goal in (("accepted_mbs", "accepted_MB_per_s", True, "1.0"),
                                              ("delivered_mbs", "delivered_MB_per_s", True, "1.0"),
                                              ("peak_mb", "peak_RSS_MB", False, "-")):
                print_result(f"{count}x{size / MB:g}MB", metric, median("pymta", count, size, key),
                             median("postfix", count, size, key), higher_is_better=better, goal=goal)
    if "pymta" in wanted and len(loads) > 1:
        # flat in the message size: the peak RSS of the biggest messages over that of the smallest
        small, big = min(loads, key=lambda load: load[1]), max(loads, key=lambda load: load[1])
        flat = {name: median(name, *big, "peak_mb") / median(name, *small, "peak_mb") for name in wanted}
        print_result("bigmsg", "peak_RSS_big_over_small", flat["pymta"], flat.get("postfix"),
                     higher_is_better=False, goal="pymta<=1.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
