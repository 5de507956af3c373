"""core/landscape/formats.py: loss-landscape's HDF5 layout read and written with the right
orientation, LossLab's own landscapes round-tripped through it, VTK XML PolyData for ParaView."""

import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest

from core.landscape import formats
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Line


def surface(x, y):
    """Asymmetric in every way: a transposed or flipped grid gives other values."""
    return 1.0 + x + 10.0 * y + 0.5 * x * y**2


def loss_landscape_file(path, x, y, acc=True, unfinished=()):
    """An .h5 made as loss-landscape's plot_surface.py makes one: setup_surface_file writes the
    coordinates, crunch allocates (nx, ny) arrays of -1 and fills ``losses.ravel()[ind]`` with
    the loss at ``np.meshgrid(x, y)`` raveled at ``ind`` (its scheduler.get_unplotted_indices)."""
    with h5py.File(path, "w") as f:
        f["dir_file"] = "model_300.t7_weights_xignore=biasbn_xnorm=filter.h5"
        f["xcoordinates"] = x
        f["ycoordinates"] = y
        losses = -np.ones(shape=(len(x), len(y)))
        accuracies = -np.ones(shape=(len(x), len(y)))
        xm, ym = np.meshgrid(x, y)
        for ind in range(losses.size):
            if ind in unfinished:
                continue
            losses.ravel()[ind] = surface(xm.ravel()[ind], ym.ravel()[ind])
            accuracies.ravel()[ind] = 50.0 + 10 * xm.ravel()[ind]  # percent, as theirs
        f["train_loss"] = losses
        if acc:
            f["train_acc"] = accuracies


def plane(nx=6, ny=5, path=True) -> Landscape:
    x, y = np.linspace(-1, 1, nx), np.linspace(0.1, 1.5, ny)  # loss > 0: plain log10
    xm, ym = np.meshgrid(x, y)
    extras = {}
    if path:
        pts = np.column_stack([np.linspace(-0.8, 0.3, 7), np.linspace(1.2, 0.2, 7)])
        extras = {
            "path": pts,
            "path_off": np.linspace(0, 0.1, 7),
            "path_steps": np.arange(7) * 10,
            "path_loss": surface(*pts.T) - 0.01,
            "path_plane_loss": surface(*pts.T),
            "path_epochs": np.array([0, 3, 6]),
            "line_t": np.linspace(-0.25, 1.25, 9),
            "line_loss": np.linspace(3, 1, 9),
        }
    rng = np.random.default_rng(0)
    return Landscape(
        x,
        y,
        surface(xm, ym),
        0.5 + 0.1 * xm,
        rng.normal(size=40).astype(np.float32),
        rng.normal(size=40).astype(np.float32),
        rng.normal(size=40).astype(np.float32),
        "pca",
        "bf16",
        512,
        np.array([0.7, 0.2]),
        {"run": "lenet", "task": "mnist", "span": 1.0},
        extras,
    )


# --- reading loss-landscape's files --------------------------------------------------------------


@pytest.mark.parametrize("nx, ny", [(7, 7), (6, 4)])
def test_a_loss_landscape_file_opens_the_right_way_round(tmp_path, nx, ny):
    x, y = np.linspace(-1, 1, nx), np.linspace(-2, 3, ny)
    loss_landscape_file(tmp_path / "surf.h5", x, y, unfinished={3})
    land = formats.read_h5(tmp_path / "surf.h5")
    assert isinstance(land, Landscape)
    np.testing.assert_array_equal(land.alphas, x)
    np.testing.assert_array_equal(land.betas, y)
    assert land.loss.shape == (ny, nx)  # rows are betas, columns alphas
    for j, b in enumerate(y):
        for i, a in enumerate(x):
            if j * nx + i == 3:
                assert np.isnan(land.loss[j, i]) and np.isnan(land.acc[j, i])  # their -1
            else:
                assert land.loss[j, i] == pytest.approx(surface(a, b))
                assert land.acc[j, i] == pytest.approx((50 + 10 * a) / 100)  # a fraction
    assert not land.complete
    assert land.directions == "loss-landscape" and land.meta["source"] == "loss-landscape"
    assert land.meta["dir_file"].startswith("model_300.t7")


