"""Shopware's JSON error format (``ErrorResponseFactory``): ``{"errors": [...]}``.

Constraint codes are Symfony's constraint UUIDs, as the real DAL returns them.
"""

from __future__ import annotations

from typing import Any

NOT_BLANK = "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
TOO_LONG = "d94b19cc-114f-4f44-9cc4-4138e80a87b9"
TOO_SHORT = "9ff3fdc4-b214-49db-8718-39c315e33d45"
INVALID_EMAIL = "bd79c0ab-ddba-46cc-a703-a7a4b08de310"
INVALID_TYPE = "ba785a8c-82cb-4283-967c-3cf342181b40"
NO_SUCH_CHOICE = "8e179f1b-97aa-4560-a02f-2a8b42e49df7"
EMAIL_NOT_UNIQUE = "79d30fe0-febf-421e-ac9b-1bfd5c9007f7"
INVALID_UUID = "FRAMEWORK__INVALID_UUID"
UNEXPECTED_FIELD = "FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR"
WRITE_PROTECTED = "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION"


class ApiError(Exception):
    """Raised anywhere in request handling; the server renders it as Shopware does."""

    def __init__(self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None):
        super().__init__(errors[0].get("detail", "") if errors else "")
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def error(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    parameters: dict[str, Any] | None = None,
    pointer: str | None = None,
    template: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": str(status), "code": code}
    if title is not None:
        entry["title"] = title
    entry["detail"] = detail
    if template is not None:
        entry["template"] = template
    entry["meta"] = {"parameters": parameters or {}}
    if pointer is not None:
        entry["source"] = {"pointer": pointer}
    return entry


def title(status: int) -> str | None:
    return _TITLES.get(status)


def simple(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    parameters: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ApiError:
    return ApiError(
        status,
        [error(status, code, detail, title=title or _TITLES.get(status), parameters=parameters)],
        headers,
    )


def violation(
    pointer: str,
    code: str,
    detail: str,
    template: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One DAL write violation (400), pointing at the offending field of the payload."""
    return error(400, code, detail, template=template or detail, parameters=parameters, pointer=pointer)


def not_blank(pointer: str) -> dict[str, Any]:
    return violation(
        pointer, NOT_BLANK, "This value should not be blank.", parameters={"{{ value }}": "null"}
    )


def too_long(pointer: str, value: str, limit: int) -> dict[str, Any]:
    return violation(
        pointer,
        TOO_LONG,
        f"This value is too long. It should have {limit} characters or less.",
        "This value is too long. It should have {{ limit }} character or less."
        "|This value is too long. It should have {{ limit }} characters or less.",
        {"{{ value }}": f'"{value}"', "{{ limit }}": limit},
    )


def too_short(pointer: str, limit: int) -> dict[str, Any]:
    # The value is a password here: never echo it back.
    return violation(
        pointer,
        TOO_SHORT,
        f"This value is too short. It should have {limit} characters or more.",
        "This value is too short. It should have {{ limit }} character or more."
        "|This value is too short. It should have {{ limit }} characters or more.",
        {"{{ limit }}": limit},
    )


def invalid_email(pointer: str, value: str) -> dict[str, Any]:
    return violation(
        pointer,
        INVALID_EMAIL,
        "This value is not a valid email address.",
        parameters={"{{ value }}": f'"{value}"'},
    )


def invalid_type(pointer: str, expected: str) -> dict[str, Any]:
    return violation(
        pointer,
        INVALID_TYPE,
        f"This value should be of type {expected}.",
        "This value should be of type {{ type }}.",
        {"{{ type }}": expected},
    )


def no_such_choice(pointer: str, value: Any) -> dict[str, Any]:
    return violation(
        pointer,
        NO_SUCH_CHOICE,
        "The value you selected is not a valid choice.",
        parameters={"{{ value }}": f'"{value}"'},
    )


def invalid_uuid(pointer: str, value: Any) -> dict[str, Any]:
    return violation(
        pointer,
        INVALID_UUID,
        f"Value is not a valid UUID: {value}",
        "Value is not a valid UUID: {{ input }}",
        {"input": str(value)},
    )


def unexpected_field(pointer: str, field: str) -> dict[str, Any]:
    return violation(
        pointer,
        UNEXPECTED_FIELD,
        f"Unexpected field: {field}",
        "Unexpected field: {{ field }}",
        {"field": field},
    )


def write_protected(pointer: str) -> dict[str, Any]:
    return violation(
        pointer,
        WRITE_PROTECTED,
        'This field is write-protected. (Got: "crud" scope and "system" is required)',
    )


def email_not_unique(pointer: str, email: str) -> dict[str, Any]:
    return violation(
        pointer,
        EMAIL_NOT_UNIQUE,
        f"The email address {email} is already in use.",
        "The email address {{ email }} is already in use.",
        {"{{ email }}": email},
    )


def foreign_key_failure(table: str, column: str, target: str) -> ApiError:
    """An id that points nowhere is not validated by the DAL: MySQL refuses the row and the
    shop answers 500 (see notes §4 "Unknown FK ids"). The whole write is rolled back."""
    detail = (
        "An exception occurred while executing a query: SQLSTATE[23000]: Integrity constraint "
        "violation: 1452 Cannot add or update a child row: a foreign key constraint fails "
        f"(`shopware`.`{table}`, CONSTRAINT `fk.{table}.{column}` FOREIGN KEY (`{column}`) "
        f"REFERENCES `{target}` (`id`) ON DELETE RESTRICT ON UPDATE CASCADE)"
    )
    return ApiError(500, [error(500, "0", detail, title="Internal Server Error")])


def duplicate_entry(value: str, key: str) -> ApiError:
    """A unique key of the table refuses the row: MySQL's 1062, a 500 from the shop."""
    detail = (
        "An exception occurred while executing a query: SQLSTATE[23000]: Integrity constraint "
        f"violation: 1062 Duplicate entry '{value}' for key '{key}'"
    )
    return ApiError(500, [error(500, "0", detail, title="Internal Server Error")])


def restrict_delete(table: str, column: str) -> ApiError:
    """Deleting a row another row still references (ON DELETE RESTRICT): a 500 from MySQL."""
    detail = (
        "An exception occurred while executing a query: SQLSTATE[23000]: Integrity constraint "
        "violation: 1451 Cannot delete or update a parent row: a foreign key constraint fails "
        f"(`shopware`.`{table}`, CONSTRAINT `fk.{table}.{column}`)"
    )
    return ApiError(500, [error(500, "0", detail, title="Internal Server Error")])


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
