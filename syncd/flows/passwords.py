"""Password generation for credential mails (spec §1 step 3a).

Passwords come from ``secrets`` only. They are never longer than the ERP password field can
hold (the field is the one durable place of the in-flight password, I2), and never shorter than
the shop accepts (Shopware's default minimum is 8).
"""

from __future__ import annotations

import secrets
import string
from functools import lru_cache

from syncd.core.errors import ConfigError

SHOP_MIN_LENGTH = 8

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


def effective_length(length: int, field_length: int | None) -> int:
    """The length to generate: the configured one, capped by the ERP field's size."""
    n = length if field_length is None else min(length, field_length)
    if n < SHOP_MIN_LENGTH:
        raise ConfigError(
            f"the ERP password field holds only {field_length} characters; passwords need at least "
            f"{SHOP_MIN_LENGTH}",
            key="platforms.addresses.password_field",
            value=field_length,
        )
    return n


def generate_password(length: int, alphabet: str, *, field_length: int | None = None) -> str:
    """A random password of ``length`` characters (capped at ``field_length``) from ``alphabet``.

    When the alphabet offers lower case letters, upper case letters and digits, each appears at
    least once: shops with a password policy reject a password made only of letters.
    """
    n = effective_length(length, field_length)
    symbols, wanted = _symbols(alphabet)
    while True:
        candidate = "".join(secrets.choice(symbols) for _ in range(n))
        if len(wanted) > n or all(not w.isdisjoint(candidate) for w in wanted):
            return candidate


@lru_cache(maxsize=8)  # one alphabet per platform: prepared once, not per password of a batch
def _symbols(alphabet: str) -> tuple[str, tuple[frozenset[str], ...]]:
    symbols = "".join(dict.fromkeys(alphabet))  # keep order, drop repeats: uniform choice
    wanted = (frozenset(c) & frozenset(symbols) for c in _CLASSES)
    return symbols, tuple(w for w in wanted if w)
