"""``[mail.bounces]``: the return path each mail carries (a VERP tag in the envelope sender) and
the mailbox the bounces come back to (a maildir folder or an IMAP folder)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from syncd.config.base import SECRET, Duration, FieldProblem, _Model


class ImapSource(_Model):
    host: str = "localhost"
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    username: str | None = None
    password: str | None = Field(default=None, json_schema_extra=SECRET)  # secret reference
    verify_tls: bool = True
    ca_file: str | None = None
    folder: str = "INBOX"
    timeout: Duration = 30.0


class BounceSettings(_Model):
    enabled: bool = False
    # "bounces@example.com" -> envelope sender "bounces+<tag>@example.com"; the header From: stays
    # [mail] sender. The mailbox must receive plus-addressed mail (subaddressing).
    return_path: str | None = None
    source: Literal["maildir", "imap"] = "maildir"
    maildir: str | None = None  # source = "maildir": the folder (with cur/ new/ tmp/)
    imap: ImapSource = ImapSource()
    # What happens to a bounce once recorded: "move" (to move_to), "delete", or "flag" (marked
    # seen and left). Mails that are not bounces of syncd are only marked seen, never moved.
    processed: Literal["move", "delete", "flag"] = "move"
    move_to: str = "syncd-processed"
    poll_interval: Duration = Field(default=900.0, ge=30)
    # Written to [erp.columns] email_undeliverable on a hard bounce, followed by the date.
    erp_text: str = Field(default="E-Mail unzustellbar", min_length=1, max_length=200)
    batch_size: int = Field(default=200, ge=1, le=10_000)  # messages read per check

    @model_validator(mode="after")
    def _needs(self) -> BounceSettings:
        if not self.enabled:
            return self
        if not self.return_path or self.return_path.count("@") != 1 or "+" in self.return_path \
                or any(c.isspace() or c in "<>" for c in self.return_path):
            raise FieldProblem("return_path", 'needs one plain address without "+", '
                               'e.g. "bounces@example.com"', self.return_path)
        if self.source == "maildir" and not self.maildir:
            raise FieldProblem("maildir", 'source = "maildir" needs maildir (the folder)')
        if self.source == "imap" and not self.imap.username:
            raise FieldProblem(("imap", "username"), 'source = "imap" needs imap.username')
        return self
