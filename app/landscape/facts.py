"""What a computed landscape says in words: its plane, samples, the loss at the checkpoint
beside Train's validation loss for it, PCA shares, Hessian eigenvalues, how far the path is."""

from __future__ import annotations

import numpy as np

from app.landscape.controls import DIRECTION_LABELS
from core.landscape.plane import Landscape


def samples_text(n: int, total: int) -> str:
    if n == total:
        return f"all {total:,} validation samples"
    return f"{n:,} of {total:,} validation samples (evenly spread)"


def facts_html(land: Landscape) -> str:
    """The facts below the plane, as rich text lines."""
    meta = land.meta
    # landscapes saved before the centre was stored: read it off the grid's middle
    at_centre = float(
        meta.get("centre_loss", land.loss[len(land.betas) // 2, len(land.alphas) // 2])
    )
    centre = f"loss at the checkpoint {at_centre:.5g}"
    if meta.get("checkpoint_val_loss") is not None:
        centre += f" (Train's validation loss for it: {meta['checkpoint_val_loss']:.5g})"
    total = int(meta.get("n_total", 0))
    samples = samples_text(land.n_eval, total) if total else f"{land.n_eval:,} samples"
    lines = [
        f"<b>{DIRECTION_LABELS.get(land.directions, land.directions)}</b> directions, "
        f"{len(land.alphas)}x{len(land.betas)} grid over ±{land.alphas[-1]:.3g}, "
        f"{samples}, {land.precision}"
        + (" <b>(preview: approximate)</b>" if land.precision == "bf16" else ""),
        f"{centre}, lowest on the plane {np.nanmin(land.loss):.5g}",
    ]
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
    return "<br>".join(lines)


__all__ = ["facts_html", "samples_text"]
