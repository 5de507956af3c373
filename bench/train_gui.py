"""Train workspace benchmark: prints tables; not a test.

While LeNet-5 trains on its worker thread, does the GUI stay responsive? A 16 ms QTimer runs
on the GUI thread for one training epoch; every gap between two of its ticks beyond 16 ms is
a delay the user would feel. The table gives the largest delay, the 99th percentile and the
median (goal: largest < 50 ms), and what the live views cost the training (images/s with the
workspace drawing vs. the same training with no window at all).

Needs MNIST: LOSSLAB_DATA_DIR (or --data-dir) must name a folder with the MNIST files.
Rendering is Qt's offscreen raster (the same software painting a desktop without GL uses).

The window's process spins briefly, then sleeps, in OpenMP waits (GOMP_SPINCOUNT=30000, as
app.main sets it, see app.openmp), so torch trains on every core beside the window; "no
window" is torch's defaults, and the "window's OpenMP waits" column is the same bare run with
the window's setting. The steps are timed on the thread that trains, from the first to the last
(validation and saving after the epoch are a column of their own). Other load on the
machine hurts spinning OpenMP threads most: read the load averages printed with the table.

Run: LOSSLAB_DATA_DIR=../shared/data/mnist .venv/bin/python bench/train_gui.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.openmp import PASSIVE_ENV, wait_briefly  # noqa: E402 (imports neither torch nor Qt)

# What the window's process runs with (app.main sets it before torch loads, see app.openmp):
# torch's OpenMP threads spin briefly, then sleep, while they wait, so the window's thread and
# two torch threads can share two cores. The "no window" child runs with torch's defaults.
# --spin measures the window with the defaults too.
SPIN = "--spin" in sys.argv
SPINCOUNT = sys.argv[sys.argv.index("--spincount") + 1] if "--spincount" in sys.argv else None
if SPINCOUNT is not None:
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
elif not SPIN and "--bare" not in sys.argv:
    wait_briefly()

TICK_MS = 16
# What the window's run can be measured with, beside the app as it is (--variants): each is a
# change to one knob, applied only around its own epoch. "switch": sys.setswitchinterval (s);
# "threads": torch's thread count for the run; "draw": the plots' DRAW_SHARE.
VARIANTS = {
    "app": {},
    "switch-5ms": {"switch": 0.005},  # CPython's default
    "switch-1ms": {"switch": 0.001},
    "1-thread": {"threads": 1},
    "2-threads": {"threads": 2},
    "draw-10%": {"draw": 0.10},  # the share before 0.05
    "draw-5%": {"draw": 0.05},
    "draw-3%": {"draw": 0.03},
    "no-redraw": {"redraw": False},  # the curves never redrawn: what drawing costs
    "hidden": {"hidden": True},  # the window never shown: no painting at all
}


def wait_in_event_loop(done) -> None:
    """Run Qt's event loop (as the app does, idle between events) until ``done()``."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    check = QtCore.QTimer()
    check.setInterval(5)
    check.timeout.connect(lambda: done() and loop.quit())
    check.start()
    if not done():
        loop.exec()
    check.stop()


def one_epoch_in_window(app, batch: int, variant: str = "app") -> dict:
    import importlib

    # not `import app.train...`: that would bind the name of the QApplication argument
    plots_mod = importlib.import_module("app.train.plots")
    ws_mod = importlib.import_module("app.train.workspace")
    MainWindow = importlib.import_module("app.main_window").MainWindow  # noqa: N806

    knobs = VARIANTS[variant]
    old_switch, old_draw, old_leave = (
        sys.getswitchinterval(),
        plots_mod.DRAW_SHARE,
        ws_mod.leave_a_core,
    )
    if "draw" in knobs:
        plots_mod.DRAW_SHARE = knobs["draw"]
    if "threads" in knobs:
        import torch

        ws_mod.leave_a_core = lambda: torch.set_num_threads(knobs["threads"])
    try:
        return _epoch(app, batch, knobs, MainWindow)
    finally:
        sys.setswitchinterval(old_switch)
        plots_mod.DRAW_SHARE, ws_mod.leave_a_core = old_draw, old_leave


