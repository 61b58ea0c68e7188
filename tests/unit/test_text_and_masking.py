"""Operator texts are never cut mid-word, and the redaction masks secrets, not words (issue 14:
check showed "Failed to establish a new)", a log showed "[REDACTED] failed")."""

from __future__ import annotations

import socket

import pytest

from syncd.core.errors import TransientError
from syncd.core.redaction import MASK, redact, sensitive
from syncd.core.text import ELLIPSIS, clip
from syncd.state.failures import _clean_reason

SENTENCE = ("shop POST /api/oauth/token: connection failed (HTTPConnectionPool(host='127.0.0.1', "
            "port=9): Max retries exceeded with url: /api/oauth/token (Caused by NewConnectionError("
            "'<urllib3.connection.HTTPConnection object at 0x7f3a1c2b>: Failed to establish a new "
            "connection: [Errno 111] Connection refused'))")


@pytest.mark.parametrize("limit", range(20, len(SENTENCE) + 5, 7))
def test_clip_cuts_only_between_words(limit):
    out = clip(SENTENCE, limit)
    assert len(out) <= limit
    words = SENTENCE.split()
    if out == SENTENCE:
        return
    assert out.endswith(ELLIPSIS)
    kept = out[: -len(ELLIPSIS)].split()
    # Every word kept is whole: the text before the ellipsis is a prefix of the original's words
    # (the last may have lost a trailing comma or parenthesis, never letters).
    assert kept[:-1] == words[: len(kept) - 1]
    assert words[len(kept) - 1].startswith(kept[-1])
    assert words[len(kept) - 1].rstrip(",;:(") == kept[-1].rstrip(",;:(")


def test_a_failure_reason_in_the_state_store_is_not_cut_mid_word():
    reason = _clean_reason("word " * 2000)
    assert reason.endswith("word" + ELLIPSIS)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_shop_says_why_in_whole_words():
    from syncd.connectors.shopware6.http import ShopwareHttp

    http = ShopwareHttp(f"http://127.0.0.1:{_closed_port()}", "SWIAID", "Client-Secret-123456",
                        timeout=2, connect_timeout=1)
    try:
        with pytest.raises(TransientError) as info:
            http.token()
    finally:
        http.close()
    text = str(info.value)
    assert "Connection refused" in text, text
    assert text.endswith(")") and text.count("(") == text.count(")")
    assert "object at 0x" not in text  # the pool's reprs say nothing to an operator


def test_a_weak_secret_is_masked_as_a_word_not_inside_words():
    with sensitive("test", "conn"):
        assert redact("connection failed; tested; test") == f"connection failed; tested; {MASK}"


def test_a_strong_secret_is_masked_anywhere():
    # Generated passwords: mixed case, usually digits; one of letters only is still random.
    with sensitive("Xy7kQ2mNp4", "abcDEFghiJKm"):
        assert redact("id=abcXy7kQ2mNp4def") == f"id=abc{MASK}def"
        assert redact("xabcDEFghiJKmx") == f"x{MASK}x"


def test_a_stray_field_value_that_is_no_password_of_ours_is_not_masked(tmp_path, captured_logs):
    """The sweep registered every non-empty password field as sensitive: a field holding the
    word "connection" turned each "connection failed" of the sweep into "[REDACTED] failed"."""
    from syncd.config.model import AddressSettings, PlatformSettings
    from syncd.flows.credentials.sweep import worth_masking

    class Ctx:
        platform = PlatformSettings(name="shop", url="https://s", client_id="i", client_secret="x",
                                    addresses=AddressSettings())

    assert not worth_masking(Ctx, "connection", owned=False)  # 'o' is not in the alphabet
    assert not worth_masking(Ctx, "ja", owned=False)
    assert worth_masking(Ctx, "connection", owned=True)  # a job's own value: always
    assert worth_masking(Ctx, "Ab3dEf7hJk9m", owned=False)  # could be a lost job's password
