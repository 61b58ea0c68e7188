"""The one redaction point: registered values and sensitive keys never leave unmasked."""

from __future__ import annotations

from syncd.core import redaction
from syncd.core.redaction import MASK, redact, redact_value, register, sensitive, unregister


def test_registered_values_are_masked_while_registered() -> None:
    with sensitive("Pa55word-One", "Pa55word-Two"):
        assert redact("a Pa55word-One b Pa55word-Two") == f"a {MASK} b {MASK}"
    assert redact("a Pa55word-One") == "a Pa55word-One"


def test_refcount_keeps_a_value_masked_until_its_last_holder_lets_go() -> None:
    register("Shared-Secret-1")
    with sensitive("Shared-Secret-1"):
        pass
    assert redact("x Shared-Secret-1") == f"x {MASK}"
    unregister("Shared-Secret-1")
    assert redact("x Shared-Secret-1") == "x Shared-Secret-1"


def test_a_value_containing_another_is_masked_whole() -> None:
    with sensitive("abcd", "abcdefgh"):
        assert redact("abcdefgh") == MASK


def test_short_values_are_not_registered() -> None:
    with sensitive("ab", None, ""):
        assert redact("ab") == "ab"


def test_a_batch_registers_every_value_and_unregisters_them_all() -> None:
    passwords = [f"Batch-Pw-{i:04d}" for i in range(500)]
    with sensitive(*passwords):
        text = " ".join(passwords)
        assert redact(text) == " ".join([MASK] * 500)
    assert redact("Batch-Pw-0042") == "Batch-Pw-0042"
    assert not redaction._values


def test_values_of_sensitive_keys_and_exceptions() -> None:
    event = {"password": "whatever", "detail": {"client_secret": "x1", "n": 3}}
    assert redact_value(event) == {"password": MASK, "detail": {"client_secret": MASK, "n": 3}}
    with sensitive("Exc-Secret-9"):
        assert redact_value(ValueError("bad Exc-Secret-9")) == f"ValueError: bad {MASK}"
