"""Test-session settings (at the root, so they hold for `pytest notebooks/NN_name.ipynb` too).

Threads. The lessons are committed executed with ``vae_teach.series.COMMITTED_THREADS`` (1) thread
per pool, which is also what a student's run uses (``vae_teach.threads``). The kernels nbval starts
inherit this process's environment (``--nbval-current-env``), and:

- a plain ``pytest notebooks/NN_name.ipynb`` (the developer's check after editing a lesson) runs
  them with one thread more, so a printed number that depends on the thread count (round-off in
  a threaded reduction, say) differs from the stored output and fails;
- under pytest-xdist (``make test`` runs ``pytest -n auto``: one worker per core, two lessons at
  a time on CI's two cores) each worker keeps to the committed count, since two threads per worker
  would ask for more threads than there are cores, and spinning BLAS threads then slow every
  lesson several times over (issue 11's measurements).

Workers. Every nbval cell of one notebook must run in one kernel, in order, so ``make test``
hands out whole files (``--dist loadfile``: a notebook, or a test module). The longest units go
first, so that no worker is left running a long one alone at the end: the PyTensor tests (their
cold compile), then the notebooks, then the other test modules.
(``--dist loadgroup`` with an ``xdist_group`` per notebook would also do, but pytest-xdist 3.8
cannot group items under pytest 9.)
"""

import os

from vae_teach.series import COMMITTED_THREADS
from vae_teach.threads import ENV_VAR

IN_XDIST_WORKER = "PYTEST_XDIST_WORKER" in os.environ
os.environ[ENV_VAR] = str(COMMITTED_THREADS if IN_XDIST_WORKER else COMMITTED_THREADS + 1)


LONGEST_FIRST = ("test_pytensor_vae.py",)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if item.path.name in LONGEST_FIRST:
            return 0
        return 1 if item.path.suffix == ".ipynb" else 2

    items.sort(key=rank)  # a stable sort: the cells of each notebook keep their order
