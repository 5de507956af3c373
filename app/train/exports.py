"""What the Train tab writes: the drawn runs' curves (CSV, JSON) and the plots (PNG, SVG)."""

from __future__ import annotations

from PySide6 import QtWidgets

from app.train.runs import runs_csv
from core.train.runs import save_runs


def csv(ws, path: str) -> None:
    from app import export

    data = runs_csv(ws.plots.drawn(), ws.plots.smoothing.value() / 100)
    export.atomic_write(path, data)


def json(ws, path: str) -> None:
    save_runs([r.record for r in ws.plots.drawn()], path)


def image(ws, path: str) -> None:
    """PNG (pixels, at 2x) or SVG (vectors) of the plots."""
    from app import export

    with ws.plots.export_view() as plots:  # the plots and legend alone, on plain white
        if path.lower().endswith(".svg"):
            data = export.widget_svg(plots, "LossLab training")
        else:
            image = export.widget_png(plots)
    if path.lower().endswith(".svg"):
        export.atomic_write(path, data)
    else:
        export.write_png(path, image)


def write(ws, action, path: str) -> bool:
    """Run ``action``; a failure is a message in the workspace's error label."""
    from app import export

    try:
        action()
    except (OSError, export.ExportError) as exc:
        ws.error.setText(f"Export failed: {exc}")
        ws.message.emit("Export failed")
        return False
    ws.message.emit(f"Exported {path}")
    return True


FILTERS = {
    "csv": ("runs.csv", "CSV (*.csv)"),
    "json": ("runs.json", "JSON (*.json)"),
    "image": ("training.png", "PNG image (*.png);;SVG image (*.svg)"),
}


def dialog(ws, kind: str) -> None:
    """Ask where, then export ``kind`` (csv, json or image)."""
    if kind not in FILTERS:
        raise ValueError(f"Unknown export: {kind!r} (choose {', '.join(FILTERS)})")
    name, filt = FILTERS[kind]
    path, chosen = QtWidgets.QFileDialog.getSaveFileName(ws, "Export", name, filt)
    if not path:
        return
    if kind == "image":
        if not path.lower().endswith((".png", ".svg")):
            path += ".svg" if "svg" in chosen else ".png"
        ws.export_image(path)
    elif kind == "csv":
        ws.export_csv(path if path.endswith(".csv") else path + ".csv")
    elif kind == "json":
        ws.export_json(path if path.endswith(".json") else path + ".json")
    else:
        raise AssertionError("unreachable")
