"""Two writers in one results directory: neither's cleanup of partial files removes the other's work.

Snakemake locks its own working directory only; two runs from two working directories (or one
run's parallel jobs) can write into one ``results_dir`` at once. A temporary file names its writer
(``.<name>.<pid>@<host>.<random>.part``) and cleanup removes only those whose writer is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rgmorph.files import _owner_tag, atomic_path, is_stale_part, part_target_name, remove_stale_parts

PYTHON = sys.executable
FILES_PER_WRITER = 150

# Writes FILES_PER_WRITER files slowly (the temporary file exists for a while before it is moved
# into place) and cleans the directory before each one, as the fetch step does at its start.
WRITER = """
import os, sys, time
from pathlib import Path
from rgmorph.files import atomic_path, remove_stale_parts
directory, who, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
go = Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
for k in range(count):
    remove_stale_parts(directory)
    data = f"{who} {k}\\n".encode() * 64
    with atomic_path(directory / f"{who}-{k:04d}.fits") as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(0.002)  # the other writer cleans up now
            handle.write(data[len(data) // 2:])
print("done", flush=True)
"""


def test_two_writers_at_once_lose_no_file(tmp_path):
    directory, go = tmp_path / "cutouts", tmp_path / "go"
    directory.mkdir()
    writers = [subprocess.Popen([PYTHON, "-c", WRITER, str(directory), who, str(FILES_PER_WRITER), str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in ("a", "b")]
    go.touch()  # both start together
    outputs = [writer.communicate(timeout=120) for writer in writers]
    for writer, (stdout, stderr) in zip(writers, outputs):
        assert writer.returncode == 0 and stdout == "done\n", stderr[-3000:]
    for who in ("a", "b"):
        for k in range(FILES_PER_WRITER):
            assert (directory / f"{who}-{k:04d}.fits").read_bytes() == f"{who} {k}\n".encode() * 64
    assert sorted(path.name for path in directory.iterdir() if path.name.endswith(".part")) == []
    assert len(list(directory.iterdir())) == 2 * FILES_PER_WRITER


def _dead_pid() -> int:
    process = subprocess.Popen([PYTHON, "-c", "pass"])
    process.wait()
    return process.pid


def test_cleanup_keeps_live_writers_files_and_removes_dead_ones(tmp_path):
    host = _owner_tag().split("@", 1)[1]
    sleeper = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".a.fits.{sleeper.pid}@{host}.abcdefgh.part"
        mine = tmp_path / f".b.fits.{os.getpid()}@{host}.abcdefgh.part"
        dead = tmp_path / f".c.fits.{_dead_pid()}@{host}.abcdefgh.part"
        legacy = tmp_path / ".d.fits.k1ll3d9x.part"  # named by an earlier version: no writer recorded
        remote_fresh = tmp_path / ".e.fits.1@elsewhere.abcdefgh.part"
        remote_old = tmp_path / ".f.fits.1@elsewhere.abcdefgh.part"
        for path in (live, mine, dead, legacy, remote_fresh, remote_old):
            path.write_bytes(b"half")
        two_hours_ago = time.time() - 7200
        os.utime(remote_old, (two_hours_ago, two_hours_ago))
        assert [part_target_name(path) for path in (live, legacy)] == ["a.fits", "d.fits"]
        assert remove_stale_parts(tmp_path) == 3
        assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in (live, mine, remote_fresh))
        assert not is_stale_part(live)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert is_stale_part(live)  # its writer is gone now


def test_atomic_path_names_its_writer_and_cleans_only_its_own_target(tmp_path):
    host = _owner_tag().split("@", 1)[1]
    dead = _dead_pid()
    own_leftover = tmp_path / f".x.fits.{dead}@{host}.abcdefgh.part"
    other_target = tmp_path / f".x.fits.gz.{dead}@{host}.abcdefgh.part"
    for path in (own_leftover, other_target):
        path.write_bytes(b"half")
    with atomic_path(tmp_path / "x.fits") as temporary:
        assert temporary.name.startswith(f".x.fits.{_owner_tag()}.") and part_target_name(temporary) == "x.fits"
        temporary.write_bytes(b"whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["x.fits", other_target.name])


def test_a_file_written_atomically_gets_the_mode_a_plain_write_gets(tmp_path):
    """mkstemp's 0600 must not reach the results: a collaborator on the same cluster reads them."""
    old_mask = os.umask(0o022)
    try:
        plain = tmp_path / "plain.csv"
        plain.write_text("a\n")
        with atomic_path(tmp_path / "atomic.csv") as temporary:
            temporary.write_text("a\n")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "atomic.csv").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
