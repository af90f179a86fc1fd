"""``/api/privacy``: consent per case, withdrawal of cases and erasure of accounts (admins),
and ``POST /api/auth/me/erase``: a person erasing their own account.

Each change commits with its audit entry; files are deleted after the commit (a crash in
between leaves orphans for ``mscrowd storage check --fix``)."""

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Response
from sqlmodel import Session, col, func, select

from backend.auth.deps import CSRF_COOKIE, SESSION_COOKIE, AdminUser, PrincipalDep
from backend.auth.models import CredentialKind, User
from backend.auth.tokens import SessionRequired
from backend.core import security
from backend.core.deps import DatabaseDep, HashingDep, SessionDep, StorageDep
from backend.core.errors import InvalidInput, PermissionDenied, error_responses
from backend.core.validation import PathId
from backend.imaging.models import Case
from backend.privacy import service
from backend.privacy.models import WithdrawnCase
from backend.privacy.schemas import (
    CaseConsentPage,
    CaseConsentRead,
    ConsentChangeRead,
    ConsentUpdate,
    EraseOwnAccount,
    ErasureRead,
    WithdrawalRead,
    WithdrawRequest,
)

PublicId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(prefix="/privacy", tags=["privacy"], responses=error_responses(401, 403))
account_router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(401, 403))


def _consent_read(case: Case) -> CaseConsentRead:
    return CaseConsentRead(
        public_id=case.public_id,
        project_id=case.project_id,
        licence=case.licence,
        scopes=sorted(case.scopes),
        tutorial=case.tutorial,
        created_at=case.created_at,
    )


@router.get("/cases", response_model=CaseConsentPage, responses=error_responses(422))
def cases(
    _admin: AdminUser,
    session: SessionDep,
    project_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CaseConsentPage:
    """The cases with their licence and consent scopes, oldest first."""
    query = select(Case)
    count = select(func.count()).select_from(Case)
    if project_id is not None:
        query = query.where(Case.project_id == project_id)
        count = count.where(Case.project_id == project_id)
    rows = session.exec(query.order_by(col(Case.id)).offset(offset).limit(limit)).all()
    return CaseConsentPage(
        total=int(session.exec(count).one()), rows=[_consent_read(c) for c in rows]
    )


@router.put(
    "/cases/{public_id}/consent",
    response_model=ConsentChangeRead,
    responses=error_responses(400, 404, 422),
)
def set_consent(
    public_id: PublicId, body: ConsentUpdate, admin: AdminUser, session: SessionDep
) -> ConsentChangeRead:
    """Set a case's consent scopes (the whole set) and optionally its licence. Granting crowd
    viewing opens its crowd tasks; taking it back retires them at once."""
    change = service.set_consent(
        session,
        public_id=public_id,
        scopes=frozenset(body.scopes),
        actor=admin,
        licence=body.licence,
    )
    return ConsentChangeRead.model_validate(change)


@router.post(
    "/cases/{public_id}/withdraw",
    response_model=WithdrawalRead,
    responses=error_responses(400, 404, 409, 422),
)
async def withdraw(
    public_id: PublicId,
    body: WithdrawRequest,
    admin: AdminUser,
    database: DatabaseDep,
    storage: StorageDep,
) -> WithdrawalRead:
    """Withdraw a case for good: its images, masks, tasks, leases and answers are deleted,
    later fusions, trainings and releases lack it, model versions that used it are flagged,
    and the audit log keeps a record without image data. ``confirm`` must repeat the id."""
    if body.confirm != public_id:
        raise InvalidInput("confirm must repeat the case's public id", code="confirm_mismatch")

    def work(session: Session) -> tuple[WithdrawalRead, service.Removal]:
        withdrawn, removal = service.withdraw_case(
            session, storage, public_id=public_id, actor=admin, reason=body.reason
        )
        return WithdrawalRead.model_validate(withdrawn, from_attributes=True), removal

    def then(done: tuple[WithdrawalRead, service.Removal]) -> WithdrawalRead:
        done[1].delete_files(storage)  # after the commit
        return done[0]

    return await database.run_then(work, then)


@router.get("/withdrawals", response_model=list[WithdrawalRead])
def withdrawals(_admin: AdminUser, session: SessionDep) -> list[WithdrawalRead]:
    """The withdrawn cases, newest first (what was removed, as counts)."""
    rows = session.exec(select(WithdrawnCase).order_by(col(WithdrawnCase.id).desc())).all()
    return [WithdrawalRead.model_validate(row, from_attributes=True) for row in rows]


async def _erase(
    database: DatabaseDep, storage: StorageDep, user_id: int, actor: User
) -> ErasureRead:
    def work(session: Session) -> tuple[dict[str, int], service.Removal]:
        return service.erase_user(session, storage, user_id=user_id, actor=actor)

    def then(done: tuple[dict[str, int], service.Removal]) -> ErasureRead:
        done[1].delete_files(storage)
        return ErasureRead(user_id=user_id, removed=done[0])

    return await database.run_then(work, then)


@router.post(
    "/users/{user_id}/erase", response_model=ErasureRead, responses=error_responses(404, 409)
)
async def erase_user(
    user_id: PathId, admin: AdminUser, database: DatabaseDep, storage: StorageDep
) -> ErasureRead:
    """Erase an account at its owner's request (GDPR): see ``service.erase_user``."""
    return await _erase(database, storage, user_id, admin)


@account_router.post(
    "/me/erase",
    response_model=ErasureRead,
    responses=error_responses(
        400, 403, 404, 409, 422, e403="Wrong password, or not from a browser session"
    ),
)
async def erase_own_account(
    body: EraseOwnAccount,
    principal: PrincipalDep,
    response: Response,
    database: DatabaseDep,
    storage: StorageDep,
    hashing: HashingDep,
) -> ErasureRead:
    """Erase your own account: your answers leave every later fusion and release, your
    login name and password are gone and you are signed out. Asks for your password, from a
    signed-in browser session (not a token: a script's token must not end the account)."""
    user = principal.user
    if principal.credential.kind is not CredentialKind.session:
        raise SessionRequired("Erase your account from the browser, signed in; not by a token")

    def check() -> bool:
        with hashing.slot():
            return security.verify_password(user.password_hash, body.password)

    if not await anyio.to_thread.run_sync(check):
        raise PermissionDenied("Wrong password", code="wrong_password")
    assert user.id is not None
    erased = await _erase(database, storage, user.id, user)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return erased
