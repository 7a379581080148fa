"""How many threads the lessons and ``vae-teach train`` use: one setting, in one place.

The lessons' models are small (a few hundred units, batches of 100), so a
second BLAS thread buys little on a quiet machine, and on a busy one (a
laptop always runs something else) two spinning BLAS threads fight the other
work for the cores and a lesson can take several times longer. So the series
runs every library's thread pool (NumPy's and SciPy's BLAS, which PyTensor's
compiled code calls too, and PyTorch's) with ``default_threads()`` threads:
1, unless ``$VAE_TEACH_THREADS`` says otherwise.

Override it for a session with ``limit_threads(4)``, or for every lesson with
``VAE_TEACH_THREADS=4 make series``. ``pytest notebooks/NN_name.ipynb`` runs a
lesson with a different count than the one it was committed with (the root
conftest.py), so a printed number that depends on the thread count fails there;
``make test`` runs two lessons at a time, one thread each.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "VAE_TEACH_THREADS"
DEFAULT = 1


def default_threads() -> int:
    """``$VAE_TEACH_THREADS`` if set (a positive integer), else 1."""
    value = os.environ.get(ENV_VAR)
    if value is None or value.strip() == "":
        return DEFAULT
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"${ENV_VAR} must be a positive whole number of threads, got {value!r}: "
                         f"unset it, or set it to e.g. 1 or 2.")
    return n


def limit_threads(n: int | None = None) -> None:
    """Limit every loaded BLAS and OpenMP pool, and PyTorch's, to ``n`` threads.

    ``n`` defaults to :func:`default_threads`. The limit holds for the rest of
    the process; call it after importing the libraries it should reach (a pool
    loaded later keeps its own default). Returns nothing, so that a notebook cell ending
    in it prints nothing (the count would differ between runs with different settings).
    """
    from threadpoolctl import threadpool_limits

    n = default_threads() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"limit_threads: n must be a positive int, got {n!r}.")
    threadpool_limits(limits=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def thread_report() -> str:
    """One line: each loaded thread pool and its current thread count, e.g. 'openblas 1, openmp 1, torch 1'."""
    from threadpoolctl import threadpool_info

    parts = [f"{pool['internal_api']} {pool['num_threads']}" for pool in threadpool_info()]
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].get_num_threads()}")
    return ", ".join(parts) if parts else "no thread pool loaded"
