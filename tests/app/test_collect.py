"""Python's cycle collector runs between Qt events, never inside a Qt call (app.collect)."""

import gc
import weakref

from app.collect import INTERVAL_MS, collect_between_events, collect_due


class _Cycle:
    def __init__(self):
        self.me = self


def test_due_garbage_is_collected_when_asked_and_only_when_due():
    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        young = _Cycle()
        ref = weakref.ref(young)
        del young
        assert collect_due() == 0 and ref() is not None  # not due yet: left for later
        t0 = gc.get_threshold()[0]
        _ = [[] for _ in range(t0 + 10)]  # allocations past generation 0's threshold
        assert collect_due() >= 1 and ref() is None
    finally:
        if was:
            gc.enable()


def test_the_window_collects_from_a_timer_in_its_event_loop(qapp, qtbot):
    was = gc.isenabled()
    gc.enable()
    timer = collect_between_events(qapp)
    try:
        assert not gc.isenabled()  # nothing collects inside a Qt call any more
        assert timer.isActive() and timer.interval() == INTERVAL_MS
        gc.collect()
        garbage = _Cycle()
        ref = weakref.ref(garbage)
        del garbage
        _ = [[] for _ in range(gc.get_threshold()[0] + 10)]
        qtbot.waitUntil(lambda: ref() is None, timeout=5 * INTERVAL_MS)
    finally:
        timer.stop()
        timer.deleteLater()
        if was:
            gc.enable()
        else:
            gc.disable()
