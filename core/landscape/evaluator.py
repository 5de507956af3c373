"""The plane evaluator: the loss at many points of one plane, fast.

The 2-D slice is the loss on the plane ``theta(a, b) = centre + a*d1 + b*d2`` (Li et al. 2018).
Libraries compute it by writing each point's weights into the model and running a full
forward pass. Here (:class:`PlaneEvaluator`):

* the first layer is linear in its weights, so its output on the plane is
  ``Z0 + a*Z1 + b*Z2`` with ``Z0 = f(x; centre)``, ``Z1 = f(x; d1)``, ``Z2 = f(x; d2)``:
  three evaluations per grid instead of one per point;
* images go through in batches of a few hundred (a 1,000-image batch page-faulted through
  glibc's mmap threshold at every point), channels-last;
* 2x2 max-pooling is an elementwise maximum of four strided views, several times faster on
  CPU than ``max_pool2d``;
* an optional bfloat16 preview runs the layers after the first in bfloat16 (labelled as such:
  it moves losses by about a percent).

The caller's model is never modified: everything runs on a private copy.
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import torch
from torch import nn

from core.landscape.directions import LandscapeError, set_flat
from core.train.models import Cubic, LeNet5, TutorialCNN

Precision = Literal["fp32", "bf16"]
EVAL_BATCH = 500  # images per forward pass on the plane


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's modules in forward order (core.train.models' models and plain Sequentials)."""
    if isinstance(model, LeNet5):
        return [*model.features, *model.classifier]
    if isinstance(model, Cubic | TutorialCNN):
        return list(model.net)
    if isinstance(model, nn.Sequential):
        return list(model)
    if isinstance(model, nn.Linear | nn.Conv2d):
        return [model]
    raise LandscapeError(f"{type(model).__name__}: no known layer order for a fast landscape")


# --- evaluation on the plane ---------------------------------------------------------------


