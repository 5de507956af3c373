"""What a computed landscape says in words: its plane, samples, the loss at the checkpoint
beside Train's validation loss for it, PCA shares, Hessian eigenvalues, how far the path is;
and the words for a subject being loaded and for a 1-D file."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from app.landscape.controls import DIRECTION_LABELS
from core.landscape.formats import FOREIGN
from core.landscape.plane import Landscape, Line
from core.landscape.subject import Subject

OWN_LOSS = "the loss is the mean of loss(model, batch) over the file's batches"


def samples_text(n: int, total: int) -> str:
    if n == total:
        return f"all {total:,} validation samples"
    return f"{n:,} of {total:,} validation samples (evenly spread)"


def subject_text(s: Subject) -> str:
    """The status line once the model and its data are loaded."""
    if s.experiment is not None:
        weights = (
            f"weights from {html.escape(Path(s.checkpoint).name)}"
            if s.checkpoint
            else "weights as model() builds them"
        )
        return (
            f"<b>{html.escape(s.name)}</b>, your own model, {weights}; data: "
            f"{html.escape(s.source)}"
        )
    epoch = f", checkpoint of epoch {s.checkpoint_epoch}" if s.checkpoint_epoch else ""
    return f"<b>{html.escape(s.name)}</b> ({s.task}){epoch}; data: {html.escape(s.source)}"


def facts_html(land: Landscape) -> str:
    """The facts below the plane, as rich text lines."""
    meta = land.meta
    foreign = meta.get("source") == FOREIGN
    own = bool(meta.get("model_file"))
    # landscapes saved before the centre was stored: read it off the grid's middle
    at_centre = float(
        meta.get("centre_loss", land.loss[len(land.betas) // 2, len(land.alphas) // 2])
    )
    if foreign:
        centre = f"loss at the plane's centre {at_centre:.5g}"
    elif own and not meta.get("checkpoint"):
        centre = f"loss at the model as model() builds it {at_centre:.5g}"
    else:
        centre = f"loss at the checkpoint {at_centre:.5g}"
    if meta.get("checkpoint_val_loss") is not None:
        centre += f" (Train's validation loss for it: {meta['checkpoint_val_loss']:.5g})"
    total = int(meta.get("n_total", 0))
    if foreign:
        samples = "samples unknown"
    elif own:
        samples = f"all {total:,} of the file's batches"
    elif total:
        samples = samples_text(land.n_eval, total)
    else:
        samples = f"{land.n_eval:,} samples"
    if foreign:
        directions = "<b>loss-landscape's</b> directions (in its direction file, not here)"
    else:
        directions = f"<b>{DIRECTION_LABELS.get(land.directions, land.directions)}</b> directions"
    lines = [
        f"{directions}, {len(land.alphas)}x{len(land.betas)} grid over "
        f"±{land.alphas[-1]:.3g}, {samples}"
        + ("" if foreign else f", {land.precision}")
        + (" <b>(preview: approximate)</b>" if land.precision == "bf16" else ""),
        f"{centre}, lowest on the plane {np.nanmin(land.loss):.5g}",
    ]
    if own:
        # the core evaluates accuracy only with the default loss on class-index batches
        name = html.escape(Path(meta["model_file"]).name)
        which = f"{name} defines no loss: cross-entropy" if land.acc is not None else name
        lines.append(f"{OWN_LOSS} ({which})")
    if meta.get("centre_acc") is not None:
        lines.append(f"accuracy at the centre {100 * float(meta['centre_acc']):.1f}%")
    if foreign:
        lines.append(f"from loss-landscape's file {html.escape(str(meta.get('file', '')))}")
    if "device" in meta:
        left_out = (
            "biases and BatchNorm moved too"
            if meta.get("bias_bn")
            else "biases and BatchNorm left out"
        )
        which = f"; random directions: {left_out}" if land.directions == "random" else ""
        lines.append(f"computed on {meta['device']}{which}")
    if meta.get("sum_scale", 1.0) != 1.0:
        lines.append(
            f"the summed loss over the sample is scaled by {meta['sum_scale']:.4g} to "
            "estimate the whole validation set's"
        )
    if land.explained is not None:
        e = land.explained
        lines.append(
            f"PCA: the two directions explain {100 * e[0]:.1f}% and {100 * e[1]:.1f}% of "
            "the path's variance"
        )
    if "hessian" in land.extras:
        vals = ", ".join(f"{v:.4g}" for v in land.extras["hessian"])
        lines.append(f"top Hessian eigenvalues at the checkpoint: {vals}")
    if "path_off" in land.extras:
        off = land.extras["path_off"]
        lines.append(
            f"the start of the path lies off the plane by {100 * float(off[0]):.0f}% of "
            f"its distance to the centre (median over the path "
            f"{100 * float(np.median(off)):.0f}%): hover a point for its true loss and the "
            "loss at its projection"
        )
    elif "projected_path" in land.extras:
        n = len(land.extras["projected_path"])
        lines.append(f"the file holds a projected path of {n} points (not drawn: no losses)")
    return "<br>".join(lines)


def line_facts_html(line: Line, path: str) -> str:
    """The facts of a 1-D loss-landscape file."""
    i = int(np.nanargmin(line.loss)) if np.isfinite(line.loss).any() else 0
    lines = [
        f"<b>1-D landscape</b> from {html.escape(str(path))}: {len(line.t)} points, "
        f"a from {line.t[0]:.3g} to {line.t[-1]:.3g}; samples unknown",
        f"lowest loss {line.loss[i]:.5g} at a = {line.t[i]:.3g}",
    ]
    if line.acc is not None and np.isfinite(line.acc).any():
        lines.append(f"accuracy there {100 * float(line.acc[i]):.1f}%")
    return "<br>".join(lines)


__all__ = ["OWN_LOSS", "facts_html", "line_facts_html", "samples_text", "subject_text"]
