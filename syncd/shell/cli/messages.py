"""The few CLI messages operators read, in German and English, chosen by the locale
(``LC_ALL`` / ``LC_MESSAGES`` / ``LANG`` starting with ``de`` -> German)."""

from __future__ import annotations

import os

import click

_TEXT: dict[str, dict[str, str]] = {
    "config_error": {"en": "configuration error", "de": "Konfigurationsfehler"},
    "error": {"en": "error", "de": "Fehler"},
    "access_error": {"en": "file access error", "de": "Dateizugriffsfehler"},
    "internal_error": {
        "en": "internal error (details in the log)",
        "de": "interner Fehler (Details im Log)",
    },
    "interrupted": {"en": "interrupted", "de": "abgebrochen"},
    "secret_stored": {
        "en": "Secret stored in the keyring ({backend}). Use this reference in the configuration:",
        "de": "Geheimnis im Schlüsselbund gespeichert ({backend}). "
        "Diese Referenz in die Konfiguration eintragen:",
    },
    "secret_prompt": {"en": "Secret for {name}", "de": "Geheimnis für {name}"},
    "secret_empty": {"en": "the secret is empty", "de": "das Geheimnis ist leer"},
    "check_ok": {"en": "all checks passed", "de": "alle Prüfungen bestanden"},
    "check_failed": {"en": "{n} check(s) failed", "de": "{n} Prüfung(en) fehlgeschlagen"},
    "col_area": {"en": "Area", "de": "Bereich"},
    "col_check": {"en": "Check", "de": "Prüfung"},
    "col_result": {"en": "Result", "de": "Ergebnis"},
    "col_detail": {"en": "Detail", "de": "Detail"},
    "ok": {"en": "ok", "de": "ok"},
    "failed": {"en": "FAILED", "de": "FEHLER"},
    "skipped": {"en": "skipped", "de": "übersprungen"},
    "warning": {"en": "warning", "de": "Warnung"},
    "layout_stale_time": {
        "en": "{origin}: {newer} was changed {age} after {older}; the two parts may say different things "
        "(a mail client shows one of them): edit both, or put the same {{# layout-version: N #}} in both",
        "de": "{origin}: {newer} wurde {age} nach {older} geändert; die beiden Teile sagen vielleicht "
        "Verschiedenes (ein Mailprogramm zeigt einen davon): beide bearbeiten oder in beide dasselbe "
        "{{# layout-version: N #}} schreiben",
    },
    "layout_stale_marks": {
        "en": "{origin}: body.txt.j2 has layout-version {text}, body.html.j2 has {html}; "
        "bring the other part up to date, then give both the same mark",
        "de": "{origin}: body.txt.j2 hat layout-version {text}, body.html.j2 hat {html}; den anderen "
        "Teil nachziehen, dann beiden dieselbe Marke geben",
    },
    "check_skipped_secret": {
        "en": "skipped: secret {secret} ({ref}) could not be resolved, see its row above",
        "de": "übersprungen: Geheimnis {secret} ({ref}) nicht auflösbar, siehe dessen Zeile oben",
    },
    "windows_only": {
        "en": "`syncd service` manages the Windows service; on Linux use the systemd units in systemd/",
        "de": "`syncd service` verwaltet den Windows-Dienst; "
        "unter Linux die systemd-Units aus systemd/ verwenden",
    },


    # syncd history
    "history_none": {
        "en": "no events recorded for address {address} (events are kept {days} days)",
        "de": "keine Ereignisse für Adresse {address} gespeichert (Ereignisse werden {days} Tage aufbewahrt)",
    },
    "col_time": {"en": "Time (UTC)", "de": "Zeit (UTC)"},
    "col_platform": {"en": "Platform", "de": "Plattform"},
    "col_event": {"en": "Event", "de": "Ereignis"},
    "col_reason": {"en": "Reason", "de": "Grund"},
    "event_pushed": {"en": "pushed", "de": "übertragen"},
    "event_created": {"en": "account created", "de": "Konto angelegt"},
    "event_adopted": {"en": "account linked", "de": "Konto verknüpft"},
    "event_rejected": {"en": "rejected", "de": "abgelehnt"},
    "event_mail_sent": {"en": "mail sent", "de": "Mail gesendet"},
    "event_mail_deferred": {"en": "mail deferred", "de": "Mail zurückgestellt"},
    "event_mail_failed": {"en": "mail failed", "de": "Mail fehlgeschlagen"},
    "event_imported": {"en": "imported", "de": "importiert"},
    "event_deactivated": {"en": "deactivated", "de": "deaktiviert"},
    "event_reactivated": {"en": "reactivated", "de": "reaktiviert"},
    "event_main_contact": {"en": "main contact changed", "de": "Hauptansprechpartner gewechselt"},
    "event_contact_skipped": {"en": "contact person skipped", "de": "Ansprechpartner übersprungen"},
    "col_account": {"en": "Account", "de": "Konto"},
    "acc_main_contact": {"en": "Main contact", "de": "Hauptansprechpartner"},
    "acc_contact": {"en": "Contact", "de": "Ansprechpartner"},
    "event_staff_login_as": {"en": "staff logged in as the customer", "de": "Personal als Kunde angemeldet"},
    "event_recovery_requested": {"en": "customer asked for a new password",
                                 "de": "Kunde hat ein neues Passwort angefordert"},
    "event_password_changed_in_shop": {"en": "password changed in the shop",
                                       "de": "Passwort im Shop geändert"},
    # syncd accounts list
    "acc_address": {"en": "Address", "de": "Adresse"},
    "acc_name": {"en": "Name", "de": "Name"},
    "acc_email": {"en": "E-mail", "de": "E-Mail"},
    "acc_platform": {"en": "Platform", "de": "Plattform"},
    "acc_shop_id": {"en": "Shop ID", "de": "Shop-ID"},
    "acc_kind": {"en": "Kind", "de": "Art"},
    "acc_active": {"en": "Active", "de": "Aktiv"},
    "acc_credentials_sent_at": {"en": "Credentials sent (UTC)", "de": "Zugangsdaten gesendet (UTC)"},
    "acc_bounced_at": {"en": "Bounced (UTC)", "de": "Unzustellbar seit (UTC)"},
    "acc_password_status": {"en": "Password", "de": "Passwort"},
    "acc_last_login_at": {"en": "Last login (UTC)", "de": "Letzte Anmeldung (UTC)"},
    "kind_erp": {"en": "created by syncd", "de": "von syncd angelegt"},
    "kind_email": {"en": "linked by e-mail", "de": "per E-Mail verknüpft"},
    "kind_import": {"en": "imported", "de": "importiert"},
    "kind_collective": {"en": "collective address", "de": "Sammeladresse"},
    "pw_initial": {"en": "initial", "de": "Erstzugang"},
    "pw_reset_by_staff": {"en": "reset by staff", "de": "vom Personal zurückgesetzt"},
    "pw_own_password": {"en": "own password", "de": "eigenes Passwort"},
    "pw_none": {"en": "never mailed", "de": "nie versandt"},
    "yes": {"en": "yes", "de": "ja"},
    "no": {"en": "no", "de": "nein"},
    "accounts_count": {"en": "{n} account(s)", "de": "{n} Konto/Konten"},
    "names_unavailable": {
        "en": "names not shown: the ERP could not be read ({problem})",
        "de": "Namen nicht angezeigt: das ERP war nicht lesbar ({problem})",
    },
}

# `--lang de|en` on the verbs whose whole output is for people (one language per run).
LANG_OPTION = click.option(
    "--lang", "lang", type=click.Choice(["de", "en"]), default=None,
    help="Language of the output (de / en); default: from the locale (LC_ALL, LC_MESSAGES, LANG).",
)


def language(override: str | None = None) -> str:
    if override in ("de", "en"):
        return override
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "de" if value.lower().startswith("de") else "en"
    return "en"


def msg(key: str, lang: str | None = None, *, default: str | None = None, **values: object) -> str:
    """The text of ``key`` in ``lang`` (default: the locale's); ``default`` for an unknown key."""
    texts = _TEXT.get(key)
    if texts is None:
        if default is None:
            raise KeyError(key)
        return default
    text = texts.get(language(lang), texts["en"])
    return text.format(**values) if values else text
