"""Input hygiene shared by every request shape: text PostgreSQL can store, finite numbers, ids
within the column range.

PostgreSQL refuses NUL characters in text and psycopg cannot encode lone surrogates (which
JSON's ``\\ud800`` escapes produce); both used to surface as 500s. JSON's ``NaN`` and
``Infinity`` parse as floats that no column or check constraint wants. Ids beyond a 32-bit
``INTEGER`` make PostgreSQL fail (and SQLite overflow past 64 bits), so path and query ids are
bounded here, in the schema, and answered with 422. A body with many unknown fields gets one
error for all of them, not one each: pydantic took a second to build 320,000 of them.
"""

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

# The primary keys are INTEGER (32-bit signed) on both dialects.
MAX_DB_ID = 2**31 - 1
# Unknown fields reported one by one up to this many; beyond it, one error names the count.
MAX_UNKNOWN_FIELDS = 5


def clean_text(value: Any) -> Any:
    """``value`` unchanged, or a validation error when any string in it is unstorable text."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PydanticCustomError("nul_character", "Text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "invalid_unicode", "Text must be valid Unicode (no lone surrogates)"
            ) from None
    elif isinstance(value, list | tuple):
        for item in value:
            clean_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            clean_text(key)
            clean_text(item)
    return value


class InputModel(BaseModel):
    """Base of every request body: unknown fields, unstorable text and NaN/Infinity refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) > len(cls.model_fields) + MAX_UNKNOWN_FIELDS:
            unknown = len(data.keys() - cls.model_fields.keys())
            if unknown > MAX_UNKNOWN_FIELDS:
                raise PydanticCustomError(
                    "extra_forbidden",
                    "{count} unknown fields; extra inputs are not permitted",
                    {"count": unknown},
                )
        return data

    @field_validator("*")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        return clean_text(value)


DbId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
