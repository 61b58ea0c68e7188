"""Log in as customer ("imitate customer", Shopware 6.6.5.0+; shopware-notes §10).

The shop's own mechanism, as the Administration uses it:

1. an Administration *user* logs in (``grant_type=password``, ``client_id=administration``): the
   token route refuses an integration, it records which user imitates the customer;
2. ``GET /api/_info/me``: that user's id;
3. ``POST /api/_proxy/generate-imitate-customer-token`` ``{customerId, salesChannelId}`` (ACL
   ``api_proxy_imitate-customer``) -> ``{"token"}``, valid 3600 s for that sales channel,
   customer and user;
4. the browser POSTs ``token``, ``customerId``, ``userId`` to the storefront's
   ``/account/login/imitate-customer`` and has the customer's session.

The user's access token and the imitation token are registered with the redaction point while
held and never logged; errors name the step and the shop's error code, never a token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests

from syncd.core import redaction
from syncd.core.domain import StorefrontLogin
from syncd.core.errors import PermanentError, TransientError
from syncd.core.rules import LOGIN_AS_UNSUPPORTED
from syncd.core.text import connection_reason

from .http import ShopwareHttp, describe_errors
from .metadata import ShopMetadata
from .versions import VersionTraits

SINCE = (6, 6, 5, 0)
TOKEN_LIFETIME = timedelta(seconds=3600)  # ImitateCustomerTokenGenerator::TOKEN_LIFETIME
STOREFRONT_ROUTE = "/account/login/imitate-customer"
ACL = "api_proxy_imitate-customer"
UNSUPPORTED = LOGIN_AS_UNSUPPORTED


def refusal(traits: VersionTraits) -> str | None:
    """Why this shop cannot log staff in as a customer; None when it can."""
    if traits.parts < SINCE:
        return (f"Shopware {traits.version} has no 'log in as customer' (it came with 6.6.5.0) / "
                f"Shopware {traits.version} kann sich nicht als Kunde anmelden (erst ab 6.6.5.0)")
    return None


class Imitation:
    def __init__(self, http: ShopwareHttp, storefront: Callable[[], str],
                 metadata: Callable[[], ShopMetadata]) -> None:
        self.http = http
        self.storefront = storefront
        self.metadata = metadata

    def login(self, traits: VersionTraits, customer_id: str, username: str, password: str,
              now: datetime) -> StorefrontLogin:
        if (why := refusal(traits)) is not None:
            raise PermanentError(why, code=UNSUPPORTED)
        redaction.register(password)
        token = self._user_token(username, password)
        try:
            me = self._call("GET", "/api/_info/me", None, token, "read the staff user")
            user_id = str(((me or {}).get("data") or me or {}).get("id") or "")
            if not user_id:
                raise PermanentError(f"the shop did not say which user {username!r} is (GET /api/_info/me)")
            body = {"customerId": customer_id, "salesChannelId": self.metadata().sales_channel_id}
            answer = self._call("POST", "/api/_proxy/generate-imitate-customer-token", body, token,
                                "get a login-as token")
            imitation = str((answer or {}).get("token") or "")
            if not imitation:
                raise PermanentError("the shop answered the login-as token request without a token")
            redaction.register(imitation)
        finally:
            redaction.unregister(token)
        return StorefrontLogin(
            action=self.storefront().rstrip("/") + STOREFRONT_ROUTE,
            fields={"token": imitation, "customerId": customer_id, "userId": user_id},
            valid_until=now + TOKEN_LIFETIME, staff_user=username,
        )

    def _user_token(self, username: str, password: str) -> str:
        body = {"grant_type": "password", "client_id": "administration", "scopes": "write",
                "username": username, "password": password}
        data, status = self._request("POST", "/api/oauth/token", body, None, "log in the staff user")
        if status == 200 and isinstance(data, dict) and data.get("access_token"):
            token = str(data["access_token"])
            redaction.register(token)
            return token
        text, code = describe_errors(data)
        raise PermanentError(
            f"the shop refused the login of staff user {username!r} (platforms[].login_as_user / "
            f"login_as_password; HTTP {status}): {text}", code=code)

    def _call(self, method: str, path: str, body: Any, token: str, step: str) -> Any:
        data, status = self._request(method, path, body, token, step)
        if 200 <= status < 300:
            return data
        text, code = describe_errors(data)
        if status == 403 and code == "FRAMEWORK__MISSING_PRIVILEGE_ERROR":
            raise PermanentError(f"the staff user may not {step}: it needs the permission {ACL!r} "
                                 "(Settings > Users & permissions) / dem Benutzer fehlt die Berechtigung",
                                 code=code)
        raise PermanentError(f"shop {method} {path} ({step}) answered {status}: {text}", code=code)

    def _request(self, method: str, path: str, body: Any, token: str | None, step: str) -> tuple[Any, int]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            resp = self.http.session.request(method, self.http.base_url + path, json=body, headers=headers,
                                             timeout=self.http.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"shop {method} {path} ({step}): connection failed "
                                 f"({connection_reason(redaction.redact(str(exc)))})") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"shop {method} {path} ({step}) answered {resp.status_code}")
        return ShopwareHttp._decode(resp), resp.status_code
