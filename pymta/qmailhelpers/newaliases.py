"""C{newaliases [FILE]} among the helper programs: C{pymta newaliases} (L{pymta.cli.newaliases})."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from pymta.cli.newaliases import main as newaliases

    return newaliases(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
