"""The catalogue of real ``torch.optim`` optimizers and LR schedulers, and building them from specs.

Defaults are read from the real classes' signatures with :mod:`inspect`, never retyped; this
module only adds what a signature cannot say: a sensible range for each hyperparameter, whether
a slider for it should be logarithmic, and the names of tuple components (``betas`` becomes
``beta1`` and ``beta2``). A spec is plain data (a key and a dict of numbers), so it can come from
a GUI, a JSON session or the command line alike.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Kind = Literal["float", "int", "bool", "choice"]
Value = float | int | bool | str | None

# Constructor arguments that are implementation switches, not hyperparameters.
_HIDDEN = {
    "params",
    "self",
    "maximize",
    "foreach",
    "differentiable",
    "fused",
    "capturable",
    "optimizer",
    "last_epoch",
    "verbose",
    "scale_fn",
    "epochs",
    "steps_per_epoch",
}

# Tuple arguments split into named components.
_COMPONENTS = {
    "betas": ("beta1", "beta2"),
    "etas": ("eta_minus", "eta_plus"),
    "step_sizes": ("step_size_min", "step_size_max"),
}

# name -> (low, high, log). Per-class overrides below. Ranges are what validation allows.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-8, 100.0, True),
    "momentum": (0.0, 0.999, False),
    "dampening": (0.0, 1.0, False),
    "weight_decay": (0.0, 10.0, False),
    "lr_decay": (0.0, 1.0, False),
    "initial_accumulator_value": (0.0, 10.0, False),
    "eps": (1e-16, 1.0, True),
    "rho": (0.0, 1.0, False),
    "alpha": (0.0, 0.9999, False),
    "beta1": (0.0, 0.9999, False),
    "beta2": (0.0, 0.99999, False),
    "momentum_decay": (0.0, 1.0, False),
    "eta_minus": (0.01, 0.99, False),
    "eta_plus": (1.01, 10.0, False),
    "step_size_min": (1e-12, 1.0, True),
    "step_size_max": (1e-3, 1e4, True),
    "lambd": (0.0, 1.0, False),
    "t0": (1.0, 1e9, True),
    "max_iter": (1, 100, False),
    "max_eval": (1, 1000, False),
    "tolerance_grad": (1e-15, 1.0, True),
    "tolerance_change": (1e-15, 1.0, True),
    "history_size": (1, 1000, False),
    # schedulers
    "step_size": (1, 100_000, False),
    "gamma": (0.0, 1.0, False),
    "T_max": (1, 1_000_000, False),
    "T_0": (1, 1_000_000, False),
    "T_mult": (1, 10, False),
    "eta_min": (0.0, 100.0, False),
    "max_lr": (1e-8, 100.0, True),
    "base_lr": (1e-8, 100.0, True),
    "total_steps": (1, 10_000_000, False),
    "pct_start": (0.0, 1.0, False),
    "base_momentum": (0.0, 1.0, False),
    "max_momentum": (0.0, 1.0, False),
    "div_factor": (1.0, 1e6, True),
    "final_div_factor": (1.0, 1e9, True),
    "step_size_up": (1, 1_000_000, False),
    "step_size_down": (1, 1_000_000, False),
    "start_factor": (1e-8, 1.0, False),
    "end_factor": (0.0, 1.0, False),
    "total_iters": (1, 1_000_000, False),
    "factor": (0.0, 0.9999, False),
    "patience": (0, 100_000, False),
    "threshold": (0.0, 1.0, False),
    "cooldown": (0, 100_000, False),
    "min_lr": (0.0, 100.0, False),
}
_CLASS_RANGES: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("ASGD", "alpha"): (0.0, 2.0, False),  # the power of the eta decay, not a smoothing constant
    ("CyclicLR", "gamma"): (0.0, 1.0, False),
    ("ExponentialLR", "gamma"): (0.5, 1.0, False),
}
_CHOICES: dict[str, tuple[Value, ...]] = {
    "line_search_fn": (None, "strong_wolfe"),
    "anneal_strategy": ("cos", "linear"),
    "mode": ("triangular", "triangular2", "exp_range"),
    "scale_mode": ("cycle", "iterations"),
    "threshold_mode": ("rel", "abs"),
}
_CLASS_CHOICES: dict[tuple[str, str], tuple[Value, ...]] = {
    ("ReduceLROnPlateau", "mode"): ("min", "max"),
}
_HELP = {
    "lr": "learning rate: the step size",
    "momentum": "momentum factor mu in v = mu*v + g",
    "dampening": "dampening tau in v = mu*v + (1 - tau)*g",
    "weight_decay": "L2 penalty added to the gradient (decoupled for AdamW)",
    "nesterov": "Nesterov momentum: look ahead along the velocity",
    "eps": "added to the denominator for numerical stability",
    "alpha": "smoothing constant of the squared-gradient average",
    "beta1": "decay of the first moment (mean of gradients)",
    "beta2": "decay of the second moment (mean of squared gradients)",
    "amsgrad": "use the maximum of past second moments",
    "centered": "normalise by the variance instead of the raw second moment",
    "rho": "decay of the squared-gradient and squared-update averages",
    "lr_decay": "learning-rate decay per step",
}


@dataclass(frozen=True)
class Hyperparam:
    """One editable hyperparameter of an optimizer or scheduler."""

    name: str  # name in specs, e.g. "lr" or "beta1"
    default: Value
    kind: Kind
    low: float | None = None  # allowed range (float/int)
    high: float | None = None
    log: bool = False  # a slider for it should be logarithmic
    choices: tuple[Value, ...] = ()  # for kind == "choice"
    optional: bool = False  # None is allowed (means "torch's automatic value")
    arg: str = ""  # the torch constructor argument it feeds
    index: int | None = None  # component of a tuple argument
    help: str = ""

    def validate(self, value: Any, owner: str) -> Value:
        """Return ``value`` coerced to this parameter's kind, or raise ``ValueError``."""
        if value is None and (self.optional or self.kind == "choice" and None in self.choices):
            return None
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"Invalid {self.name} for {owner}: {value!r} (must be true or false)")
        if self.kind == "choice":
            if value in self.choices:
                return value
            names = ", ".join(repr(c) for c in self.choices)
            raise ValueError(f"Invalid {self.name} for {owner}: {value!r} (choose one of {names})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"Invalid {self.name} for {owner}: {value!r} (must be a number)")
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"Invalid {self.name} for {owner}: {value!r} (must be whole)")
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value) or not self.low <= value <= self.high:
            raise ValueError(
                f"Invalid {self.name} for {owner}: {value!r} "
                f"(allowed {self.low:g} .. {self.high:g})"
            )
        return value


