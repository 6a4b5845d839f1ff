# -*- test-case-name: tests.test_privileges -*-
"""
Dropping root after the privileged start, to the mail account of the root.

The mail account (L{mail_account}) is the owner of ROOT/queue; a root
without a queue (a POP3-only host) uses the owner of ROOT/run instead
(C{pymta init} makes both, owned by C{--mail-uid}).  A queue owned by root,
or no queue and a ROOT/run owned by root or missing, means there is no
account to become: a daemon started as root then refuses to run, with one
line naming the path and the fix (L{refuse_root_without_account}); the
network side never runs as root.

twistd's own C{--uid} needs a passwd entry for the uid (it calls
C{initgroups}); a mail uid from C{pymta init --mail-uid} need not have one.
L{RootDroppingService} therefore does the drop itself: its children's
C{privilegedStartService} runs as root (ports below 1024 are bound, the
local delivery spawner and the POP3 mailbox spawner are started and keep
root), then, in C{startService} and before any child starts, the process
becomes the mail account (L{pymta.privsep.become}: C{setgroups},
C{setgid}, C{setuid}, checked).  The privilege map of every pymta process
is in L{pymta.privsep}.
When twistd already dropped privileges (C{--uid}) or the process never had
root, nothing happens.

Before the drop, still as root, the service also prepares what the process
needs afterwards: imports from directories the account cannot enter
(L{pymta.heldimports}), twistd's log file (L{pymta.logrotation}) and pid
file (L{pymta.pidfile}).
"""

from __future__ import annotations

import os
import pwd
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from pymta.fdlimit import raise_open_files_limit
from pymta.fsaccess import Account
from pymta.privsep import PrivilegeDropError, become, is_root

__all__ = [
    "RootDroppingService",
    "drop_root",
    "mail_account",
    "PrivilegeError",
    "refuse_root_without_account",
]

log = Logger(namespace="pymta")


class PrivilegeError(Exception):
    """Started as root, but there is no non-root account to become."""


def mail_account(root: str) -> tuple[int, int]:
    """
    The uid and gid that own C{root}/queue, or without a queue C{root}/run;
    L{PrivilegeError} (naming the path and the fix) when that is root or
    neither exists.
    """
    queue = os.path.join(root, "queue")
    run = os.path.join(root, "run")
    try:
        st = os.stat(queue)
    except FileNotFoundError:
        try:
            st = os.stat(run)
        except FileNotFoundError:
            raise PrivilegeError(
                f"neither {queue} nor {run} exists, so there is no mail account to run as "
                f"(run 'pymta init {root} --mail-uid UID:GID', or for a POP3-only root: "
                f"mkdir {run} && chown UID:GID {run})"
            ) from None
        if st.st_uid == 0:
            raise PrivilegeError(
                f"{run} is owned by root and there is no queue, so there is no mail account to run as "
                f"(chown UID:GID {run}, the account the POP3 server should run as)"
            )
        return st.st_uid, st.st_gid
    if st.st_uid == 0:
        raise PrivilegeError(
            f"{queue} is owned by root, so there is no mail account to run as "
            f"(chown -R UID:GID {queue} {run}, or make the root with 'pymta init ROOT --mail-uid UID:GID')"
        )
    return st.st_uid, st.st_gid


def refuse_root_without_account(root: str, program: str) -> None:
    """
    When this process is root and there is no mail account to become:
    C{SystemExit} with one line (the program, the path, the fix).
    """
    if os.geteuid() != 0:
        return
    try:
        mail_account(root)
    except PrivilegeError as e:
        raise SystemExit(f"{program}: refusing to run as root: {e}") from None


def drop_root(root: str) -> tuple[int, int] | None:
    """
    If the process is root, become the mail account of C{root} (uid and
    group, checked: L{pymta.privsep.become}).  Returns the new C{(uid,
    gid)}, or None when there was nothing to drop; L{PrivilegeError} when
    there is no account or the drop failed.
    """
    if not is_root():
        return None
    uid, gid = mail_account(root)
    try:
        # a queue made by hand may belong to group 0; the uid is never 0 (mail_account)
        become(uid, gid, allow_root_group=True)
    except PrivilegeDropError as e:
        raise PrivilegeError(f"cannot become the mail account: {e}") from None
    return uid, gid


