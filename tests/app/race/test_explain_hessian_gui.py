"""The explain panel's curvature: the Hessian's eigenpairs, the lr limit and the λ arrows (#17)."""

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core.race.session import SurfaceChoice


@pytest.fixture
def ws(race_ws):
    return race_ws


def panel_text(ws) -> str:
    return ws.window().findChild(QtWidgets.QTextBrowser, "explain_text").toPlainText()


def arrow_centre(ws) -> np.ndarray:
    """Where the λ1 arrow is drawn: the middle of its line."""
    xs, ys = ws.curvature_arrows.parts[0]["line"].getData()
    return np.array([xs.mean(), ys.mean()])


def test_the_arrows_and_text_follow_the_selected_racer(ws, qtbot):
    ws.c.set_surface(SurfaceChoice("rosenbrock"))
    ws.c.set_hyper(0, "lr", 0.05)  # plain SGD far above 2/λmax at the start
    ws.table.selectRow(0)
    text = panel_text(ws)
    assert "Curvature at (-1.5, 2)" in text and "λ1 = " in text and "λ2 = " in text
    assert "lr 0.05 > 2/λmax = " in text and "plain gradient descent oscillates" in text
    arrows = ws.curvature_arrows
    assert arrows.visible()
    np.testing.assert_allclose(arrow_centre(ws), [-1.5, 2.0], atol=1e-9)
    labels = [p["label"].toPlainText() for p in arrows.parts]
    assert labels[0].startswith("λ1 = ") and labels[1].startswith("λ2 = ")
    # under the racers' heads: they must never be hidden by the arrows
    assert all(item.zValue() < ws.view.heads.zValue() for item in arrows.items)

    ws.c.step(3)  # the racers part ways; Adam is racer 2
    ws.table.selectRow(2)
    qtbot.waitUntil(lambda: "Adam" in panel_text(ws).splitlines()[0], timeout=2000)
    np.testing.assert_allclose(arrow_centre(ws), ws.c.race.positions[2, 0], atol=1e-9)
    text = panel_text(ws)
    assert "Adam divides each coordinate's gradient by" in text and "does not apply" in text

    box = ws.window().findChild(QtWidgets.QCheckBox, "explain_curvature_arrows")
    box.setChecked(False)
    assert not arrows.visible()
    assert "Curvature at" in panel_text(ws)  # the text stays; only the arrows go
    box.setChecked(True)
    assert arrows.visible()


def test_a_saddle_is_explained_and_drawn_dashed(ws):
    ws.c.set_surface(SurfaceChoice("saddle"))
    ws.table.selectRow(0)
    ws.c.step(1)
    assert "Curvature is negative along v2" in panel_text(ws)
    line = ws.curvature_arrows.parts[1]["line"]
    assert line.opts["pen"].style() == QtCore.Qt.PenStyle.DashLine
    assert ws.curvature_arrows.parts[0]["line"].opts["pen"].style() == QtCore.Qt.PenStyle.SolidLine


def test_a_diverged_racer_is_told_why(ws):
    ws.c.set_surface(SurfaceChoice("rosenbrock"))
    ws.c.set_hyper(0, "lr", 0.05)
    ws.table.selectRow(0)
    ws.c.step(30)
    assert ws.c.race.diverged_at[0, 0] >= 0
    text = panel_text(ws)
    assert "diverged at step" in text and "lr 0.05 > 2/λmax" in text


def test_bad_formulas_kinks_and_nan_points_do_not_crash(ws, qtbot):
    panel = ws.surface_panel
    edit = ws.window().findChild(QtWidgets.QLineEdit, "formula")
    edit.setText("x**2 + (")  # a syntax error: told under the box, the surface stays
    panel._apply_formula()
    assert ws.window().findChild(QtWidgets.QLabel, "surface_error").text()
    assert "Curvature at" in panel_text(ws)

    ws.c.set_surface(SurfaceChoice("formula", "abs(x) + y**2", (-3, 3, -3, 3)))
    ws.c.set_start(0.0, 1.0)  # on the kink
    ws.table.selectRow(0)
    assert "Not smooth here" in panel_text(ws)

    ws.c.set_surface(SurfaceChoice("formula", "sqrt(x) + y**2", (-3, 3, -3, 3)))
    ws.c.set_start(-1.0, 0.5)  # nan loss: every racer is held there at once
    ws.table.selectRow(0)
    text = panel_text(ws)
    assert "No curvature here" in text
    assert not ws.curvature_arrows.visible()
    ws.c.step(2)  # still nothing to crash on
    assert "No curvature here" in panel_text(ws)


def test_a_racer_starting_where_the_formula_is_nan_is_not_told_to_lower_its_lr(ws):
    """sqrt(x) at x < 0: the racer "diverges" at step 0; a smaller lr cannot help."""
    ws.c.set_surface(SurfaceChoice("formula", "sqrt(x)+y**2", (-2.0, 2.0, -2.0, 2.0)))
    ws.c.set_start(-1.0, 1.0)
    ws.table.selectRow(0)
    ws.c.step(2)
    text = panel_text(ws)
    assert "diverged at step 0" in text and "never left its start" in text
    assert "smaller learning rate" not in text
    assert "No curvature here" in text


def test_a_racer_name_with_markup_is_shown_as_typed(ws):
    ws.c.set_surface(SurfaceChoice("quadratic"))
    ws.c.set_options(0, name="lr <0.1> & up")
    ws.table.selectRow(0)
    assert panel_text(ws).startswith("lr <0.1> & up")


def test_the_lambda_labels_stay_clear_of_the_legend_and_inside_the_plot(ws, qtbot):
    """At a small window (922x760 shows it) the λ labels used to sit under the racers' legend
    or past the plot's edge; each must land in the plot, clear of the legend and each other."""
    ws.c.set_surface(SurfaceChoice("rosenbrock"))
    ws.table.selectRow(0)
    ws.c.step(60)
    ws.resize(914, 700)  # the workspace of a 922x760 window
    vb, legend = ws.view.plot.vb, ws.view.legend
    labels = [p["label"] for p in ws.curvature_arrows.parts]

    def placed() -> bool:
        inside = vb.sceneBoundingRect().adjusted(-1, -1, 1, 1)
        rects = [label.sceneBoundingRect() for label in labels]
        return (
            all(label.isVisible() for label in labels)
            and all(inside.contains(r) for r in rects)
            and not any(r.intersects(legend.sceneBoundingRect()) for r in rects)
            and not rects[0].intersects(rects[1])
        )

    qtbot.waitUntil(placed, timeout=2000)
    assert legend.isVisible() and len(legend.items) == len(ws.c.specs)


def test_the_arrow_keys_are_never_cut_off_in_a_narrow_window(ws, qtbot):
    """At the smallest window the keys wrap to three lines; they got one line's height."""
    ws.resize(914, 520)  # the workspace of the smallest window
    keys = [
        ws.findChild(QtWidgets.QLabel, name)
        for name in ("explain_arrows_key", "explain_curvature_arrows_key")
    ]

    def whole() -> bool:
        return all(k.height() >= k.heightForWidth(k.width()) for k in keys)

    qtbot.waitUntil(whole, timeout=2000)
    line = keys[0].fontMetrics().lineSpacing()
    assert all(k.heightForWidth(k.width()) > 1.5 * line for k in keys)  # they do wrap here
    ws.resize(1430, 850)  # wide again: one line each, no gaps left behind
    qtbot.waitUntil(lambda: all(k.height() < 1.5 * line + 6 for k in keys), timeout=2000)
