"""MNIST from IDX files: parsing, verified downloads into a per-user cache, and an offline
stand-in that is clearly labelled as what it is.

Where data comes from, in order: a folder the caller names (or ``LOSSLAB_DATA_DIR``), else the
per-user cache; a download happens only when asked. If only the official 10,000-image
*test* set is present, LeNet trains on a fixed 8,000-image split of it and validates on the
other 2,000, and the :class:`Dataset` says so in its ``source`` text.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core import fileio

ENV_VAR = "LOSSLAB_DATA_DIR"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {  # name -> md5 of the .gz, as published with the data set
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
TEST_SPLIT = 8000  # with only the test set: the first 8,000 (after a fixed shuffle) train
_SPLIT_SEED = 20_181_108

_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Progress = Callable[[str, int, int], None]  # (file name, bytes done, bytes total or 0)


class DataError(Exception):
    """A data file is missing, unreadable or corrupt; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    """Images and labels ready for training, with an honest description of their origin."""

    train_x: torch.Tensor  # (N, 1, 28, 28) float32 in [0, 1]
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    name: str  # "MNIST" or "synthetic digits (not MNIST)"
    source: str  # one line for the UI/CLI: where the data came from and how it was split


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("losslab")) / "mnist"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder to read MNIST from: the argument, ``$LOSSLAB_DATA_DIR``, or the user cache."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_cache_dir()


# --- IDX -------------------------------------------------------------------------------------


def parse_idx(raw: bytes, name: str = "file") -> np.ndarray:
    """Parse an IDX file (big-endian header: 0, 0, type code, number of dims, then sizes)."""
    if len(raw) < 4:
        raise DataError(f"{name}: too short to be an IDX file ({len(raw)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{name}: not an IDX file (bad magic number 0x{raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{name}: truncated or padded: {len(raw)} bytes, the header promises {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return parse_idx(raw, path.name)


def md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- download ----------------------------------------------------------------------------------


def download(
    folder: Path,
    names: Sequence[str] = tuple(FILES),
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] | None = None,
    progress: Progress | None = None,
    timeout: float = 15.0,
) -> list[Path]:
    """Make sure ``names`` are in ``folder`` with the right md5, fetching from ``mirrors``.

    A file already present with the right checksum is kept; a corrupt one is fetched again.
    Each mirror is tried in order; a download is written to a temporary file, verified, and
    only then renamed into place.
    """
    checksums = checksums or FILES
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create {folder} ({exc.strerror}); choose another data folder"
        ) from None
    out = []
    for name in names:
        target = folder / name
        want = checksums[name]
        if target.exists() and md5(target) == want:
            out.append(target)
            continue
        errors = []
        for mirror in mirrors:
            try:
                _fetch(mirror.rstrip("/") + "/" + name, target, want, progress, timeout)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError(
                f"could not download {name}: " + "; ".join(errors) + ". "
                f"Without network, copy the MNIST .gz files into {folder} "
                f"(or choose a data folder that has them, or set {ENV_VAR} to one)."
            )
        out.append(target)
    return out


def _fetch(url: str, target: Path, want: str, progress: Progress | None, timeout: float) -> None:
    """Stream ``url`` into ``target`` (temp file, md5 checked, then renamed); DataError if not."""

    def stream(f) -> None:
        h = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                while block := resp.read(1 << 16):
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(target.name, done, total)
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
            raise DataError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        if h.hexdigest() != want:
            raise DataError(f"{url}: checksum mismatch (got {h.hexdigest()}, want {want})")

    try:
        fileio.atomic_write(target, stream)  # a DataError inside leaves no file behind
    except OSError as exc:  # the disk, not the network
        raise DataError(str(exc)) from None


# --- MNIST -----------------------------------------------------------------------------------


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    return None


def _pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    img = _find(folder, f"{prefix}-images-idx3-ubyte")
    lab = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if img is None or lab is None:
        return None
    for path in (img, lab):
        want = FILES.get(path.name)
        if want and md5(path) != want:
            raise DataError(f"{path} is corrupt (md5 mismatch); delete it or fetch it again")
    x, y = read_idx(img), read_idx(lab)
    if x.ndim != 3 or x.shape[1:] != (28, 28) or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{img.name}/{lab.name}: not MNIST-shaped ({x.shape}, {y.shape})")
    return x, y


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return xt, torch.from_numpy(y.astype(np.int64))


