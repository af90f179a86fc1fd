"""Accounts (pseudonymous volunteers, experts, ML engineers, admins) and their credentials."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type, timestamp_field


class UserRole(StrEnum):
    volunteer = "volunteer"
    expert = "expert"
    engineer = "engineer"
    admin = "admin"


# Roles that may see restricted cases and expert reference masks.
EXPERT_ROLES = frozenset({UserRole.expert, UserRole.admin})


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    # A login name only (nothing is mailed to it), and optional: a volunteer may sign up and
    # log in with the pseudonym alone.
    email: str | None = Field(default=None, max_length=254, unique=True, index=True)
    # Public pseudonym shown on leaderboards; never the email.
    display_name: str = Field(max_length=40, unique=True)
    password_hash: str = Field(max_length=255)
    role: UserRole = Field(default=UserRole.volunteer, sa_type=enum_type(UserRole))
    is_active: bool = True
    created_at: datetime = created_at_field()
    # The consent text the person accepted (``backend.auth.consent.VERSION``) and when;
    # volunteers lease tasks only under the current version.
    consent_version: str | None = Field(default=None, max_length=32)
    consent_at: datetime | None = timestamp_field(nullable=True)
    # When the account was erased at its owner's request (GDPR): the row stays, pseudonymised
    # (no login name, no password), so its id is never handed to someone else.
    erased_at: datetime | None = timestamp_field(nullable=True)


class TokenScope(StrEnum):
    """What a bearer token may do (browser sessions may do everything their role allows)."""

    tasks = "tasks"  # lease, submit, skip and report tasks (POST /api/tasks/...)
    read = "read"  # every GET
    manage = "manage"  # staff changes: projects, gold, raters, rounds, reports (other POSTs)
    releases = "releases:read"  # list, inspect and download label releases (GET /api/releases)


# What a token created without scopes may do: a volunteer's labelling script.
DEFAULT_SCOPES = (TokenScope.tasks, TokenScope.read)


class CredentialKind(StrEnum):
    session = "session"  # browser cookie; unsafe requests also need the CSRF token
    token = "token"  # bearer token for scripts; no CSRF (never sent automatically by browsers)


class Credential(SQLModel, table=True):
    """A login session or an API token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "credentials"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    kind: CredentialKind = Field(sa_type=enum_type(CredentialKind))
    secret_sha256: str = Field(max_length=64, unique=True, index=True)
    csrf_token: str | None = Field(default=None, max_length=64)
    name: str = Field(default="", max_length=100)
    # A token's scopes, space-separated (``TokenScope`` values); None for browser sessions.
    scopes: str | None = Field(default=None, max_length=100)
    created_at: datetime = created_at_field()
    expires_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)


class AuthThrottle(SQLModel, table=True):
    """Failed logins (or sign-ups) counted per key: an account, a client address or a device.

    Kept in the database so every server process sees the same counts. Keys name what they
    count (``login:acct:<digest of the email>``, ``login:addr:<ip>``, ``login:dev:<user>:<id>``,
    ``signup:addr:<ip>``); account keys exist for unknown emails too, so the throttle answers
    the same whether or not an account exists.
    """

    __tablename__ = "auth_throttle"

    key: str = Field(primary_key=True, max_length=100)
    failures: int = Field(default=0, ge=0)
    window_started_at: datetime = timestamp_field()
    last_failure_at: datetime = timestamp_field()
    blocked_until: datetime | None = timestamp_field(nullable=True)
