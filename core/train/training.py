"""The training loop as a generator of plain events.

``for event in train(config, control): ...`` drives one run. Between steps the loop checks
``control``: pause blocks (inside the generator, so on whatever thread drives it), stop ends the
run with a :class:`Finished` event. The best checkpoint by validation loss is a *copy* of the
weights, written atomically when it improves (the tutorial kept a reference to the live model,
so it saved the last one). Parameter snapshots for landscape trajectories are kept within a
memory budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from core.history import History
from core.optimizers import (
    SchedulerSpec,
    build_optimizer,
    build_scheduler,
    get_optimizer,
    get_scheduler,
)
from core.train import sine
from core.train.checkpoints import (
    CheckpointError,
    checkpoint_payload,
    load_checkpoint,
    resume,
    save_checkpoint,
    write_checkpoint,
)
from core.train.config import TrainConfig
from core.train.losses import build_loss
from core.train.models import count_parameters, summary
from core.train.sharpness import Sharpness, tracker_for
from core.train.tasks import EXPERIMENT, TaskSetup, build_task

CHECKPOINT_EVERY_S = 2.0  # the best checkpoint goes to disk at most this often, and at the end
PREVIEW_SAMPLES = 32  # validation images whose predictions every Epoch reports
# A finite loss this many times its start (floored at 1, so a near-zero start, as when resuming
# a converged fit, does not make a harmless blip count) has exploded. From there the weights
# are huge, the next steps overflow float32 to inf/NaN within a few updates, and nothing in the
# same run brings them back: lenet at lr 50 went 2.3 -> 6.7e25 and ended at 9.9% accuracy.
EXPLODE_FACTOR = 1e6


@dataclass(frozen=True)
class Divergence:
    """Where and why a run was stopped as diverged, and what to try instead (plain words)."""

    step: int  # the global step whose loss gave it away
    epoch: int
    reason: str  # "loss became NaN at step 312", "loss exploded to 6.7e+25 (...) at step 40"
    advice: str  # "lower the learning rate (try 5, 10x smaller), add gradient clipping, ..."


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    task: str
    label: str
    dataset: str
    source: str
    device: str
    n_params: int
    layers: list[tuple[str, str, int]]
    epochs: int
    steps_per_epoch: int
    n_train: int
    start_epoch: int  # > 1 when resumed
    # the optimizer's hyperparameters as the first step uses them, by catalogue name ("lr",
    # "momentum", "beta1", ...): the config's, also after resuming from a checkpoint, and with
    # the scheduler's starting lr where one sets it (OneCycle starts at max_lr / div_factor)
    hyper: dict[str, Any] = field(default_factory=dict)
    # what a live view needs to draw the task: LeNet's first 32 validation images (uint8) and
    # labels (their predictions come with each Epoch), the regression points
    preview: dict[str, Any] = field(default_factory=dict)
    # the user's own model (task "experiment"): the file that was imported, and its sha256
    model_file: str = ""
    model_digest: str = ""


@dataclass(frozen=True)
class Step:
    step: int  # global step, from 1
    epoch: int
    batch: int  # within the epoch, from 1
    seen: int  # samples seen this epoch
    total: int  # samples per epoch
    loss: float
    lr: float
    grad_norm: float


@dataclass(frozen=True)
class Epoch:
    epoch: int
    step: int
    train_loss: float  # mean over the epoch's batches
    val_loss: float
    val_accuracy: float | None  # classification only
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)  # polynomial, line, confusion, samples


@dataclass(frozen=True)
class Checkpoint:
    path: str
    epoch: int
    val_loss: float


@dataclass(frozen=True)
class Finished:
    status: Literal["completed", "stopped", "diverged"]
    epochs: int
    steps: int
    best_epoch: int
    best_val_loss: float
    final: dict[str, Any]
    snapshot_steps: np.ndarray  # (T,) steps at which parameters were recorded
    snapshots: np.ndarray  # (T, P) flattened parameters (float32)
    message: str = ""  # one line for a status bar; for a diverged run, reason and advice
    divergence: Divergence | None = None  # set when status is "diverged"


Event = Started | Step | Epoch | Checkpoint | Finished | Sharpness


class TrainControl:
    """Thread-safe pause/resume/stop for a running :func:`train` generator."""

    def __init__(self) -> None:
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._run.set()  # wake a paused loop so it can end

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> bool:
        """Block while paused; return False when the run should stop."""
        while not self._run.wait(0.1):
            pass
        return not self._stop.is_set()


# --- the loop --------------------------------------------------------------------------------


def train(
    config: TrainConfig, control: TrainControl | None = None, experiment: Any = None
) -> Iterator[Event]:
    """Run one training; yields :data:`Event` objects. ``ValueError`` for a bad config.

    Task ``"experiment"`` trains the user's own file (``config.model_file``; see
    :mod:`core.train.experiment_loop`); a bad file raises ``ExperimentError`` (a
    ``ValueError``) before the first event. ``experiment``: that file already loaded (an
    :class:`~core.train.experiment.Experiment`, as the command line loads it for its
    defaults), so that the user's code runs once; None imports it here.

    A step whose loss is not finite, or has exploded (:data:`EXPLODE_FACTOR` times its start),
    ends the run at once with ``Finished(status="diverged", divergence=...)``.
    """
    c = config.resolved()  # returns an already resolved config as it is
    control = control or TrainControl()
    device = torch.device(
        "cuda"
        if c.device == "auto" and torch.cuda.is_available()
        else ("cpu" if c.device == "auto" else c.device)
    )
    if c.task == EXPERIMENT:
        # imported here: that loop builds on this module's events and helpers
        from core.train.experiment_loop import train_experiment

        yield from train_experiment(c, control, device, experiment)
        return
    dtype = torch.float64 if c.dtype == "float64" else torch.float32
    setup = build_task(
        c.task,
        seed=c.seed,
        dataset=c.dataset,
        data_dir=c.data_dir,
        limit=c.limit,
        activation=c.activation,
        dtype=dtype,
    )
    model = setup.model.to(device)
    if c.form != "module":
        yield from _train_tutorial_form(c, setup, control)
        return
    loss_fn = build_loss(c.loss)
    tx, ty = setup.train_x.to(device), setup.train_y.to(device)
    vx, vy = setup.val_x.to(device), setup.val_y.to(device)
    n = len(tx)
    bs = n if c.batch_size == 0 else min(c.batch_size, n)
    per_epoch = math.ceil(n / bs)
    opt = build_optimizer(c.optimizer, model.parameters())
    schedule = _fit_schedule(c, per_epoch) if c.scheduler else None
    sched = build_scheduler(schedule, opt) if schedule is not None else None
    start_epoch, step, best = 1, 0, (math.inf, 0)
    if c.resume:
        start_epoch, step, best = resume(c, model, opt, sched, schedule)
    yield Started(
        c.task,
        setup.label or setup.info.label,
        setup.dataset,
        setup.source,
        str(device),
        count_parameters(model),
        summary(model),
        c.epochs,
        per_epoch,
        n,
        start_epoch,
        hyper=effective_hyper(c.optimizer.name, opt.param_groups[0]),
        preview=_preview(setup),
    )
    snaps = _snapshots(model, c.epochs * per_epoch, c.snapshots)
    _snapshot(snaps, step, model)
    is_lbfgs = isinstance(opt, torch.optim.LBFGS)
    epoch = start_epoch - 1
    status, divergence, start_loss = "completed", None, None
    pending, last_write = None, -math.inf  # the best checkpoint not yet on disk
    sharp = tracker_for(c.track_sharpness, c.optimizer, c.seed)
    sharp.start_clock()
    for epoch in range(start_epoch, c.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(c.seed * 100_003 + epoch))
        order = order.to(device)
        total_loss, batches = 0.0, 0
        for b in range(per_epoch):
            if control.stopped or not control.wait():
                status = "stopped"
                break
            idx = order[b * bs : (b + 1) * bs]
            xb, yb = tx[idx], ty[idx]

            def closure(xb=xb, yb=yb):
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                return loss

            if is_lbfgs:
                loss = opt.step(closure)
                gnorm = _grad_norm(model)
            else:
                loss = closure()
                gnorm = _grad_norm(model, c.clip_norm)
                opt.step()
            lr = opt.param_groups[0]["lr"]
            if sched is not None and c.scheduler_interval == "step" and not _needs_metric(c):
                sched.step()
            step += 1
            value = float(loss.item())
            start_loss = value if start_loss is None else start_loss
            divergence = check_divergence(value, start_loss, step, epoch, c, lr)
            if divergence is not None:
                status = "diverged"
                break
            total_loss += value
            batches += 1
            if snaps.wants(step):
                _snapshot(snaps, step, model)
            yield Step(step, epoch, b + 1, min((b + 1) * bs, n), n, value, lr, gnorm)
            if sharp.due(step):  # at the weights this step reached, on its batch
                yield sharp.measure(
                    model.parameters(), lambda xb=xb, yb=yb: loss_fn(model(xb), yb), step, epoch, lr
                )
        if status != "completed":
            break
        val_loss, acc, details = _evaluate(model, loss_fn, vx, vy, setup)
        if sched is not None:
            if _needs_metric(c):
                sched.step(val_loss)
            elif c.scheduler_interval == "epoch":
                sched.step()
        yield Epoch(
            epoch,
            step,
            total_loss / max(1, batches),
            val_loss,
            acc,
            time.perf_counter() - t0,
            details,
        )
        if val_loss < best[0]:
            best = (val_loss, epoch)
            if c.checkpoint:
                # a copy now; the disk write at most every few seconds (and at the end): a
                # sine fit improves every epoch, and 2,000 writes took longer than training
                pending = checkpoint_payload(c, model, opt, sched, epoch, step, val_loss)
                if time.monotonic() - last_write >= CHECKPOINT_EVERY_S:
                    yield _write(c.checkpoint, pending)
                    pending, last_write = None, time.monotonic()
    if pending is not None:
        yield _write(c.checkpoint, pending)
    _snapshot(snaps, step, model)
    final: dict[str, Any] = {"val_loss": None, "val_accuracy": None}
    if status != "diverged":
        val_loss, acc, details = _evaluate(model, loss_fn, vx, vy, setup)
        final.update(
            val_loss=val_loss,
            val_accuracy=acc,
            **{k: v for k, v in details.items() if k not in ("confusion", "samples")},
        )
    if c.track_sharpness:  # the series goes into the run record with the final metrics
        final["sharpness"] = sharp.summary()
    yield finished(status, epoch, step, best, final, snaps, divergence)


def finished(status, epoch: int, step: int, best, final, snaps, divergence) -> Finished:
    """The run's last event (shared by the built-in tasks' loop and experiment files')."""
    return Finished(
        status,
        epoch if status == "completed" else epoch - 1,
        step,
        best[1],
        best[0],
        final,
        snaps.recorded_steps().copy(),
        snaps.get("theta").copy(),
        divergence_message(divergence),
        divergence,
    )


