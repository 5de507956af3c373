"""The Hessian at the selected racer: its eigenvectors as arrows on the surface, and the text.

The arrows are items added once to a :class:`~app.views.surface_view.SurfaceView`'s plot and
updated in place. Each eigenvector is drawn as a double-headed arrow through the racer (its
sign means nothing), with a black halo so it shows on every colour of the heatmap on light and
dark themes, under the racers' heads so it never hides one.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from core.race.hessian import PointCurvature, Stability
from core.race.stability import racer_stability

EIGEN_COLOURS = ("#ffb300", "#c59bff")  # lambda1 amber, lambda2 light violet
# Half-length of the larger |lambda|'s arrow as a share of the view's smaller side, measured
# like the step arrows' (0.14) but longer, so the labels sit past their tips.
ARROW_SHARE = 0.2
MIN_SHARE = 0.5  # the smaller arrow is never shorter than this share (sqrt of |l2|/|l1|)
Z = 15  # above the paths (10), below the racers' heads (20) and the step arrows (25)


class CurvatureArrows:
    """Two double-headed arrows along the Hessian's eigenvectors, labelled lambda1/lambda2."""

    def __init__(self, view) -> None:
        self.view = view
        self.curvature: PointCurvature | None = None
        self.parts: list[dict] = []
        for i, colour in enumerate(EIGEN_COLOURS):
            halo = pg.PlotDataItem(pen=pg.mkPen("#000000", width=6))
            line = pg.PlotDataItem(pen=pg.mkPen(colour, width=3))
            heads = [
                pg.ArrowItem(
                    headLen=13, tipAngle=36, brush=colour, pen=pg.mkPen("#000000", width=1)
                )
                for _ in range(2)
            ]
            label = pg.TextItem("", color=colour, fill=pg.mkBrush(0, 0, 0, 190), anchor=(0.5, 0.5))
            items = [halo, line, *heads, label]
            for item in items:
                item.setZValue(Z)
                item.setVisible(False)
                view.plot.addItem(item)
            self.parts.append({"halo": halo, "line": line, "heads": heads, "label": label, "i": i})
        # Arrow heads and label places are in pixels: a zoom or a resize must redraw them, on
        # the next turn of the event loop: while the view box resizes, its mapping to pixels
        # is still the old one (labels then landed under the legend or off the plot).
        self._redo = QtCore.QTimer(view)
        self._redo.setSingleShot(True)
        self._redo.setInterval(0)
        self._redo.timeout.connect(lambda: self.show(self.curvature))
        view.plot.vb.sigRangeChanged.connect(lambda *_: self._redo.start())
        view.plot.vb.sigResized.connect(lambda *_: self._redo.start())

    @property
    def items(self) -> list:
        out = []
        for p in self.parts:
            out += [p["halo"], p["line"], *p["heads"], p["label"]]
        return out

    def visible(self) -> bool:
        return any(item.isVisible() for item in self.items)

    def hide(self) -> None:
        self.show(None)

    def show(self, curv: PointCurvature | None) -> None:
        """Arrows for ``curv`` at its point; hidden when None or when it has no numbers."""
        self.curvature = curv
        if curv is None or not curv.finite or not np.isfinite(curv.point).all():
            for item in self.items:
                item.setVisible(False)
            return
        vb = self.view.plot.vb
        (x0, x1), (y0, y1) = vb.viewRange()
        sx = (x1 - x0) / max(1.0, vb.width())  # data units per pixel
        sy = (y1 - y0) / max(1.0, vb.height())
        lams = curv.eigenvalues
        span = ARROW_SHARE * min(x1 - x0, y1 - y0)
        biggest = max(abs(lams[0]), abs(lams[1]))
        taken: list[QtCore.QRectF] = []  # the labels placed so far, in scene pixels
        for part in self.parts:
            i = part["i"]
            lam = float(lams[i])
            share = 1.0 if biggest == 0 else max(MIN_SHARE, math.sqrt(abs(lam) / biggest))
            d = curv.eigenvectors[:, i]  # (2,) unit in data coordinates
            half = d * span * share  # (2,) data units
            pix = np.array([half[0] / sx, half[1] / sy])  # the same vector in pixels
            a, b = curv.point - half, curv.point + half
            pen_style = QtCore.Qt.PenStyle.DashLine if lam < 0 else QtCore.Qt.PenStyle.SolidLine
            pen = pg.mkPen(EIGEN_COLOURS[i], width=3, style=pen_style)
            part["line"].setPen(pen)
            for item in (part["halo"], part["line"]):
                item.setData([a[0], b[0]], [a[1], b[1]])
            angle = math.degrees(math.atan2(-pix[1], pix[0]))  # screen y points down
            for head, tip, turn in ((part["heads"][0], b, 180), (part["heads"][1], a, 0)):
                head.setStyle(angle=turn + angle)
                head.setPos(*tip)
            part["label"].setText(f"λ{i + 1} = {lam:.4g}")
            taken.append(self._place_label(part["label"], a, b, pix, (sx, sy), taken))
            for item in (part["halo"], part["line"], *part["heads"], part["label"]):
                item.setVisible(True)

    def _place_label(self, label, a, b, pix, scale, taken: list) -> QtCore.QRectF:
        """Put ``label`` just past the "+" tip ``b`` of the arrow ``a``-``b`` (``pix``: its
        half in pixels), else past the "-" tip, else a line or two above or below: the first
        place inside the plot that is clear of the racers' legend and of the rects in
        ``taken`` (in a small window the arrows reach under the legend), else the least
        covered one. Its scene rect."""
        vb = self.view.plot.vb
        sx, sy = scale
        ux, uy = pix / max(1e-12, float(np.hypot(*pix)))  # unit, y up
        w, h = label.textItem.boundingRect().width(), label.textItem.boundingRect().height()
        inside = vb.sceneBoundingRect()
        legend = self.view.legend
        blocked = list(taken)
        if legend.isVisible() and legend.items:
            blocked.append(legend.sceneBoundingRect())
        candidates = []  # (anchor, position in data units, scene rect), best first
        for lines in (0, 1, -1, 2, -2):
            for tip, sign in ((b, 1.0), (a, -1.0)):
                anchor = (0.5 - 0.5 * sign * ux, 0.5 + 0.5 * sign * uy)
                pos = tip + sign * np.array([6 * ux * sx, 6 * uy * sy])  # 6 px past the tip
                p = vb.mapViewToScene(QtCore.QPointF(*pos))
                rect = QtCore.QRectF(p.x() - anchor[0] * w, p.y() - anchor[1] * h, w, h)
                # a line down (or up), then pulled inside the plot
                dy = lines * (h + 2)
                rect.translate(0, dy)
                dx = max(0.0, inside.left() - rect.left()) - max(0.0, rect.right() - inside.right())
                dy2 = max(0.0, inside.top() - rect.top()) - max(
                    0.0, rect.bottom() - inside.bottom()
                )
                rect.translate(dx, dy2)
                candidates.append((anchor, pos + np.array([dx * sx, -(dy + dy2) * sy]), rect))

        def overlap(c) -> float:
            parts = [c[2].intersected(r) for r in blocked]
            return sum(q.width() * q.height() for q in parts if not q.isEmpty())

        anchor, pos, rect = min(candidates, key=overlap)  # min keeps the first of equals
        label.setAnchor(anchor)
        label.setPos(*pos)
        return rect


