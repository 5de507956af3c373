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


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: no arbitrary code is unpickled)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception:  # torch raises many types for a corrupt or foreign file
        # not torch's text: it suggests loading with weights_only=False, which runs the
        # file's code, and LossLab never does that
        raise CheckpointError(
            f"{path} is not a readable LossLab checkpoint: it is damaged, or holds more than "
            "weights (LossLab never runs code from a file)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a LossLab checkpoint")
    return payload


def resume(c, model, opt, sched) -> tuple[int, int, tuple[float, int]]:
    payload = load_checkpoint(c.resume)
    if payload["task"] != c.task:
        raise CheckpointError(f"{c.resume} is a {payload['task']} checkpoint, not {c.task}")
    try:
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        if sched is not None and payload.get("scheduler"):
            sched.load_state_dict(payload["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{c.resume} does not fit this model/optimizer: {exc}") from None
    epoch = int(payload["epoch"])
    return epoch + 1, int(payload["step"]), (float(payload["val_loss"]), epoch)


__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "resume", "save_checkpoint"]
