"""Grids spread over torch.distributed ranks, and grids that resume after an interruption.

``torchrun --nproc-per-node N -m app -- landscape ...`` starts N processes; each learns its rank
and the world size from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), as torch
does. They work in rounds: every rank evaluates the next few points of the grid, rank 0
gathers them (one collective per round), updates the grid and, every few seconds, writes it
atomically to a *partial file*. Rank 0 also decides whether to stop, and how many points each
rank takes in the next round: about half a second of work at the speed that rank had in its
last round. So the ranks take turns along the grid, a rank slowed by other work on its core
takes fewer points, and every round, the last included, ends on every rank at about the same
time (with equal shares, each round waited for whichever rank was slower that round).

A partial file records what it was computed from (a fingerprint of the model, the checkpoint,
the directions, the grid, the samples and the precision). A rerun of the same command
continues from it; a run with different inputs starts afresh and never mixes the two.

One process (no torchrun) runs the same code with no collectives.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from core import fileio
from core.landscape.directions import LandscapeError

PARTIAL_FORMAT = "losslab-partial-grid-1"
SAVE_EVERY = 5.0  # seconds between partial files: a killed run loses at most this much
ROUND_SECONDS = 0.5  # the work of one round on each rank
TIMEOUT = float(os.environ.get("LOSSLAB_DIST_TIMEOUT", "300"))  # seconds a collective may wait


class Evaluator(Protocol):
    classes: int

    def row(self, alphas: list[float], b: float) -> list[tuple[float, float | None]]: ...


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @classmethod
    def from_env(cls) -> World:
        def num(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, default))
            except ValueError:
                return default

        size = num("WORLD_SIZE", 1)
        return cls(num("RANK", 0), size, num("LOCAL_RANK", 0), num("LOCAL_WORLD_SIZE", size))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def start(world: World, device: str = "cpu") -> str:
    """Join the process group (gloo on CPUs, NCCL on GPUs), give this rank its share of the
    CPU threads, and return the device it should use (``cuda:LOCAL_RANK`` with a GPU)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise LandscapeError("--device cuda: no CUDA device is available here")
        device = f"cuda:{world.local_rank % torch.cuda.device_count()}"
        torch.cuda.set_device(device)
    elif device != "cpu":
        raise LandscapeError(f"Invalid device: {device!r} (cpu, cuda or auto)")
    if world.distributed:
        # the ranks on one machine share its cores: oversubscribing them is slower than none
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, world.local_size)))
        if not torch.distributed.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            torch.distributed.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT))
    return device


def stop(world: World) -> None:
    if world.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def fingerprint(**inputs: Any) -> str:
    """A stable hash of what a grid is computed from (arrays by their bytes)."""
    h = hashlib.sha256()
    for key in sorted(inputs):
        value = inputs[key]
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()


def file_digest(path: str | os.PathLike | None) -> str:
    if not path:
        return ""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def partial_path(out: str | os.PathLike) -> Path:
    """The partial file beside an output: ``land.npz`` -> ``land.npz.partial.npz``."""
    p = Path(out)
    return p.with_name(p.name + ".partial.npz")


@dataclass
class PartialGrid:
    """A grid being filled: loss and accuracy so far, which points are done, and the
    fingerprint of its inputs."""

    fingerprint: str
    loss: np.ndarray  # (R_b, R_a), NaN where not done
    acc: np.ndarray | None
    done: np.ndarray  # (R_b, R_a) bool
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, fp: str, shape: tuple[int, int], classes: bool, info=None) -> PartialGrid:
        loss = np.full(shape, np.nan)
        acc = np.full(shape, np.nan) if classes else None
        return cls(fp, loss, acc, np.zeros(shape, dtype=bool), dict(info or {}))

    @property
    def count(self) -> int:
        return int(self.done.sum())

    def save(self, path: str | os.PathLike) -> None:
        arrays = {"loss": self.loss, "done": self.done}
        if self.acc is not None:
            arrays["acc"] = self.acc
        head = {"format": PARTIAL_FORMAT, "fingerprint": self.fingerprint, "info": self.info}
        arrays["head"] = np.frombuffer(json.dumps(head).encode(), dtype=np.uint8)
        fileio.atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, fp: str, shape) -> tuple[PartialGrid | None, str]:
        """The partial grid at ``path`` if it was computed from the same inputs; else None and
        why not (an empty reason when there is simply no file)."""
        if not Path(path).is_file():
            return None, ""
        try:
            with np.load(path, allow_pickle=False) as z:
                head = json.loads(bytes(z["head"]).decode())
                loss, done = z["loss"], z["done"].astype(bool)
                acc = z["acc"] if "acc" in z.files else None
        except (OSError, KeyError, ValueError):
            return None, f"{path} is damaged; starting afresh"
        if head.get("format") != PARTIAL_FORMAT:
            return None, f"{path} is not a LossLab partial grid; starting afresh"
        if head.get("fingerprint") != fp or loss.shape != tuple(shape):
            return None, (
                f"{path} was computed from other inputs (model, checkpoint, directions, grid, "
                "samples or precision); starting afresh"
            )
        return cls(fp, loss, acc, done, dict(head.get("info", {}))), ""


