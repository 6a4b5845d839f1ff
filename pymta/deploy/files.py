# -*- test-case-name: tests.deploy.test_files -*-
"""
The files C{pymta deploy} writes, rendered for one installation.

The unit templates in C{systemd/} carry five placeholders, filled in from
L{Settings}: C{@TWISTD@} (the absolute path of this installation's
C{twistd}), C{@TACDIR@} (where the C{.tac} files go), C{@ROOT@} (the pymta
root), C{@USER@} and C{@GROUP@} (the mail account pymta-smtpd runs as).  The
C{.tac} files and C{_common.py} are copied as they are: they read their
settings from the environment the units set.

Values go into unit files unquoted, so they must be absolute paths (or, for
the account, names) without blanks, quotes, backslashes, C{%} or C{$}, which
systemd would read as separators, specifiers or variables; L{check_settings}
refuses anything else in one line naming the option.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "DeployError",
    "Settings",
    "TAC_FILES",
    "UNIT_FILES",
    "EXAMPLE_FILES",
    "check_settings",
    "find_twistd",
    "render",
    "shipped_text",
    "rendered",
    "deploy_files",
]

TAC_FILES = ("_common.py", "pymta.tac", "send.tac", "smtpd.tac", "pop3d.tac")
UNIT_FILES = ("pymta.service", "pymta-send.service", "pymta-smtpd.service", "pymta-pop3d.service")
#: shipped, shown by C{pymta deploy --show}, not written
EXAMPLE_FILES = ("tcp.smtp",)

_PLACEHOLDER = re.compile(r"@([A-Z]+)@")
_UNSAFE = re.compile(r"""[\s"'\\%$;]""")
_ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}\Z")


class DeployError(Exception):
    """A setting that cannot go into a unit file, or a file that cannot be written."""


@dataclass(frozen=True)
class Settings:
    """What the unit templates are filled in with."""

    twistd: str
    tac_dir: str
    root: str
    user: str = "pymta"
    group: str = "pymta"

    def placeholders(self) -> dict[str, str]:
        return {"TWISTD": self.twistd, "TACDIR": self.tac_dir, "ROOT": self.root,
                "USER": self.user, "GROUP": self.group}


def check_settings(settings: Settings) -> None:
    """L{DeployError} naming the option whose value cannot go into a unit file."""
    for option, value in (("--twistd", settings.twistd), ("--tac-dir", settings.tac_dir), ("--root", settings.root)):
        if not os.path.isabs(value):
            raise DeployError(f"{option} {value!r}: an absolute path is needed")
        if _UNSAFE.search(value):
            raise DeployError(f"{option} {value!r}: blanks, quotes, backslashes, ';', '%' and '$' "
                              "cannot go into a systemd unit unquoted")
        if value != "/" and value.endswith("/"):
            raise DeployError(f"{option} {value!r}: no trailing slash, please")
    for option, value in (("--user", settings.user), ("--group", settings.group)):
        if not _ACCOUNT.match(value):
            raise DeployError(f"{option} {value!r}: not a user or group name")


def find_twistd() -> str:
    """
    The C{twistd} script of the installation this code runs from: in its
    scripts directory (a venv's C{bin/}) or next to its Python.
    """
    candidates = [os.path.join(sysconfig.get_path("scripts"), "twistd"),
                  os.path.join(os.path.dirname(sys.executable), "twistd")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    raise DeployError(f"no twistd in {' or '.join(dict.fromkeys(os.path.dirname(c) for c in candidates))}; "
                      "give its path with --twistd PATH")


def shipped_text(subdir: str, name: str) -> str:
    """The text of a shipped file (C{subdir} is C{tac} or C{systemd})."""
    return resources.files(__package__).joinpath(subdir, name).read_text(encoding="utf-8")


def render(template: str, values: dict[str, str], name: str = "template") -> str:
    """C{template} with each C{@NAME@} replaced; L{DeployError} for a placeholder without a value."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if unknown:
        raise DeployError(f"{name}: no value for {', '.join('@' + u + '@' for u in unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def rendered(name: str, settings: Settings) -> str:
    """One shipped file as C{pymta deploy} writes (or, for an example, shows) it."""
    if name in UNIT_FILES:
        return render(shipped_text("systemd", name), settings.placeholders(), name)
    if name in TAC_FILES or name in EXAMPLE_FILES:
        return shipped_text("tac", name)
    raise DeployError(f"no shipped file {name!r} (there are {', '.join(TAC_FILES + UNIT_FILES + EXAMPLE_FILES)})")


def deploy_files(settings: Settings, unit_dir: str | None) -> dict[str, bytes]:
    """Target path -> content: the .tac files into C{settings.tac_dir}, the units into C{unit_dir} (None: none)."""
    check_settings(settings)
    files = {os.path.join(settings.tac_dir, name): rendered(name, settings).encode() for name in TAC_FILES}
    if unit_dir is not None:
        for name in UNIT_FILES:
            files[os.path.join(unit_dir, name)] = rendered(name, settings).encode()
    return files
