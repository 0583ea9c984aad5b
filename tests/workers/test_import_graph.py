"""The modules of workers/ import each other in one direction only, and the
web process, which enqueues jobs, loads none of the pipeline."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "workers"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports, anywhere in its body
    (an import inside a function closes a circle as well as one at the top)."""
    files = {module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets.add(node.module)
                # `from workers.pipeline import sync` imports a module too
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        # Importing a module of a package runs the package's __init__ first:
        # that is no dependency of the module on its own package.
        graph[name] = {
            t for t in targets if t in files and t != name and not name.startswith(f"{t}.")
        }
    return graph


def test_workers_import_graph_has_no_cycles():
    """No module of workers/ imports, even indirectly, a module importing it."""
    graph = import_graph(ROOT)
    assert "workers.pipeline.sync" in graph  # the walk found the package
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle in workers/: {' -> '.join(exc.args[1])}")
    assert order.index("workers.pipeline.local_hls") < order.index("workers.pipeline.playlists")
    assert order.index("workers.pipeline.playlists") < order.index("workers.pipeline.sync")
    assert order.index("workers.pipeline.sync") < order.index("workers.pipeline.finalize")


# The layers of workers/pipeline/__init__.py: a module imports lower layers only.
LAYERS = [
    {"mpegts", "local_hls", "locks"},
    {"broadcasts", "continuity"},
    {"playlists"},
    {"live", "replay", "thumbnails"},
    {"sync"},
    {"drainer", "finalize", "purge", "visibility"},
]


def test_pipeline_modules_import_lower_layers_only():
    """local files -> playlists -> sync -> finalize: never the other way."""
    layer_of = {f"workers.pipeline.{m}": i for i, layer in enumerate(LAYERS) for m in layer}
    graph = import_graph(ROOT)
    pipeline_modules = {m for m in graph if m.startswith("workers.pipeline.")}
    assert pipeline_modules == set(layer_of)  # a new module gets a layer here
    upward = [
        (module, target)
        for module in pipeline_modules
        for target in graph[module]
        if target not in layer_of or layer_of[target] >= layer_of[module]
    ]
    assert upward == []


def test_a_cycle_is_reported(tmp_path):
    """The walk sees imports inside functions (how sync and replay once
    imported each other)."""
    package = tmp_path / "workers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from workers.b import g\n")
    (package / "b.py").write_text("def g():\n    from workers import a\n")
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(import_graph(tmp_path)).prepare()


def test_enqueueing_loads_no_pipeline_module():
    """The web process imports the job declarations to enqueue
    (studio.media.jobs), but no worker module and not the bucket's client."""
    probe = (
        "import json, sys\n"
        "import studio.media.pipeline\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.startswith('workers') or m == 'studio.storage.gcs')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
