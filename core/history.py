"""A memory-bounded recorder of per-step arrays.

Keeps at most ``capacity`` recorded points. When full it drops every other point and doubles
its stride, so a run of any length is covered end to end by between ``capacity/2`` and
``capacity`` evenly spaced points; the newest point is always kept.
"""

from __future__ import annotations

import numpy as np


class History:
    """Append-only table of named numpy fields with a fixed memory budget.

    Parameters
    ----------
    shapes:
        Field name -> shape of one record (e.g. ``{"pos": (R, K, 2)}``).
    dtypes:
        Field name -> numpy dtype; float64 when missing.
    budget_bytes:
        Upper bound on the memory the table may use.
    max_points:
        Upper bound on the number of points, whatever the budget.
    """

    def __init__(
        self,
        shapes: dict[str, tuple[int, ...]],
        dtypes: dict[str, np.dtype] | None = None,
        budget_bytes: int = 256 * 2**20,
        max_points: int = 200_000,
    ) -> None:
        dtypes = dtypes or {}
        per_point = 8  # the step index
        for name, shape in shapes.items():
            per_point += (
                int(np.prod(shape, dtype=np.int64))
                * np.dtype(dtypes.get(name, np.float64)).itemsize
            )
        capacity = int(min(max_points, budget_bytes // per_point))
        self.capacity = max(4, capacity - capacity % 2)
        self.stride = 1
        self.count = 0
        self.steps = np.zeros(self.capacity, dtype=np.int64)
        # Unfilled rows are never read (get() stops at count), so no need to pay for a fill.
        self.fields = {
            name: np.empty((self.capacity, *shape), dtype=dtypes.get(name, np.float64))
            for name, shape in shapes.items()
        }
        self._last_step = -1

    def wants(self, step: int) -> bool:
        """Whether ``step`` falls on the current stride (the newest point is kept anyway)."""
        return step % self.stride == 0

    def append(self, step: int, fill_missing: bool = True, **values) -> int:
        """Record ``values`` for ``step``; returns the row written.

        A step off the stride overwrites the previous off-stride row, so the last row is always
        the newest point. Fields not given are set to nan (0 for integers), unless
        ``fill_missing`` is False because the caller writes the row itself.
        """
        if self.count and self.steps[self.count - 1] % self.stride != 0:
            self.count -= 1  # replace the previous newest-only point
        if self.count == self.capacity:
            self._decimate()
        row = self.count
        self.steps[row] = step
        for name, arr in self.fields.items():
            if name in values or fill_missing:
                arr[row] = values.get(name, np.nan if arr.dtype.kind == "f" else 0)
        self.count += 1
        self._last_step = step
        return row

    def update_last(self, **values) -> None:
        """Fill fields of the newest row (e.g. the gradient used once it is known)."""
        if not self.count:
            return
        for name, value in values.items():
            self.fields[name][self.count - 1] = value

    def _decimate(self) -> None:
        keep = self.steps[: self.count] % (2 * self.stride) == 0
        idx = np.flatnonzero(keep)
        n = len(idx)
        self.steps[:n] = self.steps[idx]
        for arr in self.fields.values():
            arr[:n] = arr[idx]
        self.count = n
        self.stride *= 2

    def get(self, name: str) -> np.ndarray:
        """The recorded rows of one field (a view; copy it to keep it)."""
        return self.fields[name][: self.count]

    def recorded_steps(self) -> np.ndarray:
        return self.steps[: self.count]

    @property
    def nbytes(self) -> int:
        return self.steps.nbytes + sum(a.nbytes for a in self.fields.values())
