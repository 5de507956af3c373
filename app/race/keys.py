"""The Race's keys (Space, Right, R) as actions that belong to the Race tab.

The actions have the ``WidgetWithChildrenShortcut`` context on the workspace, so they fire only
while the keyboard focus is inside it (the Race tab is shown): Space on Train's Start button
presses that button. Inside the workspace a focused control keeps the keys it uses itself: the
workspace accepts the ``ShortcutOverride`` Qt sends before a shortcut fires, which hands the key
to the control as an ordinary key press (how QLineEdit keeps its letters).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

Key = QtCore.Qt.Key
RACE_KEYS = {Key.Key_Space: "Space", Key.Key_Right: "Right", Key.Key_R: "R"}


def wants_key(widget: QtWidgets.QWidget | None, key: int) -> bool:
    """True when the focused ``widget`` uses ``key`` itself (typing, moving, pressing)."""
    if widget is None:
        return False
    if isinstance(widget, QtWidgets.QLineEdit | QtWidgets.QAbstractSpinBox):
        return not widget.isReadOnly()
    if isinstance(widget, QtWidgets.QTextEdit | QtWidgets.QPlainTextEdit):
        return not widget.isReadOnly()
    if isinstance(widget, QtWidgets.QComboBox | QtWidgets.QAbstractItemView):
        return True  # Space opens or ticks, arrows move, letters jump to an item
    if isinstance(widget, QtWidgets.QAbstractSlider):
        return key != Key.Key_Space and key != Key.Key_R  # the arrows move the slider
    if isinstance(widget, QtWidgets.QAbstractButton):
        return key == Key.Key_Space  # Space presses the button
    return False


class RaceKeys(QtCore.QObject):
    """Builds the Race's actions on ``workspace`` and keeps focused controls' keys theirs."""

    def __init__(self, workspace: QtWidgets.QWidget, controller) -> None:
        super().__init__(workspace)
        self.workspace = workspace
        c = controller
        self.actions: list[QtGui.QAction] = []
        for text, key, tip, slot, name in (
            ("Play / pause", "Space", "play or pause the race", c.toggle, "race_play"),
            ("Step", "Right", "one step of every racer", lambda: c.step(1), "race_step"),
            ("Reset", "R", "back to the start", c.reset, "race_reset"),
        ):
            act = QtGui.QAction(text, workspace)
            act.setObjectName(name)
            act.setShortcut(QtGui.QKeySequence(key))
            act.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setToolTip(f"{tip} ({key}; on the Race tab)")
            act.triggered.connect(self._guarded(slot))
            workspace.addAction(act)
            self.actions.append(act)
        # The filter sits on the focused widget alone (moved as the focus moves): an
        # application-wide filter would run Python for every event of every widget.
        self._watched: QtWidgets.QWidget | None = None
        QtWidgets.QApplication.instance().focusChanged.connect(self._focus_changed)
        self._focus_changed(None, QtWidgets.QApplication.focusWidget())

    def _focus_changed(self, _old, new: QtWidgets.QWidget | None) -> None:
        if self._watched is not None:
            with contextlib.suppress(RuntimeError):  # deleted (a form rebuilt under it)
                self._watched.removeEventFilter(self)
            self._watched = None
        if new is not None and self.workspace.isAncestorOf(new):
            new.installEventFilter(self)
            self._watched = new

    def _guarded(self, slot: Callable[[], object]) -> Callable[[], None]:
        def run(*_args) -> None:
            if self.workspace.isVisible():  # a menu click while another tab is shown: no
                slot()

        return run

    def eventFilter(self, obj: QtCore.QObject, event: QtCore.QEvent) -> bool:  # noqa: N802
        """Before a race key fires as a shortcut, Qt asks the focused widget whether it wants
        the key (ShortcutOverride); answer yes for a control inside the workspace that uses
        it."""
        if (
            event.type() == QtCore.QEvent.Type.ShortcutOverride
            and event.key() in RACE_KEYS
            and event.modifiers() == QtCore.Qt.KeyboardModifier.NoModifier
            and obj is self._watched
            and wants_key(obj, event.key())
        ):
            event.accept()
            return True
        return False
