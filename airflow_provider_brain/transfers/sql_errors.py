"""What a database's error says without quoting a row: whether a driver raised it, its code, and where it points.

A load error must never carry the driver's message (it may quote the rejected row: a transcript), so
``BrainLoadError`` (``sql_loader``) is built from these names and numbers only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.models import Asset


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


#: How many asset ids a load error names (the rest are counted).
ERROR_IDS_SHOWN = 5


class BrainLoadError(BrainError):
    """The database refused a load: names the table, the assets and the driver's error, never a row's values.

    A database's own message may quote the row it rejected (PostgreSQL's COPY errors do: ``CONTEXT: COPY
    transcripts, line 1, column transcript: "<the transcript>"``), so it is left out, and the driver's error
    is not chained for a traceback to print. ``error_class`` and ``code`` (the SQLSTATE or the driver's
    error code, when it gives one) say what went wrong; where PostgreSQL says which row and column, so does
    the message.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str,
        asset_ids: Sequence[str],
        error_class: str,
        code: str | None,
    ) -> None:
        self.table = table
        self.asset_ids = list(asset_ids)
        self.error_class = error_class
        self.code = code
        super().__init__(message)


def load_error(
    err: BaseException,
    *,
    doing: str,
    table: str,
    assets: Sequence[Asset],
    owner_of_row: Callable[[int], str | None],
) -> BrainLoadError:
    """A ``BrainLoadError`` for the driver's ``err`` while ``doing`` ``table``: where and what kind, no values.

    :param owner_of_row: the asset whose rows include the n-th (from 1) written to ``table``, if known.
    """
    ids = [asset.asset_id for asset in assets]
    shown = ", ".join(ids[:ERROR_IDS_SHOWN]) + (
        f" and {len(ids) - ERROR_IDS_SHOWN} more" if len(ids) > ERROR_IDS_SHOWN else ""
    )
    error_class = f"{type(err).__module__}.{type(err).__qualname__}"
    code = driver_error_code(err)
    where = ""
    row, column, constraint = error_location(err)
    if row is not None and doing == "writing":
        owner = owner_of_row(row)
        where = f" at row {row}" + (f" (asset {owner})" if owner else "")
    if column:
        where += f", column {column}"
    if constraint:
        where += f", constraint {constraint}"
    return BrainLoadError(
        f"Loading {len(ids)} Brain asset(s) ({shown}) failed while {doing} {table}: the database raised "
        f"{error_class}" + (f" ({code})" if code else "") + where + ". The load was rolled back. The "
        "database's message is left out: it can quote the rows' values (transcripts)",
        table=table,
        asset_ids=ids,
        error_class=error_class,
        code=code,
    )
