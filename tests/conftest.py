"""Shared test set-up. Qt must be told to render offscreen before anything imports it."""

import os

if os.environ.get("LOSSLAB_GL_TESTS"):  # tests/gl, under xvfb-run: a real display, OpenGL
    collect_ignore_glob: list[str] = []
    from app.views.surface3d import share_gl_contexts

    share_gl_contexts()  # before pytest-qt makes the QApplication, as the app does
else:  # everything else renders offscreen, where OpenGL does not exist
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    collect_ignore_glob = ["gl/*"]
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one torch thread each, or they fight over the cores
    # (on a busy 2-core box the sine fit took 51 s with 2 threads, 2.9 s with 1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


import http.server  # noqa: E402
import threading  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import pytest  # noqa: E402


@dataclass
class LocalServer:
    """An HTTP server on 127.0.0.1 serving ``routes`` (path -> bytes); ``hits`` lists requests."""

    url: str = ""
    routes: dict = field(default_factory=dict)
    hits: list = field(default_factory=list)


@pytest.fixture
def server():
    state = LocalServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            state.hits.append(self.path)
            body = state.routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for serve_forever to poll again: 0.05 s, not its default 0.5 s
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path_factory, monkeypatch):
    """Runs started in tests keep their checkpoints in a temporary folder, not the home."""
    monkeypatch.setenv("LOSSLAB_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture
def main_window(qtbot, tmp_path):
    """The whole window, built at once, with its settings in a temporary file; closed (which
    stops and joins every workspace's threads) afterwards."""
    from PySide6 import QtCore

    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    qtbot.addWidget(w)
    w.resize(1440, 900)
    w.show()
    yield w
    w.close()


# --- the command line -------------------------------------------------------------------------


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def _losslab_subprocess(*args, cwd=None, timeout=300, env=None) -> CliResult:
    """``python -m app ARGS`` in a child process with no display (for what must be proved in a
    fresh interpreter: start-up, real exit codes, interrupts)."""
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**base, **(env or {})},
    )
    return CliResult(out.returncode, out.stdout, out.stderr)


@pytest.fixture
def losslab():
    """Run the ``losslab`` command in a child process: ``losslab("train", "sine", ...)``."""
    return _losslab_subprocess


@pytest.fixture
def cli(capsys):
    """Run ``losslab ARGS`` in this process (no torch import per call): ``cli("race", ...)``.
    argparse's exit on a bad argument becomes the result's return code, as in a shell."""

    def run(*args) -> CliResult:
        from app.main import main

        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return CliResult(int(code or 0), out.out, out.err)

    return run


# --- saved runs -------------------------------------------------------------------------------


def _save_run(folder, name: str, **config):
    """Train ``TrainConfig(**config)`` (default: the sine fit for 6 epochs) with its best
    checkpoint ``folder/NAME.pt`` and save its record as ``folder/NAME.json``; that path."""
    from core.train.runs import RunRecord
    from core.train.training import TrainConfig, train

    config.setdefault("task", "sine")
    config.setdefault("epochs", 6)
    cfg = TrainConfig(checkpoint=str(folder / f"{name}.pt"), **config)
    rec = RunRecord.for_config(cfg, name)
    for event in train(cfg):
        rec.add(event)
    return rec.save(folder / f"{name}.json")


@pytest.fixture(scope="session")
def save_run():
    """``save_run(folder, name, **TrainConfig fields)``: a small real run saved as a Train
    record with its checkpoint (for several-run landscapes); returns the JSON's path."""
    return _save_run


# --- one trained run, shared -------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedRun:
    folder: object  # pathlib.Path
    checkpoint: object  # the best checkpoint
    record: object  # run.json


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """A tiny LeNet-5 run on synthetic digits (2 epochs, 256 images): its best checkpoint and
    its run record with the trajectory, trained once for the whole test session."""
    from core.train.runs import RunRecord
    from core.train.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("trained")
    cfg = TrainConfig(
        task="lenet", dataset="synthetic", limit=256, epochs=2, checkpoint=str(folder / "b.pt")
    )
    rec = RunRecord.for_config(cfg, "tiny")
    for e in train(cfg):
        rec.add(e)
    rec.save(folder / "run.json")
    return TrainedRun(folder, folder / "b.pt", folder / "run.json")


# --- workspaces and dialogs ------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path):
    """Settings in a temporary file: tests never touch the user's own."""
    from PySide6 import QtCore

    return QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)