@dataclass(frozen=True)
class GridProgress:
    """After each round: points done of all, and the speed of this run (rank 0's view)."""

    done: int
    total: int
    rate: float  # points per second since this run started (nan at first)
    resumed: int  # points that came from the partial file
    warning: str = ""  # once, when the partial file could not be written (the grid goes on)


class RankFailed(LandscapeError):
    """A rank stopped answering; the message names it."""


def _broadcast(value: np.ndarray, world: World) -> np.ndarray:
    if not world.distributed:
        return value
    t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
    torch.distributed.broadcast(t, src=0)
    return t.numpy()


def _heartbeat(world: World, round_no: int) -> None:
    """Each rank notes the last round it finished in the launcher's store, so that when a
    collective fails rank 0 can say which rank stopped."""
    store = _store()
    if store is not None:
        store.set(f"losslab/round/{world.rank}", str(round_no))


def _store():
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except (ImportError, RuntimeError, ValueError):
        return None


def _who_failed(world: World, round_no: int) -> str:
    store = _store()
    if store is None:
        return "a rank"
    late = []
    for r in range(world.size):
        try:
            store.set_timeout(timedelta(seconds=2))
            last = int(store.get(f"losslab/round/{r}").decode())
        except Exception:  # noqa: BLE001 (a dead rank's key may simply be missing)
            last = -1
        if last < round_no and r != world.rank:
            late.append(r)
    return ", ".join(f"rank {r}" for r in late) or "another rank"


def plan_round(rates: np.ndarray, remaining: int, seconds: float = ROUND_SECONDS) -> np.ndarray:
    """How many of the ``remaining`` points each rank takes next: about ``seconds`` of work at
    each rank's speed (``rates``, points per second; NaN where not known yet: one point), all
    of them when that is more than remain, shared in proportion to the speeds so that the
    last round ends together too. Every rank gets at least one point while points remain for
    all."""
    size = len(rates)
    known = np.isfinite(rates) & (rates > 0)
    if not known.all():  # a rank's first round: one point (it pays any warm-up)
        counts = np.ones(size, dtype=np.int64)
    else:
        counts = np.clip(np.floor(rates * seconds), 1, 4096).astype(np.int64)
    if counts.sum() <= remaining:
        return counts
    if remaining <= size:  # (unknown speeds give one point each: fewer than the ranks remain)
        return (np.arange(size) < remaining).astype(np.int64)
    # the rest, in proportion to the speeds: every rank ends the last round at the same time
    share = rates / rates.sum() * remaining
    counts = np.maximum(1, np.floor(share)).astype(np.int64)
    while counts.sum() > remaining:  # the floor of 1 overshot: take from the largest
        counts[np.argmax(counts)] -= 1
    short = remaining - int(counts.sum())
    for r in np.argsort(counts - share)[:short]:  # the most rounded-down first
        counts[r] += 1
    return counts


