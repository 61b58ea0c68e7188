"""Which channel a customer is messaged on, and the phone-number rule (each business rule once).

Pure: no I/O. ``plan_channels`` turns a customer's choice (``[erp.columns] preferred_channel``,
else ``[messages] default_channel``) and contact data into the deliveries to make, with a clear
reason for each channel that cannot be used. Phone numbers are normalised to E.164 with
``phonenumbers`` (Google's libphonenumber metadata), the address's country as the region for
numbers written without a country code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import phonenumbers

from syncd.core.rules import email_problem

ChannelName = Literal["email", "sms", "both", "none"]
CHANNELS: tuple[str, ...] = ("email", "sms", "both", "none")

# What an ERP's free text field may say, German and English, case and blanks ignored.
_SPELLINGS = {
    "email": "email", "e-mail": "email", "mail": "email", "e_mail": "email",
    "sms": "sms", "text": "sms", "mobil": "sms", "mobile": "sms",
    "both": "both", "beide": "both", "e-mail+sms": "both", "email+sms": "both", "sms+e-mail": "both",
    "none": "none", "keine": "none", "kein": "none", "nein": "none", "no": "none",
}


class ChannelProblem(ValueError):
    """A customer's preferred channel the rule does not understand."""


def parse_channel(value: object) -> ChannelName | None:
    """The channel an ERP value names; None for an empty value (use the default)."""
    if value is None:
        return None
    text = str(value).strip().lower().replace(" ", "")
    if not text:
        return None
    found = _SPELLINGS.get(text)
    if found is None:
        raise ChannelProblem(
            f"unknown preferred channel {str(value)!r} (allowed: e-mail, SMS, both/beide, none/keine)")
    return found  # type: ignore[return-value]


def e164(raw: object, country: str | None, default_region: str = "DE") -> str:
    """``raw`` as an E.164 number (``+4917012345678``); raises ValueError saying why it is
    unusable. ``country`` (ISO alpha-2, the address's) is the region of a national number."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise ValueError("no mobile number / keine Mobilnummer")
    region = (country or default_region or "DE").upper()
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"unusable mobile number {text!r}: {exc._msg}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"unusable mobile number {text!r}: not a valid number for {region}")
    kind = phonenumbers.number_type(parsed)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise ValueError(f"unusable mobile number {text!r}: not a mobile number / keine Mobilnummer")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Delivery:
    channel: Literal["email", "sms"]
    to: str
    fallback: bool = False  # an e-mail sent because the SMS could not be


@dataclass(frozen=True)
class ChannelPlan:
    chosen: ChannelName
    deliveries: tuple[Delivery, ...]
    problems: tuple[str, ...] = ()  # per channel that could not be used: why

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def plan_channels(
    *,
    wanted: ChannelName,
    email: str | None,
    mobile: str | None,
    country: str | None,
    default_region: str = "DE",
    sms_enabled: bool = True,
    fallback_to_email: bool = True,
    sms_unavailable: str | None = None,
) -> ChannelPlan:
    """The deliveries for one message. An SMS that cannot go out (channel off, no or unusable
    number, or the caller's ``sms_unavailable`` reason) is a problem; with ``fallback_to_email``
    the customer gets the e-mail instead, unless an e-mail is going anyway (``both``)."""
    deliveries: list[Delivery] = []
    problems: list[str] = []
    if wanted == "none":
        return ChannelPlan(wanted, (), ("the customer chose no messages / keine Nachrichten gewünscht",))
    mail_problem = email_problem(email)
    if wanted in ("email", "both"):
        if mail_problem is None:
            deliveries.append(Delivery("email", str(email).strip()))
        else:
            problems.append(f"e-mail: {mail_problem}")
    if wanted in ("sms", "both"):
        try:
            if not sms_enabled:
                raise ValueError("the SMS channel is off ([sms] enabled = false)")
            if sms_unavailable:  # the caller's reason why this message cannot go by SMS
                raise ValueError(sms_unavailable)
            deliveries.append(Delivery("sms", e164(mobile, country, default_region)))
        except ValueError as exc:
            problems.append(f"sms: {exc}")
            if wanted == "sms" and fallback_to_email:
                if mail_problem is None:
                    deliveries.append(Delivery("email", str(email).strip(), fallback=True))
                else:
                    problems.append(f"e-mail fallback: {mail_problem}")
    return ChannelPlan(wanted, tuple(deliveries), tuple(problems))
