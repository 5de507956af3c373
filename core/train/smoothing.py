"""Curve smoothing as TensorBoard does it: a debiased exponential moving average."""

from __future__ import annotations

import numpy as np


class DebiasedEMA:
    """The running form of :func:`debiased_ema`: feed values as they arrive, get the smoothed
    ones back, without recomputing the whole curve each time (a live view's case)."""

    def __init__(self, weight: float) -> None:
        if not 0 <= weight < 1:
            raise ValueError(f"Invalid smoothing weight: {weight} (allowed 0 <= w < 1)")
        self.weight = weight
        self.acc, self.n = 0.0, 0

    def extend(self, values) -> np.ndarray:
        w = self.weight
        x = np.asarray(values, dtype=np.float64)
        out = np.empty_like(x)
        acc, n = self.acc, self.n
        for i, v in enumerate(x.tolist()):
            if v == v and v not in (float("inf"), float("-inf")):
                acc = w * acc + (1 - w) * v
                n += 1
            out[i] = acc / (1 - w**n) if n else np.nan
        self.acc, self.n = acc, n
        return out


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """EMA with weight in [0, 1) whose start is not pulled towards zero.

    ``s_t = w s_{t-1} + (1 - w) x_t`` with ``s_0 = 0``, divided by ``1 - w^t``: the first
    point equals the first value, and weight 0 returns the values unchanged. Non-finite values
    are skipped (the previous average carries over).
    """
    return DebiasedEMA(weight).extend(values)