def test_their_1d_file_opens_as_a_line(tmp_path):
    x = np.linspace(-0.5, 1.5, 9)
    with h5py.File(tmp_path / "line.h5", "w") as f:
        f["xcoordinates"] = x
        f["train_loss"] = x**2 + x
        f["train_acc"] = np.full(9, 80.0)
    line = formats.load(tmp_path / "line.h5")
    assert isinstance(line, Line)
    np.testing.assert_array_equal(line.t, x)
    np.testing.assert_allclose(line.loss, x**2 + x)
    np.testing.assert_allclose(line.acc, 0.8)


def test_a_written_file_plots_right_in_their_scripts(tmp_path):
    """plot_2D.py: ``X, Y = np.meshgrid(x, y)``, ``Z = f['train_loss'][:]``, contour(X, Y, Z):
    Z must be the loss at (X, Y) element for element; h52vtp.py pairs the same raveled."""
    land = plane(nx=7, ny=7, path=False)
    formats.write_h5(land, tmp_path / "ours.h5")
    with h5py.File(tmp_path / "ours.h5", "r") as f:
        x, y = f["xcoordinates"][:], f["ycoordinates"][:]
        xm, ym = np.meshgrid(x, y)
        z = np.array(f["train_loss"][:])
        assert f["train_loss"].shape == (len(x), len(y))
        np.testing.assert_allclose(z, surface(xm, ym))
        np.testing.assert_allclose(f["train_acc"][:], 100 * (0.5 + 0.1 * xm))  # percent
        assert f.attrs["directions"] == "pca" and f.attrs["precision"] == "bf16"
        assert f.attrs["samples"] == 512


def test_a_non_square_grid_keeps_their_memory_order(tmp_path):
    """crunch's ``ravel()[ind]`` order: x fastest, whatever the declared (nx, ny) shape."""
    land = plane(nx=6, ny=4, path=False)
    formats.write_h5(land, tmp_path / "ours.h5")
    with h5py.File(tmp_path / "ours.h5", "r") as f:
        z = f["train_loss"][:]
        assert z.shape == (6, 4)
        xm, ym = np.meshgrid(f["xcoordinates"][:], f["ycoordinates"][:])
        np.testing.assert_allclose(z.ravel(), surface(xm, ym).ravel())


# --- round trips ---------------------------------------------------------------------------------


