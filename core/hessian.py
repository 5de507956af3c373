"""Hessian-vector products by double backward, and power iteration on them.

The primitives every curvature measure in LossLab is built on: the landscape's spectra, the
sharpness tracked during training and the race's stability limit all multiply by the Hessian
without ever forming it (a LeNet-5 Hessian would have 61,706² entries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

HVP = Callable[[torch.Tensor], torch.Tensor]


def flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Tensors as one vector, in order."""
    return torch.cat([t.reshape(-1) for t in tensors])


def _filled(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Gradients as one vector, zeros for the parameters the loss does not use."""
    return flat(torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True))


def hvp_of(params: Sequence[torch.Tensor], losses: Callable[[], Iterable[torch.Tensor]]) -> HVP:
    """``v -> H v`` for the Hessian, with respect to ``params``, of the sum of the scalar losses
    that ``losses()`` yields (e.g. one per batch, already weighted). Each product runs one
    forward pass, one backward with ``create_graph`` and one backward through the gradient."""
    params = list(params)

    def product(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for loss in losses():
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            g = _filled(grads, params)
            if not g.requires_grad:  # the loss is linear in these parameters: H = 0
                continue
            hv = torch.autograd.grad(g @ v, params, allow_unused=True)
            out += _filled(hv, params)
        return out.detach()

    return product


def power_iteration(
    hvp: HVP,
    v0: torch.Tensor,
    iters: int = 100,
    tol: float = 1e-6,
    found: Sequence[tuple[float, torch.Tensor]] = (),
    should_stop: Callable[[], bool] | None = None,
) -> tuple[float, torch.Tensor, int]:
    """The largest-magnitude eigenvalue of the Hessian (with its sign) and its unit eigenvector,
    starting from ``v0`` (a warm start converges in a few products). The eigenpairs in
    ``found`` are deflated out (Hotelling). Returns (eigenvalue, eigenvector, products used);
    stops when the Rayleigh quotient changes by less than ``tol`` relative."""
    v = v0 / v0.norm()
    lam = 0.0
    used = 0
    for it in range(iters):
        if should_stop is not None and should_stop():
            raise InterruptedError("stopped")
        w = hvp(v)
        used += 1
        for val, u in found:
            w = w - val * (u @ v) * u
        new = float(v @ w)  # the Rayleigh quotient: the eigenvalue estimate, with its sign
        norm = float(w.norm())
        if norm == 0:
            return 0.0, v, used
        v = w / norm
        done = it >= 2 and abs(new - lam) <= tol * abs(new)
        lam = new
        if done:
            break
    return lam, v, used
