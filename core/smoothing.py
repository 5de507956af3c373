"""Curve smoothing as TensorBoard does it: a debiased exponential moving average."""

from __future__ import annotations

import numpy as np


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """EMA with weight in [0, 1) whose start is not pulled towards zero.

    ``s_t = w s_{t-1} + (1 - w) x_t`` with ``s_0 = 0``, divided by ``1 - w^t``: the first
    point equals the first value, and weight 0 returns the values unchanged. Non-finite values
    are skipped (the previous average carries over).
    """
    if not 0 <= weight < 1:
        raise ValueError(f"Invalid smoothing weight: {weight} (allowed 0 <= w < 1)")
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    acc, n = 0.0, 0
    for i, v in enumerate(x):
        if np.isfinite(v):
            acc = weight * acc + (1 - weight) * v
            n += 1
        out[i] = acc / (1 - weight**n) if n else np.nan
    return out
