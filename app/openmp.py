"""How torch's OpenMP threads wait while the window is open, and how many it uses. This module
imports neither torch (but inside use_threads) nor Qt, so app.main can apply the waiting
before torch loads (libgomp reads it once, at that moment).

A short spin, then sleep. With no spin (GOMP_SPINCOUNT=0) every one of a LeNet step's ~50
parallel regions woke its threads through the kernel, which on a virtual machine's idle cores
is slow: training ran at 50-90% of torch's defaults even without a window. With libgomp's
default (300,000 spins) the waiting threads keep both cores busy, and the window's thread
preempts one of them at every paint while the other spins. 30,000 spins (tens of microseconds)
catch the next region as the defaults do, then sleep, so the window's thread still gets a core
when it paints. Measured with ``bench/train_gui.py --spincounts 0,30000,300000``.
"""

from __future__ import annotations

import os

PASSIVE_ENV = ("GOMP_SPINCOUNT", "30000")
SHORT_SPIN = 100_000  # a wait of at most this many spins leaves the cores to whoever needs them


def wait_briefly() -> None:
    """Set :data:`PASSIVE_ENV` for this process, unless the user set their own."""
    os.environ.setdefault(*PASSIVE_ENV)


def passive_waiting() -> bool:
    """Whether torch's OpenMP threads sleep, after at most a short spin, while they wait for
    one another (GOMP_SPINCOUNT up to SHORT_SPIN, or OMP_WAIT_POLICY=passive)."""
    spins = os.environ.get(PASSIVE_ENV[0], "")
    if spins.isdigit():
        return int(spins) <= SHORT_SPIN
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def use_threads(n: int) -> None:
    """Give torch ``n`` threads, unless OMP_NUM_THREADS is set: torch took its count from it
    at start, and that count stands (a shared server's limit, a job script's, or one thread
    per worker when tests run several at once: two workers with two threads each on 2 cores
    made every test after the first landscape up to 5x slower). Imports torch."""
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


__all__ = ["PASSIVE_ENV", "SHORT_SPIN", "passive_waiting", "use_threads", "wait_briefly"]
