"""Whether a checkpoint's optimizer state can go on under another optimizer (no Qt: the CLI
uses it too).

core's resume loads the saved optimizer state into the optimizer the config names: the
momentum buffers of SGD + momentum are no state Adam can use, and its first step failed
with a bare ``KeyError: 'step'`` ("does not fit this model/optimizer: 'step'"). Tried here
on one parameter before anything starts, such a continuation is refused with what to do.
"""

from __future__ import annotations

import torch

from core.optimizers import OptimizerSpec, build_optimizer, get_optimizer
from core.train.checkpoints import CheckpointError, load_checkpoint


def optimizer_refusal(
    checkpoint: str, spec: OptimizerSpec, cli: bool = False, saved_with: str | None = None
) -> str:
    """Why ``checkpoint`` cannot continue under ``spec``'s optimizer, else "" (``cli``: the
    option to give is named too). ``saved_with``: the optimizer the checkpoint's run used,
    when the caller knows it; the same one needs no look at the file (the window asks on its
    own thread, and an own model's checkpoint can be large).

    An unreadable checkpoint gives "" here: the run's start says what is wrong with it."""
    if saved_with == spec.name:
        return ""
    try:
        payload = load_checkpoint(checkpoint)
    except CheckpointError:
        return ""
    old = ((payload.get("config") or {}).get("optimizer") or {}).get("name")
    states = list(((payload.get("optimizer") or {}).get("state") or {}).values())
    if old is None or old == spec.name or not states:
        return ""  # the same optimizer, or nothing saved that could misfit
    if _fits(states[0], spec):
        return ""
    was, now = get_optimizer(old).label, get_optimizer(spec.name).label
    return (
        f"The checkpoint holds {was}'s running state, which {now} cannot take over: "
        f"continue with {was} (any learning rate)"
        + (f": --optimizer {old}" if cli else "")
        + f", or start a new run with {now}"
    )


def _fits(state: dict, spec: OptimizerSpec) -> bool:
    """One step of ``spec``'s optimizer on a parameter given the saved ``state``."""
    shape = next((v.shape for v in state.values() if torch.is_tensor(v) and v.ndim), (1,))
    probe = torch.nn.Parameter(torch.zeros(shape))
    probe.grad = torch.zeros(shape)
    try:
        opt = build_optimizer(spec, [probe])
        saved = opt.state_dict()
        saved["state"] = {0: state}
        opt.load_state_dict(saved)
        opt.step(lambda: probe.sum())  # the closure: L-BFGS needs one, the others ignore it
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError):
        return False
    return True


__all__ = ["optimizer_refusal"]
