"""The package's shape: no import cycles between bridge's modules (lazy imports inside functions
count too), ``import bridge`` and its packages stay light, and scoring a model never imports the
training side (``bridge.train``): only ``train.py``'s command does."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The bridge modules ``path`` imports anywhere in its code (``if TYPE_CHECKING:`` blocks aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("bridge"):
            names = {f"{node.module}.{a.name}" for a in node.names}  # "from bridge.data import corpora"
            found |= (names & modules) or ({node.module} & modules)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (ROOT / "bridge").rglob("*.py")}
    return {name: _imports(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_reachable_follows_imports_through_other_modules():
    assert reachable({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"b", "c"}


def test_no_import_cycles_between_bridge_modules():
    graph = import_graph()
    assert "bridge.checkpoint" in graph["bridge.model"] and "bridge.data.splits" in graph["bridge.data.registry"]
    assert {"bridge.train.trainer", "bridge.eval.protocols", "bridge.inference.predictor"} <= graph.keys()
    assert "bridge.eval.protocols" in graph["bridge.train.trainer"]  # the packages' modules are in the graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_only_the_train_command_imports_the_training_package():
    """Evaluation, inference, the web app, the model and the other commands never import ``bridge.train``,
    not even lazily inside a function: outside the package, only ``bridge.commands.train`` reaches it."""
    graph = import_graph()
    training = {name for name in graph if name == "bridge.train" or name.startswith("bridge.train.")}
    assert {"bridge.train.trainer", "bridge.train.losses", "bridge.train.config"} <= training
    reaching = {name for name in graph.keys() - training if reachable(graph, name) & training}
    assert reaching == {"bridge.commands.train"}
    for scorer in ("bridge.eval.protocols", "bridge.commands.evaluate", "bridge.commands.infer", "bridge.serve.app"):
        assert not reachable(graph, scorer) & training, scorer


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return set(out.split())


def _training(loaded: set[str]) -> set[str]:
    return {name for name in loaded if name == "bridge.train" or name.startswith("bridge.train.")}


def test_import_bridge_is_light():
    assert not {"torch", "timm", "transformers", "cv2", "bridge.model"} & _loaded_after("import bridge")
    loaded = _loaded_after("import bridge; bridge.BridgeModel")  # its names load on first use
    assert "bridge.model" in loaded
    assert not {"timm", "transformers", "cv2", "torchaudio"} & loaded and not _training(loaded)


@pytest.mark.parametrize("package", ["bridge.train", "bridge.eval", "bridge.inference", "bridge.train.config"])
def test_the_packages_import_nothing_heavy(package):
    """The packages' ``__init__`` import nothing; ``train.py`` builds its parser from bridge.train.config."""
    loaded = _loaded_after(f"import {package}")
    assert package in loaded and not {"torch", "timm", "transformers", "cv2", "bridge.model"} & loaded


def test_the_predictor_is_bridges_lazy_name():
    assert "bridge.inference.predictor" not in _loaded_after("import bridge")
    loaded = _loaded_after("from bridge import Predictor; assert Predictor.__module__ == 'bridge.inference.predictor'")
    assert "bridge.inference.predictor" in loaded and not _training(loaded)


@pytest.mark.parametrize("module", ["bridge.eval.protocols", "bridge.eval.robustness", "bridge.eval.robustness_plots",
                                    "bridge.eval.metrics", "bridge.commands.evaluate", "bridge.inference.predictor",
                                    "bridge.inference.live", "bridge.commands.infer", "bridge.ensemble",
                                    "bridge.baselines.late_fusion", "bridge.dataset", "bridge.release"])
def test_scoring_does_not_import_training(module):
    loaded = _loaded_after(f"import {module}")
    assert module in loaded and not _training(loaded)
