# -*- test-case-name: tests.test_docs -*-
"""
Every command of the administrator's guide (docs/*.md) is run here, so the
guide stays true.

Conventions of the guide's Markdown (also explained in docs/index.md):

- A fenced block with the info string C{sh} is a runnable example.  The
  blocks of one chapter (one file) run in file order, each in its own
  C{bash -e -o pipefail}, all in the same fresh temporary directory and
  with the same fresh pymta root, like one administrator's session.
- A fenced block with the info string C{output}, directly after an C{sh}
  block, is the expected output of that block (stdout and stderr
  together).  Before comparing, the root's real path is replaced by
  C{/var/pymta}, trailing blanks are removed from every line, and C{...}
  in the expected text matches any text (also several lines), as doctest's
  ELLIPSIS does.  Without an C{output} block only the exit status counts.
- An C{sh} block preceded (on the line before its fence) by
  C{<!-- not run: REASON -->} is shown but not run: commands that need
  systemd, the network or a terminal.  Such blocks are few and each gives
  its reason; L{DocStructureTests} keeps their number small.
- An C{sh} block preceded by C{<!-- output as root -->} shows what a run
  as root prints; run by another user it must still exit 0, but its output
  is not compared.
- Every example must exit 0; an example that shows a failure says so with
  C{|| echo "exit status $?"}.

Environment of every block: C{PATH} starts with the venv's bin directory
(C{pymta}, C{twistd}, C{python3} are the installed ones), C{PYMTA_ROOT} is
C{DIR/root} (not yet created: the chapter's first block runs
C{pymta init}), C{MAILUID} is C{--mail-uid 4242:4242} when the tests run
as root and empty otherwise, and C{SMTP_PORT}, C{SUBMISSION_PORT},
C{POP3_PORT}, C{OTHER_PORT} are free loopback ports, and C{SRC} is the source checkout
(for C{docs/tools/}).  After a chapter every process its
blocks left behind (background jobs, daemonized twistds found through pid
files anywhere in the directory) is killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BIN = Path(sys.executable).parent
SHOWN_ROOT = "/var/pymta"
BLOCK_TIMEOUT = 60.0
#: at most this many examples may be shown without being run
MAX_NOT_RUN = 8

_FENCE = re.compile(r"^(```+)\s*([^\s`]*)\s*(.*)$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->\s*$")
_ROOT_ONLY = re.compile(r"^<!--\s*output as root\s*-->\s*$")


@dataclass
class Block:
    """One fenced block of a chapter."""

    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    not_run: str | None = None  # the reason, for a shown-only example
    root_output: bool = False  # the output shown is the one of a run as root
    expected: str | None = None  # the output block that follows, if any

    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass
class Chapter:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    @property
    def examples(self) -> list[Block]:
        return [b for b in self.blocks if b.info == "sh"]


def parse_chapter(path: Path) -> Chapter:
    """The fenced blocks of one Markdown file, with outputs attached to their examples."""
    lines = path.read_text(encoding="utf-8").split("\n")
    chapter = Chapter(path)
    i = 0
    previous_text_line = ""
    last_sh: Block | None = None
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous_text_line = lines[i]
                last_sh = None if not lines[i].startswith("<!--") else last_sh
            i += 1
            continue
        fence, info = match.group(1), match.group(2)
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise ValueError(f"{path}:{start + 1}: code block never closed")
        i += 1
        block = Block(path, start + 1, info, "\n".join(body) + "\n")
        not_run = _NOT_RUN.match(previous_text_line)
        if info == "sh" and not_run:
            block.not_run = not_run.group(1)
        if info == "sh" and _ROOT_ONLY.match(previous_text_line):
            block.root_output = True
        if info == "output":
            if last_sh is None:
                raise ValueError(f"{path}:{start + 1}: an output block must follow an sh block directly")
            last_sh.expected = block.text
            last_sh = None
        else:
            last_sh = block if info == "sh" else None
        previous_text_line = ""
        chapter.blocks.append(block)
    return chapter


def chapters() -> list[Chapter]:
    return [parse_chapter(p) for p in sorted(DOCS.glob("*.md"))]


def expected_pattern(expected: str) -> re.Pattern[str]:
    """
    doctest-style ELLIPSIS: a line that is just C{...} matches any number of
    whole lines (also none), C{...} inside a line matches any text; the rest
    is literal.
    """
    pieces = []
    for line in _normalise(expected).split("\n")[:-1]:
        if line == "...":
            pieces.append(r"(?:[^\n]*\n)*?")
        else:
            pieces.append(".*?".join(re.escape(p) for p in line.split("...")) + r"\n")
    return re.compile("".join(pieces) + r"\Z", re.DOTALL)


def _normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Session:
    """One chapter's shell session: a temporary directory, a root, the environment."""

    def __init__(self) -> None:
        # a short path: the root's UNIX sockets must fit in 107 bytes, whatever TMPDIR says
        self.dir = tempfile.mkdtemp(prefix="pymta-doc-", dir="/tmp" if os.path.isdir("/tmp") else None)
        os.chmod(self.dir, 0o755)
        self.root = os.path.join(self.dir, "root")
        ports = set()
        while len(ports) < 4:
            ports.add(_free_port())
        smtp, submission, pop3, other = sorted(ports)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYMTA", "VIRTUAL_ENV"))}
        env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            PYMTA_ROOT=self.root,
            MAILUID="--mail-uid 4242:4242" if os.getuid() == 0 else "",
            SMTP_PORT=str(smtp),
            SUBMISSION_PORT=str(submission),
            POP3_PORT=str(pop3),
            OTHER_PORT=str(other),
            SRC=str(REPO),
            HOME=self.dir,
            LANG="C.UTF-8",
            TZ="UTC",
        )
        self.env = env
        self.groups: list[int] = []

    def run(self, block: Block) -> tuple[int, str]:
        child = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", block.text],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups.append(child.pid)
        try:
            out, _ = child.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, _ = child.communicate()
            return -1, out.decode("utf-8", "replace") + f"\n[timed out after {BLOCK_TIMEOUT} s]"
        return child.returncode, out.decode("utf-8", "replace")

    def shown(self, output: str) -> str:
        """The output as the guide shows it: the root is /var/pymta."""
        return output.replace(self.root, SHOWN_ROOT)

    def close(self) -> None:
        for pid in self._daemon_pids():
            self._kill(pid)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def _daemon_pids(self) -> list[int]:
        """Pids from pid files in our directory whose process is one of ours (its command line names our directory)."""
        pids = []
        for pidfile in Path(self.dir).rglob("*.pid"):
            try:
                pid = int(pidfile.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if self.dir.encode() in cmdline:
                pids.append(pid)
        return pids

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_chapter(testcase: SynchronousTestCase, chapter: Chapter) -> None:
    session = Session()
    try:
        for block in chapter.examples:
            if block.not_run is not None:
                continue
            status, output = session.run(block)
            shown = session.shown(output)
            if status != 0:
                testcase.fail(
                    f"{block.where()}: example exited {status}\n--- example ---\n{block.text}--- output ---\n{shown}"
                )
            if block.root_output and os.getuid() != 0:
                continue  # ran; its output differs when not run as root
            if block.expected is not None and not expected_pattern(block.expected).match(_normalise(shown)):
                testcase.fail(
                    f"{block.where()}: output differs\n--- example ---\n{block.text}"
                    f"--- expected ---\n{_normalise(block.expected)}--- got ---\n{_normalise(shown)}"
                )
    finally:
        session.close()


class DocExampleTests(SynchronousTestCase):
    """One test per chapter: its examples, in order, in one fresh root."""


def _add_chapter_tests() -> None:
    for chapter in chapters():
        if not chapter.examples:
            continue
        name = "test_" + re.sub(r"\W", "_", chapter.path.stem)

        def test(self: SynchronousTestCase, chapter: Chapter = chapter) -> None:
            run_chapter(self, chapter)

        test.__doc__ = f"Every example of docs/{chapter.path.name} runs as shown."
        setattr(DocExampleTests, name, test)


_add_chapter_tests()


class DocStructureTests(SynchronousTestCase):
    """The guide's shape: a table of contents that reaches every chapter, few unrun examples."""

    def test_index_links_every_chapter(self) -> None:
        index = (DOCS / "index.md").read_text(encoding="utf-8")
        linked = set(re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]*)?\)", index))
        on_disk = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
        self.assertEqual(on_disk - linked, set(), "chapters missing from docs/index.md")
        self.assertEqual(linked - on_disk, set(), "docs/index.md links chapters that do not exist")

    def test_links_between_chapters_resolve(self) -> None:
        for chapter in chapters():
            text = chapter.path.read_text(encoding="utf-8")
            for target in re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]*)?\)", text):
                self.assertTrue((DOCS / target).exists(), f"{chapter.path.name} links {target}")

    def test_few_examples_are_not_run(self) -> None:
        shown_only = [b for c in chapters() for b in c.examples if b.not_run is not None]
        self.assertLessEqual(len(shown_only), MAX_NOT_RUN, [b.where() for b in shown_only])
        total = sum(len(c.examples) for c in chapters())
        self.assertGreater(total, 10 * len(shown_only))

    def test_every_control_file_is_documented(self) -> None:
        from pymta.cli.showctl import EXTRA_FILES
        from pymta.control import SPECS

        text = (DOCS / "control.md").read_text(encoding="utf-8")
        for name in [s.name for s in SPECS] + list(EXTRA_FILES):
            self.assertIn(f"`{name}`", text, f"control/{name} is not described in docs/control.md")

    def test_every_subcommand_is_documented(self) -> None:
        from pymta.cli.main import COMMANDS

        text = "".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
        for name in COMMANDS:
            self.assertIn(f"pymta {name}", text, f"pymta {name} appears nowhere in docs/")

    def test_readme_opens_with_the_two_commands_and_points_here(self) -> None:
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        first_block = readme.split("```")[1]
        self.assertIn("make run", first_block)
        self.assertIn("make test", first_block)
        self.assertIn("docs/index.md", readme)


