"""Durable messages (event mails per customer group now; SMS and reminders reuse it).

* ``routing``: which ``[[notifications]]`` table answers an event for a customer group, and
  ``notify``: the message jobs of one event occurrence (customer + internal recipients), written
  in the caller's unit of work with a dedup key.
* ``send``: ``send_due``, the run over every due message of a platform, one SMTP session, the
  I5 bound of ``syncd.state.ledger``.

The state lives in ``syncd.state.messages`` (table ``messages``).
"""

from syncd.flows.messages.routing import Occurrence, choose, notify
from syncd.flows.messages.send import send_due

__all__ = ["Occurrence", "choose", "notify", "send_due"]
