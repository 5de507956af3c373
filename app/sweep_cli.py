"""``losslab race --racer SPEC --sweep NAME=LOW:HIGH[:log] --sweep ... --grid N --out map.npz``.

The sweep half of ``losslab race``: ``race_cli`` adds these options with
:func:`add_sweep_arguments` and hands over to :func:`run_sweep` when ``--sweep`` is given. The
``.npz`` holds ``x`` and ``y`` (the N values of each hyperparameter) and three ``(N, N)`` arrays
indexed ``[iy, ix]``: ``final_loss``, ``steps_to_converge`` and ``diverged`` (with
``diverged_at``, the step, alongside). ``.png`` is the map as the window draws it.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from core.race.sweep import SweepError, SweepMap, SweepProgress, parse_axis, plan_sweep, sweep_map

SWEEP_FORMATS = (".npz", ".png")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep options of ``losslab race``."""
    g = parser.add_argument_group("hyperparameter sweep (a map instead of a race)")
    g.add_argument(
        "--sweep",
        action="append",
        metavar="NAME=LOW:HIGH[:log]",
        help="a hyperparameter of the --racer to sweep (give two), e.g. lr=1e-4:1:log "
        "momentum=0:0.99; noise and clip_value work too",
    )
    g.add_argument("--grid", type=int, default=64, help="cells per axis (default 64)")
    g.add_argument(
        "--colour",
        choices=("loss", "steps"),
        default="loss",
        help="what the .png colours show: final loss (log) or steps to converge",
    )
    g.add_argument(
        "--exact",
        action="store_true",
        help="one torch param group per cell: the same rounding as separate runs, much slower",
    )


def _check(args: argparse.Namespace):
    """Everything that can be wrong, before any work; returns (session, racer, x, y, surface)."""
    from app import export
    from app.race_cli import build_session, check_start

    if len(args.sweep) != 2:
        raise SweepError(f"give --sweep twice (two hyperparameters), not {len(args.sweep)} time(s)")
    if not args.out:
        raise SweepError("--out is required with --sweep (a .npz and/or .png file)")
    for out in args.out:
        if Path(out).suffix.lower() not in SWEEP_FORMATS:
            raise SweepError(f"--out {out}: a sweep writes {' or '.join(SWEEP_FORMATS)}")
    if not 1 <= args.steps <= 100_000:
        raise SweepError("--steps must be 1 .. 100000 for a sweep")
    if not args.tol > 0:
        raise SweepError(f"--tol must be a positive distance, got {args.tol:g}")
    session = build_session(args)
    if len(session.racers) != 1:
        raise SweepError(f"a sweep takes one racer (--racer), not {len(session.racers)}")
    x, y = (parse_axis(t) for t in args.sweep)
    racer = session.racers[0]
    plan_sweep(racer, x, y, args.grid, "cells" if args.exact else "auto")
    surface = session.surface.build()
    start = session.start or surface.start
    check_start(start, surface, "--start" if args.start else "the session's start")
    size = export.parse_size(args.size)
    for out in args.out:
        export.check_writable(out)
    return racer, x, y, surface, start, size


def run_sweep(args: argparse.Namespace) -> int:
    """Run the sweep described by ``args`` and write its outputs; 0 on success."""
    from app import export

    try:
        racer, x, y, surface, start, size = _check(args)
    except (ValueError, export.ExportError) as exc:  # SweepError and SessionError are ValueErrors
        args.parser.error(str(exc))
    result = None
    strategy = "cells" if args.exact else "auto"
    for item in sweep_map(
        surface, racer, x, y, args.grid, args.steps, start=start, eps=args.tol, strategy=strategy
    ):
        if isinstance(item, SweepProgress) and sys.stderr.isatty():
            print(f"\rsweep: step {item.steps_done}/{item.steps_total}", end="", file=sys.stderr)
        result = item
    if sys.stderr.isatty():
        print(file=sys.stderr)
    assert isinstance(result, SweepMap)
    print("\n".join(summary_lines(result, racer.label, surface.name)))
    try:
        for out in args.out:
            suffix = Path(out).suffix.lower()
            if suffix == ".npz":
                data = npz_bytes(result)
            elif suffix == ".png":
                data = png_bytes(result, racer, surface, size, args.colour, args.theme == "dark")
            else:
                raise SweepError(f"unknown output format {suffix}")
            export.atomic_write(out, data)
            print(f"wrote {out}")
    except (OSError, export.ExportError) as exc:
        print(f"losslab race: error: {exc}", file=sys.stderr)
        return 1
    return 0


def summary_lines(result: SweepMap, label: str, surface: str) -> list[str]:
    n = len(result.x)
    div = int(result.diverged.sum())
    conv = int((result.steps_to_converge >= 0).sum())
    ok = ~result.diverged
    lines = [
        f"{label} on {surface}: {n}x{n} cells of {result.x_axis.text()} x "
        f"{result.y_axis.text()}, {result.steps} steps ({result.grouped})",
        f"  diverged: {div} cells; converged within {result.eps:g}: {conv} cells",
    ]
    if ok.any():
        best = np.unravel_index(np.argmin(np.where(ok, result.final_loss, np.inf)), ok.shape)
        iy, ix = int(best[0]), int(best[1])
        lines.append(
            f"  lowest final loss {result.final_loss[iy, ix]:.4g} at "
            f"{result.x_axis.name}={result.x[ix]:.4g}, {result.y_axis.name}={result.y[iy]:.4g}"
        )
    return lines


def npz_bytes(result: SweepMap) -> bytes:
    buf = io.BytesIO()
    np.savez(
        buf,
        x=result.x,
        y=result.y,
        final_loss=result.final_loss,
        steps_to_converge=result.steps_to_converge,
        diverged=result.diverged,
        diverged_at=result.diverged_at,
        x_name=np.array(result.x_axis.name),
        y_name=np.array(result.y_axis.name),
        x_log=np.array(result.x_axis.log),
        y_log=np.array(result.y_axis.log),
        steps=np.array(result.steps),
    )
    return buf.getvalue()


def png_bytes(result: SweepMap, racer, surface, size, colour: str, dark: bool) -> bytes:
    """The map drawn by :class:`app.race.sweep_view.SweepView`, offscreen."""
    from app.headless import headless_app

    app = headless_app()
    from app import export
    from app.race.sweep_view import SweepView
    from core.race.sweep_theory import momentum_curves

    view = SweepView()
    view.set_theme(dark)
    view.set_map(result, colour, surface.global_min_value)
    view.set_curves(momentum_curves(surface, racer, result.x_axis, result.y_axis))
    view.set_current(*current_setting(racer, result))
    what = "final loss" if colour == "loss" else "steps to converge"
    view.plot.setTitle(f"{racer.label} on {surface.name}: {what} after {result.steps} steps")
    view.resize(*size)
    app.processEvents()
    data = export.qimage_png(view.grab().toImage())
    view.deleteLater()
    return data


def current_setting(racer, result: SweepMap) -> tuple[float | None, float | None]:
    """The racer's own values of the two swept hyperparameters (None outside the map)."""
    values = dict(racer.optimizer.resolved())
    values.update(noise=racer.noise, clip_value=racer.clip_value)
    out = []
    for axis in (result.x_axis, result.y_axis):
        v = values.get(axis.name)
        inside = isinstance(v, int | float) and axis.low <= float(v) <= axis.high
        out.append(float(v) if inside else None)
    if None in out:
        return None, None
    return out[0], out[1]


__all__ = ["add_sweep_arguments", "npz_bytes", "png_bytes", "run_sweep", "summary_lines"]
