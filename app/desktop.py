"""``losslab --install-desktop`` / ``--uninstall-desktop``: LossLab in the applications menu.

A freedesktop.org desktop entry (Linux desktops: GNOME, KDE, Xfce, ...) and its icon, written to
the user's data folder (``$XDG_DATA_HOME``, usually ``~/.local/share``, from platformdirs):
``applications/losslab.desktop`` and ``icons/hicolor/scalable/apps/losslab.svg``. Both come from
the installed package (``app/data``); the entry's ``Exec`` is the command that is running now,
so the menu starts this very install (a pipx one, a venv's). Running either command twice is
harmless: the second says there was nothing to do.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from app.resources import desktop_path, icon_path

NAME = "losslab"


@dataclass(frozen=True)
class Targets:
    entry: Path  # .../applications/losslab.desktop
    icon: Path  # .../icons/hicolor/scalable/apps/losslab.svg


def targets(data_home: Path | None = None) -> Targets:
    """Where the entry and the icon go: under ``data_home``, by default the user's data folder
    (``$XDG_DATA_HOME`` or ``~/.local/share``)."""
    if data_home is None:
        import platformdirs

        data_home = platformdirs.user_data_path()  # no app name: the XDG data home itself
    return Targets(
        data_home / "applications" / f"{NAME}.desktop",
        data_home / "icons" / "hicolor" / "scalable" / "apps" / f"{NAME}.svg",
    )


def launcher(argv0: str | None = None) -> list[str]:
    """The command that starts this install: the ``losslab`` script being run (not resolved:
    pipx's ``~/.local/bin/losslab`` survives upgrades), else this interpreter with ``-m app``."""
    path = Path(sys.argv[0] if argv0 is None else argv0)
    if path.name == NAME and path.is_file():
        return [str(path.absolute())]
    return [sys.executable, "-m", "app"]


def exec_value(argv: list[str]) -> str:
    """An ``Exec=`` value: arguments with reserved characters quoted as the spec says."""
    out = []
    for arg in argv:
        if re.search(r"[\s\"'\\><~|&;$*?#()`%=]", arg):
            arg = '"' + re.sub(r'(["`$\\])', r"\\\1", arg) + '"'
        out.append(arg.replace("%", "%%"))
    # the string escape rule comes on top of the quoting rule: a backslash is written twice
    return " ".join(out).replace("\\", "\\\\")


def entry_text(argv: list[str], icon: Path) -> str:
    """The shipped entry with this install's command and icon file filled in."""
    text = desktop_path().read_text(encoding="utf-8")
    text = re.sub(r"(?m)^Exec=.*$", lambda _: f"Exec={exec_value(argv)}", text)
    # an absolute icon path: shown at once, no icon-theme cache to refresh
    return re.sub(r"(?m)^Icon=.*$", lambda _: f"Icon={icon}", text)


def _platform_note() -> str | None:
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    return (
        "desktop entries are for Linux (freedesktop.org) desktops; on this system start "
        "LossLab with the `losslab` command"
    )


def install(data_home: Path | None = None, argv0: str | None = None, out=None) -> int:
    """Write the entry and the icon (only what differs); say what was written. 0 on success."""
    out = out or sys.stdout
    note = _platform_note()
    if note is not None:
        print(f"losslab: {note}", file=sys.stderr)
        return 2
    t = targets(data_home)
    try:
        files = {
            t.icon: icon_path().read_bytes(),
            t.entry: entry_text(launcher(argv0), t.icon).encode("utf-8"),
        }
    except OSError as exc:  # a damaged install: name the file
        print(f"losslab: cannot install the desktop entry: {exc}", file=sys.stderr)
        return 1
    for path, data in files.items():
        try:
            if path.is_file() and path.read_bytes() == data:
                print(f"up to date: {path}", file=out)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            print(f"losslab: cannot write {path}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path}", file=out)
    print(
        "LossLab is in your applications menu (remove it with losslab --uninstall-desktop)",
        file=out,
    )
    return 0


def uninstall(data_home: Path | None = None, out=None) -> int:
    """Remove the entry and the icon that :func:`install` wrote; say what was removed."""
    out = out or sys.stdout
    note = _platform_note()
    if note is not None:
        print(f"losslab: {note}", file=sys.stderr)
        return 2
    t = targets(data_home)
    for path in (t.entry, t.icon):
        try:
            path.unlink()
        except FileNotFoundError:
            print(f"not there (nothing to remove): {path}", file=out)
            continue
        except OSError as exc:
            print(f"losslab: cannot remove {path}: {exc}", file=sys.stderr)
            return 1
        print(f"removed {path}", file=out)
    return 0
