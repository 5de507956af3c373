"""Loss landscapes of a trained model: directions, 1-D and 2-D slices, paths, curvature.

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
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from core import __version__, fileio
from core.models import Cubic, LeNet5, TutorialCNN

Precision = Literal["fp32", "bf16"]
LANDSCAPE_FORMAT = "losslab-landscape-1"
EVAL_BATCH = 500  # images per forward pass on the plane


class LandscapeError(ValueError):
    """A model, file or request the landscape code cannot handle; the message says why."""


# --- the model as flat parameters ----------------------------------------------------------


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's modules in forward order (the models of core.models and plain Sequentials)."""
    if isinstance(model, LeNet5):
        return [*model.features, *model.classifier]
    if isinstance(model, Cubic | TutorialCNN):
        return list(model.net)
    if isinstance(model, nn.Sequential):
        return list(model)
    if isinstance(model, nn.Linear | nn.Conv2d):
        return [model]
    raise LandscapeError(f"{type(model).__name__}: no known layer order for a fast landscape")


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters as one vector, in ``model.parameters()`` order (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def _slices(model: nn.Module) -> list[tuple[nn.Parameter, slice]]:
    out, start = [], 0
    for p in model.parameters():
        out.append((p, slice(start, start + p.numel())))
        start += p.numel()
    return out


def set_flat(model: nn.Module, theta: torch.Tensor) -> None:
    """Write a flat vector into ``model``'s parameters (in place)."""
    with torch.no_grad():
        for p, s in _slices(model):
            p.copy_(theta[s].view_as(p))


# --- directions ----------------------------------------------------------------------------


def filter_normalize(
    direction: torch.Tensor, model: nn.Module, centre: torch.Tensor, ignore_bias_bn: bool = True
) -> torch.Tensor:
    """Li et al.'s filter normalisation: each filter of ``direction`` (a row along the first
    dimension of a weight) is scaled to the norm of the same filter of ``centre``.

    One-dimensional parameters (biases, BatchNorm scales) are zeroed when ``ignore_bias_bn``,
    else set equal to the weights, as in the paper's code.
    """
    d = direction.clone()
    eps = 1e-10
    for p, s in _slices(model):
        dp, wp = d[s].view(p.shape), centre[s].view(p.shape)
        if p.dim() <= 1:
            if ignore_bias_bn:
                dp.zero_()
            else:
                dp.copy_(wp)
            continue
        rows_d = dp.reshape(p.shape[0], -1)
        rows_w = wp.reshape(p.shape[0], -1)
        scale = rows_w.norm(dim=1, keepdim=True) / (rows_d.norm(dim=1, keepdim=True) + eps)
        rows_d.mul_(scale)
    return d


def random_directions(
    model: nn.Module, seed: int = 0, ignore_bias_bn: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian directions from a seeded generator, filter-normalised at ``model``."""
    centre = flat_parameters(model)
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(2, centre.numel(), generator=g, dtype=torch.float64).to(centre.dtype)
    return (
        filter_normalize(raw[0], model, centre, ignore_bias_bn),
        filter_normalize(raw[1], model, centre, ignore_bias_bn),
    )


def pca_directions(
    trajectory: np.ndarray | torch.Tensor, centre: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The top two principal directions of a recorded trajectory's offsets from ``centre``
    (the final weights, as Li et al. do), with the share of variance each explains."""
    t = torch.as_tensor(np.asarray(trajectory), dtype=torch.float64)
    if t.ndim != 2 or t.shape[1] != centre.numel():
        raise LandscapeError(
            f"the trajectory has shape {tuple(t.shape)}, the model {centre.numel()} parameters"
        )
    if t.shape[0] < 3:
        raise LandscapeError("PCA directions need a trajectory of at least 3 recorded points")
    m = t - centre.to(torch.float64)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    var = s**2
    explained = (var[:2] / var.sum()).numpy() if var.sum() > 0 else np.zeros(2)
    return vh[0].to(centre.dtype), vh[1].to(centre.dtype), explained


def init_final_directions(
    start: torch.Tensor, model: nn.Module, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """d1 = final - initial weights (so a = -1 is the start, a = 0 the end); d2 a filter-
    normalised random direction made orthogonal to d1 and scaled to its length."""
    centre = flat_parameters(model)
    d1 = (centre - start.to(centre.dtype)).clone()
    if float(d1.norm()) == 0:
        raise LandscapeError("the initial and final weights are the same")
    r, _ = random_directions(model, seed)
    r = r - (r @ d1) / (d1 @ d1) * d1
    r = r * (d1.norm() / r.norm().clamp_min(1e-30))
    return d1, r


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
        self._run_tail = self._tail
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

    def _tail(self, base: torch.Tensor, z1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The model's output for one chunk at ``base + a*z1`` (``base = Z0 + b*Z2``)."""
        z = base + a * z1
        if self.fold_pool is not None:  # (4, N, h, w, C) -> (N, C, h, w), channels-last
            z = self.fold_pool(torch.amax(z, dim=0).permute(0, 3, 1, 2))
        dtype = self.centre.dtype
        return self.rest(z.to(self.work)).to(dtype) if self.work != dtype else self.rest(z)

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


# --- results -------------------------------------------------------------------------------


@dataclass
class Line:
    """Loss (and accuracy) along ``theta_a + t*(theta_b - theta_a)``."""

    t: np.ndarray
    loss: np.ndarray
    acc: np.ndarray | None = None


@dataclass
class Landscape:
    """A computed plane: axes, grids, the directions and centre that define it."""

    alphas: np.ndarray  # (R,) coefficients of d1 (x axis)
    betas: np.ndarray  # (R,) coefficients of d2 (y axis)
    loss: np.ndarray  # (R, R): rows are betas, columns alphas
    acc: np.ndarray | None
    centre: np.ndarray  # (P,)
    d1: np.ndarray
    d2: np.ndarray
    directions: str  # "random", "pca", "init-final"
    precision: str = "fp32"
    n_eval: int = 0
    explained: np.ndarray | None = None  # PCA: share of variance of d1, d2
    meta: dict[str, Any] = field(default_factory=dict)  # task, run name, seconds, ...
    # arrays that came with it: the projected path, the 1-D interpolation, Hessian eigenvalues
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(np.isfinite(self.loss).all())

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {
            "alphas": self.alphas,
            "betas": self.betas,
            "loss": self.loss,
            "centre": self.centre,
            "d1": self.d1,
            "d2": self.d2,
        }
        if self.acc is not None:
            arrays["acc"] = self.acc
        if self.explained is not None:
            arrays["explained"] = self.explained
        for key, value in self.extras.items():
            arrays[f"x_{key}"] = np.asarray(value)
        info = {
            "format": LANDSCAPE_FORMAT,
            "losslab": __version__,
            "directions": self.directions,
            "precision": self.precision,
            "n_eval": self.n_eval,
            "meta": self.meta,
        }
        arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
        return fileio.atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Landscape:
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(bytes(z["info"]).decode())
                if info.get("format") != LANDSCAPE_FORMAT:
                    raise LandscapeError(f"{path} is not a LossLab landscape")
                return cls(
                    z["alphas"],
                    z["betas"],
                    z["loss"],
                    z.get("acc"),
                    z["centre"],
                    z["d1"],
                    z["d2"],
                    str(info["directions"]),
                    str(info.get("precision", "fp32")),
                    int(info.get("n_eval", 0)),
                    z.get("explained"),
                    dict(info.get("meta", {})),
                    {k[2:]: z[k] for k in z.files if k.startswith("x_")},
                )
        except FileNotFoundError:
            raise LandscapeError(f"no landscape file at {path}") from None
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, LandscapeError):
                raise
            # not numpy's text for pickled data: it suggests allow_pickle, which LossLab never uses
            objects = "Object arrays" in str(exc)
            why = "it holds pickled objects" if objects else "damaged, or not a .npz"
            raise LandscapeError(
                f"{path} is not a readable landscape file: {why} (LossLab saves plain arrays)"
            ) from None


@dataclass(frozen=True)
class Row:
    """Progress of :meth:`Grid.rows`: one finished row of the grid."""

    index: int
    loss: np.ndarray
    acc: np.ndarray | None


def axes(span: float, resolution: int) -> np.ndarray:
    if not (math.isfinite(span) and span > 0):
        raise LandscapeError(f"Invalid range: {span!r} (must be > 0)")
    if not (isinstance(resolution, int) and 3 <= resolution <= 401):
        raise LandscapeError(f"Invalid resolution: {resolution!r} (3 .. 401)")
    return np.linspace(-span, span, resolution)


class Grid:
    """The loss (and accuracy) of a plane's grid, NaN until :meth:`rows` has evaluated each row."""

    def __init__(self, evaluator: PlaneEvaluator, alphas: np.ndarray, betas: np.ndarray) -> None:
        self.evaluator, self.alphas, self.betas = evaluator, alphas, betas
        self.loss = np.full((len(betas), len(alphas)), np.nan)
        self.acc = np.full_like(self.loss, np.nan) if evaluator.classes else None

    def rows(self) -> Iterator[Row]:
        """Evaluate row by row (rows are betas), filling the grids; stop by no longer
        iterating."""
        for i, b in enumerate(self.betas):
            values = self.evaluator.row(self.alphas, float(b))
            self.loss[i] = [v[0] for v in values]
            if self.acc is not None:
                self.acc[i] = [v[1] for v in values]
            yield Row(i, self.loss[i].copy(), None if self.acc is None else self.acc[i].copy())


def compute(
    evaluator: PlaneEvaluator,
    span: float = 1.0,
    resolution: int = 41,
    directions: str = "random",
    explained: np.ndarray | None = None,
    progress: Callable[[Row], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> Landscape:
    """The whole grid as a :class:`Landscape` (``progress`` is told of each row)."""
    alphas = axes(span, resolution)
    betas = alphas.copy()
    grid = Grid(evaluator, alphas, betas)
    for row in grid.rows():
        if progress:
            progress(row)
    return Landscape(
        alphas,
        betas,
        grid.loss,
        grid.acc,
        evaluator.centre.float().numpy(),
        evaluator.d1.float().numpy(),
        evaluator.d2.float().numpy(),
        directions,
        evaluator.precision,
        evaluator.n_eval,
        explained,
        dict(meta or {}),
    )


def interpolate(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    theta_a: torch.Tensor,
    theta_b: torch.Tensor,
    points: int = 41,
    lo: float = -0.25,
    hi: float = 1.25,
    classes: int = 0,
) -> Line:
    """Loss along the straight line from ``theta_a`` (t = 0) to ``theta_b`` (t = 1)."""
    d = theta_b - theta_a
    zero = torch.zeros_like(d)
    ev = PlaneEvaluator(model, loss_fn, x, y, theta_a, d, zero, classes)
    t = np.linspace(lo, hi, points)
    vals = [ev.at(float(v), 0.0) for v in t]
    loss = np.array([v[0] for v in vals])
    acc = np.array([v[1] for v in vals]) if classes else None
    return Line(t, loss, acc)


# --- trajectories --------------------------------------------------------------------------


def project(
    trajectory: np.ndarray, centre: np.ndarray, d1: np.ndarray, d2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coordinates ``(a, b)`` of each recorded point on the plane, and the
    distance from each point to the plane relative to its distance from the centre (0 when
    the point lies on the plane: how honest the drawn path is)."""
    t = np.asarray(trajectory, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    basis = np.stack([d1, d2], axis=1).astype(np.float64)  # (P, 2)
    coords, *_ = np.linalg.lstsq(basis, t.T, rcond=None)
    residual = t.T - basis @ coords
    dist = np.linalg.norm(t, axis=1)
    off = np.linalg.norm(residual, axis=0) / np.where(dist > 0, dist, 1.0)
    return coords.T, off


def path_losses(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    trajectory: np.ndarray,
) -> np.ndarray:
    """The true loss at every recorded point of a trajectory (on the same evaluation set)."""
    m = copy.deepcopy(model).eval()
    out = []
    with torch.no_grad():
        for theta in np.asarray(trajectory):
            set_flat(m, torch.as_tensor(theta, dtype=flat_parameters(m).dtype))
            total = 0.0
            fn = _sum_loss(loss_fn)
            for i in range(0, len(x), EVAL_BATCH):
                total += float(fn(m(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH]))
            out.append(total / y.numel() if _reduction(loss_fn) == "mean" else total)
    return np.array(out)


# --- curvature -----------------------------------------------------------------------------


def hessian_eigs(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int = 2,
    iters: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """The ``k`` largest-magnitude Hessian eigenvalues of the loss at the model's weights, and
    their unit eigenvectors ``(k, P)``: power iteration on Hessian-vector products (double
    backward), deflating the ones already found."""
    m = copy.deepcopy(model).eval()
    params = [p for p in m.parameters() if p.requires_grad]
    fn = _sum_loss(loss_fn)
    scale = 1.0 / y.numel() if _reduction(loss_fn) == "mean" else 1.0

    def hvp(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for i in range(0, len(x), EVAL_BATCH):
            loss = fn(m(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH]) * scale
            grads = torch.autograd.grad(loss, params, create_graph=True)
            flat_g = torch.cat([g.reshape(-1) for g in grads])
            hv = torch.autograd.grad(flat_g @ v, params)
            out += torch.cat([h.reshape(-1) for h in hv])
        return out

    g = torch.Generator().manual_seed(seed)
    n = sum(p.numel() for p in params)
    dtype = params[0].dtype
    values: list[float] = []
    vectors: list[torch.Tensor] = []

    def deflated(v: torch.Tensor) -> torch.Tensor:
        """H v with the eigenpairs already found taken out (Hotelling deflation)."""
        w = hvp(v)
        for u, val in zip(vectors, values, strict=True):
            w = w - val * (u @ v) * u
        return w

    for _ in range(k):
        v = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
        v /= v.norm()
        lam = 0.0
        for it in range(iters):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped")
            w = deflated(v)
            new = float(v @ w)  # the Rayleigh quotient: the eigenvalue estimate, with sign
            norm = float(w.norm())
            if norm == 0:
                lam = 0.0
                break
            v = (w / norm).detach()
            done = it >= 2 and abs(new - lam) <= tol * abs(new)
            lam = new
            if done:
                break
        values.append(lam)
        vectors.append(v)
    return np.array(values), torch.stack(vectors)


__all__ = [
    "LANDSCAPE_FORMAT",
    "Grid",
    "Landscape",
    "LandscapeError",
    "Line",
    "PlaneEvaluator",
    "Row",
    "axes",
    "compute",
    "filter_normalize",
    "flat_parameters",
    "hessian_eigs",
    "init_final_directions",
    "interpolate",
    "layers",
    "naive_loss",
    "path_losses",
    "pca_directions",
    "project",
    "random_directions",
    "set_flat",
]
