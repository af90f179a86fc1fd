"""API shapes for sign-up, login, sessions and tokens."""

import re
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from backend.auth.models import TokenScope, UserRole
from backend.auth.names import normalise_name
from backend.core.validation import InputModel

# Deliberately loose: the address is only a login name; nothing is mailed to it.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{1,38}[A-Za-z0-9]$")
MIN_PASSWORD = 10


def _normalised_name(value: Any) -> Any:
    return normalise_name(value) if isinstance(value, str) else value


# A pseudonym as typed, normalised (NFC, no invisible or direction-changing characters) before
# its checks: "Ada\u200b" is "Ada", and logs in as "Ada".
Pseudonym = Annotated[str, BeforeValidator(_normalised_name)]


class SignupIn(InputModel):
    """An email, a pseudonym, or both: either serves as the login name (nothing is mailed to
    the email; it only helps an admin find the account)."""

    email: str | None = Field(default=None, max_length=254, examples=["ada@example.org"])
    password: str = Field(min_length=MIN_PASSWORD, max_length=256)
    # Public pseudonym; one is generated when left out (then the email is needed to log in).
    # Never use a real name here.
    display_name: Pseudonym | None = Field(default=None, max_length=40)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise PydanticCustomError("email", "Enter an email address like name@example.org")
        return value

    @model_validator(mode="after")
    def _login_name(self) -> Self:
        if self.email is None and self.display_name is None:
            raise PydanticCustomError(
                "login_name", "Choose a pseudonym (or give an email) to log in with"
            )
        return self

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.match(value):
            raise PydanticCustomError(
                "display_name",
                "Use 3 to 40 letters, digits, spaces, '_', '.' or '-', "
                "starting and ending with a letter or digit",
            )
        return value


class LoginIn(InputModel):
    """Log in with the email or with the pseudonym (exactly one of them)."""

    email: str | None = Field(default=None, min_length=1, max_length=254)
    display_name: Pseudonym | None = Field(default=None, min_length=1, max_length=40)
    password: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_login_name(self) -> Self:
        if (self.email is None) == (self.display_name is None):
            raise PydanticCustomError(
                "login_name", "Give your email or your pseudonym (one of them)"
            )
        return self

    @property
    def login_name(self) -> str:
        return self.email if self.email is not None else f"{self.display_name}"


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    display_name: str
    role: UserRole
    created_at: datetime


class MeRead(UserRead):
    email: str | None
    consent_version: str | None
    consent_at: datetime | None
    # Whether the accepted consent is the current one (volunteers need it to get tasks).
    consent_current: bool


class ConsentRead(BaseModel):
    version: str
    title: str
    points: list[str]


class ConsentIn(InputModel):
    # The version shown to the person (GET /api/auth/consent): accepting an old text is refused.
    version: str = Field(min_length=1, max_length=32)


class SessionRead(BaseModel):
    """A new browser session: the user, plus the CSRF token unsafe requests must echo."""

    user: MeRead
    csrf_token: str
    expires_at: datetime


class TokenCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    # Every token expires; a year at most.
    expires_in_days: int = Field(default=90, ge=1, le=365)
    scopes: list[TokenScope] | None = Field(
        default=None,
        max_length=len(TokenScope),
        description="What the token may do: tasks (lease, submit, skip, report), read (GET), "
        "manage (staff changes), releases:read (list, inspect and download label releases). "
        "Left out or empty: tasks and read.",
    )


def _scope_list(value: Any) -> Any:
    return value.split() if isinstance(value, str) else value


class TokenInfo(BaseModel):
    """A bearer token as listed to its owner (the secret is never shown again)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scopes: Annotated[list[TokenScope], BeforeValidator(_scope_list)]
    created_at: datetime
    expires_at: datetime


class TokenRead(TokenInfo):
    """A new bearer token; the secret is shown once and only its digest is kept."""

    token: str
