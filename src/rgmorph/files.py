"""Small file helpers shared by every stage: atomic writes, hashing and checked reads of damaged files."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import logging
import os
import re
import socket
import tempfile
import zipfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
PART_SUFFIX = ".part"
# A temporary file made on another host (a shared file system), or one whose name this module did not
# make, is stale once it has not been written for this long.
STALE_PART_AGE_S = 3600.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """sha256 of a file; of a folder (an image-folder catalogue), the sha256 of its sorted
    ``relative path<TAB>file sha256`` lines, so that any added, removed or changed file shows."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    lines = "".join(f"{member.relative_to(path).as_posix()}\t{sha256_file(member)}\n"
                    for member in sorted(path.rglob("*")) if member.is_file())
    return hashlib.sha256(lines.encode()).hexdigest()


def _host_label() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:63] or "host"


def _owner_tag() -> str:
    """``<pid>@<host>``: which process writes a temporary file, so that cleanup can tell a live writer's
    file (another run writing into the same directory now) from one a killed writer left."""
    return f"{os.getpid()}@{_host_label()}"


# .<target name>.<pid>@<host>.<8 random characters>.part ; mkstemp's random characters have no dots.
_OWNED_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9_-]+)\.[a-z0-9_]{8}"
                         + re.escape(PART_SUFFIX) + "$")
# .<target name>.<8 random characters>.part : written by versions that did not record the writer
_UNOWNED_PART = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}" + re.escape(PART_SUFFIX) + "$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def part_target_name(path: str | Path) -> str | None:
    """The name of the file a temporary ``.part`` file was going to become (None: not one of ours)."""
    name = Path(path).name
    match = _OWNED_PART.match(name) or _UNOWNED_PART.match(name)
    return match["name"] if match else None


def is_stale_part(path: str | Path, max_age_s: float = STALE_PART_AGE_S) -> bool:
    """Whether no live process will still move this temporary file into place.

    A file made on this host is stale once its writer's process is gone. One named the way earlier
    versions named them (no writer recorded) is stale: that version is not running any more. Any
    other (made on another host sharing the file system, or not made here) is stale once it has not
    been written for ``max_age_s``.
    """
    path = Path(path)
    match = _OWNED_PART.match(path.name)
    if match and match["host"] == _host_label():
        return not _pid_alive(int(match["pid"]))
    if match is None and _UNOWNED_PART.match(path.name):
        return True  # written by a version that did not record its writer: it ran before this one
    try:
        return time.time() - path.stat().st_mtime > max_age_s
    except FileNotFoundError:
        return False  # moved into place or removed by its writer meanwhile


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    A crash or error leaves no partial file where a later step would read it. A process killed
    with SIGKILL cannot clean up, so its hidden ``.<name>.<pid>@<host>.*.part`` file is removed here,
    the next time the same target is written; another live process's file is left alone (two
    writers of one target: the last to finish wins, and both write a complete file).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*{PART_SUFFIX}"):
        if part_target_name(stale) == target.name and is_stale_part(stale):
            stale.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.{_owner_tag()}.", suffix=PART_SUFFIX,
                                         dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        # mkstemp makes the file 0600; give it the mode a plain open() gives, so collaborators can read results
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_json_atomic(target: str | Path, payload) -> None:
    write_bytes_atomic(target, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def write_csv_atomic(target: str | Path, frame, **options) -> None:
    with atomic_path(target) as temporary:
        frame.to_csv(temporary, index=False, **options)


def remove_stale_parts(directory: str | Path, max_age_s: float = STALE_PART_AGE_S) -> int:
    """Delete the temporary files that killed writers left in ``directory``; return how many.

    Safe while other processes write into the same directory (another run into the same
    ``results_dir``, or another job of this one): a file whose writer is still alive is kept
    (see ``is_stale_part``).
    """
    removed = 0
    for stale in Path(directory).glob(f".*{PART_SUFFIX}"):
        if is_stale_part(stale, max_age_s):
            stale.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d partial file(s) left in %s by an interrupted run", removed, directory)
    return removed


class DamagedFileError(RuntimeError):
    """An input file that cannot be read; the message names it and the rule that remakes it."""


def set_aside(path: str | Path, remade_by: str, reason: str) -> DamagedFileError:
    """Move a damaged ``path`` to ``<name>.damaged``, so that Snakemake remakes it on the next run; return the
    error that names the file, why it is damaged and the rule that remakes it."""
    aside = Path(path).with_name(Path(path).name + ".damaged")
    os.replace(path, aside)
    return DamagedFileError(f"{path} is damaged ({reason}); it was moved to {aside.name}: "
                            f"rerun and the '{remade_by}' rule remakes it")


@contextmanager
def checked_read(path: str | Path, remade_by: str):
    """Reading ``path`` inside this block: a damaged file (truncated, corrupt) is set aside as
    ``<name>.damaged`` (so that Snakemake remakes it on the next run) and named in the error."""
    try:
        yield
    except (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as error:
        if isinstance(error, (FileNotFoundError, DamagedFileError)) or not Path(path).is_file():
            raise
        raise set_aside(path, remade_by, f"{type(error).__name__}: {error}") from error


def read_checked_csv(path: str | Path, remade_by: str, required_columns: Sequence[str],
                     filled_columns: Sequence[str] | None = None, dtype: dict | None = None):
    """A CSV file that a rule wrote, as a DataFrame. A damaged one (cut short, unreadable, without a
    ``required_columns`` or with an empty value in ``filled_columns``: all columns if None) is set aside
    (``set_aside``) and named. Only empty fields are missing values: a source named 'NA' stays 'NA'."""
    import pandas as pd

    data = Path(path).read_bytes()  # a missing file is not a damaged one: FileNotFoundError
    if data and not data.endswith(b"\n"):  # every writer ends its last line; a cut-short file does not
        raise set_aside(path, remade_by, "it is cut short: its last line does not end")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=dtype, keep_default_na=False, na_values=[""])
    except ValueError as error:  # empty, unparseable, not UTF-8, a value of the wrong type
        raise set_aside(path, remade_by, f"it cannot be read as CSV: {error}") from error
    missing = [column for column in required_columns if column not in frame.columns]
    if missing:
        raise set_aside(path, remade_by, f"it lacks column(s) {missing}; it has {list(frame.columns)}")
    empty = frame[list(frame.columns if filled_columns is None else filled_columns)].isna()
    if empty.to_numpy().any():
        flagged = empty.stack()
        row, column = flagged[flagged].index[0]
        raise set_aside(path, remade_by, f"column '{column}' is empty in row {row + 1}")
    return frame
