"""Accounts: sign-up, password login, consent, and who is calling (sessions and bearer tokens
are issued in ``backend.auth.tokens``).

Password hashing runs between short transactions, never inside one: an argon2 hash takes tens
of milliseconds, and a database connection held across it is one the rest of the app waits for.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine, Select, bindparam, func, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.audit import service as audit
from backend.audit.models import AuditAction
from backend.auth import consent, throttle
from backend.auth.models import Credential, CredentialKind, User, UserRole
from backend.auth.names import check_pseudonym, normalise_name, random_pseudonym
from backend.auth.tokens import SessionRequired, open_session
from backend.core import security
from backend.core.db import table_of, transaction
from backend.core.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    TooManyAttempts,
)
from backend.core.security import HashingGate
from backend.core.timeutil import utcnow


def _pseudonym(session: Session) -> str:
    for _ in range(20):
        name = random_pseudonym()
        if session.exec(select(User.id).where(User.display_name == name)).first() is None:
            return name
    return f"rater-{secrets.token_hex(6)}"


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively."""
    return email.strip().lower()


def find_user(session: Session, login_name: str) -> User | None:
    """The account with this login email or (a name without '@') pseudonym, if any;
    pseudonyms compare case-insensitively, as their uniqueness does."""
    if "@" in login_name:
        return session.exec(select(User).where(User.email == normalise_email(login_name))).first()
    name = normalise_name(login_name).lower()
    return session.exec(select(User).where(func.lower(User.display_name) == name)).first()


def account_key(user: User) -> str:
    """The throttle key of an account's failed logins, whichever login name was used."""
    return throttle.account_key(user.email or f"name:{user.display_name.lower()}")


def unknown_key(login_name: str) -> str:
    """The throttle key of an unknown login name (emails and pseudonyms apart)."""
    if "@" in login_name:
        return throttle.account_key(normalise_email(login_name))
    return throttle.account_key(f"name:{normalise_name(login_name).lower()}")


def give_consent(
    *,
    session: Session,
    user: User,
    version: str,
    kind: CredentialKind = CredentialKind.session,
    now: datetime | None = None,
) -> None:
    """Record that ``user`` accepted the consent text ``version`` (the current one only).

    Only from a browser session (``kind``), where the person reads the text: a script's
    token cannot agree on their behalf.
    """
    if kind is not CredentialKind.session:
        raise SessionRequired("Consent is given in the browser, after reading it; not by a token")
    if version != consent.VERSION:
        raise Conflict(
            f"The consent text has changed (now version {consent.VERSION}); "
            "reload the page and read it again"
        )
    user.consent_version = version
    user.consent_at = now or utcnow()
    session.add(user)
    audit.record(
        session,
        AuditAction.consent_change,
        object_type="user",
        object_id=user.id or 0,
        actor=user,
        detail={"consent_version": version},
        now=user.consent_at,
    )
    session.flush()


