# -*- test-case-name: tests.cli.test_cert -*-
"""
C{pymta cert}: install a certificate from an ACME client and reload the daemons.

    pymta cert install --cert FULLCHAIN --key KEY [--root DIR] [--no-reload]
                       [--pidfile FILE]... [--only-for-me]
    pymta cert hook [--root DIR] [--pymta PATH]

C{install} checks the pair (L{pymta.certinstall.checked_server_pem}): a
pair that cannot serve is refused in one line, exit 1, and
C{ROOT/control/servercert.pem} is not touched.  Otherwise the file is
replaced atomically (mode 0600, owned by the account the daemons run as)
and every running daemon of the root is reloaded
(L{pymta.cli.certreload}); C{--no-reload} leaves that to the caller.
C{--only-for-me} skips (exit 0) a certificate whose names do not include
C{control/me}: a certbot hook runs for every certificate on the machine.
Exit 0 installed (and reloaded), 1 refused or not written, 2 usage error,
111 installed but a daemon's reload failed.

C{hook} prints the certbot deploy hook for this installation, to be saved
as C{/etc/letsencrypt/renewal-hooks/deploy/pymta} (mode 0755).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from pymta.control import default_root
from pymta.deploy.files import DeployError, check_settings, render, shipped_text

__all__ = ["main", "hook_text", "EXIT_OK", "EXIT_REFUSED", "EXIT_RELOAD_FAILED"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_RELOAD_FAILED = 111

HOOK_PATH = "/etc/letsencrypt/renewal-hooks/deploy/pymta"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pymta cert", description="install renewed certificates")
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="check a certificate and key, install them, reload the daemons")
    install.add_argument("--root", help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    install.add_argument("--cert", required=True, metavar="FULLCHAIN",
                         help="PEM certificate followed by its chain (certbot: fullchain.pem)")
    install.add_argument("--key", required=True, metavar="KEY", help="PEM private key (certbot: privkey.pem)")
    install.add_argument("--no-reload", action="store_true", help="install only; reload nothing")
    install.add_argument("--pidfile", action="append", default=[], metavar="FILE",
                         help="also SIGHUP the daemon in this twistd pid file (repeatable)")
    install.add_argument("--only-for-me", action="store_true",
                         help="skip, exit 0, a certificate whose names do not include control/me")
    hook = commands.add_parser("hook", help=f"print the certbot deploy hook (for {HOOK_PATH})")
    hook.add_argument("--root", help="pymta root (default $PYMTA_ROOT, else /var/pymta)")
    hook.add_argument("--pymta", help="the pymta command the hook runs (default: this installation's)")
    return parser


def _read(path: str) -> bytes:
    from pymta.certinstall import CertificateRefused

    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CertificateRefused(f"{path}: {e.strerror or e}") from None


def _me(root: str) -> str | None:
    """The first line of C{control/me}, as the daemons read it (None when absent or empty)."""
    try:
        with open(os.path.join(root, "control", "me"), encoding="utf-8", errors="replace") as f:
            return f.readline().strip() or None
    except OSError:
        return None


def _owner(root: str) -> tuple[int, int] | None:
    """The daemons' account for the new file: only root can give files away."""
    from pymta.configcheck.problem import service_account

    if os.geteuid() != 0:
        return None
    return service_account(root) or (0, 0)


def install(args: argparse.Namespace) -> int:
    # imported here: C{pymta cert hook} needs none of them (nor cryptography, OpenSSL, Twisted)
    from pymta.certinstall import CertificateRefused, certificate_names, checked_server_pem, install_server_pem, other_host_names
    from pymta.cli.certreload import reload_all
    from pymta.tls import cert_path

    root = os.path.abspath(args.root or default_root())
    target = cert_path(root)
    if not os.path.isdir(os.path.dirname(target)):
        sys.stderr.write(f"pymta cert: {os.path.dirname(target)}: no such directory (is {root} a pymta root?)\n")
        return EXIT_REFUSED
    me = _me(root)
    if args.only_for_me and me is None:
        sys.stderr.write(f"pymta cert: refused, {target} unchanged: --only-for-me, but {root}/control/me is empty\n")
        return EXIT_REFUSED
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        chain = _read(args.cert)
        if args.only_for_me and me is not None:
            names = other_host_names(chain, me)
            if names is not None:
                sys.stdout.write(f"skipped {args.cert}: it names {', '.join(names) or 'nothing'}, not {me} (control/me)\n")
                return EXIT_OK
        checked = checked_server_pem(chain, _read(args.key), me, now, args.cert, args.key)
    except CertificateRefused as e:
        sys.stderr.write(f"pymta cert: refused, {target} unchanged: {e}\n")
        return EXIT_REFUSED
    for warning in checked.warnings:
        sys.stderr.write(f"pymta cert: warning: {warning}\n")
    try:
        install_server_pem(target, checked.pem, _owner(root))
    except OSError as e:
        sys.stderr.write(f"pymta cert: {e.filename or target}: {e.strerror}; {target} unchanged\n")
        return EXIT_REFUSED
    expires = checked.leaf.not_valid_after_utc
    sys.stdout.write(f"installed {target} ({', '.join(certificate_names(checked.leaf))}; "
                     f"expires {expires:%Y-%m-%d} UTC)\n")
    if args.no_reload:
        return EXIT_OK
    sys.stdout.flush()
    outcomes = reload_all(root, [os.path.abspath(p) for p in args.pidfile])
    if not outcomes:
        sys.stdout.write("no running daemon found for this root: the daemons read the new file when they start\n")
    for outcome in outcomes:
        (sys.stdout if outcome.ok else sys.stderr).write(
            f"{'' if outcome.ok else 'pymta cert: '}{outcome.target}: {outcome.text}\n")
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_RELOAD_FAILED


def _this_pymta() -> str:
    """The C{pymta} script next to this Python (a venv's C{bin/pymta})."""
    return os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "pymta")


def hook_text(pymta: str, root: str) -> str:
    """The certbot deploy hook (C{pymta/deploy/certbot/pymta}) for C{pymta} and C{root}."""
    from pymta.deploy.files import Settings

    # the same rules as unit files: absolute paths without blanks, quotes, '$' ... (they go in unquoted)
    check_settings(Settings(twistd=pymta, tac_dir="/", root=root))
    return render(shipped_text("certbot", "pymta"), {"PYMTA": pymta, "ROOT": root}, "certbot/pymta")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "install":
        return install(args)
    try:
        sys.stdout.write(hook_text(args.pymta or _this_pymta(), os.path.abspath(args.root or default_root())))
    except DeployError as e:
        sys.stderr.write(f"pymta cert: {str(e).replace('--twistd', '--pymta')}\n")
        return EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
