"""Entry point: ``losslab`` / ``python -m app``.

Qt is imported only when the GUI is really started, so ``--help`` and (later) the headless
subcommands start fast and work without a display.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

from core import __version__

SUBCOMMANDS = ("train", "race", "landscape", "curvature")


def build_parser(with_subcommands: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="losslab",
        description="See how loss functions and optimizers really behave, on real PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"LossLab {__version__}")
    parser.add_argument(
        "--quit-after",
        type=int,
        metavar="MS",
        help="close the window after MS milliseconds (for smoke tests and screenshots)",
    )
    parser.add_argument(
        "--screenshot", metavar="PNG", help="save a picture of the window before quitting"
    )
    parser.add_argument("--preset", help="open the Race workspace on this preset")
    parser.add_argument("--session", metavar="FILE", help="open this race session (JSON)")
    parser.add_argument("--steps", type=int, default=0, help="run the race this many steps")
    parser.add_argument(
        "--basins", action="store_true", help="compute the basin map of the selected racer at start"
    )
    parser.add_argument(
        "--select",
        type=int,
        default=0,
        metavar="N",
        help="select racer N (from 0): its steps are explained",
    )
    parser.add_argument(
        "--theme", choices=("system", "light", "dark"), help="colour theme (remembered)"
    )
    parser.add_argument(
        "--examples",
        action="store_true",
        help="print the folder of the example experiment files (copy one to start your own "
        "model), and exit",
    )
    desktop = parser.add_mutually_exclusive_group()
    desktop.add_argument(
        "--install-desktop",
        action="store_true",
        help="put LossLab (this install) in your applications menu, with its icon, and exit",
    )
    desktop.add_argument(
        "--uninstall-desktop",
        action="store_true",
        help="remove what --install-desktop wrote, and exit",
    )
    if not with_subcommands:  # the GUI path: no torch-importing catalogues, a fast start
        return parser
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="headless work; without one, the desktop app opens"
    )
    from app.cli import add_train_parser
    from app.curvature_cli import add_curvature_parser
    from app.landscape_cli import add_landscape_parser
    from app.race_cli import add_race_parser

    add_race_parser(sub)
    add_train_parser(sub)
    add_landscape_parser(sub)
    add_curvature_parser(sub)
    return parser


COORDINATE_OPTIONS = ("--start", "--bounds")


def _join_coordinates(argv: list[str]) -> list[str]:
    """``--start -1,2`` means ``--start=-1,2``: argparse alone would read -1,2 as an option."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in COORDINATE_OPTIONS and i + 1 < len(argv) and argv[i + 1][:1] == "-":
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    full = any(a in SUBCOMMANDS or a in ("-h", "--help") for a in argv)
    if os.environ.get("RANK", "0") != "0":
        # a torchrun rank other than 0: rank 0 speaks for all (a bad argument is said once);
        # what goes wrong on this rank alone still reaches stderr, named by the launcher
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
        with contextlib.redirect_stderr(io.StringIO()):
            args = build_parser(with_subcommands=full).parse_args(_join_coordinates(argv))
    else:
        args = build_parser(with_subcommands=full).parse_args(_join_coordinates(argv))
    if not full:
        args.command = None
    if args.command is not None:
        args.argv = argv  # what was asked (landscape --workers runs it again in each process)
        return args.handler(args)
    if args.examples:
        from app.resources import examples_dir

        print(examples_dir())
        return 0
    if args.install_desktop or args.uninstall_desktop:
        from app import desktop

        return desktop.install() if args.install_desktop else desktop.uninstall()
    return run_gui(args)


def set_identity(app) -> None:
    """The icon of every window and of the taskbar entry. On Wayland the compositor finds the
    icon through the desktop entry named here (``losslab --install-desktop`` writes it)."""
    from PySide6 import QtGui

    from app.resources import icon_path

    app.setWindowIcon(QtGui.QIcon(str(icon_path())))
    QtGui.QGuiApplication.setDesktopFileName("losslab")


def run_gui(args: argparse.Namespace) -> int:
    # torch's OpenMP threads spin briefly, then sleep, while they wait, so training on every
    # core beside the window's thread doesn't starve it (app.openmp, before torch loads)
    from app.openmp import wait_briefly

    wait_briefly()
    from PySide6 import QtCore, QtWidgets

    QtCore.QCoreApplication.setAttribute(QtCore.Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    QtWidgets.QApplication.setApplicationName("LossLab")
    QtWidgets.QApplication.setOrganizationName("LossLab")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    set_identity(app)
    from app.collect import collect_between_events

    collect_between_events(app)  # never inside a Qt call: see app.collect
    from app.main_window import MainWindow  # after the QApplication: pyqtgraph wants one

    report = bool(os.environ.get("LOSSLAB_REPORT_STARTUP"))  # read by bench/gui.py
    window = MainWindow(restore=not (args.preset or args.session), lazy=True)
    window.show()
    if report:
        window.firstPainted.connect(
            lambda: print(f"painted-at {window.first_paint:.6f}", flush=True)
        )
    status = {"code": 0}

    def when_ready() -> None:
        if args.preset:
            try:
                window.race.load_preset(args.preset)
            except ValueError as exc:
                print(f"losslab: {exc}", file=sys.stderr)
                status["code"] = 2
                app.quit()
                return
        if args.session and not window.open_session(args.session):
            status["code"] = 2
        if args.theme:
            window.set_theme(args.theme)
        if args.select:
            window.race.table.selectRow(min(args.select, window.race.table.rowCount() - 1))
        if args.steps:
            window.race.c.step(args.steps)
        if args.basins:
            window.race.basin_button.setChecked(True)
        if report:
            tabs = ",".join(window.tabs.tabText(i) for i in range(window.tabs.count()))
            print(f"workspaces {tabs}", flush=True)
            QtCore.QTimer.singleShot(0, lambda: print(f"ready-at {time.time():.6f}", flush=True))

    window.ready.connect(when_ready)
    if args.quit_after is not None:

        def finish() -> None:
            busy = not window.is_ready or (
                window.race.basin_job is not None and window.race.basin_job.running()
            )
            if busy:  # a screenshot waits for the workspace (and a basin map) to be there
                QtCore.QTimer.singleShot(100, finish)
                return
            if args.screenshot:
                # the layouts still pending first (the workspaces just built widen the
                # window): the picture is the window as it is laid out, whatever the timing
                app.processEvents()
                if not window.grab().save(args.screenshot):
                    print(f"losslab: could not write {args.screenshot}", file=sys.stderr)
            window.close()

        QtCore.QTimer.singleShot(max(0, args.quit_after), finish)
    code = app.exec()
    return status["code"] or code
