"""
Crash safety under a longer load: real C{twistd pymta-send} and
C{twistd pymta-smtpd} on a fresh root take messages from concurrent smtplib
clients while they are SIGKILLed at seeded random moments and restarted
(the same machinery as tests/test_crash_under_load.py, more of it).

Prints the counts: acknowledged (the client saw 250 after DATA), delivered,
lost (acknowledged but not in the Maildir: must be 0), duplicates (one
SMTP transaction delivered twice, and why), deliveries without a 250.
Exit status 1 when anything acknowledged was lost or a duplicate or an
unacknowledged delivery has no crash to explain it.

Usage: python benchmarks/crash_load.py [--messages 2000] [--limit 10000] [--clients 10]
       [--size 600] [--kills 30] [--gap 0.2,1.5] [--down 0,0.5] [--seed N] [--all-in-one] [--keep]
Run as root for the real layout (queue owned by the mail uid, deliveries
dropped to it); as another user everything runs as that user.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pymta.queue.cleaner import GRACE  # noqa: E402
from tests.loadtools import CrashRig, LoadClients, tally  # noqa: E402


def pair(text: str) -> tuple[float, float]:
    low, high = (float(x) for x in text.split(","))
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"need LOW,HIGH seconds with 0 <= LOW <= HIGH, not {text!r}")
    return low, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="at least this many messages")
    parser.add_argument("--limit", type=int, default=10000,
                        help="never more than this many (the load goes on while crashes remain)")
    parser.add_argument("--clients", type=int, default=10, help="concurrent SMTP clients")
    parser.add_argument("--size", type=int, default=600, help="approximate body size of each message in bytes")
    parser.add_argument("--kills", type=int, default=30, help="crashes (send, smtpd or both, seeded choice)")
    parser.add_argument("--gap", type=pair, default=(0.2, 1.5), help="seconds of running before each crash (LOW,HIGH)")
    parser.add_argument("--down", type=pair, default=(0.0, 0.5), help="seconds the victims stay down (LOW,HIGH)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--send-seconds", type=float, default=900, help="bound on the sending phase")
    parser.add_argument("--drain-seconds", type=float, default=300, help="bound on emptying the queue afterwards")
    parser.add_argument("--all-in-one", action="store_true",
                        help="one twistd pymta process (smtpd and queue together) instead of pymta-send + pymta-smtpd")
    parser.add_argument("--keep", action="store_true", help="keep the root and the daemon logs")
    parser.add_argument("--queuesync", choices=("fsync", "syncfs"), default="fsync", help="pymta's control/queuesync")
    args = parser.parse_args()

    started = time.monotonic()
    rig = CrashRig(args.seed, all_in_one=args.all_in_one, queuesync=args.queuesync)
    print(f"seed {args.seed}, root {rig.base}, smtpd on 127.0.0.1:{rig.port}", flush=True)
    try:
        rig.start()
        clients = LoadClients(rig.port, args.messages, args.clients, limit=args.limit, size=args.size)
        clients.start(time.monotonic() + args.send_seconds)
        rig.run_chaos(clients, args.kills, gap=args.gap, down=args.down, started=started)
        clients.join()
        sent = time.monotonic()
        remaining = rig.drain(args.drain_seconds)
        drained = time.monotonic()
        result = tally(rig.maildir, clients, rig.send.log, rig.events)
        leftovers = rig.crash_leftovers()
        # pymta-send's crash cleaner removes them at its next start once they are older than its grace time
        qstat = rig.clean_leftovers(GRACE, args.drain_seconds)
        lost_after_cleaning = tally(rig.maildir, clients).lost
        troubles = rig.log_troubles()
    finally:
        rig.stop()
    send_kills = sum(1 for e in rig.events if "send" in e.victims)
    smtpd_kills = sum(1 for e in rig.events if "smtpd" in e.victims)
    if args.all_in_one:
        print(f"kills: {len(rig.events)} (twistd pymta)")
    else:
        print(f"kills: {len(rig.events)} (pymta-send {send_kills}, pymta-smtpd {smtpd_kills})")
    print(f"messages sent: {clients.taken}, SMTP attempts: {clients.attempts}, client errors: {dict(clients.failures)}")
    print(f"acknowledged: {result.acknowledged}")
    print(f"delivered: {result.delivered_files} files")
    print(f"lost: {len(result.lost)}{' ' + str(result.lost[:20]) if result.lost else ''}")
    print(f"duplicates: {result.duplicate_count} {result.duplicate_causes}")
    print(f"delivered without 250: {len(result.unacknowledged_deliveries)} (session broken by a kill: "
          f"{result.unacknowledged_in_crash}, without a kill: {len(result.unacknowledged_without_crash)})")
    print(f"messages arriving more than once (client retries + duplicates): {result.messages_delivered_twice}")
    print(f"committed messages left in the queue: {remaining}; crash leftovers (never committed): {leftovers}; "
          f"qstat after pymta-send restarted cleanly: {qstat}")
    print(f"sending {sent - started:.1f} s ({result.acknowledged / max(sent - started, 1e-9):.0f} acknowledged/s "
          f"under crashes), draining {drained - sent:.1f} s")
    print(f"internal errors in the daemons' logs: {len(troubles)}")
    for line in troubles:
        print(f"  {line}")
    if args.keep:
        print(f"kept {rig.base} (send.log, smtpd.log, r/)")
    else:
        rig.remove()
    bad = (result.lost or lost_after_cleaning or remaining or qstat != (0, 0)
           or result.duplicate_causes.get("unexplained") or result.unacknowledged_without_crash
           or result.untagged_files or troubles)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
