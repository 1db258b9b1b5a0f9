"""The floor plan, read from the sources with `ast`: the runtime (`edge_agent`, `drivers`)
never imports the simulators, and no module comes back to itself round a cycle of imports.

Every import counts, wherever it is written: one inside a function or under
`if TYPE_CHECKING:` dodges a cycle at import time but keeps the dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ("edge_agent", "drivers")
PACKAGES = (*RUNTIME, "simulators")


def _modules() -> dict[str, Path]:
    """Every module of the packages by its dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[str]:
    """The dotted names `module` imports, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # `from package import module` imports that module; a name in it, the module.
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _first_party(name: str) -> str | None:
    """The module of ours that `name` is or is in, or None for another distribution's."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports."""
    ours = {m: p for m, p in MODULES.items() if m.split(".")[0] in packages}
    graph: dict[str, set[str]] = {}
    for module, path in ours.items():
        targets = {_first_party(name) for name in _imported(module, path)}
        graph[module] = {t for t in targets if t is not None and t in ours and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph[target]))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return sorted(found)


def test_the_walk_sees_the_imports_it_must_judge() -> None:
    """A walk that resolved nothing would pass every check below."""
    graph = _graph(PACKAGES)
    assert "edge_agent.config.schema" in graph["edge_agent.config.loader"]  # relative
    assert "drivers.modbus.config" in graph["edge_agent.config.loader"]  # absolute
    assert "edge_agent.cli" in graph["simulators.cli"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_runtime_never_imports_the_simulators() -> None:
    offending = {
        f"{module} imports {name}"
        for module, path in MODULES.items()
        if module.split(".")[0] in RUNTIME
        for name in _imported(module, path)
        if name.split(".")[0] == "simulators"
    }
    assert not offending, sorted(offending)


def test_the_runtime_has_no_import_cycle() -> None:
    assert _cycles(_graph(RUNTIME)) == []


def test_the_simulators_have_no_import_cycle() -> None:
    assert _cycles(_graph(PACKAGES)) == []
