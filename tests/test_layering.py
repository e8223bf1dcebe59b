"""The sans-IO boundary: ``mmthreads/core`` imports no I/O library, ``harness`` no bridge code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mmthreads"

FORBIDDEN_IN_CORE = ("trio", "trio_websocket", "httpx", "hypercorn", "socket", "time")
FORBIDDEN_IN_HARNESS = ("mmthreads.core", "mmthreads.adapters", "mmthreads.runtime")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _offending(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


def test_core_is_sans_io() -> None:
    assert list((PACKAGE / "core").glob("*.py")), "core/ has no modules"
    assert _offending(PACKAGE / "core", FORBIDDEN_IN_CORE) == []


def test_core_dependencies_are_sans_io() -> None:
    # What core/ imports from the rest of mmthreads must be sans-IO as well.
    for module in ("mapping.py", "wire"):
        path = PACKAGE / module
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            bad = [
                n for n in _imports(file) if n.split(".")[0] in {"trio", "trio_websocket", "httpx"}
            ]
            assert bad == [], f"{file.name} imports {bad}"


def test_harness_is_independent_of_the_bridge() -> None:
    harness = PACKAGE / "harness"
    if not list(harness.rglob("*.py")):
        pytest.skip("no harness modules yet")
    assert _offending(harness, FORBIDDEN_IN_HARNESS) == []


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import trio\nfrom httpx import AsyncClient\n")
    assert _imports(tmp_path / "bad.py") == ["trio", "httpx"]
