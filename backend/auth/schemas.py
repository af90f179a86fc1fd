"""API shapes for sign-up, login, sessions and tokens."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from backend.auth.models import UserRole

# Deliberately loose: the address is only a login name; nothing is mailed to it.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.-]{1,38}[A-Za-z0-9]$"


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=10, max_length=256)
    # Public pseudonym; one is generated when left out. Never use a real name here.
    display_name: str | None = Field(default=None, pattern=NAME_PATTERN)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: str = Field(max_length=256)


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


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class TokenRead(BaseModel):
    """A new bearer token; the secret is shown once and only its digest is kept."""

    id: int
    name: str
    token: str
    expires_at: datetime | None
