# -*- test-case-name: tests.cli.test_sendmail -*-
"""
C{pymta sendmail} / C{pymta-sendmail} (and a C{sendmail}, C{mailq} or
C{newaliases} symlink to it): the sendmail interface programs expect, on
top of L{pymta.inject}, as qmail's sendmail wrapper (see docs/internals.md, 'The sendmail wrapper').

- C{-t}: recipients from the header B{and} the arguments (C{inject -H});
  without C{-t} only the arguments (C{inject -a}).  No recipients at all:
  the message is queued for nobody and so discarded, exit 0, as qmail does.
- C{-f addr} / C{-faddr} / C{-r addr}: envelope sender (C{<addr>} and
  C{<>} accepted too); also the default C{From:} (C{QMAILUSER}/C{QMAILHOST}
  from the address).  C{-F name}: the
  full name of the default C{From:}.  Unlike qmail, C{-F} is kept when
  C{-f} is also given.
- C{-bm} (default): send.  C{-bp} or invoked as C{mailq}: the queue listing
  (C{pymta qread}).  C{-bs}: an SMTP session on standard input/output
  served by pymta's SMTP protocol, allowed to relay, no size limit
  (L{pymta.inject.smtpsession}).  C{-bi} or invoked as
  C{newaliases}: qmail's message, exit 69.  Other C{-b} modes: usage.
- C{-q} (the cron habit): run the queue now, as C{pymta ctl doqueue}
  (L{pymta.cli.queuerun}).  C{-q30m} (a daemon's queue interval) is refused:
  pymta-send runs its own schedule.  C{-qRdomain}/C{-qSsender} need the
  queue selectors of C{pymta ctl retry} (L{pymta.cli.queuerun} says which).
- Accepted and ignored: C{-i}, C{-oi}, any C{-o}X (C{-odi}, C{-oem},
  C{-oQ/dir}), C{-v}, C{-x}, C{-m}, C{-U}, C{-G}, C{-n}, C{-eX}, C{-B type},
  C{-p proto}, C{-N dsn}, C{-R ret}, C{-V envid}, C{-L label}, C{-h hops},
  C{-O opt}, C{-C file}, C{-X log}, C{-E}/C{-J} (with an optional attached
  argument).  Input is always read to its end: a line with a single dot is
  just data.  CRLF line ends are accepted and stored as LF.
- C{--root DIR} before the sendmail flags selects the pymta root (default
  C{$PYMTA_ROOT}, else C{/var/pymta}).

Exit codes are sendmail's (sysexits): 0 queued, 64 usage, 65 unparsable
address, 69 refused permanently / unsupported mode, 73 the queue cannot
store the message (disk full, trouble creating its files), 74 input read
error, 75 other temporary failures (try again), 78 unusable control files.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, Mapping, TextIO

from pymta.control import default_root
from pymta.inject.message import (
    CONFIG,
    DATA,
    PERMANENT,
    READ,
    RECIP_ARGS,
    RECIP_BOTH,
    TEMPORARY,
    USAGE,
    InjectError,
    InjectOptions,
)
from pymta.inject.submit import Enqueue, inject

__all__ = ["main", "parse_sendmail_arguments", "SendmailRequest", "EXIT_CODES"]

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78

EXIT_CODES = {
    USAGE: EX_USAGE,
    DATA: EX_DATAERR,
    PERMANENT: EX_UNAVAILABLE,
    TEMPORARY: EX_TEMPFAIL,
    READ: EX_IOERR,
    CONFIG: EX_CONFIG,
}

# qmail-queue exit codes with a more precise sysexits meaning
_QUEUE_EXITS = {53: EX_CANTCREAT, 61: EX_CANTCREAT, 62: EX_CANTCREAT, 63: EX_CANTCREAT, 64: EX_CANTCREAT,
                65: EX_CANTCREAT, 66: EX_CANTCREAT, 54: EX_IOERR}

USAGE_LINE = "usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"

# flags taking an argument (attached or the next word), all ignored except f, F, r, b
_IGNORED_WITH_ARGUMENT = frozenset("eBpoNRVLhOCX")
_WITH_ARGUMENT = frozenset("fFrb") | _IGNORED_WITH_ARGUMENT
_IGNORED_FLAGS = set("vimxUGn")
_OPTIONAL_ATTACHED = set("EJ")


class SendmailRequest:
    """What the command line asks for."""

    def __init__(self) -> None:
        self.mode = "m"  # m send, p list queue, s smtp session, i newaliases, q run the queue
        self.header_recipients = False
        self.sender: str | None = None
        self.full_name: str | None = None
        self.root: str | None = None
        self.recipients: list[str] = []
        self.queue_run: str | None = None  # -q's attached text ("" for a plain -q)


def _usage(detail: str) -> InjectError:
    return InjectError(detail, USAGE)


def parse_sendmail_arguments(argv: list[str]) -> SendmailRequest:
    """Parse sendmail's flags (POSIX getopt style); raises L{InjectError} (usage)."""
    request = SendmailRequest()
    args = list(argv)
    while args and args[0].startswith("--root"):
        word = args.pop(0)
        if word.startswith("--root="):
            request.root = word[len("--root=") :]
        elif word == "--root" and args:
            request.root = args.pop(0)
        else:
            raise _usage(f"bad option {word}")
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            i += 1
            break
        if not word.startswith("-") or word == "-":
            break
        j = 1
        while j < len(word):
            letter = word[j]
            if letter in _OPTIONAL_ATTACHED:
                break  # the rest of this word is its argument
            if letter in _WITH_ARGUMENT:
                value = word[j + 1 :]
                if not value:
                    i += 1
                    if i >= len(args):
                        raise _usage(f"option -{letter} needs an argument")
                    value = args[i]
                _apply(request, letter, value)
                break
            if letter == "q":
                request.mode = "q"
                request.queue_run = word[j + 1 :]
                break  # the rest of this word is -q's argument
            if letter == "t":
                request.header_recipients = True
            elif letter in _IGNORED_FLAGS:
                pass
            else:
                raise _usage(f"unknown option -{letter}")
            j += 1
        i += 1
    request.recipients = args[i:]
    return request


