"""The vae-teach command: train writes everything it promises; datasets reports; bad input is clear."""

import json

import numpy as np

from vae_teach.cli import main
from vae_teach.interface import VAEConfig, param_shapes


def test_train_writes_params_history_summary_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist-5k", "--latent-dim", "2", "--hidden", "16", "--epochs", "2",
                 "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    config = VAEConfig.from_dict(summary["config"])
    with np.load(out / "params.npz") as params:
        assert {k: params[k].shape for k in params.files} == param_shapes(config)
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["test_elbo"]) == 2
    assert summary["test_elbo_nats_per_image"] < 0
    for figure in ("loss_curves", "reconstructions", "prior_samples", "latent_scatter", "manifold"):
        assert (out / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert not list(out.glob("*.tmp*")), "a temporary file was left behind"
    printed = capsys.readouterr().out
    assert "nats per image" in printed and "examples/s" in printed


def test_datasets_lists_every_dataset_with_where_or_why(capsys):
    assert main(["datasets"]) == 0
    printed = capsys.readouterr().out
    for name in ("mnist-5k", "fashion-mnist", "mnist", "frey-faces"):
        assert name in printed
    assert "mnist-5k       found" in printed


def test_unknown_dataset_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist-6k", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "mnist-6k" in err and "mnist-5k" in err