def test_round_trip_npz_h5_npz(tmp_path):
    first = plane()
    first.loss[1, 2] = np.nan  # not computed: stays so
    first.loss[2, 3] = np.inf  # diverged, its accuracy known: not a loss of -1
    first.save(tmp_path / "a.npz")
    loaded = formats.load(tmp_path / "a.npz")
    formats.write_h5(loaded, tmp_path / "a.h5")
    again = formats.load(tmp_path / "a.h5")
    again.save(tmp_path / "b.npz")
    back = Landscape.load(tmp_path / "b.npz")
    for name in ("alphas", "betas", "loss", "centre", "d1", "d2", "explained"):
        np.testing.assert_array_equal(getattr(back, name), getattr(first, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(first, name).dtype, name
    np.testing.assert_allclose(back.acc, first.acc, rtol=1e-14)  # via percent
    assert np.isnan(back.loss[1, 2]) and back.loss[2, 3] == np.inf
    assert (back.directions, back.precision, back.n_eval) == ("pca", "bf16", 512)
    assert back.meta == first.meta
    assert sorted(back.extras) == sorted(first.extras)
    for key, value in first.extras.items():
        np.testing.assert_array_equal(back.extras[key], value, err_msg=key)


def test_the_path_is_also_in_their_projection_layout(tmp_path):
    land = plane()
    formats.write_h5(land, tmp_path / "p.h5")
    with h5py.File(tmp_path / "p.h5", "r") as f:
        np.testing.assert_array_equal(f["proj_xcoord"][:], land.extras["path"][:, 0])
        np.testing.assert_array_equal(f["proj_ycoord"][:], land.extras["path"][:, 1])
        np.testing.assert_array_equal(f["explained_variance_ratio_"][:], [0.7, 0.2])


# --- bad files -----------------------------------------------------------------------------------


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"weights": np.zeros(3)}, "has no xcoordinates and no train_loss dataset"),
        ({"xcoordinates": np.arange(3.0)}, "has no train_loss dataset"),
        (
            {"xcoordinates": np.arange(3.0), "ycoordinates": np.arange(4.0), "train_loss": 0},
            "train_loss has shape (), but xcoordinates (3) and ycoordinates (4) need (3, 4)",
        ),
        (
            {
                "xcoordinates": np.arange(3.0),
                "ycoordinates": np.arange(4.0),
                "train_loss": np.zeros((3, 5)),
            },
            "train_loss has shape (3, 5), but xcoordinates (3) and ycoordinates (4) need (3, 4)",
        ),
        (
            {
                "xcoordinates": np.arange(3.0),
                "ycoordinates": np.arange(4.0),
                "train_loss": np.zeros((3, 4)),
                "train_acc": np.zeros((2, 2)),
            },
            "train_acc has shape (2, 2)",
        ),
        (
            {"xcoordinates": np.arange(3.0), "train_loss": np.zeros(4)},
            "train_loss has shape (4,); a 1-D file without ycoordinates needs one value per "
            "xcoordinate (3,)",
        ),
        ({"xcoordinates": [1.0], "train_loss": [2.0]}, "at least 2 coordinates"),
        ({"xcoordinates": [1.0, np.nan], "train_loss": [2.0, 1]}, "distinct finite numbers"),
        ({"xcoordinates": np.arange(2.0), "train_loss": b"text"}, "not an array of numbers"),
    ],
)
def test_bad_h5_files_say_what_is_missing(tmp_path, datasets, message):
    path = _h5(tmp_path / "bad.h5", **datasets)
    with pytest.raises(LandscapeError) as err:
        formats.load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_not_an_h5_file(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"PK\x03\x04 not hdf5")
    with pytest.raises(LandscapeError, match="is not an HDF5 file"):
        formats.read_h5(tmp_path / "x.h5")
    with pytest.raises(LandscapeError, match="no landscape file at"):
        formats.read_h5(tmp_path / "missing.h5")
    with pytest.raises(LandscapeError, match="use .npz, .h5 or .hdf5"):
        formats.load(tmp_path / "x.csv")


def test_an_unwritable_path_leaves_nothing(tmp_path):
    (tmp_path / "a_file").write_text("")
    for write in (formats.write_h5, formats.write_vtp):
        with pytest.raises(OSError, match="cannot write"):
            write(plane(), tmp_path / "a_file" / "x.out")
        with pytest.raises(OSError, match="does not exist"):
            write(plane(), tmp_path / "missing" / "x.out")
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


# --- VTK -----------------------------------------------------------------------------------------


def _piece(data: bytes):
    root = ET.fromstring(data)
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    (piece,) = root.iter("Piece")
    return piece


def _values(node, name: str) -> np.ndarray:
    (array,) = [a for a in node.iter("DataArray") if a.get("Name") == name]
    return np.array(array.text.split(), dtype=float)


