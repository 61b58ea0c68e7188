"""E-mail layouts: Jinja2, sandboxed, found by name (spec §2 "Files and service").

A layout NAME is a folder ``NAME/`` with ``subject.txt.j2``, ``body.txt.j2`` and optionally
``body.html.j2``. The operator's ``[mail] layouts_dir`` is searched first, then the layouts
shipped in the ``layouts`` package; a NAME found in the operator's folder replaces the shipped
one as a whole (never file by file: a shipped HTML body next to an operator's text body would
say different things).

Templates are loaded *by file name* so autoescaping follows the file: ``.html.j2`` escaped,
``.txt.j2`` not (a template made with ``from_string`` would be escaped even for text).
``StrictUndefined`` turns a typo into an error naming layout, file and variable; ``None``
renders as an empty string, not "None". What a template sees is ``syncd.render.context``;
what ``check`` looks for, ``syncd.render.checks``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from syncd.core.domain import CheckItem, ErpAddress, RenderedLayout
from syncd.core.errors import ConfigError, PermanentError
from syncd.render.checks import check_reads, reads_column, reads_name, sms_problems, unknown_names
from syncd.render.context import FILES, HTML, REQUIRED, SMS, SUBJECT, TEXT, build_context, row_key
from syncd.render.staleness import Staleness, staleness

_INDEX = {file: i for i, file in enumerate(FILES)}
PREVIEW_PLACEHOLDER = "••••••••••"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
class LayoutError(PermanentError):
    """A layout cannot be rendered. Raised per mail, so the job fails with this reason (the
    layout is the same for every record, but ``syncd check`` catches static faults before a
    run; what is left depends on one record's data)."""

    def __init__(self, message: str, *, layout: str, file: str | None = None) -> None:
        super().__init__(message, code="layout")
        self.layout = layout
        self.file = file


# --------------------------------------------------------------------------- finding layouts


def shipped_root() -> Traversable:
    return resources.files("syncd.layouts")


class _LayoutLoader(jinja2.BaseLoader):
    """Template names are ``NAME/FILE``; NAME resolves to one folder (operator's or shipped)."""

    def __init__(self, store: LayoutStore) -> None:
        self._store = store

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool]]:
        name, _, file = template.partition("/")
        folder = self._store.folder(name)
        if folder is None or "/" in file or file not in FILES:
            raise jinja2.TemplateNotFound(template)
        entry = folder / file
        if not entry.is_file():
            raise jinja2.TemplateNotFound(template)
        source = entry.read_text(encoding="utf-8")

        def still_current() -> bool:
            # Edited, or NAME now resolves elsewhere (an override added or removed)?
            if self._store.folder(name) != folder:
                return False
            return not isinstance(entry, Path) or _mtime(entry) == mtime

        mtime = entry.stat().st_mtime if isinstance(entry, Path) else None
        filename = str(entry) if isinstance(entry, Path) else f"<shipped>/{template}"
        return source, filename, still_current


def _make_source(name: str, folder: Traversable, own: bool) -> _Source:
    paths = tuple(os.fspath(folder / file) for file in FILES) if isinstance(folder, Path) else None
    return _Source(name, folder, own, paths)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _format_datetime(value: Any, fmt: str = "%d.%m.%Y %H:%M") -> str:
    if isinstance(value, datetime | date):
        return value.strftime(fmt)
    return "" if value is None else str(value)


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with each template's globals as one flat dict.

    Jinja keeps them as ``ChainMap(template globals, environment globals)`` and copies that
    into a fresh dict for every render (twice iterated: keys, then each value through the
    chain): about a tenth of a credentials mail's CPU time for three templates. A flat copy
    gives every render the same names; it only stops later changes of ``env.globals`` from
    reaching templates already compiled, and nothing changes them after ``LayoutStore()``.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


@dataclass(frozen=True)
class _Source:
    name: str
    folder: Traversable
    operator: bool
    # FILES as OS paths when ``folder`` is a real directory (None: a packaged resource).
    paths: tuple[str, ...] | None = None

    def stamp(self) -> tuple[Any, ...]:
        """Per file of FILES, what says it changed: its mtime (None when it is missing). Files
        of packaged, non-directory resources cannot change while we run: only presence counts.
        The same test ``_LayoutLoader``'s ``still_current`` makes, in one ``stat`` per file."""
        if self.paths is None:
            return tuple((self.folder / file).is_file() or None for file in FILES)
        return tuple(_file_mtime(path) for path in self.paths)


def _file_mtime(path: str) -> float | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime if stat.S_ISREG(st.st_mode) else None


@dataclass
class _Loaded:
    """One layout's compiled templates, valid while ``source`` and ``stamp`` are unchanged."""

    source: _Source
    stamp: tuple[Any, ...]
    templates: dict[str, jinja2.Template]

    def has(self, file: str) -> bool:
        return self.stamp[_INDEX[file]] is not None


