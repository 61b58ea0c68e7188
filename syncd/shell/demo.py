"""`syncd demo`: the whole product on this machine with no outside systems.

A SQLite ERP with sample addresses, the bundled sandbox of the chosen platform kind (Shopware 6 or
WooCommerce, ``syncd.shell.demo_shops``) on a loopback port and an outbox folder for mails; one
full cycle in both directions through the same bootstrap, flows and connectors the daemon uses.
Nothing here is simulated beyond the shop itself.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.shell.demo_shops import SECRET_ENV, start_demo_shop

PASSWORD_COLUMN = "Sel5"  # noqa: S105 - a column name, not a password

# number|salutation|first|last|company|street|zip|city|country|email|blocked (J = blocked).
# One blocked address per few, one invalid e-mail, one without, a company-only one, umlauts,
# country names instead of ISO codes, and a country the shop does not sell to.
SAMPLE_ROWS = """
10001|Herr|Jürgen|Müller||Hauptstraße 1|80331|München|DE|juergen.mueller@example.com|N
10002|Frau|Anna|Schäfer||Königsallee 12|40212|Düsseldorf|DE|anna.schaefer@example.com|N
10003|Firma|||Bäckerei Groß GmbH|Marktplatz 3|01067|Dresden|DE|info@baeckerei-gross.example|N
10004|Herr|Lukas|Weiß||Lindenweg 7|1010|Wien|Österreich|lukas.weiss@example.at|N
10005|Frau|Sophie|Keller||Bahnhofstrasse 21|8001|Zürich|CH|sophie.keller@example.ch|N
10006|Herr|Thomas|Becker||Gartenstraße 5|50667|Köln|DE|thomas.becker@example.com|J
10007|Frau|Marie|Fischer||Am Ring 9|20095|Hamburg|DE|marie.fischer@example|N
10008|Herr|Jan|de Vries||Prinsengracht 263|1016 GV|Amsterdam|NL|jan.devries@example.nl|N
10009|Frau|Claire|Dubois||12 Rue de la Paix|75002|Paris|FR|claire.dubois@example.fr|N
10010|Herr|Stefan|Wagner|Wagner & Söhne KG|Industriestraße 40|70565|Stuttgart|DE|einkauf@wagner.example|N
10011|Frau|Julia|Hoffmann||Schillerstraße 2|04109|Leipzig|DE|julia.hoffmann@example.com|N
10012|Herr|Michael|Schulz||Goethestraße 18|60313|Frankfurt am Main|DE||N
10013|Frau|Laura|Zimmermann||Rosenweg 4|90402|Nürnberg|DE|laura.zimmermann@example.com|J
10014|Herr|Tobias|Krüger||Uferstraße 11|28195|Bremen|DE|tobias.krueger@example.com|N
10015|Frau|Lena|Hartmann||Waldstraße 30|76133|Karlsruhe|DE|lena.hartmann@example.com|N
10016|Herr|Felix|Lange||Bergstraße 6|69117|Heidelberg|DE|felix.lange@example.com|N
10017|Frau|Katharina|Schmitt|Elektro Schmitt|Lessingstr. 8|66111|Saarbrücken|DE|k.schmitt@elektro.example|N
10018|Herr|Andreas|Wolf||Friedhofstraße 1|93047|Regensburg|DE|andreas.wolf@example.com|N
10019|Frau|Sabine|Neumann||Mozartstraße 14|5020|Salzburg|AT|sabine.neumann@example.at|N
10020|Herr|Dimitri|Papadopoulos||Ermou 25|10563|Athen|GR|dimitri.p@example.gr|N
10021|Frau|Zoë|Brandt||Kirchgasse 3|65183|Wiesbaden|DE|zoe.brandt@example.com|N
10022|Herr|Björn|Jensen||Strandvejen 100|2900|Hellerup|Dänemark|bjoern.jensen@example.dk|N
10023|Frau|Petra|Vogel||Am Markt 2|18055|Rostock|DE|petra.vogel@example.com|J
10024|Herr|Oliver|Braun||Parkallee 17|24105|Kiel|DE|oliver.braun@example.com|N
10025|Frau|Nina|Richter||Domplatz 5|39104|Magdeburg|DE|nina.richter@example.com|N
"""


def sample_addresses() -> list[tuple[Any, ...]]:
    rows = []
    for line in SAMPLE_ROWS.strip().splitlines():
        fields = [value or None for value in line.split("|")]
        rows.append((int(fields[0]), *fields[1:]))
    return rows

# Customers who registered in the shop themselves: with an order they are imported into the ERP.
SHOP_USERS = [
    ("greta.sommer@example.com", "Greta", "Sommer", "Seestraße 4", "78462", "Konstanz", "DE", True),
    ("paul.winter@example.com", "Paul", "Winter", "Talweg 9", "79098", "Freiburg", "DE", False),
]


@dataclass
class DemoResult:
    folder: Path
    config: Path
    outbox: Path
    reports: list[Any]
    mails: list[Path]
    login_ok: bool | None
    shown_mail: str | None
    seconds: float


def create_erp(path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    meta = sa.MetaData()
    table = sa.Table(
        "Adressen",
        meta,
        sa.Column("AdrNr", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Anrede", sa.String(20)),
        sa.Column("Vorname", sa.String(50)),
        sa.Column("Nachname", sa.String(60)),
        sa.Column("Firma", sa.String(80)),
        sa.Column("Strasse", sa.String(80)),
        sa.Column("PLZ", sa.String(10)),
        sa.Column("Ort", sa.String(60)),
        sa.Column("Land", sa.String(40)),
        sa.Column("EMail", sa.String(120)),
        sa.Column("Telefon", sa.String(40)),
        sa.Column("Gruppe", sa.String(20)),
        sa.Column("Gesperrt", sa.String(1)),
        sa.Column("Geaendert", sa.DateTime, index=True),
        sa.Column("ShopId", sa.String(64)),
        sa.Column(PASSWORD_COLUMN, sa.Unicode(40)),
    )
    meta.create_all(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "AdrNr": n, "Anrede": sal, "Vorname": first, "Nachname": last, "Firma": company,
            "Strasse": street, "PLZ": zip_, "Ort": city, "Land": country, "EMail": mail,
            "Telefon": None, "Gruppe": None, "Gesperrt": blocked, "Geaendert": now, "ShopId": None,
            PASSWORD_COLUMN: None,
        }
        for (n, sal, first, last, company, street, zip_, city, country, mail, blocked) in sample_addresses()
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()


# The sample address table's columns (``create_erp``; the tests' ERP fixture has the same shape).
ERP_COLUMNS = {
    "number": "AdrNr", "company": "Firma", "salutation": "Anrede", "first_name": "Vorname",
    "last_name": "Nachname", "street": "Strasse", "zip": "PLZ", "city": "Ort", "country": "Land",
    "email": "EMail", "phone": "Telefon", "customer_group": "Gruppe", "blocked": "Gesperrt",
    "modified_at": "Geaendert", "shop_id": "ShopId",
}


def erp_section(url: str, table: str = "Adressen", extra: str = "") -> str:
    """The ``[erp]`` and ``[erp.columns]`` tables for the sample address table at ``url``;
    ``extra``: more ``[erp]`` keys."""
    columns = "".join(f'{key} = "{column}"\n' for key, column in ERP_COLUMNS.items())
    keys = f'url = "{url}"\nprofile = "generic"\naddress_table = "{table}"\ndebtor_range = [10000, 69999]\n'
    if extra:
        keys += extra.rstrip("\n") + "\n"
    return f"[erp]\n{keys}\n[erp.columns]\n{columns}"


def write_config(folder: Path, shop: Any) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f"""# Written by `syncd demo`. Point [erp] and [[platforms]] at real systems to go live.
[daemon]
state_url = "sqlite:///{(folder / 'state.db').as_posix()}"
poll_interval = "60s"