class ParserTests(SynchronousTestCase):
    """The block parser and the output matching the guide relies on."""

    def parse(self, text: str) -> Chapter:
        path = Path(tempfile.mkdtemp(prefix="pymta-doc-")) / "x.md"
        self.addCleanup(shutil.rmtree, str(path.parent))
        path.write_text(text)
        chapter = parse_chapter(path)
        chapter.path = REPO / "docs" / "x.md"
        return chapter

    def test_output_attaches_to_previous_example(self) -> None:
        chapter = self.parse("text\n\n```sh\necho hi\n```\n\n```output\nhi\n```\n\n```sh\ntrue\n```\n")
        first, second = chapter.examples
        self.assertEqual(first.expected, "hi\n")
        self.assertIsNone(second.expected)

    def test_not_run_marker(self) -> None:
        chapter = self.parse("<!-- not run: needs systemd -->\n```sh\nsystemctl start x\n```\n")
        self.assertEqual(chapter.examples[0].not_run, "needs systemd")

    def test_root_output_marker(self) -> None:
        chapter = self.parse("<!-- output as root -->\n```sh\nid -u\n```\n```output\n0\n```\n```sh\ntrue\n```\n")
        first, second = chapter.examples
        self.assertTrue(first.root_output)
        self.assertEqual(first.expected, "0\n")
        self.assertFalse(second.root_output)

    def test_output_without_example_is_an_error(self) -> None:
        self.assertRaises(ValueError, self.parse, "```output\nhi\n```\n")

    def test_output_after_prose_is_an_error(self) -> None:
        self.assertRaises(ValueError, self.parse, "```sh\ntrue\n```\nprose\n```output\nx\n```\n")

    def test_ellipsis(self) -> None:
        pattern = expected_pattern("a ... c\nline\n...\nend\n")
        self.assertTrue(pattern.match("a b c\nline\nx\ny\nend\n"))
        self.assertTrue(pattern.match("a b c\nline\nend\n"))
        self.assertFalse(pattern.match("a b c\nother\nend\n"))
        self.assertTrue(expected_pattern("...\nb\n...\n").match("b\n"))

    def test_trailing_blanks_ignored(self) -> None:
        self.assertTrue(expected_pattern("x \n\n").match(_normalise("x\n")))