def check_divergence(
    loss: float, start: float, step: int, epoch: int, c: TrainConfig, lr: float
) -> Divergence | None:
    """A :class:`Divergence` when ``loss`` is not finite or has exploded, else None.

    Exploded: ``loss > EXPLODE_FACTOR * max(|start|, 1)``, ``start`` being the run's first
    loss (after a resume, the first loss of the resumed part).
    """
    if not math.isfinite(loss):
        reason = f"loss became {'NaN' if math.isnan(loss) else loss} at step {step}"
    elif loss > EXPLODE_FACTOR * max(abs(start), 1.0):
        times = loss / abs(start) if start else math.inf
        reason = f"loss exploded to {loss:.3g} ({times:.2g}x its start) at step {step}"
    else:
        return None
    return Divergence(step, epoch, reason, _advice(c, lr))


def _advice(c: TrainConfig, lr: float) -> str:
    """What to try, in plain words (no command-line options: the GUI shows it too)."""
    tries = [f"lower the learning rate to {lr / 10:.3g} (10x smaller)"]
    if c.form == "module" and c.clip_norm is None:
        tries.append("add gradient clipping")
    elif c.form == "module":
        tries.append(f"clip gradients harder (below {c.clip_norm:g})")
    if c.form == "module" and c.optimizer.name not in ("adam", "adamw"):
        tries.append("use Adam")
    return ", ".join(tries[:-1]) + (" or " if len(tries) > 1 else "") + tries[-1]