def _shown_workspace(qtbot, cls, settings, size):
    w = cls(settings=settings)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    return w


@pytest.fixture
def ws(qtbot, settings):
    """The Train workspace alone, as the window lays it out (about a second quicker than the
    whole window), shut down afterwards."""
    from app.train.workspace import TrainWorkspace

    w = _shown_workspace(qtbot, TrainWorkspace, settings, (1430, 850))
    yield w
    w.shutdown()


@pytest.fixture
def train_in(qtbot):
    """Train in a Train workspace and wait until the run is done and saved:
    ``train_in(ws, "linreg", 5, optimizer=None, setup=None, lr=0.01)`` returns the run.
    ``setup(ws)`` changes the controls further just before Start."""

    def run(ws, task, epochs, optimizer=None, setup=None, **hyper):
        c = ws.controls
        c.set_task(task)
        if optimizer:
            c.optimizer.setCurrentIndex(c.optimizer.findData(optimizer))
        c.epochs.setValue(epochs)
        c.hyper.update(hyper)
        if setup is not None:
            setup(ws)
        ws.start()
        assert ws.running, ws.error.text()
        qtbot.waitUntil(lambda: not ws.running, timeout=60_000)
        qtbot.waitUntil(lambda: not ws.save_jobs, timeout=30_000)
        ws.plots.redraw(force=True)
        return ws.runs[-1]

    return run


@pytest.fixture
def race_ws(qtbot):
    """The Race workspace alone, as the window lays it out (less than half the time of the
    whole window), shut down afterwards: for tests of the workspace, not of the window."""
    from app.race.workspace import RaceWorkspace

    w = RaceWorkspace()
    qtbot.addWidget(w)
    w.resize(1430, 850)
    w.show()
    yield w
    w.shutdown()


@pytest.fixture
def lw(qtbot, settings):
    """The Landscape workspace alone, shut down afterwards."""
    from app.landscape.workspace import LandscapeWorkspace

    w = _shown_workspace(qtbot, LandscapeWorkspace, settings, (1400, 850))
    yield w
    w.shutdown()


@pytest.fixture
def warnings(monkeypatch):
    """QMessageBox.warning answered at once; the (title, text) of each, in order."""
    from PySide6 import QtWidgets

    seen = []

    def fake(parent, title, text, *args, **kwargs):
        seen.append((title, text))
        return QtWidgets.QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", fake)
    return seen


@pytest.fixture(autouse=True)
def _delete_closed_widgets():
    """pytest-qt closes a test's widgets with deleteLater(), which only an event loop carries
    out: after a test that never waits, its window (1,400 widgets, kept alive by the lambdas
    connected to its signals) stayed for the rest of the session, for every full garbage
    collection and every palette change to walk through."""
    yield
    import sys

    from app.collect import collect_due

    qt = sys.modules.get("PySide6.QtCore")
    if qt is not None and qt.QCoreApplication.instance() is not None:
        qt.QCoreApplication.sendPostedEvents(None, qt.QEvent.Type.DeferredDelete)
    collect_due()  # here, between tests, never inside a Qt call (app.collect)


def pytest_collection_modifyitems(config, items):
    """The files that take longest come first. `make test` hands out whole files to its
    workers in this order (--dist loadfile --no-loadscope-reorder); with xdist's own order
    (most tests first) the files that start a fresh interpreter, which hold few tests, came
    last, and one core ran them alone for up to 15 s at the end. A test's cost is guessed
    from what it declares: marked slow 6 (s), a Qt widget (qtbot) 1, anything else 0.1."""
    cost: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::")[0]
        if item.get_closest_marker("slow") is not None:
            c = 6.0
        elif "qtbot" in getattr(item, "fixturenames", ()):
            c = 1.0
        else:
            c = 0.1
        cost[path] = cost.get(path, 0.0) + c
    items.sort(key=lambda item: -cost[item.nodeid.split("::")[0]])  # stable: a file's order


def pytest_collection_finish(session):
    """What collecting imported (torch, Qt, pyqtgraph: some 300,000 objects) lives to the end:
    frozen, the garbage collector no longer walks it in every full collection, and a full
    collection comes after 50 middle ones instead of 10 (a window build alone set one off).
    This halved the time the GUI tests spent collecting garbage."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 50)
    # no collection inside a Qt call, where freeing a Python-owned QObject waits on a lock
    # Qt holds (a hang, seen once): the cycles are collected after each test instead
    gc.disable()
