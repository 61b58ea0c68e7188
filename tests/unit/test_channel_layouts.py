"""The shipped SMS texts of the credentials and set-password link layouts (issue 16), and what
`syncd check` says about them with and without ``allow_password_by_sms``."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.render.store import LayoutStore

EVENTS = ["approved", "rejected", "validated", "blocked", "password_reset_notice", "access_requested"]


@pytest.mark.parametrize("name", ["credentials", "credentials_en"])
def test_the_shipped_password_sms_goes_by_e_mail_without_permission_and_passes_with_it(name: str) -> None:
    store = LayoutStore()
    without = store.check(name, "Sel5", sms=True, allow_password_by_sms=False)
    assert all(i.ok for i in without)
    assert any("credentials go by e-mail" in i.detail for i in without)
    assert all(i.ok for i in store.check(name, "Sel5", sms=True, allow_password_by_sms=True))


def test_an_own_password_sms_is_still_refused_without_permission(tmp_path: Path) -> None:
    own = tmp_path / "credentials"
    own.mkdir()
    (own / "subject.txt.j2").write_text("Zugang")
    (own / "body.txt.j2").write_text("Passwort: {{ erp.Sel5 }}")
    (own / "sms.txt.j2").write_text("Passwort: {{ erp.Sel5 }}")
    failed = [i for i in LayoutStore(tmp_path).check("credentials", "Sel5", sms=True) if not i.ok]
    assert failed and "allow_password_by_sms" in failed[0].detail


@pytest.mark.parametrize("name", ["set_password_link", "set_password_link_en", *EVENTS,
                                  *[f"{e}_en" for e in EVENTS]])
def test_the_shipped_sms_texts_check_and_render(name: str) -> None:
    store = LayoutStore()
    assert store.has_sms(name)
    mode = "link" if name.startswith("set_password_link") else "password"
    assert all(i.ok for i in store.check(name, None, mode=mode, sms=True))
