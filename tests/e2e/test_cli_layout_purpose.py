"""Through the CLI (issue 14): `check` and `layouts preview` warn about a layout whose text and
HTML parts were edited apart; a reset by staff is mailed with its own wording, and `check`
checks that layout too."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import time

import pytest

from syncd.render.store import shipped_root
from tests.support import wired_env as wired
from tests.support.wired_env import Env, read_mail

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox


def _details(out: str) -> str:
    """The Detail column of the check table, its folded lines joined."""
    return " ".join(parts[4].strip() for parts in (line.split("│") for line in out.splitlines())
                    if len(parts) >= 6)


def _operator_layouts(e: Env, tmp_path, *, html_age: float) -> tuple:
    root = tmp_path / "layouts"
    folder = root / "credentials"
    shutil.copytree(str(shipped_root() / "credentials"), folder, copy_function=shutil.copy)
    text = folder / "body.txt.j2"
    text.write_text(text.read_text("utf-8").replace("Haben Sie Fragen?", "Fragen? Tel. 0800 123"), "utf-8")
    stamp = time.time() - html_age
    os.utime(folder / "body.html.j2", (stamp, stamp))
    e.write_config(mail=f'layouts_dir = "{root.as_posix()}"')
    return root, folder


def test_check_warns_when_only_the_text_part_was_edited(env: Env, capsys, tmp_path):
    _, folder = _operator_layouts(env, tmp_path, html_age=2 * 86400)
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err  # a warning, not a failure
    assert "warning" in out and "body.txt.j2 was changed 2 d after body.html.j2" in _details(out), out


def test_check_is_quiet_when_both_parts_were_edited_together(env: Env, capsys, tmp_path):
    _operator_layouts(env, tmp_path, html_age=30)
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err
    assert "was changed" not in out


def test_preview_warns_too(env: Env, capsys, tmp_path):
    _operator_layouts(env, tmp_path, html_age=2 * 86400)
    code, out, err = env.cli(capsys, "layouts", "preview", "credentials", "--address", "10001")
    assert code == 0, err
    assert "Fragen? Tel. 0800 123" in out
    assert "warning" in err and "body.txt.j2 was changed 2 d after body.html.j2" in " ".join(err.split())


def test_check_checks_the_reset_layout_of_each_platform(env: Env, capsys, tmp_path):
    code, out, _ = env.cli(capsys, "check")
    assert code == 0 and "platforms[0].addresses.reset_layout = 'password_reset'" in " ".join(out.split())
    root = tmp_path / "layouts"
    (root / "no_password").mkdir(parents=True)
    (root / "no_password" / "subject.txt.j2").write_text("Hallo")
    (root / "no_password" / "body.txt.j2").write_text("Kein Passwort hier.")
    env.write_config(mail=f'layouts_dir = "{root.as_posix()}"', addresses='reset_layout = "no_password"')
    code, out, _ = env.cli(capsys, "check")
    assert code == 2 and "platforms[0].addresses.reset_layout" in out
    code, _, err = env.cli(capsys, "sync")  # the run refuses it too, naming the key
    assert code == 2 and "reset_layout" in err


@pytest.mark.parametrize(("layout", "subject", "words"), [
    ("credentials", "Ihr neues Passwort", "neu gesetzt"),
    ("credentials_en", "Your new password", "reset the password"),
])
def test_a_reset_by_staff_is_mailed_with_its_own_wording(env: Env, capsys, layout, subject, words):
    text = env.config.read_text().replace('email_layout = "credentials"', f'email_layout = "{layout}"')
    env.config.write_text(text)
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    first = {p: email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in env.outbox_files()}
    assert first and all(subject not in str(m["Subject"]) for m in first.values())
    code, _, err = env.cli(capsys, "accounts", "reset-password", "10001")
    assert code == 0, err
    new = [p for p in env.outbox_files() if p not in first]
    assert len(new) == 1
    message = email.message_from_bytes(new[0].read_bytes(), policy=email.policy.default)
    assert subject in str(message["Subject"])
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert words in body
    html = message.get_body(preferencelist=("html",)).get_content()
    assert words in html
    to, password = read_mail(new[0]) if layout == "credentials" else (None, None)
    if to:
        assert env.kit.login(to, password)