def _params_from_signature(cls: type, defaults: Mapping[str, Value]) -> tuple[Hyperparam, ...]:
    """Hyperparameters of ``cls`` read from its signature; ``defaults`` fills required ones."""
    out: list[Hyperparam] = []
    cname = cls.__name__
    for arg, p in inspect.signature(cls.__init__).parameters.items():
        if arg in _HIDDEN or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default
        if isinstance(default, tuple):
            names = _COMPONENTS.get(arg, tuple(f"{arg}_{i}" for i in range(len(default))))
            for i, (name, d) in enumerate(zip(names, default, strict=True)):
                out.append(_make(cname, name, defaults.get(name, d), arg=arg, index=i))
            continue
        if default is inspect.Parameter.empty and arg not in defaults:
            raise RuntimeError(f"{cname}.{arg} has no default and the catalogue gives none")
        out.append(_make(cname, arg, defaults.get(arg, default), arg=arg))
    return tuple(out)


def _make(cname: str, name: str, default: Any, arg: str, index: int | None = None) -> Hyperparam:
    help_text = _HELP.get(name, "")
    choices = _CLASS_CHOICES.get((cname, name), _CHOICES.get(name))
    if choices is not None:
        return Hyperparam(
            name, default, "choice", choices=choices, arg=arg, index=index, help=help_text
        )
    if isinstance(default, bool):
        return Hyperparam(name, default, "bool", arg=arg, index=index, help=help_text)
    low, high, log = _CLASS_RANGES.get((cname, name), _RANGES.get(name, (0.0, 1e6, False)))
    optional = default is None
    kind: Kind = "int" if isinstance(low, int) else "float"  # the range table decides
    if isinstance(default, int) and kind == "float":
        default = float(default)
    return Hyperparam(
        name, default, kind, low, high, log, optional=optional, arg=arg, index=index, help=help_text
    )


@dataclass(frozen=True)
class OptimizerInfo:
    """A catalogue entry: a real ``torch.optim`` class with preset defaults."""

    key: str
    label: str
    cls: type[torch.optim.Optimizer]
    params: tuple[Hyperparam, ...]
    elementwise: bool = True  # each coordinate is updated independently (batchable starts)
    caption: str = ""

    def param(self, name: str) -> Hyperparam:
        for p in self.params:
            if p.name == name:
                return p
        valid = ", ".join(p.name for p in self.params)
        raise ValueError(f"Unknown hyperparameter {name!r} for {self.label}; valid: {valid}")

    def defaults(self) -> dict[str, Value]:
        return {p.name: p.default for p in self.params}


def _entry(key, label, cls, caption, elementwise=True, **defaults) -> OptimizerInfo:
    return OptimizerInfo(
        key, label, cls, _params_from_signature(cls, defaults), elementwise, caption
    )


