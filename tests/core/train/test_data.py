import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core.train import data
from core.train.data import DataError, download, load_mnist, parse_idx, synthetic_digits

SHARED = os.environ.get(data.ENV_VAR)


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = struct.pack(">HBB", 0, codes[arr.dtype.type], arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def test_idx_round_trip_and_errors():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    big = np.array([1, -2, 300], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(big)), big)
    raw = idx_bytes(images)
    with pytest.raises(DataError, match="truncated"):
        parse_idx(raw[:-1])
    with pytest.raises(DataError, match="bad magic"):
        parse_idx(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00")


def test_download_tries_mirrors_verifies_md5_and_replaces_corrupt_files(server, tmp_path):
    files = {
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8))),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8))),
    }
    sums = {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    server.routes = {f"/good/{n}": b for n, b in files.items()}
    server.routes.update({f"/corrupt/{n}": b[:-3] + b"xyz" for n, b in files.items()})
    server.hits = []
    mirrors = [f"{server.url}/missing/", f"{server.url}/corrupt/", f"{server.url}/good/"]
    progress = []
    # a corrupt copy already in the cache must be detected and fetched again
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    got = download(
        tmp_path,
        names=list(files),
        mirrors=mirrors,
        checksums=sums,
        progress=lambda *a: progress.append(a),
    )
    assert [p.name for p in got] == list(files)
    for name, body in files.items():
        assert (tmp_path / name).read_bytes() == body
    assert any("/missing/" in h for h in server.hits)  # failed mirror tried first
    assert any("/corrupt/" in h for h in server.hits)  # corrupt mirror rejected
    assert progress and progress[-1][1] == progress[-1][2]
    assert not list(tmp_path.glob("*.part"))  # no half-written files left
    assert not list(tmp_path.glob(".*.tmp"))
    # a second call finds good files and fetches nothing
    server.hits = []
    download(tmp_path, names=list(files), mirrors=mirrors, checksums=sums)
    assert server.hits == []


def test_download_failure_says_where_to_put_the_files(server, tmp_path):
    server.routes = {}
    with pytest.raises(DataError, match=f"copy the MNIST .gz files into {tmp_path}"):
        download(
            tmp_path,
            names=["t10k-labels-idx1-ubyte.gz"],
            mirrors=[f"{server.url}/nothing/"],
            checksums={"t10k-labels-idx1-ubyte.gz": "0" * 32},
        )


def test_missing_data_message(tmp_path):
    with pytest.raises(DataError, match="synthetic digits") as info:
        load_mnist(tmp_path)
    # the GUI shows it too: plain words, no command-line options (the CLI adds its own)
    assert "--" not in str(info.value)


def test_a_corrupt_local_file_is_reported(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="corrupt"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not SHARED, reason=f"${data.ENV_VAR} is not set (.ci/run sets it)")
def test_shared_test_set_is_split_8000_2000():
    ds = load_mnist(SHARED)
    assert ds.name == "MNIST"
    assert ds.train_x.shape == (8000, 1, 28, 28) and ds.val_x.shape == (2000, 1, 28, 28)
    assert "test set only" in ds.source and "8,000" in ds.source
    assert 0.0 <= float(ds.train_x.min()) and float(ds.train_x.max()) <= 1.0
    assert sorted(set(ds.val_y.tolist())) == list(range(10))
    again = load_mnist(SHARED)
    assert (again.train_y == ds.train_y).all()  # the split is fixed


def test_synthetic_digits_are_labelled_as_not_mnist():
    ds = synthetic_digits(200, 50, seed=1)
    assert "not MNIST" in ds.name and "NOT MNIST" in ds.source
    assert ds.train_x.shape == (200, 1, 28, 28)
    assert sorted(set(ds.train_y.tolist())) == list(range(10))
    assert float(ds.train_x.std()) > 0.05


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.data_dir() == tmp_path
    assert data.data_dir("/x") == Path("/x")
    monkeypatch.delenv(data.ENV_VAR)
    assert data.data_dir() == data.default_cache_dir()


def test_mnist_status_says_what_is_there(tmp_path):
    from core.train.data import mnist_status

    found, text = mnist_status(tmp_path)
    assert not found and text == f"MNIST not found in {tmp_path}"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"")
    found, text = mnist_status(tmp_path)
    assert found and "test set found" in text and "8,000" in text
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    assert mnist_status(tmp_path) == (
        True,
        f"MNIST found in {tmp_path} (60,000 training + 10,000 test images)",
    )


def test_synthetic_digits_are_made_once_per_seed():
    a, b = synthetic_digits(40, 10, seed=2), synthetic_digits(40, 10, seed=2)
    assert a is b  # drawn once
    c = synthetic_digits(40, 10, seed=3)
    assert not torch.equal(a.train_x, c.train_x)


def test_a_limited_synthetic_set_is_the_full_sets_first_digits():
    """A run limited to n images draws n (not 5,000, ~0.6 s), and gets the same digits the
    full set starts with, for training and validation alike."""
    small, full = synthetic_digits(30, 8, seed=4), synthetic_digits(90, 20, seed=4)
    assert torch.equal(small.train_x, full.train_x[:30])
    assert torch.equal(small.train_y, full.train_y[:30])
    assert torch.equal(small.val_x, full.val_x[:8]) and torch.equal(small.val_y, full.val_y[:8])
    assert not torch.equal(full.train_x[:8], full.val_x[:8])  # two streams, not one twice
