# -*- test-case-name: tests.qmailcompat.test_install -*-
"""
The compatibility directory: qmail's program paths, made and removed.

L{install} writes, under each target (qmail's home: C{/var/qmail}, and
C{/var/lib/qmail} of Debian's builds), C{bin/NAME} for every name of
L{pymta.qmailcompat.PROGRAMS}: a small shell script that runs pymta's
program on this interpreter, for the pymta root given (an add-on run from
cron has neither C{PYMTA_PYTHON} nor C{PYMTA_ROOT}).  It also links
C{control} to the root's control directory, where dot-forward and
fastforward's newaliases read C{me}, C{defaulthost}, C{defaultdomain} and
C{plusdomain}; qmail's programs C{chdir} to their home before running
C{qmail-queue}, so the home must exist.

Nothing that is not ours is ever replaced: a target whose
C{bin/qmail-queue} is someone else's (a real qmail) is refused as a whole,
and any other name already taken is left alone and reported.  What was made
is listed in the manifest C{TARGET/.pymta-qmail-compat}; L{remove} deletes
exactly that (files still carrying our marker, the link still pointing where
we put it, directories we created once empty) and then the manifest; an
entry naming a path outside the target (absolute, or through C{..}) is
ignored and reported.

Run as root, C{install} first refuses (L{CompatRefused}, nothing written)
a target or C{bin/} that others than root could change, and an interpreter
or pymta package that others than root could change, since root's cron
jobs will run them (L{pymta.qmailcompat.trust}); C{remove} leaves such a
target alone.  Files are written under a fresh name (C{mkstemp}: created
exclusively, never through a link), given their mode by descriptor, and
renamed into place.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from dataclasses import dataclass, field

from pymta.fsutil import replace_file
from pymta.qmailcompat import PROGRAMS
from pymta.qmailcompat.trust import directory_problem, runtime_problems

__all__ = [
    "DEFAULT_TARGETS",
    "MANIFEST",
    "MARKER",
    "CompatRefused",
    "CompatReport",
    "script_text",
    "install",
    "remove",
]

#: qmail's home in qmail's own builds and in Debian's
DEFAULT_TARGETS = ("/var/qmail", "/var/lib/qmail")
#: the list of what L{install} made, in the target
MANIFEST = ".pymta-qmail-compat"
#: the second line of every script L{install} writes
MARKER = "# made by pymta qmail-compat"


class CompatRefused(Exception):
    """A target holds a qmail that is not pymta's: nothing was written anywhere."""


@dataclass
class CompatReport:
    """What one run did: paths made or removed, and what it left alone (with why)."""

    done: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def script_text(name: str, root: str, python: str | None = None) -> str:
    """The script C{bin/NAME}: C{python -m pymta.qmailcompat NAME "$@"} for C{root} (unless $PYMTA_ROOT says otherwise)."""
    python = python or sys.executable
    return (
        "#!/bin/sh\n"
        f"{MARKER} (remove: pymta qmail-compat remove): qmail's {name} runs pymta's\n"
        f"[ -n \"$PYMTA_ROOT\" ] || PYMTA_ROOT={shlex.quote(root)}; export PYMTA_ROOT\n"
        f"exec {shlex.quote(python)} -P -m pymta.qmailcompat {name} \"$@\"\n"
    )


