"""The Train controls' whole-number boxes (epochs, batch size, seed, images), checked as they
are typed.

A QSpinBox takes only digits within its range, but it can be left empty (or holding a lone
"-"): it then still reports its last value, and Start trained 999,999 epochs under an
empty Epochs box. Such a box turns red, the reason joins the others above Start, and Start
refuses until it holds a number again.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6 import QtWidgets

from app.widgets import ERROR_RED

# A border alone makes Qt draw the whole box from the style sheet, and the up and down arrows
# vanished: the buttons are placed again, so they stay (in both themes)
RED = (
    f"QSpinBox {{ border: 1px solid {ERROR_RED}; border-radius: 3px; padding: 1px 18px 1px 3px; }}"
    " QSpinBox::up-button { subcontrol-origin: border; subcontrol-position: top right;"
    " width: 16px; }"
    " QSpinBox::down-button { subcontrol-origin: border; subcontrol-position: bottom right;"
    " width: 16px; }"
)


def watch_spins(boxes: dict[str, QtWidgets.QSpinBox], changed: Callable[[], None]) -> None:
    """Mark each box red while its text is no number, and call ``changed`` as it is typed.

    The box sets its own text with its signals blocked (a value set by the program, the last
    good value put back when it loses the focus): its value and editing signals are watched
    too, so the mark never outlives the empty text."""
    for box in boxes.values():

        def typed(*_args, box=box) -> None:
            _mark(box)
            changed()

        box.lineEdit().textChanged.connect(typed)
        box.valueChanged.connect(typed)
        box.editingFinished.connect(typed)


def _mark(box: QtWidgets.QSpinBox) -> None:
    style = "" if box.hasAcceptableInput() else RED
    if box.styleSheet() != style:
        box.setStyleSheet(style)


def spin_problems(boxes: dict[str, QtWidgets.QSpinBox]) -> list[str]:
    """``"Epochs: type a whole number, 1 .. 1,000,000"`` for each shown box left without one
    (the marks are brought up to date first)."""
    for box in boxes.values():
        _mark(box)
    return [
        f"{label}: type a whole number, {box.minimum():,} .. {box.maximum():,}"
        for label, box in boxes.items()
        if box.isVisibleTo(box.window()) and box.isEnabled() and not box.hasAcceptableInput()
    ]


__all__ = ["spin_problems", "watch_spins"]
