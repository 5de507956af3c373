"""Experiment files: the user's own model, data and loss, as a plain Python file.

The contract (README, "Your own model")::

    def model() -> torch.nn.Module: ...          # required; seed inside it for repeatable weights
    def batches() -> Iterable[batch]: ...        # required: the evaluation data
    def loss(model, batch) -> torch.Tensor: ...  # optional: the scalar mean loss of one batch
    def train_batches() -> Iterable[batch]: ...  # optional: training data per epoch
    defaults = {"optimizer": "adam", "lr": 0.01, "epochs": 5}  # optional: run settings

A batch is ``(inputs, targets)`` or anything the file's ``loss`` understands. Without ``loss``,
a batch's loss is ``cross_entropy(model(inputs), targets)``. **The loss over the data is the
mean of ``loss(model, batch)`` over the batches.**

The file is the user's own code, which they ask LossLab to run: it is imported with importlib,
as ``python file.py`` would run it (its folder first on ``sys.path``; ``__name__`` is not
``"__main__"``). Data files (checkpoints, sessions, run records) are never executed. Every
failure becomes an :class:`ExperimentError` that names the user's file and line.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import math
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

from core.optimizers import OptimizerSpec
from core.train.tasks import EXPERIMENT_INFO

IMPORT_TIMEOUT = 30.0  # seconds; a file that takes longer is doing work at import time
REQUIRED = ("model", "batches")


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message names the file, the line and why."""


def _where(exc: BaseException, path: Path) -> str:
    """``file.py, line 12, in model`` of the deepest frame in the user's file (or '')."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    if not frames:
        return ""
    f = frames[-1]
    return f"{path.name}, line {f.lineno}, in {f.name}"


def _describe(exc: BaseException, path: Path, doing: str) -> ExperimentError:
    where = _where(exc, path)
    at = f" ({where})" if where else ""
    return ExperimentError(f"{path.name}: {doing} failed{at}: {type(exc).__name__}: {exc}")


class _SourceOnly(importlib.machinery.SourceFileLoader):
    """Compiles the file from its source at every import, as ``python file.py`` does for its
    script: no ``__pycache__`` written into the user's folder, and none read back. A cached
    copy is trusted by its source's size and modification time in whole seconds, so an edit
    saved within the same second as the last load (same length) was not picked up by Reload."""

    def get_code(self, fullname: str):
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _import(path: Path, timeout: float) -> ModuleType:
    name = "losslab_experiment_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path, loader=_SourceOnly(name, str(path)))
    if spec is None or spec.loader is None:
        raise ExperimentError(f"{path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:  # as `python file.py` does: the file's folder comes first
        sys.path.insert(0, folder)
    outcome: dict[str, BaseException | None] = {"error": None}

    def load() -> None:
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:  # noqa: BLE001 (the user's code: anything can come out)
            outcome["error"] = exc

    # A thread, so that a file that hangs at import gives a message instead of a frozen app.
    # The thread cannot be killed; it is a daemon and is left behind.
    worker = threading.Thread(target=load, name=f"import {path.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ExperimentError(
            f"{path.name}: importing it took more than {timeout:g} s. Does it train or load "
            "something at import time? Put that work inside model() or batches()."
        )
    exc = outcome["error"]
    if isinstance(exc, SyntaxError):
        line = f", line {exc.lineno}" if exc.lineno else ""
        raise ExperimentError(f"{path.name}{line}: syntax error: {exc.msg}") from None
    if isinstance(exc, SystemExit):
        raise ExperimentError(f"{path.name}: it called exit() while being imported") from None
    if exc is not None:
        raise _describe(exc, path, "importing it") from None
    return module


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor in it (nested tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """``cross_entropy(model(inputs), targets)`` for a batch ``(inputs, targets)``."""
    if not (isinstance(batch, tuple | list) and len(batch) == 2):
        kind = type(batch).__name__
        raise ExperimentError(
            f"a batch is a {kind}, not (inputs, targets): define loss(model, batch) in the file"
        )
    inputs, targets = batch
    return F.cross_entropy(model(inputs), targets)


@dataclass(frozen=True)
class Defaults:
    """The run settings a file suggests (``defaults = {...}`` in it); None: LossLab's own."""

    optimizer: OptimizerSpec | None = None
    epochs: int | None = None


DEFAULTS_EXAMPLE = 'defaults = {"optimizer": "adam", "lr": 0.01, "epochs": 5}'


