"""The benchmark scripts import the aggregator by module path; after a move of modules those
imports must still resolve, though no test runs most of the scripts (they need nginx, wrk, the
bench extras or minutes)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

from .conftest import REPO


def _aggregator_imports(path: Path) -> list[tuple[int, str, str]]:
    """Every ``from aggregator… import NAME`` in a script, top level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aggregator"):
            found += [(node.lineno, node.module or "", alias.name) for alias in node.names]
    return found


def test_every_aggregator_import_in_bench_resolves() -> None:
    """A module or name the restructuring moved is reported with its script and line."""
    missing = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        for line, module, name in _aggregator_imports(path):
            try:
                mod = importlib.import_module(module)
            except ImportError as exc:
                missing.append(f"{path.relative_to(REPO)}:{line}: {module}: {exc}")
                continue
            is_package = hasattr(mod, "__path__")
            if not hasattr(mod, name) and not (
                is_package and importlib.util.find_spec(f"{module}.{name}") is not None
            ):
                missing.append(f"{path.relative_to(REPO)}:{line}: {module} has no {name}")
    assert missing == []


def _module_attributes(path: Path) -> list[tuple[int, str, str]]:
    """``mod.name`` in a script where ``mod`` came from ``from aggregator… import mod``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aggregator"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if importlib.util.find_spec(node.module or "") and _is_module(full):
                    modules[alias.asname or alias.name] = full
    return [
        (node.lineno, modules[node.value.id], node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in modules
    ]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_every_attribute_of_an_imported_aggregator_module_exists() -> None:
    """``dedupe.normalize_text`` after normalize_text moved to fingerprint.py: found here, not
    by the one who runs the benchmark next."""
    missing = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        for line, module, attr in _module_attributes(path):
            if not hasattr(importlib.import_module(module), attr):
                missing.append(f"{path.relative_to(REPO)}:{line}: {module} has no {attr}")
    assert missing == []