def divergence_message(d: Divergence | None) -> str:
    """One line for a status bar: ``"loss became NaN at step 312; try: ..."``."""
    return "" if d is None else f"{d.reason}; try: {d.advice}"


def effective_hyper(optimizer: str, group: dict[str, Any]) -> dict[str, Any]:
    """An optimizer param group's values under the catalogue's names (``betas`` split into
    ``beta1``/``beta2``): what the optimizer really uses, whatever set it."""
    out: dict[str, Any] = {}
    for p in get_optimizer(optimizer).params:
        value = group.get(p.arg)
        if p.index is not None and isinstance(value, list | tuple):
            value = value[p.index]
        if isinstance(value, torch.Tensor):
            value = value.item()
        out[p.name] = value
    return out


def _write(path: str, payload: dict[str, Any]) -> Checkpoint:
    write_checkpoint(path, payload)
    return Checkpoint(path, payload["epoch"], payload["val_loss"])


def _fit_schedule(c: TrainConfig, per_epoch: int) -> SchedulerSpec:
    """OneCycle must know the run's length: unless it was given, it is the run's own."""
    spec = c.scheduler
    if spec.name == "onecycle" and "total_steps" not in spec.hyper:
        total = c.epochs * per_epoch if c.scheduler_interval == "step" else c.epochs
        spec = SchedulerSpec(spec.name, {**spec.hyper, "total_steps": total})
    return spec


