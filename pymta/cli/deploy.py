# -*- test-case-name: tests.cli.test_deploy -*-
"""
C{pymta deploy}: write the .tac files and the systemd units of this installation.

    pymta deploy [--root DIR] [--tac-dir DIR] [--unit-dir DIR | --no-units]
                 [--user NAME] [--group NAME] [--twistd PATH]
                 [--dry-run] [--force]
    pymta deploy --show NAME

The .tac files (and C{_common.py}) go to C{--tac-dir} (default
C{/etc/pymta}), the units to C{--unit-dir} (default C{/etc/systemd/system}),
filled in with this installation's C{twistd}, the root (C{--root}, default
C{$PYMTA_ROOT} or C{/var/pymta}) and the account of pymta-smtpd (C{--user},
C{--group}, default C{pymta}).  A file that exists with other content is
left alone and the command fails, writing nothing, unless C{--force};
C{--dry-run} says what would happen and shows those differences.
C{--show NAME} prints one file as it would be written (or the example
C{tcp.smtp}).  Exit 0 on success, 1 on an error, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import sys

from pymta.control import default_root
from pymta.deploy.files import EXAMPLE_FILES, TAC_FILES, UNIT_FILES, DeployError, Settings, check_settings, deploy_files, find_twistd, rendered
from pymta.deploy.writer import diff, plan, write

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymta deploy",
        description="Write the .tac files and systemd units of this installation.")
    parser.add_argument("--root", help="the pymta root the units use (default $PYMTA_ROOT or /var/pymta)")
    parser.add_argument("--tac-dir", default="/etc/pymta", help="where the .tac files go (default /etc/pymta)")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--unit-dir", default="/etc/systemd/system",
                       help="where the systemd units go (default /etc/systemd/system)")
    units.add_argument("--no-units", action="store_true", help="write the .tac files only")
    parser.add_argument("--user", default="pymta", help="account pymta-smtpd runs as: the owner of ROOT/queue (default pymta)")
    parser.add_argument("--group", default="pymta", help="its group (default pymta)")
    parser.add_argument("--twistd", help="twistd for ExecStart= (default: this installation's)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be written and show differences; write nothing")
    parser.add_argument("--force", action="store_true", help="replace files that differ from what would be written")
    parser.add_argument("--show", metavar="NAME",
                        help=f"print one file as it would be written: {', '.join(TAC_FILES + UNIT_FILES + EXAMPLE_FILES)}")
    return parser


def _hidden_warnings(settings: Settings) -> list[str]:
    """The units hide /root and /home (pymta-smtpd) from the service: the installation must not live there."""
    warnings = []
    for what, path in (("twistd", settings.twistd), ("this Python", os.path.realpath(sys.executable))):
        real = os.path.realpath(path)
        if any(real == top or real.startswith(top + "/") for top in ("/root", "/home", "/run/user")):
            warnings.append(f"{what} is {real}, which the units hide (ProtectHome=, InaccessiblePaths=): "
                            "install pymta outside /root and /home, e.g. in /opt/pymta")
    return warnings


def _account_warnings(settings: Settings) -> list[str]:
    """Hints (not errors: the account may be made later) about --user and ROOT/queue."""
    try:
        uid = pwd.getpwnam(settings.user).pw_uid
    except KeyError:
        return [f"user {settings.user} does not exist yet: pymta-smtpd cannot start without it "
                "(see docs/install.md: useradd)"]
    warnings = []
    try:
        grp.getgrnam(settings.group)
    except KeyError:
        warnings.append(f"group {settings.group} does not exist yet: pymta-smtpd cannot start without it")
    try:
        owner = os.stat(os.path.join(settings.root, "queue")).st_uid
    except OSError:
        return warnings
    if owner != uid:
        warnings.append(f"{settings.root}/queue belongs to uid {owner}, not to {settings.user} (uid {uid}): "
                        "pymta-smtpd must run as the queue's owner")
    return warnings


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    out = sys.stdout
    try:
        settings = Settings(
            twistd=args.twistd if args.twistd else find_twistd(),
            tac_dir=os.path.abspath(args.tac_dir),
            root=os.path.abspath(args.root or default_root()),
            user=args.user,
            group=args.group,
        )
        check_settings(settings)
        if args.show:
            out.write(rendered(args.show, settings))
            return 0
        planned = plan(deploy_files(settings, None if args.no_units else os.path.abspath(args.unit_dir)))
        if args.dry_run:
            for item in planned:
                verb = {"new": "would write", "same": "unchanged", "changed": "differs, --force would replace"}[item.state]
                out.write(f"{verb} {item.path}\n")
                if item.state == "changed":
                    out.write(diff(item))
            return 0
        written = write(planned, force=args.force)
    except DeployError as e:
        sys.stderr.write(f"pymta deploy: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"pymta deploy: {e.filename}: {e.strerror}\n")
        return 1
    for item in planned:
        out.write(f"{'wrote' if item in written else 'unchanged'} {item.path}\n")
    if not args.no_units:
        if written:
            out.write("next: systemctl daemon-reload, then enable either pymta.service "
                      "or pymta-send, pymta-smtpd and pymta-pop3d\n")
        out.flush()  # the list first, then any warning, also when both go to one pipe
        for warning in _hidden_warnings(settings) + _account_warnings(settings):
            sys.stderr.write(f"pymta deploy: warning: {warning}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
