#!/usr/bin/env python3
"""
RETR throughput of pymta-pop3d on a 1,000-message Maildir, beside Dovecot's
pop3 on the same Maildir in the same run (when Dovecot is installed and we
are root).

    .venv/bin/python benchmarks/pop3.py [--messages 1000] [--rounds 3] [--sessions 4]

Servers measured (each a real process on 127.0.0.1):
  - pymta, system user: C{twistd -n pymta-pop3d} as root; the mailbox is
    read by a per-session child running as the mailbox uid (root spawner);
  - pymta, virtual user: the same with C{twistd --uid/--gid} set to the
    mailbox owner (C{nobody}), so the Maildir is read in-process;
  - dovecot: C{dovecot -F} with a passwd-file and a static userdb of the
    same uid (the mail process runs as that uid).
As non-root only pymta (virtual user = the invoking uid) runs.

Workloads per server, best of C{--rounds}:
  - sequential: one session, RETR 1..N one at a time (what poplib does);
  - pipelined: C{--sessions} parallel sessions, each sending every RETR at
    once and reading the replies (what fetchers with PIPELINING do).
Printed: messages/s and MB/s of message data received, and pymta/dovecot
ratios.  The Maildir is never changed (no DELE); messages start in cur/.
"""

from __future__ import annotations

import argparse
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pymta.passwdfile import set_password  # noqa: E402

BENCH_USER = "nobody"  # as root: the mailbox owner (twistd --uid needs a passwd entry)
TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_messages(maildir: str, count: int, seed: int = 1) -> int:
    """C{count} messages in cur/, 1-64 KiB (log-uniform), some dot-lines; returns total bytes."""
    rng = random.Random(seed)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    total = 0
    base = time.time() - 10 * count
    for i in range(count):
        size = int(2 ** rng.uniform(10, 16))
        lines = [
            f"From: sender{i}@example.org",
            "To: bench@example.org",
            f"Subject: benchmark message {i}",
            f"Message-ID: <{i}.bench@example.org>",
            "",
        ]
        body = 0
        while body < size:
            line = ("." if rng.random() < 0.02 else "") + "".join(rng.choice("abcdefghij klmnop") for _ in range(72))
            lines.append(line)
            body += len(line) + 1
        data = ("\n".join(lines) + "\n").encode()
        path = os.path.join(maildir, "cur", f"{1700000000 + i}.M{i}P1.bench:2,")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (base + i, base + i))
        total += len(data)
    return total


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(100).startswith(b"+OK"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}")


class Session:
    """A minimal POP3 client on a raw socket."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.line()  # greeting
        for command in (f"USER {user}", f"PASS {password}"):
            self.sock.sendall(command.encode() + b"\r\n")
            reply = self.line()
            if not reply.startswith(b"+OK"):
                raise RuntimeError(f"login failed: {reply!r}")
        self.sock.sendall(b"STAT\r\n")
        self.count = int(self.line().split()[1])

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def read_multiline(self, replies: int) -> int:
        """Read C{replies} multi-line replies; returns the octets received."""
        received = 0
        done = 0
        tail = b""
        data, self.buffer = self.buffer, b""
        while True:
            if data:
                received += len(data)
                window = tail + data
                done += window.count(b"\r\n.\r\n")
                tail = window[-4:]
                if done >= replies:
                    return received
            data = self.sock.recv(262144)
            if not data:
                raise RuntimeError("connection closed during RETR")

    def retr_sequential(self) -> int:
        total = 0
        for i in range(1, self.count + 1):
            self.sock.sendall(b"RETR %d\r\n" % i)
            total += self.read_multiline(1)
        return total

    def retr_pipelined(self) -> int:
        self.sock.sendall(b"".join(b"RETR %d\r\n" % i for i in range(1, self.count + 1)))
        return self.read_multiline(self.count)

    def quit(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.sock.close()


def measure(port: int, sessions: int, rounds: int, user: str, password: str) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    best_seq = None
    for _ in range(rounds):
        s = Session(port, user, password)
        start = time.perf_counter()
        octets = s.retr_sequential()
        elapsed = time.perf_counter() - start
        s.quit()
        rate = (s.count / elapsed, octets / elapsed / 1e6)
        if best_seq is None or rate[0] > best_seq[0]:
            best_seq = rate
    results["sequential"] = best_seq  # type: ignore[assignment]
    best_pipe = None
    for _ in range(rounds):
        clients = [Session(port, user, password) for _ in range(sessions)]
        totals = [0] * sessions
        errors: list[BaseException] = []

        def run(k: int) -> None:
            try:
                totals[k] = clients[k].retr_pipelined()
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(k,)) for k in range(sessions)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 5)
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        for c in clients:
            c.quit()
        messages = sum(c.count for c in clients)
        rate = (messages / elapsed, sum(totals) / elapsed / 1e6)
        if best_pipe is None or rate[0] > best_pipe[0]:
            best_pipe = rate
    results[f"pipelined x{sessions}"] = best_pipe  # type: ignore[assignment]
    return results


def start_pymta(root: str, port: int, drop_to: int | None) -> subprocess.Popen:
    argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", "--logfile=" + os.path.join(root, f"pymta-{port}.log")]
    if drop_to is not None:
        argv += ["--uid", str(drop_to), "--gid", str(drop_to)]
    argv += ["pymta-pop3d", "--root", root, "--listen", f"tcp:{port}:interface=127.0.0.1", "--allow-plaintext"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "pymta-pop3d")
    return proc


def start_dovecot(root: str, port: int, home: str, uid: int) -> subprocess.Popen | None:
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not os.path.exists(dovecot):
        return None
    run = os.path.join(root, "dovecot-run")
    os.makedirs(run, exist_ok=True)
    passwd = os.path.join(root, "dovecot-passwd")
    with open(passwd, "w") as f:
        f.write("bench:{PLAIN}benchpw::::::\n")
    conf = os.path.join(root, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(
            f"""protocols = pop3
