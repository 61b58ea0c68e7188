"""Mail transports (SMTP, outbox folder) and message building.

``open_transport(settings.mail, password=...)`` is what ``syncd.shell.bootstrap`` calls; flows only
see the ``syncd.core.ports.MailTransport`` interface.
"""

from __future__ import annotations

from syncd.config.model import MailSettings
from syncd.connectors.mail.message import EncodedMail, build_message, encode_message
from syncd.connectors.mail.outbox import OutboxTransport
from syncd.connectors.mail.smtp import DeliveryUnknown, SmtpSession, SmtpTransport
from syncd.core.errors import ConfigError
from syncd.core.returnpath import ReturnPaths

__all__ = [
    "DeliveryUnknown", "EncodedMail", "OutboxTransport", "SmtpSession", "SmtpTransport",
    "build_message", "encode_message", "open_transport",
]


def open_transport(mail: MailSettings, *, password: str | None = None,
                   return_paths: ReturnPaths | None = None) -> SmtpTransport | OutboxTransport:
    """The transport ``[mail] transport`` names. ``password`` is the resolved SMTP secret.

    Nothing connects here: ``check()`` or the first ``send`` does. ``return_paths``: the tagged
    envelope sender of each mail (``[mail.bounces]``); the outbox folder has no envelope.
    """
    if mail.transport == "outbox":
        if not mail.outbox_dir:
            raise ConfigError('is required when transport = "outbox"', key="mail.outbox_dir")
        return OutboxTransport(mail.outbox_dir, sender=mail.sender, reply_to=mail.reply_to)
    if mail.transport == "smtp":
        return SmtpTransport(mail, password=password, return_paths=return_paths)
    raise ConfigError("unknown mail transport", key="mail.transport", value=mail.transport,
                      allowed="smtp, outbox")
