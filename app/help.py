"""Help that helps: a short guided tour of each workspace, and the README's sections inside the
app (so the help works without a browser or a network).

The tour walks through a workspace one step at a time: it shows the tab, outlines the widget the
step talks about (a workspace attribute; a step whose widget is missing still shows its text),
and offers "Read more", which opens the matching README section. The README comes from the
source checkout (with its pictures) or, installed from a wheel, from the package's metadata (the
same text; each picture becomes its caption): see :func:`app.resources.find_readme`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.resources import find_readme

PICTURE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Step:
    widget: str | None  # the workspace attribute holding the widget to outline; None: none
    text: str  # rich text


# tab index -> (title, README section, steps)
TOURS: dict[int, tuple[str, str, list[Step]]] = {
    0: (
        "The Race workspace",
        "The Race workspace",
        [
            Step(
                "view",
                "<b>The surface.</b> A classic 2-D loss surface as a heatmap with contours. "
                "<b>Click</b> it (or drag the white ring) to choose where the racers start; "
                "hover to read x, y and the loss.",
            ),
            Step(
                "surface_panel",
                "<b>Choose a surface</b> from the list or type your own formula in x and y, "
                "or load one of the <b>presets</b>: each one teaches one lesson.",
            ),
            Step(
                "table",
                "<b>The racers.</b> Each row is a real <code>torch.optim</code> optimizer. "
                "Tick to enable, double-click to rename or recolour.",
            ),
            Step(
                "editor",
                "<b>The selected racer's settings</b>, generated from the optimizer's own "
                "signature: every hyperparameter, a schedule, clipping and noise. Changes apply "
                "live; a value out of range is marked red with the reason beside it.",
            ),
            Step(
                "transport",
                "<b>Play</b> (Space), <b>step</b> (Right) and <b>reset</b> (R) while the Race "
                "tab is shown. Speed is in steps per frame.",
            ),
            Step(
                "explain",
                "<b>Explain</b> shows the selected racer's last step with the real numbers: "
                "the gradient, the step taken, momentum, all checked against torch.optim.",
            ),
        ],
    ),
    1: (
        "The Train workspace",
        "The Train workspace",
        [
            Step(
                "controls",
                "<b>Choose a task</b> (sine fit, linear regression, LeNet-5 on MNIST, ...), "
                "its loss, optimizer and schedule. Every box says its range in its tooltip.",
            ),
            Step(
                "start_btn",
                "<b>Start</b> (Ctrl+Return) trains on a worker thread; Pause (Ctrl+P) and Stop "
                "(Ctrl+.) are beside it.",
            ),
            Step(
                "plots",
                "<b>Live curves</b>: training loss per step, validation loss and accuracy per "
                "epoch, the learning rate. Hover to read every run's values.",
            ),
            Step(
                "table",
                "<b>Runs</b> stay in the list: tick several to compare them, reopen saved ones, "
                "and send a finished run to the Landscape tab.",
            ),
        ],
    ),
    2: (
        "The Landscape workspace",
        "The Landscape workspace",
        [
            Step(
                None,
                "<b>The loss landscape</b> of a trained model: press <b>Open in Landscape</b> "
                "on a finished Train run, or open a run, a checkpoint, your own model file or a "
                "saved landscape (.npz, or loss-landscape's .h5).",
            ),
            Step(
                "compute_btn",
                "<b>Compute</b> evaluates the loss on a plane through the checkpoint, row by "
                "row on a worker thread. Cancel keeps what is done, and the next Compute with "
                "the same settings resumes it.",
            ),
            Step(
                "view",
                "<b>The map and the path</b>: the training path projected on the plane, with "
                "start, end and epoch markers. Hover a point for its true loss and how far off "
                "the plane it lies.",
            ),
        ],
    ),
}


def readme_section(title: str, readme: Path | None = None) -> str | None:
    """The Markdown of the README section headed ``title`` (up to the next heading of the same
    or a higher level); None when the README or the section is missing. ``readme``: that file
    instead of the one :func:`~app.resources.find_readme` finds."""
    found = find_readme(readme)
    return None if found is None else section_of(found.text, title)


def section_of(text: str, title: str) -> str | None:
    lines = text.splitlines()
    headings = _headings(lines)  # (line index, level, title), outside code blocks
    for k, (i, level, name) in enumerate(headings):
        if name == title:
            end = next((j for j, lv, _ in headings[k + 1 :] if lv <= level), len(lines))
            # pictures are relative to the README; the text browser is told where that is
            return "\n".join(lines[i:end])
    return None


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """Markdown headings: ``# title`` lines that are not inside a fenced code block (where
    ``# a comment`` in a shell example is not a heading)."""
    out, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^(#+)\s+(.*)$", line)
        if m:
            out.append((i, len(m.group(1)), m.group(2).strip()))
    return out


class ReadmeDialog(QtWidgets.QDialog):
    """One README section, rendered, with its pictures."""

    def __init__(self, title: str, parent=None, readme: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"LossLab help: {title}")
        self.browser = QtWidgets.QTextBrowser()
        self.browser.setObjectName("readmeBrowser")
        self.browser.setOpenExternalLinks(True)
        found = find_readme(readme)
        body = None if found is None else section_of(found.text, title)
        if found is None:
            where = readme or "beside the package, nor in its metadata"
            self.browser.setPlainText(
                f"The help text (README.md, section '{title}') is not where LossLab expects "
                f"it: {where}. Reinstall LossLab, or read the README in its source."
            )
        elif body is None:
            self.browser.setPlainText(
                f"The README ({found.source}) has no section '{title}': it is not where LossLab "
                "expects it."
            )
        elif found.folder is None:  # installed: the pictures stay in the source's assets/
            self.browser.setMarkdown(
                PICTURE.sub(lambda m: f"*(picture in the source README: {m.group(1)})*", body)
            )
        else:
            self.browser.setSearchPaths([str(found.folder)])  # pictures are relative to it
            self.browser.setMarkdown(body)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
        self.resize(760, 620)


class _Outline(QtWidgets.QWidget):
    """A coloured frame drawn over a widget of the window (mouse clicks pass through)."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QtGui.QPainter(self)
        p.setPen(QtGui.QPen(QtGui.QColor("#3574f0"), 4))
        p.drawRoundedRect(self.rect().adjusted(2, 2, -2, -2), 6, 6)


class TourDialog(QtWidgets.QDialog):
    """A workspace's tour: Back / Next through its steps, the widget of each outlined."""

    def __init__(self, window: QtWidgets.QMainWindow, tab: int) -> None:
        super().__init__(window)
        self.window_, self.tab = window, tab
        title, self.section, self.steps = TOURS[tab]
        self.setWindowTitle(f"Tour: {title}")
        self.setModal(False)
        self.index = 0
        self.outline = _Outline(window)
        self.text = QtWidgets.QLabel()
        self.text.setObjectName("tourText")
        self.text.setWordWrap(True)
        self.text.setMinimumWidth(360)
        self.counter = QtWidgets.QLabel()
        self.back = QtWidgets.QPushButton("Back")
        self.next = QtWidgets.QPushButton("Next")
        self.next.setObjectName("tourNext")
        more = QtWidgets.QPushButton("Read more...")
        more.setToolTip(f"The README's section '{self.section}'")
        more.clicked.connect(lambda: ReadmeDialog(self.section, self).exec())
        self.back.clicked.connect(lambda: self.show_step(self.index - 1))
        self.next.clicked.connect(self._next)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.counter)
        row.addStretch(1)
        row.addWidget(more)
        row.addWidget(self.back)
        row.addWidget(self.next)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addLayout(row)
        self.finished.connect(lambda _: self.outline.hide())
        window.tabs.setCurrentIndex(tab)
        self.show_step(0)

    def _next(self) -> None:
        if self.index + 1 < len(self.steps):
            self.show_step(self.index + 1)
        else:
            self.accept()

    def target(self) -> QtWidgets.QWidget | None:
        name = self.steps[self.index].widget
        if name is None:
            return None
        w = getattr(self.window_.tabs.widget(self.tab), name, None)
        return w if isinstance(w, QtWidgets.QWidget) and w.isVisible() else None

    def show_step(self, index: int) -> None:
        self.index = max(0, min(index, len(self.steps) - 1))
        self.text.setText(self.steps[self.index].text)
        self.counter.setText(f"{self.index + 1} of {len(self.steps)}")
        self.back.setEnabled(self.index > 0)
        self.next.setText("Done" if self.index + 1 == len(self.steps) else "Next")
        w = self.target()
        if w is None:
            self.outline.hide()
            return
        top_left = w.mapTo(self.window_, QtCore.QPoint(0, 0))
        self.outline.setGeometry(QtCore.QRect(top_left, w.size()).adjusted(-3, -3, 3, 3))
        self.outline.show()
        self.outline.raise_()
