"""How fast BrainToSqlOperator loads word rows into PostgreSQL, next to the limit and the naive way.

Run: ``.venv/bin/python bench/warehouse.py [--rows 1000000] [--naive-rows 20000] [--repeat 3]``

It starts its own PostgreSQL server (as the test suite does: Debian's binaries, trust auth, fsync off,
a fresh cluster in /tmp that is removed at the end), builds ``Asset`` objects in memory (no Brain
server needed), and times, on the same ``transcript_words`` table with its primary key, emptied (and
checkpointed) before each run:

- ``operator``: ``TranscriptLoader.load`` — the code ``BrainToSqlOperator`` runs once the assets are
  fetched: delete the assets' old rows, insert transcripts and words (binary ``COPY``), commit;
- ``COPY``: ``COPY transcript_words FROM STDIN`` of the same rows, prepared in memory before the clock
  starts, both as text and in binary (the binary bytes made by the server itself with ``COPY TO
  STDOUT``): the limit, the server's own bulk path with no Python per row. The faster of the two is
  the reference;
- ``row-by-row``: one ``INSERT`` per row in one transaction, on ``--naive-rows`` rows (it is too slow
  for a million), reported as rows/s.

Rounds interleave the methods (in a rotated order) and the median of ``--repeat`` rounds is reported. Targets: operator
≥ 50 % of the faster COPY and ≥ 10x row-by-row. SQLite and DuckDB files follow, for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
# One log line per load would interleave with the table; set before Airflow configures its logging.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

import psycopg  # noqa: E402

from airflow_provider_brain.models import Asset, AssetStatus, Word  # noqa: E402
from airflow_provider_brain.transfers.brain_to_sql import WORD_COLUMNS, TranscriptLoader  # noqa: E402
from tests.fixtures.postgres import PostgresServer  # noqa: E402

VOCABULARY = ("hello", "and", "how", "are", "you", "today", "we", "will", "call", "back", "tomorrow", "morning")


OPERATOR = "operator (TranscriptLoader.load)"
COPY_TEXT = "COPY FROM STDIN, text"
COPY_BINARY = "COPY FROM STDIN, binary"
NAIVE = "row-by-row INSERT (naive)"


def make_assets(total_words: int, words_per_asset: int) -> list[Asset]:
    """Done assets with word timings, ``total_words`` words in all."""
    assets = []
    count = 0
    index = 0
    while count < total_words:
        n = min(words_per_asset, total_words - count)
        words = tuple(
            Word(VOCABULARY[(index + i) % len(VOCABULARY)], i * 0.31, i * 0.31 + 0.27, 0.5 + (i % 50) / 100)
            for i in range(n)
        )
        assets.append(
            Asset(
                asset_id=f"{index:016x}",
                status=AssetStatus.DONE,
                transcript=" ".join(w.word for w in words),
                confidence=tuple(w.confidence for w in words),
                duration=n * 0.31,
                words=words,
                metadata={"source": f"s3://calls/2026-11-25/call-{index}.wav"},
                created="2026-11-25T10:00:00Z",
                completed="2026-11-25T10:05:00Z",
            )
        )
        count += n
        index += 1
    return assets


def word_rows(assets: list[Asset]) -> list[tuple]:
    return [(a.asset_id, i, w.word, w.start, w.end, w.confidence) for a in assets for i, w in enumerate(a.words or ())]


def copy_text(rows: list[tuple]) -> bytes:
    return "".join(f"{a}\t{i}\t{w}\t{s!r}\t{e!r}\t{c!r}\n" for a, i, w, s, e, c in rows).encode()


def other_databases(assets: list[Asset]) -> dict[str, tuple[int, float, float]]:
    """The operator's load path into a SQLite file (executemany) and, if installed, a DuckDB file (UNNEST)."""
    import tempfile

    from airflow_provider_brain.transfers.brain_to_sql import get_db_hook

    n = sum(len(a.words or ()) for a in assets)
    kinds = {"SQLite (executemany)": "sqlite"}
    try:
        import airflow.providers.duckdb  # noqa: F401

        kinds["DuckDB (INSERT ... UNNEST)"] = "duckdb"
    except ImportError:
        pass
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, conn_type in kinds.items():
            conn_id = f"bench_{conn_type}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                {"conn_type": conn_type, "host": f"{tmp}/warehouse.{conn_type}"}
            )
            loader = TranscriptLoader(get_db_hook(conn_id))
            loader.create_tables()
            print(f"  timing operator into {name} on {n:,} rows...", flush=True)
            start = time.perf_counter()
            loader.load(assets)
            seconds = time.perf_counter() - start
            results[name] = (n, seconds, n / seconds)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="word rows to load (default 1,000,000)")
    parser.add_argument("--words-per-asset", type=int, default=5_000, help="words per asset (default 5,000)")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="rows for the row-by-row run")
    parser.add_argument("--other-rows", type=int, default=200_000, help="rows for SQLite/DuckDB (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported")
    args = parser.parse_args()

    print(f"Building {args.rows:,} word rows in memory ({args.words_per_asset:,} words per asset)...", flush=True)
    assets = make_assets(args.rows, args.words_per_asset)
    rows = word_rows(assets)
    text = copy_text(rows)
    naive = rows[: args.naive_rows]

    with PostgresServer.start() as pg:
        os.environ["AIRFLOW_CONN_BENCH_PG"] = pg.connection_json()
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        loader = TranscriptLoader(PostgresHook(postgres_conn_id="bench_pg"))
        loader.create_tables()
        version = psycopg.connect(pg.dsn).execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        conn = psycopg.connect(pg.dsn)
        print(f"PostgreSQL {version} on {pg.host}:{pg.port}; psycopg {psycopg.__version__}", flush=True)

        def empty() -> None:
            conn.execute("TRUNCATE transcripts, transcript_words")
            conn.commit()
            # Flush what the previous run left dirty, so no run pays for its predecessor's writes.
            conn.execute("CHECKPOINT")
            conn.commit()

        def operator() -> None:
            result = loader.load(assets)
            assert result.word_rows == len(rows), result

        columns = ", ".join(WORD_COLUMNS)

        def copy_from(data: bytes, options: str) -> Callable[[], None]:
            def run() -> None:
                with conn.cursor() as cur, cur.copy(f"COPY transcript_words ({columns}) FROM STDIN{options}") as cp:
                    view = memoryview(data)
                    for start in range(0, len(view), 1 << 20):
                        cp.write(view[start : start + (1 << 20)])
                conn.commit()

            return run

        def row_by_row() -> None:
            sql = f"INSERT INTO transcript_words ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
            with conn.cursor() as cur:
                for row in naive:
                    cur.execute(sql, row)
            conn.commit()

        # The binary form of the same rows, exactly as the server writes it: the limit has no Python per row.
        empty()
        operator()
        binary = bytearray()
        with conn.cursor() as cur, cur.copy(f"COPY transcript_words ({columns}) TO STDOUT (FORMAT BINARY)") as cp:
            for block in cp:
                binary += block
        conn.commit()

        methods: list[tuple[str, Callable[[], None], int]] = [
            (OPERATOR, operator, len(rows)),
            (COPY_TEXT, copy_from(text, ""), len(rows)),
            (COPY_BINARY, copy_from(bytes(binary), " (FORMAT BINARY)"), len(rows)),
            (NAIVE, row_by_row, len(naive)),
        ]
        # Rounds interleave the methods, each round in a rotated order, so a noisy neighbour or the
        # server's background work slows all of them alike.
        samples: dict[str, list[float]] = {name: [] for name, _, _ in methods}
        for round_number in range(1, args.repeat + 1):
            shift = (round_number - 1) % len(methods)
            order = methods[shift:] + methods[:shift]
            print(f"  round {round_number}/{args.repeat}: " + ", ".join(name for name, _, _ in order), flush=True)
            for name, fn, n in order:
                empty()
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
                count = conn.execute("SELECT COUNT(*) FROM transcript_words").fetchone()[0]  # type: ignore[index]
                assert count == n, (name, count, n)
        results = {}
        for name, _, n in methods:
            seconds = statistics.median(samples[name])
            results[name] = (n, seconds, n / seconds)
        conn.close()

    others = {} if args.other_rows <= 0 else other_databases(make_assets(args.other_rows, args.words_per_asset))

    op_rate = results[OPERATOR][2]
    copy_rate = max(results[COPY_TEXT][2], results[COPY_BINARY][2])
    naive_rate = results[NAIVE][2]
    print()
    print(f"{'method':36} {'rows':>10} {'seconds':>9} {'rows/s':>11} {'vs COPY':>8} {'vs naive':>9}")
    print(f"{'':36} {'':>10} {'':>9} {'':>11} {'(best)':>8}")
    for name, (n, seconds, rate) in results.items():
        print(f"{name:36} {n:>10,} {seconds:>9.2f} {rate:>11,.0f} {rate / copy_rate:>7.0%} {rate / naive_rate:>8.1f}x")
    ok = op_rate >= 0.5 * copy_rate and op_rate >= 10 * naive_rate
    if others:
        print()
        print("For reference, the same operator path into other databases (local files, one run):")
        for name, (n, seconds, rate) in others.items():
            print(f"{name:36} {n:>10,} {seconds:>9.2f} {rate:>11,.0f}")
    print()
    print(
        f"operator = {op_rate / copy_rate:.0%} of the faster COPY (target >= 50%), "
        f"{op_rate / naive_rate:.1f}x row-by-row (target >= 10x): {'OK' if ok else 'BELOW TARGET'}"
    )
    print(
        json.dumps(
            {
                "operator_rows_per_s": round(op_rate),
                "copy_text_rows_per_s": round(results[COPY_TEXT][2]),
                "copy_binary_rows_per_s": round(results[COPY_BINARY][2]),
                "row_by_row_rows_per_s": round(naive_rate),
                **{f"{name.split()[0].lower()}_operator_rows_per_s": round(r[2]) for name, r in others.items()},
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
