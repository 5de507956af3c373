"""How large a racer's learning rate may be at its point of the surface, in plain sentences.

The maths (the recurrences and their limits) is in :mod:`core.race.hessian`. Here each
``torch.optim`` class is mapped onto one of them, with the per-coordinate preconditioner of an
adaptive method read from the optimizer's real state, and the result is written out to teach the
seeds' learning-rate lessons: why a learning rate must stay under ``2/lambda``, what momentum,
weight decay, schedules and clipping change, and why a long valley is slow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.optimizers import get_optimizer
from core.race.hessian import (
    Kind,
    PointCurvature,
    Stability,
    contraction,
    critical_a,
    curvature_at,
)

FLAT = 1e-9  # |curvature| below this (relative to the largest) counts as flat


@dataclass(frozen=True)
class _Model:
    """One optimizer as a recurrence on the (preconditioned) curvature."""

    kind: Kind
    beta: float  # momentum of the recurrence (0 for gd)
    scale: float  # s in a = s*lr*lam
    precond: np.ndarray | None  # (2,) P, None for plain (unpreconditioned) methods
    formula: str  # the limit as written: "2/λmax", ...
    who: str  # "plain gradient descent", "heavy-ball momentum", ...
    denom: str = ""  # what an adaptive method divides the gradient by, as written in its rule
    note: str = ""  # a sentence after the limit's (Adam's bias correction); {limit} is filled in


def _f(v: float) -> str:
    return f"{v:.3g}"


def _state_array(state: dict, name: str) -> np.ndarray | None:
    v = state.get(name)
    if v is None:
        return None
    a = np.asarray(v, dtype=np.float64)
    return a if a.shape == (2,) and np.isfinite(a).all() else None


def _steps_taken(state: dict) -> float:
    t = state.get("step")
    t = float(np.asarray(t, dtype=np.float64).reshape(-1)[0]) if t is not None else 0.0
    return t if math.isfinite(t) else 0.0


def _model(cls_name: str, values: dict, state: dict) -> _Model | str:
    """The recurrence of one optimizer class, or the sentence saying why none applies."""
    if cls_name in ("SGD", "ASGD"):
        mu = float(values.get("momentum") or 0.0)
        if mu == 0:
            return _Model("gd", 0.0, 1.0, None, "2/λmax", "plain gradient descent")
        if values.get("nesterov"):
            return _Model("nesterov", mu, 1.0, None, "2(1+β)/((1+2β)λmax)", "Nesterov momentum")
        damp = float(values.get("dampening") or 0.0)
        if damp >= 1:
            return "With dampening 1 the momentum buffer ignores new gradients: no limit applies."
        formula = "2(1+β)/λmax" if damp == 0 else "2(1+β)/((1-dampening)λmax)"
        return _Model("heavy_ball", mu, 1 - damp, None, formula, "heavy-ball momentum")
    if cls_name == "RMSprop":
        sq = _state_array(state, "square_avg")
        if sq is None:
            return "no_state"
        if values.get("centered"):
            ga = _state_array(state, "grad_avg")
            sq = sq - (ga * ga if ga is not None else 0.0)
        p = 1 / (np.sqrt(np.maximum(sq, 0)) + float(values["eps"]))
        mu = float(values.get("momentum") or 0.0)
        kind: Kind = "heavy_ball" if mu else "gd"
        formula = "2(1+β)/λ̃max" if mu else "2/λ̃max"
        return _Model(kind, mu, 1.0, p, formula, "RMSprop", "sqrt(s)+eps")
    if cls_name == "Adagrad":
        acc = _state_array(state, "sum")
        if acc is None or not acc.any():
            return "no_state"
        t = _steps_taken(state)
        p = 1 / (np.sqrt(acc) + float(values["eps"]))
        scale = 1 / (1 + t * float(values.get("lr_decay") or 0.0))
        return _Model("gd", 0.0, scale, p, "2/λ̃max", "Adagrad", "sqrt(G)+eps")
    if cls_name == "Adadelta":
        sq, delta = _state_array(state, "square_avg"), _state_array(state, "acc_delta")
        if sq is None or delta is None:
            return "no_state"
        eps = float(values["eps"])
        p = np.sqrt(delta + eps) / np.sqrt(sq + eps)
        return _Model("gd", 0.0, 1.0, p, "2/λ̃max", "Adadelta", "sqrt(s+eps)/sqrt(Δ+eps)")
    if cls_name in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax"):
        b1, b2 = float(values["beta1"]), float(values["beta2"])
        t = _steps_taken(state) + 1  # the coming step
        if cls_name == "Adamax":
            u = _state_array(state, "exp_inf")
            if u is None or not u.any():
                return "no_state"
            p = 1 / u
        else:
            v = _state_array(state, "max_exp_avg_sq" if values.get("amsgrad") else "exp_avg_sq")
            if v is None or not v.any():
                return "no_state"
            p = 1 / (np.sqrt(v / (1 - b2 ** (t - 1))) + float(values["eps"]))
        # m = b1*m + (1-b1)*g is heavy ball on g*(1-b1), stepped with lr/(1-b1^t)
        who = cls_name if cls_name in ("Adam", "AdamW", "Adamax") else f"{cls_name} (as Adam)"
        # the bias correction belongs in the formula: written without it, "= 18" at step 3
        # of lr 0.02 on x^2+y^2 could not be checked by hand (2(1+β1)/((1-β1)λ̃max) is 52)
        formula = f"2(1+β1)(1-β1^{t:g})/((1-β1)λ̃max)"
        denom = "u" if cls_name == "Adamax" else "sqrt(v_hat)+eps"
        note = (
            f"(1-β1^{t:g}) is the bias correction of the next step (t = {t:g}): it lowers the "
            "limit early on; "
            "as the steps add up it tends to 2(1+β1)/((1-β1)λ̃max) = {late}."
        )
        return _Model("heavy_ball", b1, (1 - b1) / (1 - b1**t), p, formula, who, denom, note)
    if cls_name == "Rprop":
        return (
            "Rprop uses only the gradient's sign, so curvature sets no learning-rate limit: "
            "its steps grow while the sign holds and shrink when it flips."
        )
    if cls_name == "LBFGS":
        return (
            "L-BFGS builds its own curvature model (a quasi-Newton step): near a minimum a "
            "full step jumps to it, so no 2/λ limit applies."
        )
    return f"{cls_name} scales its steps in its own way; no curvature limit is worked out for it."


def stability(
    cls_name: str,
    values: dict,
    lr: float,
    curv: PointCurvature,
    state: dict | None = None,
    *,
    clip: str = "none",
    clip_value: float = 1.0,
    scheduled: bool = False,
    label: str = "",
) -> Stability:
    """The stability limit of an optimizer of class ``cls_name`` at ``curv``, with sentences.

    ``values`` are the racer's resolved hyperparameters (catalogue names: ``beta1``, ...),
    ``state`` its ``torch.optim`` state for this point as numpy (empty before the first step).
    """
    state = state or {}
    label = label or cls_name
    nan2 = np.full(2, np.nan)
    if not curv.finite:
        return Stability(
            "none", lr, math.nan, "", nan2, nan2, [f"No curvature here: {curv.problem}."]
        )
    if not curv.smooth:
        return Stability(
            "none",
            lr,
            math.nan,
            "",
            curv.eigenvalues,
            nan2,
            [
                "Not smooth here (a kink, as in abs, relu or max): the gradient jumps, so the "
                "Hessian means little and no learning-rate limit holds. Steps of a fixed size hop "
                "across the kink."
            ],
        )
    wd = float(values.get("weight_decay") or 0.0)
    decoupled = cls_name == "AdamW" or bool(values.get("decoupled_weight_decay"))
    hess = curv.hessian + (0.0 if decoupled else wd) * np.eye(2)
    lams = np.linalg.eigvalsh(hess)[::-1]  # (2,) descending
    gd_limit = 2 / lams[0] if lams[0] > 0 else math.inf
    model = _model(cls_name, values, state)
    if isinstance(model, _Model) and model.precond is not None and cls_name != "Adadelta":
        # a coordinate whose denominator is still eps has seen no gradient: the frozen-state
        # picture would promise a step of lr/eps there, which the next update never takes
        eps = float(values.get("eps") or 0.0)
        unseen = [n for n, d in zip("xy", 1 / model.precond, strict=True) if d <= 2 * eps]
        if unseen:
            model = (
                f"{label} has seen no gradient along {' or '.join(unseen)} yet ({model.denom} is "
                "just eps there): any gradient that way would move it by about lr at once, "
                "whatever the curvature, so no curvature limit applies yet."
            )
    lines: list[str] = []
    if wd and not decoupled:
        lines.append(
            f"Weight decay adds {_f(wd)} to every curvature: λ + wd = {_f(lams[0])}, {_f(lams[1])}."
        )
    if isinstance(model, str):
        ref = f"2/λmax = {_f(gd_limit)}" if math.isfinite(gd_limit) else "2/λmax"
        if model == "no_state":
            model = (
                f"{label} has no state yet: its first step moves each coordinate by about "
                "lr, whatever the curvature."
            )
        lines.append(model)
        if lams[1] < -FLAT * max(abs(lams[0]), abs(lams[1])):
            lines.append(
                f"Curvature is negative along v2 (λ2 = {_f(lams[1])}): the surface curves down "
                "that way, so a racer there drifts off. That is how it leaves a saddle."
            )
        lines.append(f"(The limit {ref} is for plain gradient descent.)")
        return Stability("none", lr, math.nan, "", lams, nan2, lines)
    if model.precond is not None:
        root = np.sqrt(model.precond)
        lams = np.linalg.eigvalsh(root[:, None] * hess * root[None, :])[::-1]  # (2,) of P^½HP^½
        lines.append(
            f"{label} divides each coordinate's gradient by {model.denom} = "
            f"{_vec(1 / model.precond)} (torch.optim's state): its effective lr per coordinate "
            f"is {_vec(lr * model.precond * (model.scale if model.kind == 'gd' else 1.0))}, and "
            "it feels the curvatures "
            f"λ̃ = {_f(lams[0])}, {_f(lams[1])}, not λ."
            + (
                f" The plain-GD limit 2/λmax = {_f(gd_limit)} does not apply."
                if math.isfinite(gd_limit)
                else ""
            )
        )
    factors = np.array(
        [contraction(model.kind, model.beta, model.scale * lr * lam) for lam in lams]
    )
    a_crit = critical_a(model.kind, model.beta)
    limit = a_crit / (model.scale * lams[0]) if lams[0] > 0 else math.inf
    lines += _limit_lines(model, lr, limit, lams, factors, gd_limit)
    if model.note and math.isfinite(limit):
        lines.append(model.note.format(late=_f(a_crit / ((1 - model.beta) * lams[0]))))
    if clip == "norm":
        lines.append(
            f"Clipping caps each step at lr·{_f(clip_value)}: past the limit the racer "
            "bounces instead of blowing up."
        )
    elif clip == "value":
        lines.append(
            f"Clipping caps each gradient coordinate at ±{_f(clip_value)}: past the "
            "limit the racer bounces instead of blowing up."
        )
    if scheduled and lr > limit:
        lines.append("A schedule sets this lr: once it falls below the limit the swings die out.")
    elif scheduled:
        lines.append("A schedule sets this lr: the limit moves only with the curvature.")
    return Stability(model.kind, lr, limit, model.formula, lams, factors, lines)


def _vec(a: np.ndarray) -> str:
    return f"({_f(a[0])}, {_f(a[1])})"


def _rate(v: float) -> str:
    """A factor per step, with enough digits to tell it from 1 (1.00008, not 1)."""
    gap = abs(v - 1)
    if not math.isfinite(v) or gap >= 0.01 or gap == 0:
        return f"{v:.3g}"
    return f"{v:.{min(9, 2 - math.floor(math.log10(gap)))}g}"


def _limit_lines(model: _Model, lr, limit, lams, factors, gd_limit) -> list[str]:
    lam = "λ̃" if model.precond is not None else "λ"
    out: list[str] = []
    scale = max(abs(lams[0]), abs(lams[1]), 1e-300)
    if lams[0] < -FLAT * scale:  # a hilltop: the sentences about v2 would repeat this one
        return [
            "Every direction curves down here (a hilltop): there is no learning-rate limit; "
            f"the racer rolls off, its steps growing ×{_rate(factors.max())} each time."
        ]
    if not math.isfinite(limit):
        out.append(
            "The surface does not curve up here: there is no learning-rate limit; only the "
            "slope moves the racer."
        )
    elif lr > limit:
        out.append(
            f"lr {_f(lr)} > {model.formula} = {_f(limit)}: {model.who} oscillates and "
            "diverges along v1."
        )
        out.append(
            "Each step jumps over the valley floor and lands higher on the other side: the "
            f"error along v1 grows ×{_rate(factors[0])} per step. A smaller lr fixes it; so "
            "does reaching a flatter spot, where 2/λmax is larger."
        )
    else:
        out.append(f"lr {_f(lr)} < {model.formula} = {_f(limit)}: stable along v1.")
        a1 = model.scale * lr * lams[0]
        if model.kind == "gd" and a1 > 1:
            out.append(
                f"lr·{lam}1 = {_f(a1)} > 1: each step overshoots the valley floor and "
                f"zig-zags, but the zig-zag shrinks (×{_rate(factors[0])} per step)."
            )
        else:
            out.append(f"The error along v1 shrinks ×{_rate(factors[0])} per step.")
    if lams[1] < -FLAT * scale:
        out.append(
            f"Curvature is negative along v2 ({lam}2 = {_f(lams[1])}): the surface curves "
            f"down, so steps along v2 grow (×{_rate(factors[1])}) at any lr. That is how a "
            "racer leaves a saddle."
        )
    elif abs(lams[1]) <= FLAT * scale and math.isfinite(limit):
        out.append("The surface is flat along v2: only the slope moves the racer that way.")
    elif lr <= limit and factors[1] > factors[0] + 0.02:  # v2 clearly the slow one
        out.append(
            f"Along v2 (flatter) the error shrinks only ×{_rate(factors[1])} per step: "
            f"{lam}1/{lam}2 = {_f(lams[0] / lams[1])}, and no single lr is fast along both. "
            "That is why a long, narrow valley is slow."
        )
    if model.kind == "heavy_ball" and model.precond is None and math.isfinite(limit):
        b = model.beta
        out.append(
            f"Momentum β = {_f(b)} raises plain GD's limit {_f(gd_limit)} by (1+β). In the EMA "
            f"form (v = βv + (1-β)g) the same limit reads lr < 2(1+β)/((1-β)λmax) = "
            f"{_f(limit / (1 - b))}."
        )
    elif model.kind == "nesterov" and math.isfinite(limit):
        out.append(
            "torch's Nesterov step looks ahead, which lowers heavy ball's limit "
            f"{_f(2 * (1 + model.beta) / lams[0])} by 1/(1+2β)."
        )
    return out


def racer_stability(race, r: int, k: int = 0) -> tuple[PointCurvature, Stability]:
    """Curvature at racer ``r``'s current point (start ``k``) and what its lr means there."""
    spec = race.specs[r]
    info = get_optimizer(spec.optimizer.name)
    point = race.positions[r, k]  # (2,)
    curv = curvature_at(race.surface.fn, point)
    state = live_state(race, r, k)
    st = stability(
        info.cls.__name__,
        race.values(r),
        race.lr(r),
        curv,
        state,
        clip=spec.clip,
        clip_value=spec.clip_value,
        scheduled=spec.scheduler is not None,
        label=info.label,
    )
    return curv, st


def live_state(race, r: int, k: int = 0) -> dict[str, np.ndarray]:
    """Racer ``r``'s ``torch.optim`` state for start ``k``, as numpy ((2,) arrays or scalars)."""
    return race.optimizer_state(r, k)


__all__ = ["live_state", "racer_stability", "stability"]
