"""The Race workspace's model: one :class:`core.race.race.Race` and the timer that drives it.

Every view follows this object through its signals; none of them owns race state. The race
owns the one list of racer specs: :attr:`RaceController.specs` reads it, and every change goes
through the race (a live edit) or builds a new race from a new list (a structural change), so
the controller and the race can never disagree about a racer.
"""

from __future__ import annotations

import dataclasses
import re

from PySide6 import QtCore

from app.colors import PALETTE
from core.optimizers import OptimizerSpec, SchedulerSpec, get_optimizer
from core.race.race import Race, RacerSpec
from core.race.session import RaceSession, SurfaceChoice
from core.race.surfaces import Surface

FRAME_MS = 16  # about 60 frames a second
MAX_RACERS = 10


def names_optimizer(name: str, key: str) -> bool:
    """Whether a racer's ``name`` mentions its optimizer ``key`` or that optimizer's label, as
    a word ("SGD lr 0.09" for sgd, "Momentum" for momentum)."""
    words = {key, get_optimizer(key).label}
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", name, re.I) for w in words)


class RaceController(QtCore.QObject):
    """Holds the race setup, rebuilds the race when needed, steps it on a timer."""

    surfaceChanged = QtCore.Signal()  # new surface (and so a reset race)
    racersChanged = QtCore.Signal()  # the list changed: added, removed, retyped, a session
    racerChanged = QtCore.Signal(int)  # one racer edited live (hyperparameter, name, colour...)
    raceReset = QtCore.Signal()  # back to step 0
    stepped = QtCore.Signal()  # the race advanced
    playingChanged = QtCore.Signal(bool)
    message = QtCore.Signal(str)  # something the status bar should say

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.choice = SurfaceChoice("rosenbrock")
        self.surface: Surface = self.choice.build()
        self.start = self.surface.start
        specs = [
            RacerSpec(OptimizerSpec("sgd", {"lr": 1e-3}), name="SGD", color=PALETTE[2]),
            RacerSpec(OptimizerSpec("momentum", {"lr": 2e-4}), name="Momentum", color=PALETTE[0]),
            RacerSpec(OptimizerSpec("adam", {"lr": 0.05}), name="Adam", color=PALETTE[1]),
        ]
        self.speed = 1  # steps per frame
        self.max_steps = 2000
        self.caption = self.surface.caption
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self._tick)
        self.race = Race(self.surface, specs, starts=self.start)

    # --- building --------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[RacerSpec, ...]:
        """The racers, read from the race (their one owner); change them through the methods."""
        return tuple(self.race.specs)

    def _rebuild(self, specs: list[RacerSpec], why: str = "") -> None:
        """A new race from ``specs`` (validated first: nothing changes if one is invalid)."""
        self.race = Race(self.surface, specs, starts=self.start)
        self.racersChanged.emit()
        self.raceReset.emit()
        if why:
            self.message.emit(why)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    # --- transport -------------------------------------------------------------------------

    def play(self) -> None:
        if not self.playing:
            if self.race.step_count >= self.max_steps:
                self.message.emit(
                    f"The race is at its {self.max_steps}-step limit: reset or raise the limit"
                )
                return
            self.timer.start()
            self.playingChanged.emit(True)

    def pause(self) -> None:
        if self.playing:
            self.timer.stop()
            self.playingChanged.emit(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def step(self, n: int = 1) -> None:
        self.race.step(n)
        self.stepped.emit()

    def reset(self) -> None:
        self.race.reset()
        self.raceReset.emit()

    def _tick(self) -> None:
        left = self.max_steps - self.race.step_count
        self.race.step(max(0, min(self.speed, left)))
        self.stepped.emit()
        if self.race.step_count >= self.max_steps:
            self.pause()
            self.message.emit(f"Stopped at the {self.max_steps}-step limit")
        elif not self.race.active().any():
            self.pause()
            self.message.emit("Every racer has diverged or is disabled")

    # --- changes ---------------------------------------------------------------------------

    def set_surface(self, choice: SurfaceChoice) -> None:
        """Switch surface; raises ``ValueError`` (e.g. FormulaError) and changes nothing then."""
        surface = choice.build()
        self.choice, self.surface = choice, surface
        self.start = surface.start
        self.caption = surface.caption
        self.race = Race(surface, self.race.specs, starts=self.start)
        self.surfaceChanged.emit()
        self.raceReset.emit()

    def set_start(self, x: float, y: float) -> None:
        self.start = (float(x), float(y))
        self.race.reset(starts=self.start)
        self.raceReset.emit()

    def set_hyper(self, r: int, name: str, value) -> None:
        """Live: applied to the racer's param group mid-race. ``ValueError`` if invalid."""
        self.race.set_hyper(r, name, value)
        self.racerChanged.emit(r)

    def set_options(self, r: int, **changes) -> None:
        """Live: clipping, noise, seed, name, colour, enabled."""
        self.race.set_options(r, **changes)
        self.racerChanged.emit(r)

    def set_optimizer(self, r: int, name: str) -> None:
        """A different optimizer class: the race restarts (racers share one tensor)."""
        old = self.specs[r]
        keep = {"lr": old.optimizer.hyper.get("lr")} if "lr" in old.optimizer.hyper else {}
        # a name that says the old optimizer ("SGD", "Momentum 0.9") would now mislabel the
        # racer: it goes, and the new optimizer's label shows; other names ("lr 0.06") stay
        rename = {"name": ""} if names_optimizer(old.name, old.optimizer.name) else {}
        spec = dataclasses.replace(old, optimizer=OptimizerSpec(name, keep), **rename)
        try:
            spec.validate()
        except ValueError:
            spec = dataclasses.replace(old, optimizer=OptimizerSpec(name), **rename)
        specs = list(self.specs)
        specs[r] = spec
        self._rebuild(specs, "Race restarted: a racer changed optimizer")

    def set_scheduler(self, r: int, scheduler: SchedulerSpec | None) -> None:
        spec = dataclasses.replace(self.specs[r], scheduler=scheduler)
        specs = list(self.specs)
        specs[r] = spec
        self._rebuild(specs, "Race restarted: a racer's schedule changed")

    def add_racer(self, name: str = "adam") -> None:
        if len(self.specs) >= MAX_RACERS:
            self.message.emit(f"At most {MAX_RACERS} racers")
            return
        used = {s.color for s in self.specs}
        colour = next((c for c in PALETTE if c not in used), PALETTE[len(self.specs) % 10])
        self._rebuild(
            [*self.specs, RacerSpec(OptimizerSpec(name), color=colour)],
            "Race restarted with a new racer",
        )

    def remove_racer(self, r: int) -> None:
        if len(self.specs) <= 1:
            self.message.emit("A race needs at least one racer")
            return
        specs = list(self.specs)
        del specs[r]
        self._rebuild(specs, "Race restarted without that racer")

    def move_racer(self, r: int, to: int) -> None:
        """Put racer ``r`` at position ``to`` (the order of the table and the legend)."""
        if not (0 <= r < len(self.specs) and 0 <= to < len(self.specs)) or r == to:
            return
        specs = list(self.specs)
        specs.insert(to, specs.pop(r))
        self._rebuild(specs, "Race restarted: racers reordered")

    # --- sessions --------------------------------------------------------------------------

    def session(self) -> RaceSession:
        return RaceSession(
            self.choice,
            self.start,
            tuple(self.specs),
            self.speed,
            self.race.step_count,
            self.caption,
            "",
        )

    def apply_session(self, session: RaceSession) -> None:
        """Load a validated session (its steps are replayed). Nothing changes if it fails."""
        if len(session.racers) > MAX_RACERS:  # the table, colours and legend are made for 10
            raise ValueError(
                f"this session has {len(session.racers)} racers; the Race shows at most "
                f"{MAX_RACERS} (the command line races any number)"
            )
        surface = session.surface.build()
        start = session.start or surface.start
        race = Race(surface, session.racers, starts=start)
        race.step(min(session.steps, self.max_steps))
        self.pause()
        self.choice, self.surface, self.start = session.surface, surface, start
        self.speed = session.speed
        self.caption = session.caption or surface.caption
        self.race = race
        self.surfaceChanged.emit()
        self.racersChanged.emit()
        self.raceReset.emit()
        self.stepped.emit()

    def colours(self) -> list[str]:
        return [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(self.specs)]
