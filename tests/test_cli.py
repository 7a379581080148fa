"""The vae-teach command: train writes everything it promises; datasets reports; bad input is clear."""

import json
import re

import numpy as np
import pytest
from scipy.stats import norm

from vae_teach.cli import main
from vae_teach.data import load_dataset
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


def test_fig4b_writes_the_grid_its_codes_and_the_figure(tmp_path, capsys):
    out = tmp_path / "fig4b"
    code = main(["fig4b", "--out", str(out), "--epochs", "1", "--n-train", "300", "--hidden", "32"])
    assert code == 0
    with np.load(out / "fig4b.npz") as saved:
        grid, z = saved["grid"], saved["z"]
    assert grid.shape == (20, 20, 28, 28) and z.shape == (20, 20, 2)
    assert 0.0 <= grid.min() and grid.max() <= 1.0 and np.ptp(grid) > 0.1
    values = norm.ppf(np.linspace(0.05, 0.95, 20))                # the inverse-CDF grid over (0.05 ... 0.95)²
    assert np.allclose(z[3, :, 0], values), "z_1 rises left to right, the same in every row"
    assert np.allclose(z[:, 7, 1], values[::-1]), "z_2 falls top to bottom, the same in every column"
    assert (out / "fig4b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "300 examples seen" in capsys.readouterr().out


def test_datasets_lists_every_dataset_with_where_or_why(capsys):
    assert main(["datasets"]) == 0
    printed = capsys.readouterr().out
    for name in ("mnist-5k", "fashion-mnist", "mnist", "frey-faces"):
        assert name in printed
    assert re.search(r"^mnist-5k +found", printed, re.MULTILINE)
    widths = {line.index(" found") for line in printed.splitlines() if " found " in line}
    assert len(widths) == 1, "the state column is aligned"


def test_unknown_dataset_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    code = main(["train", "--dataset", "mnist-6k", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "mnist-6k" in err and "mnist-5k" in err


def test_train_a_continuous_likelihood_on_dequantised_data_reports_bits_per_dim(tmp_path, capsys):
    out = tmp_path / "gauss"
    code = main(["train", "--likelihood", "gaussian-learned", "--binarize", "dequantize", "--output-logvar", "-3",
                 "--latent-dim", "2", "--hidden", "16", "--epochs", "1", "--eval-k", "20", "--out", str(out),
                 "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["likelihood"] == "gaussian-learned"
    with np.load(out / "params.npz") as params:
        assert params["out_logvar"].shape == (784,)
    # Bits per dimension of the 8-bit images: -ELBO / (D log 2) + 8.
    expected = -summary["test_elbo_nats_per_image"] / (784 * np.log(2)) + 8
    assert summary["test_elbo_bits_per_dim"] == pytest.approx(expected)
    log_px = summary["test_log_likelihood"]
    assert log_px["k"] == 20 and log_px["standard_error"] > 0
    assert log_px["nats_per_image"] > summary["test_elbo_nats_per_image"] - 5   # IWAE_20 is not far below
    assert "importance sampling, k = 20" in capsys.readouterr().out


def test_train_with_the_iwae_objective_and_a_grey_bernoulli_warning(tmp_path, capsys):
    out = tmp_path / "iwae"
    assert main(["train", "--objective", "iwae", "--samples", "3", "--latent-dim", "2", "--hidden", "16",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["objective"], summary["samples"]) == ("iwae", 3)
    assert summary["test_elbo_bits_per_dim"] is None          # grey pixels under a Bernoulli: no density
    assert "not a normalised density" in capsys.readouterr().out


def test_a_density_on_binarised_pixels_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "bad"
    for binarize in ("threshold", "static", "dynamic"):
        code = main(["train", "--likelihood", "gaussian", "--binarize", binarize, "--out", str(out), "--quiet"])
        assert code == 2 and not out.exists()
        assert "--binarize dequantize" in capsys.readouterr().err


def test_binarize_static_is_a_seeded_stochastic_test_draw_and_threshold_is_x_above_half(tmp_path, monkeypatch):
    import vae_teach.evaluate as evaluate

    seen = {}
    real = evaluate.dataset_elbo

    def spy(model, X, *args, **kwargs):
        seen.setdefault(binarize, X)
        return real(model, X, *args, **kwargs)

    monkeypatch.setattr(evaluate, "dataset_elbo", spy)
    for binarize in ("threshold", "static"):
        assert main(["train", "--binarize", binarize, "--latent-dim", "2", "--hidden", "8", "--epochs", "1",
                     "--out", str(tmp_path / binarize), "--quiet"]) == 0
        assert json.loads((tmp_path / binarize / "summary.json").read_text())["binarize"] == binarize
    grey = load_dataset("mnist-5k").X_test
    np.testing.assert_array_equal(seen["threshold"], grey > 0.5)
    assert set(np.unique(seen["static"])) == {0.0, 1.0} and not np.array_equal(seen["static"], grey > 0.5)
    assert abs(seen["static"].mean() - grey.mean()) < 0.01, "a Bernoulli draw keeps the mean intensity"


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_train_with_beta_warmup_and_free_bits_reports_rate_distortion_units_and_mi(tmp_path, backend):
    out = tmp_path / "warm"
    assert main(["train", "--backend", backend, "--latent-dim", "4", "--hidden", "16", "--epochs", "2",
                 "--kl-warmup", "1", "--free-bits", "0.1", "--beta", "0.5", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["beta"], summary["kl_warmup_epochs"], summary["free_bits"]) == (0.5, 1, 0.1)
    assert summary["rate"] > 0 and summary["distortion"] > 0
    # D + R is -ELBO up to the Monte Carlo noise of one z per image (the test ELBO draws its own)
    assert summary["distortion"] + summary["rate"] == pytest.approx(-summary["test_elbo_nats_per_image"], rel=0.02)
    assert 0 <= summary["active_units"] <= 4
    mi = summary["mutual_information"]
    assert 0 <= mi["nats"] <= mi["log_n"] + 4 * mi["standard_error"] and mi["images"] == 1000
    assert mi["nats"] + mi["aggregate_kl"] == pytest.approx(summary["rate"], rel=0.2, abs=0.2)


def test_train_with_kl_cycles(tmp_path):
    out = tmp_path / "cycles"
    assert main(["train", "--latent-dim", "2", "--hidden", "16", "--epochs", "2", "--kl-cycles", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["kl_cycles"] == 2


@pytest.mark.parametrize("flags, message", [
    (["--beta", "-1"], "--beta must be a finite number >= 0"),
    (["--free-bits", "-0.5"], "--free-bits must be a finite number of nats >= 0"),
    (["--kl-warmup", "5", "--epochs", "2"], "longer than the training"),
    (["--kl-warmup", "1", "--kl-cycles", "2"], "choose one"),
    (["--kl-cycles", "-1"], "must be >= 0"),
    (["--objective", "iwae", "--beta", "0.5"], "the IWAE bound"),
])
def test_bad_kl_flags_are_refused_before_anything_is_written(tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    assert main(["train", *flags, "--out", str(out), "--quiet"]) == 2 and not out.exists()
    assert message in capsys.readouterr().err
