"""The machine's float32 matrix-multiply speed, and the lower bound on time it implies.

``matmul_peak`` times float32 products, NumPy's (its BLAS) and PyTorch's, for
the shapes a training step of the benchmarked models multiplies and for large
square ones, and keeps the best of several repeats of each, in FLOP/s (a
product of (m, k) and (k, n) is 2 m k n FLOPs). The best over all of them is
taken as the machine's peak.

``flops_per_example``: a linear layer in -> out costs 2 in out FLOPs per
example forward and twice that backward (the gradients of its input and of its
weights), so training costs 6 * sum(in * out) FLOPs per example, less the
gradient of the first layer's input, the data, which no implementation computes:
2 * D * H1. Dividing the
peak by that gives the most examples per second any implementation could
train at, if it did nothing but multiply matrices at the peak speed.
"""

from __future__ import annotations

import time

import numpy as np

from vae_teach.interface import VAEConfig, param_shapes


def flops_per_example(config: VAEConfig) -> int:
    """Training FLOPs per example: 6 sum(in out) over linear layers, less 2 D H1 (no gradient for the data)."""
    shapes = param_shapes(config)
    first_layer = shapes["enc0_W"]
    return 6 * sum(s[0] * s[1] for name, s in shapes.items() if name.endswith("_W")) - 2 * first_layer[0] * first_layer[1]


def step_shapes(config: VAEConfig, batch_size: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of the large products in one training step: forward, input gradient, weight gradient."""
    shapes = []
    for name, shape in param_shapes(config).items():
        fan_in, fan_out = shape if name.endswith("_W") else (0, 0)
        if min(fan_in, fan_out) >= 100:
            shapes += [(batch_size, fan_in, fan_out), (batch_size, fan_out, fan_in), (fan_in, batch_size, fan_out)]
    return sorted(set(shapes))


SQUARE_SHAPES = [(1024, 1024, 1024), (2048, 2048, 2048)]


def _best_seconds(product, flops: float, repeats: int, min_seconds: float = 0.02) -> float:
    """Best time of one product over ``repeats`` timings, each averaging enough calls to last about
    min_seconds (short timings, many of them: on a shared machine some fall in a quiet moment)."""
    product()  # warm up (threads, caches)
    calls = max(1, int(min_seconds * 50e9 / flops))  # a guess at 50 GFLOP/s
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            product()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def matmul_peak(shapes: list[tuple[int, int, int]], repeats: int = 15, torch=None) -> dict:
    """FLOP/s of float32 matmul, {"numpy": {"m x k x n": flops}, "torch": {...}}, best of ``repeats``."""
    rng = np.random.default_rng(0)
    result = {"numpy": {}, "torch": {}}
    for m, k, n in shapes:
        A = rng.standard_normal((m, k), dtype=np.float32)
        B = rng.standard_normal((k, n), dtype=np.float32)
        C = np.empty((m, n), dtype=np.float32)
        flops = 2.0 * m * k * n
        key = f"{m}x{k}x{n}"
        result["numpy"][key] = flops / _best_seconds(lambda A=A, B=B, C=C: np.matmul(A, B, out=C), flops, repeats)
        if torch is not None:
            tA, tB, tC = torch.from_numpy(A), torch.from_numpy(B), torch.from_numpy(C)
            result["torch"][key] = flops / _best_seconds(
                lambda tA=tA, tB=tB, tC=tC: torch.matmul(tA, tB, out=tC), flops, repeats)
    return result


def merge_peaks(*measurements: dict) -> dict:
    """The best figure of each library and shape over several measurements."""
    merged: dict = {}
    for measurement in measurements:
        for library, figures in measurement.items():
            for key, flops in figures.items():
                merged.setdefault(library, {})
                merged[library][key] = max(flops, merged[library].get(key, 0.0))
    return merged


def best(peaks: dict, library: str | None = None) -> float:
    """The highest FLOP/s in ``peaks`` (of one library, or of all)."""
    libraries = [library] if library else list(peaks)
    return max((flops for lib in libraries for flops in peaks.get(lib, {}).values()), default=float("nan"))
