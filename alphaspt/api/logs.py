"""Log hygiene for the API's server: no query string in any line uvicorn writes.

uvicorn's access lines (``"GET /api/v1/portfolio?token=... HTTP/1.1" 401``) and WebSocket
lines (``"WebSocket /api/v1/stream?..." [accepted]``) carry the full path with its query.
The API refuses a token in a query string, but the refused request would still be logged
with it, so :class:`NoQueryString` removes every query string from those lines: the path
alone is logged.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

from uvicorn.config import LOGGING_CONFIG

_QUERY: Final = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")


def strip_query(text: str) -> str:
    """``"GET /a?token=x HTTP/1.1"`` → ``"GET /a HTTP/1.1"`` (every path in the text)."""
    return _QUERY.sub(r"\1", text)


class NoQueryString(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = strip_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(strip_query(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def install(loggers: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    """Add the filter to uvicorn's loggers (a server started without :func:`log_config`)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoQueryString) for f in logger.filters):
            logger.addFilter(NoQueryString())


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`NoQueryString` on every
    handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["no_query_string"] = {"()": NoQueryString}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("no_query_string")
    return config
