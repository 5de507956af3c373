"""The training loop for the user's own model: an experiment file's ``model()``, batches and
``loss(model, batch)`` (see :mod:`core.train.experiment`), with every option of a built-in run.

It yields the same events as :func:`core.train.training.train` (which hands experiment runs
here), so the window, the command line and the run records work unchanged. Per epoch:
``model.train()`` and one optimizer step per batch of ``train_batches()`` (default:
``batches()``); then validation, the mean of ``loss(model, batch)`` over ``batches()`` in
evaluation mode without gradients: the number a landscape's centre shows for the same weights.

Seeding: ``torch.manual_seed(seed)`` runs just before ``model()`` (a file that seeds inside
``model()`` wins, as it runs later), and again with ``(seed, epoch)`` before each epoch's
``train_batches()``, so shuffles and dropout repeat, also after a resume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from core.optimizers import build_optimizer, build_scheduler
from core.train.checkpoints import checkpoint_payload, load_checkpoint, resume
from core.train.config import TrainConfig
from core.train.experiment import (
    Experiment,
    ExperimentError,
    batch_size,
    load_experiment,
    to_device,
)
from core.train.models import count_parameters, summary
from core.train.sharpness import tracker_for
from core.train.tasks import seeded
from core.train.training import (
    CHECKPOINT_EVERY_S,
    Epoch,
    Event,
    Started,
    Step,
    TrainControl,
    _fit_schedule,
    _grad_norm,
    _needs_metric,
    _snapshot,
    _snapshots,
    _write,
    check_divergence,
    effective_hyper,
    finished,
)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed torch's generator gets before epoch ``epoch``'s ``train_batches()``."""
    return seed * 100_003 + epoch


def train_experiment(
    c: TrainConfig, control: TrainControl, device: torch.device, exp: Experiment | None = None
) -> Iterator[Event]:
    """One run on ``c.model_file`` (``c`` resolved; ``exp``: that file, when loaded already).
    ``ExperimentError`` (a ``ValueError``) before the :class:`Started` event means a bad
    file: nothing was trained or written."""
    if exp is None:
        exp = load_experiment(c.model_file)
    model = seeded(c.seed, exp.build_model).to(device)
    val = [to_device(b, device) for b in exp.batches()]
    start_epoch = int(load_checkpoint(c.resume)["epoch"]) + 1 if c.resume else 1
    first = _epoch_batches(exp, c, start_epoch, val, device)
    exp.preflight(model, val, first[0])  # a bad file stops here, before anything is written
    per_epoch = len(first)
    opt = build_optimizer(c.optimizer, model.parameters())
    schedule = _fit_schedule(c, per_epoch) if c.scheduler else None
    sched = build_scheduler(schedule, opt) if schedule is not None else None
    step, best = 0, (math.inf, 0)
    if c.resume:
        start_epoch, step, best = resume(c, model, opt, sched, schedule)
    n_train = _samples(first)
    yield Started(
        c.task,
        f"{type(model).__name__} from {exp.path.name}",
        f"{exp.path.name}'s batches()",
        _source(exp, val, first),
        str(device),
        count_parameters(model),
        summary(model),
        c.epochs,
        per_epoch,
        n_train,
        start_epoch,
        hyper=effective_hyper(c.optimizer.name, opt.param_groups[0]),
        model_file=str(exp.path),
        model_digest=exp.digest,
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
        batches = first if epoch == start_epoch else _epoch_batches(exp, c, epoch, val, device)
        sizes = [batch_size(b) for b in batches]
        counted = all(sizes)  # samples when every batch says its size, else batches
        total = sum(sizes) if counted else len(batches)
        model.train()
        total_loss, done, seen = 0.0, 0, 0
        for b, batch in enumerate(batches):
            if control.stopped or not control.wait():
                status = "stopped"
                break

            def closure(batch=batch):
                opt.zero_grad()
                loss = exp.loss(model, batch)
                loss.backward()
                return loss

            def one_step():
                if is_lbfgs:
                    return opt.step(closure), _grad_norm(model)
                loss = closure()
                gnorm = _grad_norm(model, c.clip_norm)
                opt.step()
                return loss, gnorm

            # the user's forward and backward (and its memory): any error names the file
            loss, gnorm = exp.call("a training step", one_step)
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
            done += 1
            seen += sizes[b] if counted else 1
            if snaps.wants(step):
                _snapshot(snaps, step, model)
            yield Step(step, epoch, b + 1, seen, total, value, lr, gnorm)
            if sharp.due(step):  # a loss without second derivatives turns tracking off
                yield sharp.measure(
                    model.parameters(), lambda batch=batch: exp.loss(model, batch), step, epoch, lr
                )
        if status != "completed":
            break
        model.eval()
        val_loss, acc = exp.evaluate(model, val)
        if sched is not None:
            if _needs_metric(c):
                sched.step(val_loss)
            elif c.scheduler_interval == "epoch":
                sched.step()
        yield Epoch(epoch, step, total_loss / max(1, done), val_loss, acc, time.perf_counter() - t0)
        if val_loss < best[0]:
            best = (val_loss, epoch)
            if c.checkpoint:
                # a copy now, written at most every few seconds and at the end (as built-ins)
                pending = checkpoint_payload(c, model, opt, sched, epoch, step, val_loss)
                pending.update(model_file=str(exp.path), model_digest=exp.digest)
                if time.monotonic() - last_write >= CHECKPOINT_EVERY_S:
                    yield _write(c.checkpoint, pending)
                    pending, last_write = None, time.monotonic()
    if pending is not None:
        yield _write(c.checkpoint, pending)
    _snapshot(snaps, step, model)
    final: dict[str, Any] = {"val_loss": None, "val_accuracy": None}
    if status != "diverged":
        model.eval()
        final["val_loss"], final["val_accuracy"] = exp.evaluate(model, val)
    if c.track_sharpness:
        final["sharpness"] = sharp.summary()
    model.train()
    yield finished(status, epoch, step, best, final, snaps, divergence)


def _epoch_batches(
    exp: Experiment, c: TrainConfig, epoch: int, val: list[Any], device: torch.device
) -> list[Any]:
    """Epoch ``epoch``'s training batches, on ``device``; torch's generator seeded first (it
    also drives dropout in the steps that follow)."""
    if not exp.own_train_batches:
        seeded(epoch_seed(c.seed, epoch), lambda: None)
        return val  # batches(), already materialised and moved: not read again per epoch
    items = seeded(epoch_seed(c.seed, epoch), exp.train_batches)
    return [to_device(b, device) for b in items]


def _samples(batches: list[Any]) -> int:
    sizes = [batch_size(b) for b in batches]
    return sum(sizes) if all(sizes) else len(batches)


def _source(exp: Experiment, val: list[Any], first: list[Any]) -> str:
    """One line on the data: how many batches and samples, for validation and training."""

    def amount(batches: list[Any]) -> str:
        n, s = len(batches), _samples(batches)
        text = f"{n:,} batch{'es' if n != 1 else ''}"
        return text + (f" ({s:,} samples)" if all(batch_size(b) for b in batches) else "")

    train = "the same batches" if not exp.own_train_batches else amount(first)
    return (
        f"{exp.path.name}: validation on batches(), {amount(val)}; training on "
        f"{'train_batches(), ' if exp.own_train_batches else ''}{train} per epoch"
    )


__all__ = ["ExperimentError", "epoch_seed", "train_experiment"]
