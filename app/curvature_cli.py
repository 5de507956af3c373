"""``losslab curvature``: the Hessian's top eigenvalues, trace, spectral density and per-layer
curvature at a checkpoint, headless, as JSON (and the density as PNG).

The loss is the one ``losslab landscape`` draws at its centre: the task's loss on its validation
set (sampled for MNIST), or the mean of an experiment file's ``loss(model, batch)``. One
Hessian-vector product is timed first and the whole cost printed, so a long analysis can be
stopped (Ctrl+C) before it has cost much.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SUFFIXES = (".json", ".png")


def add_curvature_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curvature",
        help="the Hessian's top eigenvalues, trace and spectral density at a checkpoint",
        description="The curvature of the loss at a trained model's weights: the top Hessian "
        "eigenvalues (Lanczos), the trace (Hutchinson, with its standard error), the spectral "
        "density (stochastic Lanczos quadrature) and the top eigenvalue of each layer. Give a "
        "checkpoint, a run record, or both; or your own model as an experiment file (--model).",
    )
    p.add_argument("--checkpoint", metavar="CKPT", help="the weights (default: the run's best)")
    p.add_argument("--run", metavar="JSON", help="a run record (losslab train --out)")
    p.add_argument(
        "--model",
        metavar="FILE.py",
        help="your own model: an experiment file defining model() and batches() (and "
        "optionally loss(model, batch)); it is your code, run as `python FILE.py` would",
    )
    p.add_argument("--top", type=int, default=5, metavar="K", help="top eigenvalues (default 5)")
    p.add_argument("--trace", action="store_true", help="the trace, with its standard error")
    p.add_argument("--density", action="store_true", help="the spectral density")
    p.add_argument("--per-layer", action="store_true", help="the top eigenvalue of each layer")
    p.add_argument(
        "--max-steps",
        type=int,
        default=100,
        metavar="N",
        help="Lanczos steps at most for the top eigenvalues (100; 40 per layer at most)",
    )
    p.add_argument(
        "--trace-samples", type=int, default=100, metavar="N", help="Rademacher probes (100)"
    )
    p.add_argument(
        "--density-runs", type=int, default=3, metavar="N", help="Lanczos runs averaged (3)"
    )
    p.add_argument(
        "--density-steps", type=int, default=80, metavar="N", help="Lanczos steps per run (80)"
    )
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        help="validation samples the loss is taken on (default 0: the whole set when it is "
        "small, else 1000, as losslab landscape)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    p.add_argument("--data-dir", help="MNIST folder (default: the run's, $LOSSLAB_DATA_DIR)")
    p.add_argument("--size", default="1200x700", help="the density picture's size")
    p.add_argument(
        "--out",
        action="append",
        required=True,
        metavar="FILE",
        help="curv.json (the numbers) and/or density.png (needs --density); by suffix",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    def fail(msg: str, code: int = 2) -> int:
        print(f"losslab curvature: error: {msg}", file=sys.stderr)
        return code

    outs, problem = _outputs(args)
    if problem:
        return fail(problem)
    if not (args.checkpoint or args.run or args.model):
        return fail("give --checkpoint, --run or --model")
    from core.landscape.curvature_job import CurvatureRequest

    req = CurvatureRequest(
        top=args.top,
        trace=args.trace,
        density=args.density,
        per_layer=args.per_layer,
        trace_samples=args.trace_samples,
        density_runs=args.density_runs,
        density_steps=args.density_steps,
        max_steps=args.max_steps,
        layer_steps=min(40, args.max_steps),
        seed=args.seed,
    )
    try:
        req.check()
    except ValueError as exc:
        return fail(str(exc))
    if ".png" in outs and not args.density:
        return fail(f"{outs['.png']}: the picture is of the spectral density: add --density")
    size = (0, 0)
    if ".png" in outs:
        from app.export import parse_size

        try:
            size = parse_size(args.size)
        except ValueError as exc:
            return fail(str(exc))
    try:
        problem, info = _problem(args)
    except (ValueError, OSError) as exc:  # LandscapeError, DataError, ExperimentError
        return fail(str(exc))
    for line in _header(info):
        print(line)
    try:
        result = _analyse(problem, req)
    except KeyboardInterrupt:
        print("losslab curvature: interrupted; nothing written", file=sys.stderr)
        return 130
    except ValueError as exc:  # CurvatureError and a request the model cannot take
        return fail(str(exc), 1)
    _say(result)
    data = {"subject": info, **result.to_dict()}
    from core import fileio

    try:
        if ".json" in outs:
            fileio.atomic_write(outs[".json"], (json.dumps(data, indent=1) + "\n").encode())
            print(f"Wrote {outs['.json']}")
        if ".png" in outs:
            from app.landscape.curvature_panel import render_density_png

            title = f"{info['name']} ({info['task']}): Hessian spectral density"
            render_density_png(result, outs[".png"], size, title=title)
            print(f"Wrote {outs['.png']}")
    except (OSError, ValueError) as exc:
        return fail(f"cannot write: {exc}", 1)
    return 0


def _outputs(args) -> tuple[dict[str, str], str]:
    """The outputs by suffix, checked before any work; (outputs, why not) with "" when fine."""
    from core.train.runs import OutputPathError, check_output_path

    outs: dict[str, str] = {}
    for out in args.out:
        suffix = Path(out).suffix.lower()
        if suffix not in SUFFIXES:
            return {}, f"{out}: unknown format {suffix or '(none)'!r} (use .json or .png)"
        if suffix in outs:
            return {}, f"two {suffix} outputs ({outs[suffix]}, {out}): give one of each"
        try:
            check_output_path(out, "the curvature")
        except OutputPathError as exc:
            return {}, str(exc)
        outs[suffix] = out
    return outs, ""


def _problem(args):
    """The landscape problem (model and loss) and what it is, as the JSON's ``subject``."""
    from core.landscape.problems import problem_for, resolve_device
    from core.landscape.subject import load_model_subject, load_subject

    if args.model:
        subject = load_model_subject(args.model, args.checkpoint, args.run)
    else:
        subject = load_subject(args.checkpoint, args.run, args.data_dir)
    problem = problem_for(subject, args.samples, resolve_device(args.device))
    if subject.experiment is not None:
        on = f"the mean of loss(model, batch) over its {problem.n} batches"
    elif problem.n == problem.total:
        on = f"all {problem.total:,} validation samples"
    else:
        on = f"{problem.n:,} of {problem.total:,} validation samples"
    info = {
        "name": subject.name,
        "task": subject.task,
        "model_file": args.model or None,
        "checkpoint": subject.checkpoint or None,
        "data": subject.source,
        "loss_on": on,
    }
    return problem, info


