"""``losslab landscape --run a.json --run b.json ...``: several runs on one plane, headless.

Prints each run's projection, the plane's axes and notes, and "barrier height: ..." for the line
between runs A's and B's end points; writes the same pictures and files as for one run (the
.npz with ``path_0``, ``path_1``, ..., ``run_names`` and ``end_points``)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.colors import PALETTE


def parse_pair(text: str, n: int) -> tuple[int, int]:
    """``"1,2"`` -> ``(0, 1)``; ValueError naming what is allowed."""
    parts = text.replace(" ", "").split(",")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"Invalid --pair: {text!r} (two run numbers, e.g. 1,2)") from None
    for k in (a, b):
        if not 1 <= k <= n:
            raise ValueError(f"Invalid --pair: {text!r} (runs are numbered 1 .. {n})")
    if a == b:
        raise ValueError(f"Invalid --pair: {text!r} (choose two different runs)")
    return a - 1, b - 1


def load_run(file: str):
    """The run's record and its best checkpoint (found next to its JSON when recorded relative
    to another folder), and a note when its trajectory file is gone (the run is then its end
    point alone, as the issue asks, instead of refused). LandscapeError naming the run when it
    saved no checkpoint or it is gone."""
    from core.landscape.directions import LandscapeError
    from core.landscape.multirun import find_checkpoint
    from core.train.runs import RunFileError, RunRecord

    try:
        record = RunRecord.load(file)
    except RunFileError as exc:
        raise LandscapeError(str(exc)) from None
    note = ""
    if record.trajectory_problem:  # a .trajectory.npz deleted or moved: the end point alone
        name = record.trajectory_problem.split(":")[0]
        note = f"its trajectory {name} cannot be read, so its end point only"
    if not record.checkpoints:
        raise LandscapeError(
            f"{file}: the run saved no checkpoint (train it with --checkpoint BEST.pt)"
        )
    found = find_checkpoint(record.checkpoints[-1]["path"], file)
    if found is None:
        raise LandscapeError(
            f"{file}: its checkpoint {record.checkpoints[-1]['path']} is not there any more"
        )
    return record, str(found), note


def compute_runs(args, size, fail, write_all) -> int:
    """Compute and write; ``fail(msg, code=2)`` reports an error, ``write_all(land, args,
    size, fail)`` writes every output (keeping the grid when one cannot be written)."""
    from core.landscape import job as lj
    from core.landscape import multirun as mr
    from core.landscape.directions import LandscapeError
    from core.landscape.plane import Row
    from core.train.data import DataError

    t0 = time.perf_counter()
    files = list(args.run)
    try:
        a, b = parse_pair(args.pair, len(files))
    except ValueError as exc:
        return fail(str(exc))
    directions = args.directions or "endpoints"
    if directions == "init-final":
        return fail("init-final is for one run; for several choose endpoints, pca, random or "
                    "hessian")  # fmt: skip
    req = mr.MultiRequest(
        base=lj.Request(
            span=args.span, resolution=args.grid, samples=args.samples,
            precision="bf16" if args.bf16 else "fp32", seed=args.seed, eigenvalues=0,
            compile="off", device=args.device, bias_bn=args.include_bias_bn,
        ),
        directions=directions, a=a, b=b,
        colours=tuple(PALETTE[k % len(PALETTE)] for k in range(len(files))),
    )  # fmt: skip
    try:
        loaded = [load_run(f) for f in files]
        subjects = [lj.load_subject(ck, rec, args.data_dir) for rec, ck, _ in loaded]
        names = [s.name for s in subjects]
        if len(set(names)) < len(names):  # `losslab train` names runs by their task
            subjects = [replace(s, name=Path(f).stem) for s, f in zip(subjects, files, strict=True)]
        mr.check_runs(subjects)
        req.check(subjects)
    except (LandscapeError, DataError, OSError) as exc:
        return fail(str(exc))
    for k, s in enumerate(subjects, start=1):
        why = loaded[k - 1][2] or "no trajectory: its end point only"
        has = "" if s.trajectory is not None else f" ({why})"
        print(f"Run {k}: {s.name!r} ({s.task}), checkpoint {s.checkpoint}{has}")
    print(f"Data: {subjects[a].source}")
    land = barrier = None
    rows = 0
    try:
        for e in mr.run_many(subjects, req):
            if isinstance(e, mr.MultiPlanned):
                print(f"Plane: {directions}; a: {e.axes[0]}; b: {e.axes[1]}")
                for note in e.notes:
                    print(f"Note: {note}")
            elif isinstance(e, Row):
                rows += 1
                if rows == args.grid or rows % 10 == 0:
                    print(f"grid rows {rows}/{args.grid}", flush=True)
            elif isinstance(e, mr.RunPath):
                off = float(np.median(e.off_plane))
                x, y = np.round(e.end, 6) + 0.0  # no "1.9e-10" for a zero (nor a -0)
                print(
                    f"{e.name}: end point at ({x:.4g}, {y:.4g}), "
                    f"{len(e.coords)} point{'s' if len(e.coords) != 1 else ''}, median "
                    f"{100 * off:.0f}% off the plane"
                )
            elif isinstance(e, mr.Barrier):
                barrier = e
            elif isinstance(e, mr.MultiDone):
                land = e.landscape
                land.meta["seconds"] = round(e.seconds, 2)
            else:
                raise TypeError(f"Unknown landscape event: {type(e).__name__}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except (LandscapeError, DataError) as exc:
        return fail(str(exc))
    if barrier is not None:
        names = [s.name for s in subjects]
        line = f"the line from {names[barrier.a]!r} to {names[barrier.b]!r}"
        if barrier.height > 0:
            print(
                f"barrier height: {barrier.height:.6g} (at t = {barrier.t_max:.3g} on {line}; "
                "the loss there rises that far above the straight line between the two end "
                "losses)"
            )
        else:  # "at t = 0" would name a place where nothing happens
            print(
                f"barrier height: 0 (none: on {line} the loss never rises above the straight "
                "line between the two end losses)"
            )
    print(
        f"{len(land.alphas)}x{len(land.betas)} grid of {len(subjects)} runs: "
        f"{time.perf_counter() - t0:.1f} s; loss {np.nanmin(land.loss):.5g} .. "
        f"{np.nanmax(land.loss):.5g}"
    )
    return write_all(land, args, size, fail)


__all__ = ["compute_runs", "parse_pair"]
