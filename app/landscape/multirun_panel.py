"""The Landscape workspace's several-runs part: runs handed over by Train (or opened as files)
computed on one plane (core.landscape.multirun.run_many on a worker thread), every path in its
Train colour with a legend, and the barrier between runs A and B under the map."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.colors import PALETTE
from app.landscape.controls import DIRECTION_LABELS
from app.landscape.multiview import colour_of
from core.landscape import job as lj
from core.landscape import multirun as mr
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Row


@dataclass(frozen=True)
class RunSource:
    """One run to put on the plane: its record (a RunRecord, or its JSON's path)."""

    name: str
    colour: str
    record: Any  # core.train.runs.RunRecord or a path
    checkpoint: str | None

    def config(self) -> dict:
        from core.train.runs import RunRecord

        rec = self.record if isinstance(self.record, RunRecord) else RunRecord.load(self.record)
        return rec.config


def sources_of(runs) -> list[RunSource]:
    """app.train.runs.Run objects (or anything with name, file, checkpoint and perhaps record
    and colour) as sources; a run's record in memory is used as it is (with its trajectory)."""
    out = []
    for k, run in enumerate(runs):
        record = getattr(run, "record", None) or (str(run.file) if run.file else None)
        if record is None:
            raise LandscapeError(f"{run.name}: no run record to read its trajectory from")
        colour = getattr(run, "colour", "") or PALETTE[k % len(PALETTE)]
        ck = str(run.checkpoint) if getattr(run, "checkpoint", None) else None
        out.append(RunSource(label_of(run), colour, record, ck))
    return out


def label_of(run) -> str:
    """The run's name with its optimizer and lr (Train's configuration column): Train names
    runs by their task, so a legend of "sine" and "sine (2)" would not say which is which."""
    describe = getattr(run, "config_text", None)
    if describe is None:
        return run.name
    how = ", ".join(describe().split(", ")[:2])  # e.g. "SGD + momentum, lr 0.01"
    return f"{run.name} {SEP} {how}" if how else run.name


SEP = "·"  # between a run's name and its optimizer in the legend (the map's labels: the name)


def refusal(sources: list[RunSource]) -> str:
    """Why these runs cannot share a plane ("" when they can), from their configurations."""
    from core.train.runs import RunFileError

    kinds = []
    for s in sources:
        try:
            c = s.config()
        except (RunFileError, OSError) as exc:
            return f"Cannot read the run {s.name}: {exc}"
        model_file = c.get("model_file")
        kinds.append(f"the model file {Path(model_file).name}" if model_file else c.get("task"))
    if len(set(kinds)) > 1:
        listed = ", ".join(f"{s.name} ({k})" for s, k in zip(sources, kinds, strict=True))
        return (
            "Runs of different tasks or models cannot share a plane: "
            f"{html.escape(listed)}. Choose runs of one task or one experiment file."
        )
    return ""


def facts_of_runs(land: Landscape) -> str:
    """The facts below a landscape of several runs: the plane and its axes, the runs, notes,
    the barrier."""
    meta = land.meta
    words = meta.get("axes") or ["direction 1", "direction 2"]
    label = DIRECTION_LABELS.get(land.directions, land.directions)
    lines = [
        f"<b>{len(meta.get('runs', []))} runs on one plane: {html.escape(label)}</b>, "
        f"{len(land.alphas)}x{len(land.betas)} grid, {land.n_eval:,} "
        f"{'batches' if meta.get('model_file') else 'samples'}, {land.precision}",
        f"a: {html.escape(words[0])}; b: {html.escape(words[1])}",
    ]
    for p in mr.paths_of(land):
        colour = p.colour or PALETTE[p.index % len(PALETTE)]
        what = (
            f"{len(p.coords)} recorded points, the start off the plane by "
            f"{100 * float(p.off_plane[0]):.0f}%"
            if p.trajectory
            else "end point only (no trajectory)"
        )
        lines.append(
            f'<span style="color:{colour}">■</span> {html.escape(p.name)}: end point at '
            f"({round(p.end[0], 4) + 0.0:.3g}, {round(p.end[1], 4) + 0.0:.3g}), loss there "
            f"{p.true_loss[-1]:.5g}; {what}"
        )
    for note in meta.get("notes") or []:
        lines.append(f"<i>{html.escape(note)}</i>")
    b = mr.barrier_of(land)
    if b is not None:
        names = [r.get("name", "") for r in meta.get("runs", [])]
        where = f" at t = {b.t_max:.2f}" if b.height > 0 else ""
        lines.append(
            f"<b>barrier height {b.height:.4g}</b>{where} on the line from "
            f"{html.escape(names[b.a])} to {html.escape(names[b.b])} (Frankle et al. 2020: the "
            "most the loss rises above the straight line between the two end losses)"
        )
    lines.append("end points are the runs' best checkpoints; hover a path for its losses")
    return "<br>".join(lines)


class MultiRunPanel:
    """Mixed into LandscapeWorkspace: needs ``controls``, ``view``, ``line``, ``facts``,
    ``status``, ``progress``, ``error``, ``message``, ``set_source``, ``_set_running``."""

    run_sources: list[RunSource]

    def open_runs(self, runs) -> bool:
        """Several runs to compute on one plane (Train's Run objects, or alike); a message
        below and False when they cannot share one."""
        if self.job is not None:
            self.error.setText("A landscape is being computed: cancel it first")
            return False
        try:
            sources = sources_of(runs)
        except LandscapeError as exc:
            self.error.setText(str(exc))
            return False
        why = refusal(sources)
        if why:
            self.error.setText(why)
            return False
        self.set_source(None, None)
        self.run_sources = sources
        self.line.runs_mode = lambda: bool(self.run_sources)
        self.controls.set_runs([s.name for s in sources])
        self.error.setText("")
        self._show_source()
        self._set_running(False)
        self.message.emit(f"Landscape: {len(sources)} runs are ready; press Compute")
        return True

    def runs_source_html(self) -> str:
        rows = [
            f'<span style="color:{s.colour}">■</span> {k}. {html.escape(s.name)}'
            for k, s in enumerate(self.run_sources, start=1)
        ]
        return f"{len(rows)} runs on one plane:<br>" + "<br>".join(rows)

    def multi_request(self) -> mr.MultiRequest:
        return mr.MultiRequest(
            base=self.request_base(),
            directions=self.directions.currentData(),
            a=int(self.controls.run_a.currentData() or 0),
            b=int(self.controls.run_b.currentData() or 0),
            colours=tuple(s.colour for s in self.run_sources),
        )

    def compute_runs(self) -> None:
        try:
            req = self.multi_request()
        except LandscapeError as exc:
            self.error.setText(str(exc))
            return
        if req.directions == "endpoints" and req.a == req.b:
            self.error.setText("Choose two different runs as A and B for the endpoints plane")
            return
        sources = list(self.run_sources)
        cancel = self._cancel = threading.Event()

        def work():
            subjects = [
                replace(lj.load_subject(s.checkpoint, s.record), name=s.name) for s in sources
            ]
            yield subjects
            yield from mr.run_many(subjects, req, should_stop=cancel.is_set)

        self._paths: list[mr.RunPath] = []
        self._names = [s.name for s in sources]
        self._start_job(work, req.base)
        # after the workspace's own handler, whose "Compute ... resumes from them" is for one
        # run (several runs keep no partial file)
        job = self.job
        job.finished.connect(lambda ok, j=job: self._runs_done(j))
        self.status.setText(f"Loading {len(sources)} runs and their data...")

    def _runs_done(self, job) -> None:
        # self.job is None here once the workspace's handler saw this job end
        if (self.job is not None and job is not self.job) or self.finished_ok:
            return
        if self.error.text():  # it failed: the message says why
            return
        if self._rows:
            self.status.setText(
                f"Cancelled after {self._rows} grid rows: they are shown; Compute starts again "
                "(a plane of several runs is not resumed)"
            )
        else:
            self.status.setText(
                "Cancelled before the first grid row: the map still shows what was there "
                "before; press Compute to start again"
            )

    def _multi_event(self, e) -> bool:
        """Handle a several-runs event; False for the events of one run."""
        if isinstance(e, list):  # the runs' subjects, loaded
            self.status.setText(
                # quote=False: a plain-text label would show "&#x27;" for the ' of "file's"
                f"{len(e)} runs of {html.escape(e[0].task, quote=False)}; data: "
                f"{html.escape(e[0].source, quote=False)}"
            )
        elif isinstance(e, mr.MultiPlanned):
            self.view.set_plane(e.alphas, e.betas)
            self.view.set_scale("log" if self.log.isChecked() else "linear")
            self.view.set_axes_words(e.axes)
            self._axes = e.axes
            notes = "".join(f"<br><i>{html.escape(n)}</i>" for n in e.notes)
            self.status.setText(self.status.text() + notes)
            self.progress.setFormat(f"grid row 0/{len(e.betas)}")
        elif isinstance(e, Row):
            return False  # as for one run
        elif isinstance(e, mr.RunPath):
            self._paths.append(e)
            self.view.set_grid(self.view.loss)
            self.view.set_runs(self._paths)
            self.progress.setFormat(f"path of {e.name} projected")
        elif isinstance(e, mr.Barrier):
            self.line.set_barrier(e, self._names)
        elif isinstance(e, mr.MultiDone):
            self.landscape = e.landscape
            self.landscape.meta["seconds"] = round(e.seconds, 2)
            self.finished_ok = True
            self.view.set_grid(e.landscape.loss)
            self.progress.setValue(100)
            self.progress.setFormat(f"done in {e.seconds:.1f} s")
            self._facts()
            self.message.emit(f"Landscape of {len(e.paths)} runs computed in {e.seconds:.1f} s")
        else:
            return False
        return True

    def show_runs_landscape(self, land: Landscape) -> None:
        """A landscape of several runs (computed or opened): the paths, legend and barrier."""
        self.view.set_runs(mr.paths_of(land))
        words = land.meta.get("axes")
        self.view.set_axes_words(tuple(words) if words else None)
        b = mr.barrier_of(land)
        names = [r.get("name", "") for r in land.meta.get("runs", [])]
        if b is not None:
            self.line.set_barrier(b, names)
        else:
            self.line.set_line(None, None)
        if not self.run_sources:  # a saved file: Source said "No run yet" beside its runs
            rows = [
                f'<span style="color:{colour_of(p, p.index)}">■</span> {p.index + 1}. '
                f"{html.escape(p.name)}"
                for p in mr.paths_of(land)
            ]
            self.source.setText(
                f"A saved landscape of {len(rows)} runs:<br>" + "<br>".join(rows) + "<br>To "
                "compute it again, select the runs in Train and press <b>Open in Landscape</b>."
            )


__all__ = ["MultiRunPanel", "RunSource", "facts_of_runs", "label_of", "refusal", "sources_of"]
