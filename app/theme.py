"""Light and dark palettes; "system" follows the OS where Qt can tell."""

from __future__ import annotations

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


def style_plot(plot, dark: bool) -> None:
    """Background and axis colours of a pyqtgraph PlotWidget for the theme."""
    plot.setBackground("#1e1f22" if dark else "w")
    for name in ("bottom", "left"):
        axis = plot.getAxis(name)
        axis.setPen("#8c8f94" if dark else "#606060")
        axis.setTextPen("#d0d0d0" if dark else "#202020")


def style_layout_view(widget, plot, readout, dark: bool) -> None:
    """Background, axes and read-out label of a GraphicsLayoutWidget-based view."""
    widget.setBackground("#1e1f22" if dark else "w")
    fg = "#d0d0d0" if dark else "#202020"
    for axis in ("bottom", "left"):
        plot.getAxis(axis).setTextPen(fg)
        plot.getAxis(axis).setPen(fg)
    readout.setAttr("color", fg)
    readout.setText(readout.text)
