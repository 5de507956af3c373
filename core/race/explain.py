"""Explanations of optimizer steps, written with the real numbers.

:func:`explain_last_step` reads what a :class:`~core.race.race.Race` recorded around its last step
(the gradient the optimizer saw, its state before and after, the learning rate) and writes the
update rule of that optimizer with those numbers. Where the rule is implemented here (SGD,
momentum, Nesterov, RMSprop, Adagrad, Adam, AdamW) it also *predicts* the update from the state
before the step, so a test can check the explanation against what ``torch.optim`` really did.

The three momentum conventions that tutorials teach are here too (:func:`momentum_path`), with
the hyperparameter mapping that makes them trace the same path as ``torch.optim.SGD``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.optimizers import get_optimizer

Convention = Literal["pytorch", "classical", "ema"]


@dataclass(frozen=True)
class StepExplanation:
    """One optimizer step of one racer at one start point, taken apart."""

    optimizer: str  # display label
    step: int  # the step that moved the point from ``pos_before`` to ``pos_after``
    pos_before: np.ndarray  # (2,)
    pos_after: np.ndarray  # (2,)
    grad: np.ndarray  # (2,) the gradient the optimizer used (after noise and clipping)
    true_grad: np.ndarray  # (2,) the surface's gradient at pos_before
    update: np.ndarray  # (2,) what the optimizer actually did: pos_after - pos_before
    predicted: np.ndarray | None  # (2,) the textbook rule's update from the state before
    velocity: np.ndarray | None  # (2,) momentum buffer / first moment after the step
    lr: float
    lines: list[str] = field(default_factory=list)  # the update rule with numbers
    config: str = ""  # the racer's settings, lr first: "lr 0.05, beta1 0.9, ..."
    terms: dict[str, np.ndarray] = field(default_factory=dict)  # named intermediate values


def _v(a: np.ndarray) -> str:
    """A 2-vector as text."""
    return f"({a[0]:+.4g}, {a[1]:+.4g})"


def explain_last_step(race, r: int, k: int = 0) -> StepExplanation | None:
    """Explain racer ``r``'s last step from start ``k``; ``None`` before the first step."""
    snaps = race.last_step()
    if snaps is None:
        return None
    before, after = snaps
    spec = race.specs[r]
    info = get_optimizer(spec.optimizer.name)
    values = race.values(r)
    p0 = before["pos"][r, k]
    p1 = after["pos"][r, k]
    g = before["used"][r, k]  # what the optimizer saw, after noise and clipping
    lr = float(before["lr"][r])
    state0 = {n.split(":", 1)[1]: v[k] for n, v in before.items() if n.startswith(f"state{r}:")}
    state1 = {n.split(":", 1)[1]: v[k] for n, v in after.items() if n.startswith(f"state{r}:")}
    rule = _RULES.get(info.cls.__name__)
    lines: list[str] = [f"g = {_v(g)}   (gradient used at {_v(p0)})"]
    terms: dict[str, np.ndarray] = {}
    predicted = None
    if rule is not None:
        predicted = rule(values, lr, g, p0, state0, lines, terms)
    velocity = None
    for name in ("momentum_buffer", "exp_avg"):
        if name in state1 and np.all(np.isfinite(state1[name])):
            velocity = state1[name]
            break
    update = p1 - p0
    lines.append(f"actual update = {_v(update)}  ->  p = {_v(p1)}")
    if rule is None:
        lines.insert(1, f"{info.label}: {info.caption}")
        for name, value in state1.items():
            if np.ndim(value) == 1 and len(value) == 2:
                lines.insert(-1, f"{name} = {_v(value)}")
    return StepExplanation(
        optimizer=info.label,
        step=int(after["step"]),
        pos_before=p0,
        pos_after=p1,
        grad=g,
        true_grad=before["grad"][r, k],
        update=update,
        predicted=predicted,
        velocity=velocity,
        lr=lr,
        lines=lines,
        terms=terms,
        config=config_line(values, lr),
    )