def fill(
    evaluator: Evaluator,
    alphas: np.ndarray,
    betas: np.ndarray,
    grid: PartialGrid | None,
    world: World = World(),
    save_to: str | os.PathLike | None = None,
    should_stop: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[GridProgress]:
    """Evaluate the grid's missing points across the ranks, filling ``grid`` on rank 0 (other
    ranks pass None). Rank 0 writes ``save_to`` every few seconds, when stopped and when
    interrupted. Every rank must call this with the same grid axes."""
    shape = (len(betas), len(alphas))
    total = shape[0] * shape[1]
    if world.main:
        if grid is None:
            raise ValueError("rank 0 needs the grid to fill")
        done_flat = grid.done.ravel().astype(np.float64)
    else:
        done_flat = np.zeros(total)
    done_flat = _broadcast(done_flat, world)
    todo = np.flatnonzero(done_flat == 0)
    resumed = total - len(todo)
    # rank 0 plans each round from every rank's speed in its last one; the plan is broadcast,
    # so every rank knows where every share starts
    rates = np.full(world.size, math.nan)
    counts = plan_round(rates, len(todo))
    pos, round_no = 0, 0
    t0 = clock()
    last_save = -math.inf  # the first round saves: a file that can't be written shows early
    rate = math.nan

    saving = {"to": save_to if world.main else None, "warning": ""}

    def save() -> None:
        """Write the partial file; a full disk or a read-only folder costs the resume, not
        the grid (the warning is passed on once)."""
        if saving["to"] is None:
            return
        try:
            grid.save(saving["to"])
        except OSError as exc:
            saving["warning"] = f"cannot keep a partial file to resume from ({exc}); going on"
            saving["to"] = None

    try:
        while pos < len(todo):
            stopping = bool(should_stop and should_stop()) if world.main else False
            ctrl = _broadcast(np.array([float(stopping), *counts], dtype=np.float64), world)
            if ctrl[0]:
                break
            counts = ctrl[1:].astype(np.int64)
            first = pos + int(counts[: world.rank].sum())
            chunk = todo[first : first + int(counts[world.rank])]
            t_round = clock()
            # one row per point, padded to the largest share, and last this rank's seconds
            out = np.full((int(counts.max()) + 1, 3), -1.0)
            i = 0
            for r in np.unique(chunk // shape[1]):  # points of one row together: row() shares
                flats = chunk[chunk // shape[1] == r]  # the row's work (see PlaneEvaluator)
                values = evaluator.row(
                    [float(alphas[f % shape[1]]) for f in flats], float(betas[r])
                )
                for flat, (loss, acc) in zip(flats, values, strict=True):
                    out[i] = (flat, loss, math.nan if acc is None else acc)
                    i += 1
            out[-1] = (-2.0, clock() - t_round, len(chunk))
            gathered = _gather(out, world)
            _heartbeat(world, round_no)
            pos += int(counts.sum())
            round_no += 1
            if world.main:
                for r, part in enumerate(gathered):
                    seconds, n = part[-1, 1], part[-1, 2]
                    if n > 0 and seconds > 0:
                        rates[r] = n / seconds
                    for flat, loss, acc in part[:-1]:
                        if flat < 0:
                            continue
                        row, col = divmod(int(flat), shape[1])
                        grid.loss[row, col], grid.done[row, col] = loss, True
                        if grid.acc is not None:
                            grid.acc[row, col] = acc
                counts = plan_round(rates, len(todo) - pos)
                now = clock()
                elapsed = now - t0
                rate = (grid.count - resumed) / elapsed if elapsed > 0 else math.nan
                if now - last_save >= SAVE_EVERY:
                    save()
                    last_save = now
                warning, saving["warning"] = saving["warning"], ""
                yield GridProgress(grid.count, total, rate, resumed, warning)
            else:
                yield GridProgress(0, total, math.nan, resumed)
    except KeyboardInterrupt:
        save()
        raise
    except RuntimeError as exc:
        if not world.distributed:
            raise
        save()
        who = _who_failed(world, round_no)
        raise RankFailed(
            f"{who} stopped answering during round {round_no + 1} ({exc.__class__.__name__}); "
            + (
                f"the {grid.count} points gathered are kept in {saving['to']}"
                if saving["to"] is not None
                else "stopping"
            )
        ) from None
    save()
    if saving["warning"]:
        yield GridProgress(grid.count, total, rate, resumed, saving["warning"])


def _gather(out: np.ndarray, world: World) -> list[np.ndarray]:
    if not world.distributed:
        return [out]
    t = torch.from_numpy(out)
    if world.main:
        parts = [torch.empty_like(t) for _ in range(world.size)]
        torch.distributed.gather(t, parts, dst=0)
        return [p.numpy() for p in parts]
    torch.distributed.gather(t, None, dst=0)
    return []


__all__ = [
    "GridProgress",
    "PartialGrid",
    "RankFailed",
    "World",
    "file_digest",
    "fill",
    "fingerprint",
    "partial_path",
    "plan_round",
    "start",
    "stop",
]
