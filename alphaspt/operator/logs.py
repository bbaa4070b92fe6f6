"""Object names in every operator log line.

kopf's per-object records carry the object in ``k8s_ref`` (its own formatter prints it,
a plain ``logging`` configuration does not); our services log from inside a handler.
:func:`acting_on` sets the object for the duration of a handler (a context variable, so it
follows the handler's awaits and nothing else), and :class:`ObjectNames`, installed on the
operator's loggers by :func:`install`, prefixes each record with ``[Kind namespace/name]``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "alphaspt_operator_object", default=None)

LOGGERS: Final = ("kopf.objects", "alphaspt.operator")
"""Loggers whose records name an object (``alphaspt.operator`` and its children)."""


def describe(kind: str, namespace: str | None, name: str | None) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@contextmanager
def acting_on(kind: str, namespace: str | None, name: str | None) -> Iterator[None]:
    token = CURRENT.set(describe(kind, namespace, name))
    try:
        yield
    finally:
        CURRENT.reset(token)


class ObjectNames(logging.Filter):
    """Prefixes records with the object they are about (once; never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "alphaspt_object", None) is not None:
            return True
        ref: Mapping[str, Any] | None = getattr(record, "k8s_ref", None)
        shown = (describe(str(ref.get("kind")), ref.get("namespace"), ref.get("name"))
                 if ref else CURRENT.get())
        record.alphaspt_object = shown or ""
        if shown:
            record.msg = f"[{shown}] {record.msg}"
        return True


_FILTER: Final = ObjectNames()


def install() -> None:
    """Add the filter to every operator logger that exists or will (idempotent)."""
    names = set(LOGGERS) | {n for n in logging.root.manager.loggerDict
                            if n.startswith("alphaspt.operator.")}
    for name in sorted(names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
