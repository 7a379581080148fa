"""Do Adam's moments decay into float32 subnormals, and does it slow training? (lesson 05)

    .venv/bin/python -m bench.subnormals                       # Fashion-MNIST, 6 epochs
    .venv/bin/python -m bench.subnormals --dataset mnist-5k --epochs 20

Where a weight's gradient is exactly zero step after step (the weights of a
pixel that is blank in every image of the batch, those of a dead ReLU unit),
Adam multiplies its first moment m by beta1 = 0.9 each step and its second
moment v by beta2 = 0.999: m falls below the smallest normal float32,
1.2e-38, after some 700 quiet steps, v after tens of thousands. Below that
float32 has subnormal numbers, down to 1.4e-45, which some CPUs compute with
a slow microcode path. ``moment_floor`` (``vae_teach.numpy_vae.optim.adam``)
sets such moments to zero instead.

Three measurements:

1. the cost of elementwise float32 operations on normal, subnormal and zero
   arrays, the size of the model's weights (this CPU's penalty);
2. Adam's update alone on weights whose gradient is zero after one step, so
   that every moment decays through the subnormals: time per update, step by step;
3. training the 784-400-20 model (batch 128) twice, without and with
   ``moment_floor=1e-30``, one epoch of each in turn: time per step, Adam's
   share of it, and how many moments are subnormal after each epoch.

Prints a report and writes it as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FLOOR = 1e-30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.subnormals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist (default) or mnist-5k")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def subnormal_counts(optimizer, tiny) -> dict:
    """How many entries of Adam's m and v (all parameters together) are subnormal, and exactly zero."""
    import numpy as np

    counts = {"m_subnormal": 0, "v_subnormal": 0, "m_zero": 0, "v_zero": 0, "entries": 0,
              "m_subnormal_by_parameter": {}}
    for name, config in optimizer.configs.items():
        for key in ("m", "v"):
            a = np.abs(config[key])
            subnormal = int(np.count_nonzero((a > 0) & (a < tiny)))
            counts[f"{key}_subnormal"] += subnormal
            counts[f"{key}_zero"] += int(np.count_nonzero(a == 0))
            if key == "m" and subnormal:
                counts["m_subnormal_by_parameter"][name] = subnormal
        counts["entries"] += config["m"].size
    return counts


def elementwise_costs(n: int) -> dict:
    """ns per element of a few float32 operations on arrays of normal, subnormal or zero values."""
    import numpy as np

    results = {}
    for label, value in (("normal", 1e-3), ("subnormal", 1e-40), ("zero", 0.0)):
        a = np.full(n, value, dtype=np.float32)
        d = np.full(n, 1e-4, dtype=np.float32)
        out = np.empty_like(a)
        ops = {"multiply by 0.9": lambda a=a, out=out: np.multiply(a, 0.9, out=out),
               "add": lambda a=a, out=out: np.add(a, a, out=out),
               "divide": lambda a=a, d=d, out=out: np.divide(a, d, out=out),
               "sqrt": lambda a=a, out=out: np.sqrt(a, out=out)}
        for name, op in ops.items():
            best = float("inf")
            for _ in range(15):
                start = time.perf_counter()
                for _ in range(20):
                    op()
                best = min(best, (time.perf_counter() - start) / 20)
            results.setdefault(name, {})[label] = best / n * 1e9
    return results


