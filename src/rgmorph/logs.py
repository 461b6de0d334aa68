"""Logging for the workflow's entry points: every message and any traceback go to the rule's log."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def logged(log_path: str | Path | None, level: int = logging.INFO, copies: Sequence[str | Path] = ()):
    """Everything logged inside goes to stderr and ``log_path``, and to each of ``copies`` (a job's per-seed logs
    when its seeds train together)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    for path in [log_path, *copies] if log_path else copies:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)
    logging.captureWarnings(True)
    for chatty in ("fontTools", "matplotlib", "PIL"):  # their INFO lines drown the pipeline's own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        yield logging.getLogger("rgmorph")
    except Exception:
        logging.getLogger("rgmorph").exception("failed")
        raise
    finally:
        for handler in handlers:
            handler.flush()
