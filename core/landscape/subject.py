"""What a landscape is computed for: a trained model, its data, its loss and its path.

``load_subject`` rebuilds a built-in task's run from its checkpoint and run record (the task's
model, the validation set Train used, the task's loss); ``load_model_subject`` does the same
for the user's own experiment file (its ``model()``, ``batches()`` and ``loss``), with weights
from a checkpoint in any of the usual formats, or the model as ``model()`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.landscape.directions import LandscapeError, flat_parameters
from core.train.checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, read
from core.train.experiment import Experiment, ExperimentError, load_experiment
from core.train.losses import build_loss
from core.train.runs import RunFileError, RunRecord
from core.train.tasks import build_task, get_task
from core.train.training import TrainConfig
from core.train.weights import load_weights


@dataclass
class Subject:
    """A trained model and everything needed to evaluate it."""

    name: str
    task: str
    model: nn.Module
    loss_fn: nn.Module
    x: torch.Tensor  # the whole validation set Train used (a request may sample it)
    y: torch.Tensor
    classes: int
    source: str  # where the data came from
    trajectory: np.ndarray | None = None  # (T, P) recorded parameters
    steps: np.ndarray | None = None  # (T,) their global steps
    epoch_steps: list[int] = field(default_factory=list)  # the step that ended each epoch
    checkpoint: str = ""
    checkpoint_epoch: int | None = None
    checkpoint_val_loss: float | None = None  # the validation loss Train recorded for it
    # the user's own model: the experiment file and its evaluation batches (x, y and loss_fn
    # are then unused: the loss is the mean of the file's loss(model, batch) over them)
    experiment: Experiment | None = None
    batches: list[Any] | None = None


def load_subject(
    checkpoint: str | None = None,
    run: str | RunRecord | None = None,
    data_dir: str | None = None,
) -> Subject:
    """The model of ``checkpoint`` (default: the run's best) with the run's data and path.

    Either may be missing: a run file alone uses the checkpoint it names; a checkpoint alone
    carries its config but no trajectory (so no PCA or init-final directions).
    """
    record = _record(run)
    if record is not None and record.config.get("model_file"):
        where = run if isinstance(run, str | Path) else None
        return load_model_subject(record.config["model_file"], checkpoint, record, run_file=where)
    if checkpoint is None:
        paths = [c["path"] for c in (record.checkpoints if record else [])]
        if not paths:
            raise LandscapeError("no checkpoint: give one (the run names none)")
        checkpoint = _checkpoint_of(record, run)
    try:
        ck = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise LandscapeError(str(exc)) from None
    model_file = (ck.get("config") or {}).get("model_file")
    if model_file:  # a checkpoint of the user's own model, given alone
        return load_model_subject(model_file, checkpoint, record, payload=ck)
    try:
        config = TrainConfig.from_dict(record.config if record else ck["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LandscapeError(f"the run's configuration cannot be read ({exc})") from None
    if ck.get("task") != config.task:
        raise LandscapeError(
            f"the checkpoint is for task {ck.get('task')!r}, the run for {config.task!r}"
        )
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    # the validation set Train used: the same task, data, limit and dtype
    setup = build_task(
        config.task,
        seed=config.seed,
        dataset=config.dataset,
        data_dir=data_dir or config.data_dir,
        limit=config.limit,
        activation=config.activation,
        dtype=dtype,
    )
    model = setup.model.eval()
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, KeyError) as exc:
        raise LandscapeError(
            f"the checkpoint does not fit the {config.task} model ({exc})"
        ) from None
    traj = steps = None
    if record is not None and record.snapshots is not None and len(record.snapshots):
        traj = np.asarray(record.snapshots, dtype=np.float32)
        steps = np.asarray(record.snapshot_steps)
        if traj.shape[1] != flat_parameters(model).numel():
            raise LandscapeError("the run's trajectory does not fit its model")
    return Subject(
        name=(record.name if record else "") or Path(checkpoint).stem,
        task=config.task,
        model=model,
        loss_fn=build_loss(config.loss or get_task(config.task).loss),
        x=setup.val_x,
        y=setup.val_y,
        classes=setup.classes,
        source=setup.source,
        trajectory=traj,
        steps=steps,
        epoch_steps=[int(r["step"]) for r in (record.epochs if record else [])],
        checkpoint=str(checkpoint),
        checkpoint_epoch=ck.get("epoch"),
        checkpoint_val_loss=_float_or_none(ck.get("val_loss")),
    )


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def find_checkpoint(path: str | Path, run_file: str | Path | None) -> Path | None:
    """Where a run record's checkpoint ``path`` is now, or None.

    `losslab train --checkpoint best.pt` records the path as typed, relative to the folder it
    was run in; opened from anywhere else the run would have lost it. So a relative path that
    is not found from here is looked for next to the run's JSON (as typed, then by its name)."""
    p = Path(path)
    if p.exists():
        return p
    if p.is_absolute() or run_file is None:
        return None
    folder = Path(run_file).parent
    for candidate in (folder / p, folder / p.name):
        if candidate.exists():
            return candidate
    return None


def _checkpoint_of(record: RunRecord, run: str | RunRecord | None) -> str:
    """The run's best checkpoint, found next to its JSON when recorded relative to elsewhere."""
    path = record.checkpoints[-1]["path"]
    found = find_checkpoint(path, run if isinstance(run, str | Path) else None)
    return str(found) if found is not None else path


def _record(run: str | RunRecord | None) -> RunRecord | None:
    if isinstance(run, RunRecord) or run is None:
        return run
    try:
        return RunRecord.load(run)
    except RunFileError as exc:
        raise LandscapeError(str(exc)) from None


def load_model_subject(
    model_file: str,
    checkpoint: str | None = None,
    run: str | RunRecord | None = None,
    payload: Any = None,
    run_file: str | Path | None = None,
) -> Subject:
    """The user's own model (an experiment file) with weights from ``checkpoint`` (LossLab's,
    a plain ``state_dict``, Lightning's, ...; default: the run's best checkpoint, else the
    model as ``model()`` builds it) and the run's recorded path when a run is given.
    ``payload``: the checkpoint's contents when the caller has already read them."""
    record = _record(run)
    try:
        experiment = load_experiment(model_file)
        model = experiment.build_model()
        batches = experiment.batches()
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    if checkpoint is None and record is not None:
        paths = [c["path"] for c in record.checkpoints]
        checkpoint = _checkpoint_of(record, run_file or run) if paths else None
    epoch = val_loss = None
    if checkpoint is not None:
        try:
            payload = read(checkpoint) if payload is None else payload  # read once
            load_weights(model, checkpoint, payload)
        except CheckpointError as exc:
            raise LandscapeError(str(exc)) from None
        if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
            # LossLab's own checkpoints also say which epoch and what validation loss
            epoch, val_loss = payload.get("epoch"), _float_or_none(payload.get("val_loss"))
    model.eval()
    traj = steps = None
    if record is not None and record.snapshots is not None and len(record.snapshots):
        traj = np.asarray(record.snapshots, dtype=np.float32)
        steps = np.asarray(record.snapshot_steps)
        if traj.shape[1] != flat_parameters(model).numel():
            raise LandscapeError("the run's trajectory does not fit the experiment's model")
    n = len(batches)
    return Subject(
        name=(record.name if record else "") or experiment.name,
        task=f"own model ({Path(model_file).name})",
        model=model,
        loss_fn=None,
        x=None,
        y=None,
        classes=0 if experiment.own_loss else 1,
        source=f"{n} batch{'es' if n != 1 else ''} from {Path(model_file).name}'s batches()",
        trajectory=traj,
        steps=steps,
        epoch_steps=[int(r["step"]) for r in (record.epochs if record else [])],
        checkpoint=str(checkpoint or ""),
        checkpoint_epoch=epoch,
        checkpoint_val_loss=val_loss,
        experiment=experiment,
        batches=batches,
    )


__all__ = ["Subject", "load_model_subject", "load_subject"]