class LayoutStore:
    """``syncd.core.ports.LayoutRenderer`` over the operator's folder and the shipped layouts."""

    def __init__(self, layouts_dir: str | os.PathLike[str] | None = None) -> None:
        self.layouts_dir = Path(layouts_dir) if layouts_dir else None
        if self.layouts_dir is not None and not self.layouts_dir.is_dir():
            raise ConfigError("is not a directory", key="mail.layouts_dir", value=str(layouts_dir))
        self._shipped = shipped_root()
        # Immutable: a layout cannot change the row (erp.clear(), erp.update(...)) a caller reuses.
        self.env = _Environment(
            loader=_LayoutLoader(self),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2", "html"), disabled_extensions=("txt.j2", "txt"),
                default_for_string=False, default=False,
            ),
            finalize=_finalize,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=True,
        )
        self.env.filters["datetime"] = _format_datetime
        # Per NAME: its candidate folders (operator's, shipped) built once, and its compiled
        # templates. A render then costs one is_dir per candidate and one stat per file instead
        # of path building plus Jinja's per-template reload check (which resolves NAME again).
        self._candidates: dict[str, tuple[_Source | None, _Source]] = {}
        self._loaded: dict[str, _Loaded] = {}

    # -- where

    def _source(self, name: str) -> _Source | None:
        if not _NAME.match(name or ""):
            return None
        candidates = self._candidates.get(name)
        if candidates is None:
            own = _make_source(name, self.layouts_dir / name, True) if self.layouts_dir else None
            candidates = self._candidates[name] = (own, _make_source(name, self._shipped / name, False))
        own, shipped = candidates
        if own is not None and own.folder.is_dir():
            return own
        if shipped.folder.is_dir():
            return shipped
        return None

    def folder(self, name: str) -> Traversable | None:
        source = self._source(name)
        return source.folder if source else None

    def origin(self, name: str) -> str:
        """Where NAME comes from, for messages: the operator's path or "shipped"."""
        source = self._source(name)
        if source is None:
            return "nowhere"
        return str(source.folder) if source.operator else f"shipped layouts ({name}/)"

    def names(self) -> list[str]:
        found: set[str] = set()
        roots: list[Traversable] = [self._shipped]
        if self.layouts_dir is not None:
            roots.append(self.layouts_dir)
        for root in roots:
            for entry in root.iterdir():
                if entry.is_dir() and _NAME.match(entry.name) and (entry / TEXT).is_file():
                    found.add(entry.name)
        return sorted(found)

    def _require(self, name: str) -> _Source:
        source = self._source(name)
        if source is None:
            where = f"{self.layouts_dir} or " if self.layouts_dir else ""
            raise LayoutError(
                f"layout {name!r} not found in {where}the shipped layouts (available: "
                f"{', '.join(self.names()) or 'none'})",
                layout=name,
            )
        return source

    # -- render

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedLayout:
        loaded = self._current(name)
        subject = self._render_file(loaded, SUBJECT, context)
        text = self._render_file(loaded, TEXT, context)
        html = self._render_file(loaded, HTML, context) if loaded.has(HTML) else None
        return RenderedLayout(subject=_one_line(subject), text=text, html=html)

    def has_sms(self, name: str) -> bool:
        """Does layout NAME have an SMS text (``sms.txt.j2``)?"""
        source = self._source(name)
        return source is not None and source.stamp()[_INDEX[SMS]] is not None

    def render_sms(self, name: str, context: Mapping[str, Any]) -> str:
        """The SMS text of layout NAME: ``sms.txt.j2`` rendered, surrounding blank space trimmed
        (providers count and bill every character)."""
        loaded = self._current(name)
        if not loaded.has(SMS):
            raise LayoutError(f"layout {name!r} ({self.origin(name)}) has no {SMS}", layout=name, file=SMS)
        return self._render_file(loaded, SMS, context).strip()

    def _current(self, name: str) -> _Loaded:
        """NAME's compiled templates, checked against the disk on every render: an operator's
        edit, an added or removed override or HTML body takes effect with the next mail."""
        source = self._require(name)
        stamp = source.stamp()
        for file in REQUIRED:
            if stamp[_INDEX[file]] is None:
                raise LayoutError(f"layout {name!r} ({self.origin(name)}) has no {file}",
                                  layout=name, file=file)
        loaded = self._loaded.get(name)
        if loaded is None or loaded.source != source or loaded.stamp != stamp:
            # Templates are compiled on first use below (a syntax error surfaces when its file
            # is reached, as before); get_template's own reload check sees the same change.
            loaded = self._loaded[name] = _Loaded(source, stamp, {})
        return loaded

    def _render_file(self, loaded: _Loaded, file: str, context: Mapping[str, Any]) -> str:
        name = loaded.source.name
        template = loaded.templates.get(file)
        if template is None:
            try:
                template = loaded.templates[file] = self.env.get_template(f"{name}/{file}")
            except jinja2.TemplateSyntaxError as exc:
                raise LayoutError(f"layout {name!r}, {file} line {exc.lineno}: {exc.message}",
                                  layout=name, file=file) from None
        try:
            return template.render(context)
        except jinja2.UndefinedError as exc:
            raise LayoutError(
                f"layout {name!r}, {file}{_line_of(exc, template)}: undefined variable: {exc.message}",
                layout=name, file=file,
            ) from None
        except jinja2.TemplateError as exc:  # SecurityError and friends
            raise LayoutError(f"layout {name!r}, {file}{_line_of(exc, template)}: {exc}",
                              layout=name, file=file) from None
        except Exception as exc:  # a filter or test choking on one record's value
            raise LayoutError(
                f"layout {name!r}, {file}{_line_of(exc, template)}: {type(exc).__name__}: {exc}",
                layout=name, file=file,
            ) from None

    # -- staleness

    def staleness(self, name: str) -> Staleness | None:
        """Whether NAME's text and HTML bodies may say different things (``syncd.render.staleness``)."""
        return staleness(self, name)

    def shipped_folder(self, name: str) -> Traversable:
        return self._shipped / name

    # -- check

    def check(
        self,
        name: str,
        password_column: str | None,
        *,
        mode: str = "password",
        columns: Iterable[str] | None = None,
        sms: bool = False,
        allow_password_by_sms: bool = False,
    ) -> list[CheckItem]:
        """``syncd check`` lines for layout NAME: found, complete, compiles, uses only known
        variables, and reads the password column (``mode="password"``) or the link
        (``mode="link"``). With ``columns`` (the ERP row's column names), every ``erp.X`` /
        ``erp["X"]`` must name one of them: a typo would otherwise fail every mail at render
        time. Nothing is rendered or sent."""
        area = "layout"
        source = self._source(name)
        if source is None:
            try:
                self._require(name)
            except LayoutError as exc:
                return [CheckItem(area, name, False, str(exc))]
        assert source is not None
        origin = self.origin(name)
        items: list[CheckItem] = []
        parsed: dict[str, nodes.Template] = {}
        for file in FILES:
            entry = source.folder / file
            if not entry.is_file():
                if file in REQUIRED:
                    items.append(CheckItem(area, name, False, f"{origin}: {file} is missing"))
                continue
            try:
                text = entry.read_text(encoding="utf-8")
                parsed[file] = self.env.parse(text, name=f"{name}/{file}", filename=str(entry))
            except UnicodeDecodeError as exc:
                items.append(CheckItem(area, name, False, f"{origin}: {file} is not UTF-8: {exc}"))
            except jinja2.TemplateSyntaxError as exc:
                detail = f"{origin}: {file} line {exc.lineno}: {exc.message}"
                items.append(CheckItem(area, name, False, detail))
        known_columns = {c.lower() for c in columns} if columns is not None else None
        for file, tree in parsed.items():
            items.extend(CheckItem(area, name, False, f"{origin}: {file}: {problem}")
                         for problem in unknown_names(tree, known_columns))
        if sms:
            items.extend(sms_problems(name, origin, parsed, password_column if mode == "password" else None,
                                      allow_password_by_sms, shipped=not source.operator))
        parsed.pop(SMS, None)  # the mail's own checks below are about the mail's files
        if mode == "link":
            items.extend(check_reads(name, origin, parsed, "the set-password link ({{ link }})",
                                      lambda tree: reads_name(tree, "link")))
        elif password_column:
            items.extend(check_reads(name, origin, parsed, f"the password column {password_column!r}",
                                      lambda tree: reads_column(tree, password_column)))
        if not any(not i.ok for i in items):
            if mode == "link":
                origin += ": reads the link"
            elif password_column:
                origin += f": reads {password_column!r}"
            items.append(CheckItem(area, name, True, origin))
        return items

    # -- preview

    def preview(
        self,
        name: str,
        address: ErpAddress,
        password_column: str | None,
        placeholder: str = PREVIEW_PLACEHOLDER,
        **context: Any,
    ) -> RenderedLayout:
        """Render NAME for ``address`` with ``placeholder`` in the password column (and as the
        link in link mode). Reads nothing beyond its arguments and writes nothing."""
        row = dict(address.row)
        if password_column:
            key = row_key(row, password_column)
            row[key] = placeholder
        context.setdefault("link", f"https://…/{placeholder}")
        # Event layouts ([[notifications]]) read ``event``: sample values, no secret among them.
        event = context.pop("event", None) or {"name": name, "role": "customer", "reason": "(reason)",
                                                 "login": address.email or "(login)",
                                                 "customer_number": str(address.number)}
        ctx = build_context(address, row, password_column=password_column, **context)
        ctx["event"] = event
        return self.render(name, ctx)


def _one_line(subject: str) -> str:
    return " ".join(_LINE_BREAKS.sub(" ", subject).split())


def _line_of(exc: BaseException, template: jinja2.Template) -> str:
    """`` line N`` of the template where ``exc`` happened, from the rewritten traceback."""
    filename = template.filename
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""
