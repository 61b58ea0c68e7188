"""`syncd status`: per platform the last cycle, counts linked / pending / failed, and the failed
records with reasons — read from the state store, also while the daemon runs (reads only; on
SQLite WAL lets them pass the daemon's writes). Open the store for it with
``open_state(url, migrate=False)``: migrating takes SQLite's write lock even when there is
nothing to do, and would wait for the daemon's running cycle.

``collect_status`` returns the documented machine shape of `syncd status --json`:

    {"platforms": [{"name", "last_cycle": {"started", "finished", "ok", "state", "error"},
                    "linked", "pending", "failed": [{"address", "step", "reason"}]}]}

* ``last_cycle``: the newest cycle of the platform, either direction — unless the newest of
  one direction is still open (running or interrupted): that one; times ISO 8601 UTC;
  all null before the first cycle; ``finished``/``ok`` null while it runs. ``state``: "ok",
  "failed", "running", or "interrupted" — its process ended mid-cycle (SIGKILL, crash, power
  loss): ``finished`` null, ``ok`` false (see ``cycle_state``). ``error``: why a cycle was not
  ok (also a cycle whose work waits for a configuration fix: a refused SMTP login, a mapping
  target missing in the shop), else null.
* ``linked``: ERP address <-> shop account links of the platform (all kinds).
* ``pending``: credential jobs not finished yet (pending, field_written, sending, sent — not
  done or failed): mails still owed to customers, e.g. waiting for the SMTP server to come
  back. Addresses merely waiting for the next poll are not counted: nothing tracks them
  before the cycle reads them, and a count that needs an ERP scan would make status slow.
* ``held``: credential jobs held at go-live (``send_credentials_since``), not in ``pending``:
  sent only when asked for (`syncd accounts send-credentials`). Jobs waiting for the mail
  budget (``[mail] max_per_minute`` / ``max_per_hour``, a canary) stay in ``pending``.
* ``canary``: null without ``platforms[].addresses.canary``, else ``{"size", "sent",
  "released", "holding"}``; ``holding``: the rest waits for `syncd release PLATFORM`.
* ``reconcile``: the last reconciliation (`syncd sync --full`, ``[daemon] reconcile_interval``),
  null before the first: ``{"started", "finished", "counts": {KEY: n}}`` with the keys of
  ``syncd.state.drift.KEYS`` (``unlinked``, ``missing_in_shop``, ``stale``, ``orphaned_links``,
  ``repaired``, ``still_failed`` ...). Counts describe the store and shop as that run found
  them; ``repaired`` says how many it brought back in step.
* ``messages``: message jobs (event mails, ``syncd.state.messages``) by step: ``{"pending",
  "sending", "sent", "deferred", "failed"}``, each a count (0 when none).
* ``approvals``: shop accounts by approval state: ``{"in-progress", "approved", "rejected"}``.
* ``reminders``: order reminders (``[[reminders]]``, ``syncd.state.reminders``) by state:
  ``{"scheduled", "done", "stopped", "cancelled"}``; the messages they queued (e-mail and SMS)
  are counted in ``messages``.
* ``reload`` (top level, beside ``platforms``): the running daemon's last configuration reload
  (SIGHUP), null before the first: ``{"at", "ok", "error", "changed"}``; ``ok`` false: the new
  file was refused (``error`` names file, key and value) and the daemon runs with its previous
  configuration; ``changed``: the dotted keys a reload changed (``syncd.shell.reloads``).
* ``credential_channels``: credential jobs by the channel their message went by (the customer's
  ``preferred_channel`` or ``[messages] default_channel`` as applied): ``{"email", "sms", "both",
  "none"}``; ``none``: the customer chose no messages, nothing was sent (issue 16).
* ``failed``: the records whose last attempt failed permanently (table ``failures``, both
  directions and the credential step), newest first; a record leaves the list when it later
  succeeds. ``address`` is the ERP number, or the shop customer id for a shop customer that
  could not be imported.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from syncd.core.rules import account_label
from syncd.shell import reloads
from syncd.state.drift import KEYS as DRIFT_KEYS
from syncd.state.drift import NAME as DRIFT_NAME
from syncd.state.jobs import ACTIVE_STEPS
from syncd.state.schema import credential_jobs, cursors, cycles, failures, links, mail_sends
from syncd.state.shop_changes import NAME as SHOP_CHANGES_NAME
from syncd.state.shop_changes import listed as listed_shop_changes

if TYPE_CHECKING:
    from syncd.config.model import Settings
    from syncd.state.db import StateStore

TABLE_FAILURE_LIMIT = 50  # per platform in the table; --json lists all


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite returns naive datetimes; the store writes UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _connect(store: StateStore) -> Any:
    # StateStore.connect() opens read transactions that never take SQLite's write lock.
    connect = getattr(store, "connect", None)
    return connect() if connect is not None else store.engine.connect()


def cycle_state(store: StateStore, platform: str, row: Any) -> str:
    """ok / failed / running / interrupted for a cycle row (started, finished, ok, direction,
    holder). An open record is running only while its holder still holds the cycle's lease: a
    SIGKILLed or crashed process leaves it open, and a new holder marks it (ok false, finished
    empty) when it takes the lease over; until then the lease's lock tells (see
    ``Leases.is_alive``)."""
    from syncd.state.leases import Leases, lease_name

    if row.finished is not None:
        return "ok" if row.ok else "failed"
    if row.ok is not None:
        return "interrupted"  # marked by the holder that took its lease over
    leases = Leases(store)
    name = lease_name(platform, row.direction)
    info = leases.get(name)
    if info is None or info.holder != row.holder:
        return "interrupted"  # its lease was released or taken over: nobody runs it any more
    return "running" if leases.is_alive(name, row.holder) else "interrupted"


def _last_cycle(store: StateStore, platform: str, last: Any) -> dict[str, Any]:
    if last is None:
        return {"started": None, "finished": None, "ok": None, "state": None, "error": None}
    state = cycle_state(store, platform, last)
    return {
        "started": _iso(last.started),
        "finished": _iso(last.finished),
        "ok": {"ok": True, "failed": False, "interrupted": False}.get(state),
        "state": state,
        "error": last.error,
    }


def collect_status(store: StateStore, settings: Settings) -> dict[str, Any]:
    platforms = []
    with _connect(store) as conn:
        for platform in settings.platforms:
            name = platform.name
            newest = (select(func.max(cycles.c.id)).where(cycles.c.platform == name)
                      .group_by(cycles.c.direction))
            per_direction = conn.execute(
                select(cycles.c.started, cycles.c.finished, cycles.c.ok, cycles.c.error, cycles.c.direction,
                       cycles.c.holder)
                .where(cycles.c.id.in_(newest))
                .order_by(cycles.c.started.desc(), cycles.c.id.desc())
            ).all()
            # An open cycle (running, or left by a dead process) outranks a newer finished one of
            # the other direction: that is the one the operator must see.
            last = next((r for r in per_direction if r.finished is None and r.ok is None),
                        per_direction[0] if per_direction else None)
            linked = conn.execute(select(func.count()).select_from(links).where(links.c.platform == name))
            j = credential_jobs
            pending = conn.execute(
                select(func.count()).select_from(j)
                .where(j.c.platform == name, j.c.step.in_(ACTIVE_STEPS), j.c.held.is_(None))
            )
            held = int(conn.execute(
                select(func.count()).select_from(j)
                .where(j.c.platform == name, j.c.step.in_(ACTIVE_STEPS), j.c.held.is_not(None))
            ).scalar_one())
            canary = _canary(conn, platform)
            failed = conn.execute(
                select(failures.c.record, failures.c.step, failures.c.reason)
                .where(failures.c.platform == name)
                .order_by(failures.c.last_seen.desc(), failures.c.record)
            )
            stored = conn.execute(
                select(cursors.c.value).where(cursors.c.platform == name, cursors.c.name == DRIFT_NAME)
            ).scalar_one_or_none()
            edits = conn.execute(
                select(cursors.c.value).where(cursors.c.platform == name,
                                              cursors.c.name == SHOP_CHANGES_NAME)
            ).scalar_one_or_none()
            platforms.append(
                {
                    "name": name,
                    "last_cycle": _last_cycle(store, name, last),
                    "linked": int(linked.scalar_one()),
                    "pending": int(pending.scalar_one()),
                    "failed": [{"address": _shown(r.record), "step": r.step, "reason": r.reason}
                               for r in failed],
                    "reconcile": _reconcile(stored),
                    # shop_changes = "report": customers' shop edits waiting for the operator
                    "shop_changes": [{**e, "address": _shown(e["address"])}
                                     for e in listed_shop_changes(edits)],
                    "held": held,
                    "canary": canary,
                }
            )
    for p in platforms:
        p.update(_message_counts(store, p["name"]))
        p["bounces"] = _bounces(store, p["name"])
    with _connect(store) as conn:
        reload = reloads.last(conn)
    return {"platforms": platforms, "reload": reload}


def _bounces(store: StateStore, name: str) -> dict[str, Any]:
    """[mail.bounces]: addresses blocked by a hard bounce, soft bounces, the latest one."""
    from sqlalchemy.exc import DBAPIError

    from syncd.state.bounces import Bounces

    try:
        hard, soft, latest = Bounces(store).summary(name)
    except DBAPIError:  # a store not yet migrated to hold bounces
        return {"bounced": 0, "soft": 0, "latest": None}
    return {"bounced": hard, "soft": soft, "latest": None if latest is None else {
        "address": _shown(latest.erp_number), "email": latest.email, "severity": latest.severity,
        "status": latest.status, "diagnostic": latest.diagnostic, "at": _iso(latest.bounced_at)}}


def _message_counts(store: StateStore, name: str) -> dict[str, Any]:
    """Message steps and approval states; all 0 on a store not yet migrated to hold them
    (status never migrates, see above)."""
    from sqlalchemy.exc import DBAPIError

    from syncd.state.approvals import STATES
    from syncd.state.messages import STEPS
    from syncd.state.schema import approvals, messages

    counts: dict[str, Any] = {"messages": dict.fromkeys(STEPS, 0), "approvals": dict.fromkeys(STATES, 0)}
    try:
        with _connect(store) as conn:
            for step, n in conn.execute(select(messages.c.step, func.count())
                                        .where(messages.c.platform == name).group_by(messages.c.step)):
                counts["messages"][step] = int(n)
            for state, n in conn.execute(select(approvals.c.state, func.count())
                                         .where(approvals.c.platform == name).group_by(approvals.c.state)):
                counts["approvals"][state] = int(n)
    except DBAPIError:
        pass
    from syncd.state.reminders import STATES as REMINDER_STATES
    from syncd.state.schema import reminder_orders

    counts["reminders"] = dict.fromkeys(REMINDER_STATES, 0)
    try:  # its own try: a store migrated before reminders existed still shows its messages
        with _connect(store) as conn:
            for state, n in conn.execute(select(reminder_orders.c.state, func.count())
                                         .where(reminder_orders.c.platform == name)
                                         .group_by(reminder_orders.c.state)):
                counts["reminders"][state] = int(n)
    except DBAPIError:
        pass
    counts["credential_channels"] = dict.fromkeys(("email", "sms", "both", "none"), 0)
    try:  # its own try: a store migrated before channels existed
        with _connect(store) as conn:
            j = credential_jobs
            for channel, n in conn.execute(select(j.c.channel, func.count()).where(
                    j.c.platform == name, j.c.channel.is_not(None)).group_by(j.c.channel)):
                counts["credential_channels"][channel] = int(n)
    except DBAPIError:
        pass
    return counts


def _canary(conn: Any, platform: Any) -> dict[str, Any] | None:
    """The platform's canary as the flow last recorded it (``syncd.flows.mailbudget``)."""
    size = platform.addresses.canary
    if not size:
        return None
    stored = conn.execute(select(cursors.c.value).where(
        cursors.c.platform == platform.name, cursors.c.name == "canary")).scalar_one_or_none()
    if not stored:
        return {"size": size, "sent": 0, "released": False, "holding": False}
    started = datetime.fromisoformat(stored["started"])
    sent = int(conn.execute(select(func.count()).select_from(mail_sends).where(
        mail_sends.c.platform == platform.name, mail_sends.c.at >= started)).scalar_one())
    released = bool(stored.get("released"))
    return {"size": size, "sent": sent, "released": released, "holding": not released and sent >= size}


