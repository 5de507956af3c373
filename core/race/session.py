"""A race setup as JSON: the surface, the start point, the racers and the speed.

Sessions are plain JSON (never pickle); a file that is not one, or that names an unknown
surface or an invalid racer, raises :class:`SessionError` with the reason, and nothing else
changes. Presets are sessions with a one-line caption, shipped inside this package
(``core/race/presets``) and found with :mod:`importlib.resources`, so an installed wheel has them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from core import fileio
from core.race.formula import FormulaError, formula_surface
from core.race.race import RacerSpec
from core.race.surfaces import CATALOGUE, Surface, get_surface

SESSION_FORMAT = "losslab-race-session-1"
# package data: a real folder for a wheel, an editable install and a checkout alike
PRESET_DIR = Path(str(resources.files("core.race") / "presets"))
MAX_SPEED = 500


class SessionError(ValueError):
    """A session or preset that cannot be used; the message says why."""


@dataclass(frozen=True)
class SurfaceChoice:
    """A catalogue surface by key, or a formula with its plot bounds."""

    key: str = "rosenbrock"
    formula: str = ""
    bounds: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0)

    def build(self) -> Surface:
        if self.key == "formula":
            return formula_surface(self.formula, self.bounds)
        return get_surface(self.key)

    def to_dict(self) -> dict[str, Any]:
        if self.key == "formula":
            return {"key": "formula", "formula": self.formula, "bounds": list(self.bounds)}
        return {"key": self.key}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SurfaceChoice:
        key = str(d.get("key", ""))
        if key == "formula":
            bounds = d.get("bounds", (-3, 3, -3, 3))
            if not isinstance(bounds, list | tuple) or len(bounds) != 4:
                raise SessionError("formula bounds must be [xmin, xmax, ymin, ymax]")
            return cls("formula", str(d.get("formula", "")), tuple(float(b) for b in bounds))
        if key not in CATALOGUE:
            raise SessionError(f"unknown surface {key!r}; known: {', '.join(CATALOGUE)}")
        return cls(key)


@dataclass(frozen=True)
class RaceSession:
    surface: SurfaceChoice = field(default_factory=SurfaceChoice)
    start: tuple[float, float] | None = None  # None: the surface's default start
    racers: tuple[RacerSpec, ...] = ()
    speed: int = 1  # steps per animation frame
    steps: int = 0  # how far the race had run (replayed on open)
    caption: str = ""
    name: str = ""
    sweep: tuple[str, ...] = ()  # two "NAME=LOW:HIGH[:log]" axes a sweep map opens with

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SESSION_FORMAT,
            "name": self.name,
            "caption": self.caption,
            "surface": self.surface.to_dict(),
            "start": list(self.start) if self.start is not None else None,
            "racers": [r.to_dict() for r in self.racers],
            "speed": self.speed,
            "steps": self.steps,
            **({"sweep": list(self.sweep)} if self.sweep else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> RaceSession:
        """Validate and build; :class:`SessionError` names the problem."""
        if not isinstance(d, Mapping) or d.get("format") != SESSION_FORMAT:
            raise SessionError("not a LossLab race session")
        try:
            surface = SurfaceChoice.from_dict(d.get("surface") or {})
            built = surface.build()
            start = d.get("start")
            if start is not None:
                if not isinstance(start, list | tuple) or len(start) != 2:
                    raise SessionError("start must be [x, y]")
                start = (float(start[0]), float(start[1]))
                if not all(math.isfinite(v) for v in start):
                    raise SessionError("start must be finite")
            racers = d.get("racers")
            if not isinstance(racers, list) or not racers:
                raise SessionError("a session needs a non-empty list of racers")
            specs = tuple(RacerSpec.from_dict(r) for r in racers)
            speed = d.get("speed", 1)
            steps = d.get("steps", 0)
            for name, value, high in (("speed", speed, MAX_SPEED), ("steps", steps, 10**7)):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                    raise SessionError(f"{name} must be a whole number 0 .. {high}")
            sweep = d.get("sweep") or ()
            if sweep:
                sweep = _check_sweep(sweep, specs[0])
        except FormulaError as exc:
            raise SessionError(f"formula: {exc}") from None
        except SessionError:
            raise
        except (ValueError, TypeError) as exc:
            raise SessionError(str(exc)) from None
        del built
        return cls(
            surface,
            start,
            specs,
            max(1, speed),
            steps,
            str(d.get("caption", "")),
            str(d.get("name", "")),
            sweep,
        )


def _check_sweep(sweep: Any, racer: RacerSpec) -> tuple[str, ...]:
    """Two axis texts that the first racer can be swept over; SessionError naming the fault."""
    from core.race.sweep import parse_axis, validate_sweep

    if not isinstance(sweep, list | tuple) or len(sweep) != 2:
        raise SessionError('sweep must be two axes, e.g. ["lr=1e-3:1:log", "beta1=0:0.99"]')
    x, y = (parse_axis(str(t)) for t in sweep)
    validate_sweep(racer, x, y)
    return (x.text(), y.text())


def save_session(path: str | os.PathLike, session: RaceSession) -> None:
    """Write atomically (temp file, then rename); ``OSError`` with a readable message."""
    fileio.atomic_write(path, json.dumps(session.to_dict(), indent=1).encode("utf-8"))


def load_session(path: str | os.PathLike) -> RaceSession:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SessionError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SessionError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(
            f"{Path(path).name} is not JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    except RecursionError:  # "[[[[..." thousands deep: json's decoder recurses per level
        raise SessionError(f"{Path(path).name} is not a session: nested too deeply") from None
    return RaceSession.from_dict(data)


def preset_names() -> list[str]:
    """The shipped presets' names (file stems); empty when the folder is missing: see
    :func:`preset_problems` for why."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def preset_problems() -> list[str]:
    """What is wrong with the shipped presets, one message per missing or damaged file (empty
    when all is well): a damaged install says which file, instead of an empty menu."""
    if not PRESET_DIR.is_dir():
        return [f"the presets folder is missing: {PRESET_DIR}"]
    names = preset_names()
    if not names:
        return [f"the presets folder holds no preset (*.json): {PRESET_DIR}"]
    out = []
    for name in names:
        try:
            load_preset(name)
        except SessionError as exc:
            out.append(f"preset {PRESET_DIR / (name + '.json')} is damaged: {exc}")
    return out


def load_preset(name: str) -> RaceSession:
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise SessionError(f"unknown preset {name!r}; known: {', '.join(preset_names())}")
    return load_session(path)


__all__ = [
    "PRESET_DIR",
    "RaceSession",
    "SessionError",
    "SurfaceChoice",
    "load_preset",
    "load_session",
    "preset_names",
    "preset_problems",
    "save_session",
]
