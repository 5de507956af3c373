"""The plane evaluator for any model: the loss of the user's experiment at points
``centre + a*d1 + b*d2``.

What the libraries do, done carefully: the weights of a point are written into a private copy
of the model (eval mode: BatchNorm uses its running statistics, dropout is off) and the loss
is the mean of ``loss(model, batch)`` over the batches, which were materialised once and moved
to the device once.

One trick from the LeNet fast path carries over: when the first layer with parameters is a
``Linear`` or ``Conv2d`` applied to the raw input, its output is linear in its weights, so on
the plane it is ``Z0 + a*Z1 + b*Z2``. Those three are computed once per batch, and at each
point the layer is replaced by a module that combines them (:class:`_Combined`). Whether it
pays depends on how much of the forward pass the first layer is (``bench/landscape.py``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.landscape.directions import LandscapeError

LossFn = Callable[[nn.Module, Any], torch.Tensor]
CACHE_LIMIT = 512 * 2**20  # bytes of first-layer outputs worth keeping (3 per batch)


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, tuple | list):
        return [t for v in batch for t in _tensors(v)]
    return []


class _Combined(nn.Module):
    """Stands in for the first layer: returns ``Z0 + a*Z1 + b*Z2`` of the current batch."""

    def __init__(self) -> None:
        super().__init__()
        self.z: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.index, self.a, self.b = 0, 0.0, 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z0, z1, z2 = self.z[self.index]
        return torch.add(z0, z1, alpha=self.a).add_(z2, alpha=self.b)


def _first_layer(model: nn.Module, loss_fn: LossFn, batch: Any) -> tuple[str, nn.Module] | None:
    """The name and module of the first layer with parameters, if it is a Linear or Conv2d
    called once, on one of the batch's own tensors; else None (the trick does not apply)."""
    calls: list[tuple[str, nn.Module, bool]] = []
    raw = {id(t) for t in _tensors(batch)}
    hooks = []
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):

            def hook(mod, inputs, _out, name=name):
                on_raw = bool(inputs) and id(inputs[0]) in raw
                calls.append((name, mod, on_raw))

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            loss_fn(model, batch)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        return None
    name, module, on_raw = calls[0]
    once = sum(1 for n, _, _ in calls if n == name) == 1
    if on_raw and once and type(module) in (nn.Linear, nn.Conv2d):
        return name, module
    return None


