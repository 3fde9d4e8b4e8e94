"""Find what was said: transcribe the audio under an S3 prefix, search it for phrases, load where each was said.

    list_audio -> audio_uris -> transcribe (one batch task) -> search -> load_hits -> files_per_phrase
                                              phrases -------^----------^

Connections (nothing is hard-coded here):
- ``aws_default``: the S3 bucket holding the audio (an ``aws`` connection).
- ``brain_default``: the Brain API (a ``brain`` connection).
- ``brain_warehouse``: any database with a common-sql hook (Postgres, Snowflake, SQLite, ...).

Run it with other phrases: ``airflow dags test brain_s3_phrase_alerts -c '{"phrases": ["refund", "cancel my order"]}'``.
``search`` returns hit counts per phrase and per file (never the transcripts); ``load_hits`` writes the hits to the
warehouse's ``transcript_hits`` table (one row per place a phrase was said: file, phrase, start and end seconds,
confidence), next to the transcripts; ``files_per_phrase`` returns, for each phrase, the files that mention it.
Running it again over the same files replaces their rows: nothing is duplicated.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.operators.s3 import S3ListOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_brain.operators.search import BrainSearchOperator
from airflow_provider_brain.operators.transcribe_batch import BrainTranscribeBatchOperator
from airflow_provider_brain.transfers.brain_to_sql import BrainToSqlOperator

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")

with DAG(
    dag_id="brain_s3_phrase_alerts",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["brain", "example"],
    params={
        "bucket": Param("brain-audio", type="string", description="Bucket holding the audio"),
        "prefix": Param("incoming/", type="string", description="Search the files under this prefix"),
        "phrases": Param(
            ["call me back", "cancel my order"],
            type="array",
            items={"type": "string", "minLength": 1},
            minItems=1,
            description="Phrases to look for (case and punctuation do not matter)",
        ),
    },
):
    list_audio = S3ListOperator(task_id="list_audio", bucket="{{ params.bucket }}", prefix="{{ params.prefix }}")

    @task
    def audio_uris(keys: list[str], params: dict | None = None) -> list[str]:
        """Keep audio files only, as s3:// URIs for the batch task."""
        return [f"s3://{params['bucket']}/{key}" for key in keys if key.lower().endswith(AUDIO_SUFFIXES)]

    transcribe = BrainTranscribeBatchOperator(
        task_id="transcribe", s3_uris=audio_uris(list_audio.output), deferrable=True, poll_interval=5, timeout=3600
    )

    # [START howto_operator_brain_search]
    @task
    def phrases(params: dict | None = None) -> list[str]:
        """The phrases of this run (params), as a list for the search and the load."""
        return list(params["phrases"])

    wanted = phrases()

    # Hit counts per phrase and per file (XCom): no transcript, no snippet.
    search = BrainSearchOperator(task_id="search", asset_ids=transcribe.output, phrases=wanted)

    # Every hit into the warehouse's transcript_hits table (file, phrase, start/end seconds, confidence), next to
    # the transcripts; a rerun replaces the rows of the same files.
    load_hits = BrainToSqlOperator(
        task_id="load_hits",
        asset_ids=transcribe.output,
        phrases=wanted,
        conn_id="brain_warehouse",
        words_table=None,
    )
    # [END howto_operator_brain_search]

    @task
    def files_per_phrase(summary: dict, transcribed: list[dict]) -> dict[str, list[str]]:
        """For each phrase, the files that mention it (from the search's counts and the batch's sources)."""
        source_of = {item["asset_id"]: item["source"] for item in transcribed if item.get("asset_id")}
        files = {
            phrase: sorted(source_of[a] for a, counts in summary["assets"].items() if counts.get(phrase))
            for phrase in summary["phrases"]
        }
        for phrase, names in files.items():
            print(f"{len(names)} file(s) mention phrase {list(summary['phrases']).index(phrase) + 1}: {names}")
        return files

    search >> load_hits >> files_per_phrase(search.output, transcribe.output)