def legend_html() -> str:
    """The key of the eigen arrows, in the style of the step arrows' key."""
    swatches = "  ".join(
        f"<span style='color:{c}; background:#777777'>&#9632;</span> λ{i + 1}"
        for i, c in enumerate(EIGEN_COLOURS)
    )
    return f"{swatches} &nbsp;<i>(longer: larger |λ|; dashed: curves down)</i>"


def curvature_block(race, r: int) -> tuple[PointCurvature, str]:
    """The curvature at racer ``r``'s current point (first start) and its block of text."""
    curv, st = racer_stability(race, r)
    return curv, curvature_html(curv, st)


def curvature_html(curv: PointCurvature, st: Stability) -> str:
    """The curvature block of the explain panel: the eigenpairs, then the limit's sentences."""
    if not curv.finite:
        return f"<p><b>Curvature:</b> {html.escape(' '.join(st.lines))}</p>"
    x, y = curv.point
    pairs = ", ".join(
        f"<span style='color:{c}; background:#777777'>&#9632;</span> "
        f"λ{i + 1} = {curv.eigenvalues[i]:.4g} along v{i + 1} "
        f"({curv.eigenvectors[0, i]:+.2f}, {curv.eigenvectors[1, i]:+.2f})"
        for i, c in enumerate(EIGEN_COLOURS)
    )
    head = f"<b>Curvature</b> at ({x:.4g}, {y:.4g}): {pairs}"
    sentences = [html.escape(s) for s in st.lines]
    if sentences and st.kind != "none" and math.isfinite(st.limit):
        colour = "#e04040" if st.exceeded else "#3cb44b"
        at = next((j for j, s in enumerate(st.lines) if s.startswith("lr ")), None)
        if at is not None:
            sentences[at] = f"<b style='color:{colour}'>{sentences[at]}</b>"
    return f"<p>{head}</p><p>{' '.join(sentences)}</p>"


__all__ = ["EIGEN_COLOURS", "CurvatureArrows", "curvature_block", "curvature_html", "legend_html"]
