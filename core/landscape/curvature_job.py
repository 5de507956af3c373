"""The Hessian of a trained model's loss, analysed: top eigenvalues, trace, spectral density and
the top eigenvalue of each layer, as one generator of events (``losslab curvature``, the
curvature panel and the tests drive it the same way).

The loss is the one a landscape draws at its centre (:mod:`core.landscape.problems`): a
built-in task's loss on its (sampled) validation set, or the mean of an experiment file's
``loss(model, batch)`` over its batches. The first event, :class:`Planned`, comes after one
timed Hessian-vector product and carries the whole analysis's cost, so a caller can show it and
let the user stop before the long part.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from core.hessian import hvp_of
from core.landscape.evaluator import EVAL_BATCH, _reduction, _sum_loss
from core.landscape.spectrum import (
    Density,
    SpectrumError,
    Trace,
    broadened,
    hutchinson_iter,
    slq_nodes_iter,
    top_eigenvalues_iter,
)
from core.train.experiment import ExperimentError

Terms = Callable[[nn.Module], Iterable[torch.Tensor]]


class CurvatureError(SpectrumError):
    """The curvature of this loss cannot be computed; the message says why."""


@dataclass(frozen=True)
class CurvatureRequest:
    """What to compute. Each cost is in Hessian-vector products (one forward and two backward
    passes over the data each)."""

    top: int = 5  # top eigenvalues by Lanczos (0: none)
    trace: bool = False  # Hutchinson's trace with its standard error
    density: bool = False  # the spectral density by stochastic Lanczos quadrature
    per_layer: bool = False  # the top eigenvalue of each layer's block of the Hessian
    tol: float = 1e-4  # relative residual at which a top eigenvalue has converged (float32
    # products are noisy at ~1e-6: a tighter bound would run every step; a Ritz value is
    # closer than its residual, about residual² / gap)
    max_steps: int = 100  # Lanczos steps for the top eigenvalues, at most
    trace_samples: int = 100  # Rademacher probes (the error falls as 1/sqrt of them)
    density_runs: int = 3  # Lanczos runs averaged (Ghorbani et al. found few suffice)
    density_steps: int = 80  # steps per run: 2 x steps - 1 moments of the density are exact
    density_points: int = 1000  # grid points
    density_width: float = 0.01  # the Gaussian's width, as a fraction of the spectrum's range
    layer_steps: int = 40  # Lanczos steps per layer, at most
    layer_tol: float = 1e-3  # a bar's precision
    seed: int = 0  # of every random start vector

    def check(self) -> None:
        """``ValueError`` naming the first invalid field."""
        if self.top < 0:
            raise ValueError(f"Invalid top: {self.top} (0 or more eigenvalues)")
        if not (self.top or self.trace or self.density or self.per_layer):
            raise ValueError("nothing to compute: ask for top eigenvalues, the trace, the "
                             "density or the per-layer eigenvalues")  # fmt: skip
        if self.trace and self.trace_samples < 2:
            raise ValueError(f"Invalid trace samples: {self.trace_samples} (at least 2)")
        if self.density and (self.density_runs < 1 or self.density_steps < 2):
            raise ValueError(
                f"Invalid density runs/steps: {self.density_runs}/{self.density_steps}"
            )
        if not 0 < self.tol < 1 or not 0 < self.layer_tol < 1:
            raise ValueError(f"Invalid tolerance: {self.tol}/{self.layer_tol} (between 0 and 1)")
        if self.max_steps < 1 or self.layer_steps < 1:
            raise ValueError(f"Invalid max steps: {self.max_steps} (at least 1)")

    def products(self, parameters: int, layers: list[int]) -> int:
        """Hessian-vector products the analysis takes at most (Lanczos may stop sooner)."""
        total = min(max(self.max_steps, self.top), parameters) if self.top else 0
        total += self.trace_samples if self.trace else 0
        if self.density:
            total += self.density_runs * min(self.density_steps, parameters)
        if self.per_layer:
            total += sum(min(self.layer_steps, n) for n in layers)
        return total


@dataclass(frozen=True)
class Planned:
    """The analysis is about to start: its size and cost, from one timed product."""

    parameters: int
    layers: tuple[str, ...]
    products: int  # at most
    seconds_per_product: float
    timed: int = 1  # products already spent timing one (the first also checks the loss)

    @property
    def seconds(self) -> float:
        return self.products * self.seconds_per_product


@dataclass(frozen=True)
class Progress:
    stage: str  # "top eigenvalues", "trace", "density", "per layer: <name>"
    done: int  # products so far, of the whole analysis
    total: int


@dataclass(frozen=True)
class LayerCurvature:
    name: str  # the module's path in the model, e.g. "features.0"
    kind: str  # its class, e.g. "Conv2d"
    parameters: int
    top_eigenvalue: float


@dataclass
class CurvatureResult:
    parameters: int
    top_eigenvalues: np.ndarray | None = None  # (k,) descending
    lanczos_steps: int = 0
    trace: Trace | None = None
    density: Density | None = None
    per_layer: list[LayerCurvature] = field(default_factory=list)
    products: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """Plain JSON: what ``losslab curvature --out x.json`` writes."""
        d: dict = {"parameters": self.parameters, "products": self.products,
                   "seconds": round(self.seconds, 3)}  # fmt: skip
        if self.top_eigenvalues is not None:
            d["top_eigenvalues"] = [float(v) for v in self.top_eigenvalues]
            d["lanczos_steps"] = self.lanczos_steps
        if self.trace is not None:
            d["trace"] = {"value": self.trace.value, "error": self.trace.error,
                          "samples": self.trace.samples}  # fmt: skip
        if self.density is not None:
            d["density"] = {
                "grid": self.density.grid.tolist(),
                "values": self.density.values.tolist(),
                "sigma": self.density.sigma,
                "runs": int(self.density.nodes.shape[0]),
                "steps": int(self.density.nodes.shape[1]),
            }
        if self.per_layer:
            d["per_layer"] = [
                {"name": r.name, "kind": r.kind, "parameters": r.parameters,
                 "top_eigenvalue": r.top_eigenvalue}
                for r in self.per_layer
            ]  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CurvatureResult:
        """A result read back from :meth:`to_dict`'s JSON (the quadrature nodes are not
        saved: the density comes back as its grid and values)."""
        try:
            r = cls(parameters=int(d["parameters"]), products=int(d.get("products", 0)),
                    seconds=float(d.get("seconds", 0.0)))  # fmt: skip
            if "top_eigenvalues" in d:
                r.top_eigenvalues = np.asarray(d["top_eigenvalues"], dtype=float)
                r.lanczos_steps = int(d.get("lanczos_steps", 0))
            if "trace" in d:
                t = d["trace"]
                r.trace = Trace(float(t["value"]), float(t["error"]), int(t.get("samples", 0)))
            if "density" in d:
                dd = d["density"]
                shape = (int(dd.get("runs", 1)), int(dd.get("steps", 1)))
                r.density = Density(np.asarray(dd["grid"], dtype=float),
                                    np.asarray(dd["values"], dtype=float), np.zeros(shape),
                                    np.zeros(shape), float(dd.get("sigma", 0.0)))  # fmt: skip
            r.per_layer = [
                LayerCurvature(str(x["name"]), str(x["kind"]), int(x["parameters"]),
                               float(x["top_eigenvalue"]))
                for x in d.get("per_layer", [])
            ]  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a curvature result ({type(exc).__name__}: {exc})") from None
        return r


def product_time(seconds: float) -> str:
    """One product's time, in the unit that reads best."""
    return f"{seconds:.3g} s" if seconds >= 1 else f"{1000 * seconds:.3g} ms"


