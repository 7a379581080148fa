"""Train every implementation side by side on Fashion-MNIST and report examples per second.

    .venv/bin/python -m bench.run                 # 3 epochs, 2 rounds, both models
    .venv/bin/python -m bench.run --quality       # 10 epochs of 784-400-20: test-ELBO parity
    .venv/bin/python -m bench.run --threads 2 --only numpy,baseline --epochs 1 --rounds 1

Implementations: ``numpy`` (``vae_teach.numpy_vae.train``), ``pytensor``
(``vae_teach.pytensor_vae.train``), ``torch`` (``vae_teach.torch_vae.train``) and
``baseline`` (``bench/baseline.py``, plain PyTorch as pytorch/examples writes it).
Models: 784-400-20 ReLU with batch 128, and 784-500-2 tanh with batch 100;
Adam, learning rate 1e-3, float32, on the CPU.

The machine may be shared, so the implementations alternate epoch by epoch:
each trains in a process of its own (its own libraries and thread pools), and
only one runs at a time; at the end of every epoch, once its clock has
stopped, it hands the CPU back and the next one runs an epoch (see
``EpochEnd`` and ``run_round``). A slow spell on the machine thus hits every
implementation alike. ``--rounds`` repeats the whole, from fresh models, in a
rotated order.
An implementation's speed is the median over its epochs (each training's first
left out, a warm-up). The report (JSON and a Markdown table) goes to
bench/results/ (git-ignored) and the table is printed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

IMPLEMENTATIONS = ("numpy", "pytensor", "torch", "baseline")
MODELS = {
    "784-400-20 relu": {"hidden_dims": (400,), "latent_dim": 20, "activation": "relu", "batch_size": 128},
    "784-500-2 tanh": {"hidden_dims": (500,), "latent_dim": 2, "activation": "tanh", "batch_size": 100},
}
# Each of ours against the baseline (examples per second), and against the matmul bound.
TARGET_RATIO = {"numpy": 1.1, "torch": 1.0, "pytensor": 0.9}
TARGET_FRACTION = 0.3
TARGET_ELBO_GAP = 0.5  # nats per image, after --quality's 10 epochs
LR = 1e-3
SEED = 0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per training (default 3; 10 with --quality)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds, each from fresh models in a rotated order (default 2; 1 with --quality)")
    parser.add_argument("--quality", action="store_true",
                        help="10 epochs of 784-400-20 only, and check each test ELBO against the baseline's")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for every library: BLAS, OpenMP, torch.set_num_threads (default: all CPUs)")
    parser.add_argument("--only", default=",".join(IMPLEMENTATIONS),
                        help=f"comma-separated implementations to run (default all: {','.join(IMPLEMENTATIONS)})")
    parser.add_argument("--models", default=None,
                        help=f"comma-separated models (default both: {','.join(MODELS)}; with --quality the first)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="train on the first N images only (a quick smoke test; speeds then mean little)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown report")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(IMPLEMENTATIONS)
    if unknown:
        parser.error(f"unknown implementation(s) {sorted(unknown)}; choose from {list(IMPLEMENTATIONS)}")
    default_models = [next(iter(MODELS))] if args.quality else list(MODELS)
    args.models = default_models if args.models is None else [m.strip() for m in args.models.split(",")]
    if set(args.models) - set(MODELS):
        parser.error(f"unknown model(s) {sorted(set(args.models) - set(MODELS))}; choose from {list(MODELS)}")
    args.epochs = args.epochs or (10 if args.quality else 3)
    args.rounds = args.rounds or (1 if args.quality else 2)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def limit_threads(threads: int) -> None:
    """Set every library's thread count through the environment. It must happen before NumPy,
    SciPy, PyTorch or Numba is imported (their pools read it once, when loaded); child
    processes inherit it."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)


def apply_thread_limits(threads: int):
    """After the imports: torch.set_num_threads, and threadpoolctl's limit on every BLAS and
    OpenMP pool loaded. Returns the pools and their thread counts, for the report."""
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "threadpoolctl not installed: environment variables only"
    threadpool_limits(threads)
    return [{k: p.get(k) for k in ("internal_api", "prefix", "num_threads")} for p in threadpool_info()]


def load_data(train_size: int | None):
    from vae_teach.data import load_dataset

    data = load_dataset("fashion-mnist")
    if train_size:
        data = dataclasses.replace(data, X_train=data.X_train[:train_size], y_train=data.y_train[:train_size])
    return data


