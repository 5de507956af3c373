"""A training run as a record: built from :mod:`core.train.training` events, saved as JSON.

The JSON holds the config, the per-step and per-epoch curves and the final metrics; the
parameter snapshots (large for LeNet) go to a sibling ``.npz`` that the JSON names. Both are
written atomically and read back without pickle.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__, fileio
from core.train.training import (
    Checkpoint,
    Divergence,
    Epoch,
    Event,
    Finished,
    Started,
    Step,
    TrainConfig,
)

RUN_FORMAT = "losslab-run-1"
RUNS_FORMAT = "losslab-runs-1"  # several runs' curves in one file
RUNS_ENV = "LOSSLAB_RUNS_DIR"


class RunFileError(ValueError):
    """A run file that cannot be read or is not a LossLab run."""


@dataclass
class RunRecord:
    """Everything one run produced, in plain lists."""

    config: dict[str, Any]
    name: str = ""
    started: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, list] = field(
        default_factory=lambda: {"step": [], "epoch": [], "loss": [], "lr": [], "grad_norm": []}
    )
    epochs: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    finished: dict[str, Any] = field(default_factory=dict)
    snapshot_steps: np.ndarray | None = None
    snapshots: np.ndarray | None = None
    # why the recorded trajectory could not be read ("" when it was, or the run kept none):
    # such a run still opens, as its end point alone
    trajectory_problem: str = ""

    @classmethod
    def for_config(cls, config: TrainConfig, name: str = "") -> RunRecord:
        c = config.resolved()
        return cls(
            config=c.to_dict(), name=name or (Path(c.model_file).stem if c.model_file else c.task)
        )

    def add(self, event: Event) -> None:
        if isinstance(event, Step):
            for key in self.steps:
                self.steps[key].append(getattr(event, key))
        elif isinstance(event, Epoch):
            row = {
                "epoch": event.epoch,
                "step": event.step,
                "train_loss": event.train_loss,
                "val_loss": event.val_loss,
                "val_accuracy": event.val_accuracy,
                "seconds": event.seconds,
            }
            for key, value in event.details.items():
                if key not in ("confusion", "samples"):
                    row[key] = value
            if "confusion" in event.details:
                row["confusion"] = np.asarray(event.details["confusion"]).tolist()
            self.epochs.append(row)
        elif isinstance(event, Started):
            self.started = {
                "label": event.label,
                "dataset": event.dataset,
                "source": event.source,
                "device": event.device,
                "n_params": event.n_params,
                "epochs": event.epochs,
                "steps_per_epoch": event.steps_per_epoch,
                "n_train": event.n_train,
                "start_epoch": event.start_epoch,
                "hyper": dict(event.hyper),  # what the optimizer really used (after a resume)
            }
            if event.model_file:  # the user's own file, and its sha256 as it was trained
                self.started.update(model_file=event.model_file, model_digest=event.model_digest)
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(
                {"path": event.path, "epoch": event.epoch, "val_loss": event.val_loss}
            )
        elif isinstance(event, Finished):
            self.finished = {
                "status": event.status,
                "epochs": event.epochs,
                "steps": event.steps,
                "best_epoch": event.best_epoch,
                "best_val_loss": event.best_val_loss,
                "final": event.final,
                "message": event.message,
                "divergence": asdict(event.divergence) if event.divergence else None,
            }
            self.snapshot_steps = event.snapshot_steps
            self.snapshots = event.snapshots

    @property
    def divergence(self) -> Divergence | None:
        """Where and why the run diverged (``finished["divergence"]``), else None."""
        d = self.finished.get("divergence")
        return Divergence(**d) if d else None

    def to_json(self, trajectory_file: str | None = None) -> dict[str, Any]:
        return _finite(
            {
                "format": RUN_FORMAT,
                "losslab": __version__,
                "name": self.name,
                "config": self.config,
                "started": self.started,
                "steps": self.steps,
                "epochs": self.epochs,
                "checkpoints": self.checkpoints,
                "finished": self.finished,
                "trajectory": trajectory_file,
            }
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (JSON) and, when there are snapshots, ``<stem>.trajectory.npz``."""
        target = Path(path)
        traj_name = None
        if self.snapshots is not None:
            traj_name = f"{target.stem}.trajectory.npz"
            fileio.atomic_write(
                target.parent / traj_name,
                # uncompressed: float weights hardly compress, and zlib took ~1 s for LeNet
                lambda f: np.savez(f, steps=self.snapshot_steps, params=self.snapshots),
            )
        text = json.dumps(self.to_json(traj_name), indent=1)
        fileio.atomic_write(target, text.encode())
        return target

    @classmethod
    def from_json(cls, data: Any, where: str = "run") -> RunRecord:
        """The record of :meth:`to_json` (curves only: snapshots live in the .npz)."""
        try:
            rec = cls(
                config=dict(data["config"]),
                name=str(data.get("name", "")),
                started=dict(data.get("started") or {}),
                steps={k: list(v) for k, v in dict(data["steps"]).items()},
                epochs=[dict(r) for r in data["epochs"]],
                checkpoints=[dict(r) for r in data.get("checkpoints", [])],
                finished=dict(data.get("finished") or {}),
            )
            TrainConfig.from_dict(rec.config)
            if "reason" in rec.finished:  # files from before "status" (and "divergence")
                rec.finished.setdefault("status", rec.finished.pop("reason"))
            d = rec.finished.get("divergence")
            if d is not None:
                d = Divergence(int(d["step"]), int(d["epoch"]), str(d["reason"]), str(d["advice"]))
                rec.finished["divergence"] = asdict(d)
            lengths = {len(v) for v in rec.steps.values()}
            if not {"step", "loss"} <= set(rec.steps) or len(lengths) > 1:
                raise ValueError("the step columns are missing or of different lengths")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RunFileError(f"{where}: malformed run ({exc})") from None
        # JSON wrote NaN/inf as null; give the curves back a number type
        for key, values in rec.steps.items():
            rec.steps[key] = [math.nan if v is None else v for v in values]
        return rec

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunRecord:
        """Read a run file; :class:`RunFileError` says what is wrong with a bad one."""
        target = Path(path)
        data = _read_json(target)
        if data.get("format") != RUN_FORMAT:
            raise RunFileError(f"{target} is not a LossLab run file")
        rec = cls.from_json(data, str(target))
        traj = data.get("trajectory")
        if traj:
            traj_path = target.parent / Path(traj).name  # never outside the run's folder
            try:
                with np.load(traj_path, allow_pickle=False) as npz:
                    rec.snapshot_steps, rec.snapshots = npz["steps"], npz["params"]
            except (OSError, KeyError, ValueError) as exc:
                rec.snapshot_steps = rec.snapshots = None
                rec.trajectory_problem = f"{traj_path.name}: cannot read the trajectory ({exc})"

        return rec