@dataclass(frozen=True)
class Done:
    result: CurvatureResult


# --- the loss ------------------------------------------------------------------------------


def task_terms(loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Terms:
    """A built-in task's loss on ``x, y`` as chunks that add up to it (as hessian_eigs)."""
    fn = _sum_loss(loss_fn)
    scale = 1.0 / y.numel() if _reduction(loss_fn) == "mean" else 1.0

    def terms(m: nn.Module):
        for i in range(0, len(x), EVAL_BATCH):
            yield fn(m(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH]) * scale

    return terms


def loss_terms(problem) -> tuple[nn.Module, Terms]:
    """The model and the loss of a landscape :class:`~core.landscape.problems.Problem`."""
    from core.landscape.problems import OwnProblem, TaskProblem

    if isinstance(problem, TaskProblem):
        return problem.model, task_terms(problem.loss_fn, problem.x, problem.y)
    if isinstance(problem, OwnProblem):

        def terms(m: nn.Module):
            for b in problem.batches:
                yield problem.loss(m, b) / problem.n

        return problem.model, terms
    raise TypeError(f"Unknown problem: {type(problem).__name__}")


def layer_groups(model: nn.Module) -> list[tuple[str, str, list[torch.Tensor]]]:
    """The trainable parameters grouped by the module that holds them, in the model's order:
    (path, class name, parameters). A layer's weight and bias are one block of the Hessian."""
    groups: dict[str, tuple[str, list[torch.Tensor]]] = {}
    for name, mod in model.named_modules():
        own = [p for p in mod.parameters(recurse=False) if p.requires_grad]
        if own:
            groups[name or "(model)"] = (type(mod).__name__, own)
    return [(name, kind, ps) for name, (kind, ps) in groups.items()]


def _guarded(hvp):
    """``hvp`` with autograd's failures turned into a message a user can act on."""

    def product(v: torch.Tensor) -> torch.Tensor:
        try:
            return hvp(v)
        except ExperimentError as exc:
            raise CurvatureError(str(exc)) from None
        except RuntimeError as exc:  # NotImplementedError too: an op without a 2nd derivative
            text = str(exc).splitlines()[0]
            if "does not require grad" in text:
                raise CurvatureError(
                    "the loss does not depend on the weights through autograd (does it detach "
                    "the model's output, or run under torch.no_grad()?): it has no gradient, "
                    "so no Hessian"
                ) from None
            raise CurvatureError(
                f"the loss cannot be differentiated twice, so its Hessian cannot be computed "
                f"({text})"
            ) from None

    return product


def _start(n: int, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(n, generator=g, dtype=torch.float64).to(like.device, like.dtype)  # (P,)


# --- the analysis --------------------------------------------------------------------------


def analyse(
    model: nn.Module, terms: Terms, request: CurvatureRequest, every: float = 0.1
) -> Iterator[Planned | Progress | Done]:
    """Planned, then Progress (at most every ``every`` seconds, and at each stage's end),
    then Done. The caller's model is left untouched (a copy in evaluation mode is used).
    Raises :class:`CurvatureError` when the loss has no Hessian, ``ValueError`` for a bad
    request. Stop it by no longer iterating (close())."""
    request.check()
    m = copy.deepcopy(model).eval()
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        raise CurvatureError("the model has no trainable parameters")
    n = sum(p.numel() for p in params)
    if request.top > n:
        # a small model (the sine fit's 4 weights) asked for the default top 5: it has only
        # n eigenvalues, so all of them are the answer (refusing failed the first Compute)
        request = replace(request, top=n)
    like = params[0].detach()
    hvp = _guarded(hvp_of(params, lambda: terms(m)))
    g = torch.Generator().manual_seed(request.seed)
    groups = layer_groups(m) if request.per_layer else []
    t0 = time.perf_counter()
    probe = _start(n, torch.Generator().manual_seed(request.seed + 1), like)  # (P,)
    hvp(probe)  # fails here, before any plan, when the loss has no Hessian
    per = time.perf_counter() - t0
    timed = 1
    # the first products warm up (allocations, kernels' first calls) and ran 2-5x slower
    # than the rest on LeNet: time up to two more while that costs little, keep the fastest
    while timed < 3 and time.perf_counter() - t0 < 10.0:
        t1 = time.perf_counter()
        hvp(probe)
        per = min(per, time.perf_counter() - t1) if timed > 1 else time.perf_counter() - t1
        timed += 1
    total = request.products(n, [sum(p.numel() for p in ps) for _, _, ps in groups])
    yield Planned(n, tuple(name for name, _, _ in groups), total, per, timed)
    result = CurvatureResult(parameters=n)
    count = [0]
    last = [time.perf_counter()]

    def steps(gen, stage: str):
        """``yield from`` this: runs ``gen``, yielding Progress now and then; its result."""
        while True:
            try:
                next(gen)
            except StopIteration as end:
                yield Progress(stage, count[0], total)
                return end.value
            count[0] += 1
            if time.perf_counter() - last[0] >= every:
                last[0] = time.perf_counter()
                yield Progress(stage, count[0], total)

    if request.top:
        vals, _, used = yield from steps(
            top_eigenvalues_iter(hvp, _start(n, g, like), request.top, request.tol,
                                 request.max_steps),
            "top eigenvalues",
        )  # fmt: skip
        result.top_eigenvalues, result.lanczos_steps = vals, used
    if request.trace:
        result.trace = yield from steps(
            hutchinson_iter(hvp, n, request.trace_samples, g, like.dtype, like.device), "trace"
        )
    if request.density:
        nodes, weights = yield from steps(
            slq_nodes_iter(hvp, n, request.density_runs, request.density_steps, g, like.dtype,
                           like.device),
            "density",
        )  # fmt: skip
        result.density = broadened(nodes, weights, request.density_points, request.density_width)
    for name, kind, ps in groups:
        block = _guarded(hvp_of(ps, lambda: terms(m)))
        size = sum(p.numel() for p in ps)
        vals, _, _ = yield from steps(
            top_eigenvalues_iter(block, _start(size, g, like), 1, request.layer_tol,
                                 request.layer_steps),
            f"per layer: {name}",
        )  # fmt: skip
        result.per_layer.append(LayerCurvature(name, kind, size, float(vals[0])))
    result.products = count[0] + timed
    result.seconds = time.perf_counter() - t0
    yield Done(result)


def analyse_problem(problem, request: CurvatureRequest) -> Iterator[Planned | Progress | Done]:
    """:func:`analyse` of a landscape problem's model and loss."""
    model, terms = loss_terms(problem)
    return analyse(model, terms, request)


__all__ = [
    "CurvatureError",
    "CurvatureRequest",
    "CurvatureResult",
    "Done",
    "LayerCurvature",
    "Planned",
    "Progress",
    "analyse",
    "analyse_problem",
    "layer_groups",
    "loss_terms",
    "product_time",
    "task_terms",
]
