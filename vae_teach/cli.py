"""The ``vae-teach`` command: train a model, list the datasets, run the notebook series.

    vae-teach train --backend numpy --dataset mnist-5k --latent-dim 2 --epochs 50 --out runs/mnist2d
    vae-teach train --likelihood gaussian-learned --binarize dequantize --eval-k 1000 --out runs/gauss
    vae-teach train --binarize dynamic --objective iwae --samples 5 --out runs/iwae5
    vae-teach fig4b --out runs/fig4b
    vae-teach train --latent-dim 16 --kl-warmup 5 --free-bits 0.1 --out runs/warmup
    vae-teach datasets
    vae-teach run-notebooks --out build
    vae-teach student-notebooks OUT_DIR

Nothing runs on import; ``main`` parses the arguments and dispatches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


RUN_FILES = ("params.npz", "summary.json", "history.json")
"""What ``train`` writes that marks a folder as holding a run."""

MI_IMAGES = 2000
"""I(x; z) is estimated on at most this many test images (its cost grows as their square)."""


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from vae_teach.files import atomic_path

    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format=path.suffix.lstrip("."))
    finally:
        plt.close(fig)


def _check_train_args(args) -> None:
    """The numbers of ``train``, checked before any data is loaded or anything written."""
    import math

    for flag, value, minimum in (("--epochs", args.epochs, 0), ("--batch-size", args.batch_size, 1),
                                 ("--samples", args.samples, 1), ("--eval-k", args.eval_k, 0),
                                 ("--latent-dim", args.latent_dim, 1), ("--seed", args.seed, 0)):
        if value < minimum:
            raise ValueError(f"{flag} must be >= {minimum}, got {value}.")
    if any(h < 1 for h in args.hidden):
        raise ValueError(f"--hidden sizes must be >= 1, got {args.hidden}.")
    for flag, value in (("--lr", args.lr), ("--l2", args.l2), ("--output-logvar", args.output_logvar)):
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value}.")
    if args.lr is not None and args.lr <= 0:
        raise ValueError(f"--lr must be > 0 (a step size; try 1e-3), got {args.lr}.")
    if args.l2 < 0:
        raise ValueError(f"--l2 must be >= 0 (a weight decay), got {args.l2}.")
    if not (math.isfinite(args.beta) and args.beta >= 0):
        raise ValueError(f"--beta must be a finite number >= 0 (the KL weight: 1 is the ELBO, below 1 weakens "
                         f"the KL term, above 1 strengthens it), got {args.beta}.")
    if not (math.isfinite(args.free_bits) and args.free_bits >= 0):
        raise ValueError(f"--free-bits must be a finite number of nats >= 0 per latent dimension (0: none; "
                         f"try 0.1), got {args.free_bits}.")
    if args.kl_warmup < 0 or args.kl_cycles < 0:
        raise ValueError(f"--kl-warmup and --kl-cycles must be >= 0 (0: off), got {args.kl_warmup} and "
                         f"{args.kl_cycles}.")
    if args.kl_warmup and args.kl_cycles:
        raise ValueError("--kl-warmup and --kl-cycles are two schedules of the KL weight; choose one.")
    if args.kl_warmup > args.epochs:
        raise ValueError(f"the KL warm-up (--kl-warmup {args.kl_warmup} epochs) is longer than the training "
                         f"(--epochs {args.epochs}): shorten the warm-up or train longer, so that beta reaches "
                         f"its value.")
    if args.kl_cycles > args.epochs:
        raise ValueError(f"--kl-cycles {args.kl_cycles} is more cycles than epochs ({args.epochs}); use at most "
                         f"one cycle an epoch.")
    if args.objective == "iwae" and (args.beta != 1 or args.free_bits or args.kl_warmup or args.kl_cycles):
        raise ValueError("--beta, --kl-warmup, --kl-cycles and --free-bits change the ELBO's KL term; the IWAE "
                         "bound (--objective iwae) has none.")


def _kl_schedule(args, n_train: int):
    """The KL weight of ``train``: --beta, warmed up over --kl-warmup epochs or in --kl-cycles cycles."""
    import math

    from vae_teach import schedules

    steps_per_epoch = math.ceil(n_train / args.batch_size)
    if args.kl_warmup:
        return schedules.linear_warmup(args.beta, args.kl_warmup * steps_per_epoch, args.epochs * steps_per_epoch)
    if args.kl_cycles:
        return schedules.cyclical(args.beta, args.epochs * steps_per_epoch, args.kl_cycles)
    return schedules.constant(args.beta)


def _check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a folder holding a run unless ``--force``; refuse a file."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose another --out.")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not force:
        raise ValueError(f"--out {out} already holds a run ({', '.join(existing)}); pass --force to "
                         f"overwrite it, or choose another --out.")


def cmd_train(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from vae_teach import diagnostics, plotting
    from vae_teach.backends import make_model, trainer
    from vae_teach.data import (
        binarize_dynamic,
        binarize_static,
        binarize_threshold,
        dequantize,
        load_dataset,
    )
    from vae_teach.evaluate import (
        bits_per_dim,
        dataset_elbo,
        importance_sampled_log_likelihood,
    )
    from vae_teach.files import save_npz, write_text_atomically
    from vae_teach.interface import VAEConfig
    from vae_teach.threads import limit_threads

    _check_train_args(args)
    if args.likelihood != "bernoulli" and args.binarize in ("threshold", "static", "dynamic"):
        raise ValueError(f"--likelihood {args.likelihood} is a density on [0, 1], but --binarize "
                         f"{args.binarize} makes the pixels 0 or 1; use --binarize dequantize (or none).")
    out = Path(args.out)
    _check_out(out, args.force)
    data = load_dataset(args.dataset, path=args.data_path, download=args.download)
    config = VAEConfig(input_dim=data.X_train.shape[1], hidden_dims=tuple(args.hidden),
                       latent_dim=args.latent_dim, activation=args.activation, scale=args.scale,
                       likelihood=args.likelihood, output_logvar=args.output_logvar)
    # The test images, seen the way training sees its images (lesson 07): thresholded, one fixed
    # stochastic binarisation (for static and dynamic training alike), or one fixed dequantisation.
    X_test = {None: lambda X: X, "threshold": binarize_threshold,
              "static": lambda X: binarize_static(X, args.seed + 10_000),
              "dynamic": lambda X: binarize_dynamic(X, args.seed + 10_000),
              "dequantize": lambda X: dequantize(X, args.seed + 10_000)}[args.binarize](data.X_test)
    model = make_model(args.backend, config, seed=args.seed)
    limit_threads()  # after the backend's imports: one thread per pool unless $VAE_TEACH_THREADS says otherwise
    print(f"training a {args.backend} VAE {config.input_dim}-{'-'.join(map(str, config.hidden_dims))}-"
          f"{config.latent_dim} ({config.activation}, {config.likelihood} likelihood, {args.objective} "
          f"with K = {args.samples}) on {data.name}: {len(data.X_train)} train, "
          f"{len(data.X_test)} test images from {data.source}")
    start = time.perf_counter()
    history = trainer(args.backend)(
        model, data.X_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        lr=args.lr, l2=args.l2, n_samples=args.samples, objective=args.objective, seed=args.seed,
        X_test=X_test, binarize=args.binarize, progress=not args.quiet,
        kl_weight=_kl_schedule(args, len(data.X_train)), free_bits=args.free_bits)
    wall = time.perf_counter() - start
    final_test_elbo = float(np.mean(dataset_elbo(model, X_test, n_samples=1, seed=0)))
    log_px = None
    if args.eval_k:
        log_px = importance_sampled_log_likelihood(model, X_test, k=args.eval_k, seed=0)
    levels = 256 if args.binarize == "dequantize" else None
    is_density = not (args.likelihood == "bernoulli" and args.binarize in (None, "dequantize"))
    # Rate, distortion, active units and I(x; z) on the test images (lesson 09).
    rd = diagnostics.rate_distortion(model, X_test, n_samples=1, seed=0)
    units = diagnostics.active_units(model, X_test)
    mi = diagnostics.mutual_information(model, X_test[:MI_IMAGES], seed=0)

    # Each file is written whole (a temporary file, then renamed), params last of the three
    # the explorer reads: an interrupted run leaves the previous files as they were.
    out.mkdir(parents=True, exist_ok=True)
    history.save(out / "history.json")
    summary = {
        "backend": args.backend, "dataset": data.name, "config": config.to_dict(),
        "epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer,
        "lr": args.lr, "l2": args.l2, "seed": args.seed, "binarize": args.binarize,
        "objective": args.objective, "samples": args.samples,
        "beta": args.beta, "kl_warmup_epochs": args.kl_warmup, "kl_cycles": args.kl_cycles,
        "free_bits": args.free_bits,
        "wall_seconds": wall,
        "median_examples_per_second": float(np.median(history.examples_per_second)) if args.epochs else None,
        "test_elbo_nats_per_image": final_test_elbo,
        # Bits per dimension only where the number is a log-likelihood: a Bernoulli on grey pixels
        # is not a normalised density (lesson 07).
        "test_elbo_bits_per_dim": bits_per_dim(final_test_elbo, config.input_dim, levels) if is_density else None,
        "test_log_likelihood": None if log_px is None else {
            "k": log_px.k, "nats_per_image": log_px.mean, "standard_error": log_px.standard_error,
            "bits_per_dim": bits_per_dim(log_px.mean, config.input_dim, levels) if is_density else None},
        # nats per test image: R = E KL(q(z|x) || p(z)), D = -E_q log p(x|z) (one z per image)
        "rate": rd.rate, "distortion": rd.distortion,
        "active_units": units.count,
        "mutual_information": {"nats": mi.mutual_information, "standard_error": mi.standard_error,
                               "aggregate_kl": mi.aggregate_kl, "images": min(len(X_test), MI_IMAGES),
                               "log_n": mi.log_n},
    }
    write_text_atomically(out / "summary.json", json.dumps(summary, indent=1))
    save_npz(out / "params.npz", model.get_params())

    _save_figure(plotting.loss_curves({args.backend: history}), out / "loss_curves.png")
    _save_figure(plotting.reconstructions(model, X_test[:10], data.image_shape), out / "reconstructions.png")
    _save_figure(plotting.prior_samples(model, data.image_shape, n=100, seed=args.seed), out / "prior_samples.png")
    if config.latent_dim >= 2:
        _save_figure(plotting.latent_scatter(model, X_test, data.y_test), out / "latent_scatter.png")
    if config.latent_dim == 2:
        _save_figure(plotting.manifold_2d(model, data.image_shape, n=20), out / "manifold.png")

    print(f"done in {wall:.1f} s ({summary['median_examples_per_second'] or 0:.0f} examples/s, median "
          f"over epochs); test ELBO {final_test_elbo:.2f} nats per image")
    print(f"rate {rd.rate:.2f}, distortion {rd.distortion:.2f} nats per image; {units.count} of "
          f"{config.latent_dim} latent dimensions active; I(x; z) {mi.mutual_information:.2f} nats")
    if log_px is not None:
        print(f"test log p(x) >= {log_px.mean:.2f} ± {log_px.standard_error:.2f} nats per image "
              f"(importance sampling, k = {log_px.k})")
    if not is_density:
        print("note: a Bernoulli likelihood on grey pixels is not a normalised density; these numbers "
              "are not log-likelihoods (lesson 07)")
    print(f"wrote params.npz, history.json, summary.json and figures to {out}")
    return 0


def cmd_fig4b(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from vae_teach.data import load_dataset
    from vae_teach.fig4b import fig4b, plot_fig4b
    from vae_teach.files import save_npz

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset, path=args.data_path, download=args.download)
    X_train = data.X_train if args.n_train is None else data.X_train[:args.n_train]
    print(f"training the Fig. 4b VAE {X_train.shape[1]}-{args.hidden}-2 (tanh, Adam, lr {args.lr:g} -> "
          f"{args.final_lr:g} by a cosine) on {len(X_train):,} {data.name} images for {args.epochs} epochs")
    result = fig4b(X_train, data.image_shape, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   final_lr=args.final_lr, hidden=args.hidden, seed=args.seed)
    save_npz(out / "fig4b.npz", {"grid": result.grid, "z": result.z})
    _save_figure(plot_fig4b(result), out / "fig4b.png")
    print(f"done in {result.seconds:.1f} s: {result.examples_seen:,} examples seen (the paper: about 10^8); "
          f"final train ELBO {result.train_elbo[-1]:.1f} nats per image")
    print(f"wrote fig4b.png and fig4b.npz (grid {result.grid.shape}, z {result.z.shape}) to {out}")
    return 0


def cmd_datasets(args) -> int:
    from vae_teach.data import dataset_status

    records = dataset_status()
    width = max(len(r.name) for r in records)
    for record in records:
        state = "found" if record.found else "missing"
        print(f"{record.name:{width}s}  {state:8s} {record.detail}")
    return 0


def cmd_run_notebooks(args) -> int:
    from vae_teach.series import run_series

    runs = run_series(args.notebooks, args.out, timeout=args.timeout, only=args.only)
    total = sum(r.seconds for r in runs)
    print(f"\nexecuted {len(runs)} notebooks in {total:.0f} s; HTML in {Path(args.out).resolve()}")
    print("open them in a browser, or work through the lessons interactively with:")
    print(f"    .venv/bin/jupyter lab {Path(args.notebooks)}")
    return 0


def cmd_execute(args) -> int:
    from vae_teach.series import execute_in_place

    import ast

    parameters = {}
    for item in args.set or []:
        name, _, value = item.partition("=")
        if not name.isidentifier() or not value:
            raise ValueError(f"--set takes NAME=VALUE (a Python literal), e.g. --set SEED=3; got {item!r}.")
        try:
            parameters[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parameters[name] = value                      # a bare word: a string
    for path in args.sources:
        execute_in_place(path, timeout=args.timeout, parameters=parameters or None)
    return 0


def cmd_student_notebooks(args) -> int:
    from vae_teach.student import write_student_notebooks

    written = write_student_notebooks(args.notebooks, args.out_dir)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} student notebooks: solutions replaced by `raise NotImplementedError()`, "
          "outputs cleared.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from vae_teach.interface import LIKELIHOODS

    parser = argparse.ArgumentParser(prog="vae-teach", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a VAE and write params, history and figures")
    train.add_argument("--backend", choices=["numpy", "pytensor", "torch"], default="numpy")
    train.add_argument("--dataset", default="mnist-5k")
    train.add_argument("--data-path", default=None, help="a folder holding the dataset's files")
    train.add_argument("--download", action="store_true", help="download the dataset if not found")
    train.add_argument("--latent-dim", type=int, default=2)
    train.add_argument("--hidden", type=int, nargs="+", default=[500],
                       help="encoder hidden sizes (the decoder uses them reversed)")
    train.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    train.add_argument("--scale", choices=["logvar", "logsigma"], default="logvar")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=100)
    train.add_argument("--optimizer", choices=["sgd", "adagrad", "adam"], default="adam")
    train.add_argument("--lr", type=float, default=None, help="learning rate (the optimiser's default if unset)")
    train.add_argument("--l2", type=float, default=0.0, help="L2 weight decay")
    train.add_argument("--binarize", choices=["threshold", "static", "dynamic", "dequantize"], default=None,
                       help="how the pixels are seen: threshold (x > 0.5), static (one seeded 0/1 draw "
                            "x ~ Bernoulli(intensity), kept; before lesson 07's revision 'static' meant "
                            "threshold), dynamic (a new 0/1 draw each epoch), or dequantize (8-bit levels "
                            "plus uniform noise, for the continuous likelihoods); default: as they are")
    train.add_argument("--likelihood", choices=list(LIKELIHOODS), default="bernoulli")
    train.add_argument("--output-logvar", type=float, default=0.0,
                       help="log sigma^2 of the Gaussian likelihood (fixed, or the learned one's start)")
    train.add_argument("--objective", choices=["elbo", "iwae"], default="elbo")
    train.add_argument("--samples", type=int, default=1, help="K samples of z per image (IWAE's k)")
    train.add_argument("--beta", type=float, default=1.0,
                       help="the KL weight beta in NLL + beta KL (1: the ELBO; lesson 09)")
    train.add_argument("--kl-warmup", type=int, default=0, metavar="EPOCHS",
                       help="raise beta linearly from 0 over this many epochs (0: off)")
    train.add_argument("--kl-cycles", type=int, default=0, metavar="N",
                       help="cyclical KL weight (Fu et al., 2019): N cycles over the training (0: off)")
    train.add_argument("--free-bits", type=float, default=0.0, metavar="NATS",
                       help="free bits (Kingma et al., 2016): each latent dimension's KL counts at least NATS")
    train.add_argument("--eval-k", type=int, default=0,
                       help="also estimate the test log-likelihood by importance sampling with k samples")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--force", action="store_true",
                       help="overwrite a run already in --out (params.npz, summary.json, history.json)")
    train.set_defaults(func=cmd_train)

    f4b = sub.add_parser("fig4b", help="train a 2-D VAE and draw the paper's Fig. 4b manifold of digits")
    f4b.add_argument("--out", required=True, help="output folder: fig4b.png, fig4b.npz (grid, z)")
    f4b.add_argument("--dataset", default="mnist-5k", help="mnist-5k, or mnist where the full set is present")
    f4b.add_argument("--data-path", default=None, help="a folder holding the dataset's files")
    f4b.add_argument("--download", action="store_true", help="download the dataset if not found")
    f4b.add_argument("--epochs", type=int, default=200)
    f4b.add_argument("--n-train", type=int, default=None, help="train on the first N images only")
    f4b.add_argument("--hidden", type=int, default=500)
    f4b.add_argument("--batch-size", type=int, default=100)
    f4b.add_argument("--lr", type=float, default=2e-3, help="Adam's first learning rate")
    f4b.add_argument("--final-lr", type=float, default=1e-4, help="its last, after a cosine decay")
    f4b.add_argument("--seed", type=int, default=0)
    f4b.set_defaults(func=cmd_fig4b)

    datasets = sub.add_parser("datasets", help="list each dataset and where it was found, or why not")
    datasets.set_defaults(func=cmd_datasets)

    run = sub.add_parser("run-notebooks", help="execute the series headless and write HTML")
    run.add_argument("--notebooks", default="notebooks")
    run.add_argument("--out", default="build")
    run.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    run.add_argument("--only", nargs="*", default=None, help="run only lessons whose names contain these")
    run.set_defaults(func=cmd_run_notebooks)

    execute = sub.add_parser("execute", help="rebuild notebooks from their .md sources, execute them, save")
    execute.add_argument("sources", nargs="+", help="NAME.md (or NAME.ipynb) files")
    execute.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    execute.add_argument("--set", action="append", metavar="NAME=VALUE",
                         help="run with this parameter overridden (e.g. SEED=3), checks and all; saves nothing")
    execute.set_defaults(func=cmd_execute)

    student = sub.add_parser("student-notebooks",
                             help="write the lessons with their exercise solutions taken out")
    student.add_argument("out_dir", help="where to write the student notebooks")
    student.add_argument("--notebooks", default="notebooks", help="the solution notebooks")
    student.set_defaults(func=cmd_student_notebooks)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, TypeError, ImportError, FloatingPointError) as exc:
        # Bad input, missing data or packages, a diverged run: say what was wrong, no traceback.
        print(f"vae-teach {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