def config_line(values: dict, lr: float) -> str:
    """Every hyperparameter of a racer as ``name value``, the learning rate it stepped with
    first (under a schedule that is not the spec's lr); a switch is named only when on."""
    parts = [f"lr {lr:.4g}"]
    for name, value in values.items():
        if name == "lr" or value is False:
            continue
        if value is True:
            parts.append(name)
        elif isinstance(value, float):
            parts.append(f"{name} {value:.4g}")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts)


# --- the rules, in torch's conventions ----------------------------------------------------
# Each takes (hyperparameters, lr, gradient, position, state before) and returns the update,
# appending the equations with numbers to ``lines`` and intermediate vectors to ``terms``.


def _decay(values, p, g, lines):
    wd = float(values.get("weight_decay", 0.0) or 0.0)
    if wd:
        g = g + wd * p
        lines.append(f"g + wd*p = {_v(g)}   (weight decay {wd:g})")
    return g


def _sgd(values, lr, g, p, s0, lines, terms):
    g = _decay(values, p, g, lines)
    mu = float(values["momentum"])
    if mu == 0:
        upd = -lr * g
        lines.append(f"update = -lr*g = -{lr:.4g}*{_v(g)} = {_v(upd)}")
        return upd
    damp = float(values["dampening"])
    buf0 = s0.get("momentum_buffer")
    if buf0 is None or not np.all(np.isfinite(buf0)):
        buf = g.copy()
        lines.append(f"v = g = {_v(buf)}   (first step: the buffer starts as the gradient)")
    else:
        buf = mu * buf0 + (1 - damp) * g
        lines.append(f"v = mu*v + (1-dampening)*g = {mu:g}*{_v(buf0)} + {1 - damp:g}*g = {_v(buf)}")
    terms["v"] = buf
    if values["nesterov"]:
        d = g + mu * buf
        lines.append(f"d = g + mu*v = {_v(d)}   (Nesterov: look ahead along v)")
    else:
        d = buf
    upd = -lr * d
    lines.append(f"update = -lr*{'d' if values['nesterov'] else 'v'} = {_v(upd)}")
    return upd


def _rmsprop(values, lr, g, p, s0, lines, terms):
    g = _decay(values, p, g, lines)
    a, eps = float(values["alpha"]), float(values["eps"])
    sq = a * _zero(s0.get("square_avg")) + (1 - a) * g * g
    lines.append(f"s = alpha*s + (1-alpha)*g^2 = {_v(sq)}   (alpha {a:g})")
    terms["s"] = sq
    if values["centered"]:
        ga = a * _zero(s0.get("grad_avg")) + (1 - a) * g
        avg = np.sqrt(sq - ga * ga) + eps
        lines.append(f"m = alpha*m + (1-alpha)*g = {_v(ga)};  denom = sqrt(s - m^2) + eps")
        terms["m"] = ga
    else:
        avg = np.sqrt(sq) + eps
        lines.append(f"denom = sqrt(s) + eps = {_v(avg)}")
    mu = float(values["momentum"])
    if mu > 0:
        buf = mu * _zero(s0.get("momentum_buffer")) + g / avg
        lines.append(f"v = mu*v + g/denom = {_v(buf)}")
        terms["v"] = buf
        upd = -lr * buf
    else:
        upd = -lr * g / avg
    lines.append(f"update = -lr * {'v' if mu > 0 else 'g/denom'} = {_v(upd)}   (lr {lr:.4g})")
    return upd


def _adagrad(values, lr, g, p, s0, lines, terms):
    g = _decay(values, p, g, lines)
    t = float(_zero(s0.get("step"))) + 1
    clr = lr / (1 + (t - 1) * float(values["lr_decay"]))
    acc = _zero(s0.get("sum")) + g * g
    terms["sum"] = acc
    lines.append(f"G = G + g^2 = {_v(acc)}")
    upd = -clr * g / (np.sqrt(acc) + float(values["eps"]))
    lines.append(f"update = -lr*g/(sqrt(G)+eps) = {_v(upd)}")
    return upd


