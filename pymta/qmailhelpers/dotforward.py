# -*- test-case-name: tests.qmailhelpers.test_dotforward -*-
"""
C{dot-forward [-nN] file [file ...]}: follow the sendmail-style
instructions of a user's C{.forward}, as qmail's dot-forward does from
the first line of a C{.qmail} file or of C{control/defaultdelivery}::

    |dot-forward .forward
    ./Maildir/

The first named file that exists and is not empty is used; none: exit 0
(the next line delivers).  A file that is group- or world-writable is
refused as a C{.qmail} file is (111, C{Uh-oh: .forward file is
writable.}); one that cannot be read gives 111.

Each line (C{#} lines skipped) lists targets (L{pymta.forwarding.entries}):

- an address: the message (C{$DTLINE} first) is queued to it from
  C{$NEWSENDER}, once for all addresses, printing C{dot-forward: qp N};
  an address without a domain is completed as qmail-inject completes it;
- C{USER}, C{\\USER} or C{USER@HOST} (this delivery's C{$USER} and
  C{$HOST}, any case): direct delivery: dot-forward exits 0 instead of 99
  so the next lines of the C{.qmail} file deliver to the mailbox;
- C{|command}: run with the message preceded by C{$UFLINE}, C{$RPLINE},
  C{$DTLINE} (L{pymta.qmailhelpers.forwardprogram}), as the user;
- C{/file}: the message appended to that mbox, with the same three lines
  and locking as a C{.qmail} C{/file} line (pymta's addition: qmail's
  dot-forward has no file deliveries).  C{:include:} is refused (111).

Programs run first, then files, then the forward; the exit code is 99
(skip the rest of the C{.qmail} file), or 0 with direct delivery.  C{-n}
prints the instructions (C{&address}, C{|command}, C{/file}, and
C{# direct delivery} for the mailbox) and reads no message.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field
from typing import Mapping

from pymta.qmailhelpers.common import OK, PERMANENT, STOP, TEMPORARY, Fatal, reason, required, run_helper, say

__all__ = ["main", "USAGE", "ForwardFile", "read_forward_file", "parse_forward"]

USAGE = "usage: dot-forward [ -nN ] file [ file ... ]"
MAX_FILE = 1 << 20


@dataclass
class ForwardFile:
    """What a .forward says: direct delivery or not, addresses (completed), programs, files."""

    direct: bool = False
    addresses: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_forward_file(name: str) -> bytes | None:
    """The content of C{name}, or None when it is absent or empty; L{Fatal} (111) when it cannot be used."""
    from pymta.forwarding.guardedfile import NOT_REGULAR, OPEN, READ, TOO_LARGE, WRITABLE, UnusableFile, read_guarded

    try:
        data = read_guarded(name, MAX_FILE)
    except UnusableFile as e:
        if e.kind == OPEN and e.error is not None and e.error.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        why = reason(e.error) if e.error is not None else ""
        raise Fatal(TEMPORARY, {
            OPEN: f"unable to open {name}: {why}",
            NOT_REGULAR: f"{name} is not a regular file",
            WRITABLE: f"Uh-oh: {os.path.basename(name)} file is writable. (#4.7.0)",
            READ: f"unable to read {name}: {why}",
            TOO_LARGE: f"{name} is larger than {MAX_FILE} bytes",
        }[e.kind]) from None
    return data or None


def parse_forward(data: bytes, name: str, user: str, host: str, root: str) -> ForwardFile:
    """The instructions of a .forward; L{Fatal} (111) for a line that cannot be read."""
    from pymta.forwarding.entries import ADDRESS, FILE, PROGRAM, EntryError, parse_list, qualify
    from pymta.qmailhelpers.rewriting import root_rewriter

    result = ForwardFile()
    me = {user.lower(), f"{user}@{host}".lower()}
    for lineno, line in enumerate(data.decode("utf-8", "surrogateescape").split("\n"), 1):
        if line.startswith("#") or not line.strip():
            continue
        try:
            for entry in parse_list(line):
                if entry.kind == ADDRESS:
                    if entry.value.lower() in me:
                        result.direct = True
                    else:
                        address = qualify(entry.value, root_rewriter(root))
                        if address not in result.addresses:
                            result.addresses.append(address)
                elif entry.kind == PROGRAM:
                    result.programs.append(entry.value)
                elif entry.kind == FILE:
                    result.files.append(entry.value)
                else:
                    raise EntryError(":include: is not supported in .forward files")
        except EntryError as e:
            raise Fatal(TEMPORARY, f"{name}:{lineno}: {e}") from None
    return result


def _deliver_file(path: str, environb: Mapping[bytes, bytes]) -> None:
    from pymta.local.envelope import read_lines
    from pymta.local.errors import DeliveryFailure
    from pymta.local.mbox import deliver_mbox

    head = b"".join(environb.get(name, b"") for name in (b"UFLINE", b"RPLINE", b"DTLINE"))
    try:
        os.lseek(0, 0, os.SEEK_SET)
        deliver_mbox(path, path, head, read_lines(0))
    except DeliveryFailure as e:
        raise Fatal(PERMANENT if e.status == "D" else TEMPORARY, e.text) from None
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to read the message: {reason(e)}") from None


def _dotforward(argv: list[str], environ: Mapping[str, str]) -> int:
    from pymta.qmailhelpers.forwardprogram import run_target_program
    from pymta.qmailhelpers.requeue import queue_root, requeue

    deliver = True
    while argv and argv[0].startswith("-") and argv[0] != "-":
        option, argv = argv[0], argv[1:]
        if option == "--":
            break
        for letter in option[1:]:
            if letter not in "nN":
                raise Fatal(PERMANENT, USAGE)
            deliver = letter == "N"
    if not argv:
        raise Fatal(PERMANENT, USAGE)
    for name in argv:
        data = read_forward_file(name)
        if data is not None:
            break
    else:
        return OK
    root = queue_root(environ)
    plan = parse_forward(data, name, required(environ, "USER"), required(environ, "HOST"), root)
    if not deliver:
        lines = [f"|{c}" for c in plan.programs] + plan.files + [f"&{a}" for a in plan.addresses]
        sys.stdout.write("".join(line + "\n" for line in lines) + ("# direct delivery\n" if plan.direct else ""))
        return OK
    environb = {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape") for k, v in environ.items()}
    for command in plan.programs:
        run_target_program(command, environb)
    for path in plan.files:
        for variable in ("UFLINE", "RPLINE", "DTLINE"):
            required(environ, variable)
        _deliver_file(path, environb)
    if plan.addresses:
        sender = required(environ, "NEWSENDER")
        dtline = required(environ, "DTLINE")
        try:
            os.lseek(0, 0, os.SEEK_SET)
        except OSError as e:
            raise Fatal(TEMPORARY, f"unable to rewind: {reason(e)}") from None
        qp = requeue(root, dtline, sender, plan.addresses)
        say("dot-forward", f"qp {qp}")
    return OK if plan.direct else STOP


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return run_helper("dot-forward", lambda: _dotforward(argv, env))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
