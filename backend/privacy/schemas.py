"""Request and response bodies of the privacy routes."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.imaging.models import ConsentScope


class CaseConsentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    public_id: str
    project_id: int
    licence: str
    scopes: list[ConsentScope]
    tutorial: bool
    created_at: datetime


class CaseConsentPage(BaseModel):
    total: int
    rows: list[CaseConsentRead]


class ConsentUpdate(BaseModel):
    """The case's consent as a whole (every scope it allows; an empty list: experts only)."""

    model_config = ConfigDict(extra="forbid")

    scopes: list[ConsentScope] = Field(max_length=len(ConsentScope))
    licence: str | None = Field(default=None, min_length=1, max_length=64)


class ConsentChangeRead(BaseModel):
    before: list[ConsentScope]
    after: list[ConsentScope]
    licence: str
    tasks_opened: int
    tasks_withheld: int  # open crowd tasks volunteers are no longer served


class WithdrawRequest(BaseModel):
    """``confirm`` repeats the case's public id, so a mistyped id in a script cannot take
    the wrong case."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=300)
    confirm: str = Field(min_length=1, max_length=32)


class WithdrawalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    public_id: str
    project_id: int
    reason: str
    withdrawn_at: datetime
    report: dict[str, Any]


class ErasureRead(BaseModel):
    user_id: int
    removed: dict[str, int]


class EraseOwnAccount(BaseModel):
    """The account's password, asked again: erasure cannot be undone."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=256)
