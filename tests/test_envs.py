"""The conda environment files (envs/) list the same packages and versions as pyproject.toml."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

ENV_FILES = ["envs/rgmorph.yaml", "envs/rgmorph-gpu.yaml"]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements(lines: list[str]) -> dict[str, str]:
    """{canonical name: specifier} of PEP 508 lines (conda's `name>=x` specs parse the same way)."""
    parsed = {}
    for line in lines:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name not in parsed, f"{name} listed twice"
        parsed[name] = str(requirement.specifier)
    return parsed


def pip_install() -> dict[str, str]:
    """What `pip install -e '.[test]'` asks for."""
    return requirements(PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["test"])


def environment(path: str) -> tuple[dict, dict[str, str], dict[str, str], list[str]]:
    env = yaml.safe_load((REPO / path).read_text())
    conda = [entry for entry in env["dependencies"] if isinstance(entry, str)]
    pip_sections = [entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict)]
    assert len(pip_sections) == 1, "one pip section"
    pip_options = [line for line in pip_sections[0] if line.startswith("-")]
    pip = [line for line in pip_sections[0] if not line.startswith("-")]
    return env, requirements(conda), requirements(pip), pip_options


@pytest.mark.parametrize("path", ENV_FILES)
def test_environment_parses_and_matches_pyproject(path):
    env, conda, pip, _ = environment(path)
    assert env["name"] and "conda-forge" in env["channels"]
    assert conda.pop("python") == PYPROJECT["requires-python"]
    assert conda.pop("pip") == ""
    assert not set(conda) & set(pip), "a package both from conda and from pip"
    assert {**conda, **pip} == pip_install()


@pytest.mark.parametrize("path", ENV_FILES)
def test_torch_is_pinned_and_from_pip(path):
    _, conda, pip, _ = environment(path)
    assert "torch" not in conda and "pytorch" not in conda
    constraints = requirements([line for line in (REPO / "constraints.txt").read_text().splitlines()
                                if line.strip() and not line.startswith("#")])
    assert pip["torch"] == constraints["torch"] == "==2.13.0"


def test_cpu_and_gpu_environments_differ_only_in_the_torch_build():
    _, cpu_conda, cpu_pip, cpu_options = environment("envs/rgmorph.yaml")
    _, gpu_conda, gpu_pip, gpu_options = environment("envs/rgmorph-gpu.yaml")
    assert cpu_options == ["--index-url https://download.pytorch.org/whl/cpu"]
    assert gpu_options == []  # PyPI's torch wheel: the CUDA build
    assert (cpu_conda, cpu_pip) == (gpu_conda, gpu_pip)