# ----- taking turns, epoch by epoch ----------------------------------------------
class EpochEnd:
    """X_test, as given to a train function, that hands the CPU back at the end of each epoch.

    Each of our train functions evaluates X_test after every epoch, after it has
    stopped that epoch's clock: ``dataset_elbo`` turns it into an array with
    ``np.asarray``, which calls ``__array__`` here. There the training tells the
    parent process that its epoch is done and waits until the parent says "go"
    again, after the other implementations have had their turn. So the per-epoch
    timings in ``History`` hold only this implementation's own work.
    """

    def __init__(self, X, connection):
        self.X, self.connection = X, connection

    def __array__(self, dtype=None, copy=None):
        self.connection.send("epoch done")
        self.connection.recv()                      # "go"
        return self.X if dtype is None else self.X.astype(dtype)

    def __len__(self):
        return len(self.X)


def worker(name: str, model_name: str, epochs: int, threads: int, train_size, connection) -> None:
    """One implementation's training, in a child process that runs only when the parent says "go"."""
    try:
        import numpy  # noqa: F401  (the environment set by limit_threads is inherited)
        import torch  # noqa: F401

        if name == "pytensor":
            import scipy.linalg  # noqa: F401  (its BLAS, which PyTensor's compiled code calls)

            import vae_teach.pytensor_vae  # noqa: F401
        pools = apply_thread_limits(threads)
        data = load_data(train_size)
        connection.send("ready")
        connection.recv()                           # "go"
        result = train_one(name, model_name, data, epochs, EpochEnd(data.X_test, connection))
        result["thread_pools"] = pools
    except Exception as error:  # report it and let the others go on
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    connection.send(("result", result))


def run_round(names: list[str], model_name: str, epochs: int, threads: int, train_size, log
              ) -> tuple[dict, list]:
    """Train every implementation in ``names`` at once, one epoch at a time each, in that order.

    Each runs in a fresh process (its own imports and thread pools, nothing shared);
    they start together and wait until all are ready; then the parent lets each in
    turn run one epoch. Between turns it pauses a moment, so that the idle worker
    threads of the last one (OpenBLAS's spin for a while) are asleep before the next starts.
    """
    context = multiprocessing.get_context("spawn")
    children = {}
    for name in names:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=worker, name=f"bench-{name}", daemon=True,
                                  args=(name, model_name, epochs, threads, train_size, child_end))
        process.start()
        children[name] = (process, parent_end)
    results, timeline = {}, []
    for name, (_, connection) in list(children.items()):
        message = connection.recv()
        if message != "ready":                      # it failed while starting
            results[name] = message[1]
            del children[name]
    while children:
        for name, (process, connection) in list(children.items()):
            time.sleep(0.25)
            timeline.append((time.time(), name, os.getloadavg()[0]))
            connection.send("go")
            try:
                message = connection.recv()
            except EOFError:
                message = ("result", {"error": f"the process died (exit code {process.exitcode})"})
            if message != "epoch done":
                results[name] = message[1]
                process.join()
                del children[name]
                if "error" not in results[name]:
                    log(f"  {name}: {[round(v) for v in results[name]['examples_per_second']]} examples/s, "
                        f"test ELBO {results[name]['test_elbo']:.2f} nats/image")
    return results, timeline


# ----- one training of one implementation ---------------------------------------
def train_one(name: str, model_name: str, data, epochs: int, X_test: EpochEnd) -> dict:
    """Train a fresh model of ``name`` for ``epochs``, taking turns; returns its speeds and test ELBO."""
    import numpy as np
    import torch

    from vae_teach.evaluate import dataset_elbo
    from vae_teach.interface import VAEConfig

    spec = MODELS[model_name]
    config = VAEConfig(input_dim=data.X_train.shape[1], hidden_dims=spec["hidden_dims"],
                       latent_dim=spec["latent_dim"], activation=spec["activation"])
    options = dict(epochs=epochs, batch_size=spec["batch_size"], optimizer="adam", lr=LR, seed=SEED,
                   X_test=X_test, progress=False)
    extra = {"torch_threads": torch.get_num_threads()}
    if name == "numpy":
        from vae_teach.numpy_vae import NumpyVAE
        from vae_teach.numpy_vae import train as numpy_train

        model = NumpyVAE(config, seed=SEED, dtype=np.float32)
        history = numpy_train(model, data.X_train, **options)
    elif name == "pytensor":
        from vae_teach.pytensor_vae import PytensorVAE
        from vae_teach.pytensor_vae import train as pytensor_train

        model = PytensorVAE(config, seed=SEED, dtype="float32")
        history = pytensor_train(model, data.X_train, **options)
        extra["compile_seconds"] = dict(model.compile_seconds)
        extra["note"] = "epoch 1 includes compiling the training step"
    elif name == "torch":
        from vae_teach.torch_vae import TorchModel
        from vae_teach.torch_vae import train as torch_train

        model = TorchModel(config, seed=SEED, dtype=np.float32, device="cpu")
        history = torch_train(model, data.X_train, **options)
    elif name == "baseline":
        from bench import baseline
        from vae_teach.torch_vae import TorchModel

        module, speeds, losses = baseline.train(
            data.X_train, data.y_train, epochs=epochs, batch_size=spec["batch_size"],
            hidden_dim=spec["hidden_dims"][0], latent_dim=spec["latent_dim"], activation=spec["activation"],
            after_epoch=lambda: np.asarray(X_test))   # hand over, as ours do when they evaluate
        model = TorchModel(config, dtype=np.float32, device="cpu")  # only to evaluate it like the others
        model.set_params(baseline.shared_params(module))
        return {"examples_per_second": [float(v) for v in speeds], "train_elbo": [-float(v) for v in losses],
                "test_elbo": float(np.mean(dataset_elbo(model, data.X_test))), **extra}
    else:
        raise ValueError(f"unknown implementation {name!r}")
    return {"examples_per_second": [float(v) for v in history.examples_per_second],
            "train_elbo": [float(v) for v in history.train_elbo],
            "test_elbo": history.test_elbo[-1], "test_elbo_per_epoch": list(history.test_elbo), **extra}