def _preview(setup: TaskSetup) -> dict[str, Any]:
    if setup.classes:
        images = setup.val_x[:PREVIEW_SAMPLES, 0].detach().cpu().numpy()
        return {
            "images": np.clip(images * 255 + 0.5, 0, 255).astype(np.uint8),
            "labels": setup.val_y[:PREVIEW_SAMPLES].cpu().numpy(),
        }
    if setup.train_x.ndim == 2 and setup.train_x.shape[1] == 1:  # the linear regressions
        return {
            "x": setup.train_x[:, 0].detach().cpu().double().numpy(),
            "y": setup.train_y[:, 0].detach().cpu().double().numpy(),
        }
    return {}


def _needs_metric(c: TrainConfig) -> bool:
    return c.scheduler is not None and get_scheduler(c.scheduler.name).needs_metric


def _grad_norm(model: nn.Module, clip: float | None = None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    )


def _snapshot(snaps: History, step: int, model: nn.Module) -> None:
    """Record the flattened parameters, written straight into the history's new row."""
    row = snaps.append(step, fill_missing=False)  # the copy below writes the whole row
    out = torch.from_numpy(snaps.fields["theta"][row])  # (P,) float32, shares the memory
    with torch.no_grad():
        torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()], out=out)


def _snapshots(model: nn.Module, total_steps: int, wanted: int) -> History:
    P = count_parameters(model)
    h = History(
        {"theta": (P,)}, {"theta": np.float32}, budget_bytes=64 * 2**20, max_points=2 * wanted
    )
    h.stride = max(1, total_steps // wanted)
    # Fault the buffer in now, at set-up: first-touch page faults inside the training loop,
    # taken by torch.cat's threads, cost more than the copies themselves (measured ~5x).
    h.fields["theta"].fill(0.0)
    return h


@torch.no_grad()
def _evaluate(model, loss_fn, vx, vy, setup: TaskSetup) -> tuple[float, float | None, dict]:
    model.eval()
    outs = [model(vx[i : i + 1000]) for i in range(0, len(vx), 1000)]
    out = torch.cat(outs)
    val_loss = float(loss_fn(out, vy).item())
    details = setup.describe(model)
    acc = None
    if setup.classes:
        pred = out.argmax(dim=1)
        acc = float((pred == vy).float().mean().item())
        conf = torch.zeros(setup.classes, setup.classes, dtype=torch.int64)
        conf.index_put_(
            (vy.cpu(), pred.cpu()), torch.ones(len(vy), dtype=torch.int64), accumulate=True
        )
        details["confusion"] = conf.numpy()  # rows: true class, columns: predicted
        # predictions for the images of Started.preview
        details["samples"] = pred[:PREVIEW_SAMPLES].cpu().numpy()
    model.train()
    return val_loss, acc, details


def _train_tutorial_form(c: TrainConfig, setup: TaskSetup, control: TrainControl):
    """The sine fit in the NumPy or autograd form: plain gradient descent on the SSE."""
    lr = float(c.optimizer.resolved()["lr"])
    model = setup.model
    coeffs = model.coefficients()
    steps = sine.numpy_steps(coeffs, lr) if c.form == "numpy" else sine.autograd_steps(coeffs, lr)
    yield Started(
        c.task,
        f"{setup.info.label} ({c.form} form)",
        setup.dataset,
        setup.source,
        "cpu",
        4,
        [("", c.form, 4)],
        c.epochs,
        1,
        len(setup.train_x),
        1,
        hyper={"lr": lr},
    )
    hist = History({"theta": (4,)}, {"theta": np.float32}, max_points=2 * c.snapshots)
    hist.stride = max(1, c.epochs // c.snapshots)
    hist.append(0, theta=np.array(coeffs))
    status, epoch, last, start, divergence = "completed", 0, coeffs, None, None
    for epoch in range(1, c.epochs + 1):
        if control.stopped or not control.wait():
            status, epoch = "stopped", epoch - 1
            break
        t0 = time.perf_counter()
        theta, loss = next(steps)
        start = loss if start is None else start
        divergence = check_divergence(loss, start, epoch, epoch, c, lr)
        if divergence is not None:
            status, epoch = "diverged", epoch - 1
            break
        last = tuple(float(v) for v in theta)
        if hist.wants(epoch):
            hist.append(epoch, theta=theta)
        yield Step(epoch, epoch, 1, len(setup.train_x), len(setup.train_x), loss, lr, math.nan)
        model.set_coefficients(*last)
        with torch.no_grad():
            val = float(((model(setup.val_x) - setup.val_y) ** 2).sum())
        yield Epoch(epoch, epoch, loss, val, None, time.perf_counter() - t0, setup.describe(model))
    hist.append(epoch, theta=np.array(last))
    yield Finished(
        status,
        epoch,
        epoch if divergence is None else divergence.step,
        epoch,
        math.nan,
        setup.describe(model),
        hist.recorded_steps().copy(),
        hist.get("theta").copy(),
        divergence_message(divergence),
        divergence,
    )


__all__ = [
    "EXPLODE_FACTOR",
    "Checkpoint",
    "CheckpointError",
    "Divergence",
    "Epoch",
    "Event",
    "Finished",
    "Sharpness",
    "Started",
    "Step",
    "TrainConfig",
    "TrainControl",
    "load_checkpoint",
    "save_checkpoint",
    "check_divergence",
    "train",
]
