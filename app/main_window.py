"""The main window: three workspaces in tabs, menus, settings, sessions and exports."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.help import TOURS, ReadmeDialog, TourDialog
from app.recent import RecentFiles
from app.resources import file_problems, icon_path
from app.theme import THEMES, apply_theme
from app.widgets import fit_screen, open_path, save_path
from app.workspace import Export, Workspace
from core import __version__

# Everything that imports torch is imported inside methods: with ``lazy=True`` the window
# paints first and loads PyTorch (1.5 s, plus 1.5-2 s for torch._dynamo on the first
# optimizer) right after, instead of showing nothing for three seconds.

SHORTCUTS = [
    ("Space", "play / pause (Race tab)"),
    ("Right", "one step (Race tab)"),
    ("R", "reset the race (Race tab)"),
    ("Ctrl+O", "open a session"),
    ("Ctrl+S", "save the session"),
    ("Ctrl+E", "export the current tab's picture"),
    ("Ctrl+Return", "start training"),
    ("Ctrl+P", "pause / resume training"),
    ("Ctrl+.", "stop training"),
    ("F1", "a guided tour of the shown tab"),
    ("Ctrl+Q", "quit"),
]


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
        self.setWindowIcon(QtGui.QIcon(str(icon_path())))  # a missing one: install_problems
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(
            self._placeholder("Race", "Loading PyTorch and the Race workspace..."), "Race"
        )
        self.tabs.addTab(self._placeholder("Train", "Loading..."), "Train")
        self.tabs.addTab(self._placeholder("Landscape", "Loading..."), "Landscape")
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage("Loading PyTorch...")
        self.recent = RecentFiles(self.settings)
        fit_screen(self, 1440, 900)
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

        self.train = TrainWorkspace(settings=self.settings)
        self.train.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.train.landscape_requested.connect(self.open_in_landscape)
        from app.landscape.workspace import LandscapeWorkspace

        self.landscape = LandscapeWorkspace(settings=self.settings)
        self.landscape.message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        for index, widget, name in ((1, self.train, "Train"), (2, self.landscape, "Landscape")):
            old = self.tabs.widget(index)
            self.tabs.removeTab(index)
            old.deleteLater()
            self.tabs.insertTab(index, widget, name)
        for ws in (self.train, self.landscape):
            ws.file_opened.connect(self.recent.add)
        self.landscape.model_file_changed.connect(lambda path: self.recent.add("model", path))
        self.tabs.setCurrentIndex(0)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.tabs.currentChanged.connect(lambda _: self._fill_export_menu())
        self._tab_changed(0)
        self._menus()
        self.set_theme(self.theme)
        if self._restore_session:
            self._restore()
        self.check_install()
        self.ready.emit()

    def check_install(self) -> list[str]:
        """Say which run-time files are missing or damaged (a broken install), instead of
        leaving an empty presets menu and a blank icon without a word. The problems found."""
        from core.race.session import preset_problems

        broken_presets = preset_problems()
        problems = broken_presets + file_problems()
        self.install_warning = None
        if not problems:
            return problems
        text = "LossLab's installation is incomplete: " + "; ".join(problems)
        print(f"losslab: {text}", file=sys.stderr)  # for whoever started it from a terminal
        self.statusBar().showMessage(
            f"LossLab's installation is incomplete: {len(problems)} file(s) missing or damaged"
        )
        presets = self.race.findChild(QtWidgets.QComboBox, "presets")
        if presets is not None and broken_presets:
            presets.setItemText(0, "Presets missing or damaged: see the message")
            presets.setToolTip("\n".join(broken_presets))
        box = QtWidgets.QMessageBox(
            QtWidgets.QMessageBox.Icon.Warning,
            "LossLab: files missing",
            "Some of LossLab's files are missing or damaged; reinstall LossLab "
            "(pipx reinstall losslab, or make setup in a checkout).",
            QtWidgets.QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("installProblems")
        box.setInformativeText("\n".join(problems))
        box.setModal(False)  # never blocks the app (or --quit-after)
        box.show()
        self.install_warning = box
        return problems

    # --- menus --------------------------------------------------------------------------

    def _action(self, menu, text, slot, shortcut=None) -> QtGui.QAction:
        act = menu.addAction(text)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QtGui.QKeySequence(shortcut))
        return act

    def _menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        self._action(m, "&Open session...", self.open_session_dialog, "Ctrl+O")
        self._action(m, "&Save session...", self.save_session_dialog, "Ctrl+S")
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self._fill_recent_menu()
        self.export_menu = m.addMenu("&Export")
        self.export_menu.aboutToShow.connect(self._fill_export_menu)
        self._fill_export_menu()
        self._action(m, "Export the current &picture...", self._export_first, "Ctrl+E")
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
        for act in self.race.race_actions():  # their keys work on the Race tab only
            r.addAction(act)
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
        self._action(h, "&Tour of this tab", lambda: self.start_tour(), "F1")
        for index, (title, _section, _) in TOURS.items():
            self._action(h, f"Tour: {title}", lambda _=False, i=index: self.start_tour(i))
        h.addSeparator()
        for section in ("Command line", "Troubleshooting"):
            self._action(h, f"Help: {section.lower()}", lambda _=False, s=section: self.readme(s))
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
        for ws in (self.race, self.train, self.landscape):
            ws.set_theme(self.dark)
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
        self.recent.add("session", path)
        self.statusBar().showMessage(f"Opened {path}", 6000)
        return True

    def save_session(self, path: str) -> bool:
        from core.race.session import save_session

        try:
            save_session(path, self.race.c.session())
        except OSError as exc:
            QtWidgets.QMessageBox.warning(self, "Cannot save session", str(exc))
            return False
        self.recent.add("session", path)
        self.statusBar().showMessage(f"Saved {path}", 6000)
        return True

    def open_session_dialog(self) -> None:
        path = open_path(self, "Open session", "LossLab session (*.json)")
        if path:
            self.open_session(path)

    def save_session_dialog(self) -> None:
        path = save_path(self, "Save session", "race.json", "LossLab session (*.json)")
        if path:
            self.save_session(path)

    # --- recent files and help ----------------------------------------------------------

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.recent.entries()
        for entry in entries:
            act = self.recent_menu.addAction(entry.label)
            act.triggered.connect(lambda _=False, e=entry: self.open_recent(e))
        if not entries:
            self.recent_menu.addAction("(nothing yet)").setEnabled(False)
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear the list")
        clear.setEnabled(bool(entries))
        clear.triggered.connect(self.recent.clear)

    def open_recent(self, entry) -> bool:
        """Open a recent file in its workspace; a file that is gone is said so and dropped."""
        if not Path(entry.path).is_file():
            self.recent.remove(entry)
            QtWidgets.QMessageBox.warning(
                self, "Open recent", f"{entry.path} no longer exists; it is removed from the list."
            )
            return False
        if entry.kind == "session":
            self.tabs.setCurrentWidget(self.race)
            return self.open_session(entry.path)
        if entry.kind == "run":
            self.tabs.setCurrentWidget(self.train)
            return bool(self.train.open_runs(entry.path))
        if entry.kind == "landscape":
            self.tabs.setCurrentWidget(self.landscape)
            return bool(self.landscape.open_landscape(entry.path))
        if entry.kind == "checkpoint":
            self.tabs.setCurrentWidget(self.landscape)
            return bool(self.landscape.open_checkpoint(entry.path))
        if entry.kind == "model":
            self.tabs.setCurrentWidget(self.landscape)
            return bool(self.landscape.open_model_file(entry.path))
        raise ValueError(f"Unknown kind of recent file: {entry.kind!r}")

    def start_tour(self, tab: int | None = None) -> TourDialog:
        """The guided tour of ``tab`` (the shown one by default)."""
        tour = TourDialog(self, self.tabs.currentIndex() if tab is None else tab)
        tour.show()
        return tour

    def readme(self, section: str) -> ReadmeDialog:
        dialog = ReadmeDialog(section, self)
        dialog.show()
        return dialog

    # --- exports ------------------------------------------------------------------------

    def current_workspace(self):
        """The workspace whose tab is shown (None before the workspaces are built)."""
        w = self.tabs.currentWidget()
        return w if isinstance(w, Workspace) else None

    def _fill_export_menu(self) -> None:
        self.export_menu.clear()
        ws = self.current_workspace()
        for ex in ws.exports() if ws is not None else []:
            act = self.export_menu.addAction(ex.label)
            act.triggered.connect(lambda _=False, ex=ex: self.export_dialog(ex))

    def _export_first(self) -> None:
        ws = self.current_workspace()
        if ws is not None and ws.exports():
            self.export_dialog(ws.exports()[0])

    def export_dialog(self, ex: Export) -> None:
        """Ask for a size (pictures that have one), then a path, and write."""
        from app.export import ask_png_size

        args = ()
        if ex.ask_size:
            size = ask_png_size(self)
            if size is None:
                return
            args = (size,)
        path = save_path(self, "Export", ex.default, ex.filter)
        if path:
            self.run_export(ex, path, *args)

    def run_export(self, ex: Export, path: str, *args) -> bool:
        """Write one export; a failure is shown, never raised. True when the file was written."""
        from app import export

        try:
            ok = ex.write(path, *args)
        except export.ExportError as exc:
            QtWidgets.QMessageBox.warning(self, "Export failed", str(exc))
            return False
        if ok is False:  # the workspace has said why
            return False
        self.statusBar().showMessage(f"Exported {path}", 6000)
        return True
