"""The shape of the code: imports flow one way (no cycles in rawisp/, lazy imports included), and the
runtime and the model contract never import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rawisp"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The rawisp modules ``path`` imports anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from rawisp.measure import synth" imports the module rawisp.measure.synth
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle found by a depth-first walk (each as the path that closes it)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_walk_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycles_in_rawisp():
    graph = import_graph()
    # the walk sees the package
    assert len(graph) > 30 and "rawisp.pipeline.compose" in graph["rawisp.pipeline.files"]
    assert cycles(graph) == []


def test_reconstruct_does_not_reach_back_into_normalise_or_decode():
    graph = import_graph()
    assert "rawisp.io.decode" not in graph["rawisp.stages.reconstruct"]
    assert "rawisp.stages.normalise" in graph["rawisp.stages.reconstruct"]  # for the Packed type only
    source = (PACKAGE / "stages" / "reconstruct.py").read_text()
    assert "normalise(" not in source


def test_runtime_and_contract_load_without_torch():
    code = ("import sys; import rawisp.engines.contract, rawisp.cli, rawisp.batch.tasks, rawisp.engines.learned, "
            "rawisp.measure.evaluate; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
