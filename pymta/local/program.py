# -*- test-case-name: tests.local.test_program -*-
"""
Program delivery (docs/internals.md, 'Mbox, Maildir and program delivery'): C{/bin/sh -c
COMMAND} in the user's home
with the message on stdin, the qmail-command environment, stdout and stderr
collected (capped) for the delivery report.

Exit status 0 continues, 99 succeeds and stops the .qmail file, 100, 64, 65,
70, 76, 77, 78 and 112 fail permanently, anything else defers; a program
killed by a signal defers with C{Aack, child crashed. (#4.3.0)}.

Besides qmail's variables the environment holds C{PATH} with the directory
of the .qmail helper programs first (L{pymta.qmailhelpers.BIN_DIR}, so
C{|preline procmail} finds C{preline}), C{PYMTA_PYTHON} (this interpreter,
which those helpers run on) and C{PYMTA_ROOT} when the spawner has it (the
root whose queue C{forward} and C{pymta inject} use).  C{QMAILQUEUE} names
L{QMAILQUEUE_PROGRAM} (qmail-queue's interface into pymta's queue), so
qmail's own add-ons (dot-forward, fastforward) queue through pymta, unless
this process's environment already names a program there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from pymta.local.errors import DeliveryFailure
from pymta.qmailhelpers import BIN_DIR

__all__ = [
    "ProgramContext",
    "program_environment",
    "base_environment",
    "run_program",
    "PERMANENT_EXITS",
    "OUTPUT_CAP",
    "QMAILQUEUE_PROGRAM",
]

PERMANENT_EXITS = frozenset({64, 65, 70, 76, 77, 78, 100, 112})
OUTPUT_CAP = 4000
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
#: the program delivery programs find in C{QMAILQUEUE} (docs/dotqmail.md, 'The environment')
QMAILQUEUE_PROGRAM = os.path.join(BIN_DIR, "qmail-queue")


@dataclass(frozen=True)
class ProgramContext:
    """What qmail-local knows about one delivery, for the environment of its programs."""

    sender: str
    newsender: str
    local: str
    domain: str
    user: str
    home: str
    ext: str
    default: str | None
    dtline: str
    rpline: str
    ufline: str


def _shorter_hosts(host: str) -> list[str]:
    """HOST2..HOST4: the host with its last 1, 2, 3 dot-components removed (stops shrinking)."""
    out = []
    current = host
    for _ in range(3):
        dot = current.rfind(".")
        if dot != -1:
            current = current[:dot]
        out.append(current)
    return out


def _ext_tails(ext: str) -> list[str]:
    """EXT2..EXT4: EXT after its 1st, 2nd, 3rd C{-}; empty when there are fewer."""
    out = []
    current: str | None = ext
    for _ in range(3):
        if current is not None:
            dash = current.find("-")
            current = current[dash + 1 :] if dash != -1 else None
        out.append(current if current is not None else "")
    return out


def base_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """
    What every delivery program gets besides qmail's variables: C{PATH}
    (the helpers' directory, then C{environ}'s PATH), C{PYMTA_PYTHON},
    C{QMAILQUEUE} (C{environ}'s, else L{QMAILQUEUE_PROGRAM}), and
    C{PYMTA_ROOT} when C{environ} (default: this process's) has it.
    """
    source = os.environ if environ is None else environ
    inherited = source.get("PATH", DEFAULT_PATH)
    if BIN_DIR not in inherited.split(":"):
        inherited = f"{BIN_DIR}:{inherited}"
    env = {"PATH": inherited, "PYMTA_PYTHON": sys.executable, "QMAILQUEUE": source.get("QMAILQUEUE") or QMAILQUEUE_PROGRAM}
    if source.get("PYMTA_ROOT"):
        env["PYMTA_ROOT"] = source["PYMTA_ROOT"]
    return env


def program_environment(ctx: ProgramContext, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a delivery program: C{base} (default L{base_environment}) plus qmail's variables."""
    env = base_environment() if base is None else dict(base)
    host2, host3, host4 = _shorter_hosts(ctx.domain)
    ext2, ext3, ext4 = _ext_tails(ctx.ext)
    env.update(
        SENDER=ctx.sender,
        NEWSENDER=ctx.newsender,
        RECIPIENT=f"{ctx.local}@{ctx.domain}",
        USER=ctx.user,
        HOME=ctx.home,
        HOST=ctx.domain,
        HOST2=host2,
        HOST3=host3,
        HOST4=host4,
        LOCAL=ctx.local,
        EXT=ctx.ext,
        EXT2=ext2,
        EXT3=ext3,
        EXT4=ext4,
        DTLINE=ctx.dtline,
        RPLINE=ctx.rpline,
        UFLINE=ctx.ufline,
    )
    if ctx.default is not None:
        env["DEFAULT"] = ctx.default
    else:
        env.pop("DEFAULT", None)
    return env


@dataclass(frozen=True)
class ProgramOutcome:
    """C{stop} is True after exit 99; C{output} is what the program printed (capped)."""

    stop: bool
    output: bytes


def run_program(command: str, home: str, message_fd: int, env: dict[str, str], cap: int = OUTPUT_CAP) -> ProgramOutcome:
    """
    Run one program line.  Returns a L{ProgramOutcome} on exit 0 or 99;
    raises L{DeliveryFailure} (with the program's output as text) otherwise.
    """
    os.lseek(message_fd, 0, os.SEEK_SET)
    try:
        child = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=message_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=home,
            env=env,
            close_fds=True,
            restore_signals=True,
        )
    except OSError as e:
        raise DeliveryFailure.temporary(f"Unable to run /bin/sh: {e.strerror}. (#4.3.0)") from None
    assert child.stdout is not None
    kept = bytearray()
    fd = child.stdout.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        if len(kept) <= cap:
            kept += data[: cap + 1 - len(kept)]
    child.stdout.close()
    code = child.wait()
    output = bytes(kept)
    if code < 0:
        raise DeliveryFailure.temporary(_text(output) + "Aack, child crashed. (#4.3.0)")
    if code in (0, 99):
        return ProgramOutcome(stop=code == 99, output=output)
    if code in PERMANENT_EXITS:
        if output:
            raise DeliveryFailure.permanent(_text(output), verbatim=True)
        raise DeliveryFailure.permanent(f"Program exited with status {code}. (#5.0.0)")
    if output:
        raise DeliveryFailure.temporary(_text(output), verbatim=True)
    raise DeliveryFailure.temporary(f"Program exited with status {code}. (#4.0.0)")


def _text(output: bytes) -> str:
    return output.decode("utf-8", "replace")
