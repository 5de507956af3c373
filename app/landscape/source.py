"""What the Landscape tab computes on, beyond the GUI: the user's own model file checked off the
GUI thread, which runs and checkpoints came from an experiment file, and where an interrupted
grid is kept so that the next Compute resumes it."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path

from core.landscape.directions import LandscapeError
from core.landscape.subject import Subject, load_model_subject
from core.train.experiment import ExperimentError

SETTINGS_KEY = "landscape/model_file"  # the last model file opened here (QSettings)
OWN_CODE_NOTE = (
    "A model file is your own Python code: LossLab runs it as <code>python file.py</code> "
    "would, so open only files you trust."
)


@dataclass(frozen=True)
class ModelCheck:
    """An experiment file imported, its model built (with the weights given) and its loss
    evaluated once: what the panel shows before anything is computed."""

    path: str
    weights: str | None
    model: str  # the model's class name
    parameters: int
    batches: int
    loss: float  # the mean of loss(model, batch) over the file's batches, at the centre
    own_loss: bool  # the file defines loss(model, batch)

    def html(self) -> str:
        name = html.escape(Path(self.path).name)
        weights = (
            f"weights from {html.escape(Path(self.weights).name)}"
            if self.weights
            else "weights as model() builds them"
        )
        loss = "its loss(model, batch)" if self.own_loss else "cross-entropy"
        n = self.batches
        return (
            f"model file: {html.escape(self.path)}<br><b>{html.escape(self.model)}</b> from "
            f"{name}, {self.parameters:,} parameters; {weights}<br>"
            f"loss there {self.loss:.5g}: the mean of {loss} over the file's {n} "
            f"batch{'es' if n != 1 else ''}"
        )


def check_model(path: str, weights: str | None = None) -> ModelCheck:
    """Import ``path``, build its model with ``weights`` (any checkpoint format) and evaluate
    its loss once; LandscapeError names the file and the line of whatever goes wrong. Slow
    (the import and the data): call it on a worker thread."""
    subject = load_model_subject(path, weights)
    exp = subject.experiment
    try:
        loss = exp.preflight(subject.model, subject.batches)
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    return ModelCheck(
        str(path),
        weights,
        type(subject.model).__name__,
        sum(p.numel() for p in subject.model.parameters()),
        len(subject.batches),
        loss,
        exp.own_loss,
    )


def own_model_of(run_file: str | None, checkpoint: str | None) -> str | None:
    """The experiment file a run or a LossLab checkpoint was trained from (None for the
    built-in tasks, or when the files cannot say: loading them says why later)."""
    from core.train.checkpoints import CheckpointError, load_checkpoint
    from core.train.runs import RunFileError, RunRecord

    if run_file:
        try:
            return RunRecord.load(run_file).config.get("model_file") or None
        except (RunFileError, OSError):
            return None
    if checkpoint:
        try:
            config = load_checkpoint(checkpoint).get("config") or {}
        except (CheckpointError, OSError):
            return None  # a plain state_dict, or a damaged file
        return config.get("model_file") or None
    return None


def partial_file(subject: Subject) -> Path | None:
    """Where the grid of ``subject`` is kept while it fills: one file per subject (its
    fingerprint keeps other settings from mixing in: they start afresh). None when the cache
    folder cannot be made (the grid is then computed without resuming)."""
    from core.train.runs import runs_dir

    where = str(subject.experiment.path) if subject.experiment else subject.checkpoint
    digest = hashlib.sha1(f"{subject.name}\n{where}".encode()).hexdigest()[:10]
    stem = re.sub(r"[^\w.-]+", "_", subject.name)[:60] or "landscape"
    folder = runs_dir() / "landscapes"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / f"{stem}-{digest}.partial.npz"


__all__ = [
    "OWN_CODE_NOTE",
    "SETTINGS_KEY",
    "ModelCheck",
    "check_model",
    "own_model_of",
    "partial_file",
]
