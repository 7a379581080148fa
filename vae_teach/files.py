"""Files written whole or not at all, and read back strictly.

Every file the package writes (weights, histories, summaries, checkpoints,
figures) goes through :func:`atomic_path`: it is written to a temporary file
in the same folder and then renamed over the target with ``os.replace``, so
an interrupted run (Ctrl-C, a killed process, a full disk) leaves the
previous file as it was and no half-written one. Reading never unpickles
(``np.load(allow_pickle=False)``) and a damaged file is a ``ValueError``
naming it and saying what to do.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    suffix: the temporary file's ending, for writers that choose the format by
    it (``".npz"``, ``".png"``). The folder must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)   # mkstemp's 0600 would make every file private
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:           # KeyboardInterrupt too: never leave the temporary file
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomically(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` whole (see :func:`atomic_path`), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


def write_text_atomically(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole."""
    return write_bytes_atomically(path, text.encode("utf-8"))


def save_npz(path, arrays: dict) -> Path:
    """``np.savez(path, **arrays)``, written whole; arrays of numbers only (nothing pickled)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **{name: np.asarray(value) for name, value in arrays.items()})
    return path


def load_npz(path, what: str = "weights") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file at ``path``, read without unpickling.

    Raises FileNotFoundError if there is none, ValueError naming the file if
    it is truncated, corrupt, not an ``.npz``, or holds pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}: check the path, or write one first "
                                f"(vae-teach train --out DIR writes DIR/params.npz).")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except Exception as error:   # zipfile, zlib, OSError, ValueError: many kinds for one damaged file
        raise ValueError(f"could not read the {what} file {path}: it is truncated, corrupt, not an .npz "
                         f"file, or holds pickled objects ({type(error).__name__}: {error}). Write it "
                         f"again (e.g. re-run the training that made it).") from error


def read_json(path, what: str = "summary", required: tuple[str, ...] = ()) -> dict:
    """The JSON object at ``path``, with at least the keys ``required``; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} file at {path}: check the path (vae-teach train --out DIR "
                                f"writes DIR/summary.json and DIR/history.json).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"could not read the {what} file {path}: it is truncated or not JSON "
                         f"({error}). Write it again.") from error
    missing = [key for key in required if not isinstance(data, dict) or key not in data]
    if missing:
        raise ValueError(f"the {what} file {path} lacks {missing}: it was not written by vae_teach, or by "
                         f"an older version; write it again.")
    return data
