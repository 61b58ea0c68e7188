"""``[mail.bounces]`` wired: the return paths each transport gets, and one bounce check over the
configured mailbox (the daemon's job and ``syncd bounces check``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from syncd.config.model import Settings
from syncd.config.secrets import resolve_secret
from syncd.connectors.mail.bounces import open_source, read_bounce
from syncd.core.clock import utcnow
from syncd.core.domain import CheckItem
from syncd.core.errors import SyncdError
from syncd.core.redaction import error_text
from syncd.core.returnpath import ReturnPaths
from syncd.flows.bounces import BounceReport, check
from syncd.flows.context import PlatformContext
from syncd.state.bounces import Bounces
from syncd.state.db import StateStore

log = structlog.get_logger("syncd.bounces")



def return_paths(settings: Settings, state: StateStore, *, read_only: bool = False) -> ReturnPaths | None:
    """The tagged envelope senders, when ``[mail.bounces]`` is on (the tag key is made on first
    use; a read-only runtime makes none and sends untagged, which it never does anyway)."""
    b = settings.mail.bounces
    if not b.enabled or not b.return_path:
        return None
    from sqlalchemy.exc import DBAPIError

    try:
        key = Bounces(state).tag_key(utcnow(), create=not read_only)
    except DBAPIError:  # a read-only look at a store not migrated yet: it sends nothing anyway
        if not read_only:
            raise
        return None
    return ReturnPaths(b.return_path, key) if key is not None else None


def check_bounces(settings: Settings, state: StateStore, context: Callable[[str], PlatformContext | None],
                  *, clock: Callable[[], datetime] = utcnow, file: str | None = None) -> BounceReport:
    """One check of the bounce mailbox. Raises ConfigError (bad folder, secret) or TransientError
    (the IMAP server unreachable); the caller decides what that means."""
    b = settings.mail.bounces
    password = resolve_secret(b.imap.password, file=file, key="mail.bounces.imap.password") \
        if b.source == "imap" else None
    with open_source(b, password=password) as source:
        report = check(settings, state, source, lambda raw, ref: read_bounce(raw, b.return_path or "", ref),
                       context, clock)
    log.info("bounces checked", **{k.replace("-", "_"): v for k, v in sorted(report.counts.items())})
    return report


def scheduled_check(settings: Settings, state: StateStore, context: Callable[[str], PlatformContext],
                    *, clock: Callable[[], datetime] = utcnow) -> None:
    """The daemon's job: a failed check is logged and the mailbox read again at the next interval.
    ``context`` raises KeyError for a platform no longer configured (its bounces wait)."""
    def known(name: str) -> PlatformContext | None:
        try:
            return context(name)
        except KeyError:
            return None
    try:
        check_bounces(settings, state, known, clock=clock)
    except Exception as exc:
        log.warning("bounce check failed", error=error_text(exc))


def check_mailbox(settings: Settings, *, file: str | None = None) -> list[CheckItem]:
    """``syncd check``: the bounce mailbox opens (maildir folder, IMAP login and folder)."""
    b = settings.mail.bounces
    if not b.enabled:
        return []
    where = (f"maildir {b.maildir}" if b.source == "maildir"
             else f"IMAP {b.imap.username}@{b.imap.host}:{b.imap.port} folder {b.imap.folder}")
    try:
        password = resolve_secret(b.imap.password, file=file, key="mail.bounces.imap.password") \
            if b.source == "imap" else None
        with open_source(b, password=password):
            pass
    except SyncdError as exc:
        return [CheckItem("mail", "bounces", False, f"{where}: {exc}")]
    return [CheckItem("mail", "bounces", True, f"{where} readable; return path {b.return_path}")]