def _header(info: dict) -> list[str]:
    if info["model_file"]:
        weights = info["checkpoint"] or "as model() builds them"
        first = f"Your model: {info['model_file']}, weights {weights}"
    else:
        first = f"Run {info['name']!r} ({info['task']}), checkpoint {info['checkpoint']}"
    sampled = "" if info["loss_on"].startswith(("all", "the mean")) else " (--samples to change)"
    return [first, f"Data: {info['data']}", f"The loss on {info['loss_on']}{sampled}"]


def _analyse(problem, req):
    from core.landscape import curvature_job as cj
    from core.landscape.progress import duration

    bar = None
    for e in cj.analyse_problem(problem, req):
        if isinstance(e, cj.Planned):
            print(
                f"{e.parameters:,} parameters; at most {e.products:,} Hessian-vector products, "
                f"up to about {duration(e.seconds)} "
                f"(one took {cj.product_time(e.seconds_per_product)}). Ctrl+C stops.",
                flush=True,
            )
            bar = _Bar(e.products)
        elif isinstance(e, cj.Progress):
            bar(e)
        elif isinstance(e, cj.Done):
            bar.close()
            return e.result
        else:
            raise TypeError(f"Unknown curvature event: {type(e).__name__}")
    raise RuntimeError("the analysis ended without a result")


class _Bar:
    """Progress on stderr: tqdm on a terminal, a line per stage and every 10% when piped."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tqdm = None
        self.said = (None, -1)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.tqdm = tqdm(total=total, unit="Hv", desc="curvature")

    def __call__(self, e) -> None:
        if self.tqdm is not None:
            self.tqdm.set_description(e.stage)
            self.tqdm.update(e.done - self.tqdm.n)
            return
        tenth = 10 * e.done // max(1, e.total)
        if (e.stage, tenth) != self.said:
            self.said = (e.stage, tenth)
            print(f"{e.stage}: {e.done}/{e.total} products", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def _say(r) -> None:
    if r.top_eigenvalues is not None:
        vals = ", ".join(f"{v:.6g}" for v in r.top_eigenvalues)
        print(f"Top Hessian eigenvalues: {vals} (Lanczos, {r.lanczos_steps} steps)")
    if r.trace is not None:
        print(
            f"Trace: {r.trace.value:.6g} ± {r.trace.error:.2g} (standard error, "
            f"{r.trace.samples} Rademacher probes)"
        )
    if r.density is not None:
        d = r.density
        print(
            f"Density: {d.nodes.shape[0]} Lanczos runs of {d.nodes.shape[1]} steps, "
            f"eigenvalues {d.grid[0]:.4g} .. {d.grid[-1]:.4g}"
        )
    for layer in r.per_layer:
        print(
            f"  {layer.name} ({layer.kind}, {layer.parameters:,} parameters): "
            f"top eigenvalue {layer.top_eigenvalue:.6g}"
        )
    took = time.strftime("%M:%S", time.gmtime(r.seconds))
    print(f"{r.products:,} Hessian-vector products, {took}")


__all__ = ["add_curvature_parser", "run"]
