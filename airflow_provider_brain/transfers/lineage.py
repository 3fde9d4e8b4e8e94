"""Where the transfers write, named once for Airflow assets and for OpenLineage datasets.

A SQL table's asset URI follows the scheme its provider registers (``asset-uris``), with the port and schema
written out, as Airflow normalises them::

    postgres://db.example.com:5432/analytics/public/transcripts    # postgres (schema "public" unless given)
    file:///data/warehouse.db/transcripts                         # sqlite and duckdb: the database file
    mysql://db.example.com:3306/analytics/transcripts              # others: {conn_type}://{host[:port]}/{database}/...

A table given as ``schema.table`` puts its schema there; a connection without a host (BigQuery, Snowflake)
uses its connection id instead. S3 output is the ``s3_uri`` the operator writes to (``s3://bucket/prefix``).
A downstream DAG names the asset by that URI, or lets ``brain_table_asset`` build it::

    with DAG("report", schedule=[brain_table_asset("warehouse", "transcripts")]): ...

The OpenLineage dataset of a table is the one the postgres provider converts that asset to: namespace
``postgres://host:5432``, name ``database.schema.table``, with the columns of ``sql_tables``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.assets import Asset, AssetAlias
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_brain.sources import public_url, s3_object_of
from airflow_provider_brain.transfers.sql_tables import ColumnTypes, TableSchema

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset

#: Databases in one local file (the connection's host is its path): their tables are ``file://`` assets.
FILE_DATABASES = frozenset({"sqlite", "duckdb"})

#: Connection types whose provider registers an asset scheme: that scheme and the port its sanitizer adds.
REGISTERED_SCHEMES: dict[str, tuple[str, int]] = {"postgres": ("postgres", 5432), "postgresql": ("postgres", 5432)}

#: The schema an unqualified table lands in, where the database has a fixed default.
DEFAULT_SCHEMAS = {"postgres": "public"}

#: Well-known ports, written out so the URI is the same whether or not the connection names its port.
DEFAULT_PORTS = {"mysql": 3306, "mssql": 1433, "redshift": 5439, "oracle": 1521}


@dataclass(frozen=True)
class TableLocation:
    """A table as a place: the database's scheme and address, and the table's path inside it."""

    scheme: str
    #: ``host:port`` (or the connection id for databases without a host); ``""`` for a database file.
    authority: str
    #: The database name, or the absolute path of a database file.
    database: str
    schema: str
    table: str

    @property
    def parts(self) -> list[str]:
        return [part for part in (self.database, self.schema, self.table) if part]

    @property
    def asset_uri(self) -> str:
        if not self.authority:
            return "file://" + "/".join(self.parts)
        return f"{self.scheme}://{self.authority}/" + "/".join(self.parts)

    @property
    def namespace(self) -> str:
        """The OpenLineage namespace: ``scheme://host:port`` as common-sql names it, or ``file``."""
        return f"{self.scheme}://{self.authority}" if self.authority else "file"

    @property
    def name(self) -> str:
        """The OpenLineage name: ``database.schema.table``, or the file's path and the table for a database file."""
        return ".".join(self.parts) if self.authority else "/".join(self.parts)

    def asset(self) -> Asset:
        return canonical_asset(self.asset_uri)

    def dataset(self, schema: TableSchema, types: ColumnTypes | None = None) -> Dataset:
        """This table as an OpenLineage output dataset, with its columns (SQL types of the loader's dialect)."""
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            SchemaDatasetFacet,
            SchemaDatasetFacetFields,
        )

        types = types or ColumnTypes()
        fields = [SchemaDatasetFacetFields(name=c.name, type=types.of(c.type)) for c in schema.columns]
        return Dataset(namespace=self.namespace, name=self.name, facets={"schema": SchemaDatasetFacet(fields=fields)})


def table_location(connection: Any, table: str, *, database: str | None = None) -> TableLocation | None:
    """Where ``table`` (``table``, ``schema.table`` or ``database.schema.table``) is on ``connection``.

    ``database`` overrides the connection's (as a hook's ``database`` parameter does). ``None`` for an
    in-memory database, which no other DAG can read.
    """
    conn_type = (connection.conn_type or "").lower()
    *qualifiers, name = table.split(".")
    schema = qualifiers[-1] if qualifiers else ""
    if len(qualifiers) == 2:
        database = qualifiers[0]
    if conn_type in FILE_DATABASES:
        path = database or connection.host or ""
        if not path or path == ":memory:" or ":" in path.split("/")[0]:  # in memory, or MotherDuck's md:
            return None
        return TableLocation(conn_type, "", os.path.abspath(path), schema, name)
    scheme, default_port = REGISTERED_SCHEMES.get(conn_type, (conn_type, DEFAULT_PORTS.get(conn_type)))
    if connection.host:
        port = connection.port or default_port
        authority = f"{connection.host}:{port}" if port else connection.host
    else:
        authority = connection.conn_id
    return TableLocation(
        scheme,
        authority,
        database or connection.schema or "",
        schema or DEFAULT_SCHEMAS.get(scheme, ""),
        name,
    )


