"""Logging set-up: structlog for syncd's own events, stdlib logging (SQLAlchemy, APScheduler,
urllib3, ...) routed through the same processor chain, one renderer for both.

Redaction (``syncd.core.redaction.structlog_processor``) runs in the formatter, after exception
info has been turned into text and right before rendering: nothing reaches the stream
unredacted, whether it came from structlog, from a foreign library, or from a traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import IO, Any, Literal

import structlog

from syncd.core.redaction import MASK, structlog_processor
from syncd.core.rules import CONTACT_SPAN, account_label

Format = Literal["json", "console"]
LEVELS = ("debug", "info", "warning", "error", "critical")

_HANDLER_MARK = "_syncd_handler"

# "password=..." / "pwd: ..." inside free text (ODBC connection strings, driver messages): the
# value is masked even when nobody registered it. Keys as in syncd.core.redaction's key rule.
_INLINE_SECRET = re.compile(
    r"(?P<key>\b(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|client_secret)\b\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s;,&)}\]]+)",
    re.IGNORECASE,
)


def _mask_inline(text: str) -> str:
    return _INLINE_SECRET.sub(lambda m: m.group("key") + MASK, text)


def _inline_secret_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: _mask_inline(v) if isinstance(v, str) else v for k, v in event_dict.items()}


# Fields that name state-store accounts. A contact person's account is keyed by a negative
# integer (``rules.contact_account``); people, and a grep for "10001-2", know it by its label.
# Naming it here, once, covers every log call and the records bound to the context.
ACCOUNT_FIELDS = frozenset({"address", "addresses", "account", "accounts", "record", "records"})
_KEY_TEXT = re.compile(r"-\d+")


def _label(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return account_label(value) if value <= -CONTACT_SPAN else value
    if isinstance(value, str):
        return _label(int(value)) if _KEY_TEXT.fullmatch(value) else value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_label(v) for v in value]
    return value


def account_label_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Contact accounts as ``10001-2`` in every field that names an account."""
    for key in ACCOUNT_FIELDS.intersection(event_dict):
        event_dict[key] = _label(event_dict[key])
    return event_dict


def redaction_chain() -> list[Any]:
    """The processors that make an event safe to render, in order. Exported so that tests
    and other renderers use exactly the same chain."""
    return [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,  # exception -> text first, so it is redacted too
        _inline_secret_processor,
        structlog_processor,
    ]


def _pre_chain() -> list[Any]:
    """Processors that enrich an event; applied to structlog and foreign (stdlib) records alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _choose_format(fmt: str | None, stream: IO[str]) -> Format:
    if fmt is None:
        isatty = getattr(stream, "isatty", None)
        return "console" if isatty is not None and isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', got {fmt!r}")
    return fmt  # type: ignore[return-value]


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    return logging.getLevelName(name.upper())


def configure_logging(
    fmt: str | None = None, level: str | int = "info", *, stream: IO[str] | None = None
) -> Format:
    """Set up structlog and stdlib logging to write to ``stream`` (default: stderr).

    ``fmt`` None picks console rendering on a terminal and JSON lines otherwise. Logs go to
    stderr so that machine output on stdout (``status --json``, ``accounts export``) stays
    clean. Safe to call again: the previous syncd handler is replaced, not duplicated.
    Returns the format chosen.
    """
    out = stream if stream is not None else sys.stderr
    chosen = _choose_format(fmt, out)
    numeric = parse_level(level)

    renderer: Any
    if chosen == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False, default=str)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=bool(getattr(out, "isatty", lambda: False)()),
            exception_formatter=structlog.dev.plain_traceback,
        )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            account_label_processor,
            *redaction_chain(),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Alembic narrates every start ("Context impl SQLiteImpl."); syncd logs the migration itself.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_pre_chain(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Modules keep module-level loggers (``log = structlog.get_logger(...)``); caching would
        # freeze them to whatever configuration was active at their first use.
        cache_logger_on_first_use=False,
    )
    return chosen


def reset_logging() -> None:
    """Undo ``configure_logging`` (tests)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    structlog.reset_defaults()
