"""Whether a layout's two bodies may say different things (`syncd check`, `layouts preview`).

A mail client shows either ``body.txt.j2`` or ``body.html.j2``; an operator who edits one and
forgets the other sends customers two versions of the mail. Reported when the two carry
different ``{# layout-version: N #}`` marks, or (without marks, operator layouts only) when one
was changed more than ``STALE_AFTER`` after the other. Shipped layouts' times come from an
install or a checkout and say nothing; an unchanged copy of a shipped layout (``cp -a`` keeps
those times) is not judged by them either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from syncd.render.context import HTML, TEXT


class LayoutStore(Protocol):
    """What this module asks of ``syncd.render.store.LayoutStore`` (which calls it)."""

    layouts_dir: Path | None

    def folder(self, name: str) -> Any: ...

    def origin(self, name: str) -> str: ...

    def shipped_folder(self, name: str) -> Any: ...

# Edits of both parts in one sitting land within minutes of each other.
STALE_AFTER = 600.0  # seconds
# ``{# layout-version: 7 #}`` in both bodies: equal marks say "these agree", whatever the times.
_VERSION_MARK = re.compile(r"\{#-?\s*layout-version\s*[:=]\s*([^\s#]+)\s*-?#\}")


@dataclass(frozen=True)
class Staleness:
    """``newer`` was changed ``seconds`` after ``older``, or the ``layout-version`` marks differ
    (``marks``: the text part's, the HTML part's)."""

    name: str
    origin: str
    newer: str
    older: str
    seconds: float | None = None
    marks: tuple[str | None, str | None] | None = None


def staleness(store: LayoutStore, name: str) -> Staleness | None:
    folder = store.folder(name)
    if folder is None or not (folder / HTML).is_file() or not (folder / TEXT).is_file():
        return None
    origin = store.origin(name)
    try:
        texts = [(folder / f).read_text(encoding="utf-8") for f in (TEXT, HTML)]
    except (OSError, UnicodeDecodeError):
        return None  # the check reports an unreadable file on its own
    marks = (_mark(texts[0]), _mark(texts[1]))
    if marks != (None, None):
        if marks[0] == marks[1]:
            return None
        newer, older = (TEXT, HTML) if marks[1] is None else (HTML, TEXT)
        return Staleness(name, origin, newer, older, marks=marks)
    own = store.layouts_dir is not None and isinstance(folder, Path) and folder.parent == store.layouts_dir
    if not own or _as_shipped(store, name, texts):
        return None
    try:
        text_time, html_time = (Path(folder, f).stat().st_mtime for f in (TEXT, HTML))
    except OSError:
        return None
    if abs(text_time - html_time) <= STALE_AFTER:
        return None
    newer, older = (TEXT, HTML) if text_time > html_time else (HTML, TEXT)
    return Staleness(name, origin, newer, older, seconds=abs(text_time - html_time))


def _mark(text: str) -> str | None:
    m = _VERSION_MARK.search(text)
    return m.group(1) if m else None


def _as_shipped(store: LayoutStore, name: str, texts: list[str]) -> bool:
    """Both bodies are unchanged copies of the shipped layout of the same name."""
    shipped = store.shipped_folder(name)
    try:
        pairs = zip((TEXT, HTML), texts, strict=True)
        return all((shipped / f).read_text(encoding="utf-8") == t for f, t in pairs)
    except (OSError, UnicodeDecodeError):
        return False
