"""Credentials: browser sessions and bearer tokens, and the scopes that bound a token.

A token says what it may do (``TokenScope``): ``tasks`` (lease, submit, skip, report),
``read`` (every GET), ``manage`` (staff changes), ``releases`` (the coming export API). One
created without scopes gets ``tasks`` and ``read``: what a volunteer's labelling script needs.
Browser sessions are bounded by their role only. Only the SHA-256 of a secret is stored.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from backend.auth.models import DEFAULT_SCOPES, Credential, CredentialKind, TokenScope, User
from backend.core import security
from backend.core.errors import Conflict, NotFound, PermissionDenied
from backend.core.timeutil import utcnow


class SessionRequired(PermissionDenied):
    """Only a signed-in browser session may do this, not a bearer token."""


class InsufficientScope(PermissionDenied):
    """The bearer token was not given the scope this request needs."""


def check_scope(scopes: str | None, needed: TokenScope | None) -> None:
    """``InsufficientScope`` unless a credential with ``scopes`` (None: a browser session,
    which has them all) may make a request that needs ``needed`` (None: any credential)."""
    if needed is None or scopes is None or needed.value in scopes.split():
        return
    raise InsufficientScope(
        f"This token lacks the {needed.value!r} scope; create one with it "
        '(POST /api/auth/tokens with "scopes")'
    )


def scopes_text(scopes: Sequence[TokenScope] | None) -> str:
    """Scopes as stored: space-separated, sorted; ``DEFAULT_SCOPES`` when none are given."""
    return " ".join(sorted({TokenScope(s).value for s in (scopes or DEFAULT_SCOPES)}))


def issue_credential(
    *,
    session: Session,
    user: User,
    kind: CredentialKind,
    name: str,
    lifetime: timedelta,
    scopes: Sequence[TokenScope] | None = None,
) -> tuple[str, Credential]:
    """A new session or token of ``user``: its secret (returned once) and stored record."""
    secret = security.new_secret()
    assert user.id is not None
    is_session = kind is CredentialKind.session
    credential = Credential(
        user_id=user.id,
        kind=kind,
        secret_sha256=security.digest(secret),
        csrf_token=security.new_secret() if is_session else None,
        scopes=None if is_session else scopes_text(scopes),
        name=name,
        expires_at=utcnow() + lifetime,
    )
    session.add(credential)
    session.flush()
    return secret, credential


def open_session(*, session: Session, user: User, hours: float) -> tuple[str, Credential]:
    """A browser session: the cookie secret and its stored record (with the CSRF token)."""
    return issue_credential(
        session=session,
        user=user,
        kind=CredentialKind.session,
        name="browser",
        lifetime=timedelta(hours=hours),
    )


def _active_tokens(user_id: int, now: datetime) -> SelectOfScalar[Credential]:
    return (
        select(Credential)
        .where(
            Credential.user_id == user_id,
            Credential.kind == CredentialKind.token,
            col(Credential.revoked_at).is_(None),
            col(Credential.expires_at) > now,
        )
        .order_by(col(Credential.id))
    )


def issue_token(
    *,
    session: Session,
    principal: Credential,
    user: User,
    name: str,
    days: int,
    max_tokens: int,
    scopes: Sequence[TokenScope] | None = None,
) -> tuple[str, Credential]:
    """A bearer token for scripts, minted from a browser session; the secret is returned once.

    ``scopes``: what it may do; none given means ``DEFAULT_SCOPES`` (tasks and read).
    """
    if principal.kind is not CredentialKind.session:
        raise SessionRequired("Tokens are created from a signed-in browser session, not a token")
    assert user.id is not None
    held = session.exec(
        select(func.count()).select_from(_active_tokens(user.id, utcnow()).subquery())
    ).one()
    if held >= max_tokens:
        raise Conflict(f"You already hold {held} active tokens; revoke one first")
    return issue_credential(
        session=session,
        user=user,
        kind=CredentialKind.token,
        name=name,
        lifetime=timedelta(days=days),
        scopes=scopes,
    )


def list_tokens(*, session: Session, user: User) -> list[Credential]:
    """The caller's tokens that still work, oldest first (secrets are never shown again)."""
    assert user.id is not None
    return list(session.exec(_active_tokens(user.id, utcnow())).all())


def revoke_token(*, session: Session, user: User, token_id: int) -> None:
    """Withdraw one of the caller's tokens; ``NotFound`` for anyone else's or a spent one."""
    assert user.id is not None
    credential = session.exec(
        _active_tokens(user.id, utcnow()).where(Credential.id == token_id)
    ).first()
    if credential is None:
        raise NotFound(f"You have no active token {token_id}")
    revoke(session=session, credential=credential)


def revoke(*, session: Session, credential: Credential) -> None:
    """End a session or withdraw a token."""
    credential.revoked_at = utcnow()
    session.add(credential)