_O = torch.optim
CATALOGUE: dict[str, OptimizerInfo] = {
    o.key: o
    for o in (
        _entry("sgd", "SGD", _O.SGD, "p -= lr * g"),
        _entry("momentum", "SGD + momentum", _O.SGD, "v = mu*v + g; p -= lr * v", momentum=0.9),
        _entry(
            "nesterov",
            "Nesterov",
            _O.SGD,
            "v = mu*v + g; p -= lr * (g + mu*v)",
            momentum=0.9,
            nesterov=True,
        ),
        _entry("adagrad", "Adagrad", _O.Adagrad, "step shrinks with the sum of squared gradients"),
        _entry("adadelta", "Adadelta", _O.Adadelta, "unit-correct steps from running averages"),
        _entry("adamax", "Adamax", _O.Adamax, "Adam with an infinity-norm second moment"),
        _entry("rmsprop", "RMSprop", _O.RMSprop, "divide by a running RMS of the gradient"),
        _entry(
            "rmsprop_centered",
            "RMSprop (centered)",
            _O.RMSprop,
            "RMSprop normalised by the gradient's variance",
            centered=True,
        ),
        _entry("rprop", "Rprop", _O.Rprop, "only the gradient's sign; per-coordinate step sizes"),
        _entry("adam", "Adam", _O.Adam, "momentum + RMSprop with bias correction"),
        _entry("adamw", "AdamW", _O.AdamW, "Adam with decoupled weight decay"),
        _entry("nadam", "NAdam", _O.NAdam, "Adam with Nesterov momentum"),
        _entry("radam", "RAdam", _O.RAdam, "Adam with a rectified warm-up of the variance"),
        _entry("asgd", "ASGD", _O.ASGD, "SGD with iterate averaging"),
        # One race step is one L-BFGS iteration; the strong-Wolfe search keeps it stable. Its
        # evaluations are capped by max_eval - 1, and torch's default (max_iter*5//4 = 1 here)
        # would leave it none, so the step would never move.
        _entry(
            "lbfgs",
            "L-BFGS",
            _O.LBFGS,
            "quasi-Newton: curvature from recent steps",
            elementwise=False,
            max_iter=1,
            max_eval=25,
            line_search_fn="strong_wolfe",
        ),
    )
}


def optimizer_names() -> list[str]:
    return list(CATALOGUE)