def _apply(request: SendmailRequest, letter: str, value: str) -> None:
    if letter in ("f", "r"):
        # programs often pass -f '<addr>' or -f '<>': the brackets are not part of the address
        stripped = value.strip()
        if stripped.startswith("<") and stripped.endswith(">"):
            value = stripped[1:-1]
        request.sender = value
    elif letter == "F":
        request.full_name = value
    elif letter == "b":
        mode = value[:1]
        if mode not in ("m", "p", "s", "i"):
            raise _usage(f"unsupported mode -b{value}")
        request.mode = mode
    # everything else in _IGNORED_WITH_ARGUMENT: accepted, no effect


def sender_environment(env: Mapping[str, str], sender: str | None, full_name: str | None) -> dict[str, str]:
    """
    The environment inject sees: with a sender, the default From's user and
    host come from it (and stale name/host variables are dropped); C{-F}
    sets the full name.
    """
    result = dict(env)
    if sender is not None:
        for name in ("QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"):
            result.pop(name, None)
        at = sender.rfind("@")
        if at == -1:
            result["QMAILUSER"] = sender
        else:
            result["QMAILUSER"] = sender[:at]
            result["QMAILHOST"] = sender[at + 1 :]
    if full_name is not None:
        result["MAILNAME"] = full_name
    return result


def exit_code(error: InjectError) -> int:
    """sendmail's exit code (sysexits) for a failed injection."""
    if error.kind == TEMPORARY and error.queue_exit in _QUEUE_EXITS:
        return _QUEUE_EXITS[error.queue_exit]
    return EXIT_CODES.get(error.kind, EX_TEMPFAIL)


def _program_name(progname: str | None) -> str:
    name = os.path.basename(progname or "sendmail")
    return name or "sendmail"


def _queue_listing(root: str | None, env: Mapping[str, str]) -> int:
    from pymta.cli import qread

    return int(qread.main(["--root", root or default_root(env)]) or 0)


def _smtp_session(name: str, root: str, err: TextIO) -> int:
    from pymta.inject.smtpsession import SessionUnavailable, run_smtp_session

    try:
        run_smtp_session(root)
    except SessionUnavailable as e:
        err.write(f"{name}: fatal: unable to run an SMTP session: {e}\n")
        return EX_TEMPFAIL
    return EX_OK


def main(
    argv: list[str],
    progname: str | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    enqueue: Enqueue | None = None,
) -> int:
    name = _program_name(progname)
    err = stderr or sys.stderr
    if argv[:1] == ["--help"]:
        (stdout or sys.stdout.buffer).write(f"{name}: {USAGE_LINE}\n".encode())
        return 0
    environment = os.environ if env is None else env
    if name == "newaliases":
        err.write(f"{name}: fatal: please use fastforward/newaliases instead "
                  "(pymta newaliases compiles ROOT/etc/aliases)\n")
        return EX_UNAVAILABLE
    try:
        request = parse_sendmail_arguments(argv)
    except InjectError as e:
        err.write(f"{name}: {e.text}\n{name}: {USAGE_LINE}\n")
        return EX_USAGE
    if name == "mailq" or request.mode == "p":
        return _queue_listing(request.root, environment)
    if request.mode == "i":
        err.write(f"{name}: fatal: please use fastforward/newaliases instead "
                  "(pymta newaliases compiles ROOT/etc/aliases)\n")
        return EX_UNAVAILABLE
    if request.mode == "q":
        from pymta.cli.queuerun import run_queue

        return run_queue(name, request.root or default_root(environment), request.queue_run or "", err)
    if request.mode == "s":
        return _smtp_session(name, request.root or default_root(environment), err)
    options = InjectOptions(
        strategy=RECIP_BOTH if request.header_recipients else RECIP_ARGS,
        queue=True,
        sender=request.sender,
        arguments=request.recipients,
    )
    root = request.root or default_root(environment)
    try:
        inject(
            root,
            options,
            sender_environment(environment, request.sender, request.full_name),
            stdin or sys.stdin.buffer,
            stdout or sys.stdout.buffer,
            enqueue=enqueue,
        )
    except InjectError as e:
        err.write(f"{name}: fatal: {e.text}\n")
        err.flush()
        return exit_code(e)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], progname=sys.argv[0]))
