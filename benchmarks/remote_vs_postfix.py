"""
Remote delivery, pymta beside Postfix in one run: queue -> smtp-sink.

    .venv/bin/python benchmarks/remote_vs_postfix.py [--cases messages,recipients] [--count 2000]
        [--recipients 1000] [--domains 100] [--sinks 4] [--rounds 1] [--seconds 300] [--profile]

Two loads, each run on pymta and on a private Postfix (tests/remote/postfix.py)
with the same bytes queued and every delivery held, then released:

- C{messages}: N messages (5 KB, one recipient each, all one domain) to one
  smtp-sink on 127.0.0.2; the time from the release until the sink has
  counted N messages, and messages/s.
- C{recipients}: one message to R recipients spread evenly over D domains;
  the domains are routed to S smtp-sinks on 127.0.0.2, 127.0.0.3, ...
  (domain i to sink i mod S); the time from the release until the queue is
  empty (the last recipient's delivery is in), checked against R
  recipients delivered.

Each MTA runs with its defaults for remote delivery: pymta's
concurrencyremote (20 when control/concurrencyremote is absent, and
C{pymta init} does not write it), Postfix's default_destination_concurrency_limit
(20, starting at initial_destination_concurrency 5) and its connection
cache.  Routes: pymta's control/smtproutes (C{:127.0.0.2:PORT}, or one line
per domain); Postfix's relayhost (C{[127.0.0.2]:PORT}) or a transport map.

Holding and releasing: pymta-send (its service, in a child process as
benchmarks/remote.py runs it) starts with control/concurrencyremote 0,
which holds remote deliveries; once the queue is loaded the file is
removed and the controls reloaded (what C{pymta ctl reload} does).  Postfix
accepts the mail over SMTP into its hold queue (C{check_client_access
static:HOLD}); the release is C{postsuper -H ALL} and C{postqueue -f}.

C{--profile} runs pymta's timed window under cProfile and prints the
Python calls per message (or per recipient) and the functions called most.
The ratio column is pymta's rate over Postfix's (above 1: pymta is faster).
Bounded: each run stops after C{--seconds} (reported as incomplete).
Needs root (Postfix) and /usr/sbin/smtp-sink (benchmarks/remote_install_postfix.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, PROJECT)
sys.path.insert(0, HERE)

from remote import MESSAGE, SMTP_SINK, queued  # noqa: E402
from results import print_result  # noqa: E402

SENDER = "a@example.org"
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


# -- the loads ------------------------------------------------------------

def domain(i: int) -> str:
    return f"d{i}.sink.example"


def load(case: str, count: int, recipients: int, domains: int) -> list[tuple[str, list[str]]]:
    """The envelopes queued in each MTA: (sender, recipients) per message."""
    if case == "messages":
        return [(SENDER, [f"rcpt{i}@sink.example"]) for i in range(count)]
    return [(SENDER, [f"rcpt{i}@{domain(i % domains)}" for i in range(recipients)])]


def routes(case: str, sinks: list[tuple[str, int]], domains: int) -> dict[str, tuple[str, int]]:
    """Domain -> sink; '' is every domain (the one-relay route)."""
    if case == "messages":
        return {"": sinks[0]}
    return {domain(i): sinks[i % len(sinks)] for i in range(domains)}


# -- smtp-sinks -------------------------------------------------------------

def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Sinks:
    """C{count} smtp-sinks on 127.0.0.2, 127.0.0.3, ...; C{messages()} is their total of messages so far."""

    def __init__(self, work: str, count: int) -> None:
        self.addresses = [(f"127.0.0.{2 + i}", 0) for i in range(count)]
        self.addresses = [(a, free_port(a)) for a, _ in self.addresses]
        self.outputs = [os.path.join(work, f"sink{i}.out") for i in range(count)]
        self.procs: list[subprocess.Popen] = []
        for (address, port), output in zip(self.addresses, self.outputs):
            with open(output, "wb") as out:  # a file: a pipe would fill up and stall the sink
                self.procs.append(subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody", f"{address}:{port}", "1024"],
                                                   stdout=out, stderr=subprocess.STDOUT))
        for address, port in self.addresses:
            for _ in range(200):
                try:
                    socket.create_connection((address, port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def messages(self) -> int:
        return self.counted(b"mesg")

    def sessions(self) -> int:
        """SMTP sessions the sinks have seen end (each connection counts once)."""
        return self.counted(b"sess")

    def counted(self, counter: bytes) -> int:
        """The sum over the sinks of the last C{counter}=N each has printed (smtp-sink -c)."""
        total = 0
        for output in self.outputs:
            with open(output, "rb") as f:
                f.seek(max(0, os.path.getsize(output) - 100))
                numbers = re.findall(re.escape(counter) + rb"=(\d+)", f.read())
            total += int(numbers[-1]) if numbers else 0
        return total

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


# -- pymta ------------------------------------------------------------------

def pymta_child(spec: dict) -> dict:
    """One pymta run, in a child process (a reactor runs once per process)."""
    from twisted.internet import reactor, task

    from pymta.control import ControlReader
    from pymta.queue.disk import QueueDisk
    from pymta.queue.layout import QueueLayout
    from pymta.queue.scheduler import Scheduler
    from pymta.queue.service import build_send_service
    from pymta.queue.store import Queue
    from pymta.remote.channel import RemoteChannel

    work = tempfile.mkdtemp(prefix="pymta-bench-rvp-")
    root = os.path.join(work, "root")
    control = os.path.join(root, "control")
    os.makedirs(control)
    lines = [f"{d}:{a}:{p}" for d, (a, p) in spec["routes"].items()]
    for name, value in (("me", "bench.example"), ("smtproutes", "\n".join(lines)), ("concurrencyremote", "0")):
        with open(os.path.join(control, name), "w") as f:
            f.write(value + "\n")
    layout = QueueLayout.for_root(root)
    layout.create()
    queue = Queue(QueueDisk.plain(layout))
    for sender, rcpts in spec["envelopes"]:
        pending = queue.begin("from network", os.getuid(), os.getpid())
        pending.write(MESSAGE)
        pending.commit(sender, rcpts)
    reader = ControlReader(root)
    channel = RemoteChannel(root, reader, reactor=reactor)
    service, _ = build_send_service(root, reader, {"remote": channel}, reactor, signals=False)
    scheduler = next(s for s in service if isinstance(s, Scheduler))
    sinks_out = spec["sink_outputs"]
    result: dict = {"mta": "pymta"}
    state: dict = {}
    profiler = None
    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile()

    def sink_messages() -> int:
        total = 0
        for output in sinks_out:
            with open(output, "rb") as f:
                f.seek(max(0, os.path.getsize(output) - 100))
                numbers = re.findall(rb"mesg=(\d+)", f.read())
            total += int(numbers[-1]) if numbers else 0
        return total

    def poll() -> None:
        if "start" not in state:
            counts = scheduler.counts()
            if counts["todo"] == 0 and counts["messages"] >= len(spec["envelopes"]):
                os.unlink(os.path.join(control, "concurrencyremote"))  # the default: released
                if profiler is not None:
                    profiler.enable()
                state["start"] = time.perf_counter()
                scheduler.reload()
            return
        elapsed = time.perf_counter() - state["start"]
        done = sink_messages() >= spec["target"] if spec["case"] == "messages" else queued(root) == 0
        if done or elapsed > spec["seconds"]:
            if profiler is not None:
                profiler.disable()
            result.update(seconds=elapsed, complete=done, delivered=scheduler.stats["delivered"],
                          deferred=scheduler.stats["deferred"], failed=scheduler.stats["failed"])
            looping.stop()
            service.stopService().addBoth(lambda _: reactor.stop())

    service.startService()
    looping = task.LoopingCall(poll)
    looping.start(0.01, now=False)
    reactor.run()
    if profiler is not None:
        result["profile"] = profile_summary(profiler, spec["per"])
    shutil.rmtree(work, ignore_errors=True)
    return result


def profile_summary(profiler, per: int) -> dict:  # type: ignore[no-untyped-def]
    import pstats

    stats = pstats.Stats(profiler)
    rows = []
    builtin = 0
    for (path, line, name), (_, ncalls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if path == "~":  # built-in functions: counted in the total, not listed
            builtin += ncalls
            continue
        rows.append((ncalls, f"{os.path.relpath(path, PROJECT) if path.startswith(PROJECT) else os.path.basename(path)}"
                     f":{line}({name})", cumulative))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows) + builtin
    return {"calls_per_unit": total / per, "builtin_per_unit": builtin / per, "top": [(round(n / per, 2), where) for n, where, _ in rows[:25]]}


def run_pymta(case: str, envelopes: list, route_map: dict, sinks: Sinks, target: int, seconds: float,
              profile: bool, per: int) -> dict:
    spec = {"case": case, "envelopes": envelopes, "routes": route_map, "sink_outputs": sinks.outputs,
            "target": target, "seconds": seconds, "profile": profile, "per": per}
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--pymta-child"], input=json.dumps(spec),
                           capture_output=True, text=True, timeout=seconds + 300)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise SystemExit(f"pymta run failed:\n{child.stderr[-3000:]}")
    return json.loads(lines[-1])


# -- Postfix ----------------------------------------------------------------

class PostfixRelay:
    """A private Postfix that holds what it accepts and relays it to the sinks once released."""

    def __init__(self, base: str, route_map: dict[str, tuple[str, int]]) -> None:
        from smtpd_bench import free_port as free_local_port
        from tests.remote.postfix import PostfixInstance
        from tests.smtpd.tlsutil import cert_pem

        self.port = free_local_port()
        key, cert = cert_pem("relay.example.test").split(b"-----BEGIN CERTIFICATE-----")
        self.inst = PostfixInstance(base, self.port, b"-----BEGIN CERTIFICATE-----" + cert, key)
        overrides = {"smtpd_client_restrictions": "check_client_access static:HOLD",
                     "smtpd_client_connection_count_limit": "0"}
        if "" in route_map:
            address, port = route_map[""]
            overrides["relayhost"] = f"[{address}]:{port}"
        else:
            transport = os.path.join(self.inst.base, "transport")
            with open(transport, "w") as f:
                f.writelines(f"{d} smtp:[{a}]:{p}\n" for d, (a, p) in route_map.items())
            overrides["transport_maps"] = f"texthash:{transport}"
        self.inst.override(overrides)

    def files(self, *queues: str) -> int:
        return sum(len(files) for q in queues for _, _, files in os.walk(os.path.join(self.inst.base, "queue", q)))

    def queue_mail(self, envelopes: list[tuple[str, list[str]]]) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as smtp:
            for sender, rcpts in envelopes:
                smtp.sendmail(sender, rcpts, MESSAGE.replace(b"\n", b"\r\n"))
        deadline = time.monotonic() + 120
        while self.files("hold") < len(envelopes) or self.files("maildrop", "incoming", "active"):
            if time.monotonic() > deadline:
                raise SystemExit("postfix did not put the mail on hold")
            time.sleep(0.02)

    def release(self) -> None:
        for command in (["/usr/sbin/postsuper", "-c", self.inst.base, "-H", "ALL"],
                        ["/usr/sbin/postqueue", "-c", self.inst.base, "-f"]):
            subprocess.run(command, check=True, capture_output=True, timeout=60)

    def sent(self) -> int:
        return self.inst.maillog().count("status=sent")


def run_postfix(case: str, envelopes: list, route_map: dict, sinks: Sinks, target: int, seconds: float,
                work: str) -> dict:
    relay = PostfixRelay(os.path.join(work, "postfix"), route_map)
    relay.inst.start()
    try:
        relay.queue_mail(envelopes)
        start = time.perf_counter()
        relay.release()
        while True:
            elapsed = time.perf_counter() - start
            done = sinks.messages() >= target if case == "messages" else relay.files(*POSTFIX_QUEUES) == 0
            if done or elapsed > seconds:
                break
            time.sleep(0.01)
        deadline = time.monotonic() + 10  # postlogd writes the last lines a moment later
        want = sum(len(r) for _, r in envelopes)
        while relay.sent() < want and time.monotonic() < deadline and done:
            time.sleep(0.05)
        return {"mta": "postfix", "seconds": elapsed, "complete": done, "delivered": relay.sent(),
                "deferred": relay.inst.maillog().count("status=deferred")}
    finally:
        relay.inst.stop()


# -- one invocation ---------------------------------------------------------

@dataclass
class Row:
    case: str
    mta: str
    seconds: float
    rate: float
    unit: str
    note: str


def one_case(case: str, mta: str, args: argparse.Namespace) -> tuple[Row, dict]:
    envelopes = load(case, args.count, args.recipients, args.domains)
    wanted = sum(len(r) for _, r in envelopes)
    work = tempfile.mkdtemp(prefix="pymta-bench-rvp-")
    os.chmod(work, 0o755)
    sinks = Sinks(work, 1 if case == "messages" else args.sinks)
    try:
        route_map = routes(case, sinks.addresses, args.domains)
        target = len(envelopes)  # messages case: one sink message per queued message
        if mta == "pymta":
            r = run_pymta(case, envelopes, route_map, sinks, target, args.seconds, args.profile,
                          len(envelopes) if case == "messages" else wanted)
        else:
            r = run_postfix(case, envelopes, route_map, sinks, target, args.seconds, work)
        r["sink_messages"] = sinks.messages()
        r["sink_sessions"] = sinks.sessions()
    finally:
        sinks.stop()
        shutil.rmtree(work, ignore_errors=True)
    units = len(envelopes) if case == "messages" else wanted
    got = r["sink_messages"] if case == "messages" else r["delivered"]  # the sink counts first; logs follow
    note = "" if r["complete"] and got >= wanted else \
        f"incomplete: {got}/{wanted} delivered, {r.get('deferred', 0)} deferrals"
    note = (note + f" sink: {r['sink_messages']} transactions, {r['sink_sessions']} connections").strip()
    unit = "msgs/s" if case == "messages" else "rcpts/s"
    return Row(case, mta, r["seconds"], units / r["seconds"], unit, note), r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="messages,recipients")
    parser.add_argument("--mtas", default="pymta,postfix")
    parser.add_argument("--count", type=int, default=2000, help="messages case: messages queued")
    parser.add_argument("--recipients", type=int, default=1000, help="recipients case: recipients of the message")
    parser.add_argument("--domains", type=int, default=100, help="recipients case: domains they are spread over")
    parser.add_argument("--sinks", type=int, default=4, help="recipients case: smtp-sinks the domains go to")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=300.0, help="bound of one run")
    parser.add_argument("--profile", action="store_true", help="pymta's Python calls per message (cProfile)")
    parser.add_argument("--pymta-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pymta_child:
        print(json.dumps(pymta_child(json.load(sys.stdin))))
        return 0
    mtas = args.mtas.split(",")
    if "postfix" in mtas:
        from tests.remote.postfix import available

        reason = available()
        if reason is not None:
            print(f"postfix cannot run here: {reason}", file=sys.stderr)
            return 1
    if not os.path.exists(SMTP_SINK):
        print("smtp-sink not found: run benchmarks/remote_install_postfix.sh as root", file=sys.stderr)
        return 1
    print(f"messages: {args.count} x 5 KB to one sink; recipients: 1 message to {args.recipients} recipients "
          f"over {args.domains} domains, {args.sinks} sinks; {args.rounds} round(s), medians")
    print(f"{'case':>10} {'mta':>8} {'seconds':>8} {'rate':>9} {'unit':>7} {'ratio':>6}  note")
    for case in args.cases.split(","):
        results: dict[str, list[Row]] = {m: [] for m in mtas}
        for _ in range(args.rounds):
            for mta in mtas:  # interleaved: the machine's drift hits both alike
                row, raw = one_case(case, mta, args)
                results[mta].append(row)
                if "profile" in raw:
                    p = raw["profile"]
                    per = "message" if case == "messages" else "recipient"
                    print(f"  pymta python calls per {per}: {p['calls_per_unit']:.0f} "
                          f"({p['builtin_per_unit']:.0f} of them built-ins); the most called functions:")
                    for calls, where in p["top"]:
                        print(f"    {calls:>9} {where}")
        medians = {m: sorted(rows, key=lambda r: r.seconds)[len(rows) // 2] for m, rows in results.items()}
        for mta, row in medians.items():
            ratio = ""
            if mta == "pymta" and "postfix" in medians:
                ratio = f"{row.rate / medians['postfix'].rate:.2f}"
            print(f"{row.case:>10} {row.mta:>8} {row.seconds:>8.2f} {row.rate:>9.1f} {row.unit:>7} {ratio:>6}  "
                  f"{row.note}")
        if "pymta" in medians:
            # issue 19's loads: messages/s to smtp-sink; the time to the last of R recipients over D domains
            load = "sink" if case == "messages" else f"remote{args.recipients}x{args.domains}"
            metric = "msgs_per_s" if case == "messages" else "rcpts_per_s"
            rate = {mta: None if "incomplete" in row.note else row.rate for mta, row in medians.items()}
            print_result(load, metric, rate["pymta"], rate.get("postfix"), goal="1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
