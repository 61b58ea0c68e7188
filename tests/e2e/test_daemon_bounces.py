"""The daemon reads the bounce mailbox as a scheduled job when [mail.bounces] is on (and only
then), in process; a maildir with a Postfix DSN for a credentials mail, SQLite state."""

from __future__ import annotations

import mailbox

from syncd.config.bounces import BounceSettings
from syncd.config.model import MailSettings, Settings
from syncd.core.clock import utcnow
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.flows.context import CycleReport, PlatformContext
from syncd.shell.daemon import BOUNCES_JOB, Daemon
from syncd.state.bounces import Bounces
from syncd.state.jobs import CredentialJobs
from tests.e2e.test_daemon import make_settings, start, stop, store, wait_for  # noqa: F401
from tests.support import bounce_samples as samples


def _with_bounces(settings: Settings, folder: str, enabled: bool = True) -> Settings:
    bounces = BounceSettings(enabled=enabled, return_path="bounces@example.com", maildir=folder,
                             poll_interval="30s")
    return settings.model_copy(update={"mail": MailSettings(bounces=bounces)})


def test_daemon_reads_bounces_on_its_own(tmp_path, store) -> None:  # noqa: F811
    folder = tmp_path / "bounces"
    mailbox.Maildir(str(folder), create=True).close()
    settings = _with_bounces(make_settings(tmp_path, poll="1h"), str(folder))
    job = CredentialJobs(store).create(platform="shop", erp_number=10001, shop_id=None, email="k@example.org",
                                       now=utcnow())
    key = Bounces(store).tag_key(utcnow())
    assert job is not None and key is not None
    samples.deliver(folder, samples.postfix_dsn(envelope_sender("bounces@example.com",
                                                                make_tag(key, "c", job, "k@example.org")),
                                                "k@example.org"))

    def build(platform) -> PlatformContext:
        return PlatformContext(settings=settings, platform=platform, erp=None, shop=None, state=store)

    daemon = Daemon(settings, build_context=build, jobs={"erp-to-shop": lambda ctx: CycleReport("shop", "x")},
                    store=store, install_signals=False)
    thread, result = start(daemon)
    try:
        wait_for(lambda: daemon._scheduler is not None and daemon._scheduler.get_job(BOUNCES_JOB) is not None,
                 what="the bounce job")
        assert daemon._scheduler.get_job(BOUNCES_JOB).trigger.interval.total_seconds() == 30
        wait_for(lambda: Bounces(store).blocked_numbers("shop") == {10001}, timeout=20,
                 what="the bounce read")
    finally:
        assert stop(daemon, thread, result) == 0


def test_no_bounce_job_when_off(tmp_path, store) -> None:  # noqa: F811
    settings = _with_bounces(make_settings(tmp_path, poll="1h"), str(tmp_path), enabled=False)
    daemon = Daemon(settings, build_context=lambda p: PlatformContext(settings, p, None, None, store),
                    jobs={"erp-to-shop": lambda ctx: CycleReport("shop", "x")}, store=store,
                    install_signals=False)
    thread, result = start(daemon)
    try:
        wait_for(lambda: daemon._scheduler is not None and daemon._scheduler.running, what="the scheduler")
        assert daemon._scheduler.get_job(BOUNCES_JOB) is None
    finally:
        assert stop(daemon, thread, result) == 0