def _ours(path: str) -> bool:
    """Whether C{path} is a script that L{install} wrote."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 200)
    except OSError:
        return False
    finally:
        os.close(fd)
    return head.startswith(b"#!/bin/sh\n" + MARKER.encode())


def _read_manifest(target: str) -> dict:
    try:
        with open(os.path.join(target, MANIFEST), encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {"files": [], "links": {}, "dirs": []}
    return {"files": list(data.get("files", [])), "links": dict(data.get("links", {})), "dirs": list(data.get("dirs", []))}


def _write_atomically(path: str, text: str, mode: int) -> None:
    """C{text} into a new file next to C{path} (exclusive, no link followed), mode set by descriptor, renamed over C{path}."""
    replace_file(path, text.encode("utf-8"), mode)


def _inside(relative: str) -> bool:
    """Whether a manifest entry names a path in its target (relative, never up through C{..})."""
    if os.path.isabs(relative):
        return False
    normal = os.path.normpath(relative)
    return normal != ".." and not normal.startswith(".." + os.sep)


def _untrusted(target: str) -> str | None:
    """Run as root: why root may not write in C{target} or its C{bin/} (those that exist), else None."""
    if os.geteuid() != 0:
        return None
    for directory in (target, os.path.join(target, "bin")):
        if os.path.lexists(directory):
            problem = directory_problem(directory)
            if problem is not None:
                return problem
    return None


def _check_target(target: str) -> None:
    queue = os.path.join(target, "bin", "qmail-queue")
    if os.path.lexists(queue) and not _ours(queue):
        raise CompatRefused(
            f"{queue} exists and is not pymta's (a qmail installation?): nothing installed; "
            "pymta never replaces a real qmail (pass --target DIR for another directory)"
        )
    existing = target
    while not os.path.lexists(existing):  # a target to make: judge the directory it will be made in
        existing = os.path.dirname(existing)
    problem = _untrusted(target) if existing == target else (
        directory_problem(existing) if os.geteuid() == 0 else None)
    if problem is not None:
        raise CompatRefused(f"{problem}: others could change what root's programs run: nothing installed")


def install(root: str, targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS, python: str | None = None) -> CompatReport:
    """Make the compatibility directory under each target, for the pymta C{root}; L{CompatRefused} before any write."""
    root = os.path.abspath(root)
    targets = [os.path.abspath(t) for t in targets]
    for target in targets:
        _check_target(target)
    if os.geteuid() == 0:
        problems = runtime_problems(python or sys.executable)
        if problems:
            raise CompatRefused(
                "the scripts would have root run code that others than root can change: "
                + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                + ": nothing installed (install pymta for root, or pass a root-owned interpreter)")
    report = CompatReport()
    for target in targets:
        _install_one(root, target, python, report)
    return report


def _install_one(root: str, target: str, python: str | None, report: CompatReport) -> None:
    manifest = _read_manifest(target)
    made_dirs: list[str] = manifest["dirs"]
    bindir = os.path.join(target, "bin")
    for directory in (target, bindir):
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
            os.chmod(directory, 0o755)
            made_dirs.append(os.path.relpath(directory, target) if directory != target else ".")
            report.done.append(f"{directory}/")
    problem = _untrusted(target)  # again, now that both exist
    if problem is not None:
        raise CompatRefused(f"{problem}: others could change what root's programs run")
    files: list[str] = manifest["files"]
    for name in PROGRAMS:
        path = os.path.join(bindir, name)
        if os.path.lexists(path) and not _ours(path):
            report.kept.append(f"{path} (not pymta's)")
            continue
        _write_atomically(path, script_text(name, root, python), 0o755)
        relative = os.path.join("bin", name)
        if relative not in files:
            files.append(relative)
        report.done.append(path)
    links: dict[str, str] = manifest["links"]
    control, wanted = os.path.join(target, "control"), os.path.join(root, "control")
    if os.path.islink(control) and links.get("control") == os.readlink(control):
        os.unlink(control)
    if os.path.lexists(control):
        report.kept.append(f"{control} (not pymta's)")
    else:
        os.symlink(wanted, control)
        links["control"] = wanted
        report.done.append(f"{control} -> {wanted}")
    _write_atomically(os.path.join(target, MANIFEST), json.dumps(manifest, indent=1) + "\n", 0o644)


def remove(targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS) -> CompatReport:
    """Remove what L{install} made under each target (per its manifest); a target without one is left alone."""
    report = CompatReport()
    for target in (os.path.abspath(t) for t in targets):
        if not os.path.exists(os.path.join(target, MANIFEST)):
            report.kept.append(f"{target} (no {MANIFEST}: nothing of pymta's)")
            continue
        problem = _untrusted(target)
        if problem is not None:
            report.kept.append(f"{target} ({problem}: left alone)")
            continue
        _remove_one(target, report)
    return report


def _entries_inside(target: str, entries: list, report: CompatReport) -> list[str]:
    """The manifest entries naming paths in C{target}; each other one reported in C{report.kept}."""
    inside = []
    for relative in entries:
        if isinstance(relative, str) and _inside(relative):
            inside.append(relative)
        else:
            report.kept.append(f"{relative!r} in {os.path.join(target, MANIFEST)} (not a path in {target}: ignored)")
    return inside


def _remove_one(target: str, report: CompatReport) -> None:
    manifest = _read_manifest(target)
    for key in ("files", "dirs"):
        manifest[key] = _entries_inside(target, manifest[key], report)
    manifest["links"] = {relative: manifest["links"][relative]
                         for relative in _entries_inside(target, list(manifest["links"]), report)}
    for relative in manifest["files"]:
        path = os.path.join(target, relative)
        if _ours(path):
            os.unlink(path)
            report.done.append(path)
        elif os.path.lexists(path):
            report.kept.append(f"{path} (changed since pymta made it)")
    for relative, pointed in manifest["links"].items():
        path = os.path.join(target, relative)
        if os.path.islink(path) and os.readlink(path) == pointed:
            os.unlink(path)
            report.done.append(path)
        elif os.path.lexists(path):
            report.kept.append(f"{path} (changed since pymta made it)")
    os.unlink(os.path.join(target, MANIFEST))
    for relative in reversed(manifest["dirs"]):
        path = os.path.normpath(os.path.join(target, relative))
        try:
            os.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError:
            report.kept.append(f"{path}/ (not empty)")
            continue
        report.done.append(f"{path}/")
