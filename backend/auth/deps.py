"""Who is calling: a session cookie (with CSRF check) or a bearer token (within its scopes),
and their role."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Executable
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from backend.auth import service
from backend.auth.models import Credential, CredentialKind, TokenScope, User, UserRole
from backend.auth.tokens import check_scope
from backend.core import security
from backend.core.deps import SessionDep
from backend.core.errors import NotAuthenticated, PermissionDenied

SESSION_COOKIE = "mscrowd_session"
CSRF_COOKIE = "mscrowd_csrf"
# "This browser signed in to that account before": exempts it from the account's throttle.
DEVICE_COOKIE = "mscrowd_device"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user: User
    credential: Credential


@dataclass(frozen=True)
class Credentials:
    """What a request presents, read without touching the database."""

    secret: str
    kind: CredentialKind
    # The CSRF header a cookie session sent on an unsafe method; None when no check applies.
    csrf_sent: str | None


def read_credentials(request: Request) -> Credentials:
    """The bearer token or session cookie of the request; ``NotAuthenticated`` when neither."""
    authorization = request.headers.get("authorization", "")
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return Credentials(secret.strip(), CredentialKind.token, None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated("Sign in first (session cookie or bearer token)")
    csrf = None if request.method in SAFE_METHODS else request.headers.get(CSRF_HEADER, "")
    return Credentials(cookie, CredentialKind.session, csrf)


def required_scope(method: str, path: str) -> TokenScope | None:
    """The scope a bearer token needs for a request: ``read`` for every GET, ``tasks`` for
    the labelling loop (``POST /api/tasks/...``), none for the account's own POSTs (a token
    may always log itself out; consent and new tokens need a browser session, which those
    endpoints check with a clearer answer), and ``manage`` for every other change. The one
    table of it, so no route can forget."""
    if method in SAFE_METHODS:
        # Releases are datasets: a token reads them only when made for it.
        if path == "/api/releases" or path.startswith("/api/releases/"):
            return TokenScope.releases
        return TokenScope.read
    if path.startswith("/api/tasks/"):
        return TokenScope.tasks
    if method == "POST" and path.startswith("/api/auth/"):
        return None
    return TokenScope.manage


def check_csrf(credentials: Credentials, expected: str | None) -> None:
    """Cookie sessions must echo their CSRF token on unsafe methods."""
    if credentials.csrf_sent is None:
        return
    if (
        not credentials.csrf_sent
        or expected is None
        or not security.same(credentials.csrf_sent, expected)
    ):
        raise PermissionDenied(f"Missing or wrong {CSRF_HEADER} header")


def current_principal(request: Request, session: SessionDep) -> Principal:
    """Authenticate the request; cookie sessions must echo their CSRF token on unsafe methods."""
    credentials = read_credentials(request)
    user, credential = service.resolve(
        session=session, secret=credentials.secret, kind=credentials.kind
    )
    check_csrf(credentials, credential.csrf_token)
    check_scope(credential.scopes, required_scope(request.method, request.scope["path"]))
    return Principal(user, credential)


def authenticate(
    session: Session, credentials: Credentials, scope: TokenScope | None
) -> service.Caller:
    """The caller behind ``credentials`` (for endpoints that run in one ``Database.run``),
    refused unless a token has ``scope``."""
    caller, _row = authenticate_with(session, credentials, scope, service.caller_statement())
    return caller


def authenticate_with(
    session: Session,
    credentials: Credentials,
    scope: TokenScope | None,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
) -> tuple[service.Caller, Any]:
    """``authenticate`` with a statement that extends ``service.caller_statement`` by the
    endpoint's own columns (and ``params``): one round trip authenticates and reads. Returns
    the caller and the row; the columns are read only once the caller is admitted."""
    row = session.execute(
        statement, {**service.caller_params(credentials.secret, credentials.kind), **(params or {})}
    ).first()
    caller = service.caller_of(row)
    check_csrf(credentials, caller.csrf_token)
    check_scope(caller.scopes, scope)
    return caller, row


async def credentials_dependency(request: Request) -> Credentials:
    """``read_credentials`` as a dependency (no I/O, so no thread hop)."""
    return read_credentials(request)


CredentialsDep = Annotated[Credentials, Depends(credentials_dependency)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller when signed in, else None (for pages that show more to some roles)."""
    try:
        return current_principal(request, session)
    except (NotAuthenticated, PermissionDenied):
        return None
    except SQLAlchemyError:
        # The database is down: the caller is anonymous, and health reports the outage.
        session.rollback()
        return None


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For only from trusted proxies)."""
    return request.client.host if request.client is not None else "unknown"


async def current_user(principal: PrincipalDep) -> User:
    """The signed-in user."""
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: UserRole) -> Callable[[User], Awaitable[User]]:
    """A dependency that admits only the given roles (admins are always admitted)."""
    allowed = {*roles, UserRole.admin}

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise PermissionDenied(f"This needs one of the roles: {names}")
        return user

    return check


AdminUser = Annotated[User, Depends(require_role(UserRole.admin))]
