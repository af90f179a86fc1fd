"""Shapes of the health report."""

from typing import Literal

from pydantic import BaseModel


class DatabaseHealth(BaseModel):
    dialect: str
    name: str | None
    reachable: bool
    revision: str | None = None
    head: str | None = None
    schema_current: bool = False
    error: str | None = None


class HealthRead(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    version: str
    # Only for admins: which database, its revision and any error.
    database: DatabaseHealth | None = None
