"""How fast BrainToSqlOperator loads word rows into PostgreSQL, next to the limit and the naive way.

Run: ``.venv/bin/python bench/warehouse.py [--rows 1000000] [--naive-rows 20000] [--repeat 3]``

It starts its own PostgreSQL server (as the test suite does: Debian's binaries, trust auth, fsync off,
a fresh cluster in /tmp that is removed at the end), builds ``Asset`` objects in memory (no Brain
server needed), and times, on the same ``transcript_words`` table with its primary key, emptied before
each run:

- ``operator``: ``TranscriptLoader.load`` — the code ``BrainToSqlOperator`` runs once the assets are
  fetched: delete the assets' old rows, insert transcripts and words (binary ``COPY``), commit;
- ``COPY``: ``COPY transcript_words FROM STDIN`` of the same rows, pre-formatted as text in memory
  before the clock starts (the limit: the server's own bulk path, no Python per row);
- ``row-by-row``: one ``INSERT`` per row in one transaction, on ``--naive-rows`` rows (it is too slow
  for a million), reported as rows/s.

The median of ``--repeat`` runs is reported. Targets: operator ≥ 50 % of COPY and ≥ 10x row-by-row.
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

import psycopg  # noqa: E402

from airflow_provider_brain.models import Asset, AssetStatus, Word  # noqa: E402
from airflow_provider_brain.transfers.brain_to_sql import WORD_COLUMNS, TranscriptLoader  # noqa: E402
from tests.fixtures.postgres import PostgresServer  # noqa: E402

VOCABULARY = ("hello", "and", "how", "are", "you", "today", "we", "will", "call", "back", "tomorrow", "morning")


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


def timed(setup: Callable[[], None], run: Callable[[], None], repeat: int) -> float:
    """Median seconds of ``run`` over ``repeat`` runs, each after ``setup`` (not timed)."""
    times = []
    for _ in range(repeat):
        setup()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="word rows to load (default 1,000,000)")
    parser.add_argument("--words-per-asset", type=int, default=5_000, help="words per asset (default 5,000)")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="rows for the row-by-row run")
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

        def operator() -> None:
            result = loader.load(assets)
            assert result.word_rows == len(rows), result

        def copy() -> None:
            with conn.cursor() as cur, cur.copy(f"COPY transcript_words ({', '.join(WORD_COLUMNS)}) FROM STDIN") as cp:
                view = memoryview(text)
                for start in range(0, len(view), 1 << 20):
                    cp.write(view[start : start + (1 << 20)])
            conn.commit()

        def row_by_row() -> None:
            sql = f"INSERT INTO transcript_words ({', '.join(WORD_COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s)"
            with conn.cursor() as cur:
                for row in naive:
                    cur.execute(sql, row)
            conn.commit()

        # Quiet the per-load log line while timing.
        import logging

        logging.getLogger("airflow.task.hooks").setLevel(logging.WARNING)
        results = {}
        for name, fn, n in (
            ("operator (TranscriptLoader.load)", operator, len(rows)),
            ("COPY FROM STDIN (limit)", copy, len(rows)),
            ("row-by-row INSERT (naive)", row_by_row, len(naive)),
        ):
            print(f"  timing {name} on {n:,} rows x {args.repeat}...", flush=True)
            seconds = timed(empty, fn, args.repeat)
            results[name] = (n, seconds, n / seconds)
        count = conn.execute("SELECT COUNT(*) FROM transcript_words").fetchone()[0]  # type: ignore[index]
        assert count == len(naive), count
        conn.close()

    op_rate = results["operator (TranscriptLoader.load)"][2]
    copy_rate = results["COPY FROM STDIN (limit)"][2]
    naive_rate = results["row-by-row INSERT (naive)"][2]
    print()
    print(f"{'method':36} {'rows':>10} {'seconds':>9} {'rows/s':>11} {'vs COPY':>8} {'vs naive':>9}")
    for name, (n, seconds, rate) in results.items():
        print(f"{name:36} {n:>10,} {seconds:>9.2f} {rate:>11,.0f} {rate / copy_rate:>7.0%} {rate / naive_rate:>8.1f}x")
    ok = op_rate >= 0.5 * copy_rate and op_rate >= 10 * naive_rate
    print()
    print(
        f"operator = {op_rate / copy_rate:.0%} of COPY (target >= 50%), "
        f"{op_rate / naive_rate:.1f}x row-by-row (target >= 10x): {'OK' if ok else 'BELOW TARGET'}"
    )
    print(
        json.dumps(
            {
                "operator_rows_per_s": round(op_rate),
                "copy_rows_per_s": round(copy_rate),
                "row_by_row_rows_per_s": round(naive_rate),
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
