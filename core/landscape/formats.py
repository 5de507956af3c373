"""Landscapes in other tools' files: loss-landscape's HDF5 layout (read and write) and VTK XML
PolyData for ParaView (write). Pure core: no Qt, and plain XML rather than a VTK dependency.

loss-landscape's layout (its plot_surface.py, plot_2D.py and h52vtp.py): ``xcoordinates`` (nx),
``ycoordinates`` (ny), ``train_loss`` and ``train_acc`` declared (nx, ny). Its ``crunch`` fills
them through ``losses.ravel()[ind]`` with the coordinates of ``np.meshgrid(x, y).ravel()[ind]``,
so the values lie in memory row by row of y, x varying fastest: the (ny, nx) grid of
``meshgrid`` that plot_2D contours with ``contour(X, Y, Z)``. That is LossLab's own layout
(rows are betas, columns alphas), so the grid is stored reshaped, never transposed; for the
square grids every tool computes the two agree element for element. Accuracy is in percent
there (LossLab keeps a fraction), and -1 marks a point not computed yet (NaN in LossLab).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from core import __version__, fileio
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Line

H5_FORMAT = "losslab-landscape-h5-1"
LOSS_KEYS = ("train_loss", "test_loss")  # the surface read, in order of preference
NOT_COMPUTED = -1.0  # loss-landscape's marker for a point still to compute
FOREIGN = "loss-landscape"  # directions of a file LossLab did not write: not known here


# --- HDF5: writing ---------------------------------------------------------------------------


def h5_bytes(land: Landscape) -> bytes:
    """``land`` as an HDF5 file in loss-landscape's layout, with LossLab's own data beside it:
    attributes ``directions``, ``precision``, ``samples``, ``meta`` (JSON); datasets
    ``losslab/{centre,d1,d2,explained,extras/*}``; and the projected path as loss-landscape's
    ``proj_xcoord``/``proj_ycoord`` (with ``explained_variance_ratio_`` for PCA), so one file
    serves as its surface, direction and projection file at once."""
    import h5py

    ny, nx = np.shape(land.loss)
    if (len(land.alphas), len(land.betas)) != (nx, ny):
        raise LandscapeError(
            f"the loss grid is {ny}x{nx} but the axes have {len(land.betas)} betas and "
            f"{len(land.alphas)} alphas"
        )
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["xcoordinates"] = np.asarray(land.alphas, dtype=np.float64)
        f["ycoordinates"] = np.asarray(land.betas, dtype=np.float64)
        f["train_loss"] = _to_theirs(land.loss, 1.0)
        if land.acc is not None:
            f["train_acc"] = _to_theirs(land.acc, 100.0)
        f.attrs["losslab_format"] = H5_FORMAT
        f.attrs["losslab_version"] = __version__
        f.attrs["directions"] = land.directions
        f.attrs["precision"] = land.precision
        f.attrs["samples"] = int(land.n_eval)
        f.attrs["meta"] = json.dumps(land.meta, default=str)
        ours = f.create_group("losslab")
        for key in ("centre", "d1", "d2"):
            ours[key] = np.asarray(getattr(land, key))
        if land.explained is not None:
            ours["explained"] = np.asarray(land.explained)
            f["explained_variance_ratio_"] = np.asarray(land.explained, dtype=np.float64)
        extras = ours.create_group("extras")
        for key, value in land.extras.items():
            value = np.asarray(value)
            if value.dtype.kind == "U":  # run names: HDF5 keeps text as UTF-8 strings
                extras.create_dataset(
                    key, data=[v.encode() for v in value.ravel()], dtype=h5py.string_dtype()
                )
            else:
                extras[key] = value
        path = land.extras.get("path")
        if path is not None and np.ndim(path) == 2 and np.shape(path)[1] == 2:
            f["proj_xcoord"] = np.asarray(path, dtype=np.float64)[:, 0]
            f["proj_ycoord"] = np.asarray(path, dtype=np.float64)[:, 1]
    return buf.getvalue()


def _to_theirs(grid: np.ndarray, scale: float) -> np.ndarray:
    """(ny, nx) rows-are-betas grid -> loss-landscape's (nx, ny) dataset, same memory order.
    NaN and inf stay (matplotlib leaves them out of contours): writing their -1 for them would
    turn a diverged point, whose accuracy is known, into a loss of -1."""
    grid = np.asarray(grid, dtype=np.float64) * scale
    ny, nx = grid.shape
    return grid.reshape(nx, ny)


def write_h5(land: Landscape, path: str | os.PathLike) -> Path:
    """Write ``land`` atomically as ``.h5`` (see :func:`h5_bytes`); OSError names the path."""
    return fileio.atomic_write(Path(path), h5_bytes(land))


# --- HDF5: reading ---------------------------------------------------------------------------


def read_h5(path: str | os.PathLike) -> Landscape | Line:
    """A loss-landscape surface file (2-D: a :class:`Landscape`; 1-D: a :class:`Line`), or one
    LossLab wrote (everything it saved comes back). LandscapeError names what is wrong."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"no landscape file at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise LandscapeError(f"{path} is not an HDF5 file (or it is damaged)") from None
    try:
        with f:
            return _read(f, path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, LandscapeError):
            raise
        raise LandscapeError(f"{path} could not be read as a landscape: {exc}") from None


def _read(f, path: Path) -> Landscape | Line:
    loss_key = next((k for k in LOSS_KEYS if k in f), None)
    missing = [k for k in ("xcoordinates",) if k not in f]
    if loss_key is None:
        missing.append("train_loss")
    if missing:
        raise LandscapeError(
            f"{path} has no {' and no '.join(missing)} dataset: a loss-landscape surface file "
            "holds xcoordinates, ycoordinates (2-D) and train_loss"
        )
    x = _axis(f, "xcoordinates", path)
    raw_loss = _dataset(f, loss_key, path)
    acc_key = loss_key.replace("loss", "acc")
    raw_acc = _dataset(f, acc_key, path) if acc_key in f else None
    if "ycoordinates" not in f:
        if raw_loss.shape != (len(x),):
            raise LandscapeError(
                f"{path}: {loss_key} has shape {raw_loss.shape}; a 1-D file without "
                f"ycoordinates needs one value per xcoordinate ({len(x)},)"
            )
        loss, acc = _unmark(raw_loss, _shaped(raw_acc, (len(x),), acc_key, path))
        order = np.argsort(x, kind="stable")
        return Line(x[order], loss[order], None if acc is None else acc[order] / 100.0)
    y = _axis(f, "ycoordinates", path)
    nx, ny = len(x), len(y)
    loss = _grid(raw_loss, nx, ny, loss_key, path)
    acc = None if raw_acc is None else _grid(raw_acc, nx, ny, acc_key, path)
    if f.attrs.get("losslab_format") == H5_FORMAT:
        return _ours(f, x, y, loss, None if acc is None else acc / 100.0)
    loss, acc = _unmark(loss, acc)
    acc = None if acc is None else acc / 100.0
    # loss-landscape writes increasing linspace axes; a file with a reversed one is flipped
    ix, iy = np.argsort(x, kind="stable"), np.argsort(y, kind="stable")
    loss = loss[np.ix_(iy, ix)]
    acc = None if acc is None else acc[np.ix_(iy, ix)]
    meta = {"source": FOREIGN, "file": str(path), "surface": loss_key}
    if "dir_file" in f:
        meta["dir_file"] = _text(f["dir_file"][()])
    extras = {}
    if "proj_xcoord" in f and "proj_ycoord" in f:
        px, py = np.ravel(f["proj_xcoord"][()]), np.ravel(f["proj_ycoord"][()])
        if px.shape == py.shape:
            extras["projected_path"] = np.stack([px, py], axis=1).astype(np.float64)
    explained = None
    if "explained_variance_ratio_" in f:
        explained = np.asarray(f["explained_variance_ratio_"][()], dtype=np.float64)[:2]
    empty = np.zeros(0, dtype=np.float32)  # the plane's vectors live in their direction file
    return Landscape(
        x[ix], y[iy], loss, acc, empty, empty, empty, FOREIGN, "fp32", 0, explained, meta, extras
    )


def _ours(f, x, y, loss, acc) -> Landscape:
    ours = f["losslab"]
    import h5py

    extras = {
        k: np.asarray(v.asstr()[()], dtype=str) if h5py.check_string_dtype(v.dtype) else
        np.asarray(v[()])
        for k, v in ours["extras"].items()
    }  # fmt: skip
    return Landscape(
        x,
        y,
        loss,
        acc,
        np.asarray(ours["centre"][()]),
        np.asarray(ours["d1"][()]),
        np.asarray(ours["d2"][()]),
        _text(f.attrs["directions"]),
        _text(f.attrs.get("precision", "fp32")),
        int(f.attrs.get("samples", 0)),
        np.asarray(ours["explained"][()]) if "explained" in ours else None,
        dict(json.loads(_text(f.attrs.get("meta", "{}")))),
        extras,
    )


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dataset(f, key: str, path: Path) -> np.ndarray:
    import h5py

    node = f[key]
    if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "fiu":
        raise LandscapeError(f"{path}: {key} is not an array of numbers")
    return np.asarray(node[()], dtype=np.float64)


def _axis(f, key: str, path: Path) -> np.ndarray:
    a = _dataset(f, key, path)
    if a.ndim != 1 or len(a) < 2:
        raise LandscapeError(f"{path}: {key} must list at least 2 coordinates, has {a.shape}")
    if not np.isfinite(a).all() or len(np.unique(a)) != len(a):
        raise LandscapeError(f"{path}: {key} must be distinct finite numbers")
    return a


def _grid(values: np.ndarray, nx: int, ny: int, key: str, path: Path) -> np.ndarray:
    """loss-landscape's (nx, ny) dataset -> the (ny, nx) grid; a (ny, nx) one (meshgrid's
    shape, as other tools write it) holds the same memory order, so it reads the same way."""
    if values.shape not in ((nx, ny), (ny, nx)):
        raise LandscapeError(
            f"{path}: {key} has shape {values.shape}, but xcoordinates ({nx}) and "
            f"ycoordinates ({ny}) need ({nx}, {ny})"
        )
    return values.reshape(ny, nx)


def _shaped(values, shape, key: str, path: Path):
    if values is not None and values.shape != shape:
        raise LandscapeError(f"{path}: {key} has shape {values.shape}, expected {shape}")
    return values


def _unmark(loss: np.ndarray, acc: np.ndarray | None):
    """loss-landscape's -1 (not computed yet) -> NaN, LossLab's marker for the same. A loss
    of exactly -1 with an accuracy of -1% can only be the marker."""
    todo = loss == NOT_COMPUTED
    if acc is not None:
        todo &= acc == NOT_COMPUTED
    loss = np.where(todo, np.nan, loss)
    return loss, None if acc is None else np.where(todo, np.nan, acc)


# --- any landscape file by its suffix --------------------------------------------------------


def load(path: str | os.PathLike) -> Landscape | Line:
    """A saved landscape: LossLab's .npz, or an .h5/.hdf5 (loss-landscape's or LossLab's)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return Landscape.load(path)
    elif suffix in (".h5", ".hdf5"):
        return read_h5(path)
    else:
        raise LandscapeError(f"{path}: unknown landscape file; use .npz, .h5 or .hdf5")


DATA_SUFFIXES = (".npz", ".h5", ".hdf5", ".vtp")  # what :func:`save` writes


def save(land: Landscape, path: str | os.PathLike) -> Path:
    """``land`` by the suffix of ``path``: LossLab's .npz, loss-landscape's HDF5 layout (.h5,
    .hdf5) or VTK XML PolyData for ParaView (.vtp). Atomic; OSError names the path and the
    reason, LandscapeError an unknown suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return land.save(path)
    elif suffix in (".h5", ".hdf5"):
        return write_h5(land, path)
    elif suffix == ".vtp":
        return write_vtp(land, path)
    else:
        raise LandscapeError(f"{path}: unknown format; use one of {', '.join(DATA_SUFFIXES)}")


# --- VTK XML PolyData ------------------------------------------------------------------------


def vtp_bytes(land: Landscape, height: str = "loss", with_path: bool = True) -> bytes:
    """The surface as VTK XML PolyData (ASCII, version 0.1: every ParaView reads it).

    Points ``(alpha, beta, z)`` with ``z`` the loss (``height="loss"``) or its log10
    (``"log"``); two triangles per grid cell whose corners are all computed; point arrays
    ``loss``, ``log10_loss`` (and ``accuracy``). With ``with_path`` and a projected path, the
    path as one polyline on the surface (its points carry the plane's loss there)."""
    loss = np.asarray(land.loss, dtype=np.float64)
    ny, nx = loss.shape
    if (len(land.alphas), len(land.betas)) != (nx, ny):
        raise LandscapeError(f"the loss grid is {ny}x{nx} but the axes do not match it")
    log = _log10(loss)
    if height == "loss":
        z = loss
    elif height == "log":
        z = log
    else:
        raise ValueError(f"unknown height {height!r}: 'loss' or 'log'")
    acc = None if land.acc is None else np.asarray(land.acc, dtype=np.float64)
    a, b = np.meshgrid(np.asarray(land.alphas, float), np.asarray(land.betas, float))
    # VTK's ASCII reader stops at a NaN: points not computed (or diverged) are left out
    ok = np.isfinite(z) & (True if acc is None else np.isfinite(acc))
    ok = ok.ravel()
    index = np.cumsum(ok) - 1  # grid point -> point number (finite points only)
    points = np.column_stack([a.ravel(), b.ravel(), z.ravel()])[ok]
    arrays = {"loss": loss.ravel()[ok], "log10_loss": log.ravel()[ok]}
    if acc is not None:
        arrays["accuracy"] = acc.ravel()[ok]
    k = np.arange(ny * nx).reshape(ny, nx)
    c00, c10, c11, c01 = k[:-1, :-1], k[:-1, 1:], k[1:, 1:], k[1:, :-1]
    tris = np.concatenate(
        [np.stack([c00, c10, c11], -1).reshape(-1, 3), np.stack([c00, c11, c01], -1).reshape(-1, 3)]
    )  # counter-clockwise seen from above: normals point up, towards higher loss
    tris = index[tris[ok[tris].all(axis=1)]]
    line = np.zeros(0, dtype=np.int64)
    path = land.extras.get("path", land.extras.get("projected_path")) if with_path else None
    if path is not None and np.ndim(path) == 2 and np.shape(path)[1] == 2 and len(path) >= 2:
        p = np.asarray(path, dtype=np.float64)
        given = land.extras.get("path_plane_loss")
        if given is not None and np.shape(given) == (len(p),):
            p_loss = np.asarray(given, dtype=np.float64)
        else:
            p_loss = _bilinear(land, loss, p)
        p_vals = {"loss": p_loss, "log10_loss": _log10(p_loss, loss)}
        if acc is not None:
            p_vals["accuracy"] = _bilinear(land, acc, p)
        keep = np.logical_and.reduce([np.isfinite(v) for v in p_vals.values()])
        if keep.sum() >= 2:
            pz = p_vals["loss"] if height == "loss" else p_vals["log10_loss"]
            line = np.arange(int(keep.sum())) + len(points)
            points = np.concatenate([points, np.column_stack([p[keep], pz[keep]])])
            for name, values in p_vals.items():
                arrays[name] = np.concatenate([arrays[name], values[keep]])
    n_lines = 1 if len(line) else 0
    out = [
        '<?xml version="1.0"?>',
        '<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">',
        "  <PolyData>",
        f'    <Piece NumberOfPoints="{len(points)}" NumberOfVerts="0" '
        f'NumberOfLines="{n_lines}" NumberOfStrips="0" NumberOfPolys="{len(tris)}">',
        '      <PointData Scalars="loss">',
    ]
    for name, values in arrays.items():
        out += [_array(name, "Float64", values)]
    out += ["      </PointData>", "      <Points>"]
    out += [_array("Points", "Float64", points, components=3), "      </Points>"]
    out += ["      <Lines>"]
    out += [_array("connectivity", "Int64", line)]
    out += [_array("offsets", "Int64", np.array([len(line)] if n_lines else [], dtype=np.int64))]
    out += ["      </Lines>", "      <Polys>"]
    out += [_array("connectivity", "Int64", tris.ravel())]
    out += [_array("offsets", "Int64", 3 * np.arange(1, len(tris) + 1))]
    out += ["      </Polys>", "    </Piece>", "  </PolyData>", "</VTKFile>", ""]
    return "\n".join(out).encode()


def write_vtp(
    land: Landscape, path: str | os.PathLike, height: str = "loss", with_path: bool = True
) -> Path:
    """Write ``land`` atomically as ``.vtp`` (see :func:`vtp_bytes`); OSError names the path."""
    return fileio.atomic_write(Path(path), vtp_bytes(land, height, with_path))


def _log10(values: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """log10 of the loss shifted to be positive, with a floor: the heatmap's log scale (a
    loss can be 0 or negative), fitted to ``grid`` (``values`` itself by default)."""
    ref = np.asarray(values if grid is None else grid, dtype=np.float64)
    finite = ref[np.isfinite(ref)]
    if finite.size == 0:
        return np.full(np.shape(values), np.nan)
    floor = max(float(np.percentile(finite, 99)) * 1e-9, 1e-12)
    shift = min(0.0, float(finite.min()))
    with np.errstate(invalid="ignore"):
        return np.log10(np.maximum(np.asarray(values, dtype=np.float64) - shift, floor))


def _bilinear(land: Landscape, grid: np.ndarray, path: np.ndarray) -> np.ndarray:
    """``grid`` (rows betas) bilinearly interpolated at the path's points; NaN off the plane."""
    x, y = np.asarray(land.alphas, float), np.asarray(land.betas, float)
    px, py = path[:, 0], path[:, 1]
    inside = (x[0] <= px) & (px <= x[-1]) & (y[0] <= py) & (py <= y[-1])
    i = np.clip(np.searchsorted(x, px) - 1, 0, len(x) - 2)
    j = np.clip(np.searchsorted(y, py) - 1, 0, len(y) - 2)
    tx = (px - x[i]) / (x[i + 1] - x[i])
    ty = (py - y[j]) / (y[j + 1] - y[j])
    z = (
        grid[j, i] * (1 - tx) * (1 - ty)
        + grid[j, i + 1] * tx * (1 - ty)
        + grid[j + 1, i] * (1 - tx) * ty
        + grid[j + 1, i + 1] * tx * ty
    )
    return np.where(inside, z, np.nan)


def _array(name: str, kind: str, values: np.ndarray, components: int = 1) -> str:
    values = np.asarray(values).ravel()
    if kind == "Int64":
        text = " ".join(map(str, values.astype(np.int64).tolist()))
    elif kind == "Float64":
        values = values.astype(np.float64)
        if not np.isfinite(values).all():  # left out above: VTK's ASCII reader stops at one
            raise LandscapeError(f"VTK array {name} has values that are not finite")
        text = " ".join(map(repr, values.tolist()))  # repr: the shortest exact text
    else:
        raise ValueError(f"unknown VTK type {kind}")
    extra = f' NumberOfComponents="{components}"' if components != 1 else ""
    return (
        f'        <DataArray type="{kind}" Name="{name}"{extra} format="ascii">\n'
        f"          {text}\n        </DataArray>"
    )
