"""Logging for the workflow's entry points: every message and any traceback go to the rule's log."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def logged(log_path: str | Path | None, level: int = logging.INFO):
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
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
