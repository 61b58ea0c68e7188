"""Credential mails (spec §1 step 3) and the start-up sweep (I2), one job per module.

* ``jobrun``: one batch of jobs through steps a-f, sequential; the crash-safety argument.
* ``pipeline``: ``send_due``, the cycle's run over every due job; the only threads.
* ``sweep``: ``settle``, finish or clear every in-flight password (I2).
* ``mail``: the layout context and the rendered mail of one job.
* ``queue``: ``queue_credentials``, jobs an operator asks for.
* ``outcomes`` (deferred / failed) and ``policy`` (when the flow runs, ``MAX_SENDS``, backoff).

The names below are the flow's interface for the rest of syncd and the tests. Tuning constants
(``pipeline.SHOP_CALLS_AHEAD``) are set on their module, not here.
"""

from syncd.flows.credentials.jobrun import deliver, finish, start
from syncd.flows.credentials.mail import build_mail, field_length, render_context
from syncd.flows.credentials.pipeline import SHOP_CALLS_AHEAD, send_due
from syncd.flows.credentials.policy import KIND, MAX_SENDS, STEP, backoff, enabled
from syncd.flows.credentials.queue import queue_credentials
from syncd.flows.credentials.sweep import settle, sharing_platforms
from syncd.flows.push_addresses import checkpoint

__all__ = [
    "KIND", "MAX_SENDS", "SHOP_CALLS_AHEAD", "STEP", "backoff", "build_mail", "checkpoint", "deliver",
    "enabled",
    "field_length", "finish", "queue_credentials", "render_context", "send_due", "settle",
    "sharing_platforms", "start",
]
