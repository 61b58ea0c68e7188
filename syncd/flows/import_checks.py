"""`syncd check` for shop -> ERP import settings: the collective or template address exists,
the next address number is allowed, every copy field can be read."""

from __future__ import annotations

from syncd.config.profiles import effective_columns, platform_columns, shop_id_owner
from syncd.core.domain import CheckItem
from syncd.core.errors import SyncdError
from syncd.flows.context import PlatformContext
from syncd.flows.import_plan import shop_supplied_columns
from syncd.flows.numbers import ImportBlocked, NumberPolicy


def check_import_settings(ctx: PlatformContext) -> list[CheckItem]:
    """What ``syncd check`` shows for the shop -> ERP settings of ``ctx.platform``: the start
    number against the debtor range, the template address and every copy field, the collective
    address. Reads only."""
    p = ctx.platform
    a = p.addresses
    key = f"platforms[{p.name}].addresses"
    items: list[CheckItem] = []

    def item(name: str, ok: bool, detail: str) -> None:
        items.append(CheckItem("config", f"{key}.{name}", ok, detail))

    if not a.shop_to_erp:
        if a.collective_address is None:
            item("shop_to_erp", True, "off, and no collective_address: shop customers are left alone")
        else:
            found = _exists(ctx, a.collective_address)
            item("collective_address", found is True,
                 f"ERP address {a.collective_address} " + _presence(found))
        return items

    policy = NumberPolicy.from_settings(ctx.settings, p)
    start_key = "next_address_number" if a.next_address_number is not None else "next_address_number (unset)"
    try:
        policy.check(policy.start)
        with ctx.uow() as uow:
            counter = uow.allocations.peek(p.name)
        nxt = policy.start if counter is None else max(counter, policy.start)
        policy.check(nxt)
        lo, hi = policy.debtor_range
        item(start_key, True, f"next number {nxt}, debtor_range {lo}-{hi}"
             + (" (numbers outside allowed)" if policy.allow_outside else ""))
    except ImportBlocked as exc:
        item(start_key, False, str(exc))

    columns = platform_columns(ctx.settings, ctx.platform.name)
    shop_col = columns.get("shop_id")
    item("shop_id column", True,
         f"new rows carry the shop customer id in {shop_col!r}" if shop_col
         else "[erp.columns] shop_id not mapped" + (
             f" (it holds platform {shop_id_owner(ctx.settings)!r}'s ids)"
             if effective_columns(ctx.settings.erp).get("shop_id") else "")
         + ": an interrupted import is recognised by its e-mail")

    if a.template_address is None:
        if a.copy_fields:
            item("copy_fields", False, "copy_fields needs template_address to copy from")
        return items
    found = _exists(ctx, a.template_address)
    item("template_address", found is True, f"ERP address {a.template_address} " + _presence(found))
    shop_supplied = shop_supplied_columns(columns)
    forbidden = {
        columns.get("number"): "the address number",
        shop_col: "the shop id column",
        a.password_field: "the password field",
    }
    for name in a.copy_fields:
        column = columns.get(name, name)
        where = f"copy_fields: {name!r}"
        if column in forbidden and column:
            item(where, False, f"{column!r} is {forbidden[column]}, which is never copied")
        elif column in shop_supplied:
            item(where, True, f"{column!r} comes from the shop customer; the template value is not used")
        elif name in columns:
            item(where, True, f"mapped to column {column!r}")
        elif found is True:
            ok, detail = _column_readable(ctx, a.template_address, column)
            item(where, ok, detail)
        else:
            item(where, False, "cannot be checked: the template address is not available")
    return items


def _exists(ctx: PlatformContext, number: int) -> bool | str:
    try:
        return bool(ctx.erp.number_exists(number))
    except SyncdError as exc:
        return str(exc)


def _presence(found: bool | str) -> str:
    if found is True:
        return "exists"
    if found is False:
        return "does not exist in the ERP"
    return f"could not be read: {found}"


def _column_readable(ctx: PlatformContext, number: int, column: str) -> tuple[bool, str]:
    try:
        ctx.erp.read_columns(number, [column])
    except (SyncdError, LookupError) as exc:
        return False, f"not a column of the ERP address table: {exc}"
    return True, f"existing column {column!r}"