class _MaxPool2x2(nn.Module):
    """``max_pool2d(x, 2)`` as the maximum of four strided views (same values, faster here)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        x = x[..., :h, :w]
        return torch.maximum(
            torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
            torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]),
        )


def _windows(z: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(4, N, H/2, W/2, C)``: the four members of each 2x2 pooling
    window first, then channels last (contiguous)."""
    n, c, h, w = z.shape
    z = z[..., : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    return z.permute(3, 5, 0, 2, 4, 1).reshape(4, n, h // 2, w // 2, c).contiguous()


def _fast(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.MaxPool2d):
        k, st, pad = module.kernel_size, module.stride, module.padding
        if k in (2, (2, 2)) and st in (2, (2, 2)) and pad in (0, (0, 0)) and not module.ceil_mode:
            return _MaxPool2x2()
    return module


def _sum_loss(loss_fn: nn.Module) -> nn.Module:
    """A copy of ``loss_fn`` that sums (chunks add up; the mean is taken at the end)."""
    fn = copy.deepcopy(loss_fn)
    for m in fn.modules():
        if hasattr(m, "reduction"):
            m.reduction = "sum"
    return fn


def _reduction(loss_fn: nn.Module) -> str:
    for m in loss_fn.modules():
        if hasattr(m, "reduction"):
            return str(m.reduction)
    return "mean"


class PlaneEvaluator:
    """Loss (and accuracy) at points ``centre + a*d1 + b*d2``, fast (see the module notes)."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        centre: torch.Tensor,
        d1: torch.Tensor,
        d2: torch.Tensor,
        classes: int = 0,
        precision: Precision = "fp32",
        batch: int = EVAL_BATCH,
    ) -> None:
        if precision not in ("fp32", "bf16"):
            raise LandscapeError(f"Invalid precision: {precision!r} (fp32 or bf16)")
        private = copy.deepcopy(model).eval()
        mods = [_fast(m) for m in layers(private)]
        k = next((i for i, m in enumerate(mods) if any(True for _ in m.parameters())), None)
        if k is None or not isinstance(mods[k], nn.Linear | nn.Conv2d):
            raise LandscapeError("the first layer with parameters must be Linear or Conv2d")
        first, prefix = mods[k], nn.Sequential(*mods[:k])
        after = mods[k + 1 :]
        # Conv -> [ReLU/Tanh] -> 2x2 max-pool: both increasing, so pool(act(z)) = act(pool(z)).
        # The three first-layer outputs are stored window-major, (4, N, H/2, W/2, C), and a
        # point's pooled input is one contiguous combine and one max over the first axis.
        self.fold_pool: nn.Module | None = None
        acts = (nn.ReLU, nn.Tanh, nn.Identity)
        if isinstance(first, nn.Conv2d):
            if after and isinstance(after[0], _MaxPool2x2):
                self.fold_pool, after = nn.Identity(), after[1:]
            elif (
                len(after) > 1 and isinstance(after[0], acts) and isinstance(after[1], _MaxPool2x2)
            ):
                self.fold_pool, after = after[0], after[2:]
        rest = nn.Sequential(*after)
        n_first = sum(p.numel() for p in first.parameters())
        self.centre, self.d1, self.d2 = centre, d1, d2
        self.rest = rest
        self.classes = classes
        self.precision = precision
        self.reduction = _reduction(loss_fn)
        self.loss_sum = _sum_loss(loss_fn)
        self.n_first = n_first
        self.rest_params = [p for p in rest.parameters()]
        self.n_targets = int(y.numel())
        self.n_eval = len(x)
        work = torch.bfloat16 if precision == "bf16" else centre.dtype
        if precision == "bf16":
            rest.to(torch.bfloat16)
        self.work = work
        four_d = x.dim() == 4
        self.chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                xb = prefix(x[i : i + batch])
                zs = []
                for vec in (centre, d1, d2):
                    set_flat(first, vec[:n_first])
                    z = first(xb)
                    if self.fold_pool is not None:
                        z = _windows(z)
                    elif four_d:
                        z = z.contiguous(memory_format=torch.channels_last)
                    zs.append(z)
                self.chunks.append((zs[0], zs[1], zs[2], y[i : i + batch]))
        self._theta = torch.empty(centre.numel() - n_first, dtype=centre.dtype)
        self._run_tail = self._eager_tail
        self._pooled: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self.compiled = False
        self.compile_error = ""

    def _set_rest(self, a: float, b: float) -> None:
        c, n = self.centre, self.n_first
        theta = self._theta
        torch.add(c[n:], self.d1[n:], alpha=a, out=theta)
        theta.add_(self.d2[n:], alpha=b)
        start = 0
        for p in self.rest_params:
            p.copy_(theta[start : start + p.numel()].view_as(p))
            start += p.numel()

    def _rest(self, z: torch.Tensor) -> torch.Tensor:
        """The layers after the first (and its pooling) on ``z``, in the working precision."""
        dtype = self.centre.dtype
        return self.rest(z.to(self.work)).to(dtype) if self.work != dtype else self.rest(z)

    def _tail(self, base: torch.Tensor, z1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The model's output for one chunk at ``base + a*z1`` (``base = Z0 + b*Z2``)."""
        z = base + a * z1
        if self.fold_pool is not None:  # (4, N, h, w, C) -> (N, C, h, w), channels-last
            z = self.fold_pool(torch.amax(z, dim=0).permute(0, 3, 1, 2))
        return self._rest(z)

    def _eager_tail(self, base: torch.Tensor, z1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """:meth:`_tail` without torch.compile, in less memory traffic: the pooled input is
        built one window member at a time into two reused buffers, instead of forming the
        whole ``base + a*z1`` (4x the pooled size, plus a temporary for ``a*z1``) and then
        reducing it. Several ranks on one machine share its caches and memory bandwidth, so
        the bytes a point moves decide how well they scale (bench/distributed.py)."""
        if self.fold_pool is None:
            z = torch.add(base, z1, alpha=float(a))
        else:
            shape = tuple(base.shape[1:])
            if shape not in self._pooled:
                self._pooled[shape] = (base.new_empty(shape), base.new_empty(shape))
            pooled, member = self._pooled[shape]
            alpha = float(a)
            torch.add(base[0], z1[0], alpha=alpha, out=pooled)
            for k in range(1, base.shape[0]):
                torch.add(base[k], z1[k], alpha=alpha, out=member)
                torch.maximum(pooled, member, out=pooled)
            z = self.fold_pool(pooled.permute(0, 3, 1, 2))
        return self._rest(z)

    def compile(self) -> float:
        """Compile the per-point work with ``torch.compile`` (it fuses the combine, pooling
        and activations: ~1.4x here); returns the seconds compiling took. On failure the
        eager code stays, which gives the same numbers."""
        t0 = time.perf_counter()
        try:
            fn = torch.compile(self._tail, dynamic=False)
            with torch.no_grad():
                for chunk in {len(c[3]): c for c in self.chunks}.values():  # each chunk size
                    fn(chunk[0], chunk[1], torch.tensor(0.0, dtype=self.centre.dtype))
        except Exception as exc:  # a missing compiler, an unsupported op: stay eager
            self.compile_error = f"{type(exc).__name__}: {exc}"
            return time.perf_counter() - t0
        self._run_tail = fn
        self.compiled = True
        return time.perf_counter() - t0

    def _finish(self, out: torch.Tensor, yb: torch.Tensor) -> tuple[float, int]:
        correct = int((out.argmax(dim=1) == yb).sum()) if self.classes else 0
        return float(self.loss_sum(out, yb)), correct

    def _result(self, total: float, correct: int) -> tuple[float, float | None]:
        loss = total / self.n_targets if self.reduction == "mean" else total
        return loss, (correct / self.n_targets if self.classes else None)

    def at(self, a: float, b: float) -> tuple[float, float | None]:
        """Loss (the model's reduction) and accuracy (classification) at one point."""
        return self.row([a], b)[0]

    @torch.no_grad()
    def row(self, alphas, b: float) -> list[tuple[float, float | None]]:
        """:meth:`at` for every ``a`` in ``alphas`` at one ``b``: ``Z0 + b*Z2`` is formed once
        per row, so each point costs one add instead of two (the adds are memory-bound)."""
        bases = [z0.add(z2, alpha=b) for z0, _, z2, _ in self.chunks]
        out = []
        for a in alphas:
            self._set_rest(float(a), b)
            at = torch.tensor(float(a), dtype=self.centre.dtype)
            total, correct = 0.0, 0
            for base, (_, z1, _, yb) in zip(bases, self.chunks, strict=True):
                t, k = self._finish(self._run_tail(base, z1, at), yb)
                total, correct = total + t, correct + k
            out.append(self._result(total, correct))
        return out


@torch.no_grad()
def naive_loss(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: torch.Tensor,
    classes: int = 0,
) -> tuple[float, float | None]:
    """What the libraries do: write ``theta`` into (a copy of) the model, one full forward."""
    m = copy.deepcopy(model).eval()
    set_flat(m, theta)
    out = m(x)
    acc = int((out.argmax(dim=1) == y).sum()) / len(y) if classes else None
    return float(loss_fn(out, y)), acc