def _epoch(app, batch: int, knobs: dict, MainWindow) -> dict:  # noqa: N803 (a class)
    from PySide6 import QtCore

    from core.train.training import Step

    settings = QtCore.QSettings(
        str(Path(tempfile.mkdtemp()) / "s.ini"), QtCore.QSettings.Format.IniFormat
    )
    w = MainWindow(settings=settings, restore=False)
    w.resize(1440, 900)
    if not knobs.get("hidden"):
        w.show()
    if knobs.get("redraw") is False:
        w.train.plots.start = lambda: None
    w.tabs.setCurrentWidget(w.train)
    t = w.train
    t.controls.set_task("lenet")
    t.controls.epochs.setValue(1)
    t.controls.batch.setValue(batch)
    app.processEvents()
    ticks: list[float] = []
    timer = QtCore.QTimer()
    timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    # measure from the first step to the end of the epoch (not data loading or start-up)
    # the training steps are timed where they run, on the worker thread, as bare_epoch times
    # them: the window's run also validates, writes its checkpoint and saves its record after
    # the last step, which a bare loop doesn't (that once cost the window ~15% of a 2 s epoch)
    stamps: list[float] = []
    make = t.controller.train

    def timed(config, control):
        for e in make(config, control):
            if isinstance(e, Step):
                stamps.append((time.perf_counter(), e.step))
            yield e

    t.controller.train = timed
    # how often the loss curve is redrawn while the run trains: "the curves still update"
    loss_draws: list[float] = []
    panel = t.plots._panel

    def counted(name, force=False):
        if name == "loss" and t.running:
            loss_draws.append(time.perf_counter())
        return panel(name, force)

    t.plots._panel = counted
    t.start()
    if "switch" in knobs:  # after start: the app may set its own when a run starts
        sys.setswitchinterval(knobs["switch"])
    run = t.runs[-1]
    wait_in_event_loop(lambda: run.record.steps["step"] or not t.running)
    timer.start()
    t_first = time.perf_counter()
    cpu_first = time.thread_time()  # the GUI thread's own CPU time
    n_first = run.record.steps["step"][0] if run.record.steps["step"] else 0
    wait_in_event_loop(lambda: not t.running)
    gui_cpu = (time.thread_time() - cpu_first) / (time.perf_counter() - t_first)
    timer.stop()
    wait_in_event_loop(lambda: not t.save_jobs)
    t_end = time.perf_counter()
    steps = run.record.steps["step"][-1] - n_first
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    gaps = [1000 * (b - a) for a, b in zip(ticks, ticks[1:], strict=False)]
    delays = [max(0.0, g - TICK_MS) for g in gaps]
    w.close()
    if run.status != "completed":
        raise SystemExit(f"the run did not complete: {run.status} {run.error}")
    return {
        "max": max(delays),
        "p99": statistics.quantiles(delays, n=100)[98],
        "median": statistics.median(delays),
        "ticks": len(ticks),
        "img_s": (s1 - s0) * batch / (t1 - t0),  # first to last step, as bare_epoch
        "img_s_all": steps * batch / (t_end - t_first),  # and with validation and saving
        "gui_cpu": gui_cpu,
        # the longest the loss curve went without a redraw, between its first and last
        "loss_gap": max(np.diff(loss_draws), default=float("nan")),
        "loss_draws_s": len(loss_draws) / (t1 - t0),
    }


