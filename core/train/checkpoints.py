"""Checkpoints: a copy of the weights and optimizer state, written atomically, read safely.

Reading uses ``torch.load(weights_only=True)``: nothing in the file can run code.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch

from core import fileio

CHECKPOINT_FORMAT = "losslab-checkpoint-1"


def save_checkpoint(path, c, model, opt, sched, epoch, step, val_loss) -> None:
    """Write a copy of the weights (and optimizer state) atomically: temp file, then rename."""
    write_checkpoint(path, checkpoint_payload(c, model, opt, sched, epoch, step, val_loss))


def write_checkpoint(path, payload: dict[str, Any]) -> None:
    fileio.atomic_write(path, lambda f: torch.save(payload, f))


def checkpoint_payload(c, model, opt, sched, epoch, step, val_loss) -> dict[str, Any]:
    """A checkpoint in memory: copies, so later training steps do not change it."""
    return {
        "format": CHECKPOINT_FORMAT,
        "task": c.task,
        "config": _plain(c.to_dict()),
        "epoch": epoch,
        "step": step,
        "val_loss": val_loss,
        "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(opt.state_dict()),
        "scheduler": copy.deepcopy(sched.state_dict()) if sched is not None else None,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the run."""


def read(path: str | os.PathLike) -> Any:
    """A checkpoint file's contents, loaded safely (``weights_only=True``: nothing in the file
    can run code); ``CheckpointError`` in our words otherwise."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint") from None
    except Exception:  # torch raises many types for a corrupt or foreign file
        # not torch's text: it suggests loading with weights_only=False, which runs the
        # file's code, and LossLab never does that
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is damaged, or holds more than weights "
            "(LossLab never runs code from a file)"
        ) from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read one of LossLab's own checkpoints safely (see :func:`read`)."""
    payload = read(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a LossLab checkpoint")
    return payload


def resume(c, model, opt, sched, schedule=None) -> tuple[int, int, tuple[float, int]]:
    """Load ``c.resume`` into the model, optimizer and scheduler built from ``c``.

    The checkpoint gives the weights, the optimizer's state (momentum buffers, Adam's moments)
    and how far the run got; the hyperparameters are the config's. ``load_state_dict`` alone
    would bring back the saved ``param_groups`` (the old lr, momentum, ...) and silently train
    with those whatever the config says. With a scheduler (``schedule``: its spec as built),
    the lr is the config's schedule at the run's position: replayed for the schedules that are
    a function of the position, and for ReduceLROnPlateau the saved reductions applied to the
    config's lr.
    """
    payload = load_checkpoint(c.resume)
    if payload["task"] != c.task:
        raise CheckpointError(f"{c.resume} is a {payload['task']} checkpoint, not {c.task}")
    wanted = [_group_hyper(g) for g in opt.param_groups]  # the config's values, before loading
    try:
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        saved = [_group_hyper(g) for g in opt.param_groups]
        for group, values in zip(opt.param_groups, wanted, strict=True):
            group.update(values)
        if sched is not None and schedule is not None:
            _reposition(c, payload, opt, sched, schedule, saved)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{c.resume} does not fit this model/optimizer: {exc}") from None
    epoch = int(payload["epoch"])
    return epoch + 1, int(payload["step"]), (float(payload["val_loss"]), epoch)


def _group_hyper(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "params"}


def _reposition(c, payload, opt, sched, schedule, saved: list[dict[str, Any]]) -> None:
    """Put the config's schedule where the checkpoint's run stopped."""
    from core.optimizers import OptimizerSpec, build_optimizer, build_scheduler, get_scheduler

    old_sched = (payload.get("config") or {}).get("scheduler") or {}
    if get_scheduler(schedule.name).needs_metric:
        # its state is the metric's history (best, bad epochs): keep it when it is the same
        # scheduler, and scale the lr it had reduced to by the config's lr over the old one
        if old_sched.get("name") != schedule.name or not payload.get("scheduler"):
            return
        sched.load_state_dict(payload["scheduler"])
        old_spec = OptimizerSpec.from_dict(payload["config"]["optimizer"])
        old_lr = float(build_optimizer(old_spec, [torch.zeros(1)]).param_groups[0]["lr"])
        for group, was, min_lr in zip(opt.param_groups, saved, sched.min_lrs, strict=True):
            ratio = float(was["lr"]) / old_lr if old_lr > 0 else 1.0
            group["lr"] = max(float(group["lr"]) * ratio, float(min_lr))
        return
    # the lr is a function of the position: replay the config's schedule on a stand-in
    # parameter (no weights move) and take its optimizer values and scheduler state
    position = int(payload["step"]) if c.scheduler_interval == "step" else int(payload["epoch"])
    stand_in = build_optimizer(c.optimizer, [torch.zeros(1, requires_grad=True)])
    shadow = build_scheduler(schedule, stand_in)
    stand_in.step(lambda: torch.zeros(()))  # no gradients: changes nothing, but torch wants
    # an optimizer step before a scheduler step
    for _ in range(position):
        shadow.step()
    for group, values in zip(opt.param_groups, stand_in.param_groups, strict=True):
        group.update(_group_hyper(values))
    sched.load_state_dict(shadow.state_dict())


__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "resume", "save_checkpoint"]
