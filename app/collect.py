"""Python's cycle collector, run between Qt events instead of wherever an allocation sets it
off.

Automatic collection can start inside a Qt call: PySide6 allocates while Qt holds its signal
locks (``QObject::disconnect`` asking PySide whether Python overrides ``disconnectNotify``).
If that collection frees a Python-owned QObject (pyqtgraph's plot menus, a closed dialog
kept by a lambda cycle), its destructor takes one of those same locks, and the thread waits
for itself forever. The test suite hung that way once (a Landscape view being built while the
menus of a window dropped earlier were collected). So in a process with widgets, automatic
collection is off and :func:`collect_due` does the same work at safe moments: from a timer in
the event loop (:func:`collect_between_events`), and, in the tests, after each test.

This module imports Qt only in :func:`collect_between_events`.
"""

from __future__ import annotations

import gc

INTERVAL_MS = 500  # how often the event loop checks; cyclic garbage waits at most this long


def collect_due() -> int:
    """Collect the generations whose allocation counts have passed their thresholds, as
    automatic collection would have by now; the number of unreachable objects found."""
    t0, t1, t2 = gc.get_threshold()
    c0, c1, c2 = gc.get_count()
    if c0 <= t0:
        return 0
    # the oldest generation due, as CPython chooses (collecting it collects the younger too)
    if c2 > t2:
        return gc.collect(2)
    if c1 > t1:
        return gc.collect(1)
    return gc.collect(0)


def collect_between_events(app) -> object:
    """Turn automatic collection off and run :func:`collect_due` from a timer owned by
    ``app`` (the QApplication); returns the timer. Threads (training, landscapes) leave their
    garbage to the GUI thread, which collects between events."""
    from PySide6 import QtCore

    gc.disable()
    timer = QtCore.QTimer(app)
    timer.setObjectName("cycle_collector")
    timer.timeout.connect(collect_due)
    timer.start(INTERVAL_MS)
    return timer


__all__ = ["INTERVAL_MS", "collect_between_events", "collect_due"]
