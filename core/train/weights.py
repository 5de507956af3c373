"""Weights for any model, from the checkpoint formats people actually have.

Accepted: LossLab's own checkpoints, a plain ``state_dict``, or a dict holding one under
``state_dict`` (PyTorch Lightning), ``model`` or ``model_state_dict``. A ``model.`` prefix
(Lightning modules that wrap the network as ``self.model``) or ``module.`` (DataParallel) is
stripped when that is what makes the keys fit. Files are read with
``torch.load(weights_only=True)``: nothing in them can run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from core.train.checkpoints import CHECKPOINT_FORMAT, CheckpointError, read

NESTED_KEYS = ("state_dict", "model_state_dict", "model")
PREFIXES = ("model.", "module.")


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def state_dict_of(
    payload: Any, path: str = "the checkpoint"
) -> tuple[dict[str, torch.Tensor], str]:
    """The ``state_dict`` inside ``payload`` and a word on where it was found."""
    if isinstance(payload, Mapping) and payload.get("format") == CHECKPOINT_FORMAT:
        return dict(payload["model"]), "LossLab checkpoint"
    if _is_state_dict(payload):
        return dict(payload), "state_dict"
    if isinstance(payload, Mapping):
        for key in NESTED_KEYS:
            if _is_state_dict(payload.get(key)):
                return dict(payload[key]), f"state_dict under '{key}'"
    raise CheckpointError(
        f"{path} holds no model weights LossLab recognises: a state_dict, or a dict with one "
        f"under {', '.join(repr(k) for k in NESTED_KEYS)}"
    )


def fit_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with a wrapper's prefix stripped when that makes its keys the model's."""
    wanted = set(model.state_dict())
    if set(state) == wanted:
        return state
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) == wanted:
                return stripped
        # Lightning keeps other things beside the model (a loss module's buffers...)
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(picked) == wanted:
            return picked
    return state


def _mismatch(state: dict[str, torch.Tensor], model: nn.Module) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s), first {', '.join(missing[:3])}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s), first {', '.join(unexpected[:3])}")
    if shapes:
        parts.append(f"{len(shapes)} shape(s) differ, first {'; '.join(shapes[:3])}")
    return "; ".join(parts) or None


def load_weights(model: nn.Module, path: str | os.PathLike, payload: Any = None) -> str:
    """Load the weights at ``path`` into ``model`` (in place); returns what was found
    ("state_dict under 'state_dict'", ...). ``CheckpointError`` names the first missing and
    unexpected keys and differing shapes when they don't fit. ``payload``: the file's
    contents when the caller has already read them (the file is not read twice)."""
    state, kind = state_dict_of(read(path) if payload is None else payload, str(path))
    state = fit_keys(state, model)
    why = _mismatch(state, model)
    if why:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {why}")
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return kind


__all__ = ["fit_keys", "load_weights", "read", "state_dict_of"]
