"""`syncd accounts approve|reject|forgot-username` and `accounts list --state`: approval states
and event mails (issue 15). Attached to the `accounts` group by ``syncd.shell.cli``; the work is
in ``syncd.flows.approvals`` and ``syncd.flows.account_events``. Exit codes as the other account
verbs: 0 all done, 1 some not done, 2 an unknown account or a usage error."""

from __future__ import annotations

import click

from .accounts import _context, _prepare, accounts_group
from .common import CliState, pass_state, platform_option


def _decide(state: CliState, platform: str | None, keys: tuple[str, ...], *, approve: bool,
            reason: str | None) -> int:
    from syncd.flows.approvals import UnknownAccounts, decide
    from syncd.shell.bootstrap import preflight

    loaded, secrets = _prepare(state, platform)
    preflight(loaded, secrets)
    with _context(loaded, secrets, platform) as ctx:
        try:
            decisions = decide(ctx, list(keys), approve=approve, reason=reason)
        except UnknownAccounts as exc:
            raise click.BadParameter(str(exc), param_hint="ADDRESS|SHOP_ID...") from None
    for d in decisions:
        click.echo(f"{d.key}: {d.action}" + (f" ({d.detail})" if d.detail else ""), err=not d.ok)
    return 0 if all(d.ok for d in decisions) else 1


@accounts_group.command("approve", help="Approve shop accounts (ERP address number or shop customer id): "
                        "accept the customer-group request, activate, mail the customer.")
@platform_option()
@click.argument("keys", nargs=-1, required=True, metavar="ADDRESS|SHOP_ID...")
@pass_state
@click.pass_context
def approve_cmd(ctx: click.Context, state: CliState, platform: str | None, keys: tuple[str, ...]) -> None:
    ctx.exit(_decide(state, platform, keys, approve=True, reason=None))


@accounts_group.command("reject", help="Reject shop accounts (also approved ones): decline the "
                        "customer-group request, deactivate, mail the customer with the reason.")
@platform_option()
@click.argument("keys", nargs=-1, required=True, metavar="ADDRESS|SHOP_ID...")
@click.option("--reason", default=None, metavar="TEXT", help="Why; shown to the customer in the mail.")
@pass_state
@click.pass_context
def reject_cmd(ctx: click.Context, state: CliState, platform: str | None, keys: tuple[str, ...],
               reason: str | None) -> None:
    ctx.exit(_decide(state, platform, keys, approve=False, reason=reason))


@accounts_group.command("forgot-username", help="Mail a customer the login of their account, found by "
                        "e-mail address or ERP address number (never a password).")
@platform_option()
@click.argument("key", metavar="EMAIL|NUMBER")
@pass_state
@click.pass_context
def forgot_username_cmd(ctx: click.Context, state: CliState, platform: str | None, key: str) -> None:
    from syncd.flows.account_events import ForgotUsernameError, forgot_username
    from syncd.shell.bootstrap import preflight

    loaded, secrets = _prepare(state, platform)
    preflight(loaded, secrets)
    with _context(loaded, secrets, platform) as pctx:
        try:
            report = forgot_username(pctx, key)
        except ForgotUsernameError as exc:
            raise click.BadParameter(str(exc), param_hint="EMAIL|NUMBER") from None
    ok = True
    for item in report.items:
        ok = ok and item.action == "mailed"
        click.echo(f"{item.record}: {item.action}" + (f" ({item.detail})" if item.detail else ""),
                   err=item.action != "mailed")
    ctx.exit(0 if ok and report.items else 1)
