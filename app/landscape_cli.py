"""``losslab landscape``: the loss landscape of a trained run, headless, as PNG, SVG or .npz.

Renders with the same LandscapeView as the window, on Qt's offscreen platform.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

FORMATS = (".png", ".svg", ".npz")


def add_landscape_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "landscape",
        help="the loss landscape of a trained run (PNG, SVG, .npz)",
        description="Compute the loss on a plane through a trained model's weights, with its "
        "training path projected on it. Give a checkpoint, a run record, or both.",
    )
    p.add_argument("--checkpoint", metavar="PT", help="the weights (default: the run's best)")
    p.add_argument(
        "--run", metavar="JSON", help="the run record (losslab train --out): its trajectory"
    )
    p.add_argument(
        "--directions",
        choices=("random", "pca", "init-final"),
        default="random",
        help="filter-normalised random, PCA of the training path, or initial -> final",
    )
    p.add_argument("--grid", type=int, default=41, help="points per side (default 41)")
    p.add_argument(
        "--range",
        type=float,
        default=0.0,
        dest="span",
        help="the grid spans -R..R on both axes (default: 1 for random, the path otherwise)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        help="validation samples to evaluate, evenly spread (default 0: the whole validation "
        "set when it is small, as for the sine fit; else 1000)",
    )
    p.add_argument("--bf16", action="store_true", help="bfloat16 preview (approximate)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    p.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="torch.compile the per-point work (auto: for big grids, where it repays ~8 s)",
    )
    p.add_argument("--eigenvalues", type=int, default=2, help="top Hessian eigenvalues (0: skip)")
    p.add_argument("--data-dir", help="MNIST folder (default: the run's, $LOSSLAB_DATA_DIR)")
    p.add_argument("--log", action="store_true", help="log colour scale in pictures")
    p.add_argument("--size", default="1400x1000", help="picture size (default 1400x1000)")
    p.add_argument("--theme", choices=("dark", "light"), default="light")
    p.add_argument(
        "--out", action="append", required=True, metavar="FILE", help=".png .svg .npz (repeatable)"
    )
    p.set_defaults(handler=run_landscape, parser=p)


def check_outputs(outs: list[str]) -> str:
    """Why one of ``outs`` cannot be written ("" when all can), before anything is computed."""
    for out in outs:
        path = Path(out).expanduser()
        if path.suffix.lower() not in FORMATS:
            return f"{out}: unknown format {path.suffix or '(none)'!r} (use {', '.join(FORMATS)})"
        folder = path.parent
        if not folder.is_dir():
            return f"{out}: the folder {folder} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK):
            return f"{out}: the folder {folder} is not writable"
        if path.is_dir():
            return f"{out}: is a folder, not a file"
        if path.exists() and not os.access(path, os.W_OK):
            return f"{out}: the file exists and is not writable"
    return ""


def run_landscape(args: argparse.Namespace) -> int:
    from app.export import ExportError, parse_size
    from core.landscape import job as lj
    from core.landscape.directions import LandscapeError
    from core.landscape.plane import Line, Row
    from core.train.data import DataError

    def fail(msg: str, code: int = 2) -> int:
        print(f"losslab landscape: error: {msg}", file=sys.stderr)
        return code

    if not (args.checkpoint or args.run):
        return fail("give --checkpoint, --run, or both")
    problem = check_outputs(args.out)
    if problem:
        return fail(problem)
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        return fail(str(exc))
    req = lj.Request(
        directions=args.directions,
        span=args.span,
        resolution=args.grid,
        samples=args.samples,
        precision="bf16" if args.bf16 else "fp32",
        seed=args.seed,
        eigenvalues=args.eigenvalues,
        compile=args.compile,
    )
    t0 = time.perf_counter()
    try:
        subject = lj.load_subject(args.checkpoint, args.run, args.data_dir)
        req.check(subject)
    except (LandscapeError, DataError, OSError) as exc:
        return fail(str(exc))
    print(f"Run {subject.name!r} ({subject.task}), checkpoint {subject.checkpoint}")
    print(f"Data: {subject.source}")
    bar = None
    land = None
    try:
        for e in lj.run(subject, req):
            if isinstance(e, lj.Planned):
                print(f"Evaluating on {_samples(e.n_eval, e.n_total)}")
                bar = _bar(len(e.alphas), len(e.betas))
            elif isinstance(e, Row):
                bar(e.index + 1)
            elif isinstance(e, lj.Done):
                land = e.landscape
                land.meta["seconds"] = round(e.seconds, 2)  # as the window saves it
            elif isinstance(e, lj.Curvature):
                vals = ", ".join(f"{v:.4g}" for v in e.eigenvalues)
                print(f"Top Hessian eigenvalues at the checkpoint: {vals}")
            elif isinstance(e, lj.PathResult | Line):
                pass  # drawn in the pictures, saved in the .npz
            else:
                raise TypeError(f"Unknown landscape event: {type(e).__name__}")
    except (LandscapeError, DataError) as exc:
        return fail(str(exc))
    finally:
        if bar is not None:
            bar(None)
    assert land is not None
    print(
        f"{len(land.alphas)}x{len(land.betas)} grid, {land.directions} directions, "
        f"{land.n_eval:,} samples, {land.precision}: {time.perf_counter() - t0:.1f} s; "
        f"loss {np.nanmin(land.loss):.5g} .. {np.nanmax(land.loss):.5g}"
    )
    print(_centre_line(land.meta))
    if land.explained is not None:
        print(
            f"PCA explains {100 * land.explained[0]:.1f}% + {100 * land.explained[1]:.1f}% "
            "of the path's variance"
        )
    for out in args.out:
        try:
            if out.lower().endswith(".npz"):
                land.save(out)
            else:
                _picture(land, out, size, args.theme == "dark", args.log)
        except (OSError, ExportError) as exc:
            kept = _keep(land)
            where = f"the grid is kept in {kept}" if kept else "the grid could not be kept either"
            return fail(f"cannot write {out}: {exc}; {where}", 1)
        print(f"Wrote {out}")
    return 0


def _samples(n: int, total: int) -> str:
    if n == total:
        return f"all {total:,} validation samples"
    return f"{n:,} of {total:,} validation samples, evenly spread (--samples to change)"


def _centre_line(meta: dict) -> str:
    """The loss at the checkpoint, beside the validation loss Train recorded for it."""
    line = f"Loss at the checkpoint: {meta.get('centre_loss', float('nan')):.6g}"
    recorded = meta.get("checkpoint_val_loss")
    if recorded is not None:
        line += f" (Train's validation loss for it: {recorded:.6g})"
    if meta.get("sum_scale", 1.0) != 1.0:
        line += f"; the summed loss is scaled by {meta['sum_scale']:.4g} to the whole set"
    return line


def _keep(land) -> str:
    """Save a computed grid that could not be written where asked: in the working folder,
    else the temporary folder. The path, or "" when neither works."""
    import tempfile

    name = f"losslab-landscape-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.npz"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            return str(land.save(folder / name))
        except OSError:
            continue
    return ""


def _picture(land, out: str, size: tuple[int, int], dark: bool, log: bool) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["losslab"])
    from app import export
    from app.landscape.workspace import LandscapeWorkspace
    from app.theme import apply_theme

    apply_theme(app, "dark" if dark else "light")
    ws = LandscapeWorkspace()
    ws.centre.setParent(None)  # the picture is the plots, at the size asked for
    # Rendered without ever being shown: render() lays a hidden widget out at its size, and no
    # platform window is made (the offscreen platform warned "This plugin does not support
    # propagateSizeHints()" for each shown window).
    ws.centre.resize(*size)
    ws.centre.ensurePolished()
    ws.centre.layout().activate()
    ws.set_theme(dark)
    ws.log.setChecked(log)
    ws.show_landscape(land)
    ws.view.set_scale("log" if log else "linear")
    app.processEvents()
    try:
        if out.lower().endswith(".svg"):
            export.atomic_write(out, export.widget_svg(ws.centre, "LossLab landscape"))
        else:
            export.write_png(out, export.widget_png(ws.centre, 1.0))
    finally:
        # deleted now, while the QApplication lives: widgets left to the interpreter's exit
        # were destroyed after it, in any order, and crashed now and then (exit code -11)
        ws.shutdown()
        ws.centre.deleteLater()
        ws.deleteLater()
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


def _bar(columns: int, rows: int):
    """A tqdm bar on a terminal (points, points/s, time left), lines when piped; call it with
    the rows done, None to finish."""
    from core.landscape.progress import GridClock

    total = columns * rows
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="pt", desc="grid", unit_scale=False)

        def update(done):
            if done is None:
                bar.close()
            else:
                bar.update(done * columns - bar.n)

        return update

    clock = GridClock(total)

    def plain(done):
        if done is not None and (done == rows or done % 10 == 0):
            eta = clock.tick(done * columns).text()
            print(f"grid rows {done}/{rows}" + (f": {eta}" if eta else ""), flush=True)

    return plain


__all__ = ["add_landscape_parser", "run_landscape"]
