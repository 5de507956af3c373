"""The files LossLab reads at run time, found inside the installed package.

Everything the app needs ships in the package, so a wheel (``pipx install``) works the same as a
checkout: the icon and the desktop entry in ``app/data``, the presets in ``core/race/presets``
(read by :mod:`core.race.session`), the example experiment files in ``core/train/examples``.
They are found with :mod:`importlib.resources`; pip installs wheels unzipped, so each is a real
file (Qt and ``load_experiment`` want paths).

The README is not package data: its pictures would double the wheel. The help reads it from a
source checkout when there is one, else from the installed package's metadata (the same text,
which is the project's long description), without the pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

DIST = "losslab"
ICON = "icon.svg"
DESKTOP = "losslab.desktop"
EXAMPLES = ("mlp_regression.py", "resnet_bn.py", "tutorial_cnn.py")


def data_dir() -> Path:
    """``app/data``: the icon and the desktop entry."""
    return Path(str(resources.files("app") / "data"))


def icon_path() -> Path:
    return data_dir() / ICON


def desktop_path() -> Path:
    return data_dir() / DESKTOP


def examples_dir() -> Path:
    """The example experiment files (``losslab landscape --experiment`` and Model file...)."""
    return Path(str(resources.files("core.train") / "examples"))


def install_problems() -> list[str]:
    """One message per run-time file that is missing or damaged (empty when all is well).

    A damaged install then says which file to look for, instead of showing an empty menu.
    """
    from core.race.session import preset_problems  # core reads (and checks) its own presets

    return preset_problems() + file_problems()


def file_problems() -> list[str]:
    """The missing ones among the icon, the desktop entry and the examples."""
    files = (icon_path(), desktop_path(), *(examples_dir() / n for n in EXAMPLES))
    return [f"missing file: {path}" for path in files if not path.is_file()]


@dataclass(frozen=True)
class Readme:
    """The README's Markdown, and the folder its pictures are relative to (None: no pictures,
    they are not installed)."""

    text: str
    folder: Path | None
    source: str  # where it came from, for messages


def checkout_readme() -> Path:
    """README.md of a source checkout (or an editable install), beside the packages."""
    return Path(str(resources.files("app"))).parent / "README.md"


def find_readme(path: Path | None = None) -> Readme | None:
    """The README: ``path`` when given; else the checkout's, with its pictures; else the
    installed package's long description (no pictures); None when none can be read."""
    if path is not None:
        return _read(path)
    checkout = checkout_readme()
    if _is_our_checkout(checkout.parent) and (found := _read(checkout)) is not None:
        return found
    try:
        text = metadata.metadata(DIST).get_payload()  # the Markdown long description
    except metadata.PackageNotFoundError:
        return None
    if not isinstance(text, str) or not text.strip():
        return None
    return Readme(text, None, f"the installed {DIST} package's description")


def _read(path: Path) -> Readme | None:
    try:
        return Readme(path.read_text(encoding="utf-8"), path.parent, str(path))
    except (OSError, UnicodeDecodeError):
        return None


def _is_our_checkout(folder: Path) -> bool:
    """In site-packages a README.md beside the packages would be another project's."""
    try:
        return f'name = "{DIST}"' in (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
