"""setup_logger reconfigures on a second call instead of stacking handlers."""

import logging

from fastreid.utils.logger import setup_logger


def test_second_setup_replaces_the_handlers(tmp_path):
    first, second = tmp_path / "run1", tmp_path / "run2"
    setup_logger(str(first), name="fastreid_logger_test")
    logger = setup_logger(str(second), name="fastreid_logger_test")
    assert len(logger.handlers) == 2  # one console, one file
    logger.info("only in the second run")
    for handler in logger.handlers:
        handler.flush()
    assert "only in the second run" in (second / "log.txt").read_text()
    assert "only in the second run" not in (first / "log.txt").read_text()
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    assert [h.baseFilename for h in files] == [str(second / "log.txt")]
