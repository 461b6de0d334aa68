"""Small file helpers shared by every stage: atomic writes and hashing."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
PART_SUFFIX = ".part"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside ``target``; move it into place only if the block succeeds.

    A crash or error leaves no partial file where a later step would read it. A process killed
    with SIGKILL cannot clean up, so its hidden ``.<name>.*.part`` file is removed here, the next
    time the same target is written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp adds exactly 8 random characters: '?' * 8 never matches another target's parts.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.{'?' * 8}{PART_SUFFIX}"):
        stale.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PART_SUFFIX, dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def remove_stale_parts(directory: str | Path) -> int:
    """Delete the temporary files that killed writers left in ``directory``; return how many.

    Only call this where no other process writes at the same time (e.g. at the start of a stage
    that owns the directory).
    """
    removed = 0
    for stale in Path(directory).glob(f".*{PART_SUFFIX}"):
        stale.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("removed %d partial file(s) left in %s by an interrupted run", removed, directory)
    return removed
