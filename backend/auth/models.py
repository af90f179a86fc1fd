"""Accounts: pseudonymous volunteers, experts, ML engineers and admins."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.core.columns import created_at_field, enum_type


class UserRole(StrEnum):
    volunteer = "volunteer"
    expert = "expert"
    engineer = "engineer"
    admin = "admin"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    # Public pseudonym shown on leaderboards; never the email.
    display_name: str = Field(max_length=40, unique=True)
    password_hash: str = Field(max_length=255)
    role: UserRole = Field(default=UserRole.volunteer, sa_type=enum_type(UserRole))
    is_active: bool = True
    created_at: datetime = created_at_field()