listen = 127.0.0.1
base_dir = {run}
state_dir = {run}/state
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={home}
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
}}
pop3_uidl_format = %f
log_path = {root}/dovecot.log
"""
        )
    proc = subprocess.Popen([dovecot, "-F", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "dovecot")
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the temporary root")
    args = parser.parse_args(argv)
    is_root = os.geteuid() == 0
    uid = pwd.getpwnam(BENCH_USER).pw_uid if is_root else os.getuid()
    base = tempfile.mkdtemp(prefix="pymta-pop3-bench-")
    os.chmod(base, 0o755)
    root = os.path.join(base, "root")
    home = os.path.join(root, "home", "bench")
    maildir = os.path.join(home, "Maildir")
    total = make_messages(maildir, args.messages)
    set_password(os.path.join(root, "users", "passwd"), "bench", "benchpw", uid, uid, home, scheme="PLAIN")
    if is_root:
        for path, dirs, files in os.walk(home):
            os.chown(path, uid, uid)
            for name in files:
                os.chown(os.path.join(path, name), uid, uid)
        os.chmod(os.path.join(root, "users", "passwd"), 0o644)
    print(f"Maildir: {args.messages} messages, {total / 1e6:.1f} MB (LF), in {maildir}")
    servers: list[tuple[str, object]] = []
    if is_root:
        servers.append(("pymta (system user: child as uid)", lambda port: start_pymta(root, port, None)))
        servers.append(("pymta (virtual user: in-process)", lambda port: start_pymta(root, port, uid)))
        servers.append(("dovecot", lambda port: start_dovecot(root, port, home, uid)))
    else:
        servers.append(("pymta (virtual user: in-process)", lambda port: start_pymta(root, port, None)))
    table: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        for name, starter in servers:
            port = free_port()
            proc = starter(port)  # type: ignore[operator]
            if proc is None:
                print(f"{name}: not installed, skipped")
                continue
            try:
                table[name] = measure(port, args.sessions, args.rounds, "bench", "benchpw")
            finally:
                stop(proc)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"{'server':<36} {'workload':<14} {'msg/s':>9} {'MB/s':>8}")
    for name, results in table.items():
        for workload, (rate, mbps) in results.items():
            print(f"{name:<36} {workload:<14} {rate:>9.0f} {mbps:>8.1f}")
    if "dovecot" in table:
        for name, results in table.items():
            if name == "dovecot":
                continue
            for workload, (rate, _) in results.items():
                ratio = rate / table["dovecot"][workload][0]
                print(f"ratio {name} / dovecot, {workload}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
