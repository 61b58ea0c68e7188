"""Static checks of a parsed layout for ``syncd check``: names it may not use, ERP columns the
row lacks, and whether it reads the password column (or the link). Nothing is rendered."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from jinja2 import meta, nodes

from syncd.core.domain import CheckItem
from syncd.render.context import (
    ADDRESS_FIELDS,
    CONTEXT_NAMES,
    CUSTOMER_FIELDS,
    HTML,
    SHOP_FIELDS,
    SMS,
    SUBJECT,
    TEXT,
)


def reads_column(tree: nodes.Template, column: str) -> bool:
    """Does the template read ``erp.<column>``, ``erp['<column>']`` or ``erp[password_column]``?
    Column names compare case-insensitively, as ``ErpRow`` looks them up."""
    wanted = column.lower()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "erp"):
            continue
        if isinstance(node, nodes.Getattr) and node.attr.lower() == wanted:
            return True
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.lower() == wanted:
                return True
            if isinstance(arg, nodes.Name) and arg.name == "password_column":
                return True
    return False


def reads_name(tree: nodes.Template, name: str) -> bool:
    return any(n.name == name and n.ctx == "load" for n in tree.find_all(nodes.Name))


def check_reads(name: str, origin: str, parsed: Mapping[str, nodes.Template], what: str,
                 reads: Callable[[nodes.Template], bool]) -> list[CheckItem]:
    if not parsed:
        return []
    text_files = [f for f in (SUBJECT, TEXT) if f in parsed]
    if any(reads(parsed[f]) for f in text_files):
        if HTML in parsed and not reads(parsed[HTML]):
            return [CheckItem("layout", name, False,
                              f"{origin}: {HTML} does not read {what}; mail clients that show the HTML "
                              "part would not show it")]
        return []
    where = HTML if HTML in parsed and reads(parsed[HTML]) else None
    hint = f" (only {where} does; the text part must carry it too)" if where else ""
    return [CheckItem("layout", name, False,
                      f"{origin}: neither {SUBJECT} nor {TEXT} reads {what}{hint}")]


def sms_problems(name: str, origin: str, parsed: Mapping[str, nodes.Template],
                 password_column: str | None, allow_password_by_sms: bool, *, shipped: bool = False
                 ) -> list[CheckItem]:
    """A layout that may go out as an SMS: it needs ``sms.txt.j2``; and an SMS carrying the
    password (``password_column`` given: credential mode "password") is refused unless the operator
    allowed it: an SMS is stored in plain text by the provider and on the phone. The link mode
    (a one-time link) is fine. A shipped layout's SMS text is not the operator's wish to send
    passwords by SMS: without the permission it is reported, not refused."""
    if SMS not in parsed:
        return [CheckItem("layout", name, False,
                          f"{origin}: {SMS} is missing; it is needed because messages may go by SMS "
                          f"/ {SMS} fehlt, Nachrichten können per SMS gehen")]
    if password_column is None:
        return []
    if not allow_password_by_sms and shipped:
        # The shipped layouts carry an SMS text for when it is allowed; without the permission
        # the credentials go by e-mail at run time (``syncd.flows.credentials.smsleg``).
        return [CheckItem("layout", name, True,
                          f"{origin}: credentials go by e-mail; by SMS only with [messages] "
                          "allow_password_by_sms = true / Zugangsdaten per E-Mail")]
    if not allow_password_by_sms:
        return [CheckItem("layout", name, False,
                          f"{origin}: credentials by SMS would carry the password in plain text; "
                          "use credential_mode = \"link\" or set [messages] allow_password_by_sms = true "
                          "/ Zugangsdaten per SMS enthielten das Passwort im Klartext")]
    if not reads_column(parsed[SMS], password_column):
        return [CheckItem("layout", name, False,
                          f"{origin}: {SMS} does not read the password column {password_column!r}")]
    return []


def unknown_names(tree: nodes.Template, columns: set[str] | None) -> Iterator[str]:
    for var in sorted(meta.find_undeclared_variables(tree) - CONTEXT_NAMES):
        yield f"unknown variable {var!r} (known: {', '.join(sorted(CONTEXT_NAMES))})"
    allowed = {"address": ADDRESS_FIELDS, "shop": SHOP_FIELDS, "customer": CUSTOMER_FIELDS}
    seen: set[tuple[str, str]] = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name in allowed:
            if node.attr not in allowed[node.node.name] and (node.node.name, node.attr) not in seen:
                seen.add((node.node.name, node.attr))
                yield (f"unknown field {node.node.name}.{node.attr} "
                       f"(known: {', '.join(allowed[node.node.name])})")
    if columns is None:
        return
    missing: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "erp"):
            continue
        if isinstance(node, nodes.Getattr):
            column = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            column = node.arg.value
        else:
            continue  # erp[password_column] and other computed keys: checked elsewhere or at render
        if column.lower() not in columns and column not in missing:
            missing.append(column)
    for column in missing:
        yield f"erp.{column}: the ERP row has no column {column!r}"
