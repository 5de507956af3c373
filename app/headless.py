"""The Qt application that the commands draw their pictures with: ``losslab race``,
``landscape``, ``curvature`` and the sweep maps write PNG, SVG, GIF and MP4 files with the
window's own views, and need no display for it (over ssh, in CI, on a cluster node)."""

from __future__ import annotations

import os


def headless_app():
    """The running QApplication, else a new one on Qt's offscreen platform (unless
    QT_QPA_PLATFORM names another). Call it before the first widget is made."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["losslab"])
