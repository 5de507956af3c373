"""A training run as plain data: :class:`TrainConfig`, resolved (task defaults filled in,
validated) once per run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from core.optimizers import OptimizerSpec, SchedulerSpec, build_optimizer, get_optimizer
from core.train.losses import LossSpec, build_loss, check_loss_for_task
from core.train.tasks import EXPERIMENT, get_task

Form = Literal["module", "numpy", "autograd"]


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
    # task "experiment" only: the user's own Python file (model(), batches(), ...; see
    # core.train.experiment). Its model, data, batch size and loss are the file's.
    model_file: str | None = None
    # the top Hessian eigenvalue every this many steps (0 = off; core.train.sharpness)
    track_sharpness: int = 0

    def resolved(self) -> TrainConfig:
        """The config with task defaults filled in, validated; ``ValueError`` on bad input.

        Idempotent and cheap the second time: a resolved config is returned as it is (the
        controls, the command line, the record and the loop all ask for it). The mark is an
        attribute outside the fields, so ``dataclasses.replace`` gives an unresolved copy that
        is checked again, and equality and ``to_dict`` do not see it.
        """
        if self.is_resolved:
            return self
        if self.task == EXPERIMENT or self.model_file is not None:
            return self._resolved_experiment()
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
        # torch's own checks too (Nesterov needs momentum, ...), here rather than mid-start
        build_optimizer(c.optimizer, [torch.zeros(1, requires_grad=True)])
        if get_optimizer(c.optimizer.name).key == "lbfgs" and c.batch_size:
            raise ValueError("L-BFGS needs full-batch training here: set batch size 0 (full batch)")
        _check_int("batch_size", c.batch_size, 0, 1_000_000)
        _check_run(c)
        if c.form not in ("module", "numpy", "autograd"):
            raise ValueError(f"Invalid form: {c.form!r} (choose module, numpy or autograd)")
        if c.form != "module":
            if c.task != "sine":
                raise ValueError(f"the {c.form} form exists only for the sine fit")
            if c.optimizer.name != "sgd" or c.optimizer.resolved()["momentum"] != 0:
                raise ValueError(
                    f"the {c.form} form is plain gradient descent: choose the SGD optimizer "
                    "without momentum"
                )
            if c.track_sharpness:
                raise ValueError(
                    f"the {c.form} form computes its gradient by hand: sharpness tracking "
                    "needs the nn.Linear form"
                )
            if c.loss != LossSpec("mse", "sum") or c.batch_size or c.scheduler or c.clip_norm:
                raise ValueError(
                    f"the {c.form} form is the tutorial's: summed squared error, full batch, "
                    "no scheduler, no clipping"
                )
        if c.dtype not in ("float32", "float64"):
            raise ValueError(f"Invalid dtype: {c.dtype!r} (float32 or float64)")
        return c._mark_resolved()

    def _resolved_experiment(self) -> TrainConfig:
        """The user's own model: the file gives the model, the data and the loss, so the
        options that choose those for a built-in task are refused rather than ignored."""
        if self.task != EXPERIMENT:
            raise ValueError(f"a model file is trained as task {EXPERIMENT!r}, not {self.task!r}")
        if not self.model_file:
            raise ValueError("task experiment needs model_file: the Python file to train")
        info = get_task(EXPERIMENT)
        c = dataclasses.replace(
            self,
            model_file=str(Path(self.model_file).expanduser().resolve()),
            optimizer=self.optimizer or info.optimizer,
            epochs=info.epochs if self.epochs is None else self.epochs,
        )
        refused = [
            (c.loss is not None, "a loss (define loss(model, batch) in the file)"),
            (c.batch_size is not None, "a batch size (the file's batches are used)"),
            (c.form != "module", "a tutorial form"),
            (c.activation != "relu", "an activation"),
            (c.dataset != "auto" or c.data_dir or c.limit, "a data set (batches() gives it)"),
            (c.dtype != "float32", "a dtype (the file's model() and batches() decide)"),
        ]
        for given, what in refused:
            if given:
                raise ValueError(f"a model file's run takes no {what}")
        build_optimizer(c.optimizer, [torch.zeros(1, requires_grad=True)])
        _check_run(c)
        return c._mark_resolved()

    def _mark_resolved(self) -> TrainConfig:
        object.__setattr__(self, "_resolved", True)  # frozen: the one sanctioned way to mark it
        return self

    @property
    def is_resolved(self) -> bool:
        """Whether this config came out of :meth:`resolved` (defaults filled, validated)."""
        return self.__dict__.get("_resolved", False)

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


def _check_run(c: TrainConfig) -> None:
    """The checks every run shares: schedule, length, seed, clipping, device."""
    if c.scheduler is not None:
        c.scheduler.resolved()
    if c.scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"Invalid scheduler_interval: {c.scheduler_interval!r}")
    _check_int("epochs", c.epochs, 1, 1_000_000)
    _check_int("seed", c.seed, 0, 2**63 - 1)
    _check_int("log_every", c.log_every, 1, 1_000_000)
    _check_int("snapshots", c.snapshots, 2, 100_000)
    _check_int("track_sharpness", c.track_sharpness, 0, 1_000_000)
    if c.clip_norm is not None and not (math.isfinite(c.clip_norm) and c.clip_norm > 0):
        raise ValueError(f"Invalid clip_norm: {c.clip_norm!r} (must be > 0)")
    if c.device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"Invalid device: {c.device!r} (choose cpu, cuda or auto)")
    if c.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but no CUDA device is available")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Invalid {name}: {value!r} (a whole number {low} .. {high})")


__all__ = ["Form", "TrainConfig"]