class OutputPathError(ValueError):
    """A file cannot be written where it was asked for; the message names the path and why."""


def check_output_path(path: str | os.PathLike, what: str = "the file") -> Path:
    """Make sure ``path`` can be written *before* the work that fills it starts.

    The folder must exist and take a new file, and ``path`` must not be a folder. Returns the
    path; :class:`OutputPathError` otherwise (a run of many minutes should not end in a
    "cannot write" that loses it).
    """
    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        raise OutputPathError(f"cannot write {what} to {target}: it is a folder, not a file")
    if not folder.exists():
        raise OutputPathError(
            f"cannot write {what} to {target}: the folder {folder} does not exist"
        )
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {what} to {target}: {folder} is not a folder")
    try:  # permissions alone do not tell (read-only mounts, /proc, ACLs): try it
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".losslab-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputPathError(f"cannot write {what} to {target}: {folder}: {reason}") from None
    return target


def runs_dir() -> Path:
    """Where runs are kept when no place was named: ``$LOSSLAB_RUNS_DIR`` or the user's data
    folder (the Train workspace keeps its runs there too)."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("losslab")) / "runs"


def save_fallback(record: RunRecord, wanted: str | os.PathLike) -> Path:
    """Save ``record`` somewhere when ``wanted`` failed: the runs folder, else the current
    folder, else the temporary folder, under ``wanted``'s name and the time. Returns where;
    ``OSError`` only when none of them takes it."""
    stem = Path(wanted).stem or "run"
    name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    errors = []
    for folder in (runs_dir(), Path.cwd(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return record.save(folder / name)
        except OSError as exc:
            errors.append(f"{folder}: {exc.strerror or exc}")
    raise OSError("no folder takes the run record (" + "; ".join(errors) + ")")


def save_runs(records: list[RunRecord], path: str | os.PathLike) -> Path:
    """Several runs' curves in one JSON file (no snapshots): for comparing and reopening."""
    doc = {
        "format": RUNS_FORMAT,
        "losslab": __version__,
        "runs": [r.to_json(None) for r in records],
    }
    return fileio.atomic_write(Path(path), json.dumps(doc, indent=1).encode())


def load_runs(path: str | os.PathLike) -> list[RunRecord]:
    """The runs in ``path``: a file of :func:`save_runs` or a single run's file."""
    target = Path(path)
    data = _read_json(target)
    if data.get("format") == RUN_FORMAT:
        return [RunRecord.load(target)]
    if data.get("format") != RUNS_FORMAT:
        raise RunFileError(f"{target} is not a LossLab run file")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise RunFileError(f"{target}: malformed runs file (no list of runs)")
    return [RunRecord.from_json(r, f"{target}, run {i + 1}") for i, r in enumerate(runs)]


def _read_json(target: Path) -> dict[str, Any]:
    """A run file's JSON object; :class:`RunFileError` when it is missing or unreadable."""
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"no run file at {target}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFileError(f"{target} is not a readable JSON run file ({exc})") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{target} is not a LossLab run file")
    return data


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


__all__ = [
    "RUNS_FORMAT",
    "RUN_FORMAT",
    "OutputPathError",
    "RunFileError",
    "RunRecord",
    "check_output_path",
    "load_runs",
    "runs_dir",
    "save_fallback",
    "save_runs",
]