def bare_in_fresh_process(batch: int, passive: bool = False) -> float:
    """:func:`bare_epoch` in a new process: in this one, torch's thread pools and allocator
    are in whatever state the window's run left them (that skewed the figure 3x). With
    torch's defaults, or (``passive``) with the window's OpenMP setting."""
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if passive:
        env["GOMP_SPINCOUNT"] = os.environ.get("GOMP_SPINCOUNT", PASSIVE_ENV[1])
    out = subprocess.run(
        [sys.executable, __file__, "--bare", "--batch", str(batch)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def bare_epoch(batch: int) -> float:
    """The same epoch without a window: core.train.training's generator on the main thread, with
    torch's default thread count."""
    from core.train.training import Step, TrainConfig, train

    t_first = n_first = None
    last = 0
    for e in train(TrainConfig(task="lenet", epochs=1, batch_size=batch, dataset="mnist")):
        if isinstance(e, Step):
            if t_first is None:
                t_first, n_first = time.perf_counter(), e.step
            last = e.step
    return (last - n_first) * batch / (time.perf_counter() - t_first)


def by_spincount(args) -> int:
    """One child bench per GOMP_SPINCOUNT (libgomp reads it when torch loads), interleaved;
    each child's ratio is measured side by side with its own runs without a window."""
    values = [v.strip() for v in args.spincounts.split(",") if v.strip()]
    header_done = False
    for i in range(args.repeats):
        for value in values:
            out = subprocess.run(
                [sys.executable, __file__, "--repeats", "1", "--batch", str(args.batch)]
                + ["--variants", args.variants, "--spincount", value],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()
            for line in out:
                table = line.startswith("|")
                if table and not line.startswith(("| run", "|---")):
                    print(f"| {i + 1} | {value} |" + line.split("|", 2)[2], flush=True)
                elif not header_done and (table or not line.startswith(("Goal", "Load"))):
                    line = "|---" + line if line.startswith("|---") else line
                    print(line.replace("| run |", "| run | window's GOMP_SPINCOUNT |"))
                    if line.startswith("|---"):
                        header_done = True
    print("\nGoal: largest delay < 50 ms; images/s in the window >= 85% of no window.")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data-dir", help="MNIST folder (default: $LOSSLAB_DATA_DIR)")
    ap.add_argument(
        "--variants",
        default="app",
        help=f"comma-separated, measured interleaved in each row: {', '.join(VARIANTS)}",
    )
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--spin", action="store_true", help="the window with libgomp's spinning threads"
    )
    ap.add_argument(
        "--spincount",
        help="GOMP_SPINCOUNT in the window's process (default app.openmp's, or the environment's)",
    )
    ap.add_argument(
        "--spincounts",
        help="comma-separated GOMP_SPINCOUNTs: each row runs one child per value, interleaved",
    )
    args = ap.parse_args()
    if args.spincounts:
        return by_spincount(args)
    if args.bare:  # the child process of bare_in_fresh_process
        bare_epoch(args.batch)
        print(f"{bare_epoch(args.batch):.1f}")
        return 0
    if args.data_dir:
        os.environ["LOSSLAB_DATA_DIR"] = args.data_dir
    from core.train.data import mnist_status

    found, text = mnist_status()
    if not found:
        print(f"{text}: set LOSSLAB_DATA_DIR or --data-dir", file=sys.stderr)
        return 2
    os.environ.setdefault("LOSSLAB_RUNS_DIR", tempfile.mkdtemp(prefix="losslab-bench-"))
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.collect import collect_between_events

    collect_between_events(app)  # garbage collected as the app collects it (app.main)
    import platform

    import torch

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor() or "?",
        )
        if Path("/proc/cpuinfo").exists()
        else (platform.processor() or "?")
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"CPU: {model}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"(CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads by default); load average {load:.2f} at start"
    )
    print(
        "OpenMP in the window: "
        + (
            "libgomp's default (spinning waits)"
            if SPIN
            else f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')} (short or no spin, then sleep)"
        )
        + "; without a window: torch's defaults"
    )
    print(f"Data: {text}")
    print(f"LeNet-5, batch {args.batch}, one epoch per row; a {TICK_MS} ms timer on the GUI thread")
    print()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    print(
        "| run | variant | largest delay | p99 delay | median delay | ticks | images/s (window) "
        "| images/s (no window) | window / none | window, with validation and save "
        "| no window, window's OpenMP waits | GUI thread CPU | torch threads (window / none) "
        "| loss curve redraws/s (longest gap) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    threads = torch.get_num_threads()
    # No warm-up on this thread: torch work here makes the training thread's slower (two
    # OpenMP pools on two cores), which the app never does. Imports and torch._dynamo load
    # before the first step, where the measurement starts. Each row: the bare run, then every
    # variant in the window, then the bare run again (its mean is the row's reference).
    for i in range(args.repeats):
        before = bare_in_fresh_process(args.batch)
        rows = []
        for variant in variants:
            rows.append((variant, one_epoch_in_window(app, args.batch, variant)))
            rows[-1][1]["threads"] = torch.get_num_threads()
        bare = (before + bare_in_fresh_process(args.batch)) / 2
        bare_passive = bare_in_fresh_process(args.batch, passive=True)
        for variant, r in rows:
            print(
                f"| {i + 1} | {variant} | {r['max']:.1f} ms | {r['p99']:.1f} ms "
                f"| {r['median']:.1f} ms | {r['ticks']} | {r['img_s']:,.0f} | {bare:,.0f} "
                f"| {r['img_s'] / bare:.0%} | {r['img_s_all']:,.0f} | {bare_passive:,.0f} "
                f"| {r['gui_cpu']:.0%} | {r['threads']} / {threads} "
                f"| {r['loss_draws_s']:.1f} ({r['loss_gap']:.2f} s) |",
                flush=True,
            )
    print()
    print("Goal: largest delay < 50 ms; images/s in the window >= 85% of no window.")
    if hasattr(os, "getloadavg"):
        print(f"Load average at the end: {os.getloadavg()[0]:.2f} (other work skews every row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
