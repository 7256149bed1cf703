"""The access log of `assistant serve`: uvicorn's logging config with query strings redacted (`RedactQuery`),
so a token pasted into a URL never reaches a log line."""

from __future__ import annotations

import logging


class RedactQuery(logging.Filter):
    """Drops query strings from uvicorn's access log lines: a token pasted into a URL never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


def access_log_config() -> dict:
    """uvicorn's logging config with `RedactQuery` on the access log."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQuery}
    config["handlers"]["access"].setdefault("filters", []).append("redact_query")
    return config
