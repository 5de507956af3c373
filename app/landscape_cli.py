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
    p.add_argument("--samples", type=int, default=1000, help="evaluation images (default 1000)")
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


def run_landscape(args: argparse.Namespace) -> int:
    from app.export import parse_size
    from core.landscape import job as lj
    from core.landscape.directions import LandscapeError
    from core.landscape.plane import Row
    from core.train.data import DataError

    def fail(msg: str) -> int:
        print(f"losslab landscape: error: {msg}", file=sys.stderr)
        return 2

    if not (args.checkpoint or args.run):
        return fail("give --checkpoint, --run, or both")
    for out in args.out:
        if Path(out).suffix.lower() not in FORMATS:
            return fail(f"{out}: unknown format (use {', '.join(FORMATS)})")
        if not Path(out).parent.is_dir() and str(Path(out).parent):
            return fail(f"{out}: the folder {Path(out).parent} does not exist")
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
    bar = _bar(req.resolution)
    land = None
    try:
        for e in lj.run(subject, req):
            if isinstance(e, Row):
                bar(e.index + 1)
            elif isinstance(e, lj.Done):
                land = e.landscape
            elif isinstance(e, lj.Curvature):
                vals = ", ".join(f"{v:.4g}" for v in e.eigenvalues)
                print(f"Top Hessian eigenvalues at the checkpoint: {vals}")
    except (LandscapeError, DataError) as exc:
        return fail(str(exc))
    finally:
        bar(None)
    assert land is not None
    print(
        f"{len(land.alphas)}x{len(land.betas)} grid, {land.directions} directions, "
        f"{land.n_eval:,} images, {land.precision}: {time.perf_counter() - t0:.1f} s; "
        f"loss {np.nanmin(land.loss):.5g} .. {np.nanmax(land.loss):.5g}"
    )
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
        except OSError as exc:
            return fail(f"cannot write {out}: {exc}")
        print(f"Wrote {out}")
    return 0


def _picture(land, out: str, size: tuple[int, int], dark: bool, log: bool) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["losslab"])
    from app import export
    from app.landscape.workspace import LandscapeWorkspace
    from app.theme import apply_theme

    apply_theme(app, "dark" if dark else "light")
    ws = LandscapeWorkspace()
    ws.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
    ws.centre.setParent(None)  # the picture is the plots, at the size asked for
    ws.centre.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
    ws.centre.resize(*size)
    ws.centre.show()
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
        ws.centre.close()
        ws.close()


def _bar(total: int):
    """A tqdm bar on a terminal, dots when piped; call with the rows done, None to finish."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="row", desc="grid")

        def update(done):
            if done is None:
                bar.close()
            else:
                bar.update(done - bar.n)

        return update

    def plain(done):
        if done is not None and (done == total or done % 10 == 0):
            print(f"grid rows {done}/{total}", flush=True)

    return plain


__all__ = ["add_landscape_parser", "run_landscape"]