def _reconcile(stored: Any) -> dict[str, Any] | None:
    if not isinstance(stored, dict) or not stored.get("finished"):
        return None
    try:
        started = datetime.fromisoformat(stored["started"])
        finished = datetime.fromisoformat(stored["finished"])
    except (KeyError, TypeError, ValueError):
        return None
    counts = stored.get("counts") or {}
    return {"started": _iso(started), "finished": _iso(finished),
            "counts": {k: int(counts.get(k, 0)) for k in DRIFT_KEYS}}


# --- the table ----------------------------------------------------------------------------

_TEXT = {
    "en": {
        "platform": "Platform", "started": "Last cycle started", "finished": "finished", "ok": "result",
        "linked": "linked", "pending": "pending", "failed": "failed", "address": "Address", "step": "Step",
        "reason": "Reason", "yes": "ok", "no": "FAILED", "running": "running", "never": "never",
        "interrupted": "INTERRUPTED",
        "title": "syncd status", "failures": "Failed records", "more": "… and {n} more (syncd status --json)",
        "drift": "Last reconciliation", "finished_at": "finished", "counts": "drift",
        "messages": "Event mails", "approvals": "Approvals", "reminders": "Reminders",
        "edits": "Changes made in the shop (not in the ERP)", "fields": "Fields (ERP -> shop)",
        "held": "{platform}: {n} credentials mail(s) held at go-live (syncd accounts list --never-mailed)",
        "canary": "{platform}: canary of {size} mail(s) sent; the rest waits for `syncd release {platform}`",
        "bounced": "{platform}: {n} address(es) bounced, not mailed until the ERP e-mail changes; latest: "
                   "{latest} (syncd bounces list)",
        "reload": "Reload refused at {at}; the daemon runs with its previous configuration: {error}",
        "channels": "{platform}: credentials by SMS {sms}, by SMS and e-mail {both}, not sent (the customer "
                    "chose none) {none}",
    },
    "de": {
        "platform": "Plattform", "started": "Letzter Lauf gestartet", "finished": "beendet", "ok": "Ergebnis",
        "linked": "verknüpft", "pending": "offen", "failed": "fehlerhaft", "address": "Adresse",
        "step": "Schritt", "reason": "Grund", "yes": "ok", "no": "FEHLER", "running": "läuft",
        "interrupted": "ABGEBROCHEN",
        "never": "noch nie", "title": "syncd-Status", "failures": "Fehlerhafte Datensätze",
        "more": "… und {n} weitere (syncd status --json)",
        "drift": "Letzter Abgleich", "finished_at": "beendet", "counts": "Abweichungen",
        "messages": "Ereignis-Mails", "approvals": "Freigaben", "reminders": "Erinnerungen",
        "edits": "Änderungen im Shop (nicht in der Warenwirtschaft)", "fields": "Felder (WaWi -> Shop)",
        "held": "{platform}: {n} Zugangsdaten-Mail(s) beim Start zurückgehalten "
                "(syncd accounts list --never-mailed)",
        "canary": "{platform}: Probelauf mit {size} Mail(s) versandt; der Rest wartet auf "
                  "`syncd release {platform}`",
        "bounced": "{platform}: {n} Adresse(n) unzustellbar, keine Mails bis zur Änderung der E-Mail in der "
                   "Warenwirtschaft; zuletzt: {latest} (syncd bounces list)",
        "reload": "Neuladen der Konfiguration um {at} abgelehnt; der Dienst läuft mit der bisherigen "
                  "weiter: {error}",
        "channels": "{platform}: Zugangsdaten per SMS {sms}, per SMS und E-Mail {both}, nicht versandt "
                    "(Kunde wünscht keine Nachrichten) {none}",
    },
}


