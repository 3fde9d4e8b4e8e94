"""What a database's error says without quoting a row: whether a driver raised it, its code, and where it points.

A load error must never carry the driver's message (it may quote the rejected row: a transcript), so
``BrainLoadError`` (``sql_loader``) is built from these names and numbers only.
"""

from __future__ import annotations

import re
import sys


def is_driver_error(err: BaseException) -> bool:
    """Whether ``err`` was raised by a DB-API (PEP 249) driver: an instance of the ``Error`` its package exports
    (``psycopg.Error``, ``psycopg2.Error``, ``sqlite3.Error``, ``_duckdb.Error``, ``snowflake.connector.Error``)."""
    parts = (type(err).__module__ or "").split(".")
    for end in range(len(parts), 0, -1):
        base = getattr(sys.modules.get(".".join(parts[:end])), "Error", None)
        if isinstance(base, type) and issubclass(base, Exception) and isinstance(err, base):
            return True
    return False


_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


def driver_error_code(err: BaseException) -> str | None:
    """The error's SQLSTATE (psycopg, psycopg2, ODBC) or the driver's own code (SQLite's name, MySQL's number)."""
    for attribute in ("sqlstate", "pgcode"):
        value = getattr(err, attribute, None)
        if isinstance(value, str) and value:
            return f"SQLSTATE {value}"
    name = getattr(err, "sqlite_errorname", None)
    if isinstance(name, str) and name:
        return name
    first = err.args[0] if err.args else None
    if isinstance(first, int) and not isinstance(first, bool):
        return f"error {first}"
    if isinstance(first, str) and _SQLSTATE.fullmatch(first):
        return f"SQLSTATE {first}"
    return None


#: PostgreSQL's context line of a COPY error: ``COPY table, line 3, column transcript: "<the value>"``.
_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:\s]+))?")


def error_location(err: BaseException) -> tuple[int | None, str | None, str | None]:
    """The row (from 1, in a COPY), column and constraint a PostgreSQL error points at: names, never values."""
    diag = getattr(err, "diag", None)

    def name(attribute: str) -> str | None:
        value = getattr(diag, attribute, None)
        return value if isinstance(value, str) and value else None

    context = name("context")
    match = _COPY_CONTEXT.search(context) if context else None
    row = int(match.group(1)) if match else None
    column = (match.group(2) if match else None) or name("column_name")
    return row, column, name("constraint_name")