class RootDroppingService(MultiService):
    """
    A MultiService whose children start privileged as root and run as the
    mail account.

    C{log_observer}, when given, becomes the C{ILogObserver} component of the
    twistd application this service joins (unless the application already
    has one); twistd then logs through it (see L{pymta.twistdlog}).
    """

    def __init__(self, root: str, log_observer: ILogObserver | None = None) -> None:
        super().__init__()
        self.root = root
        self.log_observer = log_observer
        self.twistd_options: Any = None
        #: twistd's --pidfile, written by pymta instead when started as root (see pymta.pidfile)
        self.pid_file: str | None = None
        #: a daemon of its own (a twistd plugin or a .tac file), not a service a test starts: see startService
        self.daemon = False

    def use_twistd_options(self, twistd_options: Any) -> None:
        """
        From a twistd plugin's C{makeService}, with twistd's options (None
        when not run by twistd): refuse to start as root without a mail
        account (unless twistd itself switches, C{--uid}), and log through
        pymta's observer with twistd's log file.
        """
        from pymta.twistdlog import twistd_observer

        if twistd_options is None:
            return
        self.daemon = True
        if not twistd_options.get("uid"):
            refuse_root_without_account(self.root, getattr(twistd_options, "subCommand", None) or "pymta")
        self.twistd_options = twistd_options
        self.log_observer = twistd_observer(twistd_options)
        if os.geteuid() == 0 and twistd_options.get("pidfile"):
            # twistd would open the name as root, following a link the account put there
            self.pid_file = os.path.abspath(twistd_options["pidfile"])
            twistd_options["pidfile"] = ""

    def setServiceParent(self, parent: Any) -> None:
        if self.log_observer is not None and isinstance(parent, Componentized):
            if parent.getComponent(ILogObserver, None) is None:
                parent.setComponent(ILogObserver, self.log_observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        # before ports and helper processes (they inherit it): see pymta.fdlimit
        before, after = raise_open_files_limit()
        log.info("open files limit {limit}{raised}", limit=after, raised=f" (raised from {before})" if after != before else "")
        if os.geteuid() == 0:
            self._prepare_for_the_drop()
        elif self.pid_file is not None:  # root when twistd's options came, no longer (--euid): twistd's way back
            self.twistd_options["pidfile"] = self.pid_file
            self.pid_file = None
        super().privilegedStartService()

    def _account(self) -> Account | None:
        """The account this process will run as: twistd's C{--uid}/C{--gid}, else the mail account."""
        options = self.twistd_options
        if options is not None and options.get("uid"):
            uid = int(options["uid"])
            gid = options.get("gid")
            if gid is None:
                try:
                    gid = pwd.getpwuid(uid).pw_gid
                except KeyError:
                    return None
            return Account(uid, int(gid))
        try:
            return Account(*mail_account(self.root))
        except PrivilegeError:
            return None

    def _prepare_for_the_drop(self) -> None:
        """As root: keep imports reachable; hand the log file and the pid file to the account."""
        from pymta.heldimports import hold_import_directories
        from pymta.logrotation import RotatingLogFile
        from pymta.pidfile import hand_over_pid_file

        hold_import_directories()
        pid_fd = self._write_pid_file()
        try:
            account = self._account()
            if account is None:
                return
            log_file = getattr(self.log_observer, "log_file", None)
            if isinstance(log_file, RotatingLogFile):
                warning = log_file.hand_over(account)
                if warning:
                    log.warn("{warning}", warning=warning)
            if pid_fd is not None and self.pid_file is not None:
                note = hand_over_pid_file(self.pid_file, account, pid_fd)
                if note:
                    self.twistd_options["pidfile"] = ""  # the helper removes it; twistd would only fail to
                    log.info("{note}", note=note)
        finally:
            if pid_fd is not None:
                os.close(pid_fd)

    def _write_pid_file(self) -> int | None:
        """As root, after twistd's fork: the pid file twistd was told to write (see L{pymta.pidfile}); its descriptor."""
        from pymta.pidfile import UnsafeFile, write_pid_file

        if self.pid_file is None:
            return None
        try:
            fd = write_pid_file(self.pid_file)
        except OSError as e:
            reason = str(e) if isinstance(e, UnsafeFile) else f"{self.pid_file}: {e.strerror or e}"
            raise SystemExit(f"cannot write the pid file: {reason}") from None
        self.twistd_options["pidfile"] = self.pid_file  # twistd removes it at exit, as it would have
        return fd

    def startService(self) -> None:
        try:
            dropped = drop_root(self.root)
        except PrivilegeError as e:
            # refuse_root_without_account stops this earlier; this covers a root changed since
            log.critical("refusing to run as root: {reason}", reason=str(e))
            raise SystemExit(1) from None
        if dropped is not None:
            log.info("dropped root: running as uid {uid} gid {gid}", uid=dropped[0], gid=dropped[1])
        super().startService()
        if self.daemon:  # its services built and listening: see pymta.gctuning
            from pymta import gctuning

            gctuning.tune_daemon()