def locale_language() -> str:
    """'de' when the operator's locale is German, else 'en'."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var)
        if value:
            return "de" if value.lower().startswith("de") else "en"
    return "en"


def _short(value: str | None) -> str:
    return value.replace("T", " ").replace("Z", "")[:19] if value else "–"


def render_status_table(status: dict[str, Any], *, lang: str | None = None, width: int = 120,
                        only_reload: bool = False) -> str:
    """The status as text; ``only_reload``: just the refused-reload line (the file does not load,
    so there are no platforms to show)."""
    from rich.console import Console
    from rich.table import Table

    t = _TEXT.get(lang or locale_language(), _TEXT["en"])
    summary = Table(title=t["title"])
    for key in ("platform", "started", "finished", "ok", "linked", "pending", "failed"):
        summary.add_column(t[key], justify="right" if key in ("linked", "pending", "failed") else "left")
    details = Table(title=t["failures"])
    for key in ("platform", "address", "step", "reason"):
        details.add_column(t[key], overflow="fold")
    any_failed = False
    for p in status["platforms"]:
        last = p["last_cycle"]
        state = last.get("state")
        if last["started"] is None:
            result = t["never"]
        elif state == "interrupted":
            result = t["interrupted"]
        elif last["ok"] is None:
            result = t["running"]
        else:
            result = t["yes"] if last["ok"] else t["no"]
        summary.add_row(
            p["name"], _short(last["started"]), _short(last["finished"]), result, str(p["linked"]),
            str(p["pending"]), str(len(p["failed"])),
        )
        for f in p["failed"][:TABLE_FAILURE_LIMIT]:
            any_failed = True
            details.add_row(p["name"], str(f["address"]), str(f["step"]), str(f["reason"]))
        if len(p["failed"]) > TABLE_FAILURE_LIMIT:
            details.add_row(p["name"], t["more"].format(n=len(p["failed"]) - TABLE_FAILURE_LIMIT), "", "")
    drift = Table(title=t["drift"])
    drift.add_column(t["platform"])
    drift.add_column(t["finished_at"])
    drift.add_column(t["counts"], overflow="fold")
    any_drift = False
    for p in status["platforms"]:
        rec = p.get("reconcile")
        if rec:
            any_drift = True
            text = ", ".join(f"{k} {rec['counts'].get(k, 0)}" for k in DRIFT_KEYS)
            drift.add_row(p["name"], _short(rec["finished"]), text)
    queue = Table(title=t["messages"])
    queue.add_column(t["platform"])
    queue.add_column(t["messages"], overflow="fold")
    queue.add_column(t["approvals"], overflow="fold")
    queue.add_column(t["reminders"], overflow="fold")
    any_queue = False
    for p in status["platforms"]:
        m, a, r = p.get("messages") or {}, p.get("approvals") or {}, p.get("reminders") or {}
        if any(m.values()) or any(a.values()) or any(r.values()):
            any_queue = True
            queue.add_row(p["name"], ", ".join(f"{k} {v}" for k, v in m.items()),
                          ", ".join(f"{k} {v}" for k, v in a.items()),
                          ", ".join(f"{k} {v}" for k, v in r.items()))
    edits = Table(title=t["edits"])
    for key in ("platform", "address", "fields"):
        edits.add_column(t[key], overflow="fold")
    any_edit = False
    for p in status["platforms"]:
        for e in p.get("shop_changes") or []:
            any_edit = True
            text = "; ".join(f"{f}: {v['erp']!r} -> {v['shop']!r}" for f, v in e["fields"].items())
            edits.add_row(p["name"], str(e["address"]), text)
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, force_terminal=False)
    reload = status.get("reload")
    if reload and not reload["ok"]:
        console.print(t["reload"].format(at=_short(reload["at"]), error=reload["error"]), markup=False)
    if only_reload:
        return out.getvalue()
    console.print(summary)
    if any_queue:
        console.print(queue)
    for p in status["platforms"]:
        if p.get("held"):
            console.print(t["held"].format(platform=p["name"], n=p["held"]))
        b = p.get("bounces") or {}
        if b.get("bounced") and b.get("latest"):
            last = b["latest"]
            latest = f"{last['address']} <{last['email']}> {last['status'] or ''} {_short(last['at'])}"
            console.print(t["bounced"].format(platform=p["name"], n=b["bounced"], latest=latest))
        channels = p.get("credential_channels") or {}
        if channels.get("sms") or channels.get("both") or channels.get("none"):
            console.print(t["channels"].format(platform=p["name"], **channels))
        canary = p.get("canary")
        if canary and canary["holding"]:
            console.print(t["canary"].format(platform=p["name"], **canary))
    if any_drift:
        console.print(drift)
    if any_edit:
        console.print(edits)
    if any_failed:
        console.print(details)
    return out.getvalue()


def _shown(record: Any) -> Any:
    """A record (failure, shop edit, bounce) as people see it: a contact person's account
    "10001-2", not its key; anything else as it came."""
    text = str(record)
    return account_label(int(text)) if text.startswith("-") and text[1:].isdigit() else record