def mnist_status(folder: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether MNIST can be loaded from ``folder`` (see :func:`data_dir`), in one line.

    Cheap: it looks for the files and does not read or check them (loading does that).
    """
    root = data_dir(folder)
    have = {
        prefix: _find(root, f"{prefix}-images-idx3-ubyte") is not None
        and _find(root, f"{prefix}-labels-idx1-ubyte") is not None
        for prefix in ("train", "t10k")
    }
    if have["train"] and have["t10k"]:
        return True, f"MNIST found in {root} (60,000 training + 10,000 test images)"
    if have["t10k"]:
        return True, (
            f"MNIST test set found in {root}: training uses a fixed 8,000-image split of it, "
            "validation the other 2,000"
        )
    return False, f"MNIST not found in {root}"


def load_mnist(folder: str | os.PathLike | None = None, limit: int | None = None) -> Dataset:
    """MNIST from ``folder`` (see :func:`data_dir`), never downloading.

    ``limit`` keeps the first ``limit`` training and ``limit // 4`` validation images (tests).
    """
    root = data_dir(folder)
    train = _pair(root, "train")
    test = _pair(root, "t10k")
    if train is not None and test is not None:
        tx, ty = _tensors(*train)
        vx, vy = _tensors(*test)
        source = f"MNIST from {root}: 60,000 training and 10,000 test images"
    elif test is not None:
        x, y = _tensors(*test)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
        cut = min(TEST_SPLIT, int(len(x) * 0.8))
        tx, ty, vx, vy = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
        source = (
            f"MNIST test set only (from {root}): training on a fixed {cut:,}-image split, "
            f"validating on the other {len(x) - cut:,}"
        )
    else:
        raise DataError(
            f"no MNIST files in {root}. Download them, copy the four .gz files there, choose "
            f"a data folder that has them (or set {ENV_VAR} to one), or train on the "
            "synthetic digits for an offline demo."
        )
    if limit:
        tx, ty, vx, vy = tx[:limit], ty[:limit], vx[: max(1, limit // 4)], vy[: max(1, limit // 4)]
    return Dataset(tx, ty, vx, vy, "MNIST", source)


@functools.lru_cache(maxsize=2)
def synthetic_digits(n_train: int = 4000, n_val: int = 1000, seed: int = 0) -> Dataset:
    """Offline stand-in: digits drawn with a font, randomly shifted, rotated, scaled and noised.

    It is *not* MNIST and says so; it exists so the LeNet demo runs with no data at all.
    Drawing 5,000 digits took ~1 s per run (each test, each GUI start); the same arguments
    give the same digits, so the last two sets are kept (16 MB each). Nothing writes into a
    Dataset's tensors: training indexes copies out of them.

    The training and validation digits come from two random streams of ``seed``, so the
    first n digits of either are the same whatever the sizes: a run limited to n images draws
    only those (as a prefix of the full set would give them).
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=22)
    glyphs = []
    for d in range(10):
        im = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(im).text(
            (14, 14), str(d), fill=255, font=font, anchor="mm", stroke_width=1, stroke_fill=255
        )
        glyphs.append(im)

    def make(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, stream])
        labels = np.empty(n, dtype=np.int64)
        images = np.empty((n, 28, 28), dtype=np.uint8)
        for i in range(n):  # one digit after another from the stream: n is a prefix's length
            labels[i] = d = int(rng.integers(0, 10))
            angle = rng.uniform(-15, 15)
            scale = rng.uniform(0.8, 1.15)
            dx, dy = rng.uniform(-3, 3, 2)
            im = glyphs[d].rotate(angle, resample=Image.BILINEAR, translate=(dx, dy))
            if scale != 1:
                size = max(8, int(28 * scale))
                im = im.resize((size, size), Image.BILINEAR)
                canvas = Image.new("L", (28, 28), 0)
                canvas.paste(im, ((28 - size) // 2, (28 - size) // 2))
                im = canvas
            arr = np.asarray(im, dtype=np.float32) + rng.normal(0, 20, (28, 28))
            images[i] = np.clip(arr, 0, 255).astype(np.uint8)
        return images, labels

    tx, ty = _tensors(*make(n_train, 0))
    vx, vy = _tensors(*make(n_val, 1))
    return Dataset(
        tx,
        ty,
        vx,
        vy,
        "synthetic digits (not MNIST)",
        f"synthetic font digits with random jitter and noise ({n_train:,} + {n_val:,}); NOT MNIST",
    )


__all__ = [
    "ENV_VAR",
    "FILES",
    "MIRRORS",
    "DataError",
    "Dataset",
    "data_dir",
    "download",
    "load_mnist",
    "md5",
    "mnist_status",
    "parse_idx",
    "read_idx",
    "synthetic_digits",
]
