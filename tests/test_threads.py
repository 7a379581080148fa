"""The one thread setting: read from $VAE_TEACH_THREADS, applied to every pool by limit_threads."""

import numpy as np  # noqa: F401  (loads NumPy's BLAS pool, which limit_threads must reach)
import pytest
import torch
from threadpoolctl import threadpool_info

from vae_teach import threads


def test_default_is_one_thread_and_the_variable_overrides_it(monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    assert threads.default_threads() == 1
    monkeypatch.setenv(threads.ENV_VAR, "3")
    assert threads.default_threads() == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_variable_says_what_to_set(monkeypatch, value):
    monkeypatch.setenv(threads.ENV_VAR, value)
    with pytest.raises(ValueError, match=r"VAE_TEACH_THREADS must be a positive whole number.*unset it"):
        threads.default_threads()


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_limit_threads_rejects_what_is_not_a_count(n):
    with pytest.raises(ValueError, match="positive int"):
        threads.limit_threads(n)


def test_limit_threads_reaches_blas_and_torch():
    before_torch = torch.get_num_threads()
    before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    try:
        for n in (1, 2):
            assert threads.limit_threads(n) is None
            pools = threadpool_info()
            assert any(p["internal_api"] == "openblas" for p in pools), "NumPy's OpenBLAS is loaded"
            assert all(p["num_threads"] == n for p in pools), pools
            assert torch.get_num_threads() == n
            assert f"torch {n}" in threads.thread_report()
    finally:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=max(before.values()))
        torch.set_num_threads(before_torch)
