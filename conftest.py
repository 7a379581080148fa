"""Test-session settings (at the root, so they hold for `pytest notebooks/NN_name.ipynb` too).

nbval re-runs every lesson with a different thread count than the one the lessons were committed
with (``vae_teach.series.COMMITTED_THREADS``, what ``make lessons`` uses): a printed number that
depends on the thread count (round-off in a threaded reduction, say) then differs from the stored
output and fails. The kernels nbval starts inherit this process's environment
(``--nbval-current-env``).
"""

import os

from vae_teach.series import COMMITTED_THREADS
from vae_teach.threads import ENV_VAR

os.environ[ENV_VAR] = str(COMMITTED_THREADS + 1)
