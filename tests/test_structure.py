"""The shape of the code: imports flow one way (no cycles in rawisp/, lazy imports included; no import
from a lower layer up into a higher one), the packages are the ones the project installs, and the
runtime and the model contract never import torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rawisp"

LAYERS = (  # top to bottom: a module imports from its own layer and the layers below it, never above
    ("command line and API", ("rawisp.cli", "rawisp.api", "rawisp.__main__")),
    ("batch", ("rawisp.batch",)),
    ("measure and train", ("rawisp.measure", "rawisp.train")),
    ("pipeline", ("rawisp.pipeline", "rawisp.compare")),
    ("stages and engines", ("rawisp.stages", "rawisp.engines")),
    ("io and colour", ("rawisp.io", "rawisp.colour", "rawisp.threads", "rawisp")),  # "rawisp": the version
)
TOP_LEVEL_MODULES = 12  # at most, besides __init__ and __main__


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


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``'s layer (0: the top), None when no layer names it."""
    for index, (_, prefixes) in enumerate(LAYERS):
        # the package itself (the version) only by its own name: every module's name starts with it
        if any(module == p or (p != "rawisp" and module.startswith(p + ".")) for p in prefixes):
            return index
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every (importer, imported) pair in which the imported module lies in a higher layer."""
    return sorted((a, b) for a, imported in graph.items() for b in imported if layer_of(b) < layer_of(a))


def test_the_walk_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycles_in_rawisp():
    graph = import_graph()
    # the walk sees the package
    assert len(graph) > 30 and "rawisp.pipeline.compose" in graph["rawisp.pipeline.files"]
    assert cycles(graph) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"rawisp.io.decode": {"rawisp.stages.normalise", "rawisp"}, "rawisp.stages.normalise": {"rawisp.io.decode"},
             "rawisp.cli": {"rawisp.batch.runner"}, "rawisp.batch.runner": {"rawisp.io.write"}, "rawisp": set()}
    assert upward_imports(graph) == [("rawisp.io.decode", "rawisp.stages.normalise")]
    assert layer_of("rawisp.cli") == 0 and layer_of("rawisp") == layer_of("rawisp.io.dng") == len(LAYERS) - 1
    assert layer_of("rawisp.measure.bench") == layer_of("rawisp.train.loop") and layer_of("rawisp.new") is None


def test_every_module_has_a_layer_and_no_import_goes_up():
    graph = import_graph()
    assert [m for m in graph if layer_of(m) is None] == []  # a new package is placed in LAYERS first
    assert upward_imports(graph) == []


def test_a_package_per_concern_and_few_modules_at_the_top():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= TOP_LEVEL_MODULES, top
    assert {"cli", "api"} <= set(top)
    for package in [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc and "import" in doc, f"{package.name}/__init__.py says what lives there and what it may import"


def test_every_package_is_installed():
    """pyproject lists every package under rawisp/ (a non-editable install carries only those)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(rawisp[\w.]*)"', re.search(r"^packages = \[(.*?)\]", pyproject, re.M | re.S).group(1)))
    found = {module_name(p.parent) for p in PACKAGE.rglob("__init__.py")}
    assert found | {"rawisp.models"} == listed


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
