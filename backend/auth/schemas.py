"""API shapes for sign-up, login, sessions and tokens."""

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from backend.auth.models import UserRole
from backend.core.validation import InputModel

# Deliberately loose: the address is only a login name; nothing is mailed to it.
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{1,38}[A-Za-z0-9]$")
MIN_PASSWORD = 10


class SignupIn(InputModel):
    email: str = Field(max_length=254, examples=["ada@example.org"])
    password: str = Field(min_length=MIN_PASSWORD, max_length=256)
    # Public pseudonym; one is generated when left out. Never use a real name here.
    display_name: str | None = Field(default=None, max_length=40)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL_PATTERN.match(value):
            raise PydanticCustomError("email", "Enter an email address like name@example.org")
        return value

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
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    display_name: str
    role: UserRole
    created_at: datetime


class MeRead(UserRead):
    email: str


class SessionRead(BaseModel):
    """A new browser session: the user, plus the CSRF token unsafe requests must echo."""

    user: MeRead
    csrf_token: str
    expires_at: datetime


class TokenCreate(InputModel):
    name: str = Field(min_length=1, max_length=100)
    # Every token expires; a year at most.
    expires_in_days: int = Field(default=90, ge=1, le=365)


class TokenInfo(BaseModel):
    """A bearer token as listed to its owner (the secret is never shown again)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    expires_at: datetime


class TokenRead(TokenInfo):
    """A new bearer token; the secret is shown once and only its digest is kept."""

    token: str
