# -*- test-case-name: tests.qmailhelpers.test_fastforward -*-
"""
C{fastforward [-nNpPdD] aliases}: forward the message according to the
aliases compiled by C{pymta newaliases} (L{pymta.forwarding.database}),
as qmail's fastforward does from C{~alias/.qmail-default}::

    | fastforward -d /var/pymta/etc/aliases.idx

Options (the last of a pair wins):

- C{-d}: the recipient is C{$DEFAULT@$HOST} (C{$EXT@$HOST} when C{DEFAULT}
  is not set); C{-D} (default): C{$RECIPIENT};
- C{-p}: pass through: exit 0 when no alias matches (the next line of the
  C{.qmail} file gets the message) and 99 after forwarding; C{-P}
  (default): bounce when no alias matches, exit 0 after forwarding;
- C{-n}: print what would be done (C{|program}, C{&address}, a
  C{?sender} line before addresses sent with an owner's sender) and read
  no message; C{-N} (default): do it.

The programs run first, in order (L{pymta.qmailhelpers.forwardprogram});
then the message (C{$DTLINE} first) is queued once per envelope sender:
C{$NEWSENDER}, or an alias's owner address, printing C{fastforward: qp N}
for each.  Exit codes: 100 when no alias matches (C{Sorry, no mailbox
here by that name. (#5.1.1)}), for a usage error or outside a delivery;
111 when the aliases or an C{:include:} file cannot be read; a failing
program's or the queue's 100 or 111.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

from pymta.qmailhelpers.common import OK, PERMANENT, STOP, TEMPORARY, Fatal, required, run_helper, say

__all__ = ["main", "USAGE", "NO_ALIAS_TEXT", "FastforwardOptions", "parse_arguments"]

USAGE = "usage: fastforward [ -nNpPdD ] aliases"
NO_ALIAS_TEXT = "Sorry, no mailbox here by that name. (#5.1.1)"


@dataclass(frozen=True)
class FastforwardOptions:
    deliver: bool
    passthrough: bool
    use_default: bool
    database: str


def parse_arguments(argv: list[str]) -> FastforwardOptions:
    """The options and database path of C{argv}; L{Fatal} (100, usage) when they are wrong."""
    flags = {"n": False, "p": False, "d": False}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        if argv[i] == "--":
            i += 1
            break
        for letter in argv[i][1:]:
            if letter.lower() not in flags:
                raise Fatal(PERMANENT, USAGE)
            flags[letter.lower()] = letter.islower()
        i += 1
    if len(argv) - i != 1:
        raise Fatal(PERMANENT, USAGE)
    return FastforwardOptions(not flags["n"], flags["p"], flags["d"], argv[i])


def _recipient(options: FastforwardOptions, environ: Mapping[str, str]) -> str:
    if not options.use_default:
        return required(environ, "RECIPIENT")
    local = environ.get("DEFAULT", environ.get("EXT"))
    if local is None:
        raise Fatal(PERMANENT, "DEFAULT and EXT not set")
    return f"{local}@{required(environ, 'HOST')}"


def looks_like_cdb(path: str) -> bool:
    """Whether C{path} has a cdb's header (256 slot tables, each inside the file), as fastforward's aliases.cdb has."""
    import struct

    try:
        with open(path, "rb") as f:
            header = f.read(2048)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(header) < 2048:
        return False
    slots = struct.unpack("<512I", header)
    return all(2048 <= slots[i] and slots[i] + 8 * slots[i + 1] <= size for i in range(0, 512, 2))


def original_fastforward(path: str) -> str | None:
    """The first C{fastforward} on C{path} that is not pymta's own (Debian's, say), or None."""
    from pymta.qmailhelpers import BIN_DIR

    ours = os.path.realpath(BIN_DIR)
    for directory in path.split(os.pathsep):
        if not directory or os.path.realpath(directory) == ours:
            continue
        candidate = os.path.join(directory, "fastforward")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _fastforward(argv: list[str], environ: Mapping[str, str]) -> int:
    from pymta.forwarding.database import DatabaseError, read_database
    from pymta.forwarding.expand import ExpandError, expand
    from pymta.forwarding.includefile import IncludeError, read_include
    from pymta.qmailhelpers.forwardprogram import run_target_program
    from pymta.qmailhelpers.requeue import queue_root, requeue
    from pymta.qmailhelpers.rewriting import root_rewriter

    options = parse_arguments(argv)
    recipient = _recipient(options, environ)
    sender = environ.get("NEWSENDER", environ.get("SENDER"))
    if sender is None:
        if options.deliver:
            raise Fatal(PERMANENT, "NEWSENDER not set")
        sender = "sender@-n"  # -n by hand: any sender that is not a bounce's
    try:
        db = read_database(options.database)
    except OSError as e:
        raise Fatal(TEMPORARY, f"unable to read {options.database}: {e.strerror}") from None
    except DatabaseError as e:
        original = original_fastforward(environ.get("PATH", "")) if looks_like_cdb(options.database) else None
        if original is not None:  # fastforward's own aliases.cdb: its own program reads it (docs/dotqmail.md)
            os.execve(original, ["fastforward", *argv], dict(environ))
        raise Fatal(TEMPORARY, str(e)) from None
    root = queue_root(environ)
    try:
        plan = expand(db, recipient, sender, lambda path: read_include(path, root_rewriter(root)))
    except (IncludeError, ExpandError) as e:
        raise Fatal(TEMPORARY, str(e)) from None
    if plan is None:
        if options.passthrough:
            return OK
        sys.stderr.write(NO_ALIAS_TEXT + "\n")
        return PERMANENT
    if not options.deliver:
        for command in plan.programs:
            sys.stdout.write(f"|{command}\n")
        for envelope, addresses in plan.forwards.items():
            if envelope != sender:
                sys.stdout.write(f"?{envelope}\n")
            sys.stdout.writelines(f"&{address}\n" for address in addresses)
        return OK
    dtline = required(environ, "DTLINE")
    environb = {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape") for k, v in environ.items()}
    for command in plan.programs:
        run_target_program(command, environb)
    for envelope, addresses in plan.forwards.items():
        try:
            os.lseek(0, 0, os.SEEK_SET)
        except OSError as e:
            raise Fatal(TEMPORARY, f"unable to rewind: {e.strerror}") from None
        qp = requeue(root, dtline, envelope, addresses)
        say("fastforward", f"qp {qp}")
    return STOP if options.passthrough else OK


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    return run_helper("fastforward", lambda: _fastforward(argv, env))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
