"""
One message to R local recipients (issue 19, default 1,000): the time from
the C{250} after DATA to the R-th delivery, for C{twistd pymta} (a root
from C{pymta init}, queuesync C{fsync}) and a private Postfix, in the same
run.

Every recipient is its own address delivering into its own Maildir, so both
servers make R Maildir deliveries of the same bytes:

 - pymta: C{alice-fNNNN@bench.example}, each with a C{.qmail-fNNNN} file in
   alice's home holding C{./fanout/NNNN/} (the C{+alice-} wildcard that
   C{pymta init} writes into users/assign leads C{alice-EXT} there); the
   deliveries run with C{control/concurrencylocal}'s default;
 - Postfix: C{fNNNN@local.test}, each an alias to its own
   C{.../fanout/NNNN/} Maildir delivered by local(8) (the same Maildir
   code as C{home_mailbox}), with Postfix's default concurrency for it
   (one recipient a delivery, so the limit is local(8)'s process limit).

The Maildirs exist before the run on both sides.  The message (5 KB) is
sent by one SMTP session; the clock starts when its C{250} arrives and
stops when the last of the R Maildirs has a file in C{new/}.  Each
server's own recipient limit is 1,000 a message, hence the bound.

Usage (as root): .venv/bin/python benchmarks/local_fanout.py [--recipients 1000] [--rounds 1]
       [--only pymta,postfix] [--settle-us 60] [--seconds 300]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import smtplib
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from end_to_end_bench import MAIL_UID, PostfixServer, PymtaServer, USER, make_run_dir, wanted_servers  # noqa: E402
from fsnoise import create_cost_us, rotated, spread_tree, wait_for_cheap_creates  # noqa: E402
from results import print_result  # noqa: E402

TARGETS = ("pymta", "postfix")
#: smtpd's limit on both servers (pymta's max_recipients, Postfix's smtpd_recipient_limit)
MAX_RECIPIENTS = 1000


def make_maildirs(parent: str, count: int, uid: int, gid: int) -> list[str]:
    """C{count} empty Maildirs C{parent/NNNN/} owned by uid:gid."""
    out = []
    for i in range(count):
        maildir = os.path.join(parent, f"{i:04d}")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub), mode=0o700)
        for path in (maildir, *(os.path.join(maildir, sub) for sub in ("tmp", "new", "cur"))):
            os.chown(path, uid, gid)
        out.append(maildir)
    os.chown(parent, uid, gid)
    return out


def fan_out_pymta(server: PymtaServer, count: int) -> tuple[list[str], list[str]]:
    """Recipients and Maildirs: alice-fNNNN, a .qmail-fNNNN file each pointing at its own Maildir."""
    home = os.path.join(server.root, "home", USER)
    maildirs = make_maildirs(os.path.join(home, "fanout"), count, MAIL_UID, MAIL_UID)
    for i in range(count):
        path = os.path.join(home, f".qmail-f{i:04d}")
        with open(path, "w") as f:
            f.write(f"./fanout/{i:04d}/\n")
        os.chmod(path, 0o644)
        os.chown(path, MAIL_UID, MAIL_UID)
    return [f"{USER}-f{i:04d}@bench.example" for i in range(count)], maildirs


def fan_out_postfix(server: PostfixServer, count: int) -> tuple[list[str], list[str]]:
    """Recipients and Maildirs: fNNNN@local.test, an alias each to its own Maildir (written as nobody)."""
    nobody = pwd.getpwnam("nobody")
    parent = os.path.join(server.inst.base, "fanout")
    maildirs = make_maildirs(parent, count, nobody.pw_uid, nobody.pw_gid)
    with open(os.path.join(server.inst.base, "aliases"), "w") as f:
        f.writelines(f"f{i:04d} {maildir}/\n" for i, maildir in enumerate(maildirs))
    return [f"f{i:04d}@local.test" for i in range(count)], maildirs


def message(rcpt_count: int, size: int = 5120) -> bytes:
    head = (f"From: sender@example.org\r\nTo: undisclosed-recipients:;\r\nSubject: fan-out to {rcpt_count}\r\n"
            "Message-ID: <fanout@example.org>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    return head + line * max(0, (size - len(head)) // len(line))


def measure(server: "PymtaServer | PostfixServer", recipients: list[str], maildirs: list[str],
            seconds: float) -> dict:
    """Sends the one message; seconds from its 250 to the last Maildir's first file."""
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=120) as smtp:
            refused = smtp.sendmail("sender@example.org", recipients, message(len(recipients)))
            accepted_at = time.monotonic()
        if refused:
            raise SystemExit(f"{server.name}: {len(refused)} recipients refused, e.g. {next(iter(refused.items()))}")
        pending = [os.path.join(maildir, "new") for maildir in maildirs]
        last = accepted_at
        while pending and time.monotonic() - accepted_at < seconds:
            now = time.monotonic()
            still = [new for new in pending if not os.listdir(new)]
            if len(still) < len(pending):
                last = now
            pending = still
            time.sleep(0.005)
    finally:
        server.stop()
    if pending:
        raise SystemExit(f"{server.name}: {len(pending)} of {len(maildirs)} Maildirs still empty after {seconds} s")
    return {"seconds": last - accepted_at}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(TARGETS))
    parser.add_argument("--seconds", type=float, default=300, help="bound of one run's deliveries")
    parser.add_argument("--settle-us", type=float, default=0)
    args = parser.parse_args()
    if os.getuid() != 0:
        raise SystemExit("local_fanout: needs root (pymta's mail uid, the Postfix instance)")
    if not 1 <= args.recipients <= MAX_RECIPIENTS:
        raise SystemExit(f"local_fanout: --recipients must be 1 to {MAX_RECIPIENTS}")
    wanted = wanted_servers("local_fanout", args.only, TARGETS)

    base = spread_tree("pymta-fanout-bench-")
    results: dict[str, list[float]] = {name: [] for name in wanted}
    print(f"one 5 KB message to {args.recipients} local recipients, each its own Maildir; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; pymta's queuesync fsync", flush=True)
    try:
        for rnd in range(args.rounds):
            for name in rotated(wanted, rnd):
                where = os.path.join(base, f"{name}-{rnd}")
                make_run_dir(where)
                server: PymtaServer | PostfixServer
                if name == "postfix":
                    server = PostfixServer(where)
                    recipients, maildirs = fan_out_postfix(server, args.recipients)
                else:
                    server = PymtaServer(where, split=False, queuesync="fsync")
                    recipients, maildirs = fan_out_pymta(server, args.recipients)
                create_us = (wait_for_cheap_creates(where, args.settle_us)[0] if args.settle_us
                             else create_cost_us(where))
                r = measure(server, recipients, maildirs, args.seconds)
                results[name].append(r["seconds"])
                print(f"round {rnd + 1} {name:8s} last delivery {r['seconds']:.3f} s after the 250"
                      f"  ({args.recipients / r['seconds']:.0f} deliveries/s)  file create {create_us:.0f} us",
                      flush=True)
                shutil.rmtree(where, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    median = {name: statistics.median(times) for name, times in results.items()}
    print(f"\nmedian of {args.rounds} round(s): " + ", ".join(f"{name} {t:.3f} s" for name, t in median.items()))
    if "pymta" in median:
        print_result(f"local{args.recipients}", "last_delivery_s", median["pymta"], median.get("postfix"),
                     higher_is_better=False, goal="1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