def test_vtp_has_the_surface_and_the_path(tmp_path):
    land = plane(nx=6, ny=5)
    formats.write_vtp(land, tmp_path / "s.vtp")
    piece = _piece((tmp_path / "s.vtp").read_bytes())
    n_path = len(land.extras["path"])
    assert int(piece.get("NumberOfPoints")) == 6 * 5 + n_path
    assert int(piece.get("NumberOfPolys")) == 2 * 5 * 4  # two triangles per cell
    assert int(piece.get("NumberOfLines")) == 1
    points = _values(piece.find("Points"), "Points").reshape(-1, 3)
    np.testing.assert_allclose(points[:30, 2], surface(points[:30, 0], points[:30, 1]))
    np.testing.assert_allclose(points[30:, :2], land.extras["path"])
    np.testing.assert_allclose(points[30:, 2], land.extras["path_plane_loss"])
    point_data = piece.find("PointData")
    loss = _values(point_data, "loss")
    assert len(loss) == len(points) and len(_values(point_data, "accuracy")) == len(points)
    np.testing.assert_allclose(_values(point_data, "log10_loss")[:30], np.log10(loss[:30]))
    polys = piece.find("Polys")
    tris = _values(polys, "connectivity").reshape(-1, 3).astype(int)
    assert tris.max() < 30  # triangles use surface points only
    np.testing.assert_array_equal(_values(polys, "offsets"), 3 * np.arange(1, 41))
    # counter-clockwise seen from above (normals up): positive signed area in x, y
    a, b, c = (points[tris[:, k], :2] for k in range(3))
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    assert (cross > 0).all()
    lines = piece.find("Lines")
    np.testing.assert_array_equal(_values(lines, "connectivity"), 30 + np.arange(n_path))
    np.testing.assert_array_equal(_values(lines, "offsets"), [n_path])


def test_vtp_leaves_out_points_not_computed():
    """VTK's ASCII reader stops at a NaN: those points and their triangles are left out."""
    land = plane(nx=4, ny=4, path=False)
    land.loss[0, 0] = np.nan  # a corner
    land.loss[2, 2] = np.inf
    piece = _piece(formats.vtp_bytes(land, height="log"))
    assert int(piece.get("NumberOfPoints")) == 14
    # corner (0,0) is in both triangles of its cell; the inner point (2,2) in 6 triangles
    assert int(piece.get("NumberOfPolys")) == 18 - 2 - 6
    assert int(piece.get("NumberOfLines")) == 0
    text = formats.vtp_bytes(land).decode().lower()
    assert "nan" not in text and "inf" not in text
    points = _values(piece.find("Points"), "Points").reshape(-1, 3)
    np.testing.assert_allclose(points[:, 2], _values(piece.find("PointData"), "log10_loss"))
    with pytest.raises(ValueError, match="unknown height"):
        formats.vtp_bytes(land, height="sqrt")


def test_vtp_of_a_loss_landscape_file_draws_its_projected_path(tmp_path):
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 5)
    loss_landscape_file(tmp_path / "s.h5", x, y, acc=False)
    with h5py.File(tmp_path / "s.h5", "a") as f:
        f["proj_xcoord"] = [0.0, 0.5, 0.9]
        f["proj_ycoord"] = [0.0, -0.25, 0.5]
    land = formats.read_h5(tmp_path / "s.h5")
    assert land.acc is None
    piece = _piece(formats.vtp_bytes(land))
    assert int(piece.get("NumberOfPoints")) == 25 + 3
    points = _values(piece.find("Points"), "Points").reshape(-1, 3)
    # bilinear on a surface that is linear along each axis: the exact loss at the path
    np.testing.assert_allclose(points[25:, 2], surface(points[25:, 0], points[25:, 1]), rtol=0.05)


def test_save_and_load_by_suffix(tmp_path):
    land = plane()
    for name in ("l.npz", "l.h5", "l.HDF5"):
        formats.save(land, tmp_path / name)
        back = formats.load(tmp_path / name)
        np.testing.assert_array_equal(back.loss, land.loss)
        np.testing.assert_array_equal(back.extras["path"], land.extras["path"])
    formats.save(land, tmp_path / "l.vtp")
    assert int(_piece((tmp_path / "l.vtp").read_bytes()).get("NumberOfLines")) == 1
    with pytest.raises(LandscapeError, match=r"l\.obj: unknown format; use one of .npz, .h5"):
        formats.save(land, tmp_path / "l.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.HDF5", "l.h5", "l.npz", "l.vtp"]
