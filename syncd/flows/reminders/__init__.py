"""Order-driven reminders (``[[reminders]]``): shipping confirmation, review request, prepayment.

* ``schedule``: the pure rules (when each kind is due for an order, when it stops);
* ``poll``: the platform's poll: shop order changes -> schedule -> message jobs;
* ``ops``: ``syncd reminders list`` / ``cancel``.
"""

from syncd.flows.reminders.poll import poll, reminders_for

__all__ = ["poll", "reminders_for"]
