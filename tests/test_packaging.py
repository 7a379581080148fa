"""The packaging stays consistent: environment.yml lists what pyproject.toml lists."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name, where they differ
CONDA_NAME = {"torch": "pytorch"}


def _split(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", requirement)
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        requirements += [r for r in items if not r.startswith("vae_teach[")]
    return dict(_split(r) for r in requirements)


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"], "environment.yml must use conda-forge"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    return dict(_split(d) for d in conda if not d.startswith(("python", "pip")))


def test_environment_yml_lists_the_same_packages_and_versions_as_pyproject():
    expected = {CONDA_NAME.get(name, name): spec for name, spec in _pyproject_requirements().items()}
    assert _environment_requirements() == expected


def test_all_extra_pulls_every_other_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    listed = re.fullmatch(r"vae_teach\[(.*)\]", extras["all"][0]).group(1).split(",")
    assert sorted(listed) == sorted(set(extras) - {"all"})


def test_torch_is_pinned_to_the_local_cpu_build():
    """Any other torch spec pulls several GB of CUDA packages on our machines."""
    assert _pyproject_requirements()["torch"] == "==2.13.0"