def _adam(values, lr, g, p, s0, lines, terms, decoupled=False):
    b1, b2, eps = float(values["beta1"]), float(values["beta2"]), float(values["eps"])
    wd = float(values.get("weight_decay", 0.0) or 0.0)
    decoupled = decoupled or bool(values.get("decoupled_weight_decay", False))
    shrink = np.zeros(2)
    if wd and decoupled:
        shrink = -lr * wd * p
        p = p + shrink
        lines.append(f"p <- p*(1 - lr*wd): decoupled weight decay moves it by {_v(shrink)}")
    elif wd:
        g = _decay(values, p, g, lines)
    t = float(_zero(s0.get("step"))) + 1
    m = b1 * _zero(s0.get("exp_avg")) + (1 - b1) * g
    v = b2 * _zero(s0.get("exp_avg_sq")) + (1 - b2) * g * g
    lines.append(f"m = b1*m + (1-b1)*g = {_v(m)}   (b1 {b1:g})")
    lines.append(f"v = b2*v + (1-b2)*g^2 = {_v(v)}   (b2 {b2:g})")
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    m_hat, v_hat = m / bc1, v / bc2
    lines.append(f"m_hat = m/(1-b1^{t:g}) = {_v(m_hat)};  v_hat = v/(1-b2^{t:g}) = {_v(v_hat)}")
    if values.get("amsgrad"):
        v_max = np.maximum(_zero(s0.get("max_exp_avg_sq")), v)
        denom = np.sqrt(v_max) / np.sqrt(bc2) + eps
        lines.append("amsgrad: use the largest v so far")
    else:
        denom = np.sqrt(v) / np.sqrt(bc2) + eps  # torch's order of operations
    upd = -(lr / bc1) * m / denom
    lines.append(f"update = -lr*m_hat/(sqrt(v_hat)+eps) = {_v(upd)}   (lr {lr:.4g})")
    terms.update(m=m, v=v, m_hat=m_hat, v_hat=v_hat)
    return upd + shrink


def _adamw(values, lr, g, p, s0, lines, terms):
    return _adam(values, lr, g, p, s0, lines, terms, decoupled=True)


def _zero(a):
    """State before the first step is absent (or recorded as nan): it starts at zero."""
    if a is None:
        return np.zeros(2)
    a = np.asarray(a, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


_RULES: dict[str, Callable] = {
    "SGD": _sgd,
    "RMSprop": _rmsprop,
    "Adagrad": _adagrad,
    "Adam": _adam,
    "AdamW": _adamw,
}


# --- the three momentum conventions ------------------------------------------------------


def equivalent_hyper(convention: Convention, lr: float, mu: float) -> tuple[float, float]:
    """Map torch's SGD ``(lr, momentum)`` onto a convention's ``(step, decay)``.

    * pytorch:   ``v = mu*v + g;          p -= lr*v``   -> (lr, mu)
    * classical: ``v = alpha*v + eta*g;   p -= v``      -> (eta, alpha) = (lr, mu)
    * ema:       ``v = beta*v + (1-beta)*g; p -= lr_e*v`` -> (lr_e, beta) = (lr/(1-mu), mu)
    """
    if convention in ("pytorch", "classical"):
        return lr, mu
    if convention == "ema":
        if not 0 <= mu < 1:
            raise ValueError(f"Invalid momentum for the EMA form: {mu} (need 0 <= mu < 1)")
        return lr / (1 - mu), mu
    raise ValueError(f"Unknown convention {convention!r}; choose pytorch, classical or ema")


def momentum_path(
    convention: Convention,
    grad_fn: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    step: float,
    decay: float,
    n_steps: int,
) -> np.ndarray:
    """Positions ``(n_steps + 1, 2)`` of heavy-ball momentum written in one convention."""
    p = np.array(start, dtype=np.float64)
    v = np.zeros_like(p)
    out = [p.copy()]
    for _ in range(n_steps):
        g = grad_fn(p)
        if convention == "pytorch":
            v = decay * v + g
            p = p - step * v
        elif convention == "classical":
            v = decay * v + step * g
            p = p - v
        elif convention == "ema":
            v = decay * v + (1 - decay) * g
            p = p - step * v
        else:
            raise ValueError(f"Unknown convention {convention!r}; choose pytorch, classical or ema")
        out.append(p.copy())
    return np.array(out)


__all__ = [
    "StepExplanation",
    "config_line",
    "equivalent_hyper",
    "explain_last_step",
    "momentum_path",
]
