"""The per-mail write of a mail session, shared by every durable mail table (credential jobs,
message jobs): the I5 resend bound in one place.

At each mail's commit point (the transport's ``on_commit``, right before the server can accept
the mail) ``SendLedger.advance`` records the mail before it (``sent``, the one the server
accepted last, or None) as sent and counts this one's send (``sending``, ``send_attempts + 1``),
in one transaction. At any instant a session therefore has at most one row ``sending`` whose
mail the server may hold unrecorded: all a crash can make the next run send twice.

A table qualifies with the columns ``id``, ``step``, ``send_attempts``, ``updated_at`` and the
step names given to ``SendLedger``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Integer, Table, bindparam, case, update


@cache
def _statements(table: Table, sending: str, sent: str, live: tuple[str, ...]) -> tuple[Any, str]:
    # Built once per table: each mail then costs one short transaction and no statement building.
    t = table
    is_sending = t.c.id == bindparam("sending", type_=Integer)
    advance = (
        update(t)
        .where(t.c.id.in_([bindparam("sent", type_=Integer), bindparam("sending", type_=Integer)]),
               t.c.step.in_(live))
        .values(step=case((is_sending, sending), else_=sent),
                send_attempts=t.c.send_attempts + case((is_sending, 1), else_=0),
                updated_at=bindparam("now"))
    )
    raw = (
        f"UPDATE {t.name} SET step = CASE WHEN id = ? THEN '{sending}' ELSE '{sent}' END, "
        "send_attempts = send_attempts + CASE WHEN id = ? THEN 1 ELSE 0 END, updated_at = ? "
        f"WHERE id IN (?, ?) AND step IN ({', '.join(repr(s) for s in live)})"
    )
    return advance, raw


class SendLedger:
    """The writes of one mail session on ``conn`` (held for the session) to ``table``: rows whose
    step is in ``live`` move to ``sent_step`` / ``sending_step``."""

    def __init__(self, conn: Connection, table: Table, *, sending_step: str, sent_step: str,
                 live: Sequence[str]) -> None:
        self._conn = conn
        self._advance, self._raw = _statements(table, sending_step, sent_step, tuple(live))
        self._sqlite: Any = None
        if conn.dialect.name == "sqlite":
            # The write sits between two mails on the flow's one thread. pysqlite runs in
            # driver-level autocommit (``syncd.state.db``), so one statement is one transaction,
            # as durable as a commit, at a third of the cost of SQLAlchemy's begin/execute/commit.
            self._sqlite = conn.connection.driver_connection
            self._timestamp = table.c.updated_at.type.bind_processor(conn.dialect)

    def advance(self, *, sent: int | None, sending: int, now: datetime) -> None:
        if self._sqlite is not None:
            stamp = self._timestamp(now) if self._timestamp is not None else now
            self._sqlite.execute(self._raw, (sending, sending, stamp, sent, sending))
            return
        with self._conn.begin():
            self._conn.execute(self._advance, {"sent": sent, "sending": sending, "now": now})
