"""Issue 18, bounces into a büro+-shaped ERP: a hard bounce writes ``[erp.columns]
email_undeliverable`` (a free ``Sel`` field of ``Adressen``; the e-mail lives in ``Anschriften``,
the number is text), and a new e-mail in ``Anschriften`` clears it and queues the mail once more.
SQLite and MariaDB over ODBC; the bounce comes from a maildir."""

from __future__ import annotations

import dataclasses
import mailbox
from datetime import datetime

import pytest

from syncd.config.bounces import BounceSettings
from syncd.config.model import MailSettings
from syncd.core.clock import utcnow
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.shell.bounces import check_bounces
from syncd.state.bounces import Bounces
from syncd.state.jobs import DONE, PENDING, CredentialJobs
from tests.support import bounce_samples as samples
from tests.support import shop_fixtures
from tests.support.bueroplus_world import PLATFORM, BpWorld

sandbox = shop_fixtures.sandbox


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.realdb)])
def w(request, tmp_path, sandbox):
    world = BpWorld(request.param, tmp_path, sandbox)
    try:
        yield world
    finally:
        world.close()


def _wired(w: BpWorld, folder):
    columns = w.erp_settings.columns.model_copy(update={"email_undeliverable": "Sel3"})
    ctx = w.ctx(erp={"columns": columns})
    mail = MailSettings(bounces=BounceSettings(enabled=True, return_path="retour@example.com",
                                               maildir=str(folder), processed="delete",
                                               erp_text="E-Mail unzustellbar"))
    ctx = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"mail": mail}))
    return ctx


def test_hard_bounce_writes_the_erp_field_and_a_new_email_clears_it(w: BpWorld, tmp_path) -> None:
    w.add(10001, na1="Firma", na2="Müller Haustechnik GmbH", email="info@mueller.example")
    w.add(10002, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    folder = tmp_path / "retour"
    mailbox.Maildir(str(folder), create=True).close()
    ctx = _wired(w, folder)
    jobs = CredentialJobs(w.state)
    job = jobs.create(platform=PLATFORM, erp_number=10001, shop_id=None, email="info@mueller.example",
                      now=utcnow())
    assert job is not None
    jobs.set_step([job], DONE, utcnow())
    key = Bounces(w.state).tag_key(utcnow())
    assert key is not None
    sender = envelope_sender("retour@example.com", make_tag(key, "c", job, "info@mueller.example"))
    samples.deliver(folder, samples.exim_bounce(sender, "info@mueller.example"))

    report = check_bounces(ctx.settings, w.state, lambda name: ctx if name == PLATFORM else None)
    assert report.counts["hard"] == 1
    field = w.row(10001)["Sel3"]
    assert field == f"E-Mail unzustellbar {datetime.now().strftime('%Y-%m-%d')}"
    assert w.row(10002)["Sel3"] is None
    assert len(mailbox.Maildir(str(folder), create=False)) == 0  # processed = "delete"

    # the same e-mail: nothing changes
    report = check_bounces(ctx.settings, w.state, lambda name: ctx if name == PLATFORM else None)
    assert report.counts["cleared"] == 0 and w.row(10001)["Sel3"] == field

    w.update("Anschriften", 10001, EMail1="buchhaltung@mueller.example")
    report = check_bounces(ctx.settings, w.state, lambda name: ctx if name == PLATFORM else None)
    assert report.counts["cleared"] == 1 and report.counts["retried"] == 1
    assert w.row(10001)["Sel3"] is None
    [retry] = [j for j in jobs.active(PLATFORM) if j.step == PENDING]
    assert (retry.erp_number, retry.email, retry.reason) == (10001, "buchhaltung@mueller.example", "created")
    report = check_bounces(ctx.settings, w.state, lambda name: ctx if name == PLATFORM else None)
    assert report.counts["retried"] == 0  # once