class GenericEvaluator:
    """Loss at points of the plane for any model and experiment (see the module notes).

    ``accuracy``: for ``(inputs, targets)`` batches with the default cross-entropy loss, the
    share of argmax hits is returned beside the loss; otherwise None.
    """

    precision = "fp32"

    def __init__(
        self,
        model: nn.Module,
        batches: list[Any],
        loss_fn: LossFn,
        centre: torch.Tensor,
        d1: torch.Tensor,
        d2: torch.Tensor,
        accuracy: bool = False,
        linear_first: str = "auto",
    ) -> None:
        if not batches:
            raise LandscapeError("no batches to evaluate the loss on")
        if linear_first not in ("auto", "on", "off"):
            raise LandscapeError(f"Invalid linear_first: {linear_first!r} (auto, on or off)")
        self.model = copy.deepcopy(model).eval()
        self.batches, self.loss_fn = batches, loss_fn
        self.centre, self.d1, self.d2 = centre, d1, d2
        self.classes = 1 if accuracy else 0
        self.compiled = False
        self.n_eval = len(batches)
        self.slices: list[tuple[nn.Parameter, slice]] = []
        start = 0
        for p in self.model.parameters():
            self.slices.append((p, slice(start, start + p.numel())))
            start += p.numel()
        if start != centre.numel():
            raise LandscapeError(
                f"the directions have {centre.numel()} entries, the model {start} parameters"
            )
        self._all_slices = list(self.slices)
        self.combined: _Combined | None = None
        if linear_first != "off":  # "on": wherever it applies; "auto": where it is faster
            self._fold_first_layer(timed=linear_first == "auto")

    def _fold_first_layer(self, timed: bool) -> None:
        found = _first_layer(self.model, self.loss_fn, self.batches[0])
        if found is None:
            return
        name, first = found
        own = {id(p) for p in first.parameters()}
        mine = [(p, s) for p, s in self.slices if id(p) in own]
        combined = _Combined()
        captured: list[torch.Tensor] = []

        def capture(_mod, inputs, _out):
            captured.append(inputs[0])

        handle = first.register_forward_hook(capture)
        size = 0
        try:
            with torch.no_grad():
                for batch in self.batches:
                    captured.clear()
                    self.loss_fn(self.model, batch)
                    x = captured[0]
                    zs = []
                    for vec in (self.centre, self.d1, self.d2):
                        for p, s in mine:
                            p.copy_(vec[s].view_as(p))
                        zs.append(first(x))
                    size += sum(z.numel() * z.element_size() for z in zs)
                    if size > CACHE_LIMIT:
                        return  # too big to keep: evaluate the plain way
                    combined.z.append((zs[0], zs[1], zs[2]))
        finally:
            handle.remove()
        parent_name, _, leaf = name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        all_slices = self.slices
        setattr(parent, leaf, combined)
        self.slices = [(p, s) for p, s in self.slices if id(p) not in own]
        self.combined = combined
        # It pays where the first layer is a big part of the forward pass (the tutorial CNN:
        # 1.3x); where it is not (the BN-ResNet's small stem), combining three stored outputs
        # costs what it saves. So: keep whichever evaluated a point faster, here.
        if timed and self._seconds_per_point() > self._seconds_per_point((parent, leaf, first)):
            setattr(parent, leaf, first)
            self.slices, self.combined = all_slices, None

    def _seconds_per_point(self, unfolded=None) -> float:
        """The better of two timed evaluations (with the first layer put back for
        ``unfolded = (parent, name, module)``; the folding is restored afterwards)."""
        saved = None
        if unfolded is not None:
            parent, leaf, first = unfolded
            saved = (getattr(parent, leaf), self.slices, self.combined)
            setattr(parent, leaf, first)
            own = {id(p) for p in first.parameters()}
            self.slices = self.slices + [(p, s) for p, s in self._all_slices if id(p) in own]
            self.combined = None
        best = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            self.at(0.1, 0.1)
            best = min(best, time.perf_counter() - t0)
        if saved is not None:
            setattr(parent, leaf, saved[0])
            self.slices, self.combined = saved[1], saved[2]
        return best

    @property
    def folded(self) -> bool:
        """True when the first layer is computed by linearity."""
        return self.combined is not None

    def compile(self) -> float:
        """Compiling an arbitrary user model is not attempted (its code may not trace)."""
        return 0.0

    @torch.no_grad()
    def at(self, a: float, b: float) -> tuple[float, float | None]:
        # one vector for all the weights, then a copy per parameter: small models are
        # dominated by per-operation overhead (three ops per parameter made an MLP slower
        # than the naive loop)
        theta = torch.add(self.centre, self.d1, alpha=a).add_(self.d2, alpha=b)
        for p, s in self.slices:
            p.copy_(theta[s].view_as(p))
        if self.combined is not None:
            self.combined.a, self.combined.b = a, b
        total, hits, seen = 0.0, 0, 0
        for i, batch in enumerate(self.batches):
            if self.combined is not None:
                self.combined.index = i
            if self.classes:
                inputs, targets = batch
                logits = self.model(inputs)
                total += float(nn.functional.cross_entropy(logits, targets))
                hits += int((logits.argmax(dim=1) == targets).sum())
                seen += int(targets.numel())
            else:
                total += float(self.loss_fn(self.model, batch))
        return total / len(self.batches), (hits / seen if self.classes else None)

    def row(self, alphas, b: float) -> list[tuple[float, float | None]]:
        return [self.at(float(a), float(b)) for a in alphas]


__all__ = ["GenericEvaluator"]
