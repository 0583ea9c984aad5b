"""The shape of the code: a domain core that neither the web nor the media
server leaks into, an acyclic import graph, and one media-engine boundary.

The import graph comes from grimp (the library under import-linter), built
from the source: imports inside functions count too. (Importing any studio
module loads the `studio` package, whose app factory needs Flask, so the
core is checked on its own imports, not on `sys.modules`.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
# The domain core: the stream status machine, keys, broadcasts, replays,
# the chat's rules and moderation, the commands a media server sends and
# the events the domain raises.
CORE = (
    "studio.core",
    "studio.core.commands",
    "studio.core.events",
    "studio.core.replays",
    "studio.core.segments",
    "studio.core.refusals",
    "studio.core.writes",
    "studio.core.text",
    "studio.streams.service",
    "studio.chat",
    "studio.chat.rules",
    "studio.chat.service",
    "studio.chat.moderation",
    "studio.streams.reconnect",
    "studio.streams.tickets",
    "studio.media.nodes",
    "studio.errors",
    "studio.transactions",
)
# What the core may rest on besides itself: the tables (plain SQLAlchemy
# models) and the metric definitions.
CORE_BASE = {"studio.models", "studio.metrics"}
# The only modules that may know an engine by name, and the settings that
# offer the choice (MEDIA_ENGINE and each engine's URL).
ENGINE_BOUNDARY = ROOT / "studio" / "media" / "engines"
SETTINGS = ROOT / "studio" / "config.py"
ENGINE_NAME = re.compile(r"srs|nginx", re.IGNORECASE)
# Names operators already depend on (alert rules, dashboards, Redis state of
# running reconcilers): kept as they are.
# `flask nodes nginx-map` names the proxy (nginx), not an engine.
STABLE_PUBLIC_NAMES = {"studio_srs_restarts_total", "studio:reconcile:srs-service", "nginx-map"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("studio", "workers", include_external_packages=True, cache_dir=None)


def test_the_domain_core_imports_no_flask(graph):
    """No core module imports Flask or a Flask extension, directly or through
    what it rests on (the models included)."""
    for module in CORE:
        reached = graph.find_upstream_modules(module) | graph.find_modules_directly_imported_by(
            module
        )
        flask_imports = {
            imported for imported in reached if imported.split(".")[0].startswith("flask")
        }
        assert not flask_imports, f"{module} reaches {sorted(flask_imports)}"


def test_the_domain_core_depends_on_no_surface_engine_or_worker(graph):
    """Everything the core imports, directly or not, is the core itself, the
    models or the metric definitions: no blueprint, no engine adapter, no
    Redis client, no job."""
    internal = {m for m in graph.modules if m.split(".")[0] in ("studio", "workers")}
    for module in CORE:
        reached = graph.find_upstream_modules(module) & internal
        outside = reached - set(CORE) - CORE_BASE
        assert not outside, f"{module} depends on {sorted(outside)}"


def test_no_import_cycles(graph):
    """No module of studio/ or workers/ imports itself back, even lazily."""
    cycles = []
    internal = sorted(m for m in graph.modules if m.split(".")[0] in ("studio", "workers"))
    for module in internal:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.append(" -> ".join((module, *back)))
    assert cycles == []


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _documentation(tree: ast.Module) -> set[int]:
    """String constants that are documentation: docstrings and OpenAPI
    `description=` texts."""
    found = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "description":
            found |= {id(part) for part in ast.walk(node.value) if isinstance(part, ast.Constant)}
    return found


def _words(node: ast.AST, documentation: set[int]) -> list[str]:
    """The names and string values a node puts in code."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.name, node.asname or ""]
    if isinstance(node, ast.keyword):
        return [node.arg or ""]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [] if id(node) in documentation else [node.value]
    return []


def engine_names_outside_the_boundary(root: Path = ROOT) -> list[str]:
    """`path:line: word` for every name or string in code (comments and
    documentation aside) that names an engine, outside the engine package."""
    found = []
    sources = sorted((root / "studio").rglob("*.py")) + sorted((root / "workers").rglob("*.py"))
    for path in sources:
        if path.is_relative_to(root / ENGINE_BOUNDARY.relative_to(ROOT)):
            continue
        if path == root / SETTINGS.relative_to(ROOT):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        documentation = _documentation(tree)
        for node in ast.walk(tree):
            for word in _words(node, documentation):
                if ENGINE_NAME.search(word) and word not in STABLE_PUBLIC_NAMES:
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {word!r}")
    return found


def test_no_module_outside_the_engine_boundary_names_an_engine():
    """Only studio/media/engines/ (and the settings offering the choice)
    name SRS or nginx-rtmp in code; comments and docs may."""
    assert engine_names_outside_the_boundary() == []


def test_the_engine_name_check_finds_a_leak(tmp_path):
    """The check above sees an engine named in code outside the boundary."""
    (tmp_path / "studio" / "hooks").mkdir(parents=True)
    (tmp_path / "workers").mkdir()
    (tmp_path / "studio" / "hooks" / "views.py").write_text(
        '"""Callbacks of SRS (documentation may say so)."""\n'
        "# nginx-rtmp in a comment is fine too\n"
        'if engine == "srs":\n    pass\n'
    )
    assert engine_names_outside_the_boundary(tmp_path) == ["studio/hooks/views.py:3: 'srs'"]
