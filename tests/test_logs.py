"""The workflow scripts' logging: the rule's log, and the copies a job that trains several seeds writes."""

import logging

import pytest

from rgmorph.logs import logged


def test_every_copy_holds_the_whole_job_log_and_its_traceback(tmp_path):
    main, copies = tmp_path / "job.log", [tmp_path / "seeds" / "seed1.log", tmp_path / "seeds" / "seed2.log"]
    with pytest.raises(RuntimeError), logged(main, copies=copies) as log:
        log.info("epoch 1/2")
        logging.getLogger("rgmorph.train").warning("validation loss rose")
        raise RuntimeError("out of memory")
    for path in [main, *copies]:
        text = path.read_text()
        assert "INFO rgmorph: epoch 1/2" in text, path
        assert "WARNING rgmorph.train: validation loss rose" in text, path
        assert "RuntimeError: out of memory" in text, path


def test_a_later_job_starts_each_log_afresh(tmp_path):
    path = tmp_path / "seed0.log"
    for message in ("first attempt", "second attempt"):
        with logged(None, copies=[path]) as log:
            log.info(message)
    assert "first attempt" not in path.read_text() and "second attempt" in path.read_text()
