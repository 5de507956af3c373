"""The architecture's rules, stated as tests: who may import whom, and how big a module may be.

* core/ never imports app/ or Qt (checked by really importing every core module in a fresh
  interpreter, and by reading every core file's imports, including those inside functions);
* app.train and app.landscape never import app.race, nor each other;
* app.views never imports a workspace (app.race, app.train, app.landscape);
* no module in core/ or app/ is over 600 lines.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
QT = ("PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6", "OpenGL")
WORKSPACES = ("app.race", "app.train", "app.landscape")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in the file (top level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in modules(package.replace(".", "/")):
        for name in sorted(imports(path)):
            if any(within(name, f) for f in forbidden):
                out.append(f"{module_name(path)} imports {name}")
    return out


def test_core_never_imports_app_or_qt_in_its_source():
    assert offenders("core", ("app", *QT)) == []


def test_importing_all_of_core_loads_no_qt():
    names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
    assert {"core.race.race", "core.train.training", "core.landscape.job"} <= set(names)
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {QT!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported Qt: {out.stdout}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("app.train", ("app.race", "app.landscape")),
        ("app.landscape", ("app.race", "app.train")),
        ("app.views", WORKSPACES),
    ],
)
def test_workspaces_and_views_keep_to_themselves(package, forbidden):
    assert offenders(package, forbidden) == []


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules("core") + modules("app")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_rules_catch_a_violation(tmp_path):
    """The checker itself: an import inside a function is seen, a relative one is not needed."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from app.race.racers import RacersTable\n")
    assert "app.race.racers" in imports(bad)
