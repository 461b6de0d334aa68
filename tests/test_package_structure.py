"""The package's structure: no import circle among rgmorph's modules (imports inside functions count:
hiding one there only moves the circle to run time), and no function longer than 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "rgmorph"
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path = SOURCE_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: Path = SOURCE_ROOT, package: str = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module an ``ImportFrom`` names, relative imports resolved against ``importer``."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, importer: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body (functions included). An
    imported name that is itself a module (``from rgmorph import fetch``) counts as that module."""
    found = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, path.name == "__init__.py")
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            # 'import rgmorph.a.b' also imports rgmorph and rgmorph.a; only the deepest known one is an edge
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != importer and not importer.startswith(candidate + "."):
                found.add(candidate)
    return found


def import_graph(root: Path = SOURCE_ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = package_modules(root, package)
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def long_functions(root: Path = SOURCE_ROOT, package: str = PACKAGE,
                   limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'module:line name (N lines)' for every function or method longer than ``limit`` lines."""
    found = []
    for name, path in package_modules(root, package).items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_import_circle_in_the_package():
    cycles = import_cycles(import_graph())
    assert cycles == [], "import circles (imports inside functions included):\n" + "\n".join(
        " <-> ".join(group) for group in cycles)


def test_no_function_longer_than_the_limit():
    assert long_functions() == []


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_a_circle_hidden_inside_a_function_is_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/errors.py": "class Oops(Exception):\n    pass\n",
        "pkg/a.py": "from pkg.errors import Oops\n\ndef run():\n    from pkg import b\n    return b\n",
        "pkg/b.py": "from .a import run\n",
        "pkg/c.py": "from . import errors\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.errors", "pkg.b"}
    assert graph["pkg.b"] == {"pkg.a"}  # relative import resolved
    assert graph["pkg.c"] == {"pkg.errors"}  # an imported name that is a module
    assert import_cycles(graph) == [["pkg.a", "pkg.b"]]


def test_a_long_function_is_found(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/long.py": f"def short():\n    pass\n\ndef long():\n{body}"})
    assert long_functions(tmp_path, "pkg") == [f"pkg.long:4 long ({MAX_FUNCTION_LINES + 1} lines)"]
