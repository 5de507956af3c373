"""The main window: three workspaces in tabs."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from core import __version__

_PLANNED = {
    "Race": (
        "Real torch.optim optimizers racing across classic loss surfaces, step by step, with "
        "live hyperparameters and explanations of every step."
    ),
    "Train": (
        "Real PyTorch training on a background thread (sine fit, linear regression, LeNet-5 on "
        "MNIST) with live loss and accuracy curves."
    ),
    "Landscape": (
        "The loss landscape of the model you just trained, with its training path on it."
    ),
}


class MainWindow(QtWidgets.QMainWindow):
    """LossLab's main window."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"LossLab {__version__}")
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        for name, text in _PLANNED.items():
            self.tabs.addTab(self._placeholder(name, text), name)
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage("Ready")
        quit_action = self.menuBar().addMenu("&File").addAction("&Quit")
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        self.resize(1280, 800)

    @staticmethod
    def _placeholder(name: str, text: str) -> QtWidgets.QWidget:
        label = QtWidgets.QLabel(
            f"<h2>{name}</h2><p>{text}</p><p><i>This workspace is being "
            "built; the engine behind it already runs headless.</i></p>"
        )
        label.setWordWrap(True)
        label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        label.setMargin(40)
        return label