@dataclass(frozen=True)
class Summary:
    """What a checked experiment looks like (shown when it is picked)."""

    name: str
    model: str  # the model's class name
    parameters: int
    batches: int
    samples: int  # the batches' first dimension, summed (0 when unknown)
    loss: float  # the mean loss over the evaluation batches at the initial weights
    own_loss: bool
    own_train_batches: bool


class Experiment:
    """One imported experiment file. ``reload()`` imports it again after the user edits it."""

    def __init__(self, path: str | Path, timeout: float | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.timeout = IMPORT_TIMEOUT if timeout is None else timeout
        self.reload()

    @property
    def name(self) -> str:
        return self.path.stem

    def reload(self) -> None:
        if not self.path.is_file():
            raise ExperimentError(f"no experiment file at {self.path}")
        if self.path.suffix != ".py":
            raise ExperimentError(f"{self.path.name} is not a Python file (.py)")
        self.source = self.path.read_bytes()
        self.digest = hashlib.sha256(self.source).hexdigest()
        self.module = _import(self.path, self.timeout)
        missing = [f for f in REQUIRED if not callable(getattr(self.module, f, None))]
        if missing:
            raise ExperimentError(
                f"{self.path.name} defines no {' and no '.join(f + '()' for f in missing)}: an "
                "experiment file needs model() and batches() (and may define loss(model, batch) "
                "and train_batches())"
            )
        self._loss: Callable[[nn.Module, Any], torch.Tensor] | None = getattr(
            self.module, "loss", None
        )
        self._train: Callable[[], Iterable[Any]] | None = getattr(
            self.module, "train_batches", None
        )

    def defaults(self) -> Defaults:
        """The file's optional ``defaults`` dict, checked: ``optimizer`` (a catalogue name,
        default Adam), ``epochs`` and that optimizer's hyperparameters (``lr``, ...). The
        command line and the Train controls start from them; what the user sets wins."""
        raw = getattr(self.module, "defaults", None)
        if raw is None:
            return Defaults()
        if not isinstance(raw, Mapping):
            raise ExperimentError(
                f"{self.path.name}: defaults is a {type(raw).__name__}, not a dict such as "
                f"{DEFAULTS_EXAMPLE}"
            )
        hyper = dict(raw)
        epochs = hyper.pop("epochs", None)
        if epochs is not None and (
            isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1
        ):
            raise ExperimentError(f"{self.path.name}: defaults: epochs must be a whole number >= 1")
        name = hyper.pop("optimizer", None)
        spec = None
        if name is not None or hyper:
            spec = OptimizerSpec(str(name or EXPERIMENT_INFO.optimizer.name), hyper)
            try:
                spec.resolved()
            except ValueError as exc:
                raise ExperimentError(f"{self.path.name}: defaults: {exc}") from None
        return Defaults(spec, epochs)

    @property
    def own_loss(self) -> bool:
        return callable(self._loss)

    @property
    def own_train_batches(self) -> bool:
        return callable(self._train)

    def call(self, what: str, fn: Callable, *args):
        """``fn(*args)``: the user's code, any error in it an :class:`ExperimentError` that
        names ``what`` was being done and the file's line."""
        try:
            return fn(*args)
        except ExperimentError:
            raise
        except Exception as exc:  # the user's code: any error becomes a message naming it
            raise _describe(exc, self.path, what) from None

    def build_model(self) -> nn.Module:
        model = self.call("model()", self.module.model)
        if not isinstance(model, nn.Module):
            raise ExperimentError(
                f"{self.path.name}: model() returned a {type(model).__name__}, not a "
                "torch.nn.Module"
            )
        if not any(p.requires_grad for p in model.parameters()):
            raise ExperimentError(f"{self.path.name}: model() has no trainable parameters")
        return model

    def _materialise(self, what: str, fn: Callable) -> list[Any]:
        items = self.call(what, lambda: list(fn()))
        if not items:
            raise ExperimentError(f"{self.path.name}: {what} gave no batches")
        return items

    def batches(self) -> list[Any]:
        """The evaluation batches, materialised once (a list)."""
        return self._materialise("batches()", self.module.batches)

    def train_batches(self) -> list[Any]:
        """One epoch's training batches (default: the evaluation batches)."""
        if self._train is None:
            return self.batches()
        return self._materialise("train_batches()", self._train)

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """One batch's loss, checked: a finite-or-not scalar tensor (NaN is the caller's to
        judge: a diverging run has one)."""
        fn = self._loss or default_loss
        return self._scalar(self.call("loss(model, batch)", fn, model, batch))

    def _scalar(self, value: Any) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise ExperimentError(
                f"{self.path.name}: loss(model, batch) returned a {type(value).__name__}, "
                "not a torch.Tensor"
            )
        if value.numel() != 1:
            raise ExperimentError(
                f"{self.path.name}: loss(model, batch) returned a tensor of shape "
                f"{tuple(value.shape)}; it must be a scalar (take the mean over the batch)"
            )
        return value.reshape(())

    def mean_loss(self, model: nn.Module, batches: list[Any]) -> float:
        """The loss over the data: the mean of ``loss(model, batch)`` over the batches."""
        return self.evaluate(model, batches)[0]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: list[Any]) -> tuple[float, float | None]:
        """The mean loss over ``batches`` and, with the default loss on ``(inputs, targets)``
        batches of class indices, the accuracy (else None). One forward pass per batch; the
        model's mode is the caller's (evaluation mode for validation).

        The loss is summed batch by batch in order, as floats, so it is the same number
        whoever asks (training's validation, the best checkpoint, a landscape's centre).
        """
        total, hits, count = 0.0, 0, 0
        for batch in batches:
            if self._loss is not None or not _classified(batch):
                total += float(self.loss(model, batch))
                count = -1  # no accuracy: a loss of the file's own, or other batches
                continue
            inputs, targets = batch
            out = self.call("model(inputs)", model, inputs)
            value = self.call("loss(model, batch)", F.cross_entropy, out, targets)
            total += float(self._scalar(value))
            if count >= 0 and isinstance(out, torch.Tensor) and out.dim() == 2:
                hits += int((out.argmax(dim=1) == targets).sum())
                count += int(targets.numel())
            else:
                count = -1
        accuracy = hits / count if count > 0 else None
        return total / len(batches), accuracy

    def preflight(
        self, model: nn.Module, batches: list[Any], train_batch: Any | None = None
    ) -> float:
        """What would go wrong later, found now: the loss over ``batches`` at the model's
        weights is finite, it has a gradient, and ``train_batch`` (when given) fits ``loss``.
        Puts the model in evaluation mode (so BatchNorm's statistics do not move); returns the
        mean loss. ``ExperimentError`` otherwise."""
        model.eval()
        value = self.mean_loss(model, batches)
        if not math.isfinite(value):
            raise ExperimentError(
                f"{self.path.name}: the loss at the initial weights is {value} (not finite)"
            )
        with torch.enable_grad():
            first = self.loss(model, batches[0])
        if not first.requires_grad:
            raise ExperimentError(
                f"{self.path.name}: loss(model, batch) does not depend on the model's "
                "parameters (no gradient): compute it from model(...)"
            )
        if train_batch is not None:
            with torch.no_grad():
                self.call("train_batches()'s first batch", self.loss, model, train_batch)
        return value

    def check(self, device: str | torch.device = "cpu") -> Summary:
        """Build the model, read the data and evaluate the loss once; ``ExperimentError`` on
        anything a landscape or a training run would trip over later."""
        model = self.build_model().to(device)
        batches = [to_device(b, device) for b in self.batches()]
        value = self.preflight(model, batches)
        return Summary(
            self.name,
            type(model).__name__,
            sum(p.numel() for p in model.parameters()),
            len(batches),
            sum(batch_size(b) for b in batches),
            value,
            self.own_loss,
            self.own_train_batches,
        )


def _classified(batch: Any) -> bool:
    """``(inputs, targets)`` with targets a 1-D tensor of class indices."""
    return (
        isinstance(batch, tuple | list)
        and len(batch) == 2
        and isinstance(batch[1], torch.Tensor)
        and batch[1].dim() == 1
        and not batch[1].is_floating_point()
    )


def batch_size(batch: Any) -> int:
    """The batch's first dimension (of its first tensor); 0 when unknown."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, tuple | list) and batch:
        return batch_size(batch[0])
    return 0


def load_experiment(path: str | Path, timeout: float | None = None) -> Experiment:
    """Import and validate the experiment file at ``path`` (see the module notes)."""
    return Experiment(path, timeout)


__all__ = [
    "Defaults",
    "Experiment",
    "ExperimentError",
    "Summary",
    "batch_size",
    "default_loss",
    "load_experiment",
    "to_device",
]