def adam_decay(shape=(784, 400), steps=3000, floor=0.0) -> list[float]:
    """Seconds per Adam update, step by step, on a weight whose gradient is zero after step 1.

    After one kick m ~ 1e-4: it turns subnormal after ~740 steps. v is then set
    to 1e-37 so that it turns subnormal within the run too, after ~2,100 steps
    (from a real v ~ 1e-9 it would take ~67,000). Neither ever reaches zero:
    once m is a few units of the last place of the subnormals (1.4e-45),
    0.9 m rounds back to m, and likewise 0.999 v for v below ~500 units.
    """
    import numpy as np

    from vae_teach.numpy_vae.optim import adam

    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape, dtype=np.float32)
    config = {"moment_floor": floor}
    adam(w, rng.standard_normal(shape, dtype=np.float32) * 1e-3, config)
    config["v"][...] = 1e-37
    zero = np.zeros(shape, dtype=np.float32)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        adam(w, zero, config)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    args = parse_args(argv)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    import numpy as np

    from vae_teach.data import load_dataset
    from vae_teach.interface import VAEConfig
    from vae_teach.numpy_vae import NumpyVAE, Optimizer
    from vae_teach.training import fit

    tiny = float(np.finfo(np.float32).tiny)
    log = lambda text: print(text, file=sys.stderr, flush=True)
    report: dict = {"date": datetime.now().isoformat(timespec="seconds"), "dataset": args.dataset,
                    "threads": args.threads, "floor": FLOOR}

    log("1. elementwise costs (ns per element, 652,824 float32 = the model's parameter count)")
    report["elementwise_ns_per_element"] = costs = elementwise_costs(652_824)
    for name, figures in costs.items():
        log(f"   {name:16s} " + "  ".join(f"{k} {v:.2f}" for k, v in figures.items()))

    log("2. Adam's update alone on a (784, 400) weight with zero gradient, ms per update, median of each 250 steps")
    decay = {}
    for label, floor in (("no floor", 0.0), ("moment_floor", FLOOR)):
        times = np.array(adam_decay(floor=floor)) * 1e3
        decay[label] = [float(np.median(times[a:a + 250])) for a in range(0, len(times), 250)]
        log(f"   {label:12s} " + " ".join(f"{t:.2f}" for t in decay[label]))
    report["adam_zero_gradient_ms_per_250_steps"] = decay

    log(f"3. training 784-400-20 relu, batch 128, on {args.dataset}, one epoch of each run in turn")
    data = load_dataset(args.dataset)
    config = VAEConfig(input_dim=data.X_train.shape[1], hidden_dims=(400,), latent_dim=20)
    runs = {}
    for label, floor in (("no floor", 0.0), ("moment_floor", FLOOR)):
        model = NumpyVAE(config, seed=0, dtype=np.float32)
        runs[label] = {"model": model, "opt": Optimizer("adam", moment_floor=floor),
                       "noise": np.random.default_rng(1), "epochs": []}

    for epoch in range(1, args.epochs + 1):
        for label, run in runs.items():
            model, opt, noise = run["model"], run["opt"], run["noise"]
            adam_seconds, step_seconds = [], []

            def step(X_batch, model=model, opt=opt, noise=noise, adam_seconds=adam_seconds,
                     step_seconds=step_seconds):
                start = time.perf_counter()
                eps = noise.standard_normal((1, len(X_batch), model.latent_dim), dtype=np.float32)
                loss, grads = model.loss_and_grads(X_batch, eps)
                middle = time.perf_counter()
                opt.step(model.params, grads)
                end = time.perf_counter()
                adam_seconds.append(end - middle)
                step_seconds.append(end - start)
                return loss

            history = fit(step, data.X_train, epochs=1, batch_size=128, lr=1e-3, seed=epoch, progress=False)
            row = {"epoch": epoch, "ms_per_step": float(np.median(step_seconds) * 1e3),
                   "adam_ms_per_step": float(np.median(adam_seconds) * 1e3),
                   "train_elbo": history.train_elbo[0], **subnormal_counts(opt, tiny)}
            run["epochs"].append(row)
            log(f"   epoch {epoch} {label:12s}: {row['ms_per_step']:.2f} ms/step (Adam {row['adam_ms_per_step']:.2f}), "
                f"subnormal m {row['m_subnormal']:,} v {row['v_subnormal']:,}, zero m {row['m_zero']:,} "
                f"of {row['entries']:,}, train ELBO {row['train_elbo']:.2f}")
            if row["m_subnormal_by_parameter"]:
                log(f"      subnormal m by parameter: {row['m_subnormal_by_parameter']}")
    report["training"] = {label: run["epochs"] for label, run in runs.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"subnormals-{args.dataset}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=1))
    log(f"(written to {path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
