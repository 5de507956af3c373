"""``losslab race``: run a race headless and write PNG, SVG, GIF, MP4, JSON or CSV.

Renders with the same SurfaceView as the window, on Qt's offscreen platform, so no display is
needed.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

import numpy as np

from app.colors import PALETTE
from core.optimizers import OptimizerSpec, get_optimizer, parse_value
from core.race.race import Race, RacerSpec
from core.race.session import RaceSession, SessionError, SurfaceChoice, load_preset, load_session
from core.race.surfaces import CATALOGUE

FORMATS = (".png", ".svg", ".gif", ".mp4", ".json", ".csv")
RACER_OPTIONS = {"noise", "seed", "clip", "clip_value", "label"}


def add_race_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "race",
        help="run an optimizer race headless and render it",
        description="Run a race and write pictures, an animation or data. "
        "Start from a preset or a session, then override.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a preset name (see --list-presets)")
    src.add_argument("--session", metavar="FILE", help="a race session saved by the app")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--surface", choices=sorted(CATALOGUE), help="a catalogue surface")
    p.add_argument("--formula", help="a surface formula in x and y, e.g. 'x**2 + 3*y**2'")
    p.add_argument("--bounds", default="-3,3,-3,3", help="formula plot bounds: xmin,xmax,ymin,ymax")
    p.add_argument(
        "--racer",
        action="append",
        metavar="OPT:KEY=VALUE,...",
        help="e.g. adam:lr=0.01 or sgd:lr=1e-3,momentum=0.9,noise=0.5 (repeatable; "
        "replaces the preset's racers)",
    )
    p.add_argument(
        "--start", metavar="X,Y", help="start point; write --start=-1,2 for a negative x"
    )
    p.add_argument("--steps", type=int, default=300, help="steps to run (default 300)")
    p.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="a racer has converged once it is this close to a known minimum (default 0.001)",
    )
    p.add_argument(
        "--out",
        action="append",
        required=False,
        metavar="FILE",
        help="output: .png .svg .gif .mp4 .json .csv (repeatable); with --sweep: .png .npz",
    )
    p.add_argument("--size", default="1600x1200", help="picture size, e.g. 1600x1200")
    p.add_argument("--frames", type=int, default=120, help="GIF and MP4 frames (default 120)")
    p.add_argument("--theme", choices=("dark", "light"), default="dark")
    from app.sweep_cli import add_sweep_arguments

    add_sweep_arguments(p)
    p.set_defaults(handler=run_race, parser=p)


def parse_racer(text: str, index: int) -> RacerSpec:
    name, _, rest = text.partition(":")
    info = get_optimizer(name.strip())
    hyper, opts = {}, {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"racer option {item!r} must look like KEY=VALUE")
        key = key.strip()
        if key in RACER_OPTIONS:
            opts[key] = value.strip()
        else:
            hyper[key] = parse_value(info.param(key), value)
    spec = RacerSpec(
        OptimizerSpec(info.key, hyper),
        clip=opts.get("clip", "none"),
        clip_value=float(opts.get("clip_value", 1.0)),
        noise=float(opts.get("noise", 0.0)),
        seed=int(opts.get("seed", 0)),
        name=opts.get("label", ""),
        color=PALETTE[index % len(PALETTE)],
    )
    spec.validate()
    return spec


def build_session(args: argparse.Namespace) -> RaceSession:
    if args.preset:
        session = load_preset(args.preset)
    elif args.session:
        session = load_session(args.session)
    else:
        session = RaceSession(SurfaceChoice("rosenbrock"), None, (), 1)
    choice = session.surface
    if args.surface:
        choice = SurfaceChoice(args.surface)
    if args.formula:
        bounds = _numbers(args.bounds, 4, "--bounds needs four numbers: xmin,xmax,ymin,ymax")
        choice = SurfaceChoice("formula", args.formula, bounds)
    racers = session.racers
    if args.racer:
        racers = tuple(parse_racer(t, i) for i, t in enumerate(args.racer))
    if not racers:
        raise ValueError("no racers: give --preset, --session or at least one --racer")
    start = session.start if choice == session.surface else None
    if args.start:
        start = _numbers(args.start, 2, "--start needs two numbers: X,Y")
    return RaceSession(choice, start, racers, session.speed, 0, session.caption, session.name)


def _numbers(text: str, n: int, message: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or not all(map(math.isfinite, values)):
        raise ValueError(f"{message}, got {text!r}")
    return values


def run_race(args: argparse.Namespace) -> int:
    if args.sweep:  # a hyperparameter map instead of a race
        from app.sweep_cli import run_sweep

        return run_sweep(args)
    if args.list_presets:
        from core.race.session import PRESET_DIR, preset_names

        damaged = 0
        for name in preset_names():
            try:
                s = load_preset(name)
            except SessionError as exc:  # a damaged install: name the file, list the rest
                print(f"losslab: preset {PRESET_DIR / (name + '.json')} is damaged: {exc}",
                      file=sys.stderr)  # fmt: skip
                damaged += 1
                continue
            print(f"{name:26s} {s.name}: {s.caption}")
        if not preset_names():
            print(f"losslab: no presets found in {PRESET_DIR} (the install is incomplete)",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 1 if damaged else 0
    if not args.out:
        args.parser.error("--out is required (a .png, .svg, .gif, .mp4, .json or .csv file)")
    for out in args.out:
        if Path(out).suffix.lower() not in FORMATS:
            args.parser.error(f"--out {out}: unknown format; use one of {', '.join(FORMATS)}")
    if not 1 <= args.steps <= 1_000_000:
        args.parser.error("--steps must be 1 .. 1000000")
    if not 2 <= args.frames <= 1000:
        args.parser.error("--frames must be 2 .. 1000")
    if not args.tol > 0:
        args.parser.error(f"--tol must be a positive distance, got {args.tol:g}")
    from app import export

    try:
        size = export.parse_size(args.size)
        session = build_session(args)
        surface = session.surface.build()
        start = session.start or surface.start
        check_start(start, surface, "--start" if args.start else "the session's start")
        for out in args.out:  # before any work: a long render is never lost to a bad path
            export.check_writable(out)
    except (ValueError, SessionError, export.ExportError) as exc:
        args.parser.error(str(exc))
    from app.headless import headless_app

    app = headless_app()
    from app.race.render import OffscreenView, even_size, gif_of, race_frames

    colours = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(session.racers)]
    race = Race(surface, session.racers, starts=start)
    race.converge_eps = args.tol  # before stepping: the first step within it is recorded
    race.step(args.steps)
    print("\n".join(summary_lines(race, args.tol)))
    try:
        for out in args.out:
            suffix = Path(out).suffix.lower()
            if suffix in (".gif", ".mp4"):
                # the same frames for both; the GIF stays small, the MP4 keeps --size (even)
                shape = _gif_size(size) if suffix == ".gif" else even_size(size)
                with _progress_bar(args.frames, suffix[1:].upper()) as progress:
                    frames = race_frames(
                        surface,
                        session.racers,
                        race.starts[0],
                        colours,
                        args.steps,
                        args.frames,
                        shape,
                        args.theme == "dark",
                        progress=progress,
                    )
                data = gif_of(frames, colours) if suffix == ".gif" else export.mp4_bytes(frames)
            elif suffix == ".json":
                data = export.json_bytes(race, session.to_dict())
            elif suffix == ".csv":
                data = export.csv_bytes(race)
            elif suffix in (".png", ".svg"):
                v = OffscreenView(*size, dark=args.theme == "dark")
                try:
                    v.show_race(race, colours)
                    data = v.svg() if suffix == ".svg" else export.qimage_png(v.image())
                finally:
                    v.close()
            else:
                raise AssertionError(f"unchecked format {suffix}")
            export.atomic_write(out, data)
            print(f"wrote {out}")
    except export.ExportError as exc:
        print(f"losslab race: error: {exc}", file=sys.stderr)
        return 1
    finally:
        app.processEvents()
    return 0


def check_start(start: tuple[float, float], surface, what: str) -> None:
    """ValueError naming the bounds when ``start`` is off the plot (nothing would be drawn)."""
    x, y = start
    xmin, xmax, ymin, ymax = surface.bounds
    if not (xmin <= x <= xmax and ymin <= y <= ymax):
        raise ValueError(
            f"{what} {x:g},{y:g} is outside the {surface.name} surface's bounds: "
            f"x from {xmin:g} to {xmax:g}, y from {ymin:g} to {ymax:g}"
        )


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def summary_lines(race: Race, tol: float) -> list[str]:
    """One line per racer: final loss, distance to the nearest known minimum, the first step
    within ``tol`` of one (or -), and the step it diverged at (or -)."""
    names = [s.label for s in race.specs]
    width = max(5, *(len(n) for n in names))
    x, y = race.starts[0]
    rule = (
        f"converged = within {tol:g} of a known minimum"
        if race.surface.minima
        else "no known minimum on this surface: no distance, no convergence"
    )
    lines = [
        f"{race.surface.name}: {plural(race.step_count, 'step')} from ({x:g}, {y:g}); {rule}",
        f"{'racer':{width}s}  {'final loss':>11s}  {'distance':>9s}  {'converged':>9s}  diverged",
    ]
    minima = np.array([(m.x, m.y) for m in race.surface.minima]).reshape(-1, 2)  # (M, 2)
    # Race checks step 0 in its constructor, before converge_eps can be set: check it here
    at_start = bool(len(minima)) and np.hypot(*(minima - (x, y)).T).min() <= tol
    for r, name in enumerate(names):
        m = race.metrics(r)
        dist = float(m.final_distance[0])
        reached, diverged = int(m.steps_to_converge[0]), int(m.diverged_at[0])
        reached = 0 if at_start else reached
        lines.append(
            f"{name:{width}s}  {float(m.final_loss[0]):11.4g}  "
            f"{f'{dist:.4g}' if np.isfinite(dist) else '-':>9s}  "
            f"{f'step {reached}' if reached >= 0 else '-':>9s}  "
            + (f"at step {diverged} ({race.diverge_reason[r, 0]})" if diverged >= 0 else "-")
        )
    return lines


def _gif_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, 800 / w)  # GIFs stay small: at most 800 px wide
    return int(w * scale), int(h * scale)


@contextlib.contextmanager
def _progress_bar(total: int, what: str):
    """A tqdm bar on a terminal (nothing when piped); yields a (done, total) callback."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame", desc=what)

    def progress(done: int, n: int) -> None:
        bar.total = n
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        bar.close()
