"""One exception hierarchy for the whole project.

The CLI maps ``ConfigError`` to exit 2 and every other ``SyncdError`` to exit 1.
The retry policy (``syncd.core.retry``) retries ``TransientError`` and nothing else;
``PermanentError`` ends the record it belongs to with a reason an operator can act on.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """Bad configuration or bad operator input: exit code 2, nothing changed.

    ``file``, ``key`` and ``value`` say exactly where; ``allowed`` says what would be accepted.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        value: object = None,
        allowed: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(str(self.file))
        if self.key:
            parts.append(self.key)
        where = ": ".join(parts)
        text = f"{where}: {self.message}" if where else self.message
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text


class AccessError(ConfigError):
    """A file or folder syncd was told to read or write is missing or not accessible to the user
    it runs as (a config file, the state folder, an export target): exit 2 with one line that
    names the path, what failed and what to do, never an internal error with a traceback."""

    def __init__(self, path: object, action: str, reason: str, hint: str) -> None:
        self.path, self.action, self.reason, self.hint = str(path), action, reason, hint
        super().__init__(f"cannot {action}: {reason}", file=str(path), allowed=hint)

    def __str__(self) -> str:
        return f"{self.path}: cannot {self.action} ({self.reason}); {self.hint}"

    @classmethod
    def from_os(cls, path: object, action: str, exc: OSError, hint: str) -> AccessError:
        return cls(path, action, exc.strerror or type(exc).__name__, hint)


def whoami() -> str:
    """The user name syncd runs as, for hints ("as user syncd"); the uid when it has no name."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a DynamicUser= without a passwd entry in this namespace
        import os

        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"


class TransientError(SyncdError):
    """A fault that may go away by itself (5xx, 429, timeout, SMTP 4xx, lost DB connection).

    ``retry_after`` (seconds) is honoured by the retry policy when the peer said how long to wait.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationFault(TransientError):
    """Work held back because the setup is wrong, not because a record is: the mail server
    refused the login, a mapping target is missing in the shop. Nothing is dropped (the work
    waits like after a transient fault and resumes once the operator fixes it), but the cycle
    is not ok: `syncd sync` exits 1 and `syncd status` names the reason. Not retried in place:
    waiting seconds does not fix a password. ``key`` names the configuration key to look at."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class DeliveryUnknown(TransientError):
    """The connection broke after a mail's content was sent: the server may have accepted it.
    Not retried in place: the credential flow counts it against its resend bound (I5)."""


class PermanentError(SyncdError):
    """A fault that retrying will not fix (validation error, SMTP 5xx, invalid address).

    ``code`` is the peer's machine-readable code when there is one (Shopware error code,
    SMTP status).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
