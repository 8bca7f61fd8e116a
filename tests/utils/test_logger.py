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


def test_project_loggers_write_where_the_fastreid_logger_writes(tmp_path, capsys):
    fastreid_logger = logging.getLogger("fastreid")
    before = list(fastreid_logger.handlers)
    setup_logger.cache_clear()
    try:
        setup_logger(str(tmp_path), color=False)
        logging.getLogger("projects.FastAttr.fastattr.evaluation").info("per-attribute table")
        logging.getLogger("fastreid_projects.FastCls.fastcls").warning("installed name")
        logging.getLogger("fastreid.engine").info("core message")
        for handler in fastreid_logger.handlers:
            handler.flush()
        lines = (tmp_path / "log.txt").read_text().splitlines()
    finally:
        for handler in [h for h in fastreid_logger.handlers if h not in before]:
            fastreid_logger.removeHandler(handler)
            handler.close()
        setup_logger.cache_clear()
    assert [line.split("] ", 1)[1] for line in lines[-3:]] == [
        "projects.FastAttr.fastattr.evaluation INFO: per-attribute table",
        "fastreid_projects.FastCls.fastcls WARNING: installed name",
        "fastreid.engine INFO: core message",
    ]
    assert "per-attribute table" in capsys.readouterr().out
    # With the fastreid handlers gone, nothing is left behind on the project loggers.
    # (only the one forwarding handler: no console or file handler of its own, whatever other
    # code attached to the same logger before)
    for name in ("projects", "fastreid_projects"):
        handlers = logging.getLogger(name).handlers
        assert sum(getattr(h, "_fastreid_forward", False) for h in handlers) == 1
        assert not any(getattr(h, "_fastreid_handler", False) for h in handlers)
