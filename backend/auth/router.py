"""``/api/auth``: sign up, log in and out, who am I, bearer tokens for scripts."""

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from backend.auth import service
from backend.auth.deps import CSRF_COOKIE, SESSION_COOKIE, CurrentUser, PrincipalDep
from backend.auth.models import Credential, User
from backend.auth.schemas import LoginIn, MeRead, SessionRead, SignupIn, TokenCreate, TokenRead
from backend.core.config import Settings
from backend.core.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/auth", tags=["auth"])


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
        user=MeRead.model_validate(user),
        csrf_token=credential.csrf_token,
        expires_at=credential.expires_at,
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=SessionRead)
def signup(
    body: SignupIn, response: Response, session: SessionDep, settings: SettingsDep
) -> SessionRead:
    """Create a volunteer account and sign it in."""
    user = service.create_user(
        session=session, email=body.email, password=body.password, display_name=body.display_name
    )
    secret, credential = service.open_session(
        session=session, user=user, hours=settings.session_hours
    )
    return _start_session(response, settings, user, secret, credential)


@router.post(
    "/login",
    response_model=SessionRead,
    responses={401: {"description": "Wrong email or password"}, 429: {"description": "Locked"}},
)
def login(
    body: LoginIn, response: Response, session: SessionDep, settings: SettingsDep
) -> SessionRead | JSONResponse:
    """Sign in with email and password; sets the session and CSRF cookies."""
    attempt = service.authenticate(session=session, email=body.email, password=body.password)
    if attempt.user is None:
        assert attempt.error is not None
        # Returned, not raised: the transaction commits the failure count.
        return JSONResponse(
            status_code=attempt.error.status_code, content={"detail": attempt.error.message}
        )
    user = attempt.user
    secret, credential = service.open_session(
        session=session, user=user, hours=settings.session_hours
    )
    return _start_session(response, settings, user, secret, credential)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(principal: PrincipalDep, response: Response, session: SessionDep) -> None:
    """End this session (or withdraw this bearer token)."""
    service.revoke(session=session, credential=principal.credential)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)


@router.get("/me", response_model=MeRead)
def me(user: CurrentUser) -> MeRead:
    """The signed-in account."""
    return MeRead.model_validate(user)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenRead)
def create_token(body: TokenCreate, user: CurrentUser, session: SessionDep) -> TokenRead:
    """A bearer token for scripts (``Authorization: Bearer ...``); shown only once."""
    secret, credential = service.issue_token(
        session=session, user=user, name=body.name, days=body.expires_in_days
    )
    assert credential.id is not None
    return TokenRead(
        id=credential.id, name=credential.name, token=secret, expires_at=credential.expires_at
    )
