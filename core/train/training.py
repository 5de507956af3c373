"""The training loop as a generator of plain events.

``for event in train(config, control): ...`` drives one run. Between steps the loop checks
``control``: pause blocks (inside the generator, so on whatever thread drives it), stop ends the
run with a :class:`Finished` event. The best checkpoint by validation loss is a *copy* of the
weights, written atomically when it improves (the tutorial kept a reference to the live model,
so it saved the last one). Parameter snapshots for landscape trajectories are kept within a
memory budget.
"""

from __future__ import annotations

import dataclasses
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
    OptimizerSpec,
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
from core.train.losses import LossSpec, build_loss, check_loss_for_task
from core.train.models import count_parameters, summary
from core.train.tasks import TaskSetup, build_task, get_task

Form = Literal["module", "numpy", "autograd"]
CHECKPOINT_EVERY_S = 2.0  # the best checkpoint goes to disk at most this often, and at the end
PREVIEW_SAMPLES = 32  # validation images whose predictions every Epoch reports


@dataclass(frozen=True)
class TrainConfig:
    """One training run as plain data. ``None`` fields take the task's tutorial defaults."""

    task: str = "sine"
    loss: LossSpec | None = None
    optimizer: OptimizerSpec | None = None
    scheduler: SchedulerSpec | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"
    clip_norm: float | None = None  # clip_grad_norm_(max_norm) when set
    epochs: int | None = None
    batch_size: int | None = None  # 0 = full batch
    seed: int = 0
    device: str = "cpu"  # cpu, cuda or auto
    form: Form = "module"  # sine fit only: which of the tutorial's three forms runs
    activation: str = "relu"  # LeNet: relu or tanh
    dataset: str = "auto"  # LeNet: auto (MNIST found locally), mnist, synthetic
    data_dir: str | None = None
    limit: int | None = None  # keep only this many training images (tests, demos)
    log_every: int = 100  # batches between progress lines (the tutorial's cadence)
    snapshots: int = 100  # about this many parameter snapshots over the run
    checkpoint: str | None = None  # where the best model by validation loss is written
    resume: str | None = None  # a checkpoint to continue from
    dtype: Literal["float32", "float64"] = "float32"

    def resolved(self) -> TrainConfig:
        """The config with task defaults filled in, validated; ``ValueError`` on bad input."""
        info = get_task(self.task)
        c = dataclasses.replace(
            self,
            loss=self.loss or info.loss,
            optimizer=self.optimizer or info.optimizer,
            epochs=info.epochs if self.epochs is None else self.epochs,
            batch_size=info.batch_size if self.batch_size is None else self.batch_size,
        )
        check_loss_for_task(c.loss.name, info.family, info.label)
        build_loss(c.loss)
        c.optimizer.resolved()
        if get_optimizer(c.optimizer.name).key == "lbfgs" and c.batch_size:
            raise ValueError("L-BFGS needs full-batch training here: set batch size 0")
        if c.scheduler is not None:
            c.scheduler.resolved()
        if c.scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Invalid scheduler_interval: {c.scheduler_interval!r}")
        _check_int("epochs", c.epochs, 1, 1_000_000)
        _check_int("batch_size", c.batch_size, 0, 1_000_000)
        _check_int("seed", c.seed, 0, 2**63 - 1)
        _check_int("log_every", c.log_every, 1, 1_000_000)
        _check_int("snapshots", c.snapshots, 2, 100_000)
        if c.clip_norm is not None and not (math.isfinite(c.clip_norm) and c.clip_norm > 0):
            raise ValueError(f"Invalid clip_norm: {c.clip_norm!r} (must be > 0)")
        if c.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"Invalid device: {c.device!r} (choose cpu, cuda or auto)")
        if c.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda was asked for, but no CUDA device is available")
        if c.form not in ("module", "numpy", "autograd"):
            raise ValueError(f"Invalid form: {c.form!r} (choose module, numpy or autograd)")
        if c.form != "module":
            if c.task != "sine":
                raise ValueError(f"the {c.form} form exists only for the sine fit")
            if c.optimizer.name != "sgd" or c.optimizer.resolved()["momentum"] != 0:
                raise ValueError(
                    f"the {c.form} form is plain gradient descent: use --optimizer sgd"
                )
            if c.loss != LossSpec("mse", "sum") or c.batch_size or c.scheduler or c.clip_norm:
                raise ValueError(
                    f"the {c.form} form is the tutorial's: summed squared error, full batch, "
                    "no scheduler, no clipping"
                )
        if c.dtype not in ("float32", "float64"):
            raise ValueError(f"Invalid dtype: {c.dtype!r} (float32 or float64)")
        return c

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("loss", "optimizer", "scheduler"):
            value = getattr(self, key)
            d[key] = value.to_dict() if value is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown training option(s): {', '.join(sorted(unknown))}")
        kw = dict(d)
        if kw.get("loss"):
            kw["loss"] = LossSpec.from_dict(kw["loss"])
        if kw.get("optimizer"):
            kw["optimizer"] = OptimizerSpec.from_dict(kw["optimizer"])
        if kw.get("scheduler"):
            kw["scheduler"] = SchedulerSpec.from_dict(kw["scheduler"])
        return cls(**kw)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Invalid {name}: {value!r} (a whole number {low} .. {high})")


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
    # what a live view needs to draw the task: LeNet's first 32 validation images (uint8) and
    # labels (their predictions come with each Epoch), the regression points
    preview: dict[str, Any] = field(default_factory=dict)


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
    reason: Literal["completed", "stopped", "diverged"]
    epochs: int
    steps: int
    best_epoch: int
    best_val_loss: float
    final: dict[str, Any]
    snapshot_steps: np.ndarray  # (T,) steps at which parameters were recorded
    snapshots: np.ndarray  # (T, P) flattened parameters (float32)
    message: str = ""


