"""The line of words under the Train plots about the current run."""

from __future__ import annotations

import numpy as np

from app.train.runs import Run, divergence_text, plural
from app.train.sharpness import summary as sharpness_summary


def details(run: Run, forms_group: list[Run], runs: list[Run]) -> str:
    """One or two lines of HTML under the plots: the run, how it diverged, its last epoch,
    the three forms' agreement, where a continued run started and what it used."""
    parts = [f"<b style='color:{run.colour}'>{run.name}</b>"]
    diverged = divergence_text(run.record)
    if diverged:
        parts.append(f"<span style='color:#e6194b'>diverged: {diverged}</span>")
    if run.record.epochs:
        last = run.record.epochs[-1]
        parts.append(
            f"epoch {last['epoch']}: train loss {last['train_loss']:.5g}, "
            f"val loss {last['val_loss']:.5g}"
            if last.get("val_loss") is not None
            else f"epoch {last['epoch']}"
        )
        if last.get("val_accuracy") is not None:
            parts.append(f"val accuracy {100 * last['val_accuracy']:.2f}%")
        for key in ("polynomial", "line"):
            if last.get(key):
                parts.append(last[key])
    group = [r for r in forms_group if r in runs]
    if run in group and len(group) > 1:
        k = min(len(r.record.epochs) for r in group)
        if k:
            cs = np.array([r.record.epochs[k - 1]["coefficients"] for r in group])
            diff = float(np.max(np.abs(cs - cs[0])))
            scale = float(np.max(np.abs(cs))) or 1.0
            parts.append(
                f"the three forms after {plural(k, 'step')}: largest coefficient difference "
                f"{diff:.2g} ({diff / scale:.1g} relative)"
            )
    sharp = sharpness_summary(run)
    if sharp:
        parts.append(sharp)
    if run.resumed:
        parts.append(run.resumed + in_use(run))
    if run.error:
        parts.append(f"<span style='color:#e6194b'>{run.error}</span>")
    return " &nbsp;|&nbsp; ".join(parts)


def in_use(run: Run) -> str:
    """``; in use: lr 0.01, momentum 0.9``: the hyperparameters the run's first step used
    (core reports them; a checkpoint's could differ from the controls'), else its first lr."""
    hyper = run.hyper_in_use or run.record.started.get("hyper")
    if hyper:
        values = [
            f"{k} {v:g}"
            for k, v in hyper.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        return "; in use: " + ", ".join(values)
    lr = run.record.steps["lr"]
    return f"; lr in use {lr[0]:g}" if lr else ""


def last_value(run: Run, key: str):
    """The latest value of a per-epoch figure (the fit's coefficients, w, b), else the final."""
    for row in reversed(run.record.epochs):
        if key in row and row[key] is not None:
            return row[key]
    return (run.record.finished.get("final") or {}).get(key)


__all__ = ["details", "in_use", "last_value"]
