"""Helpers for the deploy tests: rendering the shipped units into a directory, and reading them."""

from __future__ import annotations

import os
import re

from pymta.deploy.files import UNIT_FILES, Settings, deploy_files, find_twistd

__all__ = ["parse_unit", "kept_capabilities_in_comments", "write_deployment", "settings_for"]

_CAPABILITY = re.compile(r"\bCAP_[A-Z_]+\b")


def parse_unit(text: str) -> dict[str, list[str]]:
    """C{Section.Key} -> values in order (a unit may repeat a key), comments left out."""
    section = ""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def kept_capabilities_in_comments(text: str) -> set[str]:
    """The capabilities named in the comment block that explains CapabilityBoundingSet=."""
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("CapabilityBoundingSet="))
    start = end
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return {m.group(0) for line in lines[start:end] for m in _CAPABILITY.finditer(line)}


def settings_for(base: str, root: str = "/var/pymta") -> Settings:
    return Settings(twistd=find_twistd(), tac_dir=os.path.join(base, "tac"), root=root)


def write_deployment(base: str, root: str = "/var/pymta") -> dict[str, str]:
    """The .tac files and units as C{pymta deploy} writes them, under C{base}; unit name -> path."""
    files = deploy_files(settings_for(base, root), os.path.join(base, "units"))
    for path, content in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    return {name: os.path.join(base, "units", name) for name in UNIT_FILES}
