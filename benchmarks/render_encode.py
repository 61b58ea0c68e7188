"""CPU cost of one credentials mail before the wire: ``build_context`` + ``LayoutStore.render``
(the shipped ``credentials`` layout: subject, text and HTML) and ``encode_message``, per mail,
over N ERP rows (default 2,000) shaped like those of ``benchmarks/credentials.py`` (German names
with umlauts, the sample table's columns).

For comparison the same work is done, in the same run and on the same rows, by the two modules
as they were at ``--ref`` (a git revision; default: the commit before the render/encode speed-up),
loaded from git into private module names. Prints ms per mail for both and the ratio new/old, and
checks that both produce the same rendered text and the same message (headers and decoded
bodies; Date, Message-ID and the MIME boundary differ per mail anyway).

    python benchmarks/render_encode.py [--mails 2000] [--rounds 7] [--ref REV | --ref none]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncd.config.model import PlatformSettings  # noqa: E402
from syncd.connectors.mail import message as new_message  # noqa: E402
from syncd.core.domain import ErpAddress, OutgoingMail  # noqa: E402
from syncd.render import context as _context  # noqa: E402
from syncd.render import store as _store  # noqa: E402

# The last commit with the old render/encode paths (before the per-layout template cache).
REF = "3f006ec173c2e71d53083ec6a09fb52b1c0d8ea8"
LAYOUT = "credentials"
SENDER = "Möbelhaus Süd <shop@moebel.example>"
PASSWORD_FIELD = "Sel5"

FIRST = ("Jana", "Jürgen", "Zoë", "Björn", "Anna-Lena", "Ömer", "Günther", "Käthe")
LAST = ("Schäfer", "Müller-Lüdenscheidt", "Weiß", "Groß", "Öztürk", "Bäcker", "Köhler", "Nguyen")
SALUTATION = ("Frau", "Herr", "Frau", "Herr", None, "Herr", "Herr", "Frau")


def addresses(n: int) -> list[ErpAddress]:
    """Rows as the ERP connector hands them over: every column of the sample table."""
    out = []
    for i in range(n):
        number = 100000 + i
        first, last, salutation = FIRST[i % 8], f"{LAST[(i // 8) % 8]} {i}", SALUTATION[i % 8]
        company = "Möbel & Söhne GmbH" if i % 5 == 0 else None
        row: dict[str, Any] = {
            "AdrNr": number, "Firma": company, "Anrede": salutation, "Vorname": first, "Nachname": last,
            "Strasse": "Ringstraße 7", "PLZ": "20095", "Ort": "Hamburg", "Land": "DE",
            "EMail": f"kunde{number}@example.com", "Telefon": "040 1234567", "Gruppe": "EK",
            "Gesperrt": "N", "ShopId": f"{number:032x}", "Status": None, "Bemerkung": None,
        }
        row.update({f"Sel{k}": None for k in range(1, 11)})
        row[PASSWORD_FIELD] = f"Qz7<b>&Kx{i:05d}"
        row["Geaendert"] = datetime(2025, 3, 1, 12, 0, i % 60)
        out.append(ErpAddress(
            number=number, email=row["EMail"], company=company, salutation=salutation, first_name=first,
            last_name=last, street="Ringstraße 7", zip="20095", city="Hamburg", country="DE",
            phone="040 1234567", customer_group="EK", modified_at=row["Geaendert"], row=row,
        ))
    return out


new_layouts = SimpleNamespace(LayoutStore=_store.LayoutStore, build_context=_context.build_context)


def load_ref(rev: str) -> tuple[ModuleType, ModuleType] | None:
    """``syncd.layouts`` and ``syncd.connectors.mail.message`` as they were at ``rev``."""
    mods = []
    for path, name in (("syncd/layouts.py", "_ref_layouts"), ("connectors/mail/message.py", "_ref_message")):
        try:
            source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                                    capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"no reference ({path} at {rev}: {exc}); timing the current code only")
            return None
        # The reference predates the layout move of issue 12: point its imports at today's modules.
        for before, after in (("from syncd.domain", "from syncd.core.domain"),
                              ("from syncd.errors", "from syncd.core.errors"),
                              ('files("layouts")', 'files("syncd.layouts")')):
            source = source.replace(before, after)
        spec = importlib.util.spec_from_loader(name, loader=None)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        exec(compile(source, f"<{rev[:10]}>/{path}", "exec"), module.__dict__)
        mods.append(module)
    return mods[0], mods[1]


def render_all(layouts: ModuleType, rows: list[ErpAddress], platform: Any, shop: Any) -> list[OutgoingMail]:
    """What ``credentials.build_mail`` does per address."""
    store = layouts.LayoutStore()
    mails = []
    for a in rows:
        out = store.render(LAYOUT, layouts.build_context(a, platform=platform, shop=shop, sender=SENDER))
        name = " ".join(p for p in (a.first_name, a.last_name) if p) or a.company
        mails.append(OutgoingMail(to_addr=a.email or "", to_name=name or None, sender=SENDER,
                                  subject=out.subject, text=out.text, html=out.html))
    return mails


def encode_all(message: ModuleType, mails: list[OutgoingMail]) -> list[bytes]:
    """What the SMTP session does per mail before speaking SMTP."""
    return [message.encode_message(m, sender=message.parse_sender(m.sender)).data for m in mails]


def best(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def semantic(raw: bytes) -> tuple[Any, ...]:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    heads = tuple((k, str(v)) for k, v in msg.items() if k not in ("Date", "Message-ID", "Content-Type"))
    parts = [msg] if not msg.is_multipart() else list(msg.iter_parts())
    return heads, msg.get_content_type(), tuple((p.get_content_type(), p.get_content()) for p in parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path; the best counts")
    parser.add_argument("--ref", default=REF, help="git revision of the old code, or 'none'")
    args = parser.parse_args(argv)
    n = args.mails
    rows = addresses(n)
    platform = PlatformSettings(
        name="shop", url="https://shop.example.com/", client_id="id", client_secret="secret", sender=SENDER,
        addresses={"password_field": PASSWORD_FIELD, "send_credentials": True, "email_layout": LAYOUT})
    shop = SimpleNamespace(name="shop", login_url="https://shop.example.com/account/login")
    ref = None if args.ref == "none" else load_ref(args.ref)

    variants: list[tuple[str, ModuleType, ModuleType]] = [("new", new_layouts, new_message)]
    if ref is not None:
        variants.append(("old", *ref))
    figures: dict[str, tuple[float, float]] = {}
    outputs: dict[str, tuple[list[OutgoingMail], list[bytes]]] = {}
    for label, layouts, message in variants:
        t_render, mails = best(lambda layouts=layouts: render_all(layouts, rows, platform, shop), args.rounds)
        t_encode, raws = best(lambda message=message, mails=mails: encode_all(message, mails), args.rounds)
        figures[label] = (t_render, t_encode)
        outputs[label] = (mails, raws)

    print(f"{n} credentials mails, layout {LAYOUT!r} (subject, text, HTML); best of {args.rounds} rounds")
    print(f"{'':6} {'context+render':>16} {'encode':>12} {'sum':>12}   (ms per mail)")
    for label, (t_render, t_encode) in figures.items():
        print(f"{label:6} {t_render / n * 1e3:16.4f} {t_encode / n * 1e3:12.4f} "
              f"{(t_render + t_encode) / n * 1e3:12.4f}")
    if "old" in figures:
        (nr, ne), (orr, oe) = figures["new"], figures["old"]
        print(f"ratio new/old: context+render {nr / orr:.2f}  encode {ne / oe:.2f}  "
              f"sum {(nr + ne) / (orr + oe):.2f}")
        new_mails, new_raws = outputs["new"]
        old_mails, old_raws = outputs["old"]
        assert new_mails == old_mails, "rendered mails differ"
        assert all(semantic(a) == semantic(b) for a, b in zip(new_raws, old_raws, strict=True)), \
            "encoded messages differ"
        print("outputs: identical rendered mails, semantically identical messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
