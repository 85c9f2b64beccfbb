"""structlog set-up: context variables first, JSON rendered with msgspec in production."""

from __future__ import annotations

import logging
import sys

import msgspec
import structlog

from app.core.http import add_request_id
from app.core.settings import Settings


def _msgspec_dumps(obj: object, default: object = None) -> str:
    return msgspec.json.encode(obj, enc_hook=str).decode()


def configure_logging(settings: Settings) -> None:
    """Configure structlog and route stdlib logging (uvicorn, asyncpg) through the same level."""
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_msgspec_dumps)
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,  # read only when something is logged (app/core/http.py)
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
