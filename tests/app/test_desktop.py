"""`losslab --install-desktop` / `--uninstall-desktop`: the entry and icon in the user's
applications menu (freedesktop paths from platformdirs), idempotent, saying what was done."""

import configparser

import pytest

from app import desktop
from app.resources import icon_path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The user's data folder ($XDG_DATA_HOME, which platformdirs reads) in a temporary one."""
    data = tmp_path / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data


def _entry(path):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_install_writes_entry_and_icon_then_says_it_is_up_to_date(home, tmp_path, capsys):
    script = tmp_path / "my bin" / "losslab"  # a pipx-like launcher, with a space in its path
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    assert desktop.install(argv0=str(script)) == 0
    out = capsys.readouterr().out
    entry_file = home / "applications" / "losslab.desktop"
    icon_file = home / "icons" / "hicolor" / "scalable" / "apps" / "losslab.svg"
    assert f"wrote {entry_file}" in out and f"wrote {icon_file}" in out
    assert icon_file.read_bytes() == icon_path().read_bytes()
    entry = _entry(entry_file)
    assert entry["Type"] == "Application" and entry["Name"] == "LossLab"
    assert entry["Exec"] == f'"{script}"'  # quoted: the path has a space
    assert entry["Icon"] == str(icon_file)
    assert entry["StartupWMClass"] == "LossLab" and entry["Terminal"] == "false"
    before = entry_file.stat().st_mtime_ns
    assert desktop.install(argv0=str(script)) == 0
    again = capsys.readouterr().out
    assert f"up to date: {entry_file}" in again and "wrote" not in again
    assert entry_file.stat().st_mtime_ns == before


def test_uninstall_removes_both_and_twice_is_harmless(home, capsys):
    assert desktop.install() == 0
    capsys.readouterr()
    assert desktop.uninstall() == 0
    out = capsys.readouterr().out
    assert out.count("removed ") == 2
    assert not (home / "applications" / "losslab.desktop").exists()
    assert not (home / "icons" / "hicolor" / "scalable" / "apps" / "losslab.svg").exists()
    assert desktop.uninstall() == 0
    assert capsys.readouterr().out.count("not there (nothing to remove)") == 2


def test_the_command_line_flags(cli, home):
    r = cli("--install-desktop")
    assert r.returncode == 0, r.stderr
    assert str(home / "applications" / "losslab.desktop") in r.stdout
    # not run through a `losslab` script (pytest here): this interpreter starts the app
    assert "-m app" in _entry(home / "applications" / "losslab.desktop")["Exec"]
    r = cli("--uninstall-desktop")
    assert r.returncode == 0 and "removed" in r.stdout
    r = cli("--install-desktop", "--uninstall-desktop")
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_an_unwritable_menu_folder_is_said_not_raised(home, capsys):
    home.mkdir()
    (home / "applications").write_text("a file where the folder should be")
    assert desktop.install() == 1
    assert "cannot write" in capsys.readouterr().err


def test_a_damaged_install_names_the_missing_file(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(desktop, "icon_path", lambda: tmp_path / "data" / "icon.svg")
    assert desktop.install() == 1
    assert str(tmp_path / "data" / "icon.svg") in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["/usr/bin/losslab"], "/usr/bin/losslab"),
        (["/opt/my apps/python", "-m", "app"], '"/opt/my apps/python" -m app'),
        (['/a"b$c'], '"/a\\\\"b\\\\$c"'),  # escaped, then the backslashes doubled
        (["/x/100%"], '"/x/100%%"'),
    ],
)
def test_exec_values_are_quoted_as_the_spec_says(argv, value):
    assert desktop.exec_value(argv) == value


def test_the_shipped_entry_is_a_valid_desktop_file():
    from app.resources import desktop_path

    entry = _entry(desktop_path())
    for key in ("Type", "Name", "Exec", "Icon", "Categories"):
        assert entry[key], key
    assert entry["Categories"].endswith(";")


def test_examples_prints_the_installed_examples_folder(cli):
    from app.resources import examples_dir

    r = cli("--examples")
    assert r.returncode == 0 and r.stdout.strip() == str(examples_dir())
    assert (examples_dir() / "mlp_regression.py").is_file()


def test_the_installed_entry_passes_desktop_file_validate(home):
    import shutil
    import subprocess

    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate is not installed (Debian: desktop-file-utils)")
    assert desktop.install() == 0
    r = subprocess.run(
        [tool, str(home / "applications" / "losslab.desktop")], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr
