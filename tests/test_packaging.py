"""The conda environment and the pip set-up (with the ``dev`` and ``demo`` extras) pin the same packages at the same
versions."""

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg_pins() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = config["options.extras_require"]
    lines = (
        config["options"]["install_requires"].splitlines() + extras["dev"].splitlines() + extras["demo"].splitlines()
    )
    return {line.strip() for line in lines if line.strip() and not line.strip().startswith("#")}


def _environment_pins() -> tuple[set[str], list[str]]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    return {p for p in pip_section if not p.startswith("-e")}, conda


def test_environment_yml_matches_setup_cfg():
    pins, conda = _environment_pins()
    assert pins == _setup_cfg_pins()
    assert "python=3.11" in conda


def test_every_requirement_is_pinned_exactly():
    for requirement in _setup_cfg_pins():
        assert "==" in requirement, f"{requirement} is not pinned exactly"
