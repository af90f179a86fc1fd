"""Accounts and credentials: sign-up, password login, sessions, bearer tokens."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from backend.auth.models import Credential, CredentialKind, User, UserRole
from backend.core import security
from backend.core.errors import Conflict, DomainError, NotAuthenticated, TooManyAttempts
from backend.core.timeutil import utcnow

_ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "deft",
    "eager",
    "fleet",
    "gentle",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quiet",
    "rapid",
    "steady",
    "sunny",
    "vivid",
    "wise",
    "zesty",
)
_ANIMALS = (
    "otter",
    "heron",
    "lynx",
    "finch",
    "badger",
    "marten",
    "wren",
    "ibex",
    "gecko",
    "puffin",
    "osprey",
    "tapir",
    "koala",
    "bison",
    "egret",
    "newt",
    "vole",
    "crane",
)


def _pseudonym(session: Session) -> str:
    for _ in range(20):
        name = (
            f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_ANIMALS)}-"
            f"{secrets.randbelow(10_000):04d}"
        )
        if session.exec(select(User.id).where(User.display_name == name)).first() is None:
            return name
    return f"rater-{secrets.token_hex(6)}"


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively."""
    return email.strip().lower()


def create_user(
    *,
    session: Session,
    email: str,
    password: str,
    role: UserRole = UserRole.volunteer,
    display_name: str | None = None,
) -> User:
    """A new active account; ``Conflict`` when the email or pseudonym is taken."""
    email = normalise_email(email)
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("An account with this email already exists")
    if display_name is not None:
        taken = select(User.id).where(func.lower(User.display_name) == display_name.lower())
        if session.exec(taken).first() is not None:
            raise Conflict(f"The display name {display_name!r} is taken")
    user = User(
        email=email,
        display_name=display_name or _pseudonym(session),
        password_hash=security.hash_password(password),
        role=role,
    )
    session.add(user)
    session.flush()
    return user


# Password guessing: after this many failures in a row, logins wait LOCKOUT.
MAX_FAILED_LOGINS = 10
LOCKOUT = timedelta(minutes=15)
# Verified against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = security.hash_password("mscrowd-no-such-user")


@dataclass(frozen=True)
class LoginAttempt:
    """The outcome of a password check. A failure is returned, not raised, so that the caller's
    transaction still commits the failure count."""

    user: User | None
    error: DomainError | None


def authenticate(
    *, session: Session, email: str, password: str, now: datetime | None = None
) -> LoginAttempt:
    """Check a password, counting failures and locking the account after too many."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.email == normalise_email(email))).first()
    if user is None:
        security.verify_password(_DUMMY_HASH, password)
        return LoginAttempt(None, NotAuthenticated("Wrong email or password"))
    if user.locked_until is not None and user.locked_until > now:
        minutes = max(1, round((user.locked_until - now).total_seconds() / 60))
        return LoginAttempt(
            None, TooManyAttempts(f"Too many failed logins; try again in {minutes} min")
        )
    if not security.verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.failed_logins = 0
            user.locked_until = now + LOCKOUT
        session.add(user)
        return LoginAttempt(None, NotAuthenticated("Wrong email or password"))
    if not user.is_active:
        return LoginAttempt(None, NotAuthenticated("This account is disabled"))
    user.failed_logins = 0
    user.locked_until = None
    if security.needs_rehash(user.password_hash):
        user.password_hash = security.hash_password(password)
    session.add(user)
    return LoginAttempt(user, None)


def _issue(
    *, session: Session, user: User, kind: CredentialKind, name: str, lifetime: timedelta | None
) -> tuple[str, Credential]:
    secret = security.new_secret()
    assert user.id is not None
    credential = Credential(
        user_id=user.id,
        kind=kind,
        secret_sha256=security.digest(secret),
        csrf_token=security.new_secret() if kind is CredentialKind.session else None,
        name=name,
        expires_at=utcnow() + lifetime if lifetime is not None else None,
    )
    session.add(credential)
    session.flush()
    return secret, credential


def open_session(*, session: Session, user: User, hours: float) -> tuple[str, Credential]:
    """A browser session: the cookie secret and its stored record (with the CSRF token)."""
    return _issue(
        session=session,
        user=user,
        kind=CredentialKind.session,
        name="browser",
        lifetime=timedelta(hours=hours),
    )


def issue_token(
    *, session: Session, user: User, name: str, days: int | None
) -> tuple[str, Credential]:
    """A bearer token for scripts; the secret is returned once."""
    lifetime = timedelta(days=days) if days is not None else None
    return _issue(
        session=session, user=user, kind=CredentialKind.token, name=name, lifetime=lifetime
    )


def resolve(
    *, session: Session, secret: str, kind: CredentialKind, now: datetime | None = None
) -> tuple[User, Credential]:
    """The user and credential behind a secret; ``NotAuthenticated`` when invalid or expired."""
    now = now or utcnow()
    row = session.exec(
        select(Credential, User)
        .join(User, User.id == Credential.user_id)  # type: ignore[arg-type]
        .where(Credential.secret_sha256 == security.digest(secret), Credential.kind == kind)
    ).first()
    if row is None:
        raise NotAuthenticated("Not signed in, or the session has ended")
    credential, user = row
    expires = credential.expires_at
    if credential.revoked_at is not None or (expires is not None and expires <= now):
        raise NotAuthenticated("The session or token has expired; sign in again")
    if not user.is_active:
        raise NotAuthenticated("This account is disabled")
    return user, credential


def revoke(*, session: Session, credential: Credential) -> None:
    """End a session or withdraw a token."""
    credential.revoked_at = utcnow()
    session.add(credential)
