"""LossLab's desktop GUI (PySide6 + pyqtgraph) and command line. Depends on core/."""