def create_user(
    *,
    session: Session,
    email: str | None,
    password: str | None = None,
    password_hash: str | None = None,
    role: UserRole = UserRole.volunteer,
    display_name: str | None = None,
) -> User:
    """A new active account from a password or its hash; ``Conflict`` when the email or
    pseudonym is taken."""
    if (password is None) == (password_hash is None):
        raise ValueError("give exactly one of password and password_hash")
    if email is not None:
        email = normalise_email(email)
        if session.exec(select(User.id).where(User.email == email)).first() is not None:
            raise Conflict("An account with this email already exists")
    if display_name is not None:
        display_name = normalise_name(display_name)
        taken = select(User.id).where(func.lower(User.display_name) == display_name.lower())
        if session.exec(taken).first() is not None:
            raise Conflict(f"The display name {display_name!r} is taken")
    user = User(
        email=email,
        display_name=display_name or _pseudonym(session),
        password_hash=password_hash or security.hash_password(password or ""),
        role=role,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent sign-up won the race for the email or name
        raise Conflict("An account with this email or display name already exists") from exc
    if user.role is not UserRole.volunteer:
        audit.record(
            session,
            AuditAction.role_change,
            object_type="user",
            object_id=user.id or 0,
            detail={"role": user.role.value, "change": "created with the role"},
        )
    return user


# Verified against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = security.hash_password("mscrowd-no-such-user")
DEVICE_COOKIE_DAYS = 365


def device_cookie(secret_key: str, user_id: int, device_id: str | None = None) -> str:
    """A signed cookie saying "this browser signed in to ``user_id``" (a new device id if none)."""
    device_id = device_id or secrets.token_urlsafe(16)
    return f"{device_id}.{security.sign(secret_key, f'device:{device_id}:{user_id}')[:32]}"


def trusted_device(secret_key: str, user_id: int, cookie: str | None) -> str | None:
    """The device id in ``cookie`` when it is validly signed for ``user_id``, else None."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 100:
        return None
    device_id, _mac = cookie.split(".")
    expected = device_cookie(secret_key, user_id, device_id)
    return device_id if security.same(cookie, expected) else None


@dataclass(frozen=True)
class LoginOK:
    """A successful sign-in: the user, the new session, and the browser's device cookie."""

    user: User
    secret: str
    credential: Credential
    device_cookie: str


def _refuse_if_waiting(wait: int, reason: str) -> None:
    if wait:
        raise TooManyAttempts(f"{reason}; try again in {wait} s", retry_after=wait)


def login(
    *,
    engine: Engine,
    gate: HashingGate,
    login_name: str,
    password: str,
    address: str,
    device: str | None,
    secret_key: str,
    policy: throttle.Policy,
    session_hours: float,
    now: datetime | None = None,
) -> LoginOK:
    """Check a password under throttling; ``NotAuthenticated`` or ``TooManyAttempts`` if not.

    ``login_name``: the email or the pseudonym. Unknown names, wrong passwords and throttled
    keys answer alike whether or not the account exists: unknown names are verified against a
    dummy hash and counted on their own key; an account's two names count on one key.
    """
    now = now or utcnow()
    with transaction(engine) as session:
        user = find_user(session, login_name)
        user_id = user.id if user is not None else None
        password_hash = user.password_hash if user is not None else _DUMMY_HASH
        device_id = trusted_device(secret_key, user_id, device) if user_id is not None else None
        # Each key counted, with the failures it may make before delays start.
        counted = [(throttle.address_key(address), policy.free_address)]
        if user_id is not None and device_id is not None:
            counted.append((throttle.device_key(user_id, device_id), policy.free_device))
        else:
            key = account_key(user) if user is not None else unknown_key(login_name)
            counted.append((key, policy.free_account))
        keys = [key for key, _free in counted]
        wait = throttle.wait_seconds(session, keys, now)
    _refuse_if_waiting(wait, "Too many failed sign-in attempts")

    with gate.slot():
        matches = security.verify_password(password_hash, password)
        rehashed = (
            security.hash_password(password)
            if matches and security.needs_rehash(password_hash)
            else None
        )

    with transaction(engine) as session:
        user = session.get(User, user_id) if matches and user_id is not None else None
        if user is None:
            for key, free in counted:
                throttle.record_failure(session, key, free=free, policy=policy, now=now)
        elif user.is_active:
            # The owner proved the password: their device or the account starts afresh (the
            # address keeps its count: one success must not reset a guesser's budget).
            throttle.clear(session, keys[1:])
            if rehashed is not None:
                user.password_hash = rehashed
                session.add(user)
            secret, credential = open_session(session=session, user=user, hours=session_hours)
            if user.role in audit.PRIVILEGED:
                audit.record(
                    session,
                    AuditAction.login,
                    object_type="user",
                    object_id=user_id or 0,
                    actor=user,
                    now=now,
                )
    if user is None or user_id is None:
        raise NotAuthenticated("Wrong login name or password")
    if not user.is_active:
        raise NotAuthenticated("This account is disabled")
    cookie = device_cookie(secret_key, user_id, device_id)
    return LoginOK(user=user, secret=secret, credential=credential, device_cookie=cookie)


def signup(
    *,
    engine: Engine,
    gate: HashingGate,
    email: str | None,
    password: str,
    display_name: str | None,
    address: str,
    per_hour: int,
    session_hours: float,
    now: datetime | None = None,
) -> tuple[User, str, Credential]:
    """A new volunteer, signed in; at most ``per_hour`` sign-ups per client address.

    ``ReservedName`` for a pseudonym that reads as the site's staff or system.
    """
    if display_name is not None:
        check_pseudonym(display_name)
    now = now or utcnow()
    with transaction(engine) as session:
        key = throttle.signup_key(address)
        wait = throttle.take(session, key, limit=per_hour, window=throttle.SIGNUP_WINDOW, now=now)
    _refuse_if_waiting(wait, "Too many new accounts from this address")
    with gate.slot():
        password_hash = security.hash_password(password)
    with transaction(engine) as session:
        user = create_user(
            session=session, email=email, password_hash=password_hash, display_name=display_name
        )
        secret, credential = open_session(session=session, user=user, hours=session_hours)
    return user, secret, credential


def _existing(session: Session, login_name: str) -> User:
    user = find_user(session, login_name)
    if user is None:
        raise NotFound(f"No account with the login name {login_name.strip()}")
    return user


def _unlock(session: Session, user: User) -> int:
    assert user.id is not None
    cleared = throttle.clear(session, [account_key(user)])
    return cleared + throttle.clear_prefix(session, throttle.devices_prefix(user.id))


def unlock(*, session: Session, email: str) -> int:
    """Forget the failed sign-ins counted against an account and its devices (admins)."""
    return _unlock(session, _existing(session, email))


def set_password(*, session: Session, email: str, password: str) -> int:
    """Give an account a new password, end its sessions and tokens, and unlock it (admins).

    Returns how many sessions and tokens were ended.
    """
    user = _existing(session, email)
    user.password_hash = security.hash_password(password)
    session.add(user)
    ended = session.execute(
        update(Credential)
        .where(col(Credential.user_id) == user.id, col(Credential.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    _unlock(session, user)
    return int(getattr(ended, "rowcount", 0) or 0)


def _ensure_usable(
    revoked_at: datetime | None, expires_at: datetime | None, is_active: bool, now: datetime
) -> None:
    """``NotAuthenticated`` when a credential found by its secret may not be used now."""
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        raise NotAuthenticated("The session or token has expired; sign in again")
    if not is_active:
        raise NotAuthenticated("This account is disabled")


UNKNOWN_SECRET = "Not signed in, or the session has ended"


def resolve(
    *, session: Session, secret: str, kind: CredentialKind, now: datetime | None = None
) -> tuple[User, Credential]:
    """The user and credential behind a secret; ``NotAuthenticated`` when invalid or expired."""
    row = session.exec(
        select(Credential, User)
        .join(User, User.id == Credential.user_id)  # type: ignore[arg-type]
        .where(Credential.secret_sha256 == security.digest(secret), Credential.kind == kind)
    ).first()
    if row is None:
        raise NotAuthenticated(UNKNOWN_SECRET)
    credential, user = row
    _ensure_usable(credential.revoked_at, credential.expires_at, user.is_active, now or utcnow())
    return user, credential


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the hot endpoints need it: no ORM objects, one indexed lookup."""

    id: int
    role: UserRole
    csrf_token: str | None
    consent_version: str | None = None
    # A token's scopes, space-separated; None for a browser session.
    scopes: str | None = None

    def require_consent(self) -> None:
        """Volunteers label only under the current consent (staff are exempt: they work
        under their institution's agreements)."""
        if self.role is UserRole.volunteer and self.consent_version != consent.VERSION:
            raise ConsentRequired(
                "Please read and accept the consent first (GET and POST /api/auth/consent)"
            )


class ConsentRequired(PermissionDenied):
    """A volunteer has not accepted the current consent text."""


@cache
def caller_statement() -> Select[Any]:
    """The caller's columns found by a credential's digest (``caller_params``); hot endpoints
    add their own columns to it, so one statement authenticates and reads."""
    credentials, users = table_of(Credential), table_of(User)
    return (
        core_select(
            users.c.id,
            users.c.role,
            users.c.is_active,
            users.c.consent_version,
            credentials.c.csrf_token,
            credentials.c.scopes,
            credentials.c.expires_at,
            credentials.c.revoked_at,
        )
        .select_from(credentials.join(users, users.c.id == credentials.c.user_id))
        .where(
            credentials.c.secret_sha256 == bindparam("digest"),
            credentials.c.kind == bindparam("kind"),
        )
    )


def caller_params(secret: str, kind: CredentialKind) -> dict[str, Any]:
    """The parameters of ``caller_statement``."""
    return {"digest": security.digest(secret), "kind": kind}


def caller_of(row: Any, now: datetime | None = None) -> Caller:
    """The caller in a row of ``caller_statement`` (None: no such credential), checked as
    ``resolve`` checks."""
    if row is None:
        raise NotAuthenticated(UNKNOWN_SECRET)
    _ensure_usable(row.revoked_at, row.expires_at, row.is_active, now or utcnow())
    return Caller(
        id=row.id,
        role=UserRole(row.role),
        csrf_token=row.csrf_token,
        consent_version=row.consent_version,
        scopes=row.scopes,
    )


def resolve_caller(
    *, session: Session, secret: str, kind: CredentialKind, now: datetime | None = None
) -> Caller:
    """``resolve`` for the hot endpoints: the same rules, read with one Core statement."""
    row = session.execute(caller_statement(), caller_params(secret, kind)).first()
    return caller_of(row, now)
