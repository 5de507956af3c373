"""The Landscape workspace's exports: the plots as PNG or SVG, the data as LossLab's .npz,
loss-landscape's HDF5 layout or VTK PolyData for ParaView (core.landscape.formats)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from app.workspace import Export
from core.landscape import formats
from core.landscape.directions import LandscapeError

DATA_FILTERS = {
    ".npz": "NumPy archive (*.npz)",
    ".h5": "HDF5, loss-landscape's layout (*.h5 *.hdf5)",
    ".vtp": "VTK PolyData for ParaView (*.vtp)",
}


class LandscapeExports:
    """Mixed into LandscapeWorkspace: needs ``landscape``, ``centre`` (the plots' widget),
    ``error`` (a QLabel) and ``message`` (a signal)."""

    def export_png(self, path: str) -> bool:
        from app import export

        return self._write(lambda: export.write_png(path, export.widget_png(self.centre)), path)

    def export_svg(self, path: str) -> bool:
        from app import export

        return self._write(
            lambda: export.atomic_write(path, export.widget_svg(self.centre, "LossLab landscape")),
            path,
        )

    def export_data(self, path: str) -> bool:
        """The landscape's data in the format of ``path``'s suffix (.npz, .h5, .hdf5, .vtp)."""
        if self.landscape is None:
            self.error.setText("Nothing to export yet: compute a landscape first")
            return False
        return self._write(lambda: formats.save(self.landscape, path), path)

    export_npz = export_h5 = export_vtp = export_data

    def _write(self, action, path: str) -> bool:
        from app import export

        try:
            action()
        except (OSError, export.ExportError, LandscapeError) as exc:
            self.error.setText(f"Export failed: {exc}")
            return False
        self.error.setText("")
        self.message.emit(f"Exported {path}")
        return True

    def export_dialog(self, kind: str) -> None:
        """Ask for a path and write: ``kind`` is "png", "svg" or "data" (any data format)."""
        if kind == "png":
            filters, default, write = "PNG (*.png)", "landscape.png", self.export_png
        elif kind == "svg":
            filters, default, write = "SVG (*.svg)", "landscape.svg", self.export_svg
        elif kind == "data":
            filters, default, write = ";;".join(DATA_FILTERS.values()), "landscape.npz", None
        else:
            raise ValueError(f"Unknown export: {kind!r} (png, svg or data)")
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export", default, filters)
        if not path:
            return
        if write is not None:
            if not path.lower().endswith("." + kind):
                path += "." + kind
            write(path)
            return
        if Path(path).suffix.lower() not in formats.DATA_SUFFIXES:
            # no suffix typed: the one of the chosen filter
            suffix = next((s for s, f in DATA_FILTERS.items() if f == chosen), ".npz")
            path += suffix
        self.export_data(path)

    def exports(self) -> list[Export]:
        return [
            Export("Landscape as &PNG...", "PNG (*.png)", "landscape.png", self.export_png),
            Export("Landscape as &SVG...", "SVG (*.svg)", "landscape.svg", self.export_svg),
            Export(
                "Landscape data as &npz...",
                DATA_FILTERS[".npz"],
                "landscape.npz",
                self.export_npz,
            ),
            Export(
                "Landscape data as &HDF5 (loss-landscape)...",
                DATA_FILTERS[".h5"],
                "landscape.h5",
                self.export_h5,
            ),
            Export(
                "Landscape as &VTK for ParaView...",
                DATA_FILTERS[".vtp"],
                "landscape.vtp",
                self.export_vtp,
            ),
        ]


__all__ = ["DATA_FILTERS", "LandscapeExports"]