# ----- the report -------------------------------------------------------------
def timed_epochs(training: dict) -> list[float]:
    """The speeds that count: all epochs but the first (a warm-up: PyTensor compiles there),
    unless there is only one."""
    speeds = training["examples_per_second"]
    return speeds[1:] if len(speeds) > 1 else speeds


def summarise(runs: dict, peaks: dict, args, n_train: int) -> list[dict]:
    """One row per (model, implementation): median speed, ratio to the baseline, fraction of the bound."""
    import numpy as np

    from bench.peak import best, flops_per_example
    from vae_teach.interface import VAEConfig

    peak = best(peaks)
    rows = []
    for model_name in args.models:
        spec = MODELS[model_name]
        config = VAEConfig(784, spec["hidden_dims"], spec["latent_dim"], spec["activation"])
        flops = flops_per_example(config)
        bound = peak / flops  # examples per second at the matmul peak
        medians = {}
        for name in args.only:
            trainings = [r for r in runs.get((model_name, name), []) if "error" not in r]
            if trainings:
                medians[name] = float(np.median([s for r in trainings for s in timed_epochs(r)]))
        for name in args.only:
            trainings = runs.get((model_name, name), [])
            ok = [r for r in trainings if "error" not in r]
            row = {"model": model_name, "implementation": name, "batch_size": spec["batch_size"],
                   "flops_per_example": flops, "bound_examples_per_second": bound,
                   "bound_seconds_per_epoch": n_train / bound, "trainings": trainings}
            if not ok:
                row["error"] = trainings[-1]["error"] if trainings else "not run"
                rows.append(row)
                continue
            speed = medians[name]
            counted = [s for r in ok for s in timed_epochs(r)]
            row.update(median_examples_per_second=speed, counted_epochs=len(counted),
                       quartiles_examples_per_second=[float(q) for q in np.percentile(counted, [25, 75])],
                       fraction_of_bound=speed / bound,
                       test_elbo=ok[-1]["test_elbo"], test_elbo_per_round=[r["test_elbo"] for r in ok],
                       seconds_per_epoch=n_train / speed)
            if "baseline" in medians:
                row["ratio_to_baseline"] = speed / medians["baseline"]
                base_elbo = [r for r in runs[(model_name, "baseline")] if "error" not in r][-1]["test_elbo"]
                row["elbo_minus_baseline"] = row["test_elbo"] - base_elbo
            if name in TARGET_RATIO:
                checks = [row["fraction_of_bound"] >= TARGET_FRACTION]
                if "ratio_to_baseline" in row:
                    checks.append(row["ratio_to_baseline"] >= TARGET_RATIO[name])
                if args.quality and "elbo_minus_baseline" in row:
                    checks.append(abs(row["elbo_minus_baseline"]) <= TARGET_ELBO_GAP)
                row["targets_met"] = all(checks)
            rows.append(row)
    return rows


def target_text(name: str, quality: bool) -> str:
    if name not in TARGET_RATIO:
        return "(reference)"
    text = f"≥ {TARGET_RATIO[name]:g}× and ≥ {TARGET_FRACTION:g} of bound"
    return text + f", ELBO within {TARGET_ELBO_GAP:g}" if quality else text


