# -*- test-case-name: tests.serialmail.test_run -*-
"""
One serialmail run from the command line, for any courier: the part of
maildirsmtp (and maildirqmtp) that is not the protocol.

C{PROGRAM [--root DIR] [--port N] [-t LIFETIME] [-B] MAILDIR PREFIX HOST
[HELOHOST]}: lock the Maildir, read the controls (C{me} is the default
HELOHOST; C{timeoutconnect}, C{timeoutremote}, and the bounce controls),
hand over (L{pymta.serialmail.handover.hand_over}), print one line per
message on standard error, exit.

The lock is an exclusive C{flock} on the Maildir directory itself, taken
without waiting: a second run while one is under way (cron starting the
next before the last ended) prints that and exits 0, so no message is
ever handed over by two runs at once.  Exit 0 when nothing is left for the
prefix; 111 when something is (deferred, refused and kept with C{-B}, or
not tried because the server could not be reached) or on temporary
trouble; 100 for a usage error.
"""

from __future__ import annotations

import fcntl
import getopt
import os
import sys
import time
from typing import Any, Callable, TextIO

from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure

from pymta.control import ControlError, Controls, default_root, load_controls
from pymta.serialmail.bounce import Bouncer
from pymta.serialmail.courier import Courier
from pymta.serialmail.handover import RunResult, hand_over

__all__ = ["run_serial", "lock_maildir", "DEFAULT_LIFETIME", "EXIT_USAGE", "EXIT_TEMPORARY"]

#: serialmail's maildirsmtp: messages held two weeks are bounced
DEFAULT_LIFETIME = 1209600
EXIT_USAGE = 100
EXIT_TEMPORARY = 111

#: make_courier(reactor, controls, host, port, helohost)
MakeCourier = Callable[[Any, Controls, str, int, str], Courier]


def lock_maildir(maildir: str) -> int | None:
    """An open descriptor holding C{maildir}'s exclusive lock, or None when another run holds it."""
    fd = os.open(maildir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def run_serial(program: str, argv: list[str], make_courier: MakeCourier, default_port: int,
               stderr: TextIO | None = None, reactor: Any = None) -> int:
    """Parse C{argv} and run once; returns the exit code."""
    err = stderr if stderr is not None else sys.stderr
    usage = (f"{program}: usage: pymta {program} [--root DIR] [--port N] [-t LIFETIME] [-B] "
             "MAILDIR PREFIX HOST [HELOHOST]\n")

    def say(line: str) -> None:
        err.write(f"{program}: {line}\n")
        err.flush()

    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(usage.split(": ", 1)[1])
        return 0
    try:
        opts, args = getopt.gnu_getopt(argv, "t:B", ["root=", "port="])
        options = dict(opts)
        lifetime = float(options.get("-t", DEFAULT_LIFETIME))
        port = int(options.get("--port", default_port))
    except (getopt.GetoptError, ValueError) as e:
        err.write(f"{program}: {e}\n{usage}")
        return EXIT_USAGE
    if len(args) not in (3, 4) or not 0 < port < 65536:
        err.write(usage)
        return EXIT_USAGE
    maildir, prefix, host = args[0], args[1], args[2]
    root = options.get("--root") or default_root()
    try:
        lock = lock_maildir(maildir)
    except OSError as e:
        say(f"fatal: unable to open {maildir}: {e.strerror}")
        return EXIT_TEMPORARY
    if lock is None:
        say(f"info: another run is handing over {maildir}; nothing to do")
        return 0
    try:
        try:
            controls = load_controls(root)
        except (ControlError, OSError) as e:
            say(f"fatal: unable to read the controls of {root}: {e}")
            return EXIT_TEMPORARY
        helohost = args[3] if len(args) == 4 else (controls.me or "")
        if not helohost:
            say("fatal: no HELOHOST given and control/me is empty")
            return EXIT_TEMPORARY
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        courier = make_courier(reactor, controls, host, port, helohost)
        bounce = None if "-B" in options else Bouncer(root, controls, f"pymta {program}", time.time)
        run = hand_over(maildir, prefix, courier, say, time.time, lifetime, bounce)
        result = _run_reactor(reactor, run)
        if isinstance(result, Failure):
            say(f"fatal: {result.getErrorMessage()}")
            return EXIT_TEMPORARY
        return 0 if result.left == 0 else EXIT_TEMPORARY
    finally:
        os.close(lock)


def _run_reactor(reactor: Any, run: Any) -> RunResult | Failure:
    """Run the reactor until C{run} (a coroutine) ends; its result or its Failure."""
    outcome: list[RunResult | Failure] = []

    def start() -> None:
        d = ensureDeferred(run)
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run(installSignalHandlers=True)
    return outcome[0]
