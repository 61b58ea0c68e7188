"""`syncd check` runs every row it can when one secret fails (issue 14): the rows that need the
missing secret say "skipped: secret ...", every other row runs as usual, exit 2."""

from __future__ import annotations

from tests.support import wired_env as wired
from tests.support.wired_env import SECRET_ENV, Env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox


def test_a_missing_shop_secret_skips_only_the_shop(env: Env, capsys, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    code, out, err = env.cli(capsys, "check")
    assert code == 2, out + err
    # The ERP, the password field, the layout and the mail transport were all checked.
    for expected in ("Adressen.Sel5: VARCHAR(40)", "erp.columns.email", "reads 'Sel5'", "writable:"):
        assert expected in out, expected
    secret = "consumer_secret" if env.kit.kind == "woocommerce" else "client_secret"
    assert f"skipped: secret platforms[0].{secret}" in " ".join(out.split())
    assert "authenticated" not in out
    assert "1 check(s) failed" in err  # the secret itself; the skipped row is not one more failure
    assert not env.state_db.parent.exists()


def test_a_missing_erp_secret_skips_only_the_erp(env: Env, capsys, monkeypatch):
    monkeypatch.delenv("SYNCD_TEST_NO_SUCH_VAR", raising=False)
    env.write_config(erp='password = "env:SYNCD_TEST_NO_SUCH_VAR"')
    code, out, err = env.cli(capsys, "check")
    assert code == 2, out + err
    flat = " ".join(out.split())
    assert "authenticated" in out  # the shop rows ran
    assert ("new account mail" if env.kit.kind == "woocommerce" else "Storefront") in out
    assert "skipped: secret erp.password" in flat
    assert "Adressen.Sel5" not in out and "erp.columns.email" not in out  # these need the ERP password
    assert "SYNCD_TEST_NO_SUCH_VAR" in flat and "not set" in flat
