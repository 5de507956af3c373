"""``losslab landscape``: the loss landscape of a trained run or of the user's own model,
headless, as PNG, SVG, .npz, .h5 (loss-landscape's layout) or .vtp (ParaView).

Renders with the same LandscapeView as the window, on Qt's offscreen platform. Runs under
torchrun too (``torchrun --nproc-per-node N -m app -- landscape ...``, or ``--workers N``): the
ranks share the grid, rank 0 alone prints and writes. The grid is saved every few seconds to a
partial file beside the first output, and the same command resumes from it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

FORMATS = (".png", ".svg", ".npz", ".h5", ".hdf5", ".vtp")
PICTURES = (".png", ".svg")


def add_landscape_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "landscape",
        help="the loss landscape of a trained run or your own model (PNG, SVG, .npz, .h5, .vtp)",
        description="Compute the loss on a plane through a trained model's weights, with its "
        "training path projected on it. Give a checkpoint, a run record, or both; or your own "
        "model as an experiment file (--model); or --load a saved landscape to re-render it.",
        epilog="Several processes: torchrun --nproc-per-node N -m app -- landscape ... (also "
        "--nnodes and --rdzv-endpoint for several machines), or --workers N on one machine. "
        "An interrupted grid resumes when the same command runs again.",
    )
    p.add_argument(
        "--model",
        metavar="FILE.py",
        help="your own model: an experiment file defining model() and batches() (and "
        "optionally loss(model, batch)); it is your code, run as `python FILE.py` would",
    )
    p.add_argument(
        "--load",
        metavar="FILE",
        help="re-render a saved landscape (.npz, or .h5 as LossLab or loss-landscape wrote it) "
        "without computing anything",
    )
    p.add_argument("--checkpoint", metavar="PT", help="the weights (default: the run's best)")
    p.add_argument(
        "--run",
        metavar="JSON",
        action="append",
        help="the run record (losslab train --out): its trajectory. Repeat it (--run a.json "
        "--run b.json ...) to put several runs of one task or model file on one plane, with "
        "the barrier on the line between two end points",
    )
    p.add_argument(
        "--directions",
        choices=("random", "pca", "init-final", "hessian", "endpoints"),
        default=None,
        help="filter-normalised random, PCA of the training path(s), initial -> final, the "
        "top two Hessian eigenvectors, or (several runs) the plane through the start and runs "
        "A's and B's end points. Default: random for one run, endpoints for several",
    )
    p.add_argument(
        "--pair",
        default="1,2",
        metavar="A,B",
        help="several runs: which two (counted from 1 in --run order) are A and B: the line "
        "and its barrier go from A's end point to B's; the endpoints plane goes through them; "
        "the other planes are centred on A (default 1,2)",
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
    p.add_argument(
        "--device",
        choices=("cpu", "cuda", "auto"),
        default="cpu",
        help="where the model, the data and the directions go (default cpu; under torchrun "
        "each rank uses cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--include-bias-bn",
        action="store_true",
        help="random directions include biases and BatchNorm parameters (left out by default, "
        "as loss-landscape's --xignore biasbn)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="start N local processes through torch's launcher (torch.distributed.run) and "
        "share the grid among them",
    )
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
        "--out",
        action="append",
        required=True,
        metavar="FILE",
        help=".png .svg .npz .h5 .vtp (repeatable)",
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
    from core.landscape import distributed as dist

    world = dist.World.from_env()

    def fail(msg: str, code: int = 2) -> int:
        if world.main:  # every rank finds the same bad argument: say it once
            print(f"losslab landscape: error: {msg}", file=sys.stderr)
        return code

    if args.load and (args.checkpoint or args.run or args.model):
        return fail("--load re-renders a saved landscape: give it alone, without --checkpoint, "
                    "--run or --model")  # fmt: skip
    if not (args.checkpoint or args.run or args.model or args.load):
        return fail("give --checkpoint, --run, --model, or --load")
    if not (1 <= args.workers <= 256):
        return fail(f"Invalid --workers: {args.workers} (1 .. 256)")
    problem = check_outputs(args.out)
    if problem:
        return fail(problem)
    # with --workers, what every process would refuse is said here, before they start
    launching = args.workers > 1 and not world.distributed
    if args.load:
        if launching:
            return fail("--load re-renders a saved landscape in one process: leave out --workers")
        return _rerender(args, fail)
    runs = args.run or []
    if len(runs) >= 2:
        if args.model or args.checkpoint or world.distributed or launching:
            return fail("several --run: give the runs' JSON files alone (each names its "
                        "checkpoint and model file), in one process")  # fmt: skip
        from app.landscape.runs_cli import compute_runs

        size = _size(args, fail)
        return 2 if size is None else compute_runs(args, size, fail, write_all)
    args.run = runs[0] if runs else None
    if args.directions is None:
        args.directions = "random"
    if args.directions == "endpoints":
        return fail("the endpoints plane needs at least 2 runs: give --run twice or more")
    from core.landscape.directions import LandscapeError

    req = _request(args)
    try:
        req.check_fields()  # before the ranks join one another, or the launcher starts them
    except LandscapeError as exc:
        return fail(str(exc))
    if launching:
        from app.workers_cli import launch_workers

        return launch_workers(args.workers, args.argv)
    size = _size(args, fail)
    return 2 if size is None else _compute(args, req, size, world, fail)


def _size(args, fail) -> tuple[int, int] | None:
    """The picture size from --size; None after saying why it is wrong (app.export imports
    Qt: after the launch, which needs none of it)."""
    from app.export import parse_size

    try:
        return parse_size(args.size)
    except ValueError as exc:
        fail(str(exc))
        return None


def _request(args):
    from core.landscape import job as lj

    return lj.Request(
        directions=args.directions,
        span=args.span,
        resolution=args.grid,
        samples=args.samples,
        precision="bf16" if args.bf16 else "fp32",
        seed=args.seed,
        eigenvalues=args.eigenvalues,
        compile=args.compile,
        device=args.device,
        bias_bn=args.include_bias_bn,
    )


def _rerender(args, fail) -> int:
    from core.landscape import formats
    from core.landscape.directions import LandscapeError
    from core.landscape.plane import Landscape

    size = _size(args, fail)
    if size is None:
        return 2
    try:
        land = formats.load(args.load)
    except LandscapeError as exc:
        return fail(str(exc))
    if not isinstance(land, Landscape):
        return fail(f"{args.load} holds a 1-D line, not a 2-D landscape: nothing to draw here")
    print(f"Loaded {args.load}: {len(land.alphas)}x{len(land.betas)} grid, {land.directions}")
    return write_all(land, args, size, fail, keep=False)  # it is in a file already


def _write(land, out: str, size, args) -> None:
    from core.landscape import formats

    if Path(out).suffix.lower() in PICTURES:
        _picture(land, out, size, args.theme == "dark", args.log)
    else:
        formats.save(land, out)


def _compute(args, req, size, world, fail) -> int:
    import signal

    from core.landscape import distributed as dist
    from core.landscape import job as lj
    from core.landscape.directions import LandscapeError
    from core.landscape.plane import Line, Row
    from core.train.data import DataError

    t0 = time.perf_counter()
    say = print if world.main else (lambda *a, **k: None)
    try:
        dist.start(world, args.device if args.device != "auto" else "auto")
        if args.model:
            subject = lj.load_model_subject(args.model, args.checkpoint, args.run)
        else:
            subject = lj.load_subject(args.checkpoint, args.run, args.data_dir)
        req.check(subject)
    except (LandscapeError, DataError, OSError) as exc:
        return fail(str(exc))
    if args.model:
        say(f"Your model: {args.model} (the loss is the mean of loss(model, batch) over its "
            "batches)")  # fmt: skip
        say(f"Weights: {subject.checkpoint or 'as model() builds them (no checkpoint)'}")
    else:
        say(f"Run {subject.name!r} ({subject.task}), checkpoint {subject.checkpoint}")
    say(f"Data: {subject.source}")
    if world.distributed:
        say(f"{world.size} ranks share the grid (rank 0 gathers and writes)")
    partial = dist.partial_path(args.out[0])
    stop_asked = _on_sigterm(world)
    bar = None
    land = None
    try:
        for e in lj.run(
            subject, req, world=world, partial=partial if world.main else None,
            should_stop=lambda: bool(stop_asked),
        ):  # fmt: skip
            if isinstance(e, lj.Planned):
                what = f"all {e.n_eval} batches" if args.model else _samples(e.n_eval, e.n_total)
                say(f"Evaluating on {what}")
                bar = _bar(len(e.alphas), len(e.betas)) if world.main else None
            elif isinstance(e, lj.Resumed):
                if e.why:
                    say(e.why)
                else:
                    say(f"resuming from {e.path}: {e.done:,} of {e.total:,} points done")
                    if bar is not None:
                        bar.resumed(e.done)
            elif isinstance(e, Row):
                if bar is not None:
                    bar(e.index + 1)
            elif isinstance(e, lj.Done):
                land = e.landscape
                land.meta["seconds"] = round(e.seconds, 2)  # as the window saves it
            elif isinstance(e, lj.Curvature):
                vals = ", ".join(f"{v:.4g}" for v in e.eigenvalues)
                say(f"Top Hessian eigenvalues at the checkpoint: {vals}")
            elif isinstance(e, lj.PathResult | Line):
                pass  # drawn in the pictures, saved in the .npz
            else:
                raise TypeError(f"Unknown landscape event: {type(e).__name__}")
    except KeyboardInterrupt:
        if bar is not None:
            bar(None)
        if world.main:
            kept = f"; the points done are kept in {partial}" if partial.exists() else ""
            print(f"losslab landscape: interrupted{kept}. Run the same command again to "
                  "continue.", file=sys.stderr)  # fmt: skip
        return 130
    except dist.RankFailed as exc:
        # the launcher stops the ranks left (SIGTERM) as this one ends: the exit code is this
        # one, which says why, not the signal's, and no KeyboardInterrupt at the exit
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return fail(f"{exc}. Run the same command again to continue from there.", 1)
    except (LandscapeError, DataError) as exc:
        return fail(str(exc))
    finally:
        if bar is not None:
            bar(None)
        dist.stop(world)
    if not world.main:
        return 0  # rank 0 writes
    if land is None:  # stopped by the launcher (see _on_sigterm)
        kept = f"; the points done are kept in {partial}" if partial.exists() else ""
        print(f"losslab landscape: stopped (SIGTERM){kept}. Run the same command again to "
              "continue.", file=sys.stderr)  # fmt: skip
        return 128 + signal.SIGTERM
    say(
        f"{len(land.alphas)}x{len(land.betas)} grid, {land.directions} directions, "
        f"{land.n_eval:,} {'batches' if args.model else 'samples'}, {land.precision}: "
        f"{time.perf_counter() - t0:.1f} s; "
        f"loss {np.nanmin(land.loss):.5g} .. {np.nanmax(land.loss):.5g}"
    )
    say(_centre_line(land.meta))
    if land.explained is not None:
        say(
            f"PCA explains {100 * land.explained[0]:.1f}% + {100 * land.explained[1]:.1f}% "
            "of the path's variance"
        )
    code = write_all(land, args, size, fail, say)
    if code == 0:
        partial.unlink(missing_ok=True)  # everything is written: nothing left to resume
    return code


def _on_sigterm(world) -> list:
    """How SIGTERM stops this process; the list it returns gets an item when a stop was asked
    for (the grid then stops after its round, with every rank).

    One process: at once, as Ctrl+C (the points gathered are saved first).
    Under torch's launcher, SIGTERM is how it stops the ranks: because one of them failed, or
    because the launcher itself was stopped. Stopping at once would tell the user "interrupted"
    when a rank died; waiting for the round's end (about 0.5 s; the launcher waits 30 s before
    it kills) lets rank 0 find the dead rank at the next collective, or else stop every rank
    together."""
    import signal

    asked: list = []
    if world.distributed:
        signal.signal(signal.SIGTERM, lambda *_: asked.append(True))
    else:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    return asked


def write_all(land, args, size, fail, say=print, keep: bool = True) -> int:
    """Write every ``--out``. When one cannot be written, a computed grid is not lost: it is
    kept in ``losslab-landscape-*.npz`` (see :func:`_keep`) and the error says where."""
    from app.export import ExportError
    from core.landscape.directions import LandscapeError

    for out in args.out:
        try:
            _write(land, out, size, args)
        except (OSError, ExportError, LandscapeError) as exc:
            if not keep:
                return fail(f"cannot write {out}: {exc}", 1)
            kept = _keep(land)
            where = f"the grid is kept in {kept}" if kept else "the grid could not be kept either"
            return fail(f"cannot write {out}: {exc}; {where}", 1)
        say(f"Wrote {out}")
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
    from PySide6 import QtCore

    from app.headless import headless_app

    app = headless_app()
    from app import export
    from app.landscape.workspace import LandscapeWorkspace
    from app.theme import apply_theme

    apply_theme(app, "dark" if dark else "light")
    ws = LandscapeWorkspace()
    ws.centre.setParent(None)  # the picture is the plots, at the size asked for
    ws.centre_tabs.tabBar().hide()
    # Rendered without ever being shown: render() lays a hidden widget out at its size, and no
    # platform window is made (the offscreen platform warned "This plugin does not support
    # propagateSizeHints()" for each shown window).
    ws.centre.resize(*size)
    ws.centre.ensurePolished()
    ws.centre.layout().activate()
    ws.set_theme(dark)
    ws.log.setChecked(log)
    ws.show_landscape(land)
    if "line_t" not in land.extras and "barrier_t" not in land.extras:
        # no run, no line from its start: the facts take the room
        ws.line.hide()
    ws.view.set_scale("log" if log else "linear")
    app.processEvents()
    try:
        if out.lower().endswith(".svg"):
            svg = export.widget_svg(ws.centre, "LossLab landscape")
            export.atomic_write(out, _svg_sized(svg, size))
        else:
            export.write_png(out, _png_sized(ws.centre, size))
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

        bars = [tqdm(total=total, unit="pt", desc="grid", unit_scale=False)]

        def update(done):
            if done is None:
                bars[0].close()
            else:
                bars[0].update(done * columns - bars[0].n)

        def resumed_bar(points: int) -> None:  # the speed counts only the points done now
            bars[0].close()
            bars[0] = tqdm(total=total, initial=points, unit="pt", desc="grid", unit_scale=False)

        update.resumed = resumed_bar
        return update

    clock = GridClock(total)
    state = {"resumed": 0}

    def plain(done):
        if done is not None and (done == rows or done % 10 == 0):
            eta = clock.tick(done * columns - state["resumed"]).text()
            print(f"grid rows {done}/{rows}" + (f": {eta}" if eta else ""), flush=True)

    def resumed(points: int) -> None:
        state["resumed"] = points

    plain.resumed = resumed
    return plain


__all__ = ["add_landscape_parser", "run_landscape"]


# The plots, the colour bar and the facts have a smallest layout (~580x440): below it the
# widget stays larger than --size asked. The file still has the size asked for: the layout is
# drawn scaled down to fit, as vectors (text stays sharp), centred on the window colour.


def _png_sized(widget, size: tuple[int, int]):
    from PySide6 import QtCore, QtGui

    from app import export

    w, h = size
    laid = widget.size()
    if (laid.width(), laid.height()) == (w, h):
        return export.widget_png(widget, 1.0)
    scale = min(w / laid.width(), h / laid.height())
    drawn = export.widget_png(widget, scale)
    image = QtGui.QImage(QtCore.QSize(w, h), QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(widget.palette().color(QtGui.QPalette.ColorRole.Window))
    painter = QtGui.QPainter(image)
    try:
        painter.drawImage((w - drawn.width()) // 2, (h - drawn.height()) // 2, drawn)
    finally:
        painter.end()
    return image


def _svg_sized(svg: bytes, size: tuple[int, int]) -> bytes:
    """The SVG shown at ``size``: its root's width and height set, its viewBox (the layout's
    own size) kept, so a viewer scales the drawing to fit."""
    import re

    w, h = size
    text = svg.decode("utf-8")
    root = re.search(r"<svg\b[^>]*>", text)
    if root is None:
        return svg
    tag = re.sub(r'\s(width|height)="[^"]*"', "", root.group(0))
    tag = tag.replace("<svg", f'<svg width="{w}px" height="{h}px"', 1)
    return (text[: root.start()] + tag + text[root.end() :]).encode("utf-8")
