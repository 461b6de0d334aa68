"""Pulled data is checked against its hashes: the project's remote sets ``verify = true``.

Without it DVC trusts an object's name on the remote: a corrupted or tampered object would be
pulled into the cache and the workspace as if it were the published data.
"""

from __future__ import annotations

import configparser
import shutil

import pytest

from conftest import REPO
from test_dvc_roundtrip import run, served_read_only


def _project_remotes() -> dict[str, configparser.SectionProxy]:
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    default = config["core"]["remote"]
    remotes = {section.split('"')[1]: config[section] for section in config.sections()
               if section.strip("'").startswith("remote ")}  # DVC writes ['remote "name"']
    assert default in remotes, f"core.remote = {default} names no remote"
    return remotes


def test_every_remote_verifies_what_it_pulls():
    for name, remote in _project_remotes().items():
        assert remote.getboolean("verify", fallback=False), f"remote {name!r}: set verify = true in .dvc/config"


@pytest.fixture
def http_remote(tmp_path):
    """A DVC remote directory served read-only over HTTP on 127.0.0.1."""
    folder = tmp_path / "rgmorph-dvc-remote"
    folder.mkdir()
    with served_read_only(folder) as url:
        yield folder, url


@pytest.mark.slow
def test_pull_over_http_refuses_a_tampered_object(tmp_path, http_remote):
    folder, url = http_remote
    origin = tmp_path / "origin"  # .dvc/config's ../../rgmorph-dvc-remote is tmp_path/rgmorph-dvc-remote
    origin.mkdir()
    run(["git", "init", "-q"], origin)
    run(["dvc", "init", "-q"], origin)
    shutil.copy(REPO / ".dvc" / "config", origin / ".dvc" / "config")  # the project's remote settings
    (origin / "data").mkdir()
    (origin / "data" / "cutout.fits").write_bytes(b"SIMPLE  =                    T" + bytes(range(256)) * 8)
    (origin / "data" / "other.fits").write_bytes(b"SIMPLE  =                    T" + b"other" * 100)
    run(["dvc", "add", "-q", "data"], origin)
    run(["git", "add", "-A"], origin)
    run(["git", "commit", "-qm", "data"], origin)
    run(["dvc", "push", "-q"], origin)
    objects = [path for path in folder.rglob("*") if path.is_file() and not path.name.endswith(".dir")]
    assert len(objects) == 2

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "local", "url", url], clone)
    pulled = run(["dvc", "pull"], clone)  # an intact remote pulls
    assert (clone / "data" / "cutout.fits").read_bytes() == (origin / "data" / "cutout.fits").read_bytes(), \
        pulled.stdout + pulled.stderr

    tampered = next(path for path in objects if path.read_bytes() == (origin / "data" / "cutout.fits").read_bytes())
    tampered.write_bytes(b"SIMPLE  =                    T" + b"\0" * 2048)  # same name, other bytes
    second = tmp_path / "second"
    run(["git", "clone", "-q", str(origin), str(second)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "local", "url", url], second)
    refused = run(["dvc", "pull"], second, check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert not (second / "data" / "cutout.fits").exists() or \
        (second / "data" / "cutout.fits").read_bytes() == (origin / "data" / "cutout.fits").read_bytes(), output