{erp_section(f"sqlite:///{(folder / 'erp.db').as_posix()}")}
[mail]
transport = "outbox"
outbox_dir = "{(folder / 'outbox').as_posix()}"
sender = "Demo-Shop <shop@example.com>"

[[platforms]]
name = "demo"
{shop.platform_toml()}
[platforms.addresses]
{shop.addresses_toml()}
erp_to_shop = true
send_credentials = true
email_layout = "credentials"
password_field = "{PASSWORD_COLUMN}"
skip_blocked = true
shop_to_erp = true
next_address_number = 10100
only_with_orders = true
""",
        encoding="utf-8",
    )
    return config


def _mask_mail(path: Path, shop: Any, length: int) -> tuple[str, bool]:
    """The mail as text with its password masked, and whether that password logs in to the shop.

    The demo does not know the password (nothing stores it); it finds it in the mail the way a
    customer would, by trying the word that logs in.
    """
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    to_addr = email.utils.parseaddr(str(message["To"]))[1]
    login_ok = False
    for word in set(re.findall(rf"\S{{{length}}}", text)):
        if shop.login(to_addr, word):
            text = text.replace(word, "•" * len(word))
            login_ok = True
            break
    head = f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n"
    return head + text, login_ok


def run_demo(folder: str | os.PathLike[str] | None = None, platform: str = "shopware6") -> DemoResult:
    """``platform``: the kind of shop the demo plays (``demo_shops.KINDS``)."""
    from syncd.config.loader import load_settings
    from syncd.config.secrets import resolve_all
    from syncd.shell.bootstrap import flow_jobs, open_runtime, sweep
    from syncd.shell.scheduler import CycleRunner
    from syncd.state.leases import make_holder

    started = time.monotonic()
    base = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    if (base / "erp.db").exists() or (base / "state.db").exists():
        from syncd.core.errors import ConfigError

        raise ConfigError("the demo folder is not empty; give a new one", key="--dir", value=str(base))
    create_erp(base / "erp.db")
    (base / "outbox").mkdir(exist_ok=True)

    shop = start_demo_shop(platform)
    try:
        for user in SHOP_USERS:
            shop.register(*user)
        os.environ[SECRET_ENV] = shop.secret
        config = write_config(base, shop)
        loaded = load_settings(config)
        runtime = open_runtime(loaded, resolve_all(loaded.settings, loaded.path))
        reports = []
        # Through the cycle runner, like `syncd sync` and the daemon: each cycle is recorded, so
        # `syncd status` on the demo's configuration shows what the demo did.
        runner = CycleRunner(runtime.state, holder=make_holder(), lease_ttl=loaded.settings.daemon.lease_ttl,
                             sweep=sweep)
        jobs = flow_jobs()
        names = [p.name for p in loaded.settings.platforms]
        try:
            for platform in loaded.settings.platforms:
                ctx = runtime.context(platform)
                for direction, job in jobs.items():
                    result = runner.run(ctx, direction, job)
                    if result.report is None:
                        from syncd.core.errors import SyncdError

                        raise SyncdError(f"demo cycle {platform.name} {direction}: {result.outcome} "
                                           f"{result.error or ''}")
                    reports.append(result.report)
        finally:
            runner.release_all(names, list(jobs))
            runtime.close()
        mails = sorted((base / "outbox").glob("*.eml"))
        shown, login_ok = None, None
        if mails:
            length = loaded.settings.platforms[0].addresses.password_length
            shown, login_ok = _mask_mail(mails[0], shop, length)
    finally:
        shop.stop()
    return DemoResult(
        folder=base, config=config, outbox=base / "outbox", reports=reports, mails=mails,
        login_ok=login_ok, shown_mail=shown, seconds=time.monotonic() - started,
    )


# The report's action names in the German summary (the directions stay: they are option values).
_ACTIONS_DE = {
    "created": "angelegt", "updated": "aktualisiert", "unchanged": "unverändert", "mailed": "gemailt",
    "failed": "fehlgeschlagen", "skipped": "übersprungen", "rejected": "abgelehnt",
    "imported": "importiert", "no-orders": "ohne Bestellung", "linked": "verknüpft",
}


def invocation() -> str:
    """How the operator reaches syncd again from here: ``syncd`` when that is on the PATH, else
    the command as it was run (the README's first line runs ``.venv/bin/syncd`` unactivated)."""
    import shutil
    import sys

    ran = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    on_path = shutil.which("syncd")
    if ran is None or ran.name not in ("syncd", "syncd.exe"):
        return "syncd" if on_path else f"{sys.executable} -m syncd"
    if on_path and Path(on_path).resolve() == ran.resolve():
        return "syncd"
    return str(ran)


def render_summary(result: DemoResult, *, lang: str = "en") -> list[Any]:
    """Rich renderables: what happened, where the mails are, one mail, how to go live."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    de = lang == "de"
    word = (lambda action: _ACTIONS_DE.get(action, action)) if de else (lambda action: action)
    out: list[Any] = []
    counts = Table(title="Ergebnis" if de else "Result", show_lines=False)
    counts.add_column("Richtung" if de else "Direction")
    counts.add_column("Aktion" if de else "Action")
    counts.add_column("Anzahl" if de else "Count", justify="right")
    for report in result.reports:
        for action, n in sorted(report.counts.items()):
            counts.add_row(report.direction, word(action), str(n))
    out.append(counts)

    # What did not go through (ERP addresses, with the reason), apart from what came from the shop:
    # an import is a success, and its record is a shop customer id, not an ERP number.
    details = Table(title="Nicht übertragen" if de else "Not transferred")
    details.add_column("Datensatz" if de else "Record")
    details.add_column("Aktion" if de else "Action")
    details.add_column("Grund" if de else "Reason")
    imported = Table(title="Aus dem Shop importiert" if de else "Imported from the shop")
    imported.add_column("Shop-Kunde (ID)" if de else "Shop customer (id)")
    imported.add_column("Ergebnis" if de else "Result")
    for report in result.reports:
        for item in report.items:
            if item.action == "imported":
                imported.add_row(item.record, item.detail)
            elif item.action in {"failed", "skipped", "rejected", "no-orders"}:
                details.add_row(item.record, word(item.action), item.detail)
    out.append(details)
    if imported.row_count:
        out.append(imported)

    where = Text()
    where.append(("Ordner: " if de else "Folder: ") + str(result.folder) + "\n")
    where.append(("Konfiguration: " if de else "Configuration: ") + str(result.config) + "\n")
    where.append(f"{'Postausgang' if de else 'Outbox'}: {result.outbox} ({len(result.mails)} .eml)\n")
    if result.login_ok is not None:
        ok = ("ja" if de else "yes") if result.login_ok else ("NEIN" if de else "NO")
        where.append(
            ("Passwort der ersten Mail meldet im Shop an: " if de else "The first mail's password logs in: ")
            + ok
        )
    out.append(where)
    if result.shown_mail:
        out.append(Panel(result.shown_mail, title="Beispiel-Mail (Passwort maskiert)" if de
                         else "Sample mail (password masked)"))
    steps_de = [
        "Live gehen (config.toml):",
        "  [erp] url, address_table, [erp.columns] -> echte ERP-Datenbank (büro+: profile = \"bueroplus\")",
        "  [[platforms]] url, client_id/client_secret (Shopware) oder consumer_key/consumer_secret",
        "    (WooCommerce) -> der Shop (Geheimnisse: `syncd secrets set NAME`)",
        "  [mail] host, port, security, sender -> der SMTP-Server",
        "  dann `syncd check`, danach `syncd run` oder der systemd-Dienst",
    ]
    steps_en = [
        "Going live (config.toml):",
        "  [erp] url, address_table, [erp.columns] -> the real ERP database (büro+: profile = \"bueroplus\")",
        "  [[platforms]] url, client_id/client_secret (Shopware) or consumer_key/consumer_secret",
        "    (WooCommerce) -> the shop (secrets: `syncd secrets set NAME`)",
        "  [mail] host, port, security, sender -> the SMTP server",
        "  then `syncd check`, then `syncd run` or the systemd service",
    ]
    syncd = invocation()
    steps_de.insert(0, f"Zustand ansehen: {syncd} --config {result.config} status\n")
    steps_en.insert(0, f"See the state: {syncd} --config {result.config} status\n")
    out.append(Text("\n".join(steps_de if de else steps_en)))
    took = f"{result.seconds:.1f}"
    out.append(Text(f"Dauer: {took.replace('.', ',')} s" if de else f"Took {took} s"))
    return out
