"""The few CLI messages operators read, in German and English, chosen by the locale
(``LC_ALL`` / ``LC_MESSAGES`` / ``LANG`` starting with ``de`` -> German)."""

from __future__ import annotations

import os

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
}


def language() -> str:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return "de" if value.lower().startswith("de") else "en"
    return "en"


def msg(key: str, **values: object) -> str:
    text = _TEXT[key].get(language(), _TEXT[key]["en"])
    return text.format(**values) if values else text
