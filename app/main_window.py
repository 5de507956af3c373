"""The main window: three workspaces in tabs, menus, settings, sessions and exports."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.theme import THEMES, apply_theme
from core import __version__

# Everything that imports torch is imported inside methods: with ``lazy=True`` the window
# paints first and loads PyTorch (1.5 s, plus 1.5-2 s for torch._dynamo on the first
# optimizer) right after, instead of showing nothing for three seconds.

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHORTCUTS = [
    ("Space", "play / pause"),
    ("Right", "one step"),
    ("R", "reset the race"),
    ("Ctrl+O", "open a session"),
    ("Ctrl+S", "save the session"),
    ("Ctrl+E", "export the surface as PNG"),
    ("Ctrl+Return", "start training"),
    ("Ctrl+P", "pause / resume training"),
    ("Ctrl+.", "stop training"),
    ("Ctrl+Q", "quit"),
]


def parse_size(text: str) -> tuple[int, int]:
    """'1600x1200' -> (1600, 1200); ValueError with the allowed range otherwise."""
    try:
        w, h = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise ValueError(f"size must look like 1600x1200, got {text!r}") from None
    if not (64 <= w <= 8000 and 64 <= h <= 8000):
        raise ValueError(f"size {w}x{h} out of range (64 .. 8000 each way)")
    return w, h


class MainWindow(QtWidgets.QMainWindow):
    """LossLab's main window.

    ``lazy=True`` (the app) paints the window before loading PyTorch and builds the Race
    workspace on the next turn of the event loop; ``ready`` fires then. ``lazy=False`` (tests,
    exports) builds everything before returning.
    """

    ready = QtCore.Signal()
    firstPainted = QtCore.Signal()

    def __init__(
        self, settings: QtCore.QSettings | None = None, restore: bool = True, lazy: bool = False
    ) -> None:
        super().__init__()
        self.settings = settings or QtCore.QSettings()
        self.race = None
        self._restore_session = restore
        self.setWindowTitle(f"LossLab {__version__}")
        self.setWindowIcon(QtGui.QIcon(str(ASSETS / "icon.svg")))
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(
            self._placeholder("Race", "Loading PyTorch and the Race workspace..."), "Race"
        )
        self.tabs.addTab(self._placeholder("Train", "Loading..."), "Train")
        self.tabs.addTab(self._placeholder("Landscape", "Loading..."), "Landscape")
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage("Loading PyTorch...")
        self.resize(1440, 900)
        geometry = self.settings.value("geometry") if restore else None
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)
        theme = str(self.settings.value("theme", "system"))
        self.theme = theme if theme in THEMES else "system"
        self.dark = apply_theme(QtWidgets.QApplication.instance(), self.theme)
        self._lazy = lazy
        self.first_paint: float | None = None  # time.time() of the first paint
        if not lazy:
            self._build()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        super().paintEvent(event)
        if self.first_paint is None:
            self.first_paint = time.time()
            self.firstPainted.emit()
            if self._lazy:  # the window is on screen: now load PyTorch and the workspace
                QtCore.QTimer.singleShot(0, self._build)

    @property
    def is_ready(self) -> bool:
        return self.race is not None

    def _build(self) -> None:
        from app.race.workspace import RaceWorkspace

        self.race = RaceWorkspace()
        self.race.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        old = self.tabs.widget(0)
        self.tabs.removeTab(0)
        old.deleteLater()
        self.tabs.insertTab(0, self.race, "Race")
        from app.train.workspace import TrainWorkspace

        self.train = TrainWorkspace()
        self.train.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.train.landscape_requested.connect(self.open_in_landscape)
        from app.landscape.workspace import LandscapeWorkspace

        self.landscape = LandscapeWorkspace()
        self.landscape.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        for index, widget, name in ((1, self.train, "Train"), (2, self.landscape, "Landscape")):
            old = self.tabs.widget(index)
            self.tabs.removeTab(index)
            old.deleteLater()
            self.tabs.insertTab(index, widget, name)
        self.tabs.setCurrentIndex(0)
        self.tabs.currentChanged.connect(self._tab_changed)
        self._tab_changed(0)
        self._menus()
        self.set_theme(self.theme)
        if self._restore_session:
            self._restore()
        self.ready.emit()

    # --- menus --------------------------------------------------------------------------

    def _action(self, menu, text, slot, shortcut=None) -> QtGui.QAction:
        act = menu.addAction(text)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        return act

    def _menus(self) -> None:
        c = self.race.c
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open session...", self.open_session_dialog, "Ctrl+O")
        self._action(m, "&Save session...", self.save_session_dialog, "Ctrl+S")
        ex = m.addMenu("&Export")
        self._action(ex, "Surface view as &PNG...", self._export_png_dialog, "Ctrl+E")
        self._action(
            ex,
            "Surface view as &SVG...",
            lambda: self._export_dialog("SVG (*.svg)", ".svg", self.export_surface_svg),
        )
        self._action(
            ex,
            "&Window as PNG...",
            lambda: self._export_dialog("PNG (*.png)", ".png", self.export_window_png),
        )
        self._action(
            ex,
            "Race as animated &GIF...",
            lambda: self._export_dialog("GIF (*.gif)", ".gif", self.export_gif),
        )
        self._action(
            ex,
            "Trajectories as &CSV...",
            lambda: self._export_dialog("CSV (*.csv)", ".csv", self.export_csv),
        )
        self._action(
            ex,
            "Trajectories as &JSON...",
            lambda: self._export_dialog("JSON (*.json)", ".json", self.export_json),
        )
        m.addSeparator()
        self._action(m, "&Quit", self.close, "Ctrl+Q")
        t = self.menuBar().addMenu("&Train")
        tw = self.train
        self._action(t, "&Start", self._start_training, "Ctrl+Return")
        self._action(t, "&Pause / resume", tw.toggle_pause, "Ctrl+P")
        self._action(t, "S&top", tw.stop, "Ctrl+.")
        t.addSeparator()
        self._action(t, "&Open runs...", tw.open_dialog)
        self._action(t, "Export curves as &CSV...", lambda: tw.export_dialog("csv"))
        self._action(t, "Export curves as &JSON...", lambda: tw.export_dialog("json"))
        self._action(t, "Export &plots as PNG or SVG...", lambda: tw.export_dialog("image"))
        r = self.menuBar().addMenu("&Race")
        self._action(r, "Play / pause", c.toggle, "Space")
        self._action(r, "Step", lambda: c.step(1), "Right")
        self._action(r, "Reset", c.reset, "R")
        v = self.menuBar().addMenu("&View")
        themes = v.addMenu("&Theme")
        group = QtGui.QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            act = themes.addAction(name.capitalize())
            act.setCheckable(True)
            act.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(act)
            self.theme_actions[name] = act
        h = self.menuBar().addMenu("&Help")
        self._action(h, "&Keyboard shortcuts", self._show_shortcuts)
        self._action(h, "&About LossLab", self._about)

    def _tab_changed(self, index: int) -> None:
        hints = {
            0: "Click the surface to set the start; Space plays the race",
            1: "Choose a task and press Start (Ctrl+Return); runs stay in the list to compare",
            2: "Compute the landscape of a trained run; hover the path for true and projected loss",
        }
        if index in hints:
            self.statusBar().showMessage(hints[index])

    def _start_training(self) -> None:
        self.tabs.setCurrentWidget(self.train)
        self.train.start()

    def open_in_landscape(self, run) -> None:
        """A Train run's best checkpoint and trajectory, handed to the Landscape tab."""
        self.landscape.open_run(run)
        self.tabs.setCurrentWidget(self.landscape)

    @staticmethod
    def _placeholder(name: str, text: str) -> QtWidgets.QWidget:
        label = QtWidgets.QLabel(f"<h2>{name}</h2><p>{text}</p>")
        label.setWordWrap(True)
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setMargin(40)
        return label

    def set_theme(self, theme: str) -> None:
        app = QtWidgets.QApplication.instance()
        self.theme = theme
        self.dark = apply_theme(app, theme)
        self.race.view.set_theme(self.dark)
        self.race.loss.set_theme(self.dark)
        self.train.set_theme(self.dark)
        self.landscape.set_theme(self.dark)
        self.settings.setValue("theme", theme)
        self.theme_actions[theme].setChecked(True)

    def _show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table>")

    def _about(self) -> None:
        QtWidgets.QMessageBox.about(
            self,
            "About LossLab",
            f"<h3>LossLab {__version__}</h3><p>See how loss functions and optimizers really "
            "behave: real torch.optim optimizers on real PyTorch.</p>",
        )

    # --- settings -----------------------------------------------------------------------

    def _restore(self) -> None:
        from core.race.session import RaceSession, SessionError

        text = self.settings.value("last_session")
        if text:
            try:
                self.race.c.apply_session(RaceSession.from_dict(json.loads(str(text))))
            except (SessionError, ValueError):
                self.statusBar().showMessage("The last session could not be restored", 6000)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.settings.setValue("geometry", self.saveGeometry())
        if self.race is not None:
            self.race.shutdown()
            self.train.shutdown()
            self.landscape.shutdown()
            self.settings.setValue("last_session", json.dumps(self.race.c.session().to_dict()))
        self.settings.sync()
        super().closeEvent(event)

    # --- sessions -----------------------------------------------------------------------

    def open_session(self, path: str) -> bool:
        from core.race.session import SessionError, load_session

        try:
            session = load_session(path)
            self.race.c.apply_session(session)
        except (SessionError, ValueError) as exc:
            QtWidgets.QMessageBox.warning(self, "Cannot open session", str(exc))
            return False
        self.statusBar().showMessage(f"Opened {path}", 6000)
        return True

    def save_session(self, path: str) -> bool:
        from core.race.session import save_session

        try:
            save_session(path, self.race.c.session())
        except OSError as exc:
            QtWidgets.QMessageBox.warning(self, "Cannot save session", str(exc))
            return False
        self.statusBar().showMessage(f"Saved {path}", 6000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open session", "", "LossLab session (*.json)"
        )
        if path:
            self.open_session(path)

    def save_session_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save session", "race.json", "LossLab session (*.json)"
        )
        if path:
            self.save_session(path if path.endswith(".json") else path + ".json")

    # --- exports ------------------------------------------------------------------------

    def _export_dialog(self, filt: str, suffix: str, write, *args) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export", f"race{suffix}", filt)
        if path:
            self._guarded(write, path if path.endswith(suffix) else path + suffix, *args)

    def _export_png_dialog(self) -> None:
        from app.export import ask_png_size

        size = ask_png_size(self)
        if size is not None:
            self._export_dialog("PNG (*.png)", ".png", self.export_surface_png, size)

    def _guarded(self, write, *args) -> bool:
        from app import export

        try:
            write(*args)
        except export.ExportError as exc:
            QtWidgets.QMessageBox.warning(self, "Export failed", str(exc))
            return False
        self.statusBar().showMessage(f"Exported {args[0]}", 6000)
        return True

    def _offscreen(self, size: tuple[int, int]):
        from app.race.render import OffscreenView

        view = OffscreenView(*size, dark=self.dark)
        view.show_race(
            self.race.c.race, self.race.c.colours(), self.race.basin_rgba, self.race.view.scale
        )
        return view

    def export_surface_png(self, path: str, size: tuple[int, int] = (1600, 1200)) -> None:
        from app import export

        view = self._offscreen(size)
        try:
            export.write_png(path, view.image())
        finally:
            view.close()

    def export_surface_svg(self, path: str) -> None:
        from app import export

        view = self._offscreen((1200, 900))
        try:
            export.atomic_write(path, view.svg())
        finally:
            view.close()

    def export_window_png(self, path: str) -> None:
        from app import export

        export.write_png(path, self.grab().toImage())

    def export_gif(self, path: str, frames: int = 120, size=(800, 600)) -> None:
        from app import export
        from app.race.render import race_gif

        c = self.race.c
        total = c.race.step_count or min(300, c.max_steps)
        progress = QtWidgets.QProgressDialog("Rendering frames...", "", 0, frames, self)
        progress.setCancelButton(None)
        progress.setMinimumDuration(300)
        try:
            data = race_gif(
                c.surface,
                c.specs,
                c.start,
                c.colours(),
                total,
                frames,
                size,
                self.dark,
                self.race.view.scale,
                lambda i, n: progress.setValue(i),
            )
            export.atomic_write(path, data)
        finally:
            progress.close()

    def export_csv(self, path: str) -> None:
        from app import export

        export.atomic_write(path, export.csv_bytes(self.race.c.race))

    def export_json(self, path: str) -> None:
        from app import export

        export.atomic_write(
            path, export.json_bytes(self.race.c.race, self.race.c.session().to_dict())
        )
