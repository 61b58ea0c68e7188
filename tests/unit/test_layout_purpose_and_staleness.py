"""Issue 14: each purpose of a credentials mail has its own wording (first credentials vs. a
reset by staff), and a layout whose text and HTML bodies were edited apart is reported."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from syncd.config.model import AddressSettings
from syncd.render.context import build_context
from syncd.render.staleness import STALE_AFTER
from syncd.render.store import LayoutStore, shipped_root
from tests.unit.test_layouts import PASSWORD, PW_COL, _address, _platform


def _copy_shipped(root, name="credentials"):
    target = root / name
    shutil.copytree(str(shipped_root() / name), target, copy_function=shutil.copy)  # fresh mtimes
    for file in ("body.txt.j2", "body.html.j2"):  # the operator's own wording in both parts
        path = target / file
        path.write_text(path.read_text("utf-8").replace("Online-Shop", "Webshop"), "utf-8")
    return target


def _age(path, seconds):
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


# --------------------------------------------------------------------------- purposes


@pytest.mark.parametrize(("email_layout", "reset_layout", "reason", "expected"), [
    ("credentials", None, "created", "credentials"),
    ("credentials", None, "reset", "password_reset"),
    ("credentials", None, "resend", "password_reset"),
    ("credentials_en", None, "reset", "password_reset_en"),
    ("credentials_en", None, "created", "credentials_en"),
    ("mine", "my_reset", "resend", "my_reset"),
])
def test_the_layout_follows_the_purpose(email_layout, reset_layout, reason, expected):
    a = AddressSettings(email_layout=email_layout, reset_layout=reset_layout)
    assert a.layout_for(reason) == expected


@pytest.mark.parametrize(("first", "reset", "first_words", "reset_words"), [
    ("credentials", "password_reset", "eingerichtet", "neu gesetzt"),
    ("credentials_en", "password_reset_en", "set up a customer account", "reset the password"),
])
def test_shipped_reset_layouts_say_reset_in_both_parts(first, reset, first_words, reset_words):
    store = LayoutStore()
    ctx = build_context(_address(), platform=_platform())
    made, again = store.render(first, ctx), store.render(reset, ctx)
    for part in (again.text, again.html):
        assert reset_words in part and first_words not in part
        assert "juergen@example.com" in part and "10001" in part
    assert first_words in made.text and reset_words not in made.text
    assert PASSWORD in again.text
    assert again.subject != made.subject
    items = store.check(reset, PW_COL)
    assert all(i.ok for i in items), items


# --------------------------------------------------------------------------- staleness


def test_editing_only_the_text_body_is_reported(tmp_path):
    folder = _copy_shipped(tmp_path)
    store = LayoutStore(tmp_path)
    assert store.staleness("credentials") is None  # copied together
    _age(folder / "body.html.j2", 3 * 86400)  # the HTML part was last edited three days ago
    stale = store.staleness("credentials")
    assert stale is not None
    assert (stale.newer, stale.older) == ("body.txt.j2", "body.html.j2")
    assert stale.seconds > 2 * 86400 and str(folder) in stale.origin


def test_editing_only_the_html_body_is_reported(tmp_path):
    folder = _copy_shipped(tmp_path)
    _age(folder / "body.txt.j2", STALE_AFTER + 120)
    stale = LayoutStore(tmp_path).staleness("credentials")
    assert stale is not None and (stale.newer, stale.older) == ("body.html.j2", "body.txt.j2")


def test_both_edited_in_one_sitting_is_fine(tmp_path):
    folder = _copy_shipped(tmp_path)
    _age(folder / "body.html.j2", STALE_AFTER / 2)
    assert LayoutStore(tmp_path).staleness("credentials") is None


def test_a_text_only_layout_has_nothing_to_disagree_with(tmp_path):
    folder = _copy_shipped(tmp_path)
    (folder / "body.html.j2").unlink()
    _age(folder / "subject.txt.j2", 86400)
    assert LayoutStore(tmp_path).staleness("credentials") is None


def test_equal_version_marks_settle_it_and_different_ones_are_reported(tmp_path):
    folder = _copy_shipped(tmp_path)
    for file in ("body.txt.j2", "body.html.j2"):
        path = folder / file
        path.write_text("{# layout-version: 3 #}\n" + path.read_text("utf-8"), "utf-8")
    _age(folder / "body.html.j2", 86400)
    store = LayoutStore(tmp_path)
    assert store.staleness("credentials") is None  # the operator says they agree
    text = folder / "body.txt.j2"
    text.write_text(text.read_text("utf-8").replace("layout-version: 3", "layout-version: 4"), "utf-8")
    stale = store.staleness("credentials")
    assert stale is not None and stale.marks == ("4", "3")
    # The marked parts still render without the comment.
    out = store.render("credentials", build_context(_address(), platform=_platform()))
    assert "layout-version" not in out.text + (out.html or "")


def test_an_unchanged_copy_of_a_shipped_layout_is_not_judged_by_copied_mtimes(tmp_path):
    target = tmp_path / "credentials"
    shutil.copytree(str(shipped_root() / "credentials"), target)
    _age(target / "body.html.j2", 86400)
    assert LayoutStore(tmp_path).staleness("credentials") is None
    text = target / "body.txt.j2"
    text.write_text(text.read_text("utf-8") + "\nNeu: Abholung im Laden.\n", "utf-8")
    assert LayoutStore(tmp_path).staleness("credentials") is not None


def test_shipped_layouts_are_not_judged_by_their_mtimes():
    store = LayoutStore()
    for name in store.names():
        assert store.staleness(name) is None, name
