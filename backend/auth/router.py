"""``/api/auth``: sign up, log in and out, who am I, bearer tokens for scripts."""

from fastapi import APIRouter, Request, Response, status

from backend.auth import consent, service, throttle, tokens
from backend.auth.deps import (
    CSRF_COOKIE,
    DEVICE_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    PrincipalDep,
    client_address,
)
from backend.auth.models import Credential, User
from backend.auth.schemas import (
    ConsentIn,
    ConsentRead,
    LoginIn,
    MeRead,
    SessionRead,
    SignupIn,
    TokenCreate,
    TokenInfo,
    TokenRead,
    UserRead,
)
from backend.core.body import AUTH_BODY_BYTES
from backend.core.config import Settings
from backend.core.deps import EngineDep, HashingDep, SessionDep, SettingsDep
from backend.core.errors import error_responses
from backend.core.validation import PathId

# Every body here is a few short strings: 3.7 MB of JSON keys is refused before it is parsed.
router = APIRouter(prefix="/auth", tags=["auth"], max_body_size=AUTH_BODY_BYTES)
SIGNED_IN = error_responses(401, 403)


def _start_session(
    response: Response, settings: Settings, user: User, secret: str, credential: Credential
) -> SessionRead:
    assert credential.csrf_token is not None
    assert credential.expires_at is not None
    max_age = int(settings.session_hours * 3600)
    secure = bool(settings.cookie_secure)
    # HttpOnly session cookie; SameSite=Lax stops cross-site POSTs from carrying it, and the
    # CSRF token (readable cookie + header) covers same-site attackers.
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age, httponly=True, secure=secure, samesite="lax"
    )
    response.set_cookie(
        CSRF_COOKIE, credential.csrf_token, max_age=max_age, secure=secure, samesite="lax"
    )
    return SessionRead(
        user=me_read(user),
        csrf_token=credential.csrf_token,
        expires_at=credential.expires_at,
    )


def _trust_device(response: Response, settings: Settings, cookie: str) -> None:
    # Path-scoped and Strict: only the auth endpoints ever see it.
    response.set_cookie(
        DEVICE_COOKIE,
        cookie,
        max_age=service.DEVICE_COOKIE_DAYS * 86400,
        path="/api/auth",
        httponly=True,
        secure=bool(settings.cookie_secure),
        samesite="strict",
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionRead,
    responses=error_responses(
        400,
        409,
        422,
        429,
        503,
        e409="The email or display name is taken",
        e422="Invalid input, or a reserved pseudonym (code reserved_name)",
        e429="Too many sign-ups",
    ),
)
def signup(
    body: SignupIn,
    request: Request,
    response: Response,
    engine: EngineDep,
    gate: HashingDep,
    settings: SettingsDep,
) -> SessionRead:
    """Create a volunteer account and sign it in (a limited number per address and hour).
    Pseudonyms that read as the site's staff or system ("admin", "expert team") are refused.

    This browser becomes a trusted device of the account (see ``POST /login``).
    """
    user, secret, credential = service.signup(
        engine=engine,
        gate=gate,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        address=client_address(request),
        per_hour=settings.signups_per_address_per_hour,
        session_hours=settings.session_hours,
    )
    assert user.id is not None
    _trust_device(response, settings, service.device_cookie(settings.secret_key, user.id))
    return _start_session(response, settings, user, secret, credential)


@router.post(
    "/login",
    response_model=SessionRead,
    responses=error_responses(
        400,
        401,
        429,
        503,
        e401="Wrong login name or password (the same answer for unknown names)",
        e429="Too many failed attempts from this address or for this account from new browsers",
    ),
)
def login(
    body: LoginIn,
    request: Request,
    response: Response,
    engine: EngineDep,
    gate: HashingDep,
    settings: SettingsDep,
) -> SessionRead:
    """Sign in with email and password; sets the session, CSRF and device cookies.

    Failed attempts are throttled with growing delays per client address, and per account for
    browsers that never signed in to it; a browser that did (it holds the device cookie) is
    counted on its own, so guessing from elsewhere never locks the owner out.
    """
    result = service.login(
        engine=engine,
        gate=gate,
        login_name=body.login_name,
        password=body.password,
        address=client_address(request),
        device=request.cookies.get(DEVICE_COOKIE),
        secret_key=settings.secret_key,
        policy=throttle.Policy.from_settings(settings),
        session_hours=settings.session_hours,
    )
    _trust_device(response, settings, result.device_cookie)
    return _start_session(response, settings, result.user, result.secret, result.credential)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=SIGNED_IN)
def logout(principal: PrincipalDep, response: Response, session: SessionDep) -> None:
    """End this session (or withdraw this bearer token)."""
    tokens.revoke(session=session, credential=principal.credential)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


def me_read(user: User) -> MeRead:
    fields = UserRead.model_validate(user).model_dump()
    return MeRead(
        **fields,
        email=user.email,
        consent_version=user.consent_version,
        consent_at=user.consent_at,
        consent_current=user.consent_version == consent.VERSION,
    )


@router.get("/me", response_model=MeRead, responses=SIGNED_IN)
def me(user: CurrentUser) -> MeRead:
    """The signed-in account."""
    return me_read(user)


@router.get("/consent", response_model=ConsentRead)
def consent_text() -> ConsentRead:
    """The current consent text, shown before a volunteer's first task (no sign-in needed)."""
    return ConsentRead(version=consent.VERSION, title=consent.TITLE, points=list(consent.POINTS))


@router.post(
    "/consent",
    response_model=MeRead,
    responses={
        **SIGNED_IN,
        **error_responses(
            400,
            403,
            409,
            e403="Not from a browser session (code session_required): tokens cannot consent",
            e409="Not the current consent text",
        ),
    },
)
def give_consent(body: ConsentIn, principal: PrincipalDep, session: SessionDep) -> MeRead:
    """Accept the consent text of ``version`` (the current one); stored with its time. Only
    from a signed-in browser session, where the text is read: not with a bearer token."""
    service.give_consent(
        session=session,
        user=principal.user,
        version=body.version,
        kind=principal.credential.kind,
    )
    return me_read(principal.user)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenRead,
    responses=error_responses(
        400,
        401,
        403,
        409,
        e403="Tokens are created from a browser session, not with another token",
        e409="Too many active tokens",
    ),
)
def create_token(
    body: TokenCreate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> TokenRead:
    """A bearer token for scripts (``Authorization: Bearer ...``); shown only once. It may do
    what its ``scopes`` say; created without scopes, it gets ``tasks`` and ``read``."""
    secret, credential = tokens.issue_token(
        session=session,
        principal=principal.credential,
        user=principal.user,
        name=body.name,
        days=body.expires_in_days,
        max_tokens=settings.max_tokens_per_user,
        scopes=body.scopes,
    )
    return TokenRead(**TokenInfo.model_validate(credential).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenInfo], responses=SIGNED_IN)
def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenInfo]:
    """Your bearer tokens that still work (names and expiry; never the secrets)."""
    return [TokenInfo.model_validate(t) for t in tokens.list_tokens(session=session, user=user)]


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404),
)
def revoke_token(token_id: PathId, user: CurrentUser, session: SessionDep) -> None:
    """Withdraw one of your bearer tokens."""
    tokens.revoke_token(session=session, user=user, token_id=token_id)
