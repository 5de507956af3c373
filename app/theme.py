"""Light and dark palettes; "system" follows the OS where Qt can tell."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

THEMES = ("system", "light", "dark")


def system_is_dark() -> bool:
    hints = QtGui.QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    return scheme is not None and scheme() == QtCore.Qt.ColorScheme.Dark


def apply_theme(app: QtWidgets.QApplication, theme: str) -> bool:
    """Apply ``theme``; returns True when the result is dark."""
    if theme not in THEMES:
        raise ValueError(f"Invalid theme: {theme!r} (choose {', '.join(THEMES)})")
    dark = system_is_dark() if theme == "system" else theme == "dark"
    if app.style().name().lower() != "fusion":  # setting it again would re-polish every widget
        app.setStyle("Fusion")
    app.setPalette(_dark_palette() if dark else app.style().standardPalette())
    return dark


def _dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    R = QtGui.QPalette.ColorRole
    base, window, text = QtGui.QColor("#1e1f22"), QtGui.QColor("#2b2d30"), QtGui.QColor("#dfe1e5")
    for role, colour in (
        (R.Window, window),
        (R.WindowText, text),
        (R.Base, base),
        (R.AlternateBase, window),
        (R.ToolTipBase, window),
        (R.ToolTipText, text),
        (R.Text, text),
        (R.Button, window),
        (R.ButtonText, text),
        (R.BrightText, QtGui.QColor("#ff6b5a")),
        (R.Highlight, QtGui.QColor("#3574f0")),
        (R.HighlightedText, QtGui.QColor("#ffffff")),
        (R.Link, QtGui.QColor("#7fb3ff")),
        (R.PlaceholderText, QtGui.QColor("#8c8f94")),
    ):
        p.setColor(role, colour)
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for role in (R.Text, R.ButtonText, R.WindowText):
        p.setColor(disabled, role, QtGui.QColor("#6f737a"))
    return p


def tick_strings(values, scale: float, spacing: float) -> list[str]:
    """Tick labels that carry their real value, short: 0.0002, 0.5, 70000, 1.5e6, 2e-6.

    pyqtgraph's own labels divide by an SI prefix named only in the axis title ("(x0.001)"),
    which a narrow plot cuts off: a validation loss of 0.1 read as 100.
    """
    vals = [v * scale for v in values]
    step = abs(spacing * scale)
    top = max((abs(v) for v in vals), default=0.0)
    if not vals or step == 0 or not math.isfinite(top) or top == 0:
        return [f"{v:g}" for v in vals]
    exp_top = math.floor(math.log10(top))
    digits = max(1, exp_top - math.floor(math.log10(step)) + 1)  # enough to tell ticks apart
    if -4 <= exp_top < 6:
        digits = max(digits, exp_top + 1)  # 70000, not 7e4
    out = []
    for v in vals:
        text = "0" if abs(v) < step * 1e-6 else f"{v:.{digits}g}"
        if "e" in text:  # 1.5e+06 -> 1.5e6, 2e-06 -> 2e-6
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        out.append(text)
    return out


def readable_axes(plot_item) -> None:
    """Real values on the ticks of a PlotItem's left and bottom axes (see tick_strings)."""
    for name in ("bottom", "left"):
        axis = plot_item.getAxis(name)
        axis.enableAutoSIPrefix(False)
        if getattr(axis, "_readable", False):
            continue

        def strings(values, scale, spacing, axis=axis, own=axis.tickStrings):
            if axis.logMode:
                return own(values, scale, spacing)  # pyqtgraph's 10^k labels
            return tick_strings(values, scale, spacing)

        axis.tickStrings = strings
        if name == "left":
            axis.tickSpacing = _roomy(axis.tickSpacing)
        axis._readable = True


LABEL_PX = 28  # the height a y tick label needs, with the gap to the next one


def _roomy(own):
    """pyqtgraph's tickSpacing with fewer major ticks on a short y axis: it puts at least 2.25
    intervals on any axis, so a 90 px plot got six labels touching each other. Steps stay in
    the 1-2-5 series."""

    def spacing(min_val, max_val, size):
        levels = own(min_val, max_val, size)
        if not levels:
            return levels
        major, offset = levels[0]
        span = abs(max_val - min_val)
        room = max(2.0, size / LABEL_PX)
        while major > 0 and span / major > room:
            lead = major / 10 ** math.floor(math.log10(major) + 1e-9)
            major *= 2.5 if round(lead) == 2 else 2.0
        return [(major, offset)] + [lv for lv in levels[1:] if lv[0] < major]

    return spacing


def plot_background(dark: bool) -> str:
    """The plots' background colour for the theme."""
    return "#1e1f22" if dark else "#ffffff"


def style_plot(plot, dark: bool) -> None:
    """Background and axis colours of a pyqtgraph PlotWidget for the theme; real values on
    the ticks (no SI prefix hidden in the axis title)."""
    plot.setBackground(plot_background(dark))
    readable_axes(plot.getPlotItem())
    for name in ("bottom", "left"):
        axis = plot.getAxis(name)
        axis.setPen("#8c8f94" if dark else "#606060")
        axis.setTextPen("#d0d0d0" if dark else "#202020")


def style_legend(legend, dark: bool, backed: bool = False) -> None:
    """A pyqtgraph legend's names for the theme (its default is a faint grey). ``backed``: on
    a nearly opaque plot-coloured background, so names over a curve stay readable."""
    if backed:
        bg = QtGui.QColor(plot_background(dark))
        bg.setAlpha(225)
        legend.setBrush(bg)
    legend.setLabelTextColor("#d0d0d0" if dark else "#202020")
    for _, label in legend.items:
        label.setText(label.text)  # the new colour applies on the next setText


def style_layout_view(widget, plot, readout, dark: bool) -> None:
    """Background, axes and read-out label of a GraphicsLayoutWidget-based view."""
    widget.setBackground("#1e1f22" if dark else "w")
    fg = "#d0d0d0" if dark else "#202020"
    readable_axes(plot)
    for axis in ("bottom", "left"):
        plot.getAxis(axis).setTextPen(fg)
        plot.getAxis(axis).setPen(fg)
    readout.setAttr("color", fg)
    readout.setText(readout.text)