Event = Started | Step | Epoch | Checkpoint | Finished


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


def train(config: TrainConfig, control: TrainControl | None = None) -> Iterator[Event]:
    """Run one training; yields :data:`Event` objects. ``ValueError`` for a bad config."""
    c = config.resolved()
    control = control or TrainControl()
    device = torch.device(
        "cuda"
        if c.device == "auto" and torch.cuda.is_available()
        else ("cpu" if c.device == "auto" else c.device)
    )
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
    sched = build_scheduler(_fit_schedule(c, per_epoch), opt) if c.scheduler else None
    start_epoch, step, best = 1, 0, (math.inf, 0)
    if c.resume:
        start_epoch, step, best = resume(c, model, opt, sched)
    yield Started(
        c.task,
        setup.info.label,
        setup.dataset,
        setup.source,
        str(device),
        count_parameters(model),
        summary(model),
        c.epochs,
        per_epoch,
        n,
        start_epoch,
        _preview(setup),
    )
    snaps = _snapshots(model, c.epochs * per_epoch, c.snapshots)
    _snapshot(snaps, step, model)
    is_lbfgs = isinstance(opt, torch.optim.LBFGS)
    epoch = start_epoch - 1
    reason, message = "completed", ""
    pending, last_write = None, -math.inf  # the best checkpoint not yet on disk
    for epoch in range(start_epoch, c.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(c.seed * 100_003 + epoch))
        order = order.to(device)
        total_loss, batches = 0.0, 0
        for b in range(per_epoch):
            if control.stopped or not control.wait():
                reason = "stopped"
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
            if not math.isfinite(value):
                reason = "diverged"
                message = f"the loss became {value} at step {step}: try a smaller learning rate"
                break
            total_loss += value
            batches += 1
            if snaps.wants(step):
                _snapshot(snaps, step, model)
            yield Step(step, epoch, b + 1, min((b + 1) * bs, n), n, value, lr, gnorm)
        if reason != "completed":
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
    if reason != "diverged":
        val_loss, acc, details = _evaluate(model, loss_fn, vx, vy, setup)
        final.update(
            val_loss=val_loss,
            val_accuracy=acc,
            **{k: v for k, v in details.items() if k not in ("confusion", "samples")},
        )
    yield Finished(
        reason,
        epoch if reason == "completed" else epoch - 1,
        step,
        best[1],
        best[0],
        final,
        snaps.recorded_steps().copy(),
        snaps.get("theta").copy(),
        message,
    )


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
    )
    hist = History({"theta": (4,)}, {"theta": np.float32}, max_points=2 * c.snapshots)
    hist.stride = max(1, c.epochs // c.snapshots)
    hist.append(0, theta=np.array(coeffs))
    reason, epoch, last = "completed", 0, coeffs
    for epoch in range(1, c.epochs + 1):
        if control.stopped or not control.wait():
            reason, epoch = "stopped", epoch - 1
            break
        t0 = time.perf_counter()
        theta, loss = next(steps)
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
        reason,
        epoch,
        epoch,
        epoch,
        math.nan,
        setup.describe(model),
        hist.recorded_steps().copy(),
        hist.get("theta").copy(),
    )


__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Epoch",
    "Event",
    "Finished",
    "Started",
    "Step",
    "TrainConfig",
    "TrainControl",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
