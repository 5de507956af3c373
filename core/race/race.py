"""An optimizer race: real ``torch.optim`` optimizers stepping across one 2-D surface.

All racers' positions live in one ``(R, K, 2)`` tensor (R racers, K start points). Each racer's
parameter is a leaf *view* of its row, so the real optimizers update that shared storage in
place, and one forward/backward pass of the surface over the whole tensor gives every racer's
loss and gradient at once. That is exact: a point's loss depends only on that point.

Element-wise optimizers (every catalogue entry but L-BFGS) step all K starts of a racer in one
``(K, 2)`` parameter. Racers of the same class without a scheduler share one optimizer instance,
one param group each, so torch's per-call overhead is paid once per class, not once per racer.
L-BFGS, which is not element-wise, gets one optimizer per start and a closure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from core.history import History
from core.optimizers import (
    OptimizerSpec,
    Value,
    build_optimizer,
    build_scheduler,
    get_optimizer,
    get_scheduler,
    group_values,
)
from core.race.racer import ClipMode, RacerMetrics, RacerSpec, Trajectory
from core.race.surfaces import Surface

HistoryMode = Literal["full", "path", "none"]
_HISTORY_MODES = ("full", "path", "none")
_FUSED_OK = {"SGD", "Adam", "AdamW", "Adagrad"}  # classes with a fused CPU kernel
DIVERGE_FACTOR = 100.0  # a racer leaving this many times the plot box has diverged


class Race:
    """Step several real optimizers across one surface from one or many start points.

    Parameters
    ----------
    surface:
        The loss surface.
    racers:
        Racer specs (disabled ones are kept but not stepped).
    starts:
        ``(2,)`` or ``(K, 2)`` start points; the surface's default start when omitted.
    dtype:
        float64 (exact comparisons) or float32 (large batches).
    history:
        "full" records positions, losses, gradients, learning rates and optimizer state;
        "path" only positions and losses; "none" only the current point.
    budget_bytes:
        Upper bound on the memory the history may use; older points are thinned beyond it.
    fused:
        Use torch's fused CPU kernels where a class has one (same update, fewer calls).
    """

    def __init__(
        self,
        surface: Surface,
        racers: Sequence[RacerSpec],
        starts: Any = None,
        *,
        dtype: torch.dtype = torch.float64,
        history: HistoryMode = "full",
        budget_bytes: int = 128 * 2**20,
        fused: bool = True,
    ) -> None:
        if history not in _HISTORY_MODES:
            raise ValueError(f"Invalid history: {history!r} (choose one of {_HISTORY_MODES})")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Invalid dtype: {dtype} (float32 or float64)")
        if not racers:
            raise ValueError("A race needs at least one racer")
        for spec in racers:
            spec.validate()
        self.surface = surface
        self.specs: list[RacerSpec] = list(racers)
        self.dtype = dtype
        self.history_mode: HistoryMode = history
        self.budget_bytes = int(budget_bytes)
        self.fused = fused
        self.starts = _as_starts(surface.start if starts is None else starts)  # (K, 2)
        self.reset()

    # --- set-up --------------------------------------------------------------------------

    @property
    def n_racers(self) -> int:
        return len(self.specs)

    @property
    def n_starts(self) -> int:
        return self.starts.shape[0]

    def reset(self, starts: Any = None) -> None:
        """Start again from the start points (new ones if given) with the same seeds."""
        if starts is not None:
            self.starts = _as_starts(starts)
        R, K = self.n_racers, self.n_starts
        self.step_count = 0
        self._S = torch.empty((R, K, 2), dtype=self.dtype)  # (R, K, 2) all positions
        self._S[:] = torch.as_tensor(self.starts, dtype=self.dtype)
        self._params: list[list[torch.Tensor]] = []  # per racer: [ (K,2) ] or K x [ (2,) ]
        self._optims: list[torch.optim.Optimizer] = []  # distinct instances, stepped in order
        self._racer_optims: list[list[torch.optim.Optimizer]] = []
        self._schedulers: list[Any] = []
        self._values: list[dict[str, Value]] = []
        self._gens: list[torch.Generator] = []
        shared: dict[str, torch.optim.Optimizer] = {}
        for r, spec in enumerate(self.specs):
            self._build_racer(r, spec, shared)
        # Looked up once: the hot loop touches these every step.
        self._elementwise = [get_optimizer(s.optimizer.name).elementwise for s in self.specs]
        self._groups = [
            [self._find_group(r, k) for k in range(len(self._params[r]))] for r in range(R)
        ]
        self._states = [
            [
                opt.state[p]
                for p, opt in zip(self._params[r], self._per_param_optims(r), strict=True)
            ]
            for r in range(R)
        ]
        self._enabled = np.array([s.enabled for s in self.specs])
        xmin, xmax, ymin, ymax = self.surface.bounds
        self._centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
        self._half = DIVERGE_FACTOR * np.array([(xmax - xmin) / 2, (ymax - ymin) / 2])
        self._minima = np.array([(m.x, m.y) for m in self.surface.minima]).reshape(-1, 2)
        self.diverged_at = np.full((R, K), -1, dtype=np.int64)  # (R, K)
        self.diverge_reason = np.full((R, K), "", dtype=object)  # (R, K)
        self._reached = np.full((R, K), -1, dtype=np.int64)  # first step within eps
        self.converge_eps = 1e-3
        self._last_good = self._S.clone()  # (R, K, 2)
        self._make_history()
        self._evaluate()
        self._check_divergence()
        self._record()

    def _build_racer(self, r: int, spec: RacerSpec, shared: dict) -> None:
        info = get_optimizer(spec.optimizer.name)
        values = spec.optimizer.resolved()
        self._values.append(values)
        gen = torch.Generator().manual_seed(spec.seed)
        self._gens.append(gen)
        row = self._S[r]  # (K, 2) view
        if not info.elementwise:
            params = [row[k].requires_grad_() for k in range(self.n_starts)]  # K x (2,)
            optims = [build_optimizer(spec.optimizer, [p]) for p in params]
            self._optims.extend(optims)
            self._params.append(params)
            self._racer_optims.append(optims)
            self._schedulers.append(
                [build_scheduler(spec.scheduler, o) for o in optims] if spec.scheduler else None
            )
            return
        p = row.requires_grad_()  # (K, 2) leaf view of the shared storage
        self._params.append([p])
        extra = {"fused": True} if self.fused and info.cls.__name__ in _FUSED_OK else {}
        if spec.scheduler is None:
            key = f"{info.cls.__name__}:{bool(extra)}"
            group = {"params": [p], **group_values(info, values)}
            if key in shared:
                shared[key].add_param_group(group)
            else:
                shared[key] = info.cls([group], **extra)
                self._optims.append(shared[key])
            self._racer_optims.append([shared[key]])
            self._schedulers.append(None)
        else:
            opt = build_optimizer(spec.optimizer, [p], **extra)
            self._optims.append(opt)
            self._racer_optims.append([opt])
            self._schedulers.append([build_scheduler(spec.scheduler, opt)])

    def _per_param_optims(self, r: int) -> list[torch.optim.Optimizer]:
        optims = self._racer_optims[r]
        return optims if len(optims) == len(self._params[r]) else optims * len(self._params[r])

    def _group(self, r: int, k: int = 0) -> dict:
        """The param group that holds racer ``r`` (start ``k`` for L-BFGS)."""
        return self._groups[r][k]

    def _find_group(self, r: int, k: int) -> dict:
        params = self._params[r]
        p = params[k] if len(params) > 1 else params[0]
        for opt in self._racer_optims[r]:
            for g in opt.param_groups:
                if any(q is p for q in g["params"]):
                    return g
        raise RuntimeError(f"racer {r} has no param group")  # a bug, not a user error

    def _state(self, r: int, k: int = 0) -> dict:
        """The optimizer's own state dict for racer ``r`` (start ``k`` for L-BFGS)."""
        return self._states[r][k]

    def optimizer_state(self, r: int, k: int = 0) -> dict[str, np.ndarray]:
        """Racer ``r``'s ``torch.optim`` state at start ``k``, as float64 numpy copies:
        ``(2,)`` arrays for per-coordinate entries (``exp_avg``, ``momentum_buffer``, ...),
        0-d arrays for scalars (``step``). Empty before the first step. Non-tensor entries
        (L-BFGS's counters) are left out."""
        elementwise = self._elementwise[r]
        state = self._states[r][0 if elementwise else k]
        out: dict[str, np.ndarray] = {}
        for name, v in state.items():
            if not torch.is_tensor(v):
                continue
            a = v.detach().to(torch.float64).numpy().copy()
            out[name] = a[k] if elementwise and a.ndim == 2 else a  # (K, 2) -> (2,)
        return out

    def _state_fields(self, r: int) -> dict[str, tuple[int, ...]]:
        """Names and record shapes of racer ``r``'s optimizer state, from a dry run."""
        spec = self.specs[r]
        probe = torch.zeros(2, dtype=self.dtype, requires_grad=True)
        opt = build_optimizer(spec.optimizer, [probe])
        probe.grad = torch.ones_like(probe)
        if get_optimizer(spec.optimizer.name).elementwise:
            opt.step()
        else:
            opt.step(lambda: probe.sum())
        K = self.n_starts
        out = {}
        for name, v in opt.state[probe].items():
            if torch.is_tensor(v) and v.shape == probe.shape:
                out[name] = (K, 2)
            elif torch.is_tensor(v) and v.numel() == 1 or isinstance(v, int | float):
                out[name] = (K,)
        return out

    def _make_history(self) -> None:
        R, K = self.n_racers, self.n_starts
        shapes: dict[str, tuple[int, ...]] = {"pos": (R, K, 2), "loss": (R, K)}
        if self.history_mode == "full":
            shapes.update({"grad": (R, K, 2), "used": (R, K, 2), "lr": (R,)})
            for r in range(R):
                for name, shape in self._state_fields(r).items():
                    shapes[f"state{r}:{name}"] = shape
        budget = self.budget_bytes if self.history_mode != "none" else 0
        self.history = History(shapes, budget_bytes=budget, max_points=200_000)
        self._state_slots = [  # (racer, state name, history field)
            (int(n[5:].split(":")[0]), n.split(":", 1)[1], arr)
            for n, arr in self.history.fields.items()
            if n.startswith("state")
        ]

    # --- stepping ------------------------------------------------------------------------

    def active(self) -> np.ndarray:
        """(R,) racers that still move: enabled and not diverged at every start."""
        return self._enabled & (self.diverged_at < 0).any(axis=1)

    def step(self, n: int = 1) -> None:
        """Advance every enabled, non-diverged racer ``n`` steps."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"Invalid number of steps: {n!r}")
        for _ in range(n):
            self._step_once()

    def _step_once(self) -> None:
        active = self.active()
        used = self._G.clone() if self.history_mode == "full" else self._G  # (R, K, 2)
        for r in range(self.n_racers):
            if active[r] and self._elementwise[r]:
                g = used[r]  # (K, 2)
                self._process_grad(r, g)
                self._params[r][0].grad = g
            else:
                for p in self._params[r]:
                    p.grad = None  # an optimizer skips parameters without a gradient
        lbfgs_used: dict[int, torch.Tensor] = {}
        for opt in self._optims:
            if isinstance(opt, torch.optim.LBFGS):
                continue
            opt.step()
        for r in range(self.n_racers):
            if active[r] and not self._elementwise[r]:
                lbfgs_used[r] = self._step_lbfgs(r)
        if self.history_mode == "full":
            for r, g in lbfgs_used.items():
                used[r] = g
            self.history.update_last(used=used.numpy(), lr=self._lrs())
            self._snap["used"] = used.numpy().copy()
        self.step_count += 1
        if not active.all() or (self.diverged_at >= 0).any():
            with torch.no_grad():
                self._hold_inactive(active)
        self._evaluate()
        self._step_schedulers(active)
        self._check_divergence()
        self._record()

    def _process_grad(self, r: int, g: torch.Tensor) -> None:
        """Noise, then clipping, in place on racer ``r``'s gradient ``g`` ((K, 2) or (2,))."""
        spec = self.specs[r]
        if spec.noise > 0:
            g.add_(torch.randn(g.shape, generator=self._gens[r], dtype=g.dtype), alpha=spec.noise)
        if spec.clip == "norm":
            # the formula of torch.nn.utils.clip_grad_norm_, per start point
            norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)  # (K, 1)
            g.mul_(torch.clamp(spec.clip_value / (norm + 1e-6), max=1.0))
        elif spec.clip == "value":
            g.clamp_(-spec.clip_value, spec.clip_value)

    def _step_lbfgs(self, r: int) -> torch.Tensor:
        """One L-BFGS iteration per start of racer ``r``; returns the gradients it first saw."""
        first = torch.zeros((self.n_starts, 2), dtype=self.dtype)  # (K, 2)
        for k, (p, opt) in enumerate(zip(self._params[r], self._racer_optims[r], strict=True)):
            if self.diverged_at[r, k] >= 0:
                continue
            calls = [0]

            def closure(p=p, k=k, calls=calls):
                loss = self.surface.fn(p[0], p[1])
                if loss.requires_grad:
                    (g,) = torch.autograd.grad(loss, p)
                else:
                    g = torch.zeros_like(p)
                self._process_grad(r, g)
                if calls[0] == 0:
                    first[k] = g
                calls[0] += 1
                p.grad = g
                return loss.detach()

            opt.step(closure)
        return first

    def _hold_inactive(self, active: np.ndarray) -> None:
        """Put diverged or disabled points back where they stopped."""
        frozen = torch.from_numpy(self.diverged_at >= 0)  # (R, K)
        frozen |= torch.from_numpy(~active)[:, None]
        if bool(frozen.any()):
            self._S[frozen] = self._last_good[frozen]

    def _evaluate(self) -> None:
        """Loss and gradient of every point in one forward/backward pass."""
        X = self._S.detach().requires_grad_()  # (R, K, 2), aliases the positions
        with torch.enable_grad():
            L = self.surface.fn(X[..., 0], X[..., 1])  # (R, K)
            if L.requires_grad:
                (G,) = torch.autograd.grad(L.sum(), X)  # (R, K, 2)
            else:  # a constant formula
                G = torch.zeros_like(X)
        self._L = L.detach()
        self._G = G

    def _step_schedulers(self, active: np.ndarray) -> None:
        for r, scheds in enumerate(self._schedulers):
            if not scheds or not active[r]:
                continue
            info = get_scheduler(self.specs[r].scheduler.name)
            for k, sched in enumerate(scheds):
                if info.needs_metric:
                    loss = self._L[r] if len(scheds) == 1 else self._L[r, k : k + 1]
                    finite = loss[torch.isfinite(loss)]
                    if finite.numel():
                        sched.step(float(finite.mean()))
                elif not _schedule_finished(sched):
                    sched.step()

    def _check_divergence(self) -> None:
        # numpy on zero-copy views: a handful of tiny torch ops would cost more than the step
        pos, loss = self._S.numpy(), self._L.numpy()  # (R, K, 2), (R, K)
        inside = (np.abs(pos - self._centre) <= self._half).all(axis=-1)  # False for nan
        bad = ~(inside & np.isfinite(loss)) & (self.diverged_at < 0)
        if bad.any():
            reasons = np.where(
                ~np.isfinite(pos).all(axis=-1),
                "position became non-finite",
                np.where(
                    ~inside, f"left {DIVERGE_FACTOR:g}x the plot bounds", "loss became non-finite"
                ),
            )
            self.diverged_at[bad] = self.step_count
            self.diverge_reason[bad] = reasons[bad]
            mask = torch.from_numpy(bad)
            with torch.no_grad():
                self._S[mask] = self._last_good[mask]
            self._evaluate()
        if (self.diverged_at < 0).all():
            self._last_good.copy_(self._S)
        else:
            ok = torch.from_numpy(self.diverged_at < 0)
            self._last_good[ok] = self._S[ok]

    def _lrs(self) -> np.ndarray:
        return np.array([self._group(r)["lr"] for r in range(self.n_racers)], dtype=np.float64)

    def _record(self) -> None:
        self._update_convergence()
        h = self.history
        pos, loss = self._S.numpy(), self._L.numpy()
        if self.history_mode == "none":
            h.count = 0  # keep only the newest point
            h.append(self.step_count, pos=pos, loss=loss)
            return
        if self.history_mode == "path":
            h.append(self.step_count, pos=pos, loss=loss)
            return
        row = h.append(self.step_count, pos=pos, loss=loss, grad=self._G.numpy(), lr=self._lrs())
        for r, name, arr in self._state_slots:
            self._write_state(r, name, arr[row])
        # The last two points in full, whatever the history keeps, to explain the last step.
        self._snap_prev = getattr(self, "_snap", None) if self.step_count else None
        self._snap = {name: arr[row].copy() for name, arr in h.fields.items()}
        self._snap["step"] = self.step_count

    def _state_names(self, r: int) -> list[str]:
        return [name for q, name, _ in self._state_slots if q == r]

    def _write_state(self, r: int, name: str, out: np.ndarray) -> None:
        """Racer ``r``'s state entry ``name`` into ``out`` ((K, 2) or (K,)); nan where absent."""
        states = self._states[r]
        if len(states) == 1:
            out[...] = _as_numpy(states[0].get(name))
            return
        for k, state in enumerate(states):
            out[k] = _as_numpy(state.get(name))

    def _update_convergence(self) -> None:
        waiting = self._reached < 0
        if not len(self._minima) or not waiting.any():
            return
        d2 = self._sq_distances()  # (R, K)
        newly = (d2 <= self.converge_eps**2) & waiting
        self._reached[newly] = self.step_count

    def _sq_distances(self) -> np.ndarray:
        """(R, K) squared distance of each point to its nearest known minimum."""
        if not len(self._minima):
            return np.full((self.n_racers, self.n_starts), np.inf)
        pos = self._S.numpy()  # (R, K, 2)
        d2 = np.full(pos.shape[:2], np.inf)
        for mx, my in self._minima:  # M is small; avoids an (R, K, M, 2) temporary
            np.minimum(d2, (pos[..., 0] - mx) ** 2 + (pos[..., 1] - my) ** 2, out=d2)
        return d2

    # --- live changes --------------------------------------------------------------------

    def set_hyper(self, r: int, name: str, value: Value) -> None:
        """Change one hyperparameter of racer ``r`` mid-race (applied to its param group)."""
        spec = self.specs[r]
        info = get_optimizer(spec.optimizer.name)
        new_opt = OptimizerSpec(spec.optimizer.name, {**spec.optimizer.hyper, name: value})
        new_spec = dataclasses.replace(spec, optimizer=new_opt)
        new_spec.validate()
        values = new_opt.resolved()
        torch_values = group_values(info, values)
        old_lr = self._values[r]["lr"]
        for k in range(len(self._params[r])):
            group = self._group(r, k)
            for key, v in torch_values.items():
                if key == "lr":
                    continue
                group[key] = v
            if values["lr"] != old_lr:
                self._set_lr(r, k, group, float(values["lr"]), float(old_lr))
        self.specs[r] = new_spec
        self._values[r] = values

    def _set_lr(self, r: int, k: int, group: dict, new: float, old: float) -> None:
        scheds = self._schedulers[r]
        if not scheds:
            group["lr"] = new
            return
        # Keep the schedule's progress: rescale it to the new base learning rate.
        sched = scheds[k]
        ratio = new / old
        group["lr"] = group["lr"] * ratio
        if "initial_lr" in group:
            group["initial_lr"] = new
        if hasattr(sched, "base_lrs"):
            sched.base_lrs = [b * ratio for b in sched.base_lrs]

    def set_options(self, r: int, **changes: Any) -> None:
        """Change clip, clip_value, noise, seed, name, color or enabled of racer ``r`` live."""
        allowed = {"clip", "clip_value", "noise", "seed", "name", "color", "enabled"}
        bad = set(changes) - allowed
        if bad:
            raise ValueError(f"Cannot change {', '.join(sorted(bad))} live; allowed: {allowed}")
        new_spec = dataclasses.replace(self.specs[r], **changes)
        new_spec.validate()
        self.specs[r] = new_spec
        self._enabled[r] = new_spec.enabled
        if "seed" in changes:
            self._gens[r].manual_seed(new_spec.seed)

    # --- reading the results -------------------------------------------------------------

    @property
    def positions(self) -> np.ndarray:
        """(R, K, 2) current positions (a copy)."""
        return self._S.numpy().copy()

    @property
    def losses(self) -> np.ndarray:
        """(R, K) current losses (a copy)."""
        return self._L.numpy().copy()

    def lr(self, r: int) -> float:
        return float(self._group(r)["lr"])

    def values(self, r: int) -> dict[str, Value]:
        """The resolved hyperparameters racer ``r`` currently uses."""
        return dict(self._values[r])

    def trajectory(self, r: int, k: int = 0) -> Trajectory:
        h = self.history
        full = self.history_mode == "full"
        return Trajectory(
            steps=h.recorded_steps().copy(),
            pos=h.get("pos")[:, r, k].copy(),
            loss=h.get("loss")[:, r, k].copy(),
            grad=h.get("grad")[:, r, k].copy() if full else None,
            used_grad=h.get("used")[:, r, k].copy() if full else None,
            lr=h.get("lr")[:, r].copy() if full else None,
            state={n: h.get(f"state{r}:{n}")[:, k].copy() for n in self._state_names(r)},
            diverged_at=int(self.diverged_at[r, k]),
            diverge_reason=str(self.diverge_reason[r, k]),
        )

    def last_step(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The full records of the points before and after the last step (history "full")."""
        prev = getattr(self, "_snap_prev", None)
        if prev is None or self.history_mode != "full":
            return None
        return prev, self._snap

    def metrics(self, r: int, eps: float | None = None) -> RacerMetrics:
        """Figures for racer ``r``; ``eps`` changes the convergence radius from now on."""
        if eps is not None:
            self.converge_eps = float(eps)
        d = np.sqrt(self._sq_distances()[r])
        nearest = np.full(self.n_starts, -1)
        if len(self._minima):
            pos = self._S.numpy()[r]
            nearest = np.linalg.norm(pos[:, None, :] - self._minima, axis=-1).argmin(axis=-1)
        return RacerMetrics(
            final_loss=self._L.numpy()[r].copy(),
            final_distance=d,
            nearest_minimum=nearest,
            steps_to_converge=self._reached[r].copy(),
            diverged_at=self.diverged_at[r].copy(),
        )


def _as_numpy(v: Any) -> Any:
    if v is None:
        return np.nan
    return v.detach().numpy() if torch.is_tensor(v) else float(v)


def _schedule_finished(sched: Any) -> bool:
    total = getattr(sched, "total_steps", None)  # OneCycleLR refuses to step past its end
    return total is not None and sched.last_epoch + 1 > total


def _as_starts(starts: Any) -> np.ndarray:
    arr = np.asarray(starts, dtype=np.float64)
    if arr.shape == (2,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"Invalid start points: shape {arr.shape} (need (2,) or (K, 2))")
    if not np.isfinite(arr).all():
        raise ValueError("Invalid start points: they must be finite numbers")
    return arr


__all__ = ["ClipMode", "Race", "RacerMetrics", "RacerSpec", "Trajectory"]
