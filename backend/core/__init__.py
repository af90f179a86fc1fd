"""Cross-cutting pieces: settings, database, migrations, errors.

The naming convention is set here, on import of the package, because every table module
imports something from ``backend.core`` before it defines a table: constraint names are then
the same on every dialect, so migrations can name what they drop.
"""

from sqlmodel import SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