def canonical_asset(uri: str) -> Asset:
    """``Asset(uri)`` named by its normalised URI: what Airflow matches a downstream DAG's schedule on.

    ``Asset("postgres://h/db/public/t")`` keeps that text as its name but normalises its URI to
    ``postgres://h:5432/db/public/t``, so it is not the same asset as ``Asset("postgres://h:5432/db/public/t")``.
    Naming assets by their normalised URI on both sides makes them one.
    """
    return Asset(uri=Asset(uri=uri).uri)


def brain_table_asset(conn_id: str, table: str = "transcripts", *, database: str | None = None) -> Asset:
    """The asset ``BrainToSqlOperator(conn_id=conn_id, table=table)`` emits an event for on each load.

    For a downstream DAG's ``schedule``. It reads the connection (its type, host, port and database) when the DAG
    file is parsed: cheap for connections in environment variables, a lookup per parse with a secrets backend.
    Writing the URI out (``Asset("postgres://host:5432/analytics/public/transcripts")``) reads nothing.
    """
    location = table_location(BaseHook.get_connection(conn_id), table, database=database)
    if location is None:
        raise ValueError(f"Connection {conn_id!r} is an in-memory database: its tables are no asset")
    return location.asset()


def s3_asset(s3_uri: str) -> Asset:
    """The asset ``BrainToS3Operator(s3_uri=s3_uri)`` emits an event for: that prefix (or JSON Lines key)."""
    return canonical_asset(s3_uri)


def with_alias(outlets: Any, alias: str | None) -> list[Any]:
    """The ``outlets`` argument of a transfer: the user's outlets, plus the operator's ``AssetAlias`` (once: a
    mapped transfer's outlets already hold it when each map index's operator is made from them)."""
    if outlets is None:
        declared = []
    elif isinstance(outlets, (list, tuple)):
        declared = list(outlets)
    else:
        declared = [outlets]
    if not alias or AssetAlias(alias) in declared:
        return declared
    return [*declared, AssetAlias(alias)]


def partial_with_alias(operator: type, kwargs: dict[str, Any], alias: str | None) -> Any:
    """``BaseOperator.partial`` for a transfer, with its ``AssetAlias`` among the mapped task's outlets: Airflow
    runs no ``__init__`` of a mapped task when it parses the DAG, so without this the scheduler would not see
    the alias (a DAG scheduled on it would not know this task feeds it). ``alias`` ``None``: not known yet
    (it names a connection that is expanded); each map index declares it when it runs."""
    from airflow.sdk.bases.operator import partial as sdk_partial

    if alias:
        kwargs["outlets"] = with_alias(kwargs.get("outlets"), alias)
    return sdk_partial(operator, **kwargs)


def emit_asset_events(
    context: Mapping[str, Any], outlets: Sequence[Any], written: Iterable[Asset], extra: dict[str, Any]
) -> None:
    """Record what a transfer wrote as asset events, with ``extra`` (counts, never transcript text).

    Declared ``Asset`` outlets get ``extra`` on the event Airflow emits for them anyway; each written asset not
    among them is added through the task's ``AssetAlias`` (if it has one), which creates its event.
    """
    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        return
    declared = {outlet.uri for outlet in outlets if isinstance(outlet, Asset)}
    for outlet in outlets:
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(extra)
    aliases = [outlet for outlet in outlets if isinstance(outlet, AssetAlias)]
    for asset in written:
        if asset.uri not in declared:
            for alias in aliases:
                outlet_events[alias].add(asset, extra=extra)


def source_datasets(sources: Iterable[str | None]) -> list[Dataset]:
    """The audio files transcribed, as OpenLineage input datasets (as the transcribe operator names them).

    ``s3://bucket/key`` is ``s3://bucket`` / ``key``; a URL is ``scheme://host`` / its path (no query string);
    local files and unknown sources have no dataset.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    datasets: dict[tuple[str, str], Dataset] = {}
    for source in sources:
        if not source:
            continue
        key = _dataset_key(source)
        if key is None:
            continue
        datasets.setdefault(key, Dataset(namespace=key[0], name=key[1]))
    return list(datasets.values())


def _dataset_key(source: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of an audio source; ``None`` for a local file or an unknown source."""
    if s3_object := s3_object_of(source):  # the whole key, '?' and '#' too
        return f"s3://{s3_object[0]}", s3_object[1]
    parts = urlsplit(public_url(source))
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    return None


def s3_dataset(bucket: str, key: str) -> Dataset:
    """An S3 prefix or object as an OpenLineage dataset: namespace ``s3://bucket``, name the key (``/`` if none)."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"s3://{bucket}", name=key.rstrip("/") or "/")
