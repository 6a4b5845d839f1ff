"""
The shape of the code base, checked on its source (parsed with ast, never
imported): module size, what smtpd may import, no import cycles.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "pymta"
MAX_LINES = 600


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the pymta package (a package is its __init__)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(module: str, path: Path) -> set[str]:
    """
    Every dotted name C{module} imports, at any level (function-level
    imports count: they run too), except under C{if TYPE_CHECKING:}.
    C{from a import b} yields both C{a} and C{a.b}; relative imports are
    made absolute.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = {id(n) for node in ast.walk(tree) if _type_checking_only(node) for n in ast.walk(node)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the pymta modules it imports (a name is resolved to the longest module it names)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """
    The import cycles: strongly connected components of more than one
    module (Tarjan's algorithm, iterative so deep graphs need no recursion).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


class ModuleSizeTests(SynchronousTestCase):
    def test_no_module_over_the_limit(self) -> None:
        too_long = {}
        for module, path in module_files().items():
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                too_long[module] = lines
        self.assertEqual(too_long, {}, f"modules over {MAX_LINES} lines")


class SmtpdIndependenceTests(SynchronousTestCase):
    def test_smtpd_imports_nothing_from_local_or_remote_delivery(self) -> None:
        forbidden = ("pymta.local", "pymta.remote")
        offences = {}
        for module, path in module_files().items():
            if module != "pymta.smtpd" and not module.startswith("pymta.smtpd."):
                continue
            bad = sorted(name for name in imported_names(module, path)
                         if any(name == f or name.startswith(f + ".") for f in forbidden))
            if bad:
                offences[module] = bad
        self.assertEqual(offences, {})


class ImportCycleTests(SynchronousTestCase):
    def test_no_import_cycles(self) -> None:
        self.assertEqual(cycles(import_graph()), [])

    def test_the_checks_see_what_they_look_for(self) -> None:
        # the checker itself: a known edge is found, and a made-up cycle is reported
        graph = import_graph()
        self.assertIn("pymta.smtpd.protocol", graph["pymta.smtpd.factory"])
        self.assertIn("pymta.interfaces", graph["pymta.smtpd.rcptcheck"])
        self.assertEqual(cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])
        self.assertEqual(cycles({"a": {"b"}, "b": set()}), [])
