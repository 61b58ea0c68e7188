"""Secret references: ``keyring:SERVICE/NAME``, ``env:VAR``, ``credential:NAME``, or plain text.

Resolved once at start. A reference that cannot be resolved is a ``ConfigError`` naming the
key and the reference (never a value). Every resolved value is registered with
``syncd.core.redaction`` for the life of the process, so it cannot leak through logs or errors.

The keyring backend is the one keyring itself selects (``PYTHON_KEYRING_BACKEND``,
``keyringrc.cfg``, or its own priority order), but a backend that stores plain text or cannot
store anything is refused, never used by accident.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import keyring
import structlog
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError
from sqlalchemy.engine import make_url

from syncd.config.model import Settings
from syncd.core import redaction
from syncd.core.errors import ConfigError

log = structlog.get_logger("syncd.secrets")

KEYRING_SERVICE = "syncd"
SCHEMES = ("keyring", "env", "credential")
_ODBC_PASSWORD = re.compile(r"(?i)\b(?:pwd|password)\s*=\s*(\{[^}]*\}|[^;]+)")

HOW_TO_KEYRING = (
    "choose a keyring backend explicitly: set PYTHON_KEYRING_BACKEND (e.g. "
    "keyring.backends.SecretService.Keyring on a desktop, keyring.backends.Windows.WinVaultKeyring "
    "on Windows) or write default-keyring= in keyringrc.cfg; or use an env:VAR or "
    "credential:NAME (systemd LoadCredential=) reference instead"
)


def _backend_id(backend: KeyringBackend) -> str:
    cls = type(backend)
    return f"{cls.__name__}@{cls.__module__}"


def _unsafe_reason(backend: KeyringBackend) -> str | None:
    ident = _backend_id(backend)
    if "PlaintextKeyring" in ident or "plaintext" in ident.lower():
        return "stores secrets as plain text on disk"
    if ident.endswith("@keyring.backends.fail"):
        return "is the 'fail' backend: no usable keyring was found"
    if ident.endswith("@keyring.backends.null"):
        return "is the 'null' backend: it stores nothing"
    children = getattr(backend, "backends", None)
    if children is not None:  # ChainerBackend: unsafe if any member is, or if it is empty
        if not children:
            return "is an empty chain: no usable keyring was found"
        for child in children:
            reason = _unsafe_reason(child)
            if reason:
                return f"includes {type(child).__name__}, which {reason}"
    return None


def keyring_backend(
    *, file: str | None = None, key: str | None = None, value: str | None = None
) -> KeyringBackend:
    """The keyring backend to use, or ConfigError when only an unsafe one is available;
    ``value`` is the reference being resolved, so the error names it."""
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # keyring raises plain exceptions for a bad PYTHON_KEYRING_BACKEND
        raise ConfigError(
            f"the keyring backend cannot be loaded: {exc}",
            file=file,
            key=key,
            value=value,
            allowed=HOW_TO_KEYRING,
        ) from exc
    reason = _unsafe_reason(backend)
    if reason:
        raise ConfigError(
            f"refusing keyring backend {type(backend).__module__}.{type(backend).__name__}: it {reason}",
            file=file,
            key=key,
            value=value,
            allowed=HOW_TO_KEYRING,
        )
    return backend


def _scheme_of(ref: str) -> tuple[str | None, str]:
    scheme, sep, rest = ref.partition(":")
    if sep and scheme in SCHEMES:
        return scheme, rest
    if sep and scheme.isalpha() and 3 <= len(scheme) <= 12 and " " not in rest:
        near = difflib.get_close_matches(scheme.lower(), SCHEMES, n=1, cutoff=0.6)
        if near:
            # "keyrnig:syncd/erp" must not become a plain-text password.
            raise _TypoScheme(scheme, near[0])
    return None, ref


class _TypoScheme(Exception):
    def __init__(self, scheme: str, near: str) -> None:
        self.scheme, self.near = scheme, near


def resolve_secret(ref: str | None, *, file: str | None, key: str) -> str | None:
    """The secret ``ref`` points to (None when ``ref`` is empty); raises ConfigError."""
    if ref is None or ref == "":
        return None
    try:
        scheme, rest = _scheme_of(ref)
    except _TypoScheme as typo:
        raise ConfigError(
            f"unknown secret reference scheme {typo.scheme!r} (did you mean {typo.near!r}?)",
            file=file,
            key=key,
            value=f"{typo.scheme}:…",
            allowed="keyring:SERVICE/NAME, env:VAR, credential:NAME",
        ) from None
    if scheme is None:
        log.warning(
            "plain-text secret in the configuration file; use a keyring:, env: or credential: reference",
            key=key,
            file=file,
        )
        value = ref
    elif scheme == "keyring":
        value = _from_keyring(ref, rest, file=file, key=key)
    elif scheme == "env":
        value = _from_env(ref, rest, file=file, key=key)
    else:
        value = _from_credential(ref, rest, file=file, key=key)
    redaction.register(value)
    return value


def _from_keyring(ref: str, rest: str, *, file: str | None, key: str) -> str:
    service, sep, name = rest.partition("/")
    if not sep or not service or not name:
        raise ConfigError(
            "malformed keyring reference", file=file, key=key, value=ref, allowed="keyring:SERVICE/NAME"
        )
    backend = keyring_backend(file=file, key=key, value=ref)
    try:
        value = backend.get_password(service, name)
    except KeyringError as exc:
        raise ConfigError(
            f"keyring lookup of {ref} failed: {exc}", file=file, key=key, value=ref, allowed=HOW_TO_KEYRING
        ) from exc
    if not value:
        raise ConfigError(
            f"secret {ref} not found in keyring {type(backend).__name__}",
            file=file,
            key=key,
            value=ref,
            allowed=f"store it with: syncd secrets set {name}"
            + (f" --service {service}" if service != KEYRING_SERVICE else ""),
        )
    return value


def _from_env(ref: str, var: str, *, file: str | None, key: str) -> str:
    if not var:
        raise ConfigError("malformed env reference", file=file, key=key, value=ref, allowed="env:VAR")
    value = os.environ.get(var)
    if not value:
        raise ConfigError(
            f"environment variable {var} is {'empty' if value == '' else 'not set'}",
            file=file,
            key=key,
            value=ref,
            allowed=f"export {var} in the service environment, or use another reference",
        )
    return value


def _from_credential(ref: str, name: str, *, file: str | None, key: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(
            "malformed credential reference", file=file, key=key, value=ref, allowed="credential:NAME"
        )
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"secret {ref}: $CREDENTIALS_DIRECTORY is not set (not started by systemd with LoadCredential=)",
            file=file,
            key=key,
            value=ref,
            allowed=f"add LoadCredential={name}:/etc/syncd/credentials/{name} to the unit, "
            "or use a keyring: or env: reference",
        )
    path = Path(directory) / name
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"secret {ref}: cannot read {path}: {exc.strerror}",
            file=file,
            key=key,
            value=ref,
            allowed=f"LoadCredential={name}:... in the unit",
        ) from exc
    if not value:
        raise ConfigError(f"secret {ref}: {path} is empty", file=file, key=key, value=ref)
    return value


@dataclass(frozen=True)
class Secrets:
    erp_password: str | None = None
    mail_password: str | None = None
    client_secrets: dict[str, str] = field(default_factory=dict)

    def client_secret(self, platform_name: str) -> str:
        try:
            return self.client_secrets[platform_name]
        except KeyError:
            raise KeyError(f"no client secret resolved for platform {platform_name!r}") from None

    def __repr__(self) -> str:  # never print the values, even in a debugger dump or traceback
        erp = "set" if self.erp_password else None
        mail = "set" if self.mail_password else None
        return f"Secrets(erp_password={erp}, mail_password={mail}, platforms={list(self.client_secrets)})"


def resolve_all(settings: Settings, file: str | os.PathLike[str] | None) -> Secrets:
    """Resolve every secret of the configuration; the first failure raises ConfigError."""
    where = str(file) if file is not None else None
    _register_url_passwords(settings, where)
    erp = resolve_secret(settings.erp.password, file=where, key="erp.password")
    mail = resolve_secret(settings.mail.password, file=where, key="mail.password")
    clients: dict[str, str] = {}
    for index, platform in enumerate(settings.platforms):
        key = f"platforms[{index}].{platform.secret_key}"
        value = resolve_secret(platform.secret_ref, file=where, key=key)
        if value is None:
            raise ConfigError(f"{platform.secret_key} is empty", file=where, key=key)
        clients[platform.name] = value
    return Secrets(erp_password=erp, mail_password=mail, client_secrets=clients)


def _register_url_passwords(settings: Settings, file: str | None) -> None:
    """A password written into a database URL is a plain-text secret too."""
    for key, url in (("erp.url", settings.erp.url), ("daemon.state_url", settings.daemon.state_url)):
        try:
            parsed = make_url(url)
        except Exception:  # noqa: S112 - a malformed URL is reported by whoever connects with it
            continue
        found = [str(parsed.password)] if parsed.password else []
        for value in parsed.query.values():  # odbc_connect=...;PWD=...
            for text in (value,) if isinstance(value, str) else value:
                found += [m.group(1).strip("{}") for m in _ODBC_PASSWORD.finditer(text)]
        for password in found:
            redaction.register(password)
        if found:
            log.warning(
                "plain-text password inside a database URL; move it to a secret reference", key=key, file=file
            )
