"""``syncd.core.rules`` against the copies it replaces: each definition must equal what the code uses
today, so swapping a copy for the rule is provably behaviour-preserving.

A copy that a later step deletes makes its comparison skip (there is nothing left to drift
from); one that turns into an alias of the rule keeps passing.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.core import rules
from syncd.core.rules import (
    ADDRESS_FIELDS,
    LOGICAL_COLUMNS,
    SHOP_CHANGE_OVERLAP,
    SHOP_IMPORT_FIELDS,
    STATUS_COLUMNS,
    TEXT_FIELDS,
    LinkKind,
    PushOutcome,
    email_key,
    email_problem,
)

ROOT = Path(__file__).resolve().parents[2]


def copy_of(module: str, name: str):
    """The old definition ``module.name``; skips once a later step has deleted it."""
    value = getattr(importlib.import_module(module), name, None)
    if value is None:
        pytest.skip(f"{module}.{name} is gone: syncd.core.rules is the only definition")
    return value


# ---------------------------------------------------------------------------------------- link kinds
def test_link_kinds_are_the_stored_values_in_the_stored_order():
    assert tuple(LinkKind) == copy_of("syncd.state.links", "KINDS")
    assert [k.value for k in LinkKind] == ["erp", "email", "import", "collective"]


def _kind_literals(tree: ast.AST) -> set[str]:
    """String constants the code compares with, assigns to or passes as a link kind."""
    found: set[str] = set()

    def strings(node: ast.AST | None) -> set[str]:
        if node is None:
            return set()
        return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    def is_kind(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "kind") or (
            isinstance(node, ast.Name) and node.id == "kind")

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(is_kind(s) for s in sides):
                for s in sides:
                    if not is_kind(s):
                        found |= strings(s)
        elif isinstance(node, ast.keyword) and node.arg == "kind":
            found |= strings(node.value)
        elif isinstance(node, ast.Assign) and any(is_kind(t) for t in node.targets):
            found |= {s for s in strings(node.value)}
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "kind":
                    found |= strings(value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found |= set(re.findall(r"\bkind\s*!?=\s*'(\w+)'", node.value))  # SQL text
    return found


def _modules_with_links() -> list[Path]:
    files = [*sorted((ROOT / "syncd").rglob("*.py")), *sorted((ROOT / "connectors").rglob("*.py"))]
    return [f for f in files if "sandbox" not in f.parts]


def test_the_schemas_partial_index_is_the_migrations_text():
    """The index text is built from ``LinkKind``; the migration that created it keeps its literal."""
    from syncd.state.schema import links

    migration = (ROOT / "syncd/state/migrations/versions/0001_initial.py").read_text(encoding="utf-8")
    (index,) = [i for i in links.indexes if i.name == "uq_links_platform_erp_number"]
    for dialect in ("sqlite", "postgresql"):
        where = str(index.dialect_options[dialect]["where"])
        assert f'{dialect}_where=sa.text("{where}")' in migration


def test_every_link_kind_literal_in_the_code_is_a_link_kind():
    """A typo in one of the many ``kind == "..."`` sites would silently never match."""
    # Modules whose "kind" is something else: pydantic error types, metric kinds, ERP column types.
    unrelated = ("syncd/config/loader.py", "syncd/shell/metrics.py", "connectors/erp/")
    seen: dict[str, set[str]] = {}
    for path in _modules_with_links():
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if "kind" in text and not name.startswith(unrelated):
            for literal in _kind_literals(ast.parse(text)):
                seen.setdefault(literal, set()).add(name)
    # Not vacuous: migration 0001 (byte-identical for good) spells the partial index's SQL text.
    assert "syncd/state/migrations/versions/0001_initial.py" in seen["collective"]
    # These spell link kinds only as ``LinkKind`` members (issue 12, WP-A push side).
    as_enum = {"syncd/flows/push_addresses.py", "syncd/flows/erp_to_shop.py", "syncd/flows/reconcile.py",
               "syncd/state/schema.py", "syncd/state/links.py"}
    assert not as_enum & set().union(*seen.values()), seen
    assert set(seen) <= set(LinkKind), {k: v for k, v in seen.items() if k not in set(LinkKind)}


# ---------------------------------------------------------------------------------------- outcomes
def test_push_outcome_has_the_members_and_values_of_domain_outcome():
    outcome = copy_of("syncd.core.domain", "Outcome")
    assert [(m.name, m.value) for m in PushOutcome] == [(m.name, m.value) for m in outcome]
    # StrEnum members compare as their value: a result built with either enum reads the same.
    assert PushOutcome.REJECTED == outcome.REJECTED and str(PushOutcome.CREATED) == "created"


# ---------------------------------------------------------------------------------------- fields
def test_address_fields_are_the_erp_address_dataclass():
    from syncd.core.domain import ErpAddress

    # ``business``, ``for_shop`` (issue 13), ``main_contact`` and ``marked_deleted`` (issue 18) are
    # the connector's decisions about the address, not fields a layout reads or an operator maps.
    derived = ("row", "problems", "business", "for_shop", "main_contact", "marked_deleted")
    assert ADDRESS_FIELDS == tuple(f.name for f in fields(ErpAddress) if f.name not in derived)


def test_address_fields_equal_the_layout_context_fields():
    # Order matters here: build_context zips the names with attrgetter(*ADDRESS_FIELDS).
    assert ADDRESS_FIELDS == copy_of("syncd.render.context", "ADDRESS_FIELDS")


def test_logical_columns_are_the_configurable_columns():
    from syncd.config.model import ErpColumns
    from syncd.config.profiles import BUEROPLUS

    # Optional columns beyond the address fields: the import's shop id, and the messaging
    # channel's mobile number and preferred channel (issue 16; no profile names them).
    assert set(ErpColumns.model_fields) == {*LOGICAL_COLUMNS, "shop_id", "mobile", "preferred_channel",
                                                 "business_flag", *STATUS_COLUMNS}
    assert set(BUEROPLUS.columns) == {*LOGICAL_COLUMNS, "shop_id"}
    old = copy_of("syncd.config.model", "LOGICAL_COLUMNS")
    # Same fields; the old tuple lists e-mail after the country, and nothing reads it in order
    # (nothing reads it at all, see the report of issue 12's step C0).
    assert sorted(LOGICAL_COLUMNS) == sorted(old) and len(LOGICAL_COLUMNS) == len(old)


def test_text_fields_equal_the_erp_normaliser_list():
    # Order matters: AddressBuilder reads them in this order (first problem reported first).
    assert TEXT_FIELDS == copy_of("syncd.connectors.erp.normalise", "TEXT_FIELDS")


def test_shop_import_fields_equal_the_import_flow_list_and_its_values():
    from syncd.core.domain import ShopCustomer

    old = copy_of("syncd.flows.import_customers", "SHOP_FIELDS")
    # Same fields; the flow only uses them as a set (columns to fill, columns the shop supplies).
    assert sorted(SHOP_IMPORT_FIELDS) == sorted(old) and len(SHOP_IMPORT_FIELDS) == len(old)
    assert set(SHOP_IMPORT_FIELDS) <= {f.name for f in fields(ShopCustomer)}
    # The dict ``_Import._values`` builds by hand names the same fields.
    tree = ast.parse((ROOT / "syncd/flows/import_customers.py").read_text(encoding="utf-8"))
    values = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_values")
    shop = next(n.value for n in ast.walk(values) if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "shop" for t in n.targets))
    assert isinstance(shop, ast.Dict)
    assert sorted(k.value for k in shop.keys) == sorted(SHOP_IMPORT_FIELDS)


def test_shopware_capped_fields_are_the_text_fields_the_shop_stores_as_text():
    capped = copy_of("syncd.connectors.shopware6.mapping", "_CAPPED_FIELDS")
    # Salutation and customer group become shop ids, so they have no length cap. The connector
    # checks city before zip: deriving the tuple from TEXT_FIELDS order would swap which of two
    # over-long values is reported.
    assert set(capped) == set(TEXT_FIELDS) - {"salutation", "customer_group"} and len(capped) == 8


# ---------------------------------------------------------------------------------------- e-mail
LOCAL64 = "l" * 64
AT_254 = LOCAL64 + "@" + "d" * 186 + ".de"
EMAILS = [
    # the table of test_credentials_units::test_email_problem
    ("max@example.com", True), ("müller@exämple.de", True), ("a@b", False), ("a b@example.com", False),
    ("x@example.com\r\nBcc: evil@example.com", False), ("", False), ("a@@example.com", False),
    # edges
    (None, False), ("   ", False), ("\t max@example.com \n", True), ("Max.Mustermann+tag@Example.COM", True),
    ("a..b@example.com", False), ("x@example.c", False), ("x@example.com.", False),
    ("x@sub.example.co.uk", True), ("x@example.de\x00", False), ("\x01x@example.com", False),
    ("x\x7f@example.com", False), ("x@exa mple.com", False), ("x@ex.äö", True),
    (LOCAL64 + "@example.com", True), (LOCAL64 + "l@example.com", False),
    (AT_254, True), (AT_254 + "x", False), ("x@" + "d" * 60 + "." + "t" * 63, True),
    ("x@example." + "t" * 64, False), ("@example.com", False), ("x@.com", False),
    ("x@.sub.com", True),  # lenient: a leading dot in the domain passes, the mail server decides
]


@pytest.mark.parametrize("email,ok", EMAILS)
def test_email_problem(email, ok):
    problem = email_problem(email)
    assert (problem is None) is ok
    if not ok:
        blank = email is None or not email.strip()
        assert problem == ("no e-mail address" if blank else f"invalid e-mail address {email.strip()!r}")


@pytest.mark.parametrize("email", [e for e, _ in EMAILS] + [" Max@Example.COM ", "Straße@X.de", "İx@y.de"])
def test_email_rule_is_the_push_flows_rule(email):
    flow = importlib.import_module("syncd.flows.push_addresses")
    assert email_problem(email) == copy_of(flow.__name__, "email_problem")(email)
    assert email_key(email) == copy_of(flow.__name__, "email_key")(email)


def test_email_key():
    assert email_key(" Max@Example.COM ") == "max@example.com"
    assert email_key(None) == email_key("") == ""
    assert email_key("Straße@X.de") == "straße@x.de"  # lower, not casefold: see email_key


@pytest.mark.parametrize("email,ok", EMAILS)
def test_the_shopware_connector_applies_the_rule_under_its_own_codes(email, ok):
    """The connector keeps its ``SYNCD__NO_EMAIL``/``SYNCD__BAD_EMAIL`` guard for direct callers,
    but decides by the rule: an address the push flow passes is never refused for its e-mail,
    and one the flow refuses is never sent (the connector's own looser pattern is gone)."""
    from syncd.config.model import PlatformSettings
    from syncd.connectors.shopware6.mapping import CustomerMapper, Rejected
    from syncd.connectors.shopware6.metadata import ShopMetadata
    from syncd.connectors.shopware6.versions import traits_for
    from syncd.core.domain import ErpAddress

    meta = ShopMetadata(sales_channel_name="S", sales_channel_id="a" * 32, language_id="b" * 32,
                        customer_group_id="c" * 32, payment_method_id="d" * 32, country_id="e" * 32,
                        groups={}, salutations={}, countries={"DE": "e" * 32})
    platform = PlatformSettings(name="shop", url="http://127.0.0.1:1", client_id="SWIA", client_secret="x")
    mapper = CustomerMapper(platform, meta, traits_for("6.6.10.0"), {"email": "KU_EMAIL"})
    address = ErpAddress(number=7, email=email, last_name="Ny", street="Weg 2", city="Ort", country="DE")
    if ok:
        assert mapper.map(address).email == email.strip()
    else:
        with pytest.raises(Rejected) as info:
            mapper.map(address)
        blank = email is None or not email.strip()
        assert info.value.code == ("SYNCD__NO_EMAIL" if blank else "SYNCD__BAD_EMAIL")
        assert info.value.reason.startswith("no email (ERP column KU_EMAIL)" if blank else
                                            "email (ERP column KU_EMAIL) ")


def test_the_shopware_connector_keys_e_mails_by_the_rule():
    from syncd.connectors.shopware6 import drift, push, shop

    assert push.email_key is shop.email_key is drift.email_key is email_key


# ---------------------------------------------------------------------------------------- overlap
def test_shop_change_overlap_is_the_documented_five_minutes():
    assert SHOP_CHANGE_OVERLAP == timedelta(minutes=5)
    assert SHOP_CHANGE_OVERLAP == copy_of("syncd.flows.import_customers", "OVERLAP")
    assert SHOP_CHANGE_OVERLAP == copy_of("syncd.connectors.shopware6.shop", "CHANGE_OVERLAP")


def test_rules_imports_nothing_of_syncd():
    """Domain, connectors and state import rules; it must not import them back."""
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.split(".")[0] in ("syncd", "connectors")}