def markdown(rows: list[dict], meta: dict) -> str:
    quality = meta["quality"]
    lines = [
        f"Fashion-MNIST, {meta['epochs']} epochs × {meta['rounds']} round(s), {meta['threads']} thread(s), "
        f"float32, Adam lr {LR:g}; implementations take turns epoch by epoch; speed = median over "
        f"epochs (each training's first left out when it has more); "
        f"matmul peak {meta['peak_flops'] / 1e9:.0f} GFLOP/s (numpy {meta['peak_numpy'] / 1e9:.0f}, "
        f"torch {meta['peak_torch'] / 1e9:.0f}); bound = peak / (6 · Σ in·out) examples/s.",
        "",
        "| model | implementation | examples/s | (quartiles) | × baseline | fraction of matmul bound | "
        "test ELBO (nats/image) | Δ vs baseline | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['implementation']} | failed: {row['error'][:80]} "
                         "| | | | | | | |")
            continue
        ratio = f"{row['ratio_to_baseline']:.2f}" if "ratio_to_baseline" in row else "–"
        delta = f"{row['elbo_minus_baseline']:+.2f}" if "elbo_minus_baseline" in row else "–"
        met = {True: "yes", False: "**no**"}.get(row.get("targets_met"), "")
        lines.append(
            f"| {row['model']} (batch {row['batch_size']}) | {row['implementation']} | "
            f"{row['median_examples_per_second']:,.0f} | "
            f"{row['quartiles_examples_per_second'][0]:,.0f}–{row['quartiles_examples_per_second'][1]:,.0f} | "
            f"{ratio} | {row['fraction_of_bound']:.2f} | "
            f"{row['test_elbo']:.2f} | {delta} | {target_text(row['implementation'], quality)} | {met} |")
    bounds = sorted({(r["model"], r["bound_examples_per_second"], r["bound_seconds_per_epoch"]) for r in rows})
    lines.append("")
    for model_name, bound, seconds in bounds:
        lines.append(f"Bound for {model_name}: {bound:,.0f} examples/s "
                     f"({seconds:.2f} s per epoch of {meta['train_size']:,} images).")
    lines.append(f"Load average (1 min) during the run: {meta['load_average_min']:.1f} to "
                 f"{meta['load_average_max']:.1f} on {meta['cpus']} CPUs.")
    return "\n".join(lines) + "\n"


def versions() -> dict:
    found = {"python": platform.python_version()}
    for module in ("numpy", "scipy", "torch", "pytensor", "numba", "threadpoolctl"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            found[module] = None
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ----- main -------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    import torch  # only now: the thread variables are set

    from bench.peak import SQUARE_SHAPES, best, matmul_peak, merge_peaks, step_shapes
    from vae_teach.interface import VAEConfig

    pools = apply_thread_limits(args.threads)
    n_train = len(load_data(args.train_size).X_train)
    log = lambda text: print(text, file=sys.stderr, flush=True)
    log(f"bench: {args.threads} thread(s), {args.epochs} epoch(s) x {args.rounds} round(s), "
        f"{args.only} on {args.models}; measuring the matmul peak...")
    shapes = SQUARE_SHAPES + sorted({s for m in args.models for s in step_shapes(
        VAEConfig(784, MODELS[m]["hidden_dims"], MODELS[m]["latent_dim"]), MODELS[m]["batch_size"])})
    peak_measurements = [matmul_peak(shapes, torch=torch)]
    loads = [os.getloadavg()[0]]
    runs: dict = {}
    timeline = []
    for round_ in range(args.rounds):
        for model_name in args.models:
            k = round_ % len(args.only)
            order = args.only[k:] + args.only[:k]  # rotated each round
            log(f"round {round_ + 1}/{args.rounds}, {model_name}: {', '.join(order)}, taking turns by epoch...")
            results, turns = run_round(order, model_name, args.epochs, args.threads, args.train_size, log)
            for name in order:
                runs.setdefault((model_name, name), []).append(results[name])
            timeline += [{"round": round_ + 1, "model": model_name, "time": t, "turn": name, "load_average": load}
                         for t, name, load in turns]
            loads += [load for _, _, load in turns]
        peak_measurements.append(matmul_peak(shapes, repeats=5, torch=torch))  # the load varies: keep the best

    peaks = merge_peaks(*peak_measurements)
    meta = {
        "date": datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "quality": args.quality, "epochs": args.epochs, "rounds": args.rounds, "threads": args.threads,
        "implementations": args.only, "train_size": n_train, "models": args.models,
        "cpus": os.cpu_count(), "cpu": cpu_name(), "versions": versions(), "thread_pools": pools,
        "peak_flops": best(peaks), "peak_numpy": best(peaks, "numpy"), "peak_torch": best(peaks, "torch"),
        "matmul_flops": peaks, "load_average_min": min(loads), "load_average_max": max(loads),
        "flops_formula": "6 * sum over linear layers of in * out per example (forward 2 in out, backward 4 in out)",
        "interleaving": "one process per implementation; they take turns epoch by epoch; each round "
                        "starts fresh models, in an order rotated each round",
        "speed": "median examples/s over all epochs of all rounds, each training's first epoch left out "
                 "when it has more than one",
        "timeline": timeline,
    }
    rows = summarise(runs, peaks, args, n_train)
    table = markdown(rows, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{'quality' if args.quality else 'speed'}-{datetime.now():%Y%m%d-%H%M%S}"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(table)
    print(table)
    print(f"(written to {args.out / stem}.json and .md)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
