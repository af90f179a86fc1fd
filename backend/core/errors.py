"""Domain errors carry their HTTP status; one handler in ``backend.main`` maps them.

Every error answer has the same JSON shape, ``ErrorRead``: a human-readable ``detail`` and, for
invalid input, one entry per offending field. Submitted values are never echoed back.
"""

import re
from typing import Any

from pydantic import BaseModel, Field


def snake_case(name: str) -> str:
    """``RaterSuspended`` -> ``rater_suspended``: an error class's machine-readable code."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class DomainError(Exception):
    """Base class for errors that services raise and the API reports as JSON.

    ``code`` is the machine-readable reason clients branch on (``rater_suspended``,
    ``consent_required``); by default the class name in snake case.
    """

    status_code = 400
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        href: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.code = code or type(self).code or snake_case(type(self).__name__)
        self.href = href


class SchemaNotCurrent(DomainError):
    """The database schema is not at the revision this code expects."""

    status_code = 503


class NotFound(DomainError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    status_code = 404


class Conflict(DomainError):
    """The request clashes with the current state (already done, lease gone, duplicate)."""

    status_code = 409


class NotAuthenticated(DomainError):
    """No valid session cookie or bearer token."""

    status_code = 401


class PermissionDenied(DomainError):
    """Signed in, but the role does not allow this."""

    status_code = 403


class TooManyAttempts(DomainError):
    """Slow down: too many attempts; ``Retry-After`` says for how long."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class ServiceBusy(DomainError):
    """The server is at capacity for this kind of work; retry after ``Retry-After`` seconds."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class InvalidInput(DomainError):
    """Well-formed JSON whose content cannot be accepted (a bad mask, a bad folder)."""

    status_code = 422


class FieldError(BaseModel):
    """One invalid part of a request: where (``["body", "email"]``), what, and an error code."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorRead(BaseModel):
    """Every error answer: a sentence for people, a machine-readable ``code``, plus per-field
    errors for invalid input."""

    detail: str
    code: str = "error"
    errors: list[FieldError] = []
    # Where to go to put it right (the tutorial, for ``qualification_required``); left out
    # when there is no such place.
    href: str | None = Field(default=None, exclude_if=lambda value: value is None)


_DESCRIPTIONS = {
    400: "The request body could not be parsed",
    401: "Not signed in, or the session or token has ended",
    403: "Signed in but not allowed (role, token use, or a missing X-CSRF-Token header)",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The request body is too large",
    415: "The body must be JSON (Content-Type: application/json)",
    422: "Invalid input; `errors` names each offending field (values are never echoed)",
    429: "Too many attempts; retry after the `Retry-After` header's seconds",
    503: "At capacity or unavailable; retry after the `Retry-After` header's seconds",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error codes, each with the ``ErrorRead`` body.

    ``descriptions`` override the generic text, keyed ``e409="..."``.
    """
    return {
        code: {"model": ErrorRead, "description": descriptions.get(f"e{code}", _DESCRIPTIONS[code])}
        for code in codes
    }
