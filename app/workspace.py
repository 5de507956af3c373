"""What every workspace offers the main window: one small interface.

A workspace is a QWidget with

* ``message = Signal(str)``: a line for the status bar;
* ``set_theme(dark: bool)``: restyle its plots for the light or the dark theme;
* ``shutdown()``: stop its timers and join its threads (the window is closing);
* ``exports() -> list[Export]``: what File > Export offers while its tab is shown.

The main window knows nothing else of a workspace's insides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Export:
    """One entry of File > Export."""

    label: str  # menu text, with its & accelerator
    filter: str  # file-dialog filter, "PNG (*.png)"
    default: str  # suggested file name; its suffix is added when the user types none
    write: Callable[..., object]  # write(path[, size]); raises app.export.ExportError
    ask_size: bool = False  # ask for the picture's size in pixels first


@runtime_checkable
class Workspace(Protocol):
    def set_theme(self, dark: bool) -> None: ...

    def shutdown(self) -> None: ...

    def exports(self) -> list[Export]: ...
