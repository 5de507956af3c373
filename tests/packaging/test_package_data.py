"""The installed package carries everything it reads at run time, found through the package
(importlib.resources), never through the repository; a damaged install says which file is wrong.

The real wheel, built and installed in a fresh venv, is exercised by .ci/wheel-check
(`make wheel-check`, run by CI after `make test`).
"""

import fnmatch
import shutil
from pathlib import Path

import pytest

import app.resources as resources
import core.race.session as session

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
# run-time data folders -> the package that owns them
DATA = {"app/data": "app", "core/race/presets": "core.race", "core/train/examples": None}


def _package_data() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]


@pytest.mark.parametrize("folder", sorted(DATA))
def test_every_run_time_file_goes_into_the_wheel(folder):
    """Each data file is matched by pyproject's package-data (or is a module, which setuptools
    ships anyway): a file added to these folders and forgotten in pyproject fails here."""
    files = [p for p in (ROOT / folder).iterdir() if p.is_file() and p.name != "__pycache__"]
    assert files, folder
    package = DATA[folder]
    for f in files:
        if f.suffix == ".py":
            continue  # a module of a (namespace) package: found by packages.find
        rel = f.relative_to(ROOT / package.replace(".", "/")).as_posix()
        patterns = _package_data().get(package, [])
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), (rel, patterns)


def test_run_time_files_are_found_inside_the_packages():
    app_dir = Path(resources.__file__).parent
    core_dir = Path(session.__file__).parents[1]
    assert resources.icon_path() == app_dir / "data" / "icon.svg"
    assert resources.desktop_path() == app_dir / "data" / "losslab.desktop"
    assert resources.examples_dir() == core_dir / "train" / "examples"
    assert session.PRESET_DIR == core_dir / "race" / "presets"
    assert resources.install_problems() == []
    assert len(session.preset_names()) >= 6
    for name in resources.EXAMPLES:
        assert (resources.examples_dir() / name).is_file()


def test_no_run_time_code_reaches_into_the_repository():
    """`parent.parent` / `parents[2]` from a module lead outside the package in an install."""
    offenders = []
    for package in ("app", "core"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "parent.parent" in text or "parents[" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.fixture
def damaged_presets(tmp_path, monkeypatch):
    """A copy of the presets with one unreadable and one deleted, as the install."""
    folder = tmp_path / "presets"
    shutil.copytree(session.PRESET_DIR, folder)
    (folder / "lr_too_high.json").write_text("{ not json", encoding="utf-8")
    (folder / "momentum_overshoot.json").write_bytes(b"\xff\xfe\x00garbage")
    monkeypatch.setattr(session, "PRESET_DIR", folder)
    return folder


def test_a_damaged_preset_is_named(damaged_presets):
    problems = session.preset_problems()
    assert len(problems) == 2
    assert any(str(damaged_presets / "lr_too_high.json") in p and "not JSON" in p for p in problems)
    assert any("momentum_overshoot.json" in p for p in problems)
    assert "lr_too_high" in session.preset_names()  # still listed: the menu says it is damaged


def test_a_missing_presets_folder_is_named_not_an_empty_list(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "PRESET_DIR", tmp_path / "gone")
    assert session.preset_problems() == [f"the presets folder is missing: {tmp_path / 'gone'}"]
    (tmp_path / "gone").mkdir()
    assert "holds no preset" in session.preset_problems()[0]


def test_a_missing_icon_desktop_file_or_example_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "data_dir", lambda: tmp_path / "data")
    examples = tmp_path / "examples"
    shutil.copytree(resources.examples_dir(), examples)
    (examples / "resnet_bn.py").unlink()
    monkeypatch.setattr(resources, "examples_dir", lambda: examples)
    problems = resources.install_problems()
    assert problems == [
        f"missing file: {tmp_path / 'data' / 'icon.svg'}",
        f"missing file: {tmp_path / 'data' / 'losslab.desktop'}",
        f"missing file: {examples / 'resnet_bn.py'}",
    ]


@pytest.mark.slow  # the whole window
def test_the_window_says_which_files_are_missing(qtbot, tmp_path, monkeypatch, damaged_presets):
    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow

    monkeypatch.setattr(resources, "data_dir", lambda: tmp_path / "nothing")
    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    qtbot.addWidget(w)
    try:
        box = w.findChild(QtWidgets.QMessageBox, "installProblems")
        assert box is not None and box.isVisible() and not box.isModal()
        details = box.informativeText()
        assert str(damaged_presets / "lr_too_high.json") in details
        assert str(tmp_path / "nothing" / "icon.svg") in details
        presets = w.race.findChild(QtWidgets.QComboBox, "presets")
        assert "missing or damaged" in presets.itemText(0)
        assert "lr_too_high.json" in presets.toolTip()
        assert "installation is incomplete" in w.statusBar().currentMessage()
    finally:
        w.close()


def test_a_sound_install_shows_no_warning(main_window):
    from PySide6 import QtWidgets

    assert main_window.findChild(QtWidgets.QMessageBox, "installProblems") is None
    assert main_window.install_warning is None
    assert not main_window.windowIcon().isNull()


def test_the_app_and_its_taskbar_entry_have_the_icon(qapp):
    from PySide6 import QtGui

    from app.main import set_identity

    set_identity(qapp)
    assert not qapp.windowIcon().isNull()
    assert QtGui.QGuiApplication.desktopFileName() == "losslab"