def get_optimizer(key: str) -> OptimizerInfo:
    try:
        return CATALOGUE[key]
    except KeyError:
        raise ValueError(
            f"Unknown optimizer {key!r}; choose one of: {', '.join(CATALOGUE)}"
        ) from None


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer as plain data: a catalogue key and the hyperparameters that differ."""

    name: str = "adam"
    hyper: Mapping[str, Value] = field(default_factory=dict)

    def resolved(self) -> dict[str, Value]:
        """All hyperparameters, validated, defaults filled in; raises ``ValueError``."""
        return resolve(get_optimizer(self.name), self.hyper)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hyper": dict(self.hyper)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimizerSpec:
        return cls(name=str(d.get("name", "")), hyper=dict(d.get("hyper", {}) or {}))


def resolve(info: OptimizerInfo | SchedulerInfo, hyper: Mapping[str, Any]) -> dict[str, Value]:
    """Validate ``hyper`` against ``info`` and fill in defaults."""
    known = {p.name: p for p in info.params}
    for name in hyper:
        if name not in known:
            valid = ", ".join(known)
            raise ValueError(f"Unknown hyperparameter {name!r} for {info.label}; valid: {valid}")
    return {p.name: p.validate(hyper.get(p.name, p.default), info.label) for p in info.params}


def _torch_kwargs(info: OptimizerInfo | SchedulerInfo, values: Mapping[str, Value]) -> dict:
    kwargs: dict[str, Any] = {}
    tuples: dict[str, list[Any]] = {}
    for p in info.params:
        if p.index is None:
            kwargs[p.arg] = values[p.name]
        else:
            tuples.setdefault(p.arg, []).append(values[p.name])
    kwargs.update({k: tuple(v) for k, v in tuples.items()})
    return kwargs


def build_optimizer(
    spec: OptimizerSpec, params: Iterable[torch.Tensor], **extra: Any
) -> torch.optim.Optimizer:
    """Construct the real ``torch.optim`` optimizer described by ``spec``."""
    info = get_optimizer(spec.name)
    kwargs = _torch_kwargs(info, spec.resolved())
    kwargs.update(extra)
    try:
        return info.cls(params, **kwargs)
    except ValueError as exc:  # torch's own checks (e.g. Nesterov needs momentum)
        raise ValueError(f"{info.label}: {exc}") from None


def group_values(info: OptimizerInfo, values: Mapping[str, Value]) -> dict[str, Any]:
    """The ``param_groups`` entries for ``values`` (tuple components re-assembled)."""
    return _torch_kwargs(info, values)


# --- LR schedulers ---------------------------------------------------------------------------

_S = torch.optim.lr_scheduler


@dataclass(frozen=True)
class SchedulerInfo:
    key: str
    label: str
    cls: type
    params: tuple[Hyperparam, ...]
    caption: str = ""
    needs_metric: bool = False  # step(metric) instead of step()

    def defaults(self) -> dict[str, Value]:
        return {p.name: p.default for p in self.params}


def _sched(key, label, cls, caption, needs_metric=False, **defaults) -> SchedulerInfo:
    return SchedulerInfo(
        key, label, cls, _params_from_signature(cls, defaults), caption, needs_metric
    )


SCHEDULERS: dict[str, SchedulerInfo] = {
    s.key: s
    for s in (
        _sched(
            "step", "StepLR", _S.StepLR, "multiply lr by gamma every step_size steps", step_size=30
        ),
        _sched(
            "exponential",
            "ExponentialLR",
            _S.ExponentialLR,
            "multiply lr by gamma each step",
            gamma=0.99,
        ),
        _sched(
            "cosine",
            "CosineAnnealingLR",
            _S.CosineAnnealingLR,
            "cosine from lr down to eta_min over T_max steps",
            T_max=200,
        ),
        _sched(
            "cosine_restarts",
            "CosineAnnealingWarmRestarts",
            _S.CosineAnnealingWarmRestarts,
            "cosine decay that restarts every T_0 steps",
            T_0=50,
        ),
        _sched(
            "onecycle",
            "OneCycleLR",
            _S.OneCycleLR,
            "warm up to max_lr, then anneal far below the start",
            max_lr=0.1,
            total_steps=500,
            cycle_momentum=False,
        ),
        _sched(
            "cyclic",
            "CyclicLR",
            _S.CyclicLR,
            "bounce between base_lr and max_lr",
            base_lr=1e-3,
            max_lr=0.1,
            step_size_up=50,
            cycle_momentum=False,
        ),
        _sched(
            "linear", "LinearLR", _S.LinearLR, "scale lr linearly from start_factor to end_factor"
        ),
        _sched(
            "plateau",
            "ReduceLROnPlateau",
            _S.ReduceLROnPlateau,
            "cut lr by factor when the loss stops improving",
            needs_metric=True,
        ),
    )
}


def scheduler_names() -> list[str]:
    return list(SCHEDULERS)


def get_scheduler(key: str) -> SchedulerInfo:
    try:
        return SCHEDULERS[key]
    except KeyError:
        raise ValueError(
            f"Unknown scheduler {key!r}; choose one of: {', '.join(SCHEDULERS)}"
        ) from None


@dataclass(frozen=True)
class SchedulerSpec:
    name: str = "step"
    hyper: Mapping[str, Value] = field(default_factory=dict)

    def resolved(self) -> dict[str, Value]:
        return resolve(get_scheduler(self.name), self.hyper)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hyper": dict(self.hyper)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SchedulerSpec:
        return cls(name=str(d.get("name", "")), hyper=dict(d.get("hyper", {}) or {}))


def build_scheduler(spec: SchedulerSpec, optimizer: torch.optim.Optimizer):
    """Construct the real LR scheduler described by ``spec`` on ``optimizer``."""
    info = get_scheduler(spec.name)
    kwargs = _torch_kwargs(info, spec.resolved())
    try:
        return info.cls(optimizer, **kwargs)
    except ValueError as exc:
        raise ValueError(f"{info.label}: {exc}") from None


def parse_value(param: Hyperparam, text: str) -> Value:
    """Read a hyperparameter value from text (command line, a table cell)."""
    t = text.strip()
    if param.kind == "bool":
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"Invalid {param.name}: {text!r} (must be true or false)")
    if t.lower() == "none" and (param.optional or None in param.choices):
        return None
    if param.kind == "choice":
        return t
    try:
        number = float(t)
    except ValueError:
        raise ValueError(f"Invalid {param.name}: {text!r} (must be a number)") from None
    return int(number) if param.kind == "int" and number.is_integer() else number


__all__ = [
    "CATALOGUE",
    "SCHEDULERS",
    "Hyperparam",
    "OptimizerInfo",
    "OptimizerSpec",
    "SchedulerInfo",
    "SchedulerSpec",
    "build_optimizer",
    "build_scheduler",
    "get_optimizer",
    "get_scheduler",
    "group_values",
    "optimizer_names",
    "parse_value",
    "resolve",
    "scheduler_names",
]
